/* The route registry on the raw path, the framing checks civetweb does
 * not make, and the shared rows of the outcome -> HTTP table. */
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

static bool param_valid(enum cpn_param_kind k, const char *s, size_t len) {
        switch (k) {
        case CPN_PARAM_ID: return cpn_id_valid(s, len);
        case CPN_PARAM_USER: return cpn_user_id_valid(s, len);
        case CPN_PARAM_UUID: return cpn_uuid_valid(s, len);
        default: return false;
        }
}

static enum cpn_param_kind param_kind(const char *s, size_t len) {
        static const struct {
                const char *name;
                enum cpn_param_kind kind;
        } kinds[] = { { "{id}", CPN_PARAM_ID }, { "{user}", CPN_PARAM_USER }, { "{uuid}", CPN_PARAM_UUID } };

        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
                if (strlen(kinds[i].name) == len && memcmp(kinds[i].name, s, len) == 0)
                        return kinds[i].kind;
        return CPN_PARAM_NONE;
}

void cpn_router_init(struct cpn_router *r) {
        memset(r, 0, sizeof(*r));
        r->n = 1;
}

static bool same_shape(const struct cpn_router_entry *a, const struct cpn_router_entry *b) {
        if (a->n_seg != b->n_seg)
                return false;
        for (int i = 0; i < a->n_seg; i++) {
                if (!a->seg[i].lit != !b->seg[i].lit)
                        return false;
                if (a->seg[i].lit && (a->seg[i].len != b->seg[i].len ||
                                      memcmp(a->seg[i].lit, b->seg[i].lit, a->seg[i].len) != 0))
                        return false;
        }
        return true;
}

int cpn_router_add(struct cpn_router *r, const struct cpn_route *route, unsigned owner, struct cpn_error *err) {
        struct cpn_router_entry e = { .route = route, .owner = owner };
        const char *seg[CPN_ROUTE_SEGMENTS];
        size_t len[CPN_ROUTE_SEGMENTS];
        int params = 0;

        if (!route->method || !route->pattern || !route->name || !route->handle || !route->name[0])
                return cpn_error_set(err, -EINVAL, "route %s: method, pattern, name and handler are needed",
                                     route->name ? route->name : "(unnamed)");
        if (r->n > CPN_ROUTES_MAX)
                return cpn_error_set(err, -EINVAL, "route %s: more than %d routes", route->name,
                                     CPN_ROUTES_MAX);
        e.n_seg = split(route->pattern, seg, len, CPN_ROUTE_SEGMENTS);
        if (e.n_seg < 0)
                return cpn_error_set(err, -EINVAL, "route %s: pattern \"%s\" is not a path of 1..%d segments",
                                     route->name, route->pattern, CPN_ROUTE_SEGMENTS);
        for (int i = 0; i < e.n_seg; i++) {
                e.seg[i].len = len[i];
                if (seg[i][0] == '{') {
                        e.seg[i].kind = param_kind(seg[i], len[i]);
                        if (e.seg[i].kind == CPN_PARAM_NONE || ++params > CPN_ROUTE_PARAMS)
                                return cpn_error_set(err, -EINVAL, "route %s: bad parameter %.*s", route->name,
                                                     (int)len[i], seg[i]);
                } else if (memchr(seg[i], '{', len[i]) || memchr(seg[i], '}', len[i])) {
                        return cpn_error_set(err, -EINVAL, "route %s: bad segment %.*s", route->name,
                                             (int)len[i], seg[i]);
                } else {
                        e.seg[i].lit = seg[i];
                }
        }
        if (strcmp(route->name, "unknown") == 0)
                return cpn_error_set(err, -EINVAL, "route name unknown is the one of no route");
        for (size_t i = 1; i < r->n; i++) {
                if (strcmp(r->e[i].route->name, route->name) == 0)
                        return cpn_error_set(err, -EINVAL, "route name %s taken", route->name);
                if (strcmp(r->e[i].route->method, route->method) == 0 && same_shape(&r->e[i], &e))
                        return cpn_error_set(err, -EINVAL, "routes %s and %s: same method and path",
                                             r->e[i].route->name, route->name);
        }
        r->e[r->n] = e;
        return (int)r->n++;
}

