/* shipped.c: the default teacher embedded in the binary (shipped.h). The build
 * (CMakeLists.txt) defines DK_SHIPPED_TEACHER_FILE, the checkpoint's absolute path,
 * and DK_SHIPPED_TEACHER_SHA256 from models/teacher-default.sha256. .incbin keeps a
 * 6 MB file out of the C compiler (a generated array would take minutes and GBs to
 * compile); gcc and clang on x86-64 Linux (ELF) both accept it. */
#include "teacher/shipped.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "teacher/sha256.h"

#ifndef DK_SHIPPED_TEACHER_FILE
#error "DK_SHIPPED_TEACHER_FILE must name the checkpoint to embed (CMakeLists.txt sets it)"
#endif

__asm__(".pushsection .rodata.dk_shipped_teacher, \"a\", @progbits\n"
        ".balign 64\n"
        ".globl dk_shipped_teacher_begin\n"
        ".hidden dk_shipped_teacher_begin\n"
        "dk_shipped_teacher_begin:\n"
        ".incbin \"" DK_SHIPPED_TEACHER_FILE "\"\n"
        ".globl dk_shipped_teacher_end\n"
        ".hidden dk_shipped_teacher_end\n"
        "dk_shipped_teacher_end:\n"
        ".popsection\n");

extern const unsigned char dk_shipped_teacher_begin[], dk_shipped_teacher_end[];

const unsigned char *dk_shipped_teacher_bytes(size_t *size)
{
    *size = (size_t)(dk_shipped_teacher_end - dk_shipped_teacher_begin);
    return dk_shipped_teacher_begin;
}

const char *dk_shipped_teacher_sha256(void)
{
    return DK_SHIPPED_TEACHER_SHA256;
}

static dk_status check_hash(const char *what, const char *hex, dk_err *err)
{
    if (strcmp(hex, DK_SHIPPED_TEACHER_SHA256) == 0) return DK_OK;
    return dk_err_set(err, DK_EFORMAT, "%s has SHA-256 %s, expected %s (models/teacher-default.sha256)",
                      what, hex, DK_SHIPPED_TEACHER_SHA256);
}

static dk_status write_all(int fd, const unsigned char *p, size_t n, const char *tmp, dk_err *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return dk_err_set(err, DK_EIO, "writing '%s': %s", tmp, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return fsync(fd) == 0 ? DK_OK : dk_err_set(err, DK_EIO, "syncing '%s': %s", tmp, strerror(errno));
}

dk_status dk_shipped_teacher_write(const char *path, dk_err *err)
{
    size_t size;
    const unsigned char *bytes = dk_shipped_teacher_bytes(&size);
    char hex[DK_SHA256_HEX], tmp[4200];
    dk_status st = dk_sha256_hex(bytes, size, hex, err);
    if (!st) st = check_hash("the embedded default teacher", hex, err);
    if (st) return st;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= sizeof tmp)
        return dk_err_set(err, DK_EINVAL, "output path too long: '%.64s...'", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return dk_err_set(err, DK_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    fchmod(fd, 0644);
    st = write_all(fd, bytes, size, tmp, err);
    if (close(fd) != 0 && !st) st = dk_err_set(err, DK_EIO, "closing '%s': %s", tmp, strerror(errno));
    if (!st) st = dk_sha256_file(tmp, hex, err);
    if (!st) st = check_hash(tmp, hex, err);
    if (!st && rename(tmp, path) != 0)
        st = dk_err_set(err, DK_EIO, "renaming '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st) unlink(tmp);
    return st;
}
