/* cmd_student_train.c: `dualkd student train`: argv, the config file, the target
 * store, and the progress display. The training itself is student/train.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"
#include "distill/clock.h"
#include "student/train.h"


static const char usage[] =
    "usage: dualkd student train --store STORE.h5 --data SITE.h5 --out STUDENT.h5\n"
    "                            [--config FILE.json] [--site-targets STORE.h5]\n"
    "                            [--supervised-only] [--no-response]\n"
    "                            [--no-feature] [--resume] [--threads N] [--seed S]\n"
    "                            [--print-config]\n";

static void print_help(void)
{
    printf("%s\n"
           "Trains a student U-Net at a site: Dice + CE on the site's labelled volumes plus,\n"
           "ramped up, response and feature distillation on transfer samples from a target\n"
           "store (`dualkd teacher precompute`). Validates per-class Dice on the site's\n"
           "\"validation\" volumes every epoch and keeps the best checkpoint (the U-Net only)\n"
           "at STUDENT.h5; STUDENT.h5.last.h5 (with the site's adapter and optimiser state,\n"
           "for --resume) and STUDENT.h5.runlog.jsonl beside it. See docs/student.md.\n\n"
           "  --store FILE       a target store made for this site's profile (pulling the\n"
           "                     targets from `dualkd serve` with --server/--token comes next)\n"
           "  --site-targets F   a store of the teacher's targets for the site's own volumes\n"
           "                     (`dualkd teacher precompute --data SITE.h5` on premises, same\n"
           "                     teacher, profile and student): drawn from with the --store's\n"
           "  --data FILE        the site's dataset (labelled, validation volumes)\n"
           "  --out FILE         the best checkpoint\n"
           "  --config FILE      training config JSON over the defaults (docs/student.md)\n"
           "  --supervised-only  Dice + CE only (no store needed)\n"
           "  --no-response      switch off response distillation\n"
           "  --no-feature       switch off feature distillation (any student architecture)\n"
           "  --resume           continue the interrupted run from STUDENT.h5.last.h5\n"
           "  --threads N        BLAS threads (default 2)\n"
           "  --seed S           weights and sampling seed (default 1)\n"
           "  --print-config     print the effective config as JSON and exit\n",
           usage);
}

typedef struct options {
    const char *store, *site_targets, *data, *out, *config;
    bool supervised_only, no_response, no_feature, resume, print_config, seed_given;
    long threads;
    unsigned long long seed;
} options;

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
    else if (!strcmp(a, "--threads")) {
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
    *o = (options){.threads = 2, .seed = 1};
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
    if (!o->print_config && (!o->data || !o->out || (!o->store && !o->supervised_only))) {
        fprintf(stderr, "dualkd student train: --data, --out and --store (or --supervised-only) "
                        "are required\n%s", usage);
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

/* The store, joined with the site's own targets when given. */
static int open_sources(const options *o, dk_target_source src[3], dk_target_source **use)
{
    dk_err err = {0};
    *use = NULL;
    if (!o->store || o->supervised_only) return 0;
    if (dk_target_source_open_store(o->store, &src[0], &err))
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
    if (open_sources(o, src, &use)) return 1;
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
    return train(&o, &cfg);
}
