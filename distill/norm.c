/* norm.c: instance normalisation over each (n, c) plane with affine gamma, beta,
 * alone or fused with the (Leaky)ReLU that follows it in the U-Net (layers.h).
 * Statistics accumulate over independent lanes (in float for 16 values, then in
 * double), so the compiler can vectorise the reductions without reassociating (no
 * -ffast-math); the summation order is fixed and each plane is one thread's, so results do not
 * depend on the thread count. dk_blas_threads() threads take channels from a shared counter (one
 * slowed down by other processes then holds the others up by one channel). */
#include "distill/layers.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "distill/hot_loop.h"
#include "distill/parallel.h"

/* Independent double accumulators per reduction: four AVX-512 vectors of doubles,
 * so that four adds are in flight and a plane streams at memory speed (with one
 * vector, 8 lanes, the add latency held it to two thirds of that). */
#define LANES 32
/* Values per lane summed in float before they go into the double (shifted_moments) */
#define FBLOCK 16
/* Elementwise loops run in fixed blocks through a local array: GCC then vectorises
 * them without alias checks, and y (dx) may still alias x (dy). */
#define BLOCK 16
/* Below this many values a second thread costs more than it saves. */
#define MIN_PARALLEL ((size_t)1 << 17)

/* The (Leaky)ReLU factor, 1 (sign > 0) or slope, as activation.c computes it. */
static inline float leak_factor(float sign, float slope)
{
    float positive = isgreater(sign, 0.0f);
    return positive + (1 - positive) * slope;
}

/* Sum of (x - shift) and of its square. The shift (the plane's first value) keeps
 * the one-pass variance free of cancellation when |mean| >> std. Each lane sums
 * FBLOCK values in float, then adds that into its double: float arithmetic keeps
 * the loop at memory speed (in double it was compute-bound: 6.5 % of a precompute
 * against 4 % for the normalisation, which moves twice the bytes), and a float sum
 * of 16 terms carries an error of about 1e-7 of their magnitude. */
