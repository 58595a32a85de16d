/*
 * civetweb glue; the only file that sees civetweb. One catch-all request
 * handler routes by itself on the path as sent (so every unknown path gets
 * the JSON 404) through the products' route tables, refuses what civetweb
 * lets through but RFC 9112 does not (see framing()), reads the body into
 * the thread's buffer, calls the route's handler and writes the whole
 * answer with one write. The errors
 * civetweb answers itself (a request line or head it cannot parse) get the
 * same JSON error body through its http_error callback.
 *
 * civetweb serves each keep-alive connection with one worker thread for as
 * long as it stays open: COUPON_HTTP_THREADS is the number of connections
 * served at once; more wait in the accept queue. Each worker thread owns a
 * struct thread_ctx (created in init_thread, freed in exit_thread) holding
 * each product's state of that thread (its connections) and its buffers,
 * so nothing is allocated per request.
 */
#include <civetweb.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "cpn/api.h"
#include "cpn/jwt.h"
#include "cpn/log.h"

#define RESPONSE_HEAD_MAX 512
#define BODY_OUT_MAX 4096
#define MAX_REQUEST_HEAD 16384 /* civetweb's max_request_size: request line and head */
#define STR_(x) #x
#define STR(x) STR_(x)
#define PRODUCTS_MAX 4
#define OWN ((unsigned)-1) /* the owner of the server's own routes */

struct cpn_server {
        struct mg_context *ctx;
        const struct cpn_config *cfg;
        struct cpn_http_product products[PRODUCTS_MAX];
        size_t n_products;
        struct cpn_router router;
        int metrics_route; /* GET /metrics: answered here, its text is larger than a thread's buffer */
        struct cpn_metrics metrics;
        struct cpn_jwt_key *user_key; /* owned; NULL: COUPON_USER_AUTH=none */
        struct cpn_jwt_rules user_rules; /* strings borrowed from cfg */
        _Atomic int64_t last_error_log_s; /* rate limit of 5xx log lines */
        _Atomic uint64_t errors_suppressed;
};

struct thread_ctx {
        void *product[PRODUCTS_MAX]; /* each product's state of this thread, owned here */
        /* When civetweb began waiting for the request now being read: the
         * connection's start, or the end of the previous answer on it. The
         * whole request must have arrived COUPON_HTTP_REQUEST_TIMEOUT_MS
         * after it (civetweb bounds the head alone, and a body only per
         * read: a body trickled one byte at a time went on for ever). */
        uint64_t wait_start_ns;
        char *in;        /* request body, http_max_body + 1 bytes, right after this struct */
        char out[RESPONSE_HEAD_MAX + BODY_OUT_MAX];
};

static int allow_all(struct mg_connection *conn, void *ud) {
        (void)conn;
        (void)ud;
        return 1;
}

/* One mapping per thread for its context and both buffers: a thousand
 * threads each keep resident only the pages their requests touch (a
 * small body, a small answer), where malloc'd buffers would each have a
 * chunk header written next to them. */
static size_t thread_ctx_size(const struct cpn_server *s) {
        return sizeof(struct thread_ctx) + (size_t)s->cfg->http_max_body + 1;
}

