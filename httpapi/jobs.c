/* jobs.c: the job table (precompute and distill), its records on disk, and
 * the worker thread that runs one `dualkd teacher precompute` child at a time. */
#define _GNU_SOURCE
#include "httpapi/jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct dk_jobs {
    char store_dir[4096], jobs_dir[4200], binary[4096], teacher[4096], data[4096];
    int queue_max;
    dk_status (*on_finished)(const char *profile, void *ctx, dk_err *err);
    void *ctx;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    dk_job_info jobs[DK_JOBS_MAX];
    int count;
    pid_t child;          /* the running precompute, 0 when none */
    int runner_lock;      /* flock'ed descriptor while this process runs the jobs, else -1 */
    atomic_bool stopping; /* read by the worker between steps without the lock */
    pthread_t worker;
};

static const char *const state_names[] = {"queued", "running", "done", "failed"};
const char *dk_job_state_name(dk_job_state s)
{
    return state_names[s];
}

/* ISO 8601 UTC with milliseconds: jobs are run in the order of these stamps. */
static void now_iso(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    char whole[24];
    strftime(whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts.tv_sec, &tm));
    snprintf(out, 32, "%s.%03dZ", whole, (int)(ts.tv_nsec / 1000000));
}

static double monotonic(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

dk_status dk_jobs_write_file(const char *path, const char *text, dk_err *err)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return dk_err_set(err, DK_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return dk_err_set(err, DK_EIO, "cannot write '%s': %s", path, strerror(errno));
    }
    return DK_OK;
}

static void record_path(const dk_jobs *j, const char *id, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s%s", j->jobs_dir, id, suffix);
}

/* Persist one job's record; called with the lock held. */
static dk_status persist(const dk_jobs *j, const dk_job_info *job, dk_err *err)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "id", job->id,
                          "kind", job->kind, "profile", job->profile, "site", job->site, "state",
                          dk_job_state_name(job->state), "done", job->done, "total", job->total,
                          "error", job->error, "created", job->created, "started", job->started,
                          "finished", job->finished);
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!text) return dk_err_set(err, DK_ENOMEM, "out of memory");
    char path[4400];
    record_path(j, job->id, ".json", path, sizeof path);
    dk_status st = dk_jobs_write_file(path, text, err);
    free(text);
    return st;
}

static bool load_record(const char *path, dk_job_info *job)
{
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    const char *id, *profile, *site, *state, *error, *created, *started, *finished;
    int done, total;
    bool ok = o && !json_unpack(o, "{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "id", &id,
                                "profile", &profile, "site", &site, "state", &state, "done", &done,
                                "total", &total, "error", &error, "created", &created, "started",
                                &started, "finished", &finished);
    if (ok) {
        memset(job, 0, sizeof *job);
        snprintf(job->id, sizeof job->id, "%s", id);
        const char *kind =
            json_string_value(json_object_get(o, "kind")); /* absent before distill */
        snprintf(job->kind, sizeof job->kind, "%s",
                 kind && !strcmp(kind, "distill") ? "distill" : "precompute");
        snprintf(job->profile, sizeof job->profile, "%s", profile);
        snprintf(job->site, sizeof job->site, "%s", site);
        snprintf(job->error, sizeof job->error, "%s", error);
        snprintf(job->created, sizeof job->created, "%s", created);
        snprintf(job->started, sizeof job->started, "%s", started);
        snprintf(job->finished, sizeof job->finished, "%s", finished);
        job->done = done, job->total = total, job->eta_seconds = -1;
        job->state = DK_JOB_QUEUED; /* queued and interrupted running jobs run (again) */
        if (!strcmp(state, "done")) job->state = DK_JOB_DONE;
        if (!strcmp(state, "failed")) job->state = DK_JOB_FAILED;
        if (job->state == DK_JOB_QUEUED) job->started[0] = '\0';
    }
    json_decref(o);
    return ok;
}

static int by_created(const void *a, const void *b)
{
    const dk_job_info *x = a, *y = b;
    int c = strcmp(x->created, y->created);
    return c ? c : strcmp(x->id, y->id);
}

