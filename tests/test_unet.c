/* test_unet.c: the U-Net as a whole: config JSON, planning errors, the full
 * backward (parameters and feature taps) against finite differences, that it
 * overfits a small labelled volume, and that training is deterministic. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/optim.h"
#include "distill/train_step.h"
#include "distill/unet.h"
#include "testutil.h"

static dk_unet_config tiny_config(int levels, int width)
{
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.levels = levels;
    c.base_width = width;
    return c;
}

Test(unet_config, json_round_trip)
{
    dk_unet_config c = tiny_config(3, 4), back;
    c.pool[0][0] = 1; /* anisotropic: no down-sampling across thick slices */
    c.kernel[0][0] = 1;
    c.leaky_slope = 0.01f;
    char *text = dk_unet_config_to_json(&c);
    dk_err err = {0};
    cr_assert_eq(dk_unet_config_from_json(text, &back, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(back.levels, 3);
    cr_assert_eq(back.pool[0][0], 1);
    cr_assert_eq(back.pool[1][0], 2);
    cr_assert_eq(back.kernel[0][0], 1);
    cr_assert_float_eq(back.leaky_slope, 0.01f, 1e-7);
    free(text);
}

Test(unet_config, bad_json_names_the_field)
{
    dk_unet_config c;
    dk_err err = {0};
    cr_assert_neq(dk_unet_config_from_json("{\"kind\":\"unet3d\",\"in_channels\":1,\"classes\":3,"
                                           "\"levels\":2,\"base_width\":4,\"pool\":[[2,2,2]],"
                                           "\"kernel\":[[3,3,3],[4,3,3]]}",
                                           &c, &err),
                  DK_OK);
    cr_assert(strstr(err.msg, "kernel[1]"), "%s", err.msg);
    cr_assert_neq(dk_unet_config_from_json("{\"kind\":\"unet3d\",\"levls\":2}", &c, &err), DK_OK);
    cr_assert(strstr(err.msg, "levls"), "%s", err.msg);
    cr_assert_neq(dk_unet_config_from_json("not json", &c, &err), DK_OK);
}

Test(unet, plan_rejects_indivisible_input)
{
    dk_unet_config c = tiny_config(3, 2);
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&c, 1, &err);
    cr_assert_not_null(net, "%s", err.msg);
    cr_assert_eq(dk_unet_plan(net, 1, 8, 10, 8, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "h = 10"), "%s", err.msg);
    dk_unet_free(net);
}

Test(unet, tap_shapes_follow_the_pooling)
{
    dk_unet_config c = tiny_config(3, 4);
    c.pool[0][0] = 1;
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&c, 1, &err);
    cr_assert_eq(dk_unet_plan(net, 1, 4, 8, 8, &err), DK_OK, "%s", err.msg);
    dk_tensor x;
    dk_tensor_alloc(&x, 1, 1, 4, 8, 8, NULL);
    dk_unet_forward(net, &x);
    int b = dk_unet_tap_index(net, "bottleneck"), ch, dims[3];
    cr_assert_eq(b, 2);
    dk_unet_tap_dims(&c, b, (int[]){4, 8, 8}, &ch, dims);
    const dk_tensor *t = dk_unet_tap(net, b);
    cr_assert(t->c == 16 && ch == 16 && t->d == 2 && dims[0] == 2 && t->h == 2 && dims[1] == 2);
    cr_assert_eq(dk_unet_tap_index(net, "dec0"), 0);
    cr_assert_eq(dk_unet_tap(net, 0)->d, 4);
    cr_assert_eq(dk_unet_tap_index(net, "nope"), -1);
    dk_tensor_release(&x);
    dk_unet_free(net);
}

/* F = sum(logits * r) + sum(tap * q): checks every path of the backward. */
typedef struct grad_ctx {
    dk_unet *net;
    dk_tensor *x, r, q;
    int tap;
} grad_ctx;

