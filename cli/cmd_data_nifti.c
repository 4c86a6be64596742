/* cmd_data_nifti.c: `dualkd data import` (directories of NIfTI image/label pairs ->
 * an HDF5 dataset) and `dualkd data export` (one dataset volume -> NIfTI files).
 * The NIfTI reading and writing itself lives in datasets/nifti.h; this file only
 * lists directories, pairs file names, and drives the dataset writer. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "datasets/dataset.h"
#include "datasets/nifti.h"

static const char *const label_suffixes[] = {"_label", "_seg", "_mask"};
enum { SUFFIX_COUNT = sizeof label_suffixes / sizeof label_suffixes[0] };

/* One NIfTI file found in a directory. */
typedef struct nii_entry {
    char *path;
    char *stem; /* the file name without .nii / .nii.gz */
    char *base; /* stem without a label suffix, or NULL if it has none */
    int pair;   /* for an image, the index of its label or -1; for a label, its image */
} nii_entry;

typedef struct nii_list {
    nii_entry *items;
    int count;
} nii_list;

static const char import_help[] =
    "usage: dualkd data import --images DIR [--labels DIR] --out DATASET.h5\n"
    "                          [--classes NAME,NAME,...] [--max-voxels N]\n"
    "\n"
    "Reads every NIfTI-1 volume (.nii or .nii.gz) in --images, pairs each with its label\n"
    "map in --labels, and writes one HDF5 dataset (written to a temporary name, then\n"
    "renamed: a failed import leaves no file behind).\n"
    "\n"
    "Pairing: the image NAME.nii[.gz] takes the label in --labels named NAME.nii[.gz],\n"
    "or, if there is none, NAME_label, NAME_seg or NAME_mask (.nii or .nii.gz). More than\n"
    "one candidate, or a label that fits no image, is an error. Images without a label\n"
    "are imported unlabelled (split \"unlabelled\"); paired ones get split \"labelled\".\n"
    "The volume id is NAME (letters, digits, '.', '_', '-').\n"
    "\n"
    "Each label must lie on its image's grid (same dims, affine within 1e-3 voxel) and\n"
    "hold integers 0..255 below the class count. Orientation comes from the sform (else\n"
    "qform, else pixdim); see docs/formats.md, \"NIfTI import/export\".\n"
    "\n"
    "options:\n"
    "  --images DIR     directory of image volumes (required)\n"
    "  --labels DIR     directory of label maps (optional; a different directory)\n"
    "  --out FILE       the dataset to write (replaced if it exists)\n"
    "  --classes LIST   class names, background first (default: background,class1,...\n"
    "                   up to the largest label found)\n"
    "  --max-voxels N   refuse a volume of more than N voxels (default 268435456 = 2^28,\n"
    "                   or $DUALKD_MAX_VOXELS): a 2 MB .nii.gz may declare gigabytes\n"
    "\n"
    "example:\n"
    "  dualkd data import --images scans/ --labels masks/ --out knee.h5 \\\n"
    "      --classes background,femoral_cartilage,tibial_cartilage,patellar_cartilage\n";

static const char export_help[] =
    "usage: dualkd data export --data DATASET.h5 [--volume ID] --out DIR\n"
    "\n"
    "Writes every volume of the dataset (or only volume ID) as DIR/ID_image.nii.gz\n"
    "(float32) and, when it has one, DIR/ID_label.nii.gz (uint8), with the volume's\n"
    "spacing, origin and direction as sform and qform (code 1, scanner anatomical).\n"
    "DIR is created if missing.\n"
    "\n"
    "options:\n"
    "  --data FILE    the dataset to read\n"
    "  --volume ID    only this volume (see `dualkd data info` for the ids)\n"
    "  --out DIR      the output directory\n"
    "\n"
    "examples:\n"
    "  dualkd data export --data knee.h5 --out /tmp/knee\n"
    "  dualkd data export --data knee.h5 --volume case01 --out /tmp/case01\n";

/* ---- options ---- */