static void *init_thread(const struct mg_context *ctx, int thread_type) {
        struct cpn_server *s = mg_get_user_data(ctx);
        struct thread_ctx *t;
        void *m;

        if (thread_type != 1) /* only request workers need a session */
                return NULL;
        m = mmap(NULL, thread_ctx_size(s), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
                return NULL;
        t = m;
        t->in = (char *)(t + 1);
        for (size_t i = 0; i < s->n_products; i++) {
                const struct cpn_http_product *p = &s->products[i];

                if (p->thread_new && p->thread_new(&t->product[i], p->data) != 0) {
                        while (i-- > 0)
                                if (s->products[i].thread_free)
                                        s->products[i].thread_free(t->product[i]);
                        munmap(m, thread_ctx_size(s));
                        return NULL;
                }
        }
        return t;
}

/* A new connection on this thread: its first request starts now. */
static int init_connection(const struct mg_connection *conn, void **conn_data) {
        struct thread_ctx *t = mg_get_thread_pointer(conn);

        (void)conn_data;
        if (t)
                t->wait_start_ns = cpn_mono_ns();
        return 0;
}

static void exit_thread(const struct mg_context *ctx, int thread_type, void *ptr) {
        struct cpn_server *s = mg_get_user_data(ctx);
        struct thread_ctx *t = ptr;

        (void)thread_type;
        if (!t)
                return;
        for (size_t i = 0; i < s->n_products; i++)
                if (s->products[i].thread_free)
                        s->products[i].thread_free(t->product[i]);
        munmap(t, thread_ctx_size(s));
}

/* 5xx answers are logged, at most one line per second plus a count of the
 * ones folded into it: an outage must not become a log flood. */
static void log_server_error(struct cpn_server *s, int route, const struct cpn_response *rs) {
        int64_t now = cpn_mono_ms() / 1000, last = atomic_load(&s->last_error_log_s);

        if (now == last || !atomic_compare_exchange_strong(&s->last_error_log_s, &last, now)) {
                atomic_fetch_add(&s->errors_suppressed, 1);
                return;
        }
        cpn_log_warn("%s answered %d %s: %s (%llu more since the last such line)",
                     cpn_router_name(&s->router, route), rs->status,
                     rs->error ? rs->error->code : "-",
                     rs->detail.msg[0] ? rs->detail.msg : "-",
                     (unsigned long long)atomic_exchange(&s->errors_suppressed, 0));
}

static const char *reason(int status) {
        switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 402: return "Payment Required";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 413: return "Payload Too Large";
        case 415: return "Unsupported Media Type";
        case 431: return "Request Header Fields Too Large";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return "Internal Server Error";
        }
}

/* Writes the answer. When @room is true, @rs->body sits RESPONSE_HEAD_MAX
 * bytes into the thread's buffer and the head is put right before it. The
 * answer to HEAD has no body: a keep-alive client would read it as the
 * start of the next answer. @close: civetweb closes the connection after
 * it (a "Connection: close" header alone does not make it). */
static void send_answer(struct mg_connection *conn, const struct cpn_response *rs, const char *ctype,
                        bool close, bool room) {
        const struct mg_request_info *ri = mg_get_request_info(conn);
        bool head_only = ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0;
        char head[RESPONSE_HEAD_MAX];
        int n;

        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: %s\r\n%s%s%s%s",
                     rs->status, reason(rs->status), rs->content_type ? rs->content_type : ctype, rs->body_len,
                     rs->cache_control ? rs->cache_control : "no-store", rs->allow ? "Allow: " : "",
                     rs->allow ? rs->allow : "", rs->allow ? "\r\n" : "", rs->headers ? rs->headers : "");
        if (rs->retry_after)
                n += snprintf(head + n, sizeof(head) - (size_t)n, "Retry-After: %d\r\n", rs->retry_after);
        if (rs->error == cpn_api_error_info(CPN_E_INVALID_TOKEN))
                n += snprintf(head + n, sizeof(head) - (size_t)n, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        if (close) {
                n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
                mg_disable_connection_keep_alive(conn);
        }
        n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
        if (head_only) {
                mg_write(conn, head, (size_t)n);
                return;
        }
        /* Head and body in one write: no Nagle stall between two segments. */
        if (!room || n >= RESPONSE_HEAD_MAX) {
                mg_write(conn, head, (size_t)n);
                mg_write(conn, rs->body, rs->body_len);
                return;
        }
        memmove(rs->body - n, head, (size_t)n);
        mg_write(conn, rs->body - n, (size_t)n + rs->body_len);
}

static void serve_metrics(struct cpn_server *s, struct mg_connection *conn, struct cpn_response *rs) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f) {
                cpn_response_error(rs, CPN_E_INTERNAL, NULL);
                send_answer(conn, rs, "application/json", false, true);
                return;
        }
        cpn_metrics_write(&s->metrics, &s->router, f);
        for (size_t i = 0; i < s->n_products; i++)
                if (s->products[i].metrics)
                        s->products[i].metrics(s->products[i].data, f);
        fclose(f);
        rs->status = 200;
        rs->body = text;
        rs->body_len = len;
        send_answer(conn, rs, "text/plain; version=0.0.4", false, false);
        free(text);
}

/* Reads the body of Content-Length @length (at most the body cap, checked
 * before) into t->in. Returns 0, or 400 (the client closed the connection
 * before the body was complete) or 408 (the request's time ran out first)
 * as the answer.
 *
 * One byte per mg_read, the deadline checked in between: civetweb's read
 * goes on for as long as bytes keep arriving, each within its timeout, so
 * a read asking for the whole body let a client trickling it hold the
 * thread for ever. A body that came with the head (the usual case) is
 * copied out of civetweb's buffer without a system call either way. A
 * client that falls silent is cut by civetweb's read, one timeout after
 * its last byte. */
