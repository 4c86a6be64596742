/* test_fused_layers.c: the layer paths the U-Net's fast step uses -- instance norm
 * fused with its (Leaky)ReLU, the un-pooling that adds onto a skip gradient, and
 * the layers split across threads -- against hand values, finite differences,
 * the unfused layers (bit for bit) and one thread (bit for bit). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/layers.h"
#include "testutil.h"

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(memcmp(&a[i], &b[i], sizeof(float)), 0, "%s[%zu]: %.9g vs %.9g", what, i, a[i],
                     b[i]);
}

Test(instnorm_relu, by_hand)
{
    /* x = (1, 2, 3, 4): xhat = (-3, -1, 1, 3) / sqrt 5; gamma 2, beta 0.5; slope 0.1 */
    float xv[4] = {1, 2, 3, 4}, yv[4], gamma = 2, beta = 0.5f, mean, rstd;
    dk_tensor x = dk_tensor_view(xv, 1, 1, 1, 2, 2), y = dk_tensor_view(yv, 1, 1, 1, 2, 2);
    dk_instnorm_relu_forward(&x, &gamma, &beta, 0, 0.1f, &y, &mean, &rstd, NULL);
    float s5 = sqrtf(5), n0 = 2 * -3 / s5 + 0.5f, n1 = 2 * -1 / s5 + 0.5f;
    float want[4] = {0.1f * n0, 0.1f * n1, 2 / s5 + 0.5f, 6 / s5 + 0.5f};
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(yv[i], want[i], 1e-6, "y[%d] = %g, want %g", i, yv[i], want[i]);
    cr_assert_float_eq(mean, 2.5f, 1e-6);

    /* dy = (1, 0, 0, 1) through the ReLU is g = (0.1, 0, 0, 1); then the norm's
     * backward: dx = gamma rstd (g - mean g - xhat mean(g xhat)). */
    float dyv[4] = {1, 0, 0, 1}, dxv[4], dgamma = 0, dbeta = 0;
    dk_tensor dy = dk_tensor_view(dyv, 1, 1, 1, 2, 2), dx = dk_tensor_view(dxv, 1, 1, 1, 2, 2);
    dk_instnorm_relu_backward(&x, &y, 0.1f, &gamma, &mean, &rstd, &dy, &dx, &dgamma, &dbeta, NULL);
    double g[4] = {0.1, 0, 0, 1}, xh[4] = {-3 / sqrt(5), -1 / sqrt(5), 1 / sqrt(5), 3 / sqrt(5)};
    double mg = 0, mgx = 0;
    for (int i = 0; i < 4; i++) {
        mg += g[i] / 4;
        mgx += g[i] * xh[i] / 4;
    }
    for (int i = 0; i < 4; i++) {
        double w = 2 / sqrt(1.25) * (g[i] - mg - xh[i] * mgx);
        cr_assert_float_eq(dxv[i], w, 1e-6, "dx[%d] = %g, want %g", i, dxv[i], w);
    }
    cr_assert_float_eq(dgamma, 4 * mgx, 1e-6);
    cr_assert_float_eq(dbeta, 1.1f, 1e-6);
}

typedef struct fused_case {
    dk_tensor x, y, r;
    float *gamma, *beta, *mean, *rstd, slope;
} fused_case;

static double fused_loss(void *ctx)
{
    fused_case *fc = ctx;
    dk_instnorm_relu_forward(&fc->x, fc->gamma, fc->beta, 1e-5f, fc->slope, &fc->y, fc->mean,
                             fc->rstd, NULL);
    double s = 0;
    for (size_t i = 0; i < dk_tensor_numel(&fc->y); i++)
        s += (double)fc->y.data[i] * fc->r.data[i];
    return s;
}

