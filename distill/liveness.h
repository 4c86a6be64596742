/* liveness.h: packing buffers whose lifetimes are known into one arena.
 *
 * A forward-only network knows at planning time which step writes each
 * activation first and which step reads it last; two activations whose step
 * ranges do not overlap can share memory. The arena is then as large as what is
 * live at once (plus fragmentation), not the sum of all activations. */
#ifndef DK_LIVENESS_H
#define DK_LIVENESS_H

#include <stddef.h>

typedef struct dk_live_range {
    size_t floats; /* size */
    int first;     /* the step that writes it */
    int last;      /* the last step that reads it (>= first; a step's inputs and
                      outputs overlap in time, so they never share memory) */
    size_t offset; /* out: floats from the arena's start, a multiple of 16 (64 bytes) */
} dk_live_range;

/* Assign offsets so that ranges live at the same step do not overlap in memory;
 * returns the arena's size in floats. Largest first, each at the lowest offset
 * where it fits: deterministic, and within a few percent of the live peak for
 * the U-Net's shapes. */
size_t dk_liveness_assign(dk_live_range *ranges, int count);

#endif
