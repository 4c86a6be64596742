/* test_augment.c: appearance and resolution augmentation of teacher patches
 * (teacher/augment.h): gamma and thick slices by hand, per-label intensities keep each
 * tissue's texture, the draw is deterministic per seed, the label never changes, and
 * the config fields parse, print and are checked. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "teacher/augment.h"
#include "teacher/train.h"
#include "testutil.h"

Test(augment, gamma_by_hand_on_the_patch_range)
{
    float x[4] = {1, 1.5f, 2, 3}; /* range [1, 3]: t = 0, .25, .5, 1 */
    dk_augment_gamma(x, 4, 2.0f);
    const float want[4] = {1, 1 + 2 * 0.0625f, 1 + 2 * 0.25f, 3};
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(x[i], want[i], 1e-6, "x[%d] = %g, want %g", i, x[i], want[i]);
    float flat[3] = {2, 2, 2};
    dk_augment_gamma(flat, 3, 0.5f);
    cr_expect(flat[0] == 2 && flat[2] == 2, "a flat patch stays flat");
}

/* Four slices, slabs of 2 centred at 0.5 and 2.5: the slab means (0+2)/2 = 1 and
 * (4+6)/2 = 5, interpolated back at 0..3 (clamped at the ends): 1, 2, 4, 5. */
Test(augment, thick_slices_by_hand)
{
    const int patch[3] = {4, 1, 2};
    float x[8] = {0, 10, 2, 10, 4, 10, 6, 10}; /* column x=0 a ramp, x=1 constant */
    cr_assert_eq(dk_augment_thick_slices(x, patch, 2.0f, 0.5f, NULL), DK_OK);
    const float want[4] = {1, 2, 4, 5};
    for (int z = 0; z < 4; z++) {
        cr_expect_float_eq(x[2 * z], want[z], 1e-5, "z %d: %g, want %g", z, x[2 * z], want[z]);
        cr_expect_float_eq(x[2 * z + 1], 10, 1e-5, "a constant column stays constant");
    }
}

/* Thicker slabs than the patch, any phase: one slab, the column's mean everywhere. */
Test(augment, thick_slices_thicker_than_the_patch_average_it_all)
{
    const int patch[3] = {3, 1, 1};
    for (float phase = 0; phase < 6; phase += 1.25f) {
        float x[3] = {0, 3, 6};
        cr_assert_eq(dk_augment_thick_slices(x, patch, 6.5f, phase, NULL), DK_OK);
        for (int z = 0; z < 3; z++)
            cr_expect_float_eq(x[z], 3.0f, 1e-5, "phase %g, z %d: %g", phase, z, x[z]);
    }
}

/* A patch of two tissues with texture: background ramp, class 1 and 2 blocks. */
static void make_patch(const int patch[3], float *img, uint8_t *lab)
{
    size_t n = (size_t)patch[0] * patch[1] * patch[2];
    dk_rng rng = dk_rng_seed(3);
    for (size_t i = 0; i < n; i++) {
        int x = (int)(i % (size_t)patch[2]);
        lab[i] = (uint8_t)(x < patch[2] / 3 ? 0 : x < 2 * patch[2] / 3 ? 1 : 2);
        img[i] = (float)(lab[i] * 0.8 - 0.5 + 0.2 * dk_rng_normal(&rng) + 0.01 * x);
    }
}

static dk_appearance_config all_on(void)
{
    dk_appearance_config c = dk_appearance_config_off();
    c.gamma_p = c.label_intensity_p = c.invert_p = c.thick_slices_p = 1;
    c.gamma_range[0] = 0.7f;
    c.gamma_range[1] = 1.5f;
    c.label_intensity_range = 1.5f;
    c.thick_slices_max = 6.5f;
    return c;
}

Test(augment, deterministic_per_seed_and_the_label_never_changes)
{
    const int patch[3] = {8, 6, 12};
    enum { N = 8 * 6 * 12 };
    float orig[N], a[N], b[N];
    uint8_t lab[N], lab_copy[N];
    make_patch(patch, orig, lab);
    memcpy(lab_copy, lab, N);
    dk_appearance_config c = all_on();
    dk_appearance_params pa, pb;
    dk_rng r1 = dk_rng_seed(42), r2 = dk_rng_seed(42);
    dk_appearance_draw(&c, 3, &r1, &pa);
    dk_appearance_draw(&c, 3, &r2, &pb);
    cr_assert_arr_eq(&pa, &pb, sizeof pa, "same seed, same parameters");
    cr_expect(pa.gamma > 0 && pa.invert && pa.label_intensity && pa.thick >= 1.5f);
    memcpy(a, orig, sizeof a);
    memcpy(b, orig, sizeof b);
    cr_assert_eq(dk_appearance_apply(&pa, patch, 3, a, lab, NULL), DK_OK);
    cr_assert_eq(dk_appearance_apply(&pb, patch, 3, b, lab, NULL), DK_OK);
    cr_expect_arr_eq(a, b, sizeof a, "same parameters, same patch");
    cr_expect_arr_eq(lab, lab_copy, N, "the label changed");
    cr_expect_neq(memcmp(a, orig, sizeof a), 0, "nothing was augmented");
    dk_rng r3 = dk_rng_seed(43);
    dk_appearance_draw(&c, 3, &r3, &pb);
    cr_expect_neq(memcmp(&pa, &pb, sizeof pa), 0, "another seed, other parameters");
    /* all off: nothing drawn (the random stream is untouched) and nothing changes */
    dk_appearance_config off = dk_appearance_config_off();
    dk_rng r4 = dk_rng_seed(42);
    dk_appearance_draw(&off, 3, &r4, &pb);
    cr_expect_eq(r4.state, dk_rng_seed(42).state);
    memcpy(b, orig, sizeof b);
    cr_assert_eq(dk_appearance_apply(&pb, patch, 3, b, lab, NULL), DK_OK);
    cr_expect_arr_eq(b, orig, sizeof b);
}