static double objective(void *p)
{
    grad_ctx *g = p;
    dk_unet_forward(g->net, g->x);
    const dk_tensor *y = dk_unet_logits(g->net), *t = dk_unet_tap(g->net, g->tap);
    double s = 0;
    for (size_t i = 0; i < dk_tensor_numel(y); i++) s += (double)y->data[i] * g->r.data[i];
    for (size_t i = 0; i < dk_tensor_numel(t); i++) s += (double)t->data[i] * g->q.data[i];
    return s;
}

/* Compare <grad, v> with the slope of F along a random direction v over the
 * whole tensor: one number per parameter. The slope is fitted from 13 points and
 * carries its own float32-noise allowance (testutil.c), so the check holds under
 * every BLAS kernel; ReLU kinks crossed by the step widen that allowance. This
 * checks the wiring of the network's backward -- a missing skip gradient or a
 * swapped buffer is off by O(1) -- while each layer's own test checks its
 * backward to float precision. The allowance must stay below a quarter of
 * |g|*|v|/sqrt(n), the typical size of <g, v> for a random v, or the check would
 * say nothing. */
static double directional_error(grad_ctx *g, dk_param *p)
{
    size_t n = dk_tensor_numel(&p->value);
    float *v = malloc(n * sizeof(float));
    dk_test_fill_uniform(v, n, 17, -1, 1);
    double analytic = 0, gg = 0, vv = 0;
    for (size_t k = 0; k < n; k++) {
        analytic += (double)p->grad.data[k] * v[k];
        gg += (double)p->grad.data[k] * p->grad.data[k];
        vv += (double)v[k] * v[k];
    }
    dk_test_slope s = dk_test_measure_slope(objective, g, p->value.data, v, n, 1e-4);
    free(v);
    double typical = sqrt(gg * vv / (double)n);
    if (getenv("DK_TEST_VERBOSE"))
        fprintf(stderr, "%-28s n %6zu  <g,v> %+.6e  slope %+.6e  noise %.2e  typical %.2e\n",
                p->name, n, analytic, s.slope, s.noise, typical);
    cr_expect_lt(s.noise, 0.25 * typical + 1e-6, "parameter %s: finite-difference noise %g too "
                 "large against <g,v> ~ %g", p->name, s.noise, typical);
    return dk_test_slope_error(analytic, s, 1e-3);
}

/* batch 1 runs the copy-free concat (views into it), batch 2 the copying one. */
static void check_full_backward(dk_unet_config c, int batch, int d, int h, int w)
{
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&c, 7, &err);
    cr_assert_not_null(net, "%s", err.msg);
    cr_assert_eq(dk_unet_plan(net, batch, d, h, w, &err), DK_OK, "%s", err.msg);
    dk_tensor x;
    dk_tensor_alloc(&x, batch, 1, d, h, w, NULL);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 3, -1, 1);
    grad_ctx g = {.net = net, .x = &x, .tap = dk_unet_tap_index(net, "bottleneck")};
    dk_tensor_alloc_like(&g.r, dk_unet_logits(net), NULL);
    dk_test_fill_uniform(g.r.data, dk_tensor_numel(&g.r), 4, -1, 1);
    dk_unet_forward(net, &x);
    dk_tensor_alloc_like(&g.q, dk_unet_tap(net, g.tap), NULL);
    dk_test_fill_uniform(g.q.data, dk_tensor_numel(&g.q), 5, -1, 1);

    const dk_params *ps = dk_unet_params(net);
    dk_params_zero_grad(ps);
    dk_unet_backward(net, &g.r, &(dk_tap_grad){g.tap, &g.q}, 1);
    for (int i = 0; i < ps->count; i++) {
        double worst = directional_error(&g, ps->items[i]);
        cr_expect_lt(worst, 3e-2, "parameter %s: relative error %g", ps->items[i]->name, worst);
    }
    dk_tensor_release(&g.r);
    dk_tensor_release(&g.q);
    dk_tensor_release(&x);
    dk_unet_free(net);
}

Test(unet, backward_matches_finite_differences)
{
    check_full_backward(tiny_config(3, 2), 2, 16, 16, 16);
}

/* Batch 1: the skip and the up-conv live in the concat. (Without norm: with
 * width-2 norms over tiny batch-1 planes, the objective is too rough along a
 * random direction for a difference quotient; the test below checks the norm
 * case against batch 2.) */
