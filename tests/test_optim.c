/* test_optim.c: SGD (momentum, Nesterov, weight decay), Adam and AdamW against
 * values worked out from PyTorch's update equations, one and three steps on a
 * 3-element parameter; Adam on a quadratic; the poly schedule; kind names. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "distill/optim.h"
#include "testutil.h"

/* p0 = [1, -2, 0.5]. "Constant" runs keep grad = [0.5, 1, -1]; "varying" runs use
 * these three gradients in turn (the caller zeroes grads, so each step sets its own). */
static const float start[3] = {1, -2, 0.5f};
static const float varying[3][3] = {{0.5f, 1, -1}, {-0.3f, 2, 0.1f}, {0.2f, -0.5f, 0.4f}};

typedef struct fixture {
    dk_param param;
    dk_params list;
    dk_optimizer opt;
} fixture;

static void setup(fixture *f, const dk_optim_config *config)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(dk_param_init(&f->param, "w", 1, 1, 1, 1, 3, NULL), DK_OK);
    memcpy(f->param.value.data, start, sizeof start);
    cr_assert_eq(dk_params_push(&f->list, &f->param, NULL), DK_OK);
    dk_err err = {0};
    cr_assert_eq(dk_optim_init(&f->opt, config, &f->list, &err), DK_OK, "%s", err.msg);
}

static void teardown(fixture *f)
{
    dk_optim_release(&f->opt);
    dk_params_release(&f->list);
    dk_param_release(&f->param);
}

/* Run three steps (grads constant or varying) and compare after steps 1 and 3. */
static void run(const dk_optim_config *config, bool vary, const double after1[3],
                const double after3[3])
{
    fixture f;
    setup(&f, config);
    for (int step = 0; step < 3; step++) {
        memcpy(f.param.grad.data, varying[vary ? step : 0], sizeof varying[0]);
        dk_optim_step(&f.opt, config->lr);
        const double *want = step == 0 ? after1 : step == 2 ? after3 : NULL;
        for (int i = 0; want && i < 3; i++)
            cr_assert_float_eq(f.param.value.data[i], want[i], 2e-6, "%s step %d element %d",
                               dk_optim_kind_name(config->kind), step + 1, i);
    }
    cr_assert_eq(f.opt.step, 3);
    teardown(&f);
}

static dk_optim_config sgd(float momentum, bool nesterov, float weight_decay)
{
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_SGD, 0.1f);
    c.momentum = momentum;
    c.nesterov = nesterov;
    c.weight_decay = weight_decay;
    return c;
}

Test(sgd, plain)
{
    /* p -= 0.1 g: [1, -2, 0.5] - 0.1 [0.5, 1, -1] = [0.95, -2.1, 0.6]; then the
     * varying grads sum to [0.4, 2.5, -0.5] -> [0.96, -2.25, 0.55]. */
    dk_optim_config c = sgd(0, false, 0);
    run(&c, true, (double[]){0.95, -2.1, 0.6}, (double[]){0.96, -2.25, 0.55});
}

Test(sgd, momentum_buffer_starts_at_the_gradient)
{
    /* PyTorch: buf_1 = g, buf_t = 0.9 buf + g -> buf = g, 1.9 g, 2.71 g; p moves by
     * 0.1 * (1 + 1.9 + 2.71) g = 0.561 g after three steps. */
    dk_optim_config c = sgd(0.9f, false, 0);
    run(&c, false, (double[]){0.95, -2.1, 0.6}, (double[]){0.7195, -2.561, 1.061});
}

Test(sgd, nesterov)
{
    /* Update g + 0.9 buf: 1.9 g, 2.71 g, 3.439 g; total 0.1 * 8.049 g. */
    dk_optim_config c = sgd(0.9f, true, 0);
    run(&c, false, (double[]){0.905, -2.19, 0.69}, (double[]){0.59755, -2.8049, 1.3049});
}

