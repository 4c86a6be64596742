/* voxel_limit.c: the per-volume voxel limit (datasets/volume.h) from the
 * environment (DUALKD_MAX_VOXELS, for every command) or a --max-voxels option. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "datasets/volume.h"

int dk_cli_set_max_voxels(const char *text, const char *source)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = text ? strtoull(text, &end, 10) : 0;
    /* 2^40 voxels is 4 TiB of float32: far beyond any machine this runs on. */
    if (!text || errno || end == text || *end || text[0] == '-' || v < 1 || v > (1ULL << 40)) {
        fprintf(stderr, "dualkd: %s '%s': expected a voxel count in 1..%llu (default %zu)\n",
                source, text ? text : "", 1ULL << 40, (size_t)DK_MAX_VOXELS_DEFAULT);
        return 2;
    }
    dk_volume_set_max_voxels((size_t)v);
    return 0;
}
