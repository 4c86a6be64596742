/* winograd.c: the 3 x 3 x 3 convolution as Winograd F(2x2x2, 3x3x3) (winograd.h).
 *
 * One axis of F(2, 3) (Lavin and Gray, 2016, with interpolation points 0, 1, -1):
 *   input  d (4 values)  -> B^T d : d0 - d2, d1 + d2, d2 - d1, d1 - d3
 *   kernel g (3 values)  -> G g   : g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2
 *   product m (4 values) -> A^T m : m0 + m1 + m2, m1 - m2 - m3   (2 outputs)
 * and in 3D each transform is applied along d, h and w in turn: 64 transform points
 * (xi = (ad * 4 + ah) * 4 + aw) per 2 x 2 x 2 output tile.
 *
 * Tile (i, j, k) covers outputs (2i, 2j, 2k) .. +1 and reads inputs 2i-1 .. 2i+2
 * per axis (pad 1; zeros outside; outputs past the edge are dropped). The input
 * transform runs along d on whole rows (each row of the block's h range once),
 * then along h per tile row, into rows padded by a zero on each side
 * (p[m] = x[m - 1]), then along w, where tile k reads p[2k .. 2k + 3]. The output
 * transform runs the other way round. Each transform of a block and channel is
 * one function with vectorised inner loops over whole rows (the calls and loop
 * set-ups of one call per row cost as much as the arithmetic on 160-wide rows).
 *
 * Layout of one block of R tile rows (fixed sample and i, j in [j0, j0 + R), all k;
 * B = R * tw tiles, b = r * tw + k):
 *   u  (shared)     [xi][cout][cin]  transformed weights
 *   v  (per thread) [xi][cin][B]     transformed inputs
 *   m  (per thread) [xi][cout][B]    u[xi] v[xi], 64 GEMMs
 * A block's v and m are sized to stay in a core's L2 (BLOCK_FLOATS). That is the
 * blocked path; thin convs take the fused path of winograd_fused.h, with u in its
 * layout (dk_wino_fused_weight_at; F(4, 3) along h and w with its tile 4) and its
 * own blocks and scratch. */
#include "distill/winograd.h"

#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/hot_loop.h"
#include "distill/parallel.h"
#include "distill/winograd_fused.h"

#define POINTS 64 /* transform points per tile: 4 x 4 x 4 */
/* Floats of v and m per block, about: a block is at least one tile row. */
#define BLOCK_FLOATS ((size_t)1 << 18)

typedef struct wino_shape {
    int cin, cout;
    int dims[3];
    int tiles[3];      /* (dims + 1) / 2 */
    int rows;          /* tile rows (along h) per block */
    int groups;        /* blocks per tile plane */
    size_t block;      /* B: tile slots per block, rows * tiles[2] */
    size_t padded;     /* P: floats of a padded row, 2 * tiles[2] + 2 >= dims[2] + 2 */
    size_t per_thread; /* floats of v, m and row scratch */
} wino_shape;

/* Row scratch of a thread: the input transform's rows after d ([ad][2 rows + 2]
 * padded rows), after h (16), and a zero row; the output transform's 48 rows of
 * tw fit in it too. */
static size_t scratch_floats(const wino_shape *s)
{
    return dk_line_floats((4 * (2 * (size_t)s->rows + 2) + 17) * s->padded);
}

static void shape_init(wino_shape *s, int cin, int cout, const int dims[3])
{
    s->cin = cin;
    s->cout = cout;
    for (int a = 0; a < 3; a++) {
        s->dims[a] = dims[a];
        s->tiles[a] = (dims[a] + 1) / 2;
    }
    size_t tw = (size_t)s->tiles[2], per_tile = (size_t)POINTS * (size_t)(cin + cout);
    size_t rows = BLOCK_FLOATS / per_tile / tw;
    if (rows < 1) rows = 1;
    if (rows > (size_t)s->tiles[1]) rows = (size_t)s->tiles[1];
    s->rows = (int)rows;
    s->groups = (s->tiles[1] + s->rows - 1) / s->rows;
    s->block = rows * tw;
    s->padded = 2 * tw + 2;
    s->per_thread = dk_line_floats(POINTS * (size_t)cin * s->block) +
                    dk_line_floats(POINTS * (size_t)cout * s->block) + scratch_floats(s);
}

