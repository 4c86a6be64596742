/* test_resample.c: voxel grids and resampling: identity, exact linear ramps, extents,
 * mass and normalisation under area averaging, label majority and nearest by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/resample.h"
#include "testutil.h"

static dk_grid grid(int nz, int ny, int nx, double sz, double sy, double sx, double oz, double oy,
                    double ox)
{
    return (dk_grid){{nz, ny, nx}, {sz, sy, sx}, {oz, oy, ox}};
}

static double sum(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

static double voxel_volume(const dk_grid *g)
{
    return g->spacing[0] * g->spacing[1] * g->spacing[2];
}

Test(grid, of_volume_copies_dims_spacing_origin)
{
    dk_volume v = {.dims = {3, 4, 5}, .spacing = {0.7, 0.36, 0.35}, .origin = {-1, 2, 3}};
    dk_grid g = dk_grid_of_volume(&v);
    cr_assert_eq(g.dims[1], 4);
    cr_assert_eq(g.spacing[2], 0.35);
    cr_assert_eq(g.origin[0], -1);
    cr_assert_eq(dk_grid_voxels(&g), 60);
}

Test(grid, respaced_keeps_extent_and_centre)
{
    dk_grid src = grid(64, 160, 160, 0.7, 0.36, 0.36, 10, -20, 5);
    const double spacings[][3] = {
        {3.3, 0.31, 0.31}, {4.5, 0.30, 0.30}, {0.25, 0.25, 0.25}, {100, 100, 100}};
    for (int s = 0; s < 4; s++) {
        dk_grid g = dk_grid_respaced(&src, spacings[s]);
        for (int a = 0; a < 3; a++) {
            double old_extent = src.dims[a] * src.spacing[a];
            double new_extent = g.dims[a] * g.spacing[a];
            double old_centre = src.origin[a] + 0.5 * (src.dims[a] - 1) * src.spacing[a];
            double new_centre = g.origin[a] + 0.5 * (g.dims[a] - 1) * g.spacing[a];
            cr_assert_eq(g.spacing[a], spacings[s][a]);
            cr_assert(g.dims[a] >= 1);
            if (g.dims[a] > 1)
                cr_assert(fabs(new_extent - old_extent) <= 0.5 * g.spacing[a] + 1e-9,
                          "axis %d: extent %g -> %g at spacing %g", a, old_extent, new_extent,
                          g.spacing[a]);
            cr_assert(fabs(new_centre - old_centre) < 1e-9, "axis %d centre %g vs %g", a,
                      new_centre, old_centre);
        }
    }
    dk_grid g = dk_grid_respaced(&src, (double[3]){3.3, 0.31, 0.31});
    cr_assert_eq(g.dims[0], 14);  /* 44.8 / 3.3 = 13.6 */
    cr_assert_eq(g.dims[1], 186); /* 57.6 / 0.31 = 185.8 */
}

Test(resample, same_grid_is_identity)
{
    dk_grid g = grid(5, 6, 7, 0.7, 0.36, 0.4, 1, 2, 3);
    size_t n = dk_grid_voxels(&g);
    float in[2 * 210], out[2 * 210];
    uint8_t lab[210], lab_out[210];
    dk_test_fill_uniform(in, 2 * n, 1, -3, 3);
    for (size_t i = 0; i < n; i++)
        lab[i] = (uint8_t)(i * 7 % 5);
    dk_err err = {0};
    cr_assert_eq(dk_resample_linear(&g, in, &g, out, 2, &err), DK_OK, "%s", err.msg);
    cr_assert_arr_eq(in, out, sizeof in);
    cr_assert_eq(dk_resample_area(&g, in, &g, out, 2, &err), DK_OK, "%s", err.msg);
    cr_assert_arr_eq(in, out, sizeof in);
    cr_assert_eq(dk_resample_labels(&g, lab, &g, lab_out, 5, false, &err), DK_OK);
    cr_assert_arr_eq(lab, lab_out, sizeof lab);
    memset(lab_out, 0, sizeof lab_out);
    cr_assert_eq(dk_resample_labels(&g, lab, &g, lab_out, 5, true, &err), DK_OK);
    cr_assert_arr_eq(lab, lab_out, sizeof lab);
}

