/* demo_results.c: what `dualkd demo` measured (demo.h): each evaluation's JSON
 * (`dualkd eval --json`) and each site's run log become results.json (the schema is
 * in docs/demo.md), the table on the terminal and the verdict sentence. The report
 * folder is drawn from results.json alone. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/demo.h"
#include "datasets/volume.h"
#include "distill/clock.h"
#include "distill/unet_checkpoint.h"
#include "report/report.h"

#ifndef DUALKD_VERSION
#define DUALKD_VERSION "dev"
#endif

static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* summary.<class>.<metric>.mean of an eval JSON, NaN when absent or null. */
static double summary_mean(json_t *eval, const char *cls, const char *metric)
{
    json_t *v = json_object_get(
        json_object_get(json_object_get(json_object_get(eval, "summary"), cls), metric), "mean");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The run log's records, one JSON object per line (NULL when missing). */
static json_t *read_runlog(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    json_t *records = json_array();
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        json_t *r = json_loads(line, 0, NULL);
        if (json_is_object(r)) json_array_append_new(records, r);
        else json_decref(r);
    }
    fclose(f);
    return records;
}

static double field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Validation Dice against rounds completed, from a site's run log. The local run
 * validates after each epoch of local_steps steps (= a round); a federated site
 * measures the global of round r (0-based: after r aggregations) before training on
 * it, and the final global in its "final" record. bytes gets the mean per round. */
static json_t *curve(json_t *runlog, bool federated, double bytes[2])
{
    json_t *c = json_array(), *r;
    size_t i;
    int n = 0;
    json_array_foreach(runlog, i, r) {
        const char *kind = json_string_value(json_object_get(r, "kind"));
        json_t *x = json_object_get(r, !federated ? "epoch" : kind && !strcmp(kind, "final")
                                                                  ? "rounds"
                                                                  : "round");
        double dice = field(r, federated ? "val_dice" : "mean_foreground_dice");
        if (!json_is_integer(x) || (federated && !kind)) continue;
        json_array_append_new(c, json_pack("{s:I, s:o}", "round", json_integer_value(x), "dice",
                                           number_or_null(dice)));
        if (federated && !strcmp(kind, "round")) {
            bytes[0] += field(r, "bytes_down");
            bytes[1] += field(r, "bytes_up");
            n++;
        }
    }
    if (n) {
        bytes[0] /= n;
        bytes[1] /= n;
    }
    return c;
}

typedef struct site_result {
    double dice[DK_MAX_CLASSES], hd95[DK_MAX_CLASSES], mean_dice;
} site_result;

static dk_status site_entry(dk_demo *d, int mi, int si, json_t *classes, site_result *out,
                            double bytes[2], json_t **entry, dk_err *err)
{
    const dk_demo_method *m = &d->plan.methods[mi];
    const char *site = d->plan.sites[si].name;
    char path[DK_DEMO_PATH];
    json_error_t je;
    json_t *eval = json_load_file(dk_demo_path(d, path, "eval/%s-%s.json", m->name, site), 0, &je);
    if (!eval) return dk_err_set(err, DK_EFORMAT, "%s: %s", path, je.text);
    json_t *cls = json_object(), *name;
    size_t k;
    double sum = 0;
    json_array_foreach(json_object_get(eval, "classes"), k, name) {
        const char *c = json_string_value(name);
        if (!c || k >= DK_MAX_CLASSES) continue;
        if (json_array_size(classes) <= k) json_array_append(classes, name);
        out->dice[k] = summary_mean(eval, c, "dice");
        out->hd95[k] = summary_mean(eval, c, "hd95");
        sum += isfinite(out->dice[k]) ? out->dice[k] : 0;
        json_object_set_new(cls, c, json_pack("{s:o, s:o, s:o}", "dice",
                                              number_or_null(out->dice[k]), "hd95_mm",
                                              number_or_null(out->hd95[k]), "assd_mm",
                                              number_or_null(summary_mean(eval, c, "assd"))));
    }
    size_t nc = json_array_size(json_object_get(eval, "classes"));
    out->mean_dice = nc ? sum / (double)nc : NAN;
    json_decref(eval);
    json_t *runlog = NULL;
    if (m->kind != DK_DEMO_TEACHER)
        runlog = read_runlog(dk_demo_path(d, path, "models/%s/%s.h5.runlog.jsonl", m->name, site));
    json_t *c = runlog ? curve(runlog, m->kind != DK_DEMO_LOCAL, bytes) : json_array();
    json_decref(runlog);
    char preds[DK_DEMO_PATH];
    snprintf(preds, sizeof preds, "predictions/%s/%s", m->name, site);
    *entry = json_pack("{s:s, s:o, s:o, s:o}", "predictions", preds, "classes", cls, "mean_dice",
                       number_or_null(out->mean_dice), "curve", c);
    return DK_OK;
}