Test(unet, backward_matches_finite_differences_with_batch_1)
{
    dk_unet_config c = tiny_config(3, 2);
    c.norm = DK_NORM_NONE;
    c.leaky_slope = 0.1f;
    check_full_backward(c, 1, 8, 8, 8);
}

Test(unet, anisotropic_backward_without_norm)
{
    dk_unet_config c = tiny_config(2, 2);
    c.pool[0][0] = 1;
    c.kernel[0][0] = 1;
    c.kernel[1][0] = 1;
    c.norm = DK_NORM_NONE;
    c.leaky_slope = 0.1f;
    check_full_backward(c, 2, 2, 4, 6);
}

/* One forward and backward of each sample of x alone (batch 1: the skip and the
 * up-conv write into the concat) and of both together (batch 2: copied into it);
 * the logits must agree per sample and the parameter gradients as sums. */
static void run_batch(const dk_unet_config *c, const dk_tensor *x, int first, int count,
                      float *logits, float *grads)
{
    dk_unet *net = dk_unet_create(c, 3, NULL);
    cr_assert_eq(dk_unet_plan(net, count, x->d, x->h, x->w, NULL), DK_OK);
    size_t sample = dk_tensor_numel(x) / x->n;
    dk_tensor xs = dk_tensor_view(x->data + first * sample, count, 1, x->d, x->h, x->w);
    dk_unet_forward(net, &xs);
    dk_tensor *y = dk_unet_logits(net), *dy = dk_unet_logits_grad(net);
    memcpy(logits, y->data, dk_tensor_numel(y) * sizeof(float));
    for (size_t i = 0; i < dk_tensor_numel(y); i++)
        dy->data[i] = sinf(0.37f * (float)(i + first * dk_tensor_numel(y)));
    const dk_params *ps = dk_unet_params(net);
    dk_params_zero_grad(ps);
    dk_unet_backward(net, dy, NULL, 0);
    for (int i = 0; i < ps->count; i++) {
        size_t n = dk_tensor_numel(&ps->items[i]->grad);
        for (size_t k = 0; k < n; k++) grads[k] += ps->items[i]->grad.data[k];
        grads += n;
    }
    dk_unet_free(net);
}

Test(unet, batch_of_two_equals_two_batches_of_one)
{
    dk_unet_config c = tiny_config(3, 4);
    enum { S = 8 };
    dk_tensor x;
    dk_tensor_alloc(&x, 2, 1, S, S, S, NULL);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 8, -1, 1);
    dk_unet *probe = dk_unet_create(&c, 3, NULL);
    size_t np = dk_params_numel(dk_unet_params(probe)), nl = 2 * 3 * S * S * S;
    dk_unet_free(probe);
    float *l1 = calloc(nl, sizeof(float)), *l2 = calloc(nl, sizeof(float));
    float *g1 = calloc(np, sizeof(float)), *g2 = calloc(np, sizeof(float));
    run_batch(&c, &x, 0, 1, l1, g1);
    run_batch(&c, &x, 1, 1, l1 + nl / 2, g1);
    run_batch(&c, &x, 0, 2, l2, g2);
    double dl = dk_test_max_rel_diff(l1, l2, nl), dg = dk_test_max_rel_diff(g1, g2, np);
    cr_expect_lt(dl, 1e-5, "logits differ by %g", dl);
    cr_expect_lt(dg, 1e-4, "parameter gradients differ by %g", dg);
    free(l1);
    free(l2);
    free(g1);
    free(g2);
    dk_tensor_release(&x);
}

/* A small volume with two nested blobs (classes 1 and 2) on background. */
static void make_blobs(dk_tensor *x, uint8_t *labels, int size)
{
    dk_tensor_alloc(x, 1, 1, size, size, size, NULL);
    float c = (size - 1) / 2.0f;
    for (int z = 0; z < size; z++)
        for (int y = 0; y < size; y++)
            for (int w = 0; w < size; w++) {
                float r = sqrtf((z - c) * (z - c) + (y - c) * (y - c) + (w - c * 0.7f) * (w - c * 0.7f));
                size_t i = ((size_t)z * size + y) * size + w;
                labels[i] = r < size * 0.18f ? 2 : r < size * 0.36f ? 1 : 0;
                x->data[i] = labels[i] == 2 ? 1.0f : labels[i] == 1 ? 0.4f : -0.5f;
                x->data[i] += 0.1f * sinf(0.9f * z + 1.3f * y + 0.7f * w);
            }
}

