/* synth_anatomy.h: internal to the synthetic knee generator (synth_anatomy.c builds
 * the geometry of one subject and classifies points; synth_contrast.c renders).
 * Not a public API: only synth_*.c include it. */
#ifndef DK_SYNTH_ANATOMY_H
#define DK_SYNTH_ANATOMY_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/synth_knee.h"

/* Tissues with their own intensity; the label is decided alongside. */
typedef enum knee_tissue {
    TISSUE_FAT,
    TISSUE_MUSCLE,
    TISSUE_FLUID,
    TISSUE_MARROW,
    TISSUE_CORTEX, /* cortical bone and the subchondral plate: dark on every sequence */
    TISSUE_CARTILAGE,
    TISSUE_MENISCUS,
    TISSUE_LIGAMENT,
    TISSUE_BML, /* bone-marrow lesion: oedema-like marrow (label: the bone) */
    TISSUE_COUNT,
} knee_tissue;

/* Labels of the anatomy, before a class set maps them (knee_relabel): the ids of the
 * anatomy set (DK_KNEE_*, DK_KNEE_PATELLA, DK_KNEE_PATELLAR_CARTILAGE). */
#define KNEE_PATELLA DK_KNEE_PATELLA
#define KNEE_PATELLAR_CARTILAGE DK_KNEE_PATELLAR_CARTILAGE
#define KNEE_ANATOMY_COUNT DK_KNEE_ANATOMY_COUNT

/* Map anatomy labels in place to the ids of set (synth_classes.c). */
void knee_relabel(uint8_t *labels, size_t n, dk_knee_class_set set);

/* A focal cartilage defect: a disc of radius (soft edge of width edge) in which depth
 * of the thickness is missing; depth 1 denudes the bone. */
typedef struct knee_lesion {
    int on_tibia;     /* frame of centre: 0 femur, 1 tibia */
    float centre[3];  /* in that frame, model units */
    float radius, edge;
    float depth;
} knee_lesion;

/* A sphere (osteophyte, cyst) or ellipsoid (bone-marrow lesion) in a bone's frame. */
typedef struct knee_blob {
    int on_tibia;
    float centre[3];
    float radius[3]; /* model units */
} knee_blob;

typedef struct knee_capsule {
    float a[3], b[3]; /* tibia frame, model units */
    float radius;
} knee_capsule;

/* Everything needed to classify a point, derived once per subject. "Model units" are
 * millimetres of a nominal knee; the subject's scale maps them to world mm. */
typedef struct knee_model {
    float rot[9];      /* world (mirrored, centred) -> tibia frame, row-major */
    float centre[3];   /* joint centre, world mm, z y x */
    float mirror;      /* sign of u (+lateral) against z (+patient left): +1 left knee */
    float scale, inv_scale;
    /* tibia frame -> femur frame: p_f = Rflex^T (p_t - fem_origin) */
    float flex_c, flex_s;
    float fem_origin[3];
    /* femur, femur frame (u ML +lateral, v SI +inferior, w AP +posterior) */
    float cond_u[2], cond_r[2][3]; /* [0] medial, [1] lateral */
    float troch_c[3], troch_r[3];
    float shaft_c[3], shaft_h[3], shaft_round;
    /* tibia, tibia frame (origin at the centre of the plateau's top surface) */
    float plat_c[3], plat_h[3], plat_round;
    float meta_c[3], meta_h[3], meta_round;
    float spine_height, medial_dip, lateral_bulge;
    float cortex_mm;
    /* cartilage thickness fields (mm) */
    uint64_t fem_field_seed, tib_field_seed;
    float fem_mean, tib_mean[2], thick_amp;
    float keep[2]; /* thickness kept after diffuse thinning: medial, lateral */
    float gap_min_mm;
    knee_lesion lesions[DK_KNEE_MAX_LESIONS];
    int n_lesions;
    knee_blob osteophytes[DK_KNEE_MAX_OSTEOPHYTES];
    int n_osteophytes;
    knee_blob bml[DK_KNEE_MAX_MARROW_LESIONS], cysts[DK_KNEE_MAX_MARROW_LESIONS];
    int n_bml, n_cysts;
    /* menisci: elliptical rings over each compartment, tibia frame */
    float men_centre_w, men_a, men_c, men_height_mm[2];
    /* soft tissue */
    knee_capsule ligaments[3];
    float muscle_w, effusion;
    /* patella (synth_patella.c), femur frame: centre, local axes (e_u is the femur's u;
     * e_v runs along the trochlea towards inferior, e_w towards the femur), semi-axes */
    float pat_c[3], pat_ev[3], pat_ew[3], pat_r[3];
    float pat_mean, pat_keep[2], pat_film_mm; /* cartilage: mean, kept (medial, lateral) */
    uint64_t pat_field_seed;
    float tendon_a[3], tendon_b[3]; /* patellar tendon, tibia frame: pole -> tuberosity */
} knee_model;

