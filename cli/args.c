#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_print_help(const command_info *cmd, const arg_spec *specs) {
    fprintf(stderr, "usage: llamac %s %s\n\n%s\n\n", cmd->name, cmd->usage, cmd->summary);
    for (const arg_spec *s = specs; s->name; s++) {
        char left[64];
        if (s->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", s->short_name, s->name,
                     s->metavar ? " " : "", s->metavar ? s->metavar : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", s->name, s->metavar ? " " : "",
                     s->metavar ? s->metavar : "");
        fprintf(stderr, "  %-28s %s\n", left, s->help);
    }
    fprintf(stderr, "  %-28s %s\n", "-h, --help", "show this help");
    if (cmd->notes) fprintf(stderr, "\n%s\n", cmd->notes);
}

static bool parse_value(const arg_spec *s, const char *v, const char *shown) {
    char *end;
    errno = 0;
    switch (s->kind) {
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno || x < -2147483647L || x > 2147483647L) break;
        *(int *)s->dest = (int)x;
        return true;
    }
    case ARG_U64: {
        if (*v == '-') break;
        unsigned long long x = strtoull(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno) break;
        *(uint64_t *)s->dest = (uint64_t)x;
        return true;
    }
    case ARG_FLOAT: {
        float x = strtof(v, &end);
        /* ERANGE on underflow still gives a usable (tiny) value; overflow gives inf. */
        if (*v == '\0' || *end != '\0' || !isfinite(x)) break;
        *(float *)s->dest = x;
        return true;
    }
    case ARG_STRING: *(const char **)s->dest = v; return true;
    case ARG_FLAG: return true;
    }
    fprintf(stderr, "llamac: %s: invalid value '%s' (expected %s)\n", shown, v,
            s->kind == ARG_FLOAT ? "a number"
            : s->kind == ARG_U64 ? "a non-negative integer"
                                 : "an integer");
    return false;
}

static const arg_spec *find(const arg_spec *specs, const char *name, size_t len, char short_name) {
    for (const arg_spec *s = specs; s->name; s++) {
        if (short_name ? s->short_name == short_name
                       : strlen(s->name) == len && strncmp(s->name, name, len) == 0)
            return s;
    }
    return NULL;
}

parse_result args_parse(const command_info *cmd, const arg_spec *specs, int argc, char **argv,
                        char **positional, int *n_positional, int max_positional) {
    *n_positional = 0;
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] == '\0') {
            if (*n_positional >= max_positional) {
                fprintf(stderr, "llamac %s: unexpected argument '%s' (see llamac %s --help)\n",
                        cmd->name, a, cmd->name);
                return PARSE_ERROR;
            }
            positional[(*n_positional)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            args_print_help(cmd, specs);
            return PARSE_HELP;
        }
        const arg_spec *s;
        const char *inline_value = NULL;
        if (a[1] == '-') { /* --name or --name=value */
            const char *name = a + 2, *eq = strchr(name, '=');
            s = find(specs, name, eq ? (size_t)(eq - name) : strlen(name), 0);
            if (eq) inline_value = eq + 1;
        } else {
            s = a[2] == '\0' ? find(specs, NULL, 0, a[1]) : NULL;
        }
        if (!s) {
            fprintf(stderr, "llamac %s: unknown flag '%s' (see llamac %s --help)\n", cmd->name, a,
                    cmd->name);
            return PARSE_ERROR;
        }
        if (s->seen) *s->seen = true;
        if (s->kind == ARG_FLAG) {
            if (inline_value) {
                fprintf(stderr, "llamac %s: --%s takes no value\n", cmd->name, s->name);
                return PARSE_ERROR;
            }
            *(bool *)s->dest = true;
            continue;
        }
        const char *v = inline_value;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "llamac %s: %s needs a value (%s)\n", cmd->name, a,
                        s->metavar ? s->metavar : "see --help");
                return PARSE_ERROR;
            }
            v = argv[++i];
        }
        if (!parse_value(s, v, a)) return PARSE_ERROR;
    }
    return PARSE_OK;
}
