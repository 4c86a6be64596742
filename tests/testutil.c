/* testutil.c: see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <criterion/criterion.h>

#include "datasets/dataset.h"
#include "distill/rng.h"

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

double dk_test_gradcheck(dk_test_scalar_fn f, void *ctx, float *x, const float *analytic,
                         size_t n, double step, double abs_floor, size_t max_checks)
{
    size_t stride = (max_checks == 0 || max_checks >= n) ? 1 : n / max_checks;
    double worst = 0;
    for (size_t i = 0; i < n; i += stride) {
        float saved = x[i];
        x[i] = (float)(saved + step);
        double up = f(ctx);
        x[i] = (float)(saved - step);
        double down = f(ctx);
        x[i] = saved;
        double fd = (up - down) / (2 * step);
        double err = fabs(analytic[i] - fd) / fmax(abs_floor, fabs(analytic[i]) + fabs(fd));
        if (err > worst) worst = err;
    }
    return worst;
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
