/* conv.c: the 3D convolution engine behind conv.h -- tile planning, threads, the
 * GEMMs (OpenBLAS), and the public conv / transposed-conv entry points. The data
 * movement kernels (im2col, col2im, folding, weight packing) live in im2col.c.
 *
 * Three passes, all in conv semantics (the transposed conv maps onto them):
 *   forward       y = W * x             : per output tile, Y^T = col^T W^T
 *   weight grad   dW += dy * col^T      : per tile, accumulated per thread
 *   data grad     stride 1: the forward pass of the mirrored, transposed kernel;
 *                 otherwise dcol = W^T dy per tile, scattered by col2im.
 * Threads: each thread runs its own single-threaded GEMMs on its own tiles (a tile
 * stays in that core's L2 from gather to GEMM to combine). The forward passes take
 * runs of tiles from a shared counter (each output is one tile's, so the schedule
 * does not change a bit); the weight gradient cuts the units into one chunk per
 * thread and sums the per-thread gradients in thread order, so results are
 * bit-identical for a given thread count. */
#include "distill/conv.h"

#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/im2col.h"
#include "distill/parallel.h"
#include "distill/winograd.h"

#define MAX_THREADS DK_PARALLEL_MAX_THREADS
/* GEMM rows (voxels) per tile; measured with bench_conv. */
#define DEFAULT_TILE_ROWS 256
/* Workspaces are sized for at least this many threads, so a plan made with one
 * BLAS thread still runs two-way parallel later. */
#define PLAN_THREADS 2
/* The weight gradient is summed in this many fixed chunks of the output (fewer on
 * tiny shapes), each into its own accumulator, added in chunk order at the end:
 * threads can then take chunks as they come without changing a bit. */
#define WEIGHT_CHUNKS 4

typedef enum pass_kind { PASS_FORWARD, PASS_WEIGHT, PASS_SCATTER } pass_kind;

typedef struct tile_plan {
    dk_conv_shape s;
    size_t tile_units;     /* most units in one tile */
    size_t shared;         /* floats shared by all threads (packed weight, accumulators) */
    size_t per_thread;     /* floats each thread owns */
    size_t col_off, z_off; /* offsets in a thread's area */
} tile_plan;

dk_conv_tuning dk_conv_default_tuning(void)
{
    return (dk_conv_tuning){.tile_rows = DEFAULT_TILE_ROWS,
                            .max_threads = 0,
                            .fold = -1,
                            .winograd = -1,
                            .fused = -1,
                            .simd = 0,
                            .tile = 0};
}

/* How many axes to fold (im2col.h). Measured (bench_conv, one thread): folding w
 * lifts every 3x3x3 layer of the U-Net from 65-100 to 110-150 GFLOP/s; folding h
 * too helps where a whole input plane is a small tile (16^3 and 8^3 levels), and
 * hurts a single input channel (K = 3 is too thin). */
static int fold_wanted(const dk_conv_tuning *tune, const int in[3], int cin)
{
    if (tune->fold >= 0) return tune->fold;
    return cin > 1 && (size_t)in[1] * in[2] <= 2 * DEFAULT_TILE_ROWS ? 2 : 1;
}

/* Floats per tile row of a pass, and what a thread needs besides its tiles. */
static size_t row_floats(const dk_conv_shape *s, pass_kind kind)
{
    if (kind == PASS_SCATTER) return (size_t)s->cin * s->taps;
    size_t f = s->mode == DK_COL_DIRECT ? 0 : (size_t)s->col_k;
    if (s->mode == DK_COL_FOLDED) f += (size_t)s->col_n;
    return f;
}

