/* tensor.h: the one array type of the numerical core.
 *
 * A dk_tensor is a dense, contiguous float32 array of shape (N, C, D, H, W),
 * W fastest. It says who owns its data: an owning tensor frees it in
 * dk_tensor_release; a view borrows memory that someone else keeps alive.
 * Ops are free functions over tensors (conv.h, pool.h, ...); they check
 * shapes once at their boundary with DK_CHECK_SHAPE, which prints both shapes. */
#ifndef DK_TENSOR_H
#define DK_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distill/err.h"

typedef struct dk_tensor {
    int n, c, d, h, w;
    float *data;
    bool owns_data;
} dk_tensor;

/* Allocate a zeroed owning tensor of the given shape (64-byte aligned data).
 * On failure t is left empty and err says why (a dimension < 1, or no memory). */
dk_status dk_tensor_alloc(dk_tensor *t, int n, int c, int d, int h, int w, dk_err *err);

/* Allocate an owning tensor shaped like `like` (zeroed). */
dk_status dk_tensor_alloc_like(dk_tensor *t, const dk_tensor *like, dk_err *err);

/* A borrowed view over data; the caller keeps data alive while the view is used. */
dk_tensor dk_tensor_view(float *data, int n, int c, int d, int h, int w);

/* The view of sample i (shape 1, C, D, H, W), borrowed from t. */
dk_tensor dk_tensor_sample(const dk_tensor *t, int i);

/* Free owned data (no-op for views) and reset t to empty. Safe on an empty tensor. */
void dk_tensor_release(dk_tensor *t);

static inline size_t dk_tensor_numel(const dk_tensor *t)
{
    return (size_t)t->n * t->c * t->d * t->h * t->w;
}
static inline size_t dk_tensor_spatial(const dk_tensor *t)
{
    return (size_t)t->d * t->h * t->w;
}
static inline bool dk_tensor_same_shape(const dk_tensor *a, const dk_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->d == b->d && a->h == b->h && a->w == b->w;
}

void dk_tensor_zero(dk_tensor *t);
void dk_tensor_fill(dk_tensor *t, float value);
/* Copy src's values into dst; shapes must match. */
void dk_tensor_copy(dk_tensor *dst, const dk_tensor *src);

/* Write "(n, c, d, h, w)" into buf; returns buf. */
char *dk_tensor_shape_str(const dk_tensor *t, char *buf, size_t len);

/* Aborts with both shapes printed when cond is false. Only for internal
 * invariants: shapes that come from outside are validated with dk_err first. */
#define DK_CHECK_SHAPE(cond, a, b)                                                                 \
    do {                                                                                           \
        if (!(cond)) dk_shape_fail(#cond, (a), (b), __FILE__, __LINE__);                           \
    } while (0)
_Noreturn void dk_shape_fail(const char *what, const dk_tensor *a, const dk_tensor *b,
                             const char *file, int line);

#endif
