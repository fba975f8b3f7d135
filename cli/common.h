/* What the subcommands share: finding model files, loading the model and
 * tokenizer, the engine flags, and printing errors and statistics. */
#ifndef LLAMAC_CLI_COMMON_H
#define LLAMAC_CLI_COMMON_H

#include <stdio.h>

#include "args.h"
#include "llamac.h"

#define MAX_SPECS       40
#define PATH_CAP        4096
#define DEFAULT_CTX_CAP 4096 /* positions when --ctx is not given and the model has more */

typedef struct common_opts {
    const char *model;     /* -m */
    const char *tokenizer; /* -z */
    const char *device;
    const char *dtype;
    const char *simd;
    const char *weights;
    int threads, ctx, batch, chunk;
    int tensor_parallel;                                 /* GPUs to split the model over */
    char model_path[PATH_CAP], tokenizer_path[PATH_CAP]; /* resolved */
} common_opts;

void common_defaults(common_opts *o);
/* Appends the -m/-z flags (when with_tokenizer, also -z) to specs at n; returns the new n. */
int common_model_specs(common_opts *o, arg_spec *specs, int n, bool with_tokenizer);
/* Appends --threads, --ctx, --batch, --device, --tensor-parallel, --dtype, --simd, --weights,
 * --chunk. */
int common_engine_specs(common_opts *o, arg_spec *specs, int n);
static inline void specs_end(arg_spec *specs, int n) { specs[n] = (arg_spec){0}; }

/* Each returns 0 on success or prints a one-line error and returns 1. */
int open_model(common_opts *o, lc_model **model);
int open_tokenizer(common_opts *o, const lc_model *model, lc_tokenizer **tok);
int open_engine(const common_opts *o, const lc_model *model, int n_seq, lc_engine **engine);

/* Reads a whole file ("-" for stdin) into a NUL-terminated buffer. */
char *read_text_file(const char *path, size_t *len);

/* Streams generated tokens to stdout as printable UTF-8, flushing each one. */
typedef struct text_printer {
    const lc_tokenizer *tok;
    lc_detokenizer dt;
} text_printer;

void text_printer_init(text_printer *p, const lc_tokenizer *tok);
void text_printer_put(text_printer *p, lc_token id);
bool text_printer_on_token(void *printer, lc_token id); /* an lc_token_fn */

int report(const char *context, const lc_error *err); /* prints "llamac: ...", returns 1 */
/* Appends id to a stop list of n (up to LC_MAX_STOP_TOKENS, no repeats); returns the new n. */
int add_stop_token(lc_token *stop, int n, lc_token id);
/* What ends a chat reply: the template's end of turn (and Llama 3.1's end of
 * message), EOS, and every end-of-sequence id the model names. Returns how many. */
int chat_stop_tokens(const lc_model *model, const lc_chat_marker_ids *m, lc_token *stop);
/* What ends plain generation: the tokenizer's EOS and BOS and the model's end-of-sequence ids. */
int generate_stop_tokens(const lc_model *model, const lc_tokenizer *tok, lc_token *stop);
void print_generation_stats(FILE *f, const lc_model *model, const lc_generate_stats *s);
void print_json_string(const char *s); /* s as a JSON string literal, on stdout */

#endif
