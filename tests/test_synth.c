/* test_synth.c: the synthetic knee generator (anatomy statistics on the fine grid,
 * determinism, class fractions at profiles), few-shot splits, and `dualkd data synth`
 * end to end (read back by `dualkd data info` and by h5py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/splits.h"
#include "datasets/synth_knee.h"
#include "testutil.h"

/* Subject index of seed as drawn (lesions < 0), or made healthy and cleanly scanned
 * (KL 0 without marrow lesions, fat suppression and ghosts perfect) with that many
 * focal lesions. */
static dk_knee_subject subject(uint64_t seed, uint64_t index, int lesions)
{
    dk_knee_subject s;
    dk_knee_subject_draw(seed, index, &s);
    if (lesions >= 0) {
        dk_knee_subject_set_grade(&s, 0);
        s.n_lesions = lesions;
        s.n_bml = s.n_cysts = 0;
        s.fat_sat_failure = s.ghosting = 0;
    }
    return s;
}

/* A coarse grid over the ROI: enough to compare renders cheaply. */
static dk_grid coarse_grid(void)
{
    const double spacing[3] = {1.4, 0.9, 0.9};
    dk_grid fine = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    return dk_grid_respaced(&fine, spacing);
}

static void render(const dk_knee_subject *s, const char *contrast, const dk_grid *g, dk_volume *v)
{
    dk_err err = {0};
    cr_assert_eq(dk_knee_render(s, contrast, g, "t", v, &err), DK_OK, "%s", err.msg);
}

Test(synth, classes_and_grids)
{
    dk_classes c;
    dk_knee_classes(&c);
    cr_assert_eq(c.count, 5);
    cr_assert_str_eq(c.names[2], "femoral_cartilage");
    cr_assert_str_eq(c.names[4], "tibial_cartilage");
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("repository", &p, NULL), DK_OK);
    dk_grid fine = dk_knee_fine_grid(p.spacing);
    cr_assert(fine.spacing[0] <= 0.35 + 1e-9 && fine.spacing[1] <= 0.3 + 1e-9);
    dk_grid site = dk_grid_respaced(&fine, p.spacing);
    cr_assert(site.dims[0] == 64 && site.dims[1] == 160 && site.dims[2] == 160,
              "repository grid %d %d %d", site.dims[0], site.dims[1], site.dims[2]);
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &p, NULL), DK_OK);
    fine = dk_knee_fine_grid(p.spacing);
    cr_assert_lt(fine.spacing[0], p.spacing[0] / 5); /* finer than the slices */
}

Test(synth, subjects_are_deterministic_and_distinct)
{
    dk_knee_subject a = subject(7, 3, -1), b = subject(7, 3, -1), c = subject(7, 4, -1),
                    d = subject(8, 3, -1);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    cr_assert_neq(a.seed, c.seed);
    cr_assert_neq(a.seed, d.seed);
    cr_assert_neq(a.flexion, c.flexion);
    int left = 0;
    for (int i = 0; i < 40; i++) {
        dk_knee_subject s = subject(1, (uint64_t)i, -1);
        left += s.left;
        cr_assert(s.flexion >= 0 && s.flexion <= 30);
        cr_assert(s.kl_grade >= 0 && s.kl_grade <= 4);
        cr_assert(s.n_lesions >= 0 && s.n_lesions <= DK_KNEE_MAX_LESIONS);
    }
    cr_assert(left > 5 && left < 35, "left knees %d of 40", left);
}

Test(synth, render_is_deterministic_by_seed)
{
    dk_grid g = coarse_grid();
    dk_knee_subject s = subject(11, 0, -1), t = subject(12, 0, -1);
    dk_volume a, b, c;
    render(&s, "dess", &g, &a);
    render(&s, "dess", &g, &b);
    render(&t, "dess", &g, &c);
    size_t n = dk_volume_voxels(&a);
    cr_assert_eq(memcmp(a.image, b.image, n * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.label, b.label, n), 0);
    cr_assert_neq(memcmp(a.image, c.image, n * sizeof(float)), 0);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += a.label[i] != c.label[i];
    cr_assert_gt(differ, n / 50, "only %zu of %zu labels differ between subjects", differ, n);
    dk_volume_release(&a);
    dk_volume_release(&b);
    dk_volume_release(&c);
}

