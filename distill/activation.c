/* activation.c: ReLU and LeakyReLU (layers.h). Elementwise, so in place is free;
 * backward reads the output y, whose sign equals the input's for slope >= 0. */
#include "distill/layers.h"

#include <math.h>

/* Fixed blocks through a local array let GCC vectorise at -O2 without alias
 * checks while y may alias x. */
#define BLOCK 16

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

void dk_leaky_relu_forward(const dk_tensor *x, float slope, dk_tensor *y)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(x, y), x, y);
    /* A negative slope would flip the sign that backward reads from y. */
    DK_CHECK_SHAPE(slope >= 0, x, y);
    leaky_scale(x->data, x->data, dk_tensor_numel(x), slope, y->data);
}

void dk_leaky_relu_backward(const dk_tensor *y, float slope, const dk_tensor *dy, dk_tensor *dx)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(y, dy), y, dy);
    DK_CHECK_SHAPE(dk_tensor_same_shape(y, dx), y, dx);
    DK_CHECK_SHAPE(slope >= 0, y, dy);
    leaky_scale(y->data, dy->data, dk_tensor_numel(y), slope, dx->data);
}
