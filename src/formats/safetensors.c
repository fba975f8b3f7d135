#include "formats/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "formats/json_file.h"

#define MAX_JSON_INT    (INT64_C(1) << 53) /* the largest integer every double below holds */
#define INDEX_MAX_BYTES (64u << 20)

static lc_dtype dtype_of(const char *s) {
    if (!strcmp(s, "F32")) return LC_DTYPE_F32;
    if (!strcmp(s, "F16")) return LC_DTYPE_F16;
    if (!strcmp(s, "BF16")) return LC_DTYPE_BF16;
    return LC_DTYPE_COUNT;
}

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* One header entry: checked, then added to the table pointing into `base`. */
static lc_status read_entry(const cJSON *e, const char *file, const uint8_t *base,
                            uint64_t data_size, tensor_table *tt, span *sp, lc_error *err) {
    const char *name = e->string;
    if (strlen(name) >= TENSOR_NAME_MAX)
        return lc_fail(err, LC_ERR_FORMAT, "%s: tensor name '%.*s...' is longer than %d bytes",
                       file, 48, name, TENSOR_NAME_MAX - 1);
    if (!cJSON_IsObject(e))
        return lc_fail(err, LC_ERR_FORMAT, "%s: tensor %s: entry is not a JSON object", file, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return lc_fail(err, LC_ERR_FORMAT, "%s: tensor %s: no dtype string", file, name);
    const lc_dtype dtype = dtype_of(dt->valuestring);
    if (dtype == LC_DTYPE_COUNT)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "%s: tensor %s: dtype %.32s is not supported (F32, F16 and BF16 are)", file,
                       name, dt->valuestring);
    const int n_dims = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (n_dims < 1 || n_dims > TENSOR_MAX_DIMS)
        return lc_fail(err, LC_ERR_FORMAT, "%s: tensor %s: shape must be an array of 1 to %d sizes",
                       file, name, TENSOR_MAX_DIMS);
    int64_t dims[TENSOR_MAX_DIMS];
    uint64_t elements = 1;
    bool overflow = false;
    for (int i = 0; i < n_dims; i++) {
        if (!json_int(cJSON_GetArrayItem(shape, i), 0, MAX_JSON_INT, &dims[i]))
            return lc_fail(err, LC_ERR_FORMAT,
                           "%s: tensor %s: shape entry %d is not an integer in [0, 2^53]", file,
                           name, i);
        /* Overflow-safe: once the product passes 2^64 no file can hold it. */
        if (dims[i] && elements > UINT64_MAX / (uint64_t)dims[i]) overflow = true;
        elements *= (uint64_t)dims[i];
    }
    int64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_int(cJSON_GetArrayItem(offsets, 0), 0, MAX_JSON_INT, &begin) ||
        !json_int(cJSON_GetArrayItem(offsets, 1), 0, MAX_JSON_INT, &end))
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: tensor %s: data_offsets must be two integers [begin, end]", file, name);
    if (begin > end)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%" PRId64 ", %" PRId64
                       "] end before they begin",
                       file, name, begin, end);
    if ((uint64_t)end > data_size)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: tensor %s: data_offsets end at %" PRId64 ", past the %" PRIu64
                       "-byte data area (truncated file?)",
                       file, name, end, data_size);
    const uint64_t elem = dtype_info(dtype)->block_bytes;
    overflow = overflow || elements > UINT64_MAX / elem;
    if (overflow || elements * elem != (uint64_t)(end - begin)) {
        char need[32] = "more than 2^64";
        if (!overflow) snprintf(need, sizeof need, "%" PRIu64, elements * elem);
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: tensor %s: its shape needs %s bytes of %s but data_offsets [%" PRId64
                       ", %" PRId64 "] hold %" PRId64,
                       file, name, need, dt->valuestring, begin, end, end - begin);
    }
    *sp = (span){(uint64_t)begin, (uint64_t)end, name};
    return tensor_table_add(tt, name, dtype, n_dims, dims, base + begin, err);
}