static float ramp(double z, double y, double x)
{
    return (float)(1.5 + 0.8 * z - 0.3 * y + 0.25 * x);
}

Test(resample, linear_reproduces_a_ramp_inside)
{
    dk_grid src = grid(12, 20, 18, 0.7, 0.36, 0.36, -2, 1, 0.5);
    size_t n = dk_grid_voxels(&src);
    float *in = malloc(n * sizeof *in);
    for (int k = 0; k < 12; k++)
        for (int j = 0; j < 20; j++)
            for (int i = 0; i < 18; i++)
                in[((size_t)k * 20 + j) * 18 + i] = ramp(
                    src.origin[0] + k * 0.7, src.origin[1] + j * 0.36, src.origin[2] + i * 0.36);
    /* finer, shifted, and every dst centre within the src centres' hull */
    dk_grid dst = grid(25, 23, 29, 0.31, 0.29, 0.2, -1.9, 1.1, 0.6);
    size_t m = dk_grid_voxels(&dst);
    float *out = malloc(m * sizeof *out);
    dk_err err = {0};
    cr_assert_eq(dk_resample_linear(&src, in, &dst, out, 1, &err), DK_OK, "%s", err.msg);
    double worst = 0;
    for (int k = 0; k < 25; k++)
        for (int j = 0; j < 23; j++)
            for (int i = 0; i < 29; i++) {
                float want = ramp(dst.origin[0] + k * 0.31, dst.origin[1] + j * 0.29,
                                  dst.origin[2] + i * 0.2);
                worst = fmax(worst, fabs(out[((size_t)k * 23 + j) * 29 + i] - want));
            }
    cr_assert(worst < 2e-5, "worst error %g", worst);
    /* outside the hull the border value repeats (clamp) */
    dk_grid far = grid(1, 1, 1, 1, 1, 1, -100, -100, -100);
    float corner;
    cr_assert_eq(dk_resample_linear(&src, in, &far, &corner, 1, &err), DK_OK);
    cr_assert_float_eq(corner, in[0], 1e-6);
    free(in);
    free(out);
}

/* src and dst share the low corner and the extent on every axis, so area averaging
 * must keep sum * voxel volume exactly. */
static void check_mass(dk_grid src, const double dst_spacing[3])
{
    dk_grid dst = dk_grid_respaced(&src, dst_spacing);
    for (int a = 0; a < 3; a++)
        cr_assert(fabs(dst.dims[a] * dst.spacing[a] - src.dims[a] * src.spacing[a]) < 1e-9,
                  "test setup: axis %d extents differ", a);
    size_t n = dk_grid_voxels(&src), m = dk_grid_voxels(&dst);
    float *in = malloc(n * sizeof *in), *out = malloc(m * sizeof *out);
    dk_test_fill_uniform(in, n, 7, 0, 10);
    dk_err err = {0};
    cr_assert_eq(dk_resample_area(&src, in, &dst, out, 1, &err), DK_OK, "%s", err.msg);
    double mass_in = sum(in, n) * voxel_volume(&src), mass_out = sum(out, m) * voxel_volume(&dst);
    cr_assert(fabs(mass_in - mass_out) <= 1e-5 * mass_in, "mass %.9g -> %.9g (spacing %g %g %g)",
              mass_in, mass_out, dst_spacing[0], dst_spacing[1], dst_spacing[2]);
    free(in);
    free(out);
}