/* What a point is. depth: for cartilage, 0 at the bone to 1 at the surface. */
typedef struct knee_point {
    knee_tissue tissue;
    uint8_t label;
    float depth;
} knee_point;

/* Marrow at tibia-frame point pt, given it is marrow: a cyst (fluid) or how much of a
 * bone-marrow lesion it is (0..1, an ill-defined margin shaped by n_low). */
void knee_marrow(const knee_model *m, const float pt[3], float n_low, knee_point *p, float *bml);

void knee_model_build(const dk_knee_subject *s, knee_model *m);

/* World mm (z y x, relative to the ROI centre) -> tibia frame, model units. */
static inline void knee_to_tibia(const knee_model *m, const float pw[3], float pt[3])
{
    float d0 = m->mirror * (pw[0] - m->centre[0]), d1 = pw[1] - m->centre[1],
          d2 = pw[2] - m->centre[2];
    const float *r = m->rot;
    pt[0] = (r[0] * d0 + r[1] * d1 + r[2] * d2) * m->inv_scale;
    pt[1] = (r[3] * d0 + r[4] * d1 + r[5] * d2) * m->inv_scale;
    pt[2] = (r[6] * d0 + r[7] * d1 + r[8] * d2) * m->inv_scale;
}

/* The smooth fields behind the classification at a point, world mm: signed distances
 * of the bones (negative inside) and the local cartilage thickness of each (0 off the
 * articular surfaces or farther than a few mm from the bone). All four are smooth, so
 * the renderer may sample them on a coarser grid and interpolate. */
typedef struct knee_fields {
    float d_femur, d_tibia;
    float t_femur, t_tibia;
    float e_femur, e_tibia; /* the thickness without focal defects: a defect is fluid */
} knee_fields;

void knee_fields_at(const knee_model *m, const float pt[3], knee_fields *f);

/* Classification of a tibia-frame point given its fields. n_low in [-1, 1] is the
 * low-frequency texture there (it shapes the muscle boundary). */
void knee_classify(const knee_model *m, const float pt[3], const knee_fields *f, float n_low,
                   knee_point *out);

/* Classification of a point known to be far from both bones' surfaces. */
void knee_classify_soft(const knee_model *m, const float pt[3], float n_low, knee_point *out);

/* Distances (world mm) from the femur and tibia beyond which knee_classify gives only
 * soft tissue: cartilage, fluid pockets and menisci all lie closer. */
void knee_surface_bands(const knee_model *m, float *femur_mm, float *tibia_mm);

/* ---- shared with synth_patella.c ---- */

/* The patella, its tendon and the patellofemoral fluid film: fills out and returns 1
 * when tibia-frame point pt is one of them (knee_classify_soft asks first), else 0. */
int knee_patella_at(const knee_model *m, const float pt[3], knee_point *out);

/* Place the patella on the built femur and tibia (the last step of knee_model_build). */
void knee_patella_build(knee_model *m, const dk_knee_subject *s);

void knee_to_femur(const knee_model *m, const float pt[3], float pf[3]);
void knee_from_femur(const knee_model *m, const float pf[3], float pt[3]);
/* Signed distance of the femur at femur-frame point pf, model units. */
float knee_femur_distance(const knee_model *m, const float pf[3]);
/* Intact femoral cartilage thickness (mm) over the femur point nearest pf: no defects. */
float knee_femur_intact_mm(const knee_model *m, const float pf[3]);
float knee_ellipsoid_distance(float x, float y, float z, const float r[3]);
float knee_value_noise(uint64_t seed, float x, float y, float z);
float knee_segment_distance(const float p[3], const float a[3], const float b[3]);

/* splitmix64 step: the generator behind every seeded draw here. */
uint64_t knee_rng_next(uint64_t *state);
double knee_rng_uniform(uint64_t *state, double lo, double hi);

#endif
