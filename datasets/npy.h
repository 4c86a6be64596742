/* npy.h: NumPy .npy files (format versions 1.0, 2.0 and 3.0) in memory.
 *
 * The server writes arrays as .npy bodies (from a buffer or streamed after a
 * header), and the student parses downloaded bytes, so everything here works on
 * memory buffers; nothing touches files. Reading accepts little- and big-endian
 * data in C order (Fortran order is refused with a message saying how to fix
 * it) and returns elements in this machine's (little-endian) order. Every byte
 * is untrusted: the header length is bounded (DK_NPY_HEADER_MAX), the shape's
 * element and byte counts are checked for overflow, and the data must be
 * exactly as long as the header says. Writing produces version 1.0, headers
 * padded to 64 bytes, as numpy itself does. */
#ifndef DK_NPY_H
#define DK_NPY_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/err.h"

#define DK_NPY_MAX_RANK   8
#define DK_NPY_HEADER_MAX 16384 /* longest accepted header dict, bytes (numpy's own cap is 10000)  \
                                 */
#define DK_NPY_PREFIX_CAP 512   /* enough for any header dk_npy_format_header writes */

typedef enum dk_npy_dtype {
    DK_NPY_U1, /* "u1" uint8 */
    DK_NPY_I1, /* "i1" int8 */
    DK_NPY_U2, /* "u2" uint16 */
    DK_NPY_I2, /* "i2" int16 */
    DK_NPY_U4, /* "u4" uint32 */
    DK_NPY_I4, /* "i4" int32 */
    DK_NPY_F2, /* "f2" IEEE binary16 (the target store's targets) */
    DK_NPY_F4, /* "f4" float32 */
    DK_NPY_F8, /* "f8" float64 */
} dk_npy_dtype;

/* Bytes per element; "u1", "f4", ... (static storage). */
size_t dk_npy_dtype_size(dk_npy_dtype t);
const char *dk_npy_dtype_name(dk_npy_dtype t);
/* Parse a short name ("f4") or a numpy descr ("<f4", "|u1"); DK_EFORMAT otherwise. */
dk_status dk_npy_dtype_parse(const char *name, dk_npy_dtype *out, bool *big_endian, dk_err *err);

/* What a .npy header says. */
typedef struct dk_npy_header {
    dk_npy_dtype dtype;
    bool big_endian; /* byte order of the data (meaningless for 1-byte types) */
    int rank;        /* 0 for a scalar */
    size_t shape[DK_NPY_MAX_RANK];
    size_t numel;       /* product of shape (1 for a scalar) */
    size_t data_offset; /* bytes before the data: magic, version, length, dict */
    size_t data_bytes;  /* numel * dtype size */
    int version;        /* major version read (1, 2 or 3); written files are 1 */
} dk_npy_header;

/* Parse and validate the header at the start of buf (len bytes; only the
 * header must be present, so a reader can call this on the first bytes of a
 * stream). Fills h including data_offset and data_bytes. DK_EFORMAT naming
 * what is wrong (bad magic, truncated, unknown dtype, Fortran order, ...);
 * DK_ELIMIT for a header or array larger than the bounds. */
dk_status dk_npy_parse_header(const void *buf, size_t len, dk_npy_header *h, dk_err *err);

/* Write the version 1.0 header for h->dtype, h->big_endian, h->rank and
 * h->shape into buf (cap >= DK_NPY_PREFIX_CAP is always enough); its length
 * (a multiple of 64) goes to *len. numel, data_offset and data_bytes of h are
 * filled in as a reader would find them. DK_EINVAL for a bad rank, DK_ELIMIT
 * when the shape overflows. */
dk_status dk_npy_format_header(dk_npy_header *h, char *buf, size_t cap, size_t *len, dk_err *err);

/* A decoded array: elements in C order and little-endian (this machine's) order. */
typedef struct dk_npy_array {
    dk_npy_dtype dtype;
    int rank;
    size_t shape[DK_NPY_MAX_RANK];
    size_t numel;
    void *data; /* owned: numel * dk_npy_dtype_size(dtype) bytes */
} dk_npy_array;

/* Decode a whole .npy file held in buf[0..len): the data must follow the
 * header and fill the rest of buf exactly (DK_EFORMAT naming both byte counts
 * otherwise). max_bytes bounds the data allocated (0 = no bound beyond len
 * itself). On success out->data is allocated: caller frees with
 * dk_npy_array_free. On failure out is zeroed. */
dk_status dk_npy_decode(const void *buf, size_t len, size_t max_bytes, dk_npy_array *out,
                        dk_err *err);

/* Check that a is of dtype and rank; what (e.g. "the label map") starts the
 * message. DK_EMISMATCH naming both dtypes or ranks and the shape. */
dk_status dk_npy_expect(const dk_npy_array *a, dk_npy_dtype dtype, int rank, const char *what,
                        dk_err *err);

/* Encode a (data in this machine's order) as a complete version 1.0 .npy in a
 * new buffer, little- or big-endian. Caller frees *out with free(). */
dk_status dk_npy_encode(const dk_npy_array *a, bool big_endian, void **out, size_t *out_len,
                        dk_err *err);

/* Free the data of a (a itself is the caller's); a may be NULL. */
void dk_npy_array_free(dk_npy_array *a);

#endif
