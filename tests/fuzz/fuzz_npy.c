/* fuzz_npy.c: libFuzzer harness for the .npy reader (datasets/npy.h): any
 * bytes must either be refused with a status or decode to an array that
 * encodes and decodes back to the same elements. Seeds: tests/fuzz/corpus/npy/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dk_npy_header h;
    dk_err err;
    (void)dk_npy_parse_header(data, size, &h, &err);
    dk_npy_array a;
    if (dk_npy_decode(data, size, (size_t)1 << 26, &a, &err) != DK_OK) return 0;
    void *buf;
    size_t len;
    if (dk_npy_encode(&a, (size & 1) != 0, &buf, &len, &err) != DK_OK) abort();
    dk_npy_array b;
    if (dk_npy_decode(buf, len, 0, &b, &err) != DK_OK) abort();
    size_t bytes = a.numel * dk_npy_dtype_size(a.dtype);
    if (b.dtype != a.dtype || b.rank != a.rank || b.numel != a.numel ||
        memcmp(a.data, b.data, bytes) != 0)
        abort();
    dk_npy_array_free(&a);
    dk_npy_array_free(&b);
    free(buf);
    return 0;
}
