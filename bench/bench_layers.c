/* bench_layers.c: time and effective bandwidth of each light layer's forward +
 * backward (distill/layers.h) at U-Net sizes, next to two baselines (memcpy and a
 * plain y = a*x loop) that show what this machine's memory can do.
 *
 * GB/s counts the compulsory traffic only: every tensor a call must read or write,
 * once (e.g. ReLU: forward reads x, writes y; backward reads y, dy, writes dx).
 * A layer near the y = a*x baseline is memory-bound, as it should be. The last line
 * times precompute's Gaussian draws (distill/normal.h), written as doubles.
 * Usage: bench_layers [repetitions]   (default 10; prints best and median). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/clock.h"
#include "distill/layers.h"
#include "distill/normal.h"

#define MAX_REPS 100

typedef struct bench_ctx {
    dk_tensor x, y, dy, dx, x2, y2;
    float *gamma, *beta, *mean, *rstd, *dgamma, *dbeta;
    int32_t *argmax;
} bench_ctx;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, const char *shape, void (*run)(bench_ctx *), bench_ctx *b,
                   double bytes, int reps)
{
    double t[MAX_REPS];
    run(b); /* warm-up: page faults, caches */
    for (int i = 0; i < reps; i++) {
        double t0 = dk_clock_seconds();
        run(b);
        t[i] = dk_clock_seconds() - t0;
    }
    qsort(t, reps, sizeof t[0], cmp_double);
    printf("%-22s %-14s %8.2f ms %8.2f ms %7.1f GB/s %7.1f GB/s %8.1f MB\n", name, shape,
           t[0] * 1e3, t[reps / 2] * 1e3, bytes / t[0] * 1e-9, bytes / t[reps / 2] * 1e-9,
           bytes * 1e-6);
}

static void run_memcpy(bench_ctx *b)
{
    memcpy(b->y.data, b->x.data, dk_tensor_numel(&b->x) * sizeof(float));
}

/* Blocked like the layers' own loops, so that it vectorises at -O2 too. */
static void run_scale(bench_ctx *b)
{
    size_t n = dk_tensor_numel(&b->x), i = 0;
    const float *x = b->x.data;
    float *y = b->y.data;
    for (; i + 16 <= n; i += 16) {
        float out[16];
        for (int l = 0; l < 16; l++)
            out[l] = 1.5f * x[i + l];
        for (int l = 0; l < 16; l++)
            y[i + l] = out[l];
    }
    for (; i < n; i++)
        y[i] = 1.5f * x[i];
}

static void run_instnorm(bench_ctx *b)
{
    dk_instnorm_forward(&b->x, b->gamma, b->beta, 1e-5f, &b->y, b->mean, b->rstd, NULL);
    dk_instnorm_backward(&b->x, b->gamma, b->mean, b->rstd, &b->dy, &b->dx, b->dgamma, b->dbeta,
                         NULL);
}

static void run_relu(bench_ctx *b)
{
    dk_leaky_relu_forward(&b->x, 0.01f, &b->y, NULL);
    dk_leaky_relu_backward(&b->y, 0.01f, &b->dy, &b->dx, NULL);
}

static const int pool_k[3] = {2, 2, 2};

static void run_pool(bench_ctx *b)
{
    dk_maxpool3d_forward(pool_k, &b->x, &b->y2, b->argmax, NULL);
    dk_maxpool3d_backward(pool_k, &b->y2, b->argmax, &b->dx, NULL);
}

/* Skip connection: x and dy (same shape) concatenated into y2 (twice the channels). */
static void run_concat(bench_ctx *b)
{
    dk_concat_channels_forward(&b->x, &b->dy, &b->y2);
    dk_concat_channels_backward(&b->y2, &b->dx, &b->y);
}

static void run_softmax(bench_ctx *b)
{
    dk_softmax_channels_forward(&b->x, 2.0f, &b->y, NULL);
    dk_softmax_channels_backward(&b->y, &b->dy, 2.0f, &b->dx);
}

/* 2x trilinear up-sampling from x2 (half size) into y, and back into the x2-shaped y2. */
static void run_resize(bench_ctx *b)
{
    dk_resize_trilinear_forward(&b->x2, &b->y);
    dk_resize_trilinear_backward(&b->y, &b->y2);
}

