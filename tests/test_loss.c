/* test_loss.c: the training losses (loss.h): small cases computed by hand,
 * every gradient against central finite differences on random batches (with
 * masks and ignore labels), accumulation, batches, and the degenerate inputs a
 * student meets (all-zero masks, all-ignored labels, logits of +-80). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "distill/loss.h"
#include "testutil.h"

#define LN3 1.0986122886681098f

static dk_tensor tensor(int n, int c, int d, int h, int w)
{
    dk_tensor t;
    cr_assert_eq(dk_tensor_alloc(&t, n, c, d, h, w, NULL), DK_OK);
    return t;
}

static dk_workspace workspace_for(const dk_tensor *t)
{
    dk_workspace ws = {0};
    cr_assert_eq(dk_workspace_reserve(&ws, dk_loss_workspace_floats(t), NULL), DK_OK);
    return ws;
}

/* softmax over channels of x / T, computed here independently of the library. */
static void reference_softmax(const dk_tensor *x, float temperature, dk_tensor *y)
{
    size_t plane = dk_tensor_spatial(x);
    for (int n = 0; n < x->n; n++)
        for (size_t v = 0; v < plane; v++) {
            const float *xv = x->data + (size_t)n * x->c * plane + v;
            float *yv = y->data + (size_t)n * x->c * plane + v;
            double peak = -INFINITY, total = 0;
            for (int c = 0; c < x->c; c++)
                peak = fmax(peak, xv[c * plane]);
            for (int c = 0; c < x->c; c++)
                total += exp((xv[c * plane] - peak) / temperature);
            for (int c = 0; c < x->c; c++)
                yv[c * plane] = (float)(exp((xv[c * plane] - peak) / temperature) / total);
        }
}

/* ---------------------------------------------------------------- by hand */

/* 1x2x1x2x2: class-1 logit minus class-0 logit is ln3, -ln3, 0, ln3, so
 * p1 = 0.75, 0.25, 0.5, 0.75; labels 1, 0, 1, 0.
 * Class 1: I = 1.25, P = 2.25, G = 2 -> D1 = 2.5 / 4.25 = 10/17.
 * Class 0: I = 1.0, P = 1.75, G = 2 -> D0 = 2 / 3.75 = 8/15. */
static void dice_case(dk_tensor *logits, uint8_t labels[4])
{
    *logits = tensor(1, 2, 1, 2, 2);
    const float diff[4] = {LN3, -LN3, 0, LN3};
    for (int v = 0; v < 4; v++)
        logits->data[4 + v] = diff[v];
    const uint8_t lab[4] = {1, 0, 1, 0};
    memcpy(labels, lab, 4);
}

Test(dice, by_hand_with_and_without_background)
{
    dk_tensor logits, grad;
    uint8_t labels[4];
    dice_case(&logits, labels);
    grad = tensor(1, 2, 1, 2, 2);
    dk_workspace ws = workspace_for(&logits);
    float per_class[2];
    dk_dice_opts with_bg = {.include_background = true, .smooth = 0};
    float loss = dk_loss_dice(&logits, labels, &with_bg, 1, NULL, per_class, &ws);
    cr_assert_float_eq(loss, 1 - (10.0 / 17 + 8.0 / 15) / 2, 1e-6); /* 0.439216 */
    cr_assert_float_eq(per_class[0], 8.0 / 15, 1e-6);
    cr_assert_float_eq(per_class[1], 10.0 / 17, 1e-6);

    dk_dice_opts no_bg = {.include_background = false, .smooth = 0};
    loss = dk_loss_dice(&logits, labels, &no_bg, 1, &grad, NULL, &ws);
    cr_assert_float_eq(loss, 7.0 / 17, 1e-6);
    /* Voxel 0 (g1 = 1, p1 = 3/4): dL/dp1 = -(2 - 10/17) / 4.25 = -96/289; through the
     * two-class softmax dL/dz1 = p1 (1 - p1) dL/dp1 = -18/289 and dL/dz0 = +18/289. */
    cr_assert_float_eq(grad.data[4], -18.0 / 289, 1e-6);
    cr_assert_float_eq(grad.data[0], 18.0 / 289, 1e-6);

    /* The default smooth (1e-5) barely moves the value; NULL opts = with background. */
    loss = dk_loss_dice(&logits, labels, NULL, 1, NULL, NULL, &ws);
    cr_assert_float_eq(loss, 1 - (10.0 / 17 + 8.0 / 15) / 2, 1e-5);
    dk_workspace_release(&ws);
    dk_tensor_release(&logits);
    dk_tensor_release(&grad);
}

