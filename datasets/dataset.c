/* dataset.c: the HDF5 dataset file (docs/formats.md, "Dataset"): opening and
 * validating it, reading volumes, and writing a new one atomically. The HDF5
 * mechanics (messages, atomic files, attributes) live in distill/h5file.c and
 * distill/h5attr.c. */
#include "datasets/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/h5attr.h"
#include "distill/h5file.h"

#define FORMAT_NAME "dualkd-dataset"
/* Labels are read in blocks of about this many bytes while open validates them. */
#define LABEL_SCAN_BYTES (4u << 20)
/* gzip level for labels: level 1 is within a few % of level 4 in size on label
 * maps (long runs of one class) and reads and writes fastest (docs/formats.md). */
#define LABEL_GZIP_LEVEL 1

struct dk_dataset {
    hid_t file;
    char *path;
    dk_classes classes;
    int count;
    dk_volume_info *volumes;
};

struct dk_dataset_writer {
    dk_h5_writer h5;
    hid_t volumes; /* the /volumes group */
    dk_classes classes;
};

static const char *const known_splits[] = {"",           "labelled", "unlabelled",
                                           "validation", "test",     "train"};

static bool split_known(const char *split)
{
    for (size_t i = 0; i < sizeof known_splits / sizeof *known_splits; i++)
        if (strcmp(split, known_splits[i]) == 0) return true;
    return false;
}

static bool all_finite(const double *x, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* Checks shared by writing and reading a volume's grid. what names the volume. */
static dk_status check_grid(const char *what, const double spacing[3], const double origin[3],
                            const double direction[9], dk_err *err)
{
    for (int a = 0; a < 3; a++)
        if (!(spacing[a] > 0) || !isfinite(spacing[a]))
            return dk_err_set(err, DK_EFORMAT,
                              "%s: spacing (%g, %g, %g) mm must be finite and positive", what,
                              spacing[0], spacing[1], spacing[2]);
    if (!all_finite(origin, 3))
        return dk_err_set(err, DK_EFORMAT, "%s: origin is not finite", what);
    if (!all_finite(direction, 9))
        return dk_err_set(err, DK_EFORMAT, "%s: direction is not finite", what);
    return DK_OK;
}

/* First label value >= classes in label[0..n), with its index; false if none. */
static bool find_bad_label(const uint8_t *label, size_t n, int classes, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (label[i] >= classes) {
            *at = i;
            return true;
        }
    return false;
}

static dk_status bad_label_error(const char *what, const dk_volume_info *v, int value, size_t voxel,
                                 int classes, dk_err *err)
{
    size_t plane = (size_t)v->dims[1] * v->dims[2];
    return dk_err_set(err, DK_EFORMAT,
                      "%s: label id %d at voxel (z %zu, y %zu, x %zu) is not a class "
                      "(the dataset has %d classes, ids 0..%d)",
                      what, value, voxel / plane, voxel % plane / v->dims[2], voxel % v->dims[2],
                      classes, classes - 1);
}

/* ---- reading ------------------------------------------------------------------- */

static dk_status read_root(dk_dataset *ds, dk_err *err)
{
    dk_status st;
    char format[64];
    if (!dk_h5_attr_exists(ds->file, "format"))
        return dk_err_set(err, DK_EFORMAT,
                          "'%s' is an HDF5 file but not a dualkd dataset (no 'format' attribute)",
                          ds->path);
    dk_status status = dk_h5_attr_read_string_buf(ds->file, "format", format, sizeof format, err);
    if (status != DK_OK) return status;
    if (strcmp(format, FORMAT_NAME) != 0)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s' is not a dualkd dataset (format '%s', expected '%s')", ds->path,
                          format, FORMAT_NAME);
    int64_t version;
    if ((st = dk_h5_attr_read_int(ds->file, "format_version", &version, err))) return st;
    if (version > DK_DATASET_FORMAT_VERSION)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s' is dataset format version %lld, newer than this dualkd reads "
                          "(up to %d): upgrade dualkd",
                          ds->path, (long long)version, DK_DATASET_FORMAT_VERSION);
    if (version < 1)
        return dk_err_set(err, DK_EFORMAT, "'%s': format_version %lld is not a version", ds->path,
                          (long long)version);
    char **names = NULL;
    int count = 0;
    if ((st = dk_h5_attr_read_strings(ds->file, "classes", &names, &count, err))) return st;
    status = DK_OK;
    if (count < 1 || count > DK_MAX_CLASSES)
        status = dk_err_set(err, DK_EFORMAT, "'%s': %d class names, expected 1..%d", ds->path,
                            count, DK_MAX_CLASSES);
    for (int i = 0; status == DK_OK && i < count; i++) {
        if (!names[i][0] || strlen(names[i]) >= sizeof ds->classes.names[i])
            status = dk_err_set(err, DK_EFORMAT, "'%s': class %d name '%s' is empty or too long",
                                ds->path, i, names[i]);
        else
            snprintf(ds->classes.names[i], sizeof ds->classes.names[i], "%s", names[i]);
    }
    ds->classes.count = count;
    dk_h5_free_strings(names);
    return status;
}

