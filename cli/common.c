#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void common_defaults(common_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->dtype = "auto";
    o->simd = "auto";
    o->weights = "auto";
    o->tensor_parallel = 1;
}

int common_model_specs(common_opts *o, arg_spec *specs, int n, bool with_tokenizer) {
    specs[n++] = (arg_spec){
        "model",
        'm',
        ARG_STRING,
        &o->model,
        "FILE",
        "model (llama2.c .bin, GGUF or a Hugging Face folder); default: stories15M.bin, else "
        "tiny-gutenberg-15M.bin, from the model search path"};
    if (with_tokenizer)
        specs[n++] =
            (arg_spec){"tokenizer",
                       'z',
                       ARG_STRING,
                       &o->tokenizer,
                       "FILE",
                       "tokenizer.bin, tokenizer.model (Llama 3), tokenizer.json or a GGUF "
                       "vocabulary; default: the model's own (GGUF, folder), else "
                       "tokenizer.bin beside the model, then the search path"};
    return n;
}

int common_engine_specs(common_opts *o, arg_spec *specs, int n) {
    specs[n++] =
        (arg_spec){"threads", 0, ARG_INT, &o->threads, "N", "CPU threads (default: all cores)"};
    specs[n++] = (arg_spec){"ctx",   'c', ARG_INT,
                            &o->ctx, "N", "context length in positions (default: the model's)"};
    specs[n++] = (arg_spec){"batch",   0,   ARG_INT,
                            &o->batch, "N", "most prompt tokens per forward pass (default: 512)"};
    specs[n++] = (arg_spec){
        "device",   0,   ARG_STRING,
        &o->device, "D", "auto, cpu or cuda (default: auto, cuda when a GPU is present)"};
    specs[n++] = (arg_spec){"tensor-parallel",
                            0,
                            ARG_INT,
                            &o->tensor_parallel,
                            "N",
                            "split each layer over N GPUs (checked, but the multi-GPU\n"
                            "                               backend is not built yet; default: 1)"};
    specs[n++] =
        (arg_spec){"dtype",
                   0,
                   ARG_STRING,
                   &o->dtype,
                   "T",
                   "weight storage: auto, f32, f16, bf16, q8_0, q4_0; on the CPU\n"
                   "                               also q8_runq (default: auto, the file's; on a\n"
                   "                               GPU f16 unless the file is bf16, q8_0 or q4_0)"};
    specs[n++] =
        (arg_spec){"simd",   0,   ARG_STRING,
                   &o->simd, "S", "CPU kernels: auto, avx512, avx2 or scalar (default: auto)"};
    specs[n++] =
        (arg_spec){"weights",
                   0,
                   ARG_STRING,
                   &o->weights,
                   "MODE",
                   "where the CPU reads weights: auto (an aligned copy if it fits\n"
                   "                               in half the free memory), mmap or copy"};
    specs[n++] = (arg_spec){"chunk",
                            0,
                            ARG_INT,
                            &o->chunk,
                            "ROWS",
                            "matrix rows per CPU work item when decoding (default: 0,\n"
                            "                               one contiguous range per thread)"};
    return n;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The model search path: $LLAMAC_MODELS, ./models, ../shared/models. */
static bool find_in_search_path(const char *name, char *out, size_t cap) {
    const char *dirs[] = {getenv("LLAMAC_MODELS"), "models", "../shared/models"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i] || !*dirs[i]) continue;
        if (snprintf(out, cap, "%s/%s", dirs[i], name) < (int)cap && is_file(out)) return true;
    }
    return false;
}

/* A path as given when it names a file; else a bare name found on the search path. */
static void resolve(const char *given, char *out, size_t cap) {
    if (is_file(given) || strchr(given, '/') || !find_in_search_path(given, out, cap))
        snprintf(out, cap, "%s", given);
}

