/* overlay.c: one site's comparison picture (overlay.h): picking the volume and the
 * slice, rendering each panel with datasets/show.c, laying the panels out in a row
 * with titles and a class legend. */
#include "report/overlay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "datasets/show.h"
#include "report/canvas.h"
#include "report/font.h"

#define PANEL_MIN_SIDE 160
#define GAP            8
#define TITLE_SCALE    2
#define TITLE_LINES    3 /* a panel title may take three lines */
#define LABEL_ALPHA    0.5f

static const dk_rgb paper = {255, 255, 255}, ink = {20, 20, 20};

static dk_status check_classes(const dk_results *r, int s, const dk_classes *k, dk_err *err)
{
    const char *data = r->sites[s].data_given;
    if (k->count != r->class_count + 1)
        return dk_err_set(
            err, DK_EMISMATCH,
            "sites[%d].data '%s': %d foreground classes (results.json classes has %d)", s, data,
            k->count - 1, r->class_count);
    for (int c = 0; c < r->class_count; c++)
        if (strcmp(k->names[c + 1], r->classes[c]))
            return dk_err_set(
                err, DK_EMISMATCH,
                "sites[%d].data '%s': class %d is '%s' (results.json classes[%d] is '%s')", s, data,
                c + 1, k->names[c + 1], c, r->classes[c]);
    return DK_OK;
}

/* The named volume, or the first labelled validation volume (then any labelled one). */
static dk_status pick_volume(const dk_results *r, int s, const dk_dataset *ds, int *index,
                             dk_err *err)
{
    const dk_results_site *site = &r->sites[s];
    if (site->overlay_volume[0]) {
        *index = dk_dataset_find(ds, site->overlay_volume);
        if (*index < 0)
            return dk_err_set(err, DK_ENOTFOUND, "sites[%d].overlay.volume: '%s' is not in '%s'", s,
                              site->overlay_volume, site->data_given);
        if (!dk_dataset_info(ds, *index)->has_label)
            return dk_err_set(err, DK_EINVAL, "sites[%d].overlay.volume: '%s' has no label map", s,
                              site->overlay_volume);
        return DK_OK;
    }
    *index = -1;
    for (int pass = 0; pass < 2 && *index < 0; pass++)
        for (int i = 0; i < dk_dataset_count(ds) && *index < 0; i++)
            if (dk_dataset_info(ds, i)->has_label &&
                (pass || !strcmp(dk_dataset_volume_split(ds, i), "validation")))
                *index = i;
    if (*index < 0)
        return dk_err_set(err, DK_ENOTFOUND, "sites[%d].data '%s': no labelled volume to show", s,
                          site->data_given);
    return DK_OK;
}

/* The slice along axis with the most foreground voxels of the ground truth (first on ties). */
static int busiest_slice(const dk_volume *v, int axis)
{
    int n = v->dims[axis], best = n / 2;
    long long *count = calloc(n, sizeof *count), most = 0;
    if (!count) return best;
    for (int z = 0; z < v->dims[0]; z++)
        for (int y = 0; y < v->dims[1]; y++)
            for (int x = 0; x < v->dims[2]; x++) {
                int idx[3] = {z, y, x};
                if (v->label[((size_t)z * v->dims[1] + y) * v->dims[2] + x]) count[idx[axis]]++;
            }
    for (int i = 0; i < n; i++)
        if (count[i] > most) most = count[i], best = i;
    free(count);
    return best;
}

/* Read method m's prediction of v into v->label (the caller keeps the truth aside). */
static dk_status read_prediction(const dk_results *r, int s, int m, dk_volume *v, dk_err *err)
{
    const char *dir = r->methods[m].sites[s].predictions;
    char path[DK_RESULTS_PATH + 80];
    snprintf(path, sizeof path, "%s/%s.nii.gz", dir, v->id);
    if (access(path, F_OK) != 0) snprintf(path, sizeof path, "%s/%s.nii", dir, v->id);
    if (access(path, F_OK) != 0)
        return dk_err_set(err, DK_ENOTFOUND,
                          "methods[%d].sites.%s.predictions: no '%s.nii.gz' in '%s'", m,
                          r->sites[s].name, v->id, dir);
    dk_status st = dk_nifti_read_label(path, v, err);
    if (st) return dk_err_prefix(err, st, "methods[%d].sites.%s.predictions", m, r->sites[s].name);
    return DK_OK;
}

/* Where the line starting at text ends when at most fit characters fit: after the last
 * space that fits, else after the last hyphen, else cut. */
static int line_end(const char *text, int fit)
{
    int len = (int)strlen(text);
    if (len <= fit) return len;
    for (int k = fit; k > 0; k--)
        if (text[k] == ' ') return k;
    for (int k = fit; k > 0; k--)
        if (text[k - 1] == '-') return k;
    return fit;
}

/* The title of a panel word-wrapped into TITLE_LINES lines of width pixels; what does
 * not fit ends in "..". */
static void panel_title(dk_canvas *c, int x, int y, int width, const char *title)
{
    int fit = (width + 1) / (DK_FONT_ADVANCE * TITLE_SCALE);
    fit = fit < 3 ? 3 : fit > 120 ? 120 : fit;
    const char *rest = title;
    for (int k = 0; k < TITLE_LINES && *rest; k++) {
        char line[128];
        int end = line_end(rest, fit);
        if (k == TITLE_LINES - 1 && end < (int)strlen(rest))
            snprintf(line, sizeof line, "%.*s..", fit - 2, rest);
        else
            snprintf(line, sizeof line, "%.*s", end, rest);
        dk_canvas_text(c, x + (width - dk_canvas_text_width(line, TITLE_SCALE)) / 2,
                       y + k * (dk_canvas_text_height(TITLE_SCALE) + 2), line, TITLE_SCALE, ink);
        rest += end;
        while (*rest == ' ')
            rest++;
    }
}

