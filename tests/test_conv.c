/* test_conv.c: 3D convolution and transposed convolution (distill/conv.h): hand-
 * computed cases, the forward pass against a naive direct reference over many
 * geometries and tilings, every backward against central finite differences, the
 * adjoint identity, determinism with two threads (and the same bits as one), and
 * output-size errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/conv.h"
#include "distill/im2col.h"
#include "testutil.h"

/* ---- fixtures ---- */

typedef struct conv_case {
    dk_conv3d_geom g;
    bool transposed;
    int batch, cin, cout;
    int in[3];
    dk_conv_tuning tune;
} conv_case;

typedef struct conv_bufs {
    conv_case c;
    dk_tensor x, w, b, y, r, dx, dw, db, dy;
    dk_workspace ws;
} conv_bufs;

static dk_conv3d_geom geom(int kd, int kh, int kw, int sd, int sh, int sw, int pd, int ph, int pw)
{
    return (dk_conv3d_geom){{kd, kh, kw}, {sd, sh, sw}, {pd, ph, pw}};
}

static dk_conv_tuning tuning(size_t tile_rows, int fold)
{
    dk_conv_tuning t = dk_conv_default_tuning();
    if (tile_rows) t.tile_rows = tile_rows;
    t.fold = fold;
    t.winograd = 0; /* the GEMM engine's tiling; Winograd has test_winograd.c */
    return t;
}

static void alloc_ok(dk_tensor *t, int n, int c, int d, int h, int w)
{
    dk_err err = {0};
    cr_assert_eq(dk_tensor_alloc(t, n, c, d, h, w, &err), DK_OK, "%s", err.msg);
}

static void bufs_init(conv_bufs *b, const conv_case *c, unsigned seed)
{
    memset(b, 0, sizeof *b);
    b->c = *c;
    int out[3];
    dk_err err = {0};
    cr_assert_eq(dk_conv3d_out_dims(&c->g, c->transposed, c->in, out, &err), DK_OK, "%s", err.msg);
    const int *k = c->g.kernel;
    alloc_ok(&b->x, c->batch, c->cin, c->in[0], c->in[1], c->in[2]);
    alloc_ok(&b->dx, c->batch, c->cin, c->in[0], c->in[1], c->in[2]);
    if (c->transposed) {
        alloc_ok(&b->w, c->cin, c->cout, k[0], k[1], k[2]);
        alloc_ok(&b->dw, c->cin, c->cout, k[0], k[1], k[2]);
    } else {
        alloc_ok(&b->w, c->cout, c->cin, k[0], k[1], k[2]);
        alloc_ok(&b->dw, c->cout, c->cin, k[0], k[1], k[2]);
    }
    alloc_ok(&b->b, c->cout, 1, 1, 1, 1);
    alloc_ok(&b->db, c->cout, 1, 1, 1, 1);
    alloc_ok(&b->y, c->batch, c->cout, out[0], out[1], out[2]);
    alloc_ok(&b->dy, c->batch, c->cout, out[0], out[1], out[2]);
    alloc_ok(&b->r, c->batch, c->cout, out[0], out[1], out[2]);
    dk_test_fill_uniform(b->x.data, dk_tensor_numel(&b->x), seed, -1, 1);
    dk_test_fill_uniform(b->w.data, dk_tensor_numel(&b->w), seed + 1, -1, 1);
    dk_test_fill_uniform(b->b.data, dk_tensor_numel(&b->b), seed + 2, -1, 1);
    dk_test_fill_uniform(b->r.data, dk_tensor_numel(&b->r), seed + 3, -1, 1);
    size_t need =
        dk_conv3d_workspace_floats_tuned(&c->g, c->transposed, c->cin, c->cout, c->in, &c->tune);
    cr_assert_gt(need, 0);
    cr_assert_eq(dk_workspace_reserve(&b->ws, need, &err), DK_OK, "%s", err.msg);
}

