/* unet.c: the U-Net's structure, memory plan, forward and backward.
 * The config (defaults, validation, JSON) lives in unet_config.c.
 *
 * Gradient memory: instead of one gradient tensor per activation, each
 * resolution level has two ping-pong buffers (2 x widest channel count at that
 * level). The skip connection's gradient waits in the first channels of buffer 0
 * from the decoder's concat until the encoder's backward reaches the level, where
 * the un-pooled gradient is added onto it.
 *
 * Concat without copies: with batch 1, the skip (the encoder's last output) and
 * the up-conv's output are written straight into the two channel halves of the
 * decoder's `cat` tensor, which are contiguous; with a larger batch they are
 * their own tensors and copied in. Each norm is fused with its activation. */
#include "distill/unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/layers.h"
#include "distill/liveness.h"
#include "distill/loss.h"
#include "distill/rng.h"

typedef struct conv_unit {
    dk_conv3d_geom geom;
    int cin, cout;
    bool has_norm;
    dk_param weight, bias; /* bias only without norm (a norm cancels it) */
    dk_param gamma, beta;  /* only with norm */
    dk_tensor pre;         /* conv output; a view of out without norm */
    dk_tensor out;         /* after norm and activation */
    float *mean, *rstd;    /* n * cout, saved by the norm */
} conv_unit;

typedef struct level {
    int width;
    int dims[3];
    conv_unit enc[2];
    dk_tensor pooled; /* at level + 1's resolution; not for the bottleneck */
    int32_t *argmax;
    dk_conv3d_geom up_geom; /* decoder: level + 1 -> level */
    dk_param up_weight, up_bias;
    dk_tensor up, cat;   /* up and enc[1].out are views into cat with batch 1 */
    conv_unit dec[2];
    float *grad_buf[2]; /* ping-pong, n * 2 * width * voxels each */
} level;

struct dk_unet {
    dk_unet_config cfg;
    level lv[DK_UNET_MAX_LEVELS];
    dk_conv3d_geom head_geom;
    dk_param head_weight, head_bias;
    dk_tensor logits, logits_grad;
    dk_params params;
    dk_workspace ws;
    dk_pool *pool; /* the threads of every op; ws.pool borrows it */
    int n;
    bool inference;     /* planned by dk_unet_plan_inference */
    unsigned keep_taps; /* taps readable after a forward (all, in a training plan) */
    float *arena;       /* an inference plan's activations, packed by liveness */
    size_t arena_floats;
    const dk_tensor *input; /* borrowed from the last forward */
    char tap_names[DK_UNET_MAX_LEVELS][16];
};

static int width_at(const dk_unet_config *c, int l) { return c->base_width << l; }

static dk_status add_param(dk_unet *net, dk_param *p, const char *name, int n, int c, int d, int h,
                           int w, dk_err *err)
{
    dk_status st;
    if ((st = dk_param_init(p, name, n, c, d, h, w, err))) return st;
    return dk_params_push(&net->params, p, err);
}

/* He-normal init: std = sqrt(gain / fan_in). */
static void init_normal(dk_param *p, double fan_in, double gain, dk_rng *rng)
{
    double std = sqrt(gain / fan_in);
    size_t n = dk_tensor_numel(&p->value);
    for (size_t i = 0; i < n; i++) p->value.data[i] = (float)(std * dk_rng_normal(rng));
}

static dk_status unit_create(dk_unet *net, conv_unit *u, const char *prefix, int cin, int cout,
                             const int kernel[3], dk_rng *rng, dk_err *err)
{
    dk_status st;
    char name[96];
    u->cin = cin;
    u->cout = cout;
    u->has_norm = net->cfg.norm == DK_NORM_INSTANCE;
    for (int a = 0; a < 3; a++) {
        u->geom.kernel[a] = kernel[a];
        u->geom.stride[a] = 1;
        u->geom.pad[a] = kernel[a] / 2;
    }
    snprintf(name, sizeof name, "%s.conv.weight", prefix);
    if ((st = add_param(net, &u->weight, name, cout, cin, kernel[0], kernel[1], kernel[2], err)))
        return st;
    init_normal(&u->weight, (double)cin * kernel[0] * kernel[1] * kernel[2], 2.0, rng);
    if (!u->has_norm) {
        snprintf(name, sizeof name, "%s.conv.bias", prefix);
        return add_param(net, &u->bias, name, cout, 1, 1, 1, 1, err);
    }
    snprintf(name, sizeof name, "%s.norm.weight", prefix);
    if ((st = add_param(net, &u->gamma, name, cout, 1, 1, 1, 1, err))) return st;
    dk_tensor_fill(&u->gamma.value, 1.0f);
    snprintf(name, sizeof name, "%s.norm.bias", prefix);
    return add_param(net, &u->beta, name, cout, 1, 1, 1, 1, err);
}

