/* The GGUF parser. A cursor walks the buffer; every read first checks that
 * the bytes are there, and every count is capped by the bytes left (an entry
 * takes at least a known number of bytes), so a hostile header can neither
 * make us read out of bounds nor allocate more than the file could describe.
 * Sizes are computed with explicit overflow checks. Multi-byte fields are
 * little-endian, read with memcpy (this project runs on little-endian hosts). */
#include "formats/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_ARRAY_DEPTH 8 /* nested arrays deeper than this are refused (stack bound) */

typedef struct cursor {
    const uint8_t *data;
    uint64_t size, at; /* invariant: at <= size */
    const char *name;  /* for messages */
    lc_error *err;
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->at; }

static lc_status truncated(cursor *c, const char *what) {
    return lc_fail(c->err, LC_ERR_FORMAT,
                   "%s: truncated: %s at offset %" PRIu64 " runs past the end", c->name, what,
                   c->at);
}

static lc_status read_bytes(cursor *c, void *out, uint64_t n, const char *what) {
    if (n > left(c)) return truncated(c, what);
    memcpy(out, c->data + c->at, (size_t)n);
    c->at += n;
    return LC_OK;
}

static lc_status read_u32(cursor *c, uint32_t *v, const char *what) {
    return read_bytes(c, v, 4, what);
}

static lc_status read_u64(cursor *c, uint64_t *v, const char *what) {
    return read_bytes(c, v, 8, what);
}

static lc_status read_str(cursor *c, gguf_str *s, const char *what) {
    lc_status st = read_u64(c, &s->len, what);
    if (st) return st;
    if (s->len > left(c))
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: %s at offset %" PRIu64 " has length %" PRIu64
                       ", past the end of the file (%" PRIu64 " bytes left)",
                       c->name, what, c->at - 8, s->len, left(c));
    s->ptr = (const char *)c->data + c->at;
    c->at += s->len;
    return LC_OK;
}

/* Bytes of one fixed-size value; 0 for strings and arrays. */
static uint64_t scalar_bytes(gguf_type t) {
    switch (t) {
    case GGUF_UINT8:
    case GGUF_INT8:
    case GGUF_BOOL: return 1;
    case GGUF_UINT16:
    case GGUF_INT16: return 2;
    case GGUF_UINT32:
    case GGUF_INT32:
    case GGUF_FLOAT32: return 4;
    case GGUF_UINT64:
    case GGUF_INT64:
    case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* The fewest bytes one array element of type t can take: caps element counts. */
static uint64_t min_element_bytes(gguf_type t) {
    if (t == GGUF_STRING) return 8;    /* the length */
    if (t == GGUF_ARRAY) return 4 + 8; /* element type and count */
    return scalar_bytes(t);
}

const char *gguf_type_name(gguf_type t) {
    static const char *names[GGUF_TYPE_COUNT] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                 "int32",  "float32", "bool",   "string", "array",
                                                 "uint64", "int64",   "float64"};
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "unknown";
}

/* Decodes a scalar at p (type has scalar_bytes > 0) into v. */
static void decode_scalar(gguf_type t, const uint8_t *p, gguf_value *v) {
    v->type = t;
    switch (t) {
    case GGUF_UINT8:
    case GGUF_BOOL: v->u = p[0]; break;
    case GGUF_INT8: v->i = (int8_t)p[0]; break;
    case GGUF_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        v->u = x;
    } break;
    case GGUF_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        v->i = x;
    } break;
    case GGUF_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        v->u = x;
    } break;
    case GGUF_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        v->i = x;
    } break;
    case GGUF_FLOAT32: {
        float x;
        memcpy(&x, p, 4);
        v->f = x;
    } break;
    case GGUF_UINT64: memcpy(&v->u, p, 8); break;
    case GGUF_INT64: memcpy(&v->i, p, 8); break;
    case GGUF_FLOAT64: memcpy(&v->f, p, 8); break;
    default: break;
    }
}

static lc_status read_value(cursor *c, gguf_type type, gguf_value *v, int depth, gguf_str key);

/* An array: element type, count, elements. Every element is checked here, so
 * later accessors can walk it without checks. */
