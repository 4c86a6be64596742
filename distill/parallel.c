/* parallel.c: the fork-join runner of parallel.h: a persistent pool (workers
 * sleep on a condition variable between runs; under load a spinning worker would
 * take the core from the thread it waits for) and the start-per-call fallback. */
#include "distill/parallel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "distill/blas.h"

typedef struct worker {
    struct dk_pool *pool;
    int t;
} worker;

struct dk_pool {
    int threads; /* workers + the caller */
    pthread_t ids[DK_PARALLEL_MAX_THREADS];
    worker workers[DK_PARALLEL_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long generation; /* bumped by each run */
    dk_parallel_fn fn;
    void *ctx;
    int n, pending; /* this run's thread count; workers still running it */
    bool quit;
};

static void *pool_main(void *arg)
{
    worker *w = arg;
    dk_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    unsigned long seen =
        0; /* the generation at creation: a run may start before this thread does */
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        if (w->t >= p->n) continue;
        dk_parallel_fn fn = p->fn;
        void *ctx = p->ctx;
        int n = p->n;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, w->t, n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

dk_pool *dk_pool_create(int threads, dk_err *err)
{
    dk_pool *p = calloc(1, sizeof *p);
    if (!p) {
        dk_err_set(err, DK_ENOMEM, "cannot allocate a thread pool");
        return NULL;
    }
    if (threads > DK_PARALLEL_MAX_THREADS) threads = DK_PARALLEL_MAX_THREADS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = 1;
    for (int t = 1; t < threads; t++) {
        p->workers[t] = (worker){p, t};
        if (pthread_create(&p->ids[t], NULL, pool_main, &p->workers[t]) != 0) break;
        p->threads++;
    }
    return p;
}

void dk_pool_free(dk_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->threads; t++)
        pthread_join(p->ids[t], NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int dk_pool_threads(const dk_pool *p)
{
    return p ? p->threads : 1;
}

static void run_on_pool(dk_pool *p, int n, dk_parallel_fn fn, void *ctx)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->ctx = ctx, p->n = n, p->pending = n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

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

static void run_on_new_threads(int n, dk_parallel_fn fn, void *ctx)
{
    worker_arg args[DK_PARALLEL_MAX_THREADS];
    pthread_t ids[DK_PARALLEL_MAX_THREADS];
    bool started[DK_PARALLEL_MAX_THREADS] = {false};
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
}

void dk_parallel_run(dk_pool *pool, int n, dk_parallel_fn fn, void *ctx)
{
    if (n > DK_PARALLEL_MAX_THREADS) n = DK_PARALLEL_MAX_THREADS;
    if (n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    int blas_threads = dk_blas_threads();
    dk_blas_set_threads(1);
    if (pool && n <= pool->threads)
        run_on_pool(pool, n, fn, ctx);
    else
        run_on_new_threads(n, fn, ctx);
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
