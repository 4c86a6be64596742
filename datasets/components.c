/* components.c: the largest 6-connected component per class (components.h), by a
 * flood fill with an explicit stack (no recursion: a component can span the volume). */
#include "datasets/components.h"

#include <stdlib.h>
#include <string.h>

typedef struct fill {
    const uint8_t *labels;
    int32_t *comp; /* component id per voxel, -1 = not visited */
    size_t *stack;
    int d[3];
} fill;

/* Give id to the component of `seed` (class c); returns its size. */
static size_t flood(fill *f, size_t seed, uint8_t c, int32_t id)
{
    const size_t sy = (size_t)f->d[2], sz = (size_t)f->d[1] * f->d[2];
    size_t top = 0, size = 0;
    f->stack[top++] = seed;
    f->comp[seed] = id;
    while (top) {
        size_t at = f->stack[--top];
        size++;
        int k = (int)(at / sz), j = (int)(at / sy % f->d[1]), i = (int)(at % sy);
        size_t nb[6];
        int n = 0;
        if (k > 0) nb[n++] = at - sz;
        if (k + 1 < f->d[0]) nb[n++] = at + sz;
        if (j > 0) nb[n++] = at - sy;
        if (j + 1 < f->d[1]) nb[n++] = at + sy;
        if (i > 0) nb[n++] = at - 1;
        if (i + 1 < f->d[2]) nb[n++] = at + 1;
        for (int q = 0; q < n; q++)
            if (f->comp[nb[q]] < 0 && f->labels[nb[q]] == c) {
                f->comp[nb[q]] = id;
                f->stack[top++] = nb[q];
            }
    }
    return size;
}

dk_status dk_keep_largest_components(uint8_t *labels, const int dims[3], int classes,
                                     long long *removed, dk_err *err)
{
    const size_t V = (size_t)dims[0] * dims[1] * dims[2];
    fill f = {labels, malloc(V * sizeof(int32_t)), malloc(V * sizeof(size_t)),
              {dims[0], dims[1], dims[2]}};
    size_t *sizes = malloc((V + 1) * sizeof *sizes);
    if (!f.comp || !f.stack || !sizes || V > INT32_MAX) {
        free(f.comp);
        free(f.stack);
        free(sizes);
        return dk_err_set(err, DK_ENOMEM, "components: no memory for %zu voxels", V);
    }
    memset(f.comp, 0xff, V * sizeof(int32_t));
    int32_t count = 0;
    int32_t best[256];
    for (int c = 0; c < 256; c++)
        best[c] = -1;
    for (size_t at = 0; at < V; at++) {
        uint8_t c = labels[at];
        if (c == 0 || c >= classes || f.comp[at] >= 0) continue;
        sizes[count] = flood(&f, at, c, count);
        if (best[c] < 0 || sizes[count] > sizes[best[c]]) best[c] = count;
        count++;
    }
    long long gone = 0;
    for (size_t at = 0; at < V; at++) {
        uint8_t c = labels[at];
        if (c == 0 || c >= classes || f.comp[at] == best[c]) continue;
        labels[at] = 0;
        gone++;
    }
    if (removed) *removed = gone;
    free(f.comp);
    free(f.stack);
    free(sizes);
    return DK_OK;
}
