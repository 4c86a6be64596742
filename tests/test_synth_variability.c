/* test_synth_variability.c: the synthetic knee's real-world variability (issue #12),
 * one test per feature: the field of view's placement, osteoarthritis (defects,
 * osteophytes, narrowing, marrow lesions, the grade mix), and per-scan image quality
 * (fat suppression, motion ghosts, determinism of the whole scan). The slice gap is
 * in test_acquire.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth_knee.h"
#include "datasets/synth_quality.h"
#include "testutil.h"

/* A grid over the field of view at 0.9 mm in-plane, 1.4 mm through-plane. */
static dk_grid coarse_grid(void)
{
    dk_grid fine = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    return dk_grid_respaced(&fine, (double[3]){1.4, 0.9, 0.9});
}

static void render(const dk_knee_subject *s, const char *contrast, const dk_grid *g, dk_volume *v)
{
    dk_err err = {0};
    cr_assert_eq(dk_knee_render(s, contrast, g, "t", v, &err), DK_OK, "%s", err.msg);
}

static size_t count_label(const dk_volume *v, int label)
{
    size_t n = 0;
    for (size_t i = 0; i < dk_volume_voxels(v); i++)
        n += v->label[i] == label;
    return n;
}

static int is_bone(uint8_t l)
{
    return l == DK_KNEE_FEMUR || l == DK_KNEE_TIBIA;
}

Test(variability, moved_field_of_view_moves_labels_with_image)
{
    dk_grid g = coarse_grid();
    dk_knee_subject a = dk_test_knee_healthy(31, 2), b = a;
    const int dy = 8, dx = 6; /* voxels: 7.2 and 5.4 mm, even so the field grids align */
    b.shift[1] += dy * g.spacing[1];
    b.shift[2] += dx * g.spacing[2];
    dk_volume va, vb;
    render(&a, "pd-fs", &g, &va);
    render(&b, "pd-fs", &g, &vb);
    size_t same = 0, total = 0;
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    int nz = g.dims[0], ny = g.dims[1], nx = g.dims[2];
    for (int k = 0; k < nz; k++)
        for (int j = 0; j + dy < ny; j++)
            for (int i = 0; i + dx < nx; i++) {
                size_t p = ((size_t)k * ny + j) * nx + i,
                       q = ((size_t)k * ny + j + dy) * nx + i + dx;
                same += va.label[p] == vb.label[q];
                total++;
                double x = va.image[p], y = vb.image[q];
                sa += x, sb += y, saa += x * x, sbb += y * y, sab += x * y;
            }
    cr_assert_gt((double)same / total, 0.995, "labels moved with the anatomy: %zu of %zu", same,
                 total);
    double n = (double)total, cov = sab / n - sa / n * sb / n;
    double corr = cov / sqrt((saa / n - sa / n * sa / n) * (sbb / n - sb / n * sb / n));
    cr_assert_gt(corr, 0.9, "the image moved with them: correlation %.3f", corr);
    size_t unmoved = 0;
    for (size_t i = 0; i < dk_volume_voxels(&va); i++)
        unmoved += va.label[i] == vb.label[i];
    cr_assert_lt((double)unmoved / dk_volume_voxels(&va), 0.97, "the shift changes the scan");
    dk_volume_release(&va);
    dk_volume_release(&vb);
}

/* Bone voxels with a 6-neighbour that is background as bright as joint fluid on
 * PD-fs (fluid 1.0; cartilage at most ~0.7; fat and marrow suppressed). */
