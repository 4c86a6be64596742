/* pass_work.c: a precompute pass's noisy input and accumulation, split over
 * threads by index (pass_work.h). */
#include "teacher/pass_work.h"

#include "distill/im2col.h"
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

typedef struct crop_job {
    const dk_tensor *prob;
    const int *dims, *before;
    float *acc;
} crop_job;

/* Thread t's share of the (channel, z) planes of acc. */
static void crop_worker(void *arg, int t, int nthreads)
{
    const crop_job *j = arg;
    const dk_tensor *p = j->prob;
    const int *dims = j->dims, *before = j->before;
    size_t planes = (size_t)p->c * dims[0], a, b, plane = (size_t)dims[1] * dims[2];
    dk_parallel_share(planes, t, nthreads, &a, &b);
    for (size_t q = a; q < b; q++) {
        size_t c = q / dims[0], z = q % dims[0];
        float *acc = j->acc + q * plane;
        for (int y = 0; y < dims[1]; y++) {
            const float *row =
                p->data + ((c * p->d + z + before[0]) * p->h + y + before[1]) * p->w + before[2];
            dk_add_floats(acc + (size_t)y * dims[2], row, (size_t)dims[2]);
        }
    }
}

void dk_pass_add_cropped(const dk_tensor *prob, const int dims[3], const int before[3], float *acc,
                         dk_pool *pool)
{
    crop_job j = {prob, dims, before, acc};
    size_t planes = (size_t)prob->c * dims[0];
    size_t values = planes * dims[1] * dims[2];
    dk_parallel_run(pool, dk_parallel_threads(values, MIN_PARALLEL, planes), crop_worker, &j);
}
