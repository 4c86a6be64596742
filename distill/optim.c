/* optim.c: SGD (momentum, Nesterov), Adam and AdamW with exactly PyTorch's
 * update equations (torch.optim, single-tensor path, dampening 0, amsgrad off),
 * and the poly learning-rate schedule. Deterministic: plain loops, no threads. */
#include "distill/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dk_optim_config dk_optim_defaults(dk_optim_kind kind, float lr)
{
    /* PyTorch's defaults, except SGD's momentum 0.9 (PyTorch: 0), which is what
     * segmentation training uses in practice; AdamW keeps PyTorch's decay 0.01. */
    return (dk_optim_config){
        .kind = kind,
        .lr = lr,
        .momentum = kind == DK_OPTIM_SGD ? 0.9f : 0.0f,
        .nesterov = false,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = kind == DK_OPTIM_ADAMW ? 0.01f : 0.0f,
    };
}

static bool in_unit(float x)
{
    return x >= 0 && x < 1;
}

static dk_status validate(const dk_optim_config *c, dk_err *err)
{
    if (c->kind != DK_OPTIM_SGD && c->kind != DK_OPTIM_ADAM && c->kind != DK_OPTIM_ADAMW)
        return dk_err_set(err, DK_EINVAL, "optimiser kind %d is not sgd, adam or adamw", c->kind);
    if (!(c->lr >= 0) || !isfinite(c->lr))
        return dk_err_set(err, DK_EINVAL, "optimiser lr %g must be finite and >= 0", c->lr);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return dk_err_set(err, DK_EINVAL, "optimiser weight_decay %g must be finite and >= 0",
                          c->weight_decay);
    if (c->kind == DK_OPTIM_SGD) {
        if (!in_unit(c->momentum))
            return dk_err_set(err, DK_EINVAL, "sgd momentum %g must be in [0, 1)", c->momentum);
        if (c->nesterov && c->momentum <= 0)
            return dk_err_set(err, DK_EINVAL, "sgd nesterov needs momentum > 0 (got %g)",
                              c->momentum);
        return DK_OK;
    }
    if (!in_unit(c->beta1) || !in_unit(c->beta2))
        return dk_err_set(err, DK_EINVAL, "%s betas (%g, %g) must be in [0, 1)",
                          dk_optim_kind_name(c->kind), c->beta1, c->beta2);
    if (!(c->eps > 0) || !isfinite(c->eps))
        return dk_err_set(err, DK_EINVAL, "%s eps %g must be finite and > 0",
                          dk_optim_kind_name(c->kind), c->eps);
    return DK_OK;
}

dk_status dk_optim_init(dk_optimizer *opt, const dk_optim_config *config, const dk_params *params,
                        dk_err *err)
{
    *opt = (dk_optimizer){0};
    dk_status st = validate(config, err);
    if (st) return st;
    opt->config = *config;
    const int count = params->count;
    bool adam = config->kind != DK_OPTIM_SGD;
    opt->params.items = calloc(count ? count : 1, sizeof *opt->params.items);
    opt->moment1 = calloc(count ? count : 1, sizeof *opt->moment1);
    opt->moment2 = adam ? calloc(count ? count : 1, sizeof *opt->moment2) : NULL;
    if (!opt->params.items || !opt->moment1 || (adam && !opt->moment2)) {
        dk_optim_release(opt);
        return dk_err_set(err, DK_ENOMEM, "cannot allocate optimiser state for %d parameters",
                          count);
    }
    if (count) memcpy(opt->params.items, params->items, sizeof *params->items * count);
    opt->params.count = opt->params.capacity = count;
    for (int i = 0; i < count; i++) {
        const dk_tensor *value = &params->items[i]->value;
        if ((st = dk_tensor_alloc_like(&opt->moment1[i], value, err)) ||
            (adam && (st = dk_tensor_alloc_like(&opt->moment2[i], value, err)))) {
            dk_optim_release(opt);
            return dk_err_prefix(err, st, "optimiser state for '%s'", params->items[i]->name);
        }
    }
    return DK_OK;
}

/* buf = momentum * buf + g; p -= lr * (nesterov ? g + momentum * buf : buf). PyTorch
 * sets buf = g on the first step; with dampening 0 and a zeroed buffer that is the same. */
static void sgd_update(const dk_optim_config *c, float lr, float *p, const float *grad, float *buf,
                       size_t count)
{
    const float mu = c->momentum, wd = c->weight_decay;
    for (size_t i = 0; i < count; i++) {
        float g = grad[i] + wd * p[i];
        if (mu != 0) {
            buf[i] = mu * buf[i] + g;
            g = c->nesterov ? g + mu * buf[i] : buf[i];
        }
        p[i] -= lr * g;
    }
}

/* m, v as PyTorch; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). AdamW first
 * shrinks p by (1 - lr * wd) and keeps the decay out of the moments. */
static void adam_update(const dk_optim_config *c, long step, float lr, float *p, const float *grad,
                        float *m, float *v, size_t count)
{
    const bool decoupled = c->kind == DK_OPTIM_ADAMW;
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    const double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    const float step_size = (float)(lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
    const float shrink = (float)(1.0 - (double)lr * wd);
    for (size_t i = 0; i < count; i++) {
        float g = grad[i];
        if (decoupled)
            p[i] *= shrink;
        else
            g += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps);
    }
}

void dk_optim_step(dk_optimizer *opt, float lr)
{
    opt->step++;
    for (int i = 0; i < opt->params.count; i++) {
        dk_param *param = opt->params.items[i];
        size_t count = dk_tensor_numel(&param->value);
        if (opt->config.kind == DK_OPTIM_SGD)
            sgd_update(&opt->config, lr, param->value.data, param->grad.data, opt->moment1[i].data,
                       count);
        else
            adam_update(&opt->config, opt->step, lr, param->value.data, param->grad.data,
                        opt->moment1[i].data, opt->moment2[i].data, count);
    }
}

void dk_optim_release(dk_optimizer *opt)
{
    for (int i = 0; i < opt->params.count; i++) {
        if (opt->moment1) dk_tensor_release(&opt->moment1[i]);
        if (opt->moment2) dk_tensor_release(&opt->moment2[i]);
    }
    free(opt->moment1);
    free(opt->moment2);
    dk_params_release(&opt->params);
    *opt = (dk_optimizer){0};
}

float dk_lr_poly(float base_lr, long step, long max_steps, float power)
{
    /* At or past the end (or with no steps planned) the rate is 0, even for power 0. */
    if (max_steps <= 0 || step >= max_steps) return 0.0f;
    if (step <= 0) return base_lr;
    return (float)(base_lr * pow(1.0 - (double)step / max_steps, power));
}

static const char *const kind_names[] = {"sgd", "adam", "adamw"};

const char *dk_optim_kind_name(dk_optim_kind kind)
{
    if ((int)kind < 0 || (int)kind >= (int)(sizeof kind_names / sizeof *kind_names))
        return "unknown";
    return kind_names[kind];
}

int dk_optim_kind_parse(const char *name)
{
    for (int i = 0; name && i < (int)(sizeof kind_names / sizeof *kind_names); i++)
        if (strcmp(name, kind_names[i]) == 0) return i;
    return -1;
}
