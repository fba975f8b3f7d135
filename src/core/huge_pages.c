#include "core/huge_pages.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

bool huge_buffer_alloc(huge_buffer *b, size_t bytes) {
    *b = (huge_buffer){0};
    if (bytes > SIZE_MAX - 2 * HUGE_PAGE) return false;
    /* Over-allocate so the data can start on a huge-page boundary. */
    size_t mapped = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE + HUGE_PAGE;
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    madvise((void *)start, mapped - (start - (uintptr_t)p), MADV_HUGEPAGE); /* a hint only */
    *b = (huge_buffer){(void *)start, p, mapped};
    return true;
}

void huge_buffer_free(huge_buffer *b) {
    if (b->mapping) munmap(b->mapping, b->mapped);
    *b = (huge_buffer){0};
}
