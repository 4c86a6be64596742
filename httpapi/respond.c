/* respond.c: queueing answers (JSON, text, any response), request accessors,
 * and ETag matching. */
#include <stdlib.h>
#include <string.h>

#include "httpapi/request.h"

const char *dk_request_arg(const dk_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *dk_request_header(const dk_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

enum MHD_Result dk_respond(dk_request *req, unsigned status, struct MHD_Response *r,
                           uint64_t body_bytes)
{
    if (!r) return MHD_NO; /* out of memory: MHD closes the connection */
    req->status = status;
    req->bytes = req->head || status == MHD_HTTP_NOT_MODIFIED ? 0 : body_bytes;
    enum MHD_Result ok = MHD_queue_response(req->conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static struct MHD_Response *copy_response(const char *text, size_t n)
{
    return MHD_create_response_from_buffer(n, (void *)text, MHD_RESPMEM_MUST_COPY);
}

enum MHD_Result dk_respond_text(dk_request *req, unsigned status, const char *content_type,
                                const char *text)
{
    size_t n = strlen(text);
    struct MHD_Response *r = copy_response(text, n);
    if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return dk_respond(req, status, r, n);
}

enum MHD_Result dk_respond_json_with(dk_request *req, unsigned status, json_t *body, size_t flags,
                                     const char *content_type, const char *header,
                                     const char *value)
{
    char *text = body ? json_dumps(body, flags) : NULL;
    json_decref(body);
    if (!text) return MHD_NO;
    size_t n = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (header) MHD_add_response_header(r, header, value);
    return dk_respond(req, status, r, n);
}

enum MHD_Result dk_respond_json(dk_request *req, unsigned status, json_t *body, const char *etag)
{
    return dk_respond_json_with(req, status, body, JSON_INDENT(2) | JSON_REAL_PRECISION(7),
                                "application/json", etag ? MHD_HTTP_HEADER_ETAG : NULL, etag);
}

/* Compare one list element (optionally W/-prefixed) with etag. */
static bool element_is(const char *s, size_t n, const char *etag)
{
    if (n >= 2 && s[0] == 'W' && s[1] == '/') s += 2, n -= 2; /* weak comparison, RFC 9110 13.1.2 */
    return n == strlen(etag) && memcmp(s, etag, n) == 0;
}

bool dk_etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match) return false;
    const char *p = if_none_match;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if ((n == 1 && *p == '*') || (n && element_is(p, n, etag))) return true;
        p += strcspn(p, ",");
    }
    return false;
}
