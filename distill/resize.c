/* resize.c: trilinear resize of the spatial dims with align_corners = false
 * (layers.h), for any input and output sizes: the taps and weights are those
 * of PyTorch's F.interpolate(mode="trilinear", size=...); only the order of the
 * final sums differs (float rounding).
 *
 * Separable per output row: the four input rows its (d, h) taps pick are first
 * blended into one row (contiguous, vectorised), then that row is sampled along
 * W through a table of taps. Backward runs the same steps transposed, in a fixed
 * order, so it is deterministic. All scratch is on the stack. */
#include "distill/layers.h"

#include <string.h>

/* Output columns per chunk, and the widest input span a chunk may blend. */
#define WCHUNK 256
#define SPAN   1024
/* Fixed-length blocks through a local array vectorise at -O2 (no alias checks). */
#define BLOCK 16

/* Where one output index samples its axis: two neighbours and their weights. */
typedef struct tap {
    int i0, i1;
    float l0, l1;
} tap;

/* PyTorch's source index for align_corners = false: (dst + 0.5) * scale - 0.5,
 * clamped below at 0, with the scale in/out rounded to float but the position
 * and weights in double (what torch's CPU kernel does: matched to 1e-8 against
 * torch 1.13, where an all-float position is off by up to 3e-5 on long axes).
 * The upper neighbour repeats the last sample at the edge. */
static tap source_tap(int dst, int in, int out)
{
    float scale = (float)in / (float)out;
    double real = scale * (dst + 0.5) - 0.5;
    if (real < 0) real = 0;
    int i0 = (int)real;
    if (i0 > in - 1) i0 = in - 1;
    double l1 = real - i0;
    return (tap){.i0 = i0, .i1 = i0 + (i0 < in - 1), .l0 = (float)(1 - l1), .l1 = (float)l1};
}

/* The W taps of one chunk of output columns, indices relative to `base`. */
typedef struct wtable {
    int base, span, len;
    int i0[WCHUNK], i1[WCHUNK];
    float l0[WCHUNK], l1[WCHUNK];
} wtable;

/* Tabulate output columns from `start` on, as many as fit WCHUNK and SPAN. */
static void fill_wtable(wtable *t, int start, int in, int out)
{
    t->base = source_tap(start, in, out).i0;
    t->len = 0;
    for (int o = start; o < out && t->len < WCHUNK; o++) {
        tap a = source_tap(o, in, out);
        if (a.i1 - t->base >= SPAN) break;
        t->i0[t->len] = a.i0 - t->base;
        t->i1[t->len] = a.i1 - t->base;
        t->l0[t->len] = a.l0;
        t->l1[t->len] = a.l1;
        t->span = a.i1 - t->base + 1;
        t->len++;
    }
}

/* The same taps seen from the input side: the outputs whose i0 is column j are
 * [first0[j], first0[j+1]), those whose i1 is j are [first1[j], first1[j+1])
 * (taps never decrease along W). Backward then gathers instead of scattering,
 * which avoids a store-to-load chain through the same few columns. */
typedef struct wsources {
    int first0[SPAN + 1], first1[SPAN + 1];
} wsources;

static void fill_wsources(const wtable *t, wsources *s)
{
    int v0 = 0, v1 = 0;
    for (int j = 0; j <= t->span; j++) {
        while (v0 < t->len && t->i0[v0] < j)
            v0++;
        while (v1 < t->len && t->i1[v1] < j)
            v1++;
        s->first0[j] = v0;
        s->first1[j] = v1;
    }
}

/* The four input rows (d0 h0, d0 h1, d1 h0, d1 h1) an output row blends, and weights. */
typedef struct row_taps {
    size_t at[4];
    float weight[4];
} row_taps;

static row_taps pick_rows(int od, int oh, int D, int H, int W, int out_d, int out_h)
{
    tap td = source_tap(od, D, out_d), th = source_tap(oh, H, out_h);
    row_taps r;
    r.at[0] = ((size_t)td.i0 * H + th.i0) * W;
    r.at[1] = ((size_t)td.i0 * H + th.i1) * W;
    r.at[2] = ((size_t)td.i1 * H + th.i0) * W;
    r.at[3] = ((size_t)td.i1 * H + th.i1) * W;
    r.weight[0] = td.l0 * th.l0;
    r.weight[1] = td.l0 * th.l1;
    r.weight[2] = td.l1 * th.l0;
    r.weight[3] = td.l1 * th.l1;
    return r;
}

