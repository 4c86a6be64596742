/* h5fence.c: checks on untrusted HDF5 files before libhdf5 decodes what it
 * cannot decode safely (h5fence.h). Each check is cheap: a few bytes read, or
 * one property query; none touches raw data. */
#define _GNU_SOURCE
#include "distill/h5fence.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/h5file.h"

#define ATTR_MAX_BYTES ((hsize_t)16 << 20)

static const char how_to_write[] =
    "write it with HDF5 >= 1.10's format, e.g. h5py.File(path, 'w', libver=('v110', 'latest'))";

dk_status dk_h5_check_superblock(const char *path, dk_err *err)
{
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dk_err_set(err, DK_EIO, "cannot read '%s': %s", path, strerror(errno));
    struct stat st;
    dk_status status = DK_OK;
    if (fstat(fd, &st) != 0) st.st_size = 0;
    /* HDF5 looks for the superblock at 0, then at 512, 1024, 2048, ... (a user block). */
    for (off_t at = 0; at + 9 <= st.st_size; at = at ? 2 * at : 512) {
        unsigned char head[9];
        if (pread(fd, head, sizeof head, at) != (ssize_t)sizeof head) break;
        if (memcmp(head, signature, sizeof signature) != 0) continue;
        if (head[8] < 2)
            status = dk_err_set(err, DK_EFORMAT,
                                "'%s' is in an old HDF5 format without metadata checksums "
                                "(superblock version %d), which dualkd does not read: %s",
                                path, head[8], how_to_write);
        break;
    }
    close(fd);
    return status;
}

/* Every link on the way to name (each "a", "a/b", ... of "a/b/c") is a hard
 * link: a soft or external one could lead into another file, which has passed
 * none of these checks. */
static dk_status check_links(hid_t loc, const char *name, dk_err *err)
{
    char path[1024];
    size_t len = strlen(name);
    if (len >= sizeof path)
        return dk_err_set(err, DK_ELIMIT, "object path '%.64s...' is too long", name);
    if (!strcmp(name, ".")) return DK_OK;
    for (size_t end = 1; end <= len; end++) {
        if (end < len && name[end] != '/') continue;
        memcpy(path, name, end);
        path[end] = '\0';
        H5L_info_t info;
        if (H5Lget_info(loc, path, &info, H5P_DEFAULT) < 0)
            return dk_h5_fail(err, DK_EFORMAT, loc, "'%s' is unreadable", path);
        if (info.type != H5L_TYPE_HARD)
            return dk_h5_fail(err, DK_EFORMAT, loc, "'%s' is %s link, which dualkd does not follow",
                              path, info.type == H5L_TYPE_SOFT ? "a soft" : "an external or other");
    }
    return DK_OK;
}

dk_status dk_h5_check_object(hid_t loc, const char *name, H5O_type_t want, dk_err *err)
{
    static const char *const kinds[] = {"a group", "a dataset", "a named datatype"};
    dk_status status = check_links(loc, name, err);
    if (status != DK_OK) return status;
    H5O_info_t info;
    if (H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC | H5O_INFO_HDR, H5P_DEFAULT) < 0)
        return dk_h5_fail(err, DK_EFORMAT, loc, "'%s' is unreadable", name);
    if (info.hdr.version != 2)
        return dk_h5_fail(err, DK_EFORMAT, loc,
                          "'%s' has a version %u object header (no checksum); %s", name,
                          info.hdr.version, how_to_write);
    if (info.type != want)
        return dk_h5_fail(err, DK_EFORMAT, loc, "'%s' is not %s", name,
                          want >= H5O_TYPE_GROUP && want <= H5O_TYPE_NAMED_DATATYPE
                              ? kinds[want - H5O_TYPE_GROUP]
                              : "the expected kind of object");
    return DK_OK;
}

static bool filter_allowed(H5Z_filter_t id)
{
    return id == H5Z_FILTER_DEFLATE || id == H5Z_FILTER_SHUFFLE || id == H5Z_FILTER_FLETCHER32;
}

static dk_status check_storage(hid_t dset, hid_t dcpl, dk_err *err)
{
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_VIRTUAL || H5Pget_external_count(dcpl) != 0)
        return dk_h5_fail(err, DK_EFORMAT, dset,
                          "has virtual or external storage (data in other files), which dualkd "
                          "does not read");
    if (layout != H5D_CHUNKED) return DK_OK;
    H5D_chunk_index_t index;
    if (H5Dget_chunk_index_type(dset, &index) < 0 || index == H5D_CHUNK_IDX_BTREE)
        return dk_h5_fail(err, DK_EFORMAT, dset,
                          "its chunks are indexed by a version 1 B-tree (no checksum); %s",
                          how_to_write);
    int filters = H5Pget_nfilters(dcpl);
    for (int i = 0; i < filters; i++) {
        unsigned flags = 0, config = 0;
        size_t n = 0;
        char name[64] = "";
        H5Z_filter_t id =
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &n, NULL, sizeof name, name, &config);
        if (!filter_allowed(id))
            return dk_h5_fail(err, DK_EFORMAT, dset,
                              "uses HDF5 filter %d ('%s'); dualkd reads only deflate (gzip), "
                              "shuffle and Fletcher-32",
                              (int)id, name);
    }
    return DK_OK;
}

dk_status dk_h5_dataset_open(hid_t loc, const char *name, hid_t *dset, dk_err *err)
{
    char where[400];
    *dset = H5I_INVALID_HID;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return dk_err_set(err, DK_ENOTFOUND, "%s: has no dataset '%s'",
                          dk_h5_where(loc, where, sizeof where), name);
    dk_status status = dk_h5_check_object(loc, name, H5O_TYPE_DATASET, err);
    if (status != DK_OK) return status;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return dk_h5_fail(err, DK_EFORMAT, loc, "cannot open dataset '%s'", name);
    hid_t dcpl = H5Dget_create_plist(d);
    status = dcpl < 0 ? dk_h5_fail(err, DK_EFORMAT, d, "unreadable storage properties")
                      : check_storage(d, dcpl, err);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (status != DK_OK) {
        H5Dclose(d);
        return status;
    }
    *dset = d;
    return DK_OK;
}

dk_status dk_h5_check_attr(hid_t obj, const char *name, hid_t type, hid_t space, dk_err *err)
{
    H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_VLEN || (cls == H5T_STRING && H5Tis_variable_str(type) != 0))
        return dk_h5_fail(err, DK_EFORMAT, obj,
                          "attribute '%s' is variable-length, which dualkd does not read (its "
                          "data sit in HDF5's unchecksummed global heap): write fixed-length "
                          "strings, e.g. h5py: attrs['%s'] = np.bytes_('text')",
                          name, name);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT && cls != H5T_STRING)
        return dk_h5_fail(err, DK_EFORMAT, obj,
                          "attribute '%s' is not a number or a fixed-length string", name);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    size_t size = H5Tget_size(type);
    if (count < 0 || size == 0 || (hsize_t)count > ATTR_MAX_BYTES / size)
        return dk_h5_fail(err, DK_ELIMIT, obj,
                          "attribute '%s' is %lld x %zu bytes (limit %llu bytes in all)", name,
                          (long long)count, size, (unsigned long long)ATTR_MAX_BYTES);
    return DK_OK;
}
