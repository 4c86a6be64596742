/* kd_loss.c: the combined distillation loss and the adapter (kd_loss.h). */
#include "student/kd_loss.h"

#include <math.h>
#include <stdio.h>

#include "distill/loss.h"
#include "distill/rng.h"

float dk_sigmoid_rampup(long t, long length)
{
    if (length <= 0 || t >= length) return 1.0f;
    double p = 1.0 - (t < 0 ? 0.0 : (double)t / (double)length);
    return (float)exp(-5.0 * p * p);
}

dk_status dk_adapter_init(dk_adapter *a, const dk_unet_config *c, int tap, const char *layer,
                          int teacher_channels, const int in[3], int labelled, int transfer,
                          uint64_t seed, dk_err *err)
{
    *a = (dk_adapter){.tap = tap, .geom = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}}};
    int sc, d[3];
    dk_unet_tap_dims(c, tap, in, &sc, d);
    char wname[96], bname[96];
    snprintf(wname, sizeof wname, "adapter.%s.weight", layer);
    snprintf(bname, sizeof bname, "adapter.%s.bias", layer);
    dk_status st = dk_param_init(&a->weight, wname, teacher_channels, sc, 1, 1, 1, err);
    if (!st) st = dk_param_init(&a->bias, bname, teacher_channels, 1, 1, 1, 1, err);
    if (!st) st = dk_tensor_alloc(&a->adapted, transfer, teacher_channels, d[0], d[1], d[2], err);
    if (!st) st = dk_tensor_alloc_like(&a->dadapted, &a->adapted, err);
    if (!st) st = dk_tensor_alloc(&a->dtap, labelled + transfer, sc, d[0], d[1], d[2], err);
    size_t need = dk_conv3d_workspace_floats(&a->geom, false, sc, teacher_channels, d);
    size_t loss_need = dk_loss_workspace_floats(&a->adapted);
    if (!st) st = dk_workspace_reserve(&a->ws, need > loss_need ? need : loss_need, err);
    if (st) {
        dk_adapter_release(a);
        return st;
    }
    dk_rng rng = dk_rng_seed(seed ^ 0x6164617074657221ULL);
    float sd = sqrtf(2.0f / (float)sc);
    for (size_t i = 0; i < dk_tensor_numel(&a->weight.value); i++)
        a->weight.value.data[i] = sd * (float)dk_rng_normal(&rng);
    return DK_OK;
}

void dk_adapter_release(dk_adapter *a)
{
    dk_param_release(&a->weight);
    dk_param_release(&a->bias);
    dk_tensor_release(&a->adapted);
    dk_tensor_release(&a->dadapted);
    dk_tensor_release(&a->dtap);
    dk_workspace_release(&a->ws);
}

/* Samples [first, first + count) of t, borrowed. */
static dk_tensor samples(const dk_tensor *t, int first, int count)
{
    size_t per = (size_t)t->c * t->d * t->h * t->w;
    return dk_tensor_view(t->data + (size_t)first * per, count, t->c, t->d, t->h, t->w);
}

static void supervised(dk_unet *net, const dk_kd_batch *b, const dk_kd_weights *w, bool backward,
                       dk_kd_stats *s)
{
    dk_tensor z = samples(dk_unet_logits(net), 0, b->labelled);
    dk_tensor dz = samples(dk_unet_logits_grad(net), 0, b->labelled);
    dk_workspace *ws = dk_unet_workspace(net);
    if (w->sup.dice != 0)
        s->dice = dk_loss_dice(&z, b->labels, &w->sup.dice_opts, w->sup.dice,
                               backward ? &dz : NULL, NULL, ws);
    if (w->sup.ce != 0)
        s->ce = dk_loss_cross_entropy(&z, b->labels, NULL, w->sup.ce, backward ? &dz : NULL, ws);
}

static void response(dk_unet *net, const dk_kd_batch *b, const dk_kd_weights *w, bool backward,
                     dk_kd_stats *s)
{
    dk_tensor z = samples(dk_unet_logits(net), b->labelled, b->transfer);
    dk_tensor dz = samples(dk_unet_logits_grad(net), b->labelled, b->transfer);
    dk_workspace *ws = dk_unet_workspace(net);
    s->response = w->response == DK_RESPONSE_KL
                      ? dk_loss_response_kl(&z, b->response, w->temperature, b->mask, w->alpha,
                                            backward ? &dz : NULL, ws)
                      : dk_loss_response_mse(&z, b->response, b->mask, w->alpha,
                                             backward ? &dz : NULL, ws);
}

/* The feature term; when backward, leaves the tap's gradient in ad->dtap and adds
 * the adapter's parameter gradients. */
static void feature(dk_unet *net, dk_adapter *ad, const dk_kd_batch *b, const dk_kd_weights *w,
                    bool backward, dk_kd_stats *s)
{
    dk_tensor tap = samples(dk_unet_tap(net, ad->tap), b->labelled, b->transfer);
    dk_conv3d_forward(&ad->geom, &tap, &ad->weight.value, &ad->bias.value, &ad->adapted, &ad->ws);
    dk_tensor *grad = backward ? &ad->dadapted : NULL;
    if (grad) dk_tensor_zero(grad);
    s->feature = w->feature == DK_FEATURE_MSE
                     ? dk_loss_feature_mse(&ad->adapted, b->features, w->beta, grad)
                     : dk_loss_feature_kl(&ad->adapted, b->features, w->feature_temperature,
                                          w->beta, grad, &ad->ws);
    if (!backward) return;
    dk_tensor_zero(&ad->dtap);
    dk_tensor dtap = samples(&ad->dtap, b->labelled, b->transfer);
    dk_conv3d_backward(&ad->geom, &tap, &ad->weight.value, &ad->dadapted, &dtap, &ad->weight.grad,
                       &ad->bias.grad, &ad->ws);
}

dk_kd_stats dk_kd_forward_backward(dk_unet *net, dk_adapter *ad, const dk_tensor *x,
                                   const dk_kd_batch *b, const dk_kd_weights *w, bool backward)
{
    dk_kd_stats s = {0};
    bool use_feature = ad && w->beta != 0 && b->transfer > 0;
    if (backward) {
        dk_params_zero_grad(dk_unet_params(net));
        if (ad) {
            dk_tensor_zero(&ad->weight.grad);
            dk_tensor_zero(&ad->bias.grad);
        }
        dk_tensor_zero(dk_unet_logits_grad(net));
    }
    dk_unet_forward(net, x);
    if (b->labelled > 0) supervised(net, b, w, backward, &s);
    if (w->alpha != 0 && b->transfer > 0) response(net, b, w, backward, &s);
    if (use_feature) feature(net, ad, b, w, backward, &s);
    s.loss = w->sup.dice * s.dice + w->sup.ce * s.ce + w->alpha * s.response + w->beta * s.feature;
    if (backward) {
        dk_tap_grad tg = {use_feature ? ad->tap : 0, use_feature ? &ad->dtap : NULL};
        dk_unet_backward(net, dk_unet_logits_grad(net), &tg, use_feature ? 1 : 0);
    }
    return s;
}