static lc_status read_array(cursor *c, gguf_array *a, int depth, gguf_str key) {
    uint32_t type = 0;
    lc_status st;
    if ((st = read_u32(c, &type, "an array's element type"))) return st;
    if (type >= GGUF_TYPE_COUNT)
        return lc_fail(c->err, LC_ERR_FORMAT, "%s: metadata %.*s: array of unknown type %u",
                       c->name, (int)(key.len > 64 ? 64 : key.len), key.ptr, type);
    if (type == GGUF_ARRAY && depth >= MAX_ARRAY_DEPTH)
        return lc_fail(c->err, LC_ERR_FORMAT, "%s: metadata %.*s: arrays nested deeper than %d",
                       c->name, (int)(key.len > 64 ? 64 : key.len), key.ptr, MAX_ARRAY_DEPTH);
    a->type = (gguf_type)type;
    if ((st = read_u64(c, &a->count, "an array's length"))) return st;
    if (a->count > left(c) / min_element_bytes(a->type))
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: metadata %.*s: array of %" PRIu64
                       " %s elements cannot fit in the %" PRIu64 " bytes left",
                       c->name, (int)(key.len > 64 ? 64 : key.len), key.ptr, a->count,
                       gguf_type_name(a->type), left(c));
    a->data = c->data + c->at;
    uint64_t size = scalar_bytes(a->type);
    if (size && a->type != GGUF_BOOL) {
        c->at += a->count * size; /* fits: count <= left / size */
        return LC_OK;
    }
    for (uint64_t i = 0; i < a->count; i++) {
        gguf_value elem;
        if ((st = read_value(c, a->type, &elem, depth + 1, key))) return st;
    }
    return LC_OK;
}

static lc_status read_value(cursor *c, gguf_type type, gguf_value *v, int depth, gguf_str key) {
    v->type = type;
    uint64_t size = scalar_bytes(type);
    if (size) {
        if (size > left(c)) return truncated(c, "a metadata value");
        decode_scalar(type, c->data + c->at, v);
        if (type == GGUF_BOOL && v->u > 1)
            return lc_fail(c->err, LC_ERR_FORMAT,
                           "%s: metadata %.*s: bool value %" PRIu64 " is neither 0 nor 1", c->name,
                           (int)(key.len > 64 ? 64 : key.len), key.ptr, v->u);
        c->at += size;
        return LC_OK;
    }
    if (type == GGUF_STRING) return read_str(c, &v->s, "a string value");
    return read_array(c, &v->a, depth, key);
}

static int compare_str(const void *a, const void *b) {
    const gguf_str *x = a, *y = b;
    uint64_t n = x->len < y->len ? x->len : y->len;
    int d = n ? memcmp(x->ptr, y->ptr, (size_t)n) : 0;
    return d ? d : (x->len > y->len) - (x->len < y->len);
}

/* The first name that occurs twice among n names (stride bytes apart), or NULL. */
static const gguf_str *find_duplicate(const void *items, uint64_t n, size_t stride,
                                      gguf_str *scratch) {
    for (uint64_t i = 0; i < n; i++)
        scratch[i] = *(const gguf_str *)((const char *)items + i * stride);
    qsort(scratch, (size_t)n, sizeof *scratch, compare_str);
    for (uint64_t i = 1; i < n; i++)
        if (compare_str(&scratch[i - 1], &scratch[i]) == 0) return &scratch[i];
    return NULL;
}

static lc_status check_duplicates(const gguf_file *g, cursor *c) {
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    if (n < 2) return LC_OK;
    gguf_str *scratch = malloc((size_t)n * sizeof *scratch);
    if (!scratch) return lc_fail(c->err, LC_ERR_NOMEM, "%s: out of memory", c->name);
    lc_status st = LC_OK;
    const gguf_str *dup = find_duplicate(g->kv, g->n_kv, sizeof *g->kv, scratch);
    if (dup)
        st = lc_fail(c->err, LC_ERR_FORMAT, "%s: metadata key %.*s appears twice", c->name,
                     (int)(dup->len > 64 ? 64 : dup->len), dup->ptr);
    else if ((dup = find_duplicate(g->tensors, g->n_tensors, sizeof *g->tensors, scratch)))
        st = lc_fail(c->err, LC_ERR_FORMAT, "%s: tensor %.*s appears twice", c->name, (int)dup->len,
                     dup->ptr);
    free(scratch);
    return st;
}

