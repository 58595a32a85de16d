/* Route matching on the raw path, the framing checks civetweb does not
 * make, and the one outcome -> HTTP table. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cpn/error.h"
#include "cpn/http.h"
#include "cpn/json.h"

/* Splits @path ("/a/b/c") into at most @max segments; returns the count or
 * -1 for an empty segment, a missing leading '/', or too many segments. */
static int split(const char *path, const char **seg, size_t *len, int max) {
        int n = 0;

        if (path[0] != '/')
                return -1;
        for (const char *p = path + 1;;) {
                const char *e = strchr(p, '/');
                size_t l = e ? (size_t)(e - p) : strlen(p);

                if (l == 0 || n == max)
                        return -1;
                seg[n] = p;
                len[n++] = l;
                if (!e)
                        return n;
                p = e + 1;
        }
}

static bool seg_is(const char *s, size_t len, const char *lit) {
        return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static enum cpn_route_result with_method(const char *method, const char *want,
                                         const char **allow) {
        if (strcmp(method, want) == 0)
                return CPN_ROUTE_OK;
        *allow = want;
        return CPN_ROUTE_BAD_METHOD;
}

enum cpn_route_result cpn_route_match(const char *method, const char *path,
                                      struct cpn_route_match *m, const char **allow) {
        const char *seg[6];
        size_t len[6];
        int n = split(path, seg, len, 6);

        memset(m, 0, sizeof(*m));
        *allow = NULL;
        if (n < 0)
                return CPN_ROUTE_NO_ROUTE;
        if (n == 1) {
                if (seg_is(seg[0], len[0], "healthz"))
                        m->route = CPN_ROUTE_HEALTHZ;
                else if (seg_is(seg[0], len[0], "readyz"))
                        m->route = CPN_ROUTE_READYZ;
                else if (seg_is(seg[0], len[0], "metrics"))
                        m->route = CPN_ROUTE_METRICS;
                else
                        return CPN_ROUTE_NO_ROUTE;
                return with_method(method, "GET", allow);
        }
        if (!seg_is(seg[0], len[0], "v1") || !seg_is(seg[1], len[1], "campaigns"))
                return CPN_ROUTE_NO_ROUTE;
        if (n == 2) {
                m->route = CPN_ROUTE_CAMPAIGNS;
                return with_method(method, "POST", allow);
        }
        if (n == 3)
                m->route = CPN_ROUTE_CAMPAIGN;
        else if (n == 4 && seg_is(seg[3], len[3], "issue"))
                m->route = CPN_ROUTE_ISSUE;
        else if (n == 5 && seg_is(seg[3], len[3], "users"))
                m->route = CPN_ROUTE_USER;
        else
                return CPN_ROUTE_NO_ROUTE;

        enum cpn_route_result r = with_method(method, m->route == CPN_ROUTE_ISSUE ? "POST" : "GET", allow);

        if (r != CPN_ROUTE_OK)
                return r;
        if (!cpn_id_valid(seg[2], len[2]))
                return CPN_ROUTE_BAD_ID;
        memcpy(m->campaign_id, seg[2], len[2]);
        if (m->route == CPN_ROUTE_USER) {
                if (!cpn_user_id_valid(seg[4], len[4]))
                        return CPN_ROUTE_BAD_ID;
                memcpy(m->user_id, seg[4], len[4]);
        }
        return CPN_ROUTE_OK;
}

const char *cpn_route_name(enum cpn_route r) {
        static const char *const names[_CPN_ROUTE_N] = {
                [CPN_ROUTE_UNKNOWN] = "unknown",   [CPN_ROUTE_ISSUE] = "issue",
                [CPN_ROUTE_CAMPAIGNS] = "campaign_create", [CPN_ROUTE_CAMPAIGN] = "campaign_get",
                [CPN_ROUTE_USER] = "user_get",     [CPN_ROUTE_HEALTHZ] = "healthz",
                [CPN_ROUTE_READYZ] = "readyz",     [CPN_ROUTE_METRICS] = "metrics",
        };

        return (unsigned)r < _CPN_ROUTE_N ? names[r] : "unknown";
}

/* 1*DIGIT and optional trailing white space (civetweb skips the leading).
 * Returns the value, INT64_MAX when it does not fit, -1 if not a number. */
static int64_t parse_length(const char *v) {
        int64_t n = 0;
        const char *p = v;

        if (*p < '0' || *p > '9')
                return -1;
        for (; *p >= '0' && *p <= '9'; p++)
                n = n > (INT64_MAX - (*p - '0')) / 10 ? INT64_MAX : n * 10 + (*p - '0');
        while (*p == ' ' || *p == '\t')
                p++;
        return *p ? -1 : n;
}

const char *cpn_http_framing_error(const char *const *names, const char *const *values, size_t n,
                                   int64_t *length) {
        static const char *const once[] = { "Content-Length", "Transfer-Encoding", "Content-Type",
                                            "Authorization" };
        static const char *const why[] = { "Content-Length given twice", "Transfer-Encoding given twice",
                                           "Content-Type given twice", "Authorization given twice" };
        size_t seen[4] = { 0 };

        *length = -1;
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < 4; k++)
                        if (strcasecmp(names[i], once[k]) == 0 && seen[k]++)
                                return why[k];
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(names[i], "Content-Length") == 0) {
                        *length = parse_length(values[i]);
                        if (*length < 0)
                                return "Content-Length must be a decimal number";
                }
        if (seen[0] && seen[1]) {
                *length = -1;
                return "Content-Length and Transfer-Encoding must not be given together";
        }
        return NULL;
}

