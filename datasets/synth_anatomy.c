/* synth_anatomy.c: the geometry of a synthetic knee: drawing a subject, building its
 * bones as implicit surfaces (signed distances), cartilage as a distance-field layer of
 * smoothly varying thickness on the articular surfaces only, menisci, joint fluid,
 * cruciate ligaments and the surrounding fat and muscle. The patella lives in
 * synth_patella.c, class sets in synth_classes.c, intensities in synth_contrast.c.
 * Units: "model units" are mm of a nominal knee (see synth_anatomy.h). */
#include "datasets/synth_anatomy.h"

#include <math.h>
#include <string.h>

/* Nominal knee: bones at 85 % of an average adult's, so the 57.6 mm ROI holds the
 * joint with a rim of soft tissue; per-subject scale varies around it. */
#define NOMINAL_SCALE 0.85
#define THICKNESS_MIN_MM 1.5f
#define THICKNESS_MAX_MM 3.0f
#define THICKNESS_LATTICE 12.0f /* model units between thickness-field lattice points */
#define PI_F 3.14159265f
#define TROCHLEAR_GROOVE 4.0f /* depth of the trochlear groove, model units */

uint64_t knee_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double knee_rng_uniform(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(knee_rng_next(state) >> 11) * 0x1.0p-53);
}

/* Per Kellgren-Lawrence grade, the ranges of the grade-dependent draws (the basis of
 * each is in docs/synthetic-knee.md; most are estimates from grading atlases). */
typedef struct grade_ranges {
    double thinning[2], gap[2], effusion_max;
    int lesions[2];
    double depth[2], radius_mm[2];
    int osteophytes[2];
    double osteophyte_mm[2];
    int bml[2], cysts[2];
} grade_ranges;

static const grade_ranges grade_table[DK_OA_GRADES] = {
    /* KL0: normal */
    {{0, 0}, {0.5, 1.1}, 0.6, {0, 1}, {0.2, 0.5}, {2, 4}, {0, 0}, {0, 0}, {0, 1}, {0, 0}},
    /* KL1: doubtful narrowing, possible osteophytic lipping */
    {{0, 0.05}, {0.4, 1.0}, 0.8, {0, 2}, {0.3, 0.7}, {2, 5}, {0, 2}, {1, 2}, {0, 1}, {0, 0}},
    /* KL2: definite osteophytes, possible narrowing */
    {{0.05, 0.15}, {0.3, 0.9}, 1.0, {1, 3}, {0.4, 1.0}, {2, 6}, {1, 4}, {2, 4}, {0, 2}, {0, 1}},
    /* KL3: multiple osteophytes, definite narrowing */
    {{0.15, 0.30}, {0.2, 0.7}, 1.2, {1, 3}, {0.7, 1.0}, {3, 8}, {2, 6}, {3, 6}, {1, 3}, {0, 2}},
    /* KL4: large osteophytes, marked narrowing */
    {{0.30, 0.60}, {0.2, 0.5}, 1.5, {2, 3}, {0.9, 1.0}, {5, 12}, {3, 6}, {4, 8}, {1, 3}, {0, 3}},
};

/* OAI-like: the repository profile's mix (docs/profiles.md). */
static const double default_grades[DK_OA_GRADES] = {0.40, 0.18, 0.26, 0.13, 0.03};

static int uniform_count(uint64_t *st, const int range[2])
{
    return range[0] + (int)(knee_rng_next(st) % (uint64_t)(range[1] - range[0] + 1));
}

void dk_knee_subject_set_grade(dk_knee_subject *s, int kl_grade)
{
    int g = kl_grade < 0 ? 0 : kl_grade > 4 ? 4 : kl_grade;
    const grade_ranges *r = &grade_table[g];
    uint64_t st = s->seed ^ 0x510E527FADE682D1ULL;
    s->kl_grade = g;
    s->thinning = knee_rng_uniform(&st, r->thinning[0], r->thinning[1]);
    s->joint_gap = knee_rng_uniform(&st, r->gap[0], r->gap[1]);
    s->effusion = knee_rng_uniform(&st, 0, r->effusion_max);
    s->n_lesions = uniform_count(&st, r->lesions);
    s->lesion_depth[0] = r->depth[0], s->lesion_depth[1] = r->depth[1];
    s->lesion_radius[0] = r->radius_mm[0], s->lesion_radius[1] = r->radius_mm[1];
    s->n_osteophytes = uniform_count(&st, r->osteophytes);
    s->osteophyte_mm = knee_rng_uniform(&st, r->osteophyte_mm[0], r->osteophyte_mm[1]);
    s->n_bml = uniform_count(&st, r->bml);
    s->n_cysts = uniform_count(&st, r->cysts);
}

static int draw_grade(uint64_t *st, const double weights[DK_OA_GRADES])
{
    double total = 0;
    for (int g = 0; g < DK_OA_GRADES; g++) total += weights[g] > 0 ? weights[g] : 0;
    if (!(total > 0)) weights = default_grades, total = 1;
    double u = knee_rng_uniform(st, 0, total);
    for (int g = 0; g < DK_OA_GRADES - 1; g++) {
        u -= weights[g] > 0 ? weights[g] : 0;
        if (u < 0) return g;
    }
    return DK_OA_GRADES - 1;
}