/* The transformed weights u, for the blocked path or a fused tile (0: blocked). */
static size_t shared_floats(const wino_shape *s, int fused_tile)
{
    size_t points = fused_tile ? (size_t)DK_WINO_FUSED_POINTS(fused_tile) : POINTS;
    return dk_line_floats(points * (size_t)s->cout * (size_t)s->cin);
}

bool dk_winograd_fits(const dk_conv3d_geom *g, int cin, int cout, const int dims[3])
{
    for (int a = 0; a < 3; a++)
        if (g->kernel[a] != 3 || g->stride[a] != 1 || g->pad[a] != 1) return false;
    size_t row = (size_t)POINTS * ((size_t)cin + (size_t)cout) * (((size_t)dims[2] + 1) / 2);
    return cin > 0 && cout > 0 && row <= DK_CONV_TILE_FLOATS;
}

/* The fused path's instruction set for this conv, or DK_SIMD_NONE for the blocked
 * path. Auto: convs up to THIN_CHANNELS, where the blocked path's traffic through
 * L2 outweighs its GEMMs. Measured (bench_conv --net teacher|reference --fused
 * -1|1, 2 threads, AVX-512 and AVX2 with OpenBLAS's Haswell kernels): since chunks
 * run on across tile rows, the fused path is faster up to 128 -> 64 and 128 -> 128
 * too (teacher 20 x 20 128 -> 64: 18.1 -> 12.4 ms AVX-512, 26.2 -> 20.9 ms AVX2),
 * except 128 -> 128 on 8^3 with AVX2 (3.3 ms against the blocked path's 3.1). Wider
 * convs are not measured, so they keep the blocked path. */
#define THIN_CHANNELS 256
static dk_simd fused_isa(const dk_conv_tuning *tune, int cin, int cout)
{
    if (tune->fused == 0) return DK_SIMD_NONE;
    dk_simd isa = tune->simd ? (dk_simd)tune->simd : dk_simd_best();
    if (!dk_simd_supported(isa)) return DK_SIMD_NONE;
    if (tune->fused > 0 || cin + cout <= THIN_CHANNELS) return isa;
    return DK_SIMD_NONE;
}

/* The fused path's tile. Auto: 4 where it measured faster than 2 (bench_conv
 * --net teacher --tile 2|4, 2 threads, AVX-512, and AVX2 with OpenBLAS's Haswell
 * kernels; docs/numerics.md): at least 16 channels in and out, 64 at most in all,
 * on planes at least 40 by 40. On the teacher's 80² and 40² levels 16 -> 16,
 * 32 -> 16 and 32 -> 32 ran 8-22 % faster with AVX-512 and 0-22 % with AVX2,
 * 16 -> 32 alike. With 8 channels in or out the transforms outweigh the products
 * it saves (8 -> 8 at 160²: 29 % slower); with 64 in, its 36 x cin transformed
 * inputs per chunk leave L1 (64 -> 32: 7 % slower); on narrower planes partial
 * tiles waste lanes (128 -> 128 at 10²: 3.4 times as slow). */
static int fused_tile(const dk_conv_tuning *tune, int cin, int cout, const int dims[3])
{
    if (tune->tile) return tune->tile;
    bool channels = cin >= 16 && cout >= 16 && cin + cout <= 64;
    return channels && dims[1] >= 40 && dims[2] >= 40 ? 4 : 2;
}

size_t dk_winograd_workspace_floats(int cin, int cout, const int dims[3], int threads,
                                    const dk_conv_tuning *tune)
{
    wino_shape s;
    shape_init(&s, cin, cout, dims);
    dk_simd isa = fused_isa(tune, cin, cout);
    if (isa == DK_SIMD_NONE) return shared_floats(&s, 0) + (size_t)threads * s.per_thread;
    dk_wino_fused f;
    dk_wino_fused_plan(&f, cin, cout, dims, isa, fused_tile(tune, cin, cout, dims));
    return shared_floats(&s, f.tile) + (size_t)threads * f.per_thread;
}

/* ---- weights ---- */

/* Kernels transformed at once: one vector of doubles per value. */
#define KERNELS 8

/* G along one axis for KERNELS kernels: in[k * step] -> out[j * out_step]. */
static inline __attribute__((always_inline)) void g_axis(const double (*in)[KERNELS], int step,
                                                         double (*out)[KERNELS], int out_step)
{
    for (int l = 0; l < KERNELS; l++) {
        double a = in[0][l], b = in[step][l], c = in[2 * step][l];
        out[0][l] = a;
        out[out_step][l] = (a + b + c) / 2;
        out[2 * out_step][l] = (a - b + c) / 2;
        out[3 * out_step][l] = c;
    }
}

