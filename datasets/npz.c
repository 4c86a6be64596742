/* npz.c: a bounded reader and a writer of .npz (zip) archives, stored or
 * deflated, in memory (npz.h). The reader walks the central directory found through the
 * end-of-central-directory record, checks every entry's local header against
 * it, and hands each entry's bytes to the .npy decoder. */
#include "datasets/npz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL    0x04034b50u
#define SIG_CENTRAL  0x02014b50u
#define SIG_END      0x06054b50u
#define LOCAL_SIZE   30
#define CENTRAL_SIZE 46
#define END_SIZE     22
#define COMMENT_MAX  65535
#define METHOD_STORED  0
#define METHOD_DEFLATE 8
/* deflate's best case is 258 bytes per two bits: no honest stream inflates by more */
#define DEFLATE_MAX_RATIO 1032u
/* the bytes of a .npy that are not data: magic, version, length and the header dict */
#define NPY_OVERHEAD_MAX (12u + DK_NPY_HEADER_MAX)

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The end record: searched backwards over at most a maximal comment. */
static dk_status find_end(const unsigned char *b, size_t len, size_t *at, dk_err *err)
{
    if (len < END_SIZE)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: %zu bytes is too short for a zip archive (send np.savez output)",
                          len);
    size_t lowest = len - END_SIZE > COMMENT_MAX ? len - END_SIZE - COMMENT_MAX : 0;
    for (size_t i = len - END_SIZE + 1; i-- > lowest;)
        if (le32(b + i) == SIG_END && i + END_SIZE + le16(b + i + 20) == len) {
            *at = i;
            return DK_OK;
        }
    return dk_err_set(err, DK_EFORMAT,
                      ".npz: no zip end-of-central-directory record (not a zip archive, or cut "
                      "short)");
}

typedef struct central {
    const unsigned char *name;
    size_t name_len;
    uint16_t flags, method;
    uint32_t crc;
    uint64_t csize, usize, offset;
} central;

/* Read the zip64 extra field of a central entry for the fields that are 0xFFFFFFFF. */
static dk_status zip64_sizes(const unsigned char *extra, size_t n, central *c, dk_err *err)
{
    for (size_t i = 0; i + 4 <= n;) {
        uint16_t id = le16(extra + i), size = le16(extra + i + 2);
        if (i + 4 + size > n) break;
        if (id == 0x0001) {
            const unsigned char *p = extra + i + 4, *end = p + size;
            uint64_t *fields[3] = {&c->usize, &c->csize, &c->offset};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xFFFFFFFFu) continue;
                if (p + 8 > end) break;
                *fields[k] = (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
                p += 8;
            }
        }
        i += 4 + (size_t)size;
    }
    if (c->usize == 0xFFFFFFFFu || c->csize == 0xFFFFFFFFu || c->offset == 0xFFFFFFFFu)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s': a zip64 size without its extra field",
                          (int)(c->name_len > 80 ? 80 : c->name_len), (const char *)c->name);
    return DK_OK;
}

static dk_status read_central(const unsigned char *b, size_t cd_end, size_t *pos, central *c,
                              dk_err *err)
{
    size_t p = *pos;
    if (p + CENTRAL_SIZE > cd_end || le32(b + p) != SIG_CENTRAL)
        return dk_err_set(err, DK_EFORMAT, ".npz: central directory entry at byte %zu is damaged",
                          p);
    size_t n = le16(b + p + 28), extra = le16(b + p + 30), comment = le16(b + p + 32);
    if (p + CENTRAL_SIZE + n + extra + comment > cd_end)
        return dk_err_set(err, DK_EFORMAT, ".npz: central directory entry at byte %zu overruns it",
                          p);
    *c = (central){.name = b + p + CENTRAL_SIZE,
                   .name_len = n,
                   .flags = le16(b + p + 8),
                   .method = le16(b + p + 10),
                   .crc = le32(b + p + 16),
                   .csize = le32(b + p + 20),
                   .usize = le32(b + p + 24),
                   .offset = le32(b + p + 42)};
    *pos = p + CENTRAL_SIZE + n + extra + comment;
    return zip64_sizes(b + p + CENTRAL_SIZE + n, extra, c, err);
}

