/* cmd_data_profiles.c: `dualkd data profiles`: list the built-in site profiles, or
 * print one (built-in or JSON file, validated) as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "datasets/profile.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: dualkd data profiles [--show NAME|FILE]\n\n"
                 "Without options, lists the built-in site resolution profiles with their voxel\n"
                 "spacing (z y x, mm), slice thickness, contrast, noise and bias strength.\n"
                 "--show prints one profile as JSON: a built-in name, or a JSON profile file,\n"
                 "which is validated field by field (docs/profiles.md).\n");
}

static int list_builtins(void)
{
    printf("%-16s %-20s %-8s %-8s %-6s %-6s\n", "name", "spacing z,y,x (mm)", "slice", "contrast",
           "noise", "bias");
    for (int i = 0; i < dk_profile_builtin_count(); i++) {
        dk_profile p;
        if (dk_profile_builtin(dk_profile_builtin_name(i), &p, NULL)) continue;
        char spacing[64], slice[32];
        snprintf(spacing, sizeof spacing, "%g x %g x %g", p.spacing[0], p.spacing[1], p.spacing[2]);
        snprintf(slice, sizeof slice, "%g mm", p.slice_thickness);
        printf("%-16s %-20s %-8s %-8s %-6g %-6g\n", p.name, spacing, slice, p.contrast, p.noise,
               p.bias);
    }
    return 0;
}

static int show(const char *name_or_path)
{
    dk_profile p;
    dk_err err = {0};
    if (dk_profile_load(name_or_path, &p, &err)) return dk_cli_fail("data profiles", err.msg);
    char *json = dk_profile_to_json(&p);
    if (!json) return dk_cli_fail("data profiles", "out of memory");
    fputs(json, stdout);
    free(json);
    return 0;
}

int dk_cmd_data_profiles(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (argc == 1) return list_builtins();
    if (argc == 3 && strcmp(argv[1], "--show") == 0) return show(argv[2]);
    usage(stderr);
    return 2;
}
