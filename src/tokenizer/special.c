/* Special tokens: finding them by text (for chat templates, which write
 * "<|eot_id|>" into the prompt and ask for it to be parsed) and the tokens
 * that end a generated turn. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

/* End-of-turn tokens by name: Llama 3 (<|eot_id|>, <|eom_id|> for tool calls,
 * <|end_of_text|>), GPT-2-style <|endoftext|>, ChatML's <|im_end|>, Gemma's
 * <end_of_turn>, Phi-3's <|end|>. */
static const char *const STOP_NAMES[] = {"<|eot_id|>",    "<|eom_id|>", "<|end_of_text|>",
                                         "<|endoftext|>", "<|im_end|>", "<end_of_turn>",
                                         "<|end|>"};

typedef struct sort_ctx {
    const lc_tokenizer *t;
} sort_ctx;

static int compare_special(const void *a, const void *b, void *user) {
    const lc_tokenizer *t = ((const sort_ctx *)user)->t;
    lc_token x = *(const lc_token *)a, y = *(const lc_token *)b;
    uint8_t fx = (uint8_t)t->arena[t->offset[x]], fy = (uint8_t)t->arena[t->offset[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (t->length[x] != t->length[y]) return t->length[x] > t->length[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

void tokenizer_add_stop(lc_tokenizer *t, lc_token id) {
    if (id < 0 || id >= t->n_vocab || t->n_stop == TOKENIZER_MAX_STOP) return;
    for (int i = 0; i < t->n_stop; i++)
        if (t->stop[i] == id) return;
    t->stop[t->n_stop++] = id;
}

lc_status tokenizer_index_specials(lc_tokenizer *t, lc_error *err) {
    free(t->special);
    t->n_special = t->n_user = 0;
    int32_t n = 0;
    for (lc_token id = 0; id < t->n_vocab; id++)
        if ((t->kind[id] == TOKEN_CONTROL || t->kind[id] == TOKEN_USER) && t->length[id] > 0) n++;
    t->special = malloc(((size_t)n + 1) * sizeof *t->special);
    if (!t->special) return lc_fail(err, LC_ERR_NOMEM, "out of memory for %d special tokens", n);
    for (lc_token id = 0; id < t->n_vocab; id++) {
        if ((t->kind[id] != TOKEN_CONTROL && t->kind[id] != TOKEN_USER) || t->length[id] == 0)
            continue;
        t->special[t->n_special++] = id;
        if (t->kind[id] == TOKEN_USER) t->n_user++;
    }
    qsort_r(t->special, (size_t)n, sizeof *t->special, compare_special, &(sort_ctx){t});
    int32_t at = 0;
    for (int b = 0; b < 256; b++) {
        t->special_at[b] = at;
        while (at < n && (uint8_t)t->arena[t->offset[t->special[at]]] == b) at++;
    }
    t->special_at[256] = n;
    t->n_stop = 0;
    tokenizer_add_stop(t, t->eos);
    for (size_t i = 0; i < sizeof STOP_NAMES / sizeof STOP_NAMES[0]; i++)
        tokenizer_add_stop(t, lc_tokenizer_token_id(t, STOP_NAMES[i]));
    return LC_OK;
}

lc_token tokenizer_match_special(const lc_tokenizer *t, const char *s, size_t n, bool control,
                                 size_t *len) {
    uint8_t b = (uint8_t)s[0];
    for (int32_t i = t->special_at[b]; i < t->special_at[b + 1]; i++) {
        lc_token id = t->special[i];
        if (!control && t->kind[id] == TOKEN_CONTROL) continue;
        if (t->length[id] <= n && memcmp(t->arena + t->offset[id], s, t->length[id]) == 0) {
            *len = t->length[id];
            return id;
        }
    }
    return -1;
}

lc_token lc_tokenizer_token_id(const lc_tokenizer *t, const char *text) {
    size_t n = strlen(text);
    if (n == 0) return -1;
    uint8_t b = (uint8_t)text[0];
    for (int32_t i = t->special_at[b]; i < t->special_at[b + 1]; i++) {
        lc_token id = t->special[i];
        if (t->length[id] == n && memcmp(t->arena + t->offset[id], text, n) == 0) return id;
    }
    return tokenizer_lookup(t, text, n);
}

bool lc_tokenizer_is_special(const lc_tokenizer *t, lc_token id) {
    return id >= 0 && id < t->n_vocab && t->kind[id] == TOKEN_CONTROL;
}

int lc_tokenizer_stop_tokens(const lc_tokenizer *t, lc_token *out, int cap) {
    for (int i = 0; i < t->n_stop && i < cap; i++) out[i] = t->stop[i];
    return t->n_stop;
}