void dk_knee_subject_draw_mix(uint64_t seed, uint64_t index, const double oa_grades[5],
                              dk_knee_subject *s)
{
    uint64_t st = seed * 0xD1B54A32D192ED03ULL ^ (index + 1) * 0x8CB92BA72F3D8DD7ULL;
    memset(s, 0, sizeof *s);
    s->seed = knee_rng_next(&st);
    s->left = knee_rng_next(&st) & 1;
    s->scale = knee_rng_uniform(&st, 0.88, 1.12);
    s->flexion = knee_rng_uniform(&st, 0, 30);
    s->varus = knee_rng_uniform(&st, -8, 8);
    s->rotation = knee_rng_uniform(&st, -15, 15);
    s->tibial_slope = knee_rng_uniform(&st, 0, 12);
    s->shift[0] = knee_rng_uniform(&st, -5, 5);
    s->shift[1] = knee_rng_uniform(&st, -10, 10);
    s->shift[2] = knee_rng_uniform(&st, -8, 8);
    s->femoral_cartilage = knee_rng_uniform(&st, 2.0, 2.5);
    s->tibial_cartilage = knee_rng_uniform(&st, 1.8, 2.4);
    int grade = draw_grade(&st, oa_grades ? oa_grades : default_grades);
    /* most scans are good: quality problems drawn with a skew towards none */
    double u = knee_rng_uniform(&st, 0, 1);
    s->fat_sat_failure = 0.6 * u * u;
    u = knee_rng_uniform(&st, 0, 1);
    s->ghosting = 0.15 * u * u * u;
    s->phase_axis = 1 + (int)(knee_rng_next(&st) & 1);
    s->bias_factor = knee_rng_uniform(&st, 0.5, 1.5);
    s->noise_factor = knee_rng_uniform(&st, 0.7, 1.4);
    s->patellar_height = knee_rng_uniform(&st, 0.76, 1.28);
    s->patellar_cartilage = knee_rng_uniform(&st, 2.4, 3.2);
    dk_knee_subject_set_grade(s, grade);
}

void dk_knee_subject_draw(uint64_t seed, uint64_t index, dk_knee_subject *s)
{
    dk_knee_subject_draw_mix(seed, index, NULL, s);
}

/* ---- implicit shapes (model units) ---- */

/* Plain comparisons: libm's fmaxf/fminf are calls (NaN rules) on the hot path. */
static inline float maxf(float a, float b) { return a > b ? a : b; }
static inline float minf(float a, float b) { return a < b ? a : b; }

static float smooth01(float x)
{
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    return x * x * (3 - 2 * x);
}

/* Polynomial smooth minimum: a fillet of about k between two surfaces. */
static float smin(float a, float b, float k)
{
    float h = maxf(k - fabsf(a - b), 0) / k;
    return minf(a, b) - h * h * k * 0.25f;
}

/* Ellipsoid distance estimate, first-order exact at the surface (where cartilage
 * thickness is measured). */
static float sd_ellipsoid(float x, float y, float z, const float r[3])
{
    float ax = x / r[0], ay = y / r[1], az = z / r[2];
    float k0 = sqrtf(ax * ax + ay * ay + az * az);
    float bx = ax / r[0], by = ay / r[1], bz = az / r[2];
    float k1 = sqrtf(bx * bx + by * by + bz * bz);
    if (k1 < 1e-6f) return -minf(r[0], minf(r[1], r[2]));
    return k0 * (k0 - 1) / k1;
}

static float sd_round_box(const float p[3], const float c[3], const float h[3], float round)
{
    float q[3], outside = 0;
    for (int a = 0; a < 3; a++) {
        q[a] = fabsf(p[a] - c[a]) - h[a] + round;
        float o = maxf(q[a], 0);
        outside += o * o;
    }
    return sqrtf(outside) + minf(maxf(q[0], maxf(q[1], q[2])), 0) - round;
}

static float seg_distance(const float p[3], const float a[3], const float b[3])
{
    float ab[3], ap[3], dot = 0, len2 = 0;
    for (int i = 0; i < 3; i++) {
        ab[i] = b[i] - a[i];
        ap[i] = p[i] - a[i];
        dot += ab[i] * ap[i];
        len2 += ab[i] * ab[i];
    }
    float t = len2 > 0 ? minf(maxf(dot / len2, 0), 1) : 0, d2 = 0;
    for (int i = 0; i < 3; i++) {
        float e = ap[i] - t * ab[i];
        d2 += e * e;
    }
    return sqrtf(d2);
}

/* Hashed value noise in [-1, 1], C1-smooth (Hermite-weighted trilinear). */
static float lattice_value(uint64_t seed, int i, int j, int k)
{
    uint64_t h = seed ^ (uint64_t)(uint32_t)i * 0x9E3779B97F4A7C15ULL ^
                 (uint64_t)(uint32_t)j * 0xC2B2AE3D27D4EB4FULL ^
                 (uint64_t)(uint32_t)k * 0x165667B19E3779F9ULL;
    uint64_t st = h;
    return (float)((knee_rng_next(&st) >> 40) * (1.0 / 16777216.0)) * 2 - 1;
}

