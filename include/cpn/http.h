#pragma once
/*
 * The HTTP surface as pure functions: route matching on the raw request
 * path, the one table that maps outcomes to status and error code, and the
 * Prometheus metrics registry. civetweb itself is only seen by
 * src/http/server.c. Everything here is thread-safe and allocation-free.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cpn/types.h"
#include "cpn/coupon/campaign.h" /* until the route registry: the coupon routes are still here */

enum cpn_route {
        CPN_ROUTE_UNKNOWN,
        CPN_ROUTE_ISSUE,     /* POST /v1/campaigns/{c}/issue */
        CPN_ROUTE_CAMPAIGNS, /* POST /v1/campaigns */
        CPN_ROUTE_CAMPAIGN,  /* GET  /v1/campaigns/{c} */
        CPN_ROUTE_USER,      /* GET  /v1/campaigns/{c}/users/{u} */
        CPN_ROUTE_HEALTHZ,
        CPN_ROUTE_READYZ,
        CPN_ROUTE_METRICS,
        _CPN_ROUTE_N,
};

struct cpn_route_match {
        enum cpn_route route;
        char campaign_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
};

enum cpn_route_result {
        CPN_ROUTE_OK,
        CPN_ROUTE_NO_ROUTE,   /* 404 not_found */
        CPN_ROUTE_BAD_ID,     /* a route matched but an id breaks its grammar: 400 */
        CPN_ROUTE_BAD_METHOD, /* 405; *allow says what is allowed */
};

/* Matches @method and the raw (undecoded) @path, query string excluded.
 * Ids are never percent-decoded: their grammars need no encoding, so a '%'
 * in one is simply invalid. */
enum cpn_route_result cpn_route_match(const char *method, const char *path,
                                      struct cpn_route_match *m, const char **allow);
const char *cpn_route_name(enum cpn_route r);

/* The framing checks of RFC 9112 6 that civetweb does not make; a server
 * and a proxy in front of it that disagree on where a request ends can be
 * made to take one request's bytes for another (request smuggling).
 * Content-Length must be digits only and given once; Transfer-Encoding
 * once and never with Content-Length; Content-Type and Authorization
 * once (civetweb hands out the first, a proxy may act on the last).
 * @names/@values: the request's @n header fields. Returns NULL or the
 * reason for a 400. Sets *@length to Content-Length, INT64_MAX when it
 * does not fit, -1 when absent (also on errors). */
const char *cpn_http_framing_error(const char *const *names, const char *const *values, size_t n,
                                   int64_t *length);

/* Every answer that is not a success, as the contract (README) names them. */
enum cpn_api_error {
        CPN_E_INVALID_REQUEST,
        CPN_E_BODY_TOO_LARGE,
        CPN_E_UNSUPPORTED_MEDIA_TYPE,
        CPN_E_UNAUTHORIZED,
        CPN_E_NOT_FOUND,
        CPN_E_METHOD_NOT_ALLOWED,
        CPN_E_CAMPAIGN_NOT_FOUND,
        CPN_E_ALREADY_ISSUED,
        CPN_E_SOLD_OUT,
        CPN_E_NOT_OPEN,
        CPN_E_CAMPAIGN_EXISTS,
        CPN_E_PAUSED,
        CPN_E_ADMIN_DISABLED,
        CPN_E_UNAVAILABLE,
        CPN_E_OUTCOME_UNKNOWN,
        /* HTTP framing, answered by src/http/server.c: not in the contract's tables */
        CPN_E_LENGTH_REQUIRED,
        CPN_E_HEADERS_TOO_LARGE,
        CPN_E_HTTP_VERSION,
        CPN_E_REQUEST_TIMEOUT,
        CPN_E_NOT_IMPLEMENTED,
        CPN_E_INTERNAL,
        _CPN_E_N,
};

struct cpn_api_error_info {
        int status;
        const char *code;     /* the error code of the body */
        const char *message;  /* default message */
        int retry_after;      /* seconds for Retry-After, 0 = none */
};

const struct cpn_api_error_info *cpn_api_error_info(enum cpn_api_error e);
/* Maps a domain return code (CPN_* positive or negative errno) to the
 * answer. Must not be called with 0. */
enum cpn_api_error cpn_api_error_from_code(int r);
/* Writes the error body {"error":{"code","message"}}; returns length or
 * -ENOBUFS. */
int cpn_api_error_body(char *buf, size_t n, enum cpn_api_error e, const char *message);

/* ---- metrics ---- */

#define CPN_LATENCY_BUCKETS 14
enum cpn_outcome {
        CPN_OUTCOME_ISSUED,
        CPN_OUTCOME_ALREADY_ISSUED,
        CPN_OUTCOME_SOLD_OUT,
        CPN_OUTCOME_NOT_OPEN,
        CPN_OUTCOME_NOT_FOUND,
        CPN_OUTCOME_PAUSED,
        CPN_OUTCOME_UNAVAILABLE,
        CPN_OUTCOME_INVALID,
        CPN_OUTCOME_UNKNOWN,
        _CPN_OUTCOME_N,
};

/* Status codes are counted in a small fixed set; others land in "other". */
#define CPN_METRIC_STATUSES 16

struct cpn_metrics {
        _Atomic uint64_t requests[_CPN_ROUTE_N][CPN_METRIC_STATUSES];
        _Atomic uint64_t outcomes[_CPN_OUTCOME_N];
        _Atomic uint64_t delivery[3]; /* acked in time, pending at answer, failed */
        _Atomic uint64_t latency[_CPN_ROUTE_N][CPN_LATENCY_BUCKETS + 1];
        _Atomic uint64_t latency_sum_us[_CPN_ROUTE_N];
};

void cpn_metrics_request(struct cpn_metrics *m, enum cpn_route r, int status, uint64_t us);
void cpn_metrics_outcome(struct cpn_metrics *m, enum cpn_outcome o);
/* Appends the Prometheus text of @m to @f. */
void cpn_metrics_write(const struct cpn_metrics *m, FILE *f);