lc_status safetensors_parse(const uint8_t *data, uint64_t size, const char *file, tensor_table *tt,
                            lc_error *err) {
    if (size < 8)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: truncated: %" PRIu64 " bytes is less than the 8-byte header length",
                       file, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    if (n > SAFETENSORS_HEADER_MAX)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: header length %" PRIu64 " is over the %u-byte limit", file, n,
                       SAFETENSORS_HEADER_MAX);
    if (n > size - 8)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: truncated: the header length %" PRIu64
                       " runs past the end of the %" PRIu64 "-byte file",
                       file, n, size);
    cJSON *root;
    lc_status st = json_parse_buffer((const char *)data + 8, (size_t)n, file, &root, err);
    if (st) return st;
    const int first = tt->count;
    span *spans = NULL;
    int n_spans = 0;
    if (!cJSON_IsObject(root)) {
        st = lc_fail(err, LC_ERR_FORMAT, "%s: the header is not a JSON object", file);
        goto done;
    }
    spans = malloc(((size_t)cJSON_GetArraySize(root) + 1) * sizeof *spans);
    if (!spans) {
        st = lc_fail(err, LC_ERR_NOMEM, "%s: out of memory", file);
        goto done;
    }
    const uint8_t *base = data + 8 + n;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) continue;
        if ((st = read_entry(e, file, base, size - 8 - n, tt, &spans[n_spans], err))) goto done;
        n_spans++;
    }
    /* No two tensors may share a byte (empty ones share none). */
    qsort(spans, (size_t)n_spans, sizeof *spans, by_begin);
    const span *reach = NULL; /* the tensor that ends furthest so far */
    for (int i = 0; i < n_spans; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (reach && spans[i].begin < reach->end) {
            st = lc_fail(err, LC_ERR_FORMAT, "%s: tensors %s and %s overlap in the data area", file,
                         reach->name, spans[i].name);
            goto done;
        }
        if (!reach || spans[i].end > reach->end) reach = &spans[i];
    }
done:
    if (st) tt->count = first;
    free(spans);
    cJSON_Delete(root);
    return st;
}

/* dir/name, or an error when it does not fit. */
static lc_status join(char *out, size_t cap, const char *dir, const char *name, lc_error *err) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return lc_fail(err, LC_ERR_ARG, "%s: path too long", dir);
    return LC_OK;
}

typedef struct named {
    const char *name;
    int shard;
} named;

static int by_name(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* Maps shard `file` of the folder and parses it into the table. */
static lc_status add_shard(safetensors *st, const char *dir, const char *file, tensor_table *tt,
                           lc_error *err) {
    char path[4096];
    lc_status s = join(path, sizeof path, dir, file, err);
    if (s) return s;
    mapped_file *mf = &st->files[st->n_files];
    if ((s = mapped_file_open(mf, path, err))) return s;
    st->n_files++;
    return safetensors_parse(mf->data, mf->size, path, tt, err);
}

/* The distinct shard names of a weight_map, in order of first mention. */
static lc_status shard_names(const cJSON *map, const char *index, const char **names, int *n,
                             lc_error *err) {
    *n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        const char *f = cJSON_IsString(e) ? e->valuestring : NULL;
        /* A bare file name in this folder: no directories, no way out of it. */
        if (!f || !*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, ".."))
            return lc_fail(err, LC_ERR_FORMAT,
                           "%s: weight_map entry for %.64s is not a file name in the folder", index,
                           e->string);
        int k = 0;
        while (k < *n && strcmp(names[k], f)) k++;
        if (k < *n) continue;
        if (*n == SAFETENSORS_MAX_SHARDS)
            return lc_fail(err, LC_ERR_FORMAT, "%s: more than %d shards", index,
                           SAFETENSORS_MAX_SHARDS);
        names[(*n)++] = f;
    }
    if (*n == 0) return lc_fail(err, LC_ERR_FORMAT, "%s: weight_map is empty", index);
    return LC_OK;
}

