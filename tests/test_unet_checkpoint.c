/* test_unet_checkpoint.c: a real U-Net through a checkpoint: the restored net
 * computes bit-identical logits, and loading into a net of another architecture
 * fails with a message naming the field that differs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "distill/train_step.h"
#include "distill/unet.h"
#include "testutil.h"

static dk_unet *planned_net(const dk_unet_config *c, uint64_t seed)
{
    dk_err err = {0};
    dk_unet *net = dk_unet_create(c, seed, &err);
    cr_assert_not_null(net, "%s", err.msg);
    cr_assert_eq(dk_unet_plan(net, 1, 8, 8, 8, &err), DK_OK, "%s", err.msg);
    return net;
}

Test(unet_checkpoint, restored_net_gives_identical_logits)
{
    char *dir = dk_test_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/net.h5", dir);
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.levels = 2;
    c.base_width = 4;
    dk_unet *a = planned_net(&c, 1), *b = planned_net(&c, 2);
    dk_tensor x;
    dk_tensor_alloc(&x, 1, 1, 8, 8, 8, NULL);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 9, -1, 1);
    uint8_t labels[512];
    for (int i = 0; i < 512; i++) labels[i] = (uint8_t)(i % 3);
    dk_optimizer opt;
    dk_optim_config oc = dk_optim_defaults(DK_OPTIM_ADAM, 0.01f);
    dk_optim_init(&opt, &oc, dk_unet_params(a), NULL);
    dk_sup_weights w = dk_sup_weights_default();
    for (int i = 0; i < 3; i++) dk_train_step_supervised(a, &opt, &x, labels, &w, 0.01f);

    dk_err err = {0};
    char *arch = dk_unet_config_to_json(&c);
    cr_assert_eq(dk_checkpoint_save(path, arch, dk_unet_params(a), &opt, NULL, &err), DK_OK, "%s",
                 err.msg);
    cr_assert_eq(dk_checkpoint_load(path, arch, dk_unet_params(b), NULL, &err), DK_OK, "%s",
                 err.msg);
    dk_unet_forward(a, &x);
    dk_unet_forward(b, &x);
    cr_assert_eq(memcmp(dk_unet_logits(a)->data, dk_unet_logits(b)->data,
                        dk_tensor_numel(dk_unet_logits(a)) * sizeof(float)),
                 0, "restored network computes different logits");

    /* Another architecture: the message names the field. */
    dk_unet_config wider = c;
    wider.base_width = 8;
    dk_unet *other = planned_net(&wider, 3);
    char *other_arch = dk_unet_config_to_json(&wider);
    cr_assert_eq(dk_checkpoint_load(path, other_arch, dk_unet_params(other), NULL, &err),
                 DK_EMISMATCH);
    cr_assert(strstr(err.msg, "base_width"), "%s", err.msg);

    free(arch);
    free(other_arch);
    dk_optim_release(&opt);
    dk_tensor_release(&x);
    dk_unet_free(a);
    dk_unet_free(b);
    dk_unet_free(other);
    dk_test_rmtree(dir);
    free(dir);
}