static bool plan_try(tile_plan *p, pass_kind kind, const dk_conv3d_geom *g, int cin, int cout,
                     const int in[3], const int out[3], int fold, size_t tile_rows)
{
    dk_conv_shape_init(&p->s, g, cin, cout, in, out, fold);
    const dk_conv_shape *s = &p->s;
    size_t unit_floats = row_floats(s, kind) * s->unit_len;
    if (s->mode == DK_COL_FOLDED && unit_floats > DK_CONV_TILE_FLOATS) return false;
    /* About tile_rows GEMM rows: OpenBLAS runs these thin GEMMs fastest when the
     * column tile is a few hundred rows (it then stays in L2 while packed). */
    size_t units = (tile_rows + s->unit_len / 2) / s->unit_len;
    if (unit_floats && units > DK_CONV_TILE_FLOATS / unit_floats)
        units = DK_CONV_TILE_FLOATS / unit_floats;
    if (units < 1) units = 1;
    if (units > s->units) units = s->units;
    p->tile_units = units;
    size_t rows = units * s->unit_len, kn = (size_t)s->col_k * s->col_n;
    p->shared = kind == PASS_FORWARD  ? dk_line_floats(kn)
                : kind == PASS_WEIGHT ? WEIGHT_CHUNKS * dk_line_floats(kn)
                                      : 0;
    if (kind == PASS_SCATTER) {
        p->per_thread = dk_line_floats(rows * row_floats(s, kind));
        return true;
    }
    /* shared: forward [packed weight], weight [accumulator per chunk];
     * per thread: forward [col | z], weight [col | g] */
    p->col_off = 0;
    p->z_off = p->col_off + (s->mode == DK_COL_DIRECT ? 0 : dk_line_floats(rows * s->col_k));
    p->per_thread = p->z_off + (s->mode == DK_COL_FOLDED ? dk_line_floats(rows * s->col_n) : 0);
    return true;
}

static void plan_pass(tile_plan *p, pass_kind kind, const dk_conv3d_geom *g, int cin, int cout,
                      const int in[3], const int out[3], const dk_conv_tuning *tune)
{
    int fold = kind == PASS_SCATTER ? 0 : fold_wanted(tune, in, cin);
    size_t rows = tune->tile_rows ? tune->tile_rows : DEFAULT_TILE_ROWS;
    while (!plan_try(p, kind, g, cin, cout, in, out, fold, rows))
        fold--;
}

static size_t plan_floats(const tile_plan *p, int threads)
{
    return p->shared + (size_t)threads * p->per_thread;
}

/* Backward data as a forward conv with the mirrored kernel needs stride 1 and
 * pad <= kernel - 1 on every axis (the mirrored conv's pad is kernel - 1 - pad). */
static bool data_grad_is_conv(const dk_conv3d_geom *g, dk_conv3d_geom *mirrored)
{
    *mirrored = *g;
    for (int a = 0; a < 3; a++) {
        if (g->stride[a] != 1 || g->pad[a] > g->kernel[a] - 1) return false;
        mirrored->pad[a] = g->kernel[a] - 1 - g->pad[a];
    }
    return true;
}

/* Threads for a pass: what the caller allows, what the workspace holds, and no
 * more than there are pieces of work. */
static int pass_threads(const tile_plan *p, const dk_workspace *ws, const dk_conv_tuning *tune,
                        size_t pieces)
{
    int n = dk_blas_threads();
    if (tune->max_threads > 0 && tune->max_threads < n) n = tune->max_threads;
    if (n > MAX_THREADS) n = MAX_THREADS;
    if ((size_t)n > pieces) n = (int)pieces;
    while (n > 1 && plan_floats(p, n) > ws->capacity)
        n--;
    return n < 1 ? 1 : n;
}

/* Thread t's share [a, b) of count items, and tile i of ntiles within it. */
static void share_of(size_t count, int t, int n, size_t *a, size_t *b)
{
    dk_parallel_share(count, t, n, a, b);
}

static size_t tiles_in(const tile_plan *p, size_t len)
{
    return (len + p->tile_units - 1) / p->tile_units;
}

/* ---- forward ---- */

typedef struct forward_ctx {
    const tile_plan *p;
    const float *packed; /* GEMM B, col_k x col_n */
    const float *x, *bias;
    float *y;
    int batch;
    float *scratch;           /* per-thread areas follow one another */
    size_t ntiles, per_claim; /* tiles per sample; tiles taken at once */
    atomic_size_t next;       /* the next claim, counted over all samples */
} forward_ctx;

