/* synth_contrast.c: rendering a synthetic knee (synth_anatomy.c) on a fine grid in one
 * MR contrast, with within-tissue texture, and acquiring it at a site profile.
 *
 * Speed: the smooth fields behind the anatomy (bone distances, cartilage thickness) are
 * evaluated on a grid twice as coarse and interpolated; voxels are classified in blocks
 * of 4x4x4, and a block whose fields put it deep in bone or far from both bones is
 * marrow or soft tissue without looking at cartilage, menisci or fluid.
 * Texture is value noise on coarse lattices interpolated through per-axis tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/acquire.h"
#include "datasets/synth_anatomy.h"
#include "datasets/synth_quality.h"

#define BLOCK 4
#define FINE_INPLANE_MM 0.3
#define FINE_THROUGH_MM 0.35

/* Relative intensities (brightest tissue about 1) and texture amplitudes per tissue. */
typedef struct contrast_table {
    const char *name;
    float base[TISSUE_COUNT];
    float tex_low[TISSUE_COUNT];  /* slow variation (about 5 mm) */
    float tex_high[TISSUE_COUNT]; /* trabecular / fibre texture (about 1 mm) */
    float cartilage_layering;     /* superficial minus deep cartilage, relative */
    /* fat and marrow where fat suppression fails (0: the sequence suppresses none) */
    float fat_unsuppressed, marrow_unsuppressed;
} contrast_table;

/* A bone-marrow lesion is oedema-like: bright on fluid-sensitive sequences (PD-fs, and
 * less so DESS), dark against fatty marrow on T1. */
/*                 fat    muscle fluid  marrow cortex cart   menisc ligament bml */
static const contrast_table contrasts[] = {
    {"dess", /* water excitation: fluid and cartilage bright, fat damped */
     {0.30f, 0.32f, 1.00f, 0.38f, 0.04f, 0.72f, 0.06f, 0.10f, 0.55f},
     {0.08f, 0.10f, 0.03f, 0.10f, 0.0f, 0.05f, 0.0f, 0.05f, 0.10f},
     {0.06f, 0.12f, 0.02f, 0.22f, 0.3f, 0.05f, 0.3f, 0.15f, 0.15f},
     0.35f, 0.60f, 0.55f},
    {"pd-fs", /* fat saturated: marrow and fat dark, fluid bright */
     {0.10f, 0.30f, 1.00f, 0.12f, 0.04f, 0.55f, 0.07f, 0.12f, 0.55f},
     {0.10f, 0.10f, 0.03f, 0.15f, 0.0f, 0.05f, 0.0f, 0.05f, 0.10f},
     {0.10f, 0.12f, 0.02f, 0.30f, 0.3f, 0.06f, 0.3f, 0.15f, 0.15f},
     0.25f, 0.90f, 0.80f},
    {"t1", /* fat and marrow bright, fluid dark */
     {1.00f, 0.32f, 0.18f, 0.90f, 0.03f, 0.42f, 0.05f, 0.08f, 0.40f},
     {0.05f, 0.10f, 0.05f, 0.05f, 0.0f, 0.05f, 0.0f, 0.05f, 0.10f},
     {0.04f, 0.12f, 0.05f, 0.10f, 0.3f, 0.05f, 0.3f, 0.15f, 0.10f},
     0.05f, 0.0f, 0.0f},
};

static const contrast_table *find_contrast(const char *name)
{
    for (size_t i = 0; i < sizeof contrasts / sizeof contrasts[0]; i++)
        if (strcmp(contrasts[i].name, name) == 0) return &contrasts[i];
    return NULL;
}

/* ---- texture lattices ---- */

typedef struct lattice {
    int dims[3];
    float *values;
    int *cell[3];   /* per fine-grid coordinate: lower lattice index */
    float *frac[3]; /* and smoothed fraction towards the next */
} lattice;

static void lattice_release(lattice *l)
{
    free(l->values);
    for (int a = 0; a < 3; a++) {
        free(l->cell[a]);
        free(l->frac[a]);
    }
    memset(l, 0, sizeof *l);
}

/* Where a grid lies (synth_knee.h: dk_knee_fine_grid_fov): a grid with the default box's
 * spacing sits on its lattice, off[a] voxels from the default grid, and positions and
 * texture count from that grid (base = its origin), so two fields of view of one subject
 * agree wherever they overlap. Any other grid counts from its own corner. */
