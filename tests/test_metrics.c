/* test_metrics.c: Dice, HD95, HD and ASSD in mm (datasets/metrics.h) on cases
 * computed by hand (a one-voxel shift along the 3.3 mm axis, concentric spheres,
 * empty masks) and against an independent brute-force reference: surfaces found
 * by their definition and every pair of surface voxels measured, on tiny volumes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/metrics.h"
#include "testutil.h"

static const double clinical[3] = {3.3, 0.31, 0.31};

static size_t at3(const int d[3], int k, int j, int i)
{
    return ((size_t)k * d[1] + j) * d[2] + i;
}

/* Fill slices z0..z1 of rows y 2..d-3 and columns x 2..d-3. */
static void slab(uint8_t *m, const int d[3], int z0, int z1)
{
    for (int k = z0; k <= z1; k++)
        for (int j = 2; j < d[1] - 2; j++)
            for (int i = 2; i < d[2] - 2; i++)
                m[at3(d, k, j, i)] = 1;
}

Test(metrics, one_slice_shifted_one_voxel_along_the_thick_axis_is_3_3_mm)
{
    int d[3] = {8, 10, 12};
    uint8_t p[960] = {0}, g[960] = {0};
    slab(g, d, 3, 3);
    slab(p, d, 4, 4);
    dk_class_metrics m;
    cr_assert_eq(dk_metrics_binary(p, g, d, clinical, &m, NULL), DK_OK);
    cr_expect_float_eq(m.hd95, 3.3, 1e-12, "hd95 %.17g", m.hd95);
    cr_expect_float_eq(m.hd, 3.3, 1e-12);
    cr_expect_float_eq(m.assd, 3.3, 1e-12);
    cr_expect_eq(m.dice, 0.0);
    cr_expect_eq(m.empty, DK_METRICS_NONE_EMPTY);
}

Test(metrics, two_slices_shifted_one_voxel_half_coincide)
{
    /* every voxel of a two-slice slab is surface; the shared slice is at 0 mm, the
     * others at 3.3 mm: HD95 3.3, ASSD 1.65, Dice 1/2 */
    int d[3] = {8, 10, 12};
    uint8_t p[960] = {0}, g[960] = {0};
    slab(g, d, 2, 3);
    slab(p, d, 3, 4);
    dk_class_metrics m;
    cr_assert_eq(dk_metrics_binary(p, g, d, clinical, &m, NULL), DK_OK);
    cr_expect_float_eq(m.hd95, 3.3, 1e-12);
    cr_expect_float_eq(m.assd, 1.65, 1e-12);
    cr_expect_float_eq(m.dice, 0.5, 1e-12);
}

static void ball(uint8_t *m, const int d[3], const double s[3], double radius)
{
    for (int k = 0; k < d[0]; k++)
        for (int j = 0; j < d[1]; j++)
            for (int i = 0; i < d[2]; i++) {
                double z = (k - d[0] / 2) * s[0], y = (j - d[1] / 2) * s[1],
                       x = (i - d[2] / 2) * s[2];
                m[at3(d, k, j, i)] = x * x + y * y + z * z <= radius * radius;
            }
}

Test(metrics, concentric_spheres_are_the_radius_difference_apart)
{
    /* balls of 10 mm and 5 mm radius on a 2 x 1 x 1 mm grid: every surface voxel
     * lies within a voxel of its sphere, so all distances are 5 mm +- 2 mm and the
     * Dice is (5/10)^3 = 1/8 up to the discretisation */
    int d[3] = {15, 31, 31};
    const double s[3] = {2, 1, 1};
    size_t V = (size_t)d[0] * d[1] * d[2];
    uint8_t *outer = calloc(V, 1), *inner = calloc(V, 1);
    ball(outer, d, s, 10);
    ball(inner, d, s, 5);
    dk_class_metrics m;
    cr_assert_eq(dk_metrics_binary(inner, outer, d, s, &m, NULL), DK_OK);
    cr_expect(fabs(m.hd95 - 5) <= 2, "hd95 %g", m.hd95);
    cr_expect(fabs(m.assd - 5) <= 1, "assd %g", m.assd);
    cr_expect(m.hd >= m.hd95 && m.hd95 >= 3);
    cr_expect(fabs(m.dice - 0.25 / 1.125) < 0.05, "dice %g", m.dice); /* 2/8 / (1 + 1/8) */
    free(outer);
    free(inner);
}