/* The one table from outcome to answer. */
static const struct cpn_api_error_info error_table[_CPN_E_N] = {
        [CPN_E_INVALID_REQUEST] = { 400, "invalid_request", "the request is not valid", 0 },
        [CPN_E_BODY_TOO_LARGE] = { 413, "body_too_large", "the request body is too large", 0 },
        [CPN_E_UNSUPPORTED_MEDIA_TYPE] = { 415, "unsupported_media_type",
                                           "the body must be application/json", 0 },
        [CPN_E_UNAUTHORIZED] = { 401, "unauthorized", "a valid admin bearer token is required", 0 },
        [CPN_E_NOT_FOUND] = { 404, "not_found", "no such resource", 0 },
        [CPN_E_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed", "method not allowed here", 0 },
        [CPN_E_CAMPAIGN_NOT_FOUND] = { 404, "campaign_not_found", "no such campaign", 0 },
        [CPN_E_ALREADY_ISSUED] = { 409, "already_issued", "this user already has this campaign's coupon", 0 },
        [CPN_E_SOLD_OUT] = { 410, "sold_out", "all coupons of this campaign are gone", 0 },
        [CPN_E_NOT_OPEN] = { 403, "not_open", "the campaign is not open", 0 },
        [CPN_E_CAMPAIGN_EXISTS] = { 409, "campaign_exists", "a campaign with this id exists", 0 },
        [CPN_E_PAUSED] = { 503, "unavailable", "the campaign is paused for maintenance", 5 },
        [CPN_E_ADMIN_DISABLED] = { 503, "unavailable",
                                   "admin endpoints are disabled until COUPON_ADMIN_TOKEN is set", 0 },
        [CPN_E_UNAVAILABLE] = { 503, "unavailable", "a backend is unavailable; nothing was changed", 1 },
        /* Not in the contract's table, which assumes every answer is known: the
         * script went out and Redis was lost before it answered. 503
         * would promise that nothing was issued. */
        [CPN_E_OUTCOME_UNKNOWN] = { 504, "outcome_unknown",
                                    "Redis was lost while deciding; the coupon may or may not have been "
                                    "issued: retry with the same user_id (202 or 409 tells which)", 1 },
        [CPN_E_LENGTH_REQUIRED] = { 411, "length_required",
                                    "a request body needs Content-Length or Transfer-Encoding: chunked", 0 },
        [CPN_E_HEADERS_TOO_LARGE] = { 431, "headers_too_large", "too many header fields", 0 },
        [CPN_E_HTTP_VERSION] = { 505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served", 0 },
        [CPN_E_REQUEST_TIMEOUT] = { 408, "request_timeout",
                                    "the request did not arrive within COUPON_HTTP_REQUEST_TIMEOUT_MS", 0 },
        [CPN_E_NOT_IMPLEMENTED] = { 501, "not_implemented", "this method is not implemented", 0 },
        [CPN_E_INTERNAL] = { 500, "internal", "internal error", 0 },
};

const struct cpn_api_error_info *cpn_api_error_info(enum cpn_api_error e) {
        return &error_table[(unsigned)e < _CPN_E_N ? e : CPN_E_INTERNAL];
}

enum cpn_api_error cpn_api_error_from_code(int r) {
        switch (r) {
        case CPN_ISSUE_DUPLICATE: return CPN_E_ALREADY_ISSUED;
        case CPN_ISSUE_SOLD_OUT: return CPN_E_SOLD_OUT;
        case CPN_ISSUE_NOT_OPEN: return CPN_E_NOT_OPEN;
        case CPN_ISSUE_PAUSED: return CPN_E_PAUSED;
        case CPN_CAMPAIGN_NOT_FOUND: return CPN_E_CAMPAIGN_NOT_FOUND;
        case CPN_CAMPAIGN_EXISTS:
        case CPN_CAMPAIGN_SAME: return CPN_E_CAMPAIGN_EXISTS;
        case CPN_CAMPAIGN_PARTIAL: return CPN_E_UNAVAILABLE;
        case CPN_INVALID: return CPN_E_INVALID_REQUEST;
        case CPN_UNKNOWN: return CPN_E_OUTCOME_UNKNOWN;
        case -EIO:
        case -ETIMEDOUT:
        case -ECONNREFUSED:
        case -EPROTO: /* e.g. Redis OOM or read-only replica: retryable */
        case -EBUSY:
                return CPN_E_UNAVAILABLE;
        default: return CPN_E_INTERNAL;
        }
}

int cpn_api_error_body(char *buf, size_t n, enum cpn_api_error e, const char *message) {
        const struct cpn_api_error_info *info = cpn_api_error_info(e);
        char quoted[1200];
        int r;

        if (cpn_json_quote(quoted, sizeof(quoted), message && *message ? message : info->message) < 0)
                cpn_json_quote(quoted, sizeof(quoted), info->message);
        r = snprintf(buf, n, "{\"error\":{\"code\":\"%s\",\"message\":%s}}", info->code, quoted);
        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}
