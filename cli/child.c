/* child.c: dualkd subcommands as child processes with logs (child.h). fork + execve
 * rather than posix_spawn because the child must ask for PR_SET_PDEATHSIG; between
 * the two it only calls async-signal-safe functions (the parent may have threads). */
#include "cli/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

bool dk_child_arg(dk_child_spec *s, const char *arg)
{
    for (int i = 0; i < DK_CHILD_MAX_ARGS - 1; i++) {
        if (!s->argv[i]) {
            s->argv[i] = arg;
            s->argv[i + 1] = NULL;
            return true;
        }
    }
    return false;
}

/* Everything execve needs, built before fork: the child may not allocate. */
typedef struct exec_plan {
    char self[4096];
    char *argv[DK_CHILD_MAX_ARGS + 1];
    char **envp;
} exec_plan;

static dk_status plan_exec(const dk_child_spec *s, exec_plan *p, dk_err *err)
{
    /* /proc/self/exe, not the path it names: it still runs this very binary when the
     * file has been rebuilt or removed since the demo started */
    if (access("/proc/self/exe", X_OK))
        return dk_err_set(err, DK_EIO, "cannot run this program again (/proc/self/exe): %s",
                          strerror(errno));
    snprintf(p->self, sizeof p->self, "/proc/self/exe");
    p->argv[0] = "dualkd";
    int a = 0;
    while (a < DK_CHILD_MAX_ARGS - 1 && s->argv[a]) {
        p->argv[a + 1] = (char *)s->argv[a];
        a++;
    }
    p->argv[a + 1] = NULL;
    size_t count = 0, extra = 0;
    while (environ[count]) count++;
    while (extra < DK_CHILD_MAX_ENV && s->env[extra]) extra++;
    p->envp = calloc(count + extra + 1, sizeof *p->envp);
    if (!p->envp) return dk_err_set(err, DK_ENOMEM, "out of memory for a child's environment");
    size_t k = 0;
    for (size_t i = 0; i < extra; i++) p->envp[k++] = (char *)s->env[i];
    for (size_t i = 0; i < count; i++) {
        size_t name_len = strcspn(environ[i], "=");
        bool overridden = false;
        for (size_t j = 0; j < extra; j++)
            if (strncmp(s->env[j], environ[i], name_len + 1) == 0) overridden = true;
        if (!overridden) p->envp[k++] = environ[i];
    }
    p->envp[k] = NULL;
    return DK_OK;
}

static void name_child(const dk_child_spec *s, dk_child *c)
{
    snprintf(c->name, sizeof c->name, "dualkd %s%s%s", s->argv[0] ? s->argv[0] : "",
             s->argv[0] && s->argv[1] && s->argv[1][0] != '-' ? " " : "",
             s->argv[0] && s->argv[1] && s->argv[1][0] != '-' ? s->argv[1] : "");
    snprintf(c->log_path, sizeof c->log_path, "%s", s->log_path);
}

dk_status dk_child_start(const dk_child_spec *s, dk_child *c, dk_err *err)
{
    memset(c, 0, sizeof *c);
    name_child(s, c);
    exec_plan p;
    dk_status st = plan_exec(s, &p, err);
    if (st) return st;
    int log = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log < 0) {
        free(p.envp);
        return dk_err_set(err, DK_EIO, "cannot open the log '%s': %s", s->log_path,
                          strerror(errno));
    }
    int out = log;
    if (s->stdout_path) {
        out = open(s->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0) {
            int e = errno;
            close(log);
            free(p.envp);
            return dk_err_set(err, DK_EIO, "cannot open '%s': %s", s->stdout_path, strerror(e));
        }
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (!s->detached) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(127); /* the parent is gone already */
        } else {
            setsid();
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0);
        dup2(out, 1);
        dup2(log, 2);
        execve(p.self, p.argv, p.envp);
        _exit(127);
    }
    int fork_errno = errno;
    close(log);
    if (out != log) close(out);
    free(p.envp);
    if (pid < 0)
        return dk_err_set(err, DK_EIO, "cannot start %s: %s", c->name, strerror(fork_errno));
    c->pid = pid;
    return DK_OK;
}

void dk_child_log_tail(const char *path, char *out, size_t max_bytes)
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f || max_bytes < 2) {
        if (f) fclose(f);
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)max_bytes - 1 ? size - (long)max_bytes + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(out, 1, max_bytes - 1, f);
    out[n] = '\0';
    fclose(f);
    char *nl = from > 0 ? strchr(out, '\n') : NULL; /* start at a whole line */
    if (nl) memmove(out, nl + 1, strlen(nl + 1) + 1);
}

static dk_status ended(dk_child *c, int status, dk_err *err)
{
    c->pid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return DK_OK;
    char tail[1200];
    dk_child_log_tail(c->log_path, tail, sizeof tail);
    if (WIFEXITED(status))
        return dk_err_set(err, DK_EIO, "%s exited with status %d (log %s):\n%s", c->name,
                          WEXITSTATUS(status), c->log_path, tail);
    return dk_err_set(err, DK_EIO, "%s was killed by signal %d (log %s):\n%s", c->name,
                      WTERMSIG(status), c->log_path, tail);
}

dk_status dk_child_wait(dk_child *c, dk_err *err)
{
    if (c->pid <= 0) return DK_OK;
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0) {
        if (errno != EINTR) {
            c->pid = 0;
            return dk_err_set(err, DK_EIO, "waiting for %s: %s", c->name, strerror(errno));
        }
    }
    return ended(c, status, err);
}

dk_status dk_child_run(const dk_child_spec *s, dk_err *err)
{
    dk_child c;
    dk_status st = dk_child_start(s, &c, err);
    return st ? st : dk_child_wait(&c, err);
}

bool dk_child_running(dk_child *c, int *status)
{
    if (c->pid <= 0) return false;
    int ws = 0;
    pid_t r = waitpid(c->pid, &ws, WNOHANG);
    if (r == 0) return true;
    if (status) *status = r == c->pid ? ws : 0;
    return false;
}

static void stop_all(dk_child *c, int n)
{
    for (int j = 0; j < n; j++) dk_child_stop(&c[j], 5);
}

dk_status dk_child_wait_all(dk_child *c, int n, const dk_child_watch *w, dk_err *err)
{
    struct timespec tick = {0, 100 * 1000 * 1000};
    for (long polls = 1;; polls++) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            int status = 0;
            if (c[i].pid <= 0) continue;
            if (dk_child_running(&c[i], &status)) {
                left++;
                continue;
            }
            dk_status st = ended(&c[i], status, err);
            if (st) {
                stop_all(c, n);
                return st;
            }
        }
        if (left == 0) return DK_OK;
        int status = 0;
        if (w && w->must_live && !dk_child_running(w->must_live, &status)) {
            stop_all(c, n);
            dk_status st = ended(w->must_live, status, err);
            return st ? st : dk_err_set(err, DK_EIO, "%s ended while others needed it",
                                        w->must_live->name);
        }
        if (w && w->tick && polls % 10 == 0) w->tick(w->ctx);
        nanosleep(&tick, NULL);
    }
}

void dk_child_stop(dk_child *c, double grace_s)
{
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (double waited = 0; waited < grace_s; waited += 0.02) {
        if (!dk_child_running(c, NULL)) {
            c->pid = 0;
            return;
        }
        nanosleep(&tick, NULL);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}
