/* test_dataset.c: the HDF5 dataset file: bit-exact round trips, h5py reading what
 * we wrote, every malformed file open must reject (built with h5py or truncate(2)),
 * atomic writes, and `dualkd data info` on good and bad files. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "testutil.h"

TestSuite(dataset, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

static dk_classes knee_classes(void)
{
    dk_classes c = {.count = 4};
    const char *names[] = {"background", "femoral", "tibial", "patellar"};
    for (int i = 0; i < 4; i++)
        snprintf(c.names[i], sizeof c.names[i], "%s", names[i]);
    return c;
}

/* A volume with awkward float values and a label using every class. */
static void make_volume(dk_volume *v, const char *id, int z, int y, int x, bool label,
                        unsigned seed)
{
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(v, id, (int[]){z, y, x}, label, &err), DK_OK, "%s", err.msg);
    dk_test_fill_uniform(v->image, dk_volume_voxels(v), seed, -1000.0f, 3000.0f);
    v->image[0] = -0.0f;
    v->image[1] = 1e-42f; /* subnormal */
    v->image[2] = INFINITY;
    for (size_t i = 0; label && i < dk_volume_voxels(v); i++)
        v->label[i] = (uint8_t)((i * 7 + seed) % 4);
    v->spacing[0] = 3.3, v->spacing[1] = 0.3125, v->spacing[2] = 0.3125;
    v->origin[0] = -12.5, v->origin[1] = 40.25, v->origin[2] = 1e-3;
    v->direction[0] = 0, v->direction[1] = 1, v->direction[3] = 1, v->direction[4] = 0;
    snprintf(v->source, sizeof v->source, "synthetic seed=%u", seed);
    snprintf(v->split, sizeof v->split, "%s", label ? "labelled" : "unlabelled");
}

