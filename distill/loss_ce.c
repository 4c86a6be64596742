/* loss_ce.c: cross-entropy of softmax(logits) against labels, optionally
 * class-weighted, averaged as PyTorch's F.cross_entropy(weight=, ignore_index=)
 * does: sum of w[y] * -log p_y over the sum of w[y] over non-ignored voxels. */
#include <math.h>

#include "distill/loss.h"
#include "distill/loss_internal.h"

/* The denominator: count (or summed class weight) of non-ignored voxels. */
static double label_weight_total(const dk_tensor *logits, const uint8_t *labels,
                                 const float *class_weights)
{
    const size_t voxels = (size_t)logits->n * dk_tensor_spatial(logits);
    dk_loss_check_labels("dk_loss_cross_entropy", labels, voxels, logits->c, 0);
    double total = 0;
    for (size_t i = 0; i < voxels; i++)
        if (labels[i] != DK_LABEL_IGNORE) total += class_weights ? class_weights[labels[i]] : 1.0;
    return total;
}

/* One chunk: returns sum of w[y] * -log p_y, adds scale * w[y] * (p - onehot) into dz. */
static double chunk_loss(const float *x, const uint8_t *lab, size_t plane, int classes, size_t nv,
                         const float *class_weights, float scale, float *prob, float *log_prob,
                         size_t stride, float *dz)
{
    dk_loss_softmax_chunk(x, plane, classes, nv, 1.0f, prob, log_prob, stride);
    float label_weight[DK_LOSS_CHUNK]; /* w[y], 0 where ignored */
    double sum = 0;
    for (size_t v = 0; v < nv; v++) {
        label_weight[v] = 0;
        if (lab[v] == DK_LABEL_IGNORE) continue;
        label_weight[v] = class_weights ? class_weights[lab[v]] : 1.0f;
        sum -= (double)label_weight[v] * log_prob[lab[v] * stride + v];
    }
    if (!dz) return sum;
    for (int c = 0; c < classes; c++) {
        const float *pc = prob + c * stride;
        float *dc = dz + c * plane;
        for (size_t v = 0; v < nv; v++)
            dc[v] += scale * label_weight[v] * (pc[v] - (lab[v] == c ? 1.0f : 0.0f));
    }
    return sum;
}

float dk_loss_cross_entropy(const dk_tensor *logits, const uint8_t *labels,
                            const float *class_weights, float weight, dk_tensor *dlogits,
                            dk_workspace *ws)
{
    const int classes = logits->c;
    const size_t plane = dk_tensor_spatial(logits), sample = (size_t)classes * plane;
    if (dlogits) DK_CHECK_SHAPE(dk_tensor_same_shape(logits, dlogits), logits, dlogits);
    double total = label_weight_total(logits, labels, class_weights);
    /* Every voxel ignored (or weighted 0): nothing to learn, and no 0/0. */
    if (!(total > 0)) return 0.0f;

    const size_t stride = dk_loss_chunk_len(plane);
    float *prob = dk_workspace_floats(ws, 2 * (size_t)classes * stride);
    float *log_prob = prob + (size_t)classes * stride;
    const float scale = (float)(weight / total);
    double sum = 0;
    for (int n = 0; n < logits->n; n++)
        for (size_t v0 = 0; v0 < plane; v0 += DK_LOSS_CHUNK) {
            size_t nv = dk_loss_min(DK_LOSS_CHUNK, plane - v0);
            sum += chunk_loss(logits->data + n * sample + v0, labels + n * plane + v0, plane,
                              classes, nv, class_weights, scale, prob, log_prob, stride,
                              dlogits ? dlogits->data + n * sample + v0 : NULL);
        }
    return (float)(sum / total);
}