static void forward_tile(const dk_conv_shape *s, const float *b, const float *x, const float *bias,
                         float *y, size_t u0, size_t u1, float *col, float *z)
{
    int rows = (int)dk_conv_tile_rows(s, u0, u1);
    const float *a = x + u0;
    int lda = (int)s->in_spatial;
    if (s->mode != DK_COL_DIRECT) {
        dk_im2col_tile(s, x, u0, u1, col);
        a = col;
        lda = rows;
    }
    if (s->mode == DK_COL_FOLDED) {
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, rows, s->col_n, s->col_k, 1.0f, a,
                    lda, b, s->col_k, 0.0f, z, rows);
        dk_combine_folded(s, z, u0, u1, bias, y);
        return;
    }
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, rows, s->cout, s->col_k, 1.0f, a, lda, b,
                s->col_k, 0.0f, y + u0, (int)s->out_spatial);
    if (bias) dk_add_bias_tile(bias, s->cout, s->out_spatial, u0, u1, y);
}

/* Threads take runs of consecutive tiles from a shared counter, so one that the
 * machine slows down (other processes) holds the others up by one run at most.
 * Every output value is written by exactly one tile and the tiles do not depend
 * on the thread count, so neither the schedule nor the count changes a bit. */
static void forward_worker(void *arg, int t, int nthreads)
{
    forward_ctx *c = arg;
    const tile_plan *p = c->p;
    const dk_conv_shape *s = &p->s;
    float *area = c->scratch + (size_t)t * p->per_thread;
    float *col = area + p->col_off, *z = area + p->z_off;
    size_t claims = (c->ntiles + c->per_claim - 1) / c->per_claim;
    for (;;) {
        size_t k = atomic_fetch_add(&c->next, 1);
        if (k >= claims * (size_t)c->batch) return;
        size_t n = k / claims, first = k % claims * c->per_claim;
        size_t last = first + c->per_claim < c->ntiles ? first + c->per_claim : c->ntiles;
        const float *x = c->x + n * s->cin * s->in_spatial;
        float *y = c->y + n * s->cout * s->out_spatial;
        for (size_t i = first; i < last; i++) {
            size_t u0 = s->units * i / c->ntiles, u1 = s->units * (i + 1) / c->ntiles;
            forward_tile(s, c->packed, x, c->bias, y, u0, u1, col, z);
        }
    }
}

/* y = conv(x) (+ bias) for a planned forward pass; w is packed from `weight`
 * (mirrored and transposed when flip). */
static void run_forward(const tile_plan *p, const float *weight, bool flip, const float *x,
                        const float *bias, float *y, int batch, dk_workspace *ws,
                        const dk_conv_tuning *tune)
{
    float *base = dk_workspace_floats(ws, plan_floats(p, 1));
    int n = pass_threads(p, ws, tune, p->s.units);
    dk_pack_weight(&p->s, weight, flip, base);
    forward_ctx c = {.p = p,
                     .packed = base,
                     .x = x,
                     .bias = bias,
                     .y = y,
                     .batch = batch,
                     .scratch = base + p->shared,
                     .ntiles = tiles_in(p, p->s.units)};
    /* About 8 runs per thread: few enough to keep neighbouring tiles (which share
     * input rows) on one core, enough to even out. */
    c.per_claim = c.ntiles / (8 * (size_t)n);
    if (c.per_claim < 1) c.per_claim = 1;
    atomic_init(&c.next, 0);
    dk_parallel_run(ws->pool, n, forward_worker, &c);
}

/* ---- weight gradient ---- */

typedef struct weight_ctx {
    const tile_plan *p;
    const float *x, *dy;
    int batch;
    float *accs;    /* chunks accumulators of dk_line_floats(kn) floats */
    float *scratch; /* per-thread areas follow one another */
    size_t chunks;
    atomic_size_t next; /* the next chunk to take */
} weight_ctx;

