/* llamac — inference for Llama-family language models.
 *
 * The public API, in the order data flows through it:
 *   model file ──► lc_model (config + weights, mmap'd)
 *   text       ──► lc_tokenizer ──► token ids
 *   ids        ──► lc_engine (a backend's batched forward + KV cache) ──► logits
 *   logits     ──► lc_sampler ──► next token id ──► lc_detokenize ──► text
 *
 * Conventions: every function that can fail returns an lc_status and, when
 * `err` is non-NULL, fills it with a one-line message naming the file, flag or
 * value at fault. Library code never prints to stdout and never exits.
 * Nothing here keeps global mutable state; every object is independent.
 */
#ifndef LLAMAC_H
#define LLAMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */

typedef enum lc_status {
    LC_OK = 0,
    LC_ERR_IO,          /* a file could not be opened, read, written or mapped */
    LC_ERR_FORMAT,      /* a file is malformed, truncated or inconsistent */
    LC_ERR_ARG,         /* a caller passed an invalid argument */
    LC_ERR_NOMEM,       /* an allocation failed */
    LC_ERR_CONTEXT,     /* a sequence would grow past the context length */
    LC_ERR_UNSUPPORTED, /* valid, but not something this build can do */
    LC_ERR_DEVICE,      /* the GPU or its driver failed */
} lc_status;

typedef struct lc_error {
    lc_status status;
    char msg[512];
} lc_error;

const char *lc_status_name(lc_status status);

/* ---- tokens and dtypes -------------------------------------------------- */

typedef int32_t lc_token; /* an index into the tokenizer's vocabulary */

/* How weights are stored. The block types hold 32 weights per block with one
 * scale (layouts in src/formats/quant.h): Q8_0 and Q4_0 as GGUF/llama.cpp
 * define them, Q8_RUNQ as llama2.c's runq.c (int8, one f32 scale per 32). */
typedef enum lc_dtype {
    LC_DTYPE_F32 = 0,
    LC_DTYPE_F16,
    LC_DTYPE_BF16,
    LC_DTYPE_Q8_0,
    LC_DTYPE_Q4_0,
    LC_DTYPE_Q8_RUNQ,
    LC_DTYPE_COUNT,
} lc_dtype;

const char *lc_dtype_name(lc_dtype dtype);

/* ---- model -------------------------------------------------------------- */

/* How RoPE frequencies are stretched for a longer context than the model
 * was first trained on (Hugging Face config.json's rope_scaling). */
typedef enum lc_rope_scaling {
    LC_ROPE_SCALING_NONE = 0,
    LC_ROPE_SCALING_LINEAR, /* every frequency divided by rope_factor */
    LC_ROPE_SCALING_LLAMA3, /* Llama 3.1: wavelengths above original_ctx / low_freq_factor
                               divided by rope_factor, below original_ctx / high_freq_factor
                               kept, interpolated between */
} lc_rope_scaling;

typedef struct lc_config {
    int32_t dim;        /* residual stream width */
    int32_t hidden_dim; /* SwiGLU inner width */
    int32_t n_layers;
    int32_t n_heads;    /* query heads */
    int32_t n_kv_heads; /* key/value heads; < n_heads means grouped-query attention */
    int32_t head_dim;   /* dim / n_heads, unless a Hugging Face config.json gives head_dim */
    int32_t vocab_size;
    int32_t seq_len;        /* context length the model was trained for */
    float rope_theta;       /* RoPE base, 10000 for Llama 2 */
    float norm_eps;         /* RMSNorm epsilon */
    bool shared_classifier; /* output projection is the embedding table */
    lc_rope_scaling rope_scaling;
    float rope_factor;           /* linear, llama3: how far the context was stretched */
    float rope_low_freq_factor;  /* llama3 */
    float rope_high_freq_factor; /* llama3 */
    int32_t rope_original_ctx;   /* llama3: the context the unscaled frequencies served */
    /* (head_dim / 2) or NULL: frequency i is divided by rope_freq_factors[i]
     * (a GGUF's rope_freqs.weight: Llama 3.1 scaling as llama.cpp stores it).
     * Points into the model's file; valid until lc_model_free. */
    const float *rope_freq_factors;
} lc_config;

