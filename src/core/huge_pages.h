/* Anonymous memory on transparent huge pages: big streaming buffers (the CPU
 * weight copy, the bandwidth probe) read faster without a TLB miss every 4 KiB. */
#ifndef LLAMAC_CORE_HUGE_PAGES_H
#define LLAMAC_CORE_HUGE_PAGES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct huge_buffer {
    void *data;    /* `bytes` zeroed bytes, starting on a 2 MiB boundary */
    void *mapping; /* what to unmap */
    size_t mapped;
} huge_buffer;

/* Maps `bytes` of zeroed memory; false when the mapping fails. The huge-page
 * request is a hint: the memory works either way. */
bool huge_buffer_alloc(huge_buffer *b, size_t bytes);
void huge_buffer_free(huge_buffer *b);

#endif