int open_model(common_opts *o, lc_model **model) {
    if (o->model) {
        resolve(o->model, o->model_path, sizeof o->model_path);
    } else if (!find_in_search_path("stories15M.bin", o->model_path, sizeof o->model_path) &&
               !find_in_search_path("tiny-gutenberg-15M.bin", o->model_path,
                                    sizeof o->model_path)) {
        fprintf(stderr, "llamac: no model given and none found: looked for stories15M.bin and "
                        "tiny-gutenberg-15M.bin in $LLAMAC_MODELS, ./models and ../shared/models.\n"
                        "Download the public TinyStories model with `make models`, or by hand:\n"
                        "  mkdir -p models\n"
                        "  curl -L -o models/stories15M.bin "
                        "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin\n"
                        "  curl -L -o models/tokenizer.bin "
                        "https://github.com/karpathy/llama2.c/raw/master/tokenizer.bin\n");
        return 1;
    }
    lc_error err;
    if (lc_model_load(o->model_path, model, &err)) return report(NULL, &err);
    return 0;
}

int open_tokenizer(common_opts *o, const lc_model *model, lc_tokenizer **tok) {
    lc_error err;
    *tok = NULL;
    if (!model && o->model && !o->model_path[0]) /* `tokenize -m`: no model was opened */
        resolve(o->model, o->model_path, sizeof o->model_path);
    if (!o->tokenizer && model && lc_model_has_tokenizer(model)) {
        /* A GGUF file or a model folder carries its vocabulary; -z still overrides it. */
        snprintf(o->tokenizer_path, sizeof o->tokenizer_path, "%s", o->model_path);
        if (lc_tokenizer_from_model(model, tok, &err)) return report(NULL, &err);
    } else if (o->tokenizer) {
        resolve(o->tokenizer, o->tokenizer_path, sizeof o->tokenizer_path);
    } else if (o->model_path[0] && !model && lc_tokenizer_in_path(o->model_path)) {
        /* `tokenize -m` on a Hugging Face folder (tokenizer.json or
         * original/tokenizer.model) or a GGUF file: no model was opened. */
        snprintf(o->tokenizer_path, sizeof o->tokenizer_path, "%s", o->model_path);
    } else {
        /* tokenizer.bin beside the model, then on the search path */
        const char *slash = strrchr(o->model_path, '/');
        int dir_len = slash ? (int)(slash - o->model_path + 1) : 0;
        snprintf(o->tokenizer_path, sizeof o->tokenizer_path, "%.*stokenizer.bin", dir_len,
                 o->model_path);
        if (!is_file(o->tokenizer_path))
            resolve("tokenizer.bin", o->tokenizer_path, sizeof o->tokenizer_path);
    }
    if (!*tok && lc_tokenizer_load(o->tokenizer_path, tok, &err)) return report(NULL, &err);
    if (model) {
        int32_t want = lc_model_config(model)->vocab_size, have = lc_tokenizer_vocab_size(*tok);
        if (want != have) {
            fprintf(stderr,
                    "llamac: %s: the tokenizer has %d tokens but the model %s has %d; "
                    "pass the tokenizer the model was trained with (-z)\n",
                    o->tokenizer_path, have, o->model_path, want);
            lc_tokenizer_free(*tok);
            *tok = NULL;
            return 1;
        }
    }
    return 0;
}

/* The model's context, capped: Llama 3.1 declares 131072 positions, whose
 * KV cache would take gigabytes a short prompt never uses (--ctx asks for more). */
static int default_ctx(const lc_model *model) {
    const int seq_len = lc_model_config(model)->seq_len;
    return seq_len > DEFAULT_CTX_CAP ? DEFAULT_CTX_CAP : 0;
}

int open_engine(const common_opts *o, const lc_model *model, int n_seq, lc_engine **engine) {
    lc_engine_options opts = {.device = o->device,
                              .dtype = o->dtype,
                              .n_threads = o->threads,
                              .n_ctx = o->ctx ? o->ctx : default_ctx(model),
                              .n_seq = n_seq,
                              .n_batch = o->batch,
                              .simd = o->simd,
                              .weights = o->weights,
                              .chunk_rows = o->chunk,
                              .tensor_parallel = o->tensor_parallel};
    lc_error err;
    if (lc_engine_create(model, &opts, engine, &err)) return report(NULL, &err);
    return 0;
}

