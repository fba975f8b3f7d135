/* JSON files and buffers parsed with cJSON (Debian's libcjson): a whole file
 * read up to a size cap, and the checked getters every JSON reader here
 * shares. cJSON holds numbers as doubles, so integers are accepted only
 * when a double represents them exactly. */
#ifndef LLAMAC_FORMATS_JSON_FILE_H
#define LLAMAC_FORMATS_JSON_FILE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

/* Parses `len` bytes as one JSON value followed only by whitespace. `name`
 * starts the error message, which gives the byte offset of a syntax error. */
lc_status json_parse_buffer(const char *text, size_t len, const char *name, cJSON **out,
                            lc_error *err);
/* Reads and parses the file at `path` (at most max_bytes). */
lc_status json_read_file(const char *path, size_t max_bytes, cJSON **out, lc_error *err);

/* A number that is an integer in [lo, hi] (|lo|, |hi| <= 2^53): true and *out. */
bool json_int(const cJSON *item, int64_t lo, int64_t hi, int64_t *out);

#endif
