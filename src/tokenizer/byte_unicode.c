/* GPT-2's byte-to-unicode alphabet, which tokenizer.json and GGUF "gpt2"
 * vocabularies are written in: the 188 printable bytes 0x21-0x7E, 0xA1-0xAC
 * and 0xAE-0xFF stand for themselves (as code points), and the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD) become U+0100.. U+0143 in increasing byte
 * order. The tokenizer keeps raw bytes; these convert at the file boundary. */
#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

static bool printable_byte(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

/* The byte a code point stands for, or -1. */
static int byte_of_code_point(uint32_t cp) {
    if (cp < 0x100) return printable_byte(cp) ? (int)cp : -1;
    uint32_t k = cp - 0x100;                     /* rank among the remapped bytes */
    if (k < 0x21) return (int)k;                 /* 0x00-0x20 */
    if (k < 0x21 + 0x22) return (int)(k + 0x5E); /* 0x7F-0xA0 */
    if (k == 0x21 + 0x22) return 0xAD;
    return -1;
}

static uint32_t code_point_of_byte(unsigned b) {
    if (printable_byte(b)) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 0x21 + (b - 0x7F);
    return 0x100 + 0x21 + 0x22; /* 0xAD */
}

int64_t byte_unicode_decode(const char *s, size_t len, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    int64_t n = 0;
    for (size_t i = 0; i < len;) {
        int clen = utf8_char_length(u + i, len - i);
        uint32_t cp;
        if (clen == 1)
            cp = u[i];
        else if (clen == 2)
            cp = (uint32_t)(u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F);
        else
            return -1; /* the alphabet ends at U+0143: two bytes at most */
        int b = byte_of_code_point(cp);
        if (b < 0) return -1;
        out[n++] = (char)b;
        i += (size_t)clen;
    }
    return n;
}

size_t byte_unicode_encode(const char *s, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = code_point_of_byte((unsigned char)s[i]);
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return n;
}