/* Fill values[i] for each name[i] from "--name value" pairs; 2 on a usage error. */
static int parse_options(int argc, char **argv, const char *const *names, const char **values,
                         int n, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        int k = 0;
        while (k < n && strcmp(argv[i], names[k]) != 0)
            k++;
        if (k == n || i + 1 >= argc) {
            fprintf(stderr, "dualkd: %s '%s'\n\n%s", k == n ? "unknown option" : "no value for",
                    argv[i], usage);
            return 2;
        }
        values[k] = argv[++i];
    }
    return 0;
}

static int parse_classes(const char *list, dk_classes *classes)
{
    memset(classes, 0, sizeof *classes);
    const char *p = list;
    while (1) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof classes->names[0] || classes->count == DK_MAX_CLASSES) {
            fprintf(stderr,
                    "dualkd: --classes '%s': expected 1..%d comma-separated names of 1..%zu "
                    "characters\n",
                    list, DK_MAX_CLASSES, sizeof classes->names[0] - 1);
            return 2;
        }
        memcpy(classes->names[classes->count++], p, len);
        if (p[len] == '\0') return 0;
        p += len + 1;
    }
}

/* ---- directories ---- */

static char *nifti_stem(const char *name)
{
    size_t len = strlen(name);
    if (len > 7 && strcmp(name + len - 7, ".nii.gz") == 0) return strndup(name, len - 7);
    if (len > 4 && strcmp(name + len - 4, ".nii") == 0) return strndup(name, len - 4);
    return NULL;
}

static char *label_base(const char *stem)
{
    size_t len = strlen(stem);
    for (int s = 0; s < SUFFIX_COUNT; s++) {
        size_t sl = strlen(label_suffixes[s]);
        if (len > sl && strcmp(stem + len - sl, label_suffixes[s]) == 0)
            return strndup(stem, len - sl);
    }
    return NULL;
}

static void free_list(nii_list *list)
{
    for (int i = 0; i < list->count; i++) {
        free(list->items[i].path);
        free(list->items[i].stem);
        free(list->items[i].base);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const nii_entry *)a)->path, ((const nii_entry *)b)->path);
}

/* The NIfTI files of dir, sorted by name (hidden files skipped). 1 on failure. */
static int list_dir(const char *dir, const char *what, nii_list *list)
{
    memset(list, 0, sizeof *list);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "dualkd: data import: cannot open %s directory '%s': %s\n", what, dir,
                strerror(errno));
        return 1;
    }
    struct dirent *e;
    int cap = 0, failed = 0;
    while (!failed && (e = readdir(d)) != NULL) {
        char *stem = e->d_name[0] == '.' ? NULL : nifti_stem(e->d_name);
        if (!stem) continue;
        if (list->count == cap) {
            cap = cap ? 2 * cap : 16;
            nii_entry *grown = realloc(list->items, (size_t)cap * sizeof *grown);
            if (!grown) {
                free(stem);
                failed = 1;
                break;
            }
            list->items = grown;
        }
        nii_entry *it = &list->items[list->count++];
        it->stem = stem;
        it->base = label_base(stem);
        it->pair = -1;
        if (asprintf(&it->path, "%s/%s", dir, e->d_name) < 0) it->path = NULL, failed = 1;
    }
    closedir(d);
    if (failed) {
        free_list(list);
        return dk_cli_fail("data import", "out of memory listing a directory");
    }
    qsort(list->items, (size_t)list->count, sizeof *list->items, by_path);
    return 0;
}

/* ---- pairing ---- */

/* The label for image `im`: an exact stem match, else a suffixed one; -2 if ambiguous. */
static int find_label(const nii_entry *im, const nii_list *labels)
{
    for (int pass = 0; pass < 2; pass++) {
        int found = -1;
        for (int l = 0; l < labels->count; l++) {
            const char *name = pass == 0 ? labels->items[l].stem : labels->items[l].base;
            if (!name || strcmp(name, im->stem) != 0) continue;
            if (found >= 0) {
                fprintf(stderr, "dualkd: data import: image '%s' has two labels: '%s' and '%s'\n",
                        im->path, labels->items[found].path, labels->items[l].path);
                return -2;
            }
            found = l;
        }
        if (found >= 0) return found;
    }
    return -1;
}