/* Where the entry's stored or deflated bytes start, after checking its kind,
 * name and local header against the directory. Sizes come from the central
 * directory, so a data descriptor (flag bit 3: zeros in the local header) is
 * handled without reading it. */
static dk_status entry_start(const unsigned char *b, size_t data_end, const central *c,
                             uint64_t *start, dk_err *err)
{
    int shown = (int)(c->name_len > 80 ? 80 : c->name_len);
    const char *cn = (const char *)c->name;
    if (c->name_len < 5 || c->name_len - 4 > DK_NPZ_NAME_MAX || memchr(cn, '\0', c->name_len) ||
        memcmp(cn + c->name_len - 4, ".npy", 4) != 0)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s' is not '<name>.npy' with a name of 1..%d bytes",
                          shown, cn, DK_NPZ_NAME_MAX);
    if (c->flags & 1)
        return dk_err_set(err, DK_EFORMAT, ".npz: entry '%.*s' is encrypted", shown, cn);
    if (c->method != METHOD_STORED && c->method != METHOD_DEFLATE)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s' uses zip method %u; only stored (0) and deflated "
                          "(8) entries are accepted: write it with np.savez or np.savez_compressed",
                          shown, cn, c->method);
    if (c->method == METHOD_STORED && c->csize != c->usize)
        return dk_err_set(err, DK_EFORMAT, ".npz: stored entry '%.*s' has sizes %llu and %llu",
                          shown, cn, (unsigned long long)c->csize, (unsigned long long)c->usize);
    uint64_t o = c->offset;
    if (o > data_end || data_end - o < LOCAL_SIZE || le32(b + o) != SIG_LOCAL)
        return dk_err_set(err, DK_EFORMAT, ".npz: entry '%.*s': no local header at byte %llu",
                          shown, cn, (unsigned long long)o);
    size_t n = le16(b + o + 26), extra = le16(b + o + 28);
    *start = o + LOCAL_SIZE + n + extra;
    if (n != c->name_len || *start > data_end || memcmp(b + o + LOCAL_SIZE, cn, n) != 0 ||
        le16(b + o + 8) != c->method)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s': its local header does not match the directory",
                          shown, cn);
    if (c->csize > data_end - *start)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s': %llu bytes from byte %llu run past the data", shown,
                          cn, (unsigned long long)c->csize, (unsigned long long)*start);
    return DK_OK;
}

/* Inflate the raw deflate stream src[0..c->csize) into exactly c->usize bytes;
 * the caller checked usize against its bound. inflate never writes past usize:
 * a stream that would (a lying size, a bomb) stops there and is refused. */
static dk_status inflate_entry(const central *c, const unsigned char *src, unsigned char *dst,
                               dk_err *err)
{
    int shown = (int)(c->name_len > 80 ? 80 : c->name_len);
    const char *cn = (const char *)c->name;
    z_stream z = {0};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
        return dk_err_set(err, DK_ENOMEM, ".npz: entry '%.*s': cannot start inflate", shown, cn);
    z.next_in = (Bytef *)src, z.avail_in = (uInt)c->csize;
    z.next_out = dst, z.avail_out = (uInt)c->usize;
    int rc = inflate(&z, Z_FINISH);
    unsigned long long made = z.total_out, left_in = z.avail_in, want = c->usize;
    bool full = rc != Z_STREAM_END && rc != Z_DATA_ERROR && z.avail_out == 0;
    char why[64];
    snprintf(why, sizeof why, "%s", z.msg ? z.msg : "damaged");
    inflateEnd(&z);
    if (full)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s' does not end within its declared %llu bytes (a "
                          "lying size, a zip bomb or a cut stream)",
                          shown, cn, want);
    if (rc == Z_STREAM_END && made == want && left_in == 0) return DK_OK;
    if (rc == Z_STREAM_END)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s' inflates to %llu bytes with %llu compressed bytes "
                          "left over; the directory says %llu from %llu",
                          shown, cn, made, left_in, want, (unsigned long long)c->csize);
    if (rc == Z_DATA_ERROR)
        return dk_err_set(err, DK_EFORMAT, ".npz: entry '%.*s': invalid deflate data (%s)", shown,
                          cn, why);
    return dk_err_set(err, DK_EFORMAT,
                      ".npz: entry '%.*s': the deflate stream ends early (%llu of %llu bytes "
                      "made; truncated)",
                      shown, cn, made, want);
}

