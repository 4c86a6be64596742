/* im2col.h: private to distill/conv*.c and tests/test_conv.c -- the tile
 * geometry of the convolution engine and its gather/scatter kernels.
 *
 * Everything is in conv semantics (x: cin channels at in[], y: cout channels at
 * out[], weight (cout, cin, kd, kh, kw)); the transposed conv reuses it with the
 * roles swapped. A "column tile" is the GEMM operand A for a range of output
 * voxels, stored column-major (voxel fastest, one column per kernel tap).
 *
 * Folding: when the w axis has stride 1 and a kernel wider than 1, the kw taps are
 * moved from the GEMM's K into its N (the GEMM computes, for every input column,
 * the partial sums of all kw taps; combine_folded adds the kw shifted slabs). This
 * turns the thin 16-output-channel GEMM (N = 16, K = 432) into a balanced one
 * (N = 48, K = 144), about twice as fast in OpenBLAS, and shrinks the gather 3x.
 * Folding h as well (N = 144, K = 48) gathers whole planes. */
#ifndef DK_IM2COL_H
#define DK_IM2COL_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/conv.h"

typedef enum dk_col_mode {
    DK_COL_DIRECT, /* 1x1x1, stride 1, pad 0: the input itself is the column matrix */
    DK_COL_FULL,   /* classic im2col: one column per (ci, kd, kh, kw) */
    DK_COL_FOLDED, /* one column per (ci, kd, kh); kw folded into the GEMM's N */
} dk_col_mode;

typedef struct dk_conv_shape {
    dk_conv3d_geom g;
    int cin, cout;
    int in[3], out[3];
    dk_col_mode mode;
    int fold_axes; /* 0, 1 (w folded) or 2 (h and w folded) */
    int fold_taps; /* taps moved into the GEMM's N: 1, kw or kh * kw */
    size_t in_spatial, out_spatial;
    int taps;     /* kd * kh * kw */
    int col_k;    /* GEMM K: columns of a column tile */
    int col_n;    /* GEMM N: cout * fold_taps */
    int unit_len; /* tile rows per unit: in[2] (w folded), in[1]*in[2] (hw), else 1 */
    size_t units; /* output rows (w folded), output planes (hw), else output voxels */
} dk_conv_shape;

/* Fill s for a conv (not transposed) of these channels and input dims; out dims
 * must be valid (dk_conv3d_out_dims). fold_axes: 0 none, 1 fold w, 2 fold h and w
 * (reduced to what the geometry allows: folded axes need stride 1). */
void dk_conv_shape_init(dk_conv_shape *s, const dk_conv3d_geom *g, int cin, int cout,
                        const int in[3], const int out[3], int fold_axes);

/* Rows of the column tile (GEMM M) for units [u0, u1). */
size_t dk_conv_tile_rows(const dk_conv_shape *s, size_t u0, size_t u1);

/* Gather the column tile of units [u0, u1) from one sample x (cin planes) into col
 * (col_k columns of `rows` floats, rows = dk_conv_tile_rows). Not for DIRECT. */
void dk_im2col_tile(const dk_conv_shape *s, const float *x, size_t u0, size_t u1, float *col);

/* True when the kernel taps partition the input exactly (kernel == stride, no
 * pad, no remainder): every input voxel then gets exactly one column entry. */
bool dk_col2im_tiles_partition(const dk_conv_shape *s);

/* Inverse of a FULL gather restricted to input channels [c0, c1): dx[c] += the
 * column entries of units [u0, u1); dcol holds only those channels' columns.
 * When the taps partition the input, entries are stored, not added (dx need not
 * be zeroed first), plus bias[c] when bias is not NULL (the transposed conv's
 * bias, added in the same pass); otherwise bias is ignored. */
void dk_col2im_tile(const dk_conv_shape *s, const float *dcol, size_t u0, size_t u1, int c0, int c1,
                    const float *bias, float *dx);

/* FOLDED forward: y (cout planes of one sample) over units [u0, u1) = bias + sum
 * over kw of the shifted slabs of z (col_n columns of `rows` floats). */
void dk_combine_folded(const dk_conv_shape *s, const float *z, size_t u0, size_t u1,
                       const float *bias, float *y);

/* FOLDED weight gradient: g (col_n columns of `rows`) = dy shifted by each kw,
 * zero where the shift leaves the output row. */
void dk_expand_dy_folded(const dk_conv_shape *s, const float *dy, size_t u0, size_t u1, float *g);