static int pair_files(nii_list *images, nii_list *labels)
{
    for (int i = 0; i < images->count; i++) {
        nii_entry *im = &images->items[i];
        if (!dk_volume_id_valid(im->stem)) {
            fprintf(stderr,
                    "dualkd: data import: '%s': '%s' is not a usable volume id (1..63 of "
                    "[A-Za-z0-9._-])\n",
                    im->path, im->stem);
            return 1;
        }
        if (i > 0 && strcmp(images->items[i - 1].stem, im->stem) == 0) {
            fprintf(stderr, "dualkd: data import: '%s' and '%s' would both be volume '%s'\n",
                    images->items[i - 1].path, im->path, im->stem);
            return 1;
        }
        int l = find_label(im, labels);
        if (l == -2) return 1;
        if (l < 0) continue;
        if (labels->items[l].pair >= 0) {
            fprintf(stderr, "dualkd: data import: label '%s' fits both '%s' and '%s'\n",
                    labels->items[l].path, images->items[labels->items[l].pair].path, im->path);
            return 1;
        }
        im->pair = l;
        labels->items[l].pair = i;
    }
    for (int l = 0; l < labels->count; l++)
        if (labels->items[l].pair < 0) {
            fprintf(stderr,
                    "dualkd: data import: label '%s' has no image (expected an image named "
                    "'%s.nii[.gz]')\n",
                    labels->items[l].path,
                    labels->items[l].base ? labels->items[l].base : labels->items[l].stem);
            return 1;
        }
    return 0;
}

/* ---- import ---- */

/* Default classes: background, class1, ... up to the largest label value. */
static int default_classes(const nii_list *images, const nii_list *labels, dk_classes *classes)
{
    int largest = 0;
    for (int i = 0; i < images->count; i++) {
        if (images->items[i].pair < 0) continue;
        dk_volume v;
        dk_err err = {0};
        if (dk_nifti_read_image(labels->items[images->items[i].pair].path, "label", &v, &err))
            return dk_cli_fail("data import", err.msg);
        for (size_t k = 0; k < dk_volume_voxels(&v); k++)
            if (v.image[k] > largest && v.image[k] < 256) largest = (int)v.image[k];
        dk_volume_release(&v);
    }
    if (largest >= DK_MAX_CLASSES) {
        fprintf(stderr, "dualkd: data import: label value %d needs more than %d classes\n", largest,
                DK_MAX_CLASSES);
        return 1;
    }
    memset(classes, 0, sizeof *classes);
    classes->count = largest + 1;
    strcpy(classes->names[0], "background");
    for (int c = 1; c <= largest; c++)
        snprintf(classes->names[c], 32, "class%d", c);
    return 0;
}

static dk_status check_label_range(const dk_volume *v, const char *path, const dk_classes *cl,
                                   dk_err *err)
{
    for (size_t k = 0; k < dk_volume_voxels(v); k++)
        if (v->label[k] >= cl->count)
            return dk_err_set(err, DK_EFORMAT,
                              "'%s': label value %d but only %d classes (0..%d); pass --classes",
                              path, v->label[k], cl->count, cl->count - 1);
    return DK_OK;
}

static dk_status import_one(dk_dataset_writer *w, const nii_entry *im, const nii_list *labels,
                            const dk_classes *classes, dk_err *err)
{
    dk_volume v;
    dk_status st = dk_nifti_read_image(im->path, im->stem, &v, err);
    if (st) return st;
    const char *label_path = im->pair >= 0 ? labels->items[im->pair].path : NULL;
    if (label_path) {
        st = dk_nifti_read_label(label_path, &v, err);
        if (!st) st = check_label_range(&v, label_path, classes, err);
    }
    snprintf(v.split, sizeof v.split, "%s", label_path ? "labelled" : "unlabelled");
    if (!st) st = dk_dataset_writer_add(w, &v, err);
    dk_volume_release(&v);
    return st;
}

static int run_import(const char *out, const nii_list *images, const nii_list *labels,
                      const dk_classes *classes)
{
    dk_err err = {0};
    dk_dataset_writer *w = dk_dataset_writer_open(out, classes, &err);
    if (!w) return dk_cli_fail("data import", err.msg);
    int labelled = 0;
    for (int i = 0; i < images->count; i++) {
        if (import_one(w, &images->items[i], labels, classes, &err)) {
            dk_dataset_writer_abort(w);
            return dk_cli_fail("data import", err.msg);
        }
        labelled += images->items[i].pair >= 0;
    }
    if (dk_dataset_writer_commit(w, &err)) return dk_cli_fail("data import", err.msg);
    printf("imported %d volumes (%d labelled, %d unlabelled, %d classes) into %s\n", images->count,
           labelled, images->count - labelled, classes->count, out);
    return 0;
}