static long student_parameters(const dk_demo *d)
{
    dk_unet *net = dk_unet_load_checkpoint(d->init, NULL, NULL);
    if (!net) return 0;
    const dk_params *p = dk_unet_params(net);
    long n = 0;
    for (int i = 0; i < p->count; i++)
        n += (long)dk_tensor_numel(&p->items[i]->value);
    dk_unet_free(net);
    return n;
}

/* Dual distillation FedAvg against supervised-only FedAvg, in one sentence. */
static void verdict(const dk_demo *d, site_result r[DK_DEMO_METHODS][DK_DEMO_SITES], char *out,
                    size_t cap)
{
    int wins = 0;
    double diff = 0;
    for (int s = 0; s < DK_DEMO_SITES; s++) {
        double delta = r[DK_DEMO_FED_KD][s].mean_dice - r[DK_DEMO_FED_SUP][s].mean_dice;
        wins += delta > 0;
        diff += delta / DK_DEMO_SITES;
    }
    if (diff > -0.0005 && diff < 0.0005) diff = 0; /* "+0.000", never "-0.000" */
    snprintf(out, cap,
             "%s scored a higher mean foreground Dice than %s at %d of %d sites (by %+.3f "
             "averaged over the sites; one seed, %d validation volume%s per site)",
             d->plan.methods[DK_DEMO_FED_KD].title, d->plan.methods[DK_DEMO_FED_SUP].title, wins,
             DK_DEMO_SITES, diff, d->plan.validation, d->plan.validation == 1 ? "" : "s");
}

static void print_table(const dk_demo *d, json_t *classes,
                        site_result r[DK_DEMO_METHODS][DK_DEMO_SITES])
{
    size_t nc = json_array_size(classes);
    for (int s = 0; s < DK_DEMO_SITES; s++) {
        const dk_demo_site *site = &d->plan.sites[s];
        printf("\n%s (%s, %s; %d labelled): Dice (HD95 mm) on %d validation volume(s)\n",
               site->name, site->profile, site->contrast, d->plan.labelled, d->plan.validation);
        printf("  %-26s", "method");
        for (size_t k = 0; k < nc; k++)
            printf(" %-17.17s", json_string_value(json_array_get(classes, k)));
        printf(" %s\n", "mean Dice");
        for (int m = 0; m < DK_DEMO_METHODS; m++) {
            printf("  %-26s", d->plan.methods[m].title);
            for (size_t k = 0; k < nc; k++) {
                char cell[32];
                /* no HD95: the class was never predicted (as `dualkd eval` prints it) */
                if (isfinite(r[m][s].hd95[k]))
                    snprintf(cell, sizeof cell, "%.3f (%.1f)", r[m][s].dice[k], r[m][s].hd95[k]);
                else
                    snprintf(cell, sizeof cell, "%.3f (inf)", r[m][s].dice[k]);
                printf(" %-17s", cell);
            }
            printf(" %.3f\n", r[m][s].mean_dice);
        }
    }
}

static void print_costs(const dk_demo *d, const double bytes[DK_DEMO_METHODS][2])
{
    double original = 8.0 * (double)d->parameters;
    printf("\n%-28s %10s %24s\n", "method", "wall time", "MB per site per round");
    for (int m = 1; m < DK_DEMO_METHODS; m++) {
        printf("%-28s %8.0f s ", d->plan.methods[m].title, d->method_seconds[m]);
        if (d->plan.methods[m].kind == DK_DEMO_LOCAL)
            printf("%24s\n", "- (nothing sent)");
        else
            printf("   %.2f down, %.2f up (%.1f %% of the original's)\n", bytes[m][0] / 1e6,
                   bytes[m][1] / 1e6, 100.0 * (bytes[m][0] + bytes[m][1]) / (2 * original));
    }
    printf("%-28s %10s    %.2f down, %.2f up (float32 student + teacher of the same size, "
           "%ld parameters each)\n",
           "the original method", "", original / 1e6, original / 1e6, d->parameters);
}

