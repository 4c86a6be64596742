/* store.c: the target store's file layout (docs/store.md): the manifest and
 * per-sample groups as HDF5 attributes and datasets, the reader and verify.
 * The crash-safe writer (partial directory, finishing) is store_write.c. */
#include "teacher/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/h5fence.h"
#include "distill/h5attr.h"
#include "distill/h5file.h"
#include "distill/half.h"
#include "teacher/sha256.h"
#include "teacher/store_internal.h"

/* ---- small attribute helpers ---- */

dk_status dk_store_attr_write_ints(hid_t obj, const char *name, const int64_t *v, int count,
                                   dk_err *err)
{
    hsize_t n = (hsize_t)count;
    hid_t space = H5Screate_simple(1, &n, NULL);
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    dk_status st = DK_OK;
    if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, v) < 0)
        st = dk_h5_fail(err, DK_EIO, obj, "cannot write attribute '%s'", name);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return st;
}

static dk_status read_ints(hid_t obj, const char *name, int *out, int count, dk_err *err)
{
    double v[DK_STORE_MAX_FEATURES * 3];
    if (count > (int)(sizeof v / sizeof v[0]))
        return dk_err_set(err, DK_ELIMIT, "attribute '%s': too many values", name);
    dk_status st = dk_h5_attr_read_doubles(obj, name, v, count, err);
    for (int i = 0; st == DK_OK && i < count; i++)
        out[i] = (int)v[i];
    return st;
}

static dk_status read_u64(hid_t obj, const char *name, uint64_t *out, dk_err *err)
{
    int64_t v = 0;
    dk_status st = dk_h5_attr_read_int(obj, name, &v, err);
    *out = (uint64_t)v; /* stored as int64 two's complement (docs/store.md) */
    return st;
}

/* ---- dtypes ---- */

size_t dk_store_dtype_size(dk_store_dtype t)
{
    return t == DK_STORE_F32 ? 4 : t == DK_STORE_F16 ? 2 : 1;
}

const char *dk_store_dtype_npy(dk_store_dtype t)
{
    return t == DK_STORE_F32 ? "<f4" : t == DK_STORE_F16 ? "<f2" : "|u1";
}

/* The little-endian file type of a dtype; caller closes. */
hid_t dk_store_h5_type(dk_store_dtype t)
{
    if (t == DK_STORE_F16) return dk_h5_half_type();
    return H5Tcopy(t == DK_STORE_U8 ? H5T_STD_U8LE : H5T_IEEE_F32LE);
}

static bool dtype_of(hid_t type, dk_store_dtype *out)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT && (size == 4 || size == 2)) {
        *out = size == 4 ? DK_STORE_F32 : DK_STORE_F16;
        return true;
    }
    if (cls == H5T_INTEGER && size == 1 && H5Tget_sign(type) == H5T_SGN_NONE) {
        *out = DK_STORE_U8;
        return true;
    }
    return false;
}

/* ---- the manifest ---- */

const char *dk_store_manifest_diff(const dk_store_manifest *a, const dk_store_manifest *b)
{
#define DIFF_STR(f)                                                                                \
    if (strcmp(a->f, b->f)) return #f
#define DIFF_MEM(f)                                                                                \
    if (memcmp(&a->f, &b->f, sizeof a->f)) return #f
    DIFF_STR(teacher_sha256);
    DIFF_STR(teacher_architecture);
    DIFF_STR(student_architecture);
    DIFF_STR(profile);
    DIFF_STR(profile_json);
    DIFF_STR(data_sha256);
    if (a->classes.count != b->classes.count) return "classes";
    for (int c = 0; c < a->classes.count; c++)
        if (strcmp(a->classes.names[c], b->classes.names[c])) return "classes";
    DIFF_MEM(teacher_spacing);
    DIFF_MEM(profile_spacing);
    DIFF_MEM(student_multiple);
    DIFF_MEM(temperature);
    DIFF_MEM(passes);
    DIFF_MEM(input_noise);
    DIFF_MEM(seed);
    if (a->feature_count != b->feature_count) return "feature_layers";
    for (int k = 0; k < a->feature_count; k++) {
        const dk_store_feature *x = &a->features[k], *y = &b->features[k];
        if (strcmp(x->layer, y->layer)) return "feature_layers";
        if (x->channels != y->channels || x->student_channels != y->student_channels ||
            x->teacher_tap != y->teacher_tap || x->student_tap != y->student_tap ||
            memcmp(x->spacing, y->spacing, sizeof x->spacing))
            return "feature shapes";
    }
    return NULL;
#undef DIFF_STR
#undef DIFF_MEM
}

