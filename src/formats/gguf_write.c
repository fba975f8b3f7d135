#include "formats/gguf_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

/* Appends are unchecked at the call sites: a failed allocation marks the
 * buffer, and gguf_writer_open reports it once. */
static void put(byte_buf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *data = realloc(b->data, cap);
        if (!data) {
            b->failed = true;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u32(byte_buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(byte_buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(byte_buf *b, const char *s, size_t len) {
    put_u64(b, len);
    put(b, s, len);
}

static void put_key(gguf_writer *w, const char *key, gguf_type type) {
    put_str(&w->meta, key, strlen(key));
    put_u32(&w->meta, type);
    w->n_kv++;
}

void gguf_writer_init(gguf_writer *w) {
    memset(w, 0, sizeof *w);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    gguf_put_u32(w, "general.alignment", w->alignment);
}

void gguf_writer_free(gguf_writer *w) {
    if (w->f) {
        fclose(w->f);
        unlink(w->tmp_path); /* not finished: leave nothing half-written behind */
    }
    free(w->meta.data);
    free(w->infos.data);
    free(w->tensor_bytes);
    free(w->path);
    free(w->tmp_path);
    memset(w, 0, sizeof *w);
}

void gguf_put_u32(gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, GGUF_UINT32);
    put_u32(&w->meta, v);
}

void gguf_put_i32(gguf_writer *w, const char *key, int32_t v) {
    put_key(w, key, GGUF_INT32);
    put(&w->meta, &v, 4);
}

void gguf_put_f32(gguf_writer *w, const char *key, float v) {
    put_key(w, key, GGUF_FLOAT32);
    put(&w->meta, &v, 4);
}

void gguf_put_bool(gguf_writer *w, const char *key, bool v) {
    put_key(w, key, GGUF_BOOL);
    uint8_t b = v;
    put(&w->meta, &b, 1);
}

void gguf_put_string(gguf_writer *w, const char *key, const char *s, size_t len) {
    put_key(w, key, GGUF_STRING);
    put_str(&w->meta, s, len);
}

void gguf_put_array(gguf_writer *w, const char *key, gguf_type type, uint64_t count) {
    put_key(w, key, GGUF_ARRAY);
    put_u32(&w->meta, type);
    put_u64(&w->meta, count);
}

void gguf_put_elem_string(gguf_writer *w, const char *s, size_t len) { put_str(&w->meta, s, len); }
void gguf_put_elem_f32(gguf_writer *w, float v) { put(&w->meta, &v, 4); }
void gguf_put_elem_i32(gguf_writer *w, int32_t v) { put(&w->meta, &v, 4); }

int gguf_type_of_dtype(lc_dtype dtype) {
    switch (dtype) {
    case LC_DTYPE_F32: return GGML_TYPE_F32;
    case LC_DTYPE_F16: return GGML_TYPE_F16;
    case LC_DTYPE_BF16: return GGML_TYPE_BF16;
    case LC_DTYPE_Q8_0: return GGML_TYPE_Q8_0;
    case LC_DTYPE_Q4_0: return GGML_TYPE_Q4_0;
    default: return -1;
    }
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

lc_status gguf_add_tensor(gguf_writer *w, const char *name, lc_dtype dtype, int n_dims,
                          const int64_t *shape, lc_error *err) {
    int type = gguf_type_of_dtype(dtype);
    if (type < 0)
        return lc_fail(err, LC_ERR_UNSUPPORTED, "tensor %s: GGUF has no type for %s", name,
                       lc_dtype_name(dtype));
    bool bad = n_dims < 1 || n_dims > GGUF_MAX_DIMS || strlen(name) >= TENSOR_NAME_MAX;
    for (int d = 0; !bad && d < n_dims; d++) bad = shape[d] < 1;
    if (bad) return lc_fail(err, LC_ERR_ARG, "tensor %s: bad description", name);
    /* GGUF lists dimensions innermost first: our {rows, cols} is ne = {cols, rows}. */
    int64_t row = dtype_row_bytes(dtype, shape[n_dims - 1]);
    if (row < 0)
        return lc_fail(err, LC_ERR_ARG,
                       "tensor %s: %lld columns is not a whole number of %s blocks", name,
                       (long long)shape[n_dims - 1], lc_dtype_name(dtype));
    uint64_t bytes = (uint64_t)row;
    for (int d = 0; d < n_dims - 1; d++) bytes *= (uint64_t)shape[d];
    uint64_t *sizes = realloc(w->tensor_bytes, (w->n_tensors + 1) * sizeof *sizes);
    if (!sizes) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    w->tensor_bytes = sizes;
    sizes[w->n_tensors++] = bytes;
    put_str(&w->infos, name, strlen(name));
    put_u32(&w->infos, (uint32_t)n_dims);
    for (int d = n_dims - 1; d >= 0; d--) put_u64(&w->infos, (uint64_t)shape[d]);
    put_u32(&w->infos, (uint32_t)type);
    put_u64(&w->infos, w->data_bytes);
    w->data_bytes += align_up(bytes, w->alignment);
    return LC_OK;
}

static lc_status write_all(gguf_writer *w, const void *p, size_t n, lc_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return lc_fail(err, LC_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(errno));
    return LC_OK;
}

static lc_status write_padding(gguf_writer *w, uint64_t at, lc_error *err) {
    static const uint8_t zeros[256];
    uint64_t pad = align_up(at, w->alignment) - at;
    for (; pad > 0; pad -= pad < sizeof zeros ? pad : sizeof zeros) {
        lc_status st = write_all(w, zeros, pad < sizeof zeros ? pad : sizeof zeros, err);
        if (st) return st;
    }
    return LC_OK;
}

lc_status gguf_writer_open(gguf_writer *w, const char *path, lc_error *err) {
    if (w->meta.failed || w->infos.failed) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    size_t n = strlen(path);
    w->path = malloc(n + 1);
    w->tmp_path = malloc(n + 5);
    if (!w->path || !w->tmp_path) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    memcpy(w->path, path, n + 1);
    snprintf(w->tmp_path, n + 5, "%s.tmp", path);
    if (!(w->f = fopen(w->tmp_path, "wb")))
        return lc_fail(err, LC_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));
    byte_buf header = {0};
    put(&header, GGUF_MAGIC, 4);
    put_u32(&header, 3);
    put_u64(&header, w->n_tensors);
    put_u64(&header, w->n_kv);
    lc_status st = header.failed ? lc_fail(err, LC_ERR_NOMEM, "out of memory") : LC_OK;
    if (!st) st = write_all(w, header.data, header.len, err);
    free(header.data);
    if (!st) st = write_all(w, w->meta.data, w->meta.len, err);
    if (!st) st = write_all(w, w->infos.data, w->infos.len, err);
    if (!st) st = write_padding(w, 24 + w->meta.len + w->infos.len, err);
    return st;
}

lc_status gguf_writer_data(gguf_writer *w, const void *data, uint64_t bytes, lc_error *err) {
    if (w->next_tensor >= w->n_tensors ||
        bytes > w->tensor_bytes[w->next_tensor] - w->tensor_written)
        return lc_fail(err, LC_ERR_ARG, "%s: more tensor data than the descriptions hold", w->path);
    lc_status st = write_all(w, data, (size_t)bytes, err);
    if (st) return st;
    w->tensor_written += bytes;
    if (w->tensor_written == w->tensor_bytes[w->next_tensor]) {
        if ((st = write_padding(w, w->tensor_written, err))) return st;
        w->next_tensor++;
        w->tensor_written = 0;
    }
    return LC_OK;
}

lc_status gguf_writer_finish(gguf_writer *w, lc_error *err) {
    if (w->next_tensor != w->n_tensors)
        return lc_fail(err, LC_ERR_ARG, "%s: %llu of %llu tensors written", w->path,
                       (unsigned long long)w->next_tensor, (unsigned long long)w->n_tensors);
    int flushed = fflush(w->f), synced = fsync(fileno(w->f)), closed = fclose(w->f);
    w->f = NULL;
    if (flushed || synced || closed) {
        int e = errno;
        unlink(w->tmp_path);
        return lc_fail(err, LC_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(e));
    }
    if (rename(w->tmp_path, w->path) != 0) {
        int e = errno;
        unlink(w->tmp_path);
        return lc_fail(err, LC_ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(e));
    }
    return LC_OK;
}
