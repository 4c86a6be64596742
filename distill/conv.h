/* conv.h: 3D convolution and transposed convolution, forward and backward.
 *
 * Geometry is per axis, in (d, h, w) order, so anisotropic kernels such as
 * 3x3x1 (in-plane only) and strides such as (1, 2, 2) are first-class: clinical
 * knee MR has 3-4.5 mm slices against 0.3 mm pixels.
 *
 * Implemented as GEMM through OpenBLAS over a tiled im2col: the column buffer
 * covers a tile of output voxels, never the whole volume, so its size is bounded
 * by DK_CONV_TILE_FLOATS whatever the volume (a 64^3 volume with 16 channels does
 * not need a 450 MB buffer). Scratch comes from a dk_workspace reserved up front
 * (dk_conv3d_workspace_floats); forward and backward never allocate.
 *
 * Layouts (PyTorch's, so checkpoints can be compared):
 *   conv:            x (N, Cin, D, H, W), weight (Cout, Cin, kd, kh, kw), bias (Cout, 1, 1, 1, 1)
 *   transposed conv: x (N, Cin, D, H, W), weight (Cin, Cout, kd, kh, kw), bias (Cout, 1, 1, 1, 1)
 * Output sizes: conv  out = (in + 2*pad - kernel) / stride + 1
 *               convt out = (in - 1) * stride - 2*pad + kernel
 *
 * Threads: each call runs on dk_blas_threads() threads at most (the caller's and
 * up to n-1 it starts and joins), with OpenBLAS set to one thread meanwhile and
 * restored after. Results are bit-identical for a given thread count. */
#ifndef DK_CONV_H
#define DK_CONV_H

#include "distill/tensor.h"
#include "distill/workspace.h"

/* Upper bound on the column-tile buffer, in floats (the workspace may add
 * a small amount on top for other scratch). */
#define DK_CONV_TILE_FLOATS ((size_t)4 << 20)

typedef struct dk_conv3d_geom {
    int kernel[3]; /* d, h, w */
    int stride[3];
    int pad[3];
} dk_conv3d_geom;

/* Output spatial dims of a conv (transposed = false) or transposed conv over an
 * input of dims in[3]; fails with a message naming the geometry when an output
 * dim would be < 1 or the geometry is invalid (kernel/stride < 1, pad < 0). */
dk_status dk_conv3d_out_dims(const dk_conv3d_geom *g, bool transposed, const int in[3], int out[3],
                             dk_err *err);

/* Floats of workspace the forward and backward passes need for these channel
 * counts and input dims; reserve the max over all layers once. */
size_t dk_conv3d_workspace_floats(const dk_conv3d_geom *g, bool transposed, int cin, int cout,
                                  const int in[3]);

/* y = conv(x, weight) + bias. bias may be NULL. y must be preallocated with the
 * output shape; it is overwritten. */
void dk_conv3d_forward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                       const dk_tensor *bias, dk_tensor *y, dk_workspace *ws);

/* Gradients from dy: dx is overwritten (may be NULL: not needed for the first
 * layer); dweight and dbias are accumulated (+=), dbias may be NULL. */
void dk_conv3d_backward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                        const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight, dk_tensor *dbias,
                        dk_workspace *ws);

/* The transposed convolution (the adjoint of conv with the same geometry),
 * used for learned up-sampling. Same conventions as above. */
void dk_convt3d_forward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                        const dk_tensor *bias, dk_tensor *y, dk_workspace *ws);
void dk_convt3d_backward(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                         const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight, dk_tensor *dbias,
                         dk_workspace *ws);

#endif
