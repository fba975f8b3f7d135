/* The model description every backend runs: the config plus one pointer per
 * weight, each looked up by name with its expected shape and dtype. Backends
 * read this struct; only model.c fills it. */
#ifndef LLAMAC_MODEL_MODEL_H
#define LLAMAC_MODEL_MODEL_H

#include "formats/mapped_file.h"
#include "formats/tensor.h"
#include "llamac.h"

/* A weight: where it lives and how it is stored. Shapes are {rows, cols}
 * for matrices (a matrix multiplies as out[rows] = W x[cols]), {n, 1} for vectors. */
typedef struct weight {
    const void *data;
    lc_dtype dtype;
    int64_t rows, cols;
} weight;

typedef struct layer_weights {
    weight attn_norm; /* (dim) */
    weight wq;        /* (n_heads * head_dim, dim) */
    weight wk;        /* (n_kv_heads * head_dim, dim) */
    weight wv;        /* (n_kv_heads * head_dim, dim) */
    weight wo;        /* (dim, n_heads * head_dim) */
    weight ffn_norm;  /* (dim) */
    weight w_gate;    /* w1 (hidden_dim, dim) */
    weight w_up;      /* w3 (hidden_dim, dim) */
    weight w_down;    /* w2 (dim, hidden_dim) */
} layer_weights;

typedef struct model_weights {
    weight token_embd;     /* (vocab_size, dim) */
    layer_weights *layers; /* (n_layers) */
    weight output_norm;    /* (dim) */
    weight output;         /* (vocab_size, dim); the embedding table when shared */
} model_weights;

/* Every distinct weight of `w` (the shared classifier once, as token_embd):
 * writes up to `cap` pointers and returns how many there are. */
int model_weight_list(const model_weights *w, int n_layers, weight **out, int cap);
uint64_t weight_bytes(const weight *w);
/* Bytes of weights one decoding step reads (lc_model_bytes_per_token for a
 * backend's own copy of the weights, in whatever dtype it stores them). */
uint64_t model_weights_bytes_per_token(const model_weights *w, int n_layers);
/* RoPE's frequency of each pair i < head_dim / 2: theta^(-2i / head_dim),
 * then the config's scaling, all in float as transformers computes its
 * inv_freq (so logits match it). */
void model_rope_freqs(const lc_config *c, float *freq);
/* The per-frequency divisors (head_dim / 2) that turn the unscaled
 * frequencies into the config's: its rope_freq_factors, or Llama 3.1
 * scaling's, chosen so that base / factor gives model_rope_freqs exactly.
 * 1 everywhere for unscaled and linear scaling (which GGUF keeps as keys). */
void model_rope_freq_factors(const lc_config *c, float *factors);
/* RoPE's (cos, sin) for every position < n_ctx and pair i < head_dim / 2, at
 * [(pos * head_dim / 2 + i) * 2], the angle pos * freq in float as llama2.c and
 * transformers do: one table shared by every backend, so they rotate alike. */
void model_rope_table(const lc_config *c, int n_ctx, float *cos_sin);

/* Lets the pages of every file the model maps go (MADV_DONTNEED): for a
 * backend that copied the weights and reads only its copy. They fault back
 * in from the page cache if anything reads them. */
void model_drop_file_pages(const lc_model *m);

/* Special ids the model's files name (the tokenizer may know others). */
#define MODEL_MAX_EOS 8
typedef struct model_tokens {
    lc_token bos; /* -1: none named */
    int n_eos;
    lc_token eos[MODEL_MAX_EOS];
} model_tokens;

struct lc_model {
    lc_config config;
    model_weights weights;
    mapped_file file;       /* kept mapped while weights point into it */
    struct gguf_file *gguf; /* the parsed header of a GGUF file (its tokenizer), else NULL */
    struct safetensors *safetensors; /* a Hugging Face folder's mapped shards, else NULL */
    tensor_table tensors;
    void *owned; /* weights a loader converted (llama2.c version 2, Hugging Face q/k and
                    norms), freed after the tensors */
    model_tokens special;
    char format[128];
    char *path;          /* as given to lc_model_load, for messages */
    char *chat_template; /* the file's Jinja chat template, NUL-terminated, or NULL */
};

#endif
