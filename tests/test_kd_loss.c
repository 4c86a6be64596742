/* test_kd_loss.c: the student's combined loss L = L_sup + alpha L_response +
 * beta L_feature (student/kd_loss.h) with all three terms on: its gradient with
 * respect to every parameter of the U-Net and of the 1x1x1 adapter against central
 * finite differences along random directions v. The check is
 *   |g.v - (L(p + h v) - L(p - h v)) / 2h| <= tol * ||g|| * ||v||,
 * scaled by the gradient's norm rather than by each entry, so float32 rounding in
 * the forward pass (whatever the BLAS kernel) cannot fail it while a wrong term
 * (a missing gradient path, a wrong weight or sign) does. Also: terms switched off
 * cost nothing, and the sigmoid ramp. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/layers.h"
#include "student/kd_loss.h"
#include "testutil.h"

typedef struct kd_case {
    dk_unet *net;
    dk_adapter ad;
    dk_tensor x, response, features;
    uint8_t labels[2 * 4 * 8 * 8];
    float mask[2 * 4 * 8 * 8];
    dk_kd_batch batch;
    dk_kd_weights w;
    dk_param *params[64];
    int nparams;
} kd_case;

static void setup_case(kd_case *k, dk_response_kind rk, dk_feature_kind fk)
{
    memset(k, 0, sizeof *k);
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.levels = 2;
    c.base_width = 4;
    dk_err err = {0};
    k->net = dk_unet_create(&c, 11, &err);
    cr_assert_not_null(k->net, "%s", err.msg);
    const int L = 2, T = 2, in[3] = {4, 8, 8};
    const size_t V = 4 * 8 * 8;
    cr_assert_eq(dk_unet_plan(k->net, L + T, 4, 8, 8, &err), DK_OK, "%s", err.msg);
    int tap = dk_unet_tap_index(k->net, "bottleneck");
    cr_assert_eq(dk_adapter_init(&k->ad, &c, tap, "bottleneck", 6, in, L, T, 5, &err), DK_OK,
                 "%s", err.msg);
    k->x = dk_test_tensor(L + T, 1, 4, 8, 8);
    dk_test_fill_uniform(k->x.data, dk_tensor_numel(&k->x), 1, -2, 2);
    k->response = dk_test_tensor(T, 3, 4, 8, 8);
    dk_tensor logits = dk_test_tensor(T, 3, 4, 8, 8);
    dk_test_fill_uniform(logits.data, dk_tensor_numel(&logits), 2, -3, 3);
    dk_softmax_channels_forward(&logits, 1.0f, &k->response, NULL);
    dk_tensor_release(&logits);
    k->features = dk_test_tensor(T, 6, 2, 4, 4);
    dk_test_fill_uniform(k->features.data, dk_tensor_numel(&k->features), 3, -1, 1);
    float u[2 * V];
    dk_test_fill_uniform(u, 2 * V, 4, 0, 1);
    for (size_t i = 0; i < 2 * V; i++) {
        k->labels[i] = (uint8_t)(u[i] * 3);
        k->mask[i] = u[(i * 7) % (2 * V)] < 0.7f;
    }
    k->batch = (dk_kd_batch){L, T, k->labels, &k->response, k->mask, &k->features};
    k->w = (dk_kd_weights){.sup = dk_sup_weights_default(), .alpha = 0.7f, .beta = 0.9f,
                           .response = rk, .temperature = 2.0f, .feature = fk,
                           .feature_temperature = 1.5f};
    const dk_params *p = dk_unet_params(k->net);
    for (int i = 0; i < p->count; i++)
        k->params[k->nparams++] = p->items[i];
    k->params[k->nparams++] = &k->ad.weight;
    k->params[k->nparams++] = &k->ad.bias;
}

static void release_case(kd_case *k)
{
    dk_adapter_release(&k->ad);
    dk_unet_free(k->net);
    dk_tensor_release(&k->x);
    dk_tensor_release(&k->response);
    dk_tensor_release(&k->features);
}

static double loss_at(kd_case *k)
{
    return dk_kd_forward_backward(k->net, &k->ad, &k->x, &k->batch, &k->w, false).loss;
}

/* Move every parameter selected by `which` by h * v (v drawn from seed). */
static void move(kd_case *k, bool (*which)(const char *), unsigned seed, double h)
{
    for (int i = 0; i < k->nparams; i++) {
        if (!which(k->params[i]->name)) continue;
        dk_tensor *t = &k->params[i]->value;
        size_t n = dk_tensor_numel(t);
        float *v = malloc(n * sizeof *v);
        dk_test_fill_uniform(v, n, seed + 97u * (unsigned)i, -1, 1);
        for (size_t j = 0; j < n; j++)
            t->data[j] = (float)(t->data[j] + h * v[j]);
        free(v);
    }
}