static void weight_tile(const dk_conv_shape *s, const float *x, const float *dy, size_t u0,
                        size_t u1, float *col, float *g, float *acc)
{
    int rows = (int)dk_conv_tile_rows(s, u0, u1);
    const float *a = x + u0;
    int lda = (int)s->in_spatial;
    if (s->mode != DK_COL_DIRECT) {
        dk_im2col_tile(s, x, u0, u1, col);
        a = col;
        lda = rows;
    }
    if (s->mode == DK_COL_FOLDED) {
        dk_expand_dy_folded(s, dy, u0, u1, g);
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, s->col_k, s->col_n, rows, 1.0f, a, lda,
                    g, rows, 1.0f, acc, s->col_k);
        return;
    }
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, s->col_k, s->cout, rows, 1.0f, a, lda,
                dy + u0, (int)s->out_spatial, 1.0f, acc, s->col_k);
}

/* Threads take whole chunks from a shared counter; a chunk's sum depends only on
 * the chunk (its tiles, in order), not on the thread that computes it. */
static void weight_worker(void *arg, int t, int nthreads)
{
    weight_ctx *c = arg;
    const tile_plan *p = c->p;
    const dk_conv_shape *s = &p->s;
    size_t kn = (size_t)s->col_k * s->col_n;
    float *area = c->scratch + (size_t)t * p->per_thread;
    float *col = area + p->col_off, *g = area + p->z_off;
    for (size_t k; (k = atomic_fetch_add(&c->next, 1)) < c->chunks;) {
        float *acc = c->accs + k * dk_line_floats(kn);
        memset(acc, 0, sizeof(float) * kn);
        size_t a, b;
        share_of(s->units, (int)k, (int)c->chunks, &a, &b);
        size_t ntiles = tiles_in(p, b - a);
        for (int n = 0; n < c->batch; n++) {
            const float *x = c->x + (size_t)n * s->cin * s->in_spatial;
            const float *dy = c->dy + (size_t)n * s->cout * s->out_spatial;
            for (size_t i = 0; i < ntiles; i++) {
                size_t u0 = a + (b - a) * i / ntiles, u1 = a + (b - a) * (i + 1) / ntiles;
                weight_tile(s, x, dy, u0, u1, col, g, acc);
            }
        }
    }
}

/* dweight (cout, cin, k...) += the correlation of dy with x, summed over the batch. */
static void run_weight_grad(const tile_plan *p, const float *x, const float *dy, float *dweight,
                            int batch, dk_workspace *ws, const dk_conv_tuning *tune)
{
    float *base = dk_workspace_floats(ws, plan_floats(p, 1));
    size_t chunks = p->s.units < WEIGHT_CHUNKS ? p->s.units : WEIGHT_CHUNKS;
    int n = pass_threads(p, ws, tune, chunks);
    weight_ctx c = {.p = p,
                    .x = x,
                    .dy = dy,
                    .batch = batch,
                    .accs = base,
                    .scratch = base + p->shared,
                    .chunks = chunks};
    atomic_init(&c.next, 0);
    dk_parallel_run(ws->pool, n, weight_worker, &c);
    size_t kn = (size_t)p->s.col_k * p->s.col_n;
    for (size_t k = 1; k < chunks; k++)
        dk_add_floats(base, base + k * dk_line_floats(kn), kn);
    dk_unpack_weight_grad(&p->s, base, dweight);
}

/* ---- data gradient by scatter (strided geometries) ---- */

typedef struct scatter_ctx {
    const tile_plan *p;
    const float *weight, *dy, *bias; /* bias: the transposed conv's, or NULL */
    float *dx;
    int batch;
    float *scratch;
} scatter_ctx;

/* Thread t owns input channels [c0, c1) of dx: no two threads write the same value.
 * The bias goes in with the scatter when that stores each value once, else after. */
