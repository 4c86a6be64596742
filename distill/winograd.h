/* winograd.h: the 3 x 3 x 3 convolution (stride 1, pad 1) as Winograd F(2x2x2, 3x3x3),
 * the conv engine's fast path for the U-Net's convolutions (conv.c picks it).
 *
 * Why: a 3 x 3 x 3 conv computed as GEMM does 27 multiply-adds per output, input
 * channel and output channel. Winograd's minimal filtering computes a 2 x 2 x 2 block
 * of outputs from a 4 x 4 x 4 block of inputs with 64 multiplies per channel pair,
 * 8 per output: 3.375x fewer. The transforms (inputs, weights, outputs) are sums
 * and halvings, linear in the channels; the 64 products per tile become 64 GEMMs
 * (one per transform point: cout x cin times cin x tiles), run through OpenBLAS.
 * Thin convs take the fused path instead (winograd_fused.h), which on some shapes
 * uses F(4, 3) along h and w: 2 x 4 x 4 outputs per tile, 4.5 products per output.
 *
 * Numerics: in exact arithmetic the result equals the direct convolution. In
 * float32 it differs by rounding of the transforms (a few units of float32
 * rounding of sum |w| |x|, about 15 with F(4, 3); tests/test_winograd.c bounds
 * it), well below the float16 the target store keeps and the 1e-4 the cross-check
 * with PyTorch asks.
 *
 * Threads: a sample's tiles are cut into blocks of whole tile rows, each block
 * transformed, multiplied and written back by one thread with single-threaded
 * GEMMs; threads take blocks from a shared counter. Blocks do not depend on the
 * thread count, so neither does a bit of the result. */
#ifndef DK_WINOGRAD_H
#define DK_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/conv.h"
#include "distill/im2col.h"
#include "distill/workspace.h"

/* True when Winograd computes this conv: kernel 3, stride 1, pad 1 on every axis
 * (output dims = input dims), and one tile row's transformed inputs and products
 * (64 x (cin + cout) x ceil(w / 2) floats) within DK_CONV_TILE_FLOATS, the bound
 * of the GEMM engine's own scratch, so that no volume's width makes the workspace
 * grow without bound. Other convolutions stay on the GEMM engine. */
bool dk_winograd_fits(const dk_conv3d_geom *g, int cin, int cout, const int dims[3]);

/* Workspace floats a forward over dims[3] needs on `threads` threads with `tune`. */
size_t dk_winograd_workspace_floats(int cin, int cout, const int dims[3], int threads,
                                    const dk_conv_tuning *tune);

/* y = conv(x, w) (+ bias) for `batch` samples of x (batch, cin, dims) into y
 * (batch, cout, dims); y is overwritten, bias may be NULL. w is (cout, cin, 3, 3, 3),
 * or with flip_transpose (cin, cout, 3, 3, 3) with every tap mirrored (a stride-1
 * conv's backward data as a forward conv). tune->fused and tune->simd choose the
 * fused path (winograd_fused.h) or the blocked one. Runs on up to tune->max_threads
 * threads of ws's pool, fewer when ws holds too little for them; never allocates. */
void dk_winograd_forward(const float *x, int cin, const int dims[3], const float *w,
                         bool flip_transpose, const float *bias, float *y, int cout, int batch,
                         dk_workspace *ws, const dk_conv_tuning *tune);

#endif