static float value_noise(uint64_t seed, float x, float y, float z)
{
    float fx = floorf(x), fy = floorf(y), fz = floorf(z);
    int i = (int)fx, j = (int)fy, k = (int)fz;
    float tx = smooth01(x - fx), ty = smooth01(y - fy), tz = smooth01(z - fz), acc = 0;
    for (int c = 0; c < 8; c++) {
        int di = c & 1, dj = (c >> 1) & 1, dk = c >> 2;
        float w = (di ? tx : 1 - tx) * (dj ? ty : 1 - ty) * (dk ? tz : 1 - tz);
        acc += w * lattice_value(seed, i + di, j + dj, k + dk);
    }
    return acc;
}

/* ---- bones ---- */

static void to_femur(const knee_model *m, const float pt[3], float pf[3])
{
    float dv = pt[1] - m->fem_origin[1], dw = pt[2] - m->fem_origin[2];
    pf[0] = pt[0] - m->fem_origin[0];
    pf[1] = m->flex_c * dv - m->flex_s * dw;
    pf[2] = m->flex_s * dv + m->flex_c * dw;
}

static void from_femur(const knee_model *m, const float pf[3], float pt[3])
{
    pt[0] = pf[0] + m->fem_origin[0];
    pt[1] = m->fem_origin[1] + m->flex_c * pf[1] + m->flex_s * pf[2];
    pt[2] = m->fem_origin[2] - m->flex_s * pf[1] + m->flex_c * pf[2];
}

/* Index of the condyle nearer to pf (0 medial, 1 lateral). */
static int nearest_condyle(const knee_model *m, const float pf[3])
{
    return fabsf(pf[0] - m->cond_u[0]) < fabsf(pf[0] - m->cond_u[1]) ? 0 : 1;
}

static float blob_distance(const knee_blob *b, const float p[3])
{
    float d2 = 0;
    for (int a = 0; a < 3; a++) d2 += (p[a] - b->centre[a]) * (p[a] - b->centre[a]);
    return sqrtf(d2) - b->radius[0];
}

/* Osteophytes: spheres at the joint margins joined to the bone by a fillet. */
static float with_osteophytes(const knee_model *m, int on_tibia, const float p[3], float d)
{
    for (int o = 0; o < m->n_osteophytes; o++)
        if (m->osteophytes[o].on_tibia == on_tibia)
            d = smin(d, blob_distance(&m->osteophytes[o], p), 1.5f);
    return d;
}

static float femur_sdf(const knee_model *m, const float pf[3])
{
    float d_med = sd_ellipsoid(pf[0] - m->cond_u[0], pf[1], pf[2], m->cond_r[0]);
    float d_lat = sd_ellipsoid(pf[0] - m->cond_u[1], pf[1], pf[2], m->cond_r[1]);
    float d_troch = sd_ellipsoid(pf[0] - m->troch_c[0], pf[1] - m->troch_c[1],
                                 pf[2] - m->troch_c[2], m->troch_r);
    if (pf[2] < -8) /* the trochlear groove, where the patella's ridge runs */
        d_troch += TROCHLEAR_GROOVE * expf(-pf[0] * pf[0] * (1.0f / 98)) *
                   smooth01((-pf[2] - 8) * (1.0f / 8));
    float d = smin(smin(d_med, d_lat, 3), d_troch, 6);
    d = smin(d, sd_round_box(pf, m->shaft_c, m->shaft_h, m->shaft_round), 10);
    return with_osteophytes(m, 0, pf, d);
}

/* Height offset (v, model units; negative = raised) of the tibial plateau's top at (u, w). */
static float plateau_offset(const knee_model *m, float u, float w)
{
    float spine = expf(-((u - 4) * (u - 4) / 12.5f + (w + 2) * (w + 2) / 72)) +
                  expf(-((u + 4) * (u + 4) / 12.5f + (w + 2) * (w + 2) / 72));
    float du_m = u - m->cond_u[0], du_l = u - m->cond_u[1];
    float dip = expf(-(du_m * du_m / 128 + w * w / 242));
    float bulge = expf(-(du_l * du_l / 128 + w * w / 242));
    return m->medial_dip * dip - m->lateral_bulge * bulge - m->spine_height * spine;
}

static float tibia_sdf(const knee_model *m, const float pt[3])
{
    float d = smin(sd_round_box(pt, m->plat_c, m->plat_h, m->plat_round),
                   sd_round_box(pt, m->meta_c, m->meta_h, m->meta_round), 10);
    /* the plateau's relief applies near its top only */
    float window = expf(-pt[1] * pt[1] / 72);
    return with_osteophytes(m, 1, pt, d + window * plateau_offset(m, pt[0], pt[2]));
}

/* ---- cartilage ---- */

