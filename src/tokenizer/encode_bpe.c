/* Byte-level BPE encoding of a text, as tiktoken and Hugging Face tokenizers
 * do it for Llama 3: invalid UTF-8 read as U+FFFD, special tokens cut out
 * (only when the caller asks; added non-special tokens always), each stretch
 * between them split by the pre-tokenizer regex, each pre-token merged by
 * bpe_byte.c. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

typedef struct bpe_run {
    const lc_tokenizer *t;
    const char *segment; /* the text the pre-tokenizer offsets count from */
    bpe_scratch scratch;
    lc_token *ids; /* room for one id per byte, plus BOS and EOS */
    size_t n;
} bpe_run;

static lc_status on_piece(void *user, size_t start, size_t end, lc_error *err) {
    bpe_run *r = user;
    size_t k;
    lc_status st = bpe_encode_piece(r->t, &r->scratch, r->segment + start, end - start,
                                    r->ids + r->n, &k, err);
    r->n += k;
    return st;
}

static lc_status encode_segment(bpe_run *r, pretok_match *m, const char *s, size_t n,
                                lc_error *err) {
    if (n == 0) return LC_OK;
    r->segment = s;
    return pretokenize(r->t->pre, m, s, n, on_piece, r, err);
}

lc_status tokenizer_encode_bpe(const lc_tokenizer *t, const char *text, size_t len,
                               const lc_encode_options *opts, lc_token **out, size_t *n_out,
                               lc_error *err) {
    if (len > (size_t)INT32_MAX / 4)
        return lc_fail(err, LC_ERR_ARG, "text of %zu bytes is too long to encode (limit 512 MiB)",
                       len);
    if ((opts->add_bos && t->bos < 0) || (opts->add_eos && t->eos < 0))
        return lc_fail(err, LC_ERR_ARG, "this vocabulary has no %s token",
                       opts->add_bos && t->bos < 0 ? "BOS" : "EOS");
    char *fixed = NULL; /* the text with U+FFFD for invalid bytes, when it has any */
    if (utf8_first_invalid(text, len) < len) {
        if (!(fixed = malloc(3 * len)))
            return lc_fail(err, LC_ERR_NOMEM, "out of memory encoding %zu bytes", len);
        len = utf8_replace_invalid(text, len, fixed);
        text = fixed;
    }
    bpe_run r = {t, NULL, {NULL, NULL, 0}, malloc((len + 2) * sizeof(lc_token)), 0};
    pretok_match *m = pretok_match_create(t->pre);
    lc_status st = LC_OK;
    if (!r.ids || !m) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory encoding %zu bytes", len);
        goto done;
    }
    if (opts->add_bos) r.ids[r.n++] = t->bos;
    /* Special tokens split the text; the regex never sees across them. */
    const bool control = opts->parse_special;
    const bool any = t->n_user > 0 || (control && t->n_special > 0);
    size_t seg = 0;
    for (size_t i = 0; any && i < len;) {
        size_t n;
        lc_token id = tokenizer_match_special(t, text + i, len - i, control, &n);
        if (id < 0) {
            i++;
            continue;
        }
        if ((st = encode_segment(&r, m, text + seg, i - seg, err))) goto done;
        r.ids[r.n++] = id;
        i += n;
        seg = i;
    }
    if ((st = encode_segment(&r, m, text + seg, len - seg, err))) goto done;
    if (opts->add_eos) r.ids[r.n++] = t->eos;
    *out = r.ids;
    *n_out = r.n;
    r.ids = NULL;
done:
    free(r.ids);
    free(fixed);
    bpe_scratch_free(&r.scratch);
    pretok_match_free(m);
    return st;
}
