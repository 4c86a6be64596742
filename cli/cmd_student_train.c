/* cmd_student_train.c: `dualkd student train`: argv, the config file, the target
 * store, and the progress display. The training itself is student/train.c; with
 * --federate, the site's rounds are student/fed_site.c, shown by
 * cmd_student_federate.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"
#include "distill/clock.h"
#include "cli/student_train.h"
#include "student/pull.h"
#include "student/train.h"


static const char usage[] =
    "usage: dualkd student train (--store STORE.h5 | --server URL --token T --profile P)\n"
    "                            --data SITE.h5 --out STUDENT.h5 [--cache DIR]\n"
    "                            [--config FILE.json] [--site-targets STORE.h5]\n"
    "                            [--supervised-only] [--no-response]\n"
    "                            [--no-feature] [--resume] [--threads N] [--seed S]\n"
    "                            [--print-config]\n"
    "       dualkd student train --federate NAME --server URL --token T --data SITE.h5\n"
    "                            --out STUDENT.h5 [--profile P | --store STORE.h5]\n"
    "                            [--local-steps N] [--update-dtype f2|f4] [--global-dtype f2|f4]\n"
    "                            [--update-compress none|deflate]\n"
    "                            [--supervised-only] [--no-response] [--no-feature]\n"
    "                            [--config FILE.json] [--threads N] [--seed S]\n";

static void print_help(void)
{
    printf("%s\n"
           "Trains a student U-Net at a site: Dice + CE on the site's labelled volumes plus,\n"
           "ramped up, response and feature distillation on transfer samples from a target\n"
           "store (`dualkd teacher precompute`). Validates per-class Dice on the site's\n"
           "\"validation\" volumes every epoch and keeps the best checkpoint (the U-Net only)\n"
           "at STUDENT.h5; STUDENT.h5.last.h5 (with the site's adapter and optimiser state,\n"
           "for --resume) and STUDENT.h5.runlog.jsonl beside it. See docs/student.md.\n\n"
           "  --store FILE       a target store made for this site's profile (offline)\n"
           "  --server URL       or pull the targets from `dualkd serve` at URL (http/https):\n"
           "                     model card, catalogue and every sample's input, response,\n"
           "                     uncertainty and features as .npy into a local cache; a\n"
           "                     second run downloads only what changed, an interrupted one\n"
           "                     resumes its partial downloads\n"
           "  --token T          the site's bearer token (default: $DUALKD_TOKEN); never logged\n"
           "  --profile P        the site's resolution profile on the server\n"
           "  --cache DIR        where pulled targets are kept (default STUDENT.h5.cache)\n"
           "  --site-targets F   a store of the teacher's targets for the site's own volumes\n"
           "                     (`dualkd teacher precompute --data SITE.h5` on premises, same\n"
           "                     teacher, profile and student): drawn from with the targets above\n"
           "  --data FILE        the site's dataset (labelled, validation volumes)\n"
           "  --out FILE         the best checkpoint\n"
           "  --config FILE      training config JSON over the defaults (docs/student.md)\n"
           "  --supervised-only  Dice + CE only (no store needed)\n"
           "  --no-response      switch off response distillation\n"
           "  --no-feature       switch off feature distillation (any student architecture)\n"
           "  --resume           continue the interrupted run from STUDENT.h5.last.h5\n"
           "  --threads N        BLAS threads (default 2)\n"
           "  --seed S           weights and sampling seed (default 1)\n"
           "  --print-config     print the effective config as JSON and exit\n\n"
           "Federated (docs/student.md, \"Federated training\"): with --federate NAME the site\n"
           "joins federation NAME on the server at --server and, each round, downloads the\n"
           "global student (float16), measures its validation Dice, trains --local-steps steps\n"
           "from it with the loss above (targets pulled once for --profile, or --store) and sends\n"
           "the weight delta (float16, a deflated .npz) with its labelled-volume count; then waits for the next\n"
           "round. At the end STUDENT.h5 is the final global model (float32), with\n"
           "STUDENT.h5.runlog.jsonl (one line per round) and STUDENT.h5.fedsite.h5 (the site's\n"
           "adapter, never sent) beside it. Killed and started again with the same command, it\n"
           "continues where the federation is.\n"
           "  --federate NAME    take part in federation NAME (`dualkd fed create`)\n"
           "  --local-steps N    optimiser steps per round (default 40)\n"
           "  --update-dtype D   the delta sent: f2 (float16, default) or f4 (float32)\n"
           "  --update-compress C  the delta's .npz: deflate (default, np.savez_compressed) or none\n"
           "  --global-dtype D   the global fetched each round: f2 (default) or f4\n",
           usage);
}

static bool flag(const char *a, options *o)
{
    bool *f = !strcmp(a, "--supervised-only") ? &o->supervised_only
              : !strcmp(a, "--no-response")   ? &o->no_response
              : !strcmp(a, "--no-feature")    ? &o->no_feature
              : !strcmp(a, "--resume")        ? &o->resume
              : !strcmp(a, "--print-config")  ? &o->print_config
                                              : NULL;
    if (f) *f = true;
    return f != NULL;
}

static int value(const char *a, const char *v, options *o)
{
    long long n;
    if (!strcmp(a, "--store")) o->store = v;
    else if (!strcmp(a, "--site-targets")) o->site_targets = v;
    else if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--config")) o->config = v;
    else if (!strcmp(a, "--server")) o->server = v;
    else if (!strcmp(a, "--token")) o->token = v;
    else if (!strcmp(a, "--profile")) o->profile = v;
    else if (!strcmp(a, "--cache")) o->cache = v;
    else if (!strcmp(a, "--federate")) o->federate = v;
    else if (!strcmp(a, "--update-dtype") || !strcmp(a, "--global-dtype")) {
        if (strcmp(v, "f2") && strcmp(v, "f4")) {
            fprintf(stderr, "dualkd student train: %s '%s': expected f2 or f4\n", a, v);
            return 2;
        }
        *(a[2] == 'u' ? &o->update_f4 : &o->global_f4) = !strcmp(v, "f4");
    } else if (!strcmp(a, "--update-compress")) {
        if (strcmp(v, "none") && strcmp(v, "deflate")) {
            fprintf(stderr, "dualkd student train: %s '%s': expected none or deflate\n", a, v);
            return 2;
        }
        o->update_stored = !strcmp(v, "none");
    } else if (!strcmp(a, "--local-steps")) {
        if (!dk_cli_parse_int(v, 1, 1000000, &n)) {
            fprintf(stderr, "dualkd student train: --local-steps '%s': expected 1..1000000\n", v);
            return 2;
        }
        o->local_steps = (long)n;
    } else if (!strcmp(a, "--threads")) {
        if (!dk_cli_parse_int(v, 1, 256, &n)) {
            fprintf(stderr, "dualkd student train: --threads '%s': expected 1..256\n", v);
            return 2;
        }
        o->threads = (int)n;
    } else if (!strcmp(a, "--seed")) {
        if (!dk_cli_parse_int(v, 0, 1LL << 53, &n)) {
            fprintf(stderr, "dualkd student train: --seed '%s': expected 0..2^53\n", v);
            return 2;
        }
        o->seed = (unsigned long long)n;
        o->seed_given = true;
    } else {
        fprintf(stderr, "dualkd student train: unknown option '%s'\n%s", a, usage);
        return 2;
    }
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.threads = 2, .seed = 1, .local_steps = 40};
    for (int i = 1; i < argc; i++) {
        if (flag(argv[i], o)) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "dualkd student train: '%s' is unknown or needs a value\n%s", argv[i],
                    usage);
            return 2;
        }
        int rc = value(argv[i], argv[i + 1], o);
        if (rc) return rc;
        i++;
    }
    if (!o->token) o->token = getenv("DUALKD_TOKEN");
    if (o->print_config) return 0;
    if (o->federate) return dk_student_federate_check(o);
    if (!o->data || !o->out || (!o->store && !o->server && !o->supervised_only)) {
        fprintf(stderr, "dualkd student train: --data, --out and --store or --server (or "
                        "--supervised-only) are required\n%s", usage);
        return 2;
    }
    if (o->store && o->server) {
        fprintf(stderr, "dualkd student train: give --store or --server, not both\n");
        return 2;
    }
    if (o->server && (!o->token || !o->profile)) {
        fprintf(stderr, "dualkd student train: --server needs --token (or $DUALKD_TOKEN) and "
                        "--profile\n");
        return 2;
    }
    return 0;
}

static int load_config(const char *path, dk_student_config *cfg)
{
    *cfg = dk_student_config_default();
    if (!path) return 0;
    dk_err err = {0};
    char *text = dk_cli_read_text(path, "student config", &err);
    if (!text) return dk_cli_fail("student train", err.msg);
    dk_status st = dk_student_config_from_json(text, cfg, &err);
    free(text);
    if (st) {
        dk_err_prefix(&err, st, "%s", path);
        return dk_cli_fail("student train", err.msg);
    }
    return 0;
}

typedef struct display {
    bool tty, pending;
    double last;
} display;

static void on_progress(const dk_student_progress *p, void *ctx)
{
    display *d = ctx;
    double now = dk_clock_seconds();
    if (p->step != p->steps && now - d->last < (d->tty ? 0.2 : 15.0)) return;
    d->last = now;
    fprintf(stderr,
            "%sstep %ld/%ld  epoch %d/%d  loss %.4f (sup %.4f resp %.4f feat %.4f, alpha %.3f "
            "beta %.3f)  lr %.2e  %.2f steps/s  ETA %.0f s%s",
            d->tty ? "\r" : "", p->step, p->steps, p->epoch, p->epochs, p->loss, p->sup,
            p->response, p->feature, p->alpha, p->beta, p->lr, p->steps_per_s, p->eta_s,
            d->tty ? "\033[K" : "\n");
    d->pending = d->tty;
    fflush(stderr);
}

static void on_epoch(const dk_student_epoch *e, const dk_classes *classes, void *ctx)
{
    display *d = ctx;
    if (d->pending) fputc('\n', stderr);
    d->pending = false;
    fprintf(stderr, "epoch %d (step %ld, %.0f s): loss %.4f; validation Dice", e->epoch, e->step,
            e->seconds, e->loss);
    for (int c = 1; c < e->classes; c++)
        fprintf(stderr, " %s %.3f", classes->names[c], e->dice[c]);
    fprintf(stderr, "; mean %.3f%s\n", e->mean_dice, e->best ? " (best so far: saved)" : "");
}

typedef struct pull_display {
    bool tty;
    double last;
} pull_display;

static void on_pull(const dk_pull_progress *p, void *ctx)
{
    pull_display *d = ctx;
    bool end = p->arrays_done == p->arrays_total;
    if (p->bytes_total == 0) return; /* all cached: the summary line says so */
    if (!end && p->seconds - d->last < (d->tty ? 0.2 : 10.0)) return;
    d->last = p->seconds;
    double mb = p->bytes / 1e6, total = p->bytes_total / 1e6;
    double rate = mb / (p->seconds > 1e-6 ? p->seconds : 1e-6);
    fprintf(stderr, "%spull: %.1f/%.1f MB  %.1f MB/s  ETA %.0f s  (arrays %d/%d)%s",
            d->tty ? "\r" : "", mb, total, rate, rate > 0 ? (total - mb) / rate : 0.0,
            p->arrays_done, p->arrays_total, d->tty ? "\033[K" : "\n");
}