Test(resample, area_preserves_mass)
{
    /* integer ratios */
    check_mass(grid(8, 12, 10, 0.5, 0.25, 0.3, 0, 0, 0), (double[3]){1.0, 0.5, 1.5});
    /* non-integer: 0.36 -> 3.3 (55 * 0.36 = 6 * 3.3), 0.25 -> 0.36 (36 * 0.25 = 25 * 0.36),
     * 0.3 -> 0.7 (7 * 0.3 = 3 * 0.7) */
    check_mass(grid(55, 36, 7, 0.36, 0.25, 0.3, -4, 2, 9), (double[3]){3.3, 0.36, 0.7});
    /* 0.7 -> 4.5 (45 * 0.7 = 7 * 4.5) and a coarse single voxel */
    check_mass(grid(45, 10, 9, 0.7, 0.31, 0.3, 1, 1, 1), (double[3]){4.5, 3.1, 2.7});
}

Test(resample, area_of_a_constant_is_the_constant)
{
    /* dst overhangs src: the overhang is ignored, not averaged in as zeros */
    dk_grid src = grid(10, 11, 12, 0.3, 0.3, 0.3, 0, 0, 0);
    dk_grid dst = dk_grid_respaced(&src, (double[3]){0.7, 0.7, 0.7});
    size_t n = dk_grid_voxels(&src), m = dk_grid_voxels(&dst);
    float *in = malloc(n * sizeof *in), *out = malloc(m * sizeof *out);
    for (size_t i = 0; i < n; i++)
        in[i] = 2.5f;
    cr_assert_eq(dk_resample_area(&src, in, &dst, out, 1, NULL), DK_OK);
    for (size_t i = 0; i < m; i++)
        cr_assert_float_eq(out[i], 2.5f, 1e-5);
    free(in);
    free(out);
}

Test(resample, probabilities_stay_normalised)
{
    enum { C = 4 };
    dk_grid src = grid(14, 20, 16, 0.7, 0.36, 0.36, 0, 0, 0);
    size_t n = dk_grid_voxels(&src);
    float *prob = malloc(C * n * sizeof *prob);
    dk_test_fill_uniform(prob, C * n, 3, 0.01f, 1);
    for (size_t v = 0; v < n; v++) {
        double s = 0;
        for (int c = 0; c < C; c++)
            s += prob[c * n + v];
        for (int c = 0; c < C; c++)
            prob[c * n + v] = (float)(prob[c * n + v] / s);
    }
    const double spacings[][3] = {{3.3, 0.31, 0.31}, {1.3, 0.8, 0.5}, {0.5, 0.2, 0.3}};
    for (int s = 0; s < 3; s++) {
        dk_grid dst = dk_grid_respaced(&src, spacings[s]);
        size_t m = dk_grid_voxels(&dst);
        float *out = malloc(C * m * sizeof *out);
        for (int linear = 0; linear < 2; linear++) {
            dk_status st = linear ? dk_resample_linear(&src, prob, &dst, out, C, NULL)
                                  : dk_resample_area(&src, prob, &dst, out, C, NULL);
            cr_assert_eq(st, DK_OK);
            for (size_t v = 0; v < m; v++) {
                double t = 0;
                for (int c = 0; c < C; c++) {
                    cr_assert(out[c * m + v] >= 0);
                    t += out[c * m + v];
                }
                cr_assert(fabs(t - 1) < 1e-5, "voxel %zu sums to %.8f (%s)", v, t,
                          linear ? "linear" : "area");
            }
        }
        free(out);
    }
    free(prob);
}

Test(resample, channels_are_independent_planes)
{
    dk_grid src = grid(4, 6, 8, 1, 1, 1, 0, 0, 0), dst = grid(2, 3, 4, 2, 2, 2, 0.5, 0.5, 0.5);
    float in[3 * 192], out[3 * 24], one[24];
    dk_test_fill_uniform(in, 3 * 192, 11, 0, 1);
    cr_assert_eq(dk_resample_area(&src, in, &dst, out, 3, NULL), DK_OK);
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(dk_resample_area(&src, in + c * 192, &dst, one, 1, NULL), DK_OK);
        cr_assert_arr_eq(one, out + c * 24, sizeof one);
    }
    /* 2x2x2 block means, by hand, for the first output voxel */
    double m = 0;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 2; i++)
                m += in[(k * 6 + j) * 8 + i] / 8.0;
    cr_assert_float_eq(out[0], m, 1e-6);
}

