/* test_segment.c: sliding-window inference (datasets/segment.h): one tile that
 * covers the volume equals a direct forward pass; overlapping tiles give a
 * probability distribution per voxel; arg-max labels agree with the probabilities;
 * a training plan of the same shape is kept; bad options are refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/segment.h"
#include "distill/layers.h"
#include "testutil.h"

static dk_unet *small_net(void)
{
    dk_unet_config c = dk_unet_config_default(1, 3);
    c.levels = 2;
    c.base_width = 4;
    dk_unet *net = dk_unet_create(&c, 7, NULL);
    cr_assert(net);
    return net;
}

Test(segment, one_tile_over_the_whole_volume_is_the_forward_pass)
{
    dk_unet *net = small_net();
    int d[3] = {4, 8, 6};
    float img[192];
    dk_test_fill_uniform(img, 192, 3, -1, 1);
    dk_segment_options o = dk_segment_options_default(d);
    float *probs = malloc(3 * 192 * sizeof *probs);
    cr_assert_eq(dk_segment_probs(net, &o, img, d, probs, NULL), DK_OK);
    dk_tensor x = dk_tensor_view(img, 1, 1, 4, 8, 6), p = dk_test_tensor(1, 3, 4, 8, 6);
    dk_unet_forward(net, &x);
    dk_softmax_channels_forward(dk_unet_logits(net), 1.0f, &p, NULL);
    dk_test_assert_close(probs, p.data, 3 * 192, 1e-6);
    dk_tensor_release(&p);
    free(probs);
    dk_unet_free(net);
}

Test(segment, overlapping_gaussian_tiles_give_distributions_and_argmax_labels)
{
    dk_unet *net = small_net();
    int d[3] = {5, 13, 11}, tile[3] = {4, 8, 6};
    size_t V = 5 * 13 * 11;
    float *img = malloc(V * sizeof *img), *probs = malloc(3 * V * sizeof *probs);
    uint8_t *labels = malloc(V);
    dk_test_fill_uniform(img, V, 5, -1, 1);
    dk_segment_options o = dk_segment_options_default(tile);
    o.batch = 3;
    o.overlap = 0.6f;
    cr_assert_eq(dk_segment_probs(net, &o, img, d, probs, NULL), DK_OK);
    cr_assert_eq(dk_segment_labels(net, &o, img, d, labels, NULL), DK_OK);
    for (size_t i = 0; i < V; i++) {
        float s = probs[i] + probs[V + i] + probs[2 * V + i];
        cr_assert(fabsf(s - 1) < 1e-5f, "voxel %zu: sum %g", i, s);
        int best = probs[V + i] > probs[i] ? 1 : 0;
        if (probs[2 * V + i] > probs[best * V + i]) best = 2;
        cr_assert_eq(labels[i], best);
    }
    const dk_tensor *l = dk_unet_logits(net);
    cr_expect(l->n == 3 && l->d == 4 && l->h == 8 && l->w == 6, "plan (batch, tile)");
    free(img);
    free(probs);
    free(labels);
    dk_unet_free(net);
}

Test(segment, small_volumes_get_fitted_tiles_and_bad_options_are_refused)
{
    int tile[3] = {16, 128, 128}, d[3] = {5, 300, 40}, mult[3] = {4, 16, 16}, out[3];
    dk_segment_fit_tile(tile, d, mult, out);
    cr_expect(out[0] == 8 && out[1] == 128 && out[2] == 48, "%d %d %d", out[0], out[1], out[2]);
    dk_unet *net = small_net();
    int dd[3] = {4, 8, 6};
    float img[192] = {0}, probs[576];
    dk_segment_options o = dk_segment_options_default(dd);
    o.overlap = 0.97f;
    dk_err err;
    cr_expect_eq(dk_segment_probs(net, &o, img, dd, probs, &err), DK_EINVAL);
    cr_expect(strstr(err.msg, "overlap"), "%s", err.msg);
    dk_unet_free(net);
}