static dk_status level_create(dk_unet *net, int l, dk_rng *rng, dk_err *err)
{
    dk_status st;
    const dk_unet_config *c = &net->cfg;
    level *L = &net->lv[l];
    L->width = width_at(c, l);
    int cin = l == 0 ? c->in_channels : width_at(c, l - 1);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "enc%d.block1", l);
    if ((st = unit_create(net, &L->enc[0], prefix, cin, L->width, c->kernel[l], rng, err)))
        return st;
    snprintf(prefix, sizeof prefix, "enc%d.block2", l);
    if ((st = unit_create(net, &L->enc[1], prefix, L->width, L->width, c->kernel[l], rng, err)))
        return st;
    if (l == c->levels - 1) return DK_OK;

    /* Decoder: up from level l + 1, concat with this level's skip, two convs. */
    char name[96];
    int below = width_at(c, l + 1);
    const int *p = c->pool[l];
    L->up_geom = (dk_conv3d_geom){{p[0], p[1], p[2]}, {p[0], p[1], p[2]}, {0, 0, 0}};
    snprintf(name, sizeof name, "dec%d.up.weight", l);
    if ((st = add_param(net, &L->up_weight, name, below, L->width, p[0], p[1], p[2], err)))
        return st;
    init_normal(&L->up_weight, below, 2.0, rng);
    snprintf(name, sizeof name, "dec%d.up.bias", l);
    if ((st = add_param(net, &L->up_bias, name, L->width, 1, 1, 1, 1, err))) return st;
    snprintf(prefix, sizeof prefix, "dec%d.block1", l);
    if ((st = unit_create(net, &L->dec[0], prefix, 2 * L->width, L->width, c->kernel[l], rng, err)))
        return st;
    snprintf(prefix, sizeof prefix, "dec%d.block2", l);
    return unit_create(net, &L->dec[1], prefix, L->width, L->width, c->kernel[l], rng, err);
}

