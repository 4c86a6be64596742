/* workspace.c: the scratch buffer behind dk_workspace. */
#include "distill/workspace.h"

#include <stdio.h>
#include <stdlib.h>

dk_status dk_workspace_reserve(dk_workspace *ws, size_t floats, dk_err *err)
{
    if (floats <= ws->capacity) return DK_OK;
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *data = aligned_alloc(64, bytes);
    if (!data) return dk_err_set(err, DK_ENOMEM, "cannot allocate a %zu-byte workspace", bytes);
    free(ws->data);
    ws->data = data;
    ws->capacity = floats;
    return DK_OK;
}

float *dk_workspace_floats(dk_workspace *ws, size_t floats)
{
    if (floats > ws->capacity) {
        fprintf(stderr, "workspace: %zu floats requested, %zu reserved\n", floats, ws->capacity);
        abort();
    }
    return ws->data;
}

void dk_workspace_release(dk_workspace *ws)
{
    free(ws->data);
    ws->data = NULL;
    ws->capacity = 0;
}
