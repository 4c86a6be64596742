/* augment.c: appearance and resolution augmentation of a teacher patch (augment.h):
 * per-label random intensities, gamma, inversion, thick slices. The patch's geometry
 * (sampling, flips, rotation) is patches.c; the config parsing is train_config.c. */
#include "teacher/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/resample.h"

/* Between two background knots the curve's slope stays in +-this: steeper would
 * amplify the noise of a narrow intensity band into a texture no scanner makes;
 * negative slopes are allowed (fat-suppression darkens fat below muscle). */
#define BG_MAX_SLOPE 2.0f
#define HIST_BINS 256

dk_appearance_config dk_appearance_config_off(void)
{
    return (dk_appearance_config){.gamma_range = {1, 1}, .thick_slices_max = 1.5f};
}

static float uniform(dk_rng *rng, float lo, float hi)
{
    return lo + (hi - lo) * (float)dk_rng_uniform(rng);
}

/* A Bernoulli draw, or none at all when p is 0 (the random stream of runs without
 * the transform stays what it was). */
static bool chance(dk_rng *rng, float p)
{
    return p > 0 && dk_rng_uniform(rng) < p;
}

void dk_appearance_draw(const dk_appearance_config *c, int classes, dk_rng *rng,
                        dk_appearance_params *p)
{
    memset(p, 0, sizeof *p);
    /* the draw order is fixed: a run's reproducibility depends on it */
    if ((p->label_intensity = chance(rng, c->label_intensity_p))) {
        float r = c->label_intensity_range;
        for (int k = 0; k < DK_APPEARANCE_BG_KNOTS; k++)
            p->background_level[k] = uniform(rng, -r, r);
        for (int l = 1; l < classes; l++) {
            p->label_level[l] = uniform(rng, -r, r);
            p->label_contrast[l] = uniform(rng, 0.75f, 1.25f);
        }
    }
    if (chance(rng, c->gamma_p))
        p->gamma = expf(uniform(rng, logf(c->gamma_range[0]), logf(c->gamma_range[1])));
    p->invert = chance(rng, c->invert_p);
    if (chance(rng, c->thick_slices_p)) {
        p->thick = uniform(rng, 1.5f, c->thick_slices_max);
        p->thick_phase = uniform(rng, 0, p->thick);
    }
}

static void mean_sd(const float *x, size_t n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(ss / (double)n);
}

void dk_augment_gamma(float *x, size_t n, float gamma)
{
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    if (!(hi > lo)) return;
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * powf((x[i] - lo) / (hi - lo), gamma);
}

/* The background's quantiles (i + 1/2) / K from a histogram of its voxels. */
static bool background_knots(const float *x, const uint8_t *label, size_t n, float q[])
{
    float lo = INFINITY, hi = -INFINITY;
    size_t count = 0, hist[HIST_BINS] = {0};
    for (size_t i = 0; i < n; i++)
        if (label[i] == 0) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
            count++;
        }
    if (count == 0 || !(hi > lo)) return false;
    float w = (hi - lo) / HIST_BINS;
    for (size_t i = 0; i < n; i++)
        if (label[i] == 0) hist[(int)fminf((x[i] - lo) / w, HIST_BINS - 1)]++;
    size_t seen = 0;
    int b = 0;
    for (int k = 0; k < DK_APPEARANCE_BG_KNOTS; k++) {
        double want = (k + 0.5) / DK_APPEARANCE_BG_KNOTS * (double)count;
        while (b < HIST_BINS - 1 && (double)(seen + hist[b]) < want)
            seen += hist[b++];
        q[k] = lo + w * (b + 0.5f);
    }
    return true;
}

/* Background: a random curve through (q_k, level_k) with its slopes limited, slope 1
 * beyond the end knots; texture within each band survives, its order may not. */
