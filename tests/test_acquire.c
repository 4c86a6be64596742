/* test_acquire.c: simulated acquisition at a site profile: output grid, determinism,
 * measured noise level, bias bounds, thin structures at thick slices, speed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/acquire.h"
#include "datasets/resample.h"
#include "testutil.h"

static dk_volume fine_volume(int nz, int ny, int nx, double sz, double sy, double sx,
                             bool with_label)
{
    dk_volume v;
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(&v, "knee-1", (int[3]){nz, ny, nx}, with_label, &err), DK_OK, "%s",
                 err.msg);
    v.spacing[0] = sz, v.spacing[1] = sy, v.spacing[2] = sx;
    v.origin[0] = -3, v.origin[1] = 5, v.origin[2] = 7;
    return v;
}

static dk_profile custom(double sz, double sxy, double thickness, double noise, double bias)
{
    dk_profile p;
    memset(&p, 0, sizeof p);
    strcpy(p.name, "test-site");
    strcpy(p.contrast, "pd-fs");
    p.spacing[0] = sz, p.spacing[1] = sxy, p.spacing[2] = sxy;
    p.slice_thickness = thickness, p.noise = noise, p.bias = bias;
    return p;
}

Test(acquire, output_grid_matches_respaced_grid)
{
    dk_volume fine = fine_volume(40, 60, 50, 0.25, 0.2, 0.2, true);
    dk_test_fill_uniform(fine.image, dk_volume_voxels(&fine), 1, 0, 1);
    fine.direction[1] = 1, fine.direction[0] = 0; /* a non-identity direction is carried over */
    dk_profile p;
    dk_profile_builtin("clinical-3.3mm", &p, NULL);
    dk_volume out;
    dk_err err = {0};
    cr_assert_eq(dk_acquire(&fine, &p, 1, 3, &out, &err), DK_OK, "%s", err.msg);
    dk_grid fg = dk_grid_of_volume(&fine);
    dk_grid want = dk_grid_respaced(&fg, p.spacing);
    for (int a = 0; a < 3; a++) {
        cr_assert_eq(out.dims[a], want.dims[a]);
        cr_assert_eq(out.spacing[a], p.spacing[a]);
        cr_assert_eq(out.origin[a], want.origin[a]);
    }
    cr_assert_eq(out.dims[0], 3);  /* 10 mm / 3.3 */
    cr_assert_eq(out.dims[1], 39); /* 12 mm / 0.31 = 38.7 */
    cr_assert_str_eq(out.id, "knee-1");
    cr_assert_eq(out.direction[1], 1);
    cr_assert_not_null(out.label);
    cr_assert(strstr(out.source, "clinical-3.3mm") && strstr(out.source, "seed=1"), "%s",
              out.source);
    dk_volume_release(&out);
    dk_volume_release(&fine);
}

Test(acquire, same_seed_same_bytes_other_seed_differs)
{
    dk_volume fine = fine_volume(24, 40, 40, 0.25, 0.2, 0.2, true);
    size_t n = dk_volume_voxels(&fine);
    dk_test_fill_uniform(fine.image, n, 2, 0, 1);
    for (size_t v = 0; v < n; v++)
        fine.label[v] = (uint8_t)(fine.image[v] * 3);
    dk_profile p;
    dk_profile_builtin("repository", &p, NULL);
    dk_volume a, b, c;
    cr_assert_eq(dk_acquire(&fine, &p, 42, 3, &a, NULL), DK_OK);
    cr_assert_eq(dk_acquire(&fine, &p, 42, 3, &b, NULL), DK_OK);
    cr_assert_eq(dk_acquire(&fine, &p, 43, 3, &c, NULL), DK_OK);
    size_t m = dk_volume_voxels(&a);
    cr_assert_arr_eq(a.image, b.image, m * sizeof *a.image);
    cr_assert_arr_eq(a.label, b.label, m);
    size_t differ = 0;
    for (size_t v = 0; v < m; v++)
        differ += a.image[v] != c.image[v];
    cr_assert(differ > m * 9 / 10, "only %zu of %zu voxels differ between seeds", differ, m);
    cr_assert_arr_eq(a.label, c.label, m); /* labels do not depend on the seed */
    dk_volume_release(&a);
    dk_volume_release(&b);
    dk_volume_release(&c);
    dk_volume_release(&fine);
}

