/* fed_global16.c: the float16 .npz of a global student, deflated (fed_global16.h). The
 * file is derived from the float32 checkpoint, so two requests racing to make it
 * write the same bytes and the rename of either is right. */
#define _GNU_SOURCE
#include "httpapi/fed_global16.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/npz.h"
#include "distill/half.h"
#include "httpapi/fed_model.h"

static dk_status derive_path(const char *h5_path, char *npz_path, size_t cap, dk_err *err)
{
    size_t n = strlen(h5_path);
    if (n < 3 || strcmp(h5_path + n - 3, ".h5") != 0 || n + 13 >= cap)
        return dk_err_set(err, DK_EINVAL, "'%s' is not a global checkpoint path", h5_path);
    snprintf(npz_path, cap, "%.*s.f2-deflate.npz", (int)(n - 3), h5_path);
    return DK_OK;
}

/* One float16 array per parameter of m, in file order; entries own their data. */
static dk_status to_half(const dk_fed_model *m, dk_npz_entry *e, dk_err *err)
{
    for (int i = 0; i < m->count; i++) {
        const dk_tensor *t = &m->params[i].value;
        size_t numel = dk_tensor_numel(t);
        uint16_t *h = malloc(numel * sizeof *h);
        if (!h) return dk_err_set(err, DK_ENOMEM, "no memory for the float16 global");
        for (size_t k = 0; k < numel; k++)
            h[k] = dk_half_from_float(t->data[k]);
        snprintf(e[i].name, sizeof e[i].name, "%s", m->params[i].name);
        e[i].array = (dk_npy_array){.dtype = DK_NPY_F2, .rank = 5, .numel = numel, .data = h,
                                    .shape = {(size_t)t->n, (size_t)t->c, (size_t)t->d,
                                              (size_t)t->h, (size_t)t->w}};
    }
    return DK_OK;
}

static dk_status write_durably(const char *path, const void *buf, size_t len, dk_err *err)
{
    char tmp[4200], dir[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return dk_err_set(err, DK_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    bool ok = done == len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        if (ok) saved = errno;
        unlink(tmp);
        return dk_err_set(err, DK_EIO, "cannot write '%s': %s", path, strerror(saved));
    }
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* some file systems cannot fsync a directory; the entry exists regardless */
        fsync(dfd);
        close(dfd);
    }
    return DK_OK;
}

dk_status dk_fed_global16(const char *h5_path, char *npz_path, size_t cap, dk_err *err)
{
    dk_status st = derive_path(h5_path, npz_path, cap, err);
    if (st || access(npz_path, R_OK) == 0) return st;
    dk_fed_model m = {0};
    dk_npz_entry *e = NULL;
    void *buf = NULL;
    size_t len = 0;
    st = dk_fed_model_load(h5_path, &m, err);
    if (!st && !(e = calloc((size_t)m.count ? (size_t)m.count : 1, sizeof *e)))
        st = dk_err_set(err, DK_ENOMEM, "no memory for the float16 global");
    if (!st) st = to_half(&m, e, err);
    if (!st) st = dk_npz_encode(e, m.count, DK_NPZ_DEFLATE, &buf, &len, err);
    if (!st) st = write_durably(npz_path, buf, len, err);
    for (int i = 0; e && i < m.count; i++)
        free(e[i].array.data);
    free(e);
    free(buf);
    dk_fed_model_release(&m);
    return st;
}
