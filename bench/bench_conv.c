/* bench_conv.c: time every conv layer shape of a U-Net, batch 1: forward,
 * backward-data and backward-weight, in ms and GFLOP/s, plus raw SGEMM for
 * reference. --net reference (default): the reference U-Net (4 levels,
 * 16-32-64-128, 3x3x3, 64^3 input); --net teacher: the default teacher (5 levels,
 * 8-128, pooling (1,2,2) x 2 then (2,2,2) x 2) on a 64 x 160 x 160 volume.
 * GFLOP/s count the direct convolution's multiply-adds (2 per tap), also for the
 * Winograd path, which does fewer: for it the figure is an effective rate.
 *
 * usage: bench_conv [--net reference|teacher] [--threads N] [--reps N]
 *                   [--tile-rows N] [--fold -1|0|1] [--winograd -1|0|1]
 *                   [--fused -1|0|1] [--simd 0|1|2] [--tile 0|2|4] [--max-threads N]
 *                   [--only NAME] [--cpu 1]
 * --fused, --simd and --tile choose Winograd's fused path, its instruction set (0:
 * the CPU's best, 1: AVX2, 2: AVX-512) and its tile along h and w (0: where it
 * measured fastest; distill/winograd_fused.h).
 * Each figure is the best of --reps runs (the machine is shared: best-of is the
 * figure least disturbed by other processes). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/blas.h"
#include "distill/conv.h"
#include "distill/im2col.h"

typedef struct layer {
    const char *name;
    int cin, cout, dims[3]; /* input dims */
    bool transposed;
    int count; /* how many times the U-Net has this shape */
} layer;

#define CUBE(n)                                                                                    \
    {                                                                                              \
        n, n, n                                                                                    \
    }
static const layer reference_net[] = {
    {"64^3 1->16", 1, 16, CUBE(64), false, 1},
    {"64^3 16->16", 16, 16, CUBE(64), false, 2},
    {"64^3 32->16", 32, 16, CUBE(64), false, 1},
    {"32^3 16->32", 16, 32, CUBE(32), false, 1},
    {"32^3 32->32", 32, 32, CUBE(32), false, 2},
    {"32^3 64->32", 64, 32, CUBE(32), false, 1},
    {"16^3 32->64", 32, 64, CUBE(16), false, 1},
    {"16^3 64->64", 64, 64, CUBE(16), false, 2},
    {"16^3 128->64", 128, 64, CUBE(16), false, 1},
    {"8^3 64->128", 64, 128, CUBE(8), false, 1},
    {"8^3 128->128", 128, 128, CUBE(8), false, 1},
    {"up 8->16 128->64", 128, 64, CUBE(8), true, 1},
    {"up 16->32 64->32", 64, 32, CUBE(16), true, 1},
    {"up 32->64 32->16", 32, 16, CUBE(32), true, 1},
};

/* The default teacher (teacher/default_teacher.json) on a 64 x 160 x 160 volume;
 * its up-convs are (1,2,2) or (2,2,2), timed here as the latter. */
static const layer teacher_net[] = {
    {"L0 1->8", 1, 8, {64, 160, 160}, false, 1},
    {"L0 8->8", 8, 8, {64, 160, 160}, false, 2},
    {"L0 16->8", 16, 8, {64, 160, 160}, false, 1},
    {"L1 8->16", 8, 16, {64, 80, 80}, false, 1},
    {"L1 16->16", 16, 16, {64, 80, 80}, false, 2},
    {"L1 32->16", 32, 16, {64, 80, 80}, false, 1},
    {"L2 16->32", 16, 32, {64, 40, 40}, false, 1},
    {"L2 32->32", 32, 32, {64, 40, 40}, false, 2},
    {"L2 64->32", 64, 32, {64, 40, 40}, false, 1},
    {"L3 32->64", 32, 64, {32, 20, 20}, false, 1},
    {"L3 64->64", 64, 64, {32, 20, 20}, false, 2},
    {"L3 128->64", 128, 64, {32, 20, 20}, false, 1},
    {"L4 64->128", 64, 128, {16, 10, 10}, false, 1},
    {"L4 128->128", 128, 128, {16, 10, 10}, false, 1},
};