static dk_status load_all(dk_jobs *j, dk_err *err)
{
    if (mkdir(j->jobs_dir, 0755) != 0 && errno != EEXIST)
        return dk_err_set(err, DK_EIO, "cannot create '%s': %s", j->jobs_dir, strerror(errno));
    DIR *d = opendir(j->jobs_dir);
    if (!d) return dk_err_set(err, DK_EIO, "cannot read '%s'", j->jobs_dir);
    struct dirent *e;
    while ((e = readdir(d)) && j->count < DK_JOBS_MAX) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") || strstr(e->d_name, ".profile.json") ||
            strstr(e->d_name, ".tmp-"))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", j->jobs_dir, e->d_name);
        if (load_record(path, &j->jobs[j->count])) j->count++;
    }
    closedir(d);
    qsort(j->jobs, (size_t)j->count, sizeof j->jobs[0], by_created);
    return DK_OK;
}

/* Progress from one line of the child's stderr ("sample 3/8 id: 1.2 s"). */
static void progress_line(dk_jobs *j, dk_job_info *job, const char *line, double t0, int *computed)
{
    int done, total;
    if (sscanf(line, "sample %d/%d", &done, &total) != 2) return;
    pthread_mutex_lock(&j->lock);
    job->done = done, job->total = total;
    if (!strstr(line, "kept from the interrupted run")) (*computed)++;
    if (*computed > 0) job->eta_seconds = (monotonic() - t0) / *computed * (total - done);
    pthread_mutex_unlock(&j->lock);
}

static bool is_distill(const dk_job_info *job)
{
    return strcmp(job->kind, "distill") == 0;
}

/* Run the precompute child for job; DK_OK when it exited 0. A distill job
 * reads its own one-volume dataset and writes its store in its directory. */
static dk_status run_child(dk_jobs *j, dk_job_info *job, dk_err *err)
{
    char profile_file[4400], partial[4400], dir[4300], data[4400];
    dk_jobs_dir_of(j, job->id, dir, sizeof dir);
    bool distill = is_distill(job);
    if (distill) {
        snprintf(profile_file, sizeof profile_file, "%s/profile.json", dir);
        snprintf(data, sizeof data, "%s/input.h5", dir);
    } else {
        record_path(j, job->id, ".profile.json", profile_file, sizeof profile_file);
        snprintf(data, sizeof data, "%s", j->data);
    }
    const char *out_dir = distill ? dir : j->store_dir;
    snprintf(partial, sizeof partial, "%s/%s.h5.partial", out_dir, job->profile);
    struct stat sb;
    bool resume = stat(partial, &sb) == 0 && S_ISDIR(sb.st_mode);
    char *argv[] = {j->binary,
                    "teacher",
                    "precompute",
                    "--teacher",
                    j->teacher,
                    "--data",
                    data,
                    "--profile",
                    profile_file,
                    "--out",
                    (char *)out_dir,
                    "--threads",
                    "1",
                    resume ? "--resume" : NULL,
                    NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return dk_err_set(err, DK_EIO, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    /* The server blocks SIGTERM/SIGINT (sigwait) and ignores SIGPIPE; a child
     * must not inherit that, or stopping the server could not stop it. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM), sigaddset(&defaults, SIGINT), sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    pthread_mutex_lock(&j->lock);
    int rc = j->stopping ? ECANCELED : posix_spawn(&pid, j->binary, &fa, &attr, argv, environ);
    if (!rc) j->child = pid;
    pthread_mutex_unlock(&j->lock);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        return dk_err_set(err, DK_EIO, "cannot run '%s': %s", j->binary, strerror(rc));
    }
    FILE *f = fdopen(fds[0], "r");
    char line[1024], last[512] = "";
    double t0 = monotonic();
    int computed = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "sample ", 7) == 0)
            progress_line(j, job, line, t0, &computed);
        else if (line[0])
            snprintf(last, sizeof last, "%.500s", line);
    }
    if (f) fclose(f);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&j->lock);
    j->child = 0;
    pthread_mutex_unlock(&j->lock);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return DK_OK;
    return dk_err_set(err, DK_EIO, "precompute failed: %s", last[0] ? last : "no message");
}

/* The first queued job, or NULL. With the lock held. */
static dk_job_info *next_queued(dk_jobs *j)
{
    for (int i = 0; i < j->count; i++)
        if (j->jobs[i].state == DK_JOB_QUEUED) return &j->jobs[i];
    return NULL;
}

/* One job runner per store directory, also across processes (replicas, or a
 * restart while the old server still drains): wait for the runner lock,
 * checking for a stop once a second. With the lock held. */
static bool take_runner_lock(dk_jobs *j)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/.runner.lock", j->jobs_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    while (!j->stopping) {
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            j->runner_lock = fd;
            return true;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&j->wake, &j->lock, &until);
        if (fd < 0) fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd >= 0) close(fd);
    return false;
}