typedef struct grid_anchor {
    int off[3];     /* offset of voxel 0 on the lattice */
    int base_n[3];  /* the default box's voxels (the texture's own lattice spans them) */
    double base[3]; /* position of lattice voxel 0, mm */
} grid_anchor;

static void grid_anchor_of(const dk_grid *g, grid_anchor *out)
{
    const double roi[3] = {DK_KNEE_ROI_Z, DK_KNEE_ROI_Y, DK_KNEE_ROI_X};
    for (int a = 0; a < 3; a++) {
        double sp = g->spacing[a];
        int n0 = (int)lround(roi[a] / sp);
        double o0 = -0.5 * (n0 - 1) * sp, k = (g->origin[a] - o0) / sp;
        bool on_lattice = n0 >= 1 && fabs(n0 * sp - roi[a]) < 1e-9 && fabs(k - round(k)) < 1e-6;
        out->off[a] = on_lattice ? (int)lround(k) : 0;
        out->base_n[a] = on_lattice ? n0 : g->dims[a];
        out->base[a] = on_lattice ? o0 : g->origin[a];
    }
}

/* A lattice value: the default box's sequence where it reaches (as before fields of
 * view varied), a hash of the cell beyond. */
static float lattice_value(const float *inner, const int inner_dims[3], const int c[3],
                           uint64_t seed)
{
    if (c[0] >= 0 && c[1] >= 0 && c[2] >= 0 && c[0] < inner_dims[0] && c[1] < inner_dims[1] &&
        c[2] < inner_dims[2])
        return inner[((size_t)c[0] * inner_dims[1] + c[1]) * inner_dims[2] + c[2]];
    uint64_t st = seed ^ (uint64_t)(int64_t)c[0] * 0xA0761D6478BD642FULL ^
                  (uint64_t)(int64_t)c[1] * 0xE7037ED1A0B428DBULL ^
                  (uint64_t)(int64_t)c[2] * 0x8EBC6AF09C88C6E3ULL;
    return (float)((knee_rng_next(&st) >> 40) * (1.0 / 16777216.0)) * 2 - 1;
}

static dk_status lattice_values(lattice *l, const grid_anchor *an, const dk_grid *g,
                                const float step_mm[3], const int first[3], uint64_t seed,
                                dk_err *err)
{
    int inner_dims[3];
    for (int a = 0; a < 3; a++)
        inner_dims[a] = (int)ceil(an->base_n[a] * g->spacing[a] / step_mm[a]) + 2;
    size_t n_inner = (size_t)inner_dims[0] * inner_dims[1] * inner_dims[2];
    float *inner = malloc(n_inner * sizeof *inner);
    size_t n = (size_t)l->dims[0] * l->dims[1] * l->dims[2];
    l->values = malloc(n * sizeof *l->values);
    if (!inner || !l->values) {
        free(inner);
        return dk_err_set(err, DK_ENOMEM, "synthetic knee: no memory for a texture lattice");
    }
    uint64_t st = seed;
    for (size_t i = 0; i < n_inner; i++)
        inner[i] = (float)((knee_rng_next(&st) >> 40) * (1.0 / 16777216.0)) * 2 - 1;
    float *v = l->values;
    for (int k = 0; k < l->dims[0]; k++)
        for (int j = 0; j < l->dims[1]; j++)
            for (int i = 0; i < l->dims[2]; i++) {
                int c[3] = {first[0] + k, first[1] + j, first[2] + i};
                *v++ = lattice_value(inner, inner_dims, c, seed);
            }
    free(inner);
    return DK_OK;
}

static dk_status lattice_init(lattice *l, const grid_anchor *an, const dk_grid *g,
                              const float step_mm[3], uint64_t seed, dk_err *err)
{
    memset(l, 0, sizeof *l);
    int first[3];
    for (int a = 0; a < 3; a++) {
        l->cell[a] = malloc(sizeof(int) * (size_t)g->dims[a]);
        l->frac[a] = malloc(sizeof(float) * (size_t)g->dims[a]);
        if (!l->cell[a] || !l->frac[a]) goto nomem;
        for (int i = 0; i < g->dims[a]; i++) {
            double f = (i + an->off[a] + 0.5) * g->spacing[a] / step_mm[a];
            int c = (int)floor(f);
            float t = (float)(f - c);
            if (i == 0) first[a] = c;
            l->cell[a][i] = c - first[a];
            l->frac[a][i] = t * t * (3 - 2 * t);
        }
        l->dims[a] = l->cell[a][g->dims[a] - 1] + 2;
    }
    dk_status st = lattice_values(l, an, g, step_mm, first, seed, err);
    if (st) lattice_release(l);
    return st;
nomem:
    lattice_release(l);
    return dk_err_set(err, DK_ENOMEM, "synthetic knee: no memory for a texture lattice");
}

