/* html.h: the report's index.html: static HTML with inline CSS (no JavaScript),
 * UTF-8, every text from results.json escaped. It shows what was run, the verdict,
 * per site a table of Dice and HD95 per class and method (best per column in bold),
 * per method wall time and bytes per round against the original method's, and the
 * pictures that report.c wrote next to it. */
#ifndef DK_REPORT_HTML_H
#define DK_REPORT_HTML_H

#include <stdbool.h>

#include "report/overlay.h"
#include "report/results.h"

typedef struct dk_html_pictures {
    dk_overlay_info overlays[DK_RESULTS_MAX_SITES]; /* overlay-<site>.png, by site index */
    int curves_width, curves_height;                /* curves.png */
} dk_html_pictures;

/* Write the page at path (fsync'ed, not renamed). */
dk_status dk_html_write(const dk_results *r, const dk_html_pictures *pictures, const char *path,
                        dk_err *err);

#endif