Test(resample, label_majority_by_hand)
{
    uint8_t out[2];
    /* 1 mm voxels into 3 mm: [1 1 2 | 0 2 2] */
    dk_grid src = grid(1, 1, 6, 1, 1, 1, 0, 0, 0), dst = grid(1, 1, 2, 1, 1, 3, 0, 0, 1);
    uint8_t a[6] = {1, 1, 2, 0, 2, 2};
    cr_assert_eq(dk_resample_labels(&src, a, &dst, out, 3, true, NULL), DK_OK);
    cr_assert_eq(out[0], 1);
    cr_assert_eq(out[1], 2);
    /* 1 mm into 2.5 mm: the middle voxel is split in half between the two outputs:
     * out0 = {0: 1, 3: 1.5} -> 3; out1 = {3: 0.5, 1: 2} -> 1 */
    src = grid(1, 1, 5, 1, 1, 1, 0, 0, 0);
    dst = grid(1, 1, 2, 1, 1, 2.5, 0, 0, 0.75);
    uint8_t b[5] = {0, 3, 3, 1, 1};
    cr_assert_eq(dk_resample_labels(&src, b, &dst, out, 4, true, NULL), DK_OK);
    cr_assert_eq(out[0], 3);
    cr_assert_eq(out[1], 1);
    /* exact tie goes to the lower class id */
    src = grid(1, 1, 2, 1, 1, 1, 0, 0, 0);
    dst = grid(1, 1, 1, 1, 1, 2, 0, 0, 0.5);
    uint8_t c[2] = {2, 1};
    cr_assert_eq(dk_resample_labels(&src, c, &dst, out, 3, true, NULL), DK_OK);
    cr_assert_eq(out[0], 1);
    /* 3D: a 2x2x2 block with five 2s and three 1s */
    src = grid(2, 2, 2, 1, 1, 1, 0, 0, 0);
    dst = grid(1, 1, 1, 2, 2, 2, 0.5, 0.5, 0.5);
    uint8_t d[8] = {1, 2, 2, 1, 2, 1, 2, 2};
    cr_assert_eq(dk_resample_labels(&src, d, &dst, out, 3, true, NULL), DK_OK);
    cr_assert_eq(out[0], 2);
}

Test(resample, label_nearest_by_hand)
{
    dk_grid src = grid(1, 1, 4, 1, 1, 1, 0, 0, 0);
    uint8_t in[4] = {5, 6, 7, 8}, out[8];
    /* centres at 0.2, 1.7, 3.2 -> voxels 0, 2, 3 (3.2 clamps to the last) */
    dk_grid dst = grid(1, 1, 3, 1, 1, 1.5, 0, 0, 0.2);
    cr_assert_eq(dk_resample_labels(&src, in, &dst, out, 9, false, NULL), DK_OK);
    cr_assert_eq(out[0], 5);
    cr_assert_eq(out[1], 7);
    cr_assert_eq(out[2], 8);
    /* up-sampling by 2 over the same extent: each label twice */
    dst = grid(1, 1, 8, 1, 1, 0.5, 0, 0, -0.25);
    cr_assert_eq(dk_resample_labels(&src, in, &dst, out, 9, false, NULL), DK_OK);
    const uint8_t want[8] = {5, 5, 6, 6, 7, 7, 8, 8};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(out[i], want[i], "x %d: %d vs %d", i, out[i], want[i]);
}

