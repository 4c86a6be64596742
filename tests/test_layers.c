/* test_layers.c: max pooling, instance normalisation, (Leaky)ReLU and channel
 * concatenation (distill/layers.h): small hand-computed cases, and every backward
 * against central finite differences of the loss sum(y * r) for a fixed random r.
 * Softmax and trilinear resize are in test_softmax.c and test_resize.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/layers.h"
#include "testutil.h"

static double dot(const float *y, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

/* ------------------------------------------------------------ max pooling */

typedef struct pool_case {
    int k[3];
    dk_tensor x, y, r;
    int32_t *argmax;
} pool_case;

static double pool_loss(void *ctx)
{
    pool_case *pc = ctx;
    dk_maxpool3d_forward(pc->k, &pc->x, &pc->y, pc->argmax, NULL);
    return dot(pc->y.data, pc->r.data, dk_tensor_numel(&pc->y));
}

/* Distinct values 0.05 apart in a shuffled order, so no window has a near tie
 * that a finite-difference step could flip. */
static void fill_distinct(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.05f * (float)i - 0.025f * (float)n;
    unsigned long long s = seed + 1;
    for (size_t i = n - 1; i > 0; i--) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = (size_t)(s >> 33) % (i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

static void pool_gradcheck(int kd, int kh, int kw, int n, int c, int d, int h, int w)
{
    pool_case pc = {.k = {kd, kh, kw}};
    pc.x = dk_test_tensor(n, c, d, h, w);
    pc.y = dk_test_tensor(n, c, d / kd, h / kh, w / kw);
    pc.r = dk_test_tensor(n, c, d / kd, h / kh, w / kw);
    dk_tensor dx = dk_test_tensor(n, c, d, h, w);
    pc.argmax = malloc(dk_tensor_numel(&pc.y) * sizeof(int32_t));
    fill_distinct(pc.x.data, dk_tensor_numel(&pc.x), 7);
    dk_test_fill_uniform(pc.r.data, dk_tensor_numel(&pc.r), 8, -1, 1);
    dk_test_fill_uniform(dx.data, dk_tensor_numel(&dx), 9, 5, 6); /* must be overwritten */
    pool_loss(&pc);
    dk_maxpool3d_backward(pc.k, &pc.r, pc.argmax, &dx, NULL);
    double worst = dk_test_gradcheck(pool_loss, &pc, pc.x.data, dx.data, dk_tensor_numel(&pc.x),
                                     1e-3, 1e-3, 0);
    cr_assert_lt(worst, 1e-3, "k (%d,%d,%d): worst relative error %g", kd, kh, kw, worst);
    free(pc.argmax);
    dk_tensor_release(&pc.x);
    dk_tensor_release(&pc.y);
    dk_tensor_release(&pc.r);
    dk_tensor_release(&dx);
}

Test(maxpool, cube_kernel_by_hand)
{
    float xv[8] = {3, 1, 4, 1.5f, 5, 9, 2, 6};
    dk_tensor x = dk_tensor_view(xv, 1, 1, 2, 2, 2);
    float yv[1], dyv[1] = {2}, dxv[8];
    int32_t arg[1];
    dk_tensor y = dk_tensor_view(yv, 1, 1, 1, 1, 1), dy = dk_tensor_view(dyv, 1, 1, 1, 1, 1);
    dk_tensor dx = dk_tensor_view(dxv, 1, 1, 2, 2, 2);
    dk_maxpool3d_forward((int[3]){2, 2, 2}, &x, &y, arg, NULL);
    cr_assert_eq(yv[0], 9.0f);
    cr_assert_eq(arg[0], 5);
    dk_maxpool3d_backward((int[3]){2, 2, 2}, &dy, arg, &dx, NULL);
    float want[8] = {0, 0, 0, 0, 0, 2, 0, 0};
    dk_test_assert_close(dxv, want, 8, 0);
}

Test(maxpool, in_plane_kernel_by_hand)
{
    /* (d, h, w) = (2, 2, 4), k = (1, 2, 2): four windows of 2x2 in-plane. */
    float xv[16] = {1, 5, 2, 0, 3, 4, 8, 7, /* d = 0 */
                    9, 1, 0, 0, 2, 2, 1, 3 /* d = 1 */};
    dk_tensor x = dk_tensor_view(xv, 1, 1, 2, 2, 4);
    float yv[4];
    int32_t arg[4];
    dk_tensor y = dk_tensor_view(yv, 1, 1, 2, 1, 2);
    dk_maxpool3d_forward((int[3]){1, 2, 2}, &x, &y, arg, NULL);
    float want[4] = {5, 8, 9, 3};
    int32_t want_arg[4] = {1, 6, 8, 15};
    dk_test_assert_close(yv, want, 4, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(arg[i], want_arg[i], "argmax %d: %d", i, arg[i]);
}

Test(maxpool, ties_pick_the_first_and_planes_are_separate)
{
    dk_tensor x = dk_test_tensor(2, 3, 2, 2, 2), y = dk_test_tensor(2, 3, 1, 1, 1);
    dk_tensor_fill(&x, 1.5f);
    int32_t arg[6];
    dk_maxpool3d_forward((int[3]){2, 2, 2}, &x, &y, arg, NULL);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(arg[i], 0, "argmax is an index within the (n, c) plane");
        cr_assert_eq(y.data[i], 1.5f);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&y);
}

Test(maxpool, remainder_is_dropped_and_gets_zero_gradient)
{
    /* (3, 5, 5) with k = 2 -> (1, 2, 2): the last slice, row and column are unused. */
    dk_tensor x = dk_test_tensor(1, 1, 3, 5, 5), y = dk_test_tensor(1, 1, 1, 2, 2), dx = dk_test_tensor(1, 1, 3, 5, 5);
    for (int i = 0; i < 75; i++)
        x.data[i] = (float)i; /* the max is always the far corner */
    dk_tensor_fill(&dx, 7);
    int32_t arg[4];
    dk_maxpool3d_forward((int[3]){2, 2, 2}, &x, &y, arg, NULL);
    int32_t want_arg[4] = {31, 33, 41, 43}; /* (1, 1, 1), (1, 1, 3), (1, 3, 1), (1, 3, 3) */
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(arg[i], want_arg[i], "argmax %d: %d", i, arg[i]);
        cr_assert_eq(y.data[i], (float)want_arg[i]);
    }
    dk_maxpool3d_backward((int[3]){2, 2, 2}, &y, arg, &dx, NULL);
    for (int i = 0; i < 75; i++) {
        float want = (i == 31 || i == 33 || i == 41 || i == 43) ? (float)i : 0.0f;
        cr_assert_eq(dx.data[i], want, "dx[%d] = %g", i, dx.data[i]);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&y);
    dk_tensor_release(&dx);
}

/* The obvious loop over windows in (d, h, w) order, first maximum wins. */
static void naive_pool(const int k[3], const dk_tensor *x, dk_tensor *y, int32_t *arg)
{
    int H = x->h, W = x->w;
    size_t in_plane = dk_tensor_spatial(x), out_plane = dk_tensor_spatial(y);
    for (size_t p = 0; p < (size_t)x->n * x->c; p++)
        for (int od = 0; od < y->d; od++)
            for (int oh = 0; oh < y->h; oh++)
                for (int ow = 0; ow < y->w; ow++) {
                    size_t o = p * out_plane + ((size_t)od * y->h + oh) * y->w + ow;
                    int32_t best_at = -1;
                    for (int a = 0; a < k[0] * k[1] * k[2]; a++) {
                        int id = od * k[0] + a / (k[1] * k[2]), ih = oh * k[1] + a / k[2] % k[1];
                        int32_t at = (id * H + ih) * W + ow * k[2] + a % k[2];
                        if (best_at < 0 || x->data[p * in_plane + at] > y->data[o]) {
                            best_at = at;
                            y->data[o] = x->data[p * in_plane + at];
                        }
                    }
                    arg[o] = best_at;
                }
}

Test(maxpool, matches_a_naive_loop_with_ties_and_wide_rows)
{
    /* Values from a small set make ties common; W = 2100 spans several column chunks. */
    int shapes[4][8] = {{2, 2, 2, 2, 3, 4, 6, 6},
                        {1, 2, 2, 1, 2, 3, 5, 2100},
                        {2, 1, 3, 1, 1, 4, 3, 10},
                        {1, 3, 1, 1, 2, 3, 7, 9}};
    for (int s = 0; s < 4; s++) {
        const int *k = shapes[s], *sh = shapes[s] + 3;
        dk_tensor x = dk_test_tensor(sh[0], sh[1], sh[2], sh[3], sh[4]);
        dk_tensor y = dk_test_tensor(sh[0], sh[1], sh[2] / k[0], sh[3] / k[1], sh[4] / k[2]);
        dk_tensor ref = dk_test_tensor(sh[0], sh[1], sh[2] / k[0], sh[3] / k[1], sh[4] / k[2]);
        size_t n = dk_tensor_numel(&y);
        int32_t *arg = malloc(n * sizeof(int32_t)), *ref_arg = malloc(n * sizeof(int32_t));
        dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 90 + s, 0, 4);
        for (size_t i = 0; i < dk_tensor_numel(&x); i++)
            x.data[i] = floorf(x.data[i]);
        dk_maxpool3d_forward(k, &x, &y, arg, NULL);
        naive_pool(k, &x, &ref, ref_arg);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(y.data[i], ref.data[i], "case %d, output %zu", s, i);
            cr_assert_eq(arg[i], ref_arg[i], "case %d, output %zu: argmax %d, want %d", s, i,
                         arg[i], ref_arg[i]);
        }
        /* without argmax (inference): the same maxima */
        dk_tensor_fill(&y, -1);
        dk_maxpool3d_forward(k, &x, &y, NULL, NULL);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(y.data[i], ref.data[i], "case %d, output %zu without argmax", s, i);
        free(arg);
        free(ref_arg);
        dk_tensor_release(&x);
        dk_tensor_release(&y);
        dk_tensor_release(&ref);
    }
}

