#include "core/utf8.h"

int utf8_sequence_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0; /* continuation byte, overlong lead 0xC0/0xC1, or > U+10FFFF */
}

int utf8_char_length(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    int len = utf8_sequence_length(s[0]);
    if (len == 0 || (size_t)len > n) return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    /* The lead byte alone does not rule out these: overlong 3- and 4-byte
     * forms, UTF-16 surrogates, and code points past U+10FFFF. */
    if (len == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;
    if (len == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;
    if (len == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;
    if (len == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0;
    return len;
}

size_t utf8_first_invalid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int len = utf8_char_length(u + i, n - i);
        if (len == 0) return i;
        i += (size_t)len;
    }
    return n;
}

/* Bytes of the invalid sequence at s[0..n): the lead byte and the
 * continuation bytes that could still have led to a well-formed character. */
static size_t maximal_subpart(const unsigned char *s, size_t n) {
    int need = utf8_sequence_length(s[0]);
    if (need <= 1) return 1;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range depends on the lead */
    if (s[0] == 0xE0) lo = 0xA0;
    if (s[0] == 0xED) hi = 0x9F;
    if (s[0] == 0xF0) lo = 0x90;
    if (s[0] == 0xF4) hi = 0x8F;
    if (n < 2 || s[1] < lo || s[1] > hi) return 1;
    size_t k = 2;
    while (k < (size_t)need && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

size_t utf8_replace_invalid(const char *s, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        int len = utf8_char_length(u + i, n - i);
        if (len > 0) {
            for (int k = 0; k < len; k++) out[o++] = s[i + (size_t)k];
            i += (size_t)len;
        } else {
            out[o++] = (char)0xEF; /* U+FFFD */
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i += maximal_subpart(u + i, n - i);
        }
    }
    return o;
}