/* Pull the profile's targets into the cache and open them as src. */
static int pull(const options *o, dk_target_source *src)
{
    char cache[4200];
    snprintf(cache, sizeof cache, "%s", o->cache ? o->cache : "");
    if (!o->cache) snprintf(cache, sizeof cache, "%.4000s.cache", o->out);
    dk_err err = {0};
    pull_display d = {.tty = isatty(STDERR_FILENO) == 1, .last = -1e9};
    dk_pull_options po = {.server = o->server, .profile = o->profile, .cache_dir = cache,
                          .fetch = dk_fetch_options_default(), .progress = on_pull, .ctx = &d};
    po.fetch.token = o->token;
    dk_pull_result r;
    dk_status st = dk_fetch_global_init(&err);
    if (!st) st = dk_pull(&po, &r, &err);
    dk_fetch_global_cleanup();
    if (d.tty) fputc('\n', stderr);
    if (st) return dk_cli_fail("student train: pull", err.msg);
    fprintf(stderr, "pull: %d samples (catalogue: %d page%s, %d unchanged), %d arrays: %d "
            "downloaded (%d resumed), %d from the cache; %.1f MB in %.1f s (%.1f MB/s)%s\n",
            r.samples, r.pages, r.pages == 1 ? "" : "s", r.pages_cached, r.arrays, r.downloaded,
            r.resumed, r.cached, r.bytes / 1e6, r.seconds, r.bytes / 1e6 / (r.seconds > 1e-6 ? r.seconds : 1e-6),
            r.downloaded ? "" : "; nothing new to download");
    if (dk_target_source_open_pulled(cache, o->profile, src, &err))
        return dk_cli_fail("student train", err.msg);
    return 0;
}

