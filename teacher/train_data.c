/* train_data.c: loading and validating on a run's labelled data (train_data.h). */
#include "teacher/train_data.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "teacher/train.h"

static bool is_train_split(const char *s)
{
    return !strcmp(s, "train") || !strcmp(s, "labelled");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Check which volumes train and validate, before reading any image. */
static dk_status survey(dk_train_data *t, const char *path, int cap, dk_dataset *ds, dk_err *err)
{
    int n = dk_dataset_count(ds);
    for (int i = 0; i < n; i++) {
        const dk_volume_info *v = dk_dataset_info(ds, i);
        bool tr = is_train_split(v->split), va = !strcmp(v->split, "validation");
        if ((tr || va) && !v->has_label)
            return dk_err_set(err, DK_EINVAL,
                              "'%s': volume '%s' (split '%s') has no label map; "
                              "training and validation volumes need labels",
                              path, v->id, v->split);
        t->train_count += tr;
        t->val_count += va;
    }
    if (t->train_count == 0)
        return dk_err_set(err, DK_EINVAL,
                          "'%s' has no training volumes (split \"train\" or "
                          "\"labelled\", with labels)",
                          path);
    if (t->val_count == 0)
        return dk_err_set(err, DK_EINVAL,
                          "'%s' has no validation volumes (split \"validation\", "
                          "with labels)",
                          path);
    if (cap > 0 && t->val_count > cap) t->val_count = cap;
    return DK_OK;
}

static void median_spacing(dk_train_data *t, dk_dataset *ds)
{
    double *s = malloc((size_t)t->train_count * sizeof *s);
    for (int a = 0; a < 3; a++) {
        int k = 0;
        for (int i = 0; i < dk_dataset_count(ds) && s; i++)
            if (is_train_split(dk_dataset_info(ds, i)->split))
                s[k++] = dk_dataset_info(ds, i)->spacing[a];
        if (s) qsort(s, (size_t)k, sizeof *s, cmp_double);
        t->spacing[a] = s ? s[k / 2] : 0;
    }
    free(s);
}

dk_status dk_train_data_load(const char *path, int max_val, dk_train_data *t, dk_err *err)
{
    *t = (dk_train_data){0};
    dk_dataset *ds = dk_dataset_open(path, err);
    if (!ds) return DK_ENOTFOUND;
    t->classes = *dk_dataset_classes(ds);
    dk_status st = survey(t, path, max_val, ds, err);
    if (st == DK_OK) {
        median_spacing(t, ds);
        t->train = calloc((size_t)t->train_count, sizeof *t->train);
        t->val = calloc((size_t)t->val_count, sizeof *t->val);
        if (!t->train || !t->val) st = dk_err_set(err, DK_ENOMEM, "no memory for the volumes");
    }
    int nt = 0, nv = 0;
    for (int i = 0; st == DK_OK && i < dk_dataset_count(ds); i++) {
        const char *split = dk_dataset_info(ds, i)->split;
        bool tr = is_train_split(split), va = !strcmp(split, "validation") && nv < t->val_count;
        if (!tr && !va) continue;
        dk_volume v = {0};
        st = dk_dataset_read(ds, i, &v, err);
        if (st) break;
        dk_teacher_normalise(v.image, dk_volume_voxels(&v));
        if (va) {
            t->val[nv++] = v;
            continue;
        }
        st = dk_patch_source_init(&t->train[nt], &v, t->classes.count, err);
        if (st == DK_OK) nt++;
        dk_volume_release(&v);
    }
    dk_dataset_close(ds);
    if (st) dk_err_prefix(err, st, "'%s'", path);
    return st;
}

void dk_train_data_release(dk_train_data *t)
{
    for (int i = 0; t->train && i < t->train_count; i++)
        dk_patch_source_release(&t->train[i]);
    for (int i = 0; t->val && i < t->val_count; i++)
        dk_volume_release(&t->val[i]);
    free(t->train);
    free(t->val);
    *t = (dk_train_data){0};
}

static dk_status validate_volume(dk_unet *net, const dk_segment_options *o, const dk_volume *v,
                                 int classes, float *dice, dk_err *err)
{
    uint8_t *pred = malloc(dk_volume_voxels(v));
    if (!pred) return dk_err_set(err, DK_ENOMEM, "no memory to validate volume '%s'", v->id);
    dk_status st = dk_segment_labels(net, o, v->image, v->dims, pred, err);
    if (st == DK_OK) dk_teacher_dice(pred, v->label, dk_volume_voxels(v), classes, dice);
    free(pred);
    return st;
}

dk_status dk_train_data_validate(const dk_train_data *t, dk_unet *net,
                                 const dk_segment_options *o, float *dice, float *mean_fg,
                                 dk_err *err)
{
    const int C = t->classes.count;
    double sum[DK_MAX_CLASSES] = {0};
    for (int i = 0; i < t->val_count; i++) {
        float d[DK_MAX_CLASSES];
        dk_status st = validate_volume(net, o, &t->val[i], C, d, err);
        if (st) return st;
        for (int c = 0; c < C; c++)
            sum[c] += d[c];
    }
    double fg = 0;
    for (int c = 0; c < C; c++) {
        dice[c] = (float)(sum[c] / t->val_count);
        if (c > 0) fg += dice[c];
    }
    *mean_fg = (float)(fg / (C - 1));
    return DK_OK;
}