static dk_status write_feature_attrs(hid_t g, const dk_store_manifest *m, dk_err *err)
{
    dk_status st;
    const char *layers[DK_STORE_MAX_FEATURES];
    int64_t ch[DK_STORE_MAX_FEATURES], sch[DK_STORE_MAX_FEATURES];
    int64_t ttap[DK_STORE_MAX_FEATURES], stap[DK_STORE_MAX_FEATURES];
    double sp[DK_STORE_MAX_FEATURES * 3];
    int n = m->feature_count;
    for (int k = 0; k < n; k++) {
        layers[k] = m->features[k].layer;
        ch[k] = m->features[k].channels, sch[k] = m->features[k].student_channels;
        ttap[k] = m->features[k].teacher_tap, stap[k] = m->features[k].student_tap;
        memcpy(sp + 3 * k, m->features[k].spacing, sizeof m->features[k].spacing);
    }
    if (n == 0) return DK_OK;
    if ((st = dk_h5_attr_write_strings(g, "feature_layers", layers, n, err)) ||
        (st = dk_store_attr_write_ints(g, "feature_channels", ch, n, err)) ||
        (st = dk_store_attr_write_ints(g, "feature_student_channels", sch, n, err)) ||
        (st = dk_store_attr_write_ints(g, "feature_teacher_tap", ttap, n, err)) ||
        (st = dk_store_attr_write_ints(g, "feature_student_tap", stap, n, err)) ||
        (st = dk_h5_attr_write_doubles(g, "feature_spacing", sp, 3 * n, n, err)))
        return st;
    return DK_OK;
}

dk_status dk_store_manifest_write(hid_t file, const dk_store_manifest *m, dk_err *err)
{
    dk_status st;
    if ((st = dk_h5_attr_write_string(file, "format", DK_STORE_FORMAT, err)) ||
        (st = dk_h5_attr_write_int(file, "format_version", DK_STORE_FORMAT_VERSION, err)))
        return st;
    hid_t g;
    if ((st = dk_h5_group_create(file, "manifest", &g, err))) return st;
    const char *names[DK_MAX_CLASSES];
    for (int c = 0; c < m->classes.count; c++)
        names[c] = m->classes.names[c];
    int64_t mult[3] = {m->student_multiple[0], m->student_multiple[1], m->student_multiple[2]};
    st = dk_h5_attr_write_string(g, "teacher_sha256", m->teacher_sha256, err);
    if (!st) st = dk_h5_attr_write_string(g, "teacher_architecture", m->teacher_architecture, err);
    if (!st) st = dk_h5_attr_write_string(g, "student_architecture", m->student_architecture, err);
    if (!st) st = dk_h5_attr_write_string(g, "profile", m->profile, err);
    if (!st) st = dk_h5_attr_write_string(g, "profile_json", m->profile_json, err);
    if (!st) st = dk_h5_attr_write_string(g, "data_sha256", m->data_sha256, err);
    if (!st) st = dk_h5_attr_write_strings(g, "classes", names, m->classes.count, err);
    if (!st) st = dk_h5_attr_write_doubles(g, "teacher_spacing", m->teacher_spacing, 3, 0, err);
    if (!st) st = dk_h5_attr_write_doubles(g, "profile_spacing", m->profile_spacing, 3, 0, err);
    if (!st) st = dk_store_attr_write_ints(g, "student_multiple", mult, 3, err);
    if (!st) st = dk_h5_attr_write_double(g, "temperature", m->temperature, err);
    if (!st) st = dk_h5_attr_write_int(g, "passes", m->passes, err);
    if (!st) st = dk_h5_attr_write_double(g, "input_noise", m->input_noise, err);
    if (!st) st = dk_h5_attr_write_int(g, "seed", (int64_t)m->seed, err);
    if (!st) st = dk_h5_attr_write_int(g, "feature_count", m->feature_count, err);
    if (!st) st = write_feature_attrs(g, m, err);
    if (!st && m->created[0]) st = dk_h5_attr_write_string(g, "created", m->created, err);
    H5Gclose(g);
    return st;
}

