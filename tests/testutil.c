/* testutil.c: see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

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