static int read_body(struct mg_connection *conn, int64_t length, long timeout_ms, struct thread_ctx *t,
                     size_t *len) {
        uint64_t deadline = t->wait_start_ns + (uint64_t)timeout_ms * 1000000u;
        size_t want = (size_t)length, got = 0;

        while (got < want) {
                int n;

                if (got > 0 && cpn_mono_ns() > deadline)
                        return 408;
                n = mg_read(conn, t->in + got, 1);
                if (n <= 0) /* the connection broke, or civetweb's read timed out */
                        return n == 0 && cpn_mono_ns() > deadline ? 408 : 400;
                got++;
        }
        t->in[got] = '\0';
        *len = got;
        return 0;
}

/*
 * The head checks RFC 9112 asks for and civetweb 1.15 does not make.
 * civetweb parses the head in place: it turns each line end into NULs
 * (CR LF into two, a bare LF into one) and the head's final LF into one,
 * and it stops at the first line it does not take for a field, an obs-fold
 * (a line that starts with white space) or the 65th field
 * (MG_MAX_HEADERS), ignoring that line and all after it, Content-Length
 * and Authorization included. So:
 * - the request line and every field line must end in CR LF: two NULs
 *   before the next field's name. Bare LF line ends are refused (RFC 9112
 *   2.2 allows that): a proxy that does not take LF alone for a line end
 *   reads "X: a<LF>Content-Length: 5" as one field;
 * - the last field kept must be followed by the empty line "\r\0";
 * - white space between a name and its colon (RFC 9112 5.1: 400), which
 *   civetweb drops, shows as NULs between the name and the colon's NUL.
 * Returns NULL, or the reason with *@e set.
 */
static const char *head_error(const struct mg_request_info *ri, enum cpn_api_error *e) {
        int n = ri->num_headers;
        const char *p;

        *e = CPN_E_INVALID_REQUEST;
        if (n == 0)
                return NULL;
        p = ri->http_version + strlen(ri->http_version);
        if (p + 2 != ri->http_headers[0].name)
                return "lines must end in CR LF";
        for (int i = 0; i < n; i++) {
                const struct mg_header *h = &ri->http_headers[i];

                for (p = h->name + strlen(h->name) + 1; p < h->value; p++)
                        if (*p == '\0')
                                return "white space before a header field's colon";
                p = h->value + strlen(h->value);
                if (i + 1 < n && p + 2 != ri->http_headers[i + 1].name)
                        return "lines must end in CR LF";
        }
        /* p[0..3] stays inside civetweb's buffer of MAX_REQUEST_HEAD bytes. */
        if (p + 4 - ri->request_method <= MAX_REQUEST_HEAD && p[1] == '\0' && p[2] == '\r' && p[3] == '\0')
                return NULL;
        if (n == MG_MAX_HEADERS) {
                *e = CPN_E_HEADERS_TOO_LARGE;
                return "at most 64 header fields";
        }
        return "a folded header line (obs-fold) or a line end other than CR LF";
}

/* Checks the head; sets *@length (see cpn_http_framing_error). Returns
 * NULL or the error to answer, with the connection closed: where this
 * request ends is not known. */
static const char *framing(const struct mg_request_info *ri, enum cpn_api_error *e, int64_t *length) {
        const char *names[MG_MAX_HEADERS], *values[MG_MAX_HEADERS], *why;
        size_t n = (size_t)ri->num_headers;

        *length = -1;
        why = head_error(ri, e);
        if (why)
                return why;
        for (size_t i = 0; i < n; i++) {
                names[i] = ri->http_headers[i].name;
                values[i] = ri->http_headers[i].value;
        }
        return cpn_http_framing_error(names, values, n, length);
}

/* civetweb is about to answer an error itself: a request line or head it
 * cannot parse (400, or 411 for a Content-Length that is no number), an
 * HTTP version other than 1.x (505), a request timeout while the head came
 * in (400). Its own answer is text/plain and may echo request bytes in
 * its status line; ours is the API's JSON error, and the connection is
 * closed (civetweb does so after these anyway). */
/* Whether civetweb 1.15 takes @method (its table of methods: anything else
 * it refuses as a malformed request line, with a 400). */
