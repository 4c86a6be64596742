/* fuzz_dataset.c: opening an HDF5 dataset (datasets/dataset.c over
 * distill/h5file.c and h5fence.c) and reading every volume of one that opens. */
/* libFuzzer's per-input leak check would rescan the heap after each of libhdf5's
 * own error-path leaks; leaks are still checked when the run ends. */
/* fuzz-options: -detect_leaks=0 */
#include "datasets/dataset.h"
#include "fuzz_hdf5.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = dk_fuzz_file(data, size, ".h5");
    long ids = dk_fuzz_h5_open_ids();
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    for (int i = 0; ds && i < dk_dataset_count(ds); i++) {
        dk_volume v;
        if (dk_dataset_read(ds, i, &v, &err) == DK_OK) dk_volume_release(&v);
    }
    dk_dataset_close(ds);
    dk_fuzz_h5_check_ids(ids);
    return 0;
}
