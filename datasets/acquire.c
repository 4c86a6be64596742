/* acquire.c: simulated acquisition of a fine-grid scan at a site profile (acquire.h).
 *
 * The slice profile is one sparse z operator (each site slice sees the fine slices under
 * its profile), applied together with the in-plane area averaging in a single separable
 * pass. Bias and noise are then applied on the (small) output grid. */
#include "datasets/acquire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/resample.h"

/* splitmix64's finaliser: a counter-based generator is just mix(key + counter). */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform_at(uint64_t key, uint64_t counter)
{
    return (double)(mix64(key + counter * 0x9E3779B97F4A7C15ULL) >> 11) * 0x1.0p-53;
}

/* The slice profile of a 2D multi-slice acquisition (FSE): flat over the slice with
 * raised-cosine edges (each SLICE_EDGE of the thickness wide), FWHM = thickness, and
 * zero beyond: with thickness < spacing the gap between slices is never seen. u is the
 * distance from the slice centre in slice thicknesses. */
#define SLICE_EDGE 0.2

static double slice_profile(double u)
{
    u = fabs(u);
    if (u <= 0.5 - 0.5 * SLICE_EDGE) return 1;
    if (u >= 0.5 + 0.5 * SLICE_EDGE) return 0;
    return 0.5 + 0.5 * cos(M_PI * (u - (0.5 - 0.5 * SLICE_EDGE)) / SLICE_EDGE);
}

/* The z operator fine -> site: each site slice is the profile-weighted mean of the fine
 * slices under its profile, the profile centred on the site slice. A profile thinner
 * than one fine slice takes the nearest fine slice. */
static dk_status slice_taps(const dk_grid *fine, const dk_grid *site, double thickness, dk_taps *t,
                            dk_err *err)
{
    int n = fine->dims[0], m = site->dims[0];
    double reach = thickness * (0.5 + 0.5 * SLICE_EDGE);
    int per_slice = (int)ceil(2 * reach / fine->spacing[0]) + 2;
    dk_status st = dk_taps_alloc(t, n, m, (size_t)m * per_slice, err);
    if (st) return st;
    int p = 0;
    for (int k = 0; k < m; k++) {
        double centre = site->origin[0] + k * site->spacing[0], total = 0;
        double f = (centre - fine->origin[0]) / fine->spacing[0];
        int lo = (int)ceil(f - reach / fine->spacing[0]),
            hi = (int)floor(f + reach / fine->spacing[0]);
        int first = p;
        for (int i = lo < 0 ? 0 : lo; i <= hi && i < n; i++) {
            double w = thickness > 0 ? slice_profile((i - f) * fine->spacing[0] / thickness) : 0;
            if (w <= 0) continue;
            t->index[p] = i;
            t->weight[p++] = (float)w;
            total += w;
        }
        if (p == first) { /* thinner than a fine slice, or off the fine grid */
            int i = (int)lround(f);
            t->index[p] = i < 0 ? 0 : i >= n ? n - 1 : i;
            t->weight[p++] = 1;
            total = 1;
        }
        for (int q = first; q < p; q++)
            t->weight[q] = (float)(t->weight[q] / total);
        t->start[k + 1] = p;
    }
    t->identity = false;
    return DK_OK;
}

/* The three operators fine -> profile grid, the z one being the slice profile. */
static dk_status acquisition_taps(const dk_grid *fine, const dk_grid *site, double thickness,
                                  dk_taps taps[3], dk_err *err)
{
    memset(taps, 0, 3 * sizeof *taps);
    dk_status st = slice_taps(fine, site, thickness, &taps[0], err);
    for (int a = 1; a < 3 && !st; a++)
        st = dk_taps_area(fine->dims[a], fine->origin[a], fine->spacing[a], site->dims[a],
                          site->origin[a], site->spacing[a], &taps[a], err);
    if (st)
        for (int a = 0; a < 3; a++)
            dk_taps_release(&taps[a]);
    return st;
}

/* Per axis, a few low-order cosines with seeded amplitudes and phases; the field is
 * 1 + bias * sum_t a_t cz_t(z) cy_t(y) cx_t(x) / sum_t |a_t|, so |field - 1| <= bias.
 * Positions run over [0, 1] across the volume, so the field is equally smooth at
 * every resolution. */
