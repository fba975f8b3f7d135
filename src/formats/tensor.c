#include "formats/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/quant.h"

static const dtype_traits DTYPES[LC_DTYPE_COUNT] = {
    [LC_DTYPE_F32] = {"f32", 1, 4},
    [LC_DTYPE_F16] = {"f16", 1, 2},
    [LC_DTYPE_BF16] = {"bf16", 1, 2},
    [LC_DTYPE_Q8_0] = {"q8_0", QK, sizeof(block_q8_0)},
    [LC_DTYPE_Q4_0] = {"q4_0", QK, sizeof(block_q4_0)},
    [LC_DTYPE_Q8_RUNQ] = {"q8_runq", QK, sizeof(block_q8_runq)},
};

const dtype_traits *dtype_info(lc_dtype dtype) {
    return (unsigned)dtype < LC_DTYPE_COUNT ? &DTYPES[dtype] : NULL;
}

int64_t dtype_row_bytes(lc_dtype dtype, int64_t n) {
    const dtype_traits *d = dtype_info(dtype);
    if (!d || n < 0 || n % d->block) return -1;
    return n / d->block * (int64_t)d->block_bytes;
}

lc_dtype dtype_by_name(const char *name) {
    for (int t = 0; t < LC_DTYPE_COUNT; t++)
        if (!strcmp(DTYPES[t].name, name)) return (lc_dtype)t;
    return LC_DTYPE_COUNT;
}

const char *lc_dtype_name(lc_dtype dtype) {
    const dtype_traits *d = dtype_info(dtype);
    return d ? d->name : "?";
}

int64_t tensor_n_elements(const tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->shape[i];
    return n;
}

void tensor_table_free(tensor_table *tt) {
    free(tt->items);
    tt->items = NULL;
    tt->count = tt->cap = 0;
}

lc_status tensor_table_add(tensor_table *tt, const char *name, lc_dtype dtype, int n_dims,
                           const int64_t *shape, const void *data, lc_error *err) {
    if (strlen(name) >= TENSOR_NAME_MAX || n_dims < 1 || n_dims > TENSOR_MAX_DIMS ||
        !dtype_info(dtype))
        return lc_fail(err, LC_ERR_ARG, "tensor %s: bad description", name);
    if (tt->count == tt->cap) {
        int cap = tt->cap ? tt->cap * 2 : 64;
        tensor *items = realloc(tt->items, (size_t)cap * sizeof *items);
        if (!items) return lc_fail(err, LC_ERR_NOMEM, "out of memory for the tensor table");
        tt->items = items;
        tt->cap = cap;
    }
    tensor *t = &tt->items[tt->count++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++) t->shape[i] = shape[i];
    t->data = data;
    return LC_OK;
}

static void format_shape(char *buf, size_t cap, int n_dims, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n_dims && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

const tensor *tensor_table_get(const tensor_table *tt, const char *name, lc_dtype dtype, int n_dims,
                               const int64_t *shape, lc_error *err) {
    for (int i = 0; i < tt->count; i++) {
        const tensor *t = &tt->items[i];
        if (strcmp(t->name, name) != 0) continue;
        bool same = (dtype == LC_DTYPE_COUNT || t->dtype == dtype) && t->n_dims == n_dims;
        for (int d = 0; same && d < n_dims; d++) same = t->shape[d] == shape[d];
        if (same) return t;
        char want[96], got[96];
        format_shape(want, sizeof want, n_dims, shape);
        format_shape(got, sizeof got, t->n_dims, t->shape);
        lc_fail(err, LC_ERR_FORMAT, "tensor %s: expected %s %s, found %s %s", name,
                dtype == LC_DTYPE_COUNT ? "shape" : lc_dtype_name(dtype), want,
                lc_dtype_name(t->dtype), got);
        return NULL;
    }
    lc_fail(err, LC_ERR_FORMAT, "tensor %s: missing", name);
    return NULL;
}
