/* safetensors (Hugging Face): an 8-byte little-endian header length N, N
 * bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]},
 * "__metadata__": {...}}, then the data area that the offsets count from.
 * A model folder holds one model.safetensors, or shards that
 * model.safetensors.index.json's weight_map names. Tensors keep the file's
 * names (the model layer maps them) and point into the mappings, which stay
 * open until safetensors_close. */
#ifndef LLAMAC_FORMATS_SAFETENSORS_H
#define LLAMAC_FORMATS_SAFETENSORS_H

#include <stdint.h>

#include "formats/mapped_file.h"
#include "formats/tensor.h"
#include "llamac.h"

/* The header limit the safetensors library itself enforces. */
#define SAFETENSORS_HEADER_MAX 100000000u
#define SAFETENSORS_MAX_SHARDS 4096

typedef struct safetensors {
    mapped_file *files; /* (n_files) one per shard, in the order first named */
    int n_files;
} safetensors;

/* Parses one file of `size` bytes at `data` and adds every tensor to `tensors`
 * (F32, F16 and BF16; anything else is an error naming the tensor). `name`
 * (a path) starts every error message. On failure `tensors` is as before. */
lc_status safetensors_parse(const uint8_t *data, uint64_t size, const char *name,
                            tensor_table *tensors, lc_error *err);

/* Maps and parses the weights of the folder `dir`: every shard of
 * model.safetensors.index.json when it exists (each tensor must be in the
 * shard its weight_map names), else model.safetensors. A tensor name may
 * appear once only. */
lc_status safetensors_open(safetensors *st, const char *dir, tensor_table *tensors, lc_error *err);
void safetensors_close(safetensors *st);

#endif