/* Write vols[0..n) to path; asserts success. */
static void write_dataset(const char *path, dk_volume *vols, int n)
{
    dk_err err = {0};
    dk_classes classes = knee_classes();
    dk_dataset_writer *w = dk_dataset_writer_open(path, &classes, &err);
    cr_assert_not_null(w, "%s", err.msg);
    for (int i = 0; i < n; i++)
        cr_assert_eq(dk_dataset_writer_add(w, &vols[i], &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_dataset_writer_commit(w, &err), DK_OK, "%s", err.msg);
}

/* Two volumes (the second unlabelled) written to <tmp>/good.h5; returns the path. */
static char *write_good(dk_volume vols[2])
{
    make_volume(&vols[0], "knee-01", 5, 6, 7, true, 1);
    make_volume(&vols[1], "a.second_one", 3, 4, 5, false, 2);
    char *path = dk_test_path("good.h5");
    write_dataset(path, vols, 2);
    return path;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

Test(dataset, round_trip_is_bit_exact)
{
    dk_volume vols[2];
    char *path = write_good(vols);
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    const dk_classes *c = dk_dataset_classes(ds);
    cr_assert_eq(c->count, 4);
    cr_assert_str_eq(c->names[3], "patellar");
    cr_assert_eq(dk_dataset_count(ds), 2);
    /* insertion order, not name order */
    cr_assert_str_eq(dk_dataset_volume_id(ds, 0), "knee-01");
    cr_assert_str_eq(dk_dataset_volume_split(ds, 1), "unlabelled");
    cr_assert_eq(dk_dataset_find(ds, "a.second_one"), 1);
    cr_assert_eq(dk_dataset_find(ds, "nope"), -1);
    for (int i = 0; i < 2; i++) {
        dk_volume got;
        cr_assert_eq(dk_dataset_read(ds, i, &got, &err), DK_OK, "%s", err.msg);
        cr_assert_str_eq(got.id, vols[i].id);
        cr_assert_eq(memcmp(got.dims, vols[i].dims, sizeof got.dims), 0);
        cr_assert_eq(memcmp(got.image, vols[i].image, dk_volume_voxels(&got) * 4), 0);
        cr_assert_eq(got.label == NULL, vols[i].label == NULL);
        if (got.label) cr_assert_eq(memcmp(got.label, vols[i].label, dk_volume_voxels(&got)), 0);
        cr_assert_eq(memcmp(got.spacing, vols[i].spacing, sizeof got.spacing), 0);
        cr_assert_eq(memcmp(got.origin, vols[i].origin, sizeof got.origin), 0);
        cr_assert_eq(memcmp(got.direction, vols[i].direction, sizeof got.direction), 0);
        cr_assert_str_eq(got.source, vols[i].source);
        cr_assert_str_eq(got.split, vols[i].split);
        dk_volume_release(&got);
    }
    /* per-class counts gathered by open */
    const dk_volume_info *info = dk_dataset_info(ds, 0);
    long long expect[4] = {0};
    for (size_t i = 0; i < dk_volume_voxels(&vols[0]); i++)
        expect[vols[0].label[i]]++;
    for (int k = 0; k < 4; k++)
        cr_assert_eq(info->class_voxels[k], expect[k]);
    cr_assert_not(dk_dataset_info(ds, 1)->has_label);
    dk_dataset_close(ds);
    dk_volume_release(&vols[0]);
    dk_volume_release(&vols[1]);
    cr_assert_eq(count_entries(dk_test_dir), 1, "only good.h5, no temporaries");
    free(path);
}

Test(dataset, h5py_reads_the_same_numbers)
{
    dk_volume vols[2];
    char *path = write_good(vols);
    char *raw = dk_test_path("image.raw"), *cmd = NULL, out[4096];
    cr_assert_geq(
        asprintf(
            &cmd,
            "%s -c \"import h5py, numpy as np\n"
            "f = h5py.File('%s', 'r')\n"
            "v = f['volumes/knee-01']\n"
            "open('%s', 'wb').write(v['image'][()].astype('<f4').tobytes())\n"
            "print(f.attrs['format'].decode(), int(f.attrs['format_version']), [c.decode() for c "
            "in f.attrs['classes']])\n"
            "print(v['image'].dtype, v['image'].shape, v['label'].dtype, "
            "int(v['label'][()].sum()))\n"
            "print(list(v.attrs['spacing']), list(v.attrs['origin']), v.attrs['direction'].shape)\n"
            "print(v.attrs['source'].decode(), v.attrs['split'].decode(), v['image'].chunks, "
            "v['label'].compression)\n\"",
            dk_test_python(), path, raw),
        0);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "python failed: %s", out);
    long long label_sum = 0;
    for (size_t i = 0; i < dk_volume_voxels(&vols[0]); i++)
        label_sum += vols[0].label[i];
    char expect[256];
    snprintf(expect, sizeof expect, "uint8 %lld", label_sum);
    cr_assert(strstr(out, "dualkd-dataset 1 ['background', 'femoral', 'tibial', 'patellar']"), "%s",
              out);
    cr_assert(strstr(out, "float32 (5, 6, 7)"), "%s", out);
    cr_assert(strstr(out, expect), "want '%s' in %s", expect, out);
    cr_assert(strstr(out, "[3.3, 0.3125, 0.3125] [-12.5, 40.25, 0.001] (3, 3)"), "%s", out);
    cr_assert(strstr(out, "synthetic seed=1 labelled (1, 6, 7) gzip"), "%s", out);
    FILE *f = fopen(raw, "rb");
    cr_assert_not_null(f);
    size_t n = dk_volume_voxels(&vols[0]);
    float *back = malloc(n * 4);
    cr_assert_eq(fread(back, 4, n, f), n);
    fclose(f);
    cr_assert_eq(memcmp(back, vols[0].image, n * 4), 0, "h5py saw different image bytes");
    free(back);
    free(cmd);
    free(raw);
    free(path);
    dk_volume_release(&vols[0]);
    dk_volume_release(&vols[1]);
}

/* Build <tmp>/<name>.h5 with h5py as docs/formats.md says to (the 1.10 format,
 * fixed-length strings): a good-looking dataset with one volume 'v1', then
 * `tweak` (python statements with f = the file, v = the volume group, S = np.bytes_). */
static char *h5py_file(const char *name, const char *tweak)
{
    char *path = NULL, *cmd = NULL, out[4096];
    cr_assert_geq(asprintf(&path, "%s/%s.h5", dk_test_dir, name), 0);
    cr_assert_geq(asprintf(&cmd,
                           "%s -c \"import h5py, numpy as np\n"
                           "S = np.bytes_\n"
                           "f = h5py.File('%s', 'w', libver=('v110', 'latest'))\n"
                           "f.attrs['format'] = S('dualkd-dataset')\n"
                           "f.attrs['format_version'] = 1\n"
                           "f.attrs['classes'] = np.array([b'background', b'cartilage'])\n"
                           "v = f.create_group('volumes/v1')\n"
                           "v['image'] = np.ones((2, 3, 4), 'f4')\n"
                           "v['label'] = np.ones((2, 3, 4), 'u1')\n"
                           "v.attrs['spacing'] = [3.0, 0.5, 0.5]\n"
                           "v.attrs['split'] = S('labelled')\n"
                           "%s\n"
                           "f.close()\"",
                           dk_test_python(), path, tweak),
                  0);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "python failed: %s", out);
    free(cmd);
    return path;
}

