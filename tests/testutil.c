/* testutil.c: see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <criterion/criterion.h>

#include "datasets/dataset.h"
#include "distill/rng.h"
#include "teacher/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char *dk_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/dualkd-test-XXXXXX", base ? base : "/tmp") < 0) return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

char *dk_test_dir;

void dk_test_dir_setup(void)
{
    dk_test_dir = dk_test_tmpdir();
    if (!dk_test_dir) {
        perror("dk_test_dir_setup: mkdtemp");
        abort();
    }
}

void dk_test_dir_teardown(void)
{
    if (!dk_test_dir) return;
    dk_test_rmtree(dk_test_dir);
    free(dk_test_dir);
    dk_test_dir = NULL;
}

char *dk_test_path(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dk_test_dir, name) < 0) abort();
    return p;
}

void dk_test_rmtree(const char *path)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", path) < 0) return;
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
    free(cmd);
}

int dk_test_run(const char *cmdline, char *out, size_t cap)
{
    char *full = NULL;
    if (asprintf(&full, "(%s) 2>&1", cmdline) < 0) return -1;
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t used = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0) {
        if (out && used + 1 < cap) {
            size_t take = got < cap - 1 - used ? got : cap - 1 - used;
            memcpy(out + used, chunk, take);
            used += take;
        }
    }
    if (out && cap) out[used] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *dk_test_bin(void)
{
    const char *bin = getenv("DUALKD_BIN");
    return bin ? bin : "./dualkd";
}

const char *dk_test_source(void)
{
    const char *src = getenv("DUALKD_SOURCE");
    return src ? src : ".";
}

const char *dk_test_python(void)
{
    const char *py = getenv("PYTHON");
    return py ? py : "/usr/bin/python3";
}

void dk_test_fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi)
{
    unsigned long long s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(s >> 11) / 9007199254740992.0;
        x[i] = (float)(lo + (hi - lo) * u);
    }
}

double dk_test_max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double scale = fmax(1.0, fmax(fabs(a[i]), fabs(b[i])));
        double d = fabs((double)a[i] - b[i]) / scale;
        if (d > worst) worst = d;
    }
    return worst;
}

/* Finite differences that float32 noise cannot fool.
 *
 * F is computed in float32 inside the code under test (accumulated in double by
 * the test objectives), so it carries a rounding error dF whose size and sign
 * depend on the summation order, that is on the BLAS kernel and thread count.
 * A central difference over 2h turns dF into dF/h of slope error: with F ~ 60,
 * dF ~ 5e-5 and h = 1e-4 that is +-0.3, larger than some directional derivatives
 * themselves, so no fixed tolerance is right on every CPU.
 *
 * Each probe therefore measures its own noise. F(x + t*dir) is sampled at the
 * 2K+1 points t_j = h*j/K and fitted by least squares with a + b*t + c*t^2 (on
 * this symmetric grid b = sum(t*F)/sum(t^2) exactly, independent of a and c).
 * The residuals estimate the noise sigma of F, so b carries the standard error
 * se = sigma / sqrt(sum(t^2)). A gradient counts as wrong only when it misses b
 * by more than the caller's relative tolerance plus DK_FD_SIGMAS * se: for
 * Student's t with 2K-2 = 10 degrees of freedom, P(|t| > 8) ~ 1e-5, whichever
 * kernel made the noise. Kinks (ReLU, max-pool) crossed inside [-h, h] show up as
 * residual too and widen the allowance instead of failing the check; callers
 * assert the allowance stays small against the signal (dk_test_slope.noise). */
enum { FD_HALF = 6 };
#define DK_FD_SIGMAS 8.0

static double eval_at(dk_test_scalar_fn f, void *ctx, float *x, const float *saved, size_t n,
                      const float *dir, size_t only, double t)
{
    if (dir)
        for (size_t k = 0; k < n; k++)
            x[k] = (float)(saved[k] + t * dir[k]);
    else
        x[only] = (float)(saved[0] + t);
    return f(ctx);
}

/* dir == NULL probes the single coordinate x[only] (saved then holds x[only]
 * alone). x is restored. */
static dk_test_slope fit_slope(dk_test_scalar_fn f, void *ctx, float *x, size_t n, const float *dir,
                               size_t only, double h)
{
    size_t keep = dir ? n : 1;
    float *saved = malloc(keep * sizeof(float));
    cr_assert_not_null(saved);
    memcpy(saved, dir ? x : x + only, keep * sizeof(float));
    enum { m = 2 * FD_HALF + 1 };
    double t[m], y[m], st2 = 0, st4 = 0, sy = 0, sty = 0, st2y = 0;
    for (int j = 0; j < m; j++) {
        t[j] = h * (j - FD_HALF) / FD_HALF;
        y[j] = eval_at(f, ctx, x, saved, n, dir, only, t[j]);
        double t2 = t[j] * t[j];
        st2 += t2, st4 += t2 * t2, sy += y[j], sty += t[j] * y[j], st2y += t2 * y[j];
    }
    memcpy(dir ? x : x + only, saved, keep * sizeof(float));
    free(saved);
    /* a and c from the 2x2 normal equations of the even part; b from the odd part. */
    double b = sty / st2, det = m * st4 - st2 * st2;
    double a = (st4 * sy - st2 * st2y) / det, c = (m * st2y - st2 * sy) / det, rss = 0;
    for (int j = 0; j < m; j++) {
        double r = y[j] - (a + b * t[j] + c * t[j] * t[j]);
        rss += r * r;
    }
    double sigma = sqrt(rss / (m - 3));
    return (dk_test_slope){.slope = b, .noise = DK_FD_SIGMAS * sigma / sqrt(st2)};
}