Test(metrics, empty_prediction_is_dice_0_and_infinite_distance_null_in_json)
{
    int d[3] = {8, 10, 12};
    uint8_t p[960] = {0}, g[960] = {0};
    slab(g, d, 3, 4);
    dk_class_metrics m;
    cr_assert_eq(dk_metrics_binary(p, g, d, clinical, &m, NULL), DK_OK);
    cr_expect_eq(m.dice, 0.0);
    cr_expect(isinf(m.hd95) && m.hd95 > 0 && isinf(m.assd) && isinf(m.hd));
    cr_expect_eq(m.empty, DK_METRICS_PRED_EMPTY);
    json_t *j = dk_metrics_json(&m);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    cr_expect(strstr(text, "\"hd95\":null") && strstr(text, "\"assd\":null") &&
                  strstr(text, "\"empty\":\"prediction\"") && strstr(text, "\"dice\":0.0"),
              "%s", text);
    free(text);
    json_decref(j);
    cr_assert_eq(dk_metrics_binary(g, p, d, clinical, &m, NULL), DK_OK);
    cr_expect_eq(m.empty, DK_METRICS_TRUTH_EMPTY);
}

Test(metrics, both_empty_is_dice_1_and_no_distance)
{
    int d[3] = {4, 5, 6};
    uint8_t p[120] = {0}, g[120] = {0};
    dk_class_metrics m;
    cr_assert_eq(dk_metrics_binary(p, g, d, clinical, &m, NULL), DK_OK);
    cr_expect_eq(m.dice, 1.0);
    cr_expect(isnan(m.hd95) && isnan(m.assd));
    cr_expect_eq(m.empty, DK_METRICS_BOTH_EMPTY);
    json_t *j = dk_metrics_json(&m);
    cr_expect(json_is_null(json_object_get(j, "hd95")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "empty")), "both");
    json_decref(j);
}

/* ---- the brute-force reference ---- */

