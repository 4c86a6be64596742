/* test_pass_work.c: a precompute pass's noisy input and cropped accumulation
 * (teacher/pass_work.h) on two threads give the bits of plain one-thread loops,
 * and dk_rng_skip lands where drawing would. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "distill/blas.h"
#include "distill/normal.h"
#include "distill/rng.h"
#include "teacher/pass_work.h"
#include "testutil.h"

Test(rng, skip_lands_where_drawing_would)
{
    dk_rng a = dk_rng_seed(42), b = dk_rng_seed(42);
    for (int i = 0; i < 1000; i++)
        dk_rng_next(&a);
    dk_rng_skip(&b, 1000);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(dk_rng_next(&a), dk_rng_next(&b));
}

static dk_pool *two_threads(void)
{
    dk_blas_set_threads(2);
    dk_pool *pool = dk_pool_create(2, NULL);
    cr_assert(pool);
    return pool;
}

Test(pass_work, noisy_input_is_the_one_thread_stream)
{
    size_t n = 300001; /* odd, and above the two-thread threshold */
    float *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *want),
          *got = malloc(n * sizeof *got);
    cr_assert(x && want && got);
    dk_test_fill_uniform(x, n, 3, -2, 2);
    uint64_t seed = 17 + 5 * 0x9E3779B97F4A7C15ULL;
    dk_rng rng = dk_rng_seed(seed); /* the whole stream on one thread */
    double *z = malloc(n * sizeof *z);
    cr_assert(z);
    dk_normal_fill(&rng, n, z);
    for (size_t i = 0; i < n; i++)
        want[i] = x[i] + (float)(0.1 * z[i]);
    free(z);
    dk_pool *pool = two_threads();
    dk_pass_noisy_input(x, n, 0.1, seed, got, pool);
    cr_assert_eq(memcmp(want, got, n * sizeof *got), 0);
    dk_pass_noisy_input(x, n, 0.1, seed + 1, got, pool);
    cr_assert_neq(memcmp(want, got, n * sizeof *got), 0, "another seed gives other noise");
    dk_pool_free(pool);
    free(x);
    free(want);
    free(got);
}

Test(pass_work, add_cropped_adds_the_crop_once)
{
    /* prob: 3 classes on a padded 10 x 70 x 90 grid; the crop 7 x 64 x 85 at (1, 4, 2) */
    dk_tensor prob = dk_test_tensor(1, 3, 10, 70, 90);
    dk_test_fill_uniform(prob.data, dk_tensor_numel(&prob), 5, 0, 1);
    int dims[3] = {7, 64, 85}, before[3] = {1, 4, 2};
    size_t cells = (size_t)3 * 7 * 64 * 85;
    float *want = malloc(cells * sizeof *want), *got = malloc(cells * sizeof *got);
    cr_assert(want && got);
    dk_test_fill_uniform(want, cells, 9, 0, 1);
    memcpy(got, want, cells * sizeof *got);
    size_t k = 0;
    for (int c = 0; c < 3; c++)
        for (int z = 0; z < dims[0]; z++)
            for (int y = 0; y < dims[1]; y++)
                for (int i = 0; i < dims[2]; i++)
                    want[k++] +=
                        prob.data[(((size_t)c * 10 + z + before[0]) * 70 + y + before[1]) * 90 + i +
                                  before[2]];
    dk_pool *pool = two_threads();
    dk_pass_add_cropped(&prob, dims, before, got, pool);
    cr_assert_eq(memcmp(want, got, cells * sizeof *got), 0);
    dk_pool_free(pool);
    dk_tensor_release(&prob);
    free(want);
    free(got);
}