/* Open must fail with code, and the message must hold every needle. */
static void expect_open_fails(const char *path, dk_status code, const char *needle1,
                              const char *needle2)
{
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_null(ds, "opened bad file %s", path);
    cr_assert_eq(err.code, code, "code %d, message: %s", err.code, err.msg);
    cr_assert(strstr(err.msg, path), "message does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, needle1), "want '%s' in: %s", needle1, err.msg);
    if (needle2) cr_assert(strstr(err.msg, needle2), "want '%s' in: %s", needle2, err.msg);
}

Test(dataset, h5py_built_good_file_opens)
{
    char *path = h5py_file("fine", "v.attrs['direction'] = np.eye(3).ravel()");
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    dk_volume v;
    cr_assert_eq(dk_dataset_read(ds, 0, &v, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(v.image[23], 1.0f);
    cr_assert_eq(dk_dataset_info(ds, 0)->class_voxels[1], 24);
    cr_assert_eq(v.spacing[0], 3.0);
    cr_assert_eq(v.direction[8], 1.0);
    dk_volume_release(&v);
    dk_dataset_close(ds);
    free(path);
}

Test(dataset, rejects_every_malformed_file)
{
    char *text = dk_test_path("notes.h5");
    FILE *f = fopen(text, "w");
    fputs("this is not HDF5\n", f);
    fclose(f);
    expect_open_fails(text, DK_EFORMAT, "not an HDF5 file", NULL);
    char *missing = dk_test_path("missing.h5");
    expect_open_fails(missing, DK_ENOTFOUND, "does not exist", NULL);

    struct {
        const char *name, *tweak;
        dk_status code;
        const char *needle1, *needle2;
    } cases[] = {
        {"no_format", "del f.attrs['format']", DK_EFORMAT, "not a dualkd dataset", "no 'format'"},
        {"wrong_format", "f.attrs['format'] = S('dualkd-checkpoint')", DK_EFORMAT,
         "not a dualkd dataset", "dualkd-checkpoint"},
        {"newer", "f.attrs['format_version'] = 2", DK_EFORMAT, "version 2", "newer"},
        {"no_version", "del f.attrs['format_version']", DK_ENOTFOUND, "format_version", NULL},
        {"label_shape", "del v['label']; v['label'] = np.zeros((2, 3, 5), 'u1')", DK_EMISMATCH,
         "volume 'v1'", "label shape (2, 3, 5) differs from image shape (2, 3, 4)"},
        {"label_ids", "v['label'][1, 2, 3] = 7", DK_EFORMAT, "volume 'v1'",
         "label id 7 at voxel (z 1, y 2, x 3)"},
        {"no_spacing", "del v.attrs['spacing']", DK_ENOTFOUND, "/volumes/v1",
         "attribute 'spacing' is missing"},
        {"zero_spacing", "v.attrs['spacing'] = [3.0, 0.0, 0.5]", DK_EFORMAT, "volume 'v1'",
         "spacing (3, 0, 0.5)"},
        {"short_spacing", "v.attrs['spacing'] = [3.0, 0.5]", DK_EFORMAT, "/volumes/v1",
         "'spacing' is 2 x float64, expected 3 x number"},
        {"int_image", "del v['image']; v['image'] = np.ones((2, 3, 4), 'i2')", DK_EFORMAT,
         "/volumes/v1/image", "int16, expected float32"},
        {"no_image", "del v['image']", DK_ENOTFOUND, "/volumes/v1", "no dataset 'image'"},
        {"bad_split", "v.attrs['split'] = S('everything')", DK_EFORMAT, "volume 'v1'",
         "everything"},
        {"vlen_split", "v.attrs['split'] = 'labelled'", DK_EFORMAT, "attribute 'split'",
         "variable-length"},
        {"old_format", "n = f.filename; f.close(); f = h5py.File(n, 'w'); f.attrs['x'] = 1",
         DK_EFORMAT, "superblock version 0", "libver"},
        {"bad_id", "f['volumes/x y'] = f['volumes/v1']", DK_EFORMAT, "volume 'x y'",
         "not a valid volume id"},
        {"no_classes", "del f.attrs['classes']", DK_ENOTFOUND, "classes", NULL},
        {"no_volumes", "del f['volumes']", DK_ENOTFOUND, "group 'volumes'", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *path = h5py_file(cases[i].name, cases[i].tweak);
        expect_open_fails(path, cases[i].code, cases[i].needle1, cases[i].needle2);
        free(path);
    }
    free(text);
    free(missing);
}

Test(dataset, truncated_file_is_reported)
{
    dk_volume vols[2];
    char *path = write_good(vols);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    off_t sizes[] = {st.st_size - 1, st.st_size / 2, 1000, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        cr_assert_eq(truncate(path, sizes[i]), 0);
        dk_err err = {0};
        cr_assert_null(dk_dataset_open(path, &err));
        cr_assert(strstr(err.msg, path), "%s", err.msg);
        cr_assert(strstr(err.msg, "truncated or corrupted") || strstr(err.msg, "not an HDF5 file"),
                  "size %lld: %s", (long long)sizes[i], err.msg);
    }
    dk_volume_release(&vols[0]);
    dk_volume_release(&vols[1]);
    free(path);
}

Test(dataset, writer_rejects_bad_volumes_and_abort_leaves_nothing)
{
    dk_volume v;
    make_volume(&v, "v1", 2, 3, 4, true, 5);
    char *path = dk_test_path("out.h5");
    dk_err err = {0};
    dk_classes classes = knee_classes();
    dk_dataset_writer *w = dk_dataset_writer_open(path, &classes, &err);
    cr_assert_not_null(w, "%s", err.msg);
    cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "volume 'v1'") && strstr(err.msg, "already"), "%s", err.msg);
    snprintf(v.id, sizeof v.id, "v2");
    v.label[5] = 4;
    cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "label id 4 at voxel (z 0, y 1, x 1)"), "%s", err.msg);
    v.label[5] = 0;
    v.spacing[2] = -1;
    cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "spacing") && strstr(err.msg, path), "%s", err.msg);
    snprintf(v.id, sizeof v.id, "bad/id");
    cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_EINVAL);
    dk_dataset_writer_abort(w);
    cr_assert_eq(count_entries(dk_test_dir), 0, "abort left a file behind");
    dk_volume_release(&v);
    free(path);
}

