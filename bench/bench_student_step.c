/* bench_student_step.c: the student's train step (student/kd_loss.h: forward,
 * Dice + CE on the labelled patches, response KD (softmax-MSE, masked) and feature
 * KD (channel KL through the 1x1x1 adapter) on the transfer patches, backward, Adam)
 * at the default student config: the teacher-default U-Net the default store is made
 * for (5 levels, base 8, leaky ReLU, in-plane pooling at the first two levels),
 * 16 x 128 x 128 patches, 2 labelled + 2 transfer patches per step, 4 classes.
 * The adapter maps to the teacher-default bottleneck (128 channels). Targets are
 * random (their values do not change the cost). Prints the mean wall
 * and CPU time per step and the peak RSS. Usage: [--steps K] [--threads T] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "distill/blas.h"
#include "distill/layers.h"
#include "distill/optim.h"
#include "student/train.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int arg_int(int argc, char **argv, const char *name, int fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return atoi(argv[i + 1]);
    return fallback;
}

static void fill(float *x, size_t n, unsigned seed, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(seed >> 8) / 16777216.0f;
    }
}

int main(int argc, char **argv)
{
    dk_blas_reexec_for_fast_kernels(argv);
    int steps = arg_int(argc, argv, "--steps", 3), threads = arg_int(argc, argv, "--threads", 2);
    dk_blas_set_threads(threads);
    dk_student_config cfg = dk_student_config_default();
    dk_unet_config n = cfg.base.network;
    n.in_channels = 1;
    n.classes = 4;
    const int *p = cfg.base.patch, L = cfg.base.batch, T = cfg.transfer_batch, C = 4;
    const size_t V = (size_t)p[0] * p[1] * p[2];
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&n, 1, &err);
    dk_adapter ad;
    int tap = net ? dk_unet_tap_index(net, "bottleneck") : -1;
    if (!net || dk_unet_plan(net, L + T, p[0], p[1], p[2], &err) ||
        dk_adapter_init(&ad, &n, tap, "bottleneck", n.base_width << (n.levels - 1), p, L, T,
                        1, &err)) {
        fprintf(stderr, "bench_student_step: %s\n", err.msg);
        return 1;
    }
    dk_params all = {0};
    const dk_params *np = dk_unet_params(net);
    for (int i = 0; i < np->count; i++)
        dk_params_push(&all, np->items[i], NULL);
    dk_params_push(&all, &ad.weight, NULL);
    dk_params_push(&all, &ad.bias, NULL);
    dk_optimizer opt;
    dk_optim_init(&opt, &cfg.base.optim, &all, NULL);
    dk_tensor x, response, logits, features;
    dk_tensor_alloc(&x, L + T, 1, p[0], p[1], p[2], NULL);
    dk_tensor_alloc(&response, T, C, p[0], p[1], p[2], NULL);
    dk_tensor_alloc(&logits, T, C, p[0], p[1], p[2], NULL);
    dk_tensor_alloc_like(&features, &ad.adapted, NULL);
    uint8_t *labels = malloc((size_t)L * V);
    float *mask = malloc((size_t)T * V * sizeof *mask);
    fill(x.data, dk_tensor_numel(&x), 1, -2, 2);
    fill(logits.data, dk_tensor_numel(&logits), 2, -3, 3);
    dk_softmax_channels_forward(&logits, 2.0f, &response, NULL);
    fill(features.data, dk_tensor_numel(&features), 3, 0, 2);
    fill(mask, (size_t)T * V, 4, 0, 1);
    for (size_t i = 0; i < (size_t)T * V; i++)
        mask[i] = mask[i] < 0.8f;
    for (size_t i = 0; i < (size_t)L * V; i++)
        labels[i] = (uint8_t)((i / 977) % C);
    dk_kd_batch b = {L, T, labels, &response, mask, &features};
    dk_kd_weights w = {.sup = dk_sup_weights_default(), .alpha = cfg.alpha, .beta = cfg.beta,
                       .response = cfg.response, .temperature = 2, .feature = cfg.feature,
                       .feature_temperature = 1};
    dk_kd_forward_backward(net, &ad, &x, &b, &w, true); /* warm-up */
    dk_optim_step(&opt, 1e-3f);
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int s = 0; s < steps; s++) {
        dk_kd_forward_backward(net, &ad, &x, &b, &w, true);
        dk_optim_step(&opt, 1e-3f);
    }
    double wall = (clock_s(CLOCK_MONOTONIC) - w0) / steps;
    double cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / steps;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("student train step (%d levels, base %d, patch %dx%dx%d, %d labelled + %d transfer, "
           "%d threads): %.3f s wall, %.3f s CPU per step; peak RSS %.0f MB; %zu parameters\n",
           n.levels, n.base_width, p[0], p[1], p[2], L, T, threads, wall, cpu,
           ru.ru_maxrss / 1024.0, dk_params_numel(np));
    return 0;
}
