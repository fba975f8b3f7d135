/* GGUF (versions 2 and 3), the file format of llama.cpp / ggml: a header,
 * typed metadata key-value pairs, tensor descriptions, then the tensor data,
 * aligned. The parser reads from a byte buffer (a file mapping, or the
 * fuzzer's input), checks every length, count and offset against the bytes
 * that are really there, and keeps pointers into the buffer: nothing is
 * copied but the tables, so the buffer must outlive the gguf_file.
 * Layout facts follow the GGUF spec (ggml docs/gguf.md). */
#ifndef LLAMAC_FORMATS_GGUF_H
#define LLAMAC_FORMATS_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/tensor.h"
#include "llamac.h"

#define GGUF_MAGIC             "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS          4

/* Metadata value types, numbered as in the file. */
typedef enum gguf_type {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* ggml tensor types this project can hold; every other number is refused. */
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_BF16 = 30,
};

/* A length-prefixed string in the buffer: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_array {
    gguf_type type; /* element type (GGUF_ARRAY for nested arrays) */
    uint64_t count;
    const uint8_t *data; /* the first element, already checked to lie in the buffer */
} gguf_array;

typedef struct gguf_value {
    gguf_type type;
    union {
        uint64_t u; /* UINT8..UINT64, BOOL (0 or 1) */
        int64_t i;  /* INT8..INT64 */
        double f;   /* FLOAT32, FLOAT64 */
        gguf_str s;
        gguf_array a;
    };
} gguf_value;

typedef struct gguf_kv {
    gguf_str key;
    gguf_value value;
} gguf_kv;

typedef struct gguf_tensor_info {
    gguf_str name;
    int n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* as the file has them: ne[0] is the innermost (columns) */
    uint32_t ggml_type;
    lc_dtype dtype;
    uint64_t offset; /* from the start of the file, aligned */
    uint64_t bytes;
} gguf_tensor_info;

typedef struct gguf_file {
    const uint8_t *data; /* the whole file */
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    gguf_kv *kv; /* (n_kv) */
    uint64_t n_tensors;
    gguf_tensor_info *tensors; /* (n_tensors) */
    uint64_t data_offset;      /* where the tensor data section starts */
} gguf_file;

/* Parses `size` bytes at `data`. `name` (a path) starts every error message.
 * On failure the gguf_file is left empty (gguf_free is still safe). */
lc_status gguf_parse(gguf_file *g, const uint8_t *data, uint64_t size, const char *name,
                     lc_error *err);
void gguf_free(gguf_file *g);

/* True when the buffer starts with the GGUF magic. */
bool gguf_is_gguf(const uint8_t *data, uint64_t size);

/* The pair called `key`, or NULL. */
const gguf_kv *gguf_find(const gguf_file *g, const char *key);
/* Typed look-ups: LC_OK and the value; LC_ERR_FORMAT when the key is missing
 * (unless `optional`, which leaves *out alone and returns LC_OK) or holds a
 * value of another kind, out of range for the C type. */
lc_status gguf_get_int(const gguf_file *g, const char *key, bool optional, int64_t lo, int64_t hi,
                       int64_t *out, lc_error *err);
lc_status gguf_get_float(const gguf_file *g, const char *key, bool optional, double *out,
                         lc_error *err);
lc_status gguf_get_bool(const gguf_file *g, const char *key, bool optional, bool *out,
                        lc_error *err);
lc_status gguf_get_string(const gguf_file *g, const char *key, bool optional, gguf_str *out,
                          lc_error *err);
/* An array of element type `type` (any length); `optional` as above. */
lc_status gguf_get_array(const gguf_file *g, const char *key, gguf_type type, bool optional,
                         gguf_array *out, lc_error *err);

/* Array elements (the array was validated by gguf_parse, so these are in bounds). */
/* Numeric element i as double / int64 (for the integer, float and bool types;
 * values outside int64 are clamped). */
double gguf_array_float(const gguf_array *a, uint64_t i);
int64_t gguf_array_int(const gguf_array *a, uint64_t i);
/* String elements are variable-length: walk them in order with a pointer that
 * starts at a->data. Returns the string at *at and advances it. */
gguf_str gguf_array_next_string(const uint8_t **at);

bool gguf_str_eq(gguf_str s, const char *c);
const char *gguf_type_name(gguf_type type);

/* Adds every tensor to the table with our row-major shape (GGUF's ne reversed:
 * a matrix of ne = {cols, rows} becomes {rows, cols}). */
lc_status gguf_tensor_table(const gguf_file *g, tensor_table *tt, lc_error *err);

#endif
