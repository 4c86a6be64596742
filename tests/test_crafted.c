/* test_crafted.c: the crafted HDF5 files in tests/crafted/ (made by
 * make_crafted.py: enormous declared volumes, variable-length strings on a
 * damaged global heap, old-format files with damaged B-trees, headers and
 * layouts, storage in other files) against the built dualkd binary. Every
 * command that opens such a file as a dataset, checkpoint or target store must
 * exit with status 1 and a message naming the file, within a time bound: never
 * a signal, a hang or an allocation of gigabytes. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

TestSuite(crafted, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 600);

/* Seconds a command may take on a crafted file (they fail in milliseconds; the
 * bound is loose for the sanitizer build on a loaded machine). */
#define TIME_BOUND 60

/* The crafted files, sorted; caller frees with free_names. */
static char **crafted_files(int *count)
{
    char *dir = NULL;
    cr_assert_geq(asprintf(&dir, "%s/tests/crafted", dk_test_source()), 0);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort);
    cr_assert_gt(n, 0, "cannot list %s", dir);
    char **names = calloc((size_t)n + 1, sizeof *names);
    *count = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]->d_name);
        if (len > 3 && !strcmp(list[i]->d_name + len - 3, ".h5"))
            cr_assert_geq(asprintf(&names[(*count)++], "%s/%s", dir, list[i]->d_name), 0);
        free(list[i]);
    }
    free(list);
    free(dir);
    cr_assert_geq(*count, 20, "only %d crafted files: run tests/crafted/make_crafted.py", *count);
    return names;
}

static void free_names(char **names)
{
    for (char **p = names; *p; p++)
        free(*p);
    free(names);
}

/* Run `dualkd <args>` where args holds one %s for the crafted file; it must exit 1
 * naming the file. */
static void expect_refused(const char *file, const char *args_fmt)
{
    char args[8192], cmd[9000], out[8192];
    snprintf(args, sizeof args, args_fmt, file);
    snprintf(cmd, sizeof cmd, "timeout -s KILL %d %s %s", TIME_BOUND, dk_test_bin(), args);
    int rc = dk_test_run(cmd, out, sizeof out);
    const char *base = strrchr(file, '/') + 1;
    cr_expect_eq(rc, 1, "`dualkd %s`: exit %d (want 1; 137 = killed at %d s, 139 = SIGSEGV): %s",
                 args, rc, TIME_BOUND, out);
    cr_expect(strstr(out, base), "`dualkd %s`: the message does not name %s: %s", args, base, out);
}

Test(crafted, data_info_and_export)
{
    int n;
    char **files = crafted_files(&n);
    char *out = dk_test_path("export");
    for (int i = 0; i < n; i++) {
        expect_refused(files[i], "data info %s");
        char fmt[4200];
        snprintf(fmt, sizeof fmt, "data export --data %%s --volume v1 --out %s", out);
        expect_refused(files[i], fmt);
    }
    free(out);
    free_names(files);
}

Test(crafted, teacher_train_and_verify)
{
    int n;
    char **files = crafted_files(&n);
    char *teacher = dk_test_path("t.h5");
    for (int i = 0; i < n; i++) {
        char fmt[4200];
        snprintf(fmt, sizeof fmt, "teacher train --threads 1 --data %%s --out %s", teacher);
        expect_refused(files[i], fmt);
        expect_refused(files[i], "teacher verify %s");
    }
    free(teacher);
    free_names(files);
}

/* A real, tiny teacher, so that precompute gets as far as opening --data. */
static char *tiny_teacher(void)
{
    char *data = dk_test_path("phantoms.h5"), *config = dk_test_path("tiny.json");
    char *teacher = dk_test_path("teacher.h5"), cmd[9000], out[8192];
    dk_test_write_phantoms(data, 2, 1, true);
    FILE *f = fopen(config, "w");
    fputs("{\"network\": {\"levels\": 2, \"base_width\": 4, \"pool\": [[2, 2, 2]],"
          " \"kernel\": [[3, 3, 3], [3, 3, 3]]}, \"patch\": [16, 16, 16], \"batch\": 1,"
          " \"steps\": 2, \"steps_per_epoch\": 2, \"checkpoint_every\": 0}",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s teacher train --threads 1 --data %s --out %s --config %s",
             dk_test_bin(), data, teacher, config);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    free(data), free(config);
    return teacher;
}

Test(crafted, teacher_precompute)
{
    int n;
    char **files = crafted_files(&n);
    char *teacher = tiny_teacher(), *store = dk_test_path("store");
    for (int i = 0; i < n; i++) {
        char fmt[9000];
        snprintf(fmt, sizeof fmt,
                 "teacher precompute --threads 1 --profile clinical-4.5mm --out %s "
                 "--teacher %%s --data %s",
                 store, teacher);
        expect_refused(files[i], fmt);
        snprintf(fmt, sizeof fmt,
                 "teacher precompute --threads 1 --profile clinical-4.5mm --out %s "
                 "--teacher %s --data %%s",
                 store, teacher);
        expect_refused(files[i], fmt);
    }
    free(teacher), free(store);
    free_names(files);
}
