/* cmd_report.c: `dualkd report`: re-render the report folder of `dualkd demo` from its
 * results.json (report/report.h does the work; docs/demo.md the schema). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "report/report.h"

static const char usage[] = "usage: dualkd report --results RESULTS.json --out DIR\n";

static void print_help(void)
{
    printf("%s\n"
           "Writes the report folder of `dualkd demo` from its results.json: for each site\n"
           "overlay-<site>.png (one slice of a validation volume: the image, the ground\n"
           "truth, then each method's prediction read from <predictions>/<volume id>.nii.gz),\n"
           "curves.png (validation mean Dice per round, one panel per site, one line per\n"
           "method) and index.html (static HTML, no JavaScript) with the tables of Dice and\n"
           "HD95 (mm) per site, class and method, wall time and bytes per round, the pictures\n"
           "and the verdict. Paths inside results.json are relative to its directory.\n"
           "results.json is checked first (a message names the bad field); the files are\n"
           "written under temporary names and renamed into DIR only when all are written.\n"
           "When DIR is not the directory of results.json, a copy of it is written to DIR.\n"
           "See docs/demo.md.\n\n"
           "  --results FILE  the results.json `dualkd demo` wrote\n"
           "  --out DIR       the report folder (created when missing)\n",
           usage);
}

int dk_cmd_report(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *results = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--results"))
            results = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--out"))
            out = argv[++i];
        else {
            fprintf(stderr, "dualkd report: unknown option or missing value: '%s'\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    if (!results || !out) {
        fprintf(stderr, "dualkd report: --results and --out are required\n%s", usage);
        return 2;
    }
    dk_err err = {0};
    if (dk_report_write(results, out, &err)) return dk_cli_fail("report", err.msg);
    fprintf(stderr, "report: wrote %s/index.html\n", out);
    return 0;
}
