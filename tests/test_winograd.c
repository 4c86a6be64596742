/* test_winograd.c: the Winograd paths of the conv engine, blocked F(2x2x2, 3x3x3)
 * (distill/winograd.h) and fused (distill/winograd_fused.h) with tiles of 2 and of 4
 * (F(2x4x4, 3x3x3)) on each instruction set this CPU runs: hand cases (exact but
 * for tile 4), the forward and the backward data against a direct float64 reference
 * with a rounding bound per output, tile and block edges, one and two threads giving
 * the same bits, AVX2 and AVX-512 giving the same bits, and conv.h routing the
 * U-Net's convolutions through them. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/conv.h"
#include "distill/im2col.h"
#include "distill/winograd.h"
#include "distill/winograd_fused.h"
#include "testutil.h"

static const dk_conv3d_geom k3 = {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}};

static dk_conv_tuning winograd(int mode, int threads)
{
    dk_conv_tuning t = dk_conv_default_tuning();
    t.winograd = mode;
    t.max_threads = threads;
    return t;
}

/* The ways a Winograd conv can run: each test runs every one this CPU has. */
typedef struct path {
    const char *name;
    int fused, simd, tile;
} path;

static const path paths[] = {
    {"blocked", 0, 0, 0},
    {"fused AVX-512 tile 2", 1, DK_SIMD_AVX512, 2},
    {"fused AVX2 tile 2", 1, DK_SIMD_AVX2, 2},
    {"fused AVX-512 tile 4", 1, DK_SIMD_AVX512, 4},
    {"fused AVX2 tile 4", 1, DK_SIMD_AVX2, 4},
};
#define NPATHS (sizeof paths / sizeof paths[0])

static bool path_runs(const path *p)
{
    return p->fused == 0 || dk_simd_supported((dk_simd)p->simd);
}

/* Winograd whenever it fits, on path p. */
static dk_conv_tuning on_path(const path *p, int threads)
{
    dk_conv_tuning t = winograd(1, threads);
    t.fused = p->fused;
    t.simd = p->simd;
    t.tile = p->tile;
    return t;
}

static dk_workspace workspace_for(int cin, int cout, const int dims[3], const dk_conv_tuning *t)
{
    dk_workspace ws = {0};
    dk_err err = {0};
    size_t need = dk_conv3d_workspace_floats_tuned(&k3, false, cin, cout, dims, t);
    cr_assert_eq(dk_workspace_reserve(&ws, need, &err), DK_OK, "%s", err.msg);
    return ws;
}

static float *at(const dk_tensor *t, int n, int c, int d, int h, int w)
{
    return t->data + ((((size_t)n * t->c + c) * t->d + d) * t->h + h) * t->w + w;
}

/* The direct conv in double, and per output the sum of |w x| (+ |bias|): the scale
 * float32 rounding of any summation order is measured against. */
static void reference(const dk_tensor *x, const dk_tensor *w, const float *bias, double *y,
                      double *scale)
{
    int cout = w->n, D = x->d, H = x->h, W = x->w;
    size_t i = 0;
    for (int n = 0; n < x->n; n++)
        for (int o = 0; o < cout; o++)
            for (int d = 0; d < D; d++)
                for (int h = 0; h < H; h++)
                    for (int v = 0; v < W; v++, i++) {
                        double sum = bias ? bias[o] : 0, mag = bias ? fabs(bias[o]) : 0;
                        for (int c = 0; c < x->c; c++)
                            for (int kd = 0; kd < 3; kd++)
                                for (int kh = 0; kh < 3; kh++)
                                    for (int kw = 0; kw < 3; kw++) {
                                        int dd = d + kd - 1, hh = h + kh - 1, ww = v + kw - 1;
                                        if (dd < 0 || dd >= D || hh < 0 || hh >= H || ww < 0 ||
                                            ww >= W)
                                            continue;
                                        double p = (double)*at(w, o, c, kd, kh, kw) *
                                                   *at(x, n, c, dd, hh, ww);
                                        sum += p;
                                        mag += fabs(p);
                                    }
                        y[i] = sum;
                        scale[i] = mag;
                    }
}

