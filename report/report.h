/* report.h: the report folder of `dualkd demo` (docs/demo.md): from results.json,
 * overlay-<site>.png (image, ground truth and each method's prediction of one slice),
 * curves.png (validation mean Dice per round, per site and method) and index.html
 * (static, no JavaScript) that puts them together with the results tables.
 *
 * All-or-nothing: results.json is validated first (errors name the field), every
 * file is written to a temporary name in out_dir and fsync'ed, and only when all are
 * written are they renamed into place; on failure the temporary files are removed
 * and out_dir holds what it held before (or, if this call created it, is gone). */
#ifndef DK_REPORT_H
#define DK_REPORT_H

#include "distill/err.h"

/* Write the report of results_json_path into out_dir (created when missing; one
 * level). When out_dir is not the directory of results.json, a copy of it is written
 * there too, so that index.html's link to it works (its relative paths still refer
 * to the original's directory). */
dk_status dk_report_write(const char *results_json_path, const char *out_dir, dk_err *err);

#endif