/* Left half 1, right half 0, boundary on an output voxel edge. */
static dk_volume half_phantom(void)
{
    dk_volume fine = fine_volume(32, 64, 64, 0.25, 0.25, 0.25, false);
    for (int k = 0; k < 32; k++)
        for (int j = 0; j < 64; j++)
            for (int i = 0; i < 32; i++)
                fine.image[((size_t)k * 64 + j) * 64 + i] = 1.0f;
    return fine;
}

Test(acquire, noise_level_matches_sigma)
{
    dk_volume fine = half_phantom();
    dk_profile p = custom(1.0, 0.5, 0.5, 0.05, 0);
    dk_volume out;
    cr_assert_eq(dk_acquire(&fine, &p, 7, 1, &out, NULL), DK_OK);
    cr_assert_eq(out.dims[2], 32);
    /* away from the edge column: signal region (x < 15) and background (x > 16) */
    double s1 = 0, s2 = 0, bg = 0;
    size_t n_signal = 0, n_bg = 0;
    for (int k = 0; k < out.dims[0]; k++)
        for (int j = 0; j < out.dims[1]; j++)
            for (int i = 0; i < out.dims[2]; i++) {
                double x = out.image[((size_t)k * out.dims[1] + j) * out.dims[2] + i];
                if (i < 15) s1 += x, s2 += x * x, n_signal++;
                if (i > 16) bg += x, n_bg++;
            }
    double mean = s1 / n_signal, sd = sqrt(s2 / n_signal - mean * mean);
    double sigma = 0.05; /* noise * max intensity (1) */
    cr_assert(fabs(sd - sigma) < 0.1 * sigma, "noise sd %.4f vs sigma %.4f", sd, sigma);
    /* Rician at SNR 20 is nearly unbiased; in the background it is Rayleigh: mean sigma sqrt(pi/2)
     */
    cr_assert(fabs(mean - 1.0) < 0.01, "signal mean %.4f", mean);
    double rayleigh = sigma * sqrt(M_PI / 2);
    cr_assert(fabs(bg / n_bg - rayleigh) < 0.1 * rayleigh, "background mean %.4f vs %.4f",
              bg / n_bg, rayleigh);
    dk_volume_release(&out);
    dk_volume_release(&fine);
}

Test(acquire, flat_stays_flat_without_noise_or_bias)
{
    dk_volume fine = fine_volume(30, 20, 20, 0.25, 0.2, 0.2, false);
    for (size_t v = 0; v < dk_volume_voxels(&fine); v++)
        fine.image[v] = 3.0f;
    dk_profile p = custom(3.3, 0.31, 3.3, 0, 0);
    dk_volume out;
    cr_assert_eq(dk_acquire(&fine, &p, 1, 1, &out, NULL), DK_OK);
    cr_assert_null(out.label);
    for (size_t v = 0; v < dk_volume_voxels(&out); v++)
        cr_assert_float_eq(out.image[v], 3.0f, 1e-5, "voxel %zu: %g", v, out.image[v]);
    dk_volume_release(&out);
    dk_volume_release(&fine);
}