/* 1 on the articular surface of the femur, tapering to 0 at its edges: the condyles'
 * inferior and posterior faces (not their medial/lateral walls, not the notch) and the
 * trochlea's anterior face. */
static float femur_articular_weight(const knee_model *m, const float pf[3])
{
    float phi = atan2f(pf[2], pf[1]); /* 0 straight down, positive towards posterior */
    float weight = smooth01((2.0f - phi) / 0.3f);
    if (phi < -1.5f) weight = smooth01((pf[1] + 26) / 4);
    int j = nearest_condyle(m, pf);
    const float *r = m->cond_r[j];
    float gu = (pf[0] - m->cond_u[j]) / (r[0] * r[0]), gv = pf[1] / (r[1] * r[1]),
          gw = pf[2] / (r[2] * r[2]);
    float normal_u = fabsf(gu) / sqrtf(gu * gu + gv * gv + gw * gw + 1e-12f);
    float side = smooth01((0.72f - normal_u) / 0.15f);
    float trochlear = smooth01((-pf[2] - 8) / 6); /* 1 anteriorly: the groove has cartilage */
    return weight * (trochlear + (1 - trochlear) * side);
}

static float tibia_articular_weight(const knee_model *m, const float pt[3])
{
    float au = fabsf(pt[0]), aw = fabsf(pt[2]);
    return smooth01((19 - aw) / 3) * smooth01((au - 5.5f) / 2) * smooth01((31 - au) / 3) *
           smooth01((2.0f - pt[1]) / 1.5f);
}

static float lesion_factor(const knee_model *m, int on_tibia, const float p[3])
{
    float f = 1;
    for (int l = 0; l < m->n_lesions; l++) {
        const knee_lesion *les = &m->lesions[l];
        if (les->on_tibia != on_tibia) continue;
        float d2 = 0;
        for (int a = 0; a < 3; a++) d2 += (p[a] - les->centre[a]) * (p[a] - les->centre[a]);
        f *= 1 - les->depth * smooth01((les->radius - sqrtf(d2)) / les->edge);
    }
    return f;
}

static float clamp_thickness(float t)
{
    return minf(maxf(t, THICKNESS_MIN_MM), THICKNESS_MAX_MM);
}

/* Intact thickness (mm) of the femoral cartilage layer at femur-frame point pf. */
static float femur_field(const knee_model *m, const float pf[3])
{
    const float s = 1.0f / THICKNESS_LATTICE;
    float lateral = smooth01((pf[0] + 4) / 8);
    float keep = (1 - lateral) * m->keep[0] + lateral * m->keep[1];
    return keep * clamp_thickness(m->fem_mean + m->thick_amp * value_noise(m->fem_field_seed,
                                                                           pf[0] * s, pf[1] * s,
                                                                           pf[2] * s));
}

static float tibia_field(const knee_model *m, const float pt[3])
{
    const float s = 1.0f / THICKNESS_LATTICE;
    float lateral = smooth01((pt[0] + 4) / 8);
    float mean = (1 - lateral) * m->tib_mean[0] + lateral * m->tib_mean[1];
    float keep = (1 - lateral) * m->keep[0] + lateral * m->keep[1];
    return keep * clamp_thickness(mean + m->thick_amp * value_noise(m->tib_field_seed, pt[0] * s,
                                                                    pt[1] * s, pt[2] * s));
}

/* ---- model ---- */

static void rotation_matrix(double varus, double rotation, double slope, float out[9])
{
    double a = varus * M_PI / 180, b = rotation * M_PI / 180, g = slope * M_PI / 180;
    /* about v (axial rotation), then about w (varus), then about u (slope); rows u v w */
    double B[9] = {cos(b), 0, sin(b), 0, 1, 0, -sin(b), 0, cos(b)};
    double V[9] = {cos(a), -sin(a), 0, sin(a), cos(a), 0, 0, 0, 1};
    double S[9] = {1, 0, 0, 0, cos(g), -sin(g), 0, sin(g), cos(g)};
    double VB[9];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            VB[r * 3 + c] = 0;
            for (int k = 0; k < 3; k++) VB[r * 3 + c] += V[r * 3 + k] * B[k * 3 + c];
        }
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            double acc = 0;
            for (int k = 0; k < 3; k++) acc += S[r * 3 + k] * VB[k * 3 + c];
            out[r * 3 + c] = (float)acc;
        }
}

