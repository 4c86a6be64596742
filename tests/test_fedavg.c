/* test_fedavg.c: federated models in real checkpoint files, update validation
 * (each refusal names the tensor), the norm rule, and the weighted average
 * against a hand computation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/half.h"
#include "httpapi/fedavg.h"
#include "teacher/sha256.h"
#include "testutil.h"

TestSuite(fedavg, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

/* A two-tensor "student": enc.weight (1, 2, 1, 1, 3) and head.bias (1, 1, 1, 1, 2). */
static void make_global(dk_fed_model *g, const float *w6, const float *b2)
{
    dk_fed_model like = {0};
    static char arch[] = "{\"kind\":\"toy\"}";
    like.architecture_json = arch;
    dk_param ps[2] = {0};
    snprintf(ps[0].name, sizeof ps[0].name, "enc.weight");
    ps[0].value = dk_tensor_view((float *)w6, 1, 2, 1, 1, 3);
    snprintf(ps[1].name, sizeof ps[1].name, "head.bias");
    ps[1].value = dk_tensor_view((float *)b2, 1, 1, 1, 1, 2);
    like.params = ps;
    like.count = 2;
    dk_err err = {0};
    cr_assert_eq(dk_fed_model_zeros_like(&like, g, &err), DK_OK, "%s", err.msg);
    memcpy(g->params[0].value.data, w6, 6 * sizeof(float));
    memcpy(g->params[1].value.data, b2, 2 * sizeof(float));
}

static dk_fed_wire_tensor wire(const char *name, const void *data, size_t n, dk_fed_dtype dtype,
                               int64_t a, int64_t b, int64_t c, int64_t d, int64_t e)
{
    dk_fed_wire_tensor t = {.name = name,
                            .dtype = dtype,
                            .rank = 5,
                            .data = data,
                            .nbytes = n * (dtype == DK_FED_FLOAT16 ? 2 : 4)};
    int64_t dims[5] = {a, b, c, d, e};
    memcpy(t.dims, dims, sizeof dims);
    return t;
}

static const float W[6] = {1, 2, 3, 4, 5, 6}, B[2] = {0.5f, -0.5f};

Test(fedavg, float16_wire_values_convert_exactly)
{
    for (unsigned h = 0; h < 65536; h++) {
        float f = dk_half_to_float((uint16_t)h);
        if (isnan(f)) continue;
        cr_assert_eq(dk_half_from_float(f), h, "half 0x%04x -> %g does not round-trip", h, f);
    }
    cr_assert(isnan(dk_half_to_float(0x7e00)));
    cr_assert_eq(dk_half_to_float(0x3c00), 1.0f);
    cr_assert_eq(dk_half_to_float(0xc000), -2.0f);
}