/* Whether @path's segments fit @e's literals (parameters take any). */
static bool shape_fits(const struct cpn_router_entry *e, int n, const char *const *seg, const size_t *len) {
        if (e->n_seg != n)
                return false;
        for (int i = 0; i < n; i++)
                if (e->seg[i].lit && (e->seg[i].len != len[i] || memcmp(e->seg[i].lit, seg[i], len[i]) != 0))
                        return false;
        return true;
}

static void allow_add(char *allow, size_t cap, const char *method) {
        size_t l = strlen(allow);

        if (strstr(allow, method)) /* "GET" is never a part of another standard method's name */
                return;
        snprintf(allow + l, cap - l, "%s%s", l ? ", " : "", method);
}

enum cpn_route_result cpn_router_match(const struct cpn_router *r, const char *method, const char *path,
                                       struct cpn_route_match *m) {
        const char *seg[CPN_ROUTE_SEGMENTS];
        size_t len[CPN_ROUTE_SEGMENTS];
        int n = split(path, seg, len, CPN_ROUTE_SEGMENTS), other = 0;

        memset(m, 0, sizeof(*m));
        if (n < 0)
                return CPN_ROUTE_NO_ROUTE;
        for (size_t i = 1; i < r->n; i++) {
                const struct cpn_router_entry *e = &r->e[i];
                int p = 0;

                if (!shape_fits(e, n, seg, len))
                        continue;
                if (strcmp(method, e->route->method) != 0) {
                        if (!other)
                                other = (int)i;
                        allow_add(m->allow, sizeof(m->allow), e->route->method);
                        continue;
                }
                memset(m->allow, 0, sizeof(m->allow));
                m->route = (int)i;
                for (int k = 0; k < n; k++) {
                        if (e->seg[k].lit)
                                continue;
                        if (!param_valid(e->seg[k].kind, seg[k], len[k])) {
                                memset(m->param, 0, sizeof(m->param));
                                return CPN_ROUTE_BAD_ID;
                        }
                        memcpy(m->param[p++], seg[k], len[k]); /* the grammars cap it at CPN_ID_MAX */
                }
                return CPN_ROUTE_OK;
        }
        if (!other)
                return CPN_ROUTE_NO_ROUTE;
        m->route = other;
        return CPN_ROUTE_BAD_METHOD;
}

const struct cpn_route *cpn_router_route(const struct cpn_router *r, int index) {
        return index >= 1 && (size_t)index < r->n ? r->e[index].route : NULL;
}

