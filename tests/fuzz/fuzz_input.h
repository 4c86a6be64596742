/* fuzz_input.h: shared by the libFuzzer harnesses tests/fuzz/fuzz_*.c: the
 * fuzzer's bytes as a file (the readers under test take paths) or as text.
 *
 * A harness is one file tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput,
 * with its seed corpus in tests/fuzz/corpus/<name>/; CMake builds every
 * fuzz_*.c with -DDUALKD_FUZZ=ON (clang), and scripts/fuzz runs each. A harness
 * must free everything it allocates (leaks are reported) and abort() when an
 * invariant it checks (a round trip) fails, so libFuzzer records the input. */
#ifndef DK_FUZZ_INPUT_H
#define DK_FUZZ_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write data to a per-process file ending in suffix (".h5", ".nii.gz") under
 * $DUALKD_FUZZ_DIR, else /dev/shm when it exists, else /tmp; returns its path
 * (static storage, the same each call). Exits if the file cannot be written:
 * that is the machine's fault, not an input's. */
static inline const char *dk_fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("DUALKD_FUZZ_DIR");
        if (!dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/dualkd-fuzz-%ld%s", dir, (long)getpid(), suffix);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
    return path;
}

/* The bytes as a NUL-terminated string (embedded NULs end it early, as in a
 * file read by the program). Caller frees. */
static inline char *dk_fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
