#pragma once
/*
 * The HTTP surface, product-neutral: a route registry matched on the raw
 * request path, the framing rules, the error answer (the shared rows of the
 * outcome table; each product keeps rows of its own), what a handler sees
 * of a request and produces, the per-route Prometheus metrics, and what a
 * product hands the server. civetweb itself is only seen by
 * src/http/server.c. Everything here is thread-safe and allocation-free.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cpn/types.h"
#include "cpn/error.h"

/*
 * The route registry. Each product hands the server a table of its routes;
 * a pattern is a path whose segments are literals or parameters:
 *
 *     {id}    [A-Za-z0-9_-]{1,64}      (campaign and ticket type ids)
 *     {user}  [A-Za-z0-9_.:-]{1,64}    (user ids)
 *     {uuid}  a UUID in lower-case canonical form (ticket ids)
 *
 * Matching is on the raw (undecoded) path: the grammars need no
 * percent-encoding, so a '%' in a parameter is simply invalid.
 */
#define CPN_ROUTES_MAX 32   /* all products' routes together, plus the server's own */
#define CPN_ROUTE_PARAMS 2  /* parameters in one pattern */
#define CPN_ROUTE_SEGMENTS 6

struct cpn_request;
struct cpn_response;

/* A route's handler. @thread: the product's state of the calling worker
 * thread (cpn_http_product.thread_new). Fills @rs; never fails: every
 * outcome is an answer. */
typedef void cpn_route_fn(void *thread, const struct cpn_request *rq, struct cpn_response *rs);

enum {
        CPN_ROUTE_BODY = 1u << 0,   /* reads the request body: Content-Length required */
        /* A customer endpoint: with COUPON_USER_AUTH=jwt the server
         * verifies the caller's token before the handler runs (401
         * invalid_token otherwise) and rq->caller names them. */
        CPN_ROUTE_CALLER = 1u << 1,
};

struct cpn_route {
        const char *method;    /* "GET", "POST", "DELETE", ... */
        const char *pattern;   /* "/v1/campaigns/{id}/users/{user}" */
        const char *name;      /* the metrics label; unique */
        unsigned flags;
        cpn_route_fn *handle;
        const char *bad_param; /* the 400 message when a parameter breaks its grammar */
};

enum cpn_param_kind { CPN_PARAM_NONE, CPN_PARAM_ID, CPN_PARAM_USER, CPN_PARAM_UUID };

struct cpn_router {
        size_t n; /* entries in use; entry 0 is "unknown" (no route) */
        struct cpn_router_entry {
                const struct cpn_route *route; /* borrowed: the product's table outlives the router */
                unsigned owner;                /* what the adder said, e.g. the product's index */
                int n_seg;
                struct {
                        const char *lit; /* NULL for a parameter */
                        size_t len;
                        enum cpn_param_kind kind;
                } seg[CPN_ROUTE_SEGMENTS];
        } e[CPN_ROUTES_MAX + 1];
};

struct cpn_route_match {
        int route; /* index in the router; 0 when nothing matched */
        char param[CPN_ROUTE_PARAMS][CPN_ID_MAX + 1]; /* the pattern's parameters in order, "" past them */
        char allow[48]; /* on CPN_ROUTE_BAD_METHOD: the methods this path allows ("GET, DELETE") */
};

enum cpn_route_result {
        CPN_ROUTE_OK,
        CPN_ROUTE_NO_ROUTE,   /* 404 not_found */
        CPN_ROUTE_BAD_ID,     /* a route matched but a parameter breaks its grammar: 400 (route set) */
        CPN_ROUTE_BAD_METHOD, /* 405; allow says what is allowed (route set to one of them) */
};

/* Empties @r. */
void cpn_router_init(struct cpn_router *r);
/* Adds @route (borrowed). Returns its index (>= 1), or -EINVAL with the
 * reason in @err: a malformed pattern, a name or (method, pattern) already
 * there, more than CPN_ROUTES_MAX routes (a route table is code: these are
 * bugs). */
