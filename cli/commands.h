/* commands.h: every dualkd subcommand, one function each, in its own cli/cmd_*.c.
 *
 * A command gets argv starting at its own name ("synth" for `dualkd data synth`),
 * prints its own --help, and returns the process exit status:
 * 0 success, 1 failure (message already printed to stderr), 2 usage error. */
#ifndef DK_CLI_COMMANDS_H
#define DK_CLI_COMMANDS_H

typedef int (*dk_command_fn)(int argc, char **argv);

typedef struct dk_command {
    const char *name;    /* "version", "data synth", ... */
    dk_command_fn run;
    const char *summary; /* one line for `dualkd --help` */
} dk_command;

int dk_cmd_version(int argc, char **argv);
int dk_cmd_data_import(int argc, char **argv); /* cmd_data_nifti.c */
int dk_cmd_data_export(int argc, char **argv); /* cmd_data_nifti.c */
int dk_cmd_data_info(int argc, char **argv);   /* cmd_data_info.c */
int dk_cmd_data_profiles(int argc, char **argv); /* cmd_data_profiles.c */
int dk_cmd_data_synth(int argc, char **argv);  /* cmd_data_synth.c */
int dk_cmd_data_show(int argc, char **argv);   /* cmd_data_synth.c */
int dk_cmd_teacher_train(int argc, char **argv); /* cmd_teacher_train.c */
int dk_cmd_teacher_precompute(int argc, char **argv); /* cmd_teacher_precompute.c */
int dk_cmd_teacher_verify(int argc, char **argv);     /* cmd_teacher_precompute.c */

/* Print "dualkd: <msg>" for a failed library call and return 1. */
int dk_cli_fail(const char *what, const char *msg);

/* Set the per-volume voxel limit from text (source names it in a message,
 * "--max-voxels"); 0, or 2 after printing why text is not a count. */
int dk_cli_set_max_voxels(const char *text, const char *source);

/* True when argv holds -h or --help. */
int dk_cli_wants_help(int argc, char **argv);

#endif