static void *work(void *arg)
{
    dk_jobs *j = arg;
    pthread_mutex_lock(&j->lock);
    if (!take_runner_lock(j)) {
        pthread_mutex_unlock(&j->lock);
        return NULL;
    }
    /* the records as the previous runner left them (it may have finished some) */
    j->count = 0;
    load_all(j, NULL);
    while (!j->stopping) {
        dk_job_info *job = next_queued(j);
        if (!job) {
            pthread_cond_wait(&j->wake, &j->lock);
            continue;
        }
        job->state = DK_JOB_RUNNING, job->done = 0, job->total = 0, job->eta_seconds = -1;
        now_iso(job->started);
        persist(j, job, NULL);
        pthread_mutex_unlock(&j->lock);
        dk_err err = {0};
        dk_status st = run_child(j, job, &err);
        if (!st && !j->stopping && !is_distill(job))
            st = j->on_finished(job->profile, j->ctx, &err);
        pthread_mutex_lock(&j->lock);
        if (j->stopping && st) { /* stopped, not failed: run it again after a restart */
            job->state = DK_JOB_QUEUED, job->started[0] = '\0';
        } else {
            job->state = st ? DK_JOB_FAILED : DK_JOB_DONE;
            job->eta_seconds = st ? -1 : 0;
            snprintf(job->error, sizeof job->error, "%s", st ? err.msg : "");
            now_iso(job->finished);
        }
        persist(j, job, NULL);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

dk_jobs *dk_jobs_open(const dk_jobs_config *c, dk_err *err)
{
    dk_jobs *j = calloc(1, sizeof *j);
    if (!j) {
        dk_err_set(err, DK_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(j->store_dir, sizeof j->store_dir, "%s", c->store_dir);
    snprintf(j->jobs_dir, sizeof j->jobs_dir, "%s/jobs", c->store_dir);
    snprintf(j->binary, sizeof j->binary, "%s", c->binary);
    snprintf(j->teacher, sizeof j->teacher, "%s", c->teacher);
    snprintf(j->data, sizeof j->data, "%s", c->data);
    j->queue_max = c->queue_max > 0 ? c->queue_max : 8;
    j->on_finished = c->on_finished, j->ctx = c->ctx;
    j->runner_lock = -1;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->wake, NULL);
    dk_status st = load_all(j, err);
    if (!st && pthread_create(&j->worker, NULL, work, j) != 0)
        st = dk_err_set(err, DK_EIO, "cannot start the job worker");
    if (st) {
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->wake);
        free(j);
        return NULL;
    }
    return j;
}

void dk_jobs_close(dk_jobs *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    if (j->child > 0) kill(j->child, SIGTERM); /* its finished samples stay in the partial store */
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->lock);
    pthread_join(j->worker, NULL);
    if (j->runner_lock >= 0) close(j->runner_lock);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->wake);
    free(j);
}

