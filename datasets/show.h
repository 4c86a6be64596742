/* show.h: pictures of volumes: one slice as a PNG, grey values windowed to the
 * volume's 1st-99th intensity percentiles, labels alpha-blended over it in a fixed
 * palette, scaled so that anisotropic voxels keep their physical aspect ratio.
 *
 * Slice orientation (rows, columns): axis z -> (y, x); axis y -> (z, x); axis x ->
 * (y, z). For the synthetic knee (synth_knee.h) these are the sagittal, axial and
 * coronal views with superior at the top. */
#ifndef DK_SHOW_H
#define DK_SHOW_H

#include <stdint.h>

#include "datasets/volume.h"
#include "distill/err.h"

typedef struct dk_show_options {
    int axis;      /* 0 = z, 1 = y, 2 = x */
    int slice;     /* index along axis; -1 = the middle slice */
    float alpha;   /* label opacity in [0, 1]; 0 = no overlay */
    int min_side;  /* the shorter side is enlarged (by an integer factor) to at least this */
} dk_show_options;

/* axis z, middle slice, alpha 0.4, min_side 480. */
void dk_show_defaults(dk_show_options *o);

/* The overlay colour of a class id (1..255; 0 is never drawn). Fixed across runs. */
void dk_show_palette(int class_id, uint8_t rgb[3]);

/* Render the slice as RGB, 8 bits per channel, rows top to bottom. *rgb is malloc'ed,
 * caller frees. DK_EINVAL for a bad axis or slice (the message names the valid range). */
dk_status dk_show_render(const dk_volume *v, const dk_show_options *o, uint8_t **rgb, int *width,
                         int *height, dk_err *err);

/* Render and write a PNG at path (through a temporary file renamed into place). */
dk_status dk_show_png(const dk_volume *v, const dk_show_options *o, const char *path, dk_err *err);

#endif