Test(resample, bad_labels_and_grids_are_named)
{
    dk_grid src = grid(2, 2, 2, 1, 1, 1, 0, 0, 0), dst = grid(1, 1, 1, 2, 2, 2, 0.5, 0.5, 0.5);
    uint8_t in[8] = {0, 0, 0, 0, 0, 0, 3, 0}, out[1];
    dk_err err = {0};
    cr_assert_eq(dk_resample_labels(&src, in, &dst, out, 3, true, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "label 3 at voxel (z 1, y 1, x 0)"), "%s", err.msg);
    dst.spacing[1] = 0;
    float f[8] = {0}, g[1];
    cr_assert_eq(dk_resample_area(&src, f, &dst, g, 1, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "destination grid axis 1"), "%s", err.msg);
}

Test(resample, composed_taps_match_two_passes)
{
    dk_taps a, b, ab;
    cr_assert_eq(dk_taps_area(20, 0, 0.36, 7, 0.5, 1.1, &a, NULL), DK_OK);
    cr_assert_eq(dk_taps_linear(20, 0, 0.36, 20, 0.1, 0.36, &b, NULL), DK_OK);
    cr_assert_eq(dk_taps_compose(&a, &b, &ab, NULL), DK_OK);
    float x[20], mid[20], two[7], one[7];
    dk_test_fill_uniform(x, 20, 5, 0, 1);
    dk_taps id1, id2;
    cr_assert_eq(dk_taps_linear(1, 0, 1, 1, 0, 1, &id1, NULL), DK_OK);
    cr_assert_eq(dk_taps_linear(1, 0, 1, 1, 0, 1, &id2, NULL), DK_OK);
    cr_assert(id1.identity);
    dk_taps t1[3] = {id1, id2, b}, t2[3] = {id1, id2, a}, t3[3] = {id1, id2, ab};
    int d20[3] = {1, 1, 20};
    cr_assert_eq(dk_resample_separable(d20, x, t1, mid, 1, NULL), DK_OK);
    cr_assert_eq(dk_resample_separable(d20, mid, t2, two, 1, NULL), DK_OK);
    cr_assert_eq(dk_resample_separable(d20, x, t3, one, 1, NULL), DK_OK);
    cr_assert(dk_test_max_rel_diff(one, two, 7) < 1e-6);
    dk_taps_release(&a);
    dk_taps_release(&b);
    dk_taps_release(&ab);
    dk_taps_release(&id1);
    dk_taps_release(&id2);
}

/* Direct triple sum of w_z * w_y * w_x * in over every tap: the reference both
 * execution paths (whole volumes, or plane by plane when z runs last) must match. */
static void check_against_triple_sum(dk_grid src, dk_grid dst)
{
    dk_taps t[3];
    for (int a = 0; a < 3; a++)
        cr_assert_eq(dk_taps_area(src.dims[a], src.origin[a], src.spacing[a], dst.dims[a],
                                  dst.origin[a], dst.spacing[a], &t[a], NULL),
                     DK_OK);
    size_t n = dk_grid_voxels(&src), m = dk_grid_voxels(&dst);
    float *in = malloc(2 * n * sizeof *in), *out = malloc(2 * m * sizeof *out);
    dk_test_fill_uniform(in, 2 * n, 9, -1, 1);
    cr_assert_eq(dk_resample_area(&src, in, &dst, out, 2, NULL), DK_OK);
    double worst = 0;
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < dst.dims[0]; k++)
            for (int j = 0; j < dst.dims[1]; j++)
                for (int i = 0; i < dst.dims[2]; i++) {
                    double want = 0;
                    for (int p = t[0].start[k]; p < t[0].start[k + 1]; p++)
                        for (int q = t[1].start[j]; q < t[1].start[j + 1]; q++)
                            for (int r = t[2].start[i]; r < t[2].start[i + 1]; r++)
                                want += (double)t[0].weight[p] * t[1].weight[q] * t[2].weight[r] *
                                        in[c * n +
                                           ((size_t)t[0].index[p] * src.dims[1] + t[1].index[q]) *
                                               src.dims[2] +
                                           t[2].index[r]];
                    size_t o = c * m + ((size_t)k * dst.dims[1] + j) * dst.dims[2] + i;
                    worst = fmax(worst, fabs(out[o] - want));
                }
    cr_assert(worst < 1e-5, "worst %g", worst);
    for (int a = 0; a < 3; a++)
        dk_taps_release(&t[a]);
    free(in);
    free(out);
}

