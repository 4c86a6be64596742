/* cmd_demo.c: `dualkd demo`: the whole method end to end on synthetic knees, each
 * part as the separate process it is in a deployment: the data, the shipped teacher,
 * its targets per site profile, `dualkd serve` on a free loopback port, three site
 * students per method, `dualkd eval`, then results.json, the report folder and the
 * table (docs/demo.md). This file holds the options and the stages before training;
 * demo_sites.c trains and evaluates, demo_results.c reports. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/commands.h"
#include "cli/demo.h"
#include "cli/util.h"
#include "distill/checkpoint.h"
#include "distill/clock.h"

static const char usage[] =
    "usage: dualkd demo [--out DIR] [--quick | --tiny] [--teacher TEACHER.h5] [--keep-server]\n"
    "                   [--seed S]\n";

static void print_help(void)
{
    printf("%s\n"
           "Runs the method end to end on synthetic knee MR: a repository and three\n"
           "clinical sites (3.3 mm PD-fs, 4.5 mm T1, 3.3 mm DESS-like; 2 labelled volumes\n"
           "each), the shipped teacher, its targets for each site profile, `dualkd serve`\n"
           "on a free loopback port, then three students per site, each site a separate\n"
           "process: (a) local supervised-only, (b) supervised-only FedAvg, (c) dual-\n"
           "distillation FedAvg. Evaluates them and the teacher (zero-shot) on each site's\n"
           "validation volumes, prints the table and writes DIR/report/index.html.\n"
           "About 10 minutes on 2 cores (--quick: 3). See docs/demo.md.\n\n"
           "  --out DIR        run folder (default runs/demo; must be empty or absent)\n"
           "  --quick          smaller data and fewer rounds (a smoke run)\n"
           "  --tiny           the smallest sizes that pass every stage (for tests; the\n"
           "                   numbers mean nothing)\n"
           "  --teacher FILE   use this teacher checkpoint instead of the shipped one\n"
           "  --keep-server    leave `dualkd serve` running for a notebook (prints its URL)\n"
           "  --seed S         student initialisation and sampling seed (default 1)\n",
           usage);
}

const char *dk_demo_path(const dk_demo *d, char *buf, const char *fmt, ...)
{
    int n = snprintf(buf, DK_DEMO_PATH, "%s/", d->out);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < DK_DEMO_PATH) vsnprintf(buf + n, (size_t)(DK_DEMO_PATH - n), fmt, ap);
    va_end(ap);
    return buf;
}

/* The cost model behind the ETA: seconds on 2 cores, measured on the development
 * machine and scaled by what the run has taken so far. */
static double stage_cost(const dk_demo *d, int stage)
{
    const dk_demo_plan *p = &d->plan;
    double steps = (double)p->rounds * p->local_steps, sites = DK_DEMO_SITES;
    double vols = p->repository + sites * (p->labelled + p->unlabelled + p->validation);
    switch (stage) {
    case 0: return 0.6 * vols;                           /* data */
    case 1: return 2.0 * p->repository * p->passes * 0.6; /* targets, two profiles */
    case 2: return 3.0;                                  /* server */
    case 3: return steps * 0.85 + 8.0 * p->rounds;       /* local */
    case 4: return steps * 0.85 + 10.0 * p->rounds;      /* FedAvg supervised */
    case 5: return steps * 1.7 + 10.0 * p->rounds;       /* FedAvg dual */
    default: return 0.5 * DK_DEMO_METHODS * sites * p->validation; /* evaluation */
    }
}

static void stage_begin(dk_demo *d, const char *what)
{
    double now = dk_clock_seconds() - d->started;
    double scale = d->planned_done > 0 ? now / d->planned_done : 1.0;
    double eta = (d->planned_total - d->planned_done) * scale;
    d->stage++;
    printf("[%d/%d] %s  (elapsed %d:%02d, ETA %d:%02d)\n", d->stage, d->stages, what,
           (int)now / 60, (int)now % 60, (int)eta / 60, (int)eta % 60);
    fflush(stdout);
}

static void stage_end(dk_demo *d, int stage)
{
    d->planned_done += stage_cost(d, stage);
}

static dk_status write_text(const char *path, const char *text, dk_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return dk_err_set(err, DK_EIO, "cannot write '%s': %s", path, strerror(errno));
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? DK_OK : dk_err_set(err, DK_EIO, "cannot write '%s'", path);
}