#define BIAS_TERMS 4

typedef struct bias_term {
    double scale;             /* bias * a_t / sum |a_t| */
    double step[3], start[3]; /* cosine argument: start + step * i along each axis */
} bias_term;

static void bias_terms(const int dims[3], double bias, uint64_t seed, bias_term terms[BIAS_TERMS])
{
    uint64_t key = mix64(seed ^ 0xB1A5F1E1DULL), c = 0;
    double norm = 0;
    for (int t = 0; t < BIAS_TERMS; t++) {
        terms[t].scale = 2 * uniform_at(key, c++) - 1;
        norm += fabs(terms[t].scale);
        for (int a = 0; a < 3; a++) {
            double half_waves = 0.5 * floor(3 * uniform_at(key, c++)); /* 0, 0.5 or 1 */
            terms[t].step[a] = M_PI * half_waves / dims[a];
            terms[t].start[a] = 0.5 * terms[t].step[a] + 2 * M_PI * uniform_at(key, c++);
        }
    }
    for (int t = 0; t < BIAS_TERMS; t++)
        terms[t].scale *= norm > 0 ? bias / norm : 0;
}

void dk_acquire_bias_field(const int dims[3], double bias, uint64_t seed, float *field)
{
    bias_term terms[BIAS_TERMS];
    bias_terms(dims, bias, seed, terms);
    size_t plane = (size_t)dims[1] * dims[2];
    for (int z = 0; z < dims[0]; z++)
        for (int y = 0; y < dims[1]; y++) {
            /* along x, cos(start + step i) by the three-term recurrence: no trig per voxel */
            double amp[BIAS_TERMS], prev[BIAS_TERMS], cur[BIAS_TERMS], twice_cos[BIAS_TERMS];
            for (int t = 0; t < BIAS_TERMS; t++) {
                const bias_term *b = &terms[t];
                amp[t] = b->scale * cos(b->start[0] + b->step[0] * z) *
                         cos(b->start[1] + b->step[1] * y);
                cur[t] = cos(b->start[2]);
                prev[t] = cos(b->start[2] - b->step[2]);
                twice_cos[t] = 2 * cos(b->step[2]);
            }
            float *row = field + z * plane + (size_t)y * dims[2];
            for (int x = 0; x < dims[2]; x++) {
                double f = 1.0;
                for (int t = 0; t < BIAS_TERMS; t++) {
                    f += amp[t] * cur[t];
                    double next = twice_cos[t] * cur[t] - prev[t];
                    prev[t] = cur[t];
                    cur[t] = next;
                }
                row[x] = (float)f;
            }
        }
}

/* Rician magnitude: |signal + sigma (n1 + i n2)| with n1, n2 standard normals drawn
 * from (seed, voxel index) alone. */
static void add_rician_noise(float *image, size_t n, double sigma, uint64_t seed)
{
    uint64_t key = mix64(seed ^ 0x5E1C1A4ULL);
    for (size_t v = 0; v < n; v++) {
        double u1 = uniform_at(key, 2 * (uint64_t)v), u2 = uniform_at(key, 2 * (uint64_t)v + 1);
        double r = sqrt(-2.0 * log(u1 > 0 ? u1 : 0x1.0p-53)), angle = 2 * M_PI * u2;
        double re = image[v] + sigma * r * cos(angle), im = sigma * r * sin(angle);
        image[v] = (float)sqrt(re * re + im * im);
    }
}

static dk_status check_inputs(const dk_volume *fine, const dk_profile *profile, int n_classes,
                              dk_err *err)
{
    if (!fine->image)
        return dk_err_set(err, DK_EINVAL, "acquire: volume '%s' has no image", fine->id);
    for (int a = 0; a < 3; a++) {
        if (fine->dims[a] < 1 || !(fine->spacing[a] > 0))
            return dk_err_set(err, DK_EINVAL, "acquire: volume '%s' axis %d: dims %d spacing %g",
                              fine->id, a, fine->dims[a], fine->spacing[a]);
        if (!(profile->spacing[a] > 0))
            return dk_err_set(err, DK_EINVAL,
                              "acquire: profile '%s' spacing[%d] = %g (expected > 0)",
                              profile->name, a, profile->spacing[a]);
    }
    if (!(profile->slice_thickness >= 0) || !(profile->noise >= 0) || !(profile->bias >= 0) ||
        !(profile->bias < 1))
        return dk_err_set(err, DK_EINVAL,
                          "acquire: profile '%s': slice_thickness %g, noise %g, bias %g "
                          "(expected >= 0, bias < 1)",
                          profile->name, profile->slice_thickness, profile->noise, profile->bias);
    if (fine->label && (n_classes < 1 || n_classes > DK_MAX_CLASSES))
        return dk_err_set(err, DK_EINVAL, "acquire: class count %d (expected 1..%d)", n_classes,
                          DK_MAX_CLASSES);
    return DK_OK;
}

