/* norm.c: instance normalisation over each (n, c) plane with affine gamma, beta
 * (layers.h). Statistics accumulate in double over independent lanes, so the
 * compiler can vectorise the reductions without reassociating (no -ffast-math);
 * the summation order is fixed, so results are deterministic. */
#include "distill/layers.h"

#include <math.h>

/* Independent double accumulators per reduction: wide enough for AVX-512 doubles
 * and to hide the add latency. */
#define LANES 8
/* Elementwise loops run in fixed blocks through a local array: GCC then vectorises
 * them at -O2 without alias checks, and y (dx) may still alias x (dy). */
#define BLOCK 16

/* Sum of (x - shift) and of its square. The shift (the plane's first value) keeps
 * the one-pass variance free of cancellation when |mean| >> std. */
static void shifted_moments(const float *x, size_t n, float shift, double *sum, double *sumsq)
{
    double s[LANES] = {0}, q[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            double v = (double)x[i + l] - shift;
            s[l] += v;
            q[l] += v * v;
        }
    }
    for (; i < n; i++) {
        double v = (double)x[i] - shift;
        s[0] += v;
        q[0] += v * v;
    }
    *sum = *sumsq = 0;
    for (int l = 0; l < LANES; l++) {
        *sum += s[l];
        *sumsq += q[l];
    }
}

/* y = (x - mu) * scale + offset over one plane. */
static void normalize_plane(const float *x, size_t n, float mu, float scale, float offset, float *y)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float out[BLOCK];
        for (int l = 0; l < BLOCK; l++)
            out[l] = (x[i + l] - mu) * scale + offset;
        for (int l = 0; l < BLOCK; l++)
            y[i + l] = out[l];
    }
    for (; i < n; i++)
        y[i] = (x[i] - mu) * scale + offset;
}

void dk_instnorm_forward(const dk_tensor *x, const float *gamma, const float *beta, float eps,
                         dk_tensor *y, float *mean, float *rstd)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    size_t plane = dk_tensor_spatial(x);
    for (int n = 0; n < x->n; n++) {
        for (int c = 0; c < x->c; c++) {
            size_t p = (size_t)n * x->c + c;
            const float *xp = x->data + p * plane;
            float *yp = y->data + p * plane;
            double sum, sumsq;
            shifted_moments(xp, plane, xp[0], &sum, &sumsq);
            double m = sum / plane;
            double var = sumsq / plane - m * m;
            if (var < 0) var = 0;
            double r = 1.0 / sqrt(var + eps);
            mean[p] = (float)(xp[0] + m);
            rstd[p] = (float)r;
            /* The affine folded into one scale; x - mean stays explicit so a large
             * mean does not cancel against the offset in float. */
            float mu = mean[p], scale = (float)(gamma[c] * r);
            normalize_plane(xp, plane, mu, scale, beta[c], yp);
        }
    }
}

/* Sum of dy and of dy * (x - mean) over one plane. */
static void backward_sums(const float *x, const float *dy, size_t n, float mean, double *sum_dy,
                          double *sum_dyxc)
{
    double s[LANES] = {0}, q[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            s[l] += dy[i + l];
            q[l] += (double)dy[i + l] * (x[i + l] - mean);
        }
    }
    for (; i < n; i++) {
        s[0] += dy[i];
        q[0] += (double)dy[i] * (x[i] - mean);
    }
    *sum_dy = *sum_dyxc = 0;
    for (int l = 0; l < LANES; l++) {
        *sum_dy += s[l];
        *sum_dyxc += q[l];
    }
}

/* dx = a * dy + b * (x - mu) + k over one plane. */
static void backward_plane(const float *x, const float *dy, size_t n, float mu, float a, float b,
                           float k, float *dx)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float out[BLOCK];
        for (int l = 0; l < BLOCK; l++)
            out[l] = a * dy[i + l] + b * (x[i + l] - mu) + k;
        for (int l = 0; l < BLOCK; l++)
            dx[i + l] = out[l];
    }
    for (; i < n; i++)
        dx[i] = a * dy[i] + b * (x[i] - mu) + k;
}

/* dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * rstd;
 * pass 1 reduces, pass 2 writes dx = a*dy + b*(x - mean) + k. dx may alias dy. */
void dk_instnorm_backward(const dk_tensor *x, const float *gamma, const float *mean,
                          const float *rstd, const dk_tensor *dy, dk_tensor *dx, float *dgamma,
                          float *dbeta)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, dy), x, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, dx), x, dx);
    size_t plane = dk_tensor_spatial(x);
    for (int n = 0; n < x->n; n++) {
        for (int c = 0; c < x->c; c++) {
            size_t p = (size_t)n * x->c + c;
            const float *xp = x->data + p * plane;
            const float *dyp = dy->data + p * plane;
            float *dxp = dx->data + p * plane;
            double sum_dy, sum_dyxc;
            backward_sums(xp, dyp, plane, mean[p], &sum_dy, &sum_dyxc);
            double r = rstd[p];
            double mean_dy = sum_dy / plane;
            double mean_dyxhat = sum_dyxc * r / plane;
            dgamma[c] += (float)(sum_dyxc * r);
            dbeta[c] += (float)sum_dy;
            double gr = gamma[c] * r;
            float a = (float)gr;
            float b = (float)(-gr * r * mean_dyxhat);
            float k = (float)(-gr * mean_dy), mu = mean[p];
            backward_plane(xp, dyp, plane, mu, a, b, k, dxp);
        }
    }
}
