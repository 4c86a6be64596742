/* synth_patella.c: the patella of a synthetic knee, its cartilage and its tendon.
 *
 * The bone is an ellipsoid (model units: about 40 mm high, 40-45 wide, 20-25 thick)
 * cut at the back by the femur's surface offset by the femoral cartilage, a fluid film
 * and the patellar cartilage: its articular face is congruent with the trochlea, so
 * its central ridge lies in the trochlear groove. The cartilage covers that face only,
 * tapering to 0 at the rims and over the non-articular inferior pole.
 *
 * Placement (femur frame): the patella slides along the front of the femur, keeping
 * its distance from it, until its tendon (Insall-Salvati ratio x the patella's length)
 * reaches the tibial tuberosity. So patellar height varies per subject, and with
 * flexion the tuberosity swings back and pulls the patella down into the trochlea. */
#include <math.h>
#include <string.h>

#include "datasets/synth_anatomy.h"

#define PAT_THICKNESS_MIN_MM   1.5f
#define PAT_THICKNESS_MAX_MM   4.5f
#define PAT_FIELD_AMP_MM       0.6f  /* the thickness field's swing around its mean */
#define PAT_LATTICE            10.0f /* model units between the field's lattice points */
#define FEMUR_CARTILAGE_MAX_MM 3.0f  /* synth_anatomy.c's THICKNESS_MAX_MM */
/* the face cuts the ellipsoid this far behind its centre (x the anterior semi-axis) */
#define PAT_CUT           0.45f
#define TENDON_HALF_WIDTH 12.0f  /* model units: the tendon is a band 24 wide ... */
#define TENDON_HALF_THICK 2.2f   /* ... and 4.4 thick */
#define CENTRE_V_MIN      -65.0f /* the centre's range along the femur (v, femur frame) */
#define CENTRE_V_MAX      6.0f

static float smooth01(float x)
{
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    return x * x * (3 - 2 * x);
}

/* Patella-local coordinates (model units) of femur-frame point pf: u, along e_v, along
 * e_w (both in the v-w plane). */
static void to_local(const knee_model *m, const float pf[3], float l[3])
{
    float q1 = pf[1] - m->pat_c[1], q2 = pf[2] - m->pat_c[2];
    l[0] = pf[0] - m->pat_c[0];
    l[1] = q1 * m->pat_ev[1] + q2 * m->pat_ev[2];
    l[2] = q1 * m->pat_ew[1] + q2 * m->pat_ew[2];
}

/* Intact patellar cartilage thickness (mm) over local point l. */
static float patellar_thickness(const knee_model *m, const float l[3])
{
    float ru = l[0] / m->pat_r[0], rv = l[1] / m->pat_r[1];
    float rho = sqrtf(ru * ru + rv * rv);
    /* 0 at the rim and over the inferior pole (the tendon's attachment) */
    float taper = smooth01((0.92f - rho) / 0.3f) * smooth01((0.6f - rv) / 0.25f);
    if (taper <= 0) return 0;
    float lateral = smooth01((l[0] + 4) / 8);
    float keep = (1 - lateral) * m->pat_keep[0] + lateral * m->pat_keep[1];
    const float s = 1.0f / PAT_LATTICE;
    float t =
        m->pat_mean + PAT_FIELD_AMP_MM * knee_value_noise(m->pat_field_seed, l[0] * s, l[1] * s, 0);
    t = t < PAT_THICKNESS_MIN_MM   ? PAT_THICKNESS_MIN_MM
        : t > PAT_THICKNESS_MAX_MM ? PAT_THICKNESS_MAX_MM
                                   : t;
    return keep * t * taper;
}

static int patella_body(const knee_model *m, const float pf[3], const float l[3], knee_point *out)
{
    float e = knee_ellipsoid_distance(l[0], l[1], l[2], m->pat_r);
    if (e >= 0) return 0;
    out->depth = 0;
    out->label = KNEE_PATELLA;
    if (l[2] < 0) { /* in front of the centre: farther from the femur than the face */
        out->tissue = -e * m->scale < m->cortex_mm ? TISSUE_CORTEX : TISSUE_MARROW;
        return 1;
    }
    float d = knee_femur_distance(m, pf) * m->scale, t = patellar_thickness(m, l);
    float film = m->pat_film_mm;
    /* s: distance beyond the intact femoral cartilage (which is never thicker than its
     * maximum, so far points need not look it up) */
    float s = d < FEMUR_CARTILAGE_MAX_MM + film + t ? d - knee_femur_intact_mm(m, pf) : d;
    if (s < film) {
        out->label = DK_KNEE_BACKGROUND;
        out->tissue = TISSUE_FLUID;
        return 1;
    }
    if (s < film + t) {
        out->tissue = TISSUE_CARTILAGE;
        out->label = KNEE_PATELLAR_CARTILAGE;
        out->depth = (film + t - s) / t;
        return 1;
    }
    float bone_depth = fminf(-e * m->scale, s - film - t);
    out->tissue = bone_depth < m->cortex_mm ? TISSUE_CORTEX : TISSUE_MARROW;
    return 1;
}

