/* layers.h: the parameter-free and light 3D layers the U-Net needs, each a pair of
 * free functions (forward, backward) over dk_tensor. The implementation lives in
 * one file per layer: pool.c, norm.c, activation.c, concat.c, softmax.c, resize.c.
 *
 * Conventions: outputs are preallocated by the caller and overwritten; input
 * gradients (dx) are overwritten; parameter gradients are accumulated (+=).
 * Shapes are checked with DK_CHECK_SHAPE (internal invariants, not user input).
 * `pool` (may be NULL) gives the threads of the layers that run on several
 * (pooling, norms, activations); results do not depend on it (parallel.h). */
#ifndef DK_LAYERS_H
#define DK_LAYERS_H

#include <stdint.h>

#include "distill/parallel.h"
#include "distill/tensor.h"

/* --- max pooling, kernel = stride per axis (d, h, w), e.g. (1, 2, 2) ---
 * Output dims are floor(in / k). argmax holds, per output element, the flat
 * index of the chosen input element within its (n, c) plane; caller allocates
 * numel(y) int32, or passes NULL for a forward with no backward (inference).
 * Backward scatters dy into dx (overwritten). */
void dk_maxpool3d_forward(const int k[3], const dk_tensor *x, dk_tensor *y, int32_t *argmax,
                          dk_pool *pool);
void dk_maxpool3d_backward(const int k[3], const dk_tensor *dy, const int32_t *argmax,
                           dk_tensor *dx, dk_pool *pool);
/* The same scatter added into dx (dx += unpool(dy)): for a gradient that already
 * holds another branch's contribution (the U-Net's skip connection). */
void dk_maxpool3d_backward_add(const int k[3], const dk_tensor *dy, const int32_t *argmax,
                               dk_tensor *dx, dk_pool *pool);

/* --- instance normalisation with affine gamma, beta (C values each) ---
 * Per (n, c): y = gamma * (x - mean) / sqrt(var + eps) + beta (biased variance).
 * mean and rstd (n*c floats each, caller-allocated) are saved for backward.
 * dgamma, dbeta accumulate. */
void dk_instnorm_forward(const dk_tensor *x, const float *gamma, const float *beta, float eps,
                         dk_tensor *y, float *mean, float *rstd, dk_pool *pool);
void dk_instnorm_backward(const dk_tensor *x, const float *gamma, const float *mean,
                          const float *rstd, const dk_tensor *dy, dk_tensor *dx, float *dgamma,
                          float *dbeta, dk_pool *pool);
/* Instance norm then (Leaky)ReLU of slope >= 0 in one pass: the same values as
 * dk_instnorm_forward into y and dk_leaky_relu_forward(y, slope, y, dk_pool *pool). */
void dk_instnorm_relu_forward(const dk_tensor *x, const float *gamma, const float *beta, float eps,
                              float slope, dk_tensor *y, float *mean, float *rstd, dk_pool *pool);
/* Its backward from dy at the ReLU's output y (x: the norm's input): the same values
 * as dk_leaky_relu_backward then dk_instnorm_backward. dx may alias dy. */
void dk_instnorm_relu_backward(const dk_tensor *x, const dk_tensor *y, float slope,
                               const float *gamma, const float *mean, const float *rstd,
                               const dk_tensor *dy, dk_tensor *dx, float *dgamma, float *dbeta,
                               dk_pool *pool);

/* --- ReLU (slope 0) and LeakyReLU (slope > 0) ---
 * y may alias x (in place). Backward uses the output y, so it works in place too;
 * dx may alias dy. */
void dk_leaky_relu_forward(const dk_tensor *x, float slope, dk_tensor *y, dk_pool *pool);
void dk_leaky_relu_backward(const dk_tensor *y, float slope, const dk_tensor *dy, dk_tensor *dx,
                            dk_pool *pool);

/* --- channel concatenation: y = [a, b] along C (same N, D, H, W) --- */
void dk_concat_channels_forward(const dk_tensor *a, const dk_tensor *b, dk_tensor *y);
/* Split dy into da (first a.c channels) and db (the rest); either may be NULL. */
void dk_concat_channels_backward(const dk_tensor *dy, dk_tensor *da, dk_tensor *db);

/* --- softmax over channels at each voxel, of x / temperature ---
 * Numerically stable (max subtracted). y may alias x. */
void dk_softmax_channels_forward(const dk_tensor *x, float temperature, dk_tensor *y,
                                 dk_pool *pool);
/* acc_t += softmax(x / T) and acc_1 += softmax(x) over the crop of sample `sample`
 * of x that starts at voxel `before` and spans dims; acc_t and acc_1 are C x dims
 * (W fastest). One pass over x, no probability tensor written: the values are
 * dk_softmax_channels_forward's, added in the same order. At most
 * DK_SOFTMAX_ACCUMULATE_MAX_CHANNELS channels. */
#define DK_SOFTMAX_ACCUMULATE_MAX_CHANNELS 64
void dk_softmax_channels_accumulate(const dk_tensor *x, int sample, float temperature,
                                    const int dims[3], const int before[3], float *acc_t,
                                    float *acc_1, dk_pool *pool);
/* dx = J^T dy for y = softmax(x / T): dx = (y * (dy - sum_c y*dy)) / T. dx may alias dy. */
void dk_softmax_channels_backward(const dk_tensor *y, const dk_tensor *dy, float temperature,
                                  dk_tensor *dx);

/* --- trilinear resize of the spatial dims (same N, C), align_corners = false,
 * i.e. PyTorch's F.interpolate(mode="trilinear") sampling positions. --- */
void dk_resize_trilinear_forward(const dk_tensor *x, dk_tensor *y);
void dk_resize_trilinear_backward(const dk_tensor *dy, dk_tensor *dx);

#endif