static dk_status write_json(const char *path, json_t *root, dk_err *err)
{
    char tmp[DK_DEMO_PATH + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return dk_err_set(err, DK_EIO, "cannot write '%s'", tmp);
    bool ok = json_dumpf(root, f, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) == 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        return dk_err_set(err, DK_EIO, "cannot write '%s'", path);
    }
    return DK_OK;
}

static json_t *sites_json(const dk_demo *d)
{
    json_t *a = json_array();
    for (int s = 0; s < DK_DEMO_SITES; s++) {
        const dk_demo_site *site = &d->plan.sites[s];
        char data[DK_DEMO_PATH];
        snprintf(data, sizeof data, "data/%s.h5", site->name);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "name",
                                           site->name, "profile", site->profile, "contrast",
                                           site->contrast, "data", data, "labelled",
                                           d->plan.labelled, "unlabelled", d->plan.unlabelled,
                                           "validation", d->plan.validation));
    }
    return a;
}

static json_t *method_json(const dk_demo *d, int m, json_t *per_site, const double bytes[2])
{
    bool fed = d->plan.methods[m].kind == DK_DEMO_FED_SUP || d->plan.methods[m].kind == DK_DEMO_FED_KD;
    bool student = d->plan.methods[m].kind != DK_DEMO_TEACHER;
    return json_pack("{s:s, s:s, s:f, s:i, s:i, s:o, s:o}", "name", d->plan.methods[m].name,
                     "title", d->plan.methods[m].title, "seconds", d->method_seconds[m], "rounds",
                     student ? d->plan.rounds : 0, "local_steps",
                     student ? d->plan.local_steps : 0, "bytes_per_round",
                     fed ? json_pack("{s:I, s:I}", "down", (json_int_t)llround(bytes[0]), "up",
                                     (json_int_t)llround(bytes[1]))
                         : json_null(),
                     "sites", per_site);
}

dk_status dk_demo_results(dk_demo *d, dk_err *err)
{
    static site_result r[DK_DEMO_METHODS][DK_DEMO_SITES];
    double bytes[DK_DEMO_METHODS][2] = {{0}};
    json_t *classes = json_array(), *methods = json_array();
    dk_status st = DK_OK;
    d->parameters = student_parameters(d);
    for (int m = 0; !st && m < DK_DEMO_METHODS; m++) {
        json_t *per_site = json_object();
        for (int s = 0; !st && s < DK_DEMO_SITES; s++) {
            json_t *entry = NULL;
            double b[2] = {0, 0};
            st = site_entry(d, m, s, classes, &r[m][s], b, &entry, err);
            bytes[m][0] += b[0] / DK_DEMO_SITES;
            bytes[m][1] += b[1] / DK_DEMO_SITES;
            if (!st) json_object_set_new(per_site, d->plan.sites[s].name, entry);
        }
        json_array_append_new(methods, method_json(d, m, per_site, bytes[m]));
    }
    char sentence[512], path[DK_DEMO_PATH];
    verdict(d, r, sentence, sizeof sentence);
    double original = 8.0 * (double)d->parameters;
    json_t *root = json_pack(
        "{s:s, s:b, s:f, s:O, s:o, s:O, s:{s:I, s:I}, s:I, s:s}", "dualkd", DUALKD_VERSION,
        "quick", d->plan.quick, "seconds", dk_clock_seconds() - d->started, "classes", classes,
        "sites", sites_json(d), "methods", methods, "original_bytes_per_round", "down",
        (json_int_t)original, "up", (json_int_t)original, "student_parameters", (json_int_t)d->parameters, "verdict", sentence);
    if (!st) st = write_json(dk_demo_path(d, path, "results.json"), root, err);
    char report[DK_DEMO_PATH];
    if (!st) st = dk_report_write(path, dk_demo_path(d, report, "report"), err);
    if (!st) {
        print_table(d, classes, r);
        print_costs(d, bytes);
        printf("\nverdict: %s\nresults: %s\n", sentence, path);
    }
    json_decref(root);
    json_decref(classes);
    json_decref(methods);
    return st;
}