/* Winograd's float32 error: the input transform sums up to 8 values (F(4, 3) along
 * h and w: 3 terms each with factors up to 5), the output transform up to 27
 * products' worth (F(4, 3): factors up to 8), the products cin * 64 (tile 4: 144)
 * terms; 64 units of rounding of sum |w x| covers them with room (measured: 2.3
 * blocked, 2.0 tile 2, 15.2 tile 4). */
#define ROUNDING_UNITS 64.0

static double check_against_reference(const dk_tensor *x, const dk_tensor *w, const float *bias,
                                      const dk_tensor *y)
{
    size_t n = dk_tensor_numel(y);
    double *ref = malloc(n * sizeof *ref), *scale = malloc(n * sizeof *scale), worst = 0;
    cr_assert(ref && scale);
    reference(x, w, bias, ref, scale);
    for (size_t i = 0; i < n; i++) {
        double units = fabs(y->data[i] - ref[i]) / (FLT_EPSILON * (scale[i] + 1e-30));
        cr_assert_leq(units, ROUNDING_UNITS, "output %zu: %.9g, reference %.9g (scale %.3g)", i,
                      y->data[i], ref[i], scale[i]);
        if (units > worst) worst = units;
    }
    free(ref);
    free(scale);
    return worst;
}

static void forward(const dk_tensor *x, const dk_tensor *w, const dk_tensor *bias, dk_tensor *y,
                    const dk_conv_tuning *t)
{
    int dims[3] = {x->d, x->h, x->w};
    dk_workspace ws = workspace_for(x->c, w->n, dims, t);
    dk_conv3d_forward_tuned(&k3, x, w, bias, y, &ws, t);
    dk_workspace_release(&ws);
}

/* ---- hand cases: integers, so every transform of F(2, 3) (halvings) is exact; F(4,
 * 3)'s G divides by 6, so tile 4 is held to the rounding bound instead ---- */

/* How far path p may be from an exact integer result of a kernel whose |w| sum to
 * wsum, on inputs up to xmax in magnitude. Winograd's rounding scales with the
 * inputs of the whole tile, not only with the output's neighbourhood (a tap that
 * reads outside the volume still cancels its tile's other inputs), so the bound is
 * wsum * xmax; a wrong tap or offset is off by at least 1. */
static double hand_tolerance(const path *p, double wsum, double xmax)
{
    return p->tile == 4 ? ROUNDING_UNITS * FLT_EPSILON * wsum * xmax : 0;
}

Test(winograd_hand, ones_kernel_sums_the_neighbourhood_exactly)
{
    dk_tensor x = dk_test_tensor(1, 1, 5, 7, 3), w = dk_test_tensor(1, 1, 3, 3, 3),
              y = dk_test_tensor(1, 1, 5, 7, 3);
    for (size_t i = 0; i < dk_tensor_numel(&x); i++)
        x.data[i] = (float)(i % 7) - 3;
    for (size_t i = 0; i < 27; i++)
        w.data[i] = 1;
    for (size_t p = 0; p < NPATHS; p++) {
        if (!path_runs(&paths[p])) continue;
        dk_conv_tuning t = on_path(&paths[p], 1);
        forward(&x, &w, NULL, &y, &t);
        for (int d = 0; d < 5; d++)
            for (int h = 0; h < 7; h++)
                for (int v = 0; v < 3; v++) {
                    float sum = 0;
                    for (int a = -1; a <= 1; a++)
                        for (int b = -1; b <= 1; b++)
                            for (int c = -1; c <= 1; c++)
                                if (d + a >= 0 && d + a < 5 && h + b >= 0 && h + b < 7 &&
                                    v + c >= 0 && v + c < 3)
                                    sum += *at(&x, 0, 0, d + a, h + b, v + c);
                    float got = *at(&y, 0, 0, d, h, v);
                    cr_assert_leq(fabs((double)got - sum), hand_tolerance(&paths[p], 27, 3),
                                  "%s (%d, %d, %d): %.9g, expected %g", paths[p].name, d, h, v, got,
                                  sum);
                }
    }
    dk_tensor_release(&x);
    dk_tensor_release(&w);
    dk_tensor_release(&y);
}