/* Read origin/direction (optional: zero / identity) and spacing (required). */
static dk_status read_grid_attrs(hid_t group, const char *what, double spacing[3], double origin[3],
                                 double direction[9], dk_err *err)
{
    dk_status st;
    memset(origin, 0, 3 * sizeof *origin);
    memset(direction, 0, 9 * sizeof *direction);
    direction[0] = direction[4] = direction[8] = 1.0;
    if ((st = dk_h5_attr_read_doubles(group, "spacing", spacing, 3, err))) return st;
    if (dk_h5_attr_exists(group, "origin") &&
        (st = dk_h5_attr_read_doubles(group, "origin", origin, 3, err)))
        return st;
    if (dk_h5_attr_exists(group, "direction") &&
        (st = dk_h5_attr_read_doubles(group, "direction", direction, 9, err)))
        return st;
    return check_grid(what, spacing, origin, direction, err);
}

/* Check and count the label ids of one slab (zs slices x ys rows at z, y). */
static dk_status scan_slab(const uint8_t *block, size_t z, size_t y, size_t zs, size_t ys,
                           const char *what, dk_volume_info *v, int classes, dk_err *err)
{
    size_t row = (size_t)v->dims[2], plane = row * (size_t)v->dims[1], at;
    if (find_bad_label(block, zs * ys * row, classes, &at)) {
        size_t voxel = (z + at / (ys * row)) * plane + (y + at / row % ys) * row + at % row;
        return bad_label_error(what, v, block[at], voxel, classes, err);
    }
    for (size_t i = 0; i < zs * ys * row; i++)
        v->class_voxels[block[i]]++;
    return DK_OK;
}

/* Read the label in slabs of at most LABEL_SCAN_BYTES (whole z-slices when one
 * fits, else rows of a slice: a crafted file may declare a 65535 x 65535 slice),
 * checking ids and counting classes. */
static dk_status scan_label(hid_t group, const char *what, dk_volume_info *v, int classes,
                            dk_err *err)
{
    size_t nz = (size_t)v->dims[0], ny = (size_t)v->dims[1], row = (size_t)v->dims[2];
    size_t zs = 1, ys = ny;
    if (ny * row <= LABEL_SCAN_BYTES)
        zs = LABEL_SCAN_BYTES / (ny * row) < nz ? LABEL_SCAN_BYTES / (ny * row) : nz;
    else
        ys = LABEL_SCAN_BYTES / row ? LABEL_SCAN_BYTES / row : 1;
    uint8_t *block = malloc(zs * ys * row);
    if (!block) return dk_err_set(err, DK_ENOMEM, "%s: no memory to check the label", what);
    dk_status status = DK_OK;
    for (size_t z = 0; status == DK_OK && z < nz; z += zs)
        for (size_t y = 0; status == DK_OK && y < ny; y += ys) {
            hsize_t start[3] = {z, y, 0};
            hsize_t count[3] = {z + zs > nz ? nz - z : zs, y + ys > ny ? ny - y : ys, row};
            status = dk_h5_read_block(group, "label", DK_H5_UINT8, 3, start, count, block, err);
            if (status == DK_OK)
                status = scan_slab(block, z, y, count[0], count[1], what, v, classes, err);
        }
    free(block);
    return status;
}