Test(dice, ignored_voxels_count_for_nothing)
{
    dk_tensor logits;
    uint8_t labels[4];
    dice_case(&logits, labels);
    dk_workspace ws = workspace_for(&logits);
    dk_dice_opts no_bg = {.include_background = false, .smooth = 0};
    /* Ignore voxel 3: class 1 keeps I = 1.25, P = 1.5, G = 2 -> D1 = 2.5 / 3.5. */
    labels[3] = DK_LABEL_IGNORE;
    float loss = dk_loss_dice(&logits, labels, &no_bg, 1, NULL, NULL, &ws);
    cr_assert_float_eq(loss, 1 - 2.5 / 3.5, 1e-6);
    dk_workspace_release(&ws);
    dk_tensor_release(&logits);
}

Test(cross_entropy, by_hand_weights_and_ignore)
{
    /* Three voxels. Logits [0, ln3] -> p = [0.25, 0.75] at voxels 0 and 1; voxel 2 ignored. */
    dk_tensor logits = tensor(1, 2, 1, 1, 3), grad = tensor(1, 2, 1, 1, 3);
    dk_workspace ws = workspace_for(&logits);
    float z[6] = {0, 0, 5, LN3, LN3, -5};
    memcpy(logits.data, z, sizeof z);
    uint8_t labels[3] = {1, 0, DK_LABEL_IGNORE};
    /* Unweighted: (-ln 0.75 - ln 0.25) / 2. */
    float loss = dk_loss_cross_entropy(&logits, labels, NULL, 1, &grad, &ws);
    cr_assert_float_eq(loss, 0.8369882167858358, 1e-6);
    /* dL/dz = (p - onehot) / 2: voxel 0 [0.125, -0.125], voxel 1 [-0.375, 0.375], voxel 2 0. */
    const float want[6] = {0.125f, -0.375f, 0, -0.125f, 0.375f, 0};
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(grad.data[i], want[i], 1e-6, "index %d", i);
    /* Weights [2, 1]: (1 * 0.287682 + 2 * 1.386294) / (1 + 2), as PyTorch's weighted mean. */
    const float weights[2] = {2, 1};
    loss = dk_loss_cross_entropy(&logits, labels, weights, 1, NULL, &ws);
    cr_assert_float_eq(loss, 1.0200902648971872, 1e-6);
    /* A single voxel: -ln 0.75. */
    labels[1] = DK_LABEL_IGNORE;
    loss = dk_loss_cross_entropy(&logits, labels, NULL, 1, NULL, &ws);
    cr_assert_float_eq(loss, 0.2876820724517809, 1e-6);
    dk_workspace_release(&ws);
    dk_tensor_release(&logits);
    dk_tensor_release(&grad);
}

Test(response_kl, by_hand_with_temperature_squared)
{
    /* T = 2, student [0, 2 ln3] -> softmax(z / 2) = [0.25, 0.75]; teacher [0.5, 0.5].
     * KL = 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3); times T^2 = 2 ln(4/3) = 0.575364.
     * dL/dz = T (q - p) = [-0.5, 0.5]. */
    dk_tensor z = tensor(1, 2, 1, 1, 1), p = tensor(1, 2, 1, 1, 1), grad = tensor(1, 2, 1, 1, 1);
    dk_workspace ws = workspace_for(&z);
    z.data[1] = 2 * LN3;
    p.data[0] = p.data[1] = 0.5f;
    float loss = dk_loss_response_kl(&z, &p, 2, NULL, 1, &grad, &ws);
    cr_assert_float_eq(loss, 0.5753641449035617, 1e-6);
    cr_assert_float_eq(grad.data[0], -0.5, 1e-6);
    cr_assert_float_eq(grad.data[1], 0.5, 1e-6);
    /* The same distributions at T = 1 (logits halved) give a quarter of the value. */
    z.data[1] = LN3;
    float at_one = dk_loss_response_kl(&z, &p, 1, NULL, 1, NULL, &ws);
    cr_assert_float_eq(at_one * 4, loss, 1e-6);
    dk_workspace_release(&ws);
    dk_tensor_release(&z);
    dk_tensor_release(&p);
    dk_tensor_release(&grad);
}

