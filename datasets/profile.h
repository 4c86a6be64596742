/* profile.h: site resolution profiles: the voxel grid, slice thickness, contrast,
 * noise and bias field of one acquisition protocol (docs/profiles.md).
 *
 * Three built-ins mirror real protocols (repository = OAI 3D DESS; two clinical
 * 2D protocols with thick slices); user profiles are JSON files, validated field
 * by field. Nothing here allocates except dk_profile_to_json. */
#ifndef DK_PROFILE_H
#define DK_PROFILE_H

#include "distill/err.h"

#define DK_OA_GRADES 5 /* Kellgren-Lawrence grades 0..4 */

typedef struct dk_profile {
    char name[64];
    double spacing[3];      /* mm, z y x: the profile's voxel grid */
    double slice_thickness; /* mm, along z (may exceed spacing[0]: gaps; or be less) */
    char contrast[16];      /* "dess", "pd-fs", "t1" */
    double noise;           /* Rician noise sigma as a fraction of the brightest tissue's mean */
    double bias;            /* smooth multiplicative bias-field strength, 0 = none, 0.2 = +-20 % */
    char student[64];       /* student architecture name for feature-tap shapes, "" = default */
    double oa_grades[DK_OA_GRADES]; /* the site's Kellgren-Lawrence grade mix (KL 0..4),
                                     * relative weights; all 0 = the generator's default */
    /* How a site's technologists plan each scan (synthetic generator; {0, 0} and 0 =
     * a fixed protocol field of view, no wrap-around): */
    double fov_scale[2];      /* in-plane field of view per scan, [lo, hi] x the box */
    double slice_coverage[2]; /* slice stack's medial-lateral coverage, [lo, hi] x the box */
    double wrap_probability;  /* share of scans with wrap-around along the phase axis */
    double wrap_mm[2];        /* width of anatomy folded in from beyond each edge, mm */
} dk_profile;

/* Fill out with the built-in profile called name: "repository" (0.7 x 0.36 x 0.36 mm,
 * DESS), "clinical-3.3mm" (3.3 x 0.31 x 0.31, slice 3.0, PD-fs), "clinical-4.5mm"
 * (4.5 x 0.30 x 0.30, slice 3.5, T1), each with its site's OA grade mix
 * (docs/profiles.md). DK_ENOTFOUND for any other name. */
dk_status dk_profile_builtin(const char *name, dk_profile *out, dk_err *err);

/* The built-ins, in a fixed order; dk_profile_builtin_name returns static storage,
 * NULL when i is out of range. */
int dk_profile_builtin_count(void);
const char *dk_profile_builtin_name(int i);

/* Parse and validate one profile from JSON text. origin_for_messages (a file name,
 * "request body", ...) starts every error message, followed by the field at fault.
 * Required: name, spacing [z,y,x] (> 0), contrast. Optional: slice_thickness
 * (default spacing[0]), noise (default 0), bias (default 0), student (default ""),
 * oa_grades (5 weights >= 0, not all 0; default all 0 = the generator's default mix),
 * fov_scale and slice_coverage ([lo, hi] within [0.5, 1.5]; default {0, 0} = fixed at
 * 1), wrap_probability (in [0, 1], default 0), wrap_mm ([lo, hi] within [0, 30], hi > 0
 * when wrap_probability > 0; default {0, 0}).
 * Unknown keys are rejected so typos are caught. DK_EFORMAT on any problem. */
dk_status dk_profile_from_json_text(const char *text, const char *origin_for_messages,
                                    dk_profile *out, dk_err *err);

/* A built-in name, or else the path of a JSON profile file. */
dk_status dk_profile_load(const char *name_or_path, dk_profile *out, dk_err *err);

/* The profile as a JSON object (all fields, pretty-printed, trailing newline) that
 * dk_profile_from_json_text reads back to an equal profile. Caller frees with free();
 * NULL only when out of memory. */
char *dk_profile_to_json(const dk_profile *p);

/* True when contrast is one of the known names ("dess", "pd-fs", "t1"). */
int dk_profile_contrast_known(const char *contrast);

#endif