Test(instnorm_relu, backward_matches_finite_differences)
{
    enum { N = 2, C = 3 };
    float gamma[C] = {1.5f, -0.7f, 0.3f}, beta[C] = {0.1f, 0.05f, -0.03f}, mean[N * C], rstd[N * C];
    float dgamma[C] = {0}, dbeta[C] = {0};
    fused_case fc = {dk_test_tensor(N, C, 3, 4, 5),
                     dk_test_tensor(N, C, 3, 4, 5),
                     dk_test_tensor(N, C, 3, 4, 5),
                     gamma,
                     beta,
                     mean,
                     rstd,
                     0.2f};
    dk_tensor dx = dk_test_tensor(N, C, 3, 4, 5);
    /* x = +-(1 + u): every xhat is about 0.5 or more from 0 and |beta| is small, so
     * no value is near the ReLU's kink, where a difference quotient is meaningless. */
    dk_test_fill_uniform(fc.x.data, dk_tensor_numel(&fc.x), 11, 1, 2);
    for (size_t i = 0; i < dk_tensor_numel(&fc.x); i += 2)
        fc.x.data[i] = -fc.x.data[i];
    dk_test_fill_uniform(fc.r.data, dk_tensor_numel(&fc.r), 12, -1, 1);
    fused_loss(&fc);
    dk_instnorm_relu_backward(&fc.x, &fc.y, fc.slope, gamma, mean, rstd, &fc.r, &dx, dgamma, dbeta,
                              NULL);
    size_t n = dk_tensor_numel(&fc.x);
    double worst = dk_test_gradcheck(fused_loss, &fc, fc.x.data, dx.data, n, 1e-2, 1e-3, 0);
    cr_assert_lt(worst, 1e-2, "dx: worst relative error %g", worst);
    worst = dk_test_gradcheck(fused_loss, &fc, gamma, dgamma, C, 1e-2, 1e-3, 0);
    cr_assert_lt(worst, 5e-3, "dgamma: worst relative error %g", worst);
    worst = dk_test_gradcheck(fused_loss, &fc, beta, dbeta, C, 1e-2, 1e-3, 0);
    cr_assert_lt(worst, 5e-3, "dbeta: worst relative error %g", worst);
    dk_tensor *all[] = {&fc.x, &fc.y, &fc.r, &dx};
    for (int i = 0; i < 4; i++)
        dk_tensor_release(all[i]);
}

/* The fused pair against the unfused layers, on a shape large enough to be split
 * across two threads (channels 0-1 vs 2-4), with 1 and 2 threads. */
typedef struct pair_out {
    dk_tensor y, dx;
    float mean[10], rstd[10], dgamma[5], dbeta[5];
} pair_out;

static void run_pair(bool fused, int threads, float slope, const dk_tensor *x, const dk_tensor *dy,
                     pair_out *o)
{
    float gamma[5] = {1.2f, -0.4f, 0.9f, 2.0f, 0.5f}, beta[5] = {0.3f, -0.1f, 0.0f, 0.7f, -2};
    int saved = dk_blas_threads();
    dk_blas_set_threads(threads);
    o->y = dk_test_tensor(x->n, x->c, x->d, x->h, x->w);
    o->dx = dk_test_tensor(x->n, x->c, x->d, x->h, x->w);
    memset(o->dgamma, 0, sizeof o->dgamma);
    memset(o->dbeta, 0, sizeof o->dbeta);
    if (fused) {
        dk_instnorm_relu_forward(x, gamma, beta, 1e-5f, slope, &o->y, o->mean, o->rstd, NULL);
        dk_tensor_copy(&o->dx, dy); /* in place: dx aliases dy */
        dk_instnorm_relu_backward(x, &o->y, slope, gamma, o->mean, o->rstd, &o->dx, &o->dx,
                                  o->dgamma, o->dbeta, NULL);
    } else {
        dk_instnorm_forward(x, gamma, beta, 1e-5f, &o->y, o->mean, o->rstd, NULL);
        dk_leaky_relu_forward(&o->y, slope, &o->y, NULL);
        dk_tensor g = dk_test_tensor(x->n, x->c, x->d, x->h, x->w);
        dk_leaky_relu_backward(&o->y, slope, dy, &g, NULL);
        dk_instnorm_backward(x, gamma, o->mean, o->rstd, &g, &o->dx, o->dgamma, o->dbeta, NULL);
        dk_tensor_release(&g);
    }
    dk_blas_set_threads(saved);
}

static void check_pair_equal(float slope)
{
    dk_tensor x = dk_test_tensor(2, 5, 17, 33, 31), dy = dk_test_tensor(2, 5, 17, 33, 31);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 21, -3, 5);
    dk_test_fill_uniform(dy.data, dk_tensor_numel(&dy), 22, -1, 1);
    pair_out ref, fused2, fused1;
    run_pair(false, 1, slope, &x, &dy, &ref);
    run_pair(true, 2, slope, &x, &dy, &fused2);
    run_pair(true, 1, slope, &x, &dy, &fused1);
    size_t n = dk_tensor_numel(&x);
    pair_out *outs[2] = {&fused2, &fused1};
    for (int k = 0; k < 2; k++) {
        assert_same_bits(outs[k]->y.data, ref.y.data, n, "y");
        assert_same_bits(outs[k]->dx.data, ref.dx.data, n, "dx");
        assert_same_bits(outs[k]->mean, ref.mean, 10, "mean");
        assert_same_bits(outs[k]->rstd, ref.rstd, 10, "rstd");
        assert_same_bits(outs[k]->dgamma, ref.dgamma, 5, "dgamma");
        assert_same_bits(outs[k]->dbeta, ref.dbeta, 5, "dbeta");
    }
    pair_out *all[3] = {&ref, &fused2, &fused1};
    for (int k = 0; k < 3; k++) {
        dk_tensor_release(&all[k]->y);
        dk_tensor_release(&all[k]->dx);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&dy);
}