/* One dualkd child, waited for, its log in logs/<log>.log. */
static dk_status run(dk_demo *d, const char *log, const char *stdout_path, dk_err *err,
                     const char *first, ...)
{
    char log_path[DK_DEMO_PATH];
    dk_child_spec s = {.log_path = dk_demo_path(d, log_path, "logs/%s.log", log),
                       .stdout_path = stdout_path};
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        dk_child_arg(&s, a);
    va_end(ap);
    return dk_child_run(&s, err);
}

static dk_status stage_data(dk_demo *d, dk_err *err)
{
    const dk_demo_plan *p = &d->plan;
    char n[16], lab[16], unl[16], val[16], seed[16];
    snprintf(n, sizeof n, "%d", p->repository);
    dk_status st = run(d, "synth-repository", NULL, err, "data", "synth", "--profile",
                       "repository", "--n", n, "--seed", "1", "--out", d->repo, NULL);
    snprintf(lab, sizeof lab, "%d", p->labelled);
    snprintf(unl, sizeof unl, "%d", p->unlabelled);
    snprintf(val, sizeof val, "%d", p->validation);
    for (int i = 0; !st && i < DK_DEMO_SITES; i++) {
        const dk_demo_site *s = &p->sites[i];
        char log[64];
        snprintf(seed, sizeof seed, "%d", s->seed);
        snprintf(log, sizeof log, "synth-%s", s->name);
        st = run(d, log, NULL, err, "data", "synth", "--profile", s->profile, "--contrast",
                 s->contrast, "--labelled", lab, "--unlabelled", unl, "--validation", val,
                 "--seed", seed, "--prefix", s->name, "--out", d->site_data[i], NULL);
        if (!st)
            printf("      %s: %s, %s contrast: %d labelled, %d unlabelled, %d validation "
                   "volumes\n", s->name, s->profile, s->contrast, p->labelled, p->unlabelled,
                   p->validation);
    }
    return st;
}

/* The initial student every method starts from, and its architecture (with the
 * data's classes) as the network the targets' feature grids are made for. */
static dk_status student_init(dk_demo *d, dk_err *err)
{
    char seed[16], *arch = NULL;
    snprintf(seed, sizeof seed, "%u", d->plan.seed);
    dk_status st = run(d, "student-init", NULL, err, "student", "init", "--config", d->config,
                       "--data", d->site_data[0], "--out", d->init, "--seed", seed, NULL);
    if (!st) st = dk_checkpoint_read_architecture(d->init, &arch, err);
    if (!st) st = write_text(d->network, arch, err);
    free(arch);
    return st;
}

static dk_status stage_teacher(dk_demo *d, dk_err *err)
{
    if (d->teacher_given) {
        snprintf(d->teacher, sizeof d->teacher, "%s", d->teacher_given);
        printf("      teacher: %s (given)\n", d->teacher);
        return access(d->teacher, R_OK) ? dk_err_set(err, DK_EIO, "--teacher '%s': %s",
                                                     d->teacher, strerror(errno))
                                        : DK_OK;
    }
    dk_demo_path(d, d->teacher, "teacher.h5");
    dk_status st = run(d, "teacher", NULL, err, "teacher", "export-default", "--out", d->teacher,
                       NULL);
    if (!st) printf("      teacher: the shipped default (models/teacher-default.md) -> %s\n",
                    d->teacher);
    return st;
}

/* The targets of each distinct site profile, for the demo's student network. */
static dk_status stage_targets(dk_demo *d, dk_err *err)
{
    char passes[16];
    snprintf(passes, sizeof passes, "%d", d->plan.passes);
    for (int i = 0; i < DK_DEMO_SITES; i++) {
        const char *profile = d->plan.sites[i].profile;
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || !strcmp(d->plan.sites[j].profile, profile);
        if (seen) continue;
        char log[64];
        snprintf(log, sizeof log, "precompute-%s", profile);
        dk_status st = run(d, log, NULL, err, "teacher", "precompute", "--teacher", d->teacher,
                           "--data", d->repo, "--profile", profile, "--out", d->store,
                           "--student", d->network, "--passes", passes, "--threads", "2", NULL);
        if (st) return st;
        printf("      targets for %s: %s/%s.h5\n", profile, d->store, profile);
    }
    return DK_OK;
}