static bool civetweb_method(const char *method) {
        static const char *const known[] = { "GET",      "POST",  "PUT",    "DELETE", "HEAD",
                                             "OPTIONS",  "CONNECT", "PATCH", "PROPFIND", "MKCOL",
                                             "LOCK",     "UNLOCK", "PROPPATCH", "REPORT", NULL };

        for (const char *const *k = known; *k; k++)
                if (strcmp(*k, method) == 0)
                        return true;
        return false;
}

static bool http_token(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("!#$%&'*+-.^_`|~", *s)))
                        return false;
        return true;
}

/* A request line civetweb refused only for its method (it stops there,
 * before the header fields): RFC 9110 wants 405 for a method the server
 * knows but the resource does not allow (TRACE) and 501 for one it does not
 * know (methods are case-sensitive: "get" is one of those), not 400.
 * Returns the answer, or false when the 400 is for something else. */
static bool method_error(const struct cpn_server *s, const struct mg_request_info *ri, struct cpn_response *rs,
                         struct cpn_route_match *m) {
        static const char *const standard[] = { "GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                                "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL };
        char path[512];

        if (!ri || !ri->request_method || !ri->request_uri || !ri->http_version || ri->num_headers != 0 ||
            (strcmp(ri->http_version, "1.1") != 0 && strcmp(ri->http_version, "1.0") != 0) ||
            !http_token(ri->request_method) || civetweb_method(ri->request_method))
                return false;
        for (const char *const *k = standard; *k; k++) {
                if (strcmp(*k, ri->request_method) != 0)
                        continue;
                snprintf(path, sizeof(path), "%.*s", (int)strcspn(ri->request_uri, "?"), ri->request_uri);
                if (cpn_router_match(&s->router, ri->request_method, path, m) == CPN_ROUTE_BAD_METHOD) {
                        cpn_response_error(rs, CPN_E_METHOD_NOT_ALLOWED, NULL);
                        rs->allow = m->allow;
                } else {
                        cpn_response_error(rs, CPN_E_NOT_FOUND, NULL);
                }
                return true;
        }
        cpn_response_error(rs, CPN_E_NOT_IMPLEMENTED, NULL);
        return true;
}

static int http_error(struct mg_connection *conn, int status, const char *msg) {
        struct cpn_server *s = mg_get_user_data(mg_get_context(conn));
        char body[RESPONSE_HEAD_MAX];
        struct cpn_response rs = { .body = body, .body_cap = sizeof(body) };
        const char *why = NULL; /* not @msg: it may hold request bytes that are not UTF-8 */
        struct cpn_route_match m;
        enum cpn_api_error e;

        if (status == 400 && method_error(s, mg_get_request_info(conn), &rs, &m)) {
                send_answer(conn, &rs, "application/json", true, false);
                cpn_metrics_request(&s->metrics, 0, rs.status, 0);
                return 0;
        }
        switch (status) {
        case 411: /* RFC 9112 6.3: an invalid Content-Length is a 400 */
                e = CPN_E_INVALID_REQUEST;
                why = "Content-Length must be a decimal number";
                break;
        case 413: e = CPN_E_BODY_TOO_LARGE; break;
        case 503: e = CPN_E_UNAVAILABLE; break;
        case 505: e = CPN_E_HTTP_VERSION; break;
        default:
                e = status >= 500 ? CPN_E_INTERNAL : CPN_E_INVALID_REQUEST;
                why = status >= 500 ? NULL : "malformed HTTP request";
                break;
        }
        (void)msg;
        cpn_response_error(&rs, e, why);
        send_answer(conn, &rs, "application/json", true, false);
        cpn_metrics_request(&s->metrics, 0, rs.status, 0);
        return 0;
}

/* The caller of a customer endpoint from its bearer token, before the
 * handler sees anything: false with the 401 in @rs. */
static bool authenticate(struct cpn_server *s, const char *authorization, char caller[CPN_ID_MAX + 1],
                         struct cpn_response *rs) {
        struct cpn_error err = { { 0 } };
        const char *tok;
        size_t len;
        int r;

        if (!cpn_http_bearer_token(authorization, &tok, &len)) {
                cpn_response_error(rs, CPN_E_INVALID_TOKEN, NULL);
                return false;
        }
        r = cpn_jwt_verify(s->user_key, &s->user_rules, tok, len, cpn_time_now_ms() / 1000, caller, &err);
        if (r < 0) {
                cpn_response_error(rs, cpn_api_error_from_code(r), NULL);
                return false;
        }
        if (r) {
                cpn_response_error(rs, CPN_E_INVALID_TOKEN, err.msg);
                return false;
        }
        return true;
}

