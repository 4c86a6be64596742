/* test_eval.c: `dualkd eval` as a user runs it: given label maps (a dataset, then the
 * NIfTI files it exported, which nibabel reads with the right orientation: voxel
 * [z][y][x] of the dataset at the position its origin, direction and spacing say) give the
 * metrics the library computes; an empty class is null in JSON and "inf" in the
 * table; a checkpoint (a small untrained U-Net) runs by sliding window. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "datasets/metrics.h"
#include "distill/checkpoint.h"
#include "distill/unet.h"
#include "testutil.h"

TestSuite(eval, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 120);

/* pred.h5: the phantoms' labels moved one slice along z; validation volume 0's ball
 * class removed (an empty prediction for that class). */
static void write_predictions(const char *data, const char *pred)
{
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(data, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    dk_dataset_writer *w = dk_dataset_writer_open(pred, dk_dataset_classes(ds), &err);
    for (int i = 0; i < dk_dataset_count(ds); i++) {
        dk_volume v;
        cr_assert_eq(dk_dataset_read(ds, i, &v, &err), DK_OK, "%s", err.msg);
        size_t plane = (size_t)v.dims[1] * v.dims[2], V = dk_volume_voxels(&v);
        memmove(v.label + plane, v.label, V - plane);
        memset(v.label, 0, plane);
        for (size_t k = 0; i == 2 && k < V; k++)
            if (v.label[k] == 1) v.label[k] = 0;
        cr_assert_eq(dk_dataset_writer_add(w, &v, &err), DK_OK, "%s", err.msg);
        dk_volume_release(&v);
    }
    cr_assert_eq(dk_dataset_writer_commit(w, &err), DK_OK, "%s", err.msg);
    dk_dataset_close(ds);
}

static json_t *eval_json(const char *args)
{
    static char out[1 << 16];
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' eval %s --json 2>/dev/null", dk_test_dir,
             dk_test_bin(), args);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    cr_assert_not_null(j, "not JSON (%s): %s", e.text, out);
    return j;
}

static double metric(json_t *j, int volume, const char *cls, const char *name)
{
    json_t *v = json_object_get(
        json_object_get(json_object_get(json_array_get(json_object_get(j, "volumes"), volume),
                                        "metrics"),
                        cls),
        name);
    return json_is_null(v) ? NAN : json_number_value(v);
}

/* The library's metrics of volume i of data against volume i of pred. */
static void library_metrics(const char *data, const char *pred, int i, dk_class_metrics *m)
{
    dk_dataset *a = dk_dataset_open(data, NULL), *b = dk_dataset_open(pred, NULL);
    dk_volume va, vb;
    cr_assert_eq(dk_dataset_read(a, i, &va, NULL), DK_OK);
    cr_assert_eq(dk_dataset_read(b, i, &vb, NULL), DK_OK);
    cr_assert_eq(dk_metrics_labels(vb.label, va.label, va.dims, va.spacing, 3, m, NULL), DK_OK);
    dk_volume_release(&va);
    dk_volume_release(&vb);
    dk_dataset_close(a);
    dk_dataset_close(b);
}

static void expect_same(json_t *j, int volume, const dk_class_metrics *m)
{
    const char *names[3] = {NULL, "ball", "slab"};
    for (int c = 1; c < 3; c++) {
        double hd = metric(j, volume, names[c], "hd95"), as = metric(j, volume, names[c], "assd");
        cr_expect_float_eq(metric(j, volume, names[c], "dice"), m[c].dice, 1e-7);
        cr_expect(isfinite(m[c].hd95) ? fabs(hd - m[c].hd95) < 1e-7 : isnan(hd),
                  "volume %d %s: hd95 %g vs %g", volume, names[c], hd, m[c].hd95);
        cr_expect(isfinite(m[c].assd) ? fabs(as - m[c].assd) < 1e-7 : isnan(as));
    }
}

