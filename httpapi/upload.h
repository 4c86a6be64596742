/* upload.h: request bodies that carry an array (POST /v1/distill, POST
 * /v1/evaluate): the Content-Type check, the .npy decode with its bounds, and
 * the answer (a 4xx problem naming what was wrong) when the body is not
 * usable. Bodies are bounded before this by the server's --max-upload. */
#ifndef DK_HTTPAPI_UPLOAD_H
#define DK_HTTPAPI_UPLOAD_H

#include <stdbool.h>

#include "datasets/npy.h"
#include "httpapi/request.h"

/* Decode the body of req as a .npy array of rank 3 (z y x) whose dtype is one
 * of allowed[0..n_allowed); what names it in messages ("the label map"). On
 * success out holds the array (caller frees with dk_npy_array_free) and true
 * is returned; otherwise an answer was queued into *answered (415 for another
 * Content-Type, 400 for a body that is not such an array) and out is zeroed. */
bool dk_upload_npy(dk_request *req, const char *what, const dk_npy_dtype *allowed, int n_allowed,
                   dk_npy_array *out, enum MHD_Result *answered);

/* Parse "Z,Y,X" (mm, each finite and in (0, 100]) into spacing; false when malformed. */
bool dk_upload_parse_spacing(const char *text, double spacing[3]);

#endif
