/* cmd_token.c: `dualkd token add|list|revoke`: the server's token file
 * (httpapi/tokens.h). A new token is printed once, on stdout; the file keeps
 * only its SHA-256. Changes hold an exclusive lock on "<file>.lock" so two
 * operators adding at once do not lose an entry. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "httpapi/tokens.h"

static const char usage_add[] =
    "usage: dualkd token add --site NAME --scope targets[,evaluate,distill,federation]\n"
    "                        [--profiles P,...] --tokens TOKENS.json\n";
static const char usage_list[] = "usage: dualkd token list --tokens TOKENS.json\n";
static const char usage_revoke[] = "usage: dualkd token revoke --tokens TOKENS.json ID|SITE\n";

/* --flag value pairs into the named slots; positional arguments into *positional. */
static int parse(int argc, char **argv, const char *usage, const char **names, const char **values,
                 int n, const char **positional)
{
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' && positional && !*positional) {
            *positional = argv[i];
            continue;
        }
        int k = 0;
        while (k < n && strcmp(argv[i], names[k]) != 0)
            k++;
        if (k == n || i + 1 >= argc) {
            fprintf(stderr, "dualkd: unknown option or missing value: '%s'\n%s", argv[i], usage);
            return 2;
        }
        values[k] = argv[++i];
    }
    return 0;
}

/* An exclusive lock held until the returned descriptor is closed; -1 on failure. */
static int lock_file(const char *tokens)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.lock", tokens);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) fprintf(stderr, "dualkd: cannot lock '%s'\n", path);
    return fd;
}

int dk_cmd_token_add(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("%s\nMakes a random token (256 bits from the OS) for a site, prints it once on\n"
               "stdout and stores only its SHA-256 in TOKENS.json (created if missing).\n"
               "--profiles limits the token to those profiles (default: all).\n"
               "Scopes: targets (read targets), evaluate, distill, federation.\n",
               usage_add);
        return 0;
    }
    const char *names[] = {"--site", "--scope", "--profiles", "--tokens"}, *v[4] = {0};
    if (parse(argc, argv, usage_add, names, v, 4, NULL)) return 2;
    if (!v[0] || !v[1] || !v[3]) {
        fprintf(stderr, "dualkd: token add needs --site, --scope and --tokens\n%s", usage_add);
        return 2;
    }
    dk_err err = {0};
    unsigned scopes;
    if (dk_scopes_parse(v[1], &scopes, &err)) {
        fprintf(stderr, "dualkd: --scope: %s\n%s", err.msg, usage_add);
        return 2;
    }
    int lock = lock_file(v[3]);
    if (lock < 0) return 1;
    dk_tokens t;
    char token[DK_TOKEN_CHARS];
    int rc = 0;
    if (dk_tokens_load(v[3], true, &t, &err) || dk_token_generate(token, &err) ||
        dk_tokens_add(&t, token, v[0], scopes, v[2], &err) || dk_tokens_save(v[3], &t, &err))
        rc = dk_cli_fail("token add", err.msg);
    else {
        const dk_token_entry *e = &t.entries[t.count - 1];
        printf("%s\n", token);
        fprintf(stderr, "token %s for site '%s' added to '%s'; it is shown only this once\n", e->id,
                e->site, v[3]);
    }
    memset(token, 0, sizeof token);
    dk_tokens_free(&t);
    close(lock);
    return rc;
}

int dk_cmd_token_list(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("%s\nLists the tokens (never the secrets): id, site, scopes, profiles, created,\n"
               "and whether revoked.\n",
               usage_list);
        return 0;
    }
    const char *names[] = {"--tokens"}, *v[1] = {0};
    if (parse(argc, argv, usage_list, names, v, 1, NULL)) return 2;
    if (!v[0]) {
        fprintf(stderr, "%s", usage_list);
        return 2;
    }
    dk_err err = {0};
    dk_tokens t;
    if (dk_tokens_load(v[0], false, &t, &err)) return dk_cli_fail("token list", err.msg);
    printf("%-12s  %-20s  %-30s  %-24s  %-20s  %s\n", "id", "site", "scopes", "profiles", "created",
           "state");
    for (int i = 0; i < t.count; i++) {
        const dk_token_entry *e = &t.entries[i];
        char scopes[64], profiles[1100] = "*";
        dk_scopes_format(e->scopes, scopes, sizeof scopes);
        for (int k = 0, n = 0; k < e->profile_count; k++)
            n += snprintf(profiles + n, sizeof profiles - (size_t)n, "%s%s", k ? "," : "",
                          e->profiles[k]);
        printf("%-12s  %-20s  %-30s  %-24s  %-20s  %s\n", e->id, e->site, scopes, profiles,
               e->created, e->revoked ? "revoked" : "active");
    }
    dk_tokens_free(&t);
    return 0;
}

int dk_cmd_token_revoke(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("%s\nRevokes the token with this id (see `token list`), or every token of this\n"
               "site. A running server notices the changed file on its next request.\n",
               usage_revoke);
        return 0;
    }
    const char *names[] = {"--tokens"}, *v[1] = {0}, *which = NULL;
    if (parse(argc, argv, usage_revoke, names, v, 1, &which)) return 2;
    if (!v[0] || !which) {
        fprintf(stderr, "%s", usage_revoke);
        return 2;
    }
    int lock = lock_file(v[0]);
    if (lock < 0) return 1;
    dk_err err = {0};
    dk_tokens t;
    int revoked = 0, rc = 0;
    if (dk_tokens_load(v[0], false, &t, &err) || dk_tokens_revoke(&t, which, &revoked, &err) ||
        dk_tokens_save(v[0], &t, &err))
        rc = dk_cli_fail("token revoke", err.msg);
    else
        fprintf(stderr, "revoked %d token%s matching '%s'\n", revoked, revoked == 1 ? "" : "s",
                which);
    dk_tokens_free(&t);
    close(lock);
    return rc;
}