dk_unet *dk_unet_create(const dk_unet_config *c, uint64_t seed, dk_err *err)
{
    if (dk_unet_config_validate(c, err)) return NULL;
    dk_unet *net = calloc(1, sizeof *net);
    if (!net) {
        dk_err_set(err, DK_ENOMEM, "cannot allocate the network");
        return NULL;
    }
    net->cfg = *c;
    net->keep_taps = ~0u; /* dk_unet_tap before any plan: the (empty) tensors, as before */
    dk_rng rng = dk_rng_seed(seed);
    for (int l = 0; l < c->levels; l++) {
        if (level_create(net, l, &rng, err)) goto fail;
        snprintf(net->tap_names[l], sizeof net->tap_names[l], l == c->levels - 1 ? "bottleneck" : "dec%d",
                 l);
    }
    net->head_geom = (dk_conv3d_geom){{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    if (add_param(net, &net->head_weight, "head.weight", c->classes, c->base_width, 1, 1, 1, err) ||
        add_param(net, &net->head_bias, "head.bias", c->classes, 1, 1, 1, 1, err))
        goto fail;
    init_normal(&net->head_weight, c->base_width, 1.0, &rng);
    return net;
fail:
    dk_unet_free(net);
    return NULL;
}

static void unit_release_activations(conv_unit *u)
{
    if (u->has_norm) dk_tensor_release(&u->pre);
    dk_tensor_release(&u->out);
    u->pre = (dk_tensor){0};
    free(u->mean);
    free(u->rstd);
    u->mean = u->rstd = NULL;
}

static void release_activations(dk_unet *net)
{
    for (int l = 0; l < net->cfg.levels; l++) {
        level *L = &net->lv[l];
        for (int i = 0; i < 2; i++) {
            unit_release_activations(&L->enc[i]);
            unit_release_activations(&L->dec[i]);
            free(L->grad_buf[i]);
            L->grad_buf[i] = NULL;
        }
        dk_tensor_release(&L->pooled);
        dk_tensor_release(&L->up);
        dk_tensor_release(&L->cat);
        free(L->argmax); /* NULL in an inference plan: pooling keeps no indices */
        L->argmax = NULL;
    }
    dk_tensor_release(&net->logits);
    dk_tensor_release(&net->logits_grad);
    net->logits = net->logits_grad = (dk_tensor){0};
    free(net->arena);
    net->arena = NULL;
    net->arena_floats = 0;
    net->inference = false;
    net->keep_taps = ~0u;
}

void dk_unet_free(dk_unet *net)
{
    if (!net) return;
    release_activations(net);
    for (int i = 0; i < net->params.count; i++) dk_param_release(net->params.items[i]);
    dk_params_release(&net->params);
    dk_workspace_release(&net->ws);
    dk_pool_free(net->pool);
    free(net);
}

const dk_unet_config *dk_unet_config_of(const dk_unet *net) { return &net->cfg; }
const dk_params *dk_unet_params(const dk_unet *net) { return &net->params; }
dk_pool *dk_unet_pool(const dk_unet *net)
{
    return net->pool;
}

dk_tensor *dk_unet_logits(dk_unet *net) { return &net->logits; }
dk_tensor *dk_unet_logits_grad(dk_unet *net) { return &net->logits_grad; }
dk_workspace *dk_unet_workspace(dk_unet *net) { return &net->ws; }

/* out_in: where the unit's output lives (a view into a concat), or NULL to allocate. */
static dk_status unit_plan(dk_unet *net, conv_unit *u, const int dims[3], float *out_in,
                           size_t *ws_need, dk_err *err)
{
    dk_status st;
    int n = net->n;
    if (out_in)
        u->out = dk_tensor_view(out_in, n, u->cout, dims[0], dims[1], dims[2]);
    else if ((st = dk_tensor_alloc(&u->out, n, u->cout, dims[0], dims[1], dims[2], err)))
        return st;
    if (u->has_norm) {
        if ((st = dk_tensor_alloc(&u->pre, n, u->cout, dims[0], dims[1], dims[2], err))) return st;
        u->mean = malloc(sizeof(float) * n * u->cout);
        u->rstd = malloc(sizeof(float) * n * u->cout);
        if (!u->mean || !u->rstd) return dk_err_set(err, DK_ENOMEM, "cannot allocate norm statistics");
    } else {
        u->pre = dk_tensor_view(u->out.data, n, u->cout, dims[0], dims[1], dims[2]);
    }
    size_t need = dk_conv3d_workspace_floats(&u->geom, false, u->cin, u->cout, dims);
    if (need > *ws_need) *ws_need = need;
    return DK_OK;
}

static dk_status level_plan(dk_unet *net, int l, size_t *ws_need, dk_err *err)
{
    dk_status st;
    level *L = &net->lv[l];
    int n = net->n, w = L->width;
    bool top = l == net->cfg.levels - 1, views = !top && n == 1;
    const int *d = L->dims;
    size_t half = (size_t)w * d[0] * d[1] * d[2];
    if (!top && (st = dk_tensor_alloc(&L->cat, n, 2 * w, d[0], d[1], d[2], err))) return st;
    if ((st = unit_plan(net, &L->enc[0], d, NULL, ws_need, err)) ||
        (st = unit_plan(net, &L->enc[1], d, views ? L->cat.data : NULL, ws_need, err)))
        return st;
    size_t grad_floats = (size_t)n * 2 * half;
    for (int i = 0; i < 2; i++)
        if (!(L->grad_buf[i] = aligned_alloc(64, (grad_floats * sizeof(float) + 63) / 64 * 64)))
            return dk_err_set(err, DK_ENOMEM, "cannot allocate gradient buffers at level %d", l);
    if (top) return DK_OK;

    const int *below = net->lv[l + 1].dims;
    if ((st = dk_tensor_alloc(&L->pooled, n, w, below[0], below[1], below[2], err))) return st;
    if (views)
        L->up = dk_tensor_view(L->cat.data + half, n, w, d[0], d[1], d[2]);
    else if ((st = dk_tensor_alloc(&L->up, n, w, d[0], d[1], d[2], err)))
        return st;
    if (!(L->argmax = malloc(sizeof(int32_t) * dk_tensor_numel(&L->pooled))))
        return dk_err_set(err, DK_ENOMEM, "cannot allocate pooling indices at level %d", l);
    size_t need = dk_conv3d_workspace_floats(&L->up_geom, true, 2 * w, w, below);
    if (need > *ws_need) *ws_need = need;
    for (int i = 0; i < 2; i++)
        if ((st = unit_plan(net, &L->dec[i], d, NULL, ws_need, err))) return st;
    return DK_OK;
}

static dk_status check_divisible(const dk_unet_config *c, const int in[3], dk_err *err)
{
    static const char axis[3] = {'d', 'h', 'w'};
    for (int a = 0; a < 3; a++) {
        int factor = 1;
        for (int l = 0; l < c->levels - 1; l++) factor *= c->pool[l][a];
        if (in[a] % factor != 0)
            return dk_err_set(err, DK_EINVAL,
                              "input %c = %d is not divisible by %d, the product of the pooling "
                              "factors along that axis",
                              axis[a], in[a], factor);
    }
    return DK_OK;
}

/* The network's threads: as many as OpenBLAS may use, and at least two, as the
 * workspace is planned for (a plan made with one thread still runs on two). */
static dk_status plan_pool(dk_unet *net, dk_err *err)
{
    int want = dk_blas_threads() > 2 ? dk_blas_threads() : 2;
    if (want > DK_PARALLEL_MAX_THREADS) want = DK_PARALLEL_MAX_THREADS;
    if (net->pool && dk_pool_threads(net->pool) >= want) return DK_OK;
    dk_pool_free(net->pool);
    net->ws.pool = net->pool = dk_pool_create(want, err);
    return net->pool ? DK_OK : DK_ENOMEM;
}

static dk_status check_shape(const dk_unet_config *c, int n, const int in[3], dk_err *err)
{
    if (n < 1 || in[0] < 1 || in[1] < 1 || in[2] < 1)
        return dk_err_set(err, DK_EINVAL, "input shape (%d, %d, %d, %d) has a dimension < 1", n,
                          in[0], in[1], in[2]);
    return check_divisible(c, in, err);
}

static void set_dims(dk_unet *net, int n, const int in[3])
{
    const dk_unet_config *c = &net->cfg;
    net->n = n;
    for (int l = 0; l < c->levels; l++)
        for (int a = 0; a < 3; a++)
            net->lv[l].dims[a] = l == 0 ? in[a] : net->lv[l - 1].dims[a] / c->pool[l - 1][a];
}

dk_status dk_unet_plan(dk_unet *net, int n, int d, int h, int w, dk_err *err)
{
    const dk_unet_config *c = &net->cfg;
    int in[3] = {d, h, w};
    dk_status st = check_shape(c, n, in, err);
    if (!st) st = plan_pool(net, err);
    if (st) return st;
    release_activations(net);
    set_dims(net, n, in);
    net->keep_taps = ~0u;
    size_t ws_need = 0;
    for (int l = 0; l < c->levels; l++)
        if ((st = level_plan(net, l, &ws_need, err))) goto fail;
    if ((st = dk_tensor_alloc(&net->logits, n, c->classes, d, h, w, err)) ||
        (st = dk_tensor_alloc(&net->logits_grad, n, c->classes, d, h, w, err)))
        goto fail;
    size_t loss_need = dk_loss_workspace_floats(&net->logits);
    if (loss_need > ws_need) ws_need = loss_need;
    if ((st = dk_workspace_reserve(&net->ws, ws_need, err))) goto fail;
    return DK_OK;
fail:
    release_activations(net);
    net->n = 0;
    return st;
}

/* ---- the inference plan ---- */

enum { MAX_LIVE = DK_UNET_MAX_LEVELS * 8 + 1 };

/* The activations of an inference plan with the steps that write and last read
 * them; after packing, each becomes a view into the arena. */
typedef struct live_set {
    dk_live_range r[MAX_LIVE];
    dk_tensor *tensor[MAX_LIVE]; /* the tensor that becomes a view */
    int channels[MAX_LIVE];
    const int *dims[MAX_LIVE];
    int count, n;
} live_set;

static void live_add(live_set *s, dk_tensor *t, int channels, const int dims[3], int first,
                     int last)
{
    int i = s->count++;
    s->r[i] =
        (dk_live_range){(size_t)s->n * channels * dims[0] * dims[1] * dims[2], first, last, 0};
    s->tensor[i] = t, s->channels[i] = channels, s->dims[i] = dims;
}

/* Forward steps in order: per encoder level conv, conv, pool; per decoder level
 * up, concat, conv, conv; the head; END is after the forward (a kept output). */
static int enc_step(int l, int i)
{
    return 3 * l + i;
}
static int dec_step(const dk_unet_config *c, int l, int i)
{
    return 3 * c->levels + 4 * (c->levels - 2 - l) + i;
}
static int head_step(const dk_unet_config *c)
{
    return 3 * c->levels + 4 * (c->levels - 1);
}

/* Level l's activations. With batch 1 the skip and the up-conv's output are the
 * halves of `cat` (no concat copy), so cat lives from the skip to the decoder. */
static void live_level(dk_unet *net, live_set *s, int l)
{
    const dk_unet_config *c = &net->cfg;
    level *L = &net->lv[l];
    int w = L->width, top = c->levels - 1, end = head_step(c) + 1;
    const int *d = L->dims;
    live_add(s, &L->enc[0].out, w, d, enc_step(l, 0), enc_step(l, 1));
    if (l == top) {
        int last = net->keep_taps >> top & 1u ? end : dec_step(c, top - 1, 0);
        live_add(s, &L->enc[1].out, w, d, enc_step(l, 1), last);
        return;
    }
    if (s->n == 1) {
        live_add(s, &L->cat, 2 * w, d, enc_step(l, 1), dec_step(c, l, 2));
    } else {
        live_add(s, &L->enc[1].out, w, d, enc_step(l, 1), dec_step(c, l, 1));
        live_add(s, &L->up, w, d, dec_step(c, l, 0), dec_step(c, l, 1));
        live_add(s, &L->cat, 2 * w, d, dec_step(c, l, 1), dec_step(c, l, 2));
    }
    const int *below = net->lv[l + 1].dims;
    live_add(s, &L->pooled, w, below, enc_step(l, 2), enc_step(l + 1, 0));
    live_add(s, &L->dec[0].out, w, d, dec_step(c, l, 2), dec_step(c, l, 3));
    int last = net->keep_taps >> l & 1u ? end : l > 0 ? dec_step(c, l - 1, 0) : head_step(c);
    live_add(s, &L->dec[1].out, w, d, dec_step(c, l, 3), last);
}

/* Views into the arena; a norm runs in place (pre is out). */
static void live_views(dk_unet *net, const live_set *s)
{
    for (int i = 0; i < s->count; i++) {
        float *at = net->arena + s->r[i].offset;
        const int *d = s->dims[i];
        *s->tensor[i] = dk_tensor_view(at, s->n, s->channels[i], d[0], d[1], d[2]);
    }
    for (int l = 0; l < net->cfg.levels; l++) {
        level *L = &net->lv[l];
        const int *d = L->dims;
        size_t half = (size_t)L->width * d[0] * d[1] * d[2];
        if (s->n == 1 && l < net->cfg.levels - 1) {
            L->enc[1].out = dk_tensor_view(L->cat.data, 1, L->width, d[0], d[1], d[2]);
            L->up = dk_tensor_view(L->cat.data + half, 1, L->width, d[0], d[1], d[2]);
        }
        conv_unit *units[4] = {&L->enc[0], &L->enc[1], &L->dec[0], &L->dec[1]};
        for (int i = 0; i < 4; i++)
            units[i]->pre = units[i]->out;
    }
}

static dk_status plan_norm_stats(dk_unet *net, conv_unit *u, dk_err *err)
{
    if (!u->has_norm) return DK_OK;
    u->mean = malloc(sizeof(float) * net->n * u->cout);
    u->rstd = malloc(sizeof(float) * net->n * u->cout);
    return u->mean && u->rstd ? DK_OK
                              : dk_err_set(err, DK_ENOMEM, "cannot allocate norm statistics");
}

static size_t forward_workspace(const dk_unet *net)
{
    const dk_unet_config *c = &net->cfg;
    size_t need = 0;
    for (int l = 0; l < c->levels; l++) {
        const level *L = &net->lv[l];
        size_t k[5] = {
            dk_conv3d_workspace_floats(&L->enc[0].geom, false, L->enc[0].cin, L->width, L->dims),
            dk_conv3d_workspace_floats(&L->enc[1].geom, false, L->width, L->width, L->dims), 0, 0,
            0};
        if (l < c->levels - 1) {
            k[2] = dk_conv3d_workspace_floats(&L->up_geom, true, 2 * L->width, L->width,
                                              net->lv[l + 1].dims);
            k[3] =
                dk_conv3d_workspace_floats(&L->dec[0].geom, false, 2 * L->width, L->width, L->dims);
            k[4] = dk_conv3d_workspace_floats(&L->dec[1].geom, false, L->width, L->width, L->dims);
        }
        for (int i = 0; i < 5; i++)
            if (k[i] > need) need = k[i];
    }
    return need;
}

dk_status dk_unet_plan_inference(dk_unet *net, int n, int d, int h, int w, unsigned keep_taps,
                                 dk_err *err)
{
    const dk_unet_config *c = &net->cfg;
    int in[3] = {d, h, w};
    dk_status st = check_shape(c, n, in, err);
    if (!st) st = plan_pool(net, err);
    if (st) return st;
    release_activations(net);
    set_dims(net, n, in);
    net->inference = true;
    net->keep_taps = keep_taps;
    live_set s = {.n = n};
    for (int l = 0; l < c->levels; l++)
        live_level(net, &s, l);
    live_add(&s, &net->logits, c->classes, net->lv[0].dims, head_step(c), head_step(c) + 1);
    size_t floats = net->arena_floats = dk_liveness_assign(s.r, s.count);
    if (!floats || !(net->arena = aligned_alloc(64, floats * sizeof(float))))
        st = dk_err_set(err, DK_ENOMEM, "cannot allocate %zu MB of activations",
                        floats * sizeof(float) >> 20);
    if (!st) live_views(net, &s);
    for (int l = 0; !st && l < c->levels; l++)
        for (int i = 0; !st && i < 4; i++) {
            conv_unit *u = i < 2 ? &net->lv[l].enc[i] : &net->lv[l].dec[i - 2];
            if (i < 2 || l < c->levels - 1) st = plan_norm_stats(net, u, err);
        }
    if (!st) st = dk_workspace_reserve(&net->ws, forward_workspace(net), err);
    if (st) {
        release_activations(net);
        net->n = 0;
    }
    return st;
}

static size_t owned_bytes(const dk_tensor *t)
{
    return t->owns_data ? dk_tensor_numel(t) * sizeof(float) : 0;
}

size_t dk_unet_activation_bytes(const dk_unet *net)
{
    if (net->inference) return net->arena_floats * sizeof(float);
    size_t b = owned_bytes(&net->logits) + owned_bytes(&net->logits_grad);
    for (int l = 0; l < net->cfg.levels; l++) {
        const level *L = &net->lv[l];
        const conv_unit *u[4] = {&L->enc[0], &L->enc[1], &L->dec[0], &L->dec[1]};
        for (int i = 0; i < 4; i++)
            b += owned_bytes(&u[i]->out) + owned_bytes(&u[i]->pre);
        b += owned_bytes(&L->pooled) + owned_bytes(&L->up) + owned_bytes(&L->cat);
        if (L->argmax) b += dk_tensor_numel(&L->pooled) * sizeof(int32_t);
        size_t vox = (size_t)L->dims[0] * L->dims[1] * L->dims[2];
        if (L->grad_buf[0]) b += 2 * (size_t)net->n * 2 * L->width * vox * sizeof(float);
    }
    return b;
}

static void unit_forward(dk_unet *net, conv_unit *u, const dk_tensor *x)
{
    dk_conv3d_forward(&u->geom, x, &u->weight.value, u->has_norm ? NULL : &u->bias.value, &u->pre,
                      &net->ws);
    if (u->has_norm)
        dk_instnorm_relu_forward(&u->pre, u->gamma.value.data, u->beta.value.data,
                                 net->cfg.norm_eps, net->cfg.leaky_slope, &u->out, u->mean, u->rstd,
                                 net->pool);
    else
        dk_leaky_relu_forward(&u->out, net->cfg.leaky_slope, &u->out, net->pool);
}

void dk_unet_forward(dk_unet *net, const dk_tensor *x)
{
    const dk_unet_config *c = &net->cfg;
    level *lv = net->lv;
    int top = c->levels - 1;
    DK_CHECK_SHAPE(net->n == x->n && x->c == c->in_channels && x->d == lv[0].dims[0] &&
                       x->h == lv[0].dims[1] && x->w == lv[0].dims[2],
                   x, &lv[0].enc[0].out);
    net->input = x;
    for (int l = 0; l <= top; l++) {
        unit_forward(net, &lv[l].enc[0], l == 0 ? x : &lv[l - 1].pooled);
        unit_forward(net, &lv[l].enc[1], &lv[l].enc[0].out);
        if (l < top)
            dk_maxpool3d_forward(c->pool[l], &lv[l].enc[1].out, &lv[l].pooled, lv[l].argmax,
                                 net->pool);
    }
    for (int l = top - 1; l >= 0; l--) {
        const dk_tensor *below = l == top - 1 ? &lv[top].enc[1].out : &lv[l + 1].dec[1].out;
        dk_convt3d_forward(&lv[l].up_geom, below, &lv[l].up_weight.value, &lv[l].up_bias.value,
                           &lv[l].up, &net->ws);
        if (net->n > 1) /* the halves of each sample are not contiguous */
            dk_concat_channels_forward(&lv[l].enc[1].out, &lv[l].up, &lv[l].cat);
        unit_forward(net, &lv[l].dec[0], &lv[l].cat);
        unit_forward(net, &lv[l].dec[1], &lv[l].dec[0].out);
    }
    dk_conv3d_forward(&net->head_geom, &lv[0].dec[1].out, &net->head_weight.value,
                      &net->head_bias.value, &net->logits, &net->ws);
}

static dk_tensor grad_view(const dk_unet *net, const level *L, int buf, int channels)
{
    return dk_tensor_view(L->grad_buf[buf], net->n, channels, L->dims[0], L->dims[1], L->dims[2]);
}

/* d(out) is in L's buffer *cur; on return d(input) (cin channels) is in buffer *cur. */
static void unit_backward(dk_unet *net, conv_unit *u, level *L, const dk_tensor *x, int *cur,
                          bool need_dx)
{
    dk_tensor g = grad_view(net, L, *cur, u->cout);
    int pre_buf = *cur;
    dk_tensor dpre = g;
    if (u->has_norm) {
        pre_buf = 1 - *cur;
        dpre = grad_view(net, L, pre_buf, u->cout);
        dk_instnorm_relu_backward(&u->pre, &u->out, net->cfg.leaky_slope, u->gamma.value.data,
                                  u->mean, u->rstd, &g, &dpre, u->gamma.grad.data,
                                  u->beta.grad.data, net->pool);
    } else {
        dk_leaky_relu_backward(&u->out, net->cfg.leaky_slope, &g, &g, net->pool);
    }
    dk_tensor dx = grad_view(net, L, 1 - pre_buf, u->cin);
    dk_conv3d_backward(&u->geom, x, &u->weight.value, &dpre, need_dx ? &dx : NULL, &u->weight.grad,
                       u->has_norm ? NULL : &u->bias.grad, &net->ws);
    *cur = 1 - pre_buf;
}

static void add_tap_grad(dk_tensor *g, int tap, const dk_tap_grad *taps, int tap_count)
{
    for (int i = 0; i < tap_count; i++) {
        if (taps[i].tap != tap) continue;
        DK_CHECK_SHAPE(dk_tensor_same_shape(g, taps[i].grad), g, taps[i].grad);
        size_t n = dk_tensor_numel(g);
        for (size_t k = 0; k < n; k++) g->data[k] += taps[i].grad->data[k];
    }
}

/* Leave d(skip) as a (n, width) tensor at the start of buffer 0 and return where
 * d(up) is: the second half of d(cat) with batch 1, else copied out to buffer 1
 * before the skip halves are packed down sample by sample (dcat is in buffer 0). */
static dk_tensor split_cat_grad(const dk_unet *net, const level *L)
{
    int w = L->width;
    dk_tensor dcat = grad_view(net, L, 0, 2 * w);
    size_t half = (size_t)w * L->dims[0] * L->dims[1] * L->dims[2];
    if (net->n == 1)
        return dk_tensor_view(dcat.data + half, 1, w, L->dims[0], L->dims[1], L->dims[2]);
    dk_tensor dup = grad_view(net, L, 1, w);
    dk_concat_channels_backward(&dcat, NULL, &dup);
    for (int i = 1; i < net->n; i++)
        memmove(dcat.data + i * half, dcat.data + 2 * i * half, half * sizeof(float));
    return dup;
}

/* Decoder level l: d(dec out) in buffer 0 -> d(skip) kept at the start of buffer 0,
 * d(below) into level l+1 buffer 0. */
static void decoder_backward(dk_unet *net, int l)
{
    level *L = &net->lv[l], *B = &net->lv[l + 1];
    int top = net->cfg.levels - 1, cur = 0;
    unit_backward(net, &L->dec[1], L, &L->dec[0].out, &cur, true);
    unit_backward(net, &L->dec[0], L, &L->cat, &cur, true);
    /* Each unit leaves d(input) where d(output) came in (norm: via the other
     * buffer; none: two flips), so d(cat) is in buffer 0. */
    DK_CHECK_SHAPE(cur == 0, &L->cat, &L->cat);
    dk_tensor dup = split_cat_grad(net, L);
    const dk_tensor *below = l == top - 1 ? &B->enc[1].out : &B->dec[1].out;
    dk_tensor dbelow = grad_view(net, B, 0, B->width);
    dk_convt3d_backward(&L->up_geom, below, &L->up_weight.value, &dup, &dbelow, &L->up_weight.grad,
                        &L->up_bias.grad, &net->ws);
}

/* Encoder level l: d(enc out) in buffer 0; leaves d(input) in buffer *cur for l > 0. */
static void encoder_backward(dk_unet *net, int l, int *cur)
{
    level *L = &net->lv[l];
    *cur = 0;
    unit_backward(net, &L->enc[1], L, &L->enc[0].out, cur, true);
    unit_backward(net, &L->enc[0], L, l == 0 ? net->input : &net->lv[l - 1].pooled, cur, l > 0);
}

void dk_unet_backward(dk_unet *net, const dk_tensor *dlogits, const dk_tap_grad *taps,
                      int tap_count)
{
    level *lv = net->lv;
    int top = net->cfg.levels - 1;
    DK_CHECK_SHAPE(!net->inference && dk_tensor_same_shape(dlogits, &net->logits), dlogits,
                   &net->logits);
    dk_tensor g0 = grad_view(net, &lv[0], 0, lv[0].width);
    dk_conv3d_backward(&net->head_geom, &lv[0].dec[1].out, &net->head_weight.value, dlogits, &g0,
                       &net->head_weight.grad, &net->head_bias.grad, &net->ws);
    for (int l = 0; l < top; l++) {
        dk_tensor g = grad_view(net, &lv[l], 0, lv[l].width);
        add_tap_grad(&g, l, taps, tap_count);
        decoder_backward(net, l);
    }
    dk_tensor gb = grad_view(net, &lv[top], 0, lv[top].width);
    add_tap_grad(&gb, top, taps, tap_count);
    for (int l = top; l >= 0; l--) {
        int cur;
        encoder_backward(net, l, &cur);
        if (l == 0) break;
        /* cur holds d(pooled of level l-1): un-pool it onto the skip's gradient. */
        level *A = &lv[l - 1];
        dk_tensor dpooled = grad_view(net, &lv[l], cur, A->width);
        dk_tensor dout = grad_view(net, A, 0, A->width);
        dk_maxpool3d_backward_add(net->cfg.pool[l - 1], &dpooled, A->argmax, &dout, net->pool);
    }
}

int dk_unet_tap_count(const dk_unet *net) { return net->cfg.levels; }

const char *dk_unet_tap_name(const dk_unet *net, int tap)
{
    return tap >= 0 && tap < net->cfg.levels ? net->tap_names[tap] : NULL;
}

int dk_unet_tap_index(const dk_unet *net, const char *name)
{
    for (int t = 0; t < net->cfg.levels; t++)
        if (strcmp(net->tap_names[t], name) == 0) return t;
    return -1;
}

const dk_tensor *dk_unet_tap(const dk_unet *net, int tap)
{
    if (!(net->keep_taps >> tap & 1u)) return NULL;
    const level *L = &net->lv[tap];
    return tap == net->cfg.levels - 1 ? &L->enc[1].out : &L->dec[1].out;
}

void dk_unet_tap_dims(const dk_unet_config *c, int tap, const int in[3], int *channels, int out[3])
{
    *channels = width_at(c, tap);
    for (int a = 0; a < 3; a++) {
        out[a] = in[a];
        for (int l = 0; l < tap; l++) out[a] /= c->pool[l][a];
    }
}

static double conv_flops(const dk_conv3d_geom *g, int cin, int cout, const int vox_dims[3], int n)
{
    double k = (double)g->kernel[0] * g->kernel[1] * g->kernel[2];
    return 2.0 * n * cin * cout * k * vox_dims[0] * vox_dims[1] * vox_dims[2];
}

double dk_unet_forward_flops(const dk_unet *net)
{
    double total = 0;
    const dk_unet_config *c = &net->cfg;
    for (int l = 0; l < c->levels; l++) {
        const level *L = &net->lv[l];
        for (int i = 0; i < 2; i++) {
            total += conv_flops(&L->enc[i].geom, L->enc[i].cin, L->enc[i].cout, L->dims, net->n);
            if (l < c->levels - 1)
                total += conv_flops(&L->dec[i].geom, L->dec[i].cin, L->dec[i].cout, L->dims, net->n);
        }
        if (l < c->levels - 1)
            total += conv_flops(&L->up_geom, net->lv[l + 1].width, L->width, net->lv[l + 1].dims,
                                net->n);
    }
    return total + conv_flops(&net->head_geom, c->base_width, c->classes, net->lv[0].dims, net->n);
}
