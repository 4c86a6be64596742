/* precompute_passes.c: a volume's N noisy teacher passes into the accumulators of
 * its targets (precompute_internal.h), side by side or a batch at a time. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "distill/layers.h"
#include "distill/parallel.h"
#include "teacher/pass_work.h"
#include "teacher/precompute_internal.h"

/* Sample i of net's forward: its softmax at T and at 1 and its taps into the
 * accumulators, on pool's threads (NULL: this one). */
static void accumulate_sample(dk_precomputer *pc, dk_unet *net, int i, const int dims[3],
                              const int before[3], const size_t fn[], dk_pool *pool)
{
    dk_softmax_channels_accumulate(dk_unet_logits(net), i, (float)pc->opt.temperature, dims, before,
                                   pc->acc_soft, pc->acc_plain, pool);
    for (int k = 0; k < pc->m.feature_count; k++) {
        const float *t = dk_unet_tap(net, pc->m.features[k].teacher_tap)->data + fn[k] * i;
        for (size_t j = 0; j < fn[k]; j++)
            pc->feat_acc[k][j] += t[j];
    }
}

/* The noisy input of pass p into out, on pool's threads (NULL: this one). */
static void noisy_input(const dk_precomputer *pc, uint64_t noise_seed, int p, float *out,
                        dk_pool *pool)
{
    dk_pass_noisy_input(pc->x.data, dk_tensor_numel(&pc->x), pc->opt.input_noise,
                        noise_seed + (uint64_t)p * 0x9E3779B97F4A7C15ULL, out, pool);
}

/* The passes side by side: lane t runs the passes it takes from a shared counter on
 * its own copy of the teacher, on one thread, and adds each into the accumulators
 * once every earlier pass is in: in pass order, the same sums as one pass at a time
 * on one thread.
 * A lane waits only for passes taken before its own, whose lanes never wait for a
 * later one, so no lane waits forever, even when the lanes run one after another. */
typedef struct lanes_job {
    dk_precomputer *pc;
    uint64_t noise_seed;
    const int *dims, *before;
    const size_t *fn;
    atomic_int next; /* the next pass to take */
    int added;       /* passes in the accumulators (under mu) */
    pthread_mutex_t mu;
    pthread_cond_t turn;
} lanes_job;

static void lane_worker(void *arg, int t, int nthreads)
{
    (void)nthreads;
    lanes_job *j = arg;
    dk_precomputer *pc = j->pc;
    dk_unet *net = t == 0 ? pc->teacher : pc->twins[t - 1];
    const int *d = pc->planned;
    dk_tensor noisy = dk_tensor_view(pc->noisy.data + dk_tensor_numel(&pc->x) * (size_t)t, 1, 1,
                                     d[0], d[1], d[2]);
    for (int p; (p = atomic_fetch_add(&j->next, 1)) < pc->opt.passes;) {
        noisy_input(pc, j->noise_seed, p, noisy.data, NULL);
        dk_unet_forward(net, &noisy);
        pthread_mutex_lock(&j->mu);
        while (j->added < p)
            pthread_cond_wait(&j->turn, &j->mu);
        pthread_mutex_unlock(&j->mu);
        accumulate_sample(pc, net, 0, j->dims, j->before, j->fn, NULL);
        pthread_mutex_lock(&j->mu);
        j->added = p + 1;
        pthread_cond_broadcast(&j->turn);
        pthread_mutex_unlock(&j->mu);
    }
}

static void run_lanes(dk_precomputer *pc, uint64_t noise_seed, const int dims[3],
                      const int before[3], const size_t fn[])
{
    lanes_job j = {.pc = pc, .noise_seed = noise_seed, .dims = dims, .before = before, .fn = fn};
    atomic_init(&j.next, 0);
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.turn, NULL);
    dk_parallel_run(dk_unet_pool(pc->teacher), pc->lanes, lane_worker, &j);
    pthread_cond_destroy(&j.turn);
    pthread_mutex_destroy(&j.mu);
}

/* The passes a batch at a time (pc->batch per forward) on all the teacher's threads. */
static void run_batches(dk_precomputer *pc, uint64_t noise_seed, const int dims[3],
                        const int before[3], const size_t fn[])
{
    dk_pool *pool = dk_unet_pool(pc->teacher);
    size_t n = dk_tensor_numel(&pc->x);
    for (int p0 = 0; p0 < pc->opt.passes; p0 += pc->batch) {
        for (int s = 0; s < pc->batch; s++)
            noisy_input(pc, noise_seed, p0 + s, pc->noisy.data + n * s, pool);
        dk_unet_forward(pc->teacher, &pc->noisy);
        for (int i = 0; i < pc->batch; i++)
            accumulate_sample(pc, pc->teacher, i, dims, before, fn, pool);
    }
}

void dk_precompute_passes(dk_precomputer *pc, uint64_t noise_seed, const int dims[3],
                          const int before[3])
{
    const dk_precompute_options *o = &pc->opt;
    size_t cells = (size_t)pc->tcfg.classes * pc->grid_voxels, fn[DK_STORE_MAX_FEATURES];
    memset(pc->acc_soft, 0, cells * sizeof(float));
    memset(pc->acc_plain, 0, cells * sizeof(float));
    for (int k = 0; k < pc->m.feature_count; k++) {
        int ch, d[3];
        dk_unet_tap_dims(&pc->tcfg, pc->m.features[k].teacher_tap, pc->planned, &ch, d);
        fn[k] = (size_t)ch * d[0] * d[1] * d[2];
        memset(pc->feat_acc[k], 0, fn[k] * sizeof(float));
    }
    if (pc->lanes > 1)
        run_lanes(pc, noise_seed, dims, before, fn);
    else
        run_batches(pc, noise_seed, dims, before, fn);
    float inv = 1.0f / (float)o->passes;
    for (size_t i = 0; i < cells; i++)
        pc->acc_soft[i] *= inv, pc->acc_plain[i] *= inv;
    for (int k = 0; k < pc->m.feature_count; k++)
        for (size_t i = 0; i < fn[k]; i++)
            pc->feat_acc[k][i] *= inv;
}