/* F(4, 3)'s G (winograd_fused.h), as g_axis. */
static inline __attribute__((always_inline)) void g_axis4(const double (*in)[KERNELS], int step,
                                                          double (*out)[KERNELS], int out_step)
{
    for (int l = 0; l < KERNELS; l++) {
        double a = in[0][l], b = in[step][l], c = in[2 * step][l];
        out[0][l] = a / 4;
        out[out_step][l] = -(a + b + c) / 6;
        out[2 * out_step][l] = -(a - b + c) / 6;
        out[3 * out_step][l] = (a + 2 * b + 4 * c) / 24;
        out[4 * out_step][l] = (a - 2 * b + 4 * c) / 24;
        out[5 * out_step][l] = c;
    }
}

/* G along h or w: F(2, 3)'s, or F(4, 3)'s for a fused tile of 4. */
static inline __attribute__((always_inline)) void
g_hw(int tile, const double (*in)[KERNELS], int step, double (*out)[KERNELS], int out_step)
{
    if (tile == 4)
        g_axis4(in, step, out, out_step);
    else
        g_axis(in, step, out, out_step);
}

/* u[xi][co][ci] = (G x G x G) g for input channels ci0 .. ci0 + n - 1 (n <= KERNELS)
 * of output channel co; g is w's (co, ci) kernel, or with flip the (ci, co) kernel
 * mirrored. Computed in double (the same operations per kernel whatever the clone),
 * rounded once. With a fused tile (not 0), u holds the fused path's points for that
 * tile (W = tile + 2 values along h and w) in its layout instead. */
DK_HOT_LOOP static void transform_kernels(const float *w, bool flip, int fused_tile, int cin,
                                          int cout, int co, int ci0, int n, float *u)
{
    enum { MAX_W = 6 };
    double g[27][KERNELS], t1[9 * MAX_W][KERNELS], t2[3 * MAX_W * MAX_W][KERNELS],
        t3[4 * MAX_W * MAX_W][KERNELS];
    const int W = fused_tile == 4 ? 6 : 4, points = 4 * W * W;
    for (int l = 0; l < KERNELS; l++) {
        int ci = ci0 + (l < n ? l : 0);
        const float *src = w + ((flip ? (size_t)ci * cout + co : (size_t)co * cin + ci) * 27);
        for (int t = 0; t < 27; t++)
            g[t][l] = src[flip ? 26 - t : t];
    }
    for (int r = 0; r < 9; r++) /* along w: [kd][kh][aw] */
        g_hw(fused_tile, g + 3 * r, 1, t1 + W * r, 1);
    for (int kd = 0; kd < 3; kd++) /* along h: [kd][ah][aw] */
        for (int aw = 0; aw < W; aw++)
            g_hw(fused_tile, t1 + 3 * W * kd + aw, W, t2 + W * W * kd + aw, W);
    for (int i = 0; i < W * W; i++) /* along d: [ad][ah][aw] */
        g_axis(t2 + i, W * W, t3 + i, W * W);
    for (int xi = 0; xi < points; xi++)
        for (int l = 0; l < n; l++) {
            size_t at = fused_tile ? dk_wino_fused_weight_at(cin, cout, xi, co, ci0 + l)
                                   : ((size_t)xi * cout + co) * cin + (size_t)(ci0 + l);
            u[at] = (float)t3[xi][l];
        }
}

/* The transformed weights of output channels [co0, co1), every input channel. */
static void transform_weights_range(const float *w, bool flip, int fused_tile, int cin, int cout,
                                    int co0, int co1, float *u)
{
    for (int co = co0; co < co1; co++)
        for (int ci = 0; ci < cin; ci += KERNELS)
            transform_kernels(w, flip, fused_tile, cin, cout, co, ci,
                              cin - ci < KERNELS ? cin - ci : KERNELS, u);
}

/* ---- the transforms' inner loops: inlined into the vectorised functions below,
 * where restrict parameters tell the vectoriser the rows do not overlap ---- */

#define INNER static inline __attribute__((always_inline))

/* B^T: four rows in, four out, n floats each. */
INNER void bt_rows(const float *restrict a0, const float *restrict a1, const float *restrict a2,
                   const float *restrict a3, float *restrict o0, float *restrict o1,
                   float *restrict o2, float *restrict o3, size_t n)
{
    for (size_t m = 0; m < n; m++) {
        o0[m] = a0[m] - a2[m];
        o1[m] = a1[m] + a2[m];
        o2[m] = a2[m] - a1[m];
        o3[m] = a1[m] - a3[m];
    }
}