/* The patellar tendon: a flat band from the inferior pole to the tuberosity. */
static int in_tendon(const knee_model *m, const float pt[3], knee_point *out)
{
    if (fabsf(pt[0] - m->tendon_b[0]) > TENDON_HALF_WIDTH) return 0;
    float p[3] = {0, pt[1], pt[2]}, a[3] = {0, m->tendon_a[1], m->tendon_a[2]},
          b[3] = {0, m->tendon_b[1], m->tendon_b[2]};
    if (knee_segment_distance(p, a, b) > TENDON_HALF_THICK) return 0;
    out->tissue = TISSUE_LIGAMENT;
    out->label = DK_KNEE_BACKGROUND;
    out->depth = 0;
    return 1;
}

int knee_patella_at(const knee_model *m, const float pt[3], knee_point *out)
{
    if (m->pat_r[0] <= 0) return 0;
    float pf[3], l[3];
    knee_to_femur(m, pt, pf);
    to_local(m, pf, l);
    const float *r = m->pat_r;
    if (fabsf(l[0]) < r[0] && fabsf(l[1]) < r[1] && fabsf(l[2]) < r[2] &&
        patella_body(m, pf, l, out))
        return 1;
    return in_tendon(m, pt, out);
}

/* ---- placement ---- */

/* The patella's centre at height v (femur frame, midline): in front of the femur at
 * distance centre_mm from it, found by bisection along w; and its axes from the
 * femur's distance gradient there. */
static void centre_at(knee_model *m, float v, float centre_mm)
{
    float lo = -90, hi = -9; /* d(lo) > centre_mm > d(hi): hi lies in the trochlea */
    for (int it = 0; it < 30; it++) {
        float mid = 0.5f * (lo + hi), p[3] = {0, v, mid};
        if (knee_femur_distance(m, p) * m->scale > centre_mm)
            lo = mid;
        else
            hi = mid;
    }
    float c[3] = {0, v, 0.5f * (lo + hi)}, h = 0.5f;
    float pv0[3] = {0, v - h, c[2]}, pv1[3] = {0, v + h, c[2]};
    float pw0[3] = {0, v, c[2] - h}, pw1[3] = {0, v, c[2] + h};
    float gv = knee_femur_distance(m, pv1) - knee_femur_distance(m, pv0);
    float gw = knee_femur_distance(m, pw1) - knee_femur_distance(m, pw0);
    float len = sqrtf(gv * gv + gw * gw);
    float nv = len > 0 ? gv / len : 0, nw = len > 0 ? gw / len : -1; /* away from the femur */
    memcpy(m->pat_c, c, sizeof c);
    m->pat_ew[0] = 0, m->pat_ew[1] = -nv, m->pat_ew[2] = -nw;
    m->pat_ev[0] = 0, m->pat_ev[1] = -nw, m->pat_ev[2] = nv;
}

/* Distance (model units) from the inferior pole to tuberosity t (tibia frame) with the
 * centre at height v; the pole (tibia frame) goes to pole. */
static float tendon_span(knee_model *m, float v, float centre_mm, const float t[3], float pole[3])
{
    centre_at(m, v, centre_mm);
    float pf[3];
    for (int a = 0; a < 3; a++)
        pf[a] = m->pat_c[a] + m->pat_r[1] * m->pat_ev[a];
    knee_from_femur(m, pf, pole);
    float d2 = 0;
    for (int a = 0; a < 3; a++)
        d2 += (pole[a] - t[a]) * (pole[a] - t[a]);
    return sqrtf(d2);
}

static void place_patella(knee_model *m, double insall_salvati)
{
    /* the tuberosity: just in front of the tibia, about 22 mm below the plateau */
    const float tub[3] = {0, 22, m->plat_c[2] - m->plat_h[2] - 3};
    float tendon = (float)insall_salvati * 2 * m->pat_r[1];
    float centre_mm = FEMUR_CARTILAGE_MAX_MM * 0.8f + m->pat_film_mm + m->pat_mean +
                      PAT_CUT * m->pat_r[2] * m->scale;
    float lo = CENTRE_V_MIN, hi = CENTRE_V_MAX, pole[3];
    /* the span shrinks as the patella moves down; past either end it stays there */
    for (int it = 0; it < 30; it++) {
        float mid = 0.5f * (lo + hi);
        if (tendon_span(m, mid, centre_mm, tub, pole) > tendon)
            lo = mid;
        else
            hi = mid;
    }
    tendon_span(m, 0.5f * (lo + hi), centre_mm, tub, pole);
    memcpy(m->tendon_a, pole, sizeof pole);
    memcpy(m->tendon_b, tub, sizeof tub);
}

void knee_patella_build(knee_model *m, const dk_knee_subject *s)
{
    uint64_t st = s->seed ^ 0xA54FF53A5F1D36F1ULL;          /* its own stream: other draws stay */
    m->pat_r[0] = (float)knee_rng_uniform(&st, 20, 22.5);   /* width 40-45 */
    m->pat_r[1] = (float)knee_rng_uniform(&st, 18.5, 21.5); /* height 37-43 */
    /* anterior semi-axis: with the part behind the centre, 20-25 thick */
    m->pat_r[2] = (float)knee_rng_uniform(&st, 20, 25) / (1 + PAT_CUT);
    m->pat_field_seed = knee_rng_next(&st);
    m->pat_mean = (float)(s->patellar_cartilage > 0 ? s->patellar_cartilage : 2.8);
    m->pat_keep[0] = m->keep[0];
    m->pat_keep[1] = m->keep[1];
    m->pat_film_mm = 0.3f + 0.4f * m->effusion;
    place_patella(m, s->patellar_height > 0 ? s->patellar_height : 1.0);
}
