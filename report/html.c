/* html.c: index.html of the report (html.h). One pass of fprintf onto the file; the
 * numbers are formatted as `dualkd eval` prints them (Dice to 3 places, distances in
 * mm, "inf" for the distance of an empty prediction, "–" for a missing Dice). */
#include "report/html.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char style[] =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1a1a1a;background:#fff;"
    "max-width:1360px}\n"
    "h1{font-size:26px}h2{font-size:20px;margin-top:32px}h3{font-size:17px}\n"
    "table{border-collapse:collapse;margin:8px 0 16px}\n"
    "th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}\n"
    "th{background:#eee}td.name,th.name{text-align:left}\n"
    ".verdict{font-size:18px;border-left:6px solid #555;background:#f2f2f2;padding:10px 14px}\n"
    "img{max-width:100%;height:auto;display:block;border:1px solid #ccc}\n"
    "figure{margin:12px 0 24px}figcaption{color:#555;font-size:14px;margin-top:4px}\n"
    ".note{color:#555;font-size:14px}\n";

/* text with &, <, >, " and ' escaped. */
static void esc(FILE *f, const char *text)
{
    for (const char *p = text; *p; p++) {
        const char *entity = *p == '&'    ? "&amp;"
                             : *p == '<'  ? "&lt;"
                             : *p == '>'  ? "&gt;"
                             : *p == '"'  ? "&quot;"
                             : *p == '\'' ? "&#39;"
                                          : NULL;
        if (entity)
            fputs(entity, f);
        else
            fputc(*p, f);
    }
}

static void megabytes(FILE *f, long long bytes)
{
    fprintf(f, "%.2f MB", bytes / 1e6);
}

