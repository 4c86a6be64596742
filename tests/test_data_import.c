/* test_data_import.c: `dualkd data import` (a folder of NIfTI images and labels into
 * a dataset) and `data export` (back to NIfTI), run as a user runs them: the real
 * binary in a scratch directory, its files read back with datasets/nifti.h, and
 * every failure's message checked for the file and the problem. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "testutil.h"

TestSuite(data_import, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

/* Write image (and, when label_name, a label) for a 2x3x4 grid, oblique and
 * anisotropic; the label's grid shifted by `shift` mm along x. */
static void make_pair(const char *image_name, const char *label_name, double shift, unsigned seed)
{
    dk_volume v;
    int dims[3] = {2, 3, 4};
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(&v, "case", dims, true, &err), DK_OK, "%s", err.msg);
    double s = sin(0.2), c = cos(0.2), dir[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
    memcpy(v.direction, dir, sizeof dir);
    v.spacing[0] = 3.3, v.spacing[1] = 0.31, v.spacing[2] = 0.29;
    v.origin[0] = -87.25, v.origin[1] = 12.5, v.origin[2] = 140.125;
    dk_test_fill_uniform(v.image, dk_volume_voxels(&v), seed, 0, 500);
    for (size_t i = 0; i < dk_volume_voxels(&v); i++)
        v.label[i] = (uint8_t)((i + seed) % 4);
    cr_assert_eq(dk_nifti_write_image(image_name, &v, &err), DK_OK, "%s", err.msg);
    v.origin[0] += shift;
    if (label_name) cr_assert_eq(dk_nifti_write_label(label_name, &v, &err), DK_OK, "%s", err.msg);
    dk_volume_release(&v);
}

/* dualkd with args, in the test's directory (the current one). */
static int run_dualkd(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", dk_test_bin(), args);
    return dk_test_run(cmd, out, cap);
}

/* In the test's directory: img/ with three images (two labelled in lab/, one
 * under the same file name, one suffixed) and a stray text file. */
static void make_import_dirs(void)
{
    cr_assert_eq(chdir(dk_test_dir), 0);
    cr_assert_eq(mkdir("img", 0755), 0);
    cr_assert_eq(mkdir("lab", 0755), 0);
    make_pair("img/knee01.nii.gz", "lab/knee01.nii.gz", 0, 1); /* same file name */
    make_pair("img/knee02.nii", "lab/knee02_seg.nii", 0, 2);   /* suffixed label */
    make_pair("img/knee03.nii.gz", NULL, 0, 3);                /* unlabelled */
    FILE *f = fopen("img/README.txt", "w");
    cr_assert(f && fputs("not a volume\n", f) >= 0 && fclose(f) == 0);
}

Test(data_import, import_then_export_end_to_end, .timeout = 120)
{
    make_import_dirs();
    char out[4096];
    int rc = run_dualkd("data import --images img --labels lab --out ds.h5 "
                        "--classes background,femur,tibia,patella",
                        out, sizeof out);
    cr_assert_eq(rc, 0, "import failed: %s", out);
    cr_assert(strstr(out, "imported 3 volumes (2 labelled, 1 unlabelled, 4 classes)"), "%s", out);

    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open("ds.h5", &err);
    cr_assert(ds, "%s", err.msg);
    cr_assert_eq(dk_dataset_count(ds), 3);
    cr_assert_eq(dk_dataset_classes(ds)->count, 4);
    cr_assert_str_eq(dk_dataset_classes(ds)->names[1], "femur");
    const char *splits[3] = {"labelled", "labelled", "unlabelled"};
    const char *ids[3] = {"knee01", "knee02", "knee03"};
    for (int i = 0; i < 3; i++) {
        int k = dk_dataset_find(ds, ids[i]);
        cr_assert_geq(k, 0, "%s missing", ids[i]);
        cr_assert_str_eq(dk_dataset_volume_split(ds, k), splits[i]);
    }
    dk_volume stored, original;
    cr_assert_eq(dk_dataset_read(ds, dk_dataset_find(ds, "knee02"), &stored, &err), DK_OK, "%s",
                 err.msg);
    dk_dataset_close(ds);
    cr_assert_eq(dk_nifti_read_image("img/knee02.nii", "knee02", &original, &err), DK_OK);
    cr_assert_eq(dk_nifti_read_label("lab/knee02_seg.nii", &original, &err), DK_OK);
    dk_test_assert_same_grid(&original, &stored);
    size_t n = dk_volume_voxels(&stored);
    cr_assert_eq(memcmp(original.image, stored.image, n * sizeof(float)), 0);
    cr_assert(stored.label);
    cr_assert_eq(memcmp(original.label, stored.label, n), 0);
    dk_volume_release(&stored);

    rc = run_dualkd("data export --data ds.h5 --volume knee02 --out exported", out, sizeof out);
    cr_assert_eq(rc, 0, "export failed: %s", out);
    dk_volume back;
    cr_assert_eq(dk_nifti_read_image("exported/knee02_image.nii.gz", "knee02", &back, &err), DK_OK,
                 "%s", err.msg);
    cr_assert_eq(dk_nifti_read_label("exported/knee02_label.nii.gz", &back, &err), DK_OK, "%s",
                 err.msg);
    dk_test_assert_same_grid(&original, &back);
    cr_assert_eq(memcmp(original.image, back.image, n * sizeof(float)), 0);
    cr_assert_eq(memcmp(original.label, back.label, n), 0);
    dk_volume_release(&back);
    dk_volume_release(&original);

    rc = run_dualkd("data export --data ds.h5 --volume knee09 --out exported", out, sizeof out);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "no volume 'knee09'"), "%s", out);
}

