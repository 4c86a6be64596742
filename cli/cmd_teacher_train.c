/* cmd_teacher_train.c: `dualkd teacher train`: argv, the config file, and the
 * progress display (\r updates on a terminal, whole lines at a modest rate in a
 * log file). The training itself is teacher/train.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"
#include "distill/clock.h"
#include "teacher/train.h"

#define LOG_INTERVAL_S 15.0 /* between progress lines when stderr is not a terminal */
#define TTY_INTERVAL_S 0.2

static const char usage[] =
    "usage: dualkd teacher train --data REPO.h5 --out TEACHER.h5 [--config FILE.json]\n"
    "                            [--resume] [--threads N] [--seed S] [--print-config]\n";

static void print_help(void)
{
    printf("%s\n"
           "Trains the teacher U-Net on the repository dataset's \"train\"/\"labelled\" volumes,\n"
           "validates per-class Dice on its \"validation\" volumes every epoch, and keeps the\n"
           "best checkpoint at TEACHER.h5. Beside it: TEACHER.h5.last.h5 (saved every epoch\n"
           "and every checkpoint_every steps, for --resume) and TEACHER.h5.runlog.jsonl\n"
           "(one JSON line per epoch).\n\n"
           "  --data FILE      the repository dataset (HDF5, `dualkd data synth`/`data import`)\n"
           "  --out FILE       the best checkpoint\n"
           "  --config FILE    training config JSON (fields override the defaults;\n"
           "                   see docs/teacher.md); default: the built-in config\n"
           "  --resume         continue the interrupted run from TEACHER.h5.last.h5\n"
           "  --threads N      BLAS threads (default 2)\n"
           "  --seed S         weights and sampling seed (default 1)\n"
           "  --print-config   print the effective config as JSON and exit\n",
           usage);
}

typedef struct display {
    bool tty;
    double last;       /* when the last progress output was made */
    bool line_pending; /* a \r line is on screen without its newline */
} display;

static void format_eta(double s, char *buf, size_t cap)
{
    long v = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (v >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", v / 60, v % 60);
}

static void on_progress(const dk_teacher_progress *p, void *ctx)
{
    display *d = ctx;
    double now = dk_clock_seconds();
    bool last = p->step == p->steps;
    if (!last && now - d->last < (d->tty ? TTY_INTERVAL_S : LOG_INTERVAL_S)) return;
    d->last = now;
    char eta[32];
    format_eta(p->eta_s, eta, sizeof eta);
    fprintf(stderr, "%sstep %ld/%ld  epoch %d/%d  loss %.4f  lr %.2e  %.2f steps/s  ETA %s%s",
            d->tty ? "\r" : "", p->step, p->steps, p->epoch, p->epochs, p->loss, p->lr,
            p->steps_per_s, eta, d->tty ? "\033[K" : "\n");
    d->line_pending = d->tty;
    fflush(stderr);
}

static void on_epoch(const dk_teacher_epoch *e, const dk_classes *classes, void *ctx)
{
    display *d = ctx;
    if (d->line_pending) fputc('\n', stderr);
    d->line_pending = false;
    fprintf(stderr, "epoch %d (step %ld, %.0f s): train loss %.4f; validation Dice", e->epoch,
            e->step, e->seconds, e->train_loss);
    for (int c = 1; c < e->classes; c++)
        fprintf(stderr, " %s %.3f", classes->names[c], e->dice[c]);
    fprintf(stderr, "; mean %.3f%s\n", e->mean_dice, e->best ? " (best so far: saved)" : "");
    fflush(stderr);
}

typedef struct options {
    const char *data, *out, *config;
    bool resume, print_config;
    long long threads, seed;
    bool seed_given;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.threads = 2, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--data") || !strcmp(a, "--out") || !strcmp(a, "--config") ||
                     !strcmp(a, "--threads") || !strcmp(a, "--seed");
        if (takes && !v) {
            fprintf(stderr, "dualkd teacher train: %s needs a value\n%s", a, usage);
            return 2;
        }
        if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--config"))
            o->config = v;
        else if (!strcmp(a, "--resume"))
            o->resume = true;
        else if (!strcmp(a, "--print-config"))
            o->print_config = true;
        else if (!strcmp(a, "--threads") && !dk_cli_parse_int(v, 1, 256, &o->threads)) {
            fprintf(stderr, "dualkd teacher train: --threads '%s': expected 1..256\n", v);
            return 2;
        } else if (!strcmp(a, "--seed") && !dk_cli_parse_int(v, 0, 1LL << 53, &o->seed)) {
            fprintf(stderr, "dualkd teacher train: --seed '%s': expected 0..2^53\n", v);
            return 2;
        } else if (!takes) {
            fprintf(stderr, "dualkd teacher train: unknown option '%s'\n%s", a, usage);
            return 2;
        }
        o->seed_given |= !strcmp(a, "--seed");
        i += takes;
    }
    if (!o->print_config && (!o->data || !o->out)) {
        fprintf(stderr, "dualkd teacher train: --data and --out are required\n%s", usage);
        return 2;
    }
    return 0;
}

static int load_config(const options *o, dk_teacher_config *cfg)
{
    dk_err err = {0};
    *cfg = dk_teacher_config_default();
    if (!o->config) return 0;
    char *text = dk_cli_read_text(o->config, "config", &err);
    if (!text) return dk_cli_fail("teacher train", err.msg);
    dk_status st = dk_teacher_config_from_json(text, cfg, &err);
    free(text);
    if (st) {
        dk_err_prefix(&err, st, "%s", o->config);
        return dk_cli_fail("teacher train", err.msg);
    }
    return 0;
}

int dk_cmd_teacher_train(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    options o;
    int rc = parse_args(argc, argv, &o);
    dk_teacher_config cfg;
    if (rc || (rc = load_config(&o, &cfg))) return rc;
    if (o.print_config) {
        char *text = dk_teacher_config_to_json(&cfg);
        printf("%s\n", text ? text : "{}");
        free(text);
        return 0;
    }
    dk_blas_set_threads((int)o.threads);
    display d = {.tty = isatty(STDERR_FILENO) == 1, .last = -1e9};
    dk_teacher_run run = {.data_path = o.data,
                          .out_path = o.out,
                          .config = cfg,
                          .seed = o.seed,
                          .seed_given = o.seed_given,
                          .resume = o.resume,
                          .callbacks = {on_progress, on_epoch, &d}};
    dk_err err = {0};
    double t0 = dk_clock_seconds();
    if (dk_teacher_train(&run, &err)) {
        if (d.line_pending) fputc('\n', stderr);
        return dk_cli_fail("teacher train", err.msg);
    }
    if (d.line_pending) fputc('\n', stderr);
    fprintf(stderr, "teacher train: done in %.1f s; best checkpoint %s\n", dk_clock_seconds() - t0,
            o.out);
    return 0;
}