static lc_status read_header_counts(gguf_file *g, cursor *c) {
    lc_status st;
    if ((st = read_u32(c, &g->version, "the version"))) return st;
    if (g->version == 1)
        return lc_fail(c->err, LC_ERR_UNSUPPORTED,
                       "%s: GGUF version 1 is not supported (versions 2 and 3 are)", c->name);
    if (g->version != 2 && g->version != 3) {
        bool swapped = (g->version & 0xffffu) == 0 && g->version != 0;
        return lc_fail(c->err, LC_ERR_UNSUPPORTED,
                       "%s: GGUF version %" PRIu32 " is not supported%s", c->name, g->version,
                       swapped ? " (a big-endian file?)" : " (versions 2 and 3 are)");
    }
    if ((st = read_u64(c, &g->n_tensors, "the tensor count"))) return st;
    if ((st = read_u64(c, &g->n_kv, "the metadata count"))) return st;
    /* A pair takes at least 13 bytes (key length, type, one byte of value) and a
     * tensor description 32 (name length, n_dims, one dimension, type, offset). */
    if (g->n_kv > left(c) / 13)
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: the header claims %" PRIu64 " metadata pairs; %" PRIu64
                       " bytes cannot hold them",
                       c->name, g->n_kv, left(c));
    if (g->n_tensors > (left(c) - g->n_kv * 13) / 32)
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: the header claims %" PRIu64 " tensors; %" PRIu64
                       " bytes cannot hold them",
                       c->name, g->n_tensors, left(c));
    return LC_OK;
}

static lc_status read_metadata(gguf_file *g, cursor *c) {
    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    if (!g->kv) return lc_fail(c->err, LC_ERR_NOMEM, "%s: out of memory for metadata", c->name);
    lc_status st;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        uint32_t type = 0;
        if ((st = read_str(c, &kv->key, "a metadata key"))) return st;
        if ((st = read_u32(c, &type, "a metadata type"))) return st;
        if (type >= GGUF_TYPE_COUNT)
            return lc_fail(c->err, LC_ERR_FORMAT, "%s: metadata %.*s has unknown type %u", c->name,
                           (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.ptr, type);
        if ((st = read_value(c, (gguf_type)type, &kv->value, 0, kv->key))) return st;
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find(g, "general.alignment");
    if (al) {
        if (al->value.type != GGUF_UINT32)
            return lc_fail(c->err, LC_ERR_FORMAT, "%s: general.alignment is a %s, not a uint32",
                           c->name, gguf_type_name(al->value.type));
        uint64_t a = al->value.u;
        if (a == 0 || (a & (a - 1)) != 0)
            return lc_fail(c->err, LC_ERR_FORMAT,
                           "%s: general.alignment %" PRIu64 " is not a power of two", c->name, a);
        g->alignment = (uint32_t)a;
    }
    return LC_OK;
}

static lc_dtype dtype_of_ggml(uint32_t t) {
    switch (t) {
    case GGML_TYPE_F32: return LC_DTYPE_F32;
    case GGML_TYPE_F16: return LC_DTYPE_F16;
    case GGML_TYPE_Q4_0: return LC_DTYPE_Q4_0;
    case GGML_TYPE_Q8_0: return LC_DTYPE_Q8_0;
    case GGML_TYPE_BF16: return LC_DTYPE_BF16;
    default: return LC_DTYPE_COUNT;
    }
}

static lc_status read_tensor_info(gguf_file *g, cursor *c, gguf_tensor_info *t) {
    lc_status st;
    uint32_t n_dims = 0;
    if ((st = read_str(c, &t->name, "a tensor name"))) return st;
    const int nl = (int)(t->name.len > 64 ? 64 : t->name.len);
    if (t->name.len >= TENSOR_NAME_MAX || memchr(t->name.ptr, 0, (size_t)t->name.len))
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: tensor name %.*s is longer than %d bytes or holds a NUL", c->name, nl,
                       t->name.ptr, TENSOR_NAME_MAX - 1);
    if ((st = read_u32(c, &n_dims, "a tensor's dimension count"))) return st;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return lc_fail(c->err, LC_ERR_FORMAT, "%s: tensor %.*s has %u dimensions (1 to %d allowed)",
                       c->name, nl, t->name.ptr, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t elements = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if ((st = read_u64(c, &t->ne[d], "a tensor dimension"))) return st;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / elements)
            return lc_fail(c->err, LC_ERR_FORMAT,
                           "%s: tensor %.*s: dimension %d is %" PRIu64
                           " (zero, or the size overflows)",
                           c->name, nl, t->name.ptr, d, t->ne[d]);
        elements *= t->ne[d];
    }
    if ((st = read_u32(c, &t->ggml_type, "a tensor type"))) return st;
    t->dtype = dtype_of_ggml(t->ggml_type);
    if (t->dtype == LC_DTYPE_COUNT)
        return lc_fail(c->err, LC_ERR_UNSUPPORTED, "%s: unsupported tensor type %u (%.*s)", c->name,
                       t->ggml_type, nl, t->name.ptr);
    /* Rows are whole blocks, and the byte size must fit in an int64 (an f32
     * tensor of 2^62 elements would wrap around to a small size). */
    const dtype_traits *dt = dtype_info(t->dtype);
    if (t->ne[0] % (uint64_t)dt->block)
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: tensor %.*s: %" PRIu64
                       " columns is not a whole number of %s blocks (%d)",
                       c->name, nl, t->name.ptr, t->ne[0], dt->name, dt->block);
    if (elements / (uint64_t)dt->block > (uint64_t)INT64_MAX / dt->block_bytes)
        return lc_fail(c->err, LC_ERR_FORMAT, "%s: tensor %.*s: its size in bytes overflows",
                       c->name, nl, t->name.ptr);
    t->bytes = elements / (uint64_t)dt->block * dt->block_bytes;
    if ((st = read_u64(c, &t->offset, "a tensor offset"))) return st;
    if (t->offset % g->alignment)
        return lc_fail(c->err, LC_ERR_FORMAT,
                       "%s: tensor %.*s: offset %" PRIu64 " is not a multiple of the alignment %u",
                       c->name, nl, t->name.ptr, t->offset, g->alignment);
    return LC_OK;
}