static void bufs_release(conv_bufs *b)
{
    dk_tensor *all[] = {&b->x, &b->w, &b->b, &b->y, &b->r, &b->dx, &b->dw, &b->db, &b->dy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dk_tensor_release(all[i]);
    dk_workspace_release(&b->ws);
}

static void run_forward(conv_bufs *b, bool with_bias)
{
    const dk_tensor *bias = with_bias ? &b->b : NULL;
    if (b->c.transposed)
        dk_convt3d_forward_tuned(&b->c.g, &b->x, &b->w, bias, &b->y, &b->ws, &b->c.tune);
    else
        dk_conv3d_forward_tuned(&b->c.g, &b->x, &b->w, bias, &b->y, &b->ws, &b->c.tune);
}

static void run_backward(conv_bufs *b, dk_tensor *dx)
{
    if (b->c.transposed)
        dk_convt3d_backward_tuned(&b->c.g, &b->x, &b->w, &b->dy, dx, &b->dw, &b->db, &b->ws,
                                  &b->c.tune);
    else
        dk_conv3d_backward_tuned(&b->c.g, &b->x, &b->w, &b->dy, dx, &b->dw, &b->db, &b->ws,
                                 &b->c.tune);
}

/* ---- the naive references: the definitions, one multiply-add at a time ---- */

static size_t at(const dk_tensor *t, int n, int c, int d, int h, int w)
{
    return ((((size_t)n * t->c + c) * t->d + d) * t->h + h) * t->w + w;
}

static void ref_conv(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *w,
                     const dk_tensor *bias, dk_tensor *y)
{
    const int *k = g->kernel, *s = g->stride, *p = g->pad;
    for (int n = 0; n < y->n; n++)
        for (int co = 0; co < y->c; co++)
            for (int od = 0; od < y->d; od++)
                for (int oh = 0; oh < y->h; oh++)
                    for (int ow = 0; ow < y->w; ow++) {
                        double acc = bias ? bias->data[co] : 0;
                        for (int ci = 0; ci < x->c; ci++)
                            for (int kd = 0; kd < k[0]; kd++)
                                for (int kh = 0; kh < k[1]; kh++)
                                    for (int kw = 0; kw < k[2]; kw++) {
                                        int id = od * s[0] + kd - p[0], ih = oh * s[1] + kh - p[1],
                                            iw = ow * s[2] + kw - p[2];
                                        if (id < 0 || id >= x->d || ih < 0 || ih >= x->h ||
                                            iw < 0 || iw >= x->w)
                                            continue;
                                        acc += (double)x->data[at(x, n, ci, id, ih, iw)] *
                                               w->data[at(w, co, ci, kd, kh, kw)];
                                    }
                        y->data[at(y, n, co, od, oh, ow)] = (float)acc;
                    }
}

/* Transposed conv by its own definition: every input voxel scatters weight * value. */
static void ref_convt(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *w,
                      const dk_tensor *bias, dk_tensor *y)
{
    const int *k = g->kernel, *s = g->stride, *p = g->pad;
    size_t numel = dk_tensor_numel(y);
    double *acc = calloc(numel, sizeof(double));
    cr_assert_not_null(acc);
    for (int n = 0; n < x->n; n++)
        for (int ci = 0; ci < x->c; ci++)
            for (int id = 0; id < x->d; id++)
                for (int ih = 0; ih < x->h; ih++)
                    for (int iw = 0; iw < x->w; iw++)
                        for (int co = 0; co < y->c; co++)
                            for (int kd = 0; kd < k[0]; kd++)
                                for (int kh = 0; kh < k[1]; kh++)
                                    for (int kw = 0; kw < k[2]; kw++) {
                                        int od = id * s[0] + kd - p[0], oh = ih * s[1] + kh - p[1],
                                            ow = iw * s[2] + kw - p[2];
                                        if (od < 0 || od >= y->d || oh < 0 || oh >= y->h ||
                                            ow < 0 || ow >= y->w)
                                            continue;
                                        acc[at(y, n, co, od, oh, ow)] +=
                                            (double)x->data[at(x, n, ci, id, ih, iw)] *
                                            w->data[at(w, ci, co, kd, kh, kw)];
                                    }
    for (size_t i = 0; i < numel; i++) {
        int co = (int)(i / dk_tensor_spatial(y) % y->c);
        y->data[i] = (float)(acc[i] + (bias ? bias->data[co] : 0));
    }
    free(acc);
}

static void check_forward_against_reference(const conv_case *c)
{
    conv_bufs b;
    bufs_init(&b, c, 11);
    dk_tensor want;
    alloc_ok(&want, b.y.n, b.y.c, b.y.d, b.y.h, b.y.w);
    dk_tensor_fill(&b.y, NAN); /* the forward must overwrite every output */
    run_forward(&b, true);
    if (c->transposed)
        ref_convt(&c->g, &b.x, &b.w, &b.b, &want);
    else
        ref_conv(&c->g, &b.x, &b.w, &b.b, &want);
    double diff = dk_test_max_rel_diff(b.y.data, want.data, dk_tensor_numel(&want));
    cr_assert_lt(diff, 1e-5,
                 "%s k(%d,%d,%d) s(%d,%d,%d) p(%d,%d,%d) %d->%d in (%d,%d,%d) tile %zu fold %d: "
                 "max rel diff %g",
                 c->transposed ? "convt" : "conv", c->g.kernel[0], c->g.kernel[1], c->g.kernel[2],
                 c->g.stride[0], c->g.stride[1], c->g.stride[2], c->g.pad[0], c->g.pad[1],
                 c->g.pad[2], c->cin, c->cout, c->in[0], c->in[1], c->in[2], c->tune.tile_rows,
                 c->tune.fold, diff);
    dk_tensor_release(&want);
    bufs_release(&b);
}

/* ---- hand-computed cases ---- */

Test(conv_hand, ones_kernel_sums_the_neighbourhood)
{
    /* x = 1..27 over a 3x3x3 volume (index 9d + 3h + w + 1), kernel all ones, pad 1.
     * Corner: sum over {0,1}^3 = 8 + 9*4 + 3*4 + 1*4 = 60; centre: 1 + ... + 27 = 378.
     * With stride 2 the outputs sit at 0 and 2 per axis: far corner sums {1,2}^3 =
     * 8 + 9*12 + 3*12 + 12 = 164. */
    conv_case c = {geom(3, 3, 3, 1, 1, 1, 1, 1, 1), false, 1, 1, 1, {3, 3, 3}, tuning(0, -1)};
    static const float full[27] = {60,  96,  68,  108, 171, 120, 84,  132, 92,
                                   144, 225, 156, 243, 378, 261, 180, 279, 192,
                                   132, 204, 140, 216, 333, 228, 156, 240, 164};
    static const float strided[8] = {60, 68, 84, 92, 132, 140, 156, 164};
    for (int stride = 1; stride <= 2; stride++) {
        c.g = geom(3, 3, 3, stride, stride, stride, 1, 1, 1);
        conv_bufs b;
        bufs_init(&b, &c, 1);
        for (int i = 0; i < 27; i++) {
            b.x.data[i] = (float)(i + 1);
            b.w.data[i] = 1.0f;
        }
        run_forward(&b, false);
        const float *want = stride == 1 ? full : strided;
        for (size_t i = 0; i < dk_tensor_numel(&b.y); i++)
            cr_assert_eq(b.y.data[i], want[i], "stride %d, y[%zu] = %g, want %g", stride, i,
                         b.y.data[i], want[i]);
        bufs_release(&b);
    }
}

Test(conv_hand, in_plane_tap_shifts_along_w)
{
    /* Kernel (1,3,3) with a single 1 at (kh = 1, kw = 2), pad (0,1,1): y[d,h,w] =
     * x[d,h,w+1], 0 in the last column; bias 0.5 is added everywhere. */
    conv_case c = {geom(1, 3, 3, 1, 1, 1, 0, 1, 1), false, 1, 1, 1, {2, 3, 4}, tuning(0, -1)};
    conv_bufs b;
    bufs_init(&b, &c, 2);
    memset(b.w.data, 0, sizeof(float) * 9);
    b.w.data[1 * 3 + 2] = 1.0f;
    b.b.data[0] = 0.5f;
    for (int i = 0; i < 24; i++)
        b.x.data[i] = (float)i;
    run_forward(&b, true);
    for (int i = 0; i < 24; i++) {
        float want = (i % 4 == 3 ? 0.0f : (float)(i + 1)) + 0.5f;
        cr_assert_eq(b.y.data[i], want, "y[%d] = %g, want %g", i, b.y.data[i], want);
    }
    bufs_release(&b);
}

Test(conv_hand, transposed_k2_s2_tiles_the_kernel)
{
    /* x = [1, 2] along w (1x1x2), kernel 2x2x2 = 1..8, stride 2: every input voxel
     * writes value * kernel into its own 2x2x2 block: y[d][h][2i + kw] = x[i] * k[d][h][kw]. */
    conv_case c = {geom(2, 2, 2, 2, 2, 2, 0, 0, 0), true, 1, 1, 1, {1, 1, 2}, tuning(0, -1)};
    conv_bufs b;
    bufs_init(&b, &c, 3);
    b.x.data[0] = 1;
    b.x.data[1] = 2;
    for (int i = 0; i < 8; i++)
        b.w.data[i] = (float)(i + 1);
    run_forward(&b, false);
    static const float want[16] = {1, 2, 2, 4, 3, 4, 6, 8, 5, 6, 10, 12, 7, 8, 14, 16};
    cr_assert_eq(b.y.d, 2);
    cr_assert_eq(b.y.w, 4);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(b.y.data[i], want[i], "y[%d] = %g, want %g", i, b.y.data[i], want[i]);
    bufs_release(&b);
}

Test(conv_hand, transposed_in_plane_upsampling_with_bias)
{
    /* Kernel (1,2,2) stride (1,2,2), 1 -> 2 channels: channel o gets x * k_o + bias_o
     * in each 2x2 block; depth is unchanged. x is 2x1x1 = [1, 10]. */
    conv_case c = {geom(1, 2, 2, 1, 2, 2, 0, 0, 0), true, 1, 1, 2, {2, 1, 1}, tuning(0, -1)};
    conv_bufs b;
    bufs_init(&b, &c, 4);
    b.x.data[0] = 1;
    b.x.data[1] = 10;
    float k[8] = {1, 2, 3, 4, -1, -2, -3, -4}; /* (cin 1, cout 2, 1, 2, 2) */
    memcpy(b.w.data, k, sizeof k);
    b.b.data[0] = 100;
    b.b.data[1] = 0.5f;
    run_forward(&b, true);
    cr_assert_eq(b.y.d, 2);
    cr_assert_eq(b.y.h, 2);
    cr_assert_eq(b.y.w, 2);
    static const float want[16] = {101,   102,   103,   104,   110,   120,    130,    140,
                                   -0.5f, -1.5f, -2.5f, -3.5f, -9.5f, -19.5f, -29.5f, -39.5f};
    for (int i = 0; i < 16; i++)
        cr_assert_eq(b.y.data[i], want[i], "y[%d] = %g, want %g", i, b.y.data[i], want[i]);
    bufs_release(&b);
}

Test(conv_hand, backward_of_one_tap_kernel)
{
    /* 1x1x1 kernel w = 3, x = 1..8, dy = 1: dx = 3 everywhere, dw += sum x = 36,
     * db += 8 (accumulated onto the 1 already there). */
    conv_case c = {geom(1, 1, 1, 1, 1, 1, 0, 0, 0), false, 1, 1, 1, {2, 2, 2}, tuning(0, -1)};
    conv_bufs b;
    bufs_init(&b, &c, 5);
    b.w.data[0] = 3;
    for (int i = 0; i < 8; i++)
        b.x.data[i] = (float)(i + 1);
    dk_tensor_fill(&b.dy, 1);
    dk_tensor_fill(&b.dw, 1);
    dk_tensor_fill(&b.db, 1);
    dk_tensor_fill(&b.dx, NAN);
    run_backward(&b, &b.dx);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(b.dx.data[i], 3.0f);
    cr_assert_eq(b.dw.data[0], 37.0f);
    cr_assert_eq(b.db.data[0], 9.0f);
    bufs_release(&b);
}

/* ---- forward against the reference ---- */

static const struct {
    dk_conv3d_geom g;
    int in[3];
} geometries[] = {
    {{{3, 3, 3}, {1, 1, 1}, {1, 1, 1}}, {5, 6, 7}}, /* the U-Net's conv */
    {{{1, 3, 3}, {1, 1, 1}, {0, 1, 1}}, {4, 5, 9}}, /* in-plane only */
    {{{3, 3, 1}, {1, 1, 1}, {1, 1, 0}}, {5, 4, 3}}, /* through-plane and h only */
    {{{1, 1, 1}, {1, 1, 1}, {0, 0, 0}}, {3, 5, 7}}, /* pointwise */
    {{{3, 3, 3}, {2, 2, 2}, {1, 1, 1}}, {7, 6, 9}}, /* strided down-sampling */
    {{{3, 3, 3}, {1, 2, 2}, {1, 1, 1}}, {4, 8, 7}}, /* in-plane stride */
    {{{2, 2, 2}, {2, 2, 2}, {0, 0, 0}}, {6, 4, 8}}, /* patchify */
    {{{3, 2, 3}, {2, 1, 1}, {0, 1, 2}}, {6, 5, 4}}, /* odd mix, pad > kernel/2 */
    {{{1, 1, 1}, {1, 1, 1}, {0, 1, 0}}, {2, 3, 4}}, /* pointwise with pad */
};
#define N_GEOMETRIES (sizeof geometries / sizeof geometries[0])

Test(conv_forward, matches_direct_reference_for_all_geometries_and_tilings)
{
    /* tile rows: 0 = the default (one or two tiles here), 7 = a row or two per
     * tile, 1 = single voxels (unfolded) or single units (folded) per tile. */
    static const size_t tiles[] = {0, 7, 1};
    for (size_t i = 0; i < N_GEOMETRIES; i++)
        for (size_t t = 0; t < 3; t++)
            for (int fold = -1; fold <= 2; fold++) {
                conv_case c = {geometries[i].g, false, 2, 3, 5, {0}, tuning(tiles[t], fold)};
                memcpy(c.in, geometries[i].in, sizeof c.in);
                check_forward_against_reference(&c);
            }
}

Test(conv_forward, thin_and_wide_channel_counts)
{
    int channels[][2] = {{1, 16}, {16, 4}, {7, 64}};
    for (int i = 0; i < 3; i++) {
        conv_case c = {geom(3, 3, 3, 1, 1, 1, 1, 1, 1),
                       false,
                       1,
                       channels[i][0],
                       channels[i][1],
                       {4, 5, 6},
                       tuning(0, -1)};
        check_forward_against_reference(&c);
    }
}

Test(conv_forward, volume_larger_than_one_default_tile)
{
    /* 8 -> 8 channels at 18^3: a default tile holds 21 of the 324 output rows, so
     * the default plan cuts the volume into many tiles. */
    conv_case c = {geom(3, 3, 3, 1, 1, 1, 1, 1, 1), false, 1, 8, 8, {18, 18, 18}, tuning(0, -1)};
    check_forward_against_reference(&c);
    c.tune.fold = 0;
    check_forward_against_reference(&c);
}

Test(convt_forward, matches_scatter_reference)
{
    static const size_t tiles[] = {0, 3};
    for (size_t i = 0; i < N_GEOMETRIES; i++)
        for (size_t t = 0; t < 2; t++) {
            conv_case c = {geometries[i].g, true, 2, 4, 3, {3, 4, 4}, tuning(tiles[t], -1)};
            check_forward_against_reference(&c);
        }
}

/* ---- backward against finite differences of sum(y * r) ---- */

typedef struct loss_ctx {
    conv_bufs *b;
} loss_ctx;

static double loss_of(void *arg)
{
    conv_bufs *b = ((loss_ctx *)arg)->b;
    run_forward(b, true);
    double sum = 0;
    for (size_t i = 0; i < dk_tensor_numel(&b->y); i++)
        sum += (double)b->y.data[i] * b->r.data[i];
    return sum;
}

static void check_backward(const conv_case *c)
{
    conv_bufs b;
    bufs_init(&b, c, 21);
    /* dL/dy = r; dw and db accumulate onto what is there, dx is overwritten. */
    dk_tensor_copy(&b.dy, &b.r);
    dk_tensor_fill(&b.dw, 0.25f);
    dk_tensor_fill(&b.db, -0.5f);
    dk_tensor_fill(&b.dx, NAN);
    run_backward(&b, &b.dx);
    for (size_t i = 0; i < dk_tensor_numel(&b.dw); i++)
        b.dw.data[i] -= 0.25f;
    for (size_t i = 0; i < dk_tensor_numel(&b.db); i++)
        b.db.data[i] += 0.5f;
    loss_ctx ctx = {&b};
    /* The loss is linear in every input, so a large step is exact but for rounding;
     * gradients here are O(1..10), hence the absolute floor of 1. */
    double ex =
        dk_test_gradcheck(loss_of, &ctx, b.x.data, b.dx.data, dk_tensor_numel(&b.x), 1.0, 1.0, 48);
    double ew =
        dk_test_gradcheck(loss_of, &ctx, b.w.data, b.dw.data, dk_tensor_numel(&b.w), 1.0, 1.0, 48);
    double eb =
        dk_test_gradcheck(loss_of, &ctx, b.b.data, b.db.data, dk_tensor_numel(&b.b), 1.0, 1.0, 0);
    cr_assert(ex < 1e-4 && ew < 1e-4 && eb < 1e-4,
              "%s k(%d,%d,%d) s(%d,%d,%d) p(%d,%d,%d) tile %zu fold %d: dx %g dw %g db %g",
              c->transposed ? "convt" : "conv", c->g.kernel[0], c->g.kernel[1], c->g.kernel[2],
              c->g.stride[0], c->g.stride[1], c->g.stride[2], c->g.pad[0], c->g.pad[1], c->g.pad[2],
              c->tune.tile_rows, c->tune.fold, ex, ew, eb);
    /* dx = NULL (a first layer) still yields the same weight gradient. */
    dk_tensor dw_again;
    alloc_ok(&dw_again, b.dw.n, b.dw.c, b.dw.d, b.dw.h, b.dw.w);
    dk_tensor_copy(&dw_again, &b.dw);
    dk_tensor_zero(&b.dw);
    run_backward(&b, NULL);
    cr_assert_lt(dk_test_max_rel_diff(b.dw.data, dw_again.data, dk_tensor_numel(&b.dw)), 1e-6);
    dk_tensor_release(&dw_again);
    bufs_release(&b);
}

Test(conv_backward, matches_finite_differences)
{
    static const size_t tiles[] = {0, 5};
    for (size_t i = 0; i < N_GEOMETRIES; i++)
        for (size_t t = 0; t < 2; t++)
            for (int fold = 0; fold <= 2; fold++) {
                conv_case c = {geometries[i].g, false, 2, 3, 4, {0}, tuning(tiles[t], fold)};
                memcpy(c.in, geometries[i].in, sizeof c.in);
                check_backward(&c);
            }
}

Test(convt_backward, matches_finite_differences)
{
    static const size_t tiles[] = {0, 4};
    for (size_t i = 0; i < N_GEOMETRIES; i++)
        for (size_t t = 0; t < 2; t++) {
            conv_case c = {geometries[i].g, true, 2, 3, 2, {3, 3, 3}, tuning(tiles[t], -1)};
            check_backward(&c);
        }
}

/* ---- adjoint identity: <conv(x), y> == <x, convt(y)> with the same weight ---- */

Test(conv_adjoint, conv_and_transposed_conv_are_adjoint)
{
    for (size_t i = 0; i < N_GEOMETRIES; i++) {
        const dk_conv3d_geom *g = &geometries[i].g;
        /* a conv input the transposed conv maps back onto exactly */
        int small[3] = {3, 3, 4}, in[3], out[3];
        dk_err err = {0};
        cr_assert_eq(dk_conv3d_out_dims(g, true, small, in, &err), DK_OK, "%s", err.msg);
        conv_case c = {*g, false, 1, 3, 5, {in[0], in[1], in[2]}, tuning(0, -1)};
        conv_bufs b;
        bufs_init(&b, &c, 31);
        cr_assert_eq(dk_conv3d_out_dims(g, false, in, out, &err), DK_OK);
        cr_assert(out[0] == small[0] && out[1] == small[1] && out[2] == small[2]);
        dk_tensor xt; /* convt(r): back on x's grid */
        alloc_ok(&xt, 1, 3, in[0], in[1], in[2]);
        run_forward(&b, false);
        dk_convt3d_forward_tuned(g, &b.r, &b.w, NULL, &xt, &b.ws, &c.tune);
        double lhs = 0, rhs = 0, scale = 0;
        for (size_t j = 0; j < dk_tensor_numel(&b.y); j++) {
            lhs += (double)b.y.data[j] * b.r.data[j];
            scale += fabs((double)b.y.data[j] * b.r.data[j]);
        }
        for (size_t j = 0; j < dk_tensor_numel(&b.x); j++)
            rhs += (double)b.x.data[j] * xt.data[j];
        cr_assert_lt(fabs(lhs - rhs), 1e-5 * scale,
                     "geometry %zu: <conv x, r> %.9g, <x, convt r> %.9g", i, lhs, rhs);
        dk_tensor_release(&xt);
        bufs_release(&b);
    }
}

/* ---- threads: same result with 1 and 2, and bit-identical across runs ---- */

Test(conv_threads, two_threads_are_deterministic_and_correct)
{
    int saved = dk_blas_threads();
    dk_blas_set_threads(2);
    conv_case c = {geom(3, 3, 3, 1, 1, 1, 1, 1, 1), false, 2, 6, 5, {9, 10, 11}, tuning(30, -1)};
    check_forward_against_reference(&c);
    check_backward(&c);
    c.g = geom(3, 3, 3, 2, 2, 2, 1, 1, 1); /* the scatter path splits channels */
    check_backward(&c);
    conv_bufs b;
    bufs_init(&b, &c, 41);
    dk_tensor_copy(&b.dy, &b.r);
    run_backward(&b, &b.dx);
    dk_tensor first_dx, first_dw;
    alloc_ok(&first_dx, b.dx.n, b.dx.c, b.dx.d, b.dx.h, b.dx.w);
    alloc_ok(&first_dw, b.dw.n, b.dw.c, b.dw.d, b.dw.h, b.dw.w);
    dk_tensor_copy(&first_dx, &b.dx);
    dk_tensor_copy(&first_dw, &b.dw);
    for (int rep = 0; rep < 3; rep++) {
        dk_tensor_zero(&b.dw);
        dk_tensor_zero(&b.db);
        run_backward(&b, &b.dx);
        cr_assert_eq(memcmp(b.dx.data, first_dx.data, sizeof(float) * dk_tensor_numel(&b.dx)), 0);
        cr_assert_eq(memcmp(b.dw.data, first_dw.data, sizeof(float) * dk_tensor_numel(&b.dw)), 0);
    }
    cr_assert_eq(dk_blas_threads(), 2, "the conv must restore the caller's BLAS thread count");
    dk_tensor_release(&first_dx);
    dk_tensor_release(&first_dw);
    bufs_release(&b);
    dk_blas_set_threads(saved);
}

/* Forward tiles and weight-gradient chunks do not depend on the thread count
 * (threads only take them as they come), so 1 and 2 threads give the same bits. */
static void run_all_passes(const conv_case *c, int threads, conv_bufs *b)
{
    int saved = dk_blas_threads();
    dk_blas_set_threads(threads);
    bufs_init(b, c, 51);
    run_forward(b, true);
    dk_tensor_copy(&b->dy, &b->r);
    run_backward(b, &b->dx);
    dk_blas_set_threads(saved);
}

static void expect_same_bits(const dk_tensor *a, const dk_tensor *b, const char *what)
{
    cr_assert_eq(memcmp(a->data, b->data, sizeof(float) * dk_tensor_numel(a)), 0,
                 "%s differs between 1 and 2 threads", what);
}

Test(conv_threads, one_and_two_threads_give_the_same_bits)
{
    conv_case cases[] = {
        /* the U-Net's 3x3x3 with w folded, many small tiles, batch 2 */
        {geom(3, 3, 3, 1, 1, 1, 1, 1, 1), false, 2, 6, 5, {9, 10, 11}, tuning(30, 1)},
        /* h and w folded */
        {geom(3, 3, 3, 1, 1, 1, 1, 1, 1), false, 1, 4, 8, {6, 8, 8}, tuning(70, 2)},
        /* the up-conv: bias stored with the scatter, weight grad by chunks */
        {geom(2, 2, 2, 2, 2, 2, 0, 0, 0), true, 2, 6, 4, {4, 5, 6}, tuning(7, -1)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conv_bufs one, two;
        run_all_passes(&cases[i], 1, &one);
        run_all_passes(&cases[i], 2, &two);
        expect_same_bits(&one.y, &two.y, "y");
        expect_same_bits(&one.dx, &two.dx, "dx");
        expect_same_bits(&one.dw, &two.dw, "dw");
        expect_same_bits(&one.db, &two.db, "db");
        bufs_release(&one);
        bufs_release(&two);
    }
}

/* ---- geometry errors and workspace bound ---- */

static void expect_dims_error(dk_conv3d_geom g, bool transposed, int in0, const char *needle)
{
    int in[3] = {in0, 8, 8}, out[3];
    dk_err err = {0};
    cr_assert_eq(dk_conv3d_out_dims(&g, transposed, in, out, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
}

Test(conv_dims, sizes_and_errors)
{
    int in[3] = {64, 63, 5}, out[3];
    dk_err err = {0};
    dk_conv3d_geom g = geom(3, 3, 1, 2, 2, 1, 1, 1, 0);
    cr_assert_eq(dk_conv3d_out_dims(&g, false, in, out, &err), DK_OK);
    cr_assert(out[0] == 32 && out[1] == 32 && out[2] == 5, "(%d, %d, %d)", out[0], out[1], out[2]);
    g = geom(2, 2, 1, 2, 2, 1, 0, 0, 0);
    cr_assert_eq(dk_conv3d_out_dims(&g, true, in, out, &err), DK_OK);
    cr_assert(out[0] == 128 && out[1] == 126 && out[2] == 5);
    expect_dims_error(geom(0, 3, 3, 1, 1, 1, 0, 0, 0), false, 8, "kernel 0");
    expect_dims_error(geom(3, 3, 3, 0, 1, 1, 0, 0, 0), false, 8, "stride 0");
    expect_dims_error(geom(3, 3, 3, 1, 1, 1, -1, 0, 0), true, 8, "pad -1");
    expect_dims_error(geom(5, 3, 3, 1, 1, 1, 0, 0, 0), false, 2, "output size");
    expect_dims_error(geom(3, 3, 3, 1, 1, 1, 0, 0, 0), false, 0, "input 0");
    expect_dims_error(geom(1, 1, 1, 1, 1, 1, 1, 0, 0), true, 1, "transposed conv on axis d");
}

Test(conv_dims, workspace_is_bounded_by_the_tile)
{
    /* The whole-volume column matrix of a 64^3, 16 -> 16, 3x3x3 conv is 113 M floats. */
    dk_conv3d_geom g = geom(3, 3, 3, 1, 1, 1, 1, 1, 1);
    int in[3] = {64, 64, 64};
    size_t need = dk_conv3d_workspace_floats(&g, false, 16, 16, in);
    cr_assert_gt(need, 0);
    cr_assert_leq(need, 2 * DK_CONV_TILE_FLOATS, "%zu floats", need);
    int big[3] = {256, 256, 256};
    cr_assert_leq(dk_conv3d_workspace_floats(&g, false, 128, 128, big), 4 * DK_CONV_TILE_FLOATS);
    g = geom(2, 2, 2, 2, 2, 2, 0, 0, 0);
    int bottom[3] = {8, 8, 8};
    cr_assert_gt(dk_conv3d_workspace_floats(&g, true, 128, 64, bottom), 0);
}