static int alloc(dk_tensor *t, int c, int d, int h, int w)
{
    dk_err err = {0};
    if (dk_tensor_alloc(t, 1, c, d, h, w, &err) == DK_OK) {
        size_t n = dk_tensor_numel(t);
        for (size_t i = 0; i < n; i++)
            t->data[i] = (float)((i * 7919) % 1000) / 500 - 1;
        return 0;
    }
    fprintf(stderr, "bench_layers: %s\n", err.msg);
    return 1;
}

static void release(bench_ctx *b)
{
    dk_tensor *all[6] = {&b->x, &b->y, &b->dy, &b->dx, &b->x2, &b->y2};
    for (int i = 0; i < 6; i++)
        dk_tensor_release(all[i]);
    free(b->argmax);
}

/* All layers at one (C, S^3) size; returns non-zero on allocation failure. */
static int bench_size(int c, int s, int reps)
{
    bench_ctx b = {0};
    float params[6][128];
    for (int i = 0; i < 128; i++)
        params[0][i] = 1, params[1][i] = 0;
    b.gamma = params[0], b.beta = params[1], b.mean = params[2], b.rstd = params[3];
    b.dgamma = params[4], b.dbeta = params[5];
    char shape[32];
    snprintf(shape, sizeof shape, "%dx%d^3", c, s);
    double B = (double)c * s * s * s * sizeof(float);
    if (c > 128 || alloc(&b.x, c, s, s, s) || alloc(&b.y, c, s, s, s) || alloc(&b.dy, c, s, s, s) ||
        alloc(&b.dx, c, s, s, s))
        return 1;
    report("memcpy (baseline)", shape, run_memcpy, &b, 2 * B, reps);
    report("y = a*x (baseline)", shape, run_scale, &b, 2 * B, reps);
    report("instnorm fwd+bwd", shape, run_instnorm, &b, 5 * B, reps);
    report("relu fwd+bwd", shape, run_relu, &b, 5 * B, reps);

    if (alloc(&b.y2, c, s / 2, s / 2, s / 2) || alloc(&b.x2, c, s / 2, s / 2, s / 2)) return 1;
    b.argmax = malloc(dk_tensor_numel(&b.y2) * sizeof(int32_t));
    if (!b.argmax) return 1;
    report("maxpool 2^3 fwd+bwd", shape, run_pool, &b, 2.5 * B, reps);
    report("resize x2 up fwd+bwd", shape, run_resize, &b, 2.25 * B, reps);

    dk_tensor_release(&b.y2);
    if (alloc(&b.y2, 2 * c, s, s, s)) return 1;
    report("concat c+c fwd+bwd", shape, run_concat, &b, 8 * B, reps);
    release(&b);
    return 0;
}

/* The noisy passes' Gaussian draws (precompute): as many doubles as dx holds. */
static void run_normal(bench_ctx *b)
{
    dk_rng r = dk_rng_seed(7);
    dk_normal_fill(&r, dk_tensor_numel(&b->dx) / 2, (double *)(void *)b->dx.data);
}

static int bench_softmax(int c, int s, int reps)
{
    bench_ctx b = {0};
    char shape[32];
    snprintf(shape, sizeof shape, "%dx%d^3", c, s);
    double B = (double)c * s * s * s * sizeof(float);
    if (alloc(&b.x, c, s, s, s) || alloc(&b.y, c, s, s, s) || alloc(&b.dy, c, s, s, s) ||
        alloc(&b.dx, c, s, s, s))
        return 1;
    report("softmax T=2 fwd+bwd", shape, run_softmax, &b, 5 * B, reps);
    /* When this loop ran scalar (before 2026-11-30) a draw took 37 ns here; 7.5 ns
     * vectorised (1.0 GB/s). A figure near 0.2 GB/s means it runs scalar again. */
    report("normal draws", "(doubles)", run_normal, &b, B, reps);
    release(&b);
    return 0;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: bench_layers [repetitions 1..%d]\n", MAX_REPS);
        return 2;
    }
    printf("single thread, %d repetitions; times and GB/s as best / median\n", reps);
    printf("%-22s %-14s %11s %11s %12s %12s %11s\n", "layer", "shape", "best", "median", "best",
           "median", "traffic");
    int failed = bench_size(16, 64, reps) || bench_size(32, 32, reps) || bench_softmax(5, 64, reps);
    if (failed) fprintf(stderr, "bench_layers: out of memory\n");
    return failed;
}