void dk_jobs_new_id(char out[20])
{
    unsigned char b[8];
    if (RAND_bytes(b, sizeof b) != 1) { /* ids need to be unique, not secret */
        uint64_t t = (uint64_t)(monotonic() * 1e9);
        memcpy(b, &t, sizeof b);
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void dk_jobs_dir_of(const dk_jobs *j, const char *id, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s.d", j->jobs_dir, id);
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    remove(path); /* best effort: keep removing the rest */
    return 0;
}

void dk_jobs_remove_dir(const char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Make room in a full table: drop the oldest finished distill job (its record
 * and its directory). With the lock held. */
static void evict_finished_distill(dk_jobs *j)
{
    for (int i = 0; i < j->count; i++) {
        dk_job_info *job = &j->jobs[i];
        if (!is_distill(job) || (job->state != DK_JOB_DONE && job->state != DK_JOB_FAILED))
            continue;
        char path[4400];
        record_path(j, job->id, ".json", path, sizeof path);
        unlink(path);
        dk_jobs_dir_of(j, job->id, path, sizeof path);
        dk_jobs_remove_dir(path);
        memmove(job, job + 1, sizeof *job * (size_t)(j->count - i - 1));
        j->count--;
        return;
    }
}

dk_status dk_jobs_submit_distill(dk_jobs *j, const char *id, const char *profile, const char *site,
                                 dk_job_info *out, dk_err *err)
{
    pthread_mutex_lock(&j->lock);
    int queued = 0;
    for (int i = 0; i < j->count; i++)
        queued += j->jobs[i].state == DK_JOB_QUEUED;
    dk_status st = DK_OK;
    if (queued >= j->queue_max)
        st = dk_err_set(err, DK_ELIMIT, "the teacher's job queue is full (%d queued)", queued);
    if (!st && j->count >= DK_JOBS_MAX) evict_finished_distill(j);
    if (!st && j->count >= DK_JOBS_MAX)
        st = dk_err_set(err, DK_ELIMIT, "the server's %d job records are all queued or running",
                        DK_JOBS_MAX);
    dk_job_info *job = &j->jobs[j->count];
    if (!st) {
        memset(job, 0, sizeof *job);
        snprintf(job->id, sizeof job->id, "%s", id);
        snprintf(job->kind, sizeof job->kind, "distill");
        snprintf(job->profile, sizeof job->profile, "%s", profile);
        snprintf(job->site, sizeof job->site, "%s", site);
        job->state = DK_JOB_QUEUED, job->eta_seconds = -1;
        now_iso(job->created);
        st = persist(j, job, err);
    }
    if (!st) {
        *out = *job;
        j->count++;
        pthread_cond_signal(&j->wake);
    }
    pthread_mutex_unlock(&j->lock);
    return st;
}

dk_status dk_jobs_submit(dk_jobs *j, const char *profile, const char *profile_json,
                         const char *site, dk_job_info *out, dk_err *err)
{
    pthread_mutex_lock(&j->lock);
    int queued = 0;
    dk_status st = DK_OK;
    for (int i = 0; i < j->count; i++) {
        dk_job_info *job = &j->jobs[i];
        queued += job->state == DK_JOB_QUEUED;
        if ((job->state == DK_JOB_QUEUED || job->state == DK_JOB_RUNNING) && !is_distill(job) &&
            strcmp(job->profile, profile) == 0) {
            *out = *job;
            st =
                dk_err_set(err, DK_EMISMATCH, "profile '%s' is already being precomputed by job %s",
                           profile, job->id);
        }
    }
    if (!st && queued >= j->queue_max)
        st = dk_err_set(err, DK_ELIMIT, "the precompute queue is full (%d queued)", queued);
    if (!st && j->count >= DK_JOBS_MAX) evict_finished_distill(j);
    if (!st && j->count >= DK_JOBS_MAX)
        st = dk_err_set(err, DK_ELIMIT,
                        "the server keeps at most %d job records; an operator can remove finished "
                        "ones from '%s'",
                        DK_JOBS_MAX, j->jobs_dir);
    dk_job_info *job = &j->jobs[j->count];
    if (!st) {
        memset(job, 0, sizeof *job);
        dk_jobs_new_id(job->id);
        snprintf(job->kind, sizeof job->kind, "precompute");
        snprintf(job->profile, sizeof job->profile, "%s", profile);
        snprintf(job->site, sizeof job->site, "%s", site);
        job->state = DK_JOB_QUEUED, job->eta_seconds = -1;
        now_iso(job->created);
        char path[4400];
        record_path(j, job->id, ".profile.json", path, sizeof path);
        st = dk_jobs_write_file(path, profile_json, err);
        if (!st) st = persist(j, job, err);
    }
    if (!st) {
        *out = *job;
        j->count++;
        pthread_cond_signal(&j->wake);
    }
    pthread_mutex_unlock(&j->lock);
    return st;
}

bool dk_jobs_get(dk_jobs *j, const char *id, dk_job_info *out)
{
    bool found = false;
    pthread_mutex_lock(&j->lock);
    for (int i = 0; i < j->count && !found; i++)
        if (strcmp(j->jobs[i].id, id) == 0) *out = j->jobs[i], found = true;
    pthread_mutex_unlock(&j->lock);
    return found;
}

void dk_jobs_counts(dk_jobs *j, int *queued, int *running)
{
    *queued = *running = 0;
    pthread_mutex_lock(&j->lock);
    for (int i = 0; i < j->count; i++) {
        *queued += j->jobs[i].state == DK_JOB_QUEUED;
        *running += j->jobs[i].state == DK_JOB_RUNNING;
    }
    pthread_mutex_unlock(&j->lock);
}

bool dk_jobs_queue_full(dk_jobs *j)
{
    int queued, running;
    dk_jobs_counts(j, &queued, &running);
    return queued >= j->queue_max;
}