Test(sgd, weight_decay_with_varying_grads)
{
    /* g' = g + 0.1 p. Step 1: g' = [0.6, 0.8, -0.95], p = [0.94, -2.08, 0.595].
     * Step 2: g' = [-0.206, 1.792, 0.1595], buf = 0.9 [0.6, 0.8, -0.95] + g' =
     * [0.334, 2.512, -0.6955], p = [0.9066, -2.3312, 0.66455].
     * Step 3: g' = [0.29066, -0.73312, 0.466455], buf = [0.59126, 1.52768, -0.159495],
     * p = [0.847474, -2.483968, 0.6804995]. */
    dk_optim_config c = sgd(0.9f, false, 0.1f);
    run(&c, true, (double[]){0.94, -2.08, 0.595}, (double[]){0.847474, -2.483968, 0.6804995});
    /* The same with Nesterov (update g' + 0.9 buf). */
    c.nesterov = true;
    run(&c, true, (double[]){0.886, -2.152, 0.6805},
        (double[]){0.796275646, -2.615238472, 0.6913785605});
}

Test(adam, bias_correction_makes_each_step_lr_times_sign)
{
    /* Constant g: m_t = (1 - 0.9^t) g and v_t = (1 - 0.999^t) g^2, so the corrected
     * m / sqrt(v) is g / |g| and every step moves lr = 0.1 against the sign of g
     * (eps = 1e-8 changes the 9th digit). Without the correction step 1 would be 0.316. */
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_ADAM, 0.1f);
    run(&c, false, (double[]){0.9, -2.1, 0.6}, (double[]){0.7, -2.3, 0.8});
}

Test(adam, l2_weight_decay_with_varying_grads)
{
    /* g' = g + 0.1 p in the moments; from m = 0.9 m + 0.1 g', v = 0.999 v + 0.001 g'^2,
     * p -= (0.1 / (1 - 0.9^t)) m / (sqrt(v) / sqrt(1 - 0.999^t) + 1e-8). */
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_ADAM, 0.1f);
    c.weight_decay = 0.1f;
    run(&c, true, (double[]){0.9, -2.1, 0.6}, (double[]){0.8078745547, -2.242384455, 0.6632782109});
}

Test(adamw, decoupled_decay)
{
    /* p *= 1 - lr * wd = 0.99, then the Adam step of lr * sign(g) (constant g):
     * step 1 [0.99, -1.98, 0.495] - 0.1 sign g = [0.89, -2.08, 0.595];
     * step 2 [0.7811, -2.1592, 0.68905]; step 3 [0.673289, -2.237608, 0.7821595]. */
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_ADAMW, 0.1f);
    c.weight_decay = 0.1f;
    run(&c, false, (double[]){0.89, -2.08, 0.595}, (double[]){0.673289, -2.237608, 0.7821595});
    /* Varying grads: the decay stays out of m and v. */
    run(&c, true, (double[]){0.89, -2.08, 0.595},
        (double[]){0.8185879288, -2.1930216918, 0.6607466153});
}

Test(adam, minimises_a_quadratic)
{
    /* f(p) = sum a_i (p_i - c_i)^2 with curvatures 100x apart. */
    const float a[3] = {0.1f, 1, 10}, target[3] = {3, -1, 0.25f};
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_ADAM, 0.05f);
    fixture f;
    setup(&f, &c);
    for (long step = 0; step < 2000; step++) {
        for (int i = 0; i < 3; i++)
            f.param.grad.data[i] = 2 * a[i] * (f.param.value.data[i] - target[i]);
        dk_optim_step(&f.opt, dk_lr_poly(c.lr, step, 2000, 0.9f));
    }
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(f.param.value.data[i], target[i], 1e-3, "element %d", i);
    teardown(&f);
}

Test(optim, deterministic_and_grads_untouched)
{
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_ADAMW, 0.01f);
    float result[2][3];
    for (int run = 0; run < 2; run++) {
        fixture f;
        setup(&f, &c);
        for (int step = 0; step < 5; step++) {
            memcpy(f.param.grad.data, varying[step % 3], sizeof varying[0]);
            dk_optim_step(&f.opt, c.lr);
            cr_assert_eq(memcmp(f.param.grad.data, varying[step % 3], sizeof varying[0]), 0);
        }
        memcpy(result[run], f.param.value.data, sizeof result[run]);
        teardown(&f);
    }
    cr_assert_eq(memcmp(result[0], result[1], sizeof result[0]), 0);
}