/* A token printed once by `dualkd token add` (its stdout). */
static dk_status add_token(dk_demo *d, const char *site, const char *scopes, char *token,
                           size_t cap, dk_err *err)
{
    char out[DK_DEMO_PATH], log[64];
    snprintf(log, sizeof log, "token-%s", site);
    dk_demo_path(d, out, "logs/token-%s.out", site);
    dk_status st = run(d, log, out, err, "token", "add", "--site", site, "--scope", scopes,
                       "--tokens", d->tokens, NULL);
    if (st) return st;
    dk_child_log_tail(out, token, cap);
    token[strcspn(token, "\r\n")] = '\0';
    unlink(out); /* a secret: kept only where it is used */
    if (strncmp(token, "dk_", 3))
        return dk_err_set(err, DK_EIO, "`dualkd token add` printed no token");
    return DK_OK;
}

static dk_status tokens(dk_demo *d, dk_err *err)
{
    char token[128];
    dk_status st = add_token(d, "operator", "federation,federation-admin", token, sizeof token,
                             err);
    if (!st) {
        strcat(token, "\n");
        st = write_text(d->operator_token, token, err);
        if (!st) chmod(d->operator_token, 0600);
    }
    for (int i = 0; !st && i < DK_DEMO_SITES; i++) {
        st = add_token(d, d->plan.sites[i].name, "targets,federation", token, sizeof token, err);
        snprintf(d->site_token_env[i], sizeof d->site_token_env[i], "DUALKD_TOKEN=%s", token);
    }
    return st;
}

