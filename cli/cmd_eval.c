/* cmd_eval.c: `dualkd eval`: argv, a progress line per volume, and the report as a
 * table or as JSON. The evaluation itself is student/evaluate.c; the metrics are
 * datasets/metrics.c (the ones POST /v1/evaluate reports). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"
#include "student/evaluate.h"

static const char usage[] =
    "usage: dualkd eval --model CHECKPOINT.h5 --data SITE.h5 [--split S] [--json]\n"
    "                   [--largest-component] [--export DIR] [--overlap F] [--tile Z,Y,X]\n"
    "                   [--resample] [--threads N]\n"
    "       dualkd eval --pred LABELS.h5|DIR --data SITE.h5 [--split S] [--json] ...\n";

static void print_help(void)
{
    printf("%s\n"
           "Per-class Dice, HD95 and ASSD (millimetres, on each volume's own grid) of a\n"
           "model's predictions, or of given label maps, against the labels of SITE.h5;\n"
           "per volume and as mean +- sd over volumes. HD95 is the 95th percentile of the\n"
           "pooled symmetric surface distances (medpy's hd95), ASSD the mean of the two\n"
           "directed mean surface distances. A class missing from the prediction (or the\n"
           "truth) has no surface distance: 'inf' in the table, null in JSON, left out of\n"
           "the mean (n says how many volumes it used). See docs/eval.md.\n\n"
           "  --model FILE         a student or teacher checkpoint; runs a Gaussian-weighted\n"
           "                       sliding window over each z-scored volume\n"
           "  --pred FILE|DIR      label maps instead: a dataset .h5 (volumes matched by id)\n"
           "                       or a directory of <id>.nii.gz / <id>.nii\n"
           "  --data FILE          the dataset with the ground truth\n"
           "  --split S            volumes of this split (default validation; all = every\n"
           "                       labelled volume)\n"
           "  --json               print the report as JSON on stdout\n"
           "  --largest-component  keep only the largest connected component per class\n"
           "  --export DIR         write the predictions as DIR/<id>.nii.gz\n"
           "  --overlap F          sliding-window tile overlap in [0, 0.95) (default 0.5)\n"
           "  --tile Z,Y,X         tile shape (default: the checkpoint's training patch)\n"
           "  --resample           zero-shot at another resolution: segment each volume\n"
           "                       resampled to the model's training spacing (its teacher\n"
           "                       card), bring the probabilities back to the volume's grid\n"
           "  --threads N          BLAS threads (default 2)\n",
           usage);
}

typedef struct options {
    dk_eval_options eval;
    bool json;
    int threads;
} options;

static int bad(const char *opt, const char *v, const char *want)
{
    fprintf(stderr, "dualkd eval: %s '%s': expected %s\n", opt, v, want);
    return 2;
}

static int parse_value(options *o, const char *a, const char *v)
{
    dk_eval_options *e = &o->eval;
    double x;
    long long n;
    if (!strcmp(a, "--model")) e->model_path = v;
    else if (!strcmp(a, "--pred")) e->pred_path = v;
    else if (!strcmp(a, "--data")) e->data_path = v;
    else if (!strcmp(a, "--split")) e->split = v;
    else if (!strcmp(a, "--export")) e->export_dir = v;
    else if (!strcmp(a, "--overlap")) {
        if (!dk_cli_parse_double(v, 0, 0.949999, &x)) return bad(a, v, "a number in [0, 0.95)");
        e->overlap = (float)x;
    } else if (!strcmp(a, "--tile")) {
        if (sscanf(v, "%d,%d,%d%c", &e->tile[0], &e->tile[1], &e->tile[2], (char[2]){0}) != 3 ||
            e->tile[0] < 1 || e->tile[1] < 1 || e->tile[2] < 1 || e->tile[0] > 1024 ||
            e->tile[1] > 1024 || e->tile[2] > 1024)
            return bad(a, v, "Z,Y,X with each in 1..1024");
    } else if (!strcmp(a, "--threads")) {
        if (!dk_cli_parse_int(v, 1, 256, &n)) return bad(a, v, "1..256");
        o->threads = (int)n;
    } else
        return -1;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.eval = dk_eval_options_default(), .threads = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--largest-component")) o->eval.largest_component = true;
        else if (!strcmp(a, "--resample")) o->eval.resample = true;
        else if (i + 1 >= argc) {
            fprintf(stderr, "dualkd eval: unknown option or missing value: '%s'\n%s", a, usage);
            return 2;
        } else {
            int rc = parse_value(o, a, argv[++i]);
            if (rc < 0) fprintf(stderr, "dualkd eval: unknown option '%s'\n%s", a, usage);
            if (rc) return 2;
        }
    }
    if (!o->eval.data_path || !o->eval.model_path == !o->eval.pred_path) {
        fprintf(stderr, "dualkd eval: --data and one of --model or --pred are required\n%s", usage);
        return 2;
    }
    return 0;
}

static void on_volume(const dk_eval_volume *v, int done, int total, void *ctx)
{
    fprintf(stderr, "eval: %d/%d %s (%dx%dx%d) %.1f s\n", done, total, v->id, v->dims[0],
            v->dims[1], v->dims[2], v->seconds);
}

static void cell(double x, const char *fmt)
{
    if (isfinite(x)) printf(fmt, x);
    else printf("%10s", isinf(x) ? "inf" : "nan");
}

static void print_table(const dk_eval_result *r)
{
    printf("%-16s %-20s %8s %10s %10s\n", "volume", "class", "Dice", "HD95 mm", "ASSD mm");
    for (int i = 0; i < r->count; i++)
        for (int c = 1; c < r->classes.count; c++) {
            const dk_class_metrics *m = &r->volumes[i].classes[c];
            printf("%-16s %-20s %8.4f ", r->volumes[i].id, r->classes.names[c], m->dice);
            cell(m->hd95, "%10.3f");
            putchar(' ');
            cell(m->assd, "%10.3f");
            putchar('\n');
        }
    printf("\nmean +- sd over %d volumes (n: volumes with a finite value)\n", r->count);
    for (int c = 1; c < r->classes.count; c++) {
        double x[3][r->count], mean[3], sd[3];
        int n[3];
        for (int i = 0; i < r->count; i++) {
            x[0][i] = r->volumes[i].classes[c].dice;
            x[1][i] = r->volumes[i].classes[c].hd95;
            x[2][i] = r->volumes[i].classes[c].assd;
        }
        for (int k = 0; k < 3; k++)
            dk_metrics_mean_sd(x[k], r->count, &mean[k], &sd[k], &n[k]);
        printf("%-20s Dice %.4f +- %.4f   HD95 %.3f +- %.3f mm (n %d)   ASSD %.3f +- %.3f mm "
               "(n %d)\n",
               r->classes.names[c], mean[0], sd[0], mean[1], sd[1], n[1], mean[2], sd[2], n[2]);
    }
}

int dk_cmd_eval(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    dk_blas_set_threads(o.threads);
    o.eval.progress = on_volume;
    dk_eval_result r;
    dk_err err = {0};
    if (dk_eval_run(&o.eval, &r, &err)) {
        dk_eval_result_release(&r);
        return dk_cli_fail("eval", err.msg);
    }
    if (o.json) {
        json_t *j = dk_eval_result_json(&r, &o.eval);
        char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
        json_decref(j);
        if (!text) {
            dk_eval_result_release(&r);
            return dk_cli_fail("eval", "no memory for the JSON report");
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_table(&r);
    }
    dk_eval_result_release(&r);
    return 0;
}
