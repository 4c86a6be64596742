/* metrics.h: request counters for GET /metrics (Prometheus text format 0.0.4):
 * requests by route and status, a latency histogram per route, body bytes
 * sent, arrays served. One mutex; recording is a few additions. */
#ifndef DK_HTTPAPI_METRICS_H
#define DK_HTTPAPI_METRICS_H

#include <stdint.h>

typedef struct dk_metrics dk_metrics;

/* Caller frees with dk_metrics_free; NULL when out of memory. */
dk_metrics *dk_metrics_new(void);
void dk_metrics_free(dk_metrics *m);

/* One finished request: route index (router.h), status, seconds taken, body bytes sent. */
void dk_metrics_record(dk_metrics *m, int route, unsigned status, double seconds, uint64_t bytes);
void dk_metrics_array_served(dk_metrics *m);
/* Federation traffic of a site: update bodies received (up), global students sent
 * (down). Sites past DK_METRICS_FED_SITES are counted under site="other". */
#define DK_METRICS_FED_SITES 256
void dk_metrics_fed_bytes(dk_metrics *m, const char *site, uint64_t up, uint64_t down);

typedef struct dk_metrics_gauges {
    int stores_ready, stores_verifying, stores_failed;
    int in_flight;
    int jobs_queued, jobs_running;
} dk_metrics_gauges;

/* The exposition text. Caller frees with free(); NULL when out of memory. */
char *dk_metrics_render(dk_metrics *m, const dk_metrics_gauges *g);

#endif
