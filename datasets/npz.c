/* npz.c: a bounded reader and a writer of uncompressed .npz (zip) archives
 * in memory (npz.h). The reader walks the central directory found through the
 * end-of-central-directory record, checks every entry's local header against
 * it, and hands each entry's bytes to the .npy decoder. */
#include "datasets/npz.h"

#include <stdint.h>
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

/* The entry's data, after checking its kind, name, local header, bounds and CRC. */
static dk_status entry_data(const unsigned char *b, size_t data_end, const central *c, char *name,
                            const unsigned char **data, dk_err *err)
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
    if (c->method != 0)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s' is compressed (zip method %u); only stored "
                          "entries are accepted: write it with np.savez, not np.savez_compressed",
                          shown, cn, c->method);
    if (c->csize != c->usize)
        return dk_err_set(err, DK_EFORMAT, ".npz: stored entry '%.*s' has sizes %llu and %llu",
                          shown, cn, (unsigned long long)c->csize, (unsigned long long)c->usize);
    uint64_t o = c->offset;
    if (o > data_end || data_end - o < LOCAL_SIZE || le32(b + o) != SIG_LOCAL)
        return dk_err_set(err, DK_EFORMAT, ".npz: entry '%.*s': no local header at byte %llu",
                          shown, cn, (unsigned long long)o);
    size_t n = le16(b + o + 26), extra = le16(b + o + 28);
    uint64_t start = o + LOCAL_SIZE + n + extra;
    if (n != c->name_len || start > data_end || memcmp(b + o + LOCAL_SIZE, cn, n) != 0 ||
        le16(b + o + 8) != c->method)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s': its local header does not match the directory",
                          shown, cn);
    if (c->csize > data_end - start)
        return dk_err_set(err, DK_EFORMAT,
                          ".npz: entry '%.*s': %llu bytes from byte %llu run past the data", shown,
                          cn, (unsigned long long)c->csize, (unsigned long long)start);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < c->csize;) { /* crc32 takes at most a uInt at a time */
        uInt chunk = c->csize - done > (1u << 30) ? (1u << 30) : (uInt)(c->csize - done);
        crc = crc32(crc, b + start + done, chunk);
        done += chunk;
    }
    if ((uint32_t)crc != c->crc)
        return dk_err_set(err, DK_EFORMAT, ".npz: entry '%.*s': CRC-32 mismatch (damaged upload)",
                          shown, cn);
    memcpy(name, cn, c->name_len - 4);
    name[c->name_len - 4] = '\0';
    *data = b + start;
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
        dk_npz_entry *e = &out->entries[i];
        if ((st = read_central(b, cd_end, &pos, &c, err))) break;
        if ((st = entry_data(b, cd_at, &c, e->name, &data, err))) break;
        for (int k = 0; k < i; k++)
            if (strcmp(out->entries[k].name, e->name) == 0)
                return dk_err_set(err, DK_EFORMAT, ".npz: array '%.80s' appears twice", e->name);
        size_t left = max_bytes ? max_bytes - used : 0;
        if (max_bytes && left == 0)
            return dk_err_set(err, DK_ELIMIT, ".npz: arrays exceed %zu bytes at '%.80s'", max_bytes,
                              e->name);
        if ((st = dk_npy_decode(data, (size_t)c.csize, left, &e->array, err)))
            return dk_err_prefix(err, st, ".npz: array '%.80s'", e->name);
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
static unsigned char *put_common(unsigned char *p, uint32_t crc, uint32_t size, size_t name_len)
{
    p = put16(p, 20), p = put16(p, 0), p = put16(p, 0); /* version 2.0, flags, stored */
    p = put16(p, 0), p = put16(p, 0x21);                /* time, date: 1980-01-01 */
    p = put32(p, crc), p = put32(p, size), p = put32(p, size);
    return put16(p, (unsigned)name_len);
}

dk_status dk_npz_encode(const dk_npz_entry *entries, int count, void **out, size_t *out_len,
                        dk_err *err)
{
    *out = NULL, *out_len = 0;
    if (count < 0 || count > DK_NPZ_MAX_ENTRIES)
        return dk_err_set(err, DK_ELIMIT, ".npz: %d arrays, at most %d", count, DK_NPZ_MAX_ENTRIES);
    void **npy = calloc(count ? count : 1, sizeof *npy);
    size_t *npy_len = calloc(count ? count : 1, sizeof *npy_len), total = END_SIZE;
    dk_status st = npy && npy_len ? DK_OK : dk_err_set(err, DK_ENOMEM, "out of memory");
    for (int i = 0; st == DK_OK && i < count; i++) {
        size_t n = strlen(entries[i].name) + 4;
        st = dk_npy_encode(&entries[i].array, false, &npy[i], &npy_len[i], err);
        total += LOCAL_SIZE + CENTRAL_SIZE + 2 * n + npy_len[i];
        if (st == DK_OK && (n > DK_NPZ_NAME_MAX + 4 || total > 0xFFFFFFFFu))
            st = dk_err_set(err, DK_ELIMIT, ".npz: '%.80s' makes the archive too large for zip32",
                            entries[i].name);
    }
    unsigned char *b = st == DK_OK ? malloc(total) : NULL;
    if (st == DK_OK && !b) st = dk_err_set(err, DK_ENOMEM, "out of memory for %zu bytes", total);
    size_t local = 0, central_at = 0;
    for (int i = 0; st == DK_OK && i < count; i++) /* local headers and data first */
        central_at += LOCAL_SIZE + strlen(entries[i].name) + 4 + npy_len[i];
    unsigned char *p = b, *c = b + central_at;
    for (int i = 0; st == DK_OK && i < count; i++) {
        size_t n = strlen(entries[i].name);
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), npy[i], (uInt)npy_len[i]);
        p = put32(p, SIG_LOCAL), p = put_common(p, crc, (uint32_t)npy_len[i], n + 4);
        p = put16(p, 0);
        memcpy(p, entries[i].name, n), memcpy(p + n, ".npy", 4), p += n + 4;
        memcpy(p, npy[i], npy_len[i]), p += npy_len[i];
        c = put32(c, SIG_CENTRAL), c = put16(c, 20),
        c = put_common(c, crc, (uint32_t)npy_len[i], n + 4);
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
    for (int i = 0; npy && i < count; i++)
        free(npy[i]);
    free(npy), free(npy_len);
    if (st) free(b);
    return st;
}