static size_t bone_touching_fluid(const dk_volume *v)
{
    int nz = v->dims[0], ny = v->dims[1], nx = v->dims[2];
    const int off[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    size_t n = 0;
    for (int k = 1; k < nz - 1; k++)
        for (int j = 1; j < ny - 1; j++)
            for (int i = 1; i < nx - 1; i++) {
                size_t p = ((size_t)k * ny + j) * nx + i;
                if (!is_bone(v->label[p])) continue;
                for (int d = 0; d < 6; d++) {
                    size_t q = ((size_t)(k + off[d][0]) * ny + j + off[d][1]) * nx + i + off[d][2];
                    if (v->label[q] == DK_KNEE_BACKGROUND && v->image[q] > 0.85f) {
                        n++;
                        break;
                    }
                }
            }
    return n;
}

Test(variability, full_thickness_defect_leaves_bone_touching_fluid, .timeout = 120)
{
    dk_grid g = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    dk_knee_subject intact = dk_test_knee_healthy(41, 0), defect = intact;
    defect.n_lesions = 3;
    defect.lesion_depth[0] = defect.lesion_depth[1] = 1.0;
    defect.lesion_radius[0] = defect.lesion_radius[1] = 7.0;
    dk_volume vi, vd;
    render(&intact, "pd-fs", &g, &vi);
    render(&defect, "pd-fs", &g, &vd);
    size_t touch_i = bone_touching_fluid(&vi), touch_d = bone_touching_fluid(&vd);
    size_t cart_i =
        count_label(&vi, DK_KNEE_FEMORAL_CARTILAGE) + count_label(&vi, DK_KNEE_TIBIAL_CARTILAGE);
    size_t cart_d =
        count_label(&vd, DK_KNEE_FEMORAL_CARTILAGE) + count_label(&vd, DK_KNEE_TIBIAL_CARTILAGE);
    cr_assert_lt(cart_d, cart_i, "defects remove cartilage: %zu vs %zu", cart_d, cart_i);
    cr_assert_gt(touch_d, touch_i + 200,
                 "bone voxels bared to fluid: %zu with defects, %zu without", touch_d, touch_i);
    dk_volume_release(&vi);
    dk_volume_release(&vd);
}

/* Median over (z, x) columns of the gap (mm) between the femur's lowest and the
 * tibia's highest bone voxel, where both lie in the column. */
static double median_bone_gap(const dk_volume *v)
{
    int nz = v->dims[0], ny = v->dims[1], nx = v->dims[2], n = 0;
    double *gaps = malloc(sizeof(double) * (size_t)nz * nx);
    for (int k = 0; k < nz; k++)
        for (int i = 0; i < nx; i++) {
            int fem = -1, tib = -1;
            for (int j = 0; j < ny; j++) {
                uint8_t l = v->label[((size_t)k * ny + j) * nx + i];
                if (l == DK_KNEE_FEMUR) fem = j;
                if (l == DK_KNEE_TIBIA && tib < 0) tib = j;
            }
            if (fem >= 0 && tib > fem) gaps[n++] = (tib - fem - 1) * v->spacing[1];
        }
    double m = 0;
    if (n) {
        for (int a = 0; a < n; a++) /* partial selection sort to the median */
            for (int b = a + 1; b < n && a <= n / 2; b++)
                if (gaps[b] < gaps[a]) {
                    double t = gaps[a];
                    gaps[a] = gaps[b], gaps[b] = t;
                }
        m = gaps[n / 2];
    }
    free(gaps);
    return m;
}

Test(variability, advanced_grade_adds_osteophytes_and_narrows_the_joint, .timeout = 120)
{
    dk_grid g = coarse_grid();
    for (uint64_t index = 0; index < 2; index++) {
        dk_knee_subject kl0 = dk_test_knee_healthy(51, index), kl4 = kl0;
        dk_knee_subject_set_grade(&kl4, 4);
        kl4.n_lesions = kl4.n_bml = kl4.n_cysts = 0; /* osteophytes and narrowing alone */
        cr_assert_geq(kl4.n_osteophytes, 3);
        cr_assert_geq(kl4.thinning, 0.3);
        dk_volume v0, v4;
        render(&kl0, "dess", &g, &v0);
        render(&kl4, "dess", &g, &v4);
        size_t new_bone = 0;
        for (size_t i = 0; i < dk_volume_voxels(&v0); i++)
            new_bone += is_bone(v4.label[i]) && v0.label[i] == DK_KNEE_BACKGROUND;
        cr_assert_gt(new_bone, 40, "osteophytes: %zu new bone voxels", new_bone);
        size_t c0 = count_label(&v0, DK_KNEE_TIBIAL_CARTILAGE),
               c4 = count_label(&v4, DK_KNEE_TIBIAL_CARTILAGE);
        cr_assert_lt(c4, 0.85 * c0, "thinning: tibial cartilage %zu -> %zu voxels", c0, c4);
        double gap0 = median_bone_gap(&v0), gap4 = median_bone_gap(&v4);
        cr_assert_lt(gap4, gap0 - 0.5, "joint space %.2f -> %.2f mm", gap0, gap4);
        dk_volume_release(&v0);
        dk_volume_release(&v4);
    }
}

/* Bone voxels brighter than fat-suppressed marrow ever is. */
static size_t bright_bone(const dk_volume *v, float above)
{
    size_t n = 0;
    for (size_t i = 0; i < dk_volume_voxels(v); i++)
        n += is_bone(v->label[i]) && v->image[i] > above;
    return n;
}

Test(variability, marrow_lesions_change_marrow_not_labels)
{
    dk_grid g = coarse_grid();
    dk_knee_subject clean = dk_test_knee_healthy(61, 1), lesions = clean;
    lesions.n_bml = 2;
    lesions.n_cysts = 2;
    dk_volume vc, vl, tc, tl;
    render(&clean, "pd-fs", &g, &vc);
    render(&lesions, "pd-fs", &g, &vl);
    cr_assert_eq(memcmp(vc.label, vl.label, dk_volume_voxels(&vc)), 0, "labels stay the bone");
    size_t before = bright_bone(&vc, 0.35f), after = bright_bone(&vl, 0.35f);
    cr_assert_gt(after, before + 50, "PD-fs: oedema-like marrow %zu -> %zu bright voxels", before,
                 after);
    render(&clean, "t1", &g, &tc);
    render(&lesions, "t1", &g, &tl);
    double sum_c = 0, sum_l = 0;
    for (size_t i = 0; i < dk_volume_voxels(&tc); i++)
        if (is_bone(tc.label[i])) sum_c += tc.image[i], sum_l += tl.image[i];
    cr_assert_lt(sum_l, sum_c, "T1: lesions darken the fatty marrow");
    dk_volume_release(&vc);
    dk_volume_release(&vl);
    dk_volume_release(&tc);
    dk_volume_release(&tl);
}

Test(variability, grade_mix_decides_the_grades)
{
    const double all4[5] = {0, 0, 0, 0, 1}, all0[5] = {1, 0, 0, 0, 0};
    int seen[5] = {0};
    for (uint64_t i = 0; i < 60; i++) {
        dk_knee_subject s;
        dk_knee_subject_draw_mix(7, i, all4, &s);
        cr_assert_eq(s.kl_grade, 4);
        cr_assert(s.n_osteophytes >= 3 && s.thinning >= 0.3 && s.n_lesions >= 2);
        dk_knee_subject_draw_mix(7, i, all0, &s);
        cr_assert_eq(s.kl_grade, 0);
        cr_assert(s.n_osteophytes == 0 && s.thinning == 0);
        dk_knee_subject_draw(7, i, &s);
        seen[s.kl_grade]++;
        cr_assert(s.scale >= 0.88 && s.scale <= 1.12 && fabs(s.rotation) <= 15);
        cr_assert(fabs(s.shift[1]) <= 10 && fabs(s.shift[2]) <= 8);
    }
    cr_assert(seen[0] > 10 && seen[2] > 5, "the default mix spreads: %d %d %d %d %d", seen[0],
              seen[1], seen[2], seen[3], seen[4]);
    dk_knee_subject a, b;
    dk_knee_subject_draw_mix(7, 3, all4, &a);
    dk_knee_subject_draw_mix(7, 3, all0, &b);
    cr_assert_eq(a.seed, b.seed, "the mix changes the grade, not the subject");
    cr_assert_eq(a.flexion, b.flexion);
}

Test(variability, incomplete_fat_suppression_brightens_fat)
{
    dk_grid g = coarse_grid();
    dk_knee_subject good = dk_test_knee_healthy(71, 0), poor = good;
    poor.fat_sat_failure = 0.6;
    dk_volume vg, vp;
    render(&good, "pd-fs", &g, &vg);
    render(&poor, "pd-fs", &g, &vp);
    cr_assert_eq(memcmp(vg.label, vp.label, dk_volume_voxels(&vg)), 0);
    double bg_good = 0, bg_poor = 0;
    size_t n = 0;
    for (size_t i = 0; i < dk_volume_voxels(&vg); i++)
        if (vg.label[i] == DK_KNEE_BACKGROUND) bg_good += vg.image[i], bg_poor += vp.image[i], n++;
    cr_assert_gt(bg_poor / n, 1.3 * bg_good / n, "fat and marrow less suppressed: %.3f vs %.3f",
                 bg_poor / n, bg_good / n);
    dk_volume t1g, t1p; /* T1 has no fat suppression to fail */
    render(&good, "t1", &g, &t1g);
    render(&poor, "t1", &g, &t1p);
    cr_assert_eq(memcmp(t1g.image, t1p.image, dk_volume_voxels(&t1g) * sizeof(float)), 0);
    dk_volume_release(&vg);
    dk_volume_release(&vp);
    dk_volume_release(&t1g);
    dk_volume_release(&t1p);
}

Test(variability, motion_ghosts_lie_along_the_phase_encode_axis)
{
    const int dims[3] = {3, 20, 26};
    size_t n = (size_t)dims[0] * dims[1] * dims[2];
    float *image = calloc(n, sizeof *image);
    const int z = 1, y = 7, x = 5, step = 6;
    for (int axis = 1; axis <= 2; axis++) {
        memset(image, 0, n * sizeof *image);
        image[((size_t)z * dims[1] + y) * dims[2] + x] = 10;
        cr_assert_eq(dk_knee_ghosts(image, dims, axis, 0.1, step, NULL), DK_OK);
        int lit = 0;
        for (int k = 0; k < dims[0]; k++)
            for (int j = 0; j < dims[1]; j++)
                for (int i = 0; i < dims[2]; i++) {
                    float v = image[((size_t)k * dims[1] + j) * dims[2] + i];
                    if (v == 0) continue;
                    lit++;
                    cr_assert_eq(k, z, "ghosts stay in their slice");
                    cr_assert_eq(axis == 1 ? i : j, axis == 1 ? x : y, "and on their line");
                    int along = axis == 1 ? j - y : i - x, len = dims[axis];
                    int d = ((along % len) + len) % len;
                    cr_assert(d == 0 || d == step || d == len - step || d == 2 * step ||
                                  d == len - 2 * step,
                              "a ghost %d voxels away along axis %d", d, axis);
                    cr_assert_float_eq(v,
                                       d == 0                         ? 10.0f
                                       : d == step || d == len - step ? 1.0f
                                                                      : 0.5f,
                                       1e-5);
                }
        cr_assert_eq(lit, 5, "the object and four ghosts, axis %d", axis);
    }
    dk_err err = {0};
    cr_assert_eq(dk_knee_ghosts(image, dims, 0, 0.1, step, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "axis 0"), "%s", err.msg);
    cr_assert_eq(dk_knee_ghosts(image, dims, 2, 0.1, 26, &err), DK_EINVAL);
    free(image);
}

Test(variability, whole_scan_is_deterministic_per_seed, .timeout = 60)
{
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("clinical-4.5mm", &p, NULL), DK_OK);
    dk_knee_subject s;
    dk_knee_subject_draw_mix(5, 4, p.oa_grades, &s);
    s.ghosting = 0.1, s.fat_sat_failure = 0.4, s.n_bml = 2, s.n_cysts = 1;
    dk_volume a, b;
    dk_err err = {0};
    cr_assert_eq(dk_knee_synth(&s, &p, "pd-fs", true, "k", &a, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_knee_synth(&s, &p, "pd-fs", true, "k", &b, &err), DK_OK, "%s", err.msg);
    dk_test_assert_identical_scans(&a, &b);
    dk_volume_release(&a);
    dk_volume_release(&b);
}