Test(dataset, crash_mid_write_keeps_the_old_file)
{
    dk_volume vols[2];
    char *path = write_good(vols);
    pid_t child = fork();
    if (child == 0) {
        dk_classes classes = knee_classes();
        dk_dataset_writer *w = dk_dataset_writer_open(path, &classes, NULL);
        snprintf(vols[0].id, sizeof vols[0].id, "other");
        if (w) dk_dataset_writer_add(w, &vols[0], NULL);
        abort(); /* dies with the new file half written */
    }
    int status;
    waitpid(child, &status, 0);
    cr_assert(WIFSIGNALED(status));
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "old file damaged: %s", err.msg);
    cr_assert_eq(dk_dataset_count(ds), 2);
    cr_assert_str_eq(dk_dataset_volume_id(ds, 0), "knee-01");
    dk_dataset_close(ds);
    dk_volume_release(&vols[0]);
    dk_volume_release(&vols[1]);
    free(path);
}

Test(dataset, cli_data_info)
{
    dk_volume vols[2];
    char *path = write_good(vols);
    char *cmd = NULL, out[8192];
    cr_assert_geq(asprintf(&cmd, "%s data info %s", dk_test_bin(), path), 0);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    long long counts[4] = {0};
    for (size_t i = 0; i < dk_volume_voxels(&vols[0]); i++)
        counts[vols[0].label[i]]++;
    char expect[256];
    snprintf(expect, sizeof expect, "background=%lld femoral=%lld tibial=%lld patellar=%lld",
             counts[0], counts[1], counts[2], counts[3]);
    cr_assert(strstr(out, "classes: 0=background 1=femoral 2=tibial 3=patellar"), "%s", out);
    cr_assert(strstr(out, "knee-01"), "%s", out);
    cr_assert(strstr(out, "shape 5 x 6 x 7  spacing 3.3 x 0.3125 x 0.3125 mm"), "%s", out);
    cr_assert(strstr(out, expect), "want '%s' in %s", expect, out);
    cr_assert(strstr(out, "labelled    1 volume (1 labelled), 210 voxels"), "%s", out);
    cr_assert(strstr(out, "unlabelled  1 volume (0 labelled), 60 voxels"), "%s", out);
    cr_assert(strstr(out, "no label"), "%s", out);
    free(cmd);

    char *bad = h5py_file("bad", "v['label'][0, 0, 0] = 9");
    cr_assert_geq(asprintf(&cmd, "%s data info %s", dk_test_bin(), bad), 0);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "label id 9") && strstr(out, bad), "%s", out);
    free(cmd);
    free(bad);
    dk_volume_release(&vols[0]);
    dk_volume_release(&vols[1]);
    free(path);
}

