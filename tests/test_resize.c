/* test_resize.c: trilinear resize with align_corners = false (distill/layers.h):
 * identity, PyTorch's known up- and down-sampling weights on each axis, backward
 * against central finite differences, and forward and backward against PyTorch
 * itself when the Debian Python has torch (skipped, and says so, when not). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "distill/layers.h"
#include "testutil.h"

/* Resize a length-`in` line of values along one axis (0 = D, 1 = H, 2 = W) to `out`. */
static void resize_line(int axis, const float *line, int in, float *result, int out)
{
    int si[3] = {1, 1, 1}, so[3] = {1, 1, 1};
    si[axis] = in;
    so[axis] = out;
    dk_tensor x = dk_tensor_view((float *)line, 1, 1, si[0], si[1], si[2]);
    dk_tensor y = dk_tensor_view(result, 1, 1, so[0], so[1], so[2]);
    dk_resize_trilinear_forward(&x, &y);
}

Test(resize, same_size_is_the_identity)
{
    dk_tensor x = dk_test_tensor(2, 3, 3, 4, 5), y = dk_test_tensor(2, 3, 3, 4, 5);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 71, -5, 5);
    dk_resize_trilinear_forward(&x, &y);
    dk_test_assert_close(y.data, x.data, dk_tensor_numel(&x), 0);
    dk_resize_trilinear_backward(&x, &y);
    dk_test_assert_close(y.data, x.data, dk_tensor_numel(&x), 0);
    dk_tensor_release(&x);
    dk_tensor_release(&y);
}

Test(resize, known_weights_on_every_axis)
{
    float two[2] = {1, 5}, four[4] = {1, 5, 2, 8}, three[3] = {1, 2, 3}, five[5] = {0, 1, 2, 3, 4};
    for (int axis = 0; axis < 3; axis++) {
        float got[5];
        /* 2 -> 4: (x0, 0.75 x0 + 0.25 x1, 0.25 x0 + 0.75 x1, x1), as PyTorch gives. */
        resize_line(axis, two, 2, got, 4);
        float up[4] = {1, 2, 4, 5};
        dk_test_assert_close(got, up, 4, 1e-6);
        /* 4 -> 2 averages neighbours. */
        resize_line(axis, four, 4, got, 2);
        float down[2] = {3, 5};
        dk_test_assert_close(got, down, 2, 1e-6);
        /* Uneven ratios, values from torch 1.13: [1, 2, 3] -> 5 and [0..4] -> 3. */
        resize_line(axis, three, 3, got, 5);
        float up35[5] = {1, 1.4f, 2, 2.6f, 3};
        dk_test_assert_close(got, up35, 5, 1e-6);
        resize_line(axis, five, 5, got, 3);
        float down53[3] = {1.f / 3, 2, 11.f / 3};
        dk_test_assert_close(got, down53, 3, 1e-6);
    }
}

Test(resize, halving_a_cube_averages_each_2x2x2_block)
{
    dk_tensor x = dk_test_tensor(1, 2, 4, 4, 4), y = dk_test_tensor(1, 2, 2, 2, 2);
    dk_test_fill_uniform(x.data, dk_tensor_numel(&x), 72, -1, 1);
    dk_resize_trilinear_forward(&x, &y);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 8; i++) {
            int od = i / 4, oh = i / 2 % 2, ow = i % 2;
            double sum = 0;
            for (int j = 0; j < 8; j++)
                sum += x.data[c * 64 + (2 * od + j / 4) * 16 + (2 * oh + j / 2 % 2) * 4 + 2 * ow +
                              j % 2];
            cr_assert_float_eq(y.data[c * 8 + i], sum / 8, 1e-6, "channel %d, voxel %d", c, i);
        }
    dk_tensor_release(&x);
    dk_tensor_release(&y);
}

typedef struct resize_case {
    dk_tensor x, y, r;
} resize_case;