typedef struct lc_model lc_model;

/* Loads a model file: a llama2.c legacy, version-1 or version-2 checkpoint, a
 * GGUF file (versions 2 and 3) of architecture llama, or a Hugging Face
 * folder (a directory holding config.json of LlamaForCausalLM and
 * model.safetensors, or shards listed in model.safetensors.index.json). Files
 * stay memory-mapped until lc_model_free; weights point into the mappings
 * (Hugging Face q/k projections and non-f32 norms are converted at load). */
lc_status lc_model_load(const char *path, lc_model **out, lc_error *err);
void lc_model_free(lc_model *model);
const lc_config *lc_model_config(const lc_model *model);
/* A short description of the file format, e.g. "llama2.c legacy (fp32)",
 * "GGUF v3 (q4_0, q8_0 embedding)". */
const char *lc_model_format(const lc_model *model);
/* Bytes of weights one decoding step reads: every matrix and norm once
 * (the embedding table only when it doubles as the classifier). */
uint64_t lc_model_bytes_per_token(const lc_model *model);
uint64_t lc_model_n_params(const lc_model *model);
/* The Jinja chat template the model came with (GGUF tokenizer.chat_template,
 * tokenizer_config.json's chat_template), or NULL. */
const char *lc_model_chat_template(const lc_model *model);
/* True when the model carries its own vocabulary (GGUF tokenizer metadata, a
 * Hugging Face folder's tokenizer files). */
bool lc_model_has_tokenizer(const lc_model *model);
/* The end-of-sequence ids the model's files name, for stopping generation:
 * config.json's eos_token_id (one id or a list: Llama 3 Instruct ends a turn
 * with <|eot_id|> and a text with <|end_of_text|>) united with
 * generation_config.json's, or a GGUF's tokenizer.ggml.eos_token_id and
 * eot_token_id. Points *ids at them (valid until lc_model_free) and returns
 * how many; 0 when the files name none (llama2.c checkpoints: the tokenizer's
 * EOS is the one to use). */
int lc_model_eos_ids(const lc_model *model, const lc_token **ids);
/* The beginning-of-sequence id the model's files name, or -1 when they name none. */
lc_token lc_model_bos_id(const lc_model *model);

/* ---- tokenizer ---------------------------------------------------------- */

typedef struct lc_tokenizer lc_tokenizer;

/* Loads a tokenizer, telling the format by content:
 *  - SentencePiece BPE (Llama 2): llama2.c's tokenizer.bin, or a GGUF file's
 *    vocabulary with tokenizer.ggml.model "llama";
 *  - byte-level BPE (Llama 3): Meta's tiktoken tokenizer.model (base64 piece
 *    and rank per line; the 256 Llama 3 special tokens follow the ranks),
 *    Hugging Face tokenizer.json (model type BPE, ByteLevel pre-tokenizer;
 *    special tokens and bos/eos also from tokenizer_config.json beside it),
 *    or a GGUF vocabulary with tokenizer.ggml.model "gpt2";
 *  - a directory: its tokenizer.json, else original/tokenizer.model, else
 *    tokenizer.model, else tokenizer.bin.
 * SentencePiece's protobuf .model files are refused with a hint. */
lc_status lc_tokenizer_load(const char *path, lc_tokenizer **out, lc_error *err);
/* True when `path` holds its own tokenizer for lc_tokenizer_load: a model
 * folder (tokenizer.json, original/tokenizer.model, ...) or a GGUF file. */