Test(maxpool, nan_propagates)
{
    float xv[8] = {1, 2, NAN, 3, 4, 5, 6, 7}, yv[2];
    int32_t arg[2];
    dk_tensor x = dk_tensor_view(xv, 1, 1, 1, 2, 4), y = dk_tensor_view(yv, 1, 1, 1, 1, 2);
    dk_maxpool3d_forward((int[3]){1, 2, 2}, &x, &y, arg, NULL);
    cr_assert(isnan(yv[1]), "window with a NaN gives %g", yv[1]);
    cr_assert_eq(arg[1], 2);
    cr_assert_eq(yv[0], 5);
    yv[0] = yv[1] = 0;
    dk_maxpool3d_forward((int[3]){1, 2, 2}, &x, &y, NULL, NULL);
    cr_assert(isnan(yv[1]), "without argmax, a window with a NaN gives %g", yv[1]);
    cr_assert_eq(yv[0], 5);
}

Test(maxpool, backward_matches_finite_differences)
{
    pool_gradcheck(2, 2, 2, 2, 3, 4, 6, 6);
    pool_gradcheck(1, 2, 2, 1, 2, 3, 4, 6);
    pool_gradcheck(2, 2, 2, 1, 2, 5, 5, 7); /* with remainders on every axis */
    pool_gradcheck(2, 1, 3, 1, 1, 4, 3, 9);
}

