/* cmd_fed.c: `dualkd fed create` and `dualkd fed status`: an operator's view
 * of the federations a running `dualkd serve --federation DIR` coordinates,
 * over its HTTP API (libcurl). They talk to the server, not to DIR: the
 * server holds the directory's lock (one coordinator per directory), and
 * creating over HTTP works the same from any machine. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"

static const char create_usage[] =
    "usage: dualkd fed create --server URL --token-file FILE --name NAME --rounds R --quorum Q\n"
    "                         --deadline SECONDS [--student STUDENT.h5]\n";
static const char status_usage[] =
    "usage: dualkd fed status --server URL --token-file FILE --name NAME [--json]\n";

typedef struct reply {
    char *body;
    size_t len;
} reply;

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    reply *r = ctx;
    char *grown = realloc(r->body, r->len + size * n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, data, size * n);
    r->body = grown, r->len += size * n, r->body[r->len] = '\0';
    return size * n;
}

/* One request (a POST when body is non-NULL); the HTTP status, or -1 with the
 * transfer error printed. */
static long request(const char *url, const char *token, const char *type, const void *body,
                    size_t len, reply *r)
{
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    char content_type[128];
    snprintf(content_type, sizeof content_type, "Content-Type: %s", type ? type : "");
    if (body) h = curl_slist_append(h, content_type);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "dualkd: %s: %s\n", url, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* A problem+json answer's detail, printed; returns 1. */
static int print_problem(const char *what, long status, const reply *r)
{
    json_t *p = r->body ? json_loads(r->body, 0, NULL) : NULL;
    const char *detail = p ? json_string_value(json_object_get(p, "detail")) : NULL;
    fprintf(stderr, "dualkd: %s: HTTP %ld: %s\n", what, status,
            detail ? detail : (r->body ? r->body : "no answer"));
    json_decref(p);
    return 1;
}

typedef struct fed_args {
    const char *server, *token_file, *name, *rounds, *quorum, *deadline, *student;
    int json;
    char token[128];
} fed_args;

static int parse(int argc, char **argv, fed_args *a, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(f, "--server")       ? &a->server
                            : !strcmp(f, "--token-file") ? &a->token_file
                            : !strcmp(f, "--name")       ? &a->name
                            : !strcmp(f, "--rounds")     ? &a->rounds
                            : !strcmp(f, "--quorum")     ? &a->quorum
                            : !strcmp(f, "--deadline")   ? &a->deadline
                            : !strcmp(f, "--student")    ? &a->student
                                                         : NULL;
        if (!strcmp(f, "--json")) {
            a->json = 1;
            continue;
        }
        if (!slot || !v) {
            fprintf(stderr, "dualkd: unknown option or missing value: '%s'\n%s", f, usage);
            return 2;
        }
        *slot = v, i++;
    }
    if (!a->server || !a->token_file || !a->name) {
        fprintf(stderr, "dualkd: --server, --token-file and --name are required\n%s", usage);
        return 2;
    }
    dk_err err = {0};
    char *text = dk_cli_read_text(a->token_file, "token file", &err);
    if (!text) return dk_cli_fail("fed", err.msg);
    snprintf(a->token, sizeof a->token, "%.*s", (int)strcspn(text, " \r\n"), text);
    free(text);
    return 0;
}

static long create_with_json(const fed_args *a, long long rounds, long long quorum,
                             long long deadline, reply *r)
{
    json_t *body = json_pack("{s:s, s:I, s:I, s:I}", "name", a->name, "rounds", rounds, "quorum",
                             quorum, "deadline_seconds", deadline);
    char *text = json_dumps(body, JSON_COMPACT), url[2048];
    json_decref(body);
    snprintf(url, sizeof url, "%s/v1/federation", a->server);
    long status = text ? request(url, a->token, "application/json", text, strlen(text), r) : -1;
    free(text);
    return status;
}

/* The student checkpoint as the body; the settings in the query. */
static long create_with_upload(const fed_args *a, long long rounds, long long quorum,
                               long long deadline, reply *r)
{
    FILE *f = fopen(a->student, "rb");
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    char *data = size > 0 && size <= (1L << 30) ? malloc((size_t)size) : NULL;
    bool ok = data && fseek(f, 0, SEEK_SET) == 0 && fread(data, 1, (size_t)size, f) == (size_t)size;
    if (f) fclose(f);
    if (!ok) {
        fprintf(stderr,
                "dualkd: fed create: --student '%s' cannot be read (or is empty or > 1 GiB)\n",
                a->student);
        free(data);
        return -1;
    }
    char *name = curl_easy_escape(NULL, a->name, 0), url[2048];
    snprintf(url, sizeof url,
             "%s/v1/federation?name=%s&rounds=%lld&quorum=%lld&deadline_seconds=%lld", a->server,
             name ? name : "", rounds, quorum, deadline);
    curl_free(name);
    long status = request(url, a->token, "application/x-hdf5", data, (size_t)size, r);
    free(data);
    return status;
}