/* --cpu: time by process CPU time (all threads) instead of wall time, a steadier
 * proxy for tuning while other processes load the machine. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void fill(dk_tensor *t, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < dk_tensor_numel(t); i++) {
        s = s * 1664525u + 1013904223u;
        t->data[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

static void alloc_or_die(dk_tensor *t, int n, int c, int d, int h, int w)
{
    dk_err err = {0};
    if (dk_tensor_alloc(t, n, c, d, h, w, &err) != DK_OK) {
        fprintf(stderr, "bench_conv: %s\n", err.msg);
        exit(1);
    }
}

static double raw_sgemm_gflops(int n, int reps)
{
    float *a = calloc((size_t)n * n, sizeof(float)), *b = calloc((size_t)n * n, sizeof(float)),
          *c = calloc((size_t)n * n, sizeof(float));
    if (!a || !b || !c) exit(1);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * n / best / 1e9;
}

typedef struct timings {
    double fwd, data, weight; /* seconds, best of reps */
} timings;

static timings time_layer(const layer *l, const dk_conv_tuning *tune, int reps)
{
    dk_conv3d_geom g = {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}};
    if (l->transposed) g = (dk_conv3d_geom){{2, 2, 2}, {2, 2, 2}, {0, 0, 0}};
    int in[3] = {l->dims[0], l->dims[1], l->dims[2]}, out[3];
    dk_err err = {0};
    if (dk_conv3d_out_dims(&g, l->transposed, in, out, &err) != DK_OK) exit(1);
    dk_tensor x, dx, w, dw, b, y, dy;
    alloc_or_die(&x, 1, l->cin, in[0], in[1], in[2]);
    alloc_or_die(&dx, 1, l->cin, in[0], in[1], in[2]);
    int wn = l->transposed ? l->cin : l->cout, wc = l->transposed ? l->cout : l->cin;
    alloc_or_die(&w, wn, wc, g.kernel[0], g.kernel[1], g.kernel[2]);
    alloc_or_die(&dw, wn, wc, g.kernel[0], g.kernel[1], g.kernel[2]);
    alloc_or_die(&b, l->cout, 1, 1, 1, 1);
    alloc_or_die(&y, 1, l->cout, out[0], out[1], out[2]);
    alloc_or_die(&dy, 1, l->cout, out[0], out[1], out[2]);
    fill(&x, 1);
    fill(&w, 2);
    fill(&b, 3);
    fill(&dy, 4);
    dk_workspace ws = {0};
    size_t need = dk_conv3d_workspace_floats_tuned(&g, l->transposed, l->cin, l->cout, in, tune);
    if (dk_workspace_reserve(&ws, need, &err) != DK_OK) exit(1);
    timings best = {1e30, 1e30, 1e30};
    for (int r = 0; r < reps + 1; r++) { /* the first run warms caches and pages */
        double t0 = now();
        if (l->transposed)
            dk_convt3d_forward_tuned(&g, &x, &w, &b, &y, &ws, tune);
        else
            dk_conv3d_forward_tuned(&g, &x, &w, &b, &y, &ws, tune);
        double t1 = now();
        if (l->transposed)
            dk_convt3d_backward_data_tuned(&g, &w, &dy, &dx, &ws, tune);
        else
            dk_conv3d_backward_data_tuned(&g, &w, &dy, &dx, &ws, tune);
        double t2 = now();
        if (l->transposed)
            dk_convt3d_backward_weight_tuned(&g, &x, &dy, &dw, &ws, tune);
        else
            dk_conv3d_backward_weight_tuned(&g, &x, &dy, &dw, &ws, tune);
        double t3 = now();
        if (r == 0) continue;
        if (t1 - t0 < best.fwd) best.fwd = t1 - t0;
        if (t2 - t1 < best.data) best.data = t2 - t1;
        if (t3 - t2 < best.weight) best.weight = t3 - t2;
    }
    dk_tensor *all[] = {&x, &dx, &w, &dw, &b, &y, &dy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dk_tensor_release(all[i]);
    dk_workspace_release(&ws);
    return best;
}