static void scatter_worker(void *arg, int t, int nthreads)
{
    scatter_ctx *c = arg;
    const tile_plan *p = c->p;
    const dk_conv_shape *s = &p->s;
    float *dcol = c->scratch + (size_t)t * p->per_thread;
    size_t c0, c1;
    share_of((size_t)s->cin, t, nthreads, &c0, &c1);
    if (c0 == c1) return;
    int kc = (int)(c1 - c0) * s->taps;
    size_t ntiles = tiles_in(p, s->units);
    for (int n = 0; n < c->batch; n++) {
        const float *dy = c->dy + (size_t)n * s->cout * s->out_spatial;
        float *dx = c->dx + (size_t)n * s->cin * s->in_spatial;
        bool partition = dk_col2im_tiles_partition(s);
        if (!partition)
            memset(dx + c0 * s->in_spatial, 0, sizeof(float) * (c1 - c0) * s->in_spatial);
        for (size_t i = 0; i < ntiles; i++) {
            size_t u0 = s->units * i / ntiles, u1 = s->units * (i + 1) / ntiles;
            int rows = (int)(u1 - u0);
            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, rows, kc, s->cout, 1.0f, dy + u0,
                        (int)s->out_spatial, c->weight + c0 * s->taps, s->col_k, 0.0f, dcol, rows);
            dk_col2im_tile(s, dcol, u0, u1, (int)c0, (int)c1, c->bias, dx);
        }
        if (!partition && c->bias)
            for (size_t ch = c0; ch < c1; ch++)
                dk_add_bias_tile(c->bias + ch, 1, 0, 0, s->in_spatial, dx + ch * s->in_spatial);
    }
}

/* ---- the three passes on tensors, in conv semantics ---- */

static void dims_of(const dk_tensor *t, int d[3])
{
    d[0] = t->d;
    d[1] = t->h;
    d[2] = t->w;
}

/* Whether a conv (in conv semantics) runs as Winograd. Measured (bench_conv --net
 * teacher, SkylakeX kernels, 2 threads): it takes 0.55-0.85x the time of the GEMM
 * engine on every 3x3x3 layer of the teacher but its 1-channel input layer, where
 * the transforms outweigh a GEMM with K = 27 (about 2x slower). */
static bool winograd_wanted(const dk_conv_tuning *tune, const dk_conv3d_geom *g, int cin, int cout,
                            const int dims[3])
{
    if (tune->winograd == 0 || !dk_winograd_fits(g, cin, cout, dims)) return false;
    return tune->winograd > 0 || cin >= 4;
}

static void conv_forward(const dk_conv3d_geom *g, const float *x, int cin, const int in[3],
                         const float *weight, const float *bias, float *y, int cout,
                         const int out[3], int batch, dk_workspace *ws, const dk_conv_tuning *tune)
{
    if (winograd_wanted(tune, g, cin, cout, in)) {
        dk_winograd_forward(x, cin, in, weight, false, bias, y, cout, batch, ws, tune);
        return;
    }
    tile_plan p;
    plan_pass(&p, PASS_FORWARD, g, cin, cout, in, out, tune);
    run_forward(&p, weight, false, x, bias, y, batch, ws, tune);
}

static void conv_weight_grad(const dk_conv3d_geom *g, const float *x, int cin, const int in[3],
                             const float *dy, int cout, const int out[3], float *dweight, int batch,
                             dk_workspace *ws, const dk_conv_tuning *tune)
{
    tile_plan p;
    plan_pass(&p, PASS_WEIGHT, g, cin, cout, in, out, tune);
    run_weight_grad(&p, x, dy, dweight, batch, ws, tune);
}

/* dx = the adjoint conv of dy (+ bias per dx channel when bias is not NULL: the
 * transposed conv's forward). */
static void conv_data_grad(const dk_conv3d_geom *g, const float *dy, int cout, const int out[3],
                           const float *weight, const float *bias, float *dx, int cin,
                           const int in[3], int batch, dk_workspace *ws, const dk_conv_tuning *tune)
{
    dk_conv3d_geom mirrored;
    tile_plan p;
    if (data_grad_is_conv(g, &mirrored)) {
        if (winograd_wanted(tune, &mirrored, cout, cin, out)) {
            dk_winograd_forward(dy, cout, out, weight, true, bias, dx, cin, batch, ws, tune);
            return;
        }
        plan_pass(&p, PASS_FORWARD, &mirrored, cout, cin, out, in, tune);
        run_forward(&p, weight, true, dy, bias, dx, batch, ws, tune);
        return;
    }
    plan_pass(&p, PASS_SCATTER, g, cin, cout, in, out, tune);
    float *base = dk_workspace_floats(ws, plan_floats(&p, 1));
    int n = pass_threads(&p, ws, tune, (size_t)cin);
    scatter_ctx c = {&p, weight, dy, bias, dx, batch, base};
    dk_parallel_run(ws->pool, n, scatter_worker, &c);
}

