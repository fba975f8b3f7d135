/* Hugging Face folders written by tests: a scratch directory, safetensors
 * files from a cJSON header and a data area, and the stories260K.hf weights
 * to start from. */
#ifndef LLAMAC_TESTS_HF_FOLDER_H
#define LLAMAC_TESTS_HF_FOLDER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* A safetensors file in memory: its parsed header and its data area. */
typedef struct st_file {
    cJSON *header;
    uint8_t *data;
    size_t data_len;
    char *bytes; /* the whole file as read */
} st_file;

/* Reads ../shared/<rel> (a safetensors file); false after a recorded failure. */
bool st_read_shared(test_ctx *t, const char *rel, st_file *f);
void st_free(st_file *f);
/* Writes `header` (padded with spaces to a multiple of 8 bytes, as the
 * safetensors library does) and `data_len` bytes of `data` to dir/name. */
void st_write(const char *dir, const char *name, const cJSON *header, const void *data,
              size_t data_len);
/* The data of tensor `name` in f and its byte size; NULL when absent. */
const uint8_t *st_tensor(const st_file *f, const char *name, size_t *bytes);

/* A fresh scratch directory under $TMPDIR; hf_rmdir removes it and its files. */
const char *hf_mkdir(char *buf, size_t cap, const char *name);
void hf_rmdir(const char *dir);
void hf_write(const char *dir, const char *name, const void *data, size_t len);
void hf_write_json(const char *dir, const char *name, const cJSON *json);
/* dir/name as a symbolic link to ../shared/<rel> (by its absolute path). */
void hf_link_shared(const char *dir, const char *name, const char *rel);
/* ../shared/<rel> (a JSON file) parsed; NULL after a recorded failure. */
cJSON *hf_read_json_shared(test_ctx *t, const char *rel);

/* A Llama folder of random weights in dir (config.json, model.safetensors):
 * f32 matrices normal(0, 0.02) as mkmodel draws them but q and k normal(0,
 * qk_sd) (larger: attention picks keys instead of averaging them all), norms
 * 1, the classifier tied to the embedding; shapes no shared model has. */
typedef struct hf_shape {
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, ctx;
    float qk_sd;
} hf_shape;
void hf_write_random_llama(const char *dir, const hf_shape *s, uint64_t seed);

/* Checks that two models hold the same config and the same weights, byte for
 * byte (dtype, shape and data); `what` names the pair in failures. */
struct lc_model;
void hf_check_same_weights(test_ctx *t, const struct lc_model *a, const struct lc_model *b,
                           const char *what);

#endif