static inline float lattice_at(const lattice *l, int k, int j, int i)
{
    int c0 = l->cell[0][k], c1 = l->cell[1][j], c2 = l->cell[2][i];
    float t0 = l->frac[0][k], t1 = l->frac[1][j], t2 = l->frac[2][i];
    size_t sy = (size_t)l->dims[2], sz = (size_t)l->dims[1] * l->dims[2];
    const float *p = l->values + c0 * sz + c1 * sy + c2;
    float a = p[0] + t2 * (p[1] - p[0]), b = p[sy] + t2 * (p[sy + 1] - p[sy]);
    float c = p[sz] + t2 * (p[sz + 1] - p[sz]), d = p[sz + sy] + t2 * (p[sz + sy + 1] - p[sz + sy]);
    float ab = a + t1 * (b - a), cd = c + t1 * (d - c);
    return ab + t0 * (cd - ab);
}

/* ---- the smooth fields on a grid twice as coarse ---- */

/* Fine voxel k sits on coarse point k/2 (even k) or midway between two (odd k), so
 * interpolation is exact averaging and a block's values lie within its corners'. */
typedef struct coarse_fields {
    int dims[3];
    knee_fields *at;
} coarse_fields;

static dk_status coarse_init(coarse_fields *cf, const knee_model *m, const dk_grid *g,
                             float *const pos[3], dk_err *err)
{
    for (int a = 0; a < 3; a++) cf->dims[a] = g->dims[a] / 2 + 1;
    size_t n = (size_t)cf->dims[0] * cf->dims[1] * cf->dims[2];
    cf->at = malloc(n * sizeof *cf->at);
    if (!cf->at) return dk_err_set(err, DK_ENOMEM, "synthetic knee: no memory for the fields");
    knee_fields *f = cf->at;
    for (int k = 0; k < cf->dims[0]; k++)
        for (int j = 0; j < cf->dims[1]; j++)
            for (int i = 0; i < cf->dims[2]; i++) {
                float pw[3] = {pos[0][2 * k], pos[1][2 * j], pos[2][2 * i]}, pt[3];
                knee_to_tibia(m, pw, pt);
                knee_fields_at(m, pt, f++);
            }
    return DK_OK;
}

static void coarse_at(const coarse_fields *cf, int k, int j, int i, knee_fields *out)
{
    size_t sy = (size_t)cf->dims[2], sz = (size_t)cf->dims[1] * cf->dims[2];
    const knee_fields *p = cf->at + (size_t)(k >> 1) * sz + (size_t)(j >> 1) * sy + (i >> 1);
    size_t steps[3] = {(k & 1) ? sz : 0, (j & 1) ? sy : 0, (i & 1) ? 1 : 0};
    float acc[6] = {0, 0, 0, 0, 0, 0};
    int count = 0;
    for (int c = 0; c < 8; c++) {
        if (((c & 1) && !steps[2]) || ((c & 2) && !steps[1]) || ((c & 4) && !steps[0])) continue;
        const knee_fields *q = p + ((c & 4) ? steps[0] : 0) + ((c & 2) ? steps[1] : 0) +
                               ((c & 1) ? steps[2] : 0);
        acc[0] += q->d_femur;
        acc[1] += q->d_tibia;
        acc[2] += q->t_femur;
        acc[3] += q->t_tibia;
        acc[4] += q->e_femur;
        acc[5] += q->e_tibia;
        count++;
    }
    float inv = 1.0f / count;
    out->d_femur = acc[0] * inv;
    out->d_tibia = acc[1] * inv;
    out->t_femur = acc[2] * inv;
    out->t_tibia = acc[3] * inv;
    out->e_femur = acc[4] * inv;
    out->e_tibia = acc[5] * inv;
}

