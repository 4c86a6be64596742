/* parallel.h: fork-join over a few threads for the numerical core (convolutions
 * and the layers). Callers keep results independent of timing: either work is
 * split by index, or threads take pieces from a shared counter where each piece's
 * result does not depend on which thread computes it (and sums over pieces are
 * added in piece order). So a result depends on the thread count at most, never
 * on which thread ran what, nor on whether a pool or fresh threads ran it.
 *
 * A dk_pool is a persistent team of worker threads owned by whoever creates it
 * (a network owns one: dk_unet_plan), so a forward pass does not start ~60
 * threads. Without a pool, dk_parallel_run starts and joins threads per call.
 *
 * OpenBLAS is set to one thread while the workers run (they call single-threaded
 * GEMMs themselves) and restored after, so the process runs n threads in all. */
#ifndef DK_PARALLEL_H
#define DK_PARALLEL_H

#include <stddef.h>

#include "distill/err.h"

#define DK_PARALLEL_MAX_THREADS 64

typedef void (*dk_parallel_fn)(void *ctx, int t, int nthreads);

typedef struct dk_pool dk_pool;

/* A team of `threads` (capped at DK_PARALLEL_MAX_THREADS; the caller of a run is
 * thread 0, so threads - 1 workers wait in it). Workers that cannot be started
 * make the team smaller. Caller frees with dk_pool_free. NULL on failure. */
dk_pool *dk_pool_create(int threads, dk_err *err);
/* Stops and joins the workers. NULL is a no-op. */
void dk_pool_free(dk_pool *pool);
/* Threads a run on this pool can use (1 for NULL). */
int dk_pool_threads(const dk_pool *pool);

/* Run fn(ctx, t, n) for t in [0, n), t = 0 on the calling thread, on the pool's
 * workers when it has n threads, else on threads started for this call (a thread
 * that cannot be started has its share run by the caller). One run at a time per
 * pool: a pool belongs to one caller thread. */
void dk_parallel_run(dk_pool *pool, int n, dk_parallel_fn fn, void *ctx);

/* Threads for `work` values of streaming work: dk_blas_threads() (capped at
 * DK_PARALLEL_MAX_THREADS and at `pieces`), or 1 below `min_work` values, where
 * waking a thread costs more than it saves. */
int dk_parallel_threads(size_t work, size_t min_work, size_t pieces);

/* Thread t's share [*a, *b) of count items split n ways. */
static inline void dk_parallel_share(size_t count, int t, int n, size_t *a, size_t *b)
{
    *a = count * t / n;
    *b = count * (t + 1) / n;
}

#endif
