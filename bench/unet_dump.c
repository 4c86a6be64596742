/* unet_dump.c: one forward and backward of a U-Net, written out for an
 * independent reader (bench/crosscheck_torch.py rebuilds the network in PyTorch
 * float64 from the checkpoint and compares).
 *
 *   unet_dump CONFIG OUT_DIR [--batch N] [--shape D H W] [--seed S]
 *
 * CONFIG is "reference" (dk_unet_config_default), "anisotropic" (the default
 * teacher's shape of network: (1,2,2) pooling at the top levels, leaky ReLU) or
 * a U-Net config JSON file. Writes OUT_DIR/model.h5 (a dualkd checkpoint) and
 * OUT_DIR/dump.h5: x, r (dF/dlogits), q (dF/dbottleneck), logits, bottleneck,
 * and grad/<parameter> for F = sum(logits * r) + sum(bottleneck * q). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/checkpoint.h"
#include "distill/h5file.h"
#include "distill/rng.h"
#include "distill/unet.h"

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = calloc(1, 1 << 16);
    size_t n = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (text) text[n] = '\0';
    return text;
}

static dk_status pick_config(const char *name, dk_unet_config *c, dk_err *err)
{
    if (strcmp(name, "reference") == 0) {
        *c = dk_unet_config_default(1, 5);
        return DK_OK;
    }
    if (strcmp(name, "anisotropic") == 0) {
        *c = dk_unet_config_default(1, 5);
        c->levels = 4;
        c->base_width = 4;
        c->leaky_slope = 0.01f;
        for (int l = 0; l < 2; l++) c->pool[l][0] = 1;
        c->kernel[0][0] = 1;
        return DK_OK;
    }
    char *text = read_text(name);
    if (!text) return dk_err_set(err, DK_EIO, "%s: cannot read", name);
    dk_status st = dk_unet_config_from_json(text, c, err);
    free(text);
    return st;
}

static void fill_normal(dk_tensor *t, uint64_t seed)
{
    dk_rng rng = dk_rng_seed(seed);
    for (size_t i = 0; i < dk_tensor_numel(t); i++) t->data[i] = (float)dk_rng_normal(&rng);
}

static dk_status write_tensor(hid_t loc, const char *name, const dk_tensor *t, dk_err *err)
{
    hsize_t dims[5] = {(hsize_t)t->n, (hsize_t)t->c, (hsize_t)t->d, (hsize_t)t->h, (hsize_t)t->w};
    return dk_h5_write_array(loc, name, DK_H5_FLOAT32, 5, dims, t->data, NULL, err);
}

static int arg_int(int argc, char **argv, const char *name, int at, int fallback)
{
    for (int i = 3; i + at < argc; i++)
        if (strcmp(argv[i], name) == 0) return atoi(argv[i + at]);
    return fallback;
}

static dk_status dump(dk_unet *net, const dk_tensor *x, const char *out_dir, dk_err *err)
{
    int tap = dk_unet_tap_index(net, "bottleneck");
    dk_tensor r, q;
    dk_unet_forward(net, x);
    if (dk_tensor_alloc_like(&r, dk_unet_logits(net), err)) return DK_ENOMEM;
    if (dk_tensor_alloc_like(&q, dk_unet_tap(net, tap), err)) {
        dk_tensor_release(&r);
        return DK_ENOMEM;
    }
    fill_normal(&r, 2);
    fill_normal(&q, 3);
    const dk_params *ps = dk_unet_params(net);
    dk_params_zero_grad(ps);
    dk_unet_backward(net, &r, &(dk_tap_grad){tap, &q}, 1);

    char path[4096];
    snprintf(path, sizeof path, "%s/dump.h5", out_dir);
    dk_h5_writer w = {0};
    hid_t grads = -1;
    dk_status st = dk_h5_create(path, &w, err);
    if (!st) st = write_tensor(w.file, "x", x, err);
    if (!st) st = write_tensor(w.file, "r", &r, err);
    if (!st) st = write_tensor(w.file, "q", &q, err);
    if (!st) st = write_tensor(w.file, "logits", dk_unet_logits(net), err);
    if (!st) st = write_tensor(w.file, "bottleneck", dk_unet_tap(net, tap), err);
    if (!st) st = dk_h5_group_create(w.file, "grad", &grads, err);
    for (int i = 0; !st && i < ps->count; i++)
        st = write_tensor(grads, ps->items[i]->name, &ps->items[i]->grad, err);
    if (grads >= 0) H5Gclose(grads);
    if (st)
        dk_h5_abort(&w);
    else
        st = dk_h5_commit(&w, err);
    dk_tensor_release(&r);
    dk_tensor_release(&q);
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: unet_dump reference|anisotropic|CONFIG.json OUT_DIR "
                        "[--batch N] [--shape D H W] [--seed S]\n");
        return 2;
    }
    dk_blas_set_threads(1);
    dk_err err = {0};
    dk_unet_config c;
    int batch = arg_int(argc, argv, "--batch", 1, 2), seed = arg_int(argc, argv, "--seed", 1, 7);
    int d = arg_int(argc, argv, "--shape", 1, 16), h = arg_int(argc, argv, "--shape", 2, 16);
    int w = arg_int(argc, argv, "--shape", 3, 16);
    if (pick_config(argv[1], &c, &err)) goto fail;
    dk_unet *net = dk_unet_create(&c, (uint64_t)seed, &err);
    if (!net) goto fail;
    dk_tensor x = {0};
    char *arch = dk_unet_config_to_json(&c), path[4096];
    snprintf(path, sizeof path, "%s/model.h5", argv[2]);
    if (!arch || dk_unet_plan(net, batch, d, h, w, &err) ||
        dk_tensor_alloc(&x, batch, c.in_channels, d, h, w, &err) ||
        dk_checkpoint_save(path, arch, dk_unet_params(net), NULL, NULL, &err))
        goto fail_net;
    fill_normal(&x, 1);
    if (dump(net, &x, argv[2], &err)) goto fail_net;
    printf("unet_dump: %s network, input %dx%dx%dx%d, %d parameter tensors -> %s\n", argv[1], batch,
           d, h, w, dk_unet_params(net)->count, argv[2]);
    free(arch);
    dk_tensor_release(&x);
    dk_unet_free(net);
    return 0;
fail_net:
    free(arch);
    dk_tensor_release(&x);
    dk_unet_free(net);
fail:
    fprintf(stderr, "unet_dump: %s\n", err.msg[0] ? err.msg : "failed");
    return 1;
}