static dk_status read_shape(hid_t group, const char *what, dk_volume_info *v, dk_err *err)
{
    dk_status st;
    int rank;
    hsize_t dims[DK_H5_MAX_RANK];
    char shape[160];
    if ((st = dk_h5_array_shape(group, "image", DK_H5_FLOAT32, &rank, dims, err))) return st;
    bool ok = rank == 3;
    for (int a = 0; ok && a < 3; a++)
        ok = dims[a] >= 1 && dims[a] <= 65535;
    if (!ok)
        return dk_err_set(err, DK_EFORMAT, "%s: image shape %s is not 3-D [z][y][x] of 1..65535",
                          what, dk_h5_shape_str(rank, dims, shape, sizeof shape));
    if (dims[0] * dims[1] * dims[2] > dk_volume_max_voxels())
        return dk_err_set(err, DK_ELIMIT,
                          "%s: image shape %s is %llu voxels, over the limit of %zu per volume "
                          "(docs/formats.md, \"Limits\")",
                          what, dk_h5_shape_str(rank, dims, shape, sizeof shape),
                          (unsigned long long)(dims[0] * dims[1] * dims[2]),
                          dk_volume_max_voxels());
    for (int a = 0; a < 3; a++)
        v->dims[a] = (int)dims[a];
    v->has_label = dk_h5_exists(group, "label");
    if (!v->has_label) return DK_OK;
    int label_rank;
    hsize_t label_dims[DK_H5_MAX_RANK];
    if ((st = dk_h5_array_shape(group, "label", DK_H5_UINT8, &label_rank, label_dims, err)))
        return st;
    if (label_rank != 3 || memcmp(label_dims, dims, 3 * sizeof *dims) != 0) {
        char shape2[160];
        return dk_err_set(err, DK_EMISMATCH, "%s: label shape %s differs from image shape %s", what,
                          dk_h5_shape_str(label_rank, label_dims, shape2, sizeof shape2),
                          dk_h5_shape_str(3, dims, shape, sizeof shape));
    }
    return DK_OK;
}

static dk_status read_volume_info(dk_dataset *ds, hid_t volumes, const char *id, dk_volume_info *v,
                                  dk_err *err)
{
    dk_status st;
    char what[400];
    snprintf(what, sizeof what, "'%s': volume '%s'", ds->path, id);
    if (!dk_volume_id_valid(id))
        return dk_err_set(err, DK_EFORMAT, "%s: not a valid volume id", what);
    snprintf(v->id, sizeof v->id, "%s", id);
    hid_t group;
    if ((st = dk_h5_group_open(volumes, id, &group, err))) return st;
    double origin[3], direction[9];
    dk_status status = read_shape(group, what, v, err);
    if (status == DK_OK) status = read_grid_attrs(group, what, v->spacing, origin, direction, err);
    if (status == DK_OK && dk_h5_attr_exists(group, "split"))
        status = dk_h5_attr_read_string_buf(group, "split", v->split, sizeof v->split, err);
    if (status == DK_OK && !split_known(v->split))
        status = dk_err_set(err, DK_EFORMAT,
                            "%s: split '%s' is not one of labelled, unlabelled, validation, "
                            "test, train or empty",
                            what, v->split);
    if (status == DK_OK && v->has_label)
        status = scan_label(group, what, v, ds->classes.count, err);
    H5Gclose(group);
    return status;
}

static dk_status read_volumes(dk_dataset *ds, dk_err *err)
{
    dk_status st;
    hid_t volumes;
    if ((st = dk_h5_group_open(ds->file, "volumes", &volumes, err))) return st;
    char **ids = NULL;
    dk_status status = dk_h5_group_list(volumes, &ids, &ds->count, err);
    if (status == DK_OK && ds->count > 0) {
        ds->volumes = calloc((size_t)ds->count, sizeof *ds->volumes);
        if (!ds->volumes) status = dk_err_set(err, DK_ENOMEM, "'%s': too many volumes", ds->path);
    }
    for (int i = 0; status == DK_OK && i < ds->count; i++)
        status = read_volume_info(ds, volumes, ids[i], &ds->volumes[i], err);
    dk_h5_free_strings(ids);
    H5Gclose(volumes);
    return status;
}

dk_dataset *dk_dataset_open(const char *path, dk_err *err)
{
    dk_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        dk_err_set(err, DK_ENOMEM, "out of memory opening '%s'", path);
        return NULL;
    }
    ds->file = H5I_INVALID_HID;
    ds->path = strdup(path);
    dk_status status = ds->path ? dk_h5_open_read(path, &ds->file, err)
                                : dk_err_set(err, DK_ENOMEM, "out of memory opening '%s'", path);
    if (status == DK_OK) status = read_root(ds, err);
    if (status == DK_OK) status = read_volumes(ds, err);
    if (status != DK_OK) {
        dk_dataset_close(ds);
        return NULL;
    }
    return ds;
}

void dk_dataset_close(dk_dataset *ds)
{
    if (!ds) return;
    dk_h5_close_file(ds->file);
    free(ds->volumes);
    free(ds->path);
    free(ds);
}

const dk_classes *dk_dataset_classes(const dk_dataset *ds)
{
    return &ds->classes;
}

int dk_dataset_count(const dk_dataset *ds)
{
    return ds->count;
}

const char *dk_dataset_volume_id(const dk_dataset *ds, int i)
{
    return ds->volumes[i].id;
}

const char *dk_dataset_volume_split(const dk_dataset *ds, int i)
{
    return ds->volumes[i].split;
}

