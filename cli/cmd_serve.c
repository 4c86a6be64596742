/* cmd_serve.c: `dualkd serve`: the HTTP API (docs/api.md) until SIGTERM or
 * SIGINT, then a graceful stop: no new connections, requests in flight
 * finish (up to --grace seconds), exit 0. The server is httpapi/server.c. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "httpapi/server.h"

static const char usage[] =
    "usage: dualkd serve --teacher TEACHER.h5 --store DIR --tokens TOKENS.json [--data REPO.h5]\n"
    "                    [--listen 127.0.0.1:8080] [--threads N] [--grace SECONDS]\n"
    "                    [--max-body BYTES] [--max-upload BYTES] [--max-connections N]\n"
    "                    [--timeout SECONDS] [--job-queue N] [--rate R] [--burst B]\n"
    "                    [--federation DIR [--fed-student STUDENT.h5] [--fed-tick SECONDS]\n"
    "                     [--fed-max-update BYTES]]\n";

static void print_help(void)
{
    printf("%s\n"
           "Serves the teacher's model card and the target stores in DIR (every\n"
           "<profile>.h5 written by `dualkd teacher precompute`) over HTTP: JSON metadata,\n"
           "arrays as NumPy .npy, errors as application/problem+json. Every /v1 route needs\n"
           "a token from TOKENS.json (`dualkd token add`). Stores are verified in the\n"
           "background after start; /readyz answers 200 once all are.\n\n"
           "  --teacher FILE   teacher checkpoint (`dualkd teacher train`)\n"
           "  --store DIR      directory of target stores\n"
           "  --tokens FILE    token file; re-read when it changes (revocation needs no restart)\n"
           "  --data FILE      repository dataset: enables POST /v1/profiles, whose precompute\n"
           "                   runs in the background (records in DIR/jobs/, resumed on restart)\n"
           "  --listen H:P     IPv4 address and port (default 127.0.0.1:8080; port 0 = any free)\n"
           "  --threads N      polling threads (default 2: one per core; see docs/api.md)\n"
           "  --grace S        seconds to let requests in flight finish on SIGTERM (default 30)\n"
           "  --max-body B     request body bytes; larger is 413 (default 1048576)\n"
           "  --max-upload B   body bytes of POST /v1/distill, /v1/evaluate (default 256 MiB)\n"
           "  --job-queue N    teacher jobs queued at once (default 8); more is 429 or 503\n"
           "  --max-connections N  open connections (default 256)\n"
           "  --timeout S      seconds an idle connection is kept (default 60)\n"
           "  --rate R         requests per second per token on /v1, 0 = unlimited (default 20)\n"
           "  --burst B        requests a token may make at once above the rate (default 40)\n"
           "  --federation DIR run the federation coordinator (/v1/federation, docs/federation.md)\n"
           "                   with its state in DIR (SQLite + checkpoints; one server per DIR)\n"
           "  --fed-student F  the initial student checkpoint POST /v1/federation starts from\n"
           "  --fed-tick S     seconds between deadline checks (default 1)\n"
           "  --fed-max-update B  update body bytes (default 268435456)\n\n"
           "Prints 'listening on http://H:P' to stderr once ready to accept connections.\n",
           usage);
}

int dk_cmd_serve(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    dk_server_config c = {.listen = "127.0.0.1:8080",
                          .version = DUALKD_VERSION " (" DUALKD_GIT ")"};
    double grace = 30;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v) {
            fprintf(stderr, "dualkd: unknown option or missing value: '%s'\n%s", f, usage);
            return 2;
        }
        i++;
        if (!strcmp(f, "--teacher"))
            c.teacher_path = v;
        else if (!strcmp(f, "--store"))
            c.store_dir = v;
        else if (!strcmp(f, "--tokens"))
            c.tokens_path = v;
        else if (!strcmp(f, "--data"))
            c.data_path = v;
        else if (!strcmp(f, "--federation"))
            c.federation_dir = v;
        else if (!strcmp(f, "--fed-student"))
            c.fed_student = v;
        else if (!strcmp(f, "--listen"))
            c.listen = v;
        else if (!strcmp(f, "--threads")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 64) {
                fprintf(stderr, "dualkd: --threads '%s': expected 1..64\n%s", v, usage);
                return 2;
            }
            c.threads = (int)n;
        } else if (!strcmp(f, "--max-body") || !strcmp(f, "--max-upload") ||
                   !strcmp(f, "--job-queue") || !strcmp(f, "--max-connections") ||
                   !strcmp(f, "--timeout") || !strcmp(f, "--rate") || !strcmp(f, "--burst") ||
                   !strcmp(f, "--fed-tick") || !strcmp(f, "--fed-max-update")) {
            double x = strtod(v, &end);
            bool rate = !strcmp(f, "--rate");
            if (*end || !(x >= (rate ? 0 : 1) && x <= 1e12)) {
                fprintf(stderr, "dualkd: %s '%s': expected a number >= %d\n%s", f, v, rate ? 0 : 1,
                        usage);
                return 2;
            }
            if (!strcmp(f, "--max-body"))
                c.max_body = (unsigned long)x;
            else if (!strcmp(f, "--max-upload"))
                c.max_upload = (unsigned long)x;
            else if (!strcmp(f, "--job-queue"))
                c.job_queue = x > 256 ? 256 : (int)x;
            else if (!strcmp(f, "--max-connections"))
                c.max_connections = x > 65536 ? 65536 : (unsigned)x;
            else if (!strcmp(f, "--timeout"))
                c.timeout = x > 86400 ? 86400 : (unsigned)x;
            else if (!strcmp(f, "--fed-tick"))
                c.fed_tick_seconds = x;
            else if (!strcmp(f, "--fed-max-update"))
                c.fed_max_update = (unsigned long)x;
            else if (rate)
                c.rate = x > 0 ? x : -1;
            else
                c.burst = x;
        } else if (!strcmp(f, "--grace")) {
            grace = strtod(v, &end);
            if (*end || !(grace >= 0 && grace <= 3600)) {
                fprintf(stderr, "dualkd: --grace '%s': expected seconds in [0, 3600]\n%s", v,
                        usage);
                return 2;
            }
        } else {
            fprintf(stderr, "dualkd: unknown option '%s'\n%s", f, usage);
            return 2;
        }
    }
    if (!c.teacher_path || !c.store_dir || !c.tokens_path) {
        fprintf(stderr, "dualkd: serve needs --teacher, --store and --tokens\n%s", usage);
        return 2;
    }
    /* Block the stop signals before any server thread exists, so every thread
     * inherits the mask and only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* jobs run this very binary as `dualkd teacher precompute` */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) self[n] = '\0', c.binary = self;
    dk_err err = {0};
    dk_server *s = dk_server_start(&c, &err);
    if (!s) return dk_cli_fail("serve", err.msg);
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)strcspn(c.listen, ":"), c.listen);
    fprintf(stderr, "dualkd serve: listening on http://%s:%d (%d threads)\n", host,
            dk_server_port(s), c.threads ? c.threads : 2);
    fflush(stderr);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    fprintf(stderr, "dualkd serve: %s: no new connections; finishing requests in flight\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    dk_server_stop(s, grace);
    fprintf(stderr, "dualkd serve: stopped\n");
    return 0;
}
