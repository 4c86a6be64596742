/* test_tensor.c: tensors, workspaces, parameter lists and the dualkd binary's basics. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "distill/param.h"
#include "distill/tensor.h"
#include "distill/workspace.h"
#include "testutil.h"

Test(tensor, alloc_is_zeroed_and_aligned)
{
    dk_tensor t;
    dk_err err = {0};
    cr_assert_eq(dk_tensor_alloc(&t, 2, 3, 4, 5, 6, &err), DK_OK);
    cr_assert_eq(dk_tensor_numel(&t), 720);
    cr_assert_eq((uintptr_t)t.data % 64, 0);
    for (size_t i = 0; i < dk_tensor_numel(&t); i++) cr_assert_eq(t.data[i], 0.0f);
    dk_tensor s = dk_tensor_sample(&t, 1);
    cr_assert_eq(s.data, t.data + 360);
    cr_assert_not(s.owns_data);
    dk_tensor_release(&t);
    cr_assert_null(t.data);
}

Test(tensor, bad_shape_names_the_shape)
{
    dk_tensor t;
    dk_err err = {0};
    cr_assert_eq(dk_tensor_alloc(&t, 1, 0, 4, 4, 4, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "(1, 0, 4, 4, 4)"), "message: %s", err.msg);
}

Test(workspace, reserve_grows_only)
{
    dk_workspace ws = {0};
    cr_assert_eq(dk_workspace_reserve(&ws, 100, NULL), DK_OK);
    float *p = ws.data;
    cr_assert_eq(dk_workspace_reserve(&ws, 50, NULL), DK_OK);
    cr_assert_eq(ws.data, p);
    cr_assert_eq(dk_workspace_floats(&ws, 100), p);
    dk_workspace_release(&ws);
}

Test(param, list_find_and_numel)
{
    dk_param a, b;
    dk_params list = {0};
    cr_assert_eq(dk_param_init(&a, "enc.weight", 4, 2, 3, 3, 3, NULL), DK_OK);
    cr_assert_eq(dk_param_init(&b, "enc.bias", 4, 1, 1, 1, 1, NULL), DK_OK);
    dk_params_push(&list, &a, NULL);
    dk_params_push(&list, &b, NULL);
    cr_assert_eq(dk_params_numel(&list), 4 * 2 * 27 + 4);
    cr_assert_eq(dk_params_find(&list, "enc.bias"), &b);
    cr_assert_null(dk_params_find(&list, "nope"));
    dk_params_release(&list);
    dk_param_release(&a);
    dk_param_release(&b);
}

Test(cli, version_and_help_run)
{
    char out[4096], cmd[1024];
    snprintf(cmd, sizeof cmd, "%s version", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "dualkd "), "%s", out);
    snprintf(cmd, sizeof cmd, "%s --help", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "version"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s no-such-command", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "no-such-command"), "%s", out);
}
