/* npy.c: the .npy header (a Python dict literal after a magic string and a
 * length) parsed by a small strict reader of exactly the three keys numpy
 * writes, and arrays encoded/decoded in memory with byte swapping. */
#include "datasets/npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const char magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [DK_NPY_U1] = {"u1", 1}, [DK_NPY_I1] = {"i1", 1}, [DK_NPY_U2] = {"u2", 2},
    [DK_NPY_I2] = {"i2", 2}, [DK_NPY_U4] = {"u4", 4}, [DK_NPY_I4] = {"i4", 4},
    [DK_NPY_F2] = {"f2", 2}, [DK_NPY_F4] = {"f4", 4}, [DK_NPY_F8] = {"f8", 8},
};
#define DTYPE_COUNT ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t dk_npy_dtype_size(dk_npy_dtype t)
{
    return dtypes[t].size;
}
const char *dk_npy_dtype_name(dk_npy_dtype t)
{
    return dtypes[t].name;
}

dk_status dk_npy_dtype_parse(const char *name, dk_npy_dtype *out, bool *big_endian, dk_err *err)
{
    bool big = false;
    const char *p = name;
    if (*p == '<' || *p == '>' || *p == '|' || *p == '=') big = *p++ == '>';
    for (int i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(p, dtypes[i].name) != 0) continue;
        if (name[0] == '|' && dtypes[i].size != 1)
            return dk_err_set(err, DK_EFORMAT,
                              "dtype '%s': '|' (no byte order) needs a 1-byte type", name);
        *out = (dk_npy_dtype)i;
        if (big_endian) *big_endian = big && dtypes[i].size > 1;
        return DK_OK;
    }
    return dk_err_set(err, DK_EFORMAT,
                      "dtype '%.40s' is not supported (expected one of u1 i1 u2 i2 u4 i4 f2 f4 f8, "
                      "optionally with '<' or '>')",
                      name);
}

/* ---- the header dict ---- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool take(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes, into out (cap bytes). */
static dk_status take_string(cursor *c, char *out, size_t cap, const char *what, dk_err *err)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return dk_err_set(err, DK_EFORMAT, "npy header: expected a quoted %s", what);
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || *c->p == '\0' || n + 1 >= cap)
            return dk_err_set(err, DK_EFORMAT, "npy header: %s is too long or has escapes", what);
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return dk_err_set(err, DK_EFORMAT, "npy header: unterminated %s", what);
    c->p++;
    out[n] = '\0';
    return DK_OK;
}

static bool take_word(cursor *c, const char *word)
{
    skip_space(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
    c->p += n;
    return true;
}

/* (d0, d1, ...): Python tuple syntax, so one dimension needs its trailing comma. */
static dk_status take_shape(cursor *c, dk_npy_header *h, dk_err *err)
{
    if (!take(c, '(')) return dk_err_set(err, DK_EFORMAT, "npy header: 'shape' is not a tuple");
    h->rank = 0;
    bool comma = false;
    while (!take(c, ')')) {
        if (h->rank > 0 && !comma)
            return dk_err_set(err, DK_EFORMAT, "npy header: 'shape' needs commas between dims");
        skip_space(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return dk_err_set(
                err, DK_EFORMAT,
                "npy header: 'shape' holds something other than non-negative integers");
        if (h->rank == DK_NPY_MAX_RANK)
            return dk_err_set(err, DK_ELIMIT, "npy header: more than %d dimensions",
                              DK_NPY_MAX_RANK);
        uint64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c->p - '0', &v) ||
                v > SIZE_MAX)
                return dk_err_set(err, DK_ELIMIT, "npy header: a dimension overflows");
            c->p++;
        }
        h->shape[h->rank++] = (size_t)v;
        comma = take(c, ',');
    }
    if (h->rank == 1 && !comma)
        return dk_err_set(err, DK_EFORMAT, "npy header: 'shape' (n) is not a tuple; write (n,)");
    return DK_OK;
}

/* The sizes the shape implies; DK_ELIMIT when they overflow a size_t. */
static dk_status shape_sizes(dk_npy_header *h, dk_err *err)
{
    size_t n = 1;
    for (int i = 0; i < h->rank; i++)
        if (__builtin_mul_overflow(n, h->shape[i], &n))
            return dk_err_set(err, DK_ELIMIT, "npy: the shape's element count overflows");
    h->numel = n;
    if (__builtin_mul_overflow(n, dk_npy_dtype_size(h->dtype), &h->data_bytes) ||
        h->data_bytes > SIZE_MAX / 2)
        return dk_err_set(err, DK_ELIMIT, "npy: the shape's byte count overflows");
    return DK_OK;
}