/* Per-label intensities alone: every foreground tissue's voxels are an affine image of
 * its originals (texture kept, level and contrast new), and the patch keeps its mean
 * and sd. */
Test(augment, label_intensities_keep_texture_and_patch_statistics)
{
    const int patch[3] = {4, 6, 12};
    enum { N = 4 * 6 * 12 };
    float orig[N], x[N];
    uint8_t lab[N];
    make_patch(patch, orig, lab);
    memcpy(x, orig, sizeof x);
    dk_appearance_params p = {.label_intensity = true,
                              .label_level = {0, 1.2f, -0.7f},
                              .label_contrast = {0, 1.2f, 0.8f},
                              .background_level = {0.5f, -0.5f, 1.0f}};
    cr_assert_eq(dk_appearance_apply(&p, patch, 3, x, lab, NULL), DK_OK);
    for (int c = 1; c < 3; c++) {
        int first = -1, second = -1;
        for (int i = 0; i < N && second < 0; i++)
            if (lab[i] == c && first < 0) first = i;
            else if (lab[i] == c && fabsf(orig[i] - orig[first]) > 0.05f) second = i;
        float k = (x[second] - x[first]) / (orig[second] - orig[first]);
        cr_expect(k > 0, "class %d: slope %g", c, k);
        for (int i = 0; i < N; i++)
            if (lab[i] == c)
                cr_expect_float_eq(x[i] - x[first], k * (orig[i] - orig[first]), 1e-4,
                                   "class %d voxel %d", c, i);
    }
    double m0 = 0, m1 = 0, s0 = 0, s1 = 0;
    for (int i = 0; i < N; i++)
        m0 += orig[i] / N, m1 += x[i] / N;
    for (int i = 0; i < N; i++)
        s0 += (orig[i] - m0) * (orig[i] - m0) / N, s1 += (x[i] - m1) * (x[i] - m1) / N;
    cr_expect_float_eq(m1, m0, 1e-4);
    cr_expect_float_eq(sqrt(s1), sqrt(s0), 1e-4);
}

Test(augment, config_fields_parse_print_and_are_checked)
{
    dk_teacher_config c = dk_teacher_config_default();
    dk_err err = {0};
    const char *ok = "{\"augment\": {\"gamma_p\": 0.3, \"gamma_range\": [0.6, 1.6], "
                     "\"label_intensity_p\": 0.5, \"label_intensity_range\": 2, "
                     "\"invert_p\": 0.1, \"thick_slices_p\": 0.4, \"thick_slices_max\": 7}}";
    cr_assert_eq(dk_train_config_parse(ok, "cfg.json", &c, &err), DK_OK, "%s", err.msg);
    const dk_appearance_config *a = &c.augment.appearance;
    cr_expect_float_eq(a->gamma_p, 0.3f, 1e-7);
    cr_expect_float_eq(a->gamma_range[1], 1.6f, 1e-7);
    cr_expect_float_eq(a->thick_slices_max, 7.0f, 1e-7);
    cr_expect_float_eq(c.augment.rotate_degrees, 10.0f, 1e-7, "untouched fields keep defaults");
    char *text = dk_teacher_config_to_json(&c);
    dk_teacher_config back = dk_teacher_config_default();
    cr_assert_eq(dk_train_config_parse(text, "printed", &back, &err), DK_OK, "%s", err.msg);
    cr_expect_arr_eq(&back.augment.appearance, a, sizeof *a, "print then parse changed it");
    free(text);
    const char *bad = "{\"augment\": {\"gamma_range\": [1.5, 0.7]}}";
    cr_expect_eq(dk_train_config_parse(bad, "cfg.json", &c, &err), DK_EINVAL);
    cr_expect(strstr(err.msg, "gamma_range"), "%s", err.msg);
    const char *bad2 = "{\"augment\": {\"thick_slices_max\": 1}}";
    cr_expect_eq(dk_train_config_parse(bad2, "cfg.json", &c, &err), DK_EINVAL);
    cr_expect(strstr(err.msg, "augment.thick_slices_max"), "%s", err.msg);
}
