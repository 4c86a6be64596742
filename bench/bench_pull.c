/* bench_pull.c: pull throughput (MB/s of .npy bodies) from a running `dualkd serve`.
 *
 *   bench_pull URL TOKEN PROFILE [repeats]
 *
 * Each repeat pulls the profile's every array into a fresh cache under /tmp (the
 * cold pull: model card, catalogue, every input, response, uncertainty and
 * feature target, each checked against its SHA-256 and renamed into place), then
 * pulls again into the same cache (the warm pull: metadata only). One line per
 * pull; the cache is removed afterwards. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "student/pull.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL TOKEN PROFILE [repeats]\n", argv[0]);
        return 2;
    }
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    dk_err err = {0};
    if (dk_fetch_global_init(&err)) return fprintf(stderr, "bench_pull: %s\n", err.msg), 1;
    for (int i = 0; i < repeats; i++) {
        char dir[] = "/tmp/bench_pull-XXXXXX", cmd[300];
        if (!mkdtemp(dir)) return 1;
        dk_pull_options o = {.server = argv[1],
                             .profile = argv[3],
                             .cache_dir = dir,
                             .fetch = dk_fetch_options_default()};
        o.fetch.token = argv[2];
        for (int warm = 0; warm < 2; warm++) {
            dk_pull_result r;
            if (dk_pull(&o, &r, &err)) return fprintf(stderr, "bench_pull: %s\n", err.msg), 1;
            printf("%s pull %d: %d samples, %d arrays downloaded, %d cached, %.1f MB in %.3f s: "
                   "%.1f MB/s\n",
                   warm ? "warm" : "cold", i + 1, r.samples, r.downloaded, r.cached, r.bytes / 1e6,
                   r.seconds, r.bytes / 1e6 / r.seconds);
        }
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) return 1;
    }
    dk_fetch_global_cleanup();
    return 0;
}