static double hard_dice(const dk_tensor *logits, const uint8_t *labels, int cls)
{
    size_t vox = dk_tensor_spatial(logits), inter = 0, pred = 0, truth = 0;
    for (size_t i = 0; i < vox; i++) {
        int best = 0;
        for (int k = 1; k < logits->c; k++)
            if (logits->data[k * vox + i] > logits->data[best * vox + i]) best = k;
        inter += best == cls && labels[i] == cls;
        pred += best == cls;
        truth += labels[i] == cls;
    }
    return 2.0 * inter / (double)(pred + truth);
}

Test(unet, overfits_one_labelled_volume, .timeout = 600)
{
    enum { S = 16 };
    dk_tensor x;
    uint8_t labels[S * S * S];
    make_blobs(&x, labels, S);
    dk_unet_config c = tiny_config(3, 8);
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&c, 11, &err);
    cr_assert_eq(dk_unet_plan(net, 1, S, S, S, &err), DK_OK, "%s", err.msg);
    dk_optimizer opt;
    dk_optim_config oc = dk_optim_defaults(DK_OPTIM_ADAM, 0.01f);
    cr_assert_eq(dk_optim_init(&opt, &oc, dk_unet_params(net), &err), DK_OK, "%s", err.msg);
    dk_sup_weights w = dk_sup_weights_default();
    dk_step_stats s = {0};
    for (int step = 0; step < 150; step++)
        s = dk_train_step_supervised(net, &opt, &x, labels, &w, dk_lr_poly(0.01f, step, 150, 0.9f));
    dk_unet_forward(net, &x);
    for (int cls = 1; cls < 3; cls++) {
        double d = hard_dice(dk_unet_logits(net), labels, cls);
        cr_expect_gt(d, 0.95, "class %d Dice %.3f (final loss %.4f)", cls, d, s.loss);
    }
    dk_optim_release(&opt);
    dk_tensor_release(&x);
    dk_unet_free(net);
}

static void train_briefly(float *weights_out, size_t cap)
{
    enum { S = 8 };
    dk_tensor x;
    uint8_t labels[S * S * S];
    make_blobs(&x, labels, S);
    dk_unet_config c = tiny_config(2, 4);
    dk_unet *net = dk_unet_create(&c, 5, NULL);
    dk_unet_plan(net, 1, S, S, S, NULL);
    dk_optimizer opt;
    dk_optim_config oc = dk_optim_defaults(DK_OPTIM_ADAMW, 0.01f);
    dk_optim_init(&opt, &oc, dk_unet_params(net), NULL);
    dk_sup_weights w = dk_sup_weights_default();
    for (int step = 0; step < 5; step++) dk_train_step_supervised(net, &opt, &x, labels, &w, 0.01f);
    const dk_params *ps = dk_unet_params(net);
    size_t used = 0;
    for (int i = 0; i < ps->count; i++) {
        size_t n = dk_tensor_numel(&ps->items[i]->value);
        cr_assert_leq(used + n, cap);
        memcpy(weights_out + used, ps->items[i]->value.data, n * sizeof(float));
        used += n;
    }
    dk_optim_release(&opt);
    dk_tensor_release(&x);
    dk_unet_free(net);
}

Test(unet, same_seed_same_weights)
{
    enum { CAP = 1 << 16 };
    float *a = calloc(CAP, sizeof(float)), *b = calloc(CAP, sizeof(float));
    train_briefly(a, CAP);
    train_briefly(b, CAP);
    cr_assert_eq(memcmp(a, b, CAP * sizeof(float)), 0, "two runs with the same seed differ");
    free(a);
    free(b);
}
