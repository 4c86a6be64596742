/* transfer.c: transfer samples on the padded grid and their patches (transfer.h). */
#include "student/transfer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "teacher/train.h"

static int clampi(int v, int hi)
{
    return v < 0 ? 0 : v > hi ? hi : v;
}

static size_t vox(const int d[3])
{
    return (size_t)d[0] * d[1] * d[2];
}

/* dst (padded) from src (grid): edge-replicated, or `outside` beyond the grid. */
static void lay_out(const float *src, const int g[3], const int p[3], const int before[3],
                    bool replicate, float outside, float *dst)
{
    for (int k = 0; k < p[0]; k++)
        for (int j = 0; j < p[1]; j++)
            for (int i = 0; i < p[2]; i++) {
                int z = k - before[0], y = j - before[1], x = i - before[2];
                bool in = z >= 0 && y >= 0 && x >= 0 && z < g[0] && y < g[1] && x < g[2];
                *dst++ = in || replicate
                             ? src[((size_t)clampi(z, g[0] - 1) * g[1] + clampi(y, g[1] - 1)) * g[2] +
                                   clampi(x, g[2] - 1)]
                             : outside;
            }
}

static dk_status read_array(dk_target_source *src, int i, const char *kind, size_t want,
                            float **out, dk_err *err)
{
    const dk_store_sample_info *info = src->sample(src, i);
    const dk_store_array_info *a = NULL;
    for (int k = 0; k < info->array_count; k++)
        if (!strcmp(info->arrays[k].kind, kind)) a = &info->arrays[k];
    if (!a)
        return dk_err_set(err, DK_ENOTFOUND, "%s: sample '%s' has no '%s'", src->where, info->id,
                          kind);
    if (want && dk_store_array_numel(a) != want)
        return dk_err_set(err, DK_EFORMAT, "%s: sample '%s': '%s' has %zu values, expected %zu",
                          src->where, info->id, kind, dk_store_array_numel(a), want);
    size_t n = dk_store_array_numel(a);
    if (!(*out = malloc(n * sizeof **out)))
        return dk_err_set(err, DK_ENOMEM, "no memory for '%s' of sample '%s'", kind, info->id);
    return src->read(src, i, kind, *out, n, err);
}

/* p <- p^power, renormalised over classes, per voxel (classes x n, class planes). */
static void sharpen(float *p, int classes, size_t n, float power)
{
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (int c = 0; c < classes; c++)
            sum += p[(size_t)c * n + i] = powf(p[(size_t)c * n + i], power);
        for (int c = 0; sum > 0 && c < classes; c++)
            p[(size_t)c * n + i] = (float)(p[(size_t)c * n + i] / sum);
    }
}

static dk_status lay_out_targets(dk_target_source *src, int i, const dk_transfer_spec *spec,
                                 dk_transfer_sample *s, dk_err *err)
{
    size_t G = vox(s->grid), P = vox(s->padded);
    float *resp = NULL, *unc = NULL;
    dk_status st = read_array(src, i, "response", (size_t)s->classes * G, &resp, err);
    if (!st) st = read_array(src, i, "uncertainty", G, &unc, err);
    s->response = st ? NULL : malloc((size_t)s->classes * P * sizeof(float));
    s->entropy = st ? NULL : malloc(P * sizeof(float));
    if (!st && (!s->response || !s->entropy)) st = dk_err_set(err, DK_ENOMEM, "no memory for targets");
    if (!st && spec->response_power != 1.0f) sharpen(resp, s->classes, G, spec->response_power);
    for (int c = 0; !st && c < s->classes; c++)
        lay_out(resp + (size_t)c * G, s->grid, s->padded, s->before, false, 0.0f,
                s->response + (size_t)c * P);
    if (!st) lay_out(unc, s->grid, s->padded, s->before, false, INFINITY, s->entropy);
    free(resp);
    free(unc);
    return st;
}

