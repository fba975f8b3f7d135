/* A read-only memory mapping of a whole file. Tensors point into it, so it
 * must outlive them: the model owns one and unmaps it last. */
#ifndef LLAMAC_FORMATS_MAPPED_FILE_H
#define LLAMAC_FORMATS_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

typedef struct mapped_file {
    const uint8_t *data;
    uint64_t size;
} mapped_file;

lc_status mapped_file_open(mapped_file *f, const char *path, lc_error *err);
void mapped_file_close(mapped_file *f);

#endif
