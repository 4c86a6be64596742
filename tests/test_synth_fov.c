/* test_synth_fov.c: the field of view a site's technologist plans per scan (issue #12):
 * its size and slice coverage (dk_knee_scan_draw, dk_knee_fine_grid_fov) and wrap-around
 * along the phase-encode axis (dk_knee_fold). Profile validation of the planning fields
 * is in test_profile.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth_knee.h"
#include "datasets/synth_quality.h"
#include "testutil.h"

static void render(const dk_knee_subject *s, const dk_grid *g, dk_volume *v)
{
    dk_err err = {0};
    cr_assert_eq(dk_knee_render(s, "pd-fs", g, "t", v, &err), DK_OK, "%s", err.msg);
}

/* Voxels of a and b at the same place (both grids on one lattice) that differ, in
 * label and in image; *common gets how many there are. */
static void compare_overlap(const dk_volume *a, const dk_volume *b, size_t *common,
                            size_t *label_diff, size_t *image_diff)
{
    int off[3];
    for (int d = 0; d < 3; d++) {
        double k = (b->origin[d] - a->origin[d]) / a->spacing[d];
        cr_assert_float_eq(k, round(k), 1e-6, "grids on one lattice (axis %d: %g)", d, k);
        off[d] = (int)lround(k); /* b's voxel 0 is a's voxel off */
    }
    *common = *label_diff = *image_diff = 0;
    for (int k = 0; k < b->dims[0]; k++)
        for (int j = 0; j < b->dims[1]; j++)
            for (int i = 0; i < b->dims[2]; i++) {
                int ka = k + off[0], ja = j + off[1], ia = i + off[2];
                if (ka < 0 || ja < 0 || ia < 0 || ka >= a->dims[0] || ja >= a->dims[1] ||
                    ia >= a->dims[2])
                    continue;
                size_t p = ((size_t)ka * a->dims[1] + ja) * a->dims[2] + ia,
                       q = ((size_t)k * b->dims[1] + j) * b->dims[2] + i;
                (*common)++;
                *label_diff += a->label[p] != b->label[q];
                *image_diff += a->image[p] != b->image[q];
            }
}

Test(fov, resized_and_moved_fields_of_view_agree_where_they_overlap, .timeout = 120)
{
    const double spacing[3] = {3.3, 0.31, 0.31};
    dk_knee_subject s = dk_test_knee_healthy(31, 2);
    dk_grid full = dk_knee_fine_grid_fov(spacing, NULL),
            bigger = dk_knee_fine_grid_fov(spacing, (double[3]){1.12, 1.07, 1.05}),
            moved = dk_knee_fine_grid_fov(spacing, (double[3]){0.8, 0.93, 0.9});
    dk_grid plain = dk_knee_fine_grid(spacing);
    for (int d = 0; d < 3; d++)
        cr_assert(full.dims[d] == plain.dims[d] && full.origin[d] == plain.origin[d] &&
                      full.spacing[d] == plain.spacing[d],
                  "scale 1 is the default box");
    cr_assert_gt(bigger.dims[1], full.dims[1]);
    cr_assert_lt(moved.dims[0], full.dims[0]);
    /* the technologist also places the box elsewhere: 12, -8, 8 voxels */
    moved.origin[0] += 12 * moved.spacing[0];
    moved.origin[1] -= 8 * moved.spacing[1];
    moved.origin[2] += 8 * moved.spacing[2];
    dk_volume vf, vb, vm;
    render(&s, &full, &vf);
    render(&s, &bigger, &vb);
    render(&s, &moved, &vm);
    size_t common, labels, images;
    compare_overlap(&vf, &vb, &common, &labels, &images);
    cr_assert_eq(common, dk_volume_voxels(&vf), "the bigger box holds the default one");
    cr_assert(labels == 0 && images == 0, "resized: %zu labels, %zu intensities differ of %zu",
              labels, images, common);
    compare_overlap(&vf, &vm, &common, &labels, &images);
    cr_assert_eq(common, dk_volume_voxels(&vm), "the moved box lies inside the default one");
    cr_assert(labels == 0 && images == 0, "moved: %zu labels, %zu intensities differ of %zu",
              labels, images, common);
    dk_volume_release(&vf);
    dk_volume_release(&vb);
    dk_volume_release(&vm);
}

/* Physical z range (mm, voxel centres) of the slices holding femur. */
static void femur_z_range(const dk_volume *v, double *lo, double *hi)
{
    size_t plane = (size_t)v->dims[1] * v->dims[2];
    *lo = INFINITY, *hi = -INFINITY;
    for (int k = 0; k < v->dims[0]; k++)
        for (size_t p = 0; p < plane; p++)
            if (v->label[k * plane + p] == DK_KNEE_FEMUR) {
                double z = v->origin[0] + k * v->spacing[0];
                *lo = fmin(*lo, z), *hi = fmax(*hi, z);
                break;
            }
}

