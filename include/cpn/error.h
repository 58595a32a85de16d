#pragma once
/*
 * Errors, the dbus-broker way: 0 is success, a negative errno is unexpected
 * and passed up unchanged, a positive code is an expected outcome that the
 * function's comment lists. Where a third-party error is translated, its
 * text is kept in a struct cpn_error so the one place that logs can say
 * what happened. Every function taking a `struct cpn_error *` accepts NULL.
 */
#include <stdarg.h>
#include <stddef.h>

/*
 * Expected outcomes (positive, never mixed with errno). Each code means one
 * thing wherever it appears; a module's own outcomes live in its header,
 * in the range given here, so that the one place that maps codes to
 * answers (a product's HTTP table, couponctl's exit statuses) never has
 * to ask which call a code came from.
 */
enum {
        /* any layer */
        CPN_INVALID = 1, /* bad input; cpn_error says which field and why */
        CPN_UNKNOWN,     /* a request went out and no answer came back: it may or may not
                          * have taken effect (never claim either) */
        CPN_HELD,        /* a lease is held by another owner: nothing was done */

        CPN_JSON_BASE = 10,     /* json.h */
        CPN_DB_BASE = 20,       /* db.h */
        CPN_DELIVERY_BASE = 30, /* events.h */
        /* Each product owns the hundred codes from its base: 100, 200, ... */
        CPN_PRODUCT_BASE = 100,
};

struct cpn_error {
        char msg[512];
};

/* Sets @err's message (printf-style); no-op when @err is NULL. Returns @code
 * so that `return cpn_error_set(err, -EIO, "...")` reads naturally. */
int cpn_error_set(struct cpn_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to @err's message; returns @code. */
int cpn_error_prefix(struct cpn_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