/* Every tensor's bytes lie inside the file, after the aligned data start. */
static lc_status place_tensors(gguf_file *g, cursor *c) {
    g->data_offset = (c->at + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor_info *t = &g->tensors[i];
        uint64_t room = g->data_offset <= g->size ? g->size - g->data_offset : 0;
        if (t->offset > room || t->bytes > room - t->offset)
            return lc_fail(c->err, LC_ERR_FORMAT,
                           "%s: tensor %.*s: %" PRIu64 " bytes at data offset %" PRIu64
                           " run past the end of the file (%" PRIu64 " bytes of data)",
                           c->name, (int)t->name.len, t->name.ptr, t->bytes, t->offset, room);
        t->offset += g->data_offset;
    }
    return LC_OK;
}

bool gguf_is_gguf(const uint8_t *data, uint64_t size) {
    return size >= 4 && memcmp(data, GGUF_MAGIC, 4) == 0;
}

lc_status gguf_parse(gguf_file *g, const uint8_t *data, uint64_t size, const char *name,
                     lc_error *err) {
    memset(g, 0, sizeof *g);
    cursor c = {data, size, 0, name, err};
    if (!gguf_is_gguf(data, size))
        return lc_fail(err, LC_ERR_FORMAT, "%s: not a GGUF file (no GGUF magic)", name);
    c.at = 4;
    g->data = data;
    g->size = size;
    lc_status st = read_header_counts(g, &c);
    if (!st) st = read_metadata(g, &c);
    if (!st && !(g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors)))
        st = lc_fail(err, LC_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors", name,
                     g->n_tensors);
    for (uint64_t i = 0; !st && i < g->n_tensors; i++) st = read_tensor_info(g, &c, &g->tensors[i]);
    if (!st) st = place_tensors(g, &c);
    if (!st) st = check_duplicates(g, &c);
    if (st) gguf_free(g);
    return st;
}

