/* optim.h: optimisers (SGD with momentum, Adam, AdamW) over a dk_params list,
 * and learning-rate schedules. The optimiser owns its state tensors (moments),
 * which checkpoints save and restore by parameter name. */
#ifndef DK_OPTIM_H
#define DK_OPTIM_H

#include "distill/param.h"

typedef enum dk_optim_kind { DK_OPTIM_SGD, DK_OPTIM_ADAM, DK_OPTIM_ADAMW } dk_optim_kind;

typedef struct dk_optim_config {
    dk_optim_kind kind;
    float lr;           /* base learning rate; dk_optim_step takes the scheduled one */
    float momentum;     /* SGD */
    bool nesterov;      /* SGD */
    float beta1, beta2; /* Adam(W); defaults 0.9, 0.999 */
    float eps;          /* Adam(W); default 1e-8 */
    float weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
} dk_optim_config;

/* A config with the usual defaults for kind and lr: PyTorch's, except SGD's
 * momentum 0.9 (PyTorch: 0); AdamW's weight_decay is PyTorch's 0.01. */
dk_optim_config dk_optim_defaults(dk_optim_kind kind, float lr);

typedef struct dk_optimizer {
    dk_optim_config config;
    dk_params params;   /* borrowed parameters (own copy of the pointer list) */
    dk_tensor *moment1; /* one per parameter: SGD velocity, Adam m */
    dk_tensor *moment2; /* one per parameter: Adam v (NULL for SGD) */
    long step;          /* steps taken */
} dk_optimizer;

dk_status dk_optim_init(dk_optimizer *opt, const dk_optim_config *config,
                        const dk_params *params, dk_err *err);
/* One update of every parameter from its grad, with learning rate lr. Grads are
 * left as they are (the caller zeroes them). */
void dk_optim_step(dk_optimizer *opt, float lr);
void dk_optim_release(dk_optimizer *opt);

/* Poly decay: base_lr * (1 - step / max_steps)^power, clamped at 0. */
float dk_lr_poly(float base_lr, long step, long max_steps, float power);

/* The kind's name ("sgd", "adam", "adamw") and its inverse (-1 if unknown). */
const char *dk_optim_kind_name(dk_optim_kind kind);
int dk_optim_kind_parse(const char *name);

#endif