static void build_bones(knee_model *m, uint64_t *st)
{
    for (int j = 0; j < 2; j++) {
        float size = (float)knee_rng_uniform(st, 0.94, 1.06) * (j == 0 ? 1.03f : 0.97f);
        m->cond_u[j] = (j == 0 ? -15.0f : 15.0f) * (float)knee_rng_uniform(st, 0.95, 1.05);
        m->cond_r[j][0] = 11.0f * size;
        m->cond_r[j][1] = 19.0f * size;
        m->cond_r[j][2] = 23.5f * size;
    }
    float troch[6] = {0, -9, -9, 27, 17, 17}, shaft[6] = {0, -48, -7, 24, 32, 15};
    for (int a = 0; a < 3; a++) {
        m->troch_c[a] = troch[a];
        m->troch_r[a] = troch[3 + a] * (float)knee_rng_uniform(st, 0.95, 1.05);
        m->shaft_c[a] = shaft[a];
        m->shaft_h[a] = shaft[3 + a] * (float)knee_rng_uniform(st, 0.95, 1.05);
    }
    m->shaft_round = 6;
    float plat[6] = {0, 11, 0, 34, 11, 22}, meta[6] = {0, 40, 3, 24, 24, 16};
    for (int a = 0; a < 3; a++) {
        m->plat_c[a] = plat[a];
        m->plat_h[a] = plat[3 + a] * (a == 1 ? 1.0f : (float)knee_rng_uniform(st, 0.95, 1.05));
        m->meta_c[a] = meta[a];
        m->meta_h[a] = meta[3 + a] * (float)knee_rng_uniform(st, 0.92, 1.08);
    }
    m->meta_h[1] = 24; /* keeps the metaphysis reaching up into the plateau */
    m->plat_round = 4;
    m->meta_round = 8;
    m->spine_height = (float)knee_rng_uniform(st, 4, 6.5);
    m->medial_dip = (float)knee_rng_uniform(st, 0.6, 1.6);
    m->lateral_bulge = (float)knee_rng_uniform(st, 0.3, 1.0);
    m->cortex_mm = (float)knee_rng_uniform(st, 0.7, 1.1);
}

/* Put the femur on the tibia: flexed by the subject's angle, rolled back a little,
 * lowered until the nearer condyle leaves exactly the two cartilage layers plus the
 * subject's joint gap above the plateau. */
static void place_femur(knee_model *m, const dk_knee_subject *s)
{
    double th = s->flexion * M_PI / 180;
    m->flex_c = (float)cos(th);
    m->flex_s = (float)sin(th);
    float w_contact = (float)(-2.0 + 0.2 * s->flexion), best_v = 1e9f, w_sum = 0;
    float low_v[2], low_w[2], contact_f[2][3];
    for (int j = 0; j < 2; j++) {
        double b = m->cond_r[j][1], c = m->cond_r[j][2];
        double M = sqrt(b * b * cos(th) * cos(th) + c * c * sin(th) * sin(th));
        low_v[j] = (float)M;
        low_w[j] = (float)(sin(th) * cos(th) * (c * c - b * b) / M);
        contact_f[j][0] = m->cond_u[j];
        contact_f[j][1] = (float)(b * (b * cos(th) / M));
        contact_f[j][2] = (float)(c * (c * sin(th) / M));
        w_sum += low_w[j];
    }
    m->fem_origin[0] = 0;
    m->fem_origin[2] = w_contact - 0.5f * w_sum;
    for (int j = 0; j < 2; j++) {
        float pt[3] = {m->cond_u[j], 0, m->fem_origin[2] + low_w[j]};
        pt[1] = plateau_offset(m, pt[0], pt[2]);
        float sep_mm = femur_field(m, contact_f[j]) + tibia_field(m, pt) + (float)s->joint_gap;
        float v = pt[1] - sep_mm * m->inv_scale - low_v[j];
        if (v < best_v) best_v = v;
    }
    m->fem_origin[1] = best_v;
}

/* A point on the articular surface of condyle j (femur frame) or plateau j (tibia
 * frame), drawn where lesions, marrow lesions and cysts occur: the weight-bearing
 * surfaces. depth (model units) moves it into the bone. */
static void articular_point(const knee_model *m, int on_tibia, uint64_t *st, float depth,
                            float out[3])
{
    int j = (int)(knee_rng_next(st) & 1);
    if (on_tibia) {
        out[0] = m->cond_u[j] + (float)knee_rng_uniform(st, -6, 6);
        out[1] = depth;
        out[2] = (float)knee_rng_uniform(st, -10, 10);
        return;
    }
    float t = (float)knee_rng_uniform(st, -0.5, 0.9);
    float v = m->cond_r[j][1] * cosf(t), w = m->cond_r[j][2] * sinf(t);
    float len = sqrtf(v * v + w * w), inward = len > depth ? 1 - depth / len : 0;
    out[0] = m->cond_u[j] + (float)knee_rng_uniform(st, -4, 4);
    out[1] = v * inward;
    out[2] = w * inward;
}

static void draw_lesions(knee_model *m, const dk_knee_subject *s, uint64_t *st)
{
    m->n_lesions = s->n_lesions < 0 ? 0
                   : s->n_lesions > DK_KNEE_MAX_LESIONS ? DK_KNEE_MAX_LESIONS
                                                        : s->n_lesions;
    for (int l = 0; l < m->n_lesions; l++) {
        knee_lesion *les = &m->lesions[l];
        les->on_tibia = (int)(knee_rng_next(st) & 1);
        articular_point(m, les->on_tibia, st, 0, les->centre);
        float radius_mm = (float)knee_rng_uniform(st, s->lesion_radius[0], s->lesion_radius[1]);
        les->radius = radius_mm * m->inv_scale;
        les->edge = minf(1.5f, 0.5f * radius_mm) * m->inv_scale;
        les->depth = (float)knee_rng_uniform(st, s->lesion_depth[0], s->lesion_depth[1]);
    }
}