Test(acquire, bias_field_is_bounded_smooth_and_seeded)
{
    int dims[3] = {12, 30, 40};
    size_t n = 12 * 30 * 40;
    float *f = malloc(n * sizeof *f), *g = malloc(n * sizeof *g);
    double worst_dev = 0, worst_step = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        dk_acquire_bias_field(dims, 0.25, seed, f);
        double dev = 0;
        for (size_t v = 0; v < n; v++) {
            cr_assert(f[v] >= 0.75f - 1e-6f && f[v] <= 1.25f + 1e-6f, "seed %llu: %g",
                      (unsigned long long)seed, f[v]);
            dev = fmax(dev, fabs(f[v] - 1));
            if (v % 40) worst_step = fmax(worst_step, fabs(f[v] - f[v - 1]));
        }
        worst_dev = fmax(worst_dev, dev);
    }
    cr_assert(worst_dev > 0.1, "the field never strays more than %g from 1", worst_dev);
    /* one half-wave across 40 voxels moves at most bias * pi / 40 per voxel */
    cr_assert(worst_step <= 0.25 * M_PI / 40 + 1e-6, "step %g along x", worst_step);
    dk_acquire_bias_field(dims, 0.25, 1, f);
    dk_acquire_bias_field(dims, 0.25, 2, g);
    cr_assert(dk_test_max_rel_diff(f, g, n) > 1e-3);
    dk_acquire_bias_field(dims, 0, 2, g);
    for (size_t v = 0; v < n; v++)
        cr_assert_eq(g[v], 1.0f);
    free(f);
    free(g);

    /* through dk_acquire, on a flat phantom without noise */
    dk_volume fine = fine_volume(20, 20, 20, 0.25, 0.25, 0.25, false);
    for (size_t v = 0; v < dk_volume_voxels(&fine); v++)
        fine.image[v] = 1.0f;
    dk_profile p = custom(0.5, 0.5, 0.5, 0, 0.2);
    dk_volume out;
    cr_assert_eq(dk_acquire(&fine, &p, 5, 1, &out, NULL), DK_OK);
    for (size_t v = 0; v < dk_volume_voxels(&out); v++)
        cr_assert(out.image[v] >= 0.8f - 1e-5f && out.image[v] <= 1.2f + 1e-5f, "%g", out.image[v]);
    dk_volume_release(&out);
    dk_volume_release(&fine);
}

/* Fine z = 66 x 0.25 mm = 16.5 mm = 5 slices of 3.3 mm. Class 1 below z = 2 mm,
 * class 2 a slab over [lo, hi) mm, background above. */
static dk_volume slab_phantom(double lo, double hi)
{
    dk_volume fine = fine_volume(66, 8, 8, 0.25, 0.31, 0.31, true);
    for (int k = 0; k < 66; k++) {
        double z = (k + 0.5) * 0.25; /* from the low corner */
        uint8_t c = z < 2.0 ? 1 : (z >= lo && z < hi) ? 2 : 0;
        for (int v = 0; v < 64; v++) {
            fine.label[k * 64 + v] = c;
            fine.image[k * 64 + v] = c == 2 ? 1.0f : c == 1 ? 0.5f : 0.0f;
        }
    }
    return fine;
}

static int count_class(const dk_volume *v, int c)
{
    int n = 0;
    for (size_t i = 0; i < dk_volume_voxels(v); i++)
        n += v->label[i] == c;
    return n;
}

Test(acquire, thin_slab_vanishes_at_thick_slices)
{
    dk_profile thick, repo;
    dk_profile_builtin("clinical-3.3mm", &thick, NULL);
    dk_profile_builtin("repository", &repo, NULL);
    thick.noise = repo.noise = 0;
    dk_volume out;
    /* a 1 mm slab fills 30 % of its 3.3 mm slice: background wins */
    dk_volume thin = slab_phantom(4.0, 5.0);
    cr_assert_eq(dk_acquire(&thin, &thick, 1, 3, &out, NULL), DK_OK);
    cr_assert_eq(out.dims[0], 5);
    cr_assert_eq(count_class(&out, 2), 0);
    cr_assert_eq(out.label[0], 1);
    /* ... but its intensity still leaks into that slice (partial volume + slice profile) */
    cr_assert(out.image[64] > 0.1f, "slice 1 mean %g", out.image[64]);
    dk_volume_release(&out);
    /* at repository resolution the same slab survives */
    cr_assert_eq(dk_acquire(&thin, &repo, 1, 3, &out, NULL), DK_OK);
    cr_assert(count_class(&out, 2) > 0);
    dk_volume_release(&out);
    dk_volume_release(&thin);
    /* a 2.5 mm slab centred in slice 1 fills 76 % of it and survives at 3.3 mm */
    dk_volume thick_slab = slab_phantom(3.7, 6.2);
    cr_assert_eq(dk_acquire(&thick_slab, &thick, 1, 3, &out, NULL), DK_OK);
    dk_grid g = dk_grid_of_volume(&out);
    cr_assert_eq(count_class(&out, 2), (int)(g.dims[1] * g.dims[2]));
    cr_assert_eq(out.label[g.dims[1] * g.dims[2]], 2);
    dk_volume_release(&out);
    dk_volume_release(&thick_slab);
}

