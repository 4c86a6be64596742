/* bench_inference.c: what the teacher's forward-only users (precompute, the
 * server's /v1/distill, evaluation) get: forward time and peak RSS of the teacher
 * on a repository volume, and precompute volumes/s at N noisy passes. With
 * --precompute, the forward runs TEACHER.h5 on REPO.h5's first volume (z-scored);
 * without, the default teacher (teacher/default_teacher.json, 5 classes, seeded
 * weights) on a fixed pattern of --size.
 *
 *   bench_inference [--size D H W] [--threads T] [--reps K] [--plan train|inference|both]
 *                   [--precompute TEACHER.h5 REPO.h5 [--volumes V] [--passes N]
 *                    [--pass-batch B] [--pass-lanes L]]
 *
 * Each measurement runs in a child process of its own, so its peak RSS (VmHWM)
 * is that measurement's alone. Defaults: 64 x 160 x 160, 2 threads, 3 timed
 * forwards after one warm-up, 2 volumes, 8 passes, profile clinical-3.3mm, pass
 * batch 1 (precompute's default; 0: as many passes per forward as fit), pass lanes 0
 * (precompute's default: a pass per thread side by side; 1: one at a time). CPU times
 * count all threads (the precompute's include the reading, resampling and store).
 * bench/compare_inference.sh runs two builds of this program alternately. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_subset.h"
#include "datasets/dataset.h"
#include "distill/blas.h"
#include "distill/checkpoint.h"
#include "distill/unet.h"
#include "teacher/precompute.h"
#include "teacher/precompute_run.h"
#include "teacher/train.h"

/* The inference plan and pass batching arrived together with this program; built
 * against a tree without them (for a before/after run), it measures the training
 * plan and one pass per forward. */
#ifdef DK_PRECOMPUTE_BATCH_BYTES
#define HAVE_INFERENCE_PLAN 1
#else
#define HAVE_INFERENCE_PLAN 0
#endif
/* The same for the passes side by side. */
#ifdef DK_PRECOMPUTE_MAX_LANES
#define HAVE_PASS_LANES 1
#else
#define HAVE_PASS_LANES 0
#endif

typedef struct options {
    int dims[3], threads, reps, volumes, passes, pass_batch, pass_lanes;
    bool inference; /* the plan of the forward child */
    bool both;      /* run a child with each plan */
    const char *teacher, *repo;
} options;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Process CPU time, all threads: steadier than wall time on a shared machine. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Peak resident set of this process in MB (VmHWM), -1 if unreadable. */
static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

/* The teacher checkpoint's network when one is given, else the default teacher
 * with seeded weights (the forward's cost does not depend on the values). */
static dk_unet *make_net(const options *o, dk_err *err)
{
    dk_unet_config c = dk_teacher_config_default().network;
    c.in_channels = 1, c.classes = 5;
    char *arch = NULL;
    if (o->teacher && (dk_checkpoint_read_architecture(o->teacher, &arch, err) ||
                       dk_unet_config_from_json(arch, &c, err))) {
        free(arch);
        return NULL;
    }
    dk_unet *net = dk_unet_create(&c, 1, err);
    if (net && arch && dk_checkpoint_load(o->teacher, arch, dk_unet_params(net), NULL, err)) {
        dk_unet_free(net);
        net = NULL;
    }
    free(arch);
    return net;
}

/* The first volume of the repository, z-scored, when one is given (its dims
 * replace --size), else a fixed pattern of --size. */
