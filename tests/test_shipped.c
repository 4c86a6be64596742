/* test_shipped.c: the default teacher built into dualkd (teacher/shipped.h), as a user
 * gets it: `dualkd teacher export-default` writes a file with the SHA-256 recorded in
 * models/teacher-default.sha256, the file loads as a U-Net, and it segments a synthetic
 * repository volume it never saw (seed 11; it was trained on seed 1) with Dice >= 0.8 on
 * both cartilage classes. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/unet_checkpoint.h"
#include "teacher/sha256.h"
#include "teacher/shipped.h"
#include "testutil.h"

TestSuite(shipped, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 600);

static void recorded_sha(char hex[DK_SHA256_HEX])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/teacher-default.sha256", dk_test_source());
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fscanf(f, "%64s", hex), 1);
    fclose(f);
}

Test(shipped, export_writes_the_recorded_teacher_and_it_segments_cartilage)
{
    char want[DK_SHA256_HEX], got[DK_SHA256_HEX], cmd[8192], out[1 << 16];
    recorded_sha(want);
    cr_expect_str_eq(dk_shipped_teacher_sha256(), want);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' teacher export-default --out teacher.h5 && "
             "'%s' data synth --profile repository --n 1 --validation 0 --seed 11 --quiet "
             "--out repo.h5",
             dk_test_dir, dk_test_bin(), dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    char *path = dk_test_path("teacher.h5");
    dk_err err = {0};
    cr_assert_eq(dk_sha256_file(path, got, &err), DK_OK, "%s", err.msg);
    cr_expect_str_eq(got, want);
    dk_unet *net = dk_unet_load_checkpoint(path, NULL, &err);
    cr_assert_not_null(net, "%s", err.msg);
    dk_unet_free(net);
    free(path);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' eval --model teacher.h5 --data repo.h5 --split all --threads 1 "
             "--json 2>/dev/null",
             dk_test_dir, dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "%s", out);
    const char *cartilage[2] = {"femoral_cartilage", "tibial_cartilage"};
    for (int k = 0; k < 2; k++) {
        double dice = json_number_value(json_object_get(
            json_object_get(json_object_get(json_object_get(j, "summary"), cartilage[k]), "dice"),
            "mean"));
        cr_expect_geq(dice, 0.8, "%s Dice %.4f", cartilage[k], dice);
    }
    json_decref(j);
}

Test(shipped, export_to_an_unwritable_place_fails_cleanly)
{
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' teacher export-default --out /nonexistent-dir/t.h5 2>&1",
             dk_test_bin());
    cr_expect_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "/nonexistent-dir/t.h5"), "%s", out);
}
