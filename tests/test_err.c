/* test_err.c: the error contract of distill/err.h. dk_err_set/prefix keep the code
 * with a NULL err; the prefix appears once with one ": "; long messages truncate
 * safely; library functions called with err == NULL on bad input return the right
 * non-zero status; the CLI's messages for bad input name the file or field once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/acquire.h"
#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "distill/err.h"
#include "distill/optim.h"
#include "teacher/store.h"
#include "teacher/train.h"
#include "testutil.h"

TestSuite(err, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

Test(err, set_and_prefix_return_the_code_also_for_null_err)
{
    cr_assert_eq(dk_err_set(NULL, DK_EFORMAT, "bad %s", "magic"), DK_EFORMAT);
    cr_assert_eq(dk_err_prefix(NULL, DK_EIO, "'%s'", "a.h5"), DK_EIO);
    cr_assert_eq(dk_err_prefix(NULL, DK_ENOMEM, "no format arguments"), DK_ENOMEM);
    dk_err e = {0};
    cr_assert_eq(dk_err_set(&e, DK_ELIMIT, "too big"), DK_ELIMIT);
    cr_assert_eq(e.code, DK_ELIMIT);
    cr_assert_str_eq(e.msg, "too big");
}

Test(err, prefix_appears_once_with_one_separator_and_sets_the_code)
{
    dk_err e = {0};
    dk_err_set(&e, DK_EFORMAT, "format is 'x', expected 'y'");
    cr_assert_eq(dk_err_prefix(&e, DK_EMISMATCH, "'%s': not a target store", "s.h5"), DK_EMISMATCH);
    cr_assert_str_eq(e.msg, "'s.h5': not a target store: format is 'x', expected 'y'");
    cr_assert_eq(e.code, DK_EMISMATCH);
    cr_assert_eq(dk_err_prefix(&e, e.code, "volume '%s'", "v1"), DK_EMISMATCH);
    cr_assert_str_eq(e.msg, "volume 'v1': 's.h5': not a target store: format is 'x', expected 'y'");
    cr_assert_null(strstr(e.msg, ": :"));
}

Test(err, long_messages_truncate_and_keep_the_prefix)
{
    char long_text[2000], long_prefix[600];
    memset(long_text, 'm', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    memset(long_prefix, 'p', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    dk_err e = {0};
    dk_err_set(&e, DK_EINVAL, "%s", long_text);
    cr_assert_eq(strlen(e.msg), sizeof e.msg - 1);
    cr_assert_eq(dk_err_prefix(&e, DK_EINVAL, "file '%s'", "a.h5"), DK_EINVAL);
    cr_assert_eq(strlen(e.msg), sizeof e.msg - 1);
    cr_assert_eq(strncmp(e.msg, "file 'a.h5': mmm", 16), 0, "%s", e.msg);
    /* a prefix longer than the message buffer is cut, never overflows */
    cr_assert_eq(dk_err_prefix(&e, DK_EIO, "%s", long_prefix), DK_EIO);
    cr_assert_lt(strlen(e.msg), sizeof e.msg);
    cr_assert_eq(e.msg[0], 'p');
    cr_assert_eq(e.code, DK_EIO);
}

Test(err, forward_copies_a_local_failure)
{
    dk_err local = {0}, out = {0};
    dk_err_set(&local, DK_ENOTFOUND, "'x' does not exist");
    cr_assert_eq(dk_err_forward(&out, &local), DK_ENOTFOUND);
    cr_assert_str_eq(out.msg, "'x' does not exist");
    cr_assert_eq(out.code, DK_ENOTFOUND);
    cr_assert_eq(dk_err_forward(NULL, &local), DK_ENOTFOUND);
}

/* ---- library functions with err == NULL ---- */

Test(err, acquire_with_a_bad_label_fails_without_an_err)
{
    dk_volume fine;
    cr_assert_eq(dk_volume_alloc(&fine, "knee-1", (int[3]){8, 8, 8}, true, NULL), DK_OK);
    for (int a = 0; a < 3; a++)
        fine.spacing[a] = 0.5;
    fine.label[17] = 9; /* not below the 3 classes */
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &p, NULL), DK_OK);
    dk_volume out;
    dk_status st = dk_acquire(&fine, &p, 1, 3, &out, NULL);
    cr_assert_eq(st, DK_EINVAL, "status %d", st);
    cr_assert_null(out.image);
    dk_err e = {0};
    cr_assert_eq(dk_acquire(&fine, &p, 1, 3, &out, &e), DK_EINVAL);
    cr_assert(strstr(e.msg, "acquiring 'knee-1' at profile 'clinical-3.3mm': "), "%s", e.msg);
    cr_assert_null(strstr(e.msg, ": :"), "%s", e.msg);
    dk_volume_release(&fine);
}

