/* metrics.c: counters and histograms behind one mutex, rendered as the
 * Prometheus text exposition format. */
#include "httpapi/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/router.h"

#define MAX_STATUSES 24 /* distinct status codes tracked per route */

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS ((int)(sizeof buckets / sizeof buckets[0]))

typedef struct route_stats {
    unsigned status[MAX_STATUSES];
    uint64_t count[MAX_STATUSES];
    int statuses;
    uint64_t le[BUCKETS]; /* non-cumulative; summed when rendered */
    uint64_t observations;
    double seconds;
} route_stats;

typedef struct fed_site {
    char site[64];
    uint64_t up, down;
} fed_site;

struct dk_metrics {
    pthread_mutex_t lock;
    route_stats routes[DK_ROUTE_COUNT];
    uint64_t bytes_sent, arrays_served;
    fed_site fed[DK_METRICS_FED_SITES + 1]; /* the last one is "other" */
    int fed_sites;
};

dk_metrics *dk_metrics_new(void)
{
    dk_metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

void dk_metrics_free(dk_metrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void dk_metrics_record(dk_metrics *m, int route, unsigned status, double seconds, uint64_t bytes)
{
    if (route < 0 || route >= DK_ROUTE_COUNT) route = DK_ROUTE_UNMATCHED;
    pthread_mutex_lock(&m->lock);
    route_stats *r = &m->routes[route];
    int k = 0;
    while (k < r->statuses && r->status[k] != status)
        k++;
    if (k == r->statuses && k < MAX_STATUSES) r->status[r->statuses++] = status;
    if (k < MAX_STATUSES) r->count[k]++;
    int b = 0;
    while (b < BUCKETS && seconds > buckets[b])
        b++;
    if (b < BUCKETS) r->le[b]++;
    r->observations++;
    r->seconds += seconds;
    m->bytes_sent += bytes;
    pthread_mutex_unlock(&m->lock);
}

void dk_metrics_array_served(dk_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->arrays_served++;
    pthread_mutex_unlock(&m->lock);
}

void dk_metrics_fed_bytes(dk_metrics *m, const char *site, uint64_t up, uint64_t down)
{
    pthread_mutex_lock(&m->lock);
    int k = 0;
    while (k < m->fed_sites && strcmp(m->fed[k].site, site) != 0)
        k++;
    if (k == m->fed_sites && k < DK_METRICS_FED_SITES)
        snprintf(m->fed[m->fed_sites++].site, sizeof m->fed[k].site, "%s", site);
    else if (k == m->fed_sites)
        k = DK_METRICS_FED_SITES;
    m->fed[k].up += up;
    m->fed[k].down += down;
    pthread_mutex_unlock(&m->lock);
}

/* A growing text buffer; on allocation failure it stays failed and the render returns NULL. */
typedef struct text {
    char *s;
    size_t n, cap;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)k + 1;
        char *s = realloc(t->s, cap);
        if (!s)
            t->failed = true;
        else
            t->s = s, t->cap = cap;
    }
}

static void render_requests(text *t, const dk_metrics *m)
{
    put(t, "# HELP dualkd_http_requests_total HTTP requests answered, by route and status.\n"
           "# TYPE dualkd_http_requests_total counter\n");
    for (int r = 0; r < DK_ROUTE_COUNT; r++)
        for (int k = 0; k < m->routes[r].statuses; k++)
            put(t, "dualkd_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                dk_route_name(r), m->routes[r].status[k],
                (unsigned long long)m->routes[r].count[k]);
    put(t, "# HELP dualkd_http_request_duration_seconds Time from request to response completed.\n"
           "# TYPE dualkd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < DK_ROUTE_COUNT; r++) {
        const route_stats *s = &m->routes[r];
        if (!s->observations) continue;
        uint64_t cumulative = 0;
        for (int b = 0; b < BUCKETS; b++) {
            cumulative += s->le[b];
            put(t, "dualkd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                dk_route_name(r), buckets[b], (unsigned long long)cumulative);
        }
        put(t, "dualkd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
            dk_route_name(r), (unsigned long long)s->observations);
        put(t, "dualkd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", dk_route_name(r),
            s->seconds);
        put(t, "dualkd_http_request_duration_seconds_count{route=\"%s\"} %llu\n", dk_route_name(r),
            (unsigned long long)s->observations);
    }
}

/* Site names are token site names ([A-Za-z0-9._-]): safe as label values. */
static void render_fed(text *t, const dk_metrics *m)
{
    put(t, "# HELP dualkd_federation_bytes_total Federation traffic per site: update bodies "
           "received (up), global students sent (down).\n"
           "# TYPE dualkd_federation_bytes_total counter\n");
    for (int k = 0; k <= DK_METRICS_FED_SITES; k++) {
        const fed_site *f = &m->fed[k];
        if (k == DK_METRICS_FED_SITES ? !(f->up | f->down) : k >= m->fed_sites) continue;
        const char *site = k == DK_METRICS_FED_SITES ? "other" : f->site;
        put(t,
            "dualkd_federation_bytes_total{site=\"%s\",direction=\"up\"} %llu\n"
            "dualkd_federation_bytes_total{site=\"%s\",direction=\"down\"} %llu\n",
            site, (unsigned long long)f->up, site, (unsigned long long)f->down);
    }
}

char *dk_metrics_render(dk_metrics *m, const dk_metrics_gauges *g)
{
    text t = {.s = malloc(4096), .cap = 4096};
    if (!t.s) return NULL;
    pthread_mutex_lock(&m->lock);
    render_requests(&t, m);
    put(&t,
        "# HELP dualkd_http_response_bytes_total Response body bytes sent.\n"
        "# TYPE dualkd_http_response_bytes_total counter\n"
        "dualkd_http_response_bytes_total %llu\n"
        "# HELP dualkd_arrays_served_total Target arrays sent (200 and 206).\n"
        "# TYPE dualkd_arrays_served_total counter\n"
        "dualkd_arrays_served_total %llu\n",
        (unsigned long long)m->bytes_sent, (unsigned long long)m->arrays_served);
    render_fed(&t, m);
    pthread_mutex_unlock(&m->lock);
    put(&t,
        "# HELP dualkd_stores Target stores by state.\n"
        "# TYPE dualkd_stores gauge\n"
        "dualkd_stores{state=\"ready\"} %d\ndualkd_stores{state=\"verifying\"} %d\n"
        "dualkd_stores{state=\"failed\"} %d\n"
        "# HELP dualkd_http_requests_in_flight Requests begun and not yet completed.\n"
        "# TYPE dualkd_http_requests_in_flight gauge\n"
        "dualkd_http_requests_in_flight %d\n"
        "# HELP dualkd_jobs Precompute jobs by state.\n"
        "# TYPE dualkd_jobs gauge\n"
        "dualkd_jobs{state=\"queued\"} %d\ndualkd_jobs{state=\"running\"} %d\n",
        g->stores_ready, g->stores_verifying, g->stores_failed, g->in_flight, g->jobs_queued,
        g->jobs_running);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
