/* A GGUF file of architecture "llama": its hyperparameters (the llama.* keys)
 * as an lc_config. Tensor names are already ours (GGUF's), so the model
 * binds them unchanged; q and k rows are in the adjacent-pair RoPE layout
 * llama2.c uses (llama.cpp's converter permutes Hugging Face weights into
 * it), so nothing is permuted. */
#ifndef LLAMAC_MODEL_LLAMA_GGUF_H
#define LLAMAC_MODEL_LLAMA_GGUF_H

#include "formats/gguf.h"
#include "llamac.h"

lc_status llama_gguf_config(const gguf_file *g, lc_config *cfg, lc_error *err);

#endif