/* ------------------------------------------------------- instance norm */

typedef struct norm_case {
    dk_tensor x, y, r;
    float *gamma, *beta, *mean, *rstd;
    float eps;
} norm_case;

static double norm_loss(void *ctx)
{
    norm_case *nc = ctx;
    dk_instnorm_forward(&nc->x, nc->gamma, nc->beta, nc->eps, &nc->y, nc->mean, nc->rstd, NULL);
    return dot(nc->y.data, nc->r.data, dk_tensor_numel(&nc->y));
}

Test(instnorm, two_by_two_plane_by_hand)
{
    float xv[4] = {1, 2, 3, 4}, yv[4], gamma = 2, beta = 0.5f, mean, rstd;
    dk_tensor x = dk_tensor_view(xv, 1, 1, 1, 2, 2), y = dk_tensor_view(yv, 1, 1, 1, 2, 2);
    dk_instnorm_forward(&x, &gamma, &beta, 0, &y, &mean, &rstd, NULL);
    /* mean 2.5, biased var 1.25, xhat = (-3, -1, 1, 3) / sqrt(5) */
    cr_assert_float_eq(mean, 2.5f, 1e-6);
    cr_assert_float_eq(rstd, 1 / sqrt(1.25), 1e-6);
    float s5 = sqrtf(5);
    float want_y[4] = {2 * -3 / s5 + 0.5f, 2 * -1 / s5 + 0.5f, 2 * 1 / s5 + 0.5f,
                       2 * 3 / s5 + 0.5f};
    dk_test_assert_close(yv, want_y, 4, 1e-6);

    /* dy = (1, 0, 0, 0): mean(dy) = 1/4, mean(dy xhat) = -3 / (4 sqrt 5), so
     * dx = 2 / sqrt(1.25) * (0.3, -0.4, -0.1, 0.2). Parameter grads accumulate. */
    float dyv[4] = {1, 0, 0, 0}, dxv[4], dgamma = 10, dbeta = 20;
    dk_tensor dy = dk_tensor_view(dyv, 1, 1, 1, 2, 2), dx = dk_tensor_view(dxv, 1, 1, 1, 2, 2);
    dk_instnorm_backward(&x, &gamma, &mean, &rstd, &dy, &dx, &dgamma, &dbeta, NULL);
    float g = 2 / sqrtf(1.25f);
    float want_dx[4] = {0.3f * g, -0.4f * g, -0.1f * g, 0.2f * g};
    dk_test_assert_close(dxv, want_dx, 4, 1e-6);
    cr_assert_float_eq(dgamma, 10 - 3 / s5, 1e-6);
    cr_assert_float_eq(dbeta, 21, 1e-6);
}