/* The answer to one request; returns its status. */
static int serve(struct cpn_server *s, struct mg_connection *conn, struct thread_ctx *t,
                 const struct mg_request_info *ri, uint64_t t0) {
        struct cpn_request rq = { 0 };
        struct cpn_response rs = { 0 };
        char caller[CPN_ID_MAX + 1];
        const struct cpn_route *route;
        enum cpn_route_result rr;
        unsigned owner;
        enum cpn_api_error fe;
        const char *why;
        int64_t length;
        bool close = false;

        rs.body = t->out + RESPONSE_HEAD_MAX;
        rs.body_cap = BODY_OUT_MAX;
        why = framing(ri, &fe, &length);
        if (!why && mg_get_header(conn, "Transfer-Encoding")) {
                /* civetweb's chunked reader refuses chunk extensions (RFC 9112
                 * says to ignore them), closes the connection after a trailer
                 * (the next pipelined request was never answered) and times
                 * each chunk-size byte on its own (a slow one held a thread
                 * for minutes): not accepted. A proxy in front (deploy/nginx)
                 * takes chunked bodies and sends Content-Length. */
                fe = CPN_E_LENGTH_REQUIRED;
                why = "chunked request bodies are not accepted: send Content-Length";
        } else if (!why && length > s->cfg->http_max_body) {
                /* On every route: a body the server will not read cannot be
                 * skipped either (RFC 9112 6.3: the connection is closed). */
                fe = CPN_E_BODY_TOO_LARGE;
                why = NULL;
                cpn_response_error(&rs, fe, NULL);
                goto refuse;
        }
        if (why) {
                cpn_response_error(&rs, fe, why);
refuse:
                send_answer(conn, &rs, "application/json", true, true);
                cpn_metrics_request(&s->metrics, 0, rs.status, (cpn_mono_ns() - t0) / 1000);
                return rs.status;
        }
        /* local_uri_raw: the path as sent. civetweb's local_uri has '.' and
         * '..' segments removed and '//' merged, which made
         * /v1/campaigns/x/../bad/issue issue a coupon of "bad". */
        rr = cpn_router_match(&s->router, ri->request_method, ri->local_uri_raw ? ri->local_uri_raw : "",
                              &rq.match);
        route = cpn_router_route(&s->router, rq.match.route);
        switch (rr) {
        case CPN_ROUTE_NO_ROUTE:
                cpn_response_error(&rs, CPN_E_NOT_FOUND, NULL);
                break;
        case CPN_ROUTE_BAD_METHOD:
                cpn_response_error(&rs, CPN_E_METHOD_NOT_ALLOWED, NULL);
                rs.allow = rq.match.allow;
                break;
        case CPN_ROUTE_BAD_ID:
                cpn_response_error(&rs, CPN_E_INVALID_REQUEST, route->bad_param);
                break;
        case CPN_ROUTE_OK:
                if (rq.match.route == s->metrics_route) {
                        serve_metrics(s, conn, &rs);
                        cpn_metrics_request(&s->metrics, rq.match.route, rs.status, (cpn_mono_ns() - t0) / 1000);
                        return rs.status;
                }
                if (route->flags & CPN_ROUTE_BODY) {
                        int st;

                        /* Without it, RFC 9112 says the body is empty and any bytes
                         * sent would be read as the next request. */
                        if (length < 0) {
                                cpn_response_error(&rs, CPN_E_LENGTH_REQUIRED, NULL);
                                close = true;
                                break;
                        }
                        st = read_body(conn, length, s->cfg->http_request_timeout_ms, t, &rq.body_len);
                        if (st) {
                                /* The rest of the body is not read: close the connection. */
                                if (st == 408)
                                        cpn_response_error(&rs, CPN_E_REQUEST_TIMEOUT, NULL);
                                else
                                        cpn_response_error(&rs, CPN_E_INVALID_REQUEST,
                                                           "the request body is shorter than its Content-Length");
                                close = true;
                                break;
                        }
                        rq.body = t->in;
                }
                rq.content_type = mg_get_header(conn, "Content-Type");
                rq.authorization = mg_get_header(conn, "Authorization");
                if ((route->flags & CPN_ROUTE_CALLER) && s->user_key &&
                    !authenticate(s, rq.authorization, caller, &rs))
                        break;
                if ((route->flags & CPN_ROUTE_CALLER) && s->user_key)
                        rq.caller = caller;
                owner = s->router.e[rq.match.route].owner;
                route->handle(owner == OWN ? NULL : t->product[owner], &rq, &rs);
                break;
        }
        /* A blob (cpn_response_blob) is not in the thread's buffer: no room before it. */
        send_answer(conn, &rs, "application/json", close, rs.body_cap != 0);
        if (rs.done)
                rs.done(rs.done_ud);
        if (rs.status >= 500)
                log_server_error(s, rq.match.route, &rs);
        cpn_metrics_request(&s->metrics, rq.match.route, rs.status, (cpn_mono_ns() - t0) / 1000);
        return rs.status;
}

