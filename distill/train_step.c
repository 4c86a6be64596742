/* train_step.c: the supervised step (forward, Dice + CE, backward, update). */
#include "distill/train_step.h"

dk_sup_weights dk_sup_weights_default(void)
{
    return (dk_sup_weights){
        .dice = 0.5f, .ce = 0.5f, .dice_opts = {.include_background = true, .smooth = 1e-5f}};
}

dk_step_stats dk_supervised_loss(dk_unet *net, const uint8_t *labels, const dk_sup_weights *w)
{
    dk_tensor *logits = dk_unet_logits(net), *dlogits = dk_unet_logits_grad(net);
    dk_workspace *ws = dk_unet_workspace(net);
    dk_tensor_zero(dlogits);
    dk_step_stats s = {0};
    if (w->dice != 0)
        s.dice_loss = dk_loss_dice(logits, labels, &w->dice_opts, w->dice, dlogits, NULL, ws);
    if (w->ce != 0) s.ce_loss = dk_loss_cross_entropy(logits, labels, NULL, w->ce, dlogits, ws);
    s.loss = w->dice * s.dice_loss + w->ce * s.ce_loss;
    return s;
}

dk_step_stats dk_train_step_supervised(dk_unet *net, dk_optimizer *opt, const dk_tensor *x,
                                       const uint8_t *labels, const dk_sup_weights *w, float lr)
{
    dk_params_zero_grad(dk_unet_params(net));
    dk_unet_forward(net, x);
    dk_step_stats s = dk_supervised_loss(net, labels, w);
    dk_unet_backward(net, dk_unet_logits_grad(net), NULL, 0);
    dk_optim_step(opt, lr);
    return s;
}