/* blend[j] = sum_k weight[k] * row_k[j] over n columns. */
static void blend_rows(const float *xp, const row_taps *r, int n, float *blend)
{
    const float *a = xp + r->at[0], *b = xp + r->at[1], *c = xp + r->at[2], *d = xp + r->at[3];
    float wa = r->weight[0], wb = r->weight[1], wc = r->weight[2], wd = r->weight[3];
    int j = 0;
    for (; j + BLOCK <= n; j += BLOCK) {
        float out[BLOCK];
        for (int l = 0; l < BLOCK; l++)
            out[l] = wa * a[j + l] + wb * b[j + l] + wc * c[j + l] + wd * d[j + l];
        for (int l = 0; l < BLOCK; l++)
            blend[j + l] = out[l];
    }
    for (; j < n; j++)
        blend[j] = wa * a[j] + wb * b[j] + wc * c[j] + wd * d[j];
}

/* dst[j] += weight * src[j] over n columns (dst may be any row of dx). */
static void add_scaled(float *dst, float weight, const float *src, int n)
{
    int j = 0;
    for (; j + BLOCK <= n; j += BLOCK) {
        float out[BLOCK];
        for (int l = 0; l < BLOCK; l++)
            out[l] = dst[j + l] + weight * src[j + l];
        for (int l = 0; l < BLOCK; l++)
            dst[j + l] = out[l];
    }
    for (; j < n; j++)
        dst[j] += weight * src[j];
}

static void check_resize_shapes(const dk_tensor *x, const dk_tensor *y)
{
    DK_CHECK_SHAPE(x->n == y->n && x->c == y->c, x, y);
}

static void resize_plane(const float *xp, const dk_tensor *x, float *yp, const dk_tensor *y)
{
    wtable t;
    float blend[SPAN];
    for (int w0 = 0; w0 < y->w; w0 += t.len) {
        fill_wtable(&t, w0, x->w, y->w);
        for (int od = 0; od < y->d; od++) {
            for (int oh = 0; oh < y->h; oh++) {
                row_taps r = pick_rows(od, oh, x->d, x->h, x->w, y->d, y->h);
                blend_rows(xp + t.base, &r, t.span, blend);
                float *out = yp + ((size_t)od * y->h + oh) * y->w + w0;
                for (int v = 0; v < t.len; v++)
                    out[v] = t.l0[v] * blend[t.i0[v]] + t.l1[v] * blend[t.i1[v]];
            }
        }
    }
}

void dk_resize_trilinear_forward(const dk_tensor *x, dk_tensor *y)
{
    check_resize_shapes(x, y);
    size_t in_plane = dk_tensor_spatial(x), out_plane = dk_tensor_spatial(y);
    size_t planes = (size_t)x->n * x->c;
    for (size_t p = 0; p < planes; p++)
        resize_plane(x->data + p * in_plane, x, y->data + p * out_plane, y);
}

/* spread[j] = the gradient reaching input column j of the chunk from output row g. */
static void spread_row(const wtable *t, const wsources *s, const float *g, float *spread)
{
    for (int j = 0; j < t->span; j++) {
        float sum = 0;
        for (int v = s->first0[j]; v < s->first0[j + 1]; v++)
            sum += t->l0[v] * g[v];
        for (int v = s->first1[j]; v < s->first1[j + 1]; v++)
            sum += t->l1[v] * g[v];
        spread[j] = sum;
    }
}

static void resize_plane_backward(const float *dyp, const dk_tensor *dy, float *dxp,
                                  const dk_tensor *dx)
{
    wtable t;
    wsources sources;
    float spread[SPAN];
    memset(dxp, 0, dk_tensor_spatial(dx) * sizeof(float));
    for (int w0 = 0; w0 < dy->w; w0 += t.len) {
        fill_wtable(&t, w0, dx->w, dy->w);
        fill_wsources(&t, &sources);
        for (int od = 0; od < dy->d; od++) {
            for (int oh = 0; oh < dy->h; oh++) {
                const float *g = dyp + ((size_t)od * dy->h + oh) * dy->w + w0;
                spread_row(&t, &sources, g, spread);
                row_taps r = pick_rows(od, oh, dx->d, dx->h, dx->w, dy->d, dy->h);
                /* One row at a time: at the edges two taps may be the same row. */
                for (int k = 0; k < 4; k++)
                    add_scaled(dxp + r.at[k] + t.base, r.weight[k], spread, t.span);
            }
        }
    }
}

void dk_resize_trilinear_backward(const dk_tensor *dy, dk_tensor *dx)
{
    check_resize_shapes(dx, dy);
    size_t in_plane = dk_tensor_spatial(dx), out_plane = dk_tensor_spatial(dy);
    size_t planes = (size_t)dx->n * dx->c;
    for (size_t p = 0; p < planes; p++)
        resize_plane_backward(dy->data + p * out_plane, dy, dx->data + p * in_plane, dx);
}
