/* test_softmax.c: channel softmax with temperature (distill/layers.h): known
 * values, sums to one, stability, chunk boundaries, in place, and backward
 * against hand-computed values and central finite differences; the fused
 * accumulation of a crop at T and at 1 against the softmax itself. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/layers.h"
#include "distill/parallel.h"
#include "testutil.h"

Test(softmax, known_values_and_temperature)
{
    /* Two voxels, two channels a plane apart. At T = 1 the logits (0, ln 2) and
     * (1000, 1000 + ln 2), which overflow expf unless the maximum is subtracted:
     * both (1/3, 2/3). 1000 + ln 2 rounds in float, so that voxel is only close. */
    float ln2 = logf(2), y[4];
    float x1[4] = {0, 1000, ln2, 1000 + ln2};
    float want1[4] = {1.f / 3, 1.f / 3, 2.f / 3, 2.f / 3};
    dk_tensor tx1 = dk_tensor_view(x1, 1, 2, 1, 1, 2), ty = dk_tensor_view(y, 1, 2, 1, 1, 2);
    dk_softmax_channels_forward(&tx1, 1, &ty, NULL);
    dk_test_assert_close(y, want1, 4, 1e-4);
    cr_assert_float_eq(y[0], 1.f / 3, 1e-7);
    cr_assert_float_eq(y[2], 2.f / 3, 1e-7);

    /* At T = 2: (0, 2 ln 2) -> (1/3, 2/3); (0, ln 2) -> (1, sqrt 2) / (1 + sqrt 2). */
    float x2[4] = {0, 0, 2 * ln2, ln2};
    float s2 = sqrtf(2);
    float want2[4] = {1.f / 3, 1 / (1 + s2), 2.f / 3, s2 / (1 + s2)};
    dk_tensor tx2 = dk_tensor_view(x2, 1, 2, 1, 1, 2);
    dk_softmax_channels_forward(&tx2, 2, &ty, NULL);
    dk_test_assert_close(y, want2, 4, 1e-7);
}

Test(softmax, masked_and_far_logits)
{
    /* -inf (a masked class) and far-below logits get exactly 0; the rest renormalise. */
    float x[8] = {-INFINITY, -200, 0, 3, 0, 0, 0, 3}, y[8];
    dk_tensor tx = dk_tensor_view(x, 1, 2, 1, 1, 4), ty = dk_tensor_view(y, 1, 2, 1, 1, 4);
    dk_softmax_channels_forward(&tx, 1, &ty, NULL);
    float want[8] = {0, 0, 0.5f, 0.5f, 1, 1, 0.5f, 0.5f};
    dk_test_assert_close(y, want, 8, 0);

    /* A NaN logit makes its voxel NaN rather than a plausible distribution. */
    float xn[2] = {NAN, 1}, yn[2];
    dk_tensor txn = dk_tensor_view(xn, 1, 2, 1, 1, 1), tyn = dk_tensor_view(yn, 1, 2, 1, 1, 1);
    dk_softmax_channels_forward(&txn, 1, &tyn, NULL);
    cr_assert(isnan(yn[0]) && isnan(yn[1]), "softmax(NaN, 1) = (%g, %g)", yn[0], yn[1]);
}

Test(softmax, small_probabilities_keep_their_relative_accuracy)
{
    /* Logits (d, 0) for d down to -80: y0 = e^d / (1 + e^d) to 1e-6 relative, which
     * the distillation losses need for the log of small teacher probabilities. */
    enum { V = 1601 };
    dk_tensor x = dk_test_tensor(1, 2, 1, 1, V), y = dk_test_tensor(1, 2, 1, 1, V);
    for (int v = 0; v < V; v++)
        x.data[v] = -0.05f * v, x.data[V + v] = 0;
    dk_softmax_channels_forward(&x, 1, &y, NULL);
    for (int v = 0; v < V; v++) {
        double e = exp((double)x.data[v]), want = e / (1 + e);
        cr_assert_lt(fabs(y.data[v] - want), 1e-6 * want, "logit %g: %.9g vs %.9g", x.data[v],
                     y.data[v], want);
    }
    dk_tensor_release(&x);
    dk_tensor_release(&y);
}

