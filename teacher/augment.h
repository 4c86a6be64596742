/* augment.h: appearance and resolution augmentation of one extracted teacher patch,
 * so a teacher trained on one contrast and resolution (the repository's DESS at
 * 0.7 mm slices) still segments other contrasts (PD-fs, T1) and thick-slice scans
 * (issue #13): random gamma, per-label random intensities (SynthSeg-style domain
 * randomisation where the labels allow it), contrast inversion, and simulated thick
 * slices along z. The geometric part (flips, rotation, scale/shift) is patches.c.
 *
 * Each transform has a probability; its parameters are drawn by dk_appearance_draw
 * from the caller's dk_rng (nothing is drawn for a transform whose probability is 0,
 * so runs without them keep their random stream), and applied by dk_appearance_apply.
 * The label is read, never changed. */
#ifndef DK_TEACHER_AUGMENT_H
#define DK_TEACHER_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/volume.h"
#include "distill/rng.h"

/* Knots of the background's random intensity curve: "background" mixes fat, muscle,
 * fluid and more, which the labels do not tell apart, so its intensity quantiles stand
 * in for tissues (augment.c). */
#define DK_APPEARANCE_BG_KNOTS 3

typedef struct dk_appearance_config {
    float gamma_p;                 /* probability of a random gamma */
    float gamma_range[2];          /* gamma log-uniform in [lo, hi] */
    float label_intensity_p;       /* probability of per-label random intensities */
    float label_intensity_range;   /* new tissue levels drawn in +-this (z-score units) */
    float invert_p;                /* probability of a contrast inversion */
    float thick_slices_p;          /* probability of simulated thick slices along z */
    float thick_slices_max;        /* slab thickness factor in z voxels, U(1.5, max) */
} dk_appearance_config;

/* All probabilities 0: no appearance augmentation. */
dk_appearance_config dk_appearance_config_off(void);

/* Everything that decides one patch's appearance (drawn, or set by a test). */
typedef struct dk_appearance_params {
    float gamma; /* 0 = off */
    bool invert;
    bool label_intensity;
    float label_level[DK_MAX_CLASSES];            /* a foreground class's new median */
    float label_contrast[DK_MAX_CLASSES];         /* its texture's scale around it */
    float background_level[DK_APPEARANCE_BG_KNOTS]; /* the background curve's levels */
    float thick;       /* slab thickness = spacing, in z voxels; 0 = off */
    float thick_phase; /* first slab centre, in [0, thick) voxels */
} dk_appearance_params;

void dk_appearance_draw(const dk_appearance_config *c, int classes, dk_rng *rng,
                        dk_appearance_params *p);

/* Apply p to image (patch[0] x patch[1] x patch[2], x fastest) whose labels (same
 * shape, ids < classes) are label: per-label intensities, gamma, inversion (then the
 * patch's mean and sd are restored), then thick slices. Allocates a little scratch
 * (DK_ENOMEM). */
dk_status dk_appearance_apply(const dk_appearance_params *p, const int patch[3], int classes,
                              float *image, const uint8_t *label, dk_err *err);

/* The transforms one by one (for tests). Gamma on the range [min, max] of x: x is mapped
 * to [0, 1], raised to gamma and mapped back. */
void dk_augment_gamma(float *x, size_t n, float gamma);

/* Thick slices along z: each z-column is averaged over slabs of `thick` voxels
 * centred at phase + k * thick, k >= 0, every slab that overlaps the patch (box
 * overlap, parts outside the patch ignored), then linearly interpolated back at every
 * voxel (clamped beyond the first and last slab centres): what the teacher sees of a
 * thick-slice scan resampled to its grid. phase in [0, thick). */
dk_status dk_augment_thick_slices(float *image, const int patch[3], float thick, float phase,
                                  dk_err *err);

#endif
