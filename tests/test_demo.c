/* test_demo.c: `dualkd demo` and `dualkd student init`, run through the real binary:
 * the initial student is reproducible, and the demo refuses what would mix runs. The
 * whole demo at its smallest sizes runs in tests/demo_report.py (with the browser). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "distill/checkpoint.h"
#include "distill/unet_checkpoint.h"
#include "testutil.h"

TestSuite(demo, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

static int run(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", dk_test_dir, dk_test_bin(), args);
    return dk_test_run(cmd, out, cap);
}

static void write_file(const char *name, const char *text)
{
    char *path = dk_test_path(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

static const char config[] =
    "{\"network\": {\"levels\": 2, \"base_width\": 2, \"pool\": [[1, 2, 2]], "
    "\"kernel\": [[3, 3, 3], [3, 3, 3]]}, \"patch\": [4, 16, 16]}";

static int files_equal(const char *a, const char *b)
{
    char cmd[1024], out[256];
    snprintf(cmd, sizeof cmd, "cd '%s' && cmp -s %s %s", dk_test_dir, a, b);
    return dk_test_run(cmd, out, sizeof out) == 0;
}

Test(demo, student_init_is_reproducible_and_has_the_data_classes)
{
    char out[4096];
    write_file("student.json", config);
    cr_assert_eq(run("data synth --profile clinical-3.3mm --labelled 1 --seed 3 --quiet "
                     "--out site.h5",
                     out, sizeof out),
                 0, "%s", out);
    cr_assert_eq(run("student init --config student.json --data site.h5 --out a.h5 --seed 7",
                     out, sizeof out),
                 0, "%s", out);
    cr_assert(strstr(out, "2 levels, base width 2, 5 classes, seed 7"), "%s", out);
    cr_assert_eq(run("student init --config student.json --data site.h5 --out b.h5 --seed 7",
                     out, sizeof out),
                 0, "%s", out);
    cr_assert_eq(run("student init --config student.json --data site.h5 --out c.h5 --seed 8",
                     out, sizeof out),
                 0, "%s", out);
    cr_assert(files_equal("a.h5", "b.h5"), "the same seed wrote different files");
    cr_assert(!files_equal("a.h5", "c.h5"), "another seed wrote the same weights");
    char *path = dk_test_path("a.h5");
    dk_err err = {0};
    char *arch = NULL;
    dk_unet *net = dk_unet_load_checkpoint(path, &arch, &err);
    cr_assert_not_null(net, "%s", err.msg);
    cr_assert(strstr(arch, "\"classes\":5"), "%s", arch);
    dk_unet_free(net);
    free(arch);
    free(path);
}

Test(demo, student_init_says_what_is_missing)
{
    char out[4096];
    write_file("nonet.json", "{\"patch\": [4, 16, 16]}");
    cr_assert_eq(run("data synth --profile clinical-3.3mm --labelled 1 --seed 3 --quiet "
                     "--out site.h5",
                     out, sizeof out),
                 0, "%s", out);
    cr_assert_eq(run("student init --config nonet.json --data site.h5 --out a.h5", out,
                     sizeof out),
                 1, "%s", out);
    cr_assert(strstr(out, "nonet.json: student config has no \"network\" section"), "%s", out);
    cr_assert_eq(run("student init --config nonet.json --out a.h5", out, sizeof out), 2, "%s",
                 out);
    cr_assert(strstr(out, "--config, --data and --out are required"), "%s", out);
}

Test(demo, refuses_a_folder_that_holds_another_run)
{
    char out[4096];
    write_file("old.txt", "x");
    char args[1024];
    snprintf(args, sizeof args, "demo --tiny --out '%s'", dk_test_dir);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is not empty: give a new folder"), "%s", out);
    cr_assert_eq(run("demo --quick --tiny --frobnicate", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "unknown option or missing value: '--frobnicate'"), "%s", out);
    cr_assert_eq(run("demo --seed -1", out, sizeof out), 2, "%s", out);
}
