/* A Hugging Face LlamaForCausalLM folder: config.json (and the eos ids of
 * generation_config.json) as an lc_config; safetensors weights renamed by one
 * table onto the names the model binds (GGUF's: blk.N.attn_q.weight, ...), so
 * binding and the forward pass do not know the format. transformers rotates
 * q and k in halves (pair i with i + head_dim/2), llamac in adjacent pairs (2i,
 * 2i+1) as llama2.c and GGUF do: q and k rows are permuted at load into owned
 * memory, and norms stored as f16/bf16 become f32 there too. */
#ifndef LLAMAC_MODEL_LLAMA_HF_H
#define LLAMAC_MODEL_LLAMA_HF_H

#include <cjson/cJSON.h>

#include "model/model.h"

/* Fills m->config, m->special, m->safetensors, m->tensors, m->owned and
 * m->format from the folder `dir`; the caller binds the weights. */
lc_status llama_hf_load(lc_model *m, const char *dir, lc_error *err);

/* The config.json part: `config` (parsed JSON of the file `name`) into cfg
 * and the bos/eos ids it names into special. */
lc_status llama_hf_config(const cJSON *config, const char *name, lc_config *cfg,
                          model_tokens *special, lc_error *err);

#endif