static double resize_loss(void *ctx)
{
    resize_case *rc = ctx;
    dk_resize_trilinear_forward(&rc->x, &rc->y);
    double s = 0;
    for (size_t i = 0; i < dk_tensor_numel(&rc->y); i++)
        s += (double)rc->y.data[i] * rc->r.data[i];
    return s;
}

static void resize_gradcheck(const int in[5], const int out[3])
{
    resize_case rc;
    rc.x = dk_test_tensor(in[0], in[1], in[2], in[3], in[4]);
    rc.y = dk_test_tensor(in[0], in[1], out[0], out[1], out[2]);
    rc.r = dk_test_tensor(in[0], in[1], out[0], out[1], out[2]);
    dk_tensor dx = dk_test_tensor(in[0], in[1], in[2], in[3], in[4]);
    dk_test_fill_uniform(rc.x.data, dk_tensor_numel(&rc.x), 73, -1, 1);
    dk_test_fill_uniform(rc.r.data, dk_tensor_numel(&rc.r), 74, -1, 1);
    dk_test_fill_uniform(dx.data, dk_tensor_numel(&dx), 75, 5, 6); /* must be overwritten */
    dk_resize_trilinear_backward(&rc.r, &dx);
    double worst = dk_test_gradcheck(resize_loss, &rc, rc.x.data, dx.data, dk_tensor_numel(&rc.x),
                                     1e-2, 1e-3, 200);
    cr_assert_lt(worst, 1e-3, "(%d,%d,%d) -> (%d,%d,%d): worst relative error %g", in[2], in[3],
                 in[4], out[0], out[1], out[2], worst);
    dk_tensor_release(&rc.x);
    dk_tensor_release(&rc.y);
    dk_tensor_release(&rc.r);
    dk_tensor_release(&dx);
}

Test(resize, backward_matches_finite_differences)
{
    resize_gradcheck((int[5]){1, 2, 3, 4, 5}, (int[3]){5, 3, 7});
    resize_gradcheck((int[5]){2, 1, 4, 4, 4}, (int[3]){8, 2, 3});
    resize_gradcheck((int[5]){1, 1, 1, 2, 3}, (int[3]){3, 1, 6});
    resize_gradcheck((int[5]){1, 1, 2, 2, 300}, (int[3]){1, 3, 257}); /* several W chunks */
}

/* ------------------------------------------------------- against PyTorch */

/* Reads case i's x{i}.f32 and r{i}.f32 for each shape given on the command line
 * (as "n,c,d,h,w,D,H,W"), writes y{i}.f32 and dx{i}.f32 = d sum(y * r) / dx. */
static const char *torch_script =
    "import sys, numpy as np, torch, torch.nn.functional as F\n"
    "d = sys.argv[1]\n"
    "for i, spec in enumerate(sys.argv[2:]):\n"
    "    n, c, di, hi, wi, do, ho, wo = map(int, spec.split(','))\n"
    "    x = np.fromfile(f'{d}/x{i}.f32', '<f4').reshape(n, c, di, hi, wi)\n"
    "    r = np.fromfile(f'{d}/r{i}.f32', '<f4').reshape(n, c, do, ho, wo)\n"
    "    x = torch.from_numpy(x).requires_grad_(True)\n"
    "    y = F.interpolate(x, size=(do, ho, wo), mode='trilinear', align_corners=False)\n"
    "    (y * torch.from_numpy(r)).sum().backward()\n"
    "    y.detach().numpy().astype('<f4').tofile(f'{d}/y{i}.f32')\n"
    "    x.grad.numpy().astype('<f4').tofile(f'{d}/dx{i}.f32')\n";

enum { TORCH_CASES = 5 };
static const int torch_cases[TORCH_CASES][8] = {
    {1, 2, 3, 5, 4, 7, 2, 9},      {2, 1, 8, 6, 5, 3, 11, 5}, {1, 1, 7, 9, 13, 3, 4, 6},
    {1, 1, 2, 2, 5000, 1, 3, 7},   /* input spans wider than one blend chunk */
    {1, 1, 1, 2, 700, 2, 1, 1500}, /* several output chunks; long-axis weights */
};

