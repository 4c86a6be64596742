/* evaluate.c: the evaluation run (evaluate.h): the prediction source (a model by
 * sliding window, a label dataset, or a NIfTI directory), clean-up, export, and
 * per-volume metrics; the JSON report. */
#include "student/evaluate.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/components.h"
#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "datasets/resample.h"
#include "datasets/segment.h"
#include "distill/checkpoint.h"
#include "distill/unet_checkpoint.h"
#include "teacher/train.h"
#include "distill/clock.h"

typedef struct evaluator {
    const dk_eval_options *o;
    dk_eval_result *r;
    dk_dataset *data;
    dk_unet *net;       /* model mode */
    dk_dataset *labels; /* given labels as a dataset */
    bool nifti_dir;     /* given labels as NIfTI files */
} evaluator;

dk_eval_options dk_eval_options_default(void)
{
    return (dk_eval_options){.split = "validation", .overlap = 0.5f, .gaussian_sigma = 0.125f};
}

/* The training patch ("config.patch") from the checkpoint's run record, and with
 * resample the teacher card's training spacing ("teacher.training_spacing"). */
static dk_status read_record(const char *path, bool want_patch, bool want_spacing, int tile[3],
                             double spacing[3], dk_err *err)
{
    char *text = NULL;
    dk_status st = dk_checkpoint_read_run_record(path, &text, err);
    if (st) return st;
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *p = json_object_get(json_object_get(root, "config"), "patch");
    json_t *sp = json_object_get(json_object_get(root, "teacher"), "training_spacing");
    bool patch_ok = true, spacing_ok = json_array_size(sp) == 3;
    for (int a = 0; a < 3; a++) {
        if (want_patch) patch_ok &= (tile[a] = (int)json_integer_value(json_array_get(p, a))) >= 1;
        spacing[a] = json_number_value(json_array_get(sp, a));
        spacing_ok &= spacing[a] > 0 && spacing[a] < 1e3;
    }
    json_decref(root);
    if (!patch_ok)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': the run record has no training patch (config.patch); "
                          "give the tile with --tile Z,Y,X",
                          path);
    if (want_spacing && !spacing_ok)
        return dk_err_set(err, DK_EFORMAT,
                          "'%s': --resample needs the model's training spacing "
                          "(teacher.training_spacing in its run record: a teacher from "
                          "`dualkd teacher train`)",
                          path);
    if (!want_spacing) memset(spacing, 0, 3 * sizeof *spacing);
    return DK_OK;
}

static dk_status open_model(evaluator *e, dk_err *err)
{
    const dk_eval_options *o = e->o;
    if (!(e->net = dk_unet_load_checkpoint(o->model_path, NULL, err))) return DK_EINVAL;
    memcpy(e->r->tile, o->tile, sizeof e->r->tile);
    dk_status st = o->tile[0] > 0 && !o->resample
                       ? DK_OK
                       : read_record(o->model_path, o->tile[0] <= 0, o->resample, e->r->tile,
                                     e->r->model_spacing, err);
    int mult[3], classes = dk_unet_config_of(e->net)->classes;
    dk_unet_pool_product(dk_unet_config_of(e->net), mult);
    for (int a = 0; st == DK_OK && a < 3; a++)
        if (e->r->tile[a] % mult[a])
            st = dk_err_set(err, DK_EINVAL, "tile %d along axis %d is not a multiple of the "
                            "network's pooling product %d", e->r->tile[a], a, mult[a]);
    if (st == DK_OK && classes != e->r->classes.count)
        st = dk_err_set(err, DK_EMISMATCH, "'%s' predicts %d classes, '%s' has %d",
                        o->model_path, classes, o->data_path, e->r->classes.count);
    return st;
}

