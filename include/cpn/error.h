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

/* Expected outcomes of domain calls (positive, never mixed with errno). */
enum {
        CPN_ISSUE_DUPLICATE = 1,  /* the user already holds this campaign's coupon */
        CPN_ISSUE_SOLD_OUT,       /* all `total` coupons are gone */
        CPN_ISSUE_NOT_OPEN,       /* before starts_at or at/after ends_at */
        CPN_ISSUE_PAUSED,         /* campaign paused by an operator (rebuild) */
        CPN_NOT_FOUND,            /* no such campaign */
        CPN_EXISTS,               /* a campaign with that id and other fields exists */
        CPN_SAME,                 /* it exists with exactly these fields */
        CPN_INVALID,              /* bad input; cpn_error says which field and why */
        CPN_UNKNOWN,              /* a request went out and no answer came back: it may or may
                                   * not have taken effect (never claim either) */
        CPN_PARTIAL,              /* the first of two writes was made, the second could not be:
                                   * repeating the request completes it */
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