/* g.v, ||g|| and ||v|| over the selected parameters. */
static void project(kd_case *k, bool (*which)(const char *), unsigned seed, double *gv,
                    double *gn, double *vn)
{
    *gv = *gn = *vn = 0;
    for (int i = 0; i < k->nparams; i++) {
        if (!which(k->params[i]->name)) continue;
        size_t n = dk_tensor_numel(&k->params[i]->grad);
        float *v = malloc(n * sizeof *v);
        dk_test_fill_uniform(v, n, seed + 97u * (unsigned)i, -1, 1);
        for (size_t j = 0; j < n; j++) {
            double g = k->params[i]->grad.data[j];
            *gv += g * v[j];
            *gn += g * g;
            *vn += (double)v[j] * v[j];
        }
        free(v);
    }
    *gn = sqrt(*gn);
    *vn = sqrt(*vn);
}

static bool all(const char *n) { return n != NULL; }
static bool adapter_only(const char *n) { return strncmp(n, "adapter.", 8) == 0; }
static bool head_only(const char *n) { return strncmp(n, "head.", 5) == 0; }
static bool encoder0(const char *n) { return strncmp(n, "enc0.", 5) == 0; }

static void check_direction(kd_case *k, bool (*which)(const char *), const char *what)
{
    for (unsigned seed = 1; seed <= 3; seed++) {
        double gv, gn, vn, h = 1e-2;
        project(k, which, seed, &gv, &gn, &vn);
        cr_assert(gn > 0 && vn > 0, "%s: no gradient or no parameter", what);
        h /= vn;
        move(k, which, seed, h);
        double up = loss_at(k);
        move(k, which, seed, -2 * h);
        double down = loss_at(k);
        move(k, which, seed, h);
        double fd = (up - down) / (2 * h);
        cr_expect(fabs(gv - fd) <= 2e-2 * gn * vn, "%s, direction %u: g.v %.6g, finite diff %.6g "
                  "(||g|| ||v|| %.3g)", what, seed, gv, fd, gn * vn);
    }
}

static void gradient_matches(dk_response_kind rk, dk_feature_kind fk)
{
    kd_case k;
    setup_case(&k, rk, fk);
    dk_kd_stats s = dk_kd_forward_backward(k.net, &k.ad, &k.x, &k.batch, &k.w, true);
    cr_assert(s.dice > 0 && s.ce > 0 && s.response > 0 && s.feature > 0, "every term is on");
    cr_expect_float_eq(s.loss, 0.5f * s.dice + 0.5f * s.ce + 0.7f * s.response + 0.9f * s.feature,
                       1e-5);
    cr_expect_float_eq(loss_at(&k), s.loss, 1e-6, "the value does not depend on backward");
    check_direction(&k, all, "all parameters");
    check_direction(&k, adapter_only, "the adapter");
    check_direction(&k, head_only, "the head");
    check_direction(&k, encoder0, "the first encoder level");
    release_case(&k);
}

Test(kd_loss, gradient_with_kl_response_and_mse_features) { gradient_matches(DK_RESPONSE_KL, DK_FEATURE_MSE); }
Test(kd_loss, gradient_with_mse_response_and_kl_features) { gradient_matches(DK_RESPONSE_MSE, DK_FEATURE_KL); }

Test(kd_loss, terms_switched_off_are_zero_and_leave_no_gradient)
{
    kd_case k;
    setup_case(&k, DK_RESPONSE_KL, DK_FEATURE_MSE);
    k.w.alpha = 0;
    k.w.beta = 0;
    dk_kd_stats s = dk_kd_forward_backward(k.net, &k.ad, &k.x, &k.batch, &k.w, true);
    cr_expect(s.response == 0 && s.feature == 0 && s.dice > 0);
    for (size_t i = 0; i < dk_tensor_numel(&k.ad.weight.grad); i++)
        cr_assert_eq(k.ad.weight.grad.data[i], 0.0f, "the adapter gets no gradient");
    /* no transfer gradient reaches the logits of the transfer samples */
    const dk_tensor *dz = dk_unet_logits_grad(k.net);
    size_t per = (size_t)dz->c * dz->d * dz->h * dz->w;
    for (size_t i = 2 * per; i < 4 * per; i++)
        cr_assert_eq(dz->data[i], 0.0f);
    release_case(&k);
}

Test(kd_loss, sigmoid_rampup_is_the_original_schedule)
{
    cr_expect_float_eq(dk_sigmoid_rampup(0, 100), expf(-5), 1e-7);
    cr_expect_float_eq(dk_sigmoid_rampup(50, 100), expf(-1.25f), 1e-6);
    cr_expect_eq(dk_sigmoid_rampup(100, 100), 1.0f);
    cr_expect_eq(dk_sigmoid_rampup(7, 0), 1.0f);
}
