/* demo_sites.c: the students of `dualkd demo` (demo.h): per method, one `dualkd
 * student train` process per site, all three at once as real sites would run (one
 * BLAS thread each: three single-threaded processes on two cores, the server idle
 * meanwhile), then `dualkd eval` of every method at every site. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/demo.h"
#include "distill/clock.h"

/* The flag that makes `dualkd eval` run a model at its own training spacing and
 * resample its probabilities back to the site's grid (the teacher's zero-shot row). */
#define EVAL_AT_TRAINING_SPACING "--resample"

typedef struct site_run {
    char out[DK_DEMO_PATH], log[DK_DEMO_PATH], seed[16], steps[16];
} site_run;

static void make_dirs(dk_demo *d, const char *method)
{
    char path[DK_DEMO_PATH];
    mkdir(dk_demo_path(d, path, "models"), 0755);
    mkdir(dk_demo_path(d, path, "models/%s", method), 0755);
}

/* The last line a site's log shows (a progress line may end in '\r'). */
static void last_line(const char *log, char *out, size_t cap)
{
    char tail[2048];
    dk_child_log_tail(log, tail, sizeof tail);
    size_t n = strlen(tail);
    while (n && (tail[n - 1] == '\n' || tail[n - 1] == '\r' || tail[n - 1] == ' '))
        tail[--n] = '\0';
    const char *start = tail;
    for (const char *p = tail; *p; p++)
        if (*p == '\n' || *p == '\r') start = p + 1;
    snprintf(out, cap, "%.110s", start);
}

typedef struct heartbeat {
    dk_demo *d;
    dk_child *sites;
    double last;
} heartbeat;

static void beat(void *ctx)
{
    heartbeat *h = ctx;
    double now = dk_clock_seconds();
    if (now - h->last < 30) return;
    h->last = now;
    for (int i = 0; i < DK_DEMO_SITES; i++) {
        char line[128];
        last_line(h->sites[i].log_path, line, sizeof line);
        printf("      %s: %s\n", h->d->plan.sites[i].name, line);
    }
    fflush(stdout);
}

static dk_status federation(dk_demo *d, const dk_demo_method *m, dk_err *err)
{
    char log[DK_DEMO_PATH], rounds[16];
    snprintf(rounds, sizeof rounds, "%d", d->plan.rounds);
    dk_child_spec s = {.log_path = dk_demo_path(d, log, "logs/fed-create-%s.log", m->name)};
    /* a round waits for all three sites; the deadline only guards against a lost one */
    const char *argv[] = {"fed", "create", "--server", d->url, "--token-file",
                          d->operator_token, "--name", m->name, "--rounds", rounds,
                          "--quorum", "3", "--deadline", "3600", "--student", d->init, NULL};
    for (int i = 0; argv[i]; i++)
        dk_child_arg(&s, argv[i]);
    return dk_child_run(&s, err);
}

static void site_argv(dk_demo *d, const dk_demo_method *m, int i, site_run *r, dk_child_spec *s)
{
    const dk_demo_site *site = &d->plan.sites[i];
    dk_demo_path(d, r->out, "models/%s/%s.h5", m->name, site->name);
    dk_demo_path(d, r->log, "logs/%s-%s.log", m->name, site->name);
    snprintf(r->seed, sizeof r->seed, "%u", d->plan.seed);
    snprintf(r->steps, sizeof r->steps, "%d", d->plan.local_steps);
    *s = (dk_child_spec){.log_path = r->log};
    const char *common[] = {"student", "train", "--data", d->site_data[i], "--out", r->out,
                            "--config", d->config, "--threads", "1", "--seed", r->seed, NULL};
    for (int k = 0; common[k]; k++)
        dk_child_arg(s, common[k]);
    if (m->kind != DK_DEMO_FED_KD) dk_child_arg(s, "--supervised-only");
    if (m->kind == DK_DEMO_LOCAL) return;
    const char *fed[] = {"--server", d->url, "--federate", m->name, "--local-steps", r->steps,
                         NULL};
    for (int k = 0; fed[k]; k++)
        dk_child_arg(s, fed[k]);
    if (m->kind == DK_DEMO_FED_KD) {
        dk_child_arg(s, "--profile");
        dk_child_arg(s, site->profile);
    }
    s->env[0] = d->site_token_env[i];
}