static dk_status alloc_output(const dk_volume *fine, const dk_profile *profile, uint64_t seed,
                              const dk_grid *site, dk_volume *out, dk_err *err)
{
    memset(out, 0, sizeof *out);
    size_t n = dk_grid_voxels(site);
    out->image = malloc(n * sizeof *out->image);
    out->label = fine->label ? malloc(n) : NULL;
    if (!out->image || (fine->label && !out->label)) {
        free(out->image);
        free(out->label);
        memset(out, 0, sizeof *out);
        return dk_err_set(err, DK_ENOMEM, "acquire: no memory for a %dx%dx%d volume", site->dims[0],
                          site->dims[1], site->dims[2]);
    }
    snprintf(out->id, sizeof out->id, "%s", fine->id);
    snprintf(out->split, sizeof out->split, "%s", fine->split);
    snprintf(out->source, sizeof out->source, "acquired at profile %.40s seed=%llu from %.50s",
             profile->name, (unsigned long long)seed, fine->source);
    memcpy(out->direction, fine->direction, sizeof out->direction);
    for (int a = 0; a < 3; a++) {
        out->dims[a] = site->dims[a];
        out->spacing[a] = site->spacing[a];
        out->origin[a] = site->origin[a];
    }
    return DK_OK;
}

static float image_max(const float *x, size_t n)
{
    float m = 0;
    for (size_t v = 0; v < n; v++)
        if (x[v] > m) m = x[v];
    return m;
}

/* Bias field applied in place; computed into the caller's scratch of n floats. */
static void apply_bias(float *image, const int dims[3], double bias, uint64_t seed, float *scratch)
{
    if (bias <= 0) return;
    dk_acquire_bias_field(dims, bias, seed, scratch);
    size_t n = (size_t)dims[0] * dims[1] * dims[2];
    for (size_t v = 0; v < n; v++)
        image[v] *= scratch[v];
}

dk_status dk_acquire(const dk_volume *fine, const dk_profile *profile, uint64_t seed, int n_classes,
                     dk_volume *out, dk_err *err)
{
    dk_status st = check_inputs(fine, profile, n_classes, err);
    if (st) return st;
    dk_grid fine_grid = dk_grid_of_volume(fine);
    dk_grid site = dk_grid_respaced(&fine_grid, profile->spacing);
    st = alloc_output(fine, profile, seed, &site, out, err);
    if (st) return st;
    dk_taps taps[3];
    st = acquisition_taps(&fine_grid, &site, profile->slice_thickness, taps, err);
    if (!st) {
        st = dk_resample_separable(fine->dims, fine->image, taps, out->image, 1, err);
        for (int a = 0; a < 3; a++)
            dk_taps_release(&taps[a]);
    }
    size_t n = dk_grid_voxels(&site);
    if (!st && profile->bias > 0) {
        float *field = malloc(n * sizeof *field);
        if (!field)
            st = dk_err_set(err, DK_ENOMEM, "acquire: no memory for the bias field");
        else
            apply_bias(out->image, site.dims, profile->bias, seed, field);
        free(field);
    }
    if (!st && profile->noise > 0) {
        double sigma = profile->noise * image_max(fine->image, dk_volume_voxels(fine));
        add_rician_noise(out->image, n, sigma, seed);
    }
    if (!st && fine->label)
        st = dk_resample_labels(&fine_grid, fine->label, &site, out->label, n_classes, true, err);
    if (st) {
        free(out->image);
        free(out->label);
        memset(out, 0, sizeof *out);
        return dk_err_prefix(err, st, "acquiring '%s' at profile '%s'", fine->id, profile->name);
    }
    return DK_OK;
}
