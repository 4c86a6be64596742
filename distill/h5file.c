/* h5file.c: files, messages, groups and datasets over HDF5 (see h5file.h;
 * attributes are h5attr.c). Format-specific rules (what a dataset or a checkpoint must contain)
 * live with those formats (datasets/dataset.c, distill/checkpoint.c), not here. */
#define _GNU_SOURCE
#include "distill/h5file.h"
#include "distill/h5fence.h"
#include "distill/half.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* HDF5 prints its error stack to stderr by default; library code must not print. */
static void quiet_hdf5(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ---- messages --------------------------------------------------------------- */

static herr_t keep_innermost(unsigned n, const H5E_error2_t *e, void *ctx)
{
    if (n == 0 && e->desc) snprintf((char *)ctx, 160, "%s", e->desc);
    return 0;
}

const char *dk_h5_where(hid_t obj, char *buf, size_t cap)
{
    char file[300] = "?", name[300] = "";
    if (H5Fget_name(obj, file, sizeof file) < 0) snprintf(file, sizeof file, "?");
    if (H5Iget_name(obj, name, sizeof name) < 0) name[0] = '\0';
    snprintf(buf, cap, "'%s': %s", file, name[0] ? name : "/");
    return buf;
}

dk_status dk_h5_fail(dk_err *err, dk_status code, hid_t obj, const char *fmt, ...)
{
    char reason[160] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, reason);
    char what[300], where[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* Without an object, `what` names the file itself. */
    if (obj >= 0) dk_h5_where(obj, where, sizeof where);
    if (reason[0])
        return dk_err_set(err, code, "%s%s%s (HDF5: %s)", obj >= 0 ? where : "",
                          obj >= 0 ? ": " : "", what, reason);
    return dk_err_set(err, code, "%s%s%s", obj >= 0 ? where : "", obj >= 0 ? ": " : "", what);
}

const char *dk_h5_shape_str(int rank, const hsize_t *dims, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < rank && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)dims[i]);
    if (rank == 1 && used < cap) used += (size_t)snprintf(buf + used, cap - used, ",");
    if (used < cap) snprintf(buf + used, cap - used, ")");
    return buf;
}

/* ---- files ---------------------------------------------------------------- */

static hid_t file_access_plist(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    /* Closing the file closes whatever an error path left open: no leaked handles. */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    /* The 1.10 format checksums all metadata, chunk indexes included (1.8's v1
     * B-trees are not: a flipped chunk address there could silently load another
     * tensor's data). Readers need HDF5 >= 1.10 (2018; h5py wheels since 2.9). */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    return fapl;
}

dk_status dk_h5_open_read(const char *path, hid_t *file, dk_err *err)
{
    *file = H5I_INVALID_HID;
    quiet_hdf5();
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return dk_err_set(err, DK_ENOTFOUND, "'%s' does not exist", path);
        return dk_err_set(err, DK_EIO, "cannot read '%s': %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return dk_err_set(err, DK_EINVAL, "'%s' is a directory, not an HDF5 file", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dk_err_set(err, DK_EIO, "cannot read '%s': %s", path, strerror(errno));
    close(fd);
    dk_status status = dk_h5_check_superblock(path, err);
    if (status != DK_OK) return status;
    htri_t is_hdf5 = H5Fis_hdf5(path);
    if (is_hdf5 == 0)
        return dk_err_set(err, DK_EFORMAT, "'%s' is not an HDF5 file (%lld bytes)", path,
                          (long long)st.st_size);
    hid_t fapl = file_access_plist();
    hid_t f = is_hdf5 > 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : H5I_INVALID_HID;
    if (f < 0) status = dk_h5_fail(err, DK_EFORMAT, -1, "'%s' is truncated or corrupted", path);
    H5Pclose(fapl);
    if (status == DK_OK) status = dk_h5_check_object(f, ".", H5O_TYPE_GROUP, err);
    if (status != DK_OK && f >= 0) {
        H5Fclose(f);
        f = H5I_INVALID_HID;
    }
    *file = f;
    return status;
}

void dk_h5_close_file(hid_t file)
{
    if (file >= 0) H5Fclose(file);
}

dk_status dk_h5_create(const char *path, dk_h5_writer *w, dk_err *err)
{
    *w = (dk_h5_writer){.file = H5I_INVALID_HID, .fd = -1};
    quiet_hdf5();
    if (!path || !path[0]) return dk_err_set(err, DK_EINVAL, "empty output path");
    w->path = strdup(path);
    if (!w->path || asprintf(&w->tmp_path, "%s.tmp-XXXXXX", path) < 0) {
        w->tmp_path = NULL;
        dk_h5_abort(w);
        return dk_err_set(err, DK_ENOMEM, "out of memory creating '%s'", path);
    }
    w->fd = mkstemp(w->tmp_path);
    if (w->fd < 0) {
        dk_err_set(err, DK_EIO, "cannot create '%s': %s", w->tmp_path, strerror(errno));
        free(w->tmp_path);
        w->tmp_path = NULL; /* nothing to unlink */
        dk_h5_abort(w);
        return DK_EIO;
    }
    fchmod(w->fd, 0644); /* mkstemp's 0600 would hide the file from a server run as another user */
    hid_t fapl = file_access_plist(), fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, false); /* no timestamps, the root group's included */
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (w->file < 0) {
        dk_h5_fail(err, DK_EIO, -1, "cannot create HDF5 file '%s'", w->tmp_path);
        dk_h5_abort(w);
        return DK_EIO;
    }
    return DK_OK;
}

