/* volume.c: allocating and releasing dk_volume, checking volume ids, the voxel limit.
 * Reading and writing volumes lives in dataset.c (HDF5) and the NIfTI module. */
#include "datasets/volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t max_voxels = DK_MAX_VOXELS_DEFAULT;

size_t dk_volume_max_voxels(void)
{
    return max_voxels;
}

void dk_volume_set_max_voxels(size_t voxels)
{
    max_voxels = voxels ? voxels : DK_MAX_VOXELS_DEFAULT;
}

bool dk_volume_id_valid(const char *id)
{
    size_t len = id ? strlen(id) : 0;
    if (len == 0 || len >= sizeof((dk_volume *)0)->id) return false;
    /* "." and ".." are path components, not names (HDF5 treats "." as the group itself). */
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0) return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

dk_status dk_volume_alloc(dk_volume *v, const char *id, const int dims[3], bool with_label,
                          dk_err *err)
{
    *v = (dk_volume){0};
    if (!dk_volume_id_valid(id))
        return dk_err_set(err, DK_EINVAL,
                          "volume id '%s' is not 1-63 characters of letters, digits, '.', '_', '-'",
                          id ? id : "(null)");
    if (dims[0] < 1 || dims[1] < 1 || dims[2] < 1)
        return dk_err_set(err, DK_EINVAL, "volume '%s': dims (%d, %d, %d) has a dimension < 1", id,
                          dims[0], dims[1], dims[2]);
    size_t voxels = (size_t)dims[0] * dims[1] * dims[2];
    v->image = calloc(voxels, sizeof *v->image);
    v->label = with_label ? calloc(voxels, 1) : NULL;
    if (!v->image || (with_label && !v->label)) {
        dk_volume_release(v);
        return dk_err_set(err, DK_ENOMEM, "volume '%s': cannot allocate %zu voxels", id, voxels);
    }
    snprintf(v->id, sizeof v->id, "%s", id);
    memcpy(v->dims, dims, sizeof v->dims);
    for (int a = 0; a < 3; a++) {
        v->spacing[a] = 1.0;
        v->direction[a * 3 + a] = 1.0;
    }
    return DK_OK;
}

void dk_volume_release(dk_volume *v)
{
    if (!v) return;
    free(v->image);
    free(v->label);
    *v = (dk_volume){0};
}