typedef struct bias_ctx {
    const float *dy;
    int batch, channels;
    size_t spatial;
    float *dbias;
} bias_ctx;

static void bias_worker(void *arg, int t, int nthreads)
{
    bias_ctx *c = arg;
    size_t c0, c1;
    share_of((size_t)c->channels, t, nthreads, &c0, &c1);
    for (size_t ch = c0; ch < c1; ch++) {
        double sum = 0;
        for (int n = 0; n < c->batch; n++)
            sum += dk_sum_floats(c->dy + ((size_t)n * c->channels + ch) * c->spatial, c->spatial);
        c->dbias[ch] += (float)sum;
    }
}

static void bias_grad(const dk_tensor *dy, dk_tensor *dbias, dk_pool *pool)
{
    bias_ctx c = {dy->data, dy->n, dy->c, dk_tensor_spatial(dy), dbias->data};
    int n = dk_blas_threads();
    if (n > dy->c) n = dy->c;
    if (n > MAX_THREADS) n = MAX_THREADS;
    /* Below ~1 M values a thread costs more than it saves. */
    if (dk_tensor_numel(dy) < ((size_t)1 << 20)) n = 1;
    dk_parallel_run(pool, n, bias_worker, &c);
}

/* ---- public API ---- */

dk_status dk_conv3d_out_dims(const dk_conv3d_geom *g, bool transposed, const int in[3], int out[3],
                             dk_err *err)
{
    static const char axis[3] = {'d', 'h', 'w'};
    for (int a = 0; a < 3; a++) {
        int k = g->kernel[a], s = g->stride[a], p = g->pad[a];
        if (k < 1 || s < 1 || p < 0 || in[a] < 1)
            return dk_err_set(err, DK_EINVAL,
                              "conv geometry on axis %c: kernel %d, stride %d, pad %d, input %d; "
                              "expected kernel >= 1, stride >= 1, pad >= 0, input >= 1",
                              axis[a], k, s, p, in[a]);
        long long o = transposed ? (long long)(in[a] - 1) * s - 2LL * p + k
                                 : ((long long)in[a] + 2LL * p - k) / s + 1;
        if (!transposed && (long long)in[a] + 2LL * p < k) o = 0;
        if (o < 1 || o > (1 << 24))
            return dk_err_set(err, DK_EINVAL,
                              "%s on axis %c: input %d with kernel %d, stride %d, pad %d gives "
                              "output size %lld; expected 1 .. %d",
                              transposed ? "transposed conv" : "conv", axis[a], in[a], k, s, p, o,
                              1 << 24);
        out[a] = (int)o;
    }
    return DK_OK;
}

size_t dk_conv3d_workspace_floats(const dk_conv3d_geom *g, bool transposed, int cin, int cout,
                                  const int in[3])
{
    dk_conv_tuning tune = dk_conv_default_tuning();
    return dk_conv3d_workspace_floats_tuned(g, transposed, cin, cout, in, &tune);
}

