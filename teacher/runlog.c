/* runlog.c: the run log and config comparison shared by the trainers (runlog.h). */
#include "teacher/runlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static dk_status write_all(int fd, const char *text, const char *path, dk_err *err)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return dk_err_set(err, DK_EIO, "writing '%s': %s", path, strerror(errno));
        text += w;
        len -= (size_t)w;
    }
    return DK_OK;
}

dk_status dk_runlog_append(const char *path, json_t *line, dk_err *err)
{
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9));
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    dk_status st = !text    ? dk_err_set(err, DK_ENOMEM, "no memory for a run log line")
                   : fd < 0 ? dk_err_set(err, DK_EIO, "opening '%s': %s", path, strerror(errno))
                            : write_all(fd, text, path, err);
    if (st == DK_OK) st = write_all(fd, "\n", path, err);
    if (st == DK_OK && fsync(fd) != 0)
        st = dk_err_set(err, DK_EIO, "syncing '%s': %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    free(text);
    return st;
}

dk_status dk_runlog_rewrite(const char *path, json_t *history, dk_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    size_t i;
    json_t *line;
    json_array_foreach(history, i, line)
    {
        dk_status st = dk_runlog_append(tmp, line, err);
        if (st) return st;
    }
    if (json_array_size(history) == 0) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return dk_err_set(err, DK_EIO, "creating '%s': %s", tmp, strerror(errno));
        close(fd);
    }
    if (rename(tmp, path) != 0)
        return dk_err_set(err, DK_EIO, "renaming '%s': %s", tmp, strerror(errno));
    return DK_OK;
}

static bool diff_at(json_t *saved, json_t *now, const char *path, char *out, size_t cap)
{
    if (json_equal(saved, now)) return false;
    if (json_is_object(saved) && json_is_object(now)) {
        const char *key;
        json_t *value;
        json_object_foreach(now, key, value)
        {
            char child[128];
            snprintf(child, sizeof child, "%s%s%s", path, path[0] ? "." : "", key);
            json_t *other = json_object_get(saved, key);
            if (!other || diff_at(other, value, child, out, cap)) {
                if (!other) snprintf(out, cap, "%s", child);
                return true;
            }
        }
    }
    snprintf(out, cap, "%s", path[0] ? path : "(the whole config)");
    return true;
}


bool dk_json_first_diff(json_t *saved, json_t *now, char *out, size_t cap)
{
    return diff_at(saved, now, "", out, cap);
}
