/* Streaming decode: ids to printable UTF-8. Byte tokens (and byte-level BPE
 * pieces, which may hold part of a character) arrive a few bytes at a time,
 * so a multi-byte character may span several calls; its bytes wait in
 * `pending` until the character is complete (or proves malformed). Control
 * (special) tokens print nothing: their text is lc_tokenizer_piece. */
#include <string.h>

#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

void lc_detokenizer_init(lc_detokenizer *dt) {
    memset(dt, 0, sizeof *dt);
    dt->prev = -1;
}

/* Control characters would let a model drive the terminal: keep tab and newline only. */
static bool printable(const unsigned char *c, int len) {
    if (len == 1) return c[0] == '\t' || c[0] == '\n' || (c[0] >= 0x20 && c[0] < 0x7F);
    if (len == 2 && c[0] == 0xC2 && c[1] < 0xA0) return false; /* C1 controls */
    return true;
}

typedef struct sink {
    char *out;
    size_t n, cap;
} sink;

static void put_char(sink *s, const unsigned char *c, int len) {
    if (!printable(c, len) || s->n + (size_t)len > s->cap) return;
    memcpy(s->out + s->n, c, (size_t)len);
    s->n += (size_t)len;
}

static void put_byte(lc_detokenizer *dt, sink *s, unsigned char b) {
    if (dt->n_pending > 0) {
        if ((b & 0xC0) == 0x80) {
            dt->pending[dt->n_pending++] = b;
            int need = utf8_sequence_length(dt->pending[0]);
            if (dt->n_pending < need) return;
            if (utf8_char_length(dt->pending, (size_t)need) == need) put_char(s, dt->pending, need);
            dt->n_pending = 0;
            return;
        }
        dt->n_pending = 0; /* an unfinished character: drop it, then read b afresh */
    }
    int need = utf8_sequence_length(b);
    if (need == 1)
        put_char(s, &b, 1);
    else if (need > 1)
        dt->pending[dt->n_pending++] = b;
}

size_t lc_detokenize(const lc_tokenizer *tok, lc_detokenizer *dt, lc_token id, char *out,
                     size_t cap) {
    sink s = {out, 0, cap};
    lc_token prev = dt->prev;
    dt->prev = id;
    if (id < 0 || id >= tok->n_vocab || tok->kind[id] == TOKEN_CONTROL) return 0;
    const char *piece = tok->arena + tok->offset[id];
    size_t len = tok->length[id];
    if (tok->kind[id] == TOKEN_BYTE) {
        put_byte(dt, &s, (unsigned char)tokenizer_byte_value(piece, len));
        return s.n;
    }
    /* SentencePiece's dummy prefix: the first word after BOS loses its space.
     * Byte-level BPE adds no prefix, so it has none to take back. */
    if (tok->type == TOKENIZER_SPM && prev == tok->bos && len > 0 && piece[0] == ' ') {
        piece++;
        len--;
    }
    for (size_t i = 0; i < len; i++) put_byte(dt, &s, (unsigned char)piece[i]);
    return s.n;
}
