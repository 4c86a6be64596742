/* kd_loss.h: the student's combined loss on one batch, and its gradients:
 *
 *   L = L_sup + alpha * L_response + beta * L_feature
 *
 * The batch is one tensor: samples [0, labelled) are the site's labelled patches,
 * samples [labelled, labelled + transfer) transfer patches with teacher targets.
 *   L_sup      = sup.dice * soft Dice + sup.ce * CE, on the labelled samples;
 *   L_response = T^2 KL(p_t || softmax(z / T)) or the original method's softmax-MSE
 *                (mean over channels of (softmax(z) - p_t)^2), averaged over the
 *                masked voxels of the transfer samples (distill/loss.h);
 *   L_feature  = MSE, or T^2 KL between channel softmaxes, of adapter(student tap)
 *                against the teacher's feature map, on the transfer samples.
 * The adapter is a learned 1x1x1 convolution from the student's channels at the
 * tap to the teacher's: the site's own parameter, trained with the student, never
 * sent anywhere. A term whose weight is 0 (or whose samples are absent) is skipped
 * entirely: its value is reported as 0 and it costs nothing. */
#ifndef DK_KD_LOSS_H
#define DK_KD_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/conv.h"
#include "distill/train_step.h"

typedef enum dk_response_kind { DK_RESPONSE_KL, DK_RESPONSE_MSE } dk_response_kind;
typedef enum dk_feature_kind { DK_FEATURE_MSE, DK_FEATURE_KL } dk_feature_kind;

typedef struct dk_kd_weights {
    dk_sup_weights sup;
    float alpha, beta; /* this step's (ramped) weights */
    dk_response_kind response;
    float temperature; /* of the response targets (the store's) */
    dk_feature_kind feature;
    float feature_temperature; /* for DK_FEATURE_KL */
} dk_kd_weights;

typedef struct dk_adapter {
    dk_param weight, bias; /* (teacher_c, student_c, 1, 1, 1), (teacher_c, 1, 1, 1, 1) */
    int tap;               /* the student's tap (distill/unet.h) */
    dk_conv3d_geom geom;
    dk_tensor adapted, dadapted; /* (transfer, teacher_c, tap dims) */
    dk_tensor dtap;              /* (labelled + transfer, student_c, tap dims) */
    dk_workspace ws;
} dk_adapter;

/* An adapter for tap `tap` of a network of config c at input dims in[3] and a batch
 * of labelled + transfer samples; weights He-normal from seed, bias 0. Parameter
 * names "adapter.<layer>.weight" / ".bias". Release with dk_adapter_release. */
dk_status dk_adapter_init(dk_adapter *a, const dk_unet_config *c, int tap, const char *layer,
                          int teacher_channels, const int in[3], int labelled, int transfer,
                          uint64_t seed, dk_err *err);
void dk_adapter_release(dk_adapter *a);

typedef struct dk_kd_batch {
    int labelled, transfer;
    const uint8_t *labels;     /* labelled x patch voxels */
    const dk_tensor *response; /* (transfer, classes, patch): teacher probabilities */
    const float *mask;         /* transfer x patch voxels in [0, 1], or NULL = all */
    const dk_tensor *features; /* (transfer, teacher_c, tap dims) */
} dk_kd_batch;

typedef struct dk_kd_stats {
    float loss; /* the weighted total */
    float dice, ce, response, feature; /* unweighted terms */
} dk_kd_stats;

/* Forward x (shape (labelled + transfer, 1, patch), the network's plan), the loss,
 * and when backward: every parameter gradient of net and adapter (zeroed first).
 * adapter may be NULL when w->beta is 0. */
dk_kd_stats dk_kd_forward_backward(dk_unet *net, dk_adapter *ad, const dk_tensor *x,
                                   const dk_kd_batch *b, const dk_kd_weights *w, bool backward);

/* The original method's sigmoid ramp-up: exp(-5 (1 - t/length)^2) for t < length,
 * then 1 (length <= 0: always 1). */
float dk_sigmoid_rampup(long t, long length);

#endif
