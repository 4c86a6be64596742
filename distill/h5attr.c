/* h5attr.c: attributes over HDF5 (see h5attr.h), read through h5fence's checks. */
#include "distill/h5attr.h"
#include "distill/h5fence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- attributes ---------------------------------------------------------------- */

bool dk_h5_attr_exists(hid_t obj, const char *name)
{
    return H5Aexists(obj, name) > 0;
}

/* Create (replacing) attribute name on obj and write buf with memory type mtype. */
static dk_status write_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                            const void *buf, dk_err *err)
{
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return dk_h5_fail(err, DK_EIO, obj, "cannot replace attribute '%s'", name);
    hid_t attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) return dk_h5_fail(err, DK_EIO, obj, "cannot create attribute '%s'", name);
    dk_status status = DK_OK;
    if (H5Awrite(attr, mtype, buf) < 0)
        status = dk_h5_fail(err, DK_EIO, obj, "cannot write attribute '%s'", name);
    H5Aclose(attr);
    return status;
}

/* Fixed-length UTF-8 of `size` bytes, NUL-padded. We write only these: variable-
 * length strings live in HDF5's global heap, which has no checksum, and HDF5
 * 1.10 overruns its buffers reading a corrupted one (seen under AddressSanitizer). */
static hid_t fixed_string_type(size_t size)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size ? size : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

dk_status dk_h5_attr_write_string(hid_t obj, const char *name, const char *value, dk_err *err)
{
    size_t len = strlen(value);
    hid_t type = fixed_string_type(len), space = H5Screate(H5S_SCALAR);
    dk_status status = write_attr(obj, name, type, type, space, len ? value : "", err);
    H5Sclose(space);
    H5Tclose(type);
    return status;
}

dk_status dk_h5_attr_write_strings(hid_t obj, const char *name, const char *const *values,
                                   int count, dk_err *err)
{
    hsize_t n = (hsize_t)(count < 0 ? 0 : count);
    size_t width = 1;
    for (hsize_t i = 0; i < n; i++)
        if (strlen(values[i]) > width) width = strlen(values[i]);
    char *packed = calloc(n ? n : 1, width);
    if (!packed) return dk_err_set(err, DK_ENOMEM, "out of memory writing attribute '%s'", name);
    for (hsize_t i = 0; i < n; i++)
        memcpy(packed + i * width, values[i], strlen(values[i]));
    hid_t type = fixed_string_type(width), space = H5Screate_simple(1, &n, NULL);
    dk_status status = write_attr(obj, name, type, type, space, packed, err);
    H5Sclose(space);
    H5Tclose(type);
    free(packed);
    return status;
}

dk_status dk_h5_attr_write_int(hid_t obj, const char *name, int64_t value, dk_err *err)
{
    hid_t space = H5Screate(H5S_SCALAR);
    dk_status status = write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, &value, err);
    H5Sclose(space);
    return status;
}

dk_status dk_h5_attr_write_double(hid_t obj, const char *name, double value, dk_err *err)
{
    hid_t space = H5Screate(H5S_SCALAR);
    dk_status status = write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, &value, err);
    H5Sclose(space);
    return status;
}

dk_status dk_h5_attr_write_doubles(hid_t obj, const char *name, const double *values, int count,
                                   int rows, dk_err *err)
{
    if (count < 0 || (rows > 0 && count % rows != 0))
        return dk_err_set(err, DK_EINVAL, "attribute '%s': %d values do not make %d rows", name,
                          count, rows);
    hsize_t dims[2] = {rows > 0 ? (hsize_t)rows : (hsize_t)count,
                       rows > 0 ? (hsize_t)(count / rows) : 1};
    hid_t space = H5Screate_simple(rows > 0 ? 2 : 1, dims, NULL);
    dk_status status = write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, values, err);
    H5Sclose(space);
    return status;
}

/* An open attribute with its type and element count, for the readers below. */
typedef struct attr_view {
    hid_t attr, type, space;
    hssize_t count;
    H5T_class_t cls;
} attr_view;

static void attr_view_close(attr_view *a)
{
    if (a->space >= 0) H5Sclose(a->space);
    if (a->type >= 0) H5Tclose(a->type);
    if (a->attr >= 0) H5Aclose(a->attr);
}

static dk_status attr_view_open(hid_t obj, const char *name, attr_view *a, dk_err *err)
{
    char where[400];
    *a = (attr_view){H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, H5T_NO_CLASS};
    if (H5Aexists(obj, name) <= 0)
        return dk_err_set(err, DK_ENOTFOUND, "%s: attribute '%s' is missing",
                          dk_h5_where(obj, where, sizeof where), name);
    a->attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (a->attr >= 0) a->type = H5Aget_type(a->attr);
    if (a->attr >= 0) a->space = H5Aget_space(a->attr);
    a->count = a->space >= 0 ? H5Sget_simple_extent_npoints(a->space) : -1;
    if (a->attr < 0 || a->type < 0 || a->count < 0) {
        attr_view_close(a);
        return dk_h5_fail(err, DK_EFORMAT, obj, "attribute '%s' is unreadable", name);
    }
    dk_status status = dk_h5_check_attr(obj, name, a->type, a->space, err);
    if (status != DK_OK) {
        attr_view_close(a);
        return status;
    }
    a->cls = H5Tget_class(a->type);
    return DK_OK;
}

