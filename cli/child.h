/* child.h: dualkd running dualkd: a subcommand as a separate child process of this
 * binary (/proc/self/exe), its stdout and stderr in a log file, for `dualkd demo`,
 * which runs the server and each site as the separate processes they are in a real
 * deployment. Only cli/ uses it.
 *
 * Children die with the parent (PR_SET_PDEATHSIG) unless started detached, so a
 * demo that fails or is interrupted leaves no server or site behind. */
#ifndef DK_CLI_CHILD_H
#define DK_CLI_CHILD_H

#include <stdbool.h>
#include <sys/types.h>

#include "distill/err.h"

#define DK_CHILD_MAX_ARGS 64
#define DK_CHILD_MAX_ENV 4

typedef struct dk_child_spec {
    const char *argv[DK_CHILD_MAX_ARGS]; /* "serve", "--teacher", ...; NULL-terminated */
    const char *env[DK_CHILD_MAX_ENV];   /* extra "NAME=value" entries; NULL-terminated */
    const char *log_path;                /* stderr (and stdout) go here (truncated) */
    const char *stdout_path;             /* stdout alone here instead, when set */
    bool detached;                       /* survives the parent (--keep-server) */
} dk_child_spec;

typedef struct dk_child {
    pid_t pid;
    char name[64]; /* argv[0..1], for messages */
    char log_path[4096];
} dk_child;

/* Append one argument (borrowed: must outlive the start). Returns false when full. */
bool dk_child_arg(dk_child_spec *s, const char *arg);

/* Start the child. Fails when the binary cannot be found or the log not opened. */
dk_status dk_child_start(const dk_child_spec *s, dk_child *c, dk_err *err);

/* Wait for it; DK_OK for exit status 0, else an error naming the child, how it ended
 * and the last lines of its log. */
dk_status dk_child_wait(dk_child *c, dk_err *err);

/* Start and wait. */
dk_status dk_child_run(const dk_child_spec *s, dk_err *err);

/* While waiting for a group: a child that must stay up (the server), and a function
 * called about once a second (progress). Either may be NULL. */
typedef struct dk_child_watch {
    dk_child *must_live;
    void (*tick)(void *ctx);
    void *ctx;
} dk_child_watch;

/* Wait for every child (w may be NULL); on the first failure, or when w->must_live
 * ends, stop the rest and report that one. */
dk_status dk_child_wait_all(dk_child *c, int n, const dk_child_watch *w, dk_err *err);

/* True while the child runs (reaps it when it has ended; *status gets its wait status). */
bool dk_child_running(dk_child *c, int *status);

/* SIGTERM, then SIGKILL after grace_s seconds; waits. Safe on an ended child. */
void dk_child_stop(dk_child *c, double grace_s);

/* The last max_bytes of the child's log (or of any file) into out (NUL-terminated). */
void dk_child_log_tail(const char *path, char *out, size_t max_bytes);

#endif
