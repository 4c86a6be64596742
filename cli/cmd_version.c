/* cmd_version.c: `dualkd version`, plus the small helpers every command shares. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "distill/blas.h"

int dk_cli_fail(const char *what, const char *msg)
{
    fprintf(stderr, "dualkd: %s: %s\n", what, msg);
    return 1;
}

int dk_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

int dk_cmd_version(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("usage: dualkd version\n\nPrints the dualkd version and git revision, the OpenBLAS\n"
               "kernel family in use and its thread count.\n");
        return 0;
    }
    printf("dualkd %s (%s)\n", DUALKD_VERSION, DUALKD_GIT);
    printf("blas: OpenBLAS %s kernels, %d threads\n", dk_blas_corename(), dk_blas_threads());
    return 0;
}