/* Osteophytes at the joint margins: the outer walls of the condyles near their
 * articular edge and the rims of the plateau, half buried in the bone. */
static void draw_osteophytes(knee_model *m, const dk_knee_subject *s, uint64_t *st)
{
    int n = s->n_osteophytes < 0 ? 0 : s->n_osteophytes;
    m->n_osteophytes = n > DK_KNEE_MAX_OSTEOPHYTES ? DK_KNEE_MAX_OSTEOPHYTES : n;
    for (int o = 0; o < m->n_osteophytes; o++) {
        knee_blob *b = &m->osteophytes[o];
        float r = (float)(s->osteophyte_mm * knee_rng_uniform(st, 0.5, 1.0)) * m->inv_scale;
        b->radius[0] = b->radius[1] = b->radius[2] = r;
        b->on_tibia = (int)(knee_rng_next(st) & 1);
        int j = (int)(knee_rng_next(st) & 1);
        float side = j == 0 ? -1.0f : 1.0f; /* away from the notch */
        if (b->on_tibia) {
            b->centre[0] = side * (m->plat_h[0] + 0.3f * r);
            b->centre[1] = (float)knee_rng_uniform(st, 0, 3);
            b->centre[2] = (float)knee_rng_uniform(st, -15, 15);
        } else {
            float v = m->cond_r[j][1] * (float)knee_rng_uniform(st, 0.3, 0.7);
            float w = m->cond_r[j][2] * (float)knee_rng_uniform(st, -0.5, 0.5);
            float q = 1 - v * v / (m->cond_r[j][1] * m->cond_r[j][1]) -
                      w * w / (m->cond_r[j][2] * m->cond_r[j][2]);
            b->centre[0] = m->cond_u[j] + side * (m->cond_r[j][0] * sqrtf(maxf(q, 0)) + 0.3f * r);
            b->centre[1] = v;
            b->centre[2] = w;
        }
    }
}

/* Bone-marrow lesions (ellipsoids reaching the subchondral plate) and subchondral cysts
 * (spheres just under it), under the weight-bearing surfaces. */
static void draw_marrow(knee_model *m, const dk_knee_subject *s, uint64_t *st)
{
    int nb = s->n_bml < 0 ? 0 : s->n_bml, nc = s->n_cysts < 0 ? 0 : s->n_cysts;
    m->n_bml = nb > DK_KNEE_MAX_MARROW_LESIONS ? DK_KNEE_MAX_MARROW_LESIONS : nb;
    m->n_cysts = nc > DK_KNEE_MAX_MARROW_LESIONS ? DK_KNEE_MAX_MARROW_LESIONS : nc;
    for (int i = 0; i < m->n_bml; i++) {
        knee_blob *b = &m->bml[i];
        for (int a = 0; a < 3; a++)
            b->radius[a] = (float)knee_rng_uniform(st, 3, a == 1 ? 7 : 10) * m->inv_scale;
        b->on_tibia = (int)(knee_rng_next(st) & 1);
        articular_point(m, b->on_tibia, st, 0.7f * b->radius[1], b->centre);
    }
    for (int i = 0; i < m->n_cysts; i++) {
        knee_blob *b = &m->cysts[i];
        float r = (float)knee_rng_uniform(st, 1, 4) * m->inv_scale;
        b->radius[0] = b->radius[1] = b->radius[2] = r;
        b->on_tibia = (int)(knee_rng_next(st) & 1);
        articular_point(m, b->on_tibia, st, r + m->cortex_mm * m->inv_scale + 0.3f, b->centre);
    }
}

static void build_ligaments(knee_model *m)
{
    /* ACL: anterior tibial spine -> inner wall of the lateral condyle, posteriorly.
     * PCL: posterior tibia -> inner wall of the medial condyle, bowed posteriorly. */
    const float acl_f[3] = {7.5f, -4, 9}, pcl_f[3] = {-6, -1, -4};
    knee_capsule *acl = &m->ligaments[0], *pcl_low = &m->ligaments[1], *pcl_up = &m->ligaments[2];
    acl->a[0] = 3, acl->a[1] = -0.5f, acl->a[2] = -7;
    from_femur(m, acl_f, acl->b);
    acl->radius = 2.6f;
    pcl_low->a[0] = -1, pcl_low->a[1] = 4, pcl_low->a[2] = 17;
    from_femur(m, pcl_f, pcl_up->b);
    for (int a = 0; a < 3; a++) {
        float mid = 0.5f * (pcl_low->a[a] + pcl_up->b[a]) + (a == 1 ? -4.0f : a == 2 ? 5.0f : 0);
        pcl_low->b[a] = mid;
        pcl_up->a[a] = mid;
    }
    pcl_low->radius = pcl_up->radius = 3.2f;
}

