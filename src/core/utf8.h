/* UTF-8 helpers shared by the tokenizer and the front ends. */
#ifndef LLAMAC_CORE_UTF8_H
#define LLAMAC_CORE_UTF8_H

#include <stddef.h>

/* Length of the UTF-8 sequence that starts with byte `lead` (1..4), or 0 when
 * `lead` cannot start a sequence. */
int utf8_sequence_length(unsigned char lead);

/* Length of the well-formed UTF-8 character at s[0..n) (1..4), or 0 when the
 * bytes there are not one (overlong, surrogate, > U+10FFFF, truncated). */
int utf8_char_length(const unsigned char *s, size_t n);

/* Offset of the first byte that is not part of well-formed UTF-8, or n. */
size_t utf8_first_invalid(const char *s, size_t n);

/* Copies s[0..n) to out, each maximal invalid subpart replaced by U+FFFD, as
 * Unicode recommends and Python's bytes.decode("utf-8", errors="replace")
 * does; out holds at least 3 * n bytes. Returns the bytes written. */
size_t utf8_replace_invalid(const char *s, size_t n, char *out);

#endif
