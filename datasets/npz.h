/* npz.h: NumPy .npz archives (a zip of .npy files, one per array) in memory,
 * stored or deflated: what `np.savez(f, **arrays)` and `np.savez_compressed`
 * write. It carries the federated student's updates and the float16 global
 * (docs/federation.md, "Wire format").
 *
 * Reading is for untrusted bytes: stored (method 0) or deflated (method 8)
 * entries only, a deflated entry's declared size checked against the bound
 * before anything is allocated and inflate never writing past it, no
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

typedef enum dk_npz_compression {
    DK_NPZ_STORE = 0, /* np.savez */
    DK_NPZ_DEFLATE,   /* np.savez_compressed: zlib level 6, an entry stays stored if not smaller */
} dk_npz_compression;

/* Decode the .npz held in buf[0..len). max_bytes bounds the sum of the
 * decoded arrays' data; 0 = no bound beyond len for stored entries and, for a
 * deflated one, its declared size (< 4 GiB, at most deflate's 1032:1 from its
 * compressed size): servers pass a bound. Names must be unique, end in ".npy"
 * and hold no NUL. DK_EFORMAT for anything not a stored or deflated zip of
 * .npy files, DK_ELIMIT beyond the bounds. On success the caller frees out
 * with dk_npz_free; on failure out is empty. */
dk_status dk_npz_decode(const void *buf, size_t len, size_t max_bytes, dk_npz *out, dk_err *err);

/* Encode count arrays (name -> "name.npy", little-endian .npy v1.0) as a
 * zip in a new buffer, each entry stored or deflated as how says (numpy's
 * np.load reads either). Caller frees *out with free(). */
dk_status dk_npz_encode(const dk_npz_entry *entries, int count, dk_npz_compression how,
                        void **out, size_t *out_len, dk_err *err);

/* Free the arrays and the entry list (z itself is the caller's); z may be NULL. */
void dk_npz_free(dk_npz *z);

#endif