static dk_status open_sources(evaluator *e, dk_err *err)
{
    const dk_eval_options *o = e->o;
    if (!o->model_path == !o->pred_path)
        return dk_err_set(err, DK_EINVAL, "give exactly one of a model and predicted labels");
    if (!(e->data = dk_dataset_open(o->data_path, err))) return DK_EINVAL;
    e->r->classes = *dk_dataset_classes(e->data);
    if (o->model_path) return open_model(e, err);
    struct stat sb;
    if (stat(o->pred_path, &sb) != 0)
        return dk_err_set(err, DK_ENOTFOUND, "'%s': %s", o->pred_path, strerror(errno));
    if ((e->nifti_dir = S_ISDIR(sb.st_mode))) return DK_OK;
    return (e->labels = dk_dataset_open(o->pred_path, err)) ? DK_OK : DK_EINVAL;
}

/* The given label map of volume v (grid checked) into pred. */
static dk_status given_labels(evaluator *e, dk_volume *v, uint8_t *pred, dk_err *err)
{
    const size_t V = dk_volume_voxels(v);
    if (e->nifti_dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.nii.gz", e->o->pred_path, v->id);
        if (access(path, F_OK) != 0) snprintf(path, sizeof path, "%s/%s.nii", e->o->pred_path, v->id);
        uint8_t *truth = v->label;
        v->label = NULL;
        dk_status st = dk_nifti_read_label(path, v, err);
        if (st == DK_OK) memcpy(pred, v->label, V);
        free(v->label);
        v->label = truth;
        return st;
    }
    int i = dk_dataset_find(e->labels, v->id);
    if (i < 0)
        return dk_err_set(err, DK_ENOTFOUND, "'%s' has no volume '%s'", e->o->pred_path, v->id);
    dk_volume p = {0};
    dk_status st = dk_dataset_read(e->labels, i, &p, err);
    if (st == DK_OK && (!p.label || memcmp(p.dims, v->dims, sizeof p.dims)))
        st = dk_err_set(err, DK_EMISMATCH,
                        "'%s': volume '%s' has %s (expected a %dx%dx%d label map)",
                        e->o->pred_path, v->id, p.label ? "other dims" : "no label map",
                        v->dims[0], v->dims[1], v->dims[2]);
    if (st == DK_OK) memcpy(pred, p.label, V);
    dk_volume_release(&p);
    return st;
}

/* The arg-max class per voxel (ties to the lower class), as dk_segment_labels. */
static void argmax(const float *probs, int classes, size_t voxels, uint8_t *labels)
{
    for (size_t i = 0; i < voxels; i++) {
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (probs[(size_t)c * voxels + i] > probs[(size_t)best * voxels + i]) best = c;
        labels[i] = (uint8_t)best;
    }
}

static dk_segment_options fitted_options(const evaluator *e, const int dims[3])
{
    dk_segment_options so = dk_segment_options_default(e->r->tile);
    so.overlap = e->o->overlap;
    so.gaussian_sigma = e->o->gaussian_sigma;
    int mult[3];
    dk_unet_pool_product(dk_unet_config_of(e->net), mult);
    dk_segment_fit_tile(e->r->tile, dims, mult, so.tile);
    return so;
}

/* Zero-shot at another resolution: the image to the model's training grid (z-scored
 * there, as precompute feeds the teacher), the probabilities back to v's grid. */
static dk_status predict_resampled(evaluator *e, dk_volume *v, uint8_t *pred, dk_err *err)
{
    const int C = e->r->classes.count;
    dk_grid g = dk_grid_of_volume(v), tg = dk_grid_respaced(&g, e->r->model_spacing);
    size_t V = dk_grid_voxels(&g), TV = dk_grid_voxels(&tg);
    if (TV > ((size_t)1 << 28))
        return dk_err_set(err, DK_ELIMIT,
                          "volume '%s' on the model's grid would be %dx%dx%d voxels (limit 2^28)",
                          v->id, tg.dims[0], tg.dims[1], tg.dims[2]);
    float *img = malloc(TV * sizeof *img), *tprobs = malloc((size_t)C * TV * sizeof *tprobs);
    float *probs = malloc((size_t)C * V * sizeof *probs);
    dk_status st = DK_OK;
    if (!img || !tprobs || !probs)
        st = dk_err_set(err, DK_ENOMEM, "no memory to resample volume '%s' to %dx%dx%d", v->id,
                        tg.dims[0], tg.dims[1], tg.dims[2]);
    if (!st) st = dk_resample_image(&g, v->image, &tg, img, 1, err);
    if (!st) {
        dk_teacher_normalise(img, TV);
        dk_segment_options so = fitted_options(e, tg.dims);
        st = dk_segment_probs(e->net, &so, img, tg.dims, tprobs, err);
    }
    if (!st) st = dk_resample_image(&tg, tprobs, &g, probs, C, err);
    if (!st) argmax(probs, C, V, pred);
    free(img);
    free(tprobs);
    free(probs);
    return st;
}

