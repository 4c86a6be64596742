/* synth_knee.h: the synthetic knee-MR generator, dualkd's embedded default data
 * (docs/synthetic-knee.md).
 *
 * A subject is a seeded set of anatomical parameters (size, pose, flexion, side,
 * cartilage thickness, lesions). It is rendered on a fine grid (about 0.3 mm in-plane,
 * finer than the profile through-plane) as an ideal image of one contrast plus exact
 * labels, then acquired at a site profile (datasets/acquire.h: slice blur, partial
 * volume, bias field, Rician noise, majority labels).
 *
 * Array axes (z, y, x) = (medial-lateral, superior->inferior, anterior->posterior):
 * a z slice, drawn with y down the rows and x along the columns, is the classic
 * sagittal knee view (femur on top, anterior on the left). The region of interest is
 * a fixed box of DK_KNEE_ROI_MM around the femorotibial joint.
 *
 * Classes (OAI-ZIB): 0 background, 1 femur, 2 femoral cartilage, 3 tibia, 4 tibial
 * cartilage. Menisci, ligaments, fluid, fat and muscle have intensities but are
 * background. Nothing here keeps global state; all randomness derives from seeds. */
#ifndef DK_SYNTH_KNEE_H
#define DK_SYNTH_KNEE_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets/profile.h"
#include "datasets/resample.h"
#include "datasets/volume.h"
#include "distill/err.h"

enum {
    DK_KNEE_BACKGROUND = 0,
    DK_KNEE_FEMUR = 1,
    DK_KNEE_FEMORAL_CARTILAGE = 2,
    DK_KNEE_TIBIA = 3,
    DK_KNEE_TIBIAL_CARTILAGE = 4,
    DK_KNEE_CLASS_COUNT = 5,
};

/* Physical extent of the region of interest, mm, z y x (64 x 160 x 160 voxels at the
 * repository's 0.7 x 0.36 x 0.36 mm). */
#define DK_KNEE_ROI_Z 44.8
#define DK_KNEE_ROI_Y 57.6
#define DK_KNEE_ROI_X 57.6

#define DK_KNEE_MAX_LESIONS 3

/* The drawn parameters of one subject; everything else (texture, thickness field,
 * meniscus shape) derives from seed. Angles in degrees, lengths in mm. */
typedef struct dk_knee_subject {
    uint64_t seed;
    bool left;            /* a left knee: the anatomy is mirrored medial <-> lateral */
    double scale;         /* bone size factor, about 0.92..1.08 */
    double flexion;       /* femur relative to tibia, 0..25 */
    double varus;         /* whole knee about the anterior-posterior axis, -4..4 */
    double rotation;      /* whole knee about the superior-inferior axis, -6..6 */
    double tibial_slope;  /* posterior slope of the plateau, 3..10 */
    double shift[3];      /* joint centre offset from its nominal place in the ROI, z y x */
    double femoral_cartilage;  /* mean femoral cartilage thickness, 2.0..2.5 */
    double tibial_cartilage;   /* mean tibial cartilage thickness, 1.8..2.4 */
    double joint_gap;          /* fluid gap between the cartilages at contact, 0.5..1.1 */
    double effusion;           /* joint fluid amount, 0..1 */
    int n_lesions;             /* cartilage thinning lesions, 0..DK_KNEE_MAX_LESIONS */
} dk_knee_subject;

/* The class names (background, femur, femoral_cartilage, tibia, tibial_cartilage). */
void dk_knee_classes(dk_classes *out);

/* Draw subject number index of the generator seeded with seed: independent of every
 * other index, so datasets can be extended or regenerated volume by volume. */
void dk_knee_subject_draw(uint64_t seed, uint64_t index, dk_knee_subject *out);

/* The fine grid the anatomy is rendered on for a profile grid spacing (mm, z y x):
 * in-plane min(0.3, spacing), through-plane spacing[0] / ceil(spacing[0] / 0.35), with
 * the ROI's extent, centred on 0. */
dk_grid dk_knee_fine_grid(const double profile_spacing[3]);

/* Render subject s in contrast ("dess", "pd-fs", "t1") on grid: out gets image (ideal,
 * noise-free intensities with tissue texture, brightest tissue about 1) and labels.
 * out is filled afresh; caller releases it with dk_volume_release. id names it. */
dk_status dk_knee_render(const dk_knee_subject *s, const char *contrast, const dk_grid *grid,
                         const char *id, dk_volume *out, dk_err *err);

/* Render on the profile's fine grid and acquire at the profile (contrast overrides the
 * profile's when non-NULL). Labels are kept when with_label, else out->label is NULL.
 * out's direction is the anatomical one (RAS+), origin consistent with it. Caller
 * releases out with dk_volume_release. */
dk_status dk_knee_synth(const dk_knee_subject *s, const dk_profile *profile,
                        const char *contrast, bool with_label, const char *id, dk_volume *out,
                        dk_err *err);

#endif