Test(instnorm, eps_guards_a_constant_plane)
{
    float xv[8], yv[8], gamma = 3, beta = -1, mean, rstd;
    for (int i = 0; i < 8; i++)
        xv[i] = 7;
    dk_tensor x = dk_tensor_view(xv, 1, 1, 2, 2, 2), y = dk_tensor_view(yv, 1, 1, 2, 2, 2);
    dk_instnorm_forward(&x, &gamma, &beta, 0.25f, &y, &mean, &rstd, NULL);
    cr_assert_eq(mean, 7);
    cr_assert_float_eq(rstd, 2, 1e-6); /* 1 / sqrt(0 + 0.25) */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(yv[i], -1);
}

Test(instnorm, output_has_mean_0_var_1_per_plane_despite_a_large_offset)
{
    dk_tensor x = dk_test_tensor(2, 3, 4, 5, 6), y = dk_test_tensor(2, 3, 4, 5, 6);
    size_t plane = 120;
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 3, 997, 1003); /* std ~1.7, mean ~1000 */
    float gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0}, mean[6], rstd[6];
    dk_instnorm_forward(&x, gamma, beta, 1e-5f, &y, mean, rstd, NULL);
    for (int p = 0; p < 6; p++) {
        double m = 0, v = 0, xm = 0, xv = 0;
        for (size_t i = 0; i < plane; i++)
            xm += x.data[p * plane + i];
        xm /= plane;
        for (size_t i = 0; i < plane; i++) {
            double e = x.data[p * plane + i] - xm;
            xv += e * e;
            m += y.data[p * plane + i];
        }
        xv /= plane;
        m /= plane;
        for (size_t i = 0; i < plane; i++)
            v += pow(y.data[p * plane + i] - m, 2);
        v /= plane;
        cr_assert_lt(fabs(m), 1e-4, "plane %d: output mean %g", p, m);
        cr_assert_lt(fabs(v - 1), 1e-3, "plane %d: output variance %g", p, v);
        cr_assert_lt(fabs(mean[p] - xm), 1e-4, "plane %d: mean %g vs %g", p, mean[p], xm);
        cr_assert_lt(fabs(rstd[p] * sqrt(xv + 1e-5) - 1), 1e-4, "plane %d: rstd %g", p, rstd[p]);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&y);
}

