/* Shared by the fuzz targets (tests/fuzz): a scratch directory of this process and writing the
 * input to a file in it. Each target defines LLVMFuzzerTestOneInput; built with
 * -DBATCHLAB_FUZZ=ON (clang) it is a libFuzzer binary, otherwise replay.c turns it into a
 * program that runs the files of its seed corpus (the ctest tests fuzz.<name>). */
#ifndef BATCHLAB_FUZZ_UTIL_H
#define BATCHLAB_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A directory of this process under $TMPDIR (made once; the files in it are rewritten by
 * every input). */
static inline const char *fuzz_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/batchlab-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

/* Writes n bytes to <fuzz_dir>/<name>; the path goes into buf. */
static inline const char *fuzz_write(const char *name, const void *data, size_t n, char *buf,
                                     size_t cap)
{
    snprintf(buf, cap, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(buf, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        abort();
    return buf;
}

#endif