DK_HOT_LOOP static void shifted_moments(const float *x, size_t n, float shift, double *sum,
                                        double *sumsq)
{
    typedef float half_lanes __attribute__((vector_size(LANES / 2 * sizeof(float))));
    double s[LANES] = {0}, q[LANES] = {0};
    size_t i = 0;
    for (; i + LANES * FBLOCK <= n; i += LANES * FBLOCK) {
        /* lanes 0..15 and 16..31 as vectors: GCC then keeps the float sums in
         * registers (as arrays it stored them every iteration) */
        half_lanes fs[2] = {{0}}, fq[2] = {{0}};
        for (int b = 0; b < FBLOCK; b++)
            for (int h = 0; h < 2; h++) {
                half_lanes v;
                memcpy(&v, x + i + (size_t)b * LANES + h * (LANES / 2), sizeof v);
                v -= shift;
                fs[h] += v;
                fq[h] += v * v;
            }
        float ls[LANES], lq[LANES];
        memcpy(ls, fs, sizeof ls);
        memcpy(lq, fq, sizeof lq);
        for (int l = 0; l < LANES; l++) {
            s[l] += ls[l];
            q[l] += lq[l];
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

/* y = act((x - mu) * scale + offset) over one plane; act is the identity unless
 * `act`, then the leaky ReLU of slope. */
DK_HOT_LOOP static void normalize_plane(const float *x, size_t n, float mu, float scale,
                                        float offset, bool act, float slope, float *y)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float out[BLOCK];
        for (int l = 0; l < BLOCK; l++)
            out[l] = (x[i + l] - mu) * scale + offset;
        if (act)
            for (int l = 0; l < BLOCK; l++)
                out[l] = out[l] * leak_factor(out[l], slope);
        for (int l = 0; l < BLOCK; l++)
            y[i + l] = out[l];
    }
    for (; i < n; i++) {
        float v = (x[i] - mu) * scale + offset;
        y[i] = act ? v * leak_factor(v, slope) : v;
    }
}

typedef struct norm_job {
    const dk_tensor *x;
    const float *gamma, *beta, *mean_in, *rstd_in;
    float eps, slope;
    bool act;
    const dk_tensor *y_act, *dy; /* backward: the activation's output and dL/dy */
    dk_tensor *out;              /* forward y, backward dx */
    float *mean, *rstd, *dgamma, *dbeta;
    atomic_size_t next; /* the next channel to take */
} norm_job;

static void forward_plane(const norm_job *j, int c, size_t p, size_t plane)
{
    const float *xp = j->x->data + p * plane;
    double sum, sumsq;
    shifted_moments(xp, plane, xp[0], &sum, &sumsq);
    double m = sum / plane;
    double var = sumsq / plane - m * m;
    if (var < 0) var = 0;
    double r = 1.0 / sqrt(var + j->eps);
    j->mean[p] = (float)(xp[0] + m);
    j->rstd[p] = (float)r;
    /* The affine folded into one scale; x - mean stays explicit so a large mean
     * does not cancel against the offset in float. */
    float mu = j->mean[p], scale = (float)(j->gamma[c] * r);
    normalize_plane(xp, plane, mu, scale, j->beta[c], j->act, j->slope, j->out->data + p * plane);
}

/* A thread normalises the channels it takes, in every sample. */
static void forward_worker(void *arg, int t, int nthreads)
{
    norm_job *j = arg;
    size_t plane = dk_tensor_spatial(j->x);
    for (size_t c; (c = atomic_fetch_add(&j->next, 1)) < (size_t)j->x->c;)
        for (int n = 0; n < j->x->n; n++)
            forward_plane(j, (int)c, (size_t)n * j->x->c + c, plane);
}

static void run(norm_job *j, dk_parallel_fn fn, dk_pool *pool)
{
    int n = dk_parallel_threads(dk_tensor_numel(j->x), MIN_PARALLEL, (size_t)j->x->c);
    atomic_init(&j->next, 0);
    dk_parallel_run(pool, n, fn, j);
}

void dk_instnorm_forward(const dk_tensor *x, const float *gamma, const float *beta, float eps,
                         dk_tensor *y, float *mean, float *rstd, dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    norm_job j = {
        .x = x, .gamma = gamma, .beta = beta, .eps = eps, .out = y, .mean = mean, .rstd = rstd};
    run(&j, forward_worker, pool);
}

void dk_instnorm_relu_forward(const dk_tensor *x, const float *gamma, const float *beta, float eps,
                              float slope, dk_tensor *y, float *mean, float *rstd, dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    /* A negative slope would flip the sign that backward reads from y. */
    DK_CHECK_SHAPE(slope >= 0, x, y);
    norm_job j = {.x = x,
                  .gamma = gamma,
                  .beta = beta,
                  .eps = eps,
                  .slope = slope,
                  .act = true,
                  .out = y,
                  .mean = mean,
                  .rstd = rstd};
    run(&j, forward_worker, pool);
}

/* One block of the gradient at the norm's output: dy, or dy through the ReLU. */
static inline void load_grad(const float *dy, const float *sign, float slope, size_t i, int len,
                             float *g)
{
    if (sign)
        for (int l = 0; l < len; l++)
            g[l] = dy[i + l] * leak_factor(sign[i + l], slope);
    else
        for (int l = 0; l < len; l++)
            g[l] = dy[i + l];
}

/* Sum of g and of g * (x - mean) over one plane (g as load_grad gives it). */
DK_HOT_LOOP static void backward_sums(const float *x, const float *dy, const float *sign,
                                      float slope, size_t n, float mean, double *sum_dy,
                                      double *sum_dyxc)
{
    double s[LANES] = {0}, q[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        float g[LANES];
        load_grad(dy, sign, slope, i, LANES, g);
        for (int l = 0; l < LANES; l++) {
            s[l] += g[l];
            q[l] += (double)g[l] * (x[i + l] - mean);
        }
    }
    for (; i < n; i++) {
        float g;
        load_grad(dy, sign, slope, i, 1, &g);
        s[0] += g;
        q[0] += (double)g * (x[i] - mean);
    }
    *sum_dy = *sum_dyxc = 0;
    for (int l = 0; l < LANES; l++) {
        *sum_dy += s[l];
        *sum_dyxc += q[l];
    }
}

/* dx = a * g + b * (x - mu) + k over one plane. */
DK_HOT_LOOP static void backward_plane(const float *x, const float *dy, const float *sign,
                                       float slope, size_t n, float mu, float a, float b, float k,
                                       float *dx)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float g[BLOCK], out[BLOCK];
        load_grad(dy, sign, slope, i, BLOCK, g);
        for (int l = 0; l < BLOCK; l++)
            out[l] = a * g[l] + b * (x[i + l] - mu) + k;
        for (int l = 0; l < BLOCK; l++)
            dx[i + l] = out[l];
    }
    for (; i < n; i++) {
        float g;
        load_grad(dy, sign, slope, i, 1, &g);
        dx[i] = a * g + b * (x[i] - mu) + k;
    }
}

/* dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = (x - mean) * rstd;
 * pass 1 reduces, pass 2 writes dx = a*g + b*(x - mean) + k. */
static void backward_plane_of(const norm_job *j, int c, size_t p, size_t plane, double *dgamma,
                              double *dbeta)
{
    const float *xp = j->x->data + p * plane, *dyp = j->dy->data + p * plane;
    const float *sign = j->act ? j->y_act->data + p * plane : NULL;
    double sum_dy, sum_dyxc;
    backward_sums(xp, dyp, sign, j->slope, plane, j->mean_in[p], &sum_dy, &sum_dyxc);
    double r = j->rstd_in[p];
    double mean_dy = sum_dy / plane;
    double mean_dyxhat = sum_dyxc * r / plane;
    *dgamma = sum_dyxc * r;
    *dbeta = sum_dy;
    double gr = j->gamma[c] * r;
    float a = (float)gr;
    float b = (float)(-gr * r * mean_dyxhat);
    float k = (float)(-gr * mean_dy), mu = j->mean_in[p];
    backward_plane(xp, dyp, sign, j->slope, plane, mu, a, b, k, j->out->data + p * plane);
}

/* A thread owns the channels it takes: it alone adds into their dgamma and dbeta,
 * sample after sample, so the sums have one fixed order. */
static void backward_worker(void *arg, int t, int nthreads)
{
    norm_job *j = arg;
    size_t plane = dk_tensor_spatial(j->x);
    for (size_t c; (c = atomic_fetch_add(&j->next, 1)) < (size_t)j->x->c;)
        for (int n = 0; n < j->x->n; n++) {
            double dg, db;
            backward_plane_of(j, (int)c, (size_t)n * j->x->c + c, plane, &dg, &db);
            j->dgamma[c] += (float)dg;
            j->dbeta[c] += (float)db;
        }
}

void dk_instnorm_backward(const dk_tensor *x, const float *gamma, const float *mean,
                          const float *rstd, const dk_tensor *dy, dk_tensor *dx, float *dgamma,
                          float *dbeta, dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, dy), x, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, dx), x, dx);
    norm_job j = {.x = x,
                  .gamma = gamma,
                  .mean_in = mean,
                  .rstd_in = rstd,
                  .dy = dy,
                  .out = dx,
                  .dgamma = dgamma,
                  .dbeta = dbeta};
    run(&j, backward_worker, pool);
}

void dk_instnorm_relu_backward(const dk_tensor *x, const dk_tensor *y, float slope,
                               const float *gamma, const float *mean, const float *rstd,
                               const dk_tensor *dy, dk_tensor *dx, float *dgamma, float *dbeta,
                               dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, dy), x, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, dx), x, dx);
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    DK_CHECK_SHAPE(slope >= 0, x, y);
    norm_job j = {.x = x,
                  .gamma = gamma,
                  .mean_in = mean,
                  .rstd_in = rstd,
                  .slope = slope,
                  .act = true,
                  .y_act = y,
                  .dy = dy,
                  .out = dx,
                  .dgamma = dgamma,
                  .dbeta = dbeta};
    run(&j, backward_worker, pool);
}
