/* The chat page served at GET /: src/server/chat_page.html, turned into a
 * byte array at build time by the Makefile (build/gen/chat_page.c), so the
 * binary needs no files beside it. */
#ifndef LLAMAC_SERVER_CHAT_PAGE_H
#define LLAMAC_SERVER_CHAT_PAGE_H

#include <stddef.h>

extern const unsigned char chat_page_html[]; /* (chat_page_html_len) UTF-8, no terminator */
extern const size_t chat_page_html_len;

#endif
