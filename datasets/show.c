/* show.c: one slice of a volume as an RGB picture with a label overlay, and its PNG
 * (libpng's simplified write API). See show.h for the orientation conventions. */
#define _GNU_SOURCE
#include "datasets/show.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HISTOGRAM_BINS 4096
#define MAX_SIDE 4096

void dk_show_defaults(dk_show_options *o)
{
    o->axis = 0;
    o->slice = -1;
    o->alpha = 0.4f;
    o->min_side = 480;
}

/* Okabe-Ito colours (distinguishable with colour-blindness), then a few more. */
void dk_show_palette(int class_id, uint8_t rgb[3])
{
    static const uint8_t colours[][3] = {
        {230, 159, 0},  {86, 180, 233}, {0, 158, 115},  {240, 228, 66},
        {0, 114, 178},  {213, 94, 0},   {204, 121, 167}, {255, 255, 255},
        {120, 200, 60}, {160, 80, 220}, {255, 120, 120}, {90, 220, 220},
    };
    const int n = sizeof colours / sizeof colours[0];
    int c = class_id < 1 ? 0 : (class_id - 1) % n;
    memcpy(rgb, colours[c], 3);
}

/* Intensity window: the 1st and 99th percentiles of the whole volume (by histogram),
 * so every slice of a volume is shown on the same scale. */
static void percentile_window(const dk_volume *v, float *lo, float *hi)
{
    size_t n = dk_volume_voxels(v);
    float mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v->image[i])) {
            mn = fminf(mn, v->image[i]);
            mx = fmaxf(mx, v->image[i]);
        }
    if (!(mx > mn)) {
        *lo = isfinite(mn) ? mn : 0;
        *hi = *lo + 1;
        return;
    }
    static const int bins = HISTOGRAM_BINS;
    size_t *hist = calloc(bins, sizeof *hist);
    if (!hist) {
        *lo = mn, *hi = mx;
        return;
    }
    size_t counted = 0;
    float scale = bins / (mx - mn);
    for (size_t i = 0; i < n; i++)
        if (isfinite(v->image[i])) {
            int b = (int)((v->image[i] - mn) * scale);
            hist[b >= bins ? bins - 1 : b]++;
            counted++;
        }
    size_t acc = 0, want_lo = counted / 100, want_hi = counted - counted / 100;
    int b_lo = -1, b_hi = bins - 1;
    for (int b = 0; b < bins; b++) {
        acc += hist[b];
        if (b_lo < 0 && acc > want_lo) b_lo = b;
        if (acc >= want_hi) {
            b_hi = b;
            break;
        }
    }
    free(hist);
    *lo = mn + (b_lo < 0 ? 0 : b_lo) / scale;
    *hi = mn + (b_hi + 1) / scale;
    if (!(*hi > *lo)) *hi = *lo + 1e-6f;
}

/* Array axes of the picture's rows and columns for a slicing axis. */
static void view_axes(int axis, int *row_axis, int *col_axis)
{
    static const int rows[3] = {1, 0, 1}, cols[3] = {2, 2, 0};
    *row_axis = rows[axis];
    *col_axis = cols[axis];
}

static size_t voxel_index(const dk_volume *v, int axis, int slice, int row_axis, int r,
                          int col_axis, int c)
{
    int idx[3];
    idx[axis] = slice;
    idx[row_axis] = r;
    idx[col_axis] = c;
    return ((size_t)idx[0] * v->dims[1] + idx[1]) * v->dims[2] + idx[2];
}