/* Planes of several float-summed blocks (shifted_moments: 512 values each) and a
 * tail, against statistics in double: the float partial sums must not cost the
 * statistics more than float rounding of the results. */
Test(instnorm, statistics_of_large_planes_match_double)
{
    dk_tensor x = dk_test_tensor(1, 2, 7, 15, 17), y = dk_test_tensor(1, 2, 7, 15, 17);
    size_t plane = 7 * 15 * 17; /* 3 blocks and 249 values */
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 5, 990, 1010);
    float gamma[2] = {1, 1}, beta[2] = {0, 0}, mean[2], rstd[2];
    dk_instnorm_forward(&x, gamma, beta, 1e-5f, &y, mean, rstd, NULL);
    for (int p = 0; p < 2; p++) {
        double xm = 0, xv = 0;
        for (size_t i = 0; i < plane; i++)
            xm += x.data[p * plane + i];
        xm /= plane;
        for (size_t i = 0; i < plane; i++)
            xv += pow(x.data[p * plane + i] - xm, 2);
        xv /= plane;
        cr_assert_lt(fabs(mean[p] - xm), 1e-4, "plane %d: mean %.9g vs %.9g", p, mean[p], xm);
        cr_assert_lt(fabs(rstd[p] * sqrt(xv + 1e-5) - 1), 2e-6, "plane %d: rstd %.9g", p,
                     rstd[p]);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&y);
}

Test(instnorm, backward_matches_finite_differences)
{
    enum { N = 2, C = 3 };
    norm_case nc = {.eps = 1e-5f};
    nc.x = dk_test_tensor(N, C, 3, 4, 5);
    nc.y = dk_test_tensor(N, C, 3, 4, 5);
    nc.r = dk_test_tensor(N, C, 3, 4, 5);
    dk_tensor dx = dk_test_tensor(N, C, 3, 4, 5);
    float gamma[C] = {1.5f, -0.7f, 0.3f}, beta[C] = {0.1f, 0.2f, -0.3f}, mean[N * C], rstd[N * C];
    float dgamma[C] = {0}, dbeta[C] = {0};
    nc.gamma = gamma, nc.beta = beta, nc.mean = mean, nc.rstd = rstd;
    dk_test_fill_uniform(nc.x.data, dk_tensor_numel(&nc.x), 11, -2, 3);
    dk_test_fill_uniform(nc.r.data, dk_tensor_numel(&nc.r), 12, -1, 1);
    norm_loss(&nc);
    dk_instnorm_backward(&nc.x, gamma, mean, rstd, &nc.r, &dx, dgamma, dbeta, NULL);
    size_t n = dk_tensor_numel(&nc.x);
    double worst = dk_test_gradcheck(norm_loss, &nc, nc.x.data, dx.data, n, 1e-2, 1e-3, 0);
    cr_assert_lt(worst, 5e-3, "dx: worst relative error %g", worst);
    worst = dk_test_gradcheck(norm_loss, &nc, gamma, dgamma, C, 1e-2, 1e-3, 0);
    cr_assert_lt(worst, 5e-3, "dgamma: worst relative error %g", worst);
    worst = dk_test_gradcheck(norm_loss, &nc, beta, dbeta, C, 1e-2, 1e-3, 0);
    cr_assert_lt(worst, 5e-3, "dbeta: worst relative error %g", worst);

    /* dx may alias dy: the same result in place. */
    dk_tensor dy = dk_test_tensor(N, C, 3, 4, 5);
    dk_tensor_copy(&dy, &nc.r);
    norm_loss(&nc);
    dk_instnorm_backward(&nc.x, gamma, mean, rstd, &dy, &dy, dgamma, dbeta, NULL);
    dk_test_assert_close(dy.data, dx.data, n, 1e-6);
    dk_tensor_release(&nc.x);
    dk_tensor_release(&nc.y);
    dk_tensor_release(&nc.r);
    dk_tensor_release(&dx);
    dk_tensor_release(&dy);
}