/* ---- rendering ---- */

typedef struct render_ctx {
    const knee_model *model;
    const dk_grid *grid;
    float *pos[3]; /* world position of each voxel index (and 2 beyond), mm */
    coarse_fields fields;
    float base[TISSUE_COUNT], tex_low[TISSUE_COUNT], tex_high[TISSUE_COUNT], layering;
    float fat_unsuppressed, marrow_unsuppressed, fat_sat_failure;
    lattice low, fine, fibre, fat_sat;
    float band_femur_mm, band_tibia_mm;
} render_ctx;

enum { BLOCK_FULL, BLOCK_SOFT, BLOCK_FEMUR, BLOCK_TIBIA };

/* What a block of fine voxels can contain, from the range of its coarse fields. */
static int block_kind(const render_ctx *c, const int lo[3], const int hi[3])
{
    const coarse_fields *cf = &c->fields;
    int clo[3], chi[3];
    for (int a = 0; a < 3; a++) {
        clo[a] = lo[a] >> 1;
        chi[a] = ((hi[a] - 1) >> 1) + ((hi[a] - 1) & 1);
    }
    float df_min = INFINITY, df_max = -INFINITY, dt_min = INFINITY, dt_max = -INFINITY;
    for (int k = clo[0]; k <= chi[0]; k++)
        for (int j = clo[1]; j <= chi[1]; j++) {
            const knee_fields *f = cf->at + ((size_t)k * cf->dims[1] + j) * cf->dims[2];
            for (int i = clo[2]; i <= chi[2]; i++) {
                df_min = df_min < f[i].d_femur ? df_min : f[i].d_femur;
                df_max = df_max > f[i].d_femur ? df_max : f[i].d_femur;
                dt_min = dt_min < f[i].d_tibia ? dt_min : f[i].d_tibia;
                dt_max = dt_max > f[i].d_tibia ? dt_max : f[i].d_tibia;
            }
        }
    float deep = c->model->cortex_mm + 0.01f;
    if (df_max < -deep) return BLOCK_FEMUR;
    if (dt_max < -deep) return BLOCK_TIBIA;
    if (df_min > c->band_femur_mm && dt_min > c->band_tibia_mm) return BLOCK_SOFT;
    return BLOCK_FULL;
}

static inline float smooth_step(float x)
{
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    return x * x * (3 - 2 * x);
}

static void render_voxel(const render_ctx *c, int kind, int k, int j, int i, float *image,
                         uint8_t *label)
{
    float pw[3] = {c->pos[0][k], c->pos[1][j], c->pos[2][i]}, pt[3];
    float n_low = lattice_at(&c->low, k, j, i);
    knee_point p;
    float bml = 0;
    if (kind == BLOCK_FULL) {
        knee_fields f;
        coarse_at(&c->fields, k, j, i, &f);
        knee_to_tibia(c->model, pw, pt);
        knee_classify(c->model, pt, &f, n_low, &p);
    } else if (kind == BLOCK_SOFT) {
        knee_to_tibia(c->model, pw, pt);
        knee_classify_soft(c->model, pt, n_low, &p);
    } else {
        p.tissue = TISSUE_MARROW;
        p.label = kind == BLOCK_FEMUR ? DK_KNEE_FEMUR : DK_KNEE_TIBIA;
        p.depth = 0;
        if (c->model->n_bml + c->model->n_cysts) knee_to_tibia(c->model, pw, pt);
    }
    if (p.tissue == TISSUE_MARROW) knee_marrow(c->model, pt, n_low, &p, &bml);
    const lattice *hi = p.tissue == TISSUE_MUSCLE ? &c->fibre : &c->fine;
    float n_high = lattice_at(hi, k, j, i);
    float base = c->base[p.tissue];
    if (c->fat_sat_failure > 0 && (p.tissue == TISSUE_FAT || p.tissue == TISSUE_MARROW)) {
        /* fat suppression fails smoothly over the field of view (B0 inhomogeneity) */
        float fail = c->fat_sat_failure * smooth_step(0.5f + 0.8f * lattice_at(&c->fat_sat, k, j, i));
        base += fail * ((p.tissue == TISSUE_FAT ? c->fat_unsuppressed : c->marrow_unsuppressed) -
                        base);
    }
    float value = base * (1 + c->tex_low[p.tissue] * n_low + c->tex_high[p.tissue] * n_high);
    if (bml > 0) {
        float lesion = c->base[TISSUE_BML] *
                       (1 + c->tex_low[TISSUE_BML] * n_low + c->tex_high[TISSUE_BML] * n_high);
        value += bml * (lesion - value);
    }
    if (p.tissue == TISSUE_CARTILAGE) value *= 1 - 0.5f * c->layering + c->layering * p.depth;
    *image = value > 0 ? value : 0;
    *label = p.label;
}