Test(response_kl, zero_when_student_equals_teacher)
{
    dk_tensor z = tensor(2, 3, 3, 4, 5), p = tensor(2, 3, 3, 4, 5), grad = tensor(2, 3, 3, 4, 5);
    dk_workspace ws = workspace_for(&z);
    dk_test_fill_uniform(z.data, dk_tensor_numel(&z), 7, -4, 4);
    for (int i = 0; i < 2; i++) {
        float temperature = i ? 3.0f : 1.0f;
        reference_softmax(&z, temperature, &p);
        dk_tensor_zero(&grad);
        float loss = dk_loss_response_kl(&z, &p, temperature, NULL, 1, &grad, &ws);
        cr_assert(fabsf(loss) < 1e-5f, "T=%g: loss %g", temperature, loss);
        for (size_t j = 0; j < dk_tensor_numel(&grad); j++)
            cr_assert(fabsf(grad.data[j]) < 1e-6f, "T=%g: grad[%zu] = %g", temperature, j,
                      grad.data[j]);
    }
    dk_workspace_release(&ws);
    dk_tensor_release(&z);
    dk_tensor_release(&p);
    dk_tensor_release(&grad);
}

Test(response_mse, by_hand_masked)
{
    /* Voxel 0: q = [0.25, 0.75], p = [0.5, 0.5] -> mean over channels of (q - p)^2 = 0.0625.
     * Voxel 1 differs wildly but is masked out.
     * dL/dq = 2 (q - p) / C = [-0.25, 0.25]; sum_c q dL/dq = 0.125;
     * dL/dz = q (dL/dq - 0.125) = [-0.09375, 0.09375]. */
    dk_tensor z = tensor(1, 2, 1, 1, 2), p = tensor(1, 2, 1, 1, 2), grad = tensor(1, 2, 1, 1, 2);
    dk_workspace ws = workspace_for(&z);
    const float zs[4] = {0, 9, LN3, -9}, ps[4] = {0.5f, 0, 0.5f, 1};
    memcpy(z.data, zs, sizeof zs);
    memcpy(p.data, ps, sizeof ps);
    const float mask[2] = {1, 0};
    float loss = dk_loss_response_mse(&z, &p, mask, 1, &grad, &ws);
    cr_assert_float_eq(loss, 0.0625, 1e-6);
    const float want[4] = {-0.09375f, 0, 0.09375f, 0};
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(grad.data[i], want[i], 1e-6, "index %d", i);
    dk_workspace_release(&ws);
    dk_tensor_release(&z);
    dk_tensor_release(&p);
    dk_tensor_release(&grad);
}

Test(response, zero_mask_gives_zero_loss_and_gradient)
{
    dk_tensor z = tensor(2, 3, 3, 4, 5), p = tensor(2, 3, 3, 4, 5), grad = tensor(2, 3, 3, 4, 5);
    dk_workspace ws = workspace_for(&z);
    float mask[120] = {0};
    dk_test_fill_uniform(z.data, dk_tensor_numel(&z), 3, -80, 80);
    dk_tensor_fill(&p, 1.0f / 3);
    cr_assert_eq(dk_loss_response_kl(&z, &p, 2, mask, 1, &grad, &ws), 0.0f);
    cr_assert_eq(dk_loss_response_mse(&z, &p, mask, 1, &grad, &ws), 0.0f);
    for (size_t j = 0; j < dk_tensor_numel(&grad); j++)
        cr_assert_eq(grad.data[j], 0.0f);
    dk_workspace_release(&ws);
    dk_tensor_release(&z);
    dk_tensor_release(&p);
    dk_tensor_release(&grad);
}

Test(uncertainty_mask, threshold_and_fraction)
{
    const float entropy[5] = {0.1f, 0.8f, 0.69f, NAN, 0.6931472f};
    float mask[5];
    float kept = dk_uncertainty_mask(entropy, 5, 0.6931472f, mask); /* ln 2 */
    const float want[5] = {1, 0, 1, 0, 0};                          /* strict <, NaN dropped */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(mask[i], want[i], "index %d", i);
    cr_assert_float_eq(kept, 0.4, 1e-7);
    cr_assert_eq(dk_uncertainty_mask(entropy, 0, 1, mask), 0.0f);
}

