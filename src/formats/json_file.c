#include "formats/json_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

lc_status json_parse_buffer(const char *text, size_t len, const char *name, cJSON **out,
                            lc_error *err) {
    *out = NULL;
    if (len == 0) return lc_fail(err, LC_ERR_FORMAT, "%s: empty JSON", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    /* cJSON reports where it stopped, the error position on failure. */
    size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
    if (!root)
        return lc_fail(err, LC_ERR_FORMAT, "%s: malformed JSON at byte %zu of %zu", name, at, len);
    for (size_t i = at; i < len; i++)
        if (!strchr(" \t\r\n", text[i])) {
            cJSON_Delete(root);
            return lc_fail(err, LC_ERR_FORMAT,
                           "%s: malformed JSON: text after the value at byte %zu", name, i);
        }
    *out = root;
    return LC_OK;
}

lc_status json_read_file(const char *path, size_t max_bytes, cJSON **out, lc_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lc_fail(err, LC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lc_fail(err, LC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: %lld bytes is more than the %zu a JSON file may have", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t len = (size_t)st.st_size;
    char *text = malloc(len ? len : 1);
    if (!text) {
        fclose(f);
        return lc_fail(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(text, 1, len, f);
    fclose(f);
    lc_status s = got == len ? json_parse_buffer(text, len, path, out, err)
                             : lc_fail(err, LC_ERR_IO, "%s: read %zu of %zu bytes", path, got, len);
    free(text);
    return s;
}

bool json_int(const cJSON *item, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi) return false;
    *out = (int64_t)v;
    return true;
}