static void what_was_run(FILE *f, const dk_results *r)
{
    fprintf(f, "<h2>What was run</h2>\n<p>dualkd ");
    esc(f, r->version);
    fprintf(f, ", %s run, %.1f s wall time in all (%d min %02d s). Classes: ",
            r->quick ? "a quick (--quick)" : "a full", r->seconds, (int)(r->seconds / 60),
            (int)fmod(r->seconds, 60));
    for (int c = 0; c < r->class_count; c++) {
        esc(f, r->classes[c]);
        fputs(c + 1 < r->class_count ? ", " : ".</p>\n", f);
    }
    fputs(
        "<table><tr><th class=name>site</th><th class=name>profile</th><th class=name>contrast"
        "</th><th>labelled volumes</th><th>validation volumes</th><th class=name>data</th></tr>\n",
        f);
    for (int s = 0; s < r->site_count; s++) {
        const dk_results_site *x = &r->sites[s];
        const char *cells[] = {x->name, x->profile, x->contrast};
        fputs("<tr>", f);
        for (int k = 0; k < 3; k++) {
            fputs("<td class=name>", f);
            esc(f, cells[k]);
            fputs("</td>", f);
        }
        fprintf(f, "<td>%lld</td><td>%lld</td><td class=name>", x->labelled, x->validation);
        esc(f, x->data_given);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void methods_table(FILE *f, const dk_results *r)
{
    long long original = r->original_down + r->original_up;
    fputs("<h2>Methods: time and traffic</h2>\n<table><tr><th class=name>method</th><th>rounds"
          "</th><th>local steps</th><th>wall time</th><th>down per round</th><th>up per round</th>"
          "<th>of the original's traffic</th></tr>\n",
          f);
    for (int m = 0; m < r->method_count; m++) {
        const dk_results_method *x = &r->methods[m];
        fputs("<tr><td class=name>", f);
        esc(f, x->title);
        fprintf(f, "</td><td>%lld</td><td>%lld</td><td>%.1f s</td>", x->rounds, x->local_steps,
                x->seconds);
        if (!x->has_bytes) {
            fputs("<td>–</td><td>–</td><td>–</td></tr>\n", f);
            continue;
        }
        fputs("<td>", f);
        megabytes(f, x->bytes_down);
        fputs("</td><td>", f);
        megabytes(f, x->bytes_up);
        if (original > 0)
            fprintf(f, "</td><td>%.1f %%</td></tr>\n",
                    100.0 * (x->bytes_down + x->bytes_up) / original);
        else
            fputs("</td><td>–</td></tr>\n", f);
    }
    fputs("</table>\n<p class=note>Bytes are per site and round (mean): down = what a site "
          "fetched, up = what it submitted. The original code (fedml-knee) moved ",
          f);
    megabytes(f, r->original_down);
    fputs(" down and ", f);
    megabytes(f, r->original_up);
    fputs(" up per site and round (student and teacher both ways).</p>\n", f);
}

/* The best value of column (class c, metric k: 0 Dice, 1 HD95) at site s over methods. */
static double best(const dk_results *r, int s, int c, int k)
{
    double b = NAN;
    for (int m = 0; m < r->method_count; m++) {
        const dk_results_class *x = &r->methods[m].sites[s].classes[c];
        double v = k ? x->hd95_mm : x->dice;
        if (isfinite(v) && (isnan(b) || (k ? v < b : v > b))) b = v;
    }
    return b;
}

static void cell(FILE *f, double v, double b, const char *fmt, const char *missing)
{
    bool bold = isfinite(v) && v == b;
    fputs(bold ? "<td><b>" : "<td>", f);
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs(missing, f);
    fputs(bold ? "</b></td>" : "</td>", f);
}

static void site_table(FILE *f, const dk_results *r, int s)
{
    fputs("<h3>", f);
    esc(f, r->sites[s].name);
    fputs("</h3>\n<table><tr><th class=name rowspan=2>method</th>", f);
    for (int c = 0; c < r->class_count; c++) {
        fputs("<th colspan=2>", f);
        esc(f, r->classes[c]);
        fputs("</th>", f);
    }
    fputs("<th rowspan=2>mean Dice</th></tr>\n<tr>", f);
    for (int c = 0; c < r->class_count; c++)
        fputs("<th>Dice</th><th>HD95 mm</th>", f);
    fputs("</tr>\n", f);
    double best_mean = NAN;
    for (int m = 0; m < r->method_count; m++) {
        double v = r->methods[m].sites[s].mean_dice;
        if (isfinite(v) && (isnan(best_mean) || v > best_mean)) best_mean = v;
    }
    for (int m = 0; m < r->method_count; m++) {
        const dk_results_cell *x = &r->methods[m].sites[s];
        fputs("<tr><td class=name>", f);
        esc(f, r->methods[m].title);
        fputs("</td>", f);
        for (int c = 0; c < r->class_count; c++) {
            cell(f, x->classes[c].dice, best(r, s, c, 0), "%.3f", "–");
            cell(f, x->classes[c].hd95_mm, best(r, s, c, 1), "%.2f", "inf");
        }
        cell(f, x->mean_dice, best_mean, "%.3f", "–");
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void pictures(FILE *f, const dk_results *r, const dk_html_pictures *p)
{
    fputs("<h2>Segmentations</h2>\n<p class=note>Each row: one slice of one validation volume "
          "of a site; the image, its ground truth, then every method's prediction of the same "
          "slice.</p>\n",
          f);
    for (int s = 0; s < r->site_count; s++) {
        const dk_overlay_info *o = &p->overlays[s];
        fprintf(f, "<figure><img src=\"overlay-%s.png\" width=%d height=%d alt=\"",
                r->sites[s].name, o->width, o->height);
        esc(f, r->sites[s].name);
        fprintf(f, ": slice %d along %c of volume ", o->slice, "zyx"[o->axis]);
        esc(f, o->volume);
        fputs(", ground truth and each method's prediction\"><figcaption>", f);
        esc(f, r->sites[s].name);
        fputs(", volume ", f);
        esc(f, o->volume);
        fprintf(f, ", slice %d along %c</figcaption></figure>\n", o->slice, "zyx"[o->axis]);
    }
    fprintf(f,
            "<h2>Learning curves</h2>\n<figure><img src=\"curves.png\" width=%d height=%d "
            "alt=\"validation mean Dice against round, one panel per site, one line per "
            "method\"><figcaption>Validation mean Dice after each round.</figcaption>"
            "</figure>\n",
            p->curves_width, p->curves_height);
}

dk_status dk_html_write(const dk_results *r, const dk_html_pictures *p, const char *path,
                        dk_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return dk_err_set(err, DK_EIO, "'%s': %s", path, strerror(errno));
    fprintf(f,
            "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>dualkd demo report</title>\n<style>\n%s</style>\n</head>\n<body>\n"
            "<h1>dualkd demo: dual knowledge distillation at %d sites</h1>\n<p class=verdict>",
            style, r->site_count);
    esc(f, r->verdict);
    fputs("</p>\n", f);
    what_was_run(f, r);
    fputs("<h2>Results per site</h2>\n<p class=note>On each site's validation volumes: Dice "
          "and HD95 (mm) per class, the best method per column in bold; inf: the method "
          "predicted none of the class.</p>\n",
          f);
    for (int s = 0; s < r->site_count; s++)
        site_table(f, r, s);
    methods_table(f, r);
    pictures(f, r, p);
    fputs("<p class=note>The numbers behind this page: <a href=\"results.json\">results.json"
          "</a> (schema: docs/demo.md).</p>\n</body>\n</html>\n",
          f);
    dk_status st = DK_OK;
    if (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0)
        st = dk_err_set(err, DK_EIO, "'%s': %s", path, strerror(errno));
    if (fclose(f) != 0 && !st) st = dk_err_set(err, DK_EIO, "'%s': %s", path, strerror(errno));
    return st;
}