size_t dk_conv3d_workspace_floats_tuned(const dk_conv3d_geom *g, bool transposed, int cin, int cout,
                                        const int in[3], const dk_conv_tuning *tune)
{
    int out[3];
    if (dk_conv3d_out_dims(g, transposed, in, out, NULL) != DK_OK) return 0;
    /* In conv semantics: a transposed conv's input is the conv's output. */
    const int *cin_dims = transposed ? out : in, *cout_dims = transposed ? in : out;
    int conv_cin = transposed ? cout : cin, conv_cout = transposed ? cin : cout;
    int threads = dk_blas_threads() > PLAN_THREADS ? dk_blas_threads() : PLAN_THREADS;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    tile_plan p;
    plan_pass(&p, PASS_FORWARD, g, conv_cin, conv_cout, cin_dims, cout_dims, tune);
    size_t need = plan_floats(&p, threads);
    plan_pass(&p, PASS_WEIGHT, g, conv_cin, conv_cout, cin_dims, cout_dims, tune);
    if (plan_floats(&p, threads) > need) need = plan_floats(&p, threads);
    dk_conv3d_geom mirrored;
    if (data_grad_is_conv(g, &mirrored))
        plan_pass(&p, PASS_FORWARD, &mirrored, conv_cout, conv_cin, cout_dims, cin_dims, tune);
    else
        plan_pass(&p, PASS_SCATTER, g, conv_cin, conv_cout, cin_dims, cout_dims, tune);
    if (plan_floats(&p, threads) > need) need = plan_floats(&p, threads);
    if (dk_winograd_fits(g, conv_cin, conv_cout, cin_dims)) { /* forward and data grad alike */
        size_t wf = dk_winograd_workspace_floats(conv_cin, conv_cout, cin_dims, threads, tune);
        size_t wb = dk_winograd_workspace_floats(conv_cout, conv_cin, cin_dims, threads, tune);
        if (wf > need) need = wf;
        if (wb > need) need = wb;
    }
    return need;
}

/* Shapes come from the network's own plan: a mismatch is a bug, so abort with
 * both shapes printed. */
static void check_shapes(const dk_conv3d_geom *g, bool transposed, const dk_tensor *x,
                         const dk_tensor *weight, const dk_tensor *bias, const dk_tensor *y)
{
    int in[3], out[3];
    dims_of(x, in);
    DK_CHECK_SHAPE(dk_conv3d_out_dims(g, transposed, in, out, NULL) == DK_OK, x, weight);
    int cout = transposed ? weight->c : weight->n, cin = transposed ? weight->n : weight->c;
    DK_CHECK_SHAPE(weight->d == g->kernel[0] && weight->h == g->kernel[1] &&
                       weight->w == g->kernel[2] && x->c == cin,
                   x, weight);
    DK_CHECK_SHAPE(
        y->n == x->n && y->c == cout && y->d == out[0] && y->h == out[1] && y->w == out[2], x, y);
    if (bias) DK_CHECK_SHAPE(bias->n == cout && dk_tensor_spatial(bias) * bias->c == 1, bias, y);
}

void dk_conv3d_forward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                             const dk_tensor *bias, dk_tensor *y, dk_workspace *ws,
                             const dk_conv_tuning *tune)
{
    check_shapes(g, false, x, weight, bias, y);
    int in[3], out[3];
    dims_of(x, in);
    dims_of(y, out);
    conv_forward(g, x->data, x->c, in, weight->data, bias ? bias->data : NULL, y->data, y->c, out,
                 x->n, ws, tune);
}

void dk_conv3d_backward_data_tuned(const dk_conv3d_geom *g, const dk_tensor *weight,
                                   const dk_tensor *dy, dk_tensor *dx, dk_workspace *ws,
                                   const dk_conv_tuning *tune)
{
    check_shapes(g, false, dx, weight, NULL, dy);
    int in[3], out[3];
    dims_of(dx, in);
    dims_of(dy, out);
    conv_data_grad(g, dy->data, dy->c, out, weight->data, NULL, dx->data, dx->c, in, dx->n, ws,
                   tune);
}

void dk_conv3d_backward_weight_tuned(const dk_conv3d_geom *g, const dk_tensor *x,
                                     const dk_tensor *dy, dk_tensor *dweight, dk_workspace *ws,
                                     const dk_conv_tuning *tune)
{
    check_shapes(g, false, x, dweight, NULL, dy);
    int in[3], out[3];
    dims_of(x, in);
    dims_of(dy, out);
    conv_weight_grad(g, x->data, x->c, in, dy->data, dy->c, out, dweight->data, x->n, ws, tune);
}

