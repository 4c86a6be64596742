/* overlay.h: the report's comparison picture of one site: a row of panels of the same
 * slice of one validation volume: the image, the ground truth, then each method's
 * prediction (read from <predictions>/<volume id>.nii.gz), each panel titled, with a
 * colour legend of the classes (datasets/show.h's renderer and palette). */
#ifndef DK_REPORT_OVERLAY_H
#define DK_REPORT_OVERLAY_H

#include "report/results.h"

typedef struct dk_overlay_info {
    char volume[64]; /* the volume shown */
    int axis, slice; /* 0 z, 1 y, 2 x; the slice index along it */
    int width, height;
} dk_overlay_info;

/* Render site s of r (index into r->sites) and write the PNG at path (fsync'ed, not
 * renamed). The volume is the site's overlay.volume or else its first labelled
 * validation volume; the slice is overlay.slice or else the one with the most
 * ground-truth foreground. The dataset's class names must match r's. */
dk_status dk_overlay_write(const dk_results *r, int s, const char *path, dk_overlay_info *info,
                           dk_err *err);

#endif
