/* loss_internal.h: what the loss_*.c files share and nobody else needs: the
 * voxel-chunk size, a stable per-voxel softmax / log-softmax over channels,
 * and the abort for a label outside the class range. Not a public header.
 *
 * Channels of a (N, C, D, H, W) tensor sit a whole spatial plane apart, so the
 * losses walk each sample in chunks of DK_LOSS_CHUNK voxels: every inner loop
 * then runs contiguously over W-fastest voxels and vectorises. */
#ifndef DK_LOSS_INTERNAL_H
#define DK_LOSS_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "distill/loss.h"

#define DK_LOSS_CHUNK 256

static inline size_t dk_loss_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Voxels one chunk of a sample with `spatial` voxels holds. */
static inline size_t dk_loss_chunk_len(size_t spatial)
{
    return dk_loss_min(spatial, DK_LOSS_CHUNK);
}

/* Softmax over `channels` of x * inv_temp for nv <= DK_LOSS_CHUNK voxels.
 * Channel c of voxel v is x[c * x_stride + v]; the result goes to
 * prob[c * out_stride + v] and, when log_prob is non-NULL, the log-softmax to
 * log_prob[c * out_stride + v]. The log comes from the shifted logits, not
 * from log(prob), so it stays finite when a probability underflows to 0. */
static inline void dk_loss_softmax_chunk(const float *x, size_t x_stride, int channels, size_t nv,
                                         float inv_temp, float *prob, float *log_prob,
                                         size_t out_stride)
{
    float peak[DK_LOSS_CHUNK], total[DK_LOSS_CHUNK], log_total[DK_LOSS_CHUNK];
    for (size_t v = 0; v < nv; v++) {
        peak[v] = x[v];
        total[v] = 0;
    }
    for (int c = 1; c < channels; c++) {
        const float *xc = x + c * x_stride;
        for (size_t v = 0; v < nv; v++)
            peak[v] = xc[v] > peak[v] ? xc[v] : peak[v];
    }
    for (int c = 0; c < channels; c++) {
        const float *xc = x + c * x_stride;
        float *pc = prob + c * out_stride;
        for (size_t v = 0; v < nv; v++) {
            pc[v] = expf((xc[v] - peak[v]) * inv_temp);
            total[v] += pc[v];
        }
    }
    /* total >= 1 (the peak's own term), so neither the log nor the division can blow up. */
    for (size_t v = 0; v < nv; v++) {
        if (log_prob) log_total[v] = logf(total[v]);
        total[v] = 1.0f / total[v];
    }
    for (int c = 0; c < channels; c++) {
        const float *xc = x + c * x_stride;
        float *pc = prob + c * out_stride;
        for (size_t v = 0; v < nv; v++)
            pc[v] *= total[v];
        if (!log_prob) continue;
        float *lc = log_prob + c * out_stride;
        for (size_t v = 0; v < nv; v++)
            lc[v] = (xc[v] - peak[v]) * inv_temp - log_total[v];
    }
}

/* Aborts naming the label, its voxel and the class count: labels are validated
 * when a dataset is read, so one out of range here is a bug, not bad input. */
static inline _Noreturn void dk_loss_bad_label(const char *loss, size_t voxel, unsigned label,
                                               int classes)
{
    fprintf(stderr, "%s: label %u at voxel %zu is not a class of %d nor DK_LABEL_IGNORE\n", loss,
            label, voxel, classes);
    abort();
}

/* Checks every label of nv voxels is < classes or DK_LABEL_IGNORE. */
static inline void dk_loss_check_labels(const char *loss, const uint8_t *labels, size_t nv,
                                        int classes, size_t first_voxel)
{
    for (size_t v = 0; v < nv; v++)
        if (labels[v] >= classes && labels[v] != DK_LABEL_IGNORE)
            dk_loss_bad_label(loss, first_voxel + v, labels[v], classes);
}

#endif