bool lc_tokenizer_in_path(const char *path);
/* The tokenizer a model file carries (see lc_model_has_tokenizer). */
lc_status lc_tokenizer_from_model(const lc_model *model, lc_tokenizer **out, lc_error *err);
void lc_tokenizer_free(lc_tokenizer *tok);
int32_t lc_tokenizer_vocab_size(const lc_tokenizer *tok);
lc_token lc_tokenizer_bos(const lc_tokenizer *tok);
lc_token lc_tokenizer_eos(const lc_tokenizer *tok);

/* Whether the vocabulary asks for BOS before a text (true for Llama 2 and 3). */
bool lc_tokenizer_add_bos(const lc_tokenizer *tok);

typedef struct lc_encode_options {
    bool add_bos;       /* prepend BOS */
    bool add_eos;       /* append EOS */
    bool parse_special; /* byte-level BPE: the text of a special token ("<|eot_id|>")
                           becomes that token, as chat templates need; otherwise it is
                           ordinary text, as user text must be. SentencePiece
                           vocabularies spell no special tokens as text: ignored. */
} lc_encode_options;

/* Encodes `len` bytes of text. On success *out is a malloc'd array of *n_out
 * ids that the caller frees. opts NULL: BOS as lc_tokenizer_add_bos says, no
 * EOS, no special tokens. SentencePiece vocabularies encode exactly as
 * SentencePiece does, and invalid UTF-8 is an LC_ERR_ARG error; byte-level
 * BPE encodes exactly as tiktoken / Hugging Face tokenizers do, and each
 * maximal invalid UTF-8 subpart is read as U+FFFD (as Python's
 * bytes.decode(errors="replace") does). */
lc_status lc_tokenizer_encode_ex(const lc_tokenizer *tok, const char *text, size_t len,
                                 const lc_encode_options *opts, lc_token **out, size_t *n_out,
                                 lc_error *err);
/* lc_tokenizer_encode_ex with parse_special off. */
lc_status lc_tokenizer_encode(const lc_tokenizer *tok, const char *text, size_t len, bool add_bos,
                              bool add_eos, lc_token **out, size_t *n_out, lc_error *err);

/* The raw vocabulary entry of `id` (NULL when out of range): its bytes (for
 * byte-level BPE the raw bytes, not GPT-2's unicode alphabet), or a special
 * token's text. */
const char *lc_tokenizer_piece(const lc_tokenizer *tok, lc_token id, size_t *len);
/* The id of the token spelled `text` (NUL-terminated): a special or control
 * token ("<|eot_id|>", "<s>") first, else an ordinary piece; -1 when none. */
lc_token lc_tokenizer_token_id(const lc_tokenizer *tok, const char *text);
/* True for special (control) tokens: BOS, EOS, <|eot_id|>, ... */
bool lc_tokenizer_is_special(const lc_tokenizer *tok, lc_token id);
/* The tokens that may end a generated turn: EOS first, then the vocabulary's
 * end-of-turn tokens (<|eot_id|>, <|eom_id|>, <|end_of_text|>, ... and GGUF's
 * eot/eom ids). Writes at most `cap` ids to out and returns how many there are. */
int lc_tokenizer_stop_tokens(const lc_tokenizer *tok, lc_token *out, int cap);

/* Streaming decoder: turns ids into printable UTF-8. It turns byte tokens
 * <0xXX> and byte-level pieces into bytes, holds back an incomplete UTF-8
 * sequence until it completes, prints special tokens as nothing (their text is
 * lc_tokenizer_piece), and never emits control bytes other than tab and
 * newline. For SentencePiece vocabularies it also drops the space a piece
 * starts with right after BOS (the dummy prefix); byte-level BPE keeps it. */
typedef struct lc_detokenizer {
    lc_token prev;
    unsigned char pending[4];
    int n_pending;
} lc_detokenizer;

void lc_detokenizer_init(lc_detokenizer *dt);
/* Writes at most `cap` bytes and returns how many; a buffer of
 * LC_DETOKENIZE_BUF bytes always holds one call's output. */
