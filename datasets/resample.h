/* resample.h: axis-aligned voxel grids and resampling between them in physical space.
 *
 * A grid is dims, spacing and origin in (z, y, x) order. Voxel (k, j, i) has its
 * centre at origin + (k, j, i) * spacing, so a grid covers the box
 * [origin - spacing/2, origin + (dims - 1/2) * spacing] on every axis. Direction
 * cosines are not handled here: both grids must share the same orientation.
 *
 * Arrays are [z][y][x] (x fastest); multi-channel arrays are channels first, each
 * channel a contiguous [z][y][x] plane. All functions are separable per-axis passes;
 * they allocate their own scratch per call (a few planes, or two intermediate volumes). */
#ifndef DK_RESAMPLE_H
#define DK_RESAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/volume.h"
#include "distill/err.h"

typedef struct dk_grid {
    int dims[3];       /* z y x */
    double spacing[3]; /* mm */
    double origin[3];  /* mm, centre of voxel (0, 0, 0) */
} dk_grid;

/* The grid of a volume (dims, spacing, origin; direction ignored). */
dk_grid dk_grid_of_volume(const dk_volume *v);

/* Same physical extent, new spacing: dims = max(1, round(extent / spacing)) per axis,
 * the new grid centred on the old extent (so its own extent differs from the old one
 * by less than one new voxel). */
dk_grid dk_grid_respaced(const dk_grid *src, const double spacing[3]);

/* Number of voxels of a grid. */
size_t dk_grid_voxels(const dk_grid *g);

/* Trilinear interpolation at dst's voxel centres; positions outside src's voxel
 * centres are clamped to the border (edge values repeat). For images and for going
 * finer. in: channels x src voxels, out: channels x dst voxels. */
dk_status dk_resample_linear(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                             int channels, dk_err *err);

/* Partial-volume (box-overlap) averaging: each dst voxel is the mean of src weighted
 * by the exact overlap length per axis (separable). For going coarser; preserves
 * sum * voxel volume where dst lies inside src, and keeps probability maps summing
 * to one. Parts of a dst voxel outside src are ignored (weights renormalised); a dst
 * voxel with no overlap takes the nearest src value. */
dk_status dk_resample_area(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                           int channels, dk_err *err);

/* Per axis, area averaging where dst is coarser and linear interpolation where it is
 * as fine or finer: an image or a probability map (convex weights: probabilities
 * still sum to one) to another grid, as teacher precompute and `dualkd eval
 * --resample` move between a site's grid and the teacher's. */
dk_status dk_resample_image(const dk_grid *src, const float *in, const dk_grid *dst, float *out,
                            int channels, dk_err *err);

/* Label maps: majority = the class with the largest total overlap within each dst
 * voxel (ties to the lower class id); otherwise nearest neighbour at the dst voxel
 * centre (clamped). Every label must be < n_classes (<= DK_MAX_CLASSES when majority);
 * DK_EINVAL names the first offending voxel otherwise. */
dk_status dk_resample_labels(const dk_grid *src, const uint8_t *in, const dk_grid *dst,
                             uint8_t *out, int n_classes, bool majority, dk_err *err);

/* A 1D resampling operator along one axis, as sparse rows: dst voxel k is
 * sum over p in [start[k], start[k+1]) of weight[p] * src[index[p]].
 * Owns its arrays; release with dk_taps_release. */
typedef struct dk_taps {
    int n_src, n_dst;
    int *start;    /* n_dst + 1 */
    int *index;    /* start[n_dst] */
    float *weight; /* start[n_dst] */
    bool identity; /* n_src == n_dst and every row is one tap of weight 1 on itself */
} dk_taps;

/* Linear interpolation / box-overlap averaging from one axis of src to one of dst
 * (count, origin, spacing of each), with the same conventions as the functions above. */
dk_status dk_taps_linear(int n_src, double origin_src, double spacing_src, int n_dst,
                         double origin_dst, double spacing_dst, dk_taps *out, dk_err *err);
dk_status dk_taps_area(int n_src, double origin_src, double spacing_src, int n_dst,
                       double origin_dst, double spacing_dst, dk_taps *out, dk_err *err);
/* out = outer o inner (apply inner first): inner maps src -> mid, outer mid -> dst. */
dk_status dk_taps_compose(const dk_taps *outer, const dk_taps *inner, dk_taps *out, dk_err *err);
/* Allocate rows for n_dst outputs with room for n_taps taps (start zeroed). */
dk_status dk_taps_alloc(dk_taps *t, int n_src, int n_dst, size_t n_taps, dk_err *err);
void dk_taps_release(dk_taps *t);

/* Apply one operator per axis (taps[a].n_src == src_dims[a]) to each of channels
 * [z][y][x] planes; out holds channels x taps[0].n_dst x taps[1].n_dst x taps[2].n_dst.
 * Axes run in the order that shrinks the data fastest. */
dk_status dk_resample_separable(const int src_dims[3], const float *in, const dk_taps taps[3],
                                float *out, int channels, dk_err *err);

#endif