static void file_floats(const char *dir, const char *name, int i, float *v, size_t n, bool write)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s%d.f32", dir, name, i);
    FILE *f = fopen(path, write ? "wb" : "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t done = write ? fwrite(v, sizeof(float), n, f) : fread(v, sizeof(float), n, f);
    cr_assert_eq(done, n, "%s: %zu of %zu floats", path, done, n);
    fclose(f);
}

/* The tensors of one case: ours and torch's results for the same x and r. */
typedef struct torch_case {
    dk_tensor x, r, y, dx, torch_y, torch_dx;
} torch_case;

static void setup_case(torch_case *tc, const int *s, int i, const char *dir)
{
    tc->x = dk_test_tensor(s[0], s[1], s[2], s[3], s[4]);
    tc->dx = dk_test_tensor(s[0], s[1], s[2], s[3], s[4]);
    tc->torch_dx = dk_test_tensor(s[0], s[1], s[2], s[3], s[4]);
    tc->r = dk_test_tensor(s[0], s[1], s[5], s[6], s[7]);
    tc->y = dk_test_tensor(s[0], s[1], s[5], s[6], s[7]);
    tc->torch_y = dk_test_tensor(s[0], s[1], s[5], s[6], s[7]);
    dk_test_fill_uniform(tc->x.data, dk_tensor_numel(&tc->x), 81 + i, -3, 3);
    dk_test_fill_uniform(tc->r.data, dk_tensor_numel(&tc->r), 91 + i, -1, 1);
    file_floats(dir, "x", i, tc->x.data, dk_tensor_numel(&tc->x), true);
    file_floats(dir, "r", i, tc->r.data, dk_tensor_numel(&tc->r), true);
}

static void check_case(torch_case *tc, int i, const char *dir)
{
    file_floats(dir, "y", i, tc->torch_y.data, dk_tensor_numel(&tc->torch_y), false);
    file_floats(dir, "dx", i, tc->torch_dx.data, dk_tensor_numel(&tc->torch_dx), false);
    dk_resize_trilinear_forward(&tc->x, &tc->y);
    dk_resize_trilinear_backward(&tc->r, &tc->dx);
    double fwd = dk_test_max_rel_diff(tc->y.data, tc->torch_y.data, dk_tensor_numel(&tc->y));
    double bwd = dk_test_max_rel_diff(tc->dx.data, tc->torch_dx.data, dk_tensor_numel(&tc->dx));
    cr_assert_lt(fwd, 1e-6, "case %d: forward differs from torch by %g", i, fwd);
    cr_assert_lt(bwd, 1e-5, "case %d: backward differs from torch by %g", i, bwd);
    dk_tensor *all[6] = {&tc->x, &tc->r, &tc->y, &tc->dx, &tc->torch_y, &tc->torch_dx};
    for (int k = 0; k < 6; k++)
        dk_tensor_release(all[k]);
}

Test(resize, matches_pytorch_interpolate)
{
    char cmd[2048], log[4096];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch'", dk_test_python());
    if (dk_test_run(cmd, NULL, 0) != 0) cr_skip_test("%s has no torch", dk_test_python());
    char *dir = dk_test_tmpdir();
    cr_assert_not_null(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/ref.py", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(torch_script, f);
    fclose(f);
    torch_case cases[TORCH_CASES];
    int used = snprintf(cmd, sizeof cmd, "%s %s %s", dk_test_python(), path, dir);
    for (int i = 0; i < TORCH_CASES; i++) {
        const int *s = torch_cases[i];
        setup_case(&cases[i], s, i, dir);
        used += snprintf(cmd + used, sizeof cmd - used, " %d,%d,%d,%d,%d,%d,%d,%d", s[0], s[1],
                         s[2], s[3], s[4], s[5], s[6], s[7]);
    }
    cr_assert_eq(dk_test_run(cmd, log, sizeof log), 0, "%s failed: %s", cmd, log);
    for (int i = 0; i < TORCH_CASES; i++)
        check_case(&cases[i], i, dir);
    dk_test_rmtree(dir);
    free(dir);
}
