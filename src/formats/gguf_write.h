/* Writing GGUF version 3. Metadata and tensor descriptions are collected in
 * memory first (they are small); then the file is written front to back into
 * PATH.tmp, tensor data streamed one tensor at a time in the order the tensors
 * were added, and renamed over PATH only when everything was written. */
#ifndef LLAMAC_FORMATS_GGUF_WRITE_H
#define LLAMAC_FORMATS_GGUF_WRITE_H

#include <stdint.h>
#include <stdio.h>

#include "formats/gguf.h"
#include "llamac.h"

typedef struct byte_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed; /* an allocation failed; reported by gguf_writer_open */
} byte_buf;

typedef struct gguf_writer {
    uint32_t alignment;
    byte_buf meta; /* serialized key-value pairs */
    uint64_t n_kv;
    byte_buf infos; /* serialized tensor descriptions */
    uint64_t n_tensors;
    uint64_t *tensor_bytes; /* (n_tensors) each tensor's size, to check what is written */
    uint64_t data_bytes;    /* the data section so far, padded */
    /* while writing */
    FILE *f;
    char *path, *tmp_path;
    uint64_t next_tensor;
    uint64_t tensor_written; /* bytes of the current tensor so far */
} gguf_writer;

void gguf_writer_init(gguf_writer *w);
/* Frees everything; an unfinished file's temporary is removed. */
void gguf_writer_free(gguf_writer *w);

/* Metadata, in the order the file will hold it. general.alignment is added
 * by gguf_writer_init. */
void gguf_put_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_put_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_put_f32(gguf_writer *w, const char *key, float v);
void gguf_put_bool(gguf_writer *w, const char *key, bool v);
void gguf_put_string(gguf_writer *w, const char *key, const char *s, size_t len);
/* An array header; then exactly `count` gguf_put_elem_* calls of that type. */
void gguf_put_array(gguf_writer *w, const char *key, gguf_type type, uint64_t count);
void gguf_put_elem_string(gguf_writer *w, const char *s, size_t len);
void gguf_put_elem_f32(gguf_writer *w, float v);
void gguf_put_elem_i32(gguf_writer *w, int32_t v);

/* Describes the next tensor: row-major shape (outermost first, as tensor.h),
 * stored as `dtype`. Fails when the dtype has no GGUF type or a row is not a
 * whole number of blocks. */
lc_status gguf_add_tensor(gguf_writer *w, const char *name, lc_dtype dtype, int n_dims,
                          const int64_t *shape, lc_error *err);

/* Creates PATH.tmp and writes the header, metadata and descriptions. */
lc_status gguf_writer_open(gguf_writer *w, const char *path, lc_error *err);
/* Appends part of the current tensor's data; a tensor may come in several
 * pieces, and moves to the next one when complete. */
lc_status gguf_writer_data(gguf_writer *w, const void *data, uint64_t bytes, lc_error *err);
/* Checks that every tensor was written, closes and renames into place. */
lc_status gguf_writer_finish(gguf_writer *w, lc_error *err);

/* The GGUF (ggml) type number of a dtype; -1 for dtypes GGUF has no type for. */
int gguf_type_of_dtype(lc_dtype dtype);

#endif