void knee_model_build(const dk_knee_subject *s, knee_model *m)
{
    memset(m, 0, sizeof *m);
    uint64_t st = s->seed ^ 0x6A09E667F3BCC909ULL;
    m->scale = (float)(NOMINAL_SCALE * (s->scale > 0 ? s->scale : 1));
    m->inv_scale = 1 / m->scale;
    /* z runs towards the patient's left; u towards lateral */
    m->mirror = s->left ? 1.0f : -1.0f;
    m->centre[0] = (float)s->shift[0];
    m->centre[1] = (float)(7.0 + s->shift[1]); /* joint line 7 mm below the ROI centre */
    m->centre[2] = (float)s->shift[2];
    rotation_matrix(s->varus, s->rotation, s->tibial_slope, m->rot);
    build_bones(m, &st);
    m->fem_field_seed = knee_rng_next(&st);
    m->tib_field_seed = knee_rng_next(&st);
    m->fem_mean = (float)s->femoral_cartilage;
    m->tib_mean[0] = (float)s->tibial_cartilage * 0.94f; /* medial plateau thinner */
    m->tib_mean[1] = (float)s->tibial_cartilage * 1.06f;
    m->thick_amp = 0.45f;
    /* osteoarthritic thinning is medial-predominant */
    float thinning = (float)(s->thinning < 0 ? 0 : s->thinning > 0.9 ? 0.9 : s->thinning);
    m->keep[0] = 1 - thinning;
    m->keep[1] = 1 - 0.5f * thinning;
    m->gap_min_mm = 0.25f;
    draw_osteophytes(m, s, &st);
    place_femur(m, s);
    draw_lesions(m, s, &st);
    draw_marrow(m, s, &st);
    build_ligaments(m);
    m->men_centre_w = -1;
    m->men_a = 13;
    m->men_c = 19;
    m->men_height_mm[0] = (float)knee_rng_uniform(&st, 4.5, 6.5);
    m->men_height_mm[1] = (float)knee_rng_uniform(&st, 4.0, 6.0);
    m->muscle_w = (float)knee_rng_uniform(&st, 23, 27);
    m->effusion = (float)s->effusion;
    knee_patella_build(m, s);
}

void knee_surface_bands(const knee_model *m, float *femur_mm, float *tibia_mm)
{
    /* cartilage + the deepest fluid pocket / the tallest meniscus, + a margin */
    *femur_mm = THICKNESS_MAX_MM + 1.0f + 3.0f * m->effusion + 0.5f;
    if (*femur_mm < THICKNESS_MAX_MM + 2.1f) *femur_mm = THICKNESS_MAX_MM + 2.1f;
    *tibia_mm = THICKNESS_MAX_MM + maxf(m->men_height_mm[0], m->men_height_mm[1]) + 0.5f;
}

/* ---- classification ---- */

/* Meniscus: a wedge on each compartment's rim, its height rising from the inner free
 * edge to the outer rim (the "bow tie" in sagittal slices). dt_out: mm above the tibial
 * cartilage. */
static int in_meniscus(const knee_model *m, const float pt[3], float dt_out)
{
    int j = pt[0] < 0 ? 0 : 1;
    if (fabsf(pt[0]) < 3 || pt[1] > 1.5f) return 0;
    float du = (pt[0] - m->cond_u[j]) / m->men_a, dw = (pt[2] - m->men_centre_w) / m->men_c;
    float rho = sqrtf(du * du + dw * dw);
    /* the medial meniscus is C-shaped with a wide posterior horn */
    float inner = j == 0 ? 0.62f - 0.12f * dw : 0.58f;
    if (rho < inner || rho > 1.08f) return 0;
    float rise = minf((rho - inner) / (1 - inner), (1.08f - rho) / 0.08f);
    return dt_out < m->men_height_mm[j] * minf(rise, 1);
}

/* Joint fluid: the thin space between the cartilages, a film over the articular
 * surfaces, and the recess behind the condyles; more of each with effusion. t_femur and
 * t_tibia (the local cartilage thickness) say whether a surface is articular. */
static int in_fluid(const knee_model *m, const float pf[3], float df_out, float dt_out,
                    float t_femur, float t_tibia)
{
    float e = m->effusion;
    if (df_out + dt_out < 0.9f + 1.2f * e) return 1;
    if (df_out < 0.15f + 0.45f * e && t_femur > 0.5f) return 1;
    if (dt_out < 0.15f + 0.35f * e && t_tibia > 0.5f) return 1;
    int behind_condyle = fabsf(pf[0] - m->cond_u[nearest_condyle(m, pf)]) < 7;
    return behind_condyle && pf[2] > 8 && pf[1] < 4 && pf[1] > -20 && df_out < 0.5f + 2.0f * e;
}

void knee_classify_soft(const knee_model *m, const float pt[3], float n_low, knee_point *out)
{
    if (knee_patella_at(m, pt, out)) return;
    out->depth = 0;
    out->label = DK_KNEE_BACKGROUND;
    if (fabsf(pt[0]) < 12)
        for (int l = 0; l < 3; l++)
            if (seg_distance(pt, m->ligaments[l].a, m->ligaments[l].b) < m->ligaments[l].radius) {
                out->tissue = TISSUE_LIGAMENT;
                return;
            }
    float w = pt[2], v = pt[1];
    int muscle = w > m->muscle_w + 5 * n_low || (w > 14 + 3 * n_low && v > 12);
    out->tissue = muscle ? TISSUE_MUSCLE : TISSUE_FAT;
}