const char *cpn_router_name(const struct cpn_router *r, int index) {
        const struct cpn_route *rt = cpn_router_route(r, index);

        return rt ? rt->name : "unknown";
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

/* The shared rows of the outcome -> answer table. */
static const struct cpn_api_error_info error_table[_CPN_E_N] = {
        [CPN_E_INVALID_REQUEST] = { 400, "invalid_request", "the request is not valid", 0 },
        [CPN_E_BODY_TOO_LARGE] = { 413, "body_too_large", "the request body is too large", 0 },
        [CPN_E_UNSUPPORTED_MEDIA_TYPE] = { 415, "unsupported_media_type",
                                           "the body must be application/json", 0 },
        [CPN_E_UNAUTHORIZED] = { 401, "unauthorized", "a valid admin bearer token is required", 0 },
        [CPN_E_INVALID_TOKEN] = { 401, "invalid_token",
                                  "a valid bearer token of the user is required (Authorization: Bearer <JWT>)", 0 },
        [CPN_E_FORBIDDEN] = { 403, "forbidden", "the token's user may not act for this user", 0 },
        [CPN_E_NOT_FOUND] = { 404, "not_found", "no such resource", 0 },
        [CPN_E_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed", "method not allowed here", 0 },
        [CPN_E_ADMIN_DISABLED] = { 503, "unavailable",
                                   "admin endpoints are disabled until COUPON_ADMIN_TOKEN is set", 0 },
        [CPN_E_UNAVAILABLE] = { 503, "unavailable", "a backend is unavailable; nothing was changed", 1 },
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
        case CPN_INVALID: return CPN_E_INVALID_REQUEST;
        case -EIO:
        case -ETIMEDOUT:
        case -ECONNREFUSED:
        case -EPROTO: /* e.g. Redis OOM or read-only replica: retryable */
        case -EBUSY:
        case -EAGAIN: /* a MySQL deadlock or lock wait timeout: nothing was changed */
                return CPN_E_UNAVAILABLE;
        default: return CPN_E_INTERNAL;
        }
}

int cpn_api_error_body(char *buf, size_t n, const struct cpn_api_error_info *info, const char *message) {
        char quoted[1200];
        int r;

        if (cpn_json_quote(quoted, sizeof(quoted), message && *message ? message : info->message) < 0)
                cpn_json_quote(quoted, sizeof(quoted), info->message);
        r = snprintf(buf, n, "{\"error\":{\"code\":\"%s\",\"message\":%s}}", info->code, quoted);
        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

void cpn_response_answer(struct cpn_response *rs, const struct cpn_api_error_info *info, const char *message) {
        int n = cpn_api_error_body(rs->body, rs->body_cap, info, message);

        if (n < 0)
                n = cpn_api_error_body(rs->body, rs->body_cap, info, NULL);
        rs->status = info->status;
        rs->retry_after = info->retry_after;
        rs->error = info;
        rs->body_len = n < 0 ? 0 : (size_t)n;
}

void cpn_response_error(struct cpn_response *rs, enum cpn_api_error e, const char *message) {
        cpn_response_answer(rs, cpn_api_error_info(e), message);
}

void cpn_response_ok(struct cpn_response *rs, int status, int len) {
        if (len < 0 || (size_t)len >= rs->body_cap) {
                cpn_response_error(rs, CPN_E_INTERNAL, "answer too large");
                return;
        }
        rs->status = status;
        rs->body_len = (size_t)len;
}

void cpn_response_blob(struct cpn_response *rs, int status, const char *type, const char *cache,
                       const char *headers, const char *body, size_t len, void (*done)(void *ud), void *ud) {
        rs->status = status;
        rs->body = (char *)body; /* only read from here on: the server writes it */
        rs->body_len = len;
        rs->body_cap = 0;
        rs->content_type = type;
        rs->cache_control = cache;
        rs->headers = headers;
        rs->done = done;
        rs->done_ud = ud;
}

bool cpn_http_bearer_ok(const char *header, const char *token) {
        size_t hl, tl = strlen(token);
        unsigned char diff = 0;

        if (!header || strncasecmp(header, "Bearer ", 7) != 0)
                return false;
        header += 7;
        hl = strlen(header);
        /* Time depends on the expected token's length only. */
        diff |= hl != tl;
        for (size_t i = 0; i < tl; i++)
                diff |= (unsigned char)token[i] ^ (unsigned char)(i < hl ? header[i] : 0);
        return diff == 0;
}

bool cpn_http_bearer_token(const char *header, const char **tok, size_t *len) {
        size_t n = 0;

        if (!header || strncasecmp(header, "Bearer ", 7) != 0)
                return false;
        header += 7;
        /* b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
        while ((header[n] >= 'A' && header[n] <= 'Z') || (header[n] >= 'a' && header[n] <= 'z') ||
               (header[n] >= '0' && header[n] <= '9') || (header[n] && strchr("-._~+/", header[n])))
                n++;
        while (n && header[n] == '=')
                n++;
        if (n == 0 || header[n] != '\0')
                return false;
        *tok = header;
        *len = n;
        return true;
}

bool cpn_http_caller_is(const struct cpn_request *rq, const char *user) {
        return !rq->caller || strcmp(rq->caller, user) == 0;
}

int cpn_http_user_body(const struct cpn_request *rq, struct cpn_response *rs, char user[CPN_ID_MAX + 1]) {
        struct cpn_error err = { { 0 } };
        int r = cpn_json_user_body_as(rq->body, rq->body_len, rq->caller, user, &err);

        if (r == CPN_JSON_OTHER_USER)
                cpn_response_error(rs, CPN_E_FORBIDDEN, err.msg);
        else if (r > 0)
                cpn_response_error(rs, CPN_E_INVALID_REQUEST, err.msg);
        else if (r < 0)
                cpn_response_error(rs, cpn_api_error_from_code(r), NULL);
        return r;
}

bool cpn_http_json_type(const char *ct) {
        size_t n = strlen("application/json");

        if (!ct || strncasecmp(ct, "application/json", n) != 0)
                return false;
        ct += n;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        return *ct == '\0' || *ct == ';';
}