Test(winograd_hand, one_tap_shifts_and_bias_adds)
{
    dk_tensor x = dk_test_tensor(1, 1, 4, 5, 6), w = dk_test_tensor(1, 1, 3, 3, 3),
              b = dk_test_tensor(1, 1, 1, 1, 1), y = dk_test_tensor(1, 1, 4, 5, 6);
    for (size_t i = 0; i < dk_tensor_numel(&x); i++)
        x.data[i] = (float)i;
    memset(w.data, 0, 27 * sizeof(float));
    *at(&w, 0, 0, 2, 0, 1) = 2; /* y(d, h, w) = 2 x(d + 1, h - 1, w) + 0.5 */
    b.data[0] = 0.5f;
    for (size_t p = 0; p < NPATHS; p++) {
        if (!path_runs(&paths[p])) continue;
        dk_conv_tuning t = on_path(&paths[p], 1);
        forward(&x, &w, &b, &y, &t);
        for (int d = 0; d < 4; d++)
            for (int h = 0; h < 5; h++)
                for (int v = 0; v < 6; v++) {
                    bool inside = d + 1 < 4 && h - 1 >= 0;
                    float want = (inside ? 2 * *at(&x, 0, 0, d + 1, h - 1, v) : 0) + 0.5f;
                    float got = *at(&y, 0, 0, d, h, v);
                    cr_assert_leq(fabs((double)got - want), hand_tolerance(&paths[p], 2, 119),
                                  "%s (%d, %d, %d): %.9g, expected %g", paths[p].name, d, h, v, got,
                                  want);
                }
    }
    dk_tensor_release(&x);
    dk_tensor_release(&w);
    dk_tensor_release(&b);
    dk_tensor_release(&y);
}

/* ---- random cases against the float64 reference ---- */

typedef struct shape_case {
    int batch, cin, cout, d, h, w;
} shape_case;

/* Odd and even sizes, sizes 1 and 2 (a single partial tile), thin and wide
 * channels (wide ones make blocks of one or a few tile rows and a partial last
 * block), batches. On the fused path: chunks that run on across tile rows (a
 * chunk over up to 8 rows of 1 tile, and 50 x 41 in blocks of 9, 9 and 7 tile
 * rows) and chunks within rows (rows of 8 or 16 tiles, an odd width among them;
 * 70 x 64 in blocks of 18 and 17 tile rows). */
static void forward_cases(const path *p);

static const shape_case cases[] = {
    {1, 1, 1, 1, 1, 1},  {1, 1, 2, 2, 2, 2},   {1, 3, 2, 1, 5, 4},    {2, 2, 3, 3, 3, 3},
    {1, 8, 8, 6, 9, 11}, {1, 16, 8, 5, 8, 10}, {2, 5, 7, 4, 7, 13},   {1, 64, 64, 3, 13, 11},
    {1, 1, 8, 7, 6, 5},  {1, 24, 40, 2, 9, 3}, {1, 17, 3, 9, 2, 18},  {1, 130, 96, 2, 5, 6},
    {1, 4, 3, 2, 5, 16}, {1, 8, 5, 3, 7, 31},  {1, 64, 8, 2, 50, 41}, {1, 16, 8, 3, 70, 64},
};

Test(winograd_forward, matches_float64_reference_on_every_edge)
{
    for (size_t p = 0; p < NPATHS; p++)
        if (path_runs(&paths[p])) forward_cases(&paths[p]);
}

