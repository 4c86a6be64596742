/* util.c: helpers every cli/cmd_*.c shares (see util.h). */
#include "cli/util.h"

#include "datasets/volume.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int dk_cli_fail(const char *what, const char *msg)
{
    fprintf(stderr, "dualkd: %s: %s\n", what, msg);
    return 1;
}

int dk_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

/* strto* skip leading spaces and accept a '+'; an option value should be the number. */
static bool plain_start(const char *text, bool signed_ok)
{
    if (!text || !*text) return false;
    if (*text == '-') return signed_ok && text[1] >= '0' && text[1] <= '9';
    return (*text >= '0' && *text <= '9') || *text == '.';
}

bool dk_cli_parse_int(const char *text, long long lo, long long hi, long long *out)
{
    if (!plain_start(text, lo < 0) || *text == '.') return false;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool dk_cli_parse_double(const char *text, double lo, double hi, double *out)
{
    if (!plain_start(text, lo < 0)) return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !isfinite(v) || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

char *dk_cli_read_text(const char *path, const char *what, dk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dk_err_set(err, DK_EIO, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    /* Read up to one byte past the cap: a file that fills it is too large. */
    char *text = malloc((size_t)DK_CLI_MAX_TEXT + 1);
    size_t len = text ? fread(text, 1, (size_t)DK_CLI_MAX_TEXT + 1, f) : 0;
    bool failed = !text || ferror(f);
    fclose(f);
    if (failed || len > (size_t)DK_CLI_MAX_TEXT) {
        free(text);
        if (!text)
            dk_err_set(err, DK_ENOMEM, "no memory to read %s '%s'", what, path);
        else if (failed)
            dk_err_set(err, DK_EIO, "cannot read %s '%s'", what, path);
        else
            dk_err_set(err, DK_ELIMIT, "%s '%s' is larger than 16 MiB", what, path);
        return NULL;
    }
    text[len] = '\0';
    char *fit = realloc(text, len + 1); /* give back the unused cap */
    return fit ? fit : text;
}

int dk_cli_set_max_voxels(const char *text, const char *source)
{
    long long v;
    /* 2^40 voxels is 4 TiB of float32: far beyond any machine this runs on. */
    if (!text || !dk_cli_parse_int(text, 1, 1LL << 40, &v)) {
        fprintf(stderr, "dualkd: %s '%s': expected a voxel count in 1..%llu (default %zu)\n",
                source, text ? text : "", 1ULL << 40, (size_t)DK_MAX_VOXELS_DEFAULT);
        return 2;
    }
    dk_volume_set_max_voxels((size_t)v);
    return 0;
}

dk_status dk_cli_make_dirs(const char *path, dk_err *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return dk_err_set(err, DK_EINVAL, "folder '%s': expected a path of 1 to %zu bytes", path,
                          sizeof buf - 1);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        struct stat sb;
        if (mkdir(buf, 0755) && (errno != EEXIST || stat(buf, &sb) || !S_ISDIR(sb.st_mode)))
            return dk_err_set(err, DK_EIO, "cannot create folder '%s': %s", buf,
                              errno == EEXIST ? "a file of that name is in the way"
                                              : strerror(errno));
        buf[i] = keep;
    }
    return DK_OK;
}
