/* unet.h: the 3D U-Net that teacher and students share, with named feature taps.
 *
 * Built from a small config: levels, base width (doubling per level), per-level
 * pooling factors and conv kernels per axis (anisotropic: (1, 2, 2) pooling and
 * (1, 3, 3) kernels where slices are thick), instance norm or none, ReLU/LeakyReLU,
 * max-pool down, transposed-conv up, 1x1x1 head to class logits.
 *
 *   encoder level l: [conv k_l -> norm -> act] x 2      (widths base * 2^l)
 *   down:            max-pool pool_l                    (l < levels - 1)
 *   bottleneck:      the last encoder level
 *   decoder level l: convt pool_l (up) -> concat skip_l -> [conv k_l -> norm -> act] x 2
 *   head:            conv 1x1x1 -> logits (N, classes, D, H, W)
 *
 * Feature taps (for feature distillation) are the outputs, after activation, of
 * the bottleneck ("bottleneck") and of each decoder level ("dec0" is full
 * resolution, "dec1" half, ...).
 *
 * Memory is planned for one input shape (dk_unet_plan): activations, gradient
 * scratch and the workspace are allocated there; forward and backward do not
 * allocate. The network owns everything it allocates, including a thread pool
 * (parallel.h) of max(2, dk_blas_threads() at planning) threads that every op of
 * its forward and backward runs on; one thread at a time may use a network. */
#ifndef DK_UNET_H
#define DK_UNET_H

#include "distill/conv.h"
#include "distill/param.h"
#include "distill/workspace.h"

#define DK_UNET_MAX_LEVELS 6

typedef enum dk_norm_kind { DK_NORM_NONE, DK_NORM_INSTANCE } dk_norm_kind;

typedef struct dk_unet_config {
    int in_channels;
    int classes;
    int levels;     /* 2..DK_UNET_MAX_LEVELS, counting the bottleneck */
    int base_width; /* channels at level 0; doubled per level */
    int pool[DK_UNET_MAX_LEVELS][3];   /* down/up factor below level l (d, h, w) */
    int kernel[DK_UNET_MAX_LEVELS][3]; /* conv kernel at level l (d, h, w), odd sizes */
    dk_norm_kind norm;
    float leaky_slope; /* 0 = ReLU */
    float norm_eps;
} dk_unet_config;

/* The reference config of issue #2: 4 levels, 16-32-64-128, 3x3x3 convs, 2x2x2
 * pooling, instance norm, ReLU. */
dk_unet_config dk_unet_config_default(int in_channels, int classes);

/* Check a config; the message names the field and value. */
dk_status dk_unet_config_validate(const dk_unet_config *c, dk_err *err);

/* JSON text of a config (the checkpoint's "architecture"); caller frees with free(). */
char *dk_unet_config_to_json(const dk_unet_config *c);
/* Parse and validate; the message names the field. */
dk_status dk_unet_config_from_json(const char *text, dk_unet_config *c, dk_err *err);

typedef struct dk_unet dk_unet;

/* Build a network with parameters initialised from seed (He-normal convs, unit
 * norm scales, zero biases). Caller frees with dk_unet_free. NULL on failure. */
dk_unet *dk_unet_create(const dk_unet_config *c, uint64_t seed, dk_err *err);
void dk_unet_free(dk_unet *net);

const dk_unet_config *dk_unet_config_of(const dk_unet *net);
/* Borrowed list of all parameters in a fixed order, valid until dk_unet_free. */
const dk_params *dk_unet_params(const dk_unet *net);

/* Allocate activations for inputs of shape (n, in_channels, d, h, w). Each spatial
 * dim must be divisible by the product of the pooling factors along it. May be
 * called again with another shape (memory is reallocated). */
dk_status dk_unet_plan(dk_unet *net, int n, int d, int h, int w, dk_err *err);

/* Plan for forward passes only (evaluation, precompute, the server): no gradient
 * memory, and the activations share one arena by liveness (liveness.h): each is
 * overwritten once its last reader ran, a skip lives until its decoder level. So
 * peak memory is what is live at once, about a fifth of dk_unet_plan's for the
 * default teacher. keep_taps: bit t keeps tap t readable after the forward
 * (dk_unet_tap); the others return NULL. Logits are bit-identical to the training
 * plan's (the same ops in the same order; norms run in place). dk_unet_backward
 * must not be called (it aborts). Replaces any earlier plan. */
dk_status dk_unet_plan_inference(dk_unet *net, int n, int d, int h, int w, unsigned keep_taps,
                                 dk_err *err);

/* Bytes of activation memory (and gradient scratch) the current plan holds. */
size_t dk_unet_activation_bytes(const dk_unet *net);

/* The network's threads (borrowed, valid until dk_unet_free; NULL before the first
 * plan), for work around its forward that should run on the same threads. */
dk_pool *dk_unet_pool(const dk_unet *net);

/* The output logits of the last forward (borrowed; shape (n, classes, d, h, w)). */
dk_tensor *dk_unet_logits(dk_unet *net);

/* A zeroed-by-nobody tensor shaped like the logits, for the caller's dL/dlogits
 * (losses accumulate into it, so zero it before each step). Borrowed; empty
 * (data NULL) in an inference plan. */
dk_tensor *dk_unet_logits_grad(dk_unet *net);

/* Forward pass; x must have the planned shape. Stores what backward needs. */
void dk_unet_forward(dk_unet *net, const dk_tensor *x);

/* Named taps: "bottleneck", "dec0", "dec1", ... Returns the tap's index or -1. */
int dk_unet_tap_index(const dk_unet *net, const char *name);
/* The tap's activation from the last forward (borrowed); NULL for a tap an
 * inference plan does not keep. */
const dk_tensor *dk_unet_tap(const dk_unet *net, int tap);
/* Number of taps (levels: the bottleneck and levels - 1 decoder levels) and names. */
int dk_unet_tap_count(const dk_unet *net);
const char *dk_unet_tap_name(const dk_unet *net, int tap);
/* Shape a tap will have for an input of spatial dims in[3] (after planning or not). */
void dk_unet_tap_dims(const dk_unet_config *c, int tap, const int in[3], int *channels,
                      int out[3]);

/* An extra gradient arriving at a tap (from a feature loss). */
typedef struct dk_tap_grad {
    int tap;
    const dk_tensor *grad; /* same shape as the tap */
} dk_tap_grad;

/* Backward from dL/dlogits (plus optional tap gradients); parameter gradients are
 * accumulated (+=) into dk_unet_params(net)'s grads. */
void dk_unet_backward(dk_unet *net, const dk_tensor *dlogits, const dk_tap_grad *taps,
                      int tap_count);

/* Multiply-adds of the convolutions of one forward pass at the planned shape, x2 (FLOP). */
double dk_unet_forward_flops(const dk_unet *net);

/* The workspace the net uses (so a caller's losses can share it). Borrowed. */
dk_workspace *dk_unet_workspace(dk_unet *net);

#endif
