/* fuzz_npz.c: libFuzzer harness for the .npz reader (datasets/npz.h): any
 * bytes must either be refused with a status or decode to arrays that encode
 * and decode back to the same names and elements. Seeds: tests/fuzz/corpus/npz/
 * (np.savez output: float32 and float16 5-D tensors, a zip64-extra local
 * header as numpy writes it; np.savez_compressed output and our own deflated
 * archive). The round trip re-encodes deflated, so the writer's deflate and the
 * reader's inflate meet on every accepted input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dk_npz a;
    dk_err err;
    if (dk_npz_decode(data, size, (size_t)1 << 26, &a, &err) != DK_OK) return 0;
    void *buf;
    size_t len;
    if (dk_npz_encode(a.entries, a.count, DK_NPZ_DEFLATE, &buf, &len, &err) != DK_OK) abort();
    dk_npz b;
    if (dk_npz_decode(buf, len, 0, &b, &err) != DK_OK || b.count != a.count) abort();
    for (int i = 0; i < a.count; i++) {
        const dk_npy_array *x = &a.entries[i].array, *y = &b.entries[i].array;
        if (strcmp(a.entries[i].name, b.entries[i].name) != 0 || x->dtype != y->dtype ||
            x->rank != y->rank || x->numel != y->numel ||
            memcmp(x->data, y->data, x->numel * dk_npy_dtype_size(x->dtype)) != 0)
            abort();
    }
    dk_npz_free(&a);
    dk_npz_free(&b);
    free(buf);
    return 0;
}
