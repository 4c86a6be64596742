/* transfer.h: transfer samples as the student trains on them. A sample from a
 * target source (its input on the profile grid, the teacher's response targets,
 * uncertainty and one feature target) is laid out on the padded grid precompute
 * used for the student's tap: each dim padded up to a multiple of the store's
 * student_multiple, before = pad / 2, the input z-scored then edge-replicated,
 * the response 0 and the entropy +inf (never kept by a mask) in the padding.
 * Patches are cut at origins on multiples of the tap's pooling factor, so the
 * feature target's crop is the teacher's map at exactly the student tap's voxels. */
#ifndef DK_TRANSFER_H
#define DK_TRANSFER_H

#include <stdbool.h>

#include "distill/rng.h"
#include "student/target_source.h"

typedef struct dk_transfer_sample {
    int padded[3], before[3], grid[3];
    int classes;
    float *input;    /* padded voxels */
    float *response; /* classes x padded voxels */
    float *entropy;  /* padded voxels; INFINITY outside the grid */
    int feature_channels, feature_dims[3];
    float *features; /* feature_channels x feature_dims, or NULL */
} dk_transfer_sample;

typedef struct dk_transfer_spec {
    int multiple[3];     /* the store's student_multiple */
    int factor[3];       /* pooling factor from the input to the feature tap */
    char feature_kind[32]; /* "features/<layer>", or "" for none */
    bool response;         /* read response and uncertainty */
    float response_power;  /* response p <- p^power / sum (T: back from softmax(z/T) to T = 1;
                            * exact for one teacher pass, close for their mean); 1 = as stored */
} dk_transfer_spec;

/* Read and lay out sample i. Release with dk_transfer_release. */
dk_status dk_transfer_load(dk_target_source *src, int i, const dk_transfer_spec *spec,
                           dk_transfer_sample *s, dk_err *err);
void dk_transfer_release(dk_transfer_sample *s);

/* A patch origin (z y x) drawn uniformly among multiples of spec->factor that keep
 * the patch inside the padded grid (patch <= padded, checked by the caller). */
void dk_transfer_draw_origin(const dk_transfer_sample *s, const dk_transfer_spec *spec,
                             const int patch[3], dk_rng *rng, int origin[3]);

/* Cut the patch at origin: x (patch voxels), response (classes x patch voxels),
 * entropy (patch voxels), features (channels x patch / factor), each nullable. */
void dk_transfer_cut(const dk_transfer_sample *s, const dk_transfer_spec *spec,
                     const int patch[3], const int origin[3], float *x, float *response,
                     float *entropy, float *features);

#endif