Test(eval, given_labels_match_the_library_and_empty_classes_are_null)
{
    char *data = dk_test_path("site.h5"), *pred = dk_test_path("pred.h5");
    dk_test_write_phantoms(data, 2, 3, true);
    write_predictions(data, pred);
    json_t *j = eval_json("--pred pred.h5 --data site.h5");
    cr_assert_eq(json_array_size(json_object_get(j, "volumes")), 3, "the validation split");
    for (int i = 0; i < 3; i++) {
        dk_class_metrics m[3];
        library_metrics(data, pred, 2 + i, m);
        expect_same(j, i, m);
    }
    /* the one-slice shift along the 0.7 mm axis: the slab's HD95 is exactly 0.7 mm */
    cr_expect_float_eq(metric(j, 1, "slab", "hd95"), 0.7, 1e-9);
    json_t *ball0 = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "volumes"), 0), "metrics"), "ball");
    cr_expect(json_is_null(json_object_get(ball0, "hd95")));
    cr_expect_str_eq(json_string_value(json_object_get(ball0, "empty")), "prediction");
    cr_expect_eq(json_number_value(json_object_get(ball0, "dice")), 0.0);
    json_t *n = json_object_get(
        json_object_get(json_object_get(json_object_get(j, "summary"), "ball"), "hd95"), "n");
    cr_expect_eq(json_integer_value(n), 2, "the empty prediction is left out of the mean");
    json_decref(j);

    char out[8192], cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' eval --pred pred.h5 --data site.h5 2>&1",
             dk_test_dir, dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "inf") && strstr(out, "mean +- sd"), "%s", out);
    free(data);
    free(pred);
}

static const char nib_check[] =
    "import sys, h5py, numpy as np, nibabel as nib\n"
    "d, ids = sys.argv[1], sys.argv[2:]\n"
    "f = h5py.File('pred.h5', 'r')\n"
    "for i in ids:\n"
    "    g = f['volumes'][i]\n"
    "    img = nib.load(d + '/' + i + '.nii.gz')\n"
    "    data = np.asarray(img.dataobj)\n"
    "    assert data.dtype == np.uint8, data.dtype\n"
    "    assert np.array_equal(data, np.transpose(g['label'][()], (2, 1, 0))), i\n"
    "    sp, org = g.attrs['spacing'], g.attrs['origin']\n"
    "    dirn = np.asarray(g.attrs['direction']).reshape(3, 3)\n"
    "    for k, j, i in [(0, 0, 0), (3, 5, 7), (15, 31, 2)]:\n"
    "        want = org + dirn @ np.array([k * sp[0], j * sp[1], i * sp[2]])\n"
    "        got = img.affine @ np.array([i, j, k, 1.0])\n"
    "        assert np.allclose(got[:3], want, atol=1e-4), (got, want)\n"
    "print('ok', len(ids))\n";

Test(eval, exported_nifti_reads_in_nibabel_and_evaluates_the_same)
{
    char *data = dk_test_path("site.h5"), *pred = dk_test_path("pred.h5");
    dk_test_write_phantoms(data, 1, 2, true);
    write_predictions(data, pred);
    json_t *a = eval_json("--pred pred.h5 --data site.h5 --export exported");
    json_t *b = eval_json("--pred exported --data site.h5");
    json_t *va = json_object_get(a, "volumes"), *vb = json_object_get(b, "volumes");
    for (size_t i = 0; i < 2; i++)
        cr_expect(json_equal(json_object_get(json_array_get(va, i), "metrics"),
                             json_object_get(json_array_get(vb, i), "metrics")),
                  "volume %zu differs after the NIfTI round trip", i);
    json_decref(a);
    json_decref(b);
    char *script = dk_test_path("check.py"), cmd[4096], out[4096];
    FILE *f = fopen(script, "w");
    fputs(nib_check, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' check.py exported vol-01 vol-02", dk_test_dir,
             dk_test_python());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "nibabel: %s", out);
    cr_expect(strstr(out, "ok 2"), "%s", out);
    free(script);
    free(data);
    free(pred);
}

/* A small untrained U-Net as a checkpoint with the given run record. */
static void write_model_record(const char *path, int classes, const char *record)
{
    dk_unet_config c = dk_unet_config_default(1, classes);
    c.levels = 3;
    c.base_width = 4;
    dk_unet *net = dk_unet_create(&c, 3, NULL);
    char *arch = dk_unet_config_to_json(&c);
    dk_err err = {0};
    cr_assert_eq(dk_checkpoint_save(path, arch, dk_unet_params(net), NULL,
                                    record, &err),
                 DK_OK, "%s", err.msg);
    free(arch);
    dk_unet_free(net);
}

