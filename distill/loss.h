/* loss.h: the training losses, one file each (loss_dice.c, loss_ce.c,
 * loss_response.c, loss_feature.c). A student's loss is
 *   L = w_sup * (Dice + CE on its labels) + alpha * L_response + beta * L_feature
 * so every loss here has the same shape: it takes the network's raw outputs,
 * returns its value, and ADDS weight * dL/d(input) into a gradient tensor
 * (which may be NULL when only the value is wanted). Losses sum over classes
 * and average over voxels (and samples) unless documented otherwise.
 * The value returned is UNWEIGHTED: `weight` scales only the gradient added.
 *
 * Labels are uint8 class ids, one per voxel, laid out (N, D, H, W); the value
 * DK_LABEL_IGNORE marks voxels that count for nothing.
 * Masks are float per voxel in [0, 1], laid out (N, D, H, W); NULL = all ones.
 *
 * Scratch: a loss may need per-voxel softmax buffers; it takes them from the
 * dk_workspace (reserve dk_loss_workspace_floats(logits) first). */
#ifndef DK_LOSS_H
#define DK_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/tensor.h"
#include "distill/workspace.h"

#define DK_LABEL_IGNORE 255

/* Workspace floats any loss below needs for logits of this shape
 * (for dk_loss_feature_kl: of the feature map's shape). */
size_t dk_loss_workspace_floats(const dk_tensor *logits);

typedef struct dk_dice_opts {
    bool include_background; /* class 0 counted in the mean over classes */
    float smooth;            /* added to numerator and denominator; default 1e-5 */
} dk_dice_opts;

/* Soft Dice loss on softmax(logits): 1 - mean over classes of
 * (2 sum p*g + smooth) / (sum p + sum g + smooth), sums over all voxels of the
 * batch. per_class_dice (C floats, may be NULL) receives each class's soft Dice. */
float dk_loss_dice(const dk_tensor *logits, const uint8_t *labels, const dk_dice_opts *opts,
                   float weight, dk_tensor *dlogits, float *per_class_dice, dk_workspace *ws);

/* Cross-entropy of softmax(logits) against labels, mean over non-ignored voxels.
 * class_weights (C floats) may be NULL. */
float dk_loss_cross_entropy(const dk_tensor *logits, const uint8_t *labels,
                            const float *class_weights, float weight, dk_tensor *dlogits,
                            dk_workspace *ws);

/* Response distillation (Hinton): T^2 * KL(p_t || softmax(z_s / T)) per voxel,
 * averaged over voxels weighted by mask. teacher_probs are the teacher's
 * temperature-softened probabilities (same shape as logits). */
float dk_loss_response_kl(const dk_tensor *student_logits, const dk_tensor *teacher_probs,
                          float temperature, const float *mask, float weight,
                          dk_tensor *dlogits, dk_workspace *ws);

/* Response distillation as in the original paper: mean over channels and masked
 * voxels of (softmax(z_s) - p_t)^2. */
float dk_loss_response_mse(const dk_tensor *student_logits, const dk_tensor *teacher_probs,
                           const float *mask, float weight, dk_tensor *dlogits,
                           dk_workspace *ws);

/* The uncertainty mask of the original paper: mask = 1 where the teacher's
 * entropy < threshold, else 0 (n voxels). Returns the fraction kept. */
float dk_uncertainty_mask(const float *entropy, size_t n, float threshold, float *mask);

/* Feature distillation. `student` is the student's feature map after its 1x1x1
 * adapter (a conv from conv.h), `teacher` the teacher's map of the same shape. */
/* Mean over all elements of (s - t)^2. */
float dk_loss_feature_mse(const dk_tensor *student, const dk_tensor *teacher, float weight,
                          dk_tensor *dstudent);
/* T^2 * KL(softmax_c(t / T) || softmax_c(s / T)) per voxel, mean over voxels. */
float dk_loss_feature_kl(const dk_tensor *student, const dk_tensor *teacher, float temperature,
                         float weight, dk_tensor *dstudent, dk_workspace *ws);

#endif
