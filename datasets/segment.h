/* segment.h: whole-volume inference with a U-Net by a sliding window: the
 * volume is covered by tiles of a fixed shape (overlapping by a chosen fraction,
 * the last tile of each axis flush with the end), each tile's softmax is weighted
 * by a Gaussian centred on the tile (nnU-Net's blending: a voxel near a tile's
 * border, where the network saw little context, counts less) or uniformly, and
 * the weighted mean per voxel is the volume's class probabilities. Where the volume
 * is smaller than a tile the tile is filled by edge replication (the rule of
 * teacher precompute: a z-scored background has no natural constant).
 *
 * The image is taken as given (normalise it first: dk_teacher_normalise's z-score
 * for networks trained here). Teacher validation, `dualkd eval` and student
 * validation share this code. */
#ifndef DK_SEGMENT_H
#define DK_SEGMENT_H

#include <stdint.h>

#include "datasets/volume.h"
#include "distill/unet.h"

typedef struct dk_segment_options {
    int tile[3];          /* z y x; multiples of the network's pooling products */
    int batch;            /* tiles per forward pass */
    float overlap;        /* in [0, 0.95): stride = tile * (1 - overlap) */
    float gaussian_sigma; /* sd of the tile weight as a fraction of the tile size
                           * (nnU-Net: 0.125); 0 = uniform weights */
} dk_segment_options;

/* tile from the caller, batch 1, overlap 0.5, gaussian_sigma 0.125. */
dk_segment_options dk_segment_options_default(const int tile[3]);

/* Class probabilities of image (dims z y x) into probs (classes x voxels, class
 * planes one after another). The network is planned for (batch, 1, tile) unless its
 * last plan is that shape already (so a trainer planned for its training batch
 * keeps its plan when it validates with the same shape). Only forward passes run. */
dk_status dk_segment_probs(dk_unet *net, const dk_segment_options *o, const float *image,
                           const int dims[3], float *probs, dk_err *err);

/* The arg-max class per voxel (ties go to the lower class) of the probabilities
 * above, into labels (voxels). */
dk_status dk_segment_labels(dk_unet *net, const dk_segment_options *o, const float *image,
                            const int dims[3], uint8_t *labels, dk_err *err);

/* The tile for a volume: o_tile clipped per axis to the volume's size rounded up to
 * a multiple of mult (a 16-slice volume needs no 32-slice tile). */
void dk_segment_fit_tile(const int tile[3], const int dims[3], const int mult[3], int out[3]);

#endif
