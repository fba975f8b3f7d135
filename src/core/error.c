#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *lc_status_name(lc_status status) {
    switch (status) {
    case LC_OK: return "ok";
    case LC_ERR_IO: return "i/o error";
    case LC_ERR_FORMAT: return "bad format";
    case LC_ERR_ARG: return "invalid argument";
    case LC_ERR_NOMEM: return "out of memory";
    case LC_ERR_CONTEXT: return "context full";
    case LC_ERR_UNSUPPORTED: return "unsupported";
    case LC_ERR_DEVICE: return "device error";
    }
    return "unknown status";
}

lc_status lc_fail(lc_error *err, lc_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void lc_fail_prefix(lc_error *err, const char *prefix) {
    if (!err) return;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}