void dk_conv3d_backward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                              const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight,
                              dk_tensor *dbias, dk_workspace *ws, const dk_conv_tuning *tune)
{
    check_shapes(g, false, x, weight, dbias, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(weight, dweight), weight, dweight);
    if (dx) {
        DK_CHECK_SHAPE(dk_tensor_same_shape(x, dx), x, dx);
        dk_conv3d_backward_data_tuned(g, weight, dy, dx, ws, tune);
    }
    dk_conv3d_backward_weight_tuned(g, x, dy, dweight, ws, tune);
    if (dbias) bias_grad(dy, dbias, ws->pool);
}

void dk_convt3d_forward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                              const dk_tensor *bias, dk_tensor *y, dk_workspace *ws,
                              const dk_conv_tuning *tune)
{
    check_shapes(g, true, x, weight, bias, y);
    int in[3], out[3];
    dims_of(x, in);
    dims_of(y, out);
    /* The adjoint of the conv from y's grid to x's grid, whose weight (cout_conv =
     * x.c, cin_conv = y.c, k...) is exactly the transposed conv's weight. */
    conv_data_grad(g, x->data, x->c, in, weight->data, bias ? bias->data : NULL, y->data, y->c, out,
                   x->n, ws, tune);
}

void dk_convt3d_backward_data_tuned(const dk_conv3d_geom *g, const dk_tensor *weight,
                                    const dk_tensor *dy, dk_tensor *dx, dk_workspace *ws,
                                    const dk_conv_tuning *tune)
{
    check_shapes(g, true, dx, weight, NULL, dy);
    int in[3], out[3];
    dims_of(dx, in);
    dims_of(dy, out);
    conv_forward(g, dy->data, dy->c, out, weight->data, NULL, dx->data, dx->c, in, dx->n, ws, tune);
}

void dk_convt3d_backward_weight_tuned(const dk_conv3d_geom *g, const dk_tensor *x,
                                      const dk_tensor *dy, dk_tensor *dweight, dk_workspace *ws,
                                      const dk_conv_tuning *tune)
{
    check_shapes(g, true, x, dweight, NULL, dy);
    int in[3], out[3];
    dims_of(x, in);
    dims_of(dy, out);
    /* conv semantics: the conv's input is dy (on the big grid), its output x */
    conv_weight_grad(g, dy->data, dy->c, out, x->data, x->c, in, dweight->data, x->n, ws, tune);
}

void dk_convt3d_backward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                               const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight,
                               dk_tensor *dbias, dk_workspace *ws, const dk_conv_tuning *tune)
{
    check_shapes(g, true, x, weight, dbias, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(weight, dweight), weight, dweight);
    if (dx) {
        DK_CHECK_SHAPE(dk_tensor_same_shape(x, dx), x, dx);
        dk_convt3d_backward_data_tuned(g, weight, dy, dx, ws, tune);
    }
    dk_convt3d_backward_weight_tuned(g, x, dy, dweight, ws, tune);
    if (dbias) bias_grad(dy, dbias, ws->pool);
}

void dk_conv3d_forward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                       const dk_tensor *bias, dk_tensor *y, dk_workspace *ws)
{
    dk_conv_tuning tune = dk_conv_default_tuning();
    dk_conv3d_forward_tuned(g, x, weight, bias, y, ws, &tune);
}

void dk_conv3d_backward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                        const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight, dk_tensor *dbias,
                        dk_workspace *ws)
{
    dk_conv_tuning tune = dk_conv_default_tuning();
    dk_conv3d_backward_tuned(g, x, weight, dy, dx, dweight, dbias, ws, &tune);
}

void dk_convt3d_forward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                        const dk_tensor *bias, dk_tensor *y, dk_workspace *ws)
{
    dk_conv_tuning tune = dk_conv_default_tuning();
    dk_convt3d_forward_tuned(g, x, weight, bias, y, ws, &tune);
}

void dk_convt3d_backward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                         const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight, dk_tensor *dbias,
                         dk_workspace *ws)
{
    dk_conv_tuning tune = dk_conv_default_tuning();
    dk_convt3d_backward_tuned(g, x, weight, dy, dx, dweight, dbias, ws, &tune);
}
