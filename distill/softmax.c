/* softmax.c: softmax over channels at each voxel, with temperature (layers.h).
 * Channels are a plane apart, so voxels go in blocks of BLOCK: per block every
 * channel is one contiguous run of W-fastest voxels, and the block's running max
 * and sum stay in registers. The exponential is our own branch-free one so the
 * loops vectorise (libm's expf is a call per element); the loops over blocks are
 * DK_HOT_LOOP clones (hot_loop.h), the same bits on every CPU. */
#include "distill/layers.h"

#include <math.h>
#include <stdint.h>

#include "distill/hot_loop.h"
#include "distill/parallel.h"

/* Voxels per block: one 64-byte line per channel; a fixed trip count with local
 * results is what GCC vectorises at -O2. */
#define BLOCK 16
/* Below this many values a second thread costs more than it saves. */
#define MIN_PARALLEL ((size_t)1 << 17)

/* cond ? a : b through the bits, which GCC vectorises where a float `?:` against
 * a constant stays a branch (under the default -ftrapping-math). */
static inline float pick(int cond, float a, float b)
{
    union {
        float f;
        int32_t i;
    } ua = {.f = a}, ub = {.f = b}, r;
    int32_t mask = -cond;
    r.i = (ua.i & mask) | (ub.i & ~mask);
    return r.f;
}

/* e^x for x <= 0 (here x = (logit - max) / T), within 1e-7 relative of exp():
 * x = n ln 2 + r with |r| <= ln 2 / 2, e^r by the Cephes expf polynomial, 2^n
 * built in the exponent bits. Below -87 (e^x < 2e-38) the result is 0, so -inf
 * logits (masked classes) get probability 0; NaN stays NaN. */
static inline float exp_nonpos(float x)
{
    int in_range = isgreater(x, -87.0f), keep = in_range | isnan(x);
    /* n comes from a value clamped to [-87, 0] and never NaN, so the int conversion
     * below is always defined; a NaN x still reaches the result through r. */
    float xc = pick(in_range, x, -87.0f);
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504f + round_magic) - round_magic;
    float r = x - n * 0.693359375f; /* ln 2 split in two (Cody-Waite): n * hi is exact */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } two_n = {.i = ((int32_t)n + 127) << 23};
    return pick(keep, p * two_n.f, 0.0f);
}

/* Softmax of `len` (<= BLOCK) voxels starting at x, channel stride `plane`, into y
 * at channel stride `ystride`. y may alias x (with ystride = plane): each element is
 * read before it is written. */
static inline void softmax_block(const float *x, float *y, int channels, size_t plane,
                                 size_t ystride, int len, float inv_t)
{
    float peak[BLOCK], total[BLOCK], e[BLOCK];
    for (int l = 0; l < len; l++)
        peak[l] = x[l], total[l] = 0;
    for (int c = 1; c < channels; c++) {
        const float *xc = x + c * plane;
        for (int l = 0; l < len; l++)
            peak[l] = pick(isgreater(xc[l], peak[l]), xc[l], peak[l]);
    }
    for (int c = 0; c < channels; c++) {
        const float *xc = x + c * plane;
        for (int l = 0; l < len; l++)
            e[l] = exp_nonpos((xc[l] - peak[l]) * inv_t);
        for (int l = 0; l < len; l++)
            total[l] += e[l];
        for (int l = 0; l < len; l++)
            y[c * ystride + l] = e[l];
    }
    for (int l = 0; l < len; l++)
        total[l] = 1.0f / total[l];
    for (int c = 0; c < channels; c++) {
        float *yc = y + c * ystride;
        for (int l = 0; l < len; l++)
            e[l] = yc[l] * total[l];
        for (int l = 0; l < len; l++)
            yc[l] = e[l];
    }
}

typedef struct softmax_job {
    const dk_tensor *x;
    dk_tensor *y;
    float inv_t;
    size_t blocks; /* per sample, the last one partial */
} softmax_job;

/* Thread t's share of the blocks of every sample: each voxel's value does not
 * depend on which thread or block computed it. */
DK_HOT_LOOP static void softmax_blocks(const softmax_job *j, size_t b0, size_t b1)
{
    size_t plane = dk_tensor_spatial(j->x), sample = (size_t)j->x->c * plane;
    for (size_t b = b0; b < b1; b++) {
        size_t n = b / j->blocks, v = b % j->blocks * BLOCK;
        const float *x = j->x->data + n * sample + v;
        float *y = j->y->data + n * sample + v;
        /* a constant trip count for full blocks: that is what GCC vectorises */
        if (plane - v >= BLOCK)
            softmax_block(x, y, j->x->c, plane, plane, BLOCK, j->inv_t);
        else
            softmax_block(x, y, j->x->c, plane, plane, (int)(plane - v), j->inv_t);
    }
}

static void softmax_worker(void *arg, int t, int nthreads)
{
    const softmax_job *j = arg;
    size_t b0, b1;
    dk_parallel_share(j->blocks * (size_t)j->x->n, t, nthreads, &b0, &b1);
    softmax_blocks(j, b0, b1);
}

void dk_softmax_channels_forward(const dk_tensor *x, float temperature, dk_tensor *y, dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    DK_CHECK_SHAPE(temperature > 0, x, y);
    softmax_job j = {x, y, 1.0f / temperature, (dk_tensor_spatial(x) + BLOCK - 1) / BLOCK};
    size_t pieces = j.blocks * (size_t)x->n;
    dk_parallel_run(pool, dk_parallel_threads(dk_tensor_numel(x), MIN_PARALLEL, pieces),
                    softmax_worker, &j);
}

typedef struct accumulate_job {
    const dk_tensor *x;
    int sample;
    const int *dims, *before;
    float inv_t;
    float *acc_t, *acc_1;
} accumulate_job;