static double layer_gflop(const layer *l)
{
    double taps = l->transposed ? 8 : 27;
    double voxels = (double)l->dims[0] * l->dims[1] * l->dims[2]; /* conv: output = input */
    return 2.0 * l->cin * l->cout * taps * voxels / 1e9;
}

int main(int argc, char **argv)
{
    dk_blas_reexec_for_fast_kernels(argv);
    int threads = 2, reps = 5;
    const char *only = NULL;
    const layer *layers = reference_net;
    size_t nlayers = sizeof reference_net / sizeof reference_net[0];
    dk_conv_tuning tune = dk_conv_default_tuning();
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tile-rows"))
            tune.tile_rows = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--fold"))
            tune.fold = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--winograd"))
            tune.winograd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--fused"))
            tune.fused = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--simd"))
            tune.simd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tile"))
            tune.tile = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--net") && !strcmp(argv[i + 1], "teacher")) {
            layers = teacher_net;
            nlayers = sizeof teacher_net / sizeof teacher_net[0];
        } else if (!strcmp(argv[i], "--net") && !strcmp(argv[i + 1], "reference"))
            continue;
        else if (!strcmp(argv[i], "--max-threads"))
            tune.max_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!strcmp(argv[i], "--cpu"))
            bench_clock = atoi(argv[i + 1]) ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
        else {
            fprintf(stderr, "bench_conv: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    dk_blas_set_threads(threads);
    printf("OpenBLAS core %s, %d threads; tile %zu rows, fold %d, winograd %d, fused %d (tile %d), "
           "best of %d%s\n",
           dk_blas_corename(), dk_blas_threads(), tune.tile_rows, tune.fold, tune.winograd,
           tune.fused, tune.tile, reps, bench_clock == CLOCK_MONOTONIC ? "" : ", CPU time");
    printf("raw sgemm 1024^3: %.1f GFLOP/s\n\n", raw_sgemm_gflops(1024, reps));
    printf("%-18s %7s | %8s %7s | %8s %7s | %8s %7s\n", "layer", "GFLOP", "fwd ms", "GF/s",
           "bwd-d ms", "GF/s", "bwd-w ms", "GF/s");
    double step = 0, step_flop = 0, fwd = 0, fwd_flop = 0;
    for (size_t i = 0; i < nlayers; i++) {
        const layer *l = &layers[i];
        if (only && !strstr(l->name, only)) continue;
        timings t = time_layer(l, &tune, reps);
        double f = layer_gflop(l);
        printf("%-18s %7.3f | %8.2f %7.1f | %8.2f %7.1f | %8.2f %7.1f\n", l->name, f, t.fwd * 1e3,
               f / t.fwd, t.data * 1e3, f / t.data, t.weight * 1e3, f / t.weight);
        /* the first layer needs no input gradient */
        bool first = i == 0;
        step += l->count * (t.fwd + t.weight + (first ? 0 : t.data));
        step_flop += l->count * f * (first ? 2 : 3);
        if (!l->transposed) {
            fwd += l->count * t.fwd;
            fwd_flop += l->count * f;
        }
    }
    printf("\nU-Net train step, convolutions only (each shape times its count): %.1f ms, "
           "%.1f GFLOP, %.1f GFLOP/s\n",
           step * 1e3, step_flop, step_flop / step);
    printf("U-Net forward, 3x3x3 convolutions only: %.1f ms, %.1f GFLOP\n", fwd * 1e3, fwd_flop);
    return 0;
}
