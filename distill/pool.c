/* pool.c: 3D max pooling with kernel = stride per axis (layers.h). The windows
 * never overlap, so backward is a plain scatter of dy through the saved argmax.
 * Planes are split across dk_blas_threads() threads (parallel.h).
 * Other layers live in their own files (norm.c, activation.c, ...). */
#include "distill/layers.h"

#include <math.h>
#include <string.h>

#include "distill/hot_loop.h"
#include "distill/parallel.h"

/* Input columns reduced at once; the column buffers live on the stack. */
#define POOL_COLS 1024
/* Fixed-length blocks with a local result let GCC vectorise at -O2 (no alias
 * versioning, no epilogue); isgreater() is the quiet compare, which, unlike
 * `>`, may be if-converted under the default -ftrapping-math. */
#define BLOCK 8
/* Below this many input values a second thread costs more than it saves. */
#define MIN_PARALLEL ((size_t)1 << 17)

static void check_pool_shapes(const int k[3], const dk_tensor *x, const dk_tensor *y)
{
    DK_CHECK_SHAPE(k[0] >= 1 && k[1] >= 1 && k[2] >= 1 && k[2] <= POOL_COLS, x, y);
    DK_CHECK_SHAPE(x->n == y->n && x->c == y->c, x, y);
    DK_CHECK_SHAPE(y->d == x->d / k[0] && y->h == x->h / k[1] && y->w == x->w / k[2], x, y);
}

/* Should v replace best? Larger wins; a NaN beats a number, so NaNs propagate. */
static inline int beats(float v, float best)
{
    return isgreater(v, best) | (isnan(v) & !isnan(best));
}

/* Fold one more window row into the per-column maxima. Rows arrive in (d, h)
 * order and only a strict win replaces, so ties keep the earliest row. */
static inline void merge_row(const float *row, int32_t row_at, int cols, float *colmax,
                             int32_t *colrow)
{
    int i = 0;
    for (; i + BLOCK <= cols; i += BLOCK) {
        for (int l = 0; l < BLOCK; l++) {
            int take = beats(row[i + l], colmax[i + l]);
            colmax[i + l] = take ? row[i + l] : colmax[i + l];
            colrow[i + l] = take ? row_at : colrow[i + l];
        }
    }
    for (; i < cols; i++) {
        int take = beats(row[i], colmax[i]);
        colmax[i] = take ? row[i] : colmax[i];
        colrow[i] = take ? row_at : colrow[i];
    }
}

/* Does column candidate (v, at) replace the current (best, best_at)? A tie goes to
 * the smaller flat index, so overall the first maximum in (d, h, w) order wins,
 * as in PyTorch. */
static inline int wins(float v, int32_t at, float best, int32_t best_at)
{
    return beats(v, best) | ((v == best) & (at < best_at));
}

/* Reduce the column maxima kw at a time into `outs` outputs (any kw). */
static inline void reduce_cols(int kw, const float *colmax, const int32_t *colrow, int32_t col0,
                               int outs, float *y, int32_t *arg)
{
    for (int o = 0; o < outs; o++) {
        y[o] = colmax[o * kw];
        arg[o] = colrow[o * kw] + col0 + o * kw;
    }
    for (int j = 1; j < kw; j++) {
        for (int o = 0; o < outs; o++) {
            float v = colmax[o * kw + j];
            int32_t at = colrow[o * kw + j] + col0 + o * kw + j;
            int take = wins(v, at, y[o], arg[o]);
            y[o] = take ? v : y[o];
            arg[o] = take ? at : arg[o];
        }
    }
}

