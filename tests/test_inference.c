/* test_inference.c: the forward-only paths. An inference plan (liveness-packed
 * activations, no gradient memory) computes the same logits and taps as the
 * training plan, bit for bit: the same ops run in the same order on the same
 * values (norms in place read each value before writing it), so no tolerance is
 * needed whatever the BLAS kernel. Reused buffers leave nothing behind between
 * forwards, and the plan holds much less memory. Precompute's passes batched
 * into one forward give the same targets, bit for bit, as one pass at a time.
 * The thread pool runs every share once, and one or two threads give the same
 * forward and gradients. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "distill/blas.h"
#include "distill/liveness.h"
#include "distill/parallel.h"
#include "distill/unet.h"
#include "teacher/precompute.h"
#include "teacher/train.h"
#include "testutil.h"

typedef struct shape {
    int n, c, d, h, w;
} shape;

/* Logits and every tap of one forward, copied out. */
typedef struct outputs {
    float *logits, *taps[DK_UNET_MAX_LEVELS];
    size_t logits_n, taps_n[DK_UNET_MAX_LEVELS];
} outputs;

static float *copy_of(const dk_tensor *t, size_t *n)
{
    *n = dk_tensor_numel(t);
    float *p = malloc(*n * sizeof(float));
    cr_assert_not_null(p);
    memcpy(p, t->data, *n * sizeof(float));
    return p;
}

static outputs run(dk_unet *net, const dk_tensor *x)
{
    outputs o = {0};
    dk_unet_forward(net, x);
    o.logits = copy_of(dk_unet_logits(net), &o.logits_n);
    for (int t = 0; t < dk_unet_tap_count(net); t++)
        if (dk_unet_tap(net, t)) o.taps[t] = copy_of(dk_unet_tap(net, t), &o.taps_n[t]);
    return o;
}

static void outputs_free(outputs *o)
{
    free(o->logits);
    for (int t = 0; t < DK_UNET_MAX_LEVELS; t++)
        free(o->taps[t]);
}

static void assert_same(const float *a, size_t an, const float *b, size_t bn, const char *what)
{
    cr_assert_eq(an, bn, "%s: %zu values against %zu", what, an, bn);
    cr_assert_eq(memcmp(a, b, an * sizeof(float)), 0, "%s differs from the training plan's", what);
}

static dk_tensor input_of(const shape *s, unsigned seed)
{
    dk_tensor x = dk_test_tensor(s->n, s->c, s->d, s->h, s->w);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), seed, -2, 2);
    return x;
}

/* The training plan's outputs against an inference plan keeping every tap, then
 * one keeping none (logits still equal, taps NULL). */
