/* test_feature_adapter.c: feature distillation as a student uses it: its tap goes
 * through a learned 1x1x1 adapter (a conv from conv.h) to the teacher's channel
 * count, then a feature loss; the gradients reach the adapter's weight and bias
 * and the student's tap. Checked against central finite differences. */
#include <criterion/criterion.h>
#include <math.h>

#include "distill/conv.h"
#include "distill/loss.h"
#include "testutil.h"

typedef struct adapter_case {
    dk_conv3d_geom geom;
    dk_tensor tap, weight, bias, adapted, teacher;
    dk_workspace ws;
    bool use_kl;
} adapter_case;

static double adapter_loss(void *p)
{
    adapter_case *a = p;
    dk_conv3d_forward(&a->geom, &a->tap, &a->weight, &a->bias, &a->adapted, &a->ws);
    return a->use_kl ? dk_loss_feature_kl(&a->adapted, &a->teacher, 2.0f, 1.0f, NULL, &a->ws)
                     : dk_loss_feature_mse(&a->adapted, &a->teacher, 1.0f, NULL);
}

static float max_abs(const dk_tensor *t)
{
    float m = 0;
    for (size_t i = 0; i < dk_tensor_numel(t); i++) m = fmaxf(m, fabsf(t->data[i]));
    return m;
}

static void check(bool use_kl)
{
    adapter_case a = {.geom = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}}, .use_kl = use_kl};
    dk_tensor_alloc(&a.tap, 2, 4, 2, 3, 3, NULL);
    dk_tensor_alloc(&a.weight, 6, 4, 1, 1, 1, NULL);
    dk_tensor_alloc(&a.bias, 6, 1, 1, 1, 1, NULL);
    dk_tensor_alloc(&a.adapted, 2, 6, 2, 3, 3, NULL);
    dk_tensor_alloc(&a.teacher, 2, 6, 2, 3, 3, NULL);
    dk_test_fill_uniform(a.tap.data, dk_tensor_numel(&a.tap), 1, -1, 1);
    dk_test_fill_uniform(a.weight.data, dk_tensor_numel(&a.weight), 2, -1, 1);
    dk_test_fill_uniform(a.bias.data, 6, 3, -0.5f, 0.5f);
    dk_test_fill_uniform(a.teacher.data, dk_tensor_numel(&a.teacher), 4, -2, 2);
    int in[3] = {2, 3, 3};
    size_t need = dk_conv3d_workspace_floats(&a.geom, false, 4, 6, in);
    size_t loss_need = dk_loss_workspace_floats(&a.teacher);
    cr_assert_eq(dk_workspace_reserve(&a.ws, need > loss_need ? need : loss_need, NULL), DK_OK);

    dk_tensor dadapted, dtap, dweight, dbias;
    dk_tensor_alloc_like(&dadapted, &a.adapted, NULL);
    dk_tensor_alloc_like(&dtap, &a.tap, NULL);
    dk_tensor_alloc_like(&dweight, &a.weight, NULL);
    dk_tensor_alloc_like(&dbias, &a.bias, NULL);
    dk_conv3d_forward(&a.geom, &a.tap, &a.weight, &a.bias, &a.adapted, &a.ws);
    if (use_kl)
        dk_loss_feature_kl(&a.adapted, &a.teacher, 2.0f, 1.0f, &dadapted, &a.ws);
    else
        dk_loss_feature_mse(&a.adapted, &a.teacher, 1.0f, &dadapted);
    dk_conv3d_backward(&a.geom, &a.tap, &a.weight, &dadapted, &dtap, &dweight, &dbias, &a.ws);

    struct {
        const char *name;
        dk_tensor *value, *grad;
    } checks[3] = {{"adapter weight", &a.weight, &dweight},
                   {"adapter bias", &a.bias, &dbias},
                   {"student tap", &a.tap, &dtap}};
    for (int i = 0; i < 3; i++) {
        double worst = dk_test_gradcheck(adapter_loss, &a, checks[i].value->data,
                                         checks[i].grad->data, dk_tensor_numel(checks[i].value),
                                         1e-2, 0.1 * max_abs(checks[i].grad), 0);
        cr_expect_lt(worst, 1e-2, "%s loss: %s gradient off by %g", use_kl ? "KL" : "MSE",
                     checks[i].name, worst);
    }
    dk_tensor *all[] = {&a.tap, &a.weight, &a.bias, &a.adapted, &a.teacher,
                        &dadapted, &dtap, &dweight, &dbias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dk_tensor_release(all[i]);
    dk_workspace_release(&a.ws);
}

Test(feature_adapter, mse_gradients_reach_adapter_and_tap) { check(false); }
Test(feature_adapter, kl_gradients_reach_adapter_and_tap) { check(true); }
