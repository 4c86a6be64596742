/* synth_knee.h: the synthetic knee-MR generator, dualkd's embedded default data
 * (docs/synthetic-knee.md).
 *
 * A subject is a seeded set of anatomical parameters (size, pose, flexion, side,
 * cartilage thickness, lesions). It is rendered on a fine grid (about 0.3 mm in-plane,
 * finer than the profile through-plane) as an ideal image of one contrast plus exact
 * labels, then acquired at a site profile (datasets/acquire.h: slice profile, partial
 * volume, bias field, Rician noise, majority labels) with the scan's own image quality
 * (synth_quality.c: motion ghosts, per-scan bias and noise).
 *
 * Array axes (z, y, x) = (medial-lateral, superior->inferior, anterior->posterior):
 * a z slice, drawn with y down the rows and x along the columns, is the classic
 * sagittal knee view (femur on top, anterior on the left). The field of view is a box
 * of DK_KNEE_ROI_* mm at a fixed protocol (the repository's), sized per scan at a
 * clinical profile (dk_knee_scan); the joint sits in it where the subject's shift puts
 * it, so parts of the bones may lie outside.
 *
 * Classes: a class set names what the label ids mean. OAI-ZIB (the default): 0
 * background, 1 femur, 2 femoral cartilage, 3 tibia, 4 tibial cartilage; the patella
 * and its cartilage are background. Cartilage (the original method's): 0 background,
 * 1 femoral, 2 tibial, 3 patellar cartilage; the bones are background. Anatomy (tests,
 * measurements): the OAI-ZIB ids, 5 patella, 6 patellar cartilage. Menisci, ligaments,
 * the patellar tendon, fluid, fat and muscle have intensities but are background in
 * every set. Nothing here keeps global state; all randomness derives from seeds. */
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

/* Which classes a rendered label volume names. */
typedef enum dk_knee_class_set {
    DK_KNEE_CLASSES_OAI_ZIB = 0, /* the ids above */
    DK_KNEE_CLASSES_CARTILAGE = 1, /* the ids below */
    DK_KNEE_CLASSES_ANATOMY = 2,   /* every structure: the OAI-ZIB ids, 5 patella,
                                    * 6 patellar cartilage (tests, measurements) */
} dk_knee_class_set;

enum {
    DK_KNEE_CART_FEMORAL = 1,
    DK_KNEE_CART_TIBIAL = 2,
    DK_KNEE_CART_PATELLAR = 3,
    DK_KNEE_CART_COUNT = 4,
    DK_KNEE_PATELLA = 5, /* the anatomy set's two more */
    DK_KNEE_PATELLAR_CARTILAGE = 6,
    DK_KNEE_ANATOMY_COUNT = 7,
};

/* Physical extent of the region of interest, mm, z y x (64 x 160 x 160 voxels at the
 * repository's 0.7 x 0.36 x 0.36 mm); a clinical scan's box is fov_scale times it. */
#define DK_KNEE_ROI_Z 44.8
#define DK_KNEE_ROI_Y 57.6
#define DK_KNEE_ROI_X 57.6

#define DK_KNEE_MAX_LESIONS 3
#define DK_KNEE_MAX_OSTEOPHYTES 6
#define DK_KNEE_MAX_MARROW_LESIONS 3 /* bone-marrow lesions and subchondral cysts, each */

/* The drawn parameters of one subject and of its scan; everything else (texture,
 * thickness field, shapes and places of lesions) derives from seed. Angles in degrees,
 * lengths in mm; ranges and their real-world basis in docs/synthetic-knee.md. */