/* The store (or the pulled targets), joined with the site's own targets when given. */
int dk_student_open_sources(const options *o, dk_target_source src[3], dk_target_source **use)
{
    dk_err err = {0};
    *use = NULL;
    if ((!o->store && !o->server) || o->supervised_only) return 0;
    if (!o->store && pull(o, &src[0])) return 1;
    if (o->store && dk_target_source_open_store(o->store, &src[0], &err))
        return dk_cli_fail("student train", err.msg);
    *use = &src[0];
    if (!o->site_targets) return 0;
    if (dk_target_source_open_store(o->site_targets, &src[1], &err) ||
        dk_target_source_union(&src[0], &src[1], &src[2], &err)) {
        dk_target_source_close(&src[1]);
        dk_target_source_close(&src[0]);
        return dk_cli_fail("student train", err.msg);
    }
    *use = &src[2];
    return 0;
}

static int train(const options *o, const dk_student_config *cfg)
{
    dk_err err = {0};
    dk_target_source src[3], *use;
    memset(src, 0, sizeof src);
    if (dk_student_open_sources(o, src, &use)) return 1;
    display d = {.tty = isatty(STDERR_FILENO) == 1, .last = -1e9};
    dk_student_run run = {.data_path = o->data, .source = use,
                          .out_path = o->out, .config = *cfg,
                          .supervised_only = o->supervised_only, .no_response = o->no_response,
                          .no_feature = o->no_feature, .seed = o->seed,
                          .seed_given = o->seed_given, .resume = o->resume,
                          .callbacks = {on_progress, on_epoch, &d}};
    double t0 = dk_clock_seconds();
    dk_status st = dk_student_train(&run, &err);
    if (d.pending) fputc('\n', stderr);
    for (int i = 2; i >= 0; i--)
        dk_target_source_close(&src[i]);
    if (st) return dk_cli_fail("student train", err.msg);
    fprintf(stderr, "student train: done in %.1f s; best checkpoint %s\n", dk_clock_seconds() - t0, o->out);
    return 0;
}

int dk_cmd_student_train(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    options o;
    dk_student_config cfg;
    int rc = parse_args(argc, argv, &o);
    if (rc || (rc = load_config(o.config, &cfg))) return rc;
    if (o.print_config) {
        char *text = dk_student_config_to_json(&cfg);
        printf("%s\n", text ? text : "{}");
        free(text);
        return 0;
    }
    dk_blas_set_threads((int)o.threads);
    return o.federate ? dk_student_federate(&o, &cfg) : train(&o, &cfg);
}