Test(data_import, export_without_volume_writes_every_volume)
{
    make_import_dirs();
    char out[4096];
    cr_assert_eq(run_dualkd("data import --images img --labels lab --out ds.h5", out, sizeof out),
                 0, "%s", out);
    cr_assert_eq(run_dualkd("data export --data ds.h5 --out all", out, sizeof out), 0, "%s", out);
    const char *ids[] = {"knee01", "knee02", "knee03"};
    const bool labelled[] = {true, true, false};
    for (int i = 0; i < 3; i++) {
        char image[64], label[64];
        snprintf(image, sizeof image, "all/%s_image.nii.gz", ids[i]);
        snprintf(label, sizeof label, "all/%s_label.nii.gz", ids[i]);
        dk_volume v;
        dk_err err = {0};
        cr_assert_eq(dk_nifti_read_image(image, ids[i], &v, &err), DK_OK, "%s", err.msg);
        cr_assert(strstr(out, image), "%s not reported: %s", image, out);
        if (labelled[i])
            cr_assert_eq(dk_nifti_read_label(label, &v, &err), DK_OK, "%s", err.msg);
        else
            cr_assert_eq(access(label, F_OK), -1, "%s should not exist", label);
        dk_volume_release(&v);
    }
}

Test(data_import, import_default_classes_and_help)
{
    make_import_dirs();
    char out[4096];
    cr_assert_eq(run_dualkd("data import --images img --labels lab --out d.h5", out, sizeof out), 0,
                 "%s", out);
    cr_assert(strstr(out, "4 classes"), "%s", out);
    cr_assert_eq(run_dualkd("data import --help", out, sizeof out), 0);
    cr_assert(strstr(out, "_seg") && strstr(out, "example"), "%s", out);
    cr_assert_eq(run_dualkd("data export --help", out, sizeof out), 0);
    cr_assert(strstr(out, "ID_image.nii.gz"), "%s", out);
    cr_assert_eq(run_dualkd("data import --images img", out, sizeof out), 2);
    cr_assert(strstr(out, "needs --images and --out"), "%s", out);
}

static void assert_import_fails(const char *args, const char *a, const char *b)
{
    char out[4096];
    int rc = run_dualkd(args, out, sizeof out);
    cr_assert_eq(rc, 1, "expected failure of `%s`: %s", args, out);
    cr_assert(strstr(out, a), "message lacks '%s': %s", a, out);
    if (b) cr_assert(strstr(out, b), "message lacks '%s': %s", b, out);
    struct stat st;
    cr_assert_neq(stat("bad.h5", &st), 0, "a failed import left bad.h5 behind");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A | grep bad.h5");
    cr_assert_neq(dk_test_run(cmd, out, sizeof out), 0, "temporary files left: %s", out);
}

Test(data_import, import_failures_name_the_problem, .timeout = 120)
{
    make_import_dirs();
    assert_import_fails("data import --images nope --labels lab --out bad.h5",
                        "cannot open images directory 'nope'", "No such file");
    assert_import_fails("data import --images img --labels none --out bad.h5",
                        "cannot open labels directory 'none'", NULL);
    assert_import_fails("data import --images img --labels lab --out bad.h5 --classes bg,a",
                        "lab/knee01.nii.gz': label value 2 but only 2 classes", NULL);

    /* a label on a shifted grid: the pair is named */
    make_pair("img/knee04.nii", "lab/knee04_mask.nii.gz", 2.5, 4);
    assert_import_fails("data import --images img --labels lab --out bad.h5",
                        "lab/knee04_mask.nii.gz", "img/knee04.nii");
    cr_assert_eq(unlink("lab/knee04_mask.nii.gz"), 0);

    make_pair("img/knee05.nii", "lab/knee05_label.nii", 0, 5);
    make_pair("scratch.nii", "lab/knee05_seg.nii", 0, 5);
    assert_import_fails("data import --images img --labels lab --out bad.h5",
                        "image 'img/knee05.nii' has two labels", "lab/knee05_seg.nii");
    cr_assert_eq(unlink("lab/knee05_seg.nii"), 0);

    make_pair("scratch.nii", "lab/orphan_seg.nii", 0, 6);
    assert_import_fails("data import --images img --labels lab --out bad.h5",
                        "label 'lab/orphan_seg.nii' has no image", "'orphan.nii[.gz]'");
    cr_assert_eq(unlink("lab/orphan_seg.nii"), 0);

    unsigned char junk[400] = {0};
    FILE *f = fopen("img/knee06.nii", "wb");
    cr_assert(f && fwrite(junk, 1, sizeof junk, f) == sizeof junk && fclose(f) == 0);
    assert_import_fails("data import --images img --labels lab --out bad.h5",
                        "img/knee06.nii': bad magic", NULL);
}