static dk_status attr_kind_error(hid_t obj, const char *name, attr_view *a, const char *expected,
                                 dk_err *err)
{
    char where[400], desc[64];
    dk_err_set(err, DK_EFORMAT, "%s: attribute '%s' is %lld x %s, expected %s",
               dk_h5_where(obj, where, sizeof where), name, (long long)a->count,
               dk_h5_type_str(a->type, desc, sizeof desc), expected);
    attr_view_close(a);
    return DK_EFORMAT;
}

/* Read all string elements of an open string attribute into a NULL-terminated array. */
static dk_status read_string_elems(hid_t obj, const char *name, attr_view *a, char ***out,
                                   dk_err *err)
{
    size_t n = (size_t)a->count;
    char **list = calloc(n + 1, sizeof *list);
    if (!list) return dk_err_set(err, DK_ENOMEM, "out of memory reading attribute '%s'", name);
    /* Fixed-length only: attr_view_open refused variable-length strings. */
    size_t size = H5Tget_size(a->type);
    char *raw = malloc(n * size + 1);
    herr_t ok = raw ? H5Aread(a->attr, a->type, raw) : -1;
    for (size_t i = 0; ok >= 0 && i < n; i++) {
        size_t len = strnlen(raw + i * size, size);
        while (len > 0 && raw[i * size + len - 1] == ' ')
            len--; /* space-padded strings */
        list[i] = strndup(raw + i * size, len);
    }
    free(raw);
    for (size_t i = 0; ok >= 0 && i < n; i++)
        if (!list[i]) ok = -1;
    if (ok < 0) {
        dk_h5_free_strings(list);
        return dk_h5_fail(err, DK_EFORMAT, obj, "cannot read attribute '%s'", name);
    }
    *out = list;
    return DK_OK;
}

dk_status dk_h5_attr_read_strings(hid_t obj, const char *name, char ***values, int *count,
                                  dk_err *err)
{
    attr_view a;
    *values = NULL;
    *count = 0;
    dk_status status = attr_view_open(obj, name, &a, err);
    if (status != DK_OK) return status;
    if (a.cls != H5T_STRING) return attr_kind_error(obj, name, &a, "strings", err);
    status = read_string_elems(obj, name, &a, values, err);
    if (status == DK_OK) *count = (int)a.count;
    attr_view_close(&a);
    return status;
}

dk_status dk_h5_attr_read_string(hid_t obj, const char *name, char **value, dk_err *err)
{
    attr_view a;
    *value = NULL;
    dk_status status = attr_view_open(obj, name, &a, err);
    if (status != DK_OK) return status;
    if (a.cls != H5T_STRING || a.count != 1)
        return attr_kind_error(obj, name, &a, "one string", err);
    char **list = NULL;
    status = read_string_elems(obj, name, &a, &list, err);
    attr_view_close(&a);
    if (status != DK_OK) return status;
    *value = list[0];
    free(list);
    return DK_OK;
}

dk_status dk_h5_attr_read_string_buf(hid_t obj, const char *name, char *buf, size_t cap,
                                     dk_err *err)
{
    char *value = NULL;
    dk_status status = dk_h5_attr_read_string(obj, name, &value, err);
    if (status != DK_OK) return status;
    size_t len = strlen(value);
    if (len >= cap) {
        char where[400];
        status = dk_err_set(err, DK_ELIMIT, "%s: attribute '%s' is %zu bytes long (limit %zu)",
                            dk_h5_where(obj, where, sizeof where), name, len, cap - 1);
    } else {
        memcpy(buf, value, len + 1);
    }
    free(value);
    return status;
}

/* Read exactly count numbers of class int or float, converted to mtype. */
static dk_status read_numbers(hid_t obj, const char *name, hid_t mtype, bool allow_float, void *out,
                              hssize_t count, dk_err *err)
{
    attr_view a;
    dk_status status = attr_view_open(obj, name, &a, err);
    if (status != DK_OK) return status;
    bool numeric = a.cls == H5T_INTEGER || (allow_float && a.cls == H5T_FLOAT);
    if (!numeric || a.count != count) {
        char expected[64];
        snprintf(expected, sizeof expected, "%lld x %s", (long long)count,
                 allow_float ? "number" : "integer");
        return attr_kind_error(obj, name, &a, expected, err);
    }
    if (H5Aread(a.attr, mtype, out) < 0)
        status = dk_h5_fail(err, DK_EFORMAT, obj, "cannot read attribute '%s'", name);
    attr_view_close(&a);
    return status;
}

dk_status dk_h5_attr_read_int(hid_t obj, const char *name, int64_t *value, dk_err *err)
{
    return read_numbers(obj, name, H5T_NATIVE_INT64, false, value, 1, err);
}

dk_status dk_h5_attr_read_double(hid_t obj, const char *name, double *value, dk_err *err)
{
    return read_numbers(obj, name, H5T_NATIVE_DOUBLE, true, value, 1, err);
}

dk_status dk_h5_attr_read_doubles(hid_t obj, const char *name, double *values, int count,
                                  dk_err *err)
{
    return read_numbers(obj, name, H5T_NATIVE_DOUBLE, true, values, count, err);
}