/* B^T along w: tile k of the padded row p reads p[2k .. 2k + 3]. */
INNER void bt_w(const float *restrict p, float *restrict v0, float *restrict v1, float *restrict v2,
                float *restrict v3, size_t tw)
{
    for (size_t k = 0; k < tw; k++) {
        v0[k] = p[2 * k] - p[2 * k + 2];
        v1[k] = p[2 * k + 1] + p[2 * k + 2];
        v2[k] = p[2 * k + 2] - p[2 * k + 1];
        v3[k] = p[2 * k + 1] - p[2 * k + 3];
    }
}

/* A^T: four rows in, two out. */
INNER void at_rows(const float *restrict a0, const float *restrict a1, const float *restrict a2,
                   const float *restrict a3, float *restrict o0, float *restrict o1, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        o0[k] = a0[k] + a1[k] + a2[k];
        o1[k] = a1[k] - a2[k] - a3[k];
    }
}

/* A^T along w plus bias into an output row of w values (tile k: y[2k], y[2k + 1]). */
INNER void at_w(const float *restrict a0, const float *restrict a1, const float *restrict a2,
                const float *restrict a3, float bias, int w, float *restrict y)
{
    int pairs = w / 2;
    for (int k = 0; k < pairs; k++) {
        y[2 * k] = (a0[k] + a1[k] + a2[k]) + bias;
        y[2 * k + 1] = (a1[k] - a2[k] - a3[k]) + bias;
    }
    if (w % 2) y[w - 1] = (a0[pairs] + a1[pairs] + a2[pairs]) + bias;
}

/* ---- the transforms of one block and channel (vectorised) ---- */

/* The input transform of channel xc for tile rows j0 .. j0 + nrows of tile plane i
 * into v (its 64 points `step` floats apart, tile r * tw + k at v + r * tw + k). */
DK_HOT_LOOP static void input_channel(const wino_shape *s, const float *xc, int i, int j0,
                                      int nrows, float *v, size_t step, float *scratch)
{
    const int d = s->dims[0], h = s->dims[1], w = s->dims[2], tw = s->tiles[2];
    const int nh = 2 * nrows + 2, h0 = 2 * j0 - 1;
    const size_t P = s->padded, plane = (size_t)h * w, sz = (size_t)nh * P;
    float *td = scratch;       /* [ad][nh][P] */
    float *th = td + 4 * sz;   /* [ad * 4 + ah][P] */
    float *zero = th + 16 * P; /* P zeros */
    for (size_t m = 0; m < P; m++)
        zero[m] = 0;
    /* along d, each h row of the block once, into padded rows */
    for (int r = 0; r < nh; r++) {
        const float *a[4];
        for (int k = 0; k < 4; k++) {
            int dd = 2 * i - 1 + k, hh = h0 + r;
            bool inside = dd >= 0 && dd < d && hh >= 0 && hh < h;
            a[k] = inside ? xc + (size_t)dd * plane + (size_t)hh * w : zero;
        }
        float *o = td + (size_t)r * P;
        bt_rows(a[0], a[1], a[2], a[3], o + 1, o + sz + 1, o + 2 * sz + 1, o + 3 * sz + 1,
                (size_t)w);
        for (int q = 0; q < 4; q++) {
            o[q * sz] = 0;
            for (size_t m = (size_t)w + 1; m < P; m++)
                o[q * sz + m] = 0;
        }
    }
    for (int r = 0; r < nrows; r++) {
        for (int ad = 0; ad < 4; ad++) { /* along h: tile row r reads rows 2r .. 2r + 3 */
            const float *a = td + ad * sz + 2 * (size_t)r * P;
            float *o = th + 4 * (size_t)ad * P;
            bt_rows(a, a + P, a + 2 * P, a + 3 * P, o, o + P, o + 2 * P, o + 3 * P, P);
        }
        for (int q = 0; q < 16; q++) { /* along w; point (ad * 4 + ah) * 4 + aw = 4q + aw */
            float *o = v + (size_t)4 * q * step + (size_t)r * tw;
            bt_w(th + (size_t)q * P, o, o + step, o + 2 * step, o + 3 * step, (size_t)tw);
        }
    }
}

/* The output transform of output channel o: from its products mo (point xi at
 * mo + xi * step, tile r * tw + k) into the channel's output yo, plus bias. */
