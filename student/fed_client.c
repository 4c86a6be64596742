/* fed_client.c: the site's federation requests (fed_client.h): URLs, the
 * answers a site expects, and what a wrong answer is called. */
#include "student/fed_client.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_MAX ((size_t)16 << 20) /* bytes of a status JSON (its history grows per round) */

static void url_of(const dk_fed_client *c, const char *tail, char *out, size_t cap)
{
    size_t n = strlen(c->server);
    while (n && c->server[n - 1] == '/')
        n--;
    snprintf(out, cap, "%.*s/v1/federation/%s%s", (int)n, c->server, c->federation, tail);
}

/* An answer that is not the expected status is the server's refusal. */
static dk_status expect(const dk_fetch_answer *a, long want, const char *method, const char *url,
                        dk_err *err)
{
    if (a->status == want) return DK_OK;
    return dk_err_set(err, a->status == 404 ? DK_ENOTFOUND : DK_EIO, "%s %s: %s", method, url,
                      a->detail[0] ? a->detail : "an unexpected answer");
}

dk_status dk_fed_client_join(dk_fed_client *c, dk_err *err)
{
    char url[4200];
    url_of(c, "/join", url, sizeof url);
    dk_fetch_answer a;
    dk_status st = dk_fetch_request(&c->fetch, "POST", url, NULL, 0, NULL, 4096, &a, err);
    if (!st) st = expect(&a, 200, "POST", url, err);
    json_t *answer = st || !a.body ? NULL : json_loads(a.body, 0, NULL);
    const char *site = json_string_value(json_object_get(answer, "site"));
    if (!st && !site)
        st = dk_err_set(err, DK_EFORMAT, "POST %s: the answer names no site", url);
    if (!st) snprintf(c->site, sizeof c->site, "%s", site);
    json_decref(answer);
    free(a.body);
    return st;
}

void dk_fed_status_release(dk_fed_status *s)
{
    free(s->architecture);
    memset(s, 0, sizeof *s);
}

/* The accepted updates of the current round, from its history entry. */
static int reported_in(json_t *root, int round)
{
    json_t *h = json_object_get(root, "rounds_history"), *r;
    size_t i;
    json_array_foreach(h, i, r)
        if (json_integer_value(json_object_get(r, "round")) == round)
            return (int)json_array_size(json_object_get(r, "reported"));
    return 0;
}

static dk_status parse_status(json_t *root, dk_fed_status *s, const char *url, dk_err *err)
{
    const char *state = NULL;
    json_t *arch = NULL, *members = NULL;
    json_int_t rounds = 0, quorum = 0, current = 0, deadline = 0, created = 0;
    json_error_t jerr;
    if (!root || json_unpack_ex(root, &jerr, 0, "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                                "state", &state, "rounds", &rounds, "quorum", &quorum,
                                "current_round", &current, "deadline_seconds", &deadline,
                                "created_at", &created, "architecture", &arch, "members",
                                &members) != 0 ||
        !json_is_object(arch) || rounds < 1 || current < 0 || current >= rounds)
        return dk_err_set(err, DK_EFORMAT, "GET %s: the status is not a federation's status (%s)",
                          url, root ? jerr.text : "not JSON");
    s->finished = !strcmp(state, "finished");
    s->rounds = (int)rounds, s->quorum = (int)quorum, s->current_round = (int)current;
    s->members = (int)json_array_size(members);
    s->deadline_seconds = deadline, s->created_at = created;
    s->reported = reported_in(root, s->current_round);
    s->architecture = json_dumps(arch, JSON_COMPACT);
    if (!s->architecture) return dk_err_set(err, DK_ENOMEM, "no memory for the architecture");
    return DK_OK;
}

dk_status dk_fed_client_status(dk_fed_client *c, dk_fed_status *s, dk_err *err)
{
    char url[4200];
    url_of(c, "", url, sizeof url);
    dk_fed_status_release(s);
    dk_fetch_answer a;
    dk_status st = dk_fetch_request(&c->fetch, "GET", url, NULL, 0, NULL, STATUS_MAX, &a, err);
    if (!st) st = expect(&a, 200, "GET", url, err);
    if (!st) {
        json_t *root = a.body ? json_loads(a.body, 0, NULL) : NULL;
        st = parse_status(root, s, url, err);
        json_decref(root);
    }
    free(a.body);
    return st;
}

static bool parse_round(const char *text, int *round)
{
    char *end;
    long r = strtol(text, &end, 10);
    if (!*text || *end || r < 0 || r > 1000000) return false;
    *round = (int)r;
    return true;
}

dk_status dk_fed_client_global(dk_fed_client *c, bool half, const char *if_none_match,
                               size_t max, dk_fed_global *g, dk_err *err)
{
    char url[4200];
    url_of(c, half ? "/global?dtype=f2" : "/global", url, sizeof url);
    memset(g, 0, sizeof *g);
    dk_fetch_answer a;
    dk_status st = dk_fetch_request(&c->fetch, "GET", url, NULL, 0, if_none_match, max, &a, err);
    if (!st && a.status == 304) g->not_modified = true;
    else if (!st) st = expect(&a, 200, "GET", url, err);
    if (!st && !parse_round(a.round, &g->round))
        st = dk_err_set(err, DK_EFORMAT, "GET %s: the answer's Dualkd-Round header '%.30s' is not "
                        "a round number", url, a.round);
    if (!st && !g->not_modified && !a.body)
        st = dk_err_set(err, DK_EFORMAT, "GET %s: answered an empty body", url);
    if (st) {
        free(a.body);
        return st;
    }
    snprintf(g->etag, sizeof g->etag, "%s", a.etag);
    g->body = a.body, g->len = a.len;
    c->bytes_down += a.len;
    return DK_OK;
}

dk_status dk_fed_client_send(dk_fed_client *c, int round, const void *npz, size_t len,
                             long labelled, double val_dice, dk_fed_sent *sent, char *detail,
                             dk_err *err)
{
    char tail[128], url[4200];
    int n = snprintf(tail, sizeof tail, "/rounds/%d/updates?labelled=%ld", round, labelled);
    if (val_dice >= 0) snprintf(tail + n, sizeof tail - (size_t)n, "&val_dice=%.6f", val_dice);
    url_of(c, tail, url, sizeof url);
    detail[0] = '\0';
    dk_fetch_answer a;
    dk_status st = dk_fetch_request(&c->fetch, "POST", url, npz, len, NULL, 65536, &a, err);
    if (st) return st;
    c->bytes_up += len;
    *sent = DK_FED_SENT_ACCEPTED;
    if (a.status == 409) {
        *sent = strstr(a.detail, "counts once") ? DK_FED_SENT_DUPLICATE : DK_FED_SENT_TOO_LATE;
        snprintf(detail, 200, "%.190s", a.detail);
    } else {
        st = expect(&a, 202, "POST", url, err);
    }
    free(a.body);
    return st;
}