/* The same for kw = 2, the U-Net's case, in vectorisable blocks. */
static inline void reduce_pairs(const float *restrict colmax, const int32_t *restrict colrow,
                                int32_t col0, int outs, float *restrict y, int32_t *restrict arg)
{
    int o = 0;
    for (; o + BLOCK <= outs; o += BLOCK) {
        for (int l = 0; l < BLOCK; l++) {
            int w = 2 * (o + l);
            float a = colmax[w], b = colmax[w + 1];
            int32_t a_at = colrow[w] + col0 + w, b_at = colrow[w + 1] + col0 + w + 1;
            int take = wins(b, b_at, a, a_at);
            y[o + l] = take ? b : a;
            arg[o + l] = take ? b_at : a_at;
        }
    }
    if (o < outs)
        reduce_cols(2, colmax + 2 * o, colrow + 2 * o, col0 + 2 * o, outs - o, y + o, arg + o);
}

/* One output row (fixed od, oh) of one plane: first the elementwise max down the
 * kd*kh window rows (contiguous, vectorised), then across each window's kw columns.
 * Compares and selects only: every clone gives the same bits. */
DK_HOT_LOOP static void pool_row(const int k[3], const float *plane, int H, int W, int id0, int ih0,
                                 int out_w, float *y_row, int32_t *arg_row)
{
    float colmax[POOL_COLS];
    int32_t colrow[POOL_COLS];
    int per_chunk = POOL_COLS / k[2];
    for (int o0 = 0; o0 < out_w; o0 += per_chunk) {
        int outs = out_w - o0 < per_chunk ? out_w - o0 : per_chunk;
        int cols = outs * k[2], col0 = o0 * k[2];
        for (int kd = 0; kd < k[0]; kd++) {
            for (int kh = 0; kh < k[1]; kh++) {
                int32_t row_at = (int32_t)(((size_t)(id0 + kd) * H + ih0 + kh) * W);
                const float *row = plane + row_at + col0;
                if (kd == 0 && kh == 0) {
                    memcpy(colmax, row, cols * sizeof(float));
                    for (int i = 0; i < cols; i++)
                        colrow[i] = row_at;
                } else {
                    merge_row(row, row_at, cols, colmax, colrow);
                }
            }
        }
        if (k[2] == 2)
            reduce_pairs(colmax, colrow, col0, outs, y_row + o0, arg_row + o0);
        else
            reduce_cols(k[2], colmax, colrow, col0, outs, y_row + o0, arg_row + o0);
    }
}

/* pool_row without argmax (inference): the same maxima, compares and selects only.
 * Values equal under == are the same number but for the sign of a zero, which
 * this may take from another element of the window than pool_row does. */
DK_HOT_LOOP static void pool_row_max(const int k[3], const float *plane, int H, int W, int id0,
                                     int ih0, int out_w, float *y_row)
{
    float colmax[POOL_COLS];
    int per_chunk = POOL_COLS / k[2];
    for (int o0 = 0; o0 < out_w; o0 += per_chunk) {
        int outs = out_w - o0 < per_chunk ? out_w - o0 : per_chunk;
        int cols = outs * k[2], col0 = o0 * k[2], i;
        for (int kd = 0; kd < k[0]; kd++)
            for (int kh = 0; kh < k[1]; kh++) {
                const float *row = plane + ((size_t)(id0 + kd) * H + ih0 + kh) * W + col0;
                if (kd == 0 && kh == 0) {
                    memcpy(colmax, row, cols * sizeof(float));
                    continue;
                }
                for (i = 0; i + BLOCK <= cols; i += BLOCK)
                    for (int l = 0; l < BLOCK; l++)
                        colmax[i + l] =
                            beats(row[i + l], colmax[i + l]) ? row[i + l] : colmax[i + l];
                for (; i < cols; i++)
                    colmax[i] = beats(row[i], colmax[i]) ? row[i] : colmax[i];
            }
        float *y = y_row + o0;
        int o = 0;
        if (k[2] == 2)
            for (; o + BLOCK <= outs; o += BLOCK)
                for (int l = 0; l < BLOCK; l++) {
                    float a = colmax[2 * (o + l)], b = colmax[2 * (o + l) + 1];
                    y[o + l] = beats(b, a) ? b : a;
                }
        for (; o < outs; o++) {
            float best = colmax[o * k[2]];
            for (int j = 1; j < k[2]; j++)
                best = beats(colmax[o * k[2] + j], best) ? colmax[o * k[2] + j] : best;
            y[o] = best;
        }
    }
}