void knee_fields_at(const knee_model *m, const float pt[3], knee_fields *f)
{
    float pf[3];
    to_femur(m, pt, pf);
    f->d_femur = femur_sdf(m, pf) * m->scale;
    f->d_tibia = tibia_sdf(m, pt) * m->scale;
    f->t_femur = f->t_tibia = f->e_femur = f->e_tibia = 0;
    const float near_mm = THICKNESS_MAX_MM + 2; /* beyond: no cartilage can reach */
    float w;
    if (f->d_femur > -1 && f->d_femur < near_mm && (w = femur_articular_weight(m, pf)) > 0) {
        f->e_femur = femur_field(m, pf) * w;
        f->t_femur = f->e_femur * lesion_factor(m, 0, pf);
    }
    if (f->d_tibia > -1 && f->d_tibia < near_mm && (w = tibia_articular_weight(m, pt)) > 0) {
        f->e_tibia = tibia_field(m, pt) * w;
        f->t_tibia = f->e_tibia * lesion_factor(m, 1, pt);
    }
}

void knee_classify(const knee_model *m, const float pt[3], const knee_fields *f, float n_low,
                   knee_point *out)
{
    float df = f->d_femur, dt = f->d_tibia, tf = f->t_femur, tt = f->t_tibia;
    out->depth = 0;
    if (df < 0 || dt < 0) {
        float d = df < 0 ? df : dt;
        out->tissue = d > -m->cortex_mm ? TISSUE_CORTEX : TISSUE_MARROW;
        out->label = df < 0 ? DK_KNEE_FEMUR : DK_KNEE_TIBIA;
        return;
    }
    out->tissue = TISSUE_CARTILAGE;
    if (df < tf) {
        out->label = DK_KNEE_FEMORAL_CARTILAGE;
        out->depth = df / tf;
        return;
    }
    float df_out = df - tf, dt_out = dt - tt;
    if (dt < tt && df_out > m->gap_min_mm) {
        out->label = DK_KNEE_TIBIAL_CARTILAGE;
        out->depth = dt / tt;
        return;
    }
    out->label = DK_KNEE_BACKGROUND;
    if (df < f->e_femur || (dt < f->e_tibia && df_out > m->gap_min_mm)) {
        out->tissue = TISSUE_FLUID; /* a focal defect fills with joint fluid */
        return;
    }
    dt_out = maxf(dt_out, 0);
    if (dt_out < 8 && df_out > m->gap_min_mm && in_meniscus(m, pt, dt_out)) {
        out->tissue = TISSUE_MENISCUS;
        return;
    }
    float pf[3];
    to_femur(m, pt, pf);
    if (in_fluid(m, pf, df_out, dt_out, f->e_femur, f->e_tibia)) {
        out->tissue = TISSUE_FLUID;
        return;
    }
    knee_classify_soft(m, pt, n_low, out);
}

static float blob_depth(const knee_blob *b, const float p[3])
{
    float q = 0;
    for (int a = 0; a < 3; a++) {
        float d = (p[a] - b->centre[a]) / b->radius[a];
        q += d * d;
    }
    return sqrtf(q);
}

void knee_marrow(const knee_model *m, const float pt[3], float n_low, knee_point *p, float *bml)
{
    *bml = 0;
    if (m->n_bml + m->n_cysts == 0) return;
    float pf[3];
    to_femur(m, pt, pf);
    for (int i = 0; i < m->n_cysts; i++) {
        const knee_blob *b = &m->cysts[i];
        if (blob_depth(b, b->on_tibia ? pt : pf) < 1) {
            p->tissue = TISSUE_FLUID;
            return;
        }
    }
    for (int i = 0; i < m->n_bml; i++) {
        const knee_blob *b = &m->bml[i];
        float q = blob_depth(b, b->on_tibia ? pt : pf) + 0.25f * n_low;
        *bml = maxf(*bml, smooth01((1 - q) / 0.35f));
    }
}

/* ---- for synth_patella.c ---- */

void knee_to_femur(const knee_model *m, const float pt[3], float pf[3]) { to_femur(m, pt, pf); }

void knee_from_femur(const knee_model *m, const float pf[3], float pt[3])
{
    from_femur(m, pf, pt);
}

float knee_femur_distance(const knee_model *m, const float pf[3]) { return femur_sdf(m, pf); }

float knee_femur_intact_mm(const knee_model *m, const float pf[3])
{
    float w = femur_articular_weight(m, pf);
    return w > 0 ? femur_field(m, pf) * w : 0;
}

float knee_ellipsoid_distance(float x, float y, float z, const float r[3])
{
    return sd_ellipsoid(x, y, z, r);
}

float knee_value_noise(uint64_t seed, float x, float y, float z)
{
    return value_noise(seed, x, y, z);
}

float knee_segment_distance(const float p[3], const float a[3], const float b[3])
{
    return seg_distance(p, a, b);
}