/* Pack the GEMM operand B (col_k x col_n, column-major) from the conv weight.
 * flip_transpose: w is the weight of the conv this one is the adjoint of, i.e.
 * (cin, cout, k...) with every tap mirrored (backward data as a forward conv). */
void dk_pack_weight(const dk_conv_shape *s, const float *w, bool flip_transpose, float *b);

/* y[c][v0..v1) += bias[c] for c in [0, channels), planes of `spatial` floats. */
void dk_add_bias_tile(const float *bias, int channels, size_t spatial, size_t v0, size_t v1,
                      float *y);

/* y[i] += z[i] for i < n (y and z do not overlap). */
void dk_add_floats(float *y, const float *z, size_t n);

/* Sum of x[0..n) in double, the same on every call (vectorised by lanes). */
double dk_sum_floats(const float *x, size_t n);

/* dw (cout, cin, k...) += the unpacked col_k x col_n gradient accumulator acc. */
void dk_unpack_weight_grad(const dk_conv_shape *s, const float *acc, float *dw);

/* Tuning of the engine; the public functions use dk_conv_default_tuning(). Tests
 * force tiny tiles to cross tile boundaries. */
typedef struct dk_conv_tuning {
    size_t tile_rows; /* GEMM rows (voxels) per tile, about; whole units */
    int max_threads;  /* 0: dk_blas_threads() */
    int fold;         /* -1: when it pays (auto), 0: never, 1: whenever possible */
    int winograd;     /* 3x3x3 stride-1 pad-1 convs as Winograd F(2,3) (winograd.h):
                         -1: when it pays (auto), 0: never, 1: whenever it fits */
    int fused;        /* Winograd's fused path for thin convs (winograd_fused.h): -1: when
                         it pays (auto), 0: never, 1: whenever the CPU runs it */
    int simd;         /* the fused path's instruction set: 0 the CPU's best, else the
                         dk_simd to use (tests compare them) */
    int tile;         /* the fused path's tile along h and w (winograd_fused.h): 0 where
                         it measured fastest (winograd.c), else 2 or 4 */
} dk_conv_tuning;

dk_conv_tuning dk_conv_default_tuning(void);

/* dk_conv3d_workspace_floats for a given tuning. */
size_t dk_conv3d_workspace_floats_tuned(const dk_conv3d_geom *g, bool transposed, int cin, int cout,
                                        const int in[3], const dk_conv_tuning *tune);

/* The engine behind conv.h, with explicit tuning. Same contracts as conv.h.
 * The workspace must hold dk_conv3d_workspace_floats(); fewer threads are used
 * when it holds too little for all of them. */
void dk_conv3d_forward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                             const dk_tensor *bias, dk_tensor *y, dk_workspace *ws,
                             const dk_conv_tuning *tune);
void dk_conv3d_backward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                              const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight,
                              dk_tensor *dbias, dk_workspace *ws, const dk_conv_tuning *tune);
void dk_convt3d_forward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                              const dk_tensor *bias, dk_tensor *y, dk_workspace *ws,
                              const dk_conv_tuning *tune);
void dk_convt3d_backward_tuned(const dk_conv3d_geom *g, const dk_tensor *x, const dk_tensor *weight,
                               const dk_tensor *dy, dk_tensor *dx, dk_tensor *dweight,
                               dk_tensor *dbias, dk_workspace *ws, const dk_conv_tuning *tune);

/* The backward passes one at a time (for benchmarks): dx overwritten, dweight +=. */
void dk_conv3d_backward_data_tuned(const dk_conv3d_geom *g, const dk_tensor *weight,
                                   const dk_tensor *dy, dk_tensor *dx, dk_workspace *ws,
                                   const dk_conv_tuning *tune);
void dk_conv3d_backward_weight_tuned(const dk_conv3d_geom *g, const dk_tensor *x,
                                     const dk_tensor *dy, dk_tensor *dweight, dk_workspace *ws,
                                     const dk_conv_tuning *tune);
void dk_convt3d_backward_data_tuned(const dk_conv3d_geom *g, const dk_tensor *weight,
                                    const dk_tensor *dy, dk_tensor *dx, dk_workspace *ws,
                                    const dk_conv_tuning *tune);
void dk_convt3d_backward_weight_tuned(const dk_conv3d_geom *g, const dk_tensor *x,
                                      const dk_tensor *dy, dk_tensor *dweight, dk_workspace *ws,
                                      const dk_conv_tuning *tune);

#endif