const dk_volume_info *dk_dataset_info(const dk_dataset *ds, int i)
{
    return &ds->volumes[i];
}

int dk_dataset_find(const dk_dataset *ds, const char *id)
{
    for (int i = 0; i < ds->count; i++)
        if (strcmp(ds->volumes[i].id, id) == 0) return i;
    return -1;
}

static dk_status read_volume_data(dk_dataset *ds, hid_t group, const dk_volume_info *info,
                                  dk_volume *v, dk_err *err)
{
    dk_status st;
    char what[400];
    snprintf(what, sizeof what, "'%s': volume '%s'", ds->path, info->id);
    hsize_t dims[3] = {(hsize_t)info->dims[0], (hsize_t)info->dims[1], (hsize_t)info->dims[2]};
    if ((st = dk_h5_read_array(group, "image", DK_H5_FLOAT32, 3, dims, v->image, err))) return st;
    if (info->has_label &&
        (st = dk_h5_read_array(group, "label", DK_H5_UINT8, 3, dims, v->label, err)))
        return st;
    size_t at;
    /* Open checked the ids already; this re-check is a byte compare, and it keeps
     * a file rewritten under us from handing out-of-range ids to the trainer. */
    if (info->has_label && find_bad_label(v->label, dk_volume_voxels(v), ds->classes.count, &at))
        return bad_label_error(what, info, v->label[at], at, ds->classes.count, err);
    if ((st = read_grid_attrs(group, what, v->spacing, v->origin, v->direction, err))) return st;
    if (dk_h5_attr_exists(group, "source")) {
        char *source = NULL;
        if ((st = dk_h5_attr_read_string(group, "source", &source, err))) return st;
        snprintf(v->source, sizeof v->source, "%s", source); /* long paths are cut, by design */
        free(source);
    }
    snprintf(v->split, sizeof v->split, "%s", info->split);
    return DK_OK;
}

dk_status dk_dataset_read(dk_dataset *ds, int i, dk_volume *v, dk_err *err)
{
    dk_status st;
    *v = (dk_volume){0};
    if (i < 0 || i >= ds->count)
        return dk_err_set(err, DK_EINVAL, "'%s': volume index %d not in 0..%d", ds->path, i,
                          ds->count - 1);
    const dk_volume_info *info = &ds->volumes[i];
    if ((st = dk_volume_alloc(v, info->id, info->dims, info->has_label, err))) return st;
    hid_t volumes, group = H5I_INVALID_HID;
    dk_status status = dk_h5_group_open(ds->file, "volumes", &volumes, err);
    if (status == DK_OK) status = dk_h5_group_open(volumes, info->id, &group, err);
    if (status == DK_OK) status = read_volume_data(ds, group, info, v, err);
    if (group >= 0) H5Gclose(group);
    if (volumes >= 0) H5Gclose(volumes);
    if (status != DK_OK) dk_volume_release(v);
    return status;
}

/* ---- writing ------------------------------------------------------------------- */

static dk_status check_classes(const char *path, const dk_classes *c, dk_err *err)
{
    if (c->count < 1 || c->count > DK_MAX_CLASSES)
        return dk_err_set(err, DK_EINVAL, "writing '%s': %d classes, expected 1..%d", path,
                          c->count, DK_MAX_CLASSES);
    for (int i = 0; i < c->count; i++) {
        size_t len = strnlen(c->names[i], sizeof c->names[i]);
        if (len == 0 || len == sizeof c->names[i])
            return dk_err_set(err, DK_EINVAL,
                              "writing '%s': class %d has an empty or unterminated name", path, i);
    }
    return DK_OK;
}

dk_dataset_writer *dk_dataset_writer_open(const char *path, const dk_classes *classes, dk_err *err)
{
    if (check_classes(path, classes, err)) return NULL;
    dk_dataset_writer *w = calloc(1, sizeof *w);
    if (!w) {
        dk_err_set(err, DK_ENOMEM, "out of memory writing '%s'", path);
        return NULL;
    }
    w->volumes = H5I_INVALID_HID;
    w->classes = *classes;
    const char *names[DK_MAX_CLASSES];
    for (int i = 0; i < classes->count; i++)
        names[i] = classes->names[i];
    dk_status status = dk_h5_create(path, &w->h5, err);
    if (status == DK_OK) status = dk_h5_attr_write_string(w->h5.file, "format", FORMAT_NAME, err);
    if (status == DK_OK)
        status = dk_h5_attr_write_int(w->h5.file, "format_version", DK_DATASET_FORMAT_VERSION, err);
    if (status == DK_OK)
        status = dk_h5_attr_write_strings(w->h5.file, "classes", names, classes->count, err);
    if (status == DK_OK) status = dk_h5_group_create(w->h5.file, "volumes", &w->volumes, err);
    if (status != DK_OK) {
        dk_dataset_writer_abort(w);
        return NULL;
    }
    return w;
}

