/* plot.h: the report's learning curves: validation mean Dice against round, one panel
 * per site, one line per method (a method without rounds, such as the zero-shot
 * teacher, as a dashed level at its final mean Dice), with axes, ticks and a legend,
 * drawn into a canvas (canvas.h) and written as a PNG. */
#ifndef DK_REPORT_PLOT_H
#define DK_REPORT_PLOT_H

#include "report/results.h"

/* Write curves.png for r at path (fsync'ed, not renamed); its size into *width, *height. */
dk_status dk_plot_curves(const dk_results *r, const char *path, int *width, int *height,
                         dk_err *err);

/* The line colour of method m (stable for a results file: by index). */
void dk_plot_method_colour(int m, unsigned char rgb[3]);

#endif
