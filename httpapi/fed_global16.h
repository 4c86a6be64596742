/* fed_global16.h: the float16 form of a federation's global student
 * (docs/federation.md, "The global in float16"): a deflated .npz (what
 * np.savez_compressed writes) of one float16 array per parameter, rounded to
 * nearest even from the float32 checkpoint, made once per global and kept
 * beside it. */
#ifndef DK_FED_GLOBAL16_H
#define DK_FED_GLOBAL16_H

#include <stddef.h>

#include "distill/err.h"

/* The .npz beside the checkpoint at h5_path ("global-NNNN.h5" ->
 * "global-NNNN.f2-deflate.npz": named for its form, so a stored one an older
 * version left is never served under the deflated one's ETag) into npz_path (cap bytes), made if missing: temporary
 * name, fsync, rename, directory fsync. Reads HDF5: call under the HDF5 lock.
 * Its bytes are a function of the checkpoint's values alone. */
dk_status dk_fed_global16(const char *h5_path, char *npz_path, size_t cap, dk_err *err);

#endif