char *read_text_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || failed) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

void text_printer_init(text_printer *p, const lc_tokenizer *tok) {
    p->tok = tok;
    lc_detokenizer_init(&p->dt);
}

void text_printer_put(text_printer *p, lc_token id) {
    char buf[LC_DETOKENIZE_BUF];
    size_t n = lc_detokenize(p->tok, &p->dt, id, buf, sizeof buf);
    fwrite(buf, 1, n, stdout);
    fflush(stdout);
}

bool text_printer_on_token(void *printer, lc_token id) {
    text_printer_put(printer, id);
    return true;
}

int report(const char *context, const lc_error *err) {
    if (context)
        fprintf(stderr, "llamac: %s: %s\n", context, err->msg);
    else
        fprintf(stderr, "llamac: %s\n", err->msg);
    return 1;
}

static const char *stop_name(lc_stop_reason r) {
    switch (r) {
    case LC_STOP_TOKEN: return "end of text";
    case LC_STOP_LENGTH: return "token limit";
    case LC_STOP_CONTEXT: return "context full";
    case LC_STOP_CALLER: return "stopped";
    }
    return "?";
}

void print_generation_stats(FILE *f, const lc_model *model, const lc_generate_stats *s) {
    double bytes = (double)lc_model_bytes_per_token(model);
    double pp = s->prompt_seconds > 0 ? s->n_prompt / s->prompt_seconds : 0;
    double tg = s->decode_seconds > 0 ? s->n_decoded / s->decode_seconds : 0;
    fprintf(f,
            "prompt: %d tokens, %.1f tok/s | generation: %d tokens, %.1f tok/s, %.1f GB/s "
            "(%.1f MB of weights per token) | stop: %s\n",
            s->n_prompt, pp, s->n_generated, tg, tg * bytes / 1e9, bytes / 1e6, stop_name(s->stop));
}

void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* Adds id to the stop list unless it is negative or already there. */
int add_stop_token(lc_token *stop, int n, lc_token id) {
    if (id < 0 || n >= LC_MAX_STOP_TOKENS) return n;
    for (int i = 0; i < n; i++)
        if (stop[i] == id) return n;
    stop[n] = id;
    return n + 1;
}

/* Every end-of-sequence id the model file names (config.json and
 * generation_config.json, GGUF's eos/eot), added to stop[0..n). */
static int add_model_eos(const lc_model *model, lc_token *stop, int n) {
    const lc_token *ids;
    const int n_ids = lc_model_eos_ids(model, &ids);
    for (int i = 0; i < n_ids; i++) n = add_stop_token(stop, n, ids[i]);
    return n;
}

int chat_stop_tokens(const lc_model *model, const lc_chat_marker_ids *m, lc_token *stop) {
    int n = add_stop_token(stop, 0, m->end_of_reply);
    n = add_stop_token(stop, n, m->end_of_message);
    n = add_stop_token(stop, n, m->eos);
    return add_model_eos(model, stop, n);
}

int generate_stop_tokens(const lc_model *model, const lc_tokenizer *tok, lc_token *stop) {
    lc_token own[LC_MAX_STOP_TOKENS]; /* EOS, and a Llama 3 vocabulary's end of turn */
    int n_own = lc_tokenizer_stop_tokens(tok, own, LC_MAX_STOP_TOKENS);
    if (n_own > LC_MAX_STOP_TOKENS) n_own = LC_MAX_STOP_TOKENS;
    int n = 0;
    for (int i = 0; i < n_own; i++) n = add_stop_token(stop, n, own[i]);
    /* llama2.c checkpoints of TinyStories emit BOS between stories: stop there too. */
    n = add_stop_token(stop, n, lc_tokenizer_bos(tok));
    return add_model_eos(model, stop, n);
}