/* GET url; the HTTP status, or 0 when nothing answered. */
static long http_status(const char *url)
{
    CURL *c = curl_easy_init();
    if (!c) return 0;
    long code = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

/* Wait for "listening on http://127.0.0.1:PORT" in the log, then for /readyz (every
 * store verified). */
static dk_status await_server(dk_demo *d, dk_err *err)
{
    char tail[4096], ready[128];
    double t0 = dk_clock_seconds();
    while (!d->url[0] && dk_clock_seconds() - t0 < 60) {
        if (!dk_child_running(&d->server, NULL))
            return dk_err_set(err, DK_EIO, "dualkd serve ended at start (log %s)",
                              d->server.log_path);
        dk_child_log_tail(d->server.log_path, tail, sizeof tail);
        const char *at = strstr(tail, "listening on http://");
        int port = 0;
        if (at && sscanf(at, "listening on http://127.0.0.1:%d", &port) == 1 && port > 0)
            snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", port);
        else
            usleep(50 * 1000);
    }
    if (!d->url[0]) return dk_err_set(err, DK_EIO, "dualkd serve did not listen within 60 s");
    snprintf(ready, sizeof ready, "%s/readyz", d->url);
    while (http_status(ready) != 200) {
        if (dk_clock_seconds() - t0 > 300 || !dk_child_running(&d->server, NULL))
            return dk_err_set(err, DK_EIO, "dualkd serve did not become ready (log %s)",
                              d->server.log_path);
        usleep(100 * 1000);
    }
    return DK_OK;
}

static dk_status stage_server(dk_demo *d, dk_err *err)
{
    dk_status st = tokens(d, err);
    if (st) return st;
    char log[DK_DEMO_PATH];
    dk_child_spec s = {.log_path = dk_demo_path(d, log, "logs/serve.log"),
                       .detached = d->keep_server};
    const char *argv[] = {"serve", "--teacher", d->teacher, "--store", d->store, "--tokens",
                          d->tokens, "--federation", d->fed_dir, "--listen", "127.0.0.1:0",
                          "--threads", "1", "--rate", "0", NULL};
    for (int i = 0; argv[i]; i++)
        dk_child_arg(&s, argv[i]);
    st = dk_child_start(&s, &d->server, err);
    if (!st) st = await_server(d, err);
    if (!st) printf("      dualkd serve: %s (pid %d, log %s)\n", d->url, (int)d->server.pid, log);
    return st;
}

static dk_status prepare(dk_demo *d, dk_err *err)
{
    char buf[4096], path[DK_DEMO_PATH];
    dk_status st = dk_cli_make_dirs(d->out, err); /* the default runs/demo: runs/ too */
    if (!st) st = dk_cli_make_dirs(dk_demo_path(d, path, "logs"), err);
    if (!st) st = dk_cli_make_dirs(dk_demo_path(d, path, "data"), err);
    if (!st) st = dk_cli_make_dirs(dk_demo_path(d, d->store, "store"), err);
    if (!st) st = dk_cli_make_dirs(dk_demo_path(d, d->fed_dir, "federation"), err);
    dk_demo_path(d, d->repo, "data/repository.h5");
    dk_demo_path(d, d->tokens, "tokens.json");
    dk_demo_path(d, d->operator_token, "operator.token");
    dk_demo_path(d, d->config, "student.json");
    dk_demo_path(d, d->network, "student-network.json");
    dk_demo_path(d, d->init, "student-init.h5");
    for (int i = 0; i < DK_DEMO_SITES; i++)
        dk_demo_path(d, d->site_data[i], "data/%s.h5", d->plan.sites[i].name);
    if (!st && !dk_demo_student_config(&d->plan, buf, sizeof buf))
        st = dk_err_set(err, DK_EINVAL, "student config does not fit");
    if (!st) st = write_text(d->config, buf, err);
    return st;
}

/* An existing non-empty --out would mix two runs. */
static dk_status check_out(const char *out, dk_err *err)
{
    struct stat sb;
    if (stat(out, &sb)) return DK_OK;
    if (!S_ISDIR(sb.st_mode))
        return dk_err_set(err, DK_EINVAL, "--out '%s' exists and is not a directory", out);
    if (rmdir(out) == 0 || errno == ENOENT) return DK_OK;
    return dk_err_set(err, DK_EINVAL, "--out '%s' is not empty: give a new folder (or remove it)",
                      out);
}

static dk_status stages(dk_demo *d, dk_err *err)
{
    static const char *const names[] = {
        "data: a repository and three sites", "teacher and its targets per site profile",
        "dualkd serve on a free loopback port", "(a) local supervised-only students",
        "(b) supervised-only FedAvg", "(c) dual-distillation FedAvg", "evaluation"};
    d->stages = 8;
    for (int s = 0; s < 7; s++)
        d->planned_total += stage_cost(d, s);
    stage_begin(d, names[0]);
    dk_status st = prepare(d, err);
    if (!st) st = stage_data(d, err);
    if (!st) st = student_init(d, err);
    stage_end(d, 0);
    if (!st) stage_begin(d, names[1]);
    if (!st) st = stage_teacher(d, err);
    if (!st) st = stage_targets(d, err);
    stage_end(d, 1);
    if (!st) stage_begin(d, names[2]);
    if (!st) st = stage_server(d, err);
    stage_end(d, 2);
    for (int m = 1; !st && m < DK_DEMO_METHODS; m++) {
        stage_begin(d, names[2 + m]);
        double t0 = dk_clock_seconds();
        st = dk_demo_train(d, m, err);
        d->method_seconds[m] = dk_clock_seconds() - t0;
        stage_end(d, 2 + m);
    }
    if (!st) stage_begin(d, names[6]);
    for (int m = 0; !st && m < DK_DEMO_METHODS; m++)
        st = dk_demo_evaluate(d, m, err);
    stage_end(d, 6);
    if (!st) stage_begin(d, "results: table, results.json, report/index.html");
    if (!st) st = dk_demo_results(d, err);
    return st;
}

int dk_cmd_demo(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress in order with the children's messages */
    dk_demo d = {.out = "runs/demo"};
    dk_demo_size size = DK_DEMO_DEFAULT;
    long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) size = DK_DEMO_QUICK;
        else if (!strcmp(a, "--tiny")) size = DK_DEMO_TINY;
        else if (!strcmp(a, "--keep-server")) d.keep_server = true;
        else if (v && !strcmp(a, "--out")) d.out = argv[++i];
        else if (v && !strcmp(a, "--teacher")) d.teacher_given = argv[++i];
        else if (v && !strcmp(a, "--seed")) {
            if (!dk_cli_parse_int(argv[++i], 0, 1LL << 31, &seed)) {
                fprintf(stderr, "dualkd demo: --seed '%s': expected 0..2^31\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "dualkd demo: unknown option or missing value: '%s'\n%s", a, usage);
            return 2;
        }
    }
    d.plan = dk_demo_plan_make(size, (unsigned)seed);
    d.started = dk_clock_seconds();
    dk_err err = {0};
    dk_status st = check_out(d.out, &err);
    if (!st) st = stages(&d, &err);
    if (d.keep_server && !st && d.server.pid > 0)
        printf("dualkd serve stays up at %s (pid %d): stop it with kill %d\n", d.url,
               (int)d.server.pid, (int)d.server.pid);
    else
        dk_child_stop(&d.server, 30);
    if (st) return dk_cli_fail("demo", err.msg);
    double total = dk_clock_seconds() - d.started;
    printf("demo: done in %d:%02d; open %s/report/index.html\n", (int)total / 60, (int)total % 60,
           d.out);
    return 0;
}