/* 2D slices with a gap: the slice profile (FWHM = thickness, edges 20 % of it) ends
 * before the next slice's begins, so what lies in the gap is never recorded. */
Test(acquire, slice_gap_leaves_voxels_unseen)
{
    const int nz = 40, ny = 8, nx = 8;
    dk_profile gap = custom(3.3, 0.33, 0.7 * 3.3, 0, 0); /* a 30 % gap */
    dk_volume fine = fine_volume(nz, ny, nx, 0.33, 0.33, 0.33, false);
    dk_grid fg = dk_grid_of_volume(&fine), site = dk_grid_respaced(&fg, gap.spacing);
    int unseen = 0, seen = 0;
    for (int k = 0; k < nz; k++) {
        double z = fine.origin[0] + k * fine.spacing[0], nearest = 1e9;
        for (int s = 0; s < site.dims[0]; s++)
            nearest = fmin(nearest, fabs(z - (site.origin[0] + s * site.spacing[0])));
        /* beyond the profile's reach (0.6 thickness) from every slice centre: a gap */
        bool in_gap = nearest > 0.6 * gap.slice_thickness;
        unseen += in_gap, seen += !in_gap;
        for (int v = 0; v < ny * nx; v++) fine.image[(size_t)k * ny * nx + v] = in_gap ? 100.0f : 0;
    }
    cr_assert_gt(unseen, 3, "the phantom has gap slices");
    dk_volume out;
    cr_assert_eq(dk_acquire(&fine, &gap, 1, 1, &out, NULL), DK_OK);
    for (size_t v = 0; v < dk_volume_voxels(&out); v++)
        cr_assert_eq(out.image[v], 0.0f, "voxel %zu saw the gap: %g", v, out.image[v]);
    dk_volume_release(&out);
    /* without the gap the same slices are recorded */
    dk_profile no_gap = custom(3.3, 0.33, 3.3, 0, 0);
    cr_assert_eq(dk_acquire(&fine, &no_gap, 1, 1, &out, NULL), DK_OK);
    float top = 0;
    for (size_t v = 0; v < dk_volume_voxels(&out); v++) top = fmaxf(top, out.image[v]);
    cr_assert_gt(top, 1.0f, "contiguous slices see every fine slice");
    dk_volume_release(&out);
    dk_volume_release(&fine);
}

Test(acquire, bad_inputs_are_named)
{
    dk_volume fine = fine_volume(4, 4, 4, 0.25, 0.25, 0.25, true);
    fine.label[5] = 7;
    dk_profile p = custom(1, 1, 1, 0, 0);
    dk_volume out;
    dk_err err = {0};
    cr_assert_eq(dk_acquire(&fine, &p, 1, 3, &out, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "'knee-1'") && strstr(err.msg, "'test-site'") &&
                  strstr(err.msg, "label 7"),
              "%s", err.msg);
    cr_assert_null(out.image);
    p.spacing[2] = 0;
    cr_assert_eq(dk_acquire(&fine, &p, 1, 3, &out, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "spacing[2]"), "%s", err.msg);
    dk_volume_release(&fine);
}