int dk_cmd_data_import(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) return fputs(import_help, stdout), 0;
    static const char *const names[] = {"--images", "--labels", "--out", "--classes",
                                        "--max-voxels"};
    const char *opt[5] = {0};
    if (parse_options(argc, argv, names, opt, 5, import_help)) return 2;
    if (opt[4] && dk_cli_set_max_voxels(opt[4], "--max-voxels")) return 2;
    if (!opt[0] || !opt[2]) {
        fprintf(stderr, "dualkd: data import needs --images and --out\n\n%s", import_help);
        return 2;
    }
    dk_classes classes;
    if (opt[3] && parse_classes(opt[3], &classes)) return 2;
    nii_list images = {0}, labels = {0};
    int rc = list_dir(opt[0], "images", &images);
    if (!rc && opt[1]) rc = list_dir(opt[1], "labels", &labels);
    if (!rc && images.count == 0) {
        fprintf(stderr, "dualkd: data import: no .nii or .nii.gz files in '%s'\n", opt[0]);
        rc = 1;
    }
    if (!rc) rc = pair_files(&images, &labels);
    if (!rc && !opt[3]) rc = default_classes(&images, &labels, &classes);
    if (!rc) rc = run_import(opt[2], &images, &labels, &classes);
    free_list(&images);
    free_list(&labels);
    return rc;
}

/* ---- export ---- */

static int export_volume(dk_volume *v, const char *dir)
{
    dk_err err = {0};
    char *path = NULL;
    if (asprintf(&path, "%s/%s_image.nii.gz", dir, v->id) < 0)
        return dk_cli_fail("data export", "out of memory");
    int rc = dk_nifti_write_image(path, v, &err) ? dk_cli_fail("data export", err.msg) : 0;
    if (!rc) printf("wrote %s\n", path);
    free(path);
    if (rc || !v->label) return rc;
    if (asprintf(&path, "%s/%s_label.nii.gz", dir, v->id) < 0)
        return dk_cli_fail("data export", "out of memory");
    rc = dk_nifti_write_label(path, v, &err) ? dk_cli_fail("data export", err.msg) : 0;
    if (!rc) printf("wrote %s\n", path);
    free(path);
    return rc;
}

/* Read volume i and write its files; one volume in memory at a time. */
static int export_index(dk_dataset *ds, int i, const char *dir)
{
    dk_err err = {0};
    dk_volume v;
    if (dk_dataset_read(ds, i, &v, &err)) return dk_cli_fail("data export", err.msg);
    int rc = export_volume(&v, dir);
    dk_volume_release(&v);
    return rc;
}

int dk_cmd_data_export(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) return fputs(export_help, stdout), 0;
    static const char *const names[] = {"--data", "--volume", "--out"};
    const char *opt[3] = {0};
    if (parse_options(argc, argv, names, opt, 3, export_help)) return 2;
    if (!opt[0] || !opt[2]) {
        fprintf(stderr, "dualkd: data export needs --data and --out\n\n%s", export_help);
        return 2;
    }
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(opt[0], &err);
    if (!ds) return dk_cli_fail("data export", err.msg);
    int one = opt[1] ? dk_dataset_find(ds, opt[1]) : -1, rc = 0;
    if (opt[1] && one < 0) {
        fprintf(stderr, "dualkd: data export: no volume '%s' in '%s' (%d volumes)\n", opt[1],
                opt[0], dk_dataset_count(ds));
        rc = 1;
    } else if (mkdir(opt[2], 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "dualkd: data export: cannot create '%s': %s\n", opt[2], strerror(errno));
        rc = 1;
    } else if (opt[1]) {
        rc = export_index(ds, one, opt[2]);
    } else {
        for (int i = 0; !rc && i < dk_dataset_count(ds); i++)
            rc = export_index(ds, i, opt[2]);
    }
    dk_dataset_close(ds);
    return rc;
}
