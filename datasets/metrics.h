/* metrics.h: segmentation metrics in millimetres on a volume's own (anisotropic)
 * grid: per-class Dice, HD95 and ASSD. One module that `dualkd eval` and the
 * server's `POST /v1/evaluate` share, so both report the same numbers.
 *
 * Definitions (medpy.metric.binary's conventions, which MONAI's HD95 differs from
 * as noted):
 *   - Dice = 2|P & G| / (|P| + |G|) over the voxels of one class.
 *   - Surface of a mask: its voxels with at least one of the 6 face neighbours
 *     outside the mask (a voxel on the volume's border counts as surface).
 *   - d(a, B): Euclidean distance in mm between the centres of surface voxel a and
 *     the nearest surface voxel of B, with the grid's spacing (z y x), computed
 *     exactly by a separable squared distance transform (Felzenszwalb-Huttenlocher
 *     lower envelope per axis, weighted by spacing^2).
 *   - HD95 = the 95th percentile of the pooled symmetric distances
 *     {d(a, G) : a in surf P} u {d(g, P) : g in surf G}, with numpy's default
 *     (linear) interpolation between order statistics. (medpy's hd95; MONAI instead
 *     takes max(p95 of P->G, p95 of G->P), which is >= this.)
 *   - HD = the largest of those distances (the classic Hausdorff distance).
 *   - ASSD = (mean d(P->G) + mean d(G->P)) / 2 (medpy's assd).
 *
 * Empty masks: both empty -> Dice 1, HD95/HD/ASSD NaN ("nothing to compare");
 * exactly one empty -> Dice 0, HD95/HD/ASSD +INFINITY ("no surface to reach").
 * Neither is a number for JSON: dk_metrics_json writes null for both and says which
 * mask was empty in "empty". Summaries over volumes skip non-finite values and
 * report how many they used. */
#ifndef DK_METRICS_H
#define DK_METRICS_H

#include <jansson.h>
#include <stdint.h>

#include "datasets/volume.h"

typedef enum dk_metrics_empty {
    DK_METRICS_NONE_EMPTY = 0,
    DK_METRICS_PRED_EMPTY,  /* the prediction has no voxel of the class */
    DK_METRICS_TRUTH_EMPTY, /* the ground truth has none */
    DK_METRICS_BOTH_EMPTY,
} dk_metrics_empty;

typedef struct dk_class_metrics {
    double dice;
    double hd95; /* mm; +INFINITY / NaN as above */
    double hd;   /* mm */
    double assd; /* mm */
    long long pred_voxels, truth_voxels;
    dk_metrics_empty empty;
} dk_class_metrics;

/* Metrics of two binary masks (nonzero = inside) of dims (z y x) at spacing (mm). */
dk_status dk_metrics_binary(const uint8_t *pred, const uint8_t *truth, const int dims[3],
                            const double spacing[3], dk_class_metrics *out, dk_err *err);

/* Per-class metrics of two label maps for classes 0..classes-1 (out[c]); labels
 * >= classes are counted in no class. Class 0 (background) is included. */
dk_status dk_metrics_labels(const uint8_t *pred, const uint8_t *truth, const int dims[3],
                            const double spacing[3], int classes, dk_class_metrics *out,
                            dk_err *err);

/* Mean and sample standard deviation (n - 1; 0 when n < 2) of the finite values
 * among x[0..n); *used counts them (mean and sd are NaN when it is 0). */
void dk_metrics_mean_sd(const double *x, int n, double *mean, double *sd, int *used);

/* {"dice": .., "hd95": .., "hd": .., "assd": .., "pred_voxels": .., "truth_voxels": ..,
 *  "empty": null | "prediction" | "truth" | "both"} with null for non-finite
 * distances. Caller owns the reference (json_decref). NULL without memory. */
json_t *dk_metrics_json(const dk_class_metrics *m);

/* A JSON number, or null when x is not finite. New reference. */
json_t *dk_metrics_json_number(double x);

#endif