void gguf_free(gguf_file *g) {
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

bool gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

/* Looks up key; NULL with LC_OK in *st when missing and optional. */
static const gguf_kv *lookup(const gguf_file *g, const char *key, bool optional, lc_status *st,
                             lc_error *err) {
    const gguf_kv *kv = gguf_find(g, key);
    *st = kv || optional ? LC_OK : lc_fail(err, LC_ERR_FORMAT, "missing metadata key %s", key);
    return kv;
}

static lc_status wrong_type(const gguf_kv *kv, const char *key, const char *want, lc_error *err) {
    return lc_fail(err, LC_ERR_FORMAT, "metadata %s is a %s, expected %s", key,
                   gguf_type_name(kv->value.type), want);
}

static bool is_signed(gguf_type t) {
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

static bool is_unsigned(gguf_type t) {
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

lc_status gguf_get_int(const gguf_file *g, const char *key, bool optional, int64_t lo, int64_t hi,
                       int64_t *out, lc_error *err) {
    lc_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    gguf_type t = kv->value.type;
    if (!is_signed(t) && !is_unsigned(t)) return wrong_type(kv, key, "an integer", err);
    bool big = is_unsigned(t) && kv->value.u > (uint64_t)INT64_MAX;
    int64_t v = is_signed(t) ? kv->value.i : (int64_t)kv->value.u;
    if (big || v < lo || v > hi)
        return lc_fail(err, LC_ERR_FORMAT,
                       "metadata %s = %s%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                       key, big ? ">" : "", big ? INT64_MAX : v, lo, hi);
    *out = v;
    return LC_OK;
}

lc_status gguf_get_float(const gguf_file *g, const char *key, bool optional, double *out,
                         lc_error *err) {
    lc_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    if (kv->value.type != GGUF_FLOAT32 && kv->value.type != GGUF_FLOAT64)
        return wrong_type(kv, key, "a float", err);
    *out = kv->value.f;
    return LC_OK;
}

lc_status gguf_get_bool(const gguf_file *g, const char *key, bool optional, bool *out,
                        lc_error *err) {
    lc_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    if (kv->value.type != GGUF_BOOL) return wrong_type(kv, key, "a bool", err);
    *out = kv->value.u != 0;
    return LC_OK;
}

lc_status gguf_get_string(const gguf_file *g, const char *key, bool optional, gguf_str *out,
                          lc_error *err) {
    lc_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    if (kv->value.type != GGUF_STRING) return wrong_type(kv, key, "a string", err);
    *out = kv->value.s;
    return LC_OK;
}

lc_status gguf_get_array(const gguf_file *g, const char *key, gguf_type type, bool optional,
                         gguf_array *out, lc_error *err) {
    lc_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    if (kv->value.type != GGUF_ARRAY || kv->value.a.type != type)
        return lc_fail(err, LC_ERR_FORMAT, "metadata %s is not an array of %s", key,
                       gguf_type_name(type));
    *out = kv->value.a;
    return LC_OK;
}

static gguf_value element(const gguf_array *a, uint64_t i) {
    gguf_value v = {0};
    decode_scalar(a->type, a->data + i * scalar_bytes(a->type), &v);
    return v;
}

double gguf_array_float(const gguf_array *a, uint64_t i) {
    gguf_value v = element(a, i);
    if (v.type == GGUF_FLOAT32 || v.type == GGUF_FLOAT64) return v.f;
    return is_signed(v.type) ? (double)v.i : (double)v.u;
}

int64_t gguf_array_int(const gguf_array *a, uint64_t i) {
    gguf_value v = element(a, i);
    if (v.type == GGUF_FLOAT32 || v.type == GGUF_FLOAT64) {
        /* Converting a float outside int64's range (or NaN) is undefined: clamp. */
        if (!(v.f > -0x1p63 && v.f < 0x1p63)) return v.f > 0 ? INT64_MAX : v.f < 0 ? INT64_MIN : 0;
        return (int64_t)v.f;
    }
    return is_signed(v.type) || v.u <= INT64_MAX ? v.i : INT64_MAX;
}

gguf_str gguf_array_next_string(const uint8_t **at) {
    gguf_str s;
    memcpy(&s.len, *at, 8);
    s.ptr = (const char *)*at + 8;
    *at += 8 + s.len;
    return s;
}

lc_status gguf_tensor_table(const gguf_file *g, tensor_table *tt, lc_error *err) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        char name[TENSOR_NAME_MAX];
        memcpy(name, t->name.ptr, (size_t)t->name.len); /* < TENSOR_NAME_MAX, checked */
        name[t->name.len] = '\0';
        int64_t shape[GGUF_MAX_DIMS];
        for (int d = 0; d < t->n_dims; d++) shape[d] = (int64_t)t->ne[t->n_dims - 1 - d];
        lc_status st =
            tensor_table_add(tt, name, t->dtype, t->n_dims, shape, g->data + t->offset, err);
        if (st) return st;
    }
    return LC_OK;
}