Test(optim, state_shapes_and_bad_configs)
{
    fixture f;
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_SGD, 0.1f);
    setup(&f, &c);
    cr_assert_eq(f.opt.params.count, 1);
    cr_assert(dk_tensor_same_shape(&f.opt.moment1[0], &f.param.value));
    cr_assert_null(f.opt.moment2);
    teardown(&f);
    c = dk_optim_defaults(DK_OPTIM_ADAM, 0.1f);
    setup(&f, &c);
    cr_assert(dk_tensor_same_shape(&f.opt.moment2[0], &f.param.value));
    teardown(&f);

    dk_params none = {0};
    dk_optimizer opt;
    dk_err err = {0};
    dk_optim_config bad = dk_optim_defaults(DK_OPTIM_ADAM, 0.1f);
    bad.beta2 = 1.0f;
    cr_assert_eq(dk_optim_init(&opt, &bad, &none, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "betas"), "message: %s", err.msg);
    bad = dk_optim_defaults(DK_OPTIM_SGD, -1);
    cr_assert_eq(dk_optim_init(&opt, &bad, &none, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "lr -1"), "message: %s", err.msg);
    bad = sgd(0, true, 0);
    cr_assert_eq(dk_optim_init(&opt, &bad, &none, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "nesterov"), "message: %s", err.msg);
    /* No parameters is legal and stepping it is a no-op. */
    c = dk_optim_defaults(DK_OPTIM_ADAMW, 0.1f);
    cr_assert_eq(dk_optim_init(&opt, &c, &none, &err), DK_OK);
    dk_optim_step(&opt, 0.1f);
    dk_optim_release(&opt);
}

Test(defaults, pytorch_values)
{
    dk_optim_config a = dk_optim_defaults(DK_OPTIM_ADAM, 0.01f);
    cr_assert_eq(a.lr, 0.01f);
    cr_assert_eq(a.beta1, 0.9f);
    cr_assert_eq(a.beta2, 0.999f);
    cr_assert_eq(a.eps, 1e-8f);
    cr_assert_eq(a.weight_decay, 0.0f);
    cr_assert_eq(dk_optim_defaults(DK_OPTIM_ADAMW, 0.01f).weight_decay, 0.01f);
}

Test(schedule, poly_endpoints)
{
    cr_assert_eq(dk_lr_poly(0.01f, 0, 100, 0.9f), 0.01f);
    cr_assert_float_eq(dk_lr_poly(0.01f, 50, 100, 0.9f), 0.005358867312681466, 1e-9);
    cr_assert_float_eq(dk_lr_poly(0.01f, 99, 100, 1.0f), 0.0001, 1e-9);
    cr_assert_eq(dk_lr_poly(0.01f, 100, 100, 0.9f), 0.0f);
    cr_assert_eq(dk_lr_poly(0.01f, 250, 100, 0.9f), 0.0f);
    cr_assert_eq(dk_lr_poly(0.01f, 100, 100, 0.0f), 0.0f);
    cr_assert_eq(dk_lr_poly(0.01f, 10, 0, 0.9f), 0.0f);
    /* Monotone non-increasing. */
    for (long s = 1; s <= 100; s++)
        cr_assert_leq(dk_lr_poly(0.01f, s, 100, 0.9f), dk_lr_poly(0.01f, s - 1, 100, 0.9f));
}

Test(kind, names_round_trip)
{
    dk_optim_kind kinds[] = {DK_OPTIM_SGD, DK_OPTIM_ADAM, DK_OPTIM_ADAMW};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(dk_optim_kind_parse(dk_optim_kind_name(kinds[i])), (int)kinds[i]);
    cr_assert_str_eq(dk_optim_kind_name(DK_OPTIM_ADAMW), "adamw");
    cr_assert_eq(dk_optim_kind_parse("rmsprop"), -1);
    cr_assert_eq(dk_optim_kind_parse(""), -1);
    cr_assert_eq(dk_optim_kind_parse(NULL), -1);
    cr_assert_str_eq(dk_optim_kind_name((dk_optim_kind)7), "unknown");
}