static void forward_cases(const path *p)
{
    double worst = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const shape_case *c = &cases[k];
        dk_tensor x = dk_test_tensor(c->batch, c->cin, c->d, c->h, c->w),
                  w = dk_test_tensor(c->cout, c->cin, 3, 3, 3),
                  b = dk_test_tensor(c->cout, 1, 1, 1, 1),
                  y = dk_test_tensor(c->batch, c->cout, c->d, c->h, c->w);
        dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 10 + (unsigned)k, -1, 1);
        dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 20 + (unsigned)k, -1, 1);
        dk_test_fill_uniform(b.data, dk_tensor_numel(&b), 30 + (unsigned)k, -1, 1);
        dk_conv_tuning t = on_path(p, 0);
        bool with_bias = k % 2 == 0;
        forward(&x, &w, with_bias ? &b : NULL, &y, &t);
        double units = check_against_reference(&x, &w, with_bias ? b.data : NULL, &y);
        if (units > worst) worst = units;
        dk_tensor_release(&x);
        dk_tensor_release(&w);
        dk_tensor_release(&b);
        dk_tensor_release(&y);
    }
    cr_log_info("%s: worst error %.2f units of float32 rounding of sum |w x|", p->name, worst);
}

/* dx = the adjoint of the conv applied to dy, i.e. the conv of dy with the
 * mirrored, transposed kernel: checked as that conv in float64. */
Test(winograd_backward, data_gradient_matches_float64_reference)
{
    const shape_case c = {2, 6, 9, 5, 6, 7};
    dk_tensor w = dk_test_tensor(c.cout, c.cin, 3, 3, 3), dy = dk_test_tensor(2, c.cout, 5, 6, 7),
              dx = dk_test_tensor(2, c.cin, 5, 6, 7),
              mirrored = dk_test_tensor(c.cin, c.cout, 3, 3, 3);
    dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 41, -1, 1);
    dk_test_fill_uniform(dy.data, dk_tensor_numel(&dy), 42, -1, 1);
    for (int o = 0; o < c.cout; o++)
        for (int i = 0; i < c.cin; i++)
            for (int t = 0; t < 27; t++)
                mirrored.data[((size_t)i * c.cout + o) * 27 + 26 - t] =
                    w.data[((size_t)o * c.cin + i) * 27 + t];
    int dims[3] = {5, 6, 7};
    for (size_t p = 0; p < NPATHS; p++) {
        if (!path_runs(&paths[p])) continue;
        dk_conv_tuning t = on_path(&paths[p], 0);
        dk_workspace ws = workspace_for(c.cin, c.cout, dims, &t);
        memset(dx.data, 0xff, dk_tensor_numel(&dx) * sizeof(float)); /* NaNs: every value set */
        dk_conv3d_backward_data_tuned(&k3, &w, &dy, &dx, &ws, &t);
        check_against_reference(&dy, &mirrored, NULL, &dx);
        dk_workspace_release(&ws);
    }
    dk_tensor_release(&w);
    dk_tensor_release(&dy);
    dk_tensor_release(&dx);
    dk_tensor_release(&mirrored);
}

/* ---- threads and routing ---- */

Test(winograd_threads, one_and_two_threads_give_the_same_bits)
{
    int prev = dk_blas_threads();
    dk_blas_set_threads(2);
    dk_tensor x = dk_test_tensor(2, 12, 9, 17, 15), w = dk_test_tensor(20, 12, 3, 3, 3),
              y1 = dk_test_tensor(2, 20, 9, 17, 15), y2 = dk_test_tensor(2, 20, 9, 17, 15);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 51, -1, 1);
    dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 52, -1, 1);
    for (size_t p = 0; p < NPATHS; p++) {
        if (!path_runs(&paths[p])) continue;
        dk_conv_tuning one = on_path(&paths[p], 1), two = on_path(&paths[p], 2);
        forward(&x, &w, NULL, &y1, &one);
        forward(&x, &w, NULL, &y2, &two);
        cr_assert_eq(memcmp(y1.data, y2.data, dk_tensor_numel(&y1) * sizeof(float)), 0, "%s",
                     paths[p].name);
        check_against_reference(&x, &w, NULL, &y2);
    }
    dk_blas_set_threads(prev);
    dk_tensor_release(&x);
    dk_tensor_release(&w);
    dk_tensor_release(&y1);
    dk_tensor_release(&y2);
}