Test(fedavg, models_round_trip_through_checkpoints_with_their_sha256)
{
    dk_fed_model g, back;
    make_global(&g, W, B);
    char *path = dk_test_path("global.h5"), sha[65], sha2[65];
    dk_err err = {0};
    cr_assert_eq(dk_fed_model_save(&g, path, "{\"round\":0}", sha, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_fed_model_load(path, &back, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(back.count, 2);
    cr_assert_str_eq(back.params[1].name, "head.bias");
    cr_assert_arr_eq(back.params[0].value.data, W, sizeof W);
    cr_assert_str_eq(back.architecture_json, "{\"kind\":\"toy\"}");
    cr_assert_eq(dk_sha256_file(path, sha2, &err), DK_OK);
    cr_assert_str_eq(sha, sha2);
    char cmd[600], out[200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0);
    cr_assert_eq(strncmp(out, sha, 64), 0, "sha256sum says %.64s, we say %s", out, sha);
    char *missing = dk_test_path("nope.h5");
    cr_assert_eq(dk_fed_model_load(missing, &back, &err), DK_ENOTFOUND, "%s", err.msg);
    dk_fed_model_release(&back);
    dk_fed_model_release(&g);
    free(path);
    free(missing);
}

Test(fedavg, a_valid_update_converts_float16_and_measures_its_norm)
{
    dk_fed_model g, delta;
    make_global(&g, W, B);
    float dw[6] = {1, 0, 0, 0, 0, 0};
    uint16_t db[2] = {dk_half_from_float(2.0f), dk_half_from_float(-2.0f)};
    dk_fed_wire_tensor t[2] = {wire("head.bias", db, 2, DK_FED_FLOAT16, 1, 1, 1, 1, 2),
                               wire("enc.weight", dw, 6, DK_FED_FLOAT32, 1, 2, 1, 1, 3)};
    double norm;
    dk_err err = {0};
    cr_assert_eq(dk_fedavg_validate(&g, t, 2, &delta, &norm, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(norm, 3.0);
    cr_assert_str_eq(delta.params[1].name, "head.bias", "the delta keeps the global's order");
    cr_assert_eq(delta.params[1].value.data[1], -2.0f);
    dk_fed_model_release(&delta);
    dk_fed_model_release(&g);
}

/* Validate t[0..n) and expect a refusal with status code whose message holds want. */
static void expect_refusal(const dk_fed_wire_tensor *t, int n, dk_status code, const char *want)
{
    dk_fed_model g, delta;
    make_global(&g, W, B);
    double norm;
    dk_err err = {0};
    cr_assert_eq(dk_fedavg_validate(&g, t, n, &delta, &norm, &err), code, "%s", err.msg);
    cr_assert(strstr(err.msg, want), "'%s' not in: %s", want, err.msg);
    cr_assert_null(delta.params, "nothing is kept from a refused update");
    dk_fed_model_release(&g);
}

Test(fedavg, refusals_name_the_tensor)
{
    float dw[6] = {0}, db[2] = {0}, big[8] = {0};
    dk_fed_wire_tensor ok_w = wire("enc.weight", dw, 6, DK_FED_FLOAT32, 1, 2, 1, 1, 3);
    dk_fed_wire_tensor ok_b = wire("head.bias", db, 2, DK_FED_FLOAT32, 1, 1, 1, 1, 2);
    dk_fed_wire_tensor adapter = wire("adapter.weight", big, 8, DK_FED_FLOAT32, 1, 1, 1, 2, 4);
    dk_fed_wire_tensor t[3] = {ok_w, ok_b, adapter};
    expect_refusal(t, 3, DK_EMISMATCH, "'adapter.weight' is not a parameter");
    expect_refusal(t, 1, DK_EMISMATCH, "lacks tensor 'head.bias' (1, 1, 1, 1, 2)");
    dk_fed_wire_tensor dup[3] = {ok_w, ok_b, ok_w};
    expect_refusal(dup, 3, DK_EMISMATCH, "'enc.weight' appears twice");
    dk_fed_wire_tensor shaped[2] = {ok_w, wire("head.bias", big, 4, DK_FED_FLOAT32, 1, 1, 1, 2, 2)};
    expect_refusal(shaped, 2, DK_EMISMATCH,
                   "'head.bias' has shape (1, 1, 1, 2, 2), the global "
                   "student's is (1, 1, 1, 1, 2)");
    dk_fed_wire_tensor flat[2] = {ok_w, ok_b};
    flat[1].rank = 1, flat[1].dims[0] = 2;
    expect_refusal(flat, 2, DK_EMISMATCH, "has shape (2)");
    dk_fed_wire_tensor short_body[2] = {ok_w, ok_b};
    short_body[0].nbytes = 20;
    expect_refusal(short_body, 2, DK_EMISMATCH, "'enc.weight' has 20 bytes, expected 24");
}

Test(fedavg, nan_and_infinity_are_refused)
{
    float dw[6] = {0, 0, 0, NAN, 0, 0}, db[2] = {0};
    dk_fed_wire_tensor t[2] = {wire("enc.weight", dw, 6, DK_FED_FLOAT32, 1, 2, 1, 1, 3),
                               wire("head.bias", db, 2, DK_FED_FLOAT32, 1, 1, 1, 1, 2)};
    expect_refusal(t, 2, DK_EINVAL, "'enc.weight' holds NaN at element 3");
    uint16_t hb[2] = {0, 0x7c00};
    t[1] = wire("head.bias", hb, 2, DK_FED_FLOAT16, 1, 1, 1, 1, 2);
    dw[3] = 0;
    expect_refusal(t, 2, DK_EINVAL, "'head.bias' holds an infinity at element 1");
}

Test(fedavg, the_norm_rule)
{
    dk_err err = {0};
    cr_assert_eq(dk_fedavg_check_norm(9.9, 0.5, NULL, 0, &err), DK_OK, "floor of 1 on |global|");
    cr_assert_eq(dk_fedavg_check_norm(10.1, 0.5, NULL, 0, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "global norm"), "%s", err.msg);
    cr_assert_eq(dk_fedavg_check_norm(150, 20, NULL, 0, &err), DK_OK);
    cr_assert_eq(dk_fedavg_check_norm(NAN, 20, NULL, 0, &err), DK_EINVAL);
    double two[2] = {1, 1}, three[3] = {1, 2, 30};
    cr_assert_eq(dk_fedavg_check_norm(150, 20, two, 2, &err), DK_OK, "no median below 3 updates");
    cr_assert_eq(dk_fedavg_check_norm(20, 20, three, 3, &err), DK_OK);
    cr_assert_eq(dk_fedavg_check_norm(20.5, 20, three, 3, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "median 2 of the 3"), "%s", err.msg);
}

Test(fedavg, aggregation_is_the_labelled_weighted_mean)
{
    dk_fed_model g;
    make_global(&g, W, B);
    const int64_t labelled[3] = {1, 3, 4};
    float deltas[3][8];
    dk_test_fill_uniform(&deltas[0][0], 24, 7, -1, 1);
    dk_fedavg_acc acc;
    dk_err err = {0};
    cr_assert_eq(dk_fedavg_acc_init(&acc, &g, &err), DK_OK);
    for (int s = 0; s < 3; s++) {
        dk_fed_model d;
        dk_fed_wire_tensor t[2] = {
            wire("enc.weight", deltas[s], 6, DK_FED_FLOAT32, 1, 2, 1, 1, 3),
            wire("head.bias", deltas[s] + 6, 2, DK_FED_FLOAT32, 1, 1, 1, 1, 2)};
        double norm;
        cr_assert_eq(dk_fedavg_validate(&g, t, 2, &d, &norm, &err), DK_OK, "%s", err.msg);
        cr_assert_eq(dk_fedavg_acc_add(&acc, &g, &d, labelled[s], &err), DK_OK, "%s", err.msg);
        dk_fed_model_release(&d);
    }
    dk_fedavg_acc_apply(&acc, &g);
    /* by hand: the weighted mean of the three sites' models w + delta_s */
    for (int i = 0; i < 8; i++) {
        double w = i < 6 ? W[i] : B[i - 6], num = 0;
        for (int s = 0; s < 3; s++)
            num += labelled[s] * (w + deltas[s][i]);
        float want = (float)(num / 8.0);
        float got = i < 6 ? g.params[0].value.data[i] : g.params[1].value.data[i - 6];
        cr_assert(fabsf(got - want) <= 1e-6f * fmaxf(1, fabsf(want)), "value %d: %.9g vs %.9g", i,
                  got, want);
    }
    cr_assert_eq(dk_fedavg_acc_add(&acc, &g, &g, 0, &err), DK_EINVAL, "zero labelled volumes");
    dk_fedavg_acc_release(&acc);
    dk_fed_model_release(&g);
}

Test(fedavg, exactly_representable_case_is_bit_exact)
{
    dk_fed_model g, d1, d2;
    make_global(&g, W, B);
    cr_assert_eq(dk_fed_model_zeros_like(&g, &d1, NULL), DK_OK);
    cr_assert_eq(dk_fed_model_zeros_like(&g, &d2, NULL), DK_OK);
    for (int i = 0; i < 6; i++)
        d1.params[0].value.data[i] = 0.5f, d2.params[0].value.data[i] = -0.25f;
    dk_fedavg_acc acc;
    cr_assert_eq(dk_fedavg_acc_init(&acc, &g, NULL), DK_OK);
    cr_assert_eq(dk_fedavg_acc_add(&acc, &g, &d1, 1, NULL), DK_OK);
    cr_assert_eq(dk_fedavg_acc_add(&acc, &g, &d2, 3, NULL), DK_OK);
    dk_fedavg_acc_apply(&acc, &g);
    /* (1 * 0.5 + 3 * -0.25) / 4 = -0.0625 */
    for (int i = 0; i < 6; i++)
        cr_assert_eq(g.params[0].value.data[i], W[i] - 0.0625f);
    cr_assert_eq(g.params[1].value.data[0], 0.5f, "a zero delta leaves the value");
    dk_fedavg_acc_release(&acc);
    dk_fed_model_release(&d1);
    dk_fed_model_release(&d2);
    dk_fed_model_release(&g);
}