int cpn_router_add(struct cpn_router *r, const struct cpn_route *route, unsigned owner, struct cpn_error *err);
/* Matches @method and the raw @path, query string excluded. Thread-safe
 * (reads only). */
enum cpn_route_result cpn_router_match(const struct cpn_router *r, const char *method, const char *path,
                                       struct cpn_route_match *m);
/* The route of @index, NULL for 0 and out of range. */
const struct cpn_route *cpn_router_route(const struct cpn_router *r, int index);
/* Its metrics label: "unknown" for 0 and out of range. */
const char *cpn_router_name(const struct cpn_router *r, int index);

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

/*
 * The answers every product shares. A product keeps the rows of its own
 * outcomes (sold_out, campaign_not_found, ...) as struct cpn_api_error_info
 * of its own and answers them with cpn_response_answer.
 */
enum cpn_api_error {
        CPN_E_INVALID_REQUEST,
        CPN_E_BODY_TOO_LARGE,
        CPN_E_UNSUPPORTED_MEDIA_TYPE,
        CPN_E_UNAUTHORIZED,
        CPN_E_INVALID_TOKEN, /* 401 of a customer endpoint; answered with WWW-Authenticate */
        CPN_E_FORBIDDEN,     /* the caller is not the user the request is about */
        CPN_E_NOT_FOUND,
        CPN_E_METHOD_NOT_ALLOWED,
        CPN_E_ADMIN_DISABLED,
        CPN_E_UNAVAILABLE,
        /* HTTP framing, answered by src/http/server.c: not in the contract's tables */
        CPN_E_LENGTH_REQUIRED,
        CPN_E_HEADERS_TOO_LARGE,
        CPN_E_HTTP_VERSION,
        CPN_E_REQUEST_TIMEOUT,
        CPN_E_NOT_IMPLEMENTED,
        CPN_E_INTERNAL,
        _CPN_E_N,
};

/* One row of an outcome -> answer table. */
struct cpn_api_error_info {
        int status;
        const char *code;     /* the error code of the body, [a-z_]+ */
        const char *message;  /* default message */
        int retry_after;      /* seconds for Retry-After, 0 = none */
};

/* The shared row of @e; out of range: internal. */
const struct cpn_api_error_info *cpn_api_error_info(enum cpn_api_error e);
/* Maps a return code no product row claims to a shared answer: CPN_INVALID
 * to invalid_request, an unreachable backend (-EIO, -ETIMEDOUT,
 * -ECONNREFUSED, -EPROTO, -EBUSY, -EAGAIN) to unavailable, anything else to
 * internal. Must not be called with 0. */
enum cpn_api_error cpn_api_error_from_code(int r);
/* Writes the error body {"error":{"code","message"}} of @info, @message or
 * the row's default; returns its length or -ENOBUFS. */
int cpn_api_error_body(char *buf, size_t n, const struct cpn_api_error_info *info, const char *message);

/* ---- what a handler sees and produces: no civetweb types ---- */

/* Borrowed for the duration of the call. */
struct cpn_request {
        struct cpn_route_match match;
        const char *content_type;  /* NULL if absent */
        const char *authorization; /* NULL if absent */
        const char *caller;        /* CPN_ROUTE_CALLER routes with identity on: the token's sub; else NULL */
        const char *body;          /* routes with CPN_ROUTE_BODY only */
        size_t body_len;
};

/* The server writes it in one write. */
struct cpn_response {
        int status;
        const char *allow;         /* Allow header for 405, or NULL */
        int retry_after;           /* seconds, 0 = none */
        char *body;                /* points into the thread's buffer */
        size_t body_len;
        size_t body_cap;
        const struct cpn_api_error_info *error; /* the row answered, when status >= 400 */
        struct cpn_error detail;   /* what went wrong, for the log of 5xx */
        /* Set by cpn_response_blob only: a body of another owner and type. */
        const char *content_type;  /* NULL: application/json */
        const char *cache_control; /* NULL: no-store */
        const char *headers;       /* NULL or more header lines, each ending in CRLF (static text) */
        void (*done)(void *ud);    /* called once the answer is written (or dropped): releases the body */
        void *done_ud;
};

