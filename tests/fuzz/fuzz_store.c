/* fuzz_store.c: opening a target store (teacher/store.c), reading every array
 * of every sample as float32 and as stored bytes, and verifying its checksums. */
/* libFuzzer's per-input leak check would rescan the heap after each of libhdf5's
 * own error-path leaks; leaks are still checked when the run ends. */
/* fuzz-options: -detect_leaks=0 */
#include <stdlib.h>

#include "fuzz_hdf5.h"
#include "fuzz_input.h"
#include "teacher/store.h"

static void read_sample(dk_store *s, int i)
{
    const dk_store_sample_info *info = dk_store_sample_at(s, i);
    for (int k = 0; k < info->array_count; k++) {
        const dk_store_array_info *a = &info->arrays[k];
        size_t n = dk_store_array_numel(a), raw = n * dk_store_dtype_size(a->dtype);
        float *f = malloc(n * sizeof *f + 1);
        unsigned char *b = malloc(raw + 1);
        dk_err err = {0};
        if (f && b) {
            dk_store_read(s, i, a->kind, f, n, &err);
            dk_store_read_raw(s, i, a->kind, b, raw, &err);
        }
        free(f);
        free(b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = dk_fuzz_file(data, size, ".h5");
    long ids = dk_fuzz_h5_open_ids();
    dk_err err = {0};
    dk_store *s = dk_store_open(path, &err);
    for (int i = 0; s && i < dk_store_count(s); i++)
        read_sample(s, i);
    dk_store_close(s);
    int checked = 0;
    dk_store_verify(path, &checked, &err);
    dk_fuzz_h5_check_ids(ids);
    return 0;
}