Test(softmax, rows_sum_to_one_in_place_across_chunks)
{
    /* 1100 voxels per plane: many internal blocks and a ragged tail. */
    dk_tensor x = dk_test_tensor(2, 5, 1, 10, 110), ref = dk_test_tensor(2, 5, 1, 10, 110);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 51, -8, 8);
    size_t plane = 1100;
    for (int n = 0; n < 2; n++)
        for (size_t v = 0; v < plane; v++) {
            double total = 0, e[5];
            for (int c = 0; c < 5; c++)
                total += e[c] = exp(x.data[(n * 5 + c) * plane + v] / 0.5);
            for (int c = 0; c < 5; c++)
                ref.data[(n * 5 + c) * plane + v] = (float)(e[c] / total);
        }
    dk_softmax_channels_forward(&x, 0.5f, &x, NULL);
    dk_test_assert_close(x.data, ref.data, dk_tensor_numel(&x), 1e-6);
    for (int n = 0; n < 2; n++)
        for (size_t v = 0; v < plane; v++) {
            double total = 0;
            for (int c = 0; c < 5; c++)
                total += x.data[(n * 5 + c) * plane + v];
            cr_assert_lt(fabs(total - 1), 1e-6, "voxel %zu of sample %d sums to %.9g", v, n, total);
        }
    dk_tensor_release(&x);
    dk_tensor_release(&ref);
}

Test(softmax, backward_by_hand)
{
    /* y = (1/3, 2/3), dy = (1, 0): sum y*dy = 1/3, dx = y * (dy - 1/3) / T. */
    float y[2] = {1.f / 3, 2.f / 3}, dy[2] = {1, 0}, dx[2];
    dk_tensor ty = dk_tensor_view(y, 1, 2, 1, 1, 1), tdy = dk_tensor_view(dy, 1, 2, 1, 1, 1);
    dk_tensor tdx = dk_tensor_view(dx, 1, 2, 1, 1, 1);
    dk_softmax_channels_backward(&ty, &tdy, 1, &tdx);
    float want1[2] = {2.f / 9, -2.f / 9};
    dk_test_assert_close(dx, want1, 2, 1e-7);
    dk_softmax_channels_backward(&ty, &tdy, 2, &tdy); /* in place, T = 2 */
    float want2[2] = {1.f / 9, -1.f / 9};
    dk_test_assert_close(dy, want2, 2, 1e-7);
}

typedef struct softmax_case {
    dk_tensor x, y, r;
    float temperature;
} softmax_case;

static double softmax_loss(void *ctx)
{
    softmax_case *sc = ctx;
    dk_softmax_channels_forward(&sc->x, sc->temperature, &sc->y, NULL);
    double s = 0;
    for (size_t i = 0; i < dk_tensor_numel(&sc->y); i++)
        s += (double)sc->y.data[i] * sc->r.data[i];
    return s;
}

static void softmax_gradcheck(float temperature, int n, int c, int d, int h, int w)
{
    softmax_case sc = {.temperature = temperature};
    sc.x = dk_test_tensor(n, c, d, h, w);
    sc.y = dk_test_tensor(n, c, d, h, w);
    sc.r = dk_test_tensor(n, c, d, h, w);
    dk_tensor dx = dk_test_tensor(n, c, d, h, w), dy = dk_test_tensor(n, c, d, h, w);
    size_t count = dk_tensor_numel(&sc.x);
    dk_test_fill_uniform(sc.x.data, count, 61, -2, 2);
    dk_test_fill_uniform(sc.r.data, count, 62, -1, 1);
    softmax_loss(&sc);
    dk_softmax_channels_backward(&sc.y, &sc.r, temperature, &dx);
    double worst = dk_test_gradcheck(softmax_loss, &sc, sc.x.data, dx.data, count, 5e-3, 1e-2, 300);
    cr_assert_lt(worst, 2e-3, "T %g: worst relative error %g", temperature, worst);
    /* dx may alias dy. */
    dk_tensor_copy(&dy, &sc.r);
    softmax_loss(&sc);
    dk_softmax_channels_backward(&sc.y, &dy, temperature, &dy);
    dk_test_assert_close(dy.data, dx.data, count, 0);
    dk_tensor_release(&sc.x);
    dk_tensor_release(&sc.y);
    dk_tensor_release(&sc.r);
    dk_tensor_release(&dx);
    dk_tensor_release(&dy);
}

Test(softmax, backward_matches_finite_differences)
{
    softmax_gradcheck(1, 2, 4, 2, 3, 5);
    softmax_gradcheck(0.5f, 1, 3, 2, 3, 4);
    softmax_gradcheck(4, 1, 2, 1, 1, 3);
    softmax_gradcheck(2, 1, 3, 1, 2, 15); /* 30 voxels: a block and a ragged tail */
}