static dk_status read_features(hid_t g, dk_store_manifest *m, dk_err *err)
{
    dk_status st;
    int64_t n = 0;
    if ((st = dk_h5_attr_read_int(g, "feature_count", &n, err))) return st;
    if (n < 0 || n > DK_STORE_MAX_FEATURES)
        return dk_err_set(err, DK_EFORMAT, "feature_count %lld not in 0..%d", (long long)n,
                          DK_STORE_MAX_FEATURES);
    m->feature_count = (int)n;
    if (n == 0) return DK_OK;
    char **layers = NULL;
    int count = 0, ch[4], sch[4], tt[4], stt[4];
    double sp[DK_STORE_MAX_FEATURES * 3];
    if ((st = dk_h5_attr_read_strings(g, "feature_layers", &layers, &count, err))) return st;
    st = DK_OK;
    if (count != n)
        st = dk_err_set(err, DK_EFORMAT, "feature_layers has %d names, feature_count %d", count,
                        (int)n);
    if (!st) st = read_ints(g, "feature_channels", ch, (int)n, err);
    if (!st) st = read_ints(g, "feature_student_channels", sch, (int)n, err);
    if (!st) st = read_ints(g, "feature_teacher_tap", tt, (int)n, err);
    if (!st) st = read_ints(g, "feature_student_tap", stt, (int)n, err);
    if (!st) st = dk_h5_attr_read_doubles(g, "feature_spacing", sp, 3 * (int)n, err);
    for (int k = 0; !st && k < n; k++) {
        dk_store_feature *f = &m->features[k];
        snprintf(f->layer, sizeof f->layer, "%s", layers[k]);
        f->channels = ch[k], f->student_channels = sch[k];
        f->teacher_tap = tt[k], f->student_tap = stt[k];
        memcpy(f->spacing, sp + 3 * k, sizeof f->spacing);
        if (f->channels < 1)
            st = dk_err_set(err, DK_EFORMAT, "feature '%s' has %d channels", f->layer, f->channels);
    }
    dk_h5_free_strings(layers);
    return st;
}

static dk_status read_classes(hid_t g, dk_classes *classes, dk_err *err)
{
    dk_status st;
    char **names = NULL;
    int count = 0;
    if ((st = dk_h5_attr_read_strings(g, "classes", &names, &count, err))) return st;
    st = DK_OK;
    if (count < 2 || count > DK_MAX_CLASSES)
        st =
            dk_err_set(err, DK_EFORMAT, "classes: %d names, expected 2..%d", count, DK_MAX_CLASSES);
    classes->count = count;
    for (int c = 0; !st && c < count; c++)
        snprintf(classes->names[c], sizeof classes->names[c], "%s", names[c]);
    dk_h5_free_strings(names);
    return st;
}