static void render_block(const render_ctx *c, int k0, int j0, int i0, dk_volume *out)
{
    const dk_grid *g = c->grid;
    int lo[3] = {k0, j0, i0}, hi[3];
    for (int a = 0; a < 3; a++) hi[a] = lo[a] + BLOCK < g->dims[a] ? lo[a] + BLOCK : g->dims[a];
    int kind = block_kind(c, lo, hi);
    for (int k = lo[0]; k < hi[0]; k++)
        for (int j = lo[1]; j < hi[1]; j++) {
            size_t row = ((size_t)k * g->dims[1] + j) * g->dims[2];
            for (int i = lo[2]; i < hi[2]; i++)
                render_voxel(c, kind, k, j, i, out->image + row + i, out->label + row + i);
        }
}

static void render_ctx_release(render_ctx *c)
{
    free(c->fields.at);
    for (int a = 0; a < 3; a++)
        free(c->pos[a]);
    lattice_release(&c->low);
    lattice_release(&c->fine);
    lattice_release(&c->fibre);
    lattice_release(&c->fat_sat);
}

/* Voxel positions from the grid's anchor: the same lattice voxel, the same float. */
static dk_status positions_init(float *pos[3], const grid_anchor *an, const dk_grid *g,
                                dk_err *err)
{
    for (int a = 0; a < 3; a++) {
        pos[a] = malloc(sizeof(float) * ((size_t)g->dims[a] + 2));
        if (!pos[a])
            return dk_err_set(err, DK_ENOMEM, "synthetic knee: no memory for the positions");
        for (int i = 0; i < g->dims[a] + 2; i++)
            pos[a][i] = (float)(an->base[a] + (i + an->off[a]) * g->spacing[a]);
    }
    return DK_OK;
}

static dk_status render_ctx_init(render_ctx *c, const knee_model *m, const contrast_table *ct,
                                 const dk_grid *grid, const dk_knee_subject *subj, dk_err *err)
{
    uint64_t seed = subj->seed;
    memset(c, 0, sizeof *c);
    c->model = m;
    c->grid = grid;
    uint64_t st = seed ^ 0xBB67AE8584CAA73BULL;
    for (int t = 0; t < TISSUE_COUNT; t++) {
        /* scanners and subjects differ: each tissue's mean varies by a few percent */
        c->base[t] = ct->base[t] * (float)knee_rng_uniform(&st, 0.94, 1.06);
        c->tex_low[t] = ct->tex_low[t];
        c->tex_high[t] = ct->tex_high[t];
    }
    c->layering = ct->cartilage_layering;
    c->fat_unsuppressed = ct->fat_unsuppressed;
    c->marrow_unsuppressed = ct->marrow_unsuppressed;
    c->fat_sat_failure = ct->fat_unsuppressed > 0 && subj->fat_sat_failure > 0
                             ? (float)subj->fat_sat_failure : 0;
    knee_surface_bands(m, &c->band_femur_mm, &c->band_tibia_mm);
    const float low_mm[3] = {5, 5, 5}, fine_mm[3] = {0.9f, 0.9f, 0.9f},
                fibre_mm[3] = {1.2f, 6.0f, 1.0f}; /* muscle fibres run superior-inferior */
    grid_anchor an;
    grid_anchor_of(grid, &an);
    dk_status s = positions_init(c->pos, &an, grid, err);
    uint64_t low_seed = knee_rng_next(&st);
    if (!s) s = lattice_init(&c->low, &an, grid, low_mm, low_seed, err);
    uint64_t fine_seed = knee_rng_next(&st);
    if (!s) s = lattice_init(&c->fine, &an, grid, fine_mm, fine_seed, err);
    uint64_t fibre_seed = knee_rng_next(&st);
    if (!s) s = lattice_init(&c->fibre, &an, grid, fibre_mm, fibre_seed, err);
    const float fat_sat_mm[3] = {25, 25, 25}; /* field inhomogeneity varies over cm */
    uint64_t fat_sat_seed = knee_rng_next(&st);
    if (!s && c->fat_sat_failure > 0)
        s = lattice_init(&c->fat_sat, &an, grid, fat_sat_mm, fat_sat_seed, err);
    if (!s) s = coarse_init(&c->fields, m, grid, c->pos, err);
    if (s) render_ctx_release(c);
    return s;
}

