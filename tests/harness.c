/* The harness helpers that need nothing of the library (see harness_load.c). */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void test_fail(test_ctx *t, const char *file, int line, const char *fmt, ...) {
    if (t->failures++ == 0) {
        int n = snprintf(t->first, sizeof t->first, "%s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first + n, sizeof t->first - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

const char *shared_path(char *buf, size_t cap, const char *rel) {
    const char *dir = getenv("LLAMAC_SHARED");
    if (rel[0] == '/') { /* already a path (a file a test wrote) */
        snprintf(buf, cap, "%s", rel);
        return buf;
    }
    snprintf(buf, cap, "%s/%s", dir && *dir ? dir : "../shared", rel);
    return buf;
}

const char *temp_path(char *buf, size_t cap, const char *name) {
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/llamac-test-%d-%s", dir && *dir ? dir : "/tmp", (int)getpid(), name);
    return buf;
}

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[size] = '\0';
        if (len) *len = (size_t)size;
    }
    return buf;
}
