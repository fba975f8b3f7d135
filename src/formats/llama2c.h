/* llama2.c checkpoints: the legacy format (7 x int32 header, fp32) and the
 * export version 1 format (256-byte header, magic "ak42", fp32, norms first).
 * One layout description serves both the reader and mkmodel's writer. */
#ifndef LLAMAC_FORMATS_LLAMA2C_H
#define LLAMAC_FORMATS_LLAMA2C_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/mapped_file.h"
#include "formats/tensor.h"
#include "llamac.h"

#define LLAMA2C_MAGIC               0x616b3432u /* "ak42" read as a little-endian uint32 */
#define LLAMA2C_LEGACY_HEADER_BYTES 28
#define LLAMA2C_V1_HEADER_BYTES     256

typedef enum llama2c_version {
    LLAMA2C_LEGACY = 0,
    LLAMA2C_V1 = 1,
    LLAMA2C_V2 = 2, /* runq.c's int8 export (llama2c_v2.c) */
} llama2c_version;

/* Called for each tensor in file order. `skip` marks data the reader ignores
 * (the legacy format's RoPE tables). */
typedef lc_status (*llama2c_visit_fn)(void *user, const char *name, int n_dims,
                                      const int64_t *shape, bool skip, lc_error *err);

/* Walks the tensors a checkpoint of this config and version holds. */
lc_status llama2c_layout(const lc_config *cfg, llama2c_version version, llama2c_visit_fn fn,
                         void *user, lc_error *err);

/* Checks hyperparameters read from a header: positive, bounded, consistent.
 * head_dim 0 means dim / n_heads (checked to divide); a nonzero head_dim was
 * given by the file and only needs to be even and bounded. */
lc_status llama2c_check_config(const lc_config *cfg, lc_error *err);

/* Parses the header of a mapped checkpoint, checks that the file size equals
 * what the header implies, and adds every weight to `tensors`. Weights point
 * into the mapping, or (version 2) into *owned, a buffer the caller frees
 * after the tensors (NULL when there is none). *ffn_from is the file's FFN
 * width when a version-2 reader padded it to compute as runq.c does
 * (llama2c_v2.c), else 0. */
lc_status llama2c_read(const mapped_file *file, const char *path, lc_config *cfg,
                       tensor_table *tensors, llama2c_version *version, int32_t *ffn_from,
                       void **owned, lc_error *err);
/* The version-2 part of llama2c_read, after the magic and version were checked. */
lc_status llama2c_read_v2(const mapped_file *file, const char *path, lc_config *cfg,
                          tensor_table *tensors, int32_t *ffn_from, void **owned, lc_error *err);

/* The Llama 2 defaults llama2.c hard-codes and its files do not store. */
void llama2c_default_hparams(lc_config *cfg);

#endif