dk_status dk_show_render(const dk_volume *v, const dk_show_options *o, uint8_t **rgb, int *width,
                         int *height, dk_err *err)
{
    *rgb = NULL;
    if (!v->image) return dk_err_set(err, DK_EINVAL, "show: volume '%s' has no image", v->id);
    if (o->axis < 0 || o->axis > 2)
        return dk_err_set(err, DK_EINVAL, "show: axis %d (expected 0 = z, 1 = y, 2 = x)", o->axis);
    int slice = o->slice < 0 ? v->dims[o->axis] / 2 : o->slice;
    if (slice >= v->dims[o->axis])
        return dk_err_set(err, DK_EINVAL, "show: volume '%s': slice %d along %c (expected 0..%d)",
                          v->id, slice, "zyx"[o->axis], v->dims[o->axis] - 1);
    int ra, ca;
    view_axes(o->axis, &ra, &ca);
    /* one pixel = the finer of the two voxel sizes, then an integer enlargement */
    double pixel_mm = fmin(v->spacing[ra], v->spacing[ca]);
    int h = (int)lround(v->dims[ra] * v->spacing[ra] / pixel_mm);
    int w = (int)lround(v->dims[ca] * v->spacing[ca] / pixel_mm);
    h = h < 1 ? 1 : h;
    w = w < 1 ? 1 : w;
    int factor = 1;
    while ((h < w ? h : w) * factor < o->min_side && (h > w ? h : w) * (factor + 1) <= MAX_SIDE)
        factor++;
    if ((h > w ? h : w) * factor > MAX_SIDE)
        return dk_err_set(err, DK_ELIMIT, "show: a %dx%d picture exceeds %d pixels a side", w, h,
                          MAX_SIDE);
    h *= factor;
    w *= factor;
    pixel_mm /= factor;
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return dk_err_set(err, DK_ENOMEM, "show: no memory for a %dx%d picture", w, h);
    float lo, hi;
    percentile_window(v, &lo, &hi);
    float alpha = o->alpha < 0 ? 0 : o->alpha > 1 ? 1 : o->alpha;
    for (int y = 0; y < h; y++) {
        int r = (int)((y + 0.5) * pixel_mm / v->spacing[ra]);
        r = r >= v->dims[ra] ? v->dims[ra] - 1 : r;
        for (int x = 0; x < w; x++) {
            int c = (int)((x + 0.5) * pixel_mm / v->spacing[ca]);
            c = c >= v->dims[ca] ? v->dims[ca] - 1 : c;
            size_t vi = voxel_index(v, o->axis, slice, ra, r, ca, c);
            float g = (v->image[vi] - lo) / (hi - lo);
            g = isfinite(g) ? (g < 0 ? 0 : g > 1 ? 1 : g) : 0;
            uint8_t *px = out + ((size_t)y * w + x) * 3;
            float grey = 255 * g;
            uint8_t colour[3] = {0, 0, 0};
            int labelled = v->label && v->label[vi] > 0 && alpha > 0;
            if (labelled) dk_show_palette(v->label[vi], colour);
            for (int ch = 0; ch < 3; ch++) {
                float value = labelled ? (1 - alpha) * grey + alpha * colour[ch] : grey;
                px[ch] = (uint8_t)lroundf(value);
            }
        }
    }
    *rgb = out;
    *width = w;
    *height = h;
    return DK_OK;
}

dk_status dk_show_png(const dk_volume *v, const dk_show_options *o, const char *path, dk_err *err)
{
    uint8_t *rgb;
    int w, h;
    dk_status st = dk_show_render(v, o, &rgb, &w, &h, err);
    if (st) return st;
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp-%ld", path, (long)getpid()) < 0) {
        free(rgb);
        return dk_err_set(err, DK_ENOMEM, "show: no memory for a file name");
    }
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)w;
    image.height = (png_uint_32)h;
    image.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&image, tmp, 0, rgb, w * 3, NULL)) {
        st = dk_err_set(err, DK_EIO, "show: writing '%s': %s", path, image.message);
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = dk_err_set(err, DK_EIO, "show: renaming '%s' to '%s': %s", tmp, path,
                        strerror(errno));
        unlink(tmp);
    }
    png_image_free(&image);
    free(tmp);
    free(rgb);
    return st;
}