/* Every tensor name once; with an index, each tensor in the shard it names. */
static lc_status check_names(const tensor_table *tt, const int *first, int n_files,
                             const cJSON *map, const char *const *files, const char *where,
                             lc_error *err) {
    named *all = malloc(((size_t)tt->count + 1) * sizeof *all);
    if (!all) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    for (int s = 0; s < n_files; s++)
        for (int i = first[s]; i < first[s + 1]; i++) all[i] = (named){tt->items[i].name, s};
    qsort(all, (size_t)tt->count, sizeof *all, by_name);
    lc_status st = LC_OK;
    for (int i = 1; i < tt->count && !st; i++)
        if (!strcmp(all[i - 1].name, all[i].name))
            st = lc_fail(err, LC_ERR_FORMAT, "%s: tensor %s appears twice (in %s and %s)", where,
                         all[i].name, files[all[i - 1].shard], files[all[i].shard]);
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (st) break;
        named key = {e->string, 0};
        const named *hit = bsearch(&key, all, (size_t)tt->count, sizeof *all, by_name);
        if (!hit || strcmp(files[hit->shard], e->valuestring) != 0)
            st = lc_fail(err, LC_ERR_FORMAT,
                         "%s: weight_map puts %.64s in %s, which does not hold it", where,
                         e->string, e->valuestring);
    }
    free(all);
    return st;
}

lc_status safetensors_open(safetensors *st, const char *dir, tensor_table *tt, lc_error *err) {
    memset(st, 0, sizeof *st);
    const int start = tt->count;
    char index[4096];
    lc_status s = join(index, sizeof index, dir, "model.safetensors.index.json", err);
    if (s) return s;
    cJSON *root = NULL;
    const cJSON *map = NULL;
    const char *single = "model.safetensors";
    const char **files = &single;
    int n_files = 1, *first = NULL;
    if (access(index, F_OK) == 0) {
        if ((s = json_read_file(index, INDEX_MAX_BYTES, &root, err))) return s;
        map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
        if (!cJSON_IsObject(map)) {
            s = lc_fail(err, LC_ERR_FORMAT, "%s: no weight_map object", index);
            goto done;
        }
        files = malloc(SAFETENSORS_MAX_SHARDS * sizeof *files);
        if (!files) {
            s = lc_fail(err, LC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((s = shard_names(map, index, files, &n_files, err))) goto done;
    } else {
        char path[4096];
        if ((s = join(path, sizeof path, dir, single, err))) return s;
        if (access(path, F_OK) != 0) {
            char bin[4096];
            bool torch =
                !join(bin, sizeof bin, dir, "pytorch_model.bin", NULL) && access(bin, F_OK) == 0;
            return lc_fail(err, LC_ERR_IO, "%s: no model.safetensors or %s%s", dir,
                           "model.safetensors.index.json",
                           torch ? " (only PyTorch pickles, which llamac does not read: convert "
                                   "them to safetensors)"
                                 : "");
        }
    }
    st->files = calloc((size_t)n_files, sizeof *st->files);
    first = malloc(((size_t)n_files + 1) * sizeof *first);
    if (!st->files || !first) {
        s = lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < n_files && !s; k++) {
        first[k] = tt->count;
        s = add_shard(st, dir, files[k], tt, err);
        if (s && map) {
            char pre[4200];
            snprintf(pre, sizeof pre, "%s lists a shard", index);
            lc_fail_prefix(err, pre);
        }
    }
    first[n_files] = tt->count;
    if (!s) s = check_names(tt, first, n_files, map, files, map ? index : dir, err);
done:
    if (files != &single) free(files);
    free(first);
    cJSON_Delete(root);
    if (s) {
        tt->count = start; /* they pointed into the mappings closed here */
        safetensors_close(st);
    }
    return s;
}

void safetensors_close(safetensors *st) {
    for (int i = 0; i < st->n_files; i++) mapped_file_close(&st->files[i]);
    free(st->files);
    st->files = NULL;
    st->n_files = 0;
}
