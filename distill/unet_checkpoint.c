/* unet_checkpoint.c: a U-Net built from its checkpoint (unet_checkpoint.h). */
#include "distill/unet_checkpoint.h"

#include <stdlib.h>

#include "distill/checkpoint.h"

dk_unet *dk_unet_load_checkpoint(const char *path, char **arch_json, dk_err *err)
{
    char *arch = NULL;
    dk_unet_config cfg;
    dk_unet *net = NULL;
    dk_status st = dk_checkpoint_read_architecture(path, &arch, err);
    if (st == DK_OK && (st = dk_unet_config_from_json(arch, &cfg, err)) != DK_OK)
        dk_err_prefix(err, st, "'%s': architecture", path);
    dk_err e;
    if (st == DK_OK && !(net = dk_unet_create(&cfg, 0, &e))) st = dk_err_forward(err, &e);
    if (st == DK_OK) st = dk_checkpoint_load(path, arch, dk_unet_params(net), NULL, err);
    if (st != DK_OK) {
        dk_unet_free(net);
        free(arch);
        return NULL;
    }
    if (arch_json)
        *arch_json = arch;
    else
        free(arch);
    return net;
}

void dk_unet_pool_product(const dk_unet_config *c, int out[3])
{
    for (int a = 0; a < 3; a++) {
        out[a] = 1;
        for (int l = 0; l + 1 < c->levels; l++)
            out[a] *= c->pool[l][a];
    }
}
