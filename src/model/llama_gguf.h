/* A GGUF file of architecture "llama": its hyperparameters (the llama.* keys)
 * as an lc_config. Tensor names are already ours (GGUF's), so the model
 * binds them unchanged; q and k rows are in the adjacent-pair RoPE layout
 * llama2.c uses (llama.cpp's converter permutes Hugging Face weights into
 * it), so nothing is permuted. */
#ifndef LLAMAC_MODEL_LLAMA_GGUF_H
#define LLAMAC_MODEL_LLAMA_GGUF_H

#include "formats/gguf.h"
#include "llamac.h"
#include "model/model.h"

lc_status llama_gguf_config(const gguf_file *g, lc_config *cfg, lc_error *err);
/* Points cfg->rope_freq_factors at the file's rope_freqs.weight when it has
 * one: F32, exactly head_dim / 2 finite positive values, else an error. */
lc_status llama_gguf_rope_freqs(const tensor_table *tensors, lc_config *cfg, lc_error *err);
/* tokenizer.ggml.bos_token_id, and eos_token_id and eot_token_id as the
 * end-of-sequence ids, when present; ids outside the vocabulary are errors. */
lc_status llama_gguf_special(const gguf_file *g, int32_t vocab_size, model_tokens *special,
                             lc_error *err);

#endif
