/* Tensors as file parsers describe them: a name, a dtype, a shape and a
 * pointer into a mapped file. The model layer asks for each tensor by name
 * with the shape and dtype it expects, and any mismatch is a load error. */
#ifndef LLAMAC_FORMATS_TENSOR_H
#define LLAMAC_FORMATS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

#define TENSOR_MAX_DIMS 4
#define TENSOR_NAME_MAX 64

/* Per-dtype facts, indexed by lc_dtype: add a dtype by adding a row. Every
 * dtype stores elements in blocks: `block` elements in `block_bytes` bytes
 * (1 element for the plain types). A row's length must be a whole number of blocks. */
typedef struct dtype_traits {
    const char *name;
    int block;
    size_t block_bytes;
} dtype_traits;

const dtype_traits *dtype_info(lc_dtype dtype);
/* Bytes of n elements of `dtype`; -1 when n is not a whole number of blocks. */
int64_t dtype_row_bytes(lc_dtype dtype, int64_t n);
/* The dtype called `name` ("f32", "q8_0", ...); LC_DTYPE_COUNT when none is. */
lc_dtype dtype_by_name(const char *name);

typedef struct tensor {
    char name[TENSOR_NAME_MAX];
    lc_dtype dtype;
    int n_dims;
    int64_t shape[TENSOR_MAX_DIMS]; /* row-major, outermost first: a matrix is {rows, cols} */
    const void *data;
} tensor;

int64_t tensor_n_elements(const tensor *t);

typedef struct tensor_table {
    tensor *items;
    int count, cap;
} tensor_table;

void tensor_table_free(tensor_table *tt);
lc_status tensor_table_add(tensor_table *tt, const char *name, lc_dtype dtype, int n_dims,
                           const int64_t *shape, const void *data, lc_error *err);
/* The tensor called `name`, checked against the expected dtype (LC_DTYPE_COUNT:
 * any) and shape; NULL with an error naming the tensor when it is missing or differs. */
const tensor *tensor_table_get(const tensor_table *tt, const char *name, lc_dtype dtype, int n_dims,
                               const int64_t *shape, lc_error *err);

#endif