static dk_status make_input(const options *o, dk_tensor *x, dk_err *err)
{
    const int *d = o->dims;
    if (!o->repo) {
        if (dk_tensor_alloc(x, 1, 1, d[0], d[1], d[2], err)) return DK_ENOMEM;
        for (size_t i = 0; i < dk_tensor_numel(x); i++)
            x->data[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        return DK_OK;
    }
    dk_dataset *ds = dk_dataset_open(o->repo, err);
    if (!ds) return DK_EIO;
    dk_volume v;
    dk_status st = dk_dataset_read(ds, 0, &v, err);
    dk_dataset_close(ds);
    if (st) return st;
    st = dk_tensor_alloc(x, 1, 1, v.dims[0], v.dims[1], v.dims[2], err);
    if (!st) {
        memcpy(x->data, v.image, dk_tensor_numel(x) * sizeof(float));
        dk_teacher_normalise(x->data, dk_tensor_numel(x));
    }
    dk_volume_release(&v);
    return st;
}

static int forward_child(const options *o)
{
    dk_err err = {0};
    dk_tensor x = {0};
    dk_unet *net = NULL;
    dk_status st = make_input(o, &x, &err);
    if (!st && !(net = make_net(o, &err))) st = DK_EINVAL;
    const int d[3] = {x.d, x.h, x.w};
    size_t activations = 0;
#if HAVE_INFERENCE_PLAN
    if (!st)
        st = o->inference ? dk_unet_plan_inference(net, 1, d[0], d[1], d[2], 0, &err)
                          : dk_unet_plan(net, 1, d[0], d[1], d[2], &err);
    if (!st) activations = dk_unet_activation_bytes(net);
#else
    if (!st) st = dk_unet_plan(net, 1, d[0], d[1], d[2], &err);
#endif
    if (st) {
        fprintf(stderr, "bench_inference: %s\n", err.msg);
        dk_unet_free(net);
        dk_tensor_release(&x);
        return 1;
    }
    dk_unet_forward(net, &x); /* warm-up: pages in the activations */
    double best = 1e30, total = 0, c0 = cpu_now();
    for (int r = 0; r < o->reps; r++) {
        double t0 = now();
        dk_unet_forward(net, &x);
        double t = now() - t0;
        total += t;
        if (t < best) best = t;
    }
    double cpu = cpu_now() - c0, flops = dk_unet_forward_flops(net);
    printf("forward  %dx%dx%d  plan %-9s  %.3f s mean, %.3f s best (%.1f GFLOP/s), CPU %.3f s  "
           "activations %.0f MB  peak RSS %.0f MB\n",
           d[0], d[1], d[2], o->inference ? "inference" : "train", total / o->reps, best,
           flops * 1e-9 / best, cpu / o->reps, activations / 1048576.0, peak_rss_mb());
    dk_tensor_release(&x);
    dk_unet_free(net);
    return 0;
}

static int precompute_child(const options *o)
{
    char dir[] = "/tmp/bench_inference-XXXXXX", data[300], cmd[400];
    if (!mkdtemp(dir)) return 1;
    snprintf(data, sizeof data, "%s/repo.h5", dir);
    dk_err err = {0};
    int n = bench_subset(o->repo, data, o->volumes, &err), rc = 1;
    dk_precompute_options po = dk_precompute_options_default();
    po.teacher_path = o->teacher, po.data_path = data, po.out_dir = dir, po.passes = o->passes;
#if HAVE_INFERENCE_PLAN
    po.pass_batch = o->pass_batch;
#endif
#if HAVE_PASS_LANES
    po.pass_lanes = o->pass_lanes;
#endif
    dk_precompute_result res;
    double c0 = cpu_now();
    if (n >= 1 && !dk_profile_builtin("clinical-3.3mm", &po.profile, &err) &&
        !dk_precompute_run(&po, &res, &err)) {
        printf(
            "precompute  %d volume(s), %d passes (pass batch %d, lanes %d, 0: auto), "
            "clinical-3.3mm   %.3f volumes/s  (%.2f s per volume, CPU %.2f s per volume)  peak "
            "RSS %.0f MB\n",
            res.computed, o->passes, HAVE_INFERENCE_PLAN ? o->pass_batch : 1,
            HAVE_PASS_LANES ? o->pass_lanes : 1,
            res.computed / res.seconds, res.seconds / res.computed, (cpu_now() - c0) / res.computed,
            peak_rss_mb());
        rc = 0;
    } else {
        fprintf(stderr, "bench_inference: %s\n", err.msg);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}

/* Run fn in a child so that its peak RSS is its own. */
static int in_child(int (*fn)(const options *), const options *o)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        int rc = fn(o);
        fflush(stdout);
        _exit(rc);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){
        .dims = {64, 160, 160}, .threads = 2, .reps = 3, .volumes = 2, .passes = 8, .pass_batch = 1};
    const char *plan = "both";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--size") && i + 3 < argc) {
            for (int k = 0; k < 3; k++)
                o->dims[k] = atoi(argv[++i]);
        } else if (!strcmp(a, "--plan") && more) {
            plan = argv[++i];
        } else if (!strcmp(a, "--threads") && more) {
            o->threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--reps") && more) {
            o->reps = atoi(argv[++i]);
        } else if (!strcmp(a, "--volumes") && more) {
            o->volumes = atoi(argv[++i]);
        } else if (!strcmp(a, "--pass-batch") && more) {
            o->pass_batch = atoi(argv[++i]);
        } else if (!strcmp(a, "--pass-lanes") && more) {
            o->pass_lanes = atoi(argv[++i]);
        } else if (!strcmp(a, "--passes") && more) {
            o->passes = atoi(argv[++i]);
        } else if (!strcmp(a, "--precompute") && i + 2 < argc) {
            o->teacher = argv[++i];
            o->repo = argv[++i];
        } else {
            fprintf(stderr, "bench_inference: unknown or incomplete argument '%s'\n", a);
            return 2;
        }
    }
    if (strcmp(plan, "both") && strcmp(plan, "train") && strcmp(plan, "inference")) return 2;
    o->both = !strcmp(plan, "both") && HAVE_INFERENCE_PLAN;
    o->inference = !strcmp(plan, "inference") && HAVE_INFERENCE_PLAN;
    return o->threads < 1 || o->reps < 1 || o->volumes < 1 || o->passes < 1 ? 2 : 0;
}

int main(int argc, char **argv)
{
    dk_blas_reexec_for_fast_kernels(argv);
    options o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_inference [--size D H W] [--threads T] [--reps K] "
                        "[--plan train|inference|both] "
                        "[--precompute TEACHER.h5 REPO.h5 [--volumes V] [--passes N] "
                        "[--pass-batch B] [--pass-lanes L]]\n");
        return 2;
    }
    dk_blas_set_threads(o.threads);
    printf("bench_inference: %s, OpenBLAS %s kernels, %d threads\n",
           o.teacher ? o.teacher : "default teacher (seeded weights)", dk_blas_corename(),
           dk_blas_threads());
    int rc = in_child(forward_child, &o);
    if (!rc && o.both) {
        o.inference = true;
        rc = in_child(forward_child, &o);
    }
    if (!rc && o.teacher) rc = in_child(precompute_child, &o);
    return rc;
}
