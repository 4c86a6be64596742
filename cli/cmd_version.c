/* cmd_version.c: `dualkd version`. */
#include <stdio.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"

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