#define LC_MAX_PIECE_BYTES 4096
#define LC_DETOKENIZE_BUF  (LC_MAX_PIECE_BYTES + 8)
size_t lc_detokenize(const lc_tokenizer *tok, lc_detokenizer *dt, lc_token id, char *out,
                     size_t cap);

/* ---- engine: a backend running batched forwards over KV-cache slots ---- */

typedef struct lc_engine_options {
    const char *device; /* "auto" (default: cuda when a GPU is present, else cpu), "cpu", "cuda" */
    const char *dtype;  /* how the backend stores weights: "auto" (default: the file's; on a GPU
                           f16 unless the file is bf16, q8_0 or q4_0), "f32", "f16", "bf16",
                           "q8_0", "q4_0"; on the CPU also "q8_runq" (matrices converted at
                           load; norms stay f32) */
    int n_threads;      /* 0: every online core */
    int n_ctx;          /* positions per sequence; 0: the model's seq_len */
    int n_seq;          /* KV-cache slots (independent sequences); 0: 1 */
    int n_batch;        /* most entries one forward call takes; 0: 256 */
    const char *simd;   /* CPU kernels: "auto" (default), "scalar", "avx2", "avx512" */
    int chunk_rows;     /* CPU rows per decode work item; 0: one range per thread (measured best) */
    const char *weights; /* CPU: "auto" (default: an aligned huge-page copy when it takes at most
                            half the free memory, else the file mapping), "mmap", "copy" */
    int tensor_parallel; /* GPUs to split each layer over (Megatron-style: heads and FFN units
                            per GPU, two all-reduces a layer); 0: 1. Checked against the model
                            (its kv heads must divide evenly); more than 1 needs --device cuda
                            and as many GPUs, and is not built yet (LC_ERR_UNSUPPORTED) */
} lc_engine_options;

/* One entry of a forward batch: `token` at position `pos` of sequence `seq`.
 * Entries of one sequence must appear in increasing position order; an entry
 * attends to positions 0..pos of its own sequence's KV-cache slot. */
typedef struct lc_batch {
    int32_t n;
    const lc_token *token; /* (n) */
    const int32_t *pos;    /* (n) */
    const int32_t *seq;    /* (n) */
    const uint8_t *logits; /* (n) nonzero: produce this entry's logits; NULL: last entry only */
} lc_batch;

typedef struct lc_engine lc_engine;

lc_status lc_engine_create(const lc_model *model, const lc_engine_options *opts, lc_engine **out,
                           lc_error *err);
void lc_engine_free(lc_engine *engine);
/* "cpu (avx512, 2 threads)" — what actually runs. */
const char *lc_engine_describe(const lc_engine *engine);
int lc_engine_n_ctx(const lc_engine *engine);
/* Bytes a decoding step at position `pos` reads: the weights as this
 * backend stores them plus the KV cache of positions 0..pos. */
uint64_t lc_engine_bytes_per_token(const lc_engine *engine, int pos);
/* The memory bandwidth of the engine's device in GB/s: a GPU's measured
 * device-to-device copy (bytes read + written), else lc_membw's median over
 * 1 GiB with `n_threads` threads. */
lc_status lc_engine_membw(lc_engine *engine, int n_threads, double *gb_s, lc_error *err);
int lc_engine_n_batch(const lc_engine *engine);

/* The forward contract shared by every backend: runs the batch (up to
 * lc_engine_n_batch entries) and writes one row of vocab_size logits per
 * requested entry, in batch order, to `logits`. */
lc_status lc_engine_forward(lc_engine *engine, const lc_batch *batch, float *logits, lc_error *err);

/* Sequences: the engine tracks how many positions each slot holds. */
int lc_engine_seq_pos(const lc_engine *engine, int seq);
void lc_engine_seq_reset(lc_engine *engine, int seq);

/* Appends tokens to a sequence (split into batches as needed) and returns the
 * logits after the last one; the row stays valid until the next call. */