typedef struct dk_knee_subject {
    uint64_t seed;
    bool left;            /* a left knee: the anatomy is mirrored medial <-> lateral */
    double scale;         /* bone size factor, 0.88..1.12 */
    double flexion;       /* femur relative to tibia, 0..30 */
    double varus;         /* whole knee about the anterior-posterior axis, -8..8 */
    double rotation;      /* whole knee about the superior-inferior axis, -15..15 */
    double tibial_slope;  /* posterior slope of the plateau, 0..12 */
    double shift[3];      /* joint centre offset from the field of view's centre, z y x:
                           * +-5, +-10, +-8 */
    int kl_grade;              /* Kellgren-Lawrence osteoarthritis grade, 0..4 */
    double femoral_cartilage;  /* mean intact femoral cartilage thickness, 2.0..2.5 */
    double tibial_cartilage;   /* mean intact tibial cartilage thickness, 1.8..2.4 */
    double thinning;           /* fraction of thickness lost diffusely (medial; lateral
                                * half of it), by grade, 0..0.6 */
    double joint_gap;          /* fluid gap between the cartilages at contact, 0.2..1.1 */
    double effusion;           /* joint fluid amount, 0..1.5 */
    int n_lesions;             /* focal cartilage defects, 0..DK_KNEE_MAX_LESIONS */
    double lesion_depth[2];    /* range of their depth (fraction of the thickness; 1 =
                                * full thickness, bone denuded) */
    double lesion_radius[2];   /* range of their radius, mm */
    int n_osteophytes;         /* at the femoral and tibial joint margins */
    double osteophyte_mm;      /* their largest radius, mm */
    int n_bml;                 /* subchondral bone-marrow lesions */
    int n_cysts;               /* subchondral cysts */
    /* the scan's image quality */
    double fat_sat_failure;    /* incomplete fat suppression: 0 none .. 0.6 */
    double ghosting;           /* motion ghost amplitude relative to the image, 0..0.15 */
    int phase_axis;            /* phase-encode axis of the scan: 1 (y) or 2 (x) */
    double bias_factor;        /* the profile's bias strength times this, 0.5..1.5 */
    double noise_factor;       /* the profile's noise times this, 0.7..1.4 */
    /* the patella (drawn after everything above, so adding it left those draws alone) */
    double patellar_height;    /* Insall-Salvati ratio (tendon / patella length), 0.76..1.28 */
    double patellar_cartilage; /* mean intact patellar cartilage thickness, 2.4..3.2 */
    /* not drawn: which classes the labels name (0 = OAI-ZIB); callers set it */
    dk_knee_class_set classes;
} dk_knee_subject;

/* The class names (background, femur, femoral_cartilage, tibia, tibial_cartilage). */
void dk_knee_classes(dk_classes *out);

/* The class names of set (count 5 for OAI-ZIB, 4 for cartilage, 7 for anatomy). */
void dk_knee_class_set_names(dk_knee_class_set set, dk_classes *out);

/* set from its name, "oai-zib", "cartilage" or "anatomy"; false (out untouched) for
 * any other. */
bool dk_knee_class_set_parse(const char *name, dk_knee_class_set *out);

/* Draw subject number index of the generator seeded with seed: independent of every
 * other index, so datasets can be extended or regenerated volume by volume. The KL
 * grade follows oa_grades (relative weights of KL 0..4, e.g. a profile's); NULL or all
 * 0 = the default mix (OAI-like, the repository profile's). */
void dk_knee_subject_draw_mix(uint64_t seed, uint64_t index, const double oa_grades[5],
                              dk_knee_subject *out);

/* dk_knee_subject_draw_mix with the default grade mix. */
void dk_knee_subject_draw(uint64_t seed, uint64_t index, dk_knee_subject *out);

/* Set the grade and every grade-dependent parameter of s as a draw at that grade
 * would (deterministic in s->seed and grade): for tests and figures. */
void dk_knee_subject_set_grade(dk_knee_subject *s, int kl_grade);

/* The fine grid the anatomy is rendered on for a profile grid spacing (mm, z y x):
 * in-plane min(0.3, spacing), through-plane spacing[0] / ceil(spacing[0] / 0.35), with
 * the ROI's extent, centred on 0. */
dk_grid dk_knee_fine_grid(const double profile_spacing[3]);

/* Render subject s in contrast ("dess", "pd-fs", "t1") on grid: out gets image (ideal,
 * noise-free intensities with tissue texture, brightest tissue about 1) and labels
 * (ids of the class set s->classes).
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

/* How one scan of a subject was planned: its field of view and wrap-around. */
typedef struct dk_knee_scan {
    double fov_scale[3]; /* scanned box / DK_KNEE_ROI_*, z y x (z: the slice coverage) */
    double wrap_mm;      /* anatomy beyond each phase-encode edge folded onto the opposite
                          * edge, mm; 0 = none */
    int phase_axis;      /* 1 (y) or 2 (x): the subject's phase_axis */
} dk_knee_scan;

/* The scan dk_knee_synth makes of s at profile: fov_scale, slice_coverage, wrap from
 * the profile's ranges (fixed at 1 and no wrap when unset), drawn from a stream of
 * s->seed of its own, so the subject's other draws stay as they were. */
void dk_knee_scan_draw(const dk_knee_subject *s, const dk_profile *profile, dk_knee_scan *out);

/* The fine grid of a scanned box fov_scale x the ROI (z y x): dk_knee_fine_grid's
 * spacing, centred on the ROI to within 2 voxels, on the same lattice of voxels as
 * dk_knee_fine_grid, so two fields of view of a subject agree wherever they overlap.
 * fov_scale NULL = 1 (= dk_knee_fine_grid). */
dk_grid dk_knee_fine_grid_fov(const double profile_spacing[3], const double fov_scale[3]);

/* dk_knee_synth with the scan given (dk_knee_synth draws it with dk_knee_scan_draw). */
dk_status dk_knee_synth_scan(const dk_knee_subject *s, const dk_knee_scan *scan,
                             const dk_profile *profile, const char *contrast, bool with_label,
                             const char *id, dk_volume *out, dk_err *err);

#endif
