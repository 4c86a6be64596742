/* workspace.h: a reusable scratch buffer for the hot path, and the threads the
 * ops that borrow it run on.
 *
 * Layers say up front how much scratch they need (dk_workspace_reserve, at
 * planning time, may allocate); during forward/backward they only borrow it
 * (dk_workspace_floats, never allocates). One workspace serves a whole network
 * because layers run one after another. */
#ifndef DK_WORKSPACE_H
#define DK_WORKSPACE_H

#include <stddef.h>

#include "distill/err.h"
#include "distill/parallel.h"

typedef struct dk_workspace {
    float *data;
    size_t capacity; /* in floats */
    dk_pool *pool;   /* borrowed threads for the ops using this workspace; NULL: each
                        op starts its own (see parallel.h) */
} dk_workspace;

/* n floats rounded up to whole 64-byte cache lines (16 floats): areas carved one
 * after another from a workspace (aligned_alloc(64)) each start on a line. */
static inline size_t dk_line_floats(size_t n)
{
    return (n + 15) / 16 * 16;
}

/* Grow the buffer to hold at least `floats` floats (contents are not kept). */
dk_status dk_workspace_reserve(dk_workspace *ws, size_t floats, dk_err *err);

/* Borrow `floats` floats; aborts if the plan reserved less (a bug, not an input error).
 * Valid until the next reserve or release. */
float *dk_workspace_floats(dk_workspace *ws, size_t floats);

void dk_workspace_release(dk_workspace *ws);

#endif