static void release_writer(dk_h5_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    free(w->path);
    free(w->tmp_path);
    *w = (dk_h5_writer){.file = H5I_INVALID_HID, .fd = -1};
}

/* Make the rename itself durable: fsync the directory that holds path. */
static dk_status sync_parent_dir(const char *path, dk_err *err)
{
    char *dir = strdup(path);
    if (!dir) return dk_err_set(err, DK_ENOMEM, "out of memory syncing '%s'", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, strlen(dir) + 1, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    dk_status status = DK_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    /* Some file systems cannot fsync a directory (EINVAL); the rename still happened. */
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        status = dk_err_set(err, DK_EIO, "cannot sync directory '%s': %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return status;
}

dk_status dk_h5_commit(dk_h5_writer *w, dk_err *err)
{
    dk_status status = DK_OK;
    herr_t closed = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    if (closed < 0)
        status = dk_h5_fail(err, DK_EIO, -1, "cannot finish writing '%s'", w->tmp_path);
    else if (fsync(w->fd) != 0)
        status = dk_err_set(err, DK_EIO, "cannot sync '%s': %s", w->tmp_path, strerror(errno));
    else if (rename(w->tmp_path, w->path) != 0)
        status = dk_err_set(err, DK_EIO, "cannot rename '%s' to '%s': %s", w->tmp_path, w->path,
                            strerror(errno));
    if (status != DK_OK) {
        dk_h5_abort(w);
        return status;
    }
    status = sync_parent_dir(w->path, err);
    release_writer(w);
    return status;
}

void dk_h5_abort(dk_h5_writer *w)
{
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    if (w->tmp_path) unlink(w->tmp_path);
    release_writer(w);
}

/* ---- groups ------------------------------------------------------------------- */

dk_status dk_h5_group_create(hid_t loc, const char *path, hid_t *group, dk_err *err)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_obj_track_times(gcpl, false);
    *group = H5Gcreate2(loc, path, lcpl, gcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(gcpl);
    if (*group < 0) return dk_h5_fail(err, DK_EIO, loc, "cannot create group '%s'", path);
    return DK_OK;
}

dk_status dk_h5_group_open(hid_t loc, const char *path, hid_t *group, dk_err *err)
{
    *group = H5I_INVALID_HID;
    char where[400];
    htri_t exists = H5Lexists(loc, path, H5P_DEFAULT);
    if (exists <= 0)
        return dk_err_set(err, DK_ENOTFOUND, "%s: has no group '%s'",
                          dk_h5_where(loc, where, sizeof where), path);
    dk_status status = dk_h5_check_object(loc, path, H5O_TYPE_GROUP, err);
    if (status != DK_OK) return status;
    *group = H5Gopen2(loc, path, H5P_DEFAULT);
    if (*group < 0) return dk_h5_fail(err, DK_EFORMAT, loc, "cannot open group '%s'", path);
    return DK_OK;
}

bool dk_h5_exists(hid_t loc, const char *name)
{
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

void dk_h5_free_strings(char **strings)
{
    if (!strings) return;
    for (char **s = strings; *s; s++)
        free(*s);
    free(strings);
}

static H5_index_t member_order(hid_t group)
{
    unsigned flags = 0;
    hid_t gcpl = H5Gget_create_plist(group);
    if (gcpl >= 0) {
        H5Pget_link_creation_order(gcpl, &flags);
        H5Pclose(gcpl);
    }
    return (flags & H5P_CRT_ORDER_TRACKED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
}

dk_status dk_h5_group_list(hid_t group, char ***names, int *count, dk_err *err)
{
    *names = NULL;
    *count = 0;
    H5G_info_t info;
    if (H5Gget_info(group, &info) < 0)
        return dk_h5_fail(err, DK_EFORMAT, group, "cannot list the group's members");
    if (info.nlinks > 1000000)
        return dk_h5_fail(err, DK_ELIMIT, group, "has %llu members (limit 1000000)",
                          (unsigned long long)info.nlinks);
    char **list = calloc(info.nlinks + 1, sizeof *list);
    if (!list) return dk_err_set(err, DK_ENOMEM, "out of memory listing a group");
    H5_index_t order = member_order(group);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(group, ".", order, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        list[i] = len >= 0 ? malloc((size_t)len + 1) : NULL;
        if (!list[i] || H5Lget_name_by_idx(group, ".", order, H5_ITER_INC, i, list[i],
                                           (size_t)len + 1, H5P_DEFAULT) < 0) {
            dk_h5_free_strings(list);
            return dk_h5_fail(err, DK_EFORMAT, group, "cannot read the name of member %llu",
                              (unsigned long long)i);
        }
    }
    *names = list;
    *count = (int)info.nlinks;
    return DK_OK;
}

/* ---- datasets ------------------------------------------------------------------ */

static hid_t memory_type(dk_h5_elem elem)
{
    return elem == DK_H5_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
}

hid_t dk_h5_half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* The data to hand H5Dwrite and its memory type: float16 storage is converted
 * here (dk_half_from_float, distill/half.h); *scratch is what the caller frees. */
static const void *write_source(dk_h5_elem elem, const dk_h5_storage *st, const void *data,
                                size_t numel, hid_t *mtype, void **scratch)
{
    *scratch = NULL;
    if (elem != DK_H5_FLOAT32 || !st || !st->half) {
        *mtype = H5Tcopy(memory_type(elem));
        return data;
    }
    uint16_t *half = malloc((numel ? numel : 1) * sizeof *half);
    if (!half) return NULL;
    for (size_t i = 0; i < numel; i++)
        half[i] = dk_half_from_float(((const float *)data)[i]);
    *mtype = dk_h5_half_type();
    *scratch = half;
    return half;
}

static hid_t file_type(dk_h5_elem elem, const dk_h5_storage *st)
{
    if (elem == DK_H5_FLOAT32) return st && st->half ? dk_h5_half_type() : H5Tcopy(H5T_IEEE_F32LE);
    return H5Tcopy(H5T_STD_U8LE);
}

/* Chunks of at most ~16 MB when the caller asked for filters but no chunk shape. */
static void whole_array_chunk(int rank, const hsize_t *dims, size_t elem_size, hsize_t *chunk)
{
    size_t row = elem_size;
    for (int i = 0; i < rank; i++)
        chunk[i] = dims[i];
    for (int i = 1; i < rank; i++)
        row *= dims[i];
    hsize_t rows = row ? (hsize_t)((16u << 20) / row) : 1;
    if (rows < 1) rows = 1;
    if (rank > 0 && chunk[0] > rows) chunk[0] = rows;
}

static dk_status make_dcpl(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           size_t elem_size, const dk_h5_storage *st, hid_t *dcpl, dk_err *err)
{
    *dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(*dcpl, false);
    bool filtered = st && (st->gzip_level > 0 || st->shuffle || st->fletcher32);
    hsize_t numel = 1;
    for (int i = 0; i < rank; i++)
        numel *= dims[i];
    if (!st || (!filtered && st->chunk_rank == 0) || numel == 0 || rank == 0) return DK_OK;
    hsize_t chunk[DK_H5_MAX_RANK];
    if (st->chunk_rank == 0)
        whole_array_chunk(rank, dims, elem_size, chunk);
    else if (st->chunk_rank != rank)
        return dk_err_set(err, DK_EINVAL, "dataset '%s': chunk rank %d != array rank %d", name,
                          st->chunk_rank, rank);
    else
        for (int i = 0; i < rank; i++)
            chunk[i] = st->chunk[i] < 1 ? 1 : st->chunk[i] > dims[i] ? dims[i] : st->chunk[i];
    H5Pset_chunk(*dcpl, rank, chunk);
    if (st->shuffle) H5Pset_shuffle(*dcpl);
    if (st->gzip_level > 0) {
        if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
            return dk_err_set(err, DK_EINVAL, "this HDF5 library has no gzip filter");
        H5Pset_deflate(*dcpl, (unsigned)(st->gzip_level > 9 ? 9 : st->gzip_level));
    }
    if (st->fletcher32) H5Pset_fletcher32(*dcpl);
    return DK_OK;
}

static dk_status write_data(hid_t dset, dk_h5_elem elem, int rank, const hsize_t *dims,
                            const void *data, const dk_h5_storage *storage, dk_err *err)
{
    size_t numel = 1;
    for (int i = 0; i < rank; i++)
        numel *= (size_t)dims[i];
    hid_t mtype;
    void *scratch;
    const void *src = write_source(elem, storage, data, numel, &mtype, &scratch);
    if (!src)
        return dk_err_set(err, DK_ENOMEM, "no memory to convert %zu values to float16", numel);
    dk_status status = DK_OK;
    if (H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, src) < 0)
        status = dk_h5_fail(err, DK_EIO, dset, "cannot write the data");
    H5Tclose(mtype);
    free(scratch);
    return status;
}

dk_status dk_h5_write_array(hid_t loc, const char *name, dk_h5_elem elem, int rank,
                            const hsize_t *dims, const void *data, const dk_h5_storage *storage,
                            dk_err *err)
{
    if (rank < 0 || rank > DK_H5_MAX_RANK)
        return dk_err_set(err, DK_EINVAL, "dataset '%s': rank %d not in 0..%d", name, rank,
                          DK_H5_MAX_RANK);
    hid_t ftype = file_type(elem, storage);
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    dk_status status = make_dcpl(loc, name, rank, dims, H5Tget_size(ftype), storage, &dcpl, err);
    if (status == DK_OK) {
        dset = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (dset < 0)
            status = dk_h5_fail(err, DK_EIO, loc, "cannot create dataset '%s'", name);
        else
            status = write_data(dset, elem, rank, dims, data, storage, err);
    }
    if (dset >= 0) H5Dclose(dset);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(ftype);
    return status;
}

const char *dk_h5_type_str(hid_t type, char *buf, size_t cap)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t bits = H5Tget_size(type) * 8;
    if (cls == H5T_FLOAT)
        snprintf(buf, cap, "float%zu", bits);
    else if (cls == H5T_INTEGER)
        snprintf(buf, cap, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    else if (cls == H5T_STRING)
        snprintf(buf, cap, "string");
    else
        snprintf(buf, cap, "a compound or other non-numeric type");
    return buf;
}

static bool type_fits(hid_t type, dk_h5_elem elem)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (elem == DK_H5_FLOAT32) return cls == H5T_FLOAT && (size == 4 || size == 2);
    return cls == H5T_INTEGER && size == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
}

/* Open dataset name under loc and check its type; reports into err. */
static dk_status open_checked(hid_t loc, const char *name, dk_h5_elem elem, hid_t *dset,
                              dk_err *err)
{
    char where[400], desc[64];
    dk_status status = dk_h5_dataset_open(loc, name, dset, err);
    if (status != DK_OK) return status;
    hid_t type = H5Dget_type(*dset);
    bool fits = type >= 0 && type_fits(type, elem);
    if (!fits)
        dk_err_set(err, DK_EFORMAT, "%s: element type is %s, expected %s",
                   dk_h5_where(*dset, where, sizeof where),
                   type >= 0 ? dk_h5_type_str(type, desc, sizeof desc) : "unreadable",
                   elem == DK_H5_FLOAT32 ? "float32" : "uint8");
    if (type >= 0) H5Tclose(type);
    if (!fits) {
        H5Dclose(*dset);
        *dset = H5I_INVALID_HID;
        return DK_EFORMAT;
    }
    return DK_OK;
}

static dk_status shape_of(hid_t dset, int *rank, hsize_t *dims, dk_err *err)
{
    hid_t space = H5Dget_space(dset);
    int r = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (r < 0 || r > DK_H5_MAX_RANK)
        return dk_h5_fail(err, DK_EFORMAT, dset, "unreadable or unsupported shape (rank %d)", r);
    space = H5Dget_space(dset);
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    *rank = r;
    return DK_OK;
}

dk_status dk_h5_array_shape(hid_t loc, const char *name, dk_h5_elem elem, int *rank, hsize_t *dims,
                            dk_err *err)
{
    hid_t dset;
    dk_status status = open_checked(loc, name, elem, &dset, err);
    if (status == DK_OK) status = shape_of(dset, rank, dims, err);
    if (dset >= 0) H5Dclose(dset);
    return status;
}

dk_status dk_h5_read_array(hid_t loc, const char *name, dk_h5_elem elem, int rank,
                           const hsize_t *dims, void *data, dk_err *err)
{
    hid_t dset;
    int found_rank = 0;
    hsize_t found[DK_H5_MAX_RANK];
    dk_status status = open_checked(loc, name, elem, &dset, err);
    if (status == DK_OK) status = shape_of(dset, &found_rank, found, err);
    if (status == DK_OK && (found_rank != rank || memcmp(found, dims, sizeof *dims * rank))) {
        char a[160], b[160], where[400];
        status = dk_err_set(err, DK_EMISMATCH, "%s: shape is %s, expected %s",
                            dk_h5_where(dset, where, sizeof where),
                            dk_h5_shape_str(found_rank, found, a, sizeof a),
                            dk_h5_shape_str(rank, dims, b, sizeof b));
    }
    if (status == DK_OK &&
        H5Dread(dset, memory_type(elem), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        status = dk_h5_fail(err, DK_EFORMAT, dset, "cannot read the data: truncated or corrupted");
    if (dset >= 0) H5Dclose(dset);
    return status;
}

dk_status dk_h5_read_rows(hid_t loc, const char *name, dk_h5_elem elem, hsize_t first,
                          hsize_t count, void *data, dk_err *err)
{
    hid_t dset;
    int rank = 0;
    hsize_t dims[DK_H5_MAX_RANK];
    dk_status status = open_checked(loc, name, elem, &dset, err);
    if (status == DK_OK) status = shape_of(dset, &rank, dims, err);
    if (status == DK_OK && (rank < 1 || first + count > dims[0] || first + count < first))
        status = dk_h5_fail(err, DK_EINVAL, dset, "rows %llu..%llu are outside its %llu rows",
                            (unsigned long long)first, (unsigned long long)(first + count),
                            (unsigned long long)(rank ? dims[0] : 0));
    if (status != DK_OK || count == 0) {
        if (dset >= 0) H5Dclose(dset);
        return status;
    }
    hsize_t start[DK_H5_MAX_RANK] = {first};
    dims[0] = count;
    hid_t file_space = H5Dget_space(dset), mem_space = H5Screate_simple(rank, dims, NULL);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, dims, NULL);
    if (H5Dread(dset, memory_type(elem), mem_space, file_space, H5P_DEFAULT, data) < 0)
        status =
            dk_h5_fail(err, DK_EFORMAT, dset, "cannot read rows %llu..%llu: truncated or corrupted",
                       (unsigned long long)first, (unsigned long long)(first + count));
    H5Sclose(mem_space);
    H5Sclose(file_space);
    H5Dclose(dset);
    return status;
}

dk_status dk_h5_read_block(hid_t loc, const char *name, dk_h5_elem elem, int rank,
                           const hsize_t *start, const hsize_t *count, void *data, dk_err *err)
{
    hid_t dset;
    int found = 0;
    hsize_t dims[DK_H5_MAX_RANK];
    dk_status status = open_checked(loc, name, elem, &dset, err);
    if (status == DK_OK) status = shape_of(dset, &found, dims, err);
    bool inside = status == DK_OK && found == rank;
    for (int a = 0; inside && a < rank; a++)
        inside = start[a] <= dims[a] && count[a] <= dims[a] - start[a];
    if (status == DK_OK && !inside)
        status = dk_h5_fail(err, DK_EINVAL, dset, "a %d-D block is outside the array", rank);
    if (status != DK_OK) {
        if (dset >= 0) H5Dclose(dset);
        return status;
    }
    hid_t file_space = H5Dget_space(dset), mem_space = H5Screate_simple(rank, count, NULL);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(dset, memory_type(elem), mem_space, file_space, H5P_DEFAULT, data) < 0)
        status = dk_h5_fail(err, DK_EFORMAT, dset, "cannot read a block: truncated or corrupted");
    H5Sclose(mem_space);
    H5Sclose(file_space);
    H5Dclose(dset);
    return status;
}