static int ref_surface(const uint8_t *m, const int d[3], int (*pts)[3])
{
    static const int nb[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    int n = 0;
    for (int k = 0; k < d[0]; k++)
        for (int j = 0; j < d[1]; j++)
            for (int i = 0; i < d[2]; i++) {
                if (!m[at3(d, k, j, i)]) continue;
                bool surf = false;
                for (int q = 0; q < 6 && !surf; q++) {
                    int kk = k + nb[q][0], jj = j + nb[q][1], ii = i + nb[q][2];
                    surf = kk < 0 || jj < 0 || ii < 0 || kk >= d[0] || jj >= d[1] || ii >= d[2] ||
                           !m[at3(d, kk, jj, ii)];
                }
                if (surf) pts[n][0] = k, pts[n][1] = j, pts[n][2] = i, n++;
            }
    return n;
}

static double ref_nearest(const int a[3], int (*b)[3], int nb, const double s[3])
{
    double best = INFINITY;
    for (int q = 0; q < nb; q++) {
        double dz = (a[0] - b[q][0]) * s[0], dy = (a[1] - b[q][1]) * s[1],
               dx = (a[2] - b[q][2]) * s[2];
        best = fmin(best, sqrt(dz * dz + dy * dy + dx * dx));
    }
    return best;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void reference(const uint8_t *p, const uint8_t *g, const int d[3], const double s[3],
                      double *hd95, double *assd)
{
    size_t V = (size_t)d[0] * d[1] * d[2];
    int(*sp)[3] = malloc(V * sizeof *sp), (*sg)[3] = malloc(V * sizeof *sg);
    int np = ref_surface(p, d, sp), ng = ref_surface(g, d, sg);
    double *all = malloc((size_t)(np + ng) * sizeof *all), mp = 0, mg = 0;
    for (int i = 0; i < np; i++)
        mp += all[i] = ref_nearest(sp[i], sg, ng, s);
    for (int i = 0; i < ng; i++)
        mg += all[np + i] = ref_nearest(sg[i], sp, np, s);
    *assd = (mp / np + mg / ng) / 2;
    qsort(all, (size_t)(np + ng), sizeof *all, by_value);
    double rank = 0.95 * (np + ng - 1);
    int lo = (int)rank, hi = lo + 1 < np + ng ? lo + 1 : lo;
    *hd95 = all[lo] + (all[hi] - all[lo]) * (rank - lo);
    free(sp);
    free(sg);
    free(all);
}

Test(metrics, random_blobs_match_the_brute_force_reference)
{
    const double s[3] = {3.3, 0.31, 0.37};
    for (unsigned seed = 1; seed <= 12; seed++) {
        int d[3] = {3 + (int)seed % 4, 5 + (int)seed % 5, 4 + (int)seed % 6};
        size_t V = (size_t)d[0] * d[1] * d[2];
        float *r = malloc(V * sizeof *r);
        uint8_t *p = malloc(V), *g = malloc(V);
        dk_test_fill_uniform(r, V, seed, 0, 1);
        for (size_t i = 0; i < V; i++) {
            p[i] = r[i] < 0.45f;
            g[i] = r[i] > 0.3f && r[i] < 0.8f;
        }
        p[0] = g[V - 1] = 1; /* never empty */
        double hd95, assd;
        reference(p, g, d, s, &hd95, &assd);
        dk_class_metrics m;
        cr_assert_eq(dk_metrics_binary(p, g, d, s, &m, NULL), DK_OK);
        cr_expect_float_eq(m.hd95, hd95, 1e-9, "seed %u: hd95 %.12g, reference %.12g", seed,
                           m.hd95, hd95);
        cr_expect_float_eq(m.assd, assd, 1e-9, "seed %u: assd %.12g, reference %.12g", seed,
                           m.assd, assd);
        free(r);
        free(p);
        free(g);
    }
}

Test(metrics, label_maps_give_each_class_its_binary_metrics)
{
    int d[3] = {8, 10, 12};
    uint8_t p[960] = {0}, g[960] = {0}, pm[960], gm[960];
    slab(g, d, 3, 3);
    slab(p, d, 4, 4);
    for (int i = 0; i < 960; i++) {
        if (i % 7 == 0) g[i] = 2;
        if (i % 5 == 0) p[i] = 2;
    }
    dk_class_metrics m[3], one;
    cr_assert_eq(dk_metrics_labels(p, g, d, clinical, 3, m, NULL), DK_OK);
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 960; i++)
            pm[i] = p[i] == c, gm[i] = g[i] == c;
        dk_metrics_binary(pm, gm, d, clinical, &one, NULL);
        cr_expect_eq(memcmp(&one, &m[c], sizeof one), 0, "class %d", c);
    }
    dk_err err;
    cr_expect_eq(dk_metrics_labels(p, g, d, clinical, 0, m, &err), DK_EINVAL);
    double bad[3] = {3.3, 0, 0.3};
    cr_expect_eq(dk_metrics_labels(p, g, d, bad, 3, m, &err), DK_EINVAL);
    cr_expect(strstr(err.msg, "spacing[1]"), "%s", err.msg);
}

Test(metrics, mean_and_sd_skip_non_finite_values)
{
    double x[5] = {1, 2, INFINITY, 3, NAN}, mean, sd;
    int used;
    dk_metrics_mean_sd(x, 5, &mean, &sd, &used);
    cr_expect_eq(used, 3);
    cr_expect_float_eq(mean, 2.0, 1e-12);
    cr_expect_float_eq(sd, 1.0, 1e-12);
    dk_metrics_mean_sd(x + 2, 1, &mean, &sd, &used);
    cr_expect(used == 0 && isnan(mean));
}
