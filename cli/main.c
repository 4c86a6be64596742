/* main.c: the dualkd multi-call binary: finds the subcommand and runs it.
 * Everything a command does lives in its cli/cmd_*.c; this file only dispatches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"

static const dk_command commands[] = {
    {"demo", dk_cmd_demo, "the whole method end to end on synthetic knees: 3 sites, a results table"},
    {"version", dk_cmd_version, "print the version, the BLAS kernels and thread count"},
    {"data import", dk_cmd_data_import, "NIfTI image/label directories -> an HDF5 dataset"},
    {"data info", dk_cmd_data_info, "classes, volumes, shapes, spacing and class voxels of a dataset"},
    {"data export", dk_cmd_data_export, "one dataset volume -> NIfTI image and label files"},
    {"data profiles", dk_cmd_data_profiles, "list the built-in site profiles, or show one as JSON"},
    {"data synth", dk_cmd_data_synth, "synthetic knee MR volumes at a profile, with a few-shot split"},
    {"data show", dk_cmd_data_show, "one slice of a dataset volume as a PNG with its labels"},
    {"teacher train", dk_cmd_teacher_train, "train the teacher on the repository; best checkpoint + run log"},
    {"teacher precompute", dk_cmd_teacher_precompute, "the frozen teacher's targets for a site profile -> target store"},
    {"teacher verify", dk_cmd_teacher_verify, "check a target store's manifest, shapes and checksums"},
    {"teacher export-default", dk_cmd_teacher_export_default, "write the default teacher built into dualkd"},
    {"student train", dk_cmd_student_train, "train a site's student: its labels + the teacher's targets"},
    {"student init", dk_cmd_student_init, "a freshly initialised student checkpoint (a federation's start)"},
    {"eval", dk_cmd_eval, "per-class Dice, HD95 and ASSD (mm) of a model or label maps"},
    {"serve", dk_cmd_serve, "the HTTP API: model card, profiles, targets as .npy (docs/api.md)"},
    {"token add", dk_cmd_token_add, "a new site token (printed once; only its SHA-256 is kept)"},
    {"token list", dk_cmd_token_list, "the tokens of a token file: id, site, scopes, profiles"},
    {"token revoke", dk_cmd_token_revoke, "revoke a token by id, or all of a site's"},
    {"fed create", dk_cmd_fed_create, "create a federation on a running server (POST /v1/federation)"},
    {"fed status", dk_cmd_fed_status, "a federation's rounds: reported, missing, Dice, bytes"},
    {"report", dk_cmd_report, "the demo's report folder (PNGs, index.html) from its results.json"},
};
static const int command_count = sizeof commands / sizeof commands[0];

static void print_usage(FILE *out)
{
    fprintf(out, "usage: dualkd <command> [<subcommand>] [options]\n\n"
                 "Knowledge distillation from a repository-trained teacher to few-shot site students.\n\n"
                 "commands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-22s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun `dualkd <command> --help` for a command's options.\n");
}

/* Match argv[1] (and argv[2] for two-word commands such as "data synth"). */
static const dk_command *find_command(int argc, char **argv, int *words)
{
    for (int i = 0; i < command_count; i++) {
        const char *name = commands[i].name;
        const char *space = strchr(name, ' ');
        if (!space && strcmp(name, argv[1]) == 0) {
            *words = 1;
            return &commands[i];
        }
        if (space && argc > 2 && strncmp(name, argv[1], (size_t)(space - name)) == 0 &&
            argv[1][space - name] == '\0' && strcmp(space + 1, argv[2]) == 0) {
            *words = 2;
            return &commands[i];
        }
    }
    return NULL;
}

/* `dualkd data` alone: list the subcommands of that group. */
static int print_group(const char *group)
{
    size_t len = strlen(group);
    int found = 0;
    for (int i = 0; i < command_count; i++) {
        if (strncmp(commands[i].name, group, len) == 0 && commands[i].name[len] == ' ') {
            if (!found) fprintf(stderr, "usage: dualkd %s <subcommand> [options]\n\n", group);
            fprintf(stderr, "  %-22s %s\n", commands[i].name, commands[i].summary);
            found = 1;
        }
    }
    return found;
}

int main(int argc, char **argv)
{
    dk_blas_reexec_for_fast_kernels(argv);
    const char *max_voxels = getenv("DUALKD_MAX_VOXELS");
    if (max_voxels && dk_cli_set_max_voxels(max_voxels, "DUALKD_MAX_VOXELS")) return 2;
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return dk_cmd_version(1, argv + 1);
    int words = 0;
    const dk_command *cmd = find_command(argc, argv, &words);
    if (!cmd) {
        if (print_group(argv[1])) return 2;
        fprintf(stderr, "dualkd: unknown command '%s'; run `dualkd --help` for the list\n",
                argv[1]);
        return 2;
    }
    return cmd->run(argc - words, argv + words);
}