Test(winograd_routing, conv_h_runs_3x3x3_convs_through_winograd)
{
    int dims[3] = {6, 10, 10}, wide[3] = {2, 2, 1 << 20};
    cr_assert(dk_winograd_fits(&k3, 8, 8, dims));
    cr_assert_not(dk_winograd_fits(&k3, 8, 8, wide), "a row of 2^19 tiles is past the bound");
    dk_conv3d_geom aniso = {{1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
                   strided = {{3, 3, 3}, {2, 2, 2}, {1, 1, 1}};
    cr_assert_not(dk_winograd_fits(&aniso, 8, 8, dims));
    cr_assert_not(dk_winograd_fits(&strided, 8, 8, dims));
    dk_tensor x = dk_test_tensor(1, 8, 6, 10, 10), w = dk_test_tensor(8, 8, 3, 3, 3),
              a = dk_test_tensor(1, 8, 6, 10, 10), b = dk_test_tensor(1, 8, 6, 10, 10),
              g = dk_test_tensor(1, 8, 6, 10, 10);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 61, -1, 1);
    dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 62, -1, 1);
    dk_workspace ws = {0};
    dk_err err = {0};
    cr_assert_eq(
        dk_workspace_reserve(&ws, dk_conv3d_workspace_floats(&k3, false, 8, 8, dims), &err), DK_OK);
    dk_conv3d_forward(&k3, &x, &w, NULL, &a, &ws);
    dk_conv_tuning on = winograd(1, 0), off = winograd(0, 0);
    forward(&x, &w, NULL, &b, &on);
    forward(&x, &w, NULL, &g, &off);
    cr_assert_eq(memcmp(a.data, b.data, dk_tensor_numel(&a) * sizeof(float)), 0,
                 "the default conv is not the Winograd one");
    cr_assert_neq(memcmp(a.data, g.data, dk_tensor_numel(&a) * sizeof(float)), 0,
                  "Winograd and GEMM agree to the bit: the test cannot tell them apart");
    dk_test_assert_close(a.data, g.data, dk_tensor_numel(&a), 1e-5);
    dk_workspace_release(&ws);
    dk_tensor *all[] = {&x, &w, &a, &b, &g};
    for (size_t i = 0; i < 5; i++)
        dk_tensor_release(all[i]);
}

/* Every lane of the fused path does the same operations on one tile, so the 8-lane
 * and 16-lane sets give the same bits, with either tile; and they are not the
 * blocked path's bits, nor tile 2's and tile 4's each other's (which a test that
 * compared them would otherwise not notice). */