static int handle(struct mg_connection *conn, void *ud) {
        struct cpn_server *s = ud;
        struct thread_ctx *t = mg_get_thread_pointer(conn);
        int status;

        if (!t) { /* the thread could not get its session at start (out of memory) */
                mg_send_http_error(conn, 503, "%s", "out of memory");
                return 503;
        }
        status = serve(s, conn, t, mg_get_request_info(conn), cpn_mono_ns());
        /* The next request on this connection starts waiting now. */
        t->wait_start_ns = cpn_mono_ns();
        return status;
}

static int log_message(const struct mg_connection *conn, const char *message) {
        (void)conn;
        cpn_log_debug("civetweb: %s", message);
        return 1;
}

bool cpn_server_route_stats(const struct cpn_server *s, const char *name, struct cpn_route_stats *out) {
        for (size_t r = 1; r < s->router.n; r++) {
                if (strcmp(cpn_router_name(&s->router, (int)r), name) != 0)
                        continue;
                for (int i = 0; i < CPN_METRIC_STATUSES; i++)
                        out->status[i] = atomic_load_explicit(&s->metrics.requests[r][i], memory_order_relaxed);
                for (int b = 0; b <= CPN_LATENCY_BUCKETS; b++)
                        out->latency[b] = atomic_load_explicit(&s->metrics.latency[r][b], memory_order_relaxed);
                return true;
        }
        return false;
}

static void handle_healthz(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        cpn_response_ok(rs, 200, snprintf(rs->body, rs->body_cap, "{\"status\":\"ok\"}"));
}

/* Never called: serve() answers /metrics itself. */
static void handle_metrics(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        cpn_response_error(rs, CPN_E_INTERNAL, NULL);
}

static const struct cpn_route own_routes[] = {
        { "GET", "/healthz", "healthz", 0, handle_healthz, NULL },
        { "GET", "/metrics", "metrics", 0, handle_metrics, NULL },
};

static int routes_add(struct cpn_server *s, const struct cpn_http_product *products, size_t n,
                      struct cpn_error *err) {
        int r;

        if (n > PRODUCTS_MAX)
                return cpn_error_set(err, CPN_INVALID, "at most %d products", PRODUCTS_MAX);
        cpn_router_init(&s->router);
        for (size_t i = 0; i < sizeof(own_routes) / sizeof(own_routes[0]); i++) {
                r = cpn_router_add(&s->router, &own_routes[i], OWN, err);
                if (r < 0)
                        return CPN_INVALID;
                if (own_routes[i].handle == handle_metrics)
                        s->metrics_route = r;
        }
        for (size_t i = 0; i < n; i++) {
                s->products[i] = products[i];
                for (size_t k = 0; k < products[i].n_routes; k++) {
                        r = cpn_router_add(&s->router, &products[i].routes[k], (unsigned)i, err);
                        if (r < 0)
                                return CPN_INVALID;
                }
        }
        s->n_products = n;
        return 0;
}

/* The identity provider's key, once, at start: a bad one stops the
 * program (CPN_INVALID naming the variable). */