dk_test_slope dk_test_measure_slope(dk_test_scalar_fn f, void *ctx, float *x, const float *dir,
                                    size_t n, double h)
{
    return fit_slope(f, ctx, x, n, dir, 0, h);
}

double dk_test_slope_error(double analytic, dk_test_slope s, double abs_floor)
{
    double miss = fabs(analytic - s.slope) - s.noise;
    return miss <= 0 ? 0 : miss / fmax(abs_floor, fabs(analytic) + fabs(s.slope));
}

double dk_test_gradcheck(dk_test_scalar_fn f, void *ctx, float *x, const float *analytic, size_t n,
                         double step, double abs_floor, size_t max_checks)
{
    size_t stride = (max_checks == 0 || max_checks >= n) ? 1 : n / max_checks;
    double worst = 0;
    for (size_t i = 0; i < n; i += stride) {
        dk_test_slope s = fit_slope(f, ctx, x, n, NULL, i, step);
        double err = dk_test_slope_error(analytic[i], s, abs_floor);
        if (err > worst) worst = err;
    }
    return worst;
}

void dk_test_train_teacher(const char *data, const char *out, const char *config_json,
                           uint64_t seed)
{
    dk_err err = {0};
    dk_teacher_run run = {.data_path = data, .out_path = out, .seed = seed};
    cr_assert_eq(dk_teacher_config_from_json(config_json, &run.config, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_teacher_train(&run, &err), DK_OK, "%s", err.msg);
}

/* Volumes of 16 x 32 x 32 at 0.7 x 0.36 x 0.36 mm: a ball (class 1) and a slab
 * (class 2) at seeded places, with noisy intensities. */
void dk_test_write_phantoms(const char *path, int n_train, int n_val, bool val_labels)
{
    dk_err err = {0};
    dk_classes classes = {.count = 3};
    strcpy(classes.names[0], "background");
    strcpy(classes.names[1], "ball");
    strcpy(classes.names[2], "slab");
    dk_dataset_writer *w = dk_dataset_writer_open(path, &classes, &err);
    cr_assert_not_null(w, "%s", err.msg);
    for (int i = 0; i < n_train + n_val; i++) {
        dk_volume v;
        const int dims[3] = {16, 32, 32};
        char id[16];
        snprintf(id, sizeof id, "vol-%02d", i);
        bool val = i >= n_train;
        cr_assert_eq(dk_volume_alloc(&v, id, dims, !val || val_labels, &err), DK_OK);
        v.spacing[0] = 0.7, v.spacing[1] = v.spacing[2] = 0.36;
        snprintf(v.split, sizeof v.split, "%s", val ? "validation" : "train");
        dk_rng rng = dk_rng_seed(100 + (uint64_t)i);
        double cz = 5 + 6 * dk_rng_uniform(&rng), cy = 10 + 12 * dk_rng_uniform(&rng);
        double cx = 10 + 12 * dk_rng_uniform(&rng), slab = 3 + 4 * dk_rng_uniform(&rng);
        for (int z = 0; z < 16; z++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) {
                    size_t at = ((size_t)z * 32 + y) * 32 + x;
                    double r2 = (z - cz) * (z - cz) * 4 + (y - cy) * (y - cy) + (x - cx) * (x - cx);
                    int l = r2 < 36 ? 1 : (y > 32 - slab - 3 && y < 32 - 3) ? 2 : 0;
                    if (v.label) v.label[at] = (uint8_t)l;
                    v.image[at] = (float)(100 + 40 * l + 8 * dk_rng_normal(&rng));
                }
        cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_OK, "%s", err.msg);
        dk_volume_release(&v);
    }
    cr_assert_eq(dk_dataset_writer_commit(w, &err), DK_OK, "%s", err.msg);
}

dk_tensor dk_test_tensor(int n, int c, int d, int h, int w)
{
    dk_tensor t;
    dk_err err = {0};
    cr_assert_eq(dk_tensor_alloc(&t, n, c, d, h, w, &err), DK_OK, "%s", err.msg);
    return t;
}

void dk_test_assert_close(const float *got, const float *want, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs((double)got[i] - want[i]) <= tol, "element %zu: got %.7g, want %.7g", i,
                  got[i], want[i]);
}

dk_knee_subject dk_test_knee_healthy(uint64_t seed, uint64_t index)
{
    dk_knee_subject s;
    dk_knee_subject_draw(seed, index, &s);
    dk_knee_subject_set_grade(&s, 0);
    s.n_lesions = s.n_bml = s.n_cysts = 0;
    s.fat_sat_failure = s.ghosting = 0;
    return s;
}

void dk_test_assert_identical_scans(const dk_volume *a, const dk_volume *b)
{
    cr_assert_eq(memcmp(a->dims, b->dims, sizeof a->dims), 0, "the scans differ in shape");
    size_t n = dk_volume_voxels(a);
    cr_assert_eq(memcmp(a->image, b->image, n * sizeof(float)), 0);
    cr_assert_eq(memcmp(a->label, b->label, n), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert(isfinite(a->image[i]) && a->image[i] >= 0, "voxel %zu: %g", i, a->image[i]);
}

void dk_test_assert_same_grid(const dk_volume *a, const dk_volume *b)
{
    cr_assert_arr_eq(a->dims, b->dims, sizeof a->dims);
    for (int i = 0; i < 3; i++) {
        cr_assert_float_eq(a->spacing[i], b->spacing[i], 1e-6 * a->spacing[i], "spacing %d", i);
        cr_assert_float_eq(a->origin[i], b->origin[i], 1e-4, "origin %d", i);
    }
    for (int i = 0; i < 9; i++)
        cr_assert_float_eq(a->direction[i], b->direction[i], 1e-6, "direction %d: %g vs %g", i,
                           a->direction[i], b->direction[i]);
}