Test(winograd_fused, avx2_and_avx512_give_the_same_bits)
{
    if (!dk_simd_supported(DK_SIMD_AVX2) || !dk_simd_supported(DK_SIMD_AVX512))
        cr_skip_test("this CPU does not run both AVX2 and AVX-512");
    /* widths that leave partial chunks of 8 and of 16 lanes, odd sizes, batch 2 */
    const int shapes[][5] = {{8, 8, 6, 9, 37}, {16, 8, 3, 7, 20}, {5, 19, 4, 4, 50}};
    for (size_t k = 0; k < 3; k++) {
        int cin = shapes[k][0], cout = shapes[k][1];
        dk_tensor x = dk_test_tensor(2, cin, shapes[k][2], shapes[k][3], shapes[k][4]),
                  w = dk_test_tensor(cout, cin, 3, 3, 3), b = dk_test_tensor(cout, 1, 1, 1, 1),
                  y[NPATHS];
        for (size_t i = 0; i < NPATHS; i++)
            y[i] = dk_test_tensor(2, cout, shapes[k][2], shapes[k][3], shapes[k][4]);
        dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 70 + (unsigned)k, -1, 1);
        dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 80 + (unsigned)k, -1, 1);
        dk_test_fill_uniform(b.data, dk_tensor_numel(&b), 90 + (unsigned)k, -1, 1);
        for (size_t i = 0; i < NPATHS; i++) {
            dk_conv_tuning t = on_path(&paths[i], 0);
            forward(&x, &w, &b, &y[i], &t);
        }
        size_t bytes = dk_tensor_numel(&y[0]) * sizeof(float);
        for (int i = 1; i < 5; i += 2) { /* AVX-512 at i, AVX2 at i + 1 */
            cr_assert_eq(memcmp(y[i].data, y[i + 1].data, bytes), 0, "shape %zu: %s and %s differ",
                         k, paths[i].name, paths[i + 1].name);
            check_against_reference(&x, &w, b.data, &y[i]);
        }
        for (int i = 0; i < 3; i++) {
            int a = i == 2 ? 1 : 0, c = i == 0 ? 1 : 3; /* blocked-2, blocked-4, 2-4 */
            cr_assert_neq(memcmp(y[a].data, y[c].data, bytes), 0,
                          "shape %zu: %s and %s agree to the bit: the test cannot tell them apart",
                          k, paths[a].name, paths[c].name);
        }
        dk_tensor *all[] = {&x, &w, &b};
        for (size_t i = 0; i < 3; i++)
            dk_tensor_release(all[i]);
        for (size_t i = 0; i < NPATHS; i++)
            dk_tensor_release(&y[i]);
    }
}

/* The fused path stores a tile row's last chunk with masks: nothing before or after
 * the output is written, whatever the tile, the lanes and the layout (row widths
 * that end in a partial chunk within rows and running on). */
Test(winograd_fused, writes_nothing_outside_the_output)
{
    enum { GUARD = 64 };
    const int widths[] = {31, 45, 62};
    for (size_t p = 1; p < NPATHS; p++) {
        if (!path_runs(&paths[p])) continue;
        for (size_t k = 0; k < sizeof widths / sizeof widths[0]; k++) {
            int cin = 5, cout = 3, dims[3] = {3, 5, widths[k]};
            dk_tensor x = dk_test_tensor(1, cin, 3, 5, widths[k]),
                      w = dk_test_tensor(cout, cin, 3, 3, 3);
            dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 99, -1, 1);
            dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 100, -1, 1);
            size_t n = (size_t)cout * 3 * 5 * widths[k];
            float *buf = malloc((n + 2 * GUARD) * sizeof *buf);
            cr_assert_not_null(buf);
            for (size_t i = 0; i < n + 2 * GUARD; i++)
                buf[i] = 12345.0f;
            dk_tensor y = dk_tensor_view(buf + GUARD, 1, cout, dims[0], dims[1], dims[2]);
            dk_conv_tuning t = on_path(&paths[p], 0);
            forward(&x, &w, NULL, &y, &t);
            for (size_t i = 0; i < GUARD; i++) {
                cr_assert_eq(buf[i], 12345.0f, "%s, width %d: wrote %zu before the output",
                             paths[p].name, widths[k], GUARD - i);
                cr_assert_eq(buf[GUARD + n + i], 12345.0f,
                             "%s, width %d: wrote %zu past the output", paths[p].name, widths[k],
                             i + 1);
            }
            check_against_reference(&x, &w, NULL, &y);
            free(buf);
            dk_tensor_release(&x);
            dk_tensor_release(&w);
        }
    }
}

/* y = conv(x, w) through conv.h's default, with a workspace of its own. */
static void default_forward(const dk_tensor *x, const dk_tensor *w, dk_tensor *y)
{
    int dims[3] = {x->d, x->h, x->w};
    dk_workspace ws = {0};
    dk_err err = {0};
    cr_assert_eq(
        dk_workspace_reserve(&ws, dk_conv3d_workspace_floats(&k3, false, x->c, w->n, dims), &err),
        DK_OK, "%s", err.msg);
    dk_conv3d_forward(&k3, x, w, NULL, y, &ws);
    dk_workspace_release(&ws);
}

