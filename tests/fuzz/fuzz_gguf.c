/* libFuzzer target: arbitrary bytes through the GGUF reader and everything
 * that interprets a parsed file (tensor table, llama config, tokenizer).
 * Built with -fsanitize=fuzzer,address,undefined by `make fuzz`; libFuzzer
 * hands us an exactly sized heap copy, so any read past it is reported. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "model/llama_gguf.h"
#include "tokenizer/tokenizer.h"

/* Reads the first and last byte of every tensor: they must be in the input. */
static unsigned touch_tensors(const tensor_table *tt) {
    unsigned sum = 0;
    for (int i = 0; i < tt->count; i++) {
        const tensor *t = &tt->items[i];
        int64_t bytes = dtype_row_bytes(t->dtype, t->shape[t->n_dims - 1]);
        for (int d = 0; d < t->n_dims - 1; d++) bytes *= t->shape[d];
        const uint8_t *p = t->data;
        sum += p[0] + p[bytes - 1];
    }
    return sum;
}

/* Every typed accessor on every key: none may misread a value of another type. */
static void read_every_key(const gguf_file *g) {
    lc_error err;
    char key[256];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        size_t n = g->kv[i].key.len < sizeof key - 1 ? (size_t)g->kv[i].key.len : sizeof key - 1;
        memcpy(key, g->kv[i].key.ptr, n);
        key[n] = '\0';
        int64_t v;
        double f;
        bool b;
        gguf_str s;
        gguf_array a;
        gguf_get_int(g, key, false, INT64_MIN, INT64_MAX, &v, &err);
        gguf_get_float(g, key, false, &f, &err);
        gguf_get_bool(g, key, false, &b, &err);
        gguf_get_string(g, key, false, &s, &err);
        if (gguf_get_array(g, key, GGUF_STRING, false, &a, &err) == LC_OK) {
            const uint8_t *at = a.data;
            for (uint64_t j = 0; j < a.count; j++) (void)gguf_array_next_string(&at);
        }
        for (int t = 0; t < GGUF_TYPE_COUNT; t++)
            if (t != GGUF_STRING && t != GGUF_ARRAY &&
                gguf_get_array(g, key, (gguf_type)t, false, &a, &err) == LC_OK && a.count)
                (void)(gguf_array_int(&a, 0) + gguf_array_float(&a, a.count - 1));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file g;
    lc_error err;
    if (gguf_parse(&g, data, size, "fuzz", &err) != LC_OK) return 0;
    tensor_table tt = {0};
    if (gguf_tensor_table(&g, &tt, &err) == LC_OK) (void)touch_tensors(&tt);
    tensor_table_free(&tt);
    read_every_key(&g);
    lc_config cfg;
    (void)llama_gguf_config(&g, &cfg, &err);
    model_tokens special;
    (void)llama_gguf_special(&g, 32000, &special, &err);
    lc_tokenizer *tok = calloc(1, sizeof *tok);
    if (tok && tokenizer_from_gguf(tok, &g, "fuzz", &err) == LC_OK) {
        lc_token *ids = NULL;
        size_t n;
        if (lc_tokenizer_encode(tok, "Hello world", 11, true, true, &ids, &n, &err) == LC_OK)
            free(ids);
    }
    lc_tokenizer_free(tok);
    gguf_free(&g);
    return 0;
}
