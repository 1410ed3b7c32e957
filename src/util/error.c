/* Status codes and error messages. */
#include <stdarg.h>
#include <string.h>

#include "util/util.h"

l2l_status l2l_error_set(l2l_error *err, l2l_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char *l2l_status_name(l2l_status status)
{
    switch (status) {
    case L2L_STATUS_OK: return "ok";
    case L2L_STATUS_ARG: return "invalid argument";
    case L2L_STATUS_IO: return "I/O error";
    case L2L_STATUS_FORMAT: return "bad file format";
    case L2L_STATUS_NOMEM: return "out of memory";
    case L2L_STATUS_NUMERIC: return "non-finite number";
    }
    return "unknown status";
}

void *l2l_alloc(size_t bytes)
{
    void *p = NULL;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    if (posix_memalign(&p, 64, rounded) != 0) return NULL;
    memset(p, 0, rounded);
    return p;
}

void l2l_free(void *p) { free(p); }
