/* upload.c: an uploaded .npy body checked once at the boundary: its media
 * type, then dk_npy_decode (magic, header, dtype, order, overflow, length),
 * then rank and dtype; each refusal is a problem naming the fault. */
#include "httpapi/upload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* application/x-npy or application/octet-stream, parameters allowed. */
static bool npy_media_type(const char *type)
{
    static const char *const ok[] = {"application/x-npy", "application/octet-stream"};
    for (size_t i = 0; type && i < sizeof ok / sizeof *ok; i++) {
        size_t n = strlen(ok[i]);
        if (strncasecmp(type, ok[i], n) == 0 &&
            (type[n] == '\0' || type[n] == ';' || type[n] == ' '))
            return true;
    }
    return false;
}

bool dk_upload_npy(dk_request *req, const char *what, const dk_npy_dtype *allowed, int n_allowed,
                   dk_npy_array *out, enum MHD_Result *answered)
{
    memset(out, 0, sizeof *out);
    const char *type = dk_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!npy_media_type(type)) {
        *answered = dk_problem(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                               "send %s as a NumPy .npy file with Content-Type: application/x-npy "
                               "(got '%.60s')",
                               what, type ? type : "none");
        return false;
    }
    if (!req->body || req->body_in == 0) {
        *answered =
            dk_problem(req, MHD_HTTP_BAD_REQUEST,
                       "the body is empty: send %s as a .npy file (np.save to a BytesIO)", what);
        return false;
    }
    dk_err err = {0};
    dk_npy_array a;
    if (dk_npy_decode(req->body, req->body_in, req->body_in, &a, &err)) {
        *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST, "%s is not a usable .npy file: %s", what,
                               err.msg);
        return false;
    }
    bool dtype_ok = false;
    for (int i = 0; i < n_allowed; i++)
        dtype_ok |= a.dtype == allowed[i];
    char names[64] = "";
    for (int i = 0, n = 0; i < n_allowed; i++)
        n += snprintf(names + n, sizeof names - (size_t)n, "%s%s", i ? ", " : "",
                      dk_npy_dtype_name(allowed[i]));
    if (!dtype_ok || a.rank != 3) {
        char shape[96] = "";
        for (int d = 0, n = 0; d < a.rank; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%zu", d ? ", " : "", a.shape[d]);
        *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                               "%s must be a 3D (z, y, x) array of dtype %s; got dtype %s, "
                               "shape (%s)",
                               what, names, dk_npy_dtype_name(a.dtype), shape);
        dk_npy_array_free(&a);
        return false;
    }
    for (int d = 0; d < 3; d++)
        if (a.shape[d] == 0 || a.shape[d] > 65535) {
            *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                                   "%s has %zu voxels along axis %d; each axis needs 1..65535",
                                   what, a.shape[d], d);
            dk_npy_array_free(&a);
            return false;
        }
    *out = a;
    return true;
}

bool dk_upload_parse_spacing(const char *text, double spacing[3])
{
    const char *p = text;
    for (int d = 0; d < 3; d++) {
        char *end;
        if (!p || *p == ' ' || *p == '\0') return false;
        spacing[d] = strtod(p, &end);
        if (end == p || !isfinite(spacing[d]) || spacing[d] <= 0 || spacing[d] > 100) return false;
        p = end;
        if (d < 2 && *p++ != ',') return false;
    }
    return *p == '\0';
}