/* ... whose run record names its patch. */
static void write_model(const char *path, int classes)
{
    write_model_record(path, classes, "{\"config\": {\"patch\": [8, 16, 16]}}");
}

Test(eval, a_checkpoint_runs_by_sliding_window_and_a_class_mismatch_is_named)
{
    char *model = dk_test_path("model.h5"), *bad = dk_test_path("bad.h5");
    char *data = dk_test_path("site.h5");
    dk_test_write_phantoms(data, 1, 2, true);
    free(data);
    write_model(model, 3);
    write_model(bad, 4);
    json_t *j = eval_json("--model model.h5 --data site.h5 --overlap 0.25 --largest-component "
                          "--export pred --threads 1");
    cr_expect_eq(json_array_size(json_object_get(j, "volumes")), 2);
    json_t *tile = json_object_get(j, "tile");
    cr_expect_eq(json_integer_value(json_array_get(tile, 1)), 16);
    double dice = metric(j, 0, "slab", "dice");
    cr_expect(dice >= 0 && dice <= 1, "dice %g", dice);
    json_decref(j);
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && ls pred && '%s' eval --model bad.h5 --data site.h5 2>&1",
             dk_test_dir, dk_test_bin());
    cr_expect_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "vol-01.nii.gz") && strstr(out, "predicts 4 classes"), "%s", out);
    free(model);
    free(bad);
}

/* --resample: a model whose training spacing is the volumes' own (the phantoms' 0.7 x
 * 0.36 x 0.36 mm) gives the same metrics with and without it; at another training
 * spacing it still reports on the volumes' own grid; a model without a teacher card
 * is refused with a message that names what is missing. */
Test(eval, resample_at_the_models_own_spacing_changes_nothing)
{
    char *data = dk_test_path("site.h5"), *same = dk_test_path("same.h5"),
         *other = dk_test_path("other.h5"), *plain = dk_test_path("plain.h5");
    dk_test_write_phantoms(data, 1, 2, true);
    write_model_record(same, 3, "{\"config\": {\"patch\": [8, 16, 16]}, \"teacher\": "
                                "{\"training_spacing\": [0.7, 0.36, 0.36]}}");
    write_model_record(other, 3, "{\"config\": {\"patch\": [8, 16, 16]}, \"teacher\": "
                                 "{\"training_spacing\": [1.4, 0.5, 0.3]}}");
    write_model(plain, 3);
    json_t *a = eval_json("--model same.h5 --data site.h5 --threads 1");
    json_t *b = eval_json("--model same.h5 --data site.h5 --threads 1 --resample");
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < 2; k++) {
            const char *cls = k ? "slab" : "ball";
            double da = metric(a, v, cls, "dice"), db = metric(b, v, cls, "dice");
            cr_expect(da == db || (isnan(da) && isnan(db)), "volume %d %s: %g vs %g", v, cls, da,
                      db);
            cr_expect_eq(metric(a, v, cls, "pred_voxels"), metric(b, v, cls, "pred_voxels"));
        }
    cr_expect_float_eq(json_real_value(json_array_get(json_object_get(b, "resampled_to"), 0)), 0.7,
                       1e-9);
    json_decref(a);
    json_decref(b);
    json_t *c = eval_json("--model other.h5 --data site.h5 --threads 1 --resample");
    json_t *dims = json_object_get(json_array_get(json_object_get(c, "volumes"), 0), "dims");
    cr_expect_eq(json_integer_value(json_array_get(dims, 0)), 16);
    cr_expect_eq(json_integer_value(json_array_get(dims, 2)), 32);
    double dice = metric(c, 0, "slab", "dice");
    cr_expect(dice >= 0 && dice <= 1, "dice %g", dice);
    json_decref(c);
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' eval --model plain.h5 --data site.h5 --resample 2>&1",
             dk_test_dir, dk_test_bin());
    cr_expect_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "training_spacing"), "%s", out);
    free(data);
    free(same);
    free(other);
    free(plain);
}
