/* Error reporting helpers for library code: fill an lc_error, return its status. */
#ifndef LLAMAC_CORE_ERROR_H
#define LLAMAC_CORE_ERROR_H

#include "llamac.h"

/* Formats the message into `err` (when non-NULL) and returns `status`. */
lc_status lc_fail(lc_error *err, lc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `err` (when non-NULL) with "prefix: ". */
void lc_fail_prefix(lc_error *err, const char *prefix);

#endif