static dk_status parse_entry(cursor *c, dk_npy_header *h, unsigned *seen, dk_err *err)
{
    char key[32], descr[48];
    dk_status st = take_string(c, key, sizeof key, "key", err);
    if (st) return st;
    if (!take(c, ':')) return dk_err_set(err, DK_EFORMAT, "npy header: no ':' after '%s'", key);
    unsigned bit;
    if (strcmp(key, "descr") == 0) {
        bit = 1;
        st = take_string(c, descr, sizeof descr, "'descr'", err);
        if (!st) st = dk_npy_dtype_parse(descr, &h->dtype, &h->big_endian, err);
        if (st) return dk_err_prefix(err, st, "npy header");
    } else if (strcmp(key, "fortran_order") == 0) {
        bit = 2;
        if (take_word(c, "True"))
            *seen |= 8;
        else if (!take_word(c, "False"))
            return dk_err_set(err, DK_EFORMAT, "npy header: 'fortran_order' is not True or False");
    } else if (strcmp(key, "shape") == 0) {
        bit = 4;
        if ((st = take_shape(c, h, err))) return st;
    } else {
        return dk_err_set(err, DK_EFORMAT,
                          "npy header: unexpected key '%s' (expected descr, fortran_order, shape)",
                          key);
    }
    if (*seen & bit) return dk_err_set(err, DK_EFORMAT, "npy header: key '%s' appears twice", key);
    *seen |= bit;
    return DK_OK;
}

static dk_status parse_dict(const char *text, size_t n, dk_npy_header *h, dk_err *err)
{
    cursor c = {text, text + n};
    unsigned seen = 0; /* bits: descr, fortran_order, shape, fortran_order is True */
    if (!take(&c, '{')) return dk_err_set(err, DK_EFORMAT, "npy header: not a dict");
    while (!take(&c, '}')) {
        dk_status st = parse_entry(&c, h, &seen, err);
        if (st) return st;
        if (!take(&c, ',')) {
            if (!take(&c, '}'))
                return dk_err_set(err, DK_EFORMAT, "npy header: expected ',' or '}'");
            break;
        }
    }
    skip_space(&c);
    if (c.p != c.end)
        return dk_err_set(err, DK_EFORMAT, "npy header: unexpected text after the dict");
    if ((seen & 7) != 7)
        return dk_err_set(err, DK_EFORMAT, "npy header: missing '%s'",
                          !(seen & 1)   ? "descr"
                          : !(seen & 2) ? "fortran_order"
                                        : "shape");
    if ((seen & 8) && h->rank > 1)
        return dk_err_set(err, DK_EFORMAT,
                          "npy: the array is in Fortran order, which is not supported; save "
                          "np.ascontiguousarray(a) instead");
    return shape_sizes(h, err);
}

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}
static uint32_t le32(const unsigned char *p)
{
    return le16(p) | le16(p + 2) << 16;
}

dk_status dk_npy_parse_header(const void *buf, size_t len, dk_npy_header *h, dk_err *err)
{
    const unsigned char *b = buf;
    memset(h, 0, sizeof *h);
    if (len < 10) return dk_err_set(err, DK_EFORMAT, "npy: %zu bytes, too short for a header", len);
    if (memcmp(b, magic, sizeof magic) != 0)
        return dk_err_set(err, DK_EFORMAT, "npy: bad magic (not a .npy file)");
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return dk_err_set(err, DK_EFORMAT, "npy: format version %u.%u is not 1.0, 2.0 or 3.0", b[6],
                          b[7]);
    h->version = b[6];
    size_t prefix = h->version == 1 ? 10 : 12;
    if (len < prefix) return dk_err_set(err, DK_EFORMAT, "npy: truncated header length");
    size_t hlen = h->version == 1 ? le16(b + 8) : le32(b + 8);
    if (hlen > DK_NPY_HEADER_MAX)
        return dk_err_set(err, DK_ELIMIT, "npy: header of %zu bytes exceeds the limit of %d", hlen,
                          DK_NPY_HEADER_MAX);
    if (len < prefix + hlen)
        return dk_err_set(err, DK_EFORMAT, "npy: truncated header (%zu of %zu bytes)", len - prefix,
                          hlen);
    dk_status st = parse_dict((const char *)b + prefix, hlen, h, err);
    if (st) return st;
    h->data_offset = prefix + hlen;
    return DK_OK;
}

dk_status dk_npy_format_header(dk_npy_header *h, char *buf, size_t cap, size_t *len, dk_err *err)
{
    if (h->rank < 0 || h->rank > DK_NPY_MAX_RANK)
        return dk_err_set(err, DK_EINVAL, "npy: rank %d is not in 0..%d", h->rank, DK_NPY_MAX_RANK);
    dk_status st = shape_sizes(h, err);
    if (st) return st;
    char dict[DK_NPY_PREFIX_CAP];
    bool big = h->big_endian && dk_npy_dtype_size(h->dtype) > 1;
    int n = snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     dk_npy_dtype_size(h->dtype) == 1 ? '|'
                     : big                            ? '>'
                                                      : '<',
                     dk_npy_dtype_name(h->dtype));
    for (int i = 0; i < h->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%zu", i ? ", " : "", h->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", h->rank == 1 ? "," : "");
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64; /* + the closing newline */
    if (total > cap)
        return dk_err_set(err, DK_EINVAL, "npy: header buffer of %zu bytes too small", cap);
    memcpy(buf, magic, sizeof magic);
    buf[6] = 1, buf[7] = 0;
    size_t hlen = total - 10;
    buf[8] = (char)(hlen & 0xff), buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
    buf[total - 1] = '\n';
    h->big_endian = big;
    h->version = 1;
    h->data_offset = total;
    *len = total;
    return DK_OK;
}