static int load_user_key(struct cpn_server *s, const struct cpn_config *cfg, struct cpn_error *err) {
        int r;

        if (!cfg->user_auth || strcmp(cfg->user_auth, "jwt") != 0)
                return 0;
        if (cfg->user_jwt_key && *cfg->user_jwt_key) {
                r = cpn_jwt_key_public(&s->user_key, cfg->user_jwt_key, err);
                if (r)
                        return r < 0 ? r : cpn_error_prefix(err, r, "COUPON_USER_JWT_KEY");
        } else {
                r = cpn_jwt_key_secret(&s->user_key, cfg->user_jwt_secret ? cfg->user_jwt_secret : "",
                                       cfg->user_jwt_secret ? strlen(cfg->user_jwt_secret) : 0, err);
                if (r)
                        return r < 0 ? r : cpn_error_prefix(err, r, "COUPON_USER_JWT_SECRET");
        }
        s->user_rules.issuer = cfg->user_jwt_issuer && *cfg->user_jwt_issuer ? cfg->user_jwt_issuer : NULL;
        s->user_rules.audience = cfg->user_jwt_audience && *cfg->user_jwt_audience ? cfg->user_jwt_audience : NULL;
        s->user_rules.leeway_s = cfg->user_jwt_leeway_s;
        cpn_log_info("caller identity: %s tokens%s%s%s%s", cpn_jwt_alg_name(cpn_jwt_key_alg(s->user_key)),
                     s->user_rules.issuer ? ", iss " : "", s->user_rules.issuer ? s->user_rules.issuer : "",
                     s->user_rules.audience ? ", aud " : "", s->user_rules.audience ? s->user_rules.audience : "");
        return 0;
}

int cpn_server_new(struct cpn_server **ret, const struct cpn_config *cfg, const struct cpn_http_product *products,
                   size_t n_products, struct cpn_error *err) {
        struct mg_callbacks cb = { 0 };
        struct mg_init_data init = { 0 };
        struct mg_error_data ed = { 0 };
        char threads[16], rto[16], kato[16], errbuf[256], queue[16];
        struct cpn_server *s;
        const char *options[32];
        int o = 0, r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cfg = cfg;
        r = load_user_key(s, cfg, err);
        if (!r)
                r = routes_add(s, products, n_products, err);
        if (r) {
                cpn_jwt_key_free(s->user_key);
                free(s);
                return r;
        }
        snprintf(threads, sizeof(threads), "%ld", cfg->http_threads);
        snprintf(rto, sizeof(rto), "%ld", cfg->http_request_timeout_ms);
        snprintf(kato, sizeof(kato), "%ld", cfg->http_keepalive_ms);
        snprintf(queue, sizeof(queue), "%ld", cfg->http_threads * 2);
        options[o++] = "listening_ports";
        options[o++] = cfg->http_addr;
        options[o++] = "num_threads";
        options[o++] = threads;
        options[o++] = "request_timeout_ms";
        options[o++] = rto;
        options[o++] = "keep_alive_timeout_ms";
        options[o++] = kato;
        options[o++] = "enable_keep_alive";
        options[o++] = "yes";
        options[o++] = "tcp_nodelay";
        options[o++] = "1";
        options[o++] = "decode_url";
        options[o++] = "no"; /* route on the raw path: ids never need %-encoding */
        options[o++] = "connection_queue";
        options[o++] = queue;
        options[o++] = "listen_backlog";
        options[o++] = "4096";
        options[o++] = "max_request_size";
        options[o++] = STR(MAX_REQUEST_HEAD);
        options[o++] = NULL;

        cb.init_thread = init_thread;
        cb.init_connection = init_connection;
        cb.exit_thread = exit_thread;
        cb.log_message = log_message;
        cb.http_error = http_error;
        init.callbacks = &cb;
        init.user_data = s;
        init.configuration_options = options;
        ed.text = errbuf;
        ed.text_buffer_size = sizeof(errbuf);
        errbuf[0] = '\0';
        s->ctx = mg_start2(&init, &ed);
        if (!s->ctx) {
                cpn_jwt_key_free(s->user_key);
                free(s);
                return cpn_error_set(err, CPN_INVALID, "cannot listen on %s: %s", cfg->http_addr,
                                     errbuf[0] ? errbuf : "civetweb failed to start");
        }
        mg_set_request_handler(s->ctx, "**", handle, s);
        /* Admin endpoints check their bearer token themselves. Without an
         * auth handler civetweb would look for a .htpasswd file (one failed
         * stat) before every request. */
        mg_set_auth_handler(s->ctx, "**", allow_all, NULL);
        *ret = s;
        return 0;
}

struct cpn_server *cpn_server_free(struct cpn_server *s) {
        if (s) {
                mg_stop(s->ctx); /* waits for the requests in flight */
                cpn_jwt_key_free(s->user_key);
                free(s);
        }
        return NULL;
}
