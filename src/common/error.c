/* Error text carried up to the one place that reports it. */
#include <stdio.h>
#include <string.h>

#include "cpn/error.h"

int cpn_error_set(struct cpn_error *err, int code, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        return code;
}

int cpn_error_prefix(struct cpn_error *err, int code, const char *fmt, ...) {
        char prefix[256], rest[sizeof(err->msg)];
        va_list ap;

        if (!err)
                return code;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(rest, err->msg, sizeof(rest));
        rest[sizeof(rest) - 1] = '\0';
        /* A message longer than err->msg loses its tail, the least
         * specific part; the return value is read to say so to GCC. */
        if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, rest) >= (int)sizeof(err->msg))
                err->msg[sizeof(err->msg) - 1] = '\0';
        return code;
}