/* By default thin convs take the fused path when the CPU has one, wide ones the
 * blocked path. */
Test(winograd_routing, thin_convs_fused_wide_convs_blocked)
{
    dk_simd best = dk_simd_best();
    if (best == DK_SIMD_NONE) cr_skip_test("no fused path on this CPU");
    /* up to THIN_CHANNELS (winograd.c) in all fused, wider blocked */
    const int channels[][2] = {{8, 8}, {128, 128}, {160, 128}};
    for (int k = 0; k < 3; k++) {
        int cin = channels[k][0], cout = channels[k][1];
        dk_tensor x = dk_test_tensor(1, cin, 4, 6, 10), w = dk_test_tensor(cout, cin, 3, 3, 3),
                  a = dk_test_tensor(1, cout, 4, 6, 10), b = dk_test_tensor(1, cout, 4, 6, 10);
        dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 95, -1, 1);
        dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 96, -1, 1);
        default_forward(&x, &w, &a);
        path expected = k < 2 ? (path){"fused", 1, best, 2} : paths[0];
        dk_conv_tuning t = on_path(&expected, 0);
        forward(&x, &w, NULL, &b, &t);
        cr_assert_eq(memcmp(a.data, b.data, dk_tensor_numel(&a) * sizeof(float)), 0,
                     "%d -> %d channels did not take the %s path", cin, cout, expected.name);
        dk_tensor *all[] = {&x, &w, &a, &b};
        for (size_t i = 0; i < 4; i++)
            dk_tensor_release(all[i]);
    }
}

/* The fused path's tile by default: 4 for 16 to 32 channels in and out on planes at
 * least 40 wide (winograd.c's fused_tile), 2 elsewhere. */
Test(winograd_routing, tile_4_where_it_measured_faster)
{
    dk_simd best = dk_simd_best();
    if (best == DK_SIMD_NONE) cr_skip_test("no fused path on this CPU");
    const struct {
        int cin, cout, h, w, tile;
    } cases[] = {{32, 16, 40, 44, 4}, {16, 32, 41, 40, 4}, {8, 16, 40, 40, 2},
                 {64, 32, 40, 40, 2}, {32, 16, 40, 20, 2}, {32, 32, 20, 40, 2}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int cin = cases[k].cin, cout = cases[k].cout, dims[3] = {2, cases[k].h, cases[k].w};
        dk_tensor x = dk_test_tensor(1, cin, 2, dims[1], dims[2]),
                  w = dk_test_tensor(cout, cin, 3, 3, 3);
        dk_tensor y[3];
        for (int i = 0; i < 3; i++)
            y[i] = dk_test_tensor(1, cout, 2, dims[1], dims[2]);
        dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 97, -1, 1);
        dk_test_fill_uniform(w.data, dk_tensor_numel(&w), 98, -1, 1);
        default_forward(&x, &w, &y[0]);
        for (int i = 1; i < 3; i++) {
            path p = {"fused", 1, best, 2 * i};
            dk_conv_tuning t = on_path(&p, 0);
            forward(&x, &w, NULL, &y[i], &t);
        }
        size_t bytes = dk_tensor_numel(&y[0]) * sizeof(float);
        int chosen = cases[k].tile / 2;
        cr_assert_eq(memcmp(y[0].data, y[chosen].data, bytes), 0,
                     "%d -> %d channels on %d x %d planes did not take tile %d", cin, cout, dims[1],
                     dims[2], cases[k].tile);
        cr_assert_neq(memcmp(y[1].data, y[2].data, bytes), 0, "tiles 2 and 4 agree to the bit");
        dk_tensor *all[] = {&x, &w, &y[0], &y[1], &y[2]};
        for (size_t i = 0; i < 5; i++)
            dk_tensor_release(all[i]);
    }
}