lc_status lc_engine_prefill(lc_engine *engine, int seq, const lc_token *tokens, size_t n,
                            const float **logits, lc_error *err);

/* ---- sampler ------------------------------------------------------------ */

typedef struct lc_sampler_params {
    float temperature; /* 0: greedy (argmax) */
    float top_p;       /* nucleus mass in (0, 1]; 1 disables */
    int top_k;         /* keep the k most likely; 0 disables */
    uint64_t seed;
} lc_sampler_params;

typedef struct lc_sampler lc_sampler;

lc_status lc_sampler_create(const lc_sampler_params *params, int32_t vocab_size, lc_sampler **out,
                            lc_error *err);
void lc_sampler_free(lc_sampler *sampler);
int32_t lc_sampler_vocab_size(const lc_sampler *sampler);
/* Picks a token from raw logits; the logits buffer is used as scratch. */
lc_token lc_sampler_sample(lc_sampler *sampler, float *logits);

/* ---- generation: prefill + decode loop shared by every front end ------- */

typedef enum lc_stop_reason {
    LC_STOP_TOKEN,   /* a stop token (EOS, or BOS for llama2.c models) was sampled */
    LC_STOP_LENGTH,  /* max_new_tokens were generated */
    LC_STOP_CONTEXT, /* the sequence reached the context length */
    LC_STOP_CALLER,  /* the token callback asked to stop */
} lc_stop_reason;

/* The most stop tokens a front end passes to lc_generate. */
#define LC_MAX_STOP_TOKENS 16

/* Called with each generated token; return false to stop. It must not use
 * the engine (on a GPU the next step already runs while it is called;
 * lc_generate then fails with LC_ERR_ARG). */
typedef bool (*lc_token_fn)(void *user, lc_token token);

typedef struct lc_generate_params {
    int max_new_tokens;   /* < 0: until a stop token or the context is full */
    const lc_token *stop; /* tokens that end generation (not passed to on_token) */
    int n_stop;
} lc_generate_params;

typedef struct lc_generate_stats {
    int n_prompt;          /* tokens prefilled by this call */
    int n_generated;       /* tokens sampled and passed to on_token */
    int n_decoded;         /* single-token forward steps run */
    double prompt_seconds; /* the prefill */
    double decode_seconds; /* the single-token forward steps */
    lc_stop_reason stop;
    /* The last sampled token when it is not in the sequence yet (a stop
     * token, or the last one before a limit), else -1: a chat appends it
     * with the next turn. */
    lc_token pending;
} lc_generate_stats;

/* Appends `prompt` to sequence `seq`, then samples tokens, passing each to
 * on_token and appending it, until a stop condition. A prompt that does not
 * fit the context is LC_ERR_CONTEXT. */
lc_status lc_generate(lc_engine *engine, int seq, const lc_token *prompt, size_t n_prompt,
                      const lc_generate_params *params, lc_sampler *sampler, lc_token_fn on_token,
                      void *user, lc_generate_stats *stats, lc_error *err);

/* ---- chat templates ----------------------------------------------------- */

/* How a model family lays out a conversation (src/engine/chat.c). */
typedef enum lc_chat_template {
    LC_CHAT_NONE = 0, /* not a family llamac knows: --chat-template must say */
    LC_CHAT_LLAMA2,   /* <s>[INST] <<SYS>>...<</SYS>> user [/INST] reply </s> */
    LC_CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> */
    LC_CHAT_COUNT,
} lc_chat_template;

typedef struct lc_chat_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} lc_chat_message;

/* The token ids a template is built from and stops at. */
typedef struct lc_chat_marker_ids {
    lc_token bos, eos;
    lc_token start_header, end_header; /* Llama 3, else -1 */
    lc_token end_of_turn;              /* Llama 3 <|eot_id|>, else -1 */
    lc_token end_of_message; /* Llama 3.1 <|eom_id|> when the vocabulary has it, else -1 */
    lc_token end_of_reply;   /* what closes an assistant turn: EOS or <|eot_id|> */
} lc_chat_marker_ids;

