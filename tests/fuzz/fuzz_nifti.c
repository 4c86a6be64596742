/* fuzz_nifti.c: the NIfTI-1 reader (datasets/nifti.c) on arbitrary bytes, as a
 * plain .nii or a .nii.gz (zlib reads both through one path). A file that reads
 * as an image is also read as its own label map, which adds the label checks. */
#include "datasets/nifti.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = dk_fuzz_file(data, size, ".nii.gz");
    dk_volume v;
    dk_err err = {0};
    if (dk_nifti_read_image(path, "fuzz", &v, &err) == DK_OK) {
        dk_nifti_read_label(path, &v, &err);
        dk_volume_release(&v);
    }
    return 0;
}