/* Mean intensity of each tissue class in a rendered volume. */
static void class_means(const dk_volume *v, double mean[5])
{
    double sum[5] = {0};
    size_t count[5] = {0};
    for (size_t i = 0; i < dk_volume_voxels(v); i++) {
        sum[v->label[i]] += v->image[i];
        count[v->label[i]]++;
    }
    for (int c = 0; c < 5; c++) mean[c] = count[c] ? sum[c] / count[c] : -1;
}

Test(synth, contrasts_order_tissues_as_mr_does)
{
    dk_grid g = coarse_grid();
    dk_knee_subject s = subject(5, 1, 0);
    dk_volume dess, pdfs, t1;
    render(&s, "dess", &g, &dess);
    render(&s, "pd-fs", &g, &pdfs);
    render(&s, "t1", &g, &t1);
    cr_assert_eq(memcmp(dess.label, t1.label, dk_volume_voxels(&t1)), 0, "same anatomy");
    double d[5], p[5], t[5];
    class_means(&dess, d);
    class_means(&pdfs, p);
    class_means(&t1, t);
    cr_assert_gt(d[DK_KNEE_FEMORAL_CARTILAGE], 1.5 * d[DK_KNEE_FEMUR], "DESS: cartilage bright");
    cr_assert_gt(p[DK_KNEE_TIBIAL_CARTILAGE], 2.5 * p[DK_KNEE_TIBIA], "PD-fs: marrow dark");
    cr_assert_gt(t[DK_KNEE_FEMUR], 1.5 * t[DK_KNEE_FEMORAL_CARTILAGE], "T1: marrow bright");
    dk_err err = {0};
    dk_volume bad;
    cr_assert_eq(dk_knee_render(&s, "flair", &g, "t", &bad, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "flair"), "%s", err.msg);
    dk_volume_release(&dess);
    dk_volume_release(&pdfs);
    dk_volume_release(&t1);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Thickness statistics on the fine grid. Along y (superior-inferior, the plateau's
 * normal up to a few degrees of slope and varus) per (z, x) column: the run of tibial
 * cartilage, and in the contact zone (columns holding both cartilages less than 3 mm
 * apart, where the condyle's surface is nearly level) the run of femoral cartilage and
 * whether the two touch. */
typedef struct column_stats {
    float *tibial, *femoral;
    int n_tibial, n_femoral, contact_columns, touching;
} column_stats;

static void measure_columns(const dk_volume *v, column_stats *cs)
{
    int nz = v->dims[0], ny = v->dims[1], nx = v->dims[2];
    memset(cs, 0, sizeof *cs);
    cs->tibial = malloc(sizeof(float) * (size_t)nz * nx);
    cs->femoral = malloc(sizeof(float) * (size_t)nz * nx);
    for (int z = 0; z < nz; z++)
        for (int x = 0; x < nx; x++) {
            int tib = 0, fem = 0, fem_bottom = -1, tib_top = -1;
            for (int y = 0; y < ny; y++) {
                uint8_t l = v->label[((size_t)z * ny + y) * nx + x];
                if (l == DK_KNEE_TIBIAL_CARTILAGE) {
                    tib++;
                    if (tib_top < 0) tib_top = y;
                }
                if (l == DK_KNEE_FEMORAL_CARTILAGE) {
                    fem++;
                    fem_bottom = y;
                }
            }
            if (tib) cs->tibial[cs->n_tibial++] = (float)(tib * v->spacing[1]);
            /* near the contact the femoral surface is level: a small vertical gap */
            if (tib && fem && fem_bottom < tib_top && (tib_top - fem_bottom) * v->spacing[1] < 3) {
                cs->femoral[cs->n_femoral++] = (float)(fem * v->spacing[1]);
                cs->contact_columns++;
                cs->touching += tib_top == fem_bottom + 1;
            }
        }
    qsort(cs->tibial, (size_t)cs->n_tibial, sizeof(float), cmp_float);
    qsort(cs->femoral, (size_t)cs->n_femoral, sizeof(float), cmp_float);
}

Test(synth, fine_grid_anatomy_statistics, .timeout = 120)
{
    dk_grid fine = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    for (uint64_t index = 0; index < 2; index++) {
        dk_knee_subject s = subject(21, index, 0); /* no lesions: intact thickness */
        dk_volume v;
        render(&s, "dess", &fine, &v);
        size_t count[5] = {0};
        for (size_t i = 0; i < dk_volume_voxels(&v); i++) count[v.label[i]]++;
        for (int c = 0; c < 5; c++) cr_assert_gt(count[c], 1000, "class %d: %zu voxels", c, count[c]);
        column_stats cs;
        measure_columns(&v, &cs);
        cr_assert_gt(cs.n_tibial, 500);
        cr_assert_gt(cs.contact_columns, 300, "contact columns %d", cs.contact_columns);
        /* the layers taper at their edges: judge the upper half of the columns */
        float tib_med = cs.tibial[cs.n_tibial / 2], tib_p75 = cs.tibial[cs.n_tibial * 3 / 4];
        float tib_p95 = cs.tibial[cs.n_tibial * 95 / 100];
        float fem_med = cs.femoral[cs.n_femoral / 2], fem_p95 = cs.femoral[cs.n_femoral * 95 / 100];
        cr_assert(tib_p75 >= 1.5f && tib_p95 <= 3.3f, "tibial thickness p75 %.2f p95 %.2f mm",
                  tib_p75, tib_p95);
        cr_assert(tib_med >= 1.2f, "tibial median %.2f mm", tib_med);
        cr_assert(fem_med >= 1.5f && fem_med <= 3.0f && fem_p95 <= 3.6f,
                  "femoral thickness median %.2f p95 %.2f mm", fem_med, fem_p95);
        cr_assert_lt(cs.touching, cs.contact_columns / 5,
                     "cartilages touch in %d of %d contact columns", cs.touching,
                     cs.contact_columns);
        free(cs.tibial);
        free(cs.femoral);
        dk_volume_release(&v);
    }
}

static void check_fractions(const char *profile_name, const char *contrast, int z_lo, int z_hi)
{
    dk_profile p;
    dk_err err = {0};
    cr_assert_eq(dk_profile_builtin(profile_name, &p, &err), DK_OK, "%s", err.msg);
    for (uint64_t index = 0; index < 2; index++) {
        dk_knee_subject s = subject(3, index, -1);
        dk_volume v;
        cr_assert_eq(dk_knee_synth(&s, &p, contrast, true, "k", &v, &err), DK_OK, "%s", err.msg);
        cr_assert(v.dims[0] >= z_lo && v.dims[0] <= z_hi, "%d slices", v.dims[0]);
        size_t n = dk_volume_voxels(&v), count[5] = {0};
        for (size_t i = 0; i < n; i++) {
            cr_assert_lt(v.label[i], 5);
            count[v.label[i]]++;
            cr_assert(v.image[i] >= 0 && v.image[i] < 10, "intensity %g", v.image[i]);
        }
        double f[5];
        for (int c = 0; c < 5; c++) f[c] = (double)count[c] / n;
        cr_assert(f[0] > 0.3 && f[0] < 0.8, "%s background %.3f", profile_name, f[0]);
        cr_assert(f[1] > 0.08 && f[1] < 0.4, "%s femur %.3f", profile_name, f[1]);
        cr_assert(f[2] > 0.008 && f[2] < 0.08, "%s femoral cartilage %.4f", profile_name, f[2]);
        cr_assert(f[3] > 0.08 && f[3] < 0.4, "%s tibia %.3f", profile_name, f[3]);
        cr_assert(f[4] > 0.003 && f[4] < 0.05, "%s tibial cartilage %.4f", profile_name, f[4]);
        dk_volume_release(&v);
    }
    dk_knee_subject s = subject(3, 0, -1);
    dk_volume v;
    cr_assert_eq(dk_knee_synth(&s, &p, NULL, false, "k", &v, &err), DK_OK, "%s", err.msg);
    cr_assert_null(v.label, "unlabelled volumes carry no label");
    dk_volume_release(&v);
}

Test(synth, class_fractions_at_repository, .timeout = 120)
{
    check_fractions("repository", NULL, 64, 64); /* a fixed protocol field of view */
}

Test(synth, class_fractions_at_clinical, .timeout = 120)
{
    check_fractions("clinical-3.3mm", "pd-fs", 12, 16); /* coverage 0.85-1.15 of 14 */
}

/* ---- splits ---- */

Test(splits, deterministic_disjoint_with_requested_counts)
{
    dk_split_plan plan = {.labelled = 2, .unlabelled = 20, .validation = 6};
    dk_split_role a[28], b[28], c[28];
    cr_assert_eq(dk_split_assign(28, &plan, 2, a, NULL), DK_OK);
    cr_assert_eq(dk_split_assign(28, &plan, 2, b, NULL), DK_OK);
    cr_assert_eq(dk_split_assign(28, &plan, 3, c, NULL), DK_OK);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_neq(memcmp(a, c, sizeof a), 0);
    int count[4] = {0};
    for (int i = 0; i < 28; i++) {
        cr_assert(a[i] >= DK_SPLIT_TRAIN && a[i] <= DK_SPLIT_VALIDATION);
        count[a[i]]++;
    }
    cr_assert_eq(count[DK_SPLIT_LABELLED], 2);
    cr_assert_eq(count[DK_SPLIT_UNLABELLED], 20);
    cr_assert_eq(count[DK_SPLIT_VALIDATION], 6);
    cr_assert_eq(count[DK_SPLIT_TRAIN], 0);
    cr_assert_str_eq(dk_split_role_name(DK_SPLIT_UNLABELLED), "unlabelled");
}

Test(splits, default_validation_and_bad_plans)
{
    cr_assert_eq(dk_split_default_validation(40), 8);
    cr_assert_eq(dk_split_default_validation(3), 1);
    cr_assert_eq(dk_split_default_validation(1), 0);
    cr_assert_eq(dk_split_default_validation(2), 1);
    dk_err err = {0};
    dk_split_role roles[4];
    dk_split_plan bad = {.labelled = -1, .unlabelled = 5};
    cr_assert_eq(dk_split_assign(4, &bad, 1, roles, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "labelled count -1"), "%s", err.msg);
    dk_split_plan wrong = {.train = 2, .validation = 1};
    cr_assert_eq(dk_split_assign(4, &wrong, 1, roles, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "4 volumes"), "%s", err.msg);
}

/* ---- dualkd data synth ---- */

static const char *py_check =
    "import h5py, sys, numpy as np\n"
    "f = h5py.File(sys.argv[1], 'r')\n"
    "names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs['classes']]\n"
    "assert names == ['background','femur','femoral_cartilage','tibia','tibial_cartilage'], names\n"
    "vols = f['volumes']\n"
    "splits = {}\n"
    "for k in vols:\n"
    "    g = vols[k]; s = g.attrs['split']; s = s.decode() if isinstance(s, bytes) else str(s)\n"
    "    splits[s] = splits.get(s, 0) + 1\n"
    "    img = g['image'][()]\n"
    "    z, y, x = img.shape  # a clinical field of view varies per scan\n"
    "    assert img.dtype == np.float32 and 12 <= z <= 16 and 172 <= y == x <= 200, img.shape\n"
    "    assert np.isfinite(img).all() and img.max() > 0\n"
    "    if s == 'unlabelled': assert 'label' not in g, k\n"
    "    else:\n"
    "        lab = g['label'][()]; assert lab.max() == 4 and lab.min() == 0, k\n"
    "        assert lab.shape == img.shape, (k, lab.shape, img.shape)\n"
    "print('splits', sorted(splits.items()))\n";

static void run_ok(const char *cmd, char *out, size_t cap)
{
    int rc = dk_test_run(cmd, out, cap);
    cr_assert_eq(rc, 0, "`%s` exited %d:\n%s", cmd, rc, out);
}

Test(cli, data_synth_writes_a_readable_deterministic_dataset, .timeout = 300)
{
    char *dir = dk_test_tmpdir();
    char cmd[2048], out[16384];
    const char *site = "--profile clinical-3.3mm --contrast pd-fs --labelled 2 --unlabelled 3 "
                       "--validation 1 --seed 2";
    snprintf(cmd, sizeof cmd, "%s data synth %s --out %s/a.h5", dk_test_bin(), site, dir);
    run_ok(cmd, out, sizeof out);
    cr_assert(strstr(out, "[6/6]"), "progress per volume on stderr:\n%s", out);
    snprintf(cmd, sizeof cmd, "%s data synth %s --quiet --out %s/b.h5", dk_test_bin(), site, dir);
    run_ok(cmd, out, sizeof out);
    cr_assert_eq(out[0], '\0', "--quiet prints nothing: %s", out);

    char script[256];
    snprintf(script, sizeof script, "%s/check.py", dir);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs(py_check, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %s/a.h5", dk_test_python(), script, dir);
    run_ok(cmd, out, sizeof out);
    cr_assert(strstr(out, "('labelled', 2), ('unlabelled', 3), ('validation', 1)"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import h5py, numpy as np, sys; a = h5py.File('%s/a.h5'); b = "
             "h5py.File('%s/b.h5'); ks = sorted(a['volumes']); assert ks == sorted(b['volumes']); "
             "[np.testing.assert_array_equal(a['volumes'][k][d][()], b['volumes'][k][d][()]) "
             "for k in ks for d in a['volumes'][k]]; print('same', len(ks))\"",
             dk_test_python(), dir, dir);
    run_ok(cmd, out, sizeof out);
    cr_assert(strstr(out, "same 6"), "%s", out);

    snprintf(cmd, sizeof cmd, "%s --help", dk_test_bin());
    run_ok(cmd, out, sizeof out);
    if (strstr(out, "data info")) {
        snprintf(cmd, sizeof cmd, "%s data info %s/a.h5", dk_test_bin(), dir);
        run_ok(cmd, out, sizeof out);
        cr_assert(strstr(out, "knee-0005") && strstr(out, "tibial_cartilage"), "%s", out);
    }
    dk_test_rmtree(dir);
    free(dir);
}

Test(cli, data_synth_repository_split, .timeout = 300)
{
    char *dir = dk_test_tmpdir();
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, "%s data synth --profile repository --n 3 --seed 1 --out %s/r.h5",
             dk_test_bin(), dir);
    run_ok(cmd, out, sizeof out);
    /* 20 % of 3 rounds to 1 validation volume; the others train */
    cr_assert(strstr(out, "validation") && strstr(out, "train"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import h5py; f = h5py.File('%s/r.h5'); v = f['volumes']; "
             "d = lambda s: s.decode() if isinstance(s, bytes) else str(s); "
             "print(sorted(d(v[k].attrs['split']) for k in v), v['knee-0000/image'].shape)\"",
             dk_test_python(), dir);
    run_ok(cmd, out, sizeof out);
    cr_assert(strstr(out, "['train', 'train', 'validation'] (64, 160, 160)"), "%s", out);
    dk_test_rmtree(dir);
    free(dir);
}

Test(cli, data_synth_bad_arguments)
{
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "%s data synth --profile no-such-site --n 2 --out /tmp/x.h5",
             dk_test_bin());
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert(rc == 2 || rc == 1, "rc %d", rc);
    cr_assert(strstr(out, "no-such-site"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s data synth --labelled -1 --out /tmp/x.h5", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "-1"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s data synth --n 2", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--out"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s data synth --n 2 --labelled 1 --out /tmp/x.h5", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s data synth --n 2 --contrast flair --out /tmp/x.h5",
             dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "flair"), "%s", out);
}