static void check_config(const dk_unet_config *c, const shape *s)
{
    dk_err err = {0};
    dk_unet *net = dk_unet_create(c, 7, &err);
    cr_assert_not_null(net, "%s", err.msg);
    dk_tensor x = input_of(s, 3);
    cr_assert_eq(dk_unet_plan(net, s->n, s->d, s->h, s->w, &err), DK_OK, "%s", err.msg);
    outputs want = run(net, &x);
    size_t train_bytes = dk_unet_activation_bytes(net);

    cr_assert_eq(dk_unet_plan_inference(net, s->n, s->d, s->h, s->w, ~0u, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_lt(dk_unet_activation_bytes(net), train_bytes / 2, "inference %zu B, training %zu B",
                 dk_unet_activation_bytes(net), train_bytes);
    outputs got = run(net, &x);
    assert_same(got.logits, got.logits_n, want.logits, want.logits_n, "logits");
    for (int t = 0; t < dk_unet_tap_count(net); t++)
        assert_same(got.taps[t], got.taps_n[t], want.taps[t], want.taps_n[t],
                    dk_unet_tap_name(net, t));
    outputs_free(&got);

    cr_assert_eq(dk_unet_plan_inference(net, s->n, s->d, s->h, s->w, 0, &err), DK_OK, "%s",
                 err.msg);
    got = run(net, &x);
    assert_same(got.logits, got.logits_n, want.logits, want.logits_n, "logits (no taps kept)");
    for (int t = 0; t < dk_unet_tap_count(net); t++)
        cr_assert_null(dk_unet_tap(net, t), "tap %d is not kept but readable", t);
    outputs_free(&got);
    outputs_free(&want);
    dk_tensor_release(&x);
    dk_unet_free(net);
}

Test(inference, reference_config_matches_training_plan)
{
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.base_width = 4;
    check_config(&c, &(shape){1, 1, 16, 16, 16});
}

Test(inference, anisotropic_leaky_matches_training_plan)
{
    dk_unet_config c = dk_unet_config_default(1, 4);
    c.levels = 4, c.base_width = 4, c.leaky_slope = 0.01f;
    int pool[3][3] = {{1, 2, 2}, {1, 2, 2}, {2, 2, 2}};
    int kernel[4][3] = {{1, 3, 3}, {3, 3, 3}, {3, 3, 1}, {3, 3, 3}};
    memcpy(c.pool, pool, sizeof pool);
    memcpy(c.kernel, kernel, sizeof kernel);
    check_config(&c, &(shape){1, 1, 4, 24, 16});
}

Test(inference, no_norm_batch_of_three_matches_training_plan)
{
    dk_unet_config c = dk_unet_config_default(2, 3);
    c.levels = 3, c.base_width = 4, c.norm = DK_NORM_NONE, c.leaky_slope = 0.1f;
    /* Batch > 1: skip and up are separate and concatenated by copy. */
    check_config(&c, &(shape){3, 2, 8, 8, 12});
}

Test(inference, reused_buffers_leave_nothing_behind)
{
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.levels = 3, c.base_width = 4;
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&c, 5, &err);
    cr_assert_not_null(net, "%s", err.msg);
    shape s = {2, 1, 8, 16, 16};
    cr_assert_eq(dk_unet_plan_inference(net, s.n, s.d, s.h, s.w, 1u << 2, &err), DK_OK, "%s",
                 err.msg);
    dk_tensor a = input_of(&s, 1), b = input_of(&s, 2);
    outputs first = run(net, &a), other = run(net, &b), again = run(net, &a);
    assert_same(again.logits, again.logits_n, first.logits, first.logits_n, "logits after reuse");
    assert_same(again.taps[2], again.taps_n[2], first.taps[2], first.taps_n[2], "bottleneck");
    cr_assert_neq(memcmp(other.logits, first.logits, first.logits_n * sizeof(float)), 0);
    /* Back to a training plan: the arena is gone, the logits are the same. */
    cr_assert_eq(dk_unet_plan(net, s.n, s.d, s.h, s.w, &err), DK_OK, "%s", err.msg);
    outputs trained = run(net, &a);
    assert_same(trained.logits, trained.logits_n, first.logits, first.logits_n, "training plan");
    outputs_free(&trained);
    outputs_free(&first);
    outputs_free(&other);
    outputs_free(&again);
    dk_tensor_release(&a);
    dk_tensor_release(&b);
    dk_unet_free(net);
}

Test(inference, liveness_packs_disjoint_lifetimes_together)
{
    /* a [0,1] and c [2,3] may share; b [1,2] overlaps both in time. */
    dk_live_range r[3] = {{100, 0, 1, 0}, {50, 1, 2, 0}, {100, 2, 3, 0}};
    size_t total = dk_liveness_assign(r, 3);
    cr_assert_eq(r[0].offset, 0);
    cr_assert_eq(r[2].offset, 0, "c should reuse a's memory");
    cr_assert_geq(r[1].offset, 112, "b overlaps a and c in time");
    cr_assert_eq(total, 112 + 64);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r[i].offset % 16, 0);
}

/* ---- precompute: the passes batched give the targets of one pass at a time, and
 * side by side those of one pass at a time on one thread ---- */

/* The targets with these options on `threads` threads (0: as set). */
static dk_targets targets_with(const char *teacher, dk_volume *v, int passes, int batch, int lanes,
                               int threads)
{
    int prev = dk_blas_threads();
    if (threads) dk_blas_set_threads(threads);
    dk_err err = {0};
    dk_precompute_options o = dk_precompute_options_default();
    o.teacher_path = teacher, o.passes = passes, o.pass_batch = batch, o.pass_lanes = lanes;
    o.feature_count = 2;
    strcpy(o.feature_layers[1], "dec1");
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &o.profile, &err), DK_OK, "%s", err.msg);
    dk_precomputer *pc = dk_precomputer_create(&o, &err);
    cr_assert_not_null(pc, "%s", err.msg);
    dk_targets t;
    cr_assert_eq(dk_precompute_volume(pc, v, 0, &t, &err), DK_OK, "%s", err.msg);
    dk_precomputer_free(pc);
    dk_blas_set_threads(prev);
    return t;
}