Test(instnorm_relu, equals_the_unfused_layers_bit_for_bit_on_1_and_2_threads)
{
    check_pair_equal(0);
    check_pair_equal(0.01f);
}

Test(leaky_relu, two_threads_equal_one_on_an_odd_length)
{
    size_t n = ((size_t)1 << 18) + 7;
    dk_tensor x = dk_test_tensor(1, 1, 1, 1, (int)n), y1 = dk_test_tensor(1, 1, 1, 1, (int)n),
              y2 = dk_test_tensor(1, 1, 1, 1, (int)n);
    dk_test_fill_uniform(x.data, n, 5, -1, 1);
    int saved = dk_blas_threads();
    dk_blas_set_threads(1);
    dk_leaky_relu_forward(&x, 0.1f, &y1, NULL);
    dk_blas_set_threads(2);
    dk_leaky_relu_forward(&x, 0.1f, &y2, NULL);
    dk_blas_set_threads(saved);
    assert_same_bits(y2.data, y1.data, n, "y");
    for (size_t i = 0; i < n; i++) {
        float want = x.data[i] > 0 ? x.data[i] : 0.1f * x.data[i];
        cr_assert_eq(y1.data[i], want, "y[%zu]", i);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&y1);
    dk_tensor_release(&y2);
}

Test(maxpool, backward_add_puts_the_unpooled_gradient_onto_dx)
{
    /* One 2x2x2 window per output: x's max sits at a different place in each. */
    float xv[16], yv[2], dyv[2] = {10, 20}, dxv[16];
    int32_t arg[2];
    for (int i = 0; i < 16; i++) {
        xv[i] = (float)(i % 8);
        dxv[i] = 0.5f * i; /* the skip gradient already there */
    }
    xv[3] = 100; /* in the second window */
    dk_tensor x = dk_tensor_view(xv, 1, 1, 2, 2, 4), y = dk_tensor_view(yv, 1, 1, 1, 1, 2);
    dk_maxpool3d_forward((int[3]){2, 2, 2}, &x, &y, arg, NULL);
    /* Windows: w 0-1 -> flat indices {0,1,4,5,8,9,12,13}; w 2-3 -> {2,3,6,7,10,11,14,15}. */
    cr_assert_eq(arg[0], 5); /* values 0, 1, 4, 5, 0, 1, 4, 5: the first 5 */
    cr_assert_eq(arg[1], 3); /* the planted 100 */
    dk_tensor dy = dk_tensor_view(dyv, 1, 1, 1, 1, 2), dx = dk_tensor_view(dxv, 1, 1, 2, 2, 4);
    dk_maxpool3d_backward_add((int[3]){2, 2, 2}, &dy, arg, &dx, NULL);
    for (int i = 0; i < 16; i++) {
        float want = 0.5f * i + (i == 5 ? 10 : i == 3 ? 20 : 0);
        cr_assert_eq(dxv[i], want, "dx[%d] = %g, want %g", i, dxv[i], want);
    }
}

Test(maxpool, two_threads_equal_one)
{
    dk_tensor x = dk_test_tensor(2, 6, 16, 32, 32), y1 = dk_test_tensor(2, 6, 8, 16, 16),
              y2 = dk_test_tensor(2, 6, 8, 16, 16), dx1 = dk_test_tensor(2, 6, 16, 32, 32),
              dx2 = dk_test_tensor(2, 6, 16, 32, 32);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 9, -1, 1);
    size_t out = dk_tensor_numel(&y1);
    int32_t *a1 = malloc(out * sizeof(int32_t)), *a2 = malloc(out * sizeof(int32_t));
    int saved = dk_blas_threads(), k[3] = {2, 2, 2};
    dk_blas_set_threads(1);
    dk_maxpool3d_forward(k, &x, &y1, a1, NULL);
    dk_maxpool3d_backward(k, &y1, a1, &dx1, NULL);
    dk_blas_set_threads(2);
    dk_maxpool3d_forward(k, &x, &y2, a2, NULL);
    dk_maxpool3d_backward(k, &y2, a2, &dx2, NULL);
    dk_blas_set_threads(saved);
    assert_same_bits(y2.data, y1.data, out, "y");
    cr_assert_eq(memcmp(a1, a2, out * sizeof(int32_t)), 0);
    assert_same_bits(dx2.data, dx1.data, dk_tensor_numel(&dx1), "dx");
    free(a1);
    free(a2);
    dk_tensor *all[] = {&x, &y1, &y2, &dx1, &dx2};
    for (int i = 0; i < 5; i++)
        dk_tensor_release(all[i]);
}