static uint32_t crc_of(const unsigned char *p, uint64_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < n;) { /* crc32 takes at most a uInt at a time */
        uInt chunk = n - done > (1u << 30) ? (1u << 30) : (uInt)(n - done);
        crc = crc32(crc, p + done, chunk);
        done += chunk;
    }
    return (uint32_t)crc;
}

/* The entry's .npy bytes: in b itself if stored (*owned NULL), else inflated into
 * *owned (caller frees) after checking the declared size against cap bytes. */
static dk_status entry_data(const unsigned char *b, size_t data_end, const central *c,
                            uint64_t cap, const unsigned char **data, unsigned char **owned,
                            dk_err *err)
{
    int shown = (int)(c->name_len > 80 ? 80 : c->name_len);
    const char *cn = (const char *)c->name;
    uint64_t start = 0;
    dk_status st = entry_start(b, data_end, c, &start, err);
    if (st) return st;
    *data = b + start, *owned = NULL;
    if (c->method == METHOD_DEFLATE) {
        if (c->usize > cap || c->usize > DEFLATE_MAX_RATIO * c->csize + 1024)
            return dk_err_set(err, c->usize > cap ? DK_ELIMIT : DK_EFORMAT,
                              ".npz: entry '%.*s' declares %llu bytes from %llu compressed: more "
                              "than %s",
                              shown, cn, (unsigned long long)c->usize,
                              (unsigned long long)c->csize,
                              c->usize > cap ? "the bound on the arrays" : "deflate can produce");
        if (!(*owned = malloc(c->usize ? c->usize : 1)))
            return dk_err_set(err, DK_ENOMEM, ".npz: entry '%.*s': no memory for %llu bytes",
                              shown, cn, (unsigned long long)c->usize);
        if ((st = inflate_entry(c, b + start, *owned, err))) {
            free(*owned), *owned = NULL;
            return st;
        }
        *data = *owned;
    }
    if (crc_of(*data, c->usize) != c->crc) {
        free(*owned), *owned = NULL;
        return dk_err_set(err, DK_EFORMAT, ".npz: entry '%.*s': CRC-32 mismatch (damaged upload)",
                          shown, cn);
    }
    return DK_OK;
}

static dk_status decode_entries(const unsigned char *b, size_t cd_at, size_t cd_end, int count,
                                size_t max_bytes, dk_npz *out, dk_err *err)
{
    size_t pos = cd_at, used = 0;
    dk_status st = DK_OK;
    for (int i = 0; st == DK_OK && i < count; i++) {
        central c;
        const unsigned char *data = NULL;
        unsigned char *owned = NULL;
        dk_npz_entry *e = &out->entries[i];
        size_t left = max_bytes ? max_bytes - used : 0;
        /* an inflated entry is its data plus a .npy header; zlib counts in 32 bits */
        uint64_t cap = max_bytes ? (uint64_t)left + NPY_OVERHEAD_MAX : UINT32_MAX;
        if (cap > UINT32_MAX) cap = UINT32_MAX;
        if ((st = read_central(b, cd_end, &pos, &c, err))) break;
        if ((st = entry_data(b, cd_at, &c, cap, &data, &owned, err))) break;
        memcpy(e->name, c.name, c.name_len - 4);
        e->name[c.name_len - 4] = '\0';
        for (int k = 0; st == DK_OK && k < i; k++)
            if (strcmp(out->entries[k].name, e->name) == 0)
                st = dk_err_set(err, DK_EFORMAT, ".npz: array '%.80s' appears twice", e->name);
        if (st == DK_OK && max_bytes && left == 0)
            st = dk_err_set(err, DK_ELIMIT, ".npz: arrays exceed %zu bytes at '%.80s'", max_bytes,
                            e->name);
        if (st == DK_OK && (st = dk_npy_decode(data, (size_t)c.usize, left, &e->array, err)))
            dk_err_prefix(err, st, ".npz: array '%.80s'", e->name);
        free(owned);
        if (st) break;
        out->count = i + 1;
        used += e->array.numel * dk_npy_dtype_size(e->array.dtype);
    }
    return st;
}