dk_status dk_store_manifest_read(hid_t file, dk_store_manifest *m, dk_err *err)
{
    dk_status st;
    char format[64];
    int64_t version = 0;
    memset(m, 0, sizeof *m);
    if ((st = dk_h5_attr_read_string_buf(file, "format", format, sizeof format, err)) ||
        (st = dk_h5_attr_read_int(file, "format_version", &version, err)))
        return st;
    if (strcmp(format, DK_STORE_FORMAT))
        return dk_err_set(err, DK_EFORMAT, "format is '%s', expected '%s'", format,
                          DK_STORE_FORMAT);
    if (version != DK_STORE_FORMAT_VERSION)
        return dk_err_set(err, DK_EFORMAT, "format_version %lld, this build reads %d",
                          (long long)version, DK_STORE_FORMAT_VERSION);
    hid_t g;
    if ((st = dk_h5_group_open(file, "manifest", &g, err))) return st;
    int64_t passes = 0, seed = 0;
    st = DK_OK;
#define STR(name) dk_h5_attr_read_string_buf(g, #name, m->name, sizeof m->name, err)
    if (!st) st = STR(teacher_sha256);
    if (!st) st = STR(teacher_architecture);
    if (!st) st = STR(student_architecture);
    if (!st) st = STR(profile);
    if (!st) st = STR(profile_json);
    if (!st) st = STR(data_sha256);
    if (!st && dk_h5_attr_exists(g, "created")) st = STR(created);
    if (!st) st = read_classes(g, &m->classes, err);
    if (!st) st = dk_h5_attr_read_doubles(g, "teacher_spacing", m->teacher_spacing, 3, err);
    if (!st) st = dk_h5_attr_read_doubles(g, "profile_spacing", m->profile_spacing, 3, err);
    if (!st) st = read_ints(g, "student_multiple", m->student_multiple, 3, err);
    if (!st) st = dk_h5_attr_read_double(g, "temperature", &m->temperature, err);
    if (!st) st = dk_h5_attr_read_int(g, "passes", &passes, err);
    if (!st) st = dk_h5_attr_read_double(g, "input_noise", &m->input_noise, err);
    if (!st) st = dk_h5_attr_read_int(g, "seed", &seed, err);
    if (!st) st = read_features(g, m, err);
#undef STR
    H5Gclose(g);
    m->passes = (int)passes;
    m->seed = (uint64_t)seed;
    if (!st && (m->temperature <= 0 || m->passes < 1))
        st = dk_err_set(err, DK_EFORMAT, "manifest: temperature %g / passes %d out of range",
                        m->temperature, m->passes);
    return st;
}

/* ---- one sample ---- */