static void background_curve(const dk_appearance_params *p, float *x, const uint8_t *label,
                             size_t n)
{
    float q[DK_APPEARANCE_BG_KNOTS], y[DK_APPEARANCE_BG_KNOTS];
    if (!background_knots(x, label, n, q)) return;
    y[0] = p->background_level[0];
    for (int k = 1; k < DK_APPEARANCE_BG_KNOTS; k++) {
        float dq = q[k] - q[k - 1], lim = BG_MAX_SLOPE * dq;
        y[k] = y[k - 1] + fmaxf(-lim, fminf(lim, p->background_level[k] - y[k - 1]));
    }
    const int K = DK_APPEARANCE_BG_KNOTS;
    for (size_t i = 0; i < n; i++) {
        if (label[i]) continue;
        float v = x[i];
        if (v <= q[0]) x[i] = y[0] + (v - q[0]);
        else if (v >= q[K - 1]) x[i] = y[K - 1] + (v - q[K - 1]);
        else {
            int k = 1;
            while (v > q[k])
                k++;
            float t = q[k] > q[k - 1] ? (v - q[k - 1]) / (q[k] - q[k - 1]) : 0;
            x[i] = y[k - 1] + t * (y[k] - y[k - 1]);
        }
    }
}

/* SynthSeg draws every label's intensity afresh; a labelled tissue here keeps its
 * texture (the deviation from its mean, scaled by label_contrast) around a new level,
 * since the synthetic textures carry real anatomy (trabecular marrow, cartilage
 * layers) that a flat Gaussian would erase. */
static void label_intensities(const dk_appearance_params *p, int classes, float *x,
                              const uint8_t *label, size_t n)
{
    double sum[DK_MAX_CLASSES] = {0};
    size_t count[DK_MAX_CLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        sum[label[i]] += x[i];
        count[label[i]]++;
    }
    background_curve(p, x, label, n);
    float mean[DK_MAX_CLASSES];
    for (int c = 1; c < classes; c++)
        mean[c] = count[c] ? (float)(sum[c] / (double)count[c]) : 0;
    for (size_t i = 0; i < n; i++) {
        int c = label[i];
        if (c) x[i] = p->label_level[c] + p->label_contrast[c] * (x[i] - mean[c]);
    }
}

dk_status dk_augment_thick_slices(float *image, const int patch[3], float thick, float phase,
                                  dk_err *err)
{
    const int nz = patch[0];
    /* slabs centred at phase + k * thick, every one that overlaps the patch (the first
     * centre kept inside a patch thinner than the phase) */
    double origin = fmin(phase, nz - 1.0);
    int slabs = (int)ceil((nz - 0.5 + thick / 2 - origin) / thick);
    if (slabs < 1) slabs = 1;
    dk_taps taps[3] = {{0}}, down = {0}, up = {0};
    size_t n = (size_t)patch[0] * patch[1] * patch[2];
    float *out = malloc(n * sizeof *out);
    dk_status st = out ? DK_OK : dk_err_set(err, DK_ENOMEM, "thick slices: no memory");
    if (!st) st = dk_taps_area(nz, 0, 1, slabs, origin, thick, &down, err);
    if (!st) st = dk_taps_linear(slabs, origin, thick, nz, 0, 1, &up, err);
    if (!st) st = dk_taps_compose(&up, &down, &taps[0], err);
    for (int a = 1; !st && a < 3; a++)
        st = dk_taps_linear(patch[a], 0, 1, patch[a], 0, 1, &taps[a], err);
    if (!st) st = dk_resample_separable(patch, image, taps, out, 1, err);
    if (!st) memcpy(image, out, n * sizeof *out);
    for (int a = 0; a < 3; a++)
        dk_taps_release(&taps[a]);
    dk_taps_release(&down);
    dk_taps_release(&up);
    free(out);
    return st;
}

dk_status dk_appearance_apply(const dk_appearance_params *p, const int patch[3], int classes,
                              float *image, const uint8_t *label, dk_err *err)
{
    const size_t n = (size_t)patch[0] * patch[1] * patch[2];
    bool intensity = p->label_intensity || p->gamma > 0 || p->invert;
    double m0, s0;
    if (intensity) mean_sd(image, n, &m0, &s0);
    if (p->label_intensity) label_intensities(p, classes, image, label, n);
    if (p->gamma > 0) dk_augment_gamma(image, n, p->gamma);
    if (p->invert)
        for (size_t i = 0; i < n; i++)
            image[i] = -image[i];
    if (intensity) {
        /* the network sees z-scored volumes: keep the patch's level and spread */
        double m1, s1;
        mean_sd(image, n, &m1, &s1);
        float k = s1 > 1e-6 ? (float)(s0 / s1) : 1.0f;
        for (size_t i = 0; i < n; i++)
            image[i] = (float)(m0 + (image[i] - m1) * k);
    }
    return p->thick > 0 ? dk_augment_thick_slices(image, patch, p->thick, p->thick_phase, err)
                        : DK_OK;
}