Test(dataset, labels_are_checked_in_row_slabs_when_a_slice_is_large)
{
    /* one 1200 x 3600 slice is 4.3 MB, over the 4 MB scan slab: read in row blocks */
    char *path = dk_test_path("wide.h5");
    dk_classes classes = knee_classes();
    dk_err err = {0};
    dk_volume v;
    cr_assert_eq(dk_volume_alloc(&v, "wide", (int[]){1, 1200, 3600}, true, &err), DK_OK);
    for (size_t i = 0; i < dk_volume_voxels(&v); i++)
        v.label[i] = (uint8_t)(i % 3);
    dk_dataset_writer *w = dk_dataset_writer_open(path, &classes, &err);
    cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_dataset_writer_commit(w, &err), DK_OK, "%s", err.msg);
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    cr_assert_eq(dk_dataset_info(ds, 0)->class_voxels[2], 1200 * 3600 / 3);
    dk_dataset_close(ds);
    /* a bad id in the last row block is reported at its own voxel */
    char *fix = NULL, out[4096];
    cr_assert_geq(asprintf(&fix,
                           "%s -c \"import h5py; f = h5py.File('%s', 'r+'); "
                           "f['volumes/wide/label'][0, 1150, 17] = 9\"",
                           dk_test_python(), path),
                  0);
    cr_assert_eq(dk_test_run(fix, out, sizeof out), 0, "%s", out);
    expect_open_fails(path, DK_EFORMAT, "label id 9 at voxel (z 0, y 1150, x 17)", NULL);
    dk_volume_release(&v);
    free(fix), free(path);
}

Test(dataset, volumes_over_the_voxel_limit_are_refused_before_reading)
{
    dk_volume vols[2];
    char *path = write_good(vols);
    dk_volume_set_max_voxels(100);
    expect_open_fails(path, DK_ELIMIT, "over the limit of 100 per volume", "volume '");
    dk_volume_set_max_voxels(0);
    cr_assert_eq(dk_volume_max_voxels(), DK_MAX_VOXELS_DEFAULT);
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    dk_dataset_close(ds);
    dk_volume_release(&vols[0]);
    dk_volume_release(&vols[1]);
    free(path);
}
