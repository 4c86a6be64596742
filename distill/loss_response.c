/* loss_response.c: response-based distillation from the teacher's per-voxel
 * class probabilities: Hinton's temperature-scaled KL, the original paper's
 * softmax-MSE, and the paper's entropy-threshold uncertainty mask.
 * Both losses are masked means: sum_v m_v * loss_v / sum_v m_v. */
#include <math.h>

#include "distill/loss.h"
#include "distill/loss_internal.h"

/* The denominator of a masked mean: sum of the mask, or the voxel count. */
static double mask_total(const float *mask, size_t voxels)
{
    if (!mask) return (double)voxels;
    double total = 0;
    for (size_t i = 0; i < voxels; i++)
        total += mask[i];
    return total;
}

/* Shared shape of both losses: walk every chunk, softmax the student into the
 * workspace, and let `chunk` add its masked sum and gradient. */
typedef double (*response_chunk_fn)(const float *teacher, const float *mask, size_t plane,
                                    int classes, size_t nv, const float *q, const float *log_q,
                                    size_t stride, float scale, float *dz);

static float response_loss(const dk_tensor *student_logits, const dk_tensor *teacher_probs,
                           float temperature, const float *mask, float weight, dk_tensor *dlogits,
                           dk_workspace *ws, response_chunk_fn chunk, bool wants_log,
                           double per_voxel_scale)
{
    const dk_tensor *z = student_logits;
    const int classes = z->c;
    const size_t plane = dk_tensor_spatial(z), sample = (size_t)classes * plane;
    DK_CHECK_SHAPE(dk_tensor_same_shape(z, teacher_probs), z, teacher_probs);
    if (dlogits) DK_CHECK_SHAPE(dk_tensor_same_shape(z, dlogits), z, dlogits);
    DK_CHECK_SHAPE(temperature > 0 && isfinite(temperature), z, NULL);
    double total = mask_total(mask, (size_t)z->n * plane);
    /* An all-zero mask keeps nothing: the loss and its gradient are 0, not 0/0. */
    if (!(total > 0)) return 0.0f;

    const size_t stride = dk_loss_chunk_len(plane);
    float *q = dk_workspace_floats(ws, 2 * (size_t)classes * stride);
    float *log_q = q + (size_t)classes * stride;
    const float scale = (float)(weight * per_voxel_scale / total);
    double sum = 0;
    for (int n = 0; n < z->n; n++)
        for (size_t v0 = 0; v0 < plane; v0 += DK_LOSS_CHUNK) {
            size_t nv = dk_loss_min(DK_LOSS_CHUNK, plane - v0);
            dk_loss_softmax_chunk(z->data + n * sample + v0, plane, classes, nv, 1.0f / temperature,
                                  q, wants_log ? log_q : NULL, stride);
            sum += chunk(teacher_probs->data + n * sample + v0, mask ? mask + n * plane + v0 : NULL,
                         plane, classes, nv, q, log_q, stride, scale,
                         dlogits ? dlogits->data + n * sample + v0 : NULL);
        }
    return (float)(sum / total);
}

/* KL(p || q) per voxel, masked and summed. The gradient uses q * sum_c p - p,
 * exact even when stored (fp16) teacher probabilities do not sum to 1. */
static double kl_chunk(const float *teacher, const float *mask, size_t plane, int classes,
                       size_t nv, const float *q, const float *log_q, size_t stride, float scale,
                       float *dz)
{
    float kl[DK_LOSS_CHUNK], mass[DK_LOSS_CHUNK];
    for (size_t v = 0; v < nv; v++)
        kl[v] = mass[v] = 0;
    for (int c = 0; c < classes; c++) {
        const float *pc = teacher + c * plane, *lc = log_q + c * stride;
        for (size_t v = 0; v < nv; v++) {
            float p = pc[v];
            kl[v] += p > 0 ? p * (logf(p) - lc[v]) : 0.0f; /* 0 log 0 = 0 */
            mass[v] += p;
        }
    }
    double sum = 0;
    for (size_t v = 0; v < nv; v++)
        sum += (double)(mask ? mask[v] : 1.0f) * kl[v];
    if (!dz) return sum;
    for (int c = 0; c < classes; c++) {
        const float *pc = teacher + c * plane, *qc = q + c * stride;
        float *dc = dz + c * plane;
        for (size_t v = 0; v < nv; v++) {
            float m = mask ? mask[v] : 1.0f;
            dc[v] += scale * m * (qc[v] * mass[v] - pc[v]);
        }
    }
    return sum;
}

float dk_loss_response_kl(const dk_tensor *student_logits, const dk_tensor *teacher_probs,
                          float temperature, const float *mask, float weight, dk_tensor *dlogits,
                          dk_workspace *ws)
{
    /* L = T^2 * KL; dKL/dz = (q - p) / T, so the gradient carries T. */
    double t = temperature;
    float kl = response_loss(student_logits, teacher_probs, temperature, mask, weight, dlogits, ws,
                             kl_chunk, true, t);
    return (float)(t * t * kl);
}

/* sum_c (q - p)^2 per voxel, masked and summed; dL/dq = 2 (q - p) pulled
 * through the softmax Jacobian: dz = q * (g - sum_c q g). */
static double mse_chunk(const float *teacher, const float *mask, size_t plane, int classes,
                        size_t nv, const float *q, const float *log_q, size_t stride, float scale,
                        float *dz)
{
    float sq[DK_LOSS_CHUNK], dot[DK_LOSS_CHUNK];
    for (size_t v = 0; v < nv; v++)
        sq[v] = dot[v] = 0;
    for (int c = 0; c < classes; c++) {
        const float *pc = teacher + c * plane, *qc = q + c * stride;
        for (size_t v = 0; v < nv; v++) {
            float diff = qc[v] - pc[v];
            sq[v] += diff * diff;
            dot[v] += qc[v] * diff;
        }
    }
    double sum = 0;
    for (size_t v = 0; v < nv; v++)
        sum += (double)(mask ? mask[v] : 1.0f) * sq[v];
    if (!dz) return sum;
    for (int c = 0; c < classes; c++) {
        const float *pc = teacher + c * plane, *qc = q + c * stride;
        float *dc = dz + c * plane;
        for (size_t v = 0; v < nv; v++) {
            float m = mask ? mask[v] : 1.0f;
            dc[v] += scale * m * 2.0f * qc[v] * ((qc[v] - pc[v]) - dot[v]);
        }
    }
    return sum;
}

float dk_loss_response_mse(const dk_tensor *student_logits, const dk_tensor *teacher_probs,
                           const float *mask, float weight, dk_tensor *dlogits, dk_workspace *ws)
{
    double per_channel = 1.0 / student_logits->c;
    float sum = response_loss(student_logits, teacher_probs, 1.0f, mask, weight, dlogits, ws,
                              mse_chunk, false, per_channel);
    return (float)(sum * per_channel);
}

float dk_uncertainty_mask(const float *entropy, size_t n, float threshold, float *mask)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        /* A NaN entropy compares false: such a voxel is dropped, not trusted. */
        mask[i] = entropy[i] < threshold ? 1.0f : 0.0f;
        kept += entropy[i] < threshold;
    }
    return n ? (float)((double)kept / n) : 0.0f;
}
