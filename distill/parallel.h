/* parallel.h: fork-join over a few threads for the numerical core (convolutions
 * and the layers). Callers keep results independent of timing: either work is
 * split by index, or threads take pieces from a shared counter where each piece's
 * result does not depend on which thread computes it (and sums over pieces are
 * added in piece order).
 *
 * OpenBLAS is set to one thread while the workers run (they call single-threaded
 * GEMMs themselves) and restored after, so the process runs n threads in all. */
#ifndef DK_PARALLEL_H
#define DK_PARALLEL_H

#include <stddef.h>

#define DK_PARALLEL_MAX_THREADS 64

typedef void (*dk_parallel_fn)(void *ctx, int t, int nthreads);

/* Run fn(ctx, t, n) for t in [0, n), t = 0 on the calling thread. A thread that
 * cannot be started has its share run by the caller: the result is the same. */
void dk_parallel_run(int n, dk_parallel_fn fn, void *ctx);

/* Threads for `work` values of streaming work: dk_blas_threads() (capped at
 * DK_PARALLEL_MAX_THREADS and at `pieces`), or 1 below `min_work` values, where
 * starting a thread costs more than it saves. */
int dk_parallel_threads(size_t work, size_t min_work, size_t pieces);

/* Thread t's share [*a, *b) of count items split n ways. */
static inline void dk_parallel_share(size_t count, int t, int n, size_t *a, size_t *b)
{
    *a = count * t / n;
    *b = count * (t + 1) / n;
}

#endif
