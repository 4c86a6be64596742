/* concat.c: concatenation along channels (layers.h), the U-Net's skip connection.
 * Per sample the channels of a and of b are each one contiguous block, so both
 * directions are two memcpy per sample. */
#include "distill/layers.h"

#include <string.h>

static void check_concat_shapes(const dk_tensor *a, const dk_tensor *y)
{
    DK_CHECK_SHAPE(a->n == y->n && a->c < y->c, a, y);
    DK_CHECK_SHAPE(a->d == y->d && a->h == y->h && a->w == y->w, a, y);
}

void dk_concat_channels_forward(const dk_tensor *a, const dk_tensor *b, dk_tensor *y)
{
    check_concat_shapes(a, y);
    check_concat_shapes(b, y);
    DK_CHECK_SHAPE(a->c + b->c == y->c, a, b);
    size_t plane = dk_tensor_spatial(y);
    size_t a_block = (size_t)a->c * plane, b_block = (size_t)b->c * plane;
    for (int n = 0; n < y->n; n++) {
        float *yn = y->data + (size_t)n * y->c * plane;
        memcpy(yn, a->data + n * a_block, a_block * sizeof(float));
        memcpy(yn + a_block, b->data + n * b_block, b_block * sizeof(float));
    }
}

void dk_concat_channels_backward(const dk_tensor *dy, dk_tensor *da, dk_tensor *db)
{
    size_t plane = dk_tensor_spatial(dy);
    if (da) check_concat_shapes(da, dy);
    if (db) check_concat_shapes(db, dy);
    if (da && db) DK_CHECK_SHAPE(da->c + db->c == dy->c, da, db);
    /* Without da, db's channels are the last db->c of dy. */
    int a_channels = da ? da->c : db ? dy->c - db->c : 0;
    size_t a_block = (size_t)a_channels * plane, b_block = (size_t)(dy->c - a_channels) * plane;
    for (int n = 0; n < dy->n; n++) {
        const float *dyn = dy->data + (size_t)n * dy->c * plane;
        if (da) memcpy(da->data + n * a_block, dyn, a_block * sizeof(float));
        if (db) memcpy(db->data + n * b_block, dyn + a_block, b_block * sizeof(float));
    }
}
