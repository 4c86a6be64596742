/* test_pass_work.c: a precompute pass's noisy input (teacher/pass_work.h) on two
 * threads gives the bits of a plain one-thread loop, and dk_rng_skip lands where
 * drawing would. (The cropped accumulation is tested in test_softmax.c.) */
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
