/* util.h: what every dualkd subcommand shares: the failure and --help conventions,
 * one shape of number parser for option values, and reading a small text file
 * (a config or architecture JSON), making an output folder. Only cli/ includes it. */
#ifndef DK_CLI_UTIL_H
#define DK_CLI_UTIL_H

#include <stdbool.h>

#include "distill/err.h"

/* The largest text file dk_cli_read_text accepts: configs are a few KiB. */
#define DK_CLI_MAX_TEXT ((long)16 << 20)

/* Print "dualkd: <what>: <msg>" for a failed library call and return 1. */
int dk_cli_fail(const char *what, const char *msg);

/* True when argv holds -h or --help. */
int dk_cli_wants_help(int argc, char **argv);

/* The whole of text is a decimal integer (no sign unless lo < 0, no spaces) in
 * [lo, hi]: sets *out and returns true; otherwise returns false, *out untouched. */
bool dk_cli_parse_int(const char *text, long long lo, long long hi, long long *out);

/* The whole of text is a finite number in [lo, hi]: as dk_cli_parse_int. */
bool dk_cli_parse_double(const char *text, double lo, double hi, double *out);

/* Set the per-volume voxel limit (datasets/volume.h) from text: DUALKD_MAX_VOXELS
 * for every command, or a --max-voxels option (source names it in the message).
 * Returns 0, or 2 after printing why text is not a voxel count. */
int dk_cli_set_max_voxels(const char *text, const char *source);

/* mkdir -p: path and every missing folder above it (0755). DK_OK when path is
 * already a directory; DK_EIO naming the folder that could not be made. */
dk_status dk_cli_make_dirs(const char *path, dk_err *err);

/* The file at path as a NUL-terminated string, at most DK_CLI_MAX_TEXT bytes. what
 * names it in the message ("config", "student config"). Caller frees with free();
 * NULL with err set when it cannot be opened, read, or is too large. */
char *dk_cli_read_text(const char *path, const char *what, dk_err *err);

#endif
