/* tensor.c: allocation, views and small whole-tensor helpers. No arithmetic
 * kernels live here; those belong to the op that needs them. */
#include "distill/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dk_status dk_tensor_alloc(dk_tensor *t, int n, int c, int d, int h, int w, dk_err *err)
{
    *t = (dk_tensor){0};
    if (n < 1 || c < 1 || d < 1 || h < 1 || w < 1)
        return dk_err_set(err, DK_EINVAL, "tensor shape (%d, %d, %d, %d, %d) has a dimension < 1",
                          n, c, d, h, w);
    size_t count = (size_t)n * c * d * h * w;
    size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    float *data = aligned_alloc(64, bytes);
    if (!data)
        return dk_err_set(err, DK_ENOMEM, "cannot allocate %zu bytes for tensor (%d, %d, %d, %d, %d)",
                          bytes, n, c, d, h, w);
    memset(data, 0, bytes);
    *t = (dk_tensor){.n = n, .c = c, .d = d, .h = h, .w = w, .data = data, .owns_data = true};
    return DK_OK;
}

dk_status dk_tensor_alloc_like(dk_tensor *t, const dk_tensor *like, dk_err *err)
{
    return dk_tensor_alloc(t, like->n, like->c, like->d, like->h, like->w, err);
}

dk_tensor dk_tensor_view(float *data, int n, int c, int d, int h, int w)
{
    return (dk_tensor){.n = n, .c = c, .d = d, .h = h, .w = w, .data = data, .owns_data = false};
}

dk_tensor dk_tensor_sample(const dk_tensor *t, int i)
{
    size_t per = (size_t)t->c * t->d * t->h * t->w;
    return dk_tensor_view(t->data + per * i, 1, t->c, t->d, t->h, t->w);
}

void dk_tensor_release(dk_tensor *t)
{
    if (t->owns_data) free(t->data);
    *t = (dk_tensor){0};
}

void dk_tensor_zero(dk_tensor *t) { memset(t->data, 0, dk_tensor_numel(t) * sizeof(float)); }

void dk_tensor_fill(dk_tensor *t, float value)
{
    size_t n = dk_tensor_numel(t);
    for (size_t i = 0; i < n; i++) t->data[i] = value;
}

void dk_tensor_copy(dk_tensor *dst, const dk_tensor *src)
{
    DK_CHECK_SHAPE(dk_tensor_same_shape(dst, src), dst, src);
    memcpy(dst->data, src->data, dk_tensor_numel(src) * sizeof(float));
}

char *dk_tensor_shape_str(const dk_tensor *t, char *buf, size_t len)
{
    snprintf(buf, len, "(%d, %d, %d, %d, %d)", t->n, t->c, t->d, t->h, t->w);
    return buf;
}

void dk_shape_fail(const char *what, const dk_tensor *a, const dk_tensor *b, const char *file,
                   int line)
{
    char sa[96] = "-", sb[96] = "-";
    if (a) dk_tensor_shape_str(a, sa, sizeof sa);
    if (b) dk_tensor_shape_str(b, sb, sizeof sb);
    fprintf(stderr, "%s:%d: shape check failed: %s; shapes %s and %s\n", file, line, what, sa, sb);
    abort();
}
