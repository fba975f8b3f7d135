/* Table-driven command-line flags: each subcommand lists its flags once, and
 * parsing, validation and --help all come from that table. */
#ifndef LLAMAC_CLI_ARGS_H
#define LLAMAC_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum arg_kind { ARG_FLAG, ARG_INT, ARG_U64, ARG_FLOAT, ARG_STRING } arg_kind;

typedef struct arg_spec {
    const char *name; /* long form without the dashes */
    char short_name;  /* 0 when none */
    arg_kind kind;
    void *dest; /* bool, int, uint64_t, float or const char * */
    const char *metavar;
    const char *help;
    bool *seen; /* optional: set when the flag was given */
} arg_spec;

typedef struct command_info {
    const char *name;    /* "generate" */
    const char *summary; /* one line */
    const char *usage;   /* after "llamac <name> " */
    const char *notes;   /* extra help text, may be NULL */
} command_info;

typedef enum parse_result { PARSE_OK, PARSE_HELP, PARSE_ERROR } parse_result;

/* Parses argv[1..argc) (argv[0] is the subcommand). Positional arguments go to
 * `positional` (up to max_positional). Prints help or a one-line error to stderr. */
parse_result args_parse(const command_info *cmd, const arg_spec *specs, int argc, char **argv,
                        char **positional, int *n_positional, int max_positional);

void args_print_help(const command_info *cmd, const arg_spec *specs);

#endif
