/* test_limits.c: the per-volume voxel limit (datasets/volume.h) on NIfTI import,
 * through the API, `data import --max-voxels` and DUALKD_MAX_VOXELS; and the
 * messages for a truncated .nii.gz (the path once) and a directory as --profile. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/nifti.h"
#include "datasets/profile.h"
#include "testutil.h"

TestSuite(limits, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 60);

/* <dir>/images/scan.nii.gz: a 4 x 5 x 6 image (120 voxels); returns the images dir. */
static char *write_scan(void)
{
    char *dir = dk_test_path("images"), *path = NULL;
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_geq(asprintf(&path, "%s/scan.nii.gz", dir), 0);
    dk_volume v;
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(&v, "scan", (int[]){4, 5, 6}, false, &err), DK_OK);
    cr_assert_eq(dk_nifti_write_image(path, &v, &err), DK_OK, "%s", err.msg);
    dk_volume_release(&v);
    free(path);
    return dir;
}

Test(limits, nifti_over_the_voxel_limit_is_refused)
{
    char *dir = write_scan(), *path = NULL;
    cr_assert_geq(asprintf(&path, "%s/scan.nii.gz", dir), 0);
    dk_err err = {0};
    dk_volume v;
    dk_volume_set_max_voxels(119);
    cr_assert_eq(dk_nifti_read_image(path, "scan", &v, &err), DK_ELIMIT);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "6 x 5 x 4 = 120 voxels") &&
                  strstr(err.msg, "limit of 119"),
              "%s", err.msg);
    dk_volume_set_max_voxels(120);
    cr_assert_eq(dk_nifti_read_image(path, "scan", &v, &err), DK_OK, "%s", err.msg);
    dk_volume_release(&v);
    dk_volume_set_max_voxels(0);
    free(path), free(dir);
}

Test(limits, data_import_takes_max_voxels_and_the_environment)
{
    char *dir = write_scan(), *out = dk_test_path("d.h5"), cmd[9000], text[8192];
    snprintf(cmd, sizeof cmd, "%s data import --images %s --out %s --max-voxels 100", dk_test_bin(),
             dir, out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 1, "%s", text);
    cr_assert(strstr(text, "scan.nii.gz") && strstr(text, "limit of 100"), "%s", text);
    snprintf(cmd, sizeof cmd, "DUALKD_MAX_VOXELS=100 %s data import --images %s --out %s",
             dk_test_bin(), dir, out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 1, "%s", text);
    cr_assert(strstr(text, "limit of 100"), "%s", text);
    /* the option overrides the environment; a bad count is a usage error */
    snprintf(cmd, sizeof cmd,
             "DUALKD_MAX_VOXELS=100 %s data import --images %s --out %s --max-voxels 1000",
             dk_test_bin(), dir, out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    snprintf(cmd, sizeof cmd, "%s data import --images %s --out %s --max-voxels -5", dk_test_bin(),
             dir, out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 2, "%s", text);
    cr_assert(strstr(text, "--max-voxels '-5'"), "%s", text);
    free(dir), free(out);
}

Test(limits, a_truncated_gzip_names_its_path_once)
{
    char *dir = write_scan(), *path = NULL;
    cr_assert_geq(asprintf(&path, "%s/scan.nii.gz", dir), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    dk_err err = {0};
    dk_volume v;
    cr_assert_neq(dk_nifti_read_image(path, "scan", &v, &err), DK_OK);
    const char *first = strstr(err.msg, path);
    cr_assert(first, "%s", err.msg);
    cr_assert_null(strstr(first + 1, path), "the path appears twice: %s", err.msg);
    cr_assert(strstr(err.msg, "truncated"), "%s", err.msg);
    free(path), free(dir);
}

Test(limits, a_directory_as_profile_says_so)
{
    dk_err err = {0};
    dk_profile p;
    cr_assert_eq(dk_profile_load(dk_test_dir, &p, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, dk_test_dir) && strstr(err.msg, "is a directory"), "%s", err.msg);
}