/* Large enough for two threads, with a partial last block per sample: the same
 * bits on one and two threads (each voxel is one block's, computed alike). */
Test(softmax, two_threads_give_the_same_bits)
{
    int prev = dk_blas_threads();
    dk_tensor x = dk_test_tensor(2, 5, 7, 61, 83), y1 = dk_test_tensor(2, 5, 7, 61, 83),
              y2 = dk_test_tensor(2, 5, 7, 61, 83);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 7, -20, 20);
    dk_blas_set_threads(1);
    dk_softmax_channels_forward(&x, 2, &y1, NULL);
    dk_blas_set_threads(2);
    dk_pool *pool = dk_pool_create(2, NULL);
    cr_assert(pool);
    dk_softmax_channels_forward(&x, 2, &y2, pool);
    cr_assert_eq(memcmp(y1.data, y2.data, dk_tensor_numel(&y1) * sizeof(float)), 0);
    for (size_t v = 0; v < 7 * 61 * 83; v += 997) { /* and they are probabilities */
        double sum = 0;
        for (int c = 0; c < 5; c++)
            sum += y2.data[(size_t)c * 7 * 61 * 83 + v];
        cr_assert_float_eq(sum, 1.0, 1e-5);
    }
    dk_pool_free(pool);
    dk_blas_set_threads(prev);
    dk_tensor_release(&x);
    dk_tensor_release(&y1);
    dk_tensor_release(&y2);
}

/* acc += p's crop, the crop of (sample n of) a C x D x H x W tensor at `before`. */
static void add_crop(const dk_tensor *p, int n, const int dims[3], const int before[3], float *acc)
{
    size_t k = 0;
    for (int c = 0; c < p->c; c++)
        for (int z = 0; z < dims[0]; z++)
            for (int y = 0; y < dims[1]; y++)
                for (int i = 0; i < dims[2]; i++)
                    acc[k++] += p->data[((((size_t)n * p->c + c) * p->d + z + before[0]) * p->h +
                                         y + before[1]) *
                                            p->w +
                                        i + before[2]];
}

/* The fused accumulation adds the very bits the softmax writes, for either sample
 * of a batch, with crops that cut blocks (85 wide from 2: five full blocks and 5),
 * on two threads; and it checks its crop. */
Test(softmax, accumulate_adds_the_softmax_bits_of_the_crop)
{
    int prev = dk_blas_threads();
    dk_tensor x = dk_test_tensor(2, 5, 10, 70, 90), p = dk_test_tensor(2, 5, 10, 70, 90);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 11, -15, 15);
    int dims[3] = {7, 64, 85}, before[3] = {1, 4, 2};
    size_t cells = (size_t)5 * 7 * 64 * 85;
    float *want_t = malloc(cells * sizeof(float)), *want_1 = malloc(cells * sizeof(float));
    float *got_t = malloc(cells * sizeof(float)), *got_1 = malloc(cells * sizeof(float));
    cr_assert(want_t && want_1 && got_t && got_1);
    dk_test_fill_uniform(want_t, cells, 3, 0, 1);
    dk_test_fill_uniform(want_1, cells, 4, 0, 1);
    memcpy(got_t, want_t, cells * sizeof(float));
    memcpy(got_1, want_1, cells * sizeof(float));
    dk_softmax_channels_forward(&x, 2.5f, &p, NULL);
    add_crop(&p, 1, dims, before, want_t);
    dk_softmax_channels_forward(&x, 1.0f, &p, NULL);
    add_crop(&p, 1, dims, before, want_1);
    dk_blas_set_threads(2);
    dk_pool *pool = dk_pool_create(2, NULL);
    cr_assert(pool);
    dk_softmax_channels_accumulate(&x, 1, 2.5f, dims, before, got_t, got_1, pool);
    cr_assert_eq(memcmp(want_t, got_t, cells * sizeof(float)), 0);
    cr_assert_eq(memcmp(want_1, got_1, cells * sizeof(float)), 0);
    /* sample 0 differs: the sample index is honoured */
    dk_softmax_channels_accumulate(&x, 0, 2.5f, dims, before, got_t, got_1, NULL);
    add_crop(&p, 0, dims, before, want_1);
    cr_assert_eq(memcmp(want_1, got_1, cells * sizeof(float)), 0);
    dk_pool_free(pool);
    dk_blas_set_threads(prev);
    dk_tensor_release(&x);
    dk_tensor_release(&p);
    free(want_t);
    free(want_1);
    free(got_t);
    free(got_1);
}