static void assert_same_targets(const dk_targets *a, const dk_targets *b, int classes)
{
    size_t pv = dk_grid_voxels(&a->info.grid);
    cr_assert_eq(memcmp(a->response, b->response, sizeof(float) * classes * pv), 0, "response");
    cr_assert_eq(memcmp(a->uncertainty, b->uncertainty, sizeof(float) * pv), 0, "uncertainty");
    size_t f0 = dk_grid_voxels(&a->info.feature_grid[0]) * 16; /* bottleneck: 16 channels */
    size_t f1 = dk_grid_voxels(&a->info.feature_grid[1]) * 8;  /* dec1: 8 channels */
    cr_assert_eq(memcmp(a->features[0], b->features[0], sizeof(float) * f0), 0, "bottleneck");
    cr_assert_eq(memcmp(a->features[1], b->features[1], sizeof(float) * f1), 0, "dec1");
}

Test(inference, precompute_batched_or_side_by_side_passes_give_the_same_targets, .timeout = 240)
{
    char *dir = dk_test_tmpdir(), data[512], teacher[512];
    snprintf(data, sizeof data, "%s/repo.h5", dir);
    snprintf(teacher, sizeof teacher, "%s/teacher.h5", dir);
    dk_test_write_phantoms(data, 2, 1, true);
    dk_test_train_teacher(data, teacher,
                          "{\"network\": {\"levels\": 3, \"base_width\": 4, \"pool\": [[1, 2, 2], "
                          "[2, 2, 2]], \"kernel\": [[1, 3, 3], [3, 3, 3], [3, 3, 3]]}, "
                          "\"patch\": [16, 16, 16], \"batch\": 1, \"steps\": 2, "
                          "\"steps_per_epoch\": 2, \"checkpoint_every\": 0}",
                          3);
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(data, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    dk_volume v;
    cr_assert_eq(dk_dataset_read(ds, 0, &v, &err), DK_OK, "%s", err.msg);
    int classes = dk_dataset_classes(ds)->count;
    /* A lane runs its passes on one thread, so lanes give the bits of one pass at a
     * time on one thread. On all threads that differs where OpenBLAS's GEMM depends
     * on its thread count (its Haswell and Zen kernels), so batches, which run on
     * all threads, are held to one pass at a time on all threads. */
    dk_targets one = targets_with(teacher, &v, 4, 1, 1, 0),
               single = targets_with(teacher, &v, 4, 1, 1, 1);
    const struct {
        int batch, lanes;
        const dk_targets *like;
    } cases[] = {
        {4, 1, &one},    {3, 1, &one}, /* 3 does not divide 4: 2 */
        {0, 1, &one},    {2, 2, &one}, /* batched: one lane */
        {1, 2, &single},               /* side by side: 2 passes per lane */
        {1, 3, &single},               /* lanes taking 2, 1 and 1 passes */
        {1, 0, &single},               /* a lane per thread (one pass at a time on one) */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dk_targets t = targets_with(teacher, &v, 4, cases[k].batch, cases[k].lanes, 0);
        assert_same_targets(&t, cases[k].like, classes);
        dk_targets_release(&t);
    }
    dk_targets_release(&one);
    dk_targets_release(&single);
    dk_volume_release(&v);
    dk_dataset_close(ds);
    dk_test_rmtree(dir);
    free(dir);
}

/* ---- the thread pool ---- */

typedef struct pool_probe {
    int seen[8][8]; /* [run][t]: nthreads as thread t saw it */
    int run;
} pool_probe;

static void probe(void *ctx, int t, int nthreads)
{
    pool_probe *p = ctx;
    p->seen[p->run][t] = nthreads;
}

Test(inference, pool_runs_every_share_once_per_run)
{
    dk_err err = {0};
    dk_pool *pool = dk_pool_create(3, &err);
    cr_assert_not_null(pool, "%s", err.msg);
    cr_assert_eq(dk_pool_threads(pool), 3);
    pool_probe p = {0};
    int counts[6] = {3, 2, 3, 1, 5, 3}; /* 5 > the pool: threads started for that run */
    for (p.run = 0; p.run < 6; p.run++) {
        dk_parallel_run(pool, counts[p.run], probe, &p);
        for (int t = 0; t < 8; t++)
            cr_assert_eq(p.seen[p.run][t], t < counts[p.run] ? counts[p.run] : 0,
                         "run %d, thread %d", p.run, t);
    }
    dk_pool_free(pool);
    dk_pool_free(NULL);
}

/* Logits and parameter gradients of one forward and backward at a thread count. */
#define MAX_PARAMS 128

/* The logits and every parameter gradient of one step on `threads` threads; the
 * gradients flattened, sizes[i] floats for parameter i of *count. */
static void step_outputs(const dk_unet_config *c, int threads, float **logits, float **grads,
                         size_t *nl, size_t *ng, size_t sizes[MAX_PARAMS], int *count)
{
    dk_blas_set_threads(threads);
    cr_assert_eq(dk_blas_threads(), threads);
    dk_err err = {0};
    dk_unet *net = dk_unet_create(c, 11, &err);
    cr_assert_not_null(net, "%s", err.msg);
    shape s = {1, 1, 16, 32, 32}; /* the layers thread from 2^17 values on */
    cr_assert_eq(dk_unet_plan(net, s.n, s.d, s.h, s.w, &err), DK_OK, "%s", err.msg);
    dk_tensor x = input_of(&s, 4);
    dk_unet_forward(net, &x);
    *logits = copy_of(dk_unet_logits(net), nl);
    dk_tensor *g = dk_unet_logits_grad(net);
    dk_test_fill_uniform(g->data, dk_tensor_numel(g), 6, -1, 1);
    dk_unet_backward(net, g, NULL, 0);
    const dk_params *ps = dk_unet_params(net);
    *ng = dk_params_numel(ps);
    *grads = malloc(*ng * sizeof(float));
    size_t at = 0;
    cr_assert_leq(ps->count, MAX_PARAMS);
    *count = ps->count;
    for (int i = 0; i < ps->count; i++) {
        size_t n = dk_tensor_numel(&ps->items[i]->grad);
        sizes[i] = n;
        memcpy(*grads + at, ps->items[i]->grad.data, n * sizeof(float));
        at += n;
    }
    dk_tensor_release(&x);
    dk_unet_free(net);
    dk_blas_set_threads(1);
}

/* sqrt(sum (a - b)^2) / sqrt(sum a^2) over n values, in double. */
static double norm_rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

Test(inference, one_and_two_threads_give_the_same_step_to_float_rounding)
{
    /* dualkd's own ops split their work by fixed pieces (parallel.h), but OpenBLAS's
     * multi-threaded GEMM sums in another order under some kernels (Haswell, Zen:
     * the last bits of the logits differ between 1 and 2 threads), so the two runs
     * agree to float32 rounding, not bit for bit. A race or a lost share is off by
     * far more.
     * A parameter gradient is a sum over every voxel of terms of both signs; one
     * element can cancel to a small fraction of its terms, and its rounding is then
     * large against itself (0.893113 against 0.893241 under Haswell): so each
     * parameter's gradient is compared as a whole, by the norm of the difference
     * against the norm of the gradient, where a cancelling element weighs what it
     * is. Measured: at most 1.3e-6 under Haswell and Zen, 0 under SkylakeX. */
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.levels = 3, c.base_width = 8;
    int pool[2][3] = {{1, 2, 2}, {2, 2, 2}};
    memcpy(c.pool, pool, sizeof pool);
    float *l1, *g1, *l2, *g2;
    size_t nl1, ng1, nl2, ng2, sizes1[MAX_PARAMS], sizes2[MAX_PARAMS];
    int count1, count2;
    step_outputs(&c, 1, &l1, &g1, &nl1, &ng1, sizes1, &count1);
    step_outputs(&c, 2, &l2, &g2, &nl2, &ng2, sizes2, &count2);
    cr_assert_eq(nl1, nl2);
    cr_assert_eq(ng1, ng2);
    cr_assert_eq(count1, count2);
    double dl = dk_test_max_rel_diff(l2, l1, nl1);
    cr_expect_lt(dl, 1e-5, "logits on 2 threads differ from 1 thread's by %g", dl);
    size_t at = 0;
    for (int i = 0; i < count1; i++) {
        double dg = norm_rel_diff(g1 + at, g2 + at, sizes1[i]);
        cr_expect_lt(dg, 1e-4, "parameter %d's gradient on 2 threads differs from 1 thread's by %g",
                     i, dg);
        at += sizes1[i];
    }
    free(l1), free(g1), free(l2), free(g2);
}
