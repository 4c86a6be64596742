/* patches.h: training patches for the teacher: foreground-biased sampling from
 * labelled volumes and augmentation (in-plane flips, in-plane rotation,
 * intensity scale/shift), applied to image and label through one coordinate map
 * so they stay aligned. All randomness comes from the caller's dk_rng, so a run
 * is reproducible from its seed and resumable from a saved RNG state. */
#ifndef DK_TEACHER_PATCHES_H
#define DK_TEACHER_PATCHES_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets/volume.h"
#include "distill/rng.h"
#include "teacher/augment.h"

typedef struct dk_augment_config {
    float flip[3];         /* probability of a flip along z, y, x (y and x are in-plane) */
    float rotate_degrees;  /* in-plane rotation drawn uniformly in +-this */
    float intensity_scale; /* image * U(1 - s, 1 + s) */
    float intensity_shift; /* + U(-t, t) (in units of the normalised image) */
    dk_appearance_config appearance; /* gamma, per-label intensities, inversion, thick
                                      * slices (augment.h), applied after extraction */
} dk_augment_config;

/* One labelled volume ready for sampling. Owns image, label and the index. */
typedef struct dk_patch_source {
    int dims[3];
    double spacing[3];
    float *image; /* normalised */
    uint8_t *label;
    uint32_t *class_voxels;               /* indices of foreground voxels, grouped by class */
    long class_start[DK_MAX_CLASSES + 1]; /* class c's voxels: [class_start[c], class_start[c+1]) */
    int classes;
} dk_patch_source;

/* Take ownership of v's image and label (v is left empty) and index its foreground
 * voxels. v must have a label with ids < classes. */
dk_status dk_patch_source_init(dk_patch_source *s, dk_volume *v, int classes, dk_err *err);
void dk_patch_source_release(dk_patch_source *s);

/* Everything that decides one patch (drawn by dk_patch_draw, or set by a test). */
typedef struct dk_patch_params {
    int volume;      /* index into the sources */
    int centre[3];   /* voxel of the source at the patch centre */
    bool foreground; /* centred on a foreground voxel */
    bool flip[3];
    float angle;        /* in-plane rotation, radians */
    float scale, shift; /* intensity */
    dk_appearance_params appearance; /* for dk_appearance_apply after the extraction */
} dk_patch_params;

/* Draw the parameters of one patch: with probability foreground_fraction centred on
 * a random voxel of a random foreground class present in the volume, otherwise on
 * a uniform position that keeps the patch inside the volume (when it fits). */
void dk_patch_draw(const dk_patch_source *sources, int count, const int patch[3],
                   float foreground_fraction, const dk_augment_config *aug, dk_rng *rng,
                   dk_patch_params *p);

/* Extract the patch (patch[0]*patch[1]*patch[2] voxels, x fastest) described by p:
 * output voxel o maps to source position centre + R(angle) * F(o - patch/2), in
 * millimetres in-plane; the image is interpolated bilinearly, the label by nearest
 * neighbour; outside the volume the image is 0 (the mean) and the label 0. */
void dk_patch_extract(const dk_patch_source *s, const int patch[3], const dk_patch_params *p,
                      float *image, uint8_t *label);

#endif
