/* problem.c: errors as application/problem+json (RFC 7807): type, title (the
 * status's reason phrase), status, a detail a person can act on, and the
 * path as instance. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/request.h"

enum MHD_Result dk_problem_header(dk_request *req, unsigned status, const char *header,
                                  const char *value, const char *detail)
{
    const char *title = MHD_get_reason_phrase_for(status);
    json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank", "title",
                             title && *title ? title : "Error", "status", (int)status, "detail",
                             detail, "instance", req->path ? req->path : "");
    return dk_respond_json_with(req, status, body, JSON_INDENT(2) | JSON_REAL_PRECISION(7),
                                "application/problem+json", header, value);
}

enum MHD_Result dk_problem(dk_request *req, unsigned status, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return dk_problem_header(req, status, NULL, NULL, detail);
}

enum MHD_Result dk_problem_method(dk_request *req, const char *method, const char *allow)
{
    char detail[256];
    snprintf(detail, sizeof detail, "%.20s is not allowed on this resource; use %s", method, allow);
    return dk_problem_header(req, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, allow,
                             detail);
}

enum MHD_Result dk_problem_unauthorized(dk_request *req, const char *detail)
{
    return dk_problem_header(req, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                             "Bearer realm=\"dualkd\"", detail);
}
