/* liveness.c: the greedy arena packing of liveness.h. */
#include "distill/liveness.h"

#include <stdbool.h>
#include <stdlib.h>

#include "distill/workspace.h"

static bool overlap_in_time(const dk_live_range *a, const dk_live_range *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* Lowest 64-byte-aligned offset where r fits beside the placed ranges that are
 * live with it: try 0 and the end of each of them, keep the lowest that is clear. */
static size_t lowest_fit(const dk_live_range *r, const dk_live_range *all, const int *placed,
                         int nplaced)
{
    size_t best = (size_t)-1, size = dk_line_floats(r->floats);
    for (int c = -1; c < nplaced; c++) {
        size_t at = c < 0 ? 0 : dk_line_floats(all[placed[c]].offset + all[placed[c]].floats);
        if (at >= best) continue;
        bool clear = true;
        for (int i = 0; clear && i < nplaced; i++) {
            const dk_live_range *o = &all[placed[i]];
            clear = !overlap_in_time(r, o) || at + size <= o->offset ||
                    dk_line_floats(o->offset + o->floats) <= at;
        }
        if (clear) best = at;
    }
    return best;
}

size_t dk_liveness_assign(dk_live_range *ranges, int count)
{
    int *order = malloc(sizeof(int) * (count > 0 ? count : 1));
    if (!order) return 0;
    for (int i = 0; i < count; i++)
        order[i] = i;
    /* Insertion sort, largest first, ties in the given order: a handful of ranges. */
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && ranges[order[j]].floats > ranges[order[j - 1]].floats; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        dk_live_range *r = &ranges[order[i]];
        r->offset = lowest_fit(r, ranges, order, i);
        if (dk_line_floats(r->offset + r->floats) > total)
            total = dk_line_floats(r->offset + r->floats);
    }
    free(order);
    return total;
}
