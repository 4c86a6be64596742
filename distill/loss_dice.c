/* loss_dice.c: the soft Dice loss over a whole batch, and the workspace size
 * every loss shares (Dice sets it: it keeps the batch's softmax between its
 * two passes, because each voxel's gradient needs the batch-wide sums). */
#include <math.h>
#include <string.h>

#include "distill/loss.h"
#include "distill/loss_internal.h"

size_t dk_loss_workspace_floats(const dk_tensor *logits)
{
    /* Dice: the whole softmax. Chunked losses: up to four C x chunk buffers. */
    size_t chunked = 4 * (size_t)logits->c * dk_loss_chunk_len(dk_tensor_spatial(logits));
    size_t whole = dk_tensor_numel(logits);
    return whole > chunked ? whole : chunked;
}

/* Batch-wide sums per class over non-ignored voxels. */
typedef struct dice_sums {
    double overlap[256]; /* sum p * g */
    double prob[256];    /* sum p */
    double truth[256];   /* sum g */
} dice_sums;

/* Softmax of one chunk into prob (channel stride = plane), then the class sums.
 * Branch-free float sums over one chunk, then added into the batch's doubles. */
static void accumulate_chunk(const float *x, const uint8_t *lab, size_t plane, int classes,
                             size_t nv, float *prob, dice_sums *sums)
{
    dk_loss_softmax_chunk(x, plane, classes, nv, 1.0f, prob, NULL, plane);
    for (int c = 0; c < classes; c++) {
        const float *pc = prob + c * plane;
        float overlap = 0, total = 0, truth = 0;
        for (size_t v = 0; v < nv; v++) {
            float counted = lab[v] != DK_LABEL_IGNORE, hit = lab[v] == c;
            total += counted * pc[v];
            overlap += hit * pc[v];
            truth += hit;
        }
        sums->overlap[c] += overlap;
        sums->prob[c] += total;
        sums->truth[c] += truth;
    }
}

/* dL/dp = a_c + (g ? b_c : 0) for each counted class; dL/dz = p (dL/dp - sum_c p dL/dp).
 * Ignored voxels get nothing. */
static void gradient_chunk(const float *prob, const uint8_t *lab, size_t plane, int classes,
                           size_t nv, const float *a, const float *b, float *dz)
{
    float dot[DK_LOSS_CHUNK], counted[DK_LOSS_CHUNK];
    for (size_t v = 0; v < nv; v++) {
        dot[v] = 0;
        counted[v] = lab[v] != DK_LABEL_IGNORE;
    }
    for (int c = 0; c < classes; c++) {
        const float *pc = prob + c * plane;
        for (size_t v = 0; v < nv; v++)
            dot[v] += pc[v] * (a[c] + (lab[v] == c ? b[c] : 0.0f));
    }
    for (int c = 0; c < classes; c++) {
        const float *pc = prob + c * plane;
        float *dc = dz + c * plane;
        for (size_t v = 0; v < nv; v++) {
            float dp = a[c] + (lab[v] == c ? b[c] : 0.0f);
            dc[v] += counted[v] * pc[v] * (dp - dot[v]);
        }
    }
}

float dk_loss_dice(const dk_tensor *logits, const uint8_t *labels, const dk_dice_opts *opts,
                   float weight, dk_tensor *dlogits, float *per_class_dice, dk_workspace *ws)
{
    const dk_dice_opts defaults = {.include_background = true, .smooth = 1e-5f};
    const dk_dice_opts *o = opts ? opts : &defaults;
    const int classes = logits->c;
    const size_t plane = dk_tensor_spatial(logits), sample = (size_t)classes * plane;
    DK_CHECK_SHAPE(classes <= 255, logits, NULL);
    if (dlogits) DK_CHECK_SHAPE(dk_tensor_same_shape(logits, dlogits), logits, dlogits);
    float *prob = dk_workspace_floats(ws, dk_tensor_numel(logits));

    dice_sums sums;
    memset(&sums, 0, sizeof sums);
    for (int n = 0; n < logits->n; n++)
        for (size_t v0 = 0; v0 < plane; v0 += DK_LOSS_CHUNK) {
            size_t nv = dk_loss_min(DK_LOSS_CHUNK, plane - v0);
            const uint8_t *lab = labels + n * plane + v0;
            dk_loss_check_labels("dk_loss_dice", lab, nv, classes, n * plane + v0);
            accumulate_chunk(logits->data + n * sample + v0, lab, plane, classes, nv,
                             prob + n * sample + v0, &sums);
        }

    /* D_c = (2 I + s) / (P + G + s); dD_c/dp = (2 g - D_c) / den_c. */
    const int first = o->include_background ? 0 : 1;
    const int counted = classes - first;
    float a[256] = {0}, b[256] = {0};
    double mean = 0;
    for (int c = 0; c < classes; c++) {
        double den = sums.prob[c] + sums.truth[c] + o->smooth;
        /* Only with smooth = 0: a class absent from both sides agrees perfectly. */
        double dice = den > 0 ? (2 * sums.overlap[c] + o->smooth) / den : 1.0;
        if (per_class_dice) per_class_dice[c] = (float)dice;
        if (c < first) continue;
        mean += dice;
        if (den <= 0) continue;
        a[c] = (float)(weight * dice / (den * counted));
        b[c] = (float)(-weight * 2.0 / (den * counted));
    }
    if (counted <= 0) return 0.0f;
    if (dlogits)
        for (int n = 0; n < logits->n; n++)
            for (size_t v0 = 0; v0 < plane; v0 += DK_LOSS_CHUNK) {
                size_t nv = dk_loss_min(DK_LOSS_CHUNK, plane - v0);
                gradient_chunk(prob + n * sample + v0, labels + n * plane + v0, plane, classes, nv,
                               a, b, dlogits->data + n * sample + v0);
            }
    return (float)(1.0 - mean / counted);
}