static int legend_width(const dk_results *r)
{
    int w = 0;
    for (int c = 0; c < r->class_count; c++)
        w += 16 + 6 + dk_canvas_text_width(r->classes[c], TITLE_SCALE) + 24;
    return w;
}

static void legend(dk_canvas *c, const dk_results *r, int y)
{
    int x = GAP;
    for (int k = 0; k < r->class_count; k++) {
        uint8_t rgb[3];
        dk_show_palette(k + 1, rgb);
        dk_canvas_fill(c, x, y, 16, 16, (dk_rgb){rgb[0], rgb[1], rgb[2]});
        x += 16 + 6;
        dk_canvas_text(c, x, y, r->classes[k], TITLE_SCALE, ink);
        x += dk_canvas_text_width(r->classes[k], TITLE_SCALE) + 24;
    }
}

/* Panel p (0 image, 1 truth, 2.. methods) rendered and placed. */
static dk_status panel(dk_canvas *c, const dk_results *r, int s, dk_volume *v, uint8_t *truth,
                       const dk_show_options *base, int p, int top, dk_err *err)
{
    dk_show_options o = *base;
    dk_status st = DK_OK;
    v->label = p == 1 ? truth : NULL;
    if (p == 0) o.alpha = 0;
    if (p >= 2) st = read_prediction(r, s, p - 2, v, err);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    if (!st) st = dk_show_render(v, &o, &rgb, &w, &h, err);
    if (v->label != truth) free(v->label);
    v->label = truth;
    if (st) return st;
    int x = GAP + p * (w + GAP);
    const char *title = p == 0 ? "image" : p == 1 ? "ground truth" : r->methods[p - 2].title;
    panel_title(c, x, top, w, title);
    dk_canvas_blit(c, x, top + TITLE_LINES * (dk_canvas_text_height(TITLE_SCALE) + 2) + GAP, rgb, w,
                   h);
    free(rgb);
    return DK_OK;
}

static dk_status compose(const dk_results *r, int s, dk_volume *v, dk_overlay_info *info,
                         const char *path, dk_err *err)
{
    dk_show_options o;
    dk_show_defaults(&o);
    o.axis = info->axis;
    o.slice = info->slice;
    o.alpha = LABEL_ALPHA;
    o.min_side = PANEL_MIN_SIDE;
    uint8_t *probe;
    int w, h;
    dk_status st = dk_show_render(v, &o, &probe, &w, &h, err);
    if (st) return st;
    free(probe);
    int panels = 2 + r->method_count, line = dk_canvas_text_height(TITLE_SCALE);
    int width = GAP + panels * (w + GAP), legend_w = legend_width(r) + 2 * GAP;
    width = width > legend_w ? width : legend_w;
    int top = GAP + line + GAP; /* below the caption line */
    int titles = TITLE_LINES * (line + 2) + GAP;
    int height = top + titles + h + GAP + line + GAP;
    dk_canvas c;
    if ((st = dk_canvas_init(&c, width, height, paper, err))) return st;
    char caption[200];
    snprintf(caption, sizeof caption, "%s: %s, slice %d along %c", r->sites[s].name, v->id,
             info->slice, "zyx"[info->axis]);
    dk_canvas_text(&c, GAP, GAP, caption, TITLE_SCALE, ink);
    uint8_t *truth = v->label;
    for (int p = 0; p < panels && !st; p++)
        st = panel(&c, r, s, v, truth, &o, p, top, err);
    if (!st) {
        legend(&c, r, top + titles + h + GAP);
        st = dk_canvas_write_png(&c, path, err);
    }
    info->width = c.width;
    info->height = c.height;
    dk_canvas_free(&c);
    return st;
}

dk_status dk_overlay_write(const dk_results *r, int s, const char *path, dk_overlay_info *info,
                           dk_err *err)
{
    dk_err opened = {0};
    dk_dataset *ds = dk_dataset_open(r->sites[s].data, &opened);
    if (!ds) {
        dk_err_forward(err, &opened);
        return dk_err_prefix(err, opened.code, "sites[%d].data", s);
    }
    int index;
    dk_volume v = {0};
    dk_status st = check_classes(r, s, dk_dataset_classes(ds), err);
    if (!st) st = pick_volume(r, s, ds, &index, err);
    if (!st) st = dk_dataset_read(ds, index, &v, err);
    if (!st && !v.label)
        st = dk_err_set(err, DK_EINVAL, "sites[%d]: volume '%s' has no label map", s, v.id);
    if (!st) {
        snprintf(info->volume, sizeof info->volume, "%s", v.id);
        info->axis = r->sites[s].overlay_axis;
        info->slice = r->sites[s].overlay_slice;
        if (info->slice < 0) info->slice = busiest_slice(&v, info->axis);
        if (info->slice >= v.dims[info->axis])
            st = dk_err_set(err, DK_EINVAL,
                            "sites[%d].overlay.slice: %d (volume '%s' has 0..%d along %c)", s,
                            info->slice, v.id, v.dims[info->axis] - 1, "zyx"[info->axis]);
    }
    if (!st) st = compose(r, s, &v, info, path, err);
    dk_volume_release(&v);
    dk_dataset_close(ds);
    return st;
}
