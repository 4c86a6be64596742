/* test_cli_args.c: the option values every subcommand parses through cli/util.c, run
 * through the real binary: one number grammar (no spaces, signs or trailing text,
 * bounds), and one 16 MiB cap for the JSON files a command reads. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

TestSuite(cli_args, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

/* Run `dualkd <args>` in the test directory; returns the exit status, output in out. */
static int run(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", dk_test_dir, dk_test_bin(), args);
    return dk_test_run(cmd, out, cap);
}

Test(cli_args, integers_are_whole_plain_and_bounded)
{
    static const char *const bad[] = {"0", "257", "' 3'", "+3", "3x", "-1", "''", "2.0"};
    char out[4096], args[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "teacher train --data d.h5 --out t.h5 --threads %s", bad[i]);
        cr_assert_eq(run(args, out, sizeof out), 2, "--threads %s: %s", bad[i], out);
        cr_assert(strstr(out, "--threads"), "%s", out);
    }
    cr_assert_eq(run("teacher train --threads 3 --print-config", out, sizeof out), 0, "%s", out);
    cr_assert_eq(run("teacher train --seed 9007199254740993 --print-config", out, sizeof out), 2);
    cr_assert_eq(run("teacher precompute --teacher t --data d --profile repository --out o "
                     "--passes 2.5",
                     out, sizeof out),
                 2, "%s", out);
    cr_assert(strstr(out, "--passes '2.5': expected a whole number"), "%s", out);
    cr_assert_eq(run("data synth --n 1 --seed -3 --out a.h5", out, sizeof out), 2, "%s", out);
}

Test(cli_args, numbers_are_finite_and_bounded)
{
    char out[4096];
    cr_assert_eq(run("teacher precompute --teacher t --data d --profile repository --out o "
                     "--temperature nan",
                     out, sizeof out),
                 2, "%s", out);
    cr_assert(strstr(out, "--temperature 'nan'"), "%s", out);
    cr_assert_eq(run("data show x.h5 --out a.png --alpha 1.5", out, sizeof out), 2, "%s", out);
    cr_assert_eq(run("data show x.h5 --out a.png --alpha 0.5x", out, sizeof out), 2, "%s", out);
}

Test(cli_args, json_files_share_one_16_mib_cap)
{
    char *big = dk_test_path("big.json");
    FILE *f = fopen(big, "w");
    cr_assert_not_null(f);
    fputc('{', f);
    for (long i = 0; i < (16L << 20); i++)
        fputc(' ', f);
    fputc('}', f);
    fclose(f);
    char out[4096];
    cr_assert_eq(run("teacher train --data d.h5 --out t.h5 --config big.json", out, sizeof out), 1);
    cr_assert(strstr(out, "config 'big.json' is larger than 16 MiB"), "%s", out);
    cr_assert_eq(run("teacher precompute --teacher t --data d --profile repository --out o "
                     "--student big.json",
                     out, sizeof out),
                 1);
    cr_assert(strstr(out, "student config 'big.json' is larger than 16 MiB"), "%s", out);
    cr_assert_eq(run("teacher train --config missing.json --print-config", out, sizeof out), 1);
    cr_assert(strstr(out, "cannot open config 'missing.json'"), "%s", out);
    free(big);
}