typedef struct pool_job {
    const int *k;
    const dk_tensor *x, *dy;
    dk_tensor *y, *dx;
    int32_t *argmax;
    const int32_t *argmax_in;
    bool add;
} pool_job;

/* Thread t pools planes [p0, p1): planes are independent, so the result does not
 * depend on the thread count. */
static void forward_worker(void *arg, int t, int nthreads)
{
    const pool_job *j = arg;
    const dk_tensor *x = j->x, *y = j->y;
    size_t in_plane = dk_tensor_spatial(x), out_plane = dk_tensor_spatial(y), p0, p1;
    dk_parallel_share((size_t)x->n * x->c, t, nthreads, &p0, &p1);
    for (size_t p = p0; p < p1; p++) {
        const float *xp = x->data + p * in_plane;
        for (int od = 0; od < y->d; od++) {
            for (int oh = 0; oh < y->h; oh++) {
                size_t at = p * out_plane + ((size_t)od * y->h + oh) * y->w;
                if (!j->argmax)
                    pool_row_max(j->k, xp, x->h, x->w, od * j->k[0], oh * j->k[1], y->w,
                                 y->data + at);
                else
                    pool_row(j->k, xp, x->h, x->w, od * j->k[0], oh * j->k[1], y->w, y->data + at,
                             j->argmax + at);
            }
        }
    }
}

static int pool_threads(const dk_tensor *big)
{
    return dk_parallel_threads(dk_tensor_numel(big), MIN_PARALLEL, (size_t)big->n * big->c);
}

void dk_maxpool3d_forward(const int k[3], const dk_tensor *x, dk_tensor *y, int32_t *argmax,
                          dk_pool *pool)
{
    check_pool_shapes(k, x, y);
    /* argmax is int32: a plane must be addressable by it. */
    DK_CHECK_SHAPE(dk_tensor_spatial(x) <= INT32_MAX, x, y);
    pool_job j = {.k = k, .x = x, .y = y, .argmax = argmax};
    dk_parallel_run(pool, pool_threads(x), forward_worker, &j);
}

/* Thread t scatters planes [p0, p1). Without `add`, each plane is zeroed first,
 * plane by plane, so it is still in cache when scattered into. */
static void backward_worker(void *arg, int t, int nthreads)
{
    const pool_job *j = arg;
    size_t in_plane = dk_tensor_spatial(j->dx), out_plane = dk_tensor_spatial(j->dy), p0, p1;
    dk_parallel_share((size_t)j->dx->n * j->dx->c, t, nthreads, &p0, &p1);
    for (size_t p = p0; p < p1; p++) {
        float *dxp = j->dx->data + p * in_plane;
        const float *dyp = j->dy->data + p * out_plane;
        const int32_t *ap = j->argmax_in + p * out_plane;
        if (j->add) {
            for (size_t i = 0; i < out_plane; i++)
                dxp[ap[i]] += dyp[i];
            continue;
        }
        memset(dxp, 0, in_plane * sizeof(float));
        for (size_t i = 0; i < out_plane; i++)
            dxp[ap[i]] = dyp[i];
    }
}

static void pool_backward(const int k[3], const dk_tensor *dy, const int32_t *argmax, dk_tensor *dx,
                          bool add, dk_pool *pool)
{
    check_pool_shapes(k, dx, dy);
    pool_job j = {.k = k, .dy = dy, .dx = dx, .argmax_in = argmax, .add = add};
    dk_parallel_run(pool, pool_threads(dx), backward_worker, &j);
}

void dk_maxpool3d_backward(const int k[3], const dk_tensor *dy, const int32_t *argmax,
                           dk_tensor *dx, dk_pool *pool)
{
    pool_backward(k, dy, argmax, dx, false, pool);
}

void dk_maxpool3d_backward_add(const int k[3], const dk_tensor *dy, const int32_t *argmax,
                               dk_tensor *dx, dk_pool *pool)
{
    pool_backward(k, dy, argmax, dx, true, pool);
}
