/* segment.c: sliding-window inference (segment.h): tile origins, edge-replicated
 * tile input, Gaussian-weighted accumulation of each tile's softmax, arg-max. */
#include "datasets/segment.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

dk_segment_options dk_segment_options_default(const int tile[3])
{
    return (dk_segment_options){
        {tile[0], tile[1], tile[2]}, .batch = 1, .overlap = 0.5f, .gaussian_sigma = 0.125f};
}

void dk_segment_fit_tile(const int tile[3], const int dims[3], const int mult[3], int out[3])
{
    for (int a = 0; a < 3; a++) {
        int need = (dims[a] + mult[a] - 1) / mult[a] * mult[a];
        out[a] = need < tile[a] ? need : tile[a];
    }
}

/* Tile origins along one axis: stride tile*(1 - overlap), the last flush with the end. */
static int tile_starts(int dim, int t, float overlap, int *starts)
{
    if (dim <= t) {
        starts[0] = 0;
        return 1;
    }
    int stride = (int)(t * (1.0f - overlap));
    if (stride < 1) stride = 1;
    int n = 0;
    for (int s = 0;; s += stride) {
        starts[n++] = s + t < dim ? s : dim - t;
        if (s + t >= dim) break;
    }
    return n;
}

static int clampi(int v, int hi)
{
    return v < 0 ? 0 : v > hi ? hi : v;
}

static void tile_copy_in(const float *img, const int d[3], const int o[3], const int t[3],
                         float *dst)
{
    for (int k = 0; k < t[0]; k++)
        for (int j = 0; j < t[1]; j++) {
            const float *row =
                img + ((size_t)clampi(o[0] + k, d[0] - 1) * d[1] + clampi(o[1] + j, d[1] - 1)) * d[2];
            for (int i = 0; i < t[2]; i++)
                *dst++ = row[clampi(o[2] + i, d[2] - 1)];
        }
}

/* The per-voxel weight of a tile: a separable Gaussian with its maximum 1. */
static float *tile_weights(const int t[3], float sigma_fraction)
{
    float *w = malloc((size_t)t[0] * t[1] * t[2] * sizeof *w), *axis[3];
    for (int a = 0; a < 3; a++)
        axis[a] = malloc((size_t)t[a] * sizeof(float));
    bool ok = w && axis[0] && axis[1] && axis[2];
    for (int a = 0; ok && a < 3; a++)
        for (int i = 0; i < t[a]; i++) {
            double sd = sigma_fraction * t[a], x = i - (t[a] - 1) / 2.0;
            axis[a][i] = sigma_fraction > 0 ? (float)exp(-x * x / (2 * sd * sd)) : 1.0f;
        }
    size_t at = 0;
    for (int k = 0; ok && k < t[0]; k++)
        for (int j = 0; j < t[1]; j++)
            for (int i = 0; i < t[2]; i++)
                w[at++] = fmaxf(axis[0][k] * axis[1][j] * axis[2][i], 1e-6f);
    for (int a = 0; a < 3; a++)
        free(axis[a]);
    if (!ok) free(w);
    return ok ? w : NULL;
}

/* Add w * softmax(logits of tile b) into probs and w into wsum, inside the volume. */
static void tile_accumulate(const dk_tensor *logits, int b, const int d[3], const int o[3],
                            const float *w, float *probs, float *wsum)
{
    const int C = logits->c, t[3] = {logits->d, logits->h, logits->w};
    const size_t tv = dk_tensor_spatial(logits), V = (size_t)d[0] * d[1] * d[2];
    const float *l = logits->data + (size_t)b * C * tv;
    for (int k = 0; k < t[0] && o[0] + k < d[0]; k++)
        for (int j = 0; j < t[1] && o[1] + j < d[1]; j++)
            for (int i = 0; i < t[2] && o[2] + i < d[2]; i++) {
                size_t at = ((size_t)k * t[1] + j) * t[2] + i;
                size_t dst = ((size_t)(o[0] + k) * d[1] + (o[1] + j)) * d[2] + o[2] + i;
                float m = l[at], e[DK_MAX_CLASSES], sum = 0;
                for (int c = 1; c < C; c++)
                    m = fmaxf(m, l[(size_t)c * tv + at]);
                for (int c = 0; c < C; c++)
                    sum += e[c] = expf(l[(size_t)c * tv + at] - m);
                for (int c = 0; c < C; c++)
                    probs[(size_t)c * V + dst] += w[at] * e[c] / sum;
                wsum[dst] += w[at];
            }
}