dk_status dk_demo_train(dk_demo *d, int mi, dk_err *err)
{
    const dk_demo_method *m = &d->plan.methods[mi];
    make_dirs(d, m->name);
    dk_status st = m->kind == DK_DEMO_LOCAL ? DK_OK : federation(d, m, err);
    if (st) return st;
    site_run runs[DK_DEMO_SITES];
    dk_child sites[DK_DEMO_SITES] = {0};
    for (int i = 0; !st && i < DK_DEMO_SITES; i++) {
        dk_child_spec s;
        site_argv(d, m, i, &runs[i], &s);
        st = dk_child_start(&s, &sites[i], err);
    }
    heartbeat h = {.d = d, .sites = sites, .last = dk_clock_seconds()};
    dk_child_watch w = {.must_live = m->kind == DK_DEMO_LOCAL ? NULL : &d->server,
                        .tick = beat, .ctx = &h};
    if (st) {
        for (int i = 0; i < DK_DEMO_SITES; i++)
            dk_child_stop(&sites[i], 5);
        return st;
    }
    return dk_child_wait_all(sites, DK_DEMO_SITES, &w, err);
}

/* The checkpoint of method m at site i that is evaluated: the model at the end of
 * training for every method (a federation's last global; a local run's last
 * checkpoint, not its best-by-validation one, which was chosen on the very volumes
 * evaluated here). */
static const char *model_of(dk_demo *d, const dk_demo_method *m, int i, char *buf)
{
    if (m->kind == DK_DEMO_TEACHER) return d->teacher;
    return dk_demo_path(d, buf, "models/%s/%s.h5%s", m->name, d->plan.sites[i].name,
                        m->kind == DK_DEMO_LOCAL ? ".last.h5" : "");
}

typedef struct eval_run {
    char model[DK_DEMO_PATH], json[DK_DEMO_PATH], preds[DK_DEMO_PATH], log[DK_DEMO_PATH];
} eval_run;

/* The three sites' evaluations at once, one thread each: a volume's metrics are
 * single-threaded, so this keeps both cores busy where one process with two threads
 * would leave one idle. */
dk_status dk_demo_evaluate(dk_demo *d, int mi, dk_err *err)
{
    const dk_demo_method *m = &d->plan.methods[mi];
    char path[DK_DEMO_PATH];
    mkdir(dk_demo_path(d, path, "eval"), 0755);
    mkdir(dk_demo_path(d, path, "predictions"), 0755);
    mkdir(dk_demo_path(d, path, "predictions/%s", m->name), 0755);
    eval_run runs[DK_DEMO_SITES];
    dk_child evals[DK_DEMO_SITES] = {0};
    dk_status st = DK_OK;
    for (int i = 0; !st && i < DK_DEMO_SITES; i++) {
        const char *site = d->plan.sites[i].name;
        eval_run *r = &runs[i];
        dk_child_spec s = {
            .log_path = dk_demo_path(d, r->log, "logs/eval-%s-%s.log", m->name, site),
            .stdout_path = dk_demo_path(d, r->json, "eval/%s-%s.json", m->name, site)};
        const char *argv[] = {"eval", "--model", model_of(d, m, i, r->model), "--data",
                              d->site_data[i], "--json", "--export",
                              dk_demo_path(d, r->preds, "predictions/%s/%s", m->name, site),
                              "--threads", "1", NULL};
        for (int k = 0; argv[k]; k++)
            dk_child_arg(&s, argv[k]);
        if (m->kind == DK_DEMO_TEACHER) dk_child_arg(&s, EVAL_AT_TRAINING_SPACING);
        st = dk_child_start(&s, &evals[i], err);
    }
    if (st) {
        for (int i = 0; i < DK_DEMO_SITES; i++)
            dk_child_stop(&evals[i], 5);
        return st;
    }
    st = dk_child_wait_all(evals, DK_DEMO_SITES, NULL, err);
    if (!st) printf("      evaluated %s at %d sites\n", m->title, DK_DEMO_SITES);
    return st;
}