Test(feature, mse_and_kl_by_hand)
{
    /* MSE: s = [1, 2, 3], t = [0, 0, 1] -> (1 + 4 + 4) / 3 = 3; grad 2 (s - t) / 3. */
    dk_tensor s = tensor(1, 3, 1, 1, 1), t = tensor(1, 3, 1, 1, 1), g = tensor(1, 3, 1, 1, 1);
    const float sv[3] = {1, 2, 3}, tv[3] = {0, 0, 1};
    memcpy(s.data, sv, sizeof sv);
    memcpy(t.data, tv, sizeof tv);
    float mse = dk_loss_feature_mse(&s, &t, 1, &g); /* the assert macro evaluates twice */
    cr_assert_float_eq(mse, 3.0, 1e-6);
    const float want[3] = {2.0f / 3, 4.0f / 3, 4.0f / 3};
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(g.data[i], want[i], 1e-6, "index %d", i);

    /* KL at T = 2: teacher [0, 2 ln3] -> p = [0.25, 0.75]; student [0, 0] -> q = [0.5, 0.5].
     * KL = 0.25 ln 0.5 + 0.75 ln 1.5 = 0.130812; times T^2 = 0.523248.
     * dL/ds = T (q - p) = [0.5, -0.5]. */
    dk_tensor s2 = tensor(1, 2, 1, 1, 1), t2 = tensor(1, 2, 1, 1, 1), g2 = tensor(1, 2, 1, 1, 1);
    dk_workspace ws = workspace_for(&s2);
    t2.data[1] = 2 * LN3;
    float loss = dk_loss_feature_kl(&s2, &t2, 2, 1, &g2, &ws);
    cr_assert_float_eq(loss, 4 * 0.13081203594113697, 1e-6);
    cr_assert_float_eq(g2.data[0], 0.5, 1e-6);
    cr_assert_float_eq(g2.data[1], -0.5, 1e-6);
    dk_workspace_release(&ws);
    dk_tensor *all[] = {&s, &t, &g, &s2, &t2, &g2};
    for (int i = 0; i < 6; i++)
        dk_tensor_release(all[i]);
}

/* ------------------------------------------------ finite differences */

enum loss_kind {
    DICE,
    DICE_NO_BG,
    CE,
    CE_WEIGHTED,
    KL,
    KL_MASKED,
    MSE,
    MSE_MASKED,
    FEAT_MSE,
    FEAT_KL,
    KIND_COUNT
};
static const char *const kind_names[] = {"dice",        "dice_no_bg", "ce",  "ce_weighted",
                                         "kl",          "kl_masked",  "mse", "mse_masked",
                                         "feature_mse", "feature_kl"};

/* One random problem of shape (2, 3, 3, 4, 5) with every input a loss may take. */
typedef struct problem {
    enum loss_kind kind;
    dk_tensor x, other, grad; /* x: logits or student features; other: teacher */
    uint8_t labels[120];
    float mask[120];
    float class_weights[3];
    dk_workspace ws;
} problem;

static void problem_init(problem *pb, enum loss_kind kind, unsigned seed)
{
    memset(pb, 0, sizeof *pb);
    pb->kind = kind;
    pb->x = tensor(2, 3, 3, 4, 5);
    pb->other = tensor(2, 3, 3, 4, 5);
    pb->grad = tensor(2, 3, 3, 4, 5);
    pb->ws = workspace_for(&pb->x);
    dk_test_fill_uniform(pb->x.data, 360, seed, -3, 3);
    dk_test_fill_uniform(pb->other.data, 360, seed + 1, -3, 3);
    if (kind == KL || kind == KL_MASKED || kind == MSE || kind == MSE_MASKED)
        reference_softmax(&pb->other, 2.0f, &pb->other); /* teacher probabilities */
    float u[120];
    dk_test_fill_uniform(u, 120, seed + 2, 0, 1);
    for (int i = 0; i < 120; i++) {
        /* About one voxel in eight ignored, the rest spread over the classes. */
        pb->labels[i] = u[i] < 0.125f ? DK_LABEL_IGNORE : (uint8_t)(u[i] * 3 * 8 / 7) % 3;
        /* Soft mask with exact zeros: a quarter of voxels dropped, the rest in (0, 1]. */
        pb->mask[i] = u[(i * 7) % 120] < 0.25f ? 0.0f : u[(i * 7) % 120];
    }
    const float cw[3] = {0.5f, 2.0f, 1.25f};
    memcpy(pb->class_weights, cw, sizeof cw);
}