/* ----------------------------------------------------------- (leaky) relu */

Test(leaky_relu, in_place_by_hand)
{
    float v[5] = {-2, -0.5f, 0, 0.5f, 3}, g[5] = {1, 2, 3, 4, 5};
    dk_tensor t = dk_tensor_view(v, 1, 1, 1, 1, 5), dt = dk_tensor_view(g, 1, 1, 1, 1, 5);
    dk_leaky_relu_forward(&t, 0.1f, &t, NULL);
    float want[5] = {-0.2f, -0.05f, 0, 0.5f, 3};
    dk_test_assert_close(v, want, 5, 1e-7);
    dk_leaky_relu_backward(&t, 0.1f, &dt, &dt, NULL);
    float want_g[5] = {0.1f, 0.2f, 0.3f, 4, 5};
    dk_test_assert_close(g, want_g, 5, 1e-7);
}

Test(leaky_relu, relu_by_hand)
{
    float x[5] = {-2, -0.5f, 0, 0.5f, 3}, y[5], g[5] = {1, 2, 3, 4, 5}, dx[5];
    dk_tensor tx = dk_tensor_view(x, 1, 1, 1, 1, 5), ty = dk_tensor_view(y, 1, 1, 1, 1, 5);
    dk_tensor tg = dk_tensor_view(g, 1, 1, 1, 1, 5), tdx = dk_tensor_view(dx, 1, 1, 1, 1, 5);
    dk_leaky_relu_forward(&tx, 0, &ty, NULL);
    float want[5] = {0, 0, 0, 0.5f, 3}, want_g[5] = {0, 0, 0, 4, 5};
    dk_test_assert_close(y, want, 5, 0);
    dk_leaky_relu_backward(&ty, 0, &tg, &tdx, NULL);
    dk_test_assert_close(dx, want_g, 5, 0);
}

typedef struct relu_case {
    dk_tensor x, y, r;
    float slope;
} relu_case;

static double relu_loss(void *ctx)
{
    relu_case *rc = ctx;
    dk_leaky_relu_forward(&rc->x, rc->slope, &rc->y, NULL);
    return dot(rc->y.data, rc->r.data, dk_tensor_numel(&rc->y));
}

Test(leaky_relu, backward_matches_finite_differences)
{
    float slopes[2] = {0, 0.2f};
    for (int s = 0; s < 2; s++) {
        relu_case rc = {.slope = slopes[s]};
        rc.x = dk_test_tensor(2, 2, 3, 3, 4);
        rc.y = dk_test_tensor(2, 2, 3, 3, 4);
        rc.r = dk_test_tensor(2, 2, 3, 3, 4);
        dk_tensor dx = dk_test_tensor(2, 2, 3, 3, 4);
        size_t n = dk_tensor_numel(&rc.x);
        dk_test_fill_uniform(rc.x.data, n, 21, 0.1f, 1);
        for (size_t i = 0; i < n; i += 2)
            rc.x.data[i] = -rc.x.data[i]; /* |x| >= 0.1 */
        dk_test_fill_uniform(rc.r.data, n, 22, -1, 1);
        relu_loss(&rc);
        dk_leaky_relu_backward(&rc.y, rc.slope, &rc.r, &dx, NULL);
        double worst = dk_test_gradcheck(relu_loss, &rc, rc.x.data, dx.data, n, 1e-2, 1e-3, 0);
        cr_assert_lt(worst, 1e-3, "slope %g: worst relative error %g", rc.slope, worst);
        dk_tensor_release(&rc.x);
        dk_tensor_release(&rc.y);
        dk_tensor_release(&rc.r);
        dk_tensor_release(&dx);
    }
}