dk_grid dk_knee_fine_grid(const double profile_spacing[3])
{
    const double extent[3] = {DK_KNEE_ROI_Z, DK_KNEE_ROI_Y, DK_KNEE_ROI_X};
    dk_grid g;
    for (int a = 0; a < 3; a++) {
        double target = a == 0 ? profile_spacing[0] / ceil(profile_spacing[0] / FINE_THROUGH_MM)
                               : fmin(FINE_INPLANE_MM, profile_spacing[a]);
        int n = (int)lround(extent[a] / target);
        g.dims[a] = n < 1 ? 1 : n;
        g.spacing[a] = extent[a] / g.dims[a];
        g.origin[a] = -0.5 * (g.dims[a] - 1) * g.spacing[a];
    }
    return g;
}

dk_status dk_knee_render(const dk_knee_subject *s, const char *contrast, const dk_grid *grid,
                         const char *id, dk_volume *out, dk_err *err)
{
    const contrast_table *ct = find_contrast(contrast ? contrast : "");
    if (!ct)
        return dk_err_set(err, DK_EINVAL,
                          "synthetic knee: unknown contrast '%s' (expected dess, pd-fs or t1)",
                          contrast ? contrast : "(null)");
    dk_status st = dk_volume_alloc(out, id, grid->dims, true, err);
    if (st) return st;
    for (int a = 0; a < 3; a++) {
        out->spacing[a] = grid->spacing[a];
        out->origin[a] = grid->origin[a];
    }
    snprintf(out->source, sizeof out->source, "synthetic knee %016llx %s",
             (unsigned long long)s->seed, ct->name);
    knee_model model;
    knee_model_build(s, &model);
    render_ctx c;
    st = render_ctx_init(&c, &model, ct, grid, s, err);
    if (st) {
        dk_volume_release(out);
        return st;
    }
    for (int k = 0; k < grid->dims[0]; k += BLOCK)
        for (int j = 0; j < grid->dims[1]; j += BLOCK)
            for (int i = 0; i < grid->dims[2]; i += BLOCK) render_block(&c, k, j, i, out);
    render_ctx_release(&c);
    knee_relabel(out->label, dk_volume_voxels(out), s->classes);
    return DK_OK;
}

dk_grid dk_knee_fine_grid_fov(const double profile_spacing[3], const double fov_scale[3])
{
    dk_grid g = dk_knee_fine_grid(profile_spacing);
    for (int a = 0; a < 3 && fov_scale; a++) {
        int n = (int)lround(g.dims[a] * (fov_scale[a] > 0 ? fov_scale[a] : 1));
        n = n < BLOCK ? BLOCK : n;
        /* centred to within 2 voxels: a start a multiple of 4 voxels from the default
         * box's keeps blocks and coarse fields on the same points */
        int extra_before = BLOCK * (int)lround((n - g.dims[a]) / (2.0 * BLOCK));
        g.origin[a] -= extra_before * g.spacing[a];
        g.dims[a] = n;
    }
    return g;
}

static float max_of(const float *x, size_t n)
{
    float m = 0;
    for (size_t v = 0; v < n; v++)
        m = x[v] > m ? x[v] : m;
    return m;
}

/* Render grid extended by strip voxels beyond both edges along axis and fold the strips
 * onto the opposite edges (wrap-around); labels are the field of view's own. *unfolded_max
 * gets the largest intensity of the field of view before folding. */