dk_status dk_npz_decode(const void *buf, size_t len, size_t max_bytes, dk_npz *out, dk_err *err)
{
    *out = (dk_npz){0};
    const unsigned char *b = buf;
    size_t end = 0;
    dk_status st = find_end(b, len, &end, err);
    if (st) return st;
    uint16_t disk = le16(b + end + 4), cd_disk = le16(b + end + 6);
    uint16_t here = le16(b + end + 8), total = le16(b + end + 10);
    uint32_t cd_size = le32(b + end + 12), cd_at = le32(b + end + 16);
    if (disk || cd_disk || here != total)
        return dk_err_set(err, DK_EFORMAT, ".npz: multi-disk zip archives are not accepted");
    if (total == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_at == 0xFFFFFFFFu)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: zip64 archives are not accepted (keep it < 4 GiB)");
    if (total > DK_NPZ_MAX_ENTRIES)
        return dk_err_set(err, DK_ELIMIT, ".npz: %u arrays, at most %d are accepted", total,
                          DK_NPZ_MAX_ENTRIES);
    if ((size_t)cd_at > end || (size_t)cd_size > end - cd_at)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: the central directory (%u bytes at %u) lies outside the archive",
                          cd_size, cd_at);
    out->entries = calloc(total ? total : 1, sizeof *out->entries);
    if (!out->entries)
        return dk_err_set(err, DK_ENOMEM, "out of memory for %u .npz entries", total);
    st = decode_entries(b, cd_at, (size_t)cd_at + cd_size, total, max_bytes, out, err);
    if (st) dk_npz_free(out);
    return st;
}

void dk_npz_free(dk_npz *z)
{
    if (!z) return;
    for (int i = 0; i < z->count; i++)
        dk_npy_array_free(&z->entries[i].array);
    free(z->entries);
    *z = (dk_npz){0};
}

/* ---- writing ---- */

struct packed { /* one entry on its way into the archive */
    unsigned char *npy, *deflated; /* owned: the .npy, and its deflated form if smaller */
    const unsigned char *body;     /* what goes into the archive: npy or deflated */
    size_t usize, csize;
    uint32_t crc;
    unsigned method;
};

static unsigned char *put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
    return p + 2;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return p + 4;
}

/* The fields local and central headers share, from "version needed" to the name length. */
static unsigned char *put_common(unsigned char *p, const struct packed *e, size_t name_len)
{
    p = put16(p, 20), p = put16(p, 0), p = put16(p, e->method); /* version 2.0, flags */
    p = put16(p, 0), p = put16(p, 0x21);                         /* time, date: 1980-01-01 */
    p = put32(p, e->crc), p = put32(p, (uint32_t)e->csize), p = put32(p, (uint32_t)e->usize);
    return put16(p, (unsigned)name_len);
}

/* Deflate e's .npy (zlib level 6, raw, as zipfile does) when that makes it
 * smaller; otherwise it stays stored. */
static dk_status pack(struct packed *e, bool deflated, dk_err *err)
{
    e->crc = crc_of(e->npy, e->usize);
    e->method = METHOD_STORED, e->body = e->npy, e->csize = e->usize;
    if (!deflated) return DK_OK;
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return dk_err_set(err, DK_ENOMEM, ".npz: cannot start deflate");
    uLong cap = deflateBound(&z, (uLong)e->usize);
    unsigned char *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return dk_err_set(err, DK_ENOMEM, ".npz: no memory for %lu deflated bytes", cap);
    }
    z.next_in = e->npy, z.avail_in = (uInt)e->usize, z.next_out = out, z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t made = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || made >= e->usize) { /* cannot fail with deflateBound's room */
        free(out);
        return DK_OK;
    }
    e->deflated = out, e->body = out, e->csize = made, e->method = METHOD_DEFLATE;
    return DK_OK;
}