static dk_status read_features(dk_target_source *src, int i, const dk_transfer_spec *spec,
                               dk_transfer_sample *s, dk_err *err)
{
    const dk_store_sample_info *info = src->sample(src, i);
    for (int a = 0; a < 3; a++)
        s->feature_dims[a] = s->padded[a] / spec->factor[a];
    for (int k = 0; k < info->array_count; k++) {
        const dk_store_array_info *a = &info->arrays[k];
        if (strcmp(a->kind, spec->feature_kind)) continue;
        if (a->rank != 4 || memcmp(a->dims + 1, s->feature_dims, sizeof s->feature_dims))
            return dk_err_set(err, DK_EMISMATCH,
                              "%s: sample '%s': '%s' is %dx%dx%d, the student's tap is %dx%dx%d",
                              src->where, info->id, a->kind, a->dims[1], a->dims[2], a->dims[3],
                              s->feature_dims[0], s->feature_dims[1], s->feature_dims[2]);
        s->feature_channels = a->dims[0];
    }
    return read_array(src, i, spec->feature_kind, 0, &s->features, err);
}

dk_status dk_transfer_load(dk_target_source *src, int i, const dk_transfer_spec *spec,
                           dk_transfer_sample *s, dk_err *err)
{
    memset(s, 0, sizeof *s);
    const dk_store_sample_info *info = src->sample(src, i);
    s->classes = src->manifest->classes.count;
    for (int a = 0; a < 3; a++) {
        s->grid[a] = info->grid.dims[a];
        int m = spec->multiple[a];
        s->padded[a] = (s->grid[a] + m - 1) / m * m;
        s->before[a] = (s->padded[a] - s->grid[a]) / 2;
    }
    float *input = NULL;
    dk_status st = read_array(src, i, "input", vox(s->grid), &input, err);
    if (!st && !(s->input = malloc(vox(s->padded) * sizeof(float))))
        st = dk_err_set(err, DK_ENOMEM, "no memory for sample '%s'", info->id);
    if (!st) {
        dk_teacher_normalise(input, vox(s->grid)); /* before padding, as precompute */
        lay_out(input, s->grid, s->padded, s->before, true, 0.0f, s->input);
    }
    free(input);
    if (!st && spec->response) st = lay_out_targets(src, i, spec, s, err);
    if (!st && spec->feature_kind[0]) st = read_features(src, i, spec, s, err);
    if (st) dk_transfer_release(s);
    return st;
}

void dk_transfer_release(dk_transfer_sample *s)
{
    free(s->input);
    free(s->response);
    free(s->entropy);
    free(s->features);
    memset(s, 0, sizeof *s);
}

void dk_transfer_draw_origin(const dk_transfer_sample *s, const dk_transfer_spec *spec,
                             const int patch[3], dk_rng *rng, int origin[3])
{
    for (int a = 0; a < 3; a++) {
        int f = spec->factor[a], choices = (s->padded[a] - patch[a]) / f + 1;
        origin[a] = (int)dk_rng_below(rng, (uint64_t)choices) * f;
    }
}

/* Copy the box at origin of size n from a (channels x dims) array into dst. */
static void crop(const float *src, int channels, const int dims[3], const int origin[3],
                 const int n[3], float *dst)
{
    for (int c = 0; c < channels; c++)
        for (int k = 0; k < n[0]; k++)
            for (int j = 0; j < n[1]; j++) {
                const float *row =
                    src + (((size_t)c * dims[0] + origin[0] + k) * dims[1] + origin[1] + j) * dims[2] +
                    origin[2];
                memcpy(dst, row, (size_t)n[2] * sizeof *dst);
                dst += n[2];
            }
}

void dk_transfer_cut(const dk_transfer_sample *s, const dk_transfer_spec *spec,
                     const int patch[3], const int origin[3], float *x, float *response,
                     float *entropy, float *features)
{
    if (x) crop(s->input, 1, s->padded, origin, patch, x);
    if (response && s->response) crop(s->response, s->classes, s->padded, origin, patch, response);
    if (entropy && s->entropy) crop(s->entropy, 1, s->padded, origin, patch, entropy);
    if (features && s->features) {
        int fo[3], fn[3];
        for (int a = 0; a < 3; a++) {
            fo[a] = origin[a] / spec->factor[a];
            fn[a] = patch[a] / spec->factor[a];
        }
        crop(s->features, s->feature_channels, s->feature_dims, fo, fn, features);
    }
}
