/* cmd_teacher_export.c: `dualkd teacher export-default`: writes the default teacher
 * that ships inside the binary (teacher/shipped.h) to a file. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "teacher/shipped.h"

static const char usage[] = "usage: dualkd teacher export-default --out TEACHER.h5\n";

int dk_cmd_teacher_export_default(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        size_t size;
        dk_shipped_teacher_bytes(&size);
        printf("%s\n"
               "Writes the default teacher built into dualkd (trained on the synthetic\n"
               "repository by scripts/train-default-teacher; models/teacher-default.md has\n"
               "its training record and validation Dice) to TEACHER.h5, after checking its\n"
               "SHA-256. Use it where a command wants --teacher, instead of training one.\n\n"
               "  --out FILE   the checkpoint to write (%zu bytes, SHA-256 %s)\n",
               usage, size, dk_shipped_teacher_sha256());
        return 0;
    }
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "dualkd teacher export-default: unknown option or missing value: "
                            "'%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "dualkd teacher export-default: --out is required\n%s", usage);
        return 2;
    }
    dk_err err = {0};
    if (dk_shipped_teacher_write(out, &err)) return dk_cli_fail("teacher export-default", err.msg);
    printf("%s  %s\n", dk_shipped_teacher_sha256(), out);
    return 0;
}