static void problem_release(problem *pb)
{
    dk_tensor_release(&pb->x);
    dk_tensor_release(&pb->other);
    dk_tensor_release(&pb->grad);
    dk_workspace_release(&pb->ws);
}

static float problem_loss(problem *pb, float weight, dk_tensor *grad)
{
    dk_dice_opts bg = {.include_background = true, .smooth = 1e-5f};
    dk_dice_opts no_bg = {.include_background = false, .smooth = 1e-5f};
    switch (pb->kind) {
    case DICE:
        return dk_loss_dice(&pb->x, pb->labels, &bg, weight, grad, NULL, &pb->ws);
    case DICE_NO_BG:
        return dk_loss_dice(&pb->x, pb->labels, &no_bg, weight, grad, NULL, &pb->ws);
    case CE:
        return dk_loss_cross_entropy(&pb->x, pb->labels, NULL, weight, grad, &pb->ws);
    case CE_WEIGHTED:
        return dk_loss_cross_entropy(&pb->x, pb->labels, pb->class_weights, weight, grad, &pb->ws);
    case KL:
        return dk_loss_response_kl(&pb->x, &pb->other, 2, NULL, weight, grad, &pb->ws);
    case KL_MASKED:
        return dk_loss_response_kl(&pb->x, &pb->other, 2, pb->mask, weight, grad, &pb->ws);
    case MSE:
        return dk_loss_response_mse(&pb->x, &pb->other, NULL, weight, grad, &pb->ws);
    case MSE_MASKED:
        return dk_loss_response_mse(&pb->x, &pb->other, pb->mask, weight, grad, &pb->ws);
    case FEAT_MSE:
        return dk_loss_feature_mse(&pb->x, &pb->other, weight, grad);
    case FEAT_KL:
        return dk_loss_feature_kl(&pb->x, &pb->other, 2, weight, grad, &pb->ws);
    default:
        cr_assert_fail("kind %d", pb->kind);
    }
    return 0;
}

static double problem_value(void *ctx)
{
    return problem_loss(ctx, 1, NULL);
}

/* Worst finite-difference mismatch of the gradient added with weight 2.5, over all 360
 * inputs. The loss comes back as a float, so a difference quotient of a mean over 120
 * voxels carries noise of ~1e-3 of the largest gradient (measured at step 0.02): the
 * floor of the relative error is a tenth of that largest gradient. */
static double problem_gradcheck(problem *pb, float scale_analytic)
{
    dk_tensor_zero(&pb->grad);
    problem_loss(pb, 2.5f, &pb->grad);
    float analytic[360];
    double peak = 0;
    for (int i = 0; i < 360; i++) {
        analytic[i] = pb->grad.data[i] / 2.5f * scale_analytic;
        peak = fmax(peak, fabs(analytic[i]));
    }
    return dk_test_gradcheck(problem_value, pb, pb->x.data, analytic, 360, 0.02, 0.1 * peak, 0);
}

Test(gradcheck, every_loss_against_central_differences)
{
    for (int kind = 0; kind < KIND_COUNT; kind++) {
        problem pb;
        problem_init(&pb, kind, 100 + kind);
        double worst = problem_gradcheck(&pb, 1.0f);
        cr_expect(worst < 1e-2, "%s: worst relative error %g", kind_names[kind], worst);
        /* The check must be able to fail: a gradient 10 % off is caught. */
        double off = problem_gradcheck(&pb, 1.1f);
        cr_expect(off > 2e-2, "%s: a 10%% error went unnoticed (%g)", kind_names[kind], off);
        problem_release(&pb);
    }
}

