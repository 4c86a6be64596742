/* testutil.h: helpers shared by the Criterion tests: temporary directories,
 * running the real dualkd binary and Python checkers, finite differences. */
#ifndef DK_TESTUTIL_H
#define DK_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/synth_knee.h"
#include "datasets/volume.h"
#include "distill/tensor.h"

/* A fresh directory under $TMPDIR (or /tmp) for this test; caller frees the string.
 * Removed with dk_test_rmtree. */
char *dk_test_tmpdir(void);
void dk_test_rmtree(const char *path);

/* A scratch directory per test, for suites that write files:
 *   TestSuite(name, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);
 * dk_test_dir names it while the test runs; dk_test_path(name) is
 * "<dk_test_dir>/<name>" (caller frees). Each test runs in its own process. */
extern char *dk_test_dir;
void dk_test_dir_setup(void);
void dk_test_dir_teardown(void);
char *dk_test_path(const char *name);

/* Write a small dataset to path: n_train "train" then n_val "validation" volumes
 * (ids vol-00, vol-01, ...) of 16 x 32 x 32 at 0.7 x 0.36 x 0.36 mm, each a ball
 * (class 1) and a slab (class 2) at seeded places with noisy intensities; classes
 * background, ball, slab. Validation volumes carry labels when val_labels. */
void dk_test_write_phantoms(const char *path, int n_train, int n_val, bool val_labels);

/* The 2-level, width-4 teacher config the store, server and student tests train
 * in a few seconds on dk_test_write_phantoms data ("%d" steps, "%d" per epoch). */
#define DK_TEST_TINY_TEACHER                                                                       \
    "{\"network\": {\"levels\": 2, \"base_width\": 4, \"pool\": [[2, 2, 2]],"                      \
    " \"kernel\": [[3, 3, 3], [3, 3, 3]]}, \"patch\": [16, 16, 16], \"batch\": 2,"                 \
    " \"steps\": %d, \"steps_per_epoch\": %d, \"checkpoint_every\": 0}"

/* Train a teacher on the dataset at data into out with this teacher config JSON
 * (e.g. a DK_TEST_TINY_TEACHER formatted with its step counts); the test fails
 * if it cannot. */
void dk_test_train_teacher(const char *data, const char *out, const char *config_json,
                           uint64_t seed);

/* a and b have the same grid: dims exactly, spacing to 1e-6 relative, origin to
 * 1e-4 mm, direction cosines to 1e-6 (what a float32 NIfTI header keeps). */
void dk_test_assert_same_grid(const dk_volume *a, const dk_volume *b);

/* Run a shell command line; returns its exit status (or -1), stdout+stderr into out
 * (NUL-terminated, truncated to cap) when out is non-NULL. */
int dk_test_run(const char *cmdline, char *out, size_t cap);

/* Path of the built dualkd binary ($DUALKD_BIN), the source tree ($DUALKD_SOURCE),
 * and the Debian Python used as an independent reader ($PYTHON, default /usr/bin/python3). */
const char *dk_test_bin(void);
const char *dk_test_source(void);
const char *dk_test_python(void);

/* Synthetic-knee subject index of seed, healthy (KL 0, no focal defects, marrow lesions
 * or cysts) and cleanly scanned (no fat-suppression failure, no ghosts): a generator
 * test switches on the one feature it looks at. */
dk_knee_subject dk_test_knee_healthy(uint64_t seed, uint64_t index);

/* Two synthetic scans of one subject and plan are the same bytes (image and labels), and
 * every intensity is a finite magnitude (>= 0); the test fails otherwise. */
void dk_test_assert_identical_scans(const dk_volume *a, const dk_volume *b);

/* Deterministic uniform floats in [lo, hi) for filling test tensors. */
void dk_test_fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi);

/* A zeroed owning tensor of this shape; the test fails if it cannot be allocated. */
dk_tensor dk_test_tensor(int n, int c, int d, int h, int w);

/* Assert |got[i] - want[i]| <= tol for every i, naming the first element that is not. */
void dk_test_assert_close(const float *got, const float *want, size_t n, double tol);

/* Largest |a-b| / max(1, |a|, |b|) over n values. */
double dk_test_max_rel_diff(const float *a, const float *b, size_t n);

/* Finite-difference checks that hold under every BLAS kernel (testutil.c explains
 * the bound). f(ctx) evaluates a scalar, accumulated in double, that depends on x.
 *
 * dk_test_measure_slope: the slope of F(x + t*dir) at t = 0 over n coordinates,
 * fitted from 13 points in [-h, h], with `noise`, the allowance that float32
 * rounding (and kinks) of F justify: 8 standard errors of the fitted slope.
 * dk_test_slope_error: how far `analytic` misses the slope beyond that noise,
 * relative to max(abs_floor, |analytic| + |slope|); 0 when within the noise.
 * dk_test_gradcheck: per coordinate, analytic[i] against dF/dx[i] at step `step`;
 * at most max_checks indices are probed (spread evenly; 0 = all); returns the
 * worst dk_test_slope_error. x is restored by all three. */
typedef double (*dk_test_scalar_fn)(void *ctx);
typedef struct dk_test_slope {
    double slope, noise;
} dk_test_slope;
dk_test_slope dk_test_measure_slope(dk_test_scalar_fn f, void *ctx, float *x, const float *dir,
                                    size_t n, double h);
double dk_test_slope_error(double analytic, dk_test_slope s, double abs_floor);
double dk_test_gradcheck(dk_test_scalar_fn f, void *ctx, float *x, const float *analytic, size_t n,
                         double step, double abs_floor, size_t max_checks);

#endif
