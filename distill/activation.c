/* activation.c: ReLU and LeakyReLU (layers.h). Elementwise, so in place is free;
 * backward reads the output y, whose sign equals the input's for slope >= 0.
 * Values are split across dk_blas_threads() threads (parallel.h). */
#include "distill/layers.h"

#include <math.h>

#include "distill/parallel.h"

/* Fixed blocks through a local array let GCC vectorise at -O2 without alias
 * checks while y may alias x. */
#define BLOCK 16
/* Below this many values a second thread costs more than it saves. */
#define MIN_PARALLEL ((size_t)1 << 17)

/* The factor 1 (sign > 0) or slope, exactly, without a branch: a quiet compare
 * (isgreater, not `>`) as 0/1 arithmetic is what GCC vectorises under the
 * default -ftrapping-math; a `?:` select stays a branch. */
static inline float leak_factor(float sign, float slope)
{
    float positive = isgreater(sign, 0.0f);
    return positive + (1 - positive) * slope;
}

/* out = v * (sign > 0 ? 1 : slope): the forward (sign = v) and the backward
 * (sign = y, v = dy) are the same map. */
static void leaky_scale(const float *sign, const float *v, size_t n, float slope, float *out)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float r[BLOCK];
        for (int l = 0; l < BLOCK; l++)
            r[l] = v[i + l] * leak_factor(sign[i + l], slope);
        for (int l = 0; l < BLOCK; l++)
            out[i + l] = r[l];
    }
    for (; i < n; i++)
        out[i] = v[i] * leak_factor(sign[i], slope);
}

typedef struct act_job {
    const float *sign, *v;
    float slope;
    float *out;
    size_t count;
} act_job;

/* Thread t maps values [a, b), cut at multiples of BLOCK. */
static void act_worker(void *arg, int t, int nthreads)
{
    const act_job *j = arg;
    size_t a, b, blocks = (j->count + BLOCK - 1) / BLOCK;
    dk_parallel_share(blocks, t, nthreads, &a, &b);
    a *= BLOCK;
    b = b * BLOCK < j->count ? b * BLOCK : j->count;
    if (b > a) leaky_scale(j->sign + a, j->v + a, b - a, j->slope, j->out + a);
}

static void run(const float *sign, const float *v, size_t count, float slope, float *out,
                dk_pool *pool)
{
    act_job j = {sign, v, slope, out, count};
    dk_parallel_run(pool, dk_parallel_threads(count, MIN_PARALLEL, count), act_worker, &j);
}

void dk_leaky_relu_forward(const dk_tensor *x, float slope, dk_tensor *y, dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    /* A negative slope would flip the sign that backward reads from y. */
    DK_CHECK_SHAPE(slope >= 0, x, y);
    run(x->data, x->data, dk_tensor_numel(x), slope, y->data, pool);
}

void dk_leaky_relu_backward(const dk_tensor *y, float slope, const dk_tensor *dy, dk_tensor *dx,
                            dk_pool *pool)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(y, dy), y, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(y, dx), y, dx);
    DK_CHECK_SHAPE(slope >= 0, y, dy);
    run(y->data, dy->data, dk_tensor_numel(y), slope, dx->data, pool);
}
