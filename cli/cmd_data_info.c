/* cmd_data_info.c: `dualkd data info FILE`: what a dataset holds: its classes,
 * each volume (split, shape, spacing, voxels per class), and totals per split.
 * Reads only metadata and labels (which open validates anyway), never images. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "datasets/dataset.h"

/* Per-split totals; splits are few, so a small linear table is enough. */
typedef struct split_total {
    char split[16];
    int volumes, labelled;
    long long voxels;
    long long class_voxels[DK_MAX_CLASSES];
} split_total;

static void print_counts(const dk_classes *classes, const long long *counts)
{
    for (int c = 0; c < classes->count; c++)
        printf(" %s=%lld", classes->names[c], counts[c]);
}

static split_total *total_for(split_total *totals, int *n, const char *split)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(totals[i].split, split) == 0) return &totals[i];
    split_total *t = &totals[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->split, sizeof t->split, "%s", split);
    return t;
}

static void print_volume(const dk_classes *classes, const dk_volume_info *v)
{
    printf("  %-20s %-11s shape %d x %d x %d  spacing %g x %g x %g mm ", v->id,
           v->split[0] ? v->split : "-", v->dims[0], v->dims[1], v->dims[2], v->spacing[0],
           v->spacing[1], v->spacing[2]);
    if (v->has_label) {
        printf(" voxels:");
        print_counts(classes, v->class_voxels);
    } else {
        printf(" no label");
    }
    printf("\n");
}

static void print_dataset(const char *path, const dk_dataset *ds)
{
    const dk_classes *classes = dk_dataset_classes(ds);
    int count = dk_dataset_count(ds);
    printf("dataset %s: %d volume%s\n", path, count, count == 1 ? "" : "s");
    printf("classes:");
    for (int c = 0; c < classes->count; c++)
        printf(" %d=%s", c, classes->names[c]);
    printf("\nvolumes: id, split, shape (z x y x x), spacing (mm), voxels per class\n");
    split_total totals[8]; /* open accepts only the six known splits */
    int n_totals = 0;
    for (int i = 0; i < count; i++) {
        const dk_volume_info *v = dk_dataset_info(ds, i);
        print_volume(classes, v);
        split_total *t = total_for(totals, &n_totals, v->split);
        t->volumes++;
        t->voxels += (long long)v->dims[0] * v->dims[1] * v->dims[2];
        t->labelled += v->has_label;
        for (int c = 0; c < classes->count; c++)
            t->class_voxels[c] += v->class_voxels[c];
    }
    printf("totals per split:\n");
    for (int i = 0; i < n_totals; i++) {
        const split_total *t = &totals[i];
        printf("  %-11s %d volume%s (%d labelled), %lld voxels; labelled voxels:",
               t->split[0] ? t->split : "-", t->volumes, t->volumes == 1 ? "" : "s", t->labelled,
               t->voxels);
        print_counts(classes, t->class_voxels);
        printf("\n");
    }
}

int dk_cmd_data_info(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("usage: dualkd data info FILE\n\n"
               "Validates the HDF5 dataset FILE and prints its classes, then per volume its id,\n"
               "split, shape (z x y x x voxels), spacing (mm) and voxels per class, then totals\n"
               "per split. Exits 1 with the reason when FILE is not a valid dataset.\n");
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: dualkd data info FILE\n");
        return 2;
    }
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(argv[1], &err);
    if (!ds) return dk_cli_fail("data info", err.msg);
    print_dataset(argv[1], ds);
    dk_dataset_close(ds);
    return 0;
}
