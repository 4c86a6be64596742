/* bench_unet.c: forward time, train-step time, conv throughput and peak RSS of
 * the reference U-Net of issue #2 (4 levels 16-32-64-128, 3x3x3 convs, instance
 * norm, ReLU, max-pool, transposed-conv up, 5 classes, Dice + CE, Adam, batch 1,
 * 64^3 input). Compare with bench/unet_torch.py, which runs the same network in
 * PyTorch. Usage: bench_unet [--size S] [--threads T] [--steps K]
 * Wall times are per pass; the CPU times (all threads) help compare builds while
 * other processes load the machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "distill/blas.h"
#include "distill/clock.h"
#include "distill/optim.h"
#include "distill/train_step.h"
#include "distill/unet.h"

/* Process CPU time (all threads): steadier than wall time on a shared machine. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int arg_int(int argc, char **argv, const char *name, int fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return atoi(argv[i + 1]);
    return fallback;
}

int main(int argc, char **argv)
{
    dk_blas_reexec_for_fast_kernels(argv);
    int size = arg_int(argc, argv, "--size", 64), threads = arg_int(argc, argv, "--threads", 2);
    int steps = arg_int(argc, argv, "--steps", 5);
    dk_blas_set_threads(threads);
    dk_err err = {0};
    dk_unet_config c = dk_unet_config_default(1, 5);
    dk_unet *net = dk_unet_create(&c, 1, &err);
    if (!net || dk_unet_plan(net, 1, size, size, size, &err)) {
        fprintf(stderr, "bench_unet: %s\n", err.msg);
        return 1;
    }
    dk_tensor x;
    dk_tensor_alloc(&x, 1, 1, size, size, size, NULL);
    size_t vox = (size_t)size * size * size;
    uint8_t *labels = malloc(vox);
    for (size_t i = 0; i < vox; i++) {
        x.data[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
        labels[i] = (uint8_t)((i / (size * size)) * 5 / size);
    }
    dk_optimizer opt;
    dk_optim_config oc = dk_optim_defaults(DK_OPTIM_ADAM, 1e-3f);
    dk_optim_init(&opt, &oc, dk_unet_params(net), NULL);
    dk_sup_weights w = dk_sup_weights_default();

    dk_unet_forward(net, &x); /* warm-up: page in activations */
    dk_train_step_supervised(net, &opt, &x, labels, &w, 1e-3f);
    double t0 = dk_clock_seconds(), c0 = cpu_now();
    for (int i = 0; i < steps; i++) dk_unet_forward(net, &x);
    double fwd = (dk_clock_seconds() - t0) / steps, fwd_cpu = (cpu_now() - c0) / steps;
    t0 = dk_clock_seconds();
    c0 = cpu_now();
    dk_step_stats s = {0};
    for (int i = 0; i < steps; i++) s = dk_train_step_supervised(net, &opt, &x, labels, &w, 1e-3f);
    double step = (dk_clock_seconds() - t0) / steps, step_cpu = (cpu_now() - c0) / steps;
    double flops = dk_unet_forward_flops(net);

    printf("dualkd U-Net benchmark: %d^3 input, 4 levels 16-32-64-128, 5 classes, batch 1\n", size);
    printf("blas: OpenBLAS %s kernels, %d threads\n", dk_blas_corename(), dk_blas_threads());
    printf("parameters:       %zu\n", dk_params_numel(dk_unet_params(net)));
    printf("conv FLOP fwd:    %.2f GFLOP (train step ~3x: %.2f GFLOP)\n", flops * 1e-9, 3 * flops * 1e-9);
    printf("forward:          %.3f s  (%.1f GFLOP/s over the whole pass)\n", fwd, flops * 1e-9 / fwd);
    printf("train step:       %.3f s  (%.1f GFLOP/s over the whole step), loss %.4f\n", step,
           3 * flops * 1e-9 / step, s.loss);
    printf("CPU time:         forward %.3f s, train step %.3f s (all threads)\n", fwd_cpu,
           step_cpu);
    printf("peak RSS:         %.0f MB\n", peak_rss_mb());
    dk_optim_release(&opt);
    free(labels);
    dk_tensor_release(&x);
    dk_unet_free(net);
    return 0;
}