DK_HOT_LOOP static void output_channel(const wino_shape *s, const float *mo, size_t step, int i,
                                       int j0, int nrows, float bias, float *yo, float *scratch)
{
    const int d = s->dims[0], h = s->dims[1], w = s->dims[2];
    const size_t tw = (size_t)s->tiles[2], plane = (size_t)h * w;
    float *sd = scratch;           /* [md * 16 + ah * 4 + aw][tw] */
    float *sh = scratch + 32 * tw; /* [(md * 2 + mh) * 4 + aw][tw] */
    for (int r = 0; r < nrows; r++) {
        for (int q = 0; q < 16; q++) { /* along d; point ad * 16 + q */
            const float *a = mo + (size_t)q * step + (size_t)r * tw;
            at_rows(a, a + 16 * step, a + 32 * step, a + 48 * step, sd + q * tw, sd + (16 + q) * tw,
                    tw);
        }
        for (int md = 0; md < 2; md++) /* along h */
            for (int aw = 0; aw < 4; aw++) {
                const float *a = sd + (size_t)(16 * md + aw) * tw;
                at_rows(a, a + 4 * tw, a + 8 * tw, a + 12 * tw, sh + (8 * md + aw) * tw,
                        sh + (8 * md + 4 + aw) * tw, tw);
            }
        for (int md = 0; md < 2; md++) /* along w, into the output rows */
            for (int mh = 0; mh < 2; mh++) {
                int dd = 2 * i + md, hh = 2 * (j0 + r) + mh;
                if (dd >= d || hh >= h) continue;
                const float *a = sh + (size_t)(8 * md + 4 * mh) * tw;
                at_w(a, a + tw, a + 2 * tw, a + 3 * tw, bias, w,
                     yo + (size_t)dd * plane + (size_t)hh * w);
            }
    }
}

/* ---- one block: inputs in, 64 GEMMs, outputs out ---- */

static void input_block(const wino_shape *s, const float *x, int i, int j0, int nrows, float *v,
                        float *scratch)
{
    const size_t spatial = (size_t)s->dims[0] * s->dims[1] * s->dims[2];
    for (int c = 0; c < s->cin; c++)
        input_channel(s, x + (size_t)c * spatial, i, j0, nrows, v + (size_t)c * s->block,
                      (size_t)s->cin * s->block, scratch);
}

static void output_block(const wino_shape *s, const float *m, const float *bias, int i, int j0,
                         int nrows, float *y, float *scratch)
{
    const size_t spatial = (size_t)s->dims[0] * s->dims[1] * s->dims[2];
    for (int o = 0; o < s->cout; o++)
        output_channel(s, m + (size_t)o * s->block, (size_t)s->cout * s->block, i, j0, nrows,
                       bias ? bias[o] : 0.0f, y + (size_t)o * spatial, scratch);
}

/* m[xi] = u[xi] v[xi] over the first `tiles` tile slots of the block. */
static void multiply_block(const wino_shape *s, const float *u, const float *v, float *m,
                           size_t tiles)
{
    const int cin = s->cin, cout = s->cout, ld = (int)s->block;
    for (int xi = 0; xi < POINTS; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)tiles, cin, 1.0f,
                    u + (size_t)xi * cout * cin, cin, v + (size_t)xi * cin * s->block, ld, 0.0f,
                    m + (size_t)xi * cout * s->block, ld);
}

/* ---- threads ---- */

typedef struct wino_ctx {
    const wino_shape *s;
    const dk_wino_fused *fused; /* NULL: the blocked path */
    const float *w, *x, *bias;
    bool flip;
    float *u, *y;
    float *scratch; /* per-thread areas follow one another */
    int batch;
    atomic_size_t next; /* the next block to take */
} wino_ctx;

/* Output channels split by index: each u entry is one thread's. */
static void weights_worker(void *arg, int t, int nthreads)
{
    wino_ctx *c = arg;
    const wino_shape *s = c->s;
    size_t a, b;
    dk_parallel_share((size_t)s->cout, t, nthreads, &a, &b);
    transform_weights_range(c->w, c->flip, c->fused ? c->fused->tile : 0, s->cin, s->cout, (int)a,
                            (int)b, c->u);
}

/* A block: sample n, tile plane i, tile rows j0 .. j0 + nrows - 1. */
typedef struct wino_block {
    size_t n;
    int i, j0, nrows;
} wino_block;

/* Takes the next block of `rows` tile rows from c's counter; false when none is left.
 * Blocks depend on the shape only, so no bit of the result depends on the threads. */
