/* fed_service.c: the coordinator's life inside the server (fed_service.h):
 * open under the HDF5 lock, an exclusive flock on <dir>/coordinator.lock, and
 * the ticker thread. */
#define _GNU_SOURCE
#include "httpapi/fed_service.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "httpapi/stores.h"

struct dk_fed_service {
    char dir[DK_FED_PATH_MAX];
    char initial[4096];
    bool has_initial;
    int lock_fd;
    dk_fed_store *store;
    dk_fed_coord *coord;
    double tick_seconds;
    pthread_t ticker;
    bool ticker_started, stopping;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
};

int64_t dk_fed_now(void)
{
    return (int64_t)time(NULL);
}

dk_fed_coord *dk_fed_service_coord(dk_fed_service *s)
{
    return s->coord;
}

const char *dk_fed_service_dir(const dk_fed_service *s)
{
    return s->dir;
}

const char *dk_fed_service_initial(const dk_fed_service *s)
{
    return s->has_initial ? s->initial : NULL;
}

dk_status dk_fed_service_tick_all(dk_fed_service *s, int64_t now, dk_err *err)
{
    DIR *d = opendir(s->dir);
    if (!d) return dk_err_set(err, DK_EIO, "cannot list '%s': %s", s->dir, strerror(errno));
    dk_status first = DK_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[DK_FED_PATH_MAX + 80];
        struct stat st;
        snprintf(path, sizeof path, "%s/%.70s", s->dir, e->d_name);
        if (!dk_fed_name_valid(e->d_name) || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        dk_err why = {0};
        dk_h5_lock();
        dk_status rc = dk_fed_tick(s->coord, e->d_name, now, &why);
        dk_h5_unlock();
        if (rc != DK_OK && rc != DK_ENOTFOUND && first == DK_OK) /* a crashed create's folder */
            first = dk_err_set(err, rc, "federation '%s': %s", e->d_name, why.msg);
    }
    closedir(d);
    return first;
}

/* Failures are retried on the next pass; the routes report them to whoever asks. */
static void *ticker_main(void *arg)
{
    dk_fed_service *s = arg;
    pthread_mutex_lock(&s->stop_lock);
    while (!s->stopping) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        double next = (double)t.tv_nsec * 1e-9 + s->tick_seconds;
        t.tv_sec += (time_t)next;
        t.tv_nsec = (long)((next - (double)(time_t)next) * 1e9);
        pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &t);
        if (s->stopping) break;
        pthread_mutex_unlock(&s->stop_lock);
        dk_fed_service_tick_all(s, dk_fed_now(), NULL);
        pthread_mutex_lock(&s->stop_lock);
    }
    pthread_mutex_unlock(&s->stop_lock);
    return NULL;
}

static dk_status lock_dir(dk_fed_service *s, dk_err *err)
{
    char path[DK_FED_PATH_MAX + 32];
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
        return dk_err_set(err, DK_EIO, "cannot create '%s': %s", s->dir, strerror(errno));
    snprintf(path, sizeof path, "%s/coordinator.lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0)
        return dk_err_set(err, DK_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return dk_err_set(err, DK_EIO,
                          "'%s' is held by another process: one coordinator per directory "
                          "(is another `dualkd serve` using it?)",
                          path);
    return DK_OK;
}

static dk_status open_parts(dk_fed_service *s, const dk_fed_service_config *c, dk_err *err)
{
    if (strlen(c->dir) >= sizeof s->dir - 64)
        return dk_err_set(err, DK_ELIMIT, "--federation '%.80s...' is too long", c->dir);
    snprintf(s->dir, sizeof s->dir, "%s", c->dir);
    if (c->initial_student) {
        snprintf(s->initial, sizeof s->initial, "%s", c->initial_student);
        s->has_initial = true;
    }
    s->tick_seconds = c->tick_seconds > 0 ? c->tick_seconds : 1.0;
    dk_status st = lock_dir(s, err);
    char db[DK_FED_PATH_MAX + 32];
    snprintf(db, sizeof db, "%s/federation.db", s->dir);
    if (st == DK_OK) st = dk_fed_store_open_sqlite(db, &s->store, err);
    if (st == DK_OK) {
        dk_h5_lock();
        st = dk_fed_coord_open(s->dir, s->store, dk_fed_now(), &s->coord, err);
        dk_h5_unlock();
    }
    if (st == DK_OK && pthread_create(&s->ticker, NULL, ticker_main, s) != 0)
        st = dk_err_set(err, DK_ENOMEM, "cannot start the federation ticker thread");
    if (st == DK_OK) s->ticker_started = true;
    return st;
}

dk_fed_service *dk_fed_service_open(const dk_fed_service_config *c, dk_err *err)
{
    dk_fed_service *s = calloc(1, sizeof *s);
    if (!s) {
        dk_err_set(err, DK_ENOMEM, "out of memory");
        return NULL;
    }
    s->lock_fd = -1;
    pthread_mutex_init(&s->stop_lock, NULL);
    pthread_cond_init(&s->stop_cond, NULL);
    if (open_parts(s, c, err) != DK_OK) {
        dk_fed_service_close(s);
        return NULL;
    }
    return s;
}

void dk_fed_service_close(dk_fed_service *s)
{
    if (!s) return;
    if (s->ticker_started) {
        pthread_mutex_lock(&s->stop_lock);
        s->stopping = true;
        pthread_cond_signal(&s->stop_cond);
        pthread_mutex_unlock(&s->stop_lock);
        pthread_join(s->ticker, NULL);
    }
    dk_fed_coord_close(s->coord);
    dk_fed_store_close(s->store);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    pthread_cond_destroy(&s->stop_cond);
    pthread_mutex_destroy(&s->stop_lock);
    free(s);
}