static dk_status predict(evaluator *e, dk_volume *v, uint8_t *pred, dk_err *err)
{
    if (!e->net) return given_labels(e, v, pred, err);
    if (e->o->resample) return predict_resampled(e, v, pred, err);
    dk_segment_options so = fitted_options(e, v->dims);
    dk_teacher_normalise(v->image, dk_volume_voxels(v));
    return dk_segment_labels(e->net, &so, v->image, v->dims, pred, err);
}

static dk_status export_prediction(const evaluator *e, dk_volume *v, uint8_t *pred, dk_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.nii.gz", e->o->export_dir, v->id);
    uint8_t *truth = v->label;
    v->label = pred;
    dk_status st = dk_nifti_write_label(path, v, err);
    v->label = truth;
    return st;
}

static dk_status one_volume(evaluator *e, int i, dk_eval_volume *out, dk_err *err)
{
    const dk_eval_options *o = e->o;
    double t0 = dk_clock_seconds();
    dk_volume v = {0};
    dk_status st = dk_dataset_read(e->data, i, &v, err);
    uint8_t *pred = st ? NULL : malloc(dk_volume_voxels(&v));
    if (st == DK_OK && !pred) st = dk_err_set(err, DK_ENOMEM, "no memory for volume '%s'", v.id);
    if (st == DK_OK) st = predict(e, &v, pred, err);
    if (st == DK_OK && o->largest_component)
        st = dk_keep_largest_components(pred, v.dims, e->r->classes.count, NULL, err);
    if (st == DK_OK && o->export_dir) st = export_prediction(e, &v, pred, err);
    if (st == DK_OK)
        st = dk_metrics_labels(pred, v.label, v.dims, v.spacing, e->r->classes.count,
                               out->classes, err);
    if (st == DK_OK) {
        snprintf(out->id, sizeof out->id, "%s", v.id);
        memcpy(out->dims, v.dims, sizeof out->dims);
        memcpy(out->spacing, v.spacing, sizeof out->spacing);
        out->seconds = dk_clock_seconds() - t0;
    }
    free(pred);
    dk_volume_release(&v);
    return st;
}

static bool selected(const evaluator *e, int i)
{
    const dk_volume_info *v = dk_dataset_info(e->data, i);
    return v->has_label && (!strcmp(e->o->split, "all") || !strcmp(v->split, e->o->split));
}

static dk_status make_dir(const char *dir, dk_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return DK_OK;
    if (mkdir(dir, 0755) != 0)
        return dk_err_set(err, DK_EIO, "cannot create '%s': %s", dir, strerror(errno));
    return DK_OK;
}

static dk_status run_all(evaluator *e, dk_err *err)
{
    int n = dk_dataset_count(e->data), total = 0;
    for (int i = 0; i < n; i++)
        total += selected(e, i);
    if (total == 0)
        return dk_err_set(err, DK_ENOTFOUND, "'%s' has no labelled volumes in split '%s'",
                          e->o->data_path, e->o->split);
    if (e->o->export_dir && make_dir(e->o->export_dir, err)) return DK_EIO;
    if (!(e->r->volumes = calloc((size_t)total, sizeof *e->r->volumes)))
        return dk_err_set(err, DK_ENOMEM, "no memory for %d results", total);
    for (int i = 0; i < n; i++) {
        if (!selected(e, i)) continue;
        dk_eval_volume *out = &e->r->volumes[e->r->count];
        dk_status st = one_volume(e, i, out, err);
        if (st) return st;
        e->r->count++;
        if (e->o->progress) e->o->progress(out, e->r->count, total, e->o->ctx);
    }
    return DK_OK;
}

