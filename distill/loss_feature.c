/* loss_feature.c: feature-based distillation between the student's adapted
 * feature map and the teacher's: plain MSE, and the original paper's KL
 * between the two maps' channel-softmaxes at each voxel. The adapter itself
 * (a 1x1x1 conv) lives in conv.c; these only see its output. */
#include <math.h>

#include "distill/loss.h"
#include "distill/loss_internal.h"

float dk_loss_feature_mse(const dk_tensor *student, const dk_tensor *teacher, float weight,
                          dk_tensor *dstudent)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(student, teacher), student, teacher);
    if (dstudent) DK_CHECK_SHAPE(dk_tensor_same_shape(student, dstudent), student, dstudent);
    const size_t count = dk_tensor_numel(student);
    const float *s = student->data, *t = teacher->data;
    double sum = 0;
    for (size_t i = 0; i < count; i++) {
        float diff = s[i] - t[i];
        sum += (double)diff * diff;
    }
    if (dstudent) {
        const float scale = (float)(2.0 * weight / count);
        for (size_t i = 0; i < count; i++)
            dstudent->data[i] += scale * (s[i] - t[i]);
    }
    return (float)(sum / count);
}

/* One chunk: sum over voxels of KL(p || q); adds scale * (q * sum_c p - p) into ds. */
static double kl_chunk(const float *s, const float *t, size_t plane, int channels, size_t nv,
                       float inv_temp, float *buf, size_t stride, float scale, float *ds)
{
    const size_t rows = (size_t)channels * stride;
    float *q = buf, *log_q = buf + rows, *p = buf + 2 * rows, *log_p = buf + 3 * rows;
    dk_loss_softmax_chunk(s, plane, channels, nv, inv_temp, q, log_q, stride);
    dk_loss_softmax_chunk(t, plane, channels, nv, inv_temp, p, log_p, stride);
    float kl[DK_LOSS_CHUNK], mass[DK_LOSS_CHUNK];
    for (size_t v = 0; v < nv; v++)
        kl[v] = mass[v] = 0;
    for (int c = 0; c < channels; c++) {
        const size_t row = c * stride;
        for (size_t v = 0; v < nv; v++) {
            kl[v] += p[row + v] * (log_p[row + v] - log_q[row + v]);
            mass[v] += p[row + v];
        }
    }
    double sum = 0;
    for (size_t v = 0; v < nv; v++)
        sum += kl[v];
    if (!ds) return sum;
    for (int c = 0; c < channels; c++) {
        const size_t row = c * stride;
        float *dc = ds + c * plane;
        for (size_t v = 0; v < nv; v++)
            dc[v] += scale * (q[row + v] * mass[v] - p[row + v]);
    }
    return sum;
}

float dk_loss_feature_kl(const dk_tensor *student, const dk_tensor *teacher, float temperature,
                         float weight, dk_tensor *dstudent, dk_workspace *ws)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(student, teacher), student, teacher);
    if (dstudent) DK_CHECK_SHAPE(dk_tensor_same_shape(student, dstudent), student, dstudent);
    DK_CHECK_SHAPE(temperature > 0 && isfinite(temperature), student, NULL);
    const int channels = student->c;
    const size_t plane = dk_tensor_spatial(student), sample = (size_t)channels * plane;
    const size_t voxels = (size_t)student->n * plane;
    const size_t stride = dk_loss_chunk_len(plane);
    float *buf = dk_workspace_floats(ws, 4 * (size_t)channels * stride);
    /* L = T^2 * mean KL; dKL/ds = (q - p) / T, so the gradient carries T. */
    const double t = temperature;
    const float scale = (float)(weight * t / voxels);
    double sum = 0;
    for (int n = 0; n < student->n; n++)
        for (size_t v0 = 0; v0 < plane; v0 += DK_LOSS_CHUNK) {
            size_t nv = dk_loss_min(DK_LOSS_CHUNK, plane - v0);
            size_t at = n * sample + v0;
            sum += kl_chunk(student->data + at, teacher->data + at, plane, channels, nv,
                            (float)(1.0 / t), buf, stride, scale,
                            dstudent ? dstudent->data + at : NULL);
        }
    return (float)(t * t * sum / voxels);
}