Test(resample, both_execution_paths_match_the_triple_sum)
{
    /* z refined while y, x shrink: z runs last, plane by plane */
    check_against_triple_sum(grid(6, 40, 40, 1, 0.25, 0.25, 0, 0, 0),
                             grid(12, 8, 8, 0.5, 1.25, 1.25, -0.25, 0.5, 0.5));
    /* z shrinks most: whole-volume passes */
    check_against_triple_sum(grid(40, 6, 6, 0.25, 1, 1, 0, 0, 0),
                             grid(4, 12, 12, 2.5, 0.5, 0.5, 1.1, -0.2, -0.2));
}

/* Two slices of 2 mm to 1 mm (finer: linear, clamped at the ends) and back (coarser:
 * box-overlap): by hand, class 1 = [0, 1] -> [0, .25, .75, 1] -> [.125, .875]; the
 * two classes still sum to one and the arg-max round trip is exact. */
Test(resample_image, round_trip_by_hand_keeps_probabilities_and_argmax)
{
    dk_grid site = grid(2, 1, 1, 2, 1, 1, 0, 0, 0);
    const double fine_spacing[3] = {1, 1, 1};
    dk_grid fine = dk_grid_respaced(&site, fine_spacing);
    cr_assert_eq(fine.dims[0], 4);
    cr_assert_float_eq(fine.origin[0], -0.5, 1e-12);
    const float probs[4] = {1, 0, 0, 1}; /* class 0 plane, then class 1 */
    float up[8], back[4];
    dk_err err = {0};
    cr_assert_eq(dk_resample_image(&site, probs, &fine, up, 2, &err), DK_OK, "%s", err.msg);
    const float want_up[4] = {0, 0.25f, 0.75f, 1};
    for (int k = 0; k < 4; k++) {
        cr_expect_float_eq(up[4 + k], want_up[k], 1e-6, "fine voxel %d: %g", k, up[4 + k]);
        cr_expect_float_eq(up[k] + up[4 + k], 1, 1e-6);
    }
    cr_assert_eq(dk_resample_image(&fine, up, &site, back, 2, &err), DK_OK, "%s", err.msg);
    cr_expect_float_eq(back[2], 0.125f, 1e-6, "%g", back[2]);
    cr_expect_float_eq(back[3], 0.875f, 1e-6, "%g", back[3]);
    cr_expect_float_eq(back[0] + back[2], 1, 1e-6);
    cr_expect(back[0] > back[2] && back[3] > back[1], "arg-max changed");
}

/* Per axis the rule is chosen by spacing: 3x coarser along y averages (the mean of
 * [0, 0, 3] is 1, where linear at the centre would give 0); same spacing along z and
 * x is the identity. */
Test(resample_image, coarser_axes_average_and_equal_axes_copy)
{
    dk_grid src = grid(1, 3, 1, 1, 1, 1, 0, 0, 0);
    const double spacing[3] = {1, 3, 1};
    dk_grid dst = dk_grid_respaced(&src, spacing);
    cr_assert_eq(dst.dims[1], 1);
    const float in[3] = {0, 0, 3};
    float out[1];
    cr_assert_eq(dk_resample_image(&src, in, &dst, out, 1, NULL), DK_OK);
    cr_expect_float_eq(out[0], 1.0f, 1e-6, "%g", out[0]);
    float same[3];
    cr_assert_eq(dk_resample_image(&src, in, &src, same, 1, NULL), DK_OK);
    cr_expect_arr_eq(same, in, sizeof in);
}