dk_status dk_eval_run(const dk_eval_options *o, dk_eval_result *r, dk_err *err)
{
    *r = (dk_eval_result){0};
    evaluator e = {.o = o, .r = r};
    dk_status st = open_sources(&e, err);
    if (st == DK_OK) st = run_all(&e, err);
    dk_unet_free(e.net);
    if (e.data) dk_dataset_close(e.data);
    if (e.labels) dk_dataset_close(e.labels);
    return st;
}

void dk_eval_result_release(dk_eval_result *r)
{
    free(r->volumes);
    *r = (dk_eval_result){0};
}

/* ---- the JSON report ---- */

static json_t *volume_json(const dk_eval_result *r, const dk_eval_volume *v)
{
    json_t *m = json_object();
    for (int c = 1; c < r->classes.count; c++)
        json_object_set_new(m, r->classes.names[c], dk_metrics_json(&v->classes[c]));
    return json_pack("{s:s, s:[iii], s:[fff], s:o, s:f}", "id", v->id, "dims", v->dims[0],
                     v->dims[1], v->dims[2], "spacing", v->spacing[0], v->spacing[1],
                     v->spacing[2], "metrics", m, "seconds", v->seconds);
}

static json_t *stat_json(const dk_eval_result *r, int c, size_t offset)
{
    double *x = malloc(((size_t)r->count + 1) * sizeof *x), mean, sd;
    int used = 0;
    for (int i = 0; x && i < r->count; i++)
        x[i] = *(const double *)((const char *)&r->volumes[i].classes[c] + offset);
    if (x) dk_metrics_mean_sd(x, r->count, &mean, &sd, &used);
    free(x);
    if (!x) return NULL;
    return json_pack("{s:o, s:o, s:i}", "mean", dk_metrics_json_number(mean), "sd",
                     dk_metrics_json_number(sd), "n", used);
}

json_t *dk_eval_result_json(const dk_eval_result *r, const dk_eval_options *o)
{
    json_t *root = json_pack("{s:s, s:s, s:s, s:b}", "data", o->data_path,
                             o->model_path ? "model" : "pred",
                             o->model_path ? o->model_path : o->pred_path, "split", o->split,
                             "largest_component", o->largest_component);
    json_t *classes = json_array(), *volumes = json_array(), *summary = json_object();
    for (int c = 1; c < r->classes.count; c++) {
        json_array_append_new(classes, json_string(r->classes.names[c]));
        json_object_set_new(summary, r->classes.names[c],
                            json_pack("{s:o, s:o, s:o}", "dice",
                                      stat_json(r, c, offsetof(dk_class_metrics, dice)), "hd95",
                                      stat_json(r, c, offsetof(dk_class_metrics, hd95)), "assd",
                                      stat_json(r, c, offsetof(dk_class_metrics, assd))));
    }
    for (int i = 0; i < r->count; i++)
        json_array_append_new(volumes, volume_json(r, &r->volumes[i]));
    json_object_set_new(root, "classes", classes);
    json_object_set_new(root, "volumes", volumes);
    json_object_set_new(root, "summary", summary);
    if (o->model_path)
        json_object_set_new(root, "tile", json_pack("[iii]", r->tile[0], r->tile[1], r->tile[2]));
    if (o->model_path && o->resample)
        json_object_set_new(root, "resampled_to",
                            json_pack("[fff]", r->model_spacing[0], r->model_spacing[1],
                                      r->model_spacing[2]));
    return root;
}
