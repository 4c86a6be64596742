/* results.h: results.json of `dualkd demo` (schema in docs/demo.md) read into memory
 * and validated once: types strict, extra fields ignored, every site named by every
 * method and every method's site listed, the files it points to present. Paths in
 * the file are relative to its directory and come out resolved. Used by report/. */
#ifndef DK_REPORT_RESULTS_H
#define DK_REPORT_RESULTS_H

#include <stdbool.h>

#include "datasets/volume.h"
#include "distill/err.h"

#define DK_RESULTS_MAX_SITES   16
#define DK_RESULTS_MAX_METHODS 16
#define DK_RESULTS_MAX_CURVE   10000
#define DK_RESULTS_MAX_BYTES   ((long)16 << 20) /* of results.json */
#define DK_RESULTS_PATH        1024

typedef struct dk_results_class {
    double dice, hd95_mm, assd_mm; /* NAN where the file says null */
} dk_results_class;

typedef struct dk_results_point {
    int round;
    double dice;
} dk_results_point;

typedef struct dk_results_cell {              /* one method at one site */
    char predictions[DK_RESULTS_PATH];        /* resolved directory of <volume id>.nii.gz */
    dk_results_class classes[DK_MAX_CLASSES]; /* in the order of dk_results.classes */
    double mean_dice;                         /* NAN for null */
    int curve_count;
    dk_results_point *curve; /* owned */
} dk_results_cell;

typedef struct dk_results_method {
    char name[64]; /* [A-Za-z0-9._-] */
    char title[128];
    double seconds;
    long long rounds, local_steps;
    bool has_bytes; /* bytes_per_round not null */
    long long bytes_down, bytes_up;
    dk_results_cell sites[DK_RESULTS_MAX_SITES]; /* in the order of dk_results.sites */
} dk_results_method;

typedef struct dk_results_site {
    char name[64]; /* [A-Za-z0-9._-], not starting with '.' */
    char profile[64], contrast[32];
    char data[DK_RESULTS_PATH];       /* resolved */
    char data_given[DK_RESULTS_PATH]; /* as written in the file */
    long long labelled, validation;
    char overlay_volume[64]; /* "" = the first labelled validation volume */
    int overlay_axis;        /* 0 z, 1 y, 2 x */
    int overlay_slice;       /* -1 = the slice with the most ground-truth foreground */
} dk_results_site;

typedef struct dk_results {
    char version[64];
    bool quick;
    double seconds;
    int class_count; /* foreground classes */
    char classes[DK_MAX_CLASSES][32];
    int site_count, method_count;
    dk_results_site sites[DK_RESULTS_MAX_SITES];
    dk_results_method methods[DK_RESULTS_MAX_METHODS];
    long long original_down, original_up;
    char *verdict; /* owned */
} dk_results;

/* Read and validate path. Errors name the file and the field ("results.json:
 * methods[1].sites.site-a.classes.femur.dice: expected a number in [0, 1] or null").
 * Caller frees with dk_results_free; NULL with err set on failure. */
dk_results *dk_results_read(const char *path, dk_err *err);
void dk_results_free(dk_results *r);

#endif
