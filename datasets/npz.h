/* npz.h: NumPy .npz archives (a zip of .npy files, one per array) in memory,
 * uncompressed only: what `np.savez(f, **arrays)` writes. It carries the
 * federated student's updates (docs/federation.md, "Wire format").
 *
 * Reading is for untrusted bytes: only stored (method 0) entries, no
 * encryption, no multi-disk or zip64 end records (the archive is < 4 GiB), at
 * most DK_NPZ_MAX_ENTRIES entries, every offset and size checked against the
 * buffer, each entry's CRC-32 checked, and each entry a valid .npy
 * (datasets/npy.h) whose decoded data counts against a caller's byte bound.
 * Sizes come from the central directory (a zip64 extra field in a local header,
 * as numpy writes, or a data descriptor, is accepted). Anything else is refused
 * with a message naming the entry and what was expected. Nothing touches files. */
#ifndef DK_NPZ_H
#define DK_NPZ_H

#include <stddef.h>

#include "datasets/npy.h"
#include "distill/err.h"

#define DK_NPZ_MAX_ENTRIES 4096
#define DK_NPZ_NAME_MAX    255 /* bytes of an array name (the entry name without ".npy") */

typedef struct dk_npz_entry {
    char name[DK_NPZ_NAME_MAX + 1]; /* the array's name: "x" for the entry "x.npy" */
    dk_npy_array array;             /* owned by the archive */
} dk_npz_entry;

typedef struct dk_npz {
    int count;
    dk_npz_entry *entries; /* owned; in archive (central directory) order */
} dk_npz;

/* Decode the .npz held in buf[0..len). max_bytes bounds the sum of the
 * decoded arrays' data (0 = no bound beyond len). Names must be unique,
 * end in ".npy" and hold no NUL. DK_EFORMAT for anything not a stored zip of
 * .npy files, DK_ELIMIT beyond the bounds. On success the caller frees out
 * with dk_npz_free; on failure out is empty. */
dk_status dk_npz_decode(const void *buf, size_t len, size_t max_bytes, dk_npz *out, dk_err *err);

/* Encode count arrays (name -> "name.npy", little-endian .npy v1.0) as a
 * stored zip in a new buffer. Caller frees *out with free(). */
dk_status dk_npz_encode(const dk_npz_entry *entries, int count, void **out, size_t *out_len,
                        dk_err *err);

/* Free the arrays and the entry list (z itself is the caller's); z may be NULL. */
void dk_npz_free(dk_npz *z);

#endif
