/* test_reproducible.c: files dualkd writes depend on their contents alone (no
 * HDF5 object timestamps), and the target store names its teacher and data by
 * content hashes that ignore everything but the contents (teacher/content_hash.h). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "distill/checkpoint.h"
#include "teacher/content_hash.h"
#include "testutil.h"

TestSuite(reproducible, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 60);

static bool same_bytes(const char *a, const char *b)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return dk_test_run(cmd, NULL, 0) == 0;
}

/* HDF5 stores times in whole seconds: 1.1 s apart guarantees another second. */
static void next_second(void)
{
    usleep(1100 * 1000);
}

Test(reproducible, a_dataset_written_twice_has_the_same_bytes)
{
    char *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5");
    dk_test_write_phantoms(a, 2, 1, true);
    next_second();
    dk_test_write_phantoms(b, 2, 1, true);
    cr_assert(same_bytes(a, b), "two writes of the same volumes differ");
    free(a), free(b);
}

static void params_init(dk_param p[2], dk_params *list)
{
    dk_err err = {0};
    *list = (dk_params){0};
    cr_assert_eq(dk_param_init(&p[0], "conv.weight", 2, 1, 3, 3, 3, &err), DK_OK);
    cr_assert_eq(dk_param_init(&p[1], "conv.bias", 1, 2, 1, 1, 1, &err), DK_OK);
    for (int i = 0; i < 2; i++) {
        dk_test_fill_uniform(p[i].value.data, dk_tensor_numel(&p[i].value), 7 + i, -1, 1);
        cr_assert_eq(dk_params_push(list, &p[i], &err), DK_OK);
    }
}

Test(reproducible, a_checkpoint_saved_twice_has_the_same_bytes)
{
    char *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5");
    dk_param p[2];
    dk_params list;
    params_init(p, &list);
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_save(a, "{\"k\": 1}", &list, NULL, "{\"r\": 2}", &err), DK_OK);
    next_second();
    cr_assert_eq(dk_checkpoint_save(b, "{\"k\": 1}", &list, NULL, "{\"r\": 2}", &err), DK_OK);
    cr_assert(same_bytes(a, b), "two saves of the same parameters differ");
    for (int i = 0; i < 2; i++)
        dk_param_release(&p[i]);
    dk_params_release(&list);
    free(a), free(b);
}

Test(reproducible, the_teacher_hash_covers_parameters_and_card_only)
{
    dk_param p[2];
    dk_params list;
    params_init(p, &list);
    dk_classes classes = {.count = 2, .names = {"background", "bone"}};
    double spacing[3] = {0.7, 0.36, 0.36};
    char h0[DK_SHA256_HEX], h1[DK_SHA256_HEX];
    dk_err err = {0};
    cr_assert_eq(dk_content_hash_teacher("{}", &list, &classes, spacing, h0, &err), DK_OK);
    cr_assert_eq(dk_content_hash_teacher("{}", &list, &classes, spacing, h1, &err), DK_OK);
    cr_assert_str_eq(h0, h1);
    p[1].value.data[1] = nextafterf(p[1].value.data[1], 2.0f); /* one ulp of one value */
    cr_assert_eq(dk_content_hash_teacher("{}", &list, &classes, spacing, h1, &err), DK_OK);
    cr_assert_str_neq(h0, h1, "a changed parameter kept the hash");
    p[1].value.data[1] = nextafterf(p[1].value.data[1], -2.0f);
    strcpy(classes.names[1], "bones");
    cr_assert_eq(dk_content_hash_teacher("{}", &list, &classes, spacing, h1, &err), DK_OK);
    cr_assert_str_neq(h0, h1, "a renamed class kept the hash");
    for (int i = 0; i < 2; i++)
        dk_param_release(&p[i]);
    dk_params_release(&list);
}

static void hash_of(const char *path, char hex[DK_SHA256_HEX])
{
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    cr_assert_eq(dk_content_hash_dataset(ds, hex, &err), DK_OK, "%s", err.msg);
    dk_dataset_close(ds);
}

/* Copy volume by volume, with another source note and, optionally, one voxel changed. */
static void copy_dataset(const char *from, const char *to, bool nudge)
{
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(from, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    dk_dataset_writer *w = dk_dataset_writer_open(to, dk_dataset_classes(ds), &err);
    cr_assert_not_null(w, "%s", err.msg);
    for (int i = 0; i < dk_dataset_count(ds); i++) {
        dk_volume v;
        cr_assert_eq(dk_dataset_read(ds, i, &v, &err), DK_OK, "%s", err.msg);
        snprintf(v.source, sizeof v.source, "copied from %s", from);
        if (nudge && i == 1) v.image[5] += 1.0f;
        cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_OK, "%s", err.msg);
        dk_volume_release(&v);
    }
    cr_assert_eq(dk_dataset_writer_commit(w, &err), DK_OK, "%s", err.msg);
    dk_dataset_close(ds);
}

Test(reproducible, the_data_hash_covers_the_volumes_not_the_file)
{
    char *a = dk_test_path("a.h5"), *b = dk_test_path("b.h5"), *c = dk_test_path("c.h5");
    char ha[DK_SHA256_HEX], hb[DK_SHA256_HEX], hc[DK_SHA256_HEX];
    dk_test_write_phantoms(a, 2, 1, true);
    copy_dataset(a, b, false);
    copy_dataset(a, c, true);
    cr_assert(!same_bytes(a, b), "the copy should differ in its source notes");
    hash_of(a, ha), hash_of(b, hb), hash_of(c, hc);
    cr_assert_str_eq(ha, hb, "the same volumes gave another hash");
    cr_assert_str_neq(ha, hc, "a changed voxel kept the hash");
    free(a), free(b), free(c);
}