Test(gradcheck, masked_and_ignored_voxels_get_no_gradient)
{
    enum loss_kind kinds[] = {DICE, CE_WEIGHTED, KL_MASKED, MSE_MASKED};
    for (int k = 0; k < 4; k++) {
        problem pb;
        problem_init(&pb, kinds[k], 200 + k);
        problem_loss(&pb, 1, &pb.grad);
        bool masked = kinds[k] == KL_MASKED || kinds[k] == MSE_MASKED;
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++)
                for (int v = 0; v < 60; v++) {
                    bool dropped = masked ? pb.mask[n * 60 + v] == 0
                                          : pb.labels[n * 60 + v] == DK_LABEL_IGNORE;
                    if (dropped)
                        cr_assert_eq(pb.grad.data[(n * 3 + c) * 60 + v], 0.0f, "%s",
                                     kind_names[kinds[k]]);
                }
        problem_release(&pb);
    }
}

Test(accumulate, calling_twice_doubles_the_gradient)
{
    for (int kind = 0; kind < KIND_COUNT; kind++) {
        problem pb;
        problem_init(&pb, kind, 300 + kind);
        float once[360];
        float first = problem_loss(&pb, 0.7f, &pb.grad);
        memcpy(once, pb.grad.data, sizeof once);
        float second = problem_loss(&pb, 0.7f, &pb.grad);
        cr_assert_eq(first, second, "%s: value changed between calls", kind_names[kind]);
        bool any = false;
        for (int i = 0; i < 360; i++) {
            cr_assert_float_eq(pb.grad.data[i], 2 * once[i], 1e-7, "%s", kind_names[kind]);
            any |= once[i] != 0;
        }
        cr_assert(any, "%s: gradient all zero", kind_names[kind]);
        /* The value is unweighted. */
        float unweighted = problem_loss(&pb, 5, NULL);
        cr_assert_float_eq(unweighted, first, 1e-7, "%s", kind_names[kind]);
        problem_release(&pb);
    }
}

/* ---------------------------------------------------------------- batches */

Test(batch, per_voxel_losses_average_over_samples_dice_pools_them)
{
    /* Sample 1 is a copy of sample 0 except for the logits: a batch of two
     * equal-count samples has the mean of their two losses. */
    enum loss_kind kinds[] = {CE, KL, MSE, FEAT_KL, FEAT_MSE};
    for (int k = 0; k < 5; k++) {
        problem pb;
        problem_init(&pb, kinds[k], 400 + k);
        for (int i = 0; i < 60; i++)
            pb.labels[i] = pb.labels[60 + i] = (uint8_t)(i % 3);
        memcpy(pb.other.data + 180, pb.other.data, 180 * sizeof(float));
        float batch = problem_loss(&pb, 1, NULL);
        dk_tensor full = pb.x;
        pb.x = dk_tensor_sample(&full, 0);
        pb.x.n = 1;
        dk_tensor teacher = pb.other;
        pb.other = dk_tensor_sample(&teacher, 0);
        float a = problem_loss(&pb, 1, NULL);
        pb.x = dk_tensor_sample(&full, 1);
        float b = problem_loss(&pb, 1, NULL);
        cr_assert_float_eq(batch, (a + b) / 2, 1e-6, "%s", kind_names[kinds[k]]);
        pb.x = full;
        pb.other = teacher;
        problem_release(&pb);
    }
    /* Dice sums over the whole batch: two copies of a case give that case's Dice. */
    dk_tensor one, two = tensor(2, 2, 1, 2, 2);
    uint8_t labels[8];
    dice_case(&one, labels);
    memcpy(labels + 4, labels, 4);
    memcpy(two.data, one.data, 8 * sizeof(float));
    memcpy(two.data + 8, one.data, 8 * sizeof(float));
    dk_workspace ws = workspace_for(&two);
    dk_dice_opts exact = {.include_background = true, .smooth = 0};
    float pooled = dk_loss_dice(&two, labels, &exact, 1, NULL, NULL, &ws);
    cr_assert_float_eq(pooled, 1 - (10.0 / 17 + 8.0 / 15) / 2, 1e-6);
    dk_workspace_release(&ws);
    dk_tensor_release(&one);
    dk_tensor_release(&two);
}