static dk_status plan(dk_unet *net, const dk_segment_options *o, dk_tensor *x, dk_err *err)
{
    const dk_tensor *l = dk_unet_logits(net);
    const int *t = o->tile;
    if (!(l && l->data && l->n == o->batch && l->d == t[0] && l->h == t[1] && l->w == t[2])) {
        dk_status st = dk_unet_plan(net, o->batch, t[0], t[1], t[2], err);
        if (st) return st;
    }
    return dk_tensor_alloc(x, o->batch, 1, t[0], t[1], t[2], err);
}

static dk_status check_options(const dk_unet *net, const dk_segment_options *o, dk_err *err)
{
    if (o->batch < 1 || o->batch > 64)
        return dk_err_set(err, DK_EINVAL, "segment: batch %d (expected 1..64)", o->batch);
    if (!(o->overlap >= 0 && o->overlap < 0.95f))
        return dk_err_set(err, DK_EINVAL, "segment: overlap %g (expected 0 <= overlap < 0.95)",
                          o->overlap);
    if (!(o->gaussian_sigma >= 0))
        return dk_err_set(err, DK_EINVAL, "segment: gaussian_sigma %g (expected >= 0)",
                          o->gaussian_sigma);
    if (dk_unet_config_of(net)->classes > DK_MAX_CLASSES)
        return dk_err_set(err, DK_EINVAL, "segment: more than %d classes", DK_MAX_CLASSES);
    return DK_OK;
}

static void run_tiles(dk_unet *net, const dk_segment_options *o, const float *image,
                      const int d[3], int *const starts[3], const int n[3], dk_tensor *x,
                      const float *w, float *probs, float *wsum)
{
    const int *t = o->tile, B = o->batch;
    const size_t tv = (size_t)t[0] * t[1] * t[2];
    const long total = (long)n[0] * n[1] * n[2];
    int origins[64][3];
    for (long tile = 0; tile < total;) {
        int filled = 0;
        for (; filled < B && tile < total; filled++, tile++) {
            int *og = origins[filled];
            og[0] = starts[0][tile / ((long)n[1] * n[2])];
            og[1] = starts[1][tile / n[2] % n[1]];
            og[2] = starts[2][tile % n[2]];
            tile_copy_in(image, d, og, t, x->data + (size_t)filled * tv);
        }
        if (filled < B) memset(x->data + (size_t)filled * tv, 0, (size_t)(B - filled) * tv * 4);
        dk_unet_forward(net, x);
        for (int b = 0; b < filled; b++)
            tile_accumulate(dk_unet_logits(net), b, d, origins[b], w, probs, wsum);
    }
}

dk_status dk_segment_probs(dk_unet *net, const dk_segment_options *o, const float *image,
                           const int d[3], float *probs, dk_err *err)
{
    dk_status st = check_options(net, o, err);
    if (st) return st;
    const int C = dk_unet_config_of(net)->classes;
    const size_t V = (size_t)d[0] * d[1] * d[2];
    dk_tensor x = {0};
    int *starts[3] = {NULL, NULL, NULL}, n[3];
    float *wsum = calloc(V, sizeof *wsum), *w = tile_weights(o->tile, o->gaussian_sigma);
    for (int a = 0; a < 3; a++)
        starts[a] = malloc(((size_t)d[a] + 1) * sizeof(int));
    if (!wsum || !w || !starts[0] || !starts[1] || !starts[2])
        st = dk_err_set(err, DK_ENOMEM, "segment: no memory for a %dx%dx%d volume", d[0], d[1],
                        d[2]);
    if (st == DK_OK) st = plan(net, o, &x, err);
    if (st == DK_OK) {
        for (int a = 0; a < 3; a++)
            n[a] = tile_starts(d[a], o->tile[a], o->overlap, starts[a]);
        memset(probs, 0, (size_t)C * V * sizeof *probs);
        run_tiles(net, o, image, d, starts, n, &x, w, probs, wsum);
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < V; i++)
                probs[(size_t)c * V + i] /= wsum[i];
    }
    for (int a = 0; a < 3; a++)
        free(starts[a]);
    free(wsum);
    free(w);
    dk_tensor_release(&x);
    return st;
}

dk_status dk_segment_labels(dk_unet *net, const dk_segment_options *o, const float *image,
                            const int d[3], uint8_t *labels, dk_err *err)
{
    const int C = dk_unet_config_of(net)->classes;
    const size_t V = (size_t)d[0] * d[1] * d[2];
    float *probs = malloc((size_t)C * V * sizeof *probs);
    if (!probs) return dk_err_set(err, DK_ENOMEM, "segment: no memory for %d x %zu probabilities", C, V);
    dk_status st = dk_segment_probs(net, o, image, d, probs, err);
    for (size_t i = 0; st == DK_OK && i < V; i++) {
        int best = 0;
        for (int c = 1; c < C; c++)
            if (probs[(size_t)c * V + i] > probs[(size_t)best * V + i]) best = c;
        labels[i] = (uint8_t)best;
    }
    free(probs);
    return st;
}
