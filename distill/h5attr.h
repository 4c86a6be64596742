/* h5attr.h: attributes of HDF5 files, groups and datasets, with the messages and
 * fences of h5file.h. */
#ifndef DK_H5ATTR_H
#define DK_H5ATTR_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/h5file.h"

/* Strings are written as fixed-length, NUL-padded UTF-8 (h5py reads them as
 * bytes: .decode()), never variable-length (unchecksummed global heap), and
 * reads refuse variable-length ones (distill/h5fence.h). Numbers are written as
 * int64 / float64 and read with conversion from any integer / float type. `obj` is
 * a file, group or dataset; writing replaces an existing attribute of that name. */

bool dk_h5_attr_exists(hid_t obj, const char *name);

dk_status dk_h5_attr_write_string(hid_t obj, const char *name, const char *value, dk_err *err);
dk_status dk_h5_attr_write_strings(hid_t obj, const char *name, const char *const *values,
                                   int count, dk_err *err);
dk_status dk_h5_attr_write_int(hid_t obj, const char *name, int64_t value, dk_err *err);
dk_status dk_h5_attr_write_double(hid_t obj, const char *name, double value, dk_err *err);
/* A 1-D (rows == 0) or rows x (count/rows) 2-D array of doubles. */
dk_status dk_h5_attr_write_doubles(hid_t obj, const char *name, const double *values, int count,
                                   int rows, dk_err *err);

/* A scalar (or 1-element) string; caller frees *value with free(). */
dk_status dk_h5_attr_read_string(hid_t obj, const char *name, char **value, dk_err *err);
/* Same, into buf; DK_ELIMIT if it does not fit in cap bytes (including the NUL). */
dk_status dk_h5_attr_read_string_buf(hid_t obj, const char *name, char *buf, size_t cap,
                                     dk_err *err);
/* An array of strings, NULL-terminated; caller frees with dk_h5_free_strings. */
dk_status dk_h5_attr_read_strings(hid_t obj, const char *name, char ***values, int *count,
                                  dk_err *err);
dk_status dk_h5_attr_read_int(hid_t obj, const char *name, int64_t *value, dk_err *err);
dk_status dk_h5_attr_read_double(hid_t obj, const char *name, double *value, dk_err *err);
/* Exactly `count` numbers, whatever the attribute's shape (3x3 and 9 both fit 9). */
dk_status dk_h5_attr_read_doubles(hid_t obj, const char *name, double *values, int count,
                                  dk_err *err);

#endif