static dk_status check_volume(const dk_dataset_writer *w, const dk_volume *v, dk_err *err)
{
    char what[400];
    snprintf(what, sizeof what, "writing '%s': volume '%s'", w->h5.path, v->id);
    if (!dk_volume_id_valid(v->id))
        return dk_err_set(err, DK_EINVAL, "%s: id is not 1-63 of [A-Za-z0-9._-]", what);
    if (dk_h5_exists(w->volumes, v->id))
        return dk_err_set(err, DK_EINVAL, "%s: a volume with this id was already added", what);
    if (v->dims[0] < 1 || v->dims[1] < 1 || v->dims[2] < 1 || v->dims[0] > 65535 ||
        v->dims[1] > 65535 || v->dims[2] > 65535 || !v->image)
        return dk_err_set(err, DK_EINVAL, "%s: dims (%d, %d, %d) not in 1..65535 or no image", what,
                          v->dims[0], v->dims[1], v->dims[2]);
    if (!split_known(v->split))
        return dk_err_set(err, DK_EINVAL, "%s: split '%s' is not a known split", what, v->split);
    dk_status status = check_grid(what, v->spacing, v->origin, v->direction, err);
    /* the checks say "format" when reading a file; here the caller passed the values */
    if (status != DK_OK) return err ? (err->code = DK_EINVAL) : DK_EINVAL;
    size_t at;
    if (v->label && find_bad_label(v->label, dk_volume_voxels(v), w->classes.count, &at)) {
        dk_volume_info info = {.dims = {v->dims[0], v->dims[1], v->dims[2]}};
        bad_label_error(what, &info, v->label[at], at, w->classes.count, err);
        return err ? (err->code = DK_EINVAL) : DK_EINVAL;
    }
    return DK_OK;
}

static dk_status write_volume(hid_t group, const dk_volume *v, dk_err *err)
{
    hsize_t dims[3] = {(hsize_t)v->dims[0], (hsize_t)v->dims[1], (hsize_t)v->dims[2]};
    /* One z-slice per chunk: a reader of a few slices touches only those. Images
     * stay uncompressed: noisy MR floats shrink little and would read slower.
     * Fletcher-32 makes a corrupted chunk fail to read instead of training on it. */
    dk_h5_storage image = {.chunk_rank = 3, .chunk = {1, dims[1], dims[2]}, .fletcher32 = true};
    dk_h5_storage label = {.chunk_rank = 3,
                           .chunk = {1, dims[1], dims[2]},
                           .gzip_level = LABEL_GZIP_LEVEL,
                           .fletcher32 = true};
    dk_status st;
    if ((st = dk_h5_write_array(group, "image", DK_H5_FLOAT32, 3, dims, v->image, &image, err)) ||
        (v->label &&
         (st = dk_h5_write_array(group, "label", DK_H5_UINT8, 3, dims, v->label, &label, err))) ||
        (st = dk_h5_attr_write_doubles(group, "spacing", v->spacing, 3, 0, err)) ||
        (st = dk_h5_attr_write_doubles(group, "origin", v->origin, 3, 0, err)) ||
        (st = dk_h5_attr_write_doubles(group, "direction", v->direction, 9, 3, err)) ||
        (st = dk_h5_attr_write_string(group, "source", v->source, err)) ||
        (st = dk_h5_attr_write_string(group, "split", v->split, err)))
        return st;
    return DK_OK;
}

dk_status dk_dataset_writer_add(dk_dataset_writer *w, const dk_volume *v, dk_err *err)
{
    dk_status st;
    if ((st = check_volume(w, v, err))) return st;
    hid_t group;
    if ((st = dk_h5_group_create(w->volumes, v->id, &group, err))) return st;
    dk_status status = write_volume(group, v, err);
    H5Gclose(group);
    return status;
}

dk_status dk_dataset_writer_commit(dk_dataset_writer *w, dk_err *err)
{
    H5Gclose(w->volumes);
    w->volumes = H5I_INVALID_HID;
    dk_status status = dk_h5_commit(&w->h5, err);
    free(w);
    return status;
}

void dk_dataset_writer_abort(dk_dataset_writer *w)
{
    if (!w) return;
    if (w->volumes >= 0) H5Gclose(w->volumes);
    dk_h5_abort(&w->h5);
    free(w);
}
