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

int dk_cmd_demo(int argc, char **argv);                 /* cmd_demo.c */
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
int dk_cmd_teacher_export_default(int argc, char **argv); /* cmd_teacher_export.c */
int dk_cmd_eval(int argc, char **argv);               /* cmd_eval.c */
int dk_cmd_student_train(int argc, char **argv);      /* cmd_student_train.c */
int dk_cmd_student_init(int argc, char **argv);       /* cmd_student_init.c */
int dk_cmd_serve(int argc, char **argv);              /* cmd_serve.c */
int dk_cmd_token_add(int argc, char **argv);          /* cmd_token.c */
int dk_cmd_token_list(int argc, char **argv);         /* cmd_token.c */
int dk_cmd_token_revoke(int argc, char **argv);       /* cmd_token.c */
int dk_cmd_fed_create(int argc, char **argv);         /* cmd_fed.c */
int dk_cmd_fed_status(int argc, char **argv);         /* cmd_fed.c */
int dk_cmd_report(int argc, char **argv);             /* cmd_report.c */

#endif