/* Sets @rs to the answer of @info with @message (NULL or "": the row's). */
void cpn_response_answer(struct cpn_response *rs, const struct cpn_api_error_info *info, const char *message);
/* The same for a shared row. */
void cpn_response_error(struct cpn_response *rs, enum cpn_api_error e, const char *message);
/* A success: @len bytes already formatted into rs->body (snprintf's
 * result); too long or negative becomes a 500. */
void cpn_response_ok(struct cpn_response *rs, int status, int len);
/* A success whose @len bytes at @body are not in the thread's buffer (a
 * page, a snapshot): @body stays valid until @done(@ud) is called after the
 * write (@done may be NULL for static text). @type is the Content-Type,
 * @cache the Cache-Control value (NULL: no-store), @headers NULL or extra
 * header lines, each ending in CRLF, that live as long as the program. */
void cpn_response_blob(struct cpn_response *rs, int status, const char *type, const char *cache,
                       const char *headers, const char *body, size_t len, void (*done)(void *ud), void *ud);
/* Constant-time check of "Bearer <token>" (the scheme in any case). */
bool cpn_http_bearer_ok(const char *header, const char *token);
/* The token of "Bearer <token>" (the scheme in any case, one space, then
 * a token of RFC 6750's b64token characters): true with *@tok and *@len.
 * False for another scheme, an empty token or stray characters. */
bool cpn_http_bearer_token(const char *header, const char **tok, size_t *len);
/* Whether the caller may act for @user: identity is off (no caller) or the
 * caller is @user. */
bool cpn_http_caller_is(const struct cpn_request *rq, const char *user);
/* The body {"user_id"} of a customer's hot path under the caller rules
 * (cpn_json_user_body_as): 0 with @user, else answered in @rs (400, or 403
 * forbidden when the body names another user) with CPN_INVALID or
 * CPN_JSON_OTHER_USER returned. */
int cpn_http_user_body(const struct cpn_request *rq, struct cpn_response *rs, char user[CPN_ID_MAX + 1]);
/* application/json, in any case, with optional parameters. */
bool cpn_http_json_type(const char *content_type);

/* ---- metrics: per route, and what each product adds ---- */

#define CPN_LATENCY_BUCKETS 14
/* Status codes are counted in a small fixed set; others land in "other". */
#define CPN_METRIC_STATUSES 17

struct cpn_metrics {
        _Atomic uint64_t requests[CPN_ROUTES_MAX + 1][CPN_METRIC_STATUSES];
        _Atomic uint64_t latency[CPN_ROUTES_MAX + 1][CPN_LATENCY_BUCKETS + 1];
        _Atomic uint64_t latency_sum_us[CPN_ROUTES_MAX + 1];
};

/* Counts one answer of route @index (0: none matched). Any thread. */
void cpn_metrics_request(struct cpn_metrics *m, int index, int status, uint64_t us);
/* The status code counted at index @i (0..CPN_METRIC_STATUSES-1; 0 for
 * "other"), and the upper bound of latency bucket @b in microseconds
 * (UINT64_MAX for the last, unbounded, one). */
int cpn_metrics_status(int i);
uint64_t cpn_metrics_bound_us(int b);
/* Appends the Prometheus text of @m to @f, routes named by @r. */
void cpn_metrics_write(const struct cpn_metrics *m, const struct cpn_router *r, FILE *f);

/* ---- a product, as the server sees it ---- */

struct cpn_http_product {
        const char *name;
        const struct cpn_route *routes; /* borrowed, static */
        size_t n_routes;
        void *data; /* the product's shared state; borrowed, outlives the server */
        /* A worker thread's state for the product's handlers (its own
         * connections): 0 or a negative errno (the thread then answers 503).
         * Called on that thread, freed by thread_free on it. May be NULL. */
        int (*thread_new)(void **ret, void *data);
        void (*thread_free)(void *thread);
        /* Appends the product's Prometheus text to @f; may be NULL. Called
         * from any request thread. */
        void (*metrics)(void *data, FILE *f);
};