static dk_status render_wrapped(const dk_knee_subject *s, const char *contrast,
                                const dk_grid *grid, int axis, int strip, const char *id,
                                dk_volume *out, float *unfolded_max, dk_err *err)
{
    dk_grid wide = *grid;
    wide.dims[axis] += 2 * strip;
    wide.origin[axis] -= strip * grid->spacing[axis];
    dk_volume ext;
    dk_status st = dk_knee_render(s, contrast, &wide, id, &ext, err);
    if (st) return st;
    st = dk_volume_alloc(out, id, grid->dims, true, err);
    if (st) {
        dk_volume_release(&ext);
        return st;
    }
    memcpy(out->spacing, grid->spacing, sizeof out->spacing);
    memcpy(out->origin, grid->origin, sizeof out->origin);
    memcpy(out->source, ext.source, sizeof out->source);
    size_t step = axis == 1 ? (size_t)wide.dims[2] : 1, v = 0;
    for (int z = 0; z < grid->dims[0]; z++) /* the field of view's own image and labels */
        for (int y = 0; y < grid->dims[1]; y++)
            for (int x = 0; x < grid->dims[2]; x++, v++) {
                size_t at = ((size_t)z * wide.dims[1] + y) * wide.dims[2] + x + strip * step;
                out->image[v] = ext.image[at];
                out->label[v] = ext.label[at];
            }
    *unfolded_max = max_of(out->image, v);
    dk_knee_fold(ext.image, wide.dims, axis, strip, out->image);
    dk_volume_release(&ext);
    return DK_OK;
}

dk_status dk_knee_synth(const dk_knee_subject *s, const dk_profile *profile,
                        const char *contrast, bool with_label, const char *id, dk_volume *out,
                        dk_err *err)
{
    dk_knee_scan scan;
    dk_knee_scan_draw(s, profile, &scan);
    return dk_knee_synth_scan(s, &scan, profile, contrast, with_label, id, out, err);
}

dk_status dk_knee_synth_scan(const dk_knee_subject *s, const dk_knee_scan *plan,
                             const dk_profile *profile, const char *contrast, bool with_label,
                             const char *id, dk_volume *out, dk_err *err)
{
    dk_grid grid = dk_knee_fine_grid_fov(profile->spacing, plan->fov_scale);
    const char *use = contrast ? contrast : profile->contrast;
    int phase = plan->phase_axis == 1 ? 1 : 2;
    int strip = plan->wrap_mm > 0 ? 4 * (int)lround(plan->wrap_mm / grid.spacing[phase] / 4) : 0;
    strip = strip > grid.dims[phase] / 2 ? 4 * (grid.dims[phase] / 8) : strip;
    dk_volume fine;
    float unfolded_max = 0;
    dk_status st = strip > 0 ? render_wrapped(s, use, &grid, phase, strip, id, &fine,
                                              &unfolded_max, err)
                             : dk_knee_render(s, use, &grid, id, &fine, err);
    if (st) return st;
    /* this scan's coil loading and SNR, around the site protocol's */
    dk_profile scan = *profile;
    scan.bias = fmin(0.9, profile->bias * (s->bias_factor > 0 ? s->bias_factor : 1));
    scan.noise = fmin(0.9, profile->noise * (s->noise_factor > 0 ? s->noise_factor : 1));
    float folded_max = strip > 0 ? max_of(fine.image, dk_volume_voxels(&fine)) : 0;
    if (folded_max > 0) /* the noise follows the anatomy's brightest tissue, not the fold's */
        scan.noise *= unfolded_max / folded_max;
    st = dk_acquire(&fine, &scan, s->seed ^ 0x3C6EF372FE94F82BULL, DK_KNEE_ANATOMY_COUNT, out,
                    err);
    dk_volume_release(&fine);
    if (st) return st;
    if (s->ghosting > 0) {
        int axis = s->phase_axis == 1 ? 1 : 2;
        uint64_t g = s->seed ^ 0x1F83D9ABFB41BD6BULL;
        int step = (int)lround(out->dims[axis] / knee_rng_uniform(&g, 3, 8));
        if (step >= 1 && step < out->dims[axis])
            st = dk_knee_ghosts(out->image, out->dims, axis, s->ghosting, step, err);
        if (st) {
            dk_volume_release(out);
            return st;
        }
    }
    if (!with_label) {
        free(out->label);
        out->label = NULL;
    }
    snprintf(out->source, sizeof out->source, "synthetic knee %016llx, %s%s, profile %.40s",
             (unsigned long long)s->seed, s->left ? "left, " : "right, ", use, profile->name);
    return DK_OK;
}