static dk_status hash_dataset(hid_t dset, dk_store_dtype dtype, size_t numel, char *hex,
                              dk_err *err)
{
    size_t bytes = numel * dk_store_dtype_size(dtype);
    void *raw = malloc(bytes ? bytes : 1);
    if (!raw) return dk_err_set(err, DK_ENOMEM, "no memory for %zu bytes", bytes);
    hid_t mt = dk_store_h5_type(dtype);
    dk_status st = DK_OK;
    if (H5Dread(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
        st = dk_h5_fail(err, DK_EFORMAT, dset, "cannot read the data: truncated or corrupted");
    else
        st = dk_sha256_hex(raw, bytes, hex, err);
    H5Tclose(mt);
    free(raw);
    return st;
}

static dk_status create_chunked(hid_t g, const dk_store_array *a, const hsize_t *dims, hid_t *dset,
                                dk_err *err)
{
    hid_t space = H5Screate_simple(a->rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ftype = dk_store_h5_type(a->dtype);
    H5Pset_chunk(dcpl, a->rank, dims); /* one chunk per sample and array */
    H5Pset_fletcher32(dcpl);
    H5Pset_obj_track_times(dcpl, false); /* same targets, same bytes (docs/store.md) */
    *dset = H5Dcreate2(g, a->kind, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Tclose(ftype);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (*dset < 0) return dk_h5_fail(err, DK_EIO, g, "cannot create dataset '%s'", a->kind);
    return DK_OK;
}

/* Write one array as one chunk with a Fletcher-32 checksum; its SHA-256 (of the
 * bytes as stored, read back) goes into hex. */
static dk_status write_one(hid_t g, const dk_store_array *a, char *hex, dk_err *err)
{
    dk_status st;
    hsize_t dims[4];
    size_t numel = 1;
    for (int i = 0; i < a->rank; i++)
        numel *= (size_t)(dims[i] = (hsize_t)a->dims[i]);
    hid_t d;
    if ((st = create_chunked(g, a, dims, &d, err))) return st;
    uint16_t *half = NULL;
    const void *src = a->data;
    hid_t mt = a->dtype == DK_STORE_F32  ? H5Tcopy(H5T_NATIVE_FLOAT)
               : a->dtype == DK_STORE_U8 ? H5Tcopy(H5T_NATIVE_UINT8)
                                         : dk_store_h5_type(DK_STORE_F16);
    st = DK_OK;
    if (a->dtype == DK_STORE_F16) {
        if (!(half = malloc(numel * sizeof *half)))
            st = dk_err_set(err, DK_ENOMEM, "no memory for '%s'", a->kind);
        for (size_t i = 0; !st && i < numel; i++)
            half[i] = dk_half_from_float(((const float *)a->data)[i]);
        src = half;
    }
    if (!st && H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, src) < 0)
        st = dk_h5_fail(err, DK_EIO, d, "cannot write the data");
    if (!st) st = hash_dataset(d, a->dtype, numel, hex, err);
    H5Tclose(mt);
    H5Dclose(d);
    free(half);
    return st;
}

static dk_status write_grid(hid_t g, const char *prefix, const dk_grid *grid, dk_err *err)
{
    dk_status st;
    char name[48];
    int64_t dims[3] = {grid->dims[0], grid->dims[1], grid->dims[2]};
    snprintf(name, sizeof name, "%sdims", prefix);
    if ((st = dk_store_attr_write_ints(g, name, dims, 3, err))) return st;
    snprintf(name, sizeof name, "%sspacing", prefix);
    if ((st = dk_h5_attr_write_doubles(g, name, grid->spacing, 3, 0, err))) return st;
    snprintf(name, sizeof name, "%sorigin", prefix);
    return dk_h5_attr_write_doubles(g, name, grid->origin, 3, 0, err);
}

static dk_status read_grid(hid_t g, const char *prefix, dk_grid *grid, dk_err *err)
{
    dk_status st;
    char a[48], b[48], c[48];
    snprintf(a, sizeof a, "%sdims", prefix);
    snprintf(b, sizeof b, "%sspacing", prefix);
    snprintf(c, sizeof c, "%sorigin", prefix);
    if ((st = read_ints(g, a, grid->dims, 3, err)) ||
        (st = dk_h5_attr_read_doubles(g, b, grid->spacing, 3, err)) ||
        (st = dk_h5_attr_read_doubles(g, c, grid->origin, 3, err)))
        return st;
    return DK_OK;
}

dk_status dk_store_sample_write(hid_t file, const dk_store_manifest *m, const dk_store_sample *s,
                                dk_err *err)
{
    dk_status st;
    char path[96];
    snprintf(path, sizeof path, "samples/%s", s->info.id);
    hid_t g, fg = H5I_INVALID_HID;
    if ((st = dk_h5_group_create(file, path, &g, err))) return st;
    const char *kinds[DK_STORE_MAX_ARRAYS], *sums[DK_STORE_MAX_ARRAYS];
    char hex[DK_STORE_MAX_ARRAYS][65];
    st = DK_OK;
    if (m->feature_count > 0) st = dk_h5_group_create(g, "features", &fg, err);
    for (int i = 0; !st && i < s->array_count; i++) {
        kinds[i] = s->arrays[i].kind, sums[i] = hex[i];
        st = write_one(g, &s->arrays[i], hex[i], err);
    }
    const dk_store_sample_info *in = &s->info;
    if (!st) st = dk_h5_attr_write_int(g, "index", in->index, err);
    if (!st) st = dk_h5_attr_write_string(g, "split", in->split, err);
    if (!st) st = write_grid(g, "", &in->grid, err);
    if (!st) st = dk_h5_attr_write_int(g, "noise_seed", (int64_t)in->noise_seed, err);
    if (!st) st = dk_h5_attr_write_int(g, "acquire_seed", (int64_t)in->acquire_seed, err);
    if (!st) st = dk_h5_attr_write_strings(g, "arrays", kinds, s->array_count, err);
    if (!st) st = dk_h5_attr_write_strings(g, "sha256", sums, s->array_count, err);
    for (int k = 0; !st && k < m->feature_count; k++) {
        hid_t d = H5Dopen2(fg, m->features[k].layer, H5P_DEFAULT);
        if (d < 0)
            st = dk_err_set(err, DK_EINVAL, "sample '%s' lacks feature '%s'", in->id,
                            m->features[k].layer);
        else {
            st = write_grid(d, "", &in->feature_grid[k], err);
            H5Dclose(d);
        }
    }
    if (fg >= 0) H5Gclose(fg);
    H5Gclose(g);
    if (st) dk_err_prefix(err, st, "sample '%s'", in->id);
    return st;
}

/* The shape an array of this kind must have, or false for an unknown kind. */
static bool expected_shape(const dk_store_manifest *m, const dk_store_sample_info *s,
                           const char *kind, int *rank, int dims[4], dk_store_dtype *dtype)
{
    const int *g = s->grid.dims;
    if (!strcmp(kind, "input") || !strcmp(kind, "label") || !strcmp(kind, "uncertainty")) {
        *rank = 3;
        memcpy(dims, g, 3 * sizeof *g);
        *dtype = kind[0] == 'i' ? DK_STORE_F32 : kind[0] == 'l' ? DK_STORE_U8 : DK_STORE_F16;
        return true;
    }
    if (!strcmp(kind, "response")) {
        *rank = 4, dims[0] = m->classes.count, *dtype = DK_STORE_F16;
        memcpy(dims + 1, g, 3 * sizeof *g);
        return true;
    }
    for (int k = 0; k < m->feature_count; k++) {
        char name[32];
        snprintf(name, sizeof name, "features/%s", m->features[k].layer);
        if (strcmp(kind, name)) continue;
        *rank = 4, dims[0] = m->features[k].channels, *dtype = DK_STORE_F16;
        memcpy(dims + 1, s->feature_grid[k].dims, 3 * sizeof(int));
        return true;
    }
    return false;
}

static dk_status check_array(hid_t g, const dk_store_manifest *m, dk_store_sample_info *s,
                             dk_store_array_info *a, dk_err *err)
{
    int rank = 0, dims[4] = {0};
    dk_store_dtype want;
    if (!expected_shape(m, s, a->kind, &rank, dims, &want))
        return dk_err_set(err, DK_EFORMAT, "unknown array kind '%s'", a->kind);
    hid_t d;
    dk_status st = dk_h5_dataset_open(g, a->kind, &d, err); /* fenced: distill/h5fence.h */
    if (st) return st;
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    hsize_t hd[DK_H5_MAX_RANK] = {0};
    int r = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (r >= 0 && r <= DK_H5_MAX_RANK) H5Sget_simple_extent_dims(space, hd, NULL);
    bool typed = type >= 0 && dtype_of(type, &a->dtype) && a->dtype == want;
    bool shaped = r == rank;
    for (int i = 0; shaped && i < rank; i++)
        shaped = hd[i] == (hsize_t)dims[i];
    a->rank = rank;
    memcpy(a->dims, dims, sizeof dims);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    if (!typed)
        return dk_err_set(err, DK_EFORMAT, "array '%s': element type is not %s", a->kind,
                          dk_store_dtype_npy(want));
    if (!shaped) {
        char x[96], y[96];
        hsize_t e[4];
        for (int i = 0; i < rank; i++)
            e[i] = (hsize_t)dims[i];
        return dk_err_set(err, DK_EFORMAT, "array '%s': shape %s, expected %s", a->kind,
                          dk_h5_shape_str(r < 0 ? 0 : r, hd, x, sizeof x),
                          dk_h5_shape_str(rank, e, y, sizeof y));
    }
    return DK_OK;
}

static dk_status read_catalogue_attrs(hid_t g, dk_store_sample_info *s, dk_err *err)
{
    dk_status st;
    int64_t index = 0;
    char **kinds = NULL, **sums = NULL;
    int nk = 0, ns = 0;
    if ((st = dk_h5_attr_read_int(g, "index", &index, err)) ||
        (st = dk_h5_attr_read_string_buf(g, "split", s->split, sizeof s->split, err)) ||
        (st = read_grid(g, "", &s->grid, err)) ||
        (st = read_u64(g, "noise_seed", &s->noise_seed, err)) ||
        (st = read_u64(g, "acquire_seed", &s->acquire_seed, err)) ||
        (st = dk_h5_attr_read_strings(g, "arrays", &kinds, &nk, err)))
        return st;
    s->index = (int)index;
    st = dk_h5_attr_read_strings(g, "sha256", &sums, &ns, err);
    if (!st && (nk != ns || nk < 1 || nk > DK_STORE_MAX_ARRAYS))
        st = dk_err_set(err, DK_EFORMAT, "%d array names but %d checksums (1..%d expected)", nk, ns,
                        DK_STORE_MAX_ARRAYS);
    for (int i = 0; !st && i < nk; i++) {
        snprintf(s->arrays[i].kind, sizeof s->arrays[i].kind, "%s", kinds[i]);
        snprintf(s->arrays[i].sha256, sizeof s->arrays[i].sha256, "%s", sums[i]);
    }
    s->array_count = nk;
    dk_h5_free_strings(kinds);
    dk_h5_free_strings(sums);
    return st;
}

dk_status dk_store_sample_read_info(hid_t file, const dk_store_manifest *m, const char *id,
                                    dk_store_sample_info *s, dk_err *err)
{
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    char path[96];
    snprintf(path, sizeof path, "samples/%s", id);
    hid_t g;
    dk_status st = dk_h5_group_open(file, path, &g, err);
    if (!st) st = read_catalogue_attrs(g, s, err);
    for (int k = 0; !st && k < m->feature_count; k++) {
        char name[32];
        snprintf(name, sizeof name, "features/%s", m->features[k].layer);
        hid_t d;
        st = dk_h5_dataset_open(g, name, &d, err);
        if (!st) {
            st = read_grid(d, "", &s->feature_grid[k], err);
            H5Dclose(d);
        }
    }
    for (int i = 0; !st && i < s->array_count; i++)
        st = check_array(g, m, s, &s->arrays[i], err);
    if (!st && !dk_store_array_find(s, "input"))
        st = dk_err_set(err, DK_EFORMAT, "has no 'input' array");
    if (g >= 0) H5Gclose(g);
    if (st) dk_err_prefix(err, st, "sample '%s'", id);
    return st;
}

const dk_store_array_info *dk_store_array_find(const dk_store_sample_info *s, const char *kind)
{
    for (int i = 0; i < s->array_count; i++)
        if (!strcmp(s->arrays[i].kind, kind)) return &s->arrays[i];
    return NULL;
}

dk_status dk_store_sample_check_sums(hid_t file, const dk_store_sample_info *s, dk_err *err)
{
    for (int i = 0; i < s->array_count; i++) {
        const dk_store_array_info *a = &s->arrays[i];
        char path[128], hex[65];
        snprintf(path, sizeof path, "samples/%s/%s", s->id, a->kind);
        hid_t d;
        dk_status st = dk_h5_dataset_open(file, path, &d, err);
        if (st) return st;
        st = hash_dataset(d, a->dtype, dk_store_array_numel(a), hex, err);
        H5Dclose(d);
        if (st) return dk_err_prefix(err, st, "sample '%s': array '%s'", s->id, a->kind);
        if (strcmp(hex, a->sha256))
            return dk_err_set(
                err, DK_EFORMAT,
                "sample '%s': array '%s': checksum mismatch (manifest sha256 %.12s..., "
                "stored bytes %.12s...)",
                s->id, a->kind, a->sha256, hex);
    }
    return DK_OK;
}

/* ---- the reader ---- */

struct dk_store {
    hid_t file;
    char *path;
    dk_store_manifest manifest;
    int count;
    dk_store_sample_info *samples;
};

static dk_status open_catalogue(dk_store *s, dk_err *err)
{
    dk_status st;
    int64_t declared = 0;
    if ((st = dk_h5_attr_read_int(s->file, "sample_count", &declared, err))) return st;
    hid_t g;
    char **ids = NULL;
    int n = 0;
    if ((st = dk_h5_group_open(s->file, "samples", &g, err))) return st;
    st = dk_h5_group_list(g, &ids, &n, err);
    H5Gclose(g);
    if (st) return st;
    if (n != declared)
        st = dk_err_set(err, DK_EFORMAT, "sample_count is %lld but /samples holds %d samples",
                        (long long)declared, n);
    s->samples = st ? NULL : calloc(n ? (size_t)n : 1, sizeof *s->samples);
    if (!st && !s->samples) st = dk_err_set(err, DK_ENOMEM, "no memory for %d samples", n);
    for (int i = 0; !st && i < n; i++) {
        st = dk_store_sample_read_info(s->file, &s->manifest, ids[i], &s->samples[i], err);
        if (!st) s->count = i + 1;
    }
    dk_h5_free_strings(ids);
    return st;
}

dk_store *dk_store_open(const char *path, dk_err *err)
{
    dk_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        dk_err_set(err, DK_ENOMEM, "no memory to open '%s'", path);
        return NULL;
    }
    s->file = H5I_INVALID_HID;
    dk_status st = dk_h5_open_read(path, &s->file, err);
    if (!st && (st = dk_store_manifest_read(s->file, &s->manifest, err)))
        dk_err_prefix(err, st, "'%s': not a target store", path);
    else if (!st && (st = open_catalogue(s, err)))
        dk_err_prefix(err, st, "'%s'", path);
    if (st) {
        dk_store_close(s);
        return NULL;
    }
    return s;
}

void dk_store_close(dk_store *s)
{
    if (!s) return;
    dk_h5_close_file(s->file);
    free(s->samples);
    free(s->path);
    free(s);
}

const dk_store_manifest *dk_store_manifest_of(const dk_store *s)
{
    return &s->manifest;
}
int dk_store_count(const dk_store *s)
{
    return s->count;
}

const dk_store_sample_info *dk_store_sample_at(const dk_store *s, int i)
{
    return i >= 0 && i < s->count ? &s->samples[i] : NULL;
}

int dk_store_find(const dk_store *s, const char *id)
{
    for (int i = 0; i < s->count; i++)
        if (!strcmp(s->samples[i].id, id)) return i;
    return -1;
}

const dk_store_array_info *dk_store_array_of(const dk_store *s, int i, const char *kind)
{
    return i >= 0 && i < s->count ? dk_store_array_find(&s->samples[i], kind) : NULL;
}

/* Open the array (checked against the catalogue, so a kind is never a free path). */
static dk_status open_array(dk_store *s, int i, const char *kind, const dk_store_array_info **a,
                            hid_t *d, dk_err *err)
{
    *d = H5I_INVALID_HID;
    if (i < 0 || i >= s->count)
        return dk_err_set(err, DK_ENOTFOUND, "'%s': no sample %d (the store has %d)", s->path, i,
                          s->count);
    *a = dk_store_array_find(&s->samples[i], kind);
    if (!*a)
        return dk_err_set(err, DK_ENOTFOUND, "'%s': sample '%s' has no array '%s'", s->path,
                          s->samples[i].id, kind);
    char path[128];
    snprintf(path, sizeof path, "samples/%s/%s", s->samples[i].id, kind);
    return dk_h5_dataset_open(s->file, path, d, err);
}

static dk_status read_as(dk_store *s, int i, const char *kind, bool raw, void *out, size_t size,
                         dk_err *err)
{
    const dk_store_array_info *a = NULL;
    hid_t d;
    dk_status st = open_array(s, i, kind, &a, &d, err);
    if (st) return st;
    size_t need = dk_store_array_numel(a) * (raw ? dk_store_dtype_size(a->dtype) : sizeof(float));
    hid_t mt = raw ? dk_store_h5_type(a->dtype) : H5Tcopy(H5T_NATIVE_FLOAT);
    if (size != need)
        st = dk_err_set(err, DK_EINVAL, "'%s': sample '%s' array '%s' has %zu bytes, buffer %zu",
                        s->path, s->samples[i].id, kind, need, size);
    else if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        st = dk_h5_fail(err, DK_EFORMAT, d, "cannot read the data: truncated or corrupted");
    H5Tclose(mt);
    H5Dclose(d);
    return st;
}

dk_status dk_store_read(dk_store *s, int i, const char *kind, float *out, size_t count, dk_err *err)
{
    return read_as(s, i, kind, false, out, count * sizeof(float), err);
}

dk_status dk_store_read_raw(dk_store *s, int i, const char *kind, void *out, size_t bytes,
                            dk_err *err)
{
    return read_as(s, i, kind, true, out, bytes, err);
}

/* ---- verify ---- */

dk_status dk_store_verify(const char *path, int *checked, dk_err *err)
{
    dk_status st;
    *checked = 0;
    dk_err e;
    dk_store *s = dk_store_open(path, &e);
    if (!s) return dk_err_forward(err, &e);
    st = DK_OK;
    for (int i = 0; !st && i < s->count; i++) {
        st = dk_store_sample_check_sums(s->file, &s->samples[i], err);
        if (st)
            dk_err_prefix(err, st, "'%s': sample %d of %d", path, i + 1, s->count);
        else
            *checked = i + 1;
    }
    dk_store_close(s);
    return st;
}