/* Reverse the bytes of each size-byte element of data[0..n). */
static void swap_bytes(void *data, size_t n, size_t size)
{
    unsigned char *p = data;
    if (size == 1) return;
    for (size_t i = 0; i < n; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b], p[b] = t;
        }
}

dk_status dk_npy_decode(const void *buf, size_t len, size_t max_bytes, dk_npy_array *out,
                        dk_err *err)
{
    memset(out, 0, sizeof *out);
    dk_npy_header h;
    dk_status st = dk_npy_parse_header(buf, len, &h, err);
    if (st) return st;
    size_t have = len - h.data_offset;
    if (have != h.data_bytes)
        return dk_err_set(
            err, DK_EFORMAT,
            "npy: the header declares %zu data bytes (%s, %zu elements) but %zu follow",
            h.data_bytes, dk_npy_dtype_name(h.dtype), h.numel, have);
    if (max_bytes && h.data_bytes > max_bytes)
        return dk_err_set(err, DK_ELIMIT, "npy: %zu data bytes exceed the limit of %zu",
                          h.data_bytes, max_bytes);
    void *data = malloc(h.data_bytes ? h.data_bytes : 1);
    if (!data) return dk_err_set(err, DK_ENOMEM, "npy: cannot allocate %zu bytes", h.data_bytes);
    memcpy(data, (const char *)buf + h.data_offset, h.data_bytes);
    if (h.big_endian) swap_bytes(data, h.numel, dk_npy_dtype_size(h.dtype));
    out->dtype = h.dtype, out->rank = h.rank, out->numel = h.numel, out->data = data;
    memcpy(out->shape, h.shape, sizeof h.shape);
    return DK_OK;
}

static void format_shape(const dk_npy_array *a, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "(");
    for (int i = 0; i < a->rank && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%zu", i ? ", " : "", a->shape[i]);
    if ((size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "%s)", a->rank == 1 ? "," : "");
}

dk_status dk_npy_expect(const dk_npy_array *a, dk_npy_dtype dtype, int rank, const char *what,
                        dk_err *err)
{
    char shape[200];
    format_shape(a, shape, sizeof shape);
    if (a->dtype != dtype)
        return dk_err_set(err, DK_EMISMATCH, "%s: dtype %s, expected %s (shape %s)", what,
                          dk_npy_dtype_name(a->dtype), dk_npy_dtype_name(dtype), shape);
    if (a->rank != rank)
        return dk_err_set(err, DK_EMISMATCH, "%s: %d dimensions %s, expected %d", what, a->rank,
                          shape, rank);
    return DK_OK;
}

dk_status dk_npy_encode(const dk_npy_array *a, bool big_endian, void **out, size_t *out_len,
                        dk_err *err)
{
    *out = NULL, *out_len = 0;
    dk_npy_header h = {.dtype = a->dtype, .big_endian = big_endian, .rank = a->rank};
    if (a->rank < 0 || a->rank > DK_NPY_MAX_RANK)
        return dk_err_set(err, DK_EINVAL, "npy: rank %d is not in 0..%d", a->rank, DK_NPY_MAX_RANK);
    memcpy(h.shape, a->shape, sizeof h.shape);
    char prefix[DK_NPY_PREFIX_CAP];
    size_t plen;
    dk_status st = dk_npy_format_header(&h, prefix, sizeof prefix, &plen, err);
    if (st) return st;
    if (h.numel != a->numel)
        return dk_err_set(err, DK_EINVAL, "npy: numel %zu does not match the shape's %zu", a->numel,
                          h.numel);
    char *buf = malloc(plen + h.data_bytes);
    if (!buf)
        return dk_err_set(err, DK_ENOMEM, "npy: cannot allocate %zu bytes", plen + h.data_bytes);
    memcpy(buf, prefix, plen);
    if (h.data_bytes) memcpy(buf + plen, a->data, h.data_bytes);
    if (h.big_endian) swap_bytes(buf + plen, h.numel, dk_npy_dtype_size(h.dtype));
    *out = buf, *out_len = plen + h.data_bytes;
    return DK_OK;
}

void dk_npy_array_free(dk_npy_array *a)
{
    if (!a) return;
    free(a->data);
    a->data = NULL;
}
