/* Just enough JSON to read the golden-logits metadata. */
#ifndef LLAMAC_TESTS_JSON_H
#define LLAMAC_TESTS_JSON_H

#include <stddef.h>

typedef enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json {
    json_type type;
    double number;
    char *string;        /* JSON_STRING */
    char **keys;         /* JSON_OBJECT: (count) */
    struct json **items; /* JSON_ARRAY and JSON_OBJECT values: (count) */
    size_t count;
} json;

json *json_parse(const char *text); /* NULL on malformed input */
void json_free(json *j);
const json *json_get(const json *obj, const char *key); /* NULL when absent */

#endif