static dk_status pack_all(const dk_npz_entry *entries, int count, bool deflated,
                          struct packed *e, size_t *total, dk_err *err)
{
    dk_status st = DK_OK;
    *total = END_SIZE;
    for (int i = 0; st == DK_OK && i < count; i++) {
        size_t n = strlen(entries[i].name) + 4;
        void *npy = NULL;
        st = dk_npy_encode(&entries[i].array, false, &npy, &e[i].usize, err);
        e[i].npy = npy;
        if (st == DK_OK && e[i].usize > 0xFFFFFFFFu)
            st = dk_err_set(err, DK_ELIMIT, ".npz: '%.80s' is too large for zip32",
                            entries[i].name);
        if (st == DK_OK) st = pack(&e[i], deflated, err);
        *total += LOCAL_SIZE + CENTRAL_SIZE + 2 * n + e[i].csize;
        if (st == DK_OK && (n > DK_NPZ_NAME_MAX + 4 || *total > 0xFFFFFFFFu))
            st = dk_err_set(err, DK_ELIMIT, ".npz: '%.80s' makes the archive too large for zip32",
                            entries[i].name);
    }
    return st;
}

dk_status dk_npz_encode(const dk_npz_entry *entries, int count, dk_npz_compression how,
                        void **out, size_t *out_len, dk_err *err)
{
    *out = NULL, *out_len = 0;
    if (count < 0 || count > DK_NPZ_MAX_ENTRIES)
        return dk_err_set(err, DK_ELIMIT, ".npz: %d arrays, at most %d", count, DK_NPZ_MAX_ENTRIES);
    struct packed *e = calloc(count ? count : 1, sizeof *e);
    size_t total = 0;
    dk_status st = e ? pack_all(entries, count, how == DK_NPZ_DEFLATE, e, &total, err)
                     : dk_err_set(err, DK_ENOMEM, "out of memory");
    unsigned char *b = st == DK_OK ? malloc(total) : NULL;
    if (st == DK_OK && !b) st = dk_err_set(err, DK_ENOMEM, "out of memory for %zu bytes", total);
    size_t local = 0, central_at = 0;
    for (int i = 0; st == DK_OK && i < count; i++) /* local headers and data first */
        central_at += LOCAL_SIZE + strlen(entries[i].name) + 4 + e[i].csize;
    unsigned char *p = b, *c = b + central_at;
    for (int i = 0; st == DK_OK && i < count; i++) {
        size_t n = strlen(entries[i].name);
        p = put32(p, SIG_LOCAL), p = put_common(p, &e[i], n + 4);
        p = put16(p, 0);
        memcpy(p, entries[i].name, n), memcpy(p + n, ".npy", 4), p += n + 4;
        memcpy(p, e[i].body, e[i].csize), p += e[i].csize;
        c = put32(c, SIG_CENTRAL), c = put16(c, 20), c = put_common(c, &e[i], n + 4);
        c = put16(c, 0), c = put16(c, 0), c = put16(c, 0), c = put16(c, 0), c = put32(c, 0);
        c = put32(c, (uint32_t)local);
        memcpy(c, entries[i].name, n), memcpy(c + n, ".npy", 4), c += n + 4;
        local = (size_t)(p - b);
    }
    if (st == DK_OK) {
        c = put32(c, SIG_END), c = put16(c, 0), c = put16(c, 0);
        c = put16(c, (unsigned)count), c = put16(c, (unsigned)count);
        c = put32(c, (uint32_t)(total - END_SIZE - central_at)), c = put32(c, (uint32_t)central_at);
        put16(c, 0);
        *out = b, *out_len = total;
    }
    for (int i = 0; e && i < count; i++)
        free(e[i].npy), free(e[i].deflated);
    free(e);
    if (st) free(b);
    return st;
}