/* ---------------------------------------------------------------- concat */

Test(concat, layout_and_split_round_trip)
{
    dk_tensor a = dk_test_tensor(2, 3, 2, 3, 4), b = dk_test_tensor(2, 2, 2, 3, 4), y = dk_test_tensor(2, 5, 2, 3, 4);
    dk_tensor da = dk_test_tensor(2, 3, 2, 3, 4), db = dk_test_tensor(2, 2, 2, 3, 4);
    size_t plane = 24;
    dk_test_fill_uniform(a.data, dk_tensor_numel(&a), 31, -1, 1);
    dk_test_fill_uniform(b.data, dk_tensor_numel(&b), 32, -1, 1);
    dk_concat_channels_forward(&a, &b, &y);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 5; c++) {
            const float *want =
                c < 3 ? a.data + (n * 3 + c) * plane : b.data + (n * 2 + c - 3) * plane;
            dk_test_assert_close(y.data + (n * 5 + c) * plane, want, plane, 0);
        }
    dk_concat_channels_backward(&y, &da, &db);
    dk_test_assert_close(da.data, a.data, dk_tensor_numel(&a), 0);
    dk_test_assert_close(db.data, b.data, dk_tensor_numel(&b), 0);

    /* Either side may be skipped; the other still gets its own channels. */
    dk_tensor_zero(&da);
    dk_tensor_zero(&db);
    dk_concat_channels_backward(&y, NULL, &db);
    dk_test_assert_close(db.data, b.data, dk_tensor_numel(&b), 0);
    dk_concat_channels_backward(&y, &da, NULL);
    dk_test_assert_close(da.data, a.data, dk_tensor_numel(&a), 0);
    dk_tensor_release(&a);
    dk_tensor_release(&b);
    dk_tensor_release(&y);
    dk_tensor_release(&da);
    dk_tensor_release(&db);
}

typedef struct concat_case {
    dk_tensor a, b, y, r;
} concat_case;

static double concat_loss(void *ctx)
{
    concat_case *cc = ctx;
    dk_concat_channels_forward(&cc->a, &cc->b, &cc->y);
    return dot(cc->y.data, cc->r.data, dk_tensor_numel(&cc->y));
}

Test(concat, backward_matches_finite_differences)
{
    concat_case cc = {.a = dk_test_tensor(2, 1, 2, 2, 3), .b = dk_test_tensor(2, 3, 2, 2, 3)};
    cc.y = dk_test_tensor(2, 4, 2, 2, 3);
    cc.r = dk_test_tensor(2, 4, 2, 2, 3);
    dk_tensor da = dk_test_tensor(2, 1, 2, 2, 3), db = dk_test_tensor(2, 3, 2, 2, 3);
    dk_test_fill_uniform(cc.a.data, dk_tensor_numel(&cc.a), 41, -1, 1);
    dk_test_fill_uniform(cc.b.data, dk_tensor_numel(&cc.b), 42, -1, 1);
    dk_test_fill_uniform(cc.r.data, dk_tensor_numel(&cc.r), 43, -1, 1);
    dk_concat_channels_backward(&cc.r, &da, &db);
    double worst = dk_test_gradcheck(concat_loss, &cc, cc.a.data, da.data, dk_tensor_numel(&cc.a),
                                     1e-2, 1e-3, 0);
    cr_assert_lt(worst, 1e-3, "da: worst relative error %g", worst);
    worst = dk_test_gradcheck(concat_loss, &cc, cc.b.data, db.data, dk_tensor_numel(&cc.b), 1e-2,
                              1e-3, 0);
    cr_assert_lt(worst, 1e-3, "db: worst relative error %g", worst);
    dk_tensor_release(&cc.a);
    dk_tensor_release(&cc.b);
    dk_tensor_release(&cc.y);
    dk_tensor_release(&cc.r);
    dk_tensor_release(&da);
    dk_tensor_release(&db);
}