const char *lc_chat_template_name(lc_chat_template t);
/* "llama2" or "llama3" (the --chat-template flag). */
lc_status lc_chat_template_by_name(const char *name, lc_chat_template *out, lc_error *err);
/* The family of a Jinja chat template (tokenizer_config.json's chat_template,
 * GGUF's tokenizer.chat_template); with none (NULL or ""), the family whose
 * markers the vocabulary has. LC_CHAT_NONE for a template of another family. */
lc_chat_template lc_chat_template_detect(const char *jinja, const lc_tokenizer *tok);
lc_status lc_chat_markers(const lc_tokenizer *tok, lc_chat_template t, lc_chat_marker_ids *m,
                          lc_error *err);
/* Renders messages into ids: the markers as ids, the messages' text as plain
 * text (special-token strings typed by a user stay text). `bos`: the ids start
 * the sequence (Llama 3's one <|begin_of_text|>; Llama 2 puts BOS before every
 * user turn regardless). `reply`: end with what asks the model for the
 * assistant's turn. *out is malloc'd. */
lc_status lc_chat_render(const lc_tokenizer *tok, lc_chat_template t, const lc_chat_message *msgs,
                         size_t n, bool bos, bool reply, lc_token **out, size_t *n_out,
                         lc_error *err);

/* ---- evaluation: perplexity and KL divergence over scored documents ---- */

/* One document: tokens[0] (BOS) starts a fresh KV-cache slot, and the logits
 * at positions first-1 .. n-2 are scored against tokens first .. n-1. */
typedef struct lc_eval_doc {
    const lc_token *tokens; /* (n) */
    int32_t n;              /* 2 .. the engine's context */
    int32_t first;          /* index of the first scored token, 1 .. n-1 */
} lc_eval_doc;

/* Standard mode, as llama.cpp's perplexity: `tokens` (the whole text, BOS
 * first) is cut into n_tokens / ctx non-overlapping windows of ctx tokens
 * (the remainder is dropped); each window's first token is overwritten with
 * BOS in place, and tokens ctx/2+1 .. ctx-1 of each window are scored, so the
 * first half is context only: ctx - 1 - ctx/2 tokens per window. ctx must be
 * at least 3 and at most n_tokens. *docs is malloc'd and points into tokens. */
lc_status lc_eval_windows(lc_token *tokens, size_t n_tokens, int ctx, lc_token bos,
                          lc_eval_doc **docs, int *n_docs, lc_error *err);

/* Per-line mode: every non-empty line of `text` (CR and LF stripped) is a
 * document of BOS + its tokens, truncated to ctx tokens, with every token
 * after BOS scored. A line that encodes to nothing is skipped. *tokens (the
 * ids of every document) and *docs (pointing into it) are malloc'd. */
lc_status lc_eval_lines(const lc_tokenizer *tok, const char *text, size_t len, int ctx,
                        lc_token **tokens, lc_eval_doc **docs, int *n_docs, lc_error *err);

/* A running mean (Welford): n values, their mean and the sum of squared
 * deviations from it. */
typedef struct lc_eval_stat {
    int64_t n;
    double mean, m2;
} lc_eval_stat;

void lc_eval_stat_add(lc_eval_stat *s, double x);
/* The standard error of the mean, sqrt(variance / n); 0 below two values. */
double lc_eval_stat_se(const lc_eval_stat *s);

typedef struct lc_eval_result {
    lc_eval_stat nll;      /* -log p(token) under the model, natural log, per scored token */
    lc_eval_stat base_nll; /* the same under the base model (with a base engine) */
    lc_eval_stat kl;       /* KL(base || model) of the two next-token distributions */
    int64_t n_top1_same;   /* scored positions where both argmaxes agree */
    int64_t n_evaluated;   /* tokens run through the model (context included) */
    double seconds;        /* wall time of the forwards and the scoring */
} lc_eval_result;