static size_t count_femur_in_slice(const dk_volume *v, int k)
{
    size_t plane = (size_t)v->dims[1] * v->dims[2], n = 0;
    for (size_t p = 0; p < plane; p++)
        n += v->label[k * plane + p] == DK_KNEE_FEMUR;
    return n;
}

Test(fov, partial_slice_coverage_misses_a_condyle_edge, .timeout = 120)
{
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &p, NULL), DK_OK);
    p.noise = p.bias = 0;
    dk_knee_subject s = dk_test_knee_healthy(8, 1);
    s.shift[0] = -5; /* this femur's condyles lie about 5 mm off the joint centre */
    dk_knee_scan wide = {{1.5, 1, 1}, 0, 2}, narrow = {{0.7, 1, 1}, 0, 2};
    dk_volume vw, vn;
    dk_err err = {0};
    cr_assert_eq(dk_knee_synth_scan(&s, &wide, &p, NULL, true, "w", &vw, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(dk_knee_synth_scan(&s, &narrow, &p, NULL, true, "n", &vn, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_lt(vn.dims[0], vw.dims[0], "fewer slices: %d vs %d", vn.dims[0], vw.dims[0]);
    cr_assert_eq(vn.dims[1], vw.dims[1], "the same in-plane field of view");
    double wlo, whi, nlo, nhi;
    femur_z_range(&vw, &wlo, &whi);
    femur_z_range(&vn, &nlo, &nhi);
    cr_assert(count_femur_in_slice(&vw, 0) == 0 && count_femur_in_slice(&vw, vw.dims[0] - 1) == 0,
              "the wide stack reaches past both condyles");
    cr_assert(count_femur_in_slice(&vn, 0) > 0 || count_femur_in_slice(&vn, vn.dims[0] - 1) > 0,
              "the narrow stack ends inside a condyle");
    cr_assert(whi - wlo > nhi - nlo + 3, "femur seen over %.1f mm medial-lateral, partly %.1f",
              whi - wlo, nhi - nlo);
    dk_volume_release(&vw);
    dk_volume_release(&vn);
}

Test(fov, fold_adds_each_strip_to_the_opposite_edge)
{
    const int dims[3] = {2, 14, 13}, strip = 3;
    size_t n = (size_t)dims[0] * dims[1] * dims[2];
    float *src = calloc(n, sizeof *src), *dst = calloc(n, sizeof *dst);
    for (int axis = 1; axis <= 2; axis++) {
        int len = dims[axis] - 2 * strip; /* the field of view along axis */
        memset(src, 0, n * sizeof *src);
        for (size_t v = 0; v < n; v++)
            src[v] = 1; /* the anatomy everywhere */
        /* a bright spot 1 voxel beyond the far edge, one 2 voxels before the near edge */
        int far = strip + len + 1, near = strip - 2, other = 4;
        size_t at_far = axis == 1 ? ((size_t)1 * dims[1] + far) * dims[2] + other
                                  : ((size_t)1 * dims[1] + other) * dims[2] + far;
        size_t at_near = axis == 1 ? ((size_t)0 * dims[1] + near) * dims[2] + other
                                   : ((size_t)0 * dims[1] + other) * dims[2] + near;
        src[at_far] = 10, src[at_near] = 20;
        dk_knee_fold(src, dims, axis, strip, dst);
        int ny = axis == 1 ? len : dims[1], nx = axis == 2 ? len : dims[2];
        for (int z = 0; z < dims[0]; z++)
            for (int y = 0; y < ny; y++)
                for (int x = 0; x < nx; x++) {
                    int i = axis == 1 ? y : x, o = axis == 1 ? x : y;
                    float want = 1 + (i < strip) + (i >= len - strip);
                    if (z == 1 && o == other && i == 1) want = 1 + 10;       /* far -> near edge */
                    if (z == 0 && o == other && i == len - 2) want = 1 + 20; /* near -> far */
                    cr_assert_float_eq(dst[((size_t)z * ny + y) * nx + x], want, 1e-6,
                                       "axis %d at z %d, %d along, %d across", axis, z, i, o);
                }
    }
    free(src);
    free(dst);
}

/* Columns (positions along axis) where a and b differ by more than tol. */
static void differing_positions(const dk_volume *a, const dk_volume *b, int axis, float tol,
                                int *differs)
{
    memset(differs, 0, sizeof(int) * (size_t)a->dims[axis]);
    for (int k = 0; k < a->dims[0]; k++)
        for (int j = 0; j < a->dims[1]; j++)
            for (int i = 0; i < a->dims[2]; i++) {
                size_t v = ((size_t)k * a->dims[1] + j) * a->dims[2] + i;
                if (fabsf(a->image[v] - b->image[v]) > tol) differs[axis == 1 ? j : i] = 1;
            }
}

Test(fov, wrap_around_changes_only_the_edge_bands, .timeout = 120)
{
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("clinical-4.5mm", &p, NULL), DK_OK);
    dk_knee_subject s =
        dk_test_knee_healthy(12, 3); /* noise and bias stay on: the same in both scans */
    for (int axis = 1; axis <= 2; axis++) {
        const double wrap_mm = 6;
        dk_knee_scan clean = {{1, 0.95, 0.95}, 0, axis}, wrapped = clean;
        wrapped.wrap_mm = wrap_mm;
        dk_volume vc, vw;
        dk_err err = {0};
        cr_assert_eq(dk_knee_synth_scan(&s, &clean, &p, NULL, true, "c", &vc, &err), DK_OK);
        cr_assert_eq(dk_knee_synth_scan(&s, &wrapped, &p, NULL, true, "w", &vw, &err), DK_OK, "%s",
                     err.msg);
        cr_assert_arr_eq(vc.dims, vw.dims, sizeof vc.dims);
        cr_assert_eq(memcmp(vc.label, vw.label, dk_volume_voxels(&vc)), 0, "labels unfolded");
        int n = vc.dims[axis], *differs = calloc((size_t)n, sizeof *differs);
        differing_positions(&vc, &vw, axis, 1e-4f, differs);
        /* the band: the drawn width (rounded to 4 fine voxels) plus one partial voxel */
        int band = (int)ceil((wrap_mm + 4 * 0.3) / vc.spacing[axis]) + 1;
        for (int i = band; i < n - band; i++)
            cr_assert_eq(differs[i], 0, "axis %d: position %d of %d differs (band %d)", axis, i, n,
                         band);
        cr_assert(differs[0] && differs[n - 1], "axis %d: both edges get the other's strip", axis);
        free(differs);
        dk_volume_release(&vc);
        dk_volume_release(&vw);
    }
}

Test(fov, scan_draws_are_deterministic_and_follow_the_profile)
{
    dk_profile clin, repo;
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &clin, NULL), DK_OK);
    cr_assert_eq(dk_profile_builtin("repository", &repo, NULL), DK_OK);
    int wraps = 0, n = 400, axis_y = 0;
    double volume = 0, lo = 2, hi = 0;
    for (int i = 0; i < n; i++) {
        dk_knee_subject s;
        dk_knee_subject_draw(9, (uint64_t)i, &s);
        dk_knee_scan a, b, r;
        dk_knee_scan_draw(&s, &clin, &a);
        dk_knee_scan_draw(&s, &clin, &b);
        cr_assert(!memcmp(a.fov_scale, b.fov_scale, sizeof a.fov_scale) && a.wrap_mm == b.wrap_mm &&
                      a.phase_axis == b.phase_axis,
                  "the same subject, the same scan");
        cr_assert(a.fov_scale[1] >= 0.93 && a.fov_scale[1] <= 1.07 &&
                  a.fov_scale[2] == a.fov_scale[1]);
        cr_assert(a.fov_scale[0] >= 0.85 && a.fov_scale[0] <= 1.15);
        cr_assert(a.wrap_mm == 0 || (a.wrap_mm >= 4 && a.wrap_mm <= 12));
        cr_assert_eq(a.phase_axis, s.phase_axis, "ghosts and wrap share the phase axis");
        wraps += a.wrap_mm > 0;
        axis_y += a.wrap_mm > 0 && a.phase_axis == 1;
        volume += a.fov_scale[0] * a.fov_scale[1] * a.fov_scale[2];
        lo = fmin(lo, a.fov_scale[1]), hi = fmax(hi, a.fov_scale[1]);
        dk_knee_scan_draw(&s, &repo, &r);
        cr_assert(r.fov_scale[0] == 1 && r.fov_scale[1] == 1 && r.fov_scale[2] == 1 &&
                      r.wrap_mm == 0,
                  "the repository's protocol field of view is fixed");
    }
    cr_assert(wraps > 0.05 * n && wraps < 0.16 * n, "wrap in %d of %d scans (profile: 10 %%)",
              wraps, n);
    cr_assert(axis_y > 0 && axis_y < wraps, "along y and along x");
    cr_assert(lo < 0.94 && hi > 1.06, "the range is used: %.3f..%.3f", lo, hi);
    cr_assert_float_eq(volume / n, 1.0, 0.03, "mean voxel count as before: x %.3f", volume / n);
}

Test(fov, whole_scan_with_wrap_is_deterministic, .timeout = 60)
{
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &p, NULL), DK_OK);
    dk_knee_subject s;
    dk_knee_subject_draw_mix(5, 4, p.oa_grades, &s);
    s.ghosting = 0.05;
    dk_knee_scan scan = {{0.9, 1.05, 1.05}, 9, 1};
    dk_volume a, b;
    dk_err err = {0};
    cr_assert_eq(dk_knee_synth_scan(&s, &scan, &p, NULL, true, "k", &a, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(dk_knee_synth_scan(&s, &scan, &p, NULL, true, "k", &b, &err), DK_OK, "%s",
                 err.msg);
    dk_test_assert_identical_scans(&a, &b);
    dk_volume_release(&a);
    dk_volume_release(&b);
}