int dk_cmd_fed_create(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("%s\nCreates federation NAME on a running `dualkd serve --federation DIR\n"
               "--fed-student STUDENT.h5` (POST /v1/federation; the token needs the scope\n"
               "federation-admin). Every site starts from STUDENT.h5 (a student checkpoint,\n"
               "uploaded; without --student, the server's --fed-student). A round closes when\n"
               "Q updates are in or SECONDS after it opened.\n",
               create_usage);
        return 0;
    }
    fed_args a = {0};
    int rc = parse(argc, argv, &a, create_usage);
    if (rc) return rc;
    long long rounds, quorum, deadline;
    if (!a.rounds || !a.quorum || !a.deadline || !dk_cli_parse_int(a.rounds, 1, 10000, &rounds) ||
        !dk_cli_parse_int(a.quorum, 1, 10000, &quorum) ||
        !dk_cli_parse_int(a.deadline, 1, 30LL * 24 * 3600, &deadline)) {
        fprintf(stderr,
                "dualkd: --rounds 1..10000, --quorum 1..10000 and --deadline seconds "
                "(1..2592000) are required\n%s",
                create_usage);
        return 2;
    }
    reply r = {0};
    long status = a.student ? create_with_upload(&a, rounds, quorum, deadline, &r)
                            : create_with_json(&a, rounds, quorum, deadline, &r);
    rc = status == 201 ? 0 : status < 0 ? 1 : print_problem("fed create", status, &r);
    if (!rc)
        printf("federation '%s' created: %lld rounds, quorum %lld, deadline %lld s; sites join "
               "with POST /v1/federation/%s/join\n",
               a.name, rounds, quorum, deadline, a.name);
    free(r.body);
    return rc;
}

static void print_rounds(json_t *s)
{
    printf("federation %s: %s, round %lld of %lld, quorum %lld, deadline %lld s, members %zu\n",
           json_string_value(json_object_get(s, "federation")),
           json_string_value(json_object_get(s, "state")),
           json_integer_value(json_object_get(s, "current_round")),
           json_integer_value(json_object_get(s, "rounds")),
           json_integer_value(json_object_get(s, "quorum")),
           json_integer_value(json_object_get(s, "deadline_seconds")),
           json_array_size(json_object_get(s, "members")));
    printf("%-6s %-12s %-9s %-8s %-8s %-10s %-12s %-12s\n", "round", "state", "reported", "refused",
           "missing", "mean_dice", "bytes_up", "bytes_down");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(s, "rounds_history"), i, r)
    {
        long long up = 0, down = 0;
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(r, "traffic"), k, t)
        {
            up += json_integer_value(json_object_get(t, "bytes_up"));
            down += json_integer_value(json_object_get(t, "bytes_down"));
        }
        json_t *dice = json_object_get(r, "mean_val_dice");
        char dice_text[32] = "-";
        if (json_is_number(dice))
            snprintf(dice_text, sizeof dice_text, "%.4f", json_number_value(dice));
        printf("%-6lld %-12s %-9zu %-8zu %-8zu %-10s %-12lld %-12lld\n",
               json_integer_value(json_object_get(r, "round")),
               json_string_value(json_object_get(r, "state")),
               json_array_size(json_object_get(r, "reported")),
               json_array_size(json_object_get(r, "refused")),
               json_array_size(json_object_get(r, "missing")), dice_text, up, down);
    }
}

int dk_cmd_fed_status(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("%s\nRounds of federation NAME on a running server (GET /v1/federation/NAME):\n"
               "state, updates reported, refused and missing, the sites' mean validation\n"
               "Dice, bytes up and down. --json prints the server's JSON as is.\n",
               status_usage);
        return 0;
    }
    fed_args a = {0};
    int rc = parse(argc, argv, &a, status_usage);
    if (rc) return rc;
    char url[2048];
    snprintf(url, sizeof url, "%s/v1/federation/%s", a.server, a.name);
    reply r = {0};
    long status = request(url, a.token, NULL, NULL, 0, &r);
    if (status != 200) {
        rc = status < 0 ? 1 : print_problem("fed status", status, &r);
        free(r.body);
        return rc;
    }
    json_t *s = json_loads(r.body, 0, NULL);
    if (a.json || !s)
        printf("%s\n", r.body);
    else
        print_rounds(s);
    json_decref(s);
    free(r.body);
    return 0;
}