/* Called after each forward with the number of documents fully scored. */
typedef void (*lc_eval_progress_fn)(void *user, int docs_done, int docs_total);

/* Runs every document through `engine` (several at once in separate
 * KV-cache slots when the engine has them, prefilled in batches with logits
 * for the scored positions only) and accumulates the scored tokens' NLL.
 * With `base` (NULL: none), the same batches also run through it, which must
 * have the same vocabulary size, and base_nll, kl and n_top1_same are filled.
 * Log-softmax is computed in double. */
lc_status lc_eval_score(lc_engine *engine, lc_engine *base, const lc_eval_doc *docs, int n_docs,
                        lc_eval_progress_fn progress, void *user, lc_eval_result *out,
                        lc_error *err);

/* exp(mean NLL) and its standard error, propagated to first order:
 * ppl * se(NLL). */
double lc_eval_perplexity(const lc_eval_stat *nll, double *se);

/* ---- tools -------------------------------------------------------------- */

/* Writes a llama2.c legacy checkpoint with normal(0, 0.02) matrices and unit
 * norms for one of the named shapes: stories260K, stories15M, stories42M,
 * stories110M, llama2-7b. The weights depend on the seed only, not on the
 * number of threads drawing them. */
typedef void (*lc_progress_fn)(void *user, double fraction_done);
typedef struct lc_mkmodel_options {
    uint64_t seed;
    int n_layers;            /* 0: the shape's; else that many layers of the shape's size */
    int n_threads;           /* 0: every online core */
    lc_progress_fn progress; /* NULL: none */
    void *user;
} lc_mkmodel_options;
lc_status lc_mkmodel(const char *shape, const char *path, const lc_mkmodel_options *o,
                     lc_error *err);
/* The i-th shape lc_mkmodel knows, NULL past the last. */
const char *lc_mkmodel_shape(int i);

/* Converts a model to a GGUF v3 file llama.cpp can load, with the weights in
 * `type`: the llama.* hyperparameters, the full tokenizer (so the file runs
 * alone) and llama.cpp's tensor names. Norms stay f32; with block types a
 * matrix whose rows are not whole 32-element blocks stays f16; with q4_0 the
 * embedding and classifier are q8_0. Writes OUTPUT.tmp, renamed at the end. */
typedef struct lc_quantize_params {
    const char *input;     /* a llama2.c checkpoint, a GGUF file or a Hugging Face folder */
    const char *tokenizer; /* any lc_tokenizer_load input; NULL: the input's own (a GGUF's
                              vocabulary, a folder's tokenizer files) */
    const char *output;    /* the GGUF file to write */
    const char *type;      /* f32, f16, bf16, q8_0 or q4_0 */
    const char *name;      /* general.name; NULL: the input's file name */
} lc_quantize_params;

typedef struct lc_quantize_progress {
    int tensor, n_tensors; /* tensors written so far, of n_tensors */
    const char *name;      /* the tensor just written */
    lc_dtype dtype;        /* how it was stored */
    double mb_done, mb_total;
    const char *note; /* why it did not get the requested type, or NULL */
} lc_quantize_progress;

typedef void (*lc_quantize_fn)(void *user, const lc_quantize_progress *p);
lc_status lc_quantize(const lc_quantize_params *params, lc_quantize_fn progress, void *user,
                      lc_error *err);

/* Multi-threaded streaming read of a `bytes`-sized buffer; returns GB/s of
 * the fastest of `repeats` passes in *best and the median in *median. */
lc_status lc_membw(size_t bytes, int n_threads, int repeats, double *median, double *best,
                   lc_error *err);

/* CUDA devices this build can use: 0 when the build has no CUDA backend,
 * or there is no driver or GPU. */
int lc_cuda_device_count(void);

double lc_time_seconds(void); /* monotonic clock */
int lc_n_cores(void);

#ifdef __cplusplus
}
#endif
#endif /* LLAMAC_H */
