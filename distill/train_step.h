/* train_step.h: one supervised optimisation step of a U-Net (Dice + CE), the
 * building block of teacher training, of the benchmark, and of a student's
 * supervised term. Distillation terms are added by the student on top of
 * dk_supervised_loss's gradient, before dk_unet_backward. */
#ifndef DK_TRAIN_STEP_H
#define DK_TRAIN_STEP_H

#include "distill/loss.h"
#include "distill/optim.h"
#include "distill/unet.h"

typedef struct dk_sup_weights {
    float dice;      /* weight of the soft Dice loss */
    float ce;        /* weight of the cross-entropy */
    dk_dice_opts dice_opts;
} dk_sup_weights;

/* The original work's supervised loss: 0.5 * (Dice incl. background + CE). */
dk_sup_weights dk_sup_weights_default(void);

typedef struct dk_step_stats {
    float loss; /* weighted total */
    float dice_loss, ce_loss;
} dk_step_stats;

/* After dk_unet_forward: zero the logits gradient, then add the weighted Dice and
 * CE gradients into it. Returns the losses. */
dk_step_stats dk_supervised_loss(dk_unet *net, const uint8_t *labels, const dk_sup_weights *w);

/* Zero parameter grads, forward x, supervised loss on labels, backward, and an
 * optimiser update at learning rate lr. */
dk_step_stats dk_train_step_supervised(dk_unet *net, dk_optimizer *opt, const dk_tensor *x,
                                       const uint8_t *labels, const dk_sup_weights *w, float lr);

#endif