/* acc[c * ystride + l] += p[c * BLOCK + l] for l < len. */
static inline void add_block(float *acc, size_t ystride, const float *p, int channels, int len)
{
    for (int c = 0; c < channels; c++)
        for (int l = 0; l < len; l++)
            acc[c * ystride + l] += p[c * BLOCK + l];
}

/* Crop rows r0 .. r1 (z * dims[1] + y) of the job, block by block through p (2 x C
 * x BLOCK floats). */
DK_HOT_LOOP static void accumulate_rows(const accumulate_job *j, size_t r0, size_t r1, float *p)
{
    const dk_tensor *x = j->x;
    const int C = x->c, *dims = j->dims, *before = j->before;
    const size_t plane = dk_tensor_spatial(x), crop = (size_t)dims[0] * dims[1] * dims[2];
    const float *xs = x->data + (size_t)j->sample * C * plane;
    float *pt = p, *p1 = p + (size_t)C * BLOCK;
    for (size_t r = r0; r < r1; r++) {
        size_t z = r / (size_t)dims[1], y = r % (size_t)dims[1];
        const float *row = xs + ((z + before[0]) * x->h + y + before[1]) * x->w + before[2];
        for (int i = 0; i < dims[2]; i += BLOCK) {
            size_t at = r * dims[2] + i;
            if (dims[2] - i >= BLOCK) { /* a constant trip count: GCC vectorises it */
                softmax_block(row + i, pt, C, plane, BLOCK, BLOCK, j->inv_t);
                softmax_block(row + i, p1, C, plane, BLOCK, BLOCK, 1.0f);
                add_block(j->acc_t + at, crop, pt, C, BLOCK);
                add_block(j->acc_1 + at, crop, p1, C, BLOCK);
            } else {
                int len = dims[2] - i;
                softmax_block(row + i, pt, C, plane, BLOCK, len, j->inv_t);
                softmax_block(row + i, p1, C, plane, BLOCK, len, 1.0f);
                add_block(j->acc_t + at, crop, pt, C, len);
                add_block(j->acc_1 + at, crop, p1, C, len);
            }
        }
    }
}

static void accumulate_worker(void *arg, int t, int nthreads)
{
    const accumulate_job *j = arg;
    size_t r0, r1;
    dk_parallel_share((size_t)j->dims[0] * j->dims[1], t, nthreads, &r0, &r1);
    float p[2 * DK_SOFTMAX_ACCUMULATE_MAX_CHANNELS * BLOCK];
    accumulate_rows(j, r0, r1, p);
}

void dk_softmax_channels_accumulate(const dk_tensor *x, int sample, float temperature,
                                    const int dims[3], const int before[3], float *acc_t,
                                    float *acc_1, dk_pool *pool)
{
    DK_CHECK_SHAPE(temperature > 0 && sample >= 0 && sample < x->n &&
                       x->c <= DK_SOFTMAX_ACCUMULATE_MAX_CHANNELS && before[0] >= 0 &&
                       before[1] >= 0 && before[2] >= 0 && before[0] + dims[0] <= x->d &&
                       before[1] + dims[1] <= x->h && before[2] + dims[2] <= x->w,
                   x, x);
    accumulate_job j = {x, sample, dims, before, 1.0f / temperature, acc_t, acc_1};
    size_t rows = (size_t)dims[0] * dims[1];
    dk_parallel_run(pool, dk_parallel_threads(rows * dims[2] * x->c, MIN_PARALLEL, rows),
                    accumulate_worker, &j);
}

/* dx = y * (dy - sum_c y*dy) / T over `len` (<= BLOCK) voxels; dx may alias dy. */
static inline void softmax_backward_block(const float *y, const float *dy, float *dx, int channels,
                                          size_t plane, int len, float inv_t)
{
    float dot[BLOCK], g[BLOCK];
    for (int l = 0; l < len; l++)
        dot[l] = 0;
    for (int c = 0; c < channels; c++) {
        const float *yc = y + c * plane, *dyc = dy + c * plane;
        for (int l = 0; l < len; l++)
            g[l] = yc[l] * dyc[l];
        for (int l = 0; l < len; l++)
            dot[l] += g[l];
    }
    for (int c = 0; c < channels; c++) {
        const float *yc = y + c * plane, *dyc = dy + c * plane;
        for (int l = 0; l < len; l++)
            g[l] = yc[l] * (dyc[l] - dot[l]) * inv_t;
        for (int l = 0; l < len; l++)
            dx[c * plane + l] = g[l];
    }
}

/* Every sample of the backward, block by block. */
DK_HOT_LOOP static void backward_samples(const dk_tensor *y, const dk_tensor *dy, float inv_t,
                                         dk_tensor *dx)
{
    size_t plane = dk_tensor_spatial(y), sample = (size_t)y->c * plane;
    for (int n = 0; n < y->n; n++) {
        const float *yn = y->data + n * sample, *dyn = dy->data + n * sample;
        float *dxn = dx->data + n * sample;
        size_t v = 0;
        for (; v + BLOCK <= plane; v += BLOCK)
            softmax_backward_block(yn + v, dyn + v, dxn + v, y->c, plane, BLOCK, inv_t);
        if (v < plane)
            softmax_backward_block(yn + v, dyn + v, dxn + v, y->c, plane, (int)(plane - v), inv_t);
    }
}

void dk_softmax_channels_backward(const dk_tensor *y, const dk_tensor *dy, float temperature,
                                  dk_tensor *dx)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(y, dy), y, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(y, dx), y, dx);
    DK_CHECK_SHAPE(temperature > 0, y, dy);
    backward_samples(y, dy, 1.0f / temperature, dx);
}