Test(batch, large_volume_crosses_chunks)
{
    /* 1000 voxels per sample spans several internal chunks (and a ragged last one):
     * CE there equals the mean of single-voxel CEs computed here. */
    dk_tensor z = tensor(2, 4, 10, 10, 10);
    dk_workspace ws = workspace_for(&z);
    dk_test_fill_uniform(z.data, dk_tensor_numel(&z), 11, -5, 5);
    static uint8_t labels[2000];
    for (int i = 0; i < 2000; i++)
        labels[i] = (uint8_t)((i * 7) % 4);
    double want = 0;
    for (int n = 0; n < 2; n++)
        for (int v = 0; v < 1000; v++) {
            double total = 0;
            for (int c = 0; c < 4; c++)
                total += exp(z.data[(n * 4 + c) * 1000 + v]);
            want -= log(exp(z.data[(n * 4 + labels[n * 1000 + v]) * 1000 + v]) / total);
        }
    want /= 2000;
    float got = dk_loss_cross_entropy(&z, labels, NULL, 1, NULL, &ws);
    cr_assert_float_eq(got, want, 1e-5);
    dk_workspace_release(&ws);
    dk_tensor_release(&z);
}

/* -------------------------------------------------------- degenerate input */

static bool all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

Test(extreme, logits_of_80_stay_finite)
{
    for (int kind = 0; kind < KIND_COUNT; kind++) {
        problem pb;
        problem_init(&pb, kind, 500 + kind);
        float u[360];
        dk_test_fill_uniform(u, 360, 600 + kind, 0, 1);
        for (int i = 0; i < 360; i++)
            pb.x.data[i] = u[i] < 0.5f ? -80.0f : 80.0f;
        if (kind == FEAT_MSE || kind == FEAT_KL)
            for (int i = 0; i < 360; i++)
                pb.other.data[i] = u[(i * 13) % 360] < 0.5f ? 80 : -80;
        float loss = problem_loss(&pb, 1, &pb.grad);
        cr_assert(isfinite(loss), "%s: loss %g", kind_names[kind], loss);
        cr_assert(all_finite(pb.grad.data, 360), "%s: non-finite gradient", kind_names[kind]);
        problem_release(&pb);
    }
    /* The worst CE: the label's class sits 160 below the peak. */
    dk_tensor z = tensor(1, 2, 1, 1, 1), g = tensor(1, 2, 1, 1, 1);
    dk_workspace ws = workspace_for(&z);
    z.data[0] = 80;
    z.data[1] = -80;
    uint8_t label = 1;
    float ce = dk_loss_cross_entropy(&z, &label, NULL, 1, &g, &ws);
    cr_assert_float_eq(ce, 160, 1e-4);
    cr_assert_float_eq(g.data[0], 1, 1e-6);
    cr_assert_float_eq(g.data[1], -1, 1e-6);
    dk_workspace_release(&ws);
    dk_tensor_release(&z);
    dk_tensor_release(&g);
}

Test(extreme, nothing_to_learn_gives_zero_not_nan)
{
    problem pb;
    problem_init(&pb, CE, 700);
    memset(pb.labels, DK_LABEL_IGNORE, sizeof pb.labels);
    memset(pb.mask, 0, sizeof pb.mask);
    for (int kind = 0; kind < KIND_COUNT; kind++) {
        if (kind == FEAT_MSE || kind == FEAT_KL) continue; /* no labels or masks */
        pb.kind = kind;
        dk_tensor_zero(&pb.grad);
        float loss = problem_loss(&pb, 1, &pb.grad);
        bool nothing = kind != KL && kind != MSE; /* those two have no mask here */
        cr_assert(isfinite(loss), "%s: loss %g", kind_names[kind], loss);
        if (!nothing) continue;
        cr_assert(all_finite(pb.grad.data, 360), "%s", kind_names[kind]);
        if (kind == DICE || kind == DICE_NO_BG) {
            /* Dice with no voxels: every class is "smooth / smooth" = 1, loss 0. */
            cr_assert_float_eq(loss, 0, 1e-6, "%s", kind_names[kind]);
        } else {
            cr_assert_eq(loss, 0.0f, "%s", kind_names[kind]);
        }
        for (int i = 0; i < 360; i++)
            cr_assert_eq(pb.grad.data[i], 0.0f, "%s", kind_names[kind]);
    }
    problem_release(&pb);
}

Test(workspace, size_covers_whole_softmax_and_chunks)
{
    dk_tensor big = tensor(2, 5, 8, 8, 8), tiny = tensor(1, 3, 1, 1, 2);
    cr_assert_geq(dk_loss_workspace_floats(&big), dk_tensor_numel(&big));
    cr_assert_geq(dk_loss_workspace_floats(&tiny), 4 * 3 * 2);
    dk_tensor_release(&big);
    dk_tensor_release(&tiny);
}
