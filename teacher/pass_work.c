/* pass_work.c: a precompute pass's noisy input, split over threads by index
 * (pass_work.h). */
#include "teacher/pass_work.h"

#include "distill/normal.h"
#include "distill/rng.h"

/* Below this many values a second thread costs more than it saves. */
#define MIN_PARALLEL ((size_t)1 << 17)

typedef struct noise_job {
    const float *x;
    size_t n;
    double sigma;
    uint64_t seed;
    float *out;
} noise_job;

/* Normals drawn per block, on the stack. */
#define NOISE_BLOCK 256

static void noise_worker(void *arg, int t, int nthreads)
{
    const noise_job *j = arg;
    size_t a, b;
    dk_parallel_share(j->n, t, nthreads, &a, &b);
    dk_rng rng = dk_rng_seed(j->seed);
    dk_rng_skip(&rng, 2 * (uint64_t)a); /* two draws per value */
    double z[NOISE_BLOCK];
    for (size_t i = a; i < b; i += NOISE_BLOCK) {
        size_t m = b - i < NOISE_BLOCK ? b - i : NOISE_BLOCK;
        dk_normal_fill(&rng, m, z);
        dk_rng_skip(&rng, 2 * (uint64_t)m);
        for (size_t k = 0; k < m; k++)
            j->out[i + k] = j->x[i + k] + (float)(j->sigma * z[k]);
    }
}

void dk_pass_noisy_input(const float *x, size_t n, double sigma, uint64_t seed, float *out,
                         dk_pool *pool)
{
    noise_job j = {x, n, sigma, seed, out};
    dk_parallel_run(pool, dk_parallel_threads(n, MIN_PARALLEL, n), noise_worker, &j);
}
