/* parallel.c: the fork-join runner of parallel.h (pthreads, one create/join per
 * call: the ops it runs take milliseconds, a thread start microseconds). */
#include "distill/parallel.h"

#include <pthread.h>
#include <stdbool.h>

#include "distill/blas.h"

typedef struct worker_arg {
    dk_parallel_fn fn;
    void *ctx;
    int t, nthreads;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    w->fn(w->ctx, w->t, w->nthreads);
    return NULL;
}

void dk_parallel_run(int n, dk_parallel_fn fn, void *ctx)
{
    if (n > DK_PARALLEL_MAX_THREADS) n = DK_PARALLEL_MAX_THREADS;
    if (n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    worker_arg args[DK_PARALLEL_MAX_THREADS];
    pthread_t ids[DK_PARALLEL_MAX_THREADS];
    bool started[DK_PARALLEL_MAX_THREADS] = {false};
    int blas_threads = dk_blas_threads();
    dk_blas_set_threads(1);
    for (int t = 1; t < n; t++) {
        args[t] = (worker_arg){fn, ctx, t, n};
        started[t] = pthread_create(&ids[t], NULL, worker_main, &args[t]) == 0;
    }
    fn(ctx, 0, n);
    for (int t = 1; t < n; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            fn(ctx, t, n);
    }
    dk_blas_set_threads(blas_threads);
}

int dk_parallel_threads(size_t work, size_t min_work, size_t pieces)
{
    int n = dk_blas_threads();
    if (n > DK_PARALLEL_MAX_THREADS) n = DK_PARALLEL_MAX_THREADS;
    if ((size_t)n > pieces) n = (int)pieces;
    if (work < min_work) n = 1;
    return n < 1 ? 1 : n;
}