Test(err, nifti_failures_without_an_err)
{
    dk_volume v;
    char *missing = dk_test_path("missing.nii");
    cr_assert_neq(dk_nifti_read_image(missing, "m", &v, NULL), DK_OK);
    /* a readable file with an id the volume rejects: the prefix path */
    dk_volume src;
    cr_assert_eq(dk_volume_alloc(&src, "ok", (int[3]){2, 3, 4}, false, NULL), DK_OK);
    for (int a = 0; a < 3; a++)
        src.spacing[a] = 1;
    char *path = dk_test_path("a.nii");
    cr_assert_eq(dk_nifti_write_image(path, &src, NULL), DK_OK);
    dk_status st = dk_nifti_read_image(path, "bad id!", &v, NULL);
    cr_assert_eq(st, DK_EINVAL, "status %d", st);
    dk_err e = {0};
    cr_assert_eq(dk_nifti_read_image(path, "bad id!", &v, &e), DK_EINVAL);
    cr_assert(strstr(e.msg, path) && !strstr(e.msg, ": :"), "%s", e.msg);
    dk_volume_release(&src);
    free(path);
    free(missing);
}

Test(err, optimiser_and_teacher_config_with_a_bad_field_without_an_err)
{
    dk_optim_config c = dk_optim_defaults(DK_OPTIM_ADAM, 0.01f);
    c.eps = -1;
    dk_optimizer opt;
    dk_params none = {0};
    cr_assert_eq(dk_optim_init(&opt, &c, &none, NULL), DK_EINVAL);
    dk_teacher_config tc;
    cr_assert_eq(dk_teacher_config_from_json("{\"optimizer\": {\"lr\": -1}}", &tc, NULL),
                 DK_EINVAL);
    cr_assert_eq(dk_teacher_config_from_json("{\"network\": {\"pool\": 3}}", &tc, NULL), DK_EINVAL);
    cr_assert_neq(dk_teacher_config_from_json("[1", &tc, NULL), DK_OK);
    tc = dk_teacher_config_default();
    tc.network.levels = 99;
    cr_assert_eq(dk_teacher_config_validate(&tc, NULL), DK_EINVAL);
    dk_err e = {0};
    cr_assert_eq(dk_teacher_config_validate(&tc, &e), DK_EINVAL);
    cr_assert(strstr(e.msg, "teacher config: network: ") && !strstr(e.msg, ": :"), "%s", e.msg);
}

Test(err, opening_the_wrong_file_without_an_err)
{
    char *data = dk_test_path("data.h5");
    dk_test_write_phantoms(data, 1, 0, false);
    cr_assert_null(dk_store_open(data, NULL));
    int checked = -1;
    cr_assert_eq(dk_store_verify(data, &checked, NULL), DK_EFORMAT);
    char *missing = dk_test_path("missing.h5");
    cr_assert_null(dk_dataset_open(missing, NULL));
    cr_assert_neq(dk_store_verify(missing, &checked, NULL), DK_OK);
    dk_err e = {0};
    cr_assert_eq(dk_store_verify(data, &checked, &e), DK_EFORMAT);
    cr_assert(strstr(e.msg, "not a target store: ") && !strstr(e.msg, ": :"), "%s", e.msg);
    free(missing);
    free(data);
}

/* ---- what the CLI prints ---- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* Run `dualkd <args>`; expect exit 1 and one line naming every `want` and no ": :". */
static void expect_cli_error(const char *args, const char *want1, const char *want2)
{
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", dk_test_dir, dk_test_bin(), args);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "`%s` exited %d: %s", args, rc, out);
    cr_assert(strncmp(out, "dualkd: ", 8) == 0, "%s", out);
    cr_assert_null(strstr(out, ": :"), "`%s` printed: %s", args, out);
    cr_assert_null(strstr(out, "::"), "`%s` printed: %s", args, out);
    cr_assert(strstr(out, want1), "`%s` should name '%s': %s", args, want1, out);
    if (want2) cr_assert(strstr(out, want2), "`%s` should name '%s': %s", args, want2, out);
}

Test(err, cli_messages_name_the_file_and_field_once)
{
    char *bad = dk_test_path("bad.json");
    write_text(bad, "{\"optimizer\": {\"lr\": -1}}");
    expect_cli_error("teacher train --data d.h5 --out t.h5 --config bad.json", "bad.json: teacher",
                     "'optimizer.lr'");
    char *net = dk_test_path("net.json");
    write_text(net, "{\"network\": {\"levels\": 3, \"pool\": [[9, 1, 1], [2, 2, 2]]}}");
    expect_cli_error("teacher train --data d.h5 --out t.h5 --config net.json", "net.json",
                     "network.pool");
    char *data = dk_test_path("data.h5");
    dk_test_write_phantoms(data, 1, 0, false);
    expect_cli_error("teacher verify data.h5", "'data.h5': not a target store: ", "format");
    expect_cli_error("data info missing.h5", "'missing.h5'", "does not exist");
    expect_cli_error("data export --data data.h5 --volume nope --out x", "nope", NULL);
    char *junk = dk_test_path("junk.h5");
    write_text(junk, "junk");
    expect_cli_error("data info junk.h5", "'junk.h5'", "not an HDF5 file");
    free(junk);
    free(data);
    free(net);
    free(bad);
}