static bool next_block(wino_ctx *c, int rows, wino_block *b)
{
    const int *tiles = c->fused ? c->fused->tiles : c->s->tiles;
    size_t groups = ((size_t)tiles[1] + rows - 1) / rows, per_sample = (size_t)tiles[0] * groups;
    size_t k = atomic_fetch_add(&c->next, 1);
    if (k >= per_sample * (size_t)c->batch) return false;
    size_t rem = k % per_sample;
    b->n = k / per_sample;
    b->i = (int)(rem / groups);
    b->j0 = (int)(rem % groups) * rows;
    b->nrows = tiles[1] - b->j0 < rows ? tiles[1] - b->j0 : rows;
    return true;
}

/* The fused path. */
static void fused_worker(void *arg, int t, int nthreads)
{
    (void)nthreads;
    wino_ctx *c = arg;
    const dk_wino_fused *f = c->fused;
    float *scratch = c->scratch + (size_t)t * f->per_thread;
    size_t spatial = (size_t)f->dims[0] * f->dims[1] * f->dims[2];
    dk_wino_fused_clear(f, scratch);
    for (wino_block b; next_block(c, f->rows, &b);)
        dk_wino_fused_block(f, c->u, c->x + b.n * f->cin * spatial, c->bias, b.i, b.j0, b.nrows,
                            c->y + b.n * f->cout * spatial, scratch);
}

/* The blocked path. */
static void blocks_worker(void *arg, int t, int nthreads)
{
    (void)nthreads;
    wino_ctx *c = arg;
    const wino_shape *s = c->s;
    float *v = c->scratch + (size_t)t * s->per_thread;
    float *m = v + dk_line_floats(POINTS * (size_t)s->cin * s->block);
    float *rows = m + dk_line_floats(POINTS * (size_t)s->cout * s->block);
    size_t spatial = (size_t)s->dims[0] * s->dims[1] * s->dims[2];
    for (wino_block b; next_block(c, s->rows, &b);) {
        input_block(s, c->x + b.n * s->cin * spatial, b.i, b.j0, b.nrows, v, rows);
        multiply_block(s, c->u, v, m, (size_t)b.nrows * s->tiles[2]);
        output_block(s, m, c->bias, b.i, b.j0, b.nrows, c->y + b.n * s->cout * spatial, rows);
    }
}

void dk_winograd_forward(const float *x, int cin, const int dims[3], const float *w,
                         bool flip_transpose, const float *bias, float *y, int cout, int batch,
                         dk_workspace *ws, const dk_conv_tuning *tune)
{
    wino_shape s;
    shape_init(&s, cin, cout, dims);
    dk_wino_fused f;
    dk_simd isa = fused_isa(tune, cin, cout);
    if (isa != DK_SIMD_NONE)
        dk_wino_fused_plan(&f, cin, cout, dims, isa, fused_tile(tune, cin, cout, dims));
    size_t per_thread = isa != DK_SIMD_NONE ? f.per_thread : s.per_thread;
    size_t groups =
        isa != DK_SIMD_NONE ? ((size_t)f.tiles[1] + f.rows - 1) / f.rows : (size_t)s.groups;
    size_t shared = shared_floats(&s, isa != DK_SIMD_NONE ? f.tile : 0); /* u */
    float *base = dk_workspace_floats(ws, shared + per_thread);
    size_t blocks = (size_t)batch * s.tiles[0] * groups; /* tiles[0] alike on both paths */
    int max_threads = tune->max_threads;
    int n = dk_blas_threads();
    if (max_threads > 0 && max_threads < n) n = max_threads;
    if (n > DK_PARALLEL_MAX_THREADS) n = DK_PARALLEL_MAX_THREADS;
    if ((size_t)n > blocks) n = (int)blocks;
    while (n > 1 && shared + (size_t)n * per_thread > ws->capacity)
        n--;
    if (n < 1) n = 1;
    wino_ctx c = {.s = &s,
                  .fused = isa != DK_SIMD_NONE ? &f : NULL,
                  .w = w,
                  .x = x,
                  .bias = bias,
                  .flip = flip_transpose,
                  .u = base,
                  .y = y,
                  .scratch = base + shared,
                  .batch = batch};
    atomic_init(&c.next, 0);
    dk_parallel_run(ws->pool, n < cout ? n : cout, weights_worker, &c);
    dk_parallel_run(ws->pool, n, c.fused ? fused_worker : blocks_worker, &c);
}
