/*
 * libFuzzer target: everything coupon-api does with the bytes of a request
 * before its one domain call. The input is framed like a small HTTP/1.1
 * request:
 *
 *     METHOD SP PATH[?QUERY] LF
 *     Name: value LF              any number of header lines
 *     LF
 *     BODY                        the rest of the input, any bytes
 *
 * A CR before an LF is dropped. Without the empty line there is no body.
 * A header line is split at its first ':', white space before the value
 * skipped (as civetweb does), lines without ':' and those past the 64th
 * (civetweb's MG_MAX_HEADERS) ignored. The handler sees the first
 * Content-Type and Authorization (names case-insensitive, as with
 * mg_get_header). The query is cut off, as civetweb's local_uri_raw that
 * server.c routes on has none. Without a space the whole first line is the
 * method and the path is empty.
 *
 * What runs, with the invariants checked (a violation aborts):
 * - cpn_http_framing_error on all header fields, against a plain
 *   reference: refused exactly when Content-Length, Transfer-Encoding,
 *   Content-Type or Authorization repeats, Content-Length is not digits
 *   (then optional white space), or both framings are given; the length it
 *   reports is the reference's.
 * - cpn_router_match over the routes coupon-api registers: a matched path
 *   is exactly its route's pattern with the parameters put in, each
 *   NUL-terminated and valid; `allow` is set on 405 only and never lists
 *   the method asked.
 * - cpn_http_bearer_ok on the Authorization value, against a plain
 *   reference ("Bearer " in any case, then exactly the token).
 * - On POST /v1/campaigns/{c}/issue, cpn_campaign_parse_issue of the body; an
 *   accepted user_id is valid, NUL-terminated within CPN_ID_MAX+1 bytes and
 *   survives a round trip; every refusal has a message in valid UTF-8.
 * - On POST /v1/campaigns, cpn_campaign_parse; an accepted campaign
 *   keeps its bounds (total 1..CPN_TOTAL_MAX, name 1..200 characters,
 *   ends after starts), and the view GET shows of it is valid JSON whose
 *   fields, posted back, give the same campaign.
 * - the route's handler for the answers that come before the domain call (503 admin
 *   disabled, 401, 415, 400), each a valid UTF-8 JSON error body with the
 *   table's code. The handler is only ever given a body that fails to
 *   parse, so it never reaches the service (there is none here).
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpn/config.h"
#include "cpn/error.h"
#include "cpn/http.h"
#include "cpn/json.h"
#include "cpn/types.h"
#include "cpn/coupon/campaign.h"
#include "cpn/coupon/http.h"
#include "fuzz.h"

#define TOKEN "s3cret-token-0123456789"
#define NOW 1795255200000LL /* 2026-11-21T10:00:00Z */
#define ANSWER_MAX 4096     /* server.c's BODY_OUT_MAX */
#define HEADERS_MAX 64      /* civetweb's MG_MAX_HEADERS */

struct request {
        char *method;
        char *path;
        char *names[HEADERS_MAX];
        char *values[HEADERS_MAX];
        size_t n_headers;
        const char *content_type;  /* the first, borrowed from values[]; NULL if absent */
        const char *authorization; /* the same */
        char *body;          /* exactly body_len bytes, no NUL after them */
        size_t body_len;
};

/* Takes the next line off [*p, end): its start and length without the line
 * end. False at the end of the input; *lf says whether an LF ended it. */
static bool next_line(const uint8_t **p, const uint8_t *end, const uint8_t **s, size_t *len,
                      bool *lf) {
        const uint8_t *e;

        if (*p >= end)
                return false;
        e = memchr(*p, '\n', (size_t)(end - *p));
        *s = *p;
        *lf = e != NULL;
        if (!e)
                e = end;
        *len = (size_t)(e - *p);
        *p = *lf ? e + 1 : e;
        if (*len > 0 && (*s)[*len - 1] == '\r')
                (*len)--;
        return true;
}

static void header_add(struct request *rq, const uint8_t *s, size_t len) {
        const uint8_t *colon = memchr(s, ':', len);
        size_t i;

        if (!colon || rq->n_headers == HEADERS_MAX)
                return;
        i = (size_t)(colon - s) + 1;
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
                i++;
        rq->names[rq->n_headers] = cpn_fuzz_strndup(s, (size_t)(colon - s));
        rq->values[rq->n_headers++] = cpn_fuzz_strndup(s + i, len - i);
}

/* The first value of header @name, or NULL. */
static const char *header_get(const struct request *rq, const char *name) {
        for (size_t i = 0; i < rq->n_headers; i++)
                if (strcasecmp(rq->names[i], name) == 0)
                        return rq->values[i];
        return NULL;
}

static void request_parse(struct request *rq, const uint8_t *data, size_t size) {
        const uint8_t *p = data, *end = data + size, *s = NULL, *sp, *q;
        size_t len = 0;
        bool lf = false;

        memset(rq, 0, sizeof(*rq));
        if (!next_line(&p, end, &s, &len, &lf)) {
                s = (const uint8_t *)"";
                len = 0;
        }
        sp = memchr(s, ' ', len);
        if (sp) {
                rq->method = cpn_fuzz_strndup(s, (size_t)(sp - s));
                sp++;
                q = memchr(sp, '?', (size_t)(s + len - sp));
                rq->path = cpn_fuzz_strndup(sp, (size_t)((q ? q : s + len) - sp));
        } else {
                rq->method = cpn_fuzz_strndup(s, len);
                rq->path = cpn_fuzz_strndup("", 0);
        }
        while (lf && next_line(&p, end, &s, &len, &lf)) {
                if (len == 0 && lf) {
                        rq->body = cpn_fuzz_copy(p, (size_t)(end - p));
                        rq->body_len = (size_t)(end - p);
                        return;
                }
                header_add(rq, s, len);
        }
        rq->body = cpn_fuzz_copy("", 0);
        rq->body_len = 0;
}

static void request_clear(struct request *rq) {
        free(rq->method);
        free(rq->path);
        for (size_t i = 0; i < rq->n_headers; i++) {
                free(rq->names[i]);
                free(rq->values[i]);
        }
        free(rq->body);
}

/* ---- routes ---- */

static void nop(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        (void)rs;
}

/* coupon-api's routes: the server's, the process's, the coupon product's. */
static const struct cpn_route own[] = {
        { "GET", "/healthz", "healthz", 0, nop, NULL },
        { "GET", "/metrics", "metrics", 0, nop, NULL },
        { "GET", "/readyz", "readyz", 0, nop, NULL },
};
static struct cpn_router router;
static struct cpn_coupon_http coupon_http;
static void *coupon_thread;

static void setup(void) {
        struct cpn_http_product p = cpn_coupon_http_product(&coupon_http);

        if (router.n)
                return;
        cpn_router_init(&router);
        for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
                if (cpn_router_add(&router, &own[i], 1, NULL) < 0)
                        abort();
        for (size_t i = 0; i < p.n_routes; i++)
                if (cpn_router_add(&router, &p.routes[i], 0, NULL) < 0)
                        abort();
        if (p.thread_new(&coupon_thread, &coupon_http) != 0) /* no service: no connection */
                abort();
}

/* The route's pattern with @m's parameters put in; their number in *@n. */
static void canonical_path(char *buf, size_t cap, const struct cpn_route *rt, const struct cpn_route_match *m,
                           int *n) {
        size_t o = 0;

        *n = 0;
        for (const char *p = rt->pattern; *p && o + 1 < cap;) {
                if (*p == '{') {
                        o += (size_t)snprintf(buf + o, cap - o, "%s", m->param[(*n)++]);
                        p = strchr(p, '}') + 1;
                } else {
                        buf[o++] = *p++;
                }
        }
        buf[o < cap ? o : cap - 1] = '\0';
}

/* Whether @allow ("GET, DELETE") lists @method. */
static bool allow_lists(const char *allow, const char *method) {
        size_t l = strlen(method);

        for (const char *p = allow; *p;) {
                size_t k = strcspn(p, ",");

                if (k == l && memcmp(p, method, l) == 0)
                        return true;
                p += k;
                p += strspn(p, ", ");
        }
        return false;
}

static enum cpn_route_result check_route(const struct request *rq, struct cpn_route_match *m) {
        const struct cpn_route *rt;
        enum cpn_route_result rr;
        char path[512];
        int n;

        memset(m, 0x5a, sizeof(*m));
        rr = cpn_router_match(&router, rq->method, rq->path, m);
        rt = cpn_router_route(&router, m->route);
        for (int i = 0; i < CPN_ROUTE_PARAMS; i++)
                CPN_FUZZ_CHECK(memchr(m->param[i], 0, sizeof(m->param[i])), "unterminated parameter for %s",
                               rq->path);
        CPN_FUZZ_CHECK(memchr(m->allow, 0, sizeof(m->allow)), "unterminated allow");
        switch (rr) {
        case CPN_ROUTE_OK:
                CPN_FUZZ_CHECK(!m->allow[0], "allow set on a match");
                CPN_FUZZ_CHECK(rt, "match without a route");
                CPN_FUZZ_CHECK(strcmp(rq->method, rt->method) == 0, "%s matched %s", rq->method, rt->name);
                canonical_path(path, sizeof(path), rt, m, &n);
                for (int i = n; i < CPN_ROUTE_PARAMS; i++)
                        CPN_FUZZ_CHECK(m->param[i][0] == '\0', "parameter %d on %s", i, rt->name);
                for (int i = 0; i < n; i++)
                        CPN_FUZZ_CHECK(cpn_user_id_valid(m->param[i], strlen(m->param[i])), "parameter \"%s\"",
                                       m->param[i]);
                if (strstr(rt->pattern, "{id}"))
                        CPN_FUZZ_CHECK(cpn_id_valid(m->param[0], strlen(m->param[0])), "campaign id \"%s\"",
                                       m->param[0]);
                CPN_FUZZ_CHECK(strcmp(path, rq->path) == 0, "%s matched as %s", rq->path, path);
                break;
        case CPN_ROUTE_BAD_METHOD:
                CPN_FUZZ_CHECK(rt && m->allow[0], "405 without allow");
                CPN_FUZZ_CHECK(allow_lists(m->allow, rt->method), "allow %s for %s", m->allow, rt->name);
                CPN_FUZZ_CHECK(!allow_lists(m->allow, rq->method), "405 for the allowed method %s", rq->method);
                break;
        case CPN_ROUTE_BAD_ID:
                CPN_FUZZ_CHECK(!m->allow[0], "allow set on 400");
                CPN_FUZZ_CHECK(rt && strchr(rt->pattern, '{') && rt->bad_param, "bad id on %s",
                               rt ? rt->name : "nothing");
                break;
        case CPN_ROUTE_NO_ROUTE:
                CPN_FUZZ_CHECK(!m->allow[0] && m->route == 0, "allow or route set on 404");
                break;
        default:
                CPN_FUZZ_CHECK(false, "result %d", rr);
        }
        return rr;
}

/* ---- headers ---- */

/* RFC 9112's Content-Length: digits only (civetweb has skipped the white
 * space before the value; after it, white space is allowed). INT64_MAX when
 * it does not fit, -1 when it is no number. */
static int64_t content_length(const char *v) {
        size_t digits = strspn(v, "0123456789");
        int64_t n = 0;

        if (digits == 0 || v[digits + strspn(v + digits, " \t")] != '\0')
                return -1;
        for (size_t i = 0; i < digits; i++) {
                if (n > (INT64_MAX - (v[i] - '0')) / 10)
                        return INT64_MAX;
                n = n * 10 + (v[i] - '0');
        }
        return n;
}

static void check_framing(const struct request *rq) {
        static const char *const once[] = { "Content-Length", "Transfer-Encoding", "Content-Type",
                                            "Authorization" };
        size_t seen[4] = { 0 };
        bool refuse = false;
        int64_t want = -1, length = 12345;
        const char *why;

        for (size_t i = 0; i < rq->n_headers; i++)
                for (size_t k = 0; k < 4; k++)
                        if (strcasecmp(rq->names[i], once[k]) == 0 && seen[k]++)
                                refuse = true;
        for (size_t i = 0; i < rq->n_headers; i++)
                if (strcasecmp(rq->names[i], "Content-Length") == 0) {
                        want = content_length(rq->values[i]);
                        refuse |= want < 0;
                }
        refuse |= seen[0] && seen[1];

        why = cpn_http_framing_error((const char *const *)rq->names, (const char *const *)rq->values,
                                     rq->n_headers, &length);
        CPN_FUZZ_CHECK((why != NULL) == refuse, "framing %s, expected %s", why ? why : "accepted",
                       refuse ? "a refusal" : "accepted");
        if (why)
                CPN_FUZZ_CHECK(length == -1 && why[0] && cpn_utf8_check(why, strlen(why)) == 0,
                               "refused (%s) with length %lld", why, (long long)length);
        else
                CPN_FUZZ_CHECK(length == want, "length %lld, expected %lld", (long long)length,
                               (long long)want);
}

static void check_admin(const char *authorization) {
        bool want = authorization && strncasecmp(authorization, "Bearer ", 7) == 0 &&
                    strcmp(authorization + 7, TOKEN) == 0;

        CPN_FUZZ_CHECK(cpn_http_bearer_ok(authorization, TOKEN) == want, "\"%s\": expected %d",
                       authorization, want);
}

/* The contract's application/json: the media type in any case, then optional
 * white space and parameters. */
static bool json_content_type_ref(const char *ct) {
        if (!ct || strncasecmp(ct, "application/json", 16) != 0)
                return false;
        ct += 16 + strspn(ct + 16, " \t");
        return *ct == '\0' || *ct == ';';
}

/* ---- answers ---- */

/* Runs the route's handler on @rq, which must be refused before the
 * domain call, and checks it answered @want. */
static void check_handle(const struct cpn_request *rq, const char *token, enum cpn_api_error want) {
        const struct cpn_api_error_info *info = cpn_api_error_info(want);
        struct cpn_config cfg = { .admin_token = (char *)token };
        struct cpn_response rs = { 0 };
        const cJSON *e, *code, *msg;
        cJSON *root;

        rs.body = malloc(ANSWER_MAX);
        if (!rs.body)
                abort();
        rs.body_cap = ANSWER_MAX;
        coupon_http.cfg = &cfg;
        cpn_router_route(&router, rq->match.route)->handle(coupon_thread, rq, &rs);
        coupon_http.cfg = NULL;
        CPN_FUZZ_CHECK(rs.status == info->status && rs.error == info, "status %d (%s), expected %d (%s)",
                       rs.status, rs.error ? rs.error->code : "-", info->status, info->code);
        CPN_FUZZ_CHECK(rs.body_len > 0 && rs.body_len < rs.body_cap, "answer of %zu bytes", rs.body_len);
        CPN_FUZZ_CHECK(cpn_utf8_check(rs.body, rs.body_len) == 0, "answer not UTF-8: %.*s",
                       (int)rs.body_len, rs.body);
        root = cJSON_ParseWithLength(rs.body, rs.body_len);
        CPN_FUZZ_CHECK(root, "answer not JSON: %.*s", (int)rs.body_len, rs.body);
        e = cJSON_GetObjectItemCaseSensitive(root, "error");
        code = cJSON_GetObjectItemCaseSensitive(e, "code");
        msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        CPN_FUZZ_CHECK(cJSON_IsString(code) && strcmp(code->valuestring, info->code) == 0 &&
                               cJSON_IsString(msg) && msg->valuestring[0],
                       "answer %.*s", (int)rs.body_len, rs.body);
        cJSON_Delete(root);
        free(rs.body);
}

/* ---- POST /v1/campaigns/{c}/issue ---- */

static void check_issue(const struct request *rq, const struct cpn_route_match *m) {
        struct cpn_error err = { { 0 } };
        struct cpn_request hr = { .match = *m, .content_type = rq->content_type,
                                  .authorization = rq->authorization };
        char *uid = malloc(CPN_ID_MAX + 1), *again = malloc(CPN_ID_MAX + 1), *empty;
        int r;

        if (!uid || !again)
                abort();
        memset(uid, 0x5a, CPN_ID_MAX + 1);
        r = cpn_campaign_parse_issue(rq->body, rq->body_len, uid, &err);
        CPN_FUZZ_CHECK(r == 0 || r == CPN_INVALID, "returned %d", r);
        CPN_FUZZ_CHECK(cpn_campaign_parse_issue(rq->body, rq->body_len, again, NULL) == r,
                       "result depends on err being NULL");
        if (r == 0) {
                char body[128];
                cJSON *root;
                const cJSON *u;

                CPN_FUZZ_CHECK(memchr(uid, 0, CPN_ID_MAX + 1), "user_id not terminated");
                CPN_FUZZ_CHECK(cpn_user_id_valid(uid, strlen(uid)), "accepted user_id \"%s\"", uid);
                CPN_FUZZ_CHECK(strcmp(uid, again) == 0, "\"%s\" then \"%s\"", uid, again);
                CPN_FUZZ_CHECK(!memchr(rq->body, 0, rq->body_len), "accepted a NUL byte");
                CPN_FUZZ_CHECK(cpn_utf8_check(rq->body, rq->body_len) == 0, "accepted invalid UTF-8");
                /* cJSON alone reads the same user_id out of it. */
                root = cJSON_ParseWithLength(rq->body, rq->body_len);
                u = cJSON_GetObjectItemCaseSensitive(root, "user_id");
                CPN_FUZZ_CHECK(cJSON_IsString(u) && strcmp(u->valuestring, uid) == 0,
                               "cJSON reads another user_id than \"%s\"", uid);
                cJSON_Delete(root);
                /* The canonical body of the same user is accepted too. */
                snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", uid);
                CPN_FUZZ_CHECK(cpn_campaign_parse_issue(body, strlen(body), again, NULL) == 0 &&
                                       strcmp(uid, again) == 0,
                               "%s refused", body);
        } else {
                cpn_fuzz_check_error_text(&err);
        }
        /* The handler: content type first, then the body. A body that
         * parses would reach the service, so it gets an empty one then. */
        empty = cpn_fuzz_copy("", 0);
        hr.body = r ? rq->body : empty;
        hr.body_len = r ? rq->body_len : 0;
        check_handle(&hr, TOKEN,
                     json_content_type_ref(rq->content_type) ? CPN_E_INVALID_REQUEST : CPN_E_UNSUPPORTED_MEDIA_TYPE);
        free(empty);
        free(again);
        free(uid);
}

/* ---- POST /v1/campaigns ---- */

static void check_campaign_fields(const struct cpn_campaign *c) {
        size_t len, cps = 0;

        CPN_FUZZ_CHECK(memchr(c->id, 0, sizeof(c->id)), "id not terminated");
        CPN_FUZZ_CHECK(cpn_id_valid(c->id, strlen(c->id)), "accepted id \"%s\"", c->id);
        CPN_FUZZ_CHECK(memchr(c->name, 0, sizeof(c->name)), "name not terminated");
        len = strlen(c->name);
        CPN_FUZZ_CHECK(cpn_utf8_check(c->name, len) == 0, "name not UTF-8");
        for (size_t i = 0; i < len; i++) {
                unsigned char b = (unsigned char)c->name[i];

                CPN_FUZZ_CHECK(b >= 0x20 && b != 0x7f, "control character 0x%02x in the name", b);
                if ((b & 0xc0) != 0x80)
                        cps++;
        }
        CPN_FUZZ_CHECK(cps >= 1 && cps <= CPN_NAME_MAX, "name of %zu characters", cps);
        CPN_FUZZ_CHECK(c->total >= 1 && c->total <= CPN_TOTAL_MAX, "total %lld", (long long)c->total);
        CPN_FUZZ_CHECK(c->starts_at_ms >= 0, "starts_at %lld", (long long)c->starts_at_ms);
        CPN_FUZZ_CHECK(c->ends_at_ms > c->starts_at_ms, "ends_at %lld <= starts_at %lld",
                       (long long)c->ends_at_ms, (long long)c->starts_at_ms);
}

/* What GET shows of @c is valid JSON, and its fields, posted back as a
 * creation body, give the same campaign. */
static void check_campaign_view(const struct cpn_campaign *c) {
        struct cpn_campaign_state st = { .c = *c, .now_ms = NOW };
        const size_t cap = 8192;
        char *view = malloc(cap);
        const cJSON *id, *name, *starts, *ends;
        struct cpn_campaign *back = malloc(sizeof(*back));
        struct cpn_error err = { { 0 } };
        cJSON *root, *post;
        char *text;
        int len;

        if (!view || !back)
                abort();
        len = cpn_campaign_json(view, cap, &st, -1);
        CPN_FUZZ_CHECK(len > 0, "cpn_json_campaign: %d", len);
        CPN_FUZZ_CHECK(cpn_utf8_check(view, (size_t)len) == 0, "view not UTF-8: %s", view);
        root = cJSON_ParseWithLength(view, (size_t)len);
        CPN_FUZZ_CHECK(root, "view not JSON: %s", view);
        id = cJSON_GetObjectItemCaseSensitive(root, "id");
        name = cJSON_GetObjectItemCaseSensitive(root, "name");
        starts = cJSON_GetObjectItemCaseSensitive(root, "starts_at");
        ends = cJSON_GetObjectItemCaseSensitive(root, "ends_at");
        CPN_FUZZ_CHECK(cJSON_IsString(id) && cJSON_IsString(name) && cJSON_IsString(starts) &&
                               (cJSON_IsString(ends) || cJSON_IsNull(ends)),
                       "view %s", view);
        CPN_FUZZ_CHECK(strcmp(name->valuestring, c->name) == 0, "view shows another name: %s", view);

        post = cJSON_CreateObject();
        if (!post)
                abort();
        cJSON_AddStringToObject(post, "id", id->valuestring);
        cJSON_AddStringToObject(post, "name", name->valuestring);
        cJSON_AddNumberToObject(post, "total", (double)c->total);
        cJSON_AddStringToObject(post, "starts_at", starts->valuestring);
        if (cJSON_IsString(ends))
                cJSON_AddStringToObject(post, "ends_at", ends->valuestring);
        text = cJSON_PrintUnformatted(post);
        if (!text)
                abort();
        CPN_FUZZ_CHECK(cpn_campaign_parse(text, strlen(text), NOW, back, &err) == 0,
                       "the view does not post back: %s: %s", text, err.msg);
        CPN_FUZZ_CHECK(strcmp(back->id, c->id) == 0 && strcmp(back->name, c->name) == 0 &&
                               back->total == c->total && back->starts_at_ms == c->starts_at_ms &&
                               back->ends_at_ms == c->ends_at_ms,
                       "%s posts back as another campaign", text);
        cJSON_free(text);
        cJSON_Delete(post);
        cJSON_Delete(root);
        free(back);
        free(view);
}

static void check_campaigns(const struct request *rq, const struct cpn_route_match *m) {
        struct cpn_error err = { { 0 } };
        struct cpn_request hr = { .match = *m, .content_type = rq->content_type,
                                  .authorization = rq->authorization };
        struct cpn_campaign *c = malloc(sizeof(*c)), *again = malloc(sizeof(*again));
        bool authorized = cpn_http_bearer_ok(rq->authorization, TOKEN), refused_always;
        char *empty;
        int r;

        if (!c || !again)
                abort();
        r = cpn_campaign_parse(rq->body, rq->body_len, NOW, c, &err);
        CPN_FUZZ_CHECK(r == 0 || r == CPN_INVALID, "returned %d", r);
        CPN_FUZZ_CHECK(cpn_campaign_parse(rq->body, rq->body_len, NOW, again, NULL) == r,
                       "result depends on err being NULL");
        if (r == 0) {
                CPN_FUZZ_CHECK(!memchr(rq->body, 0, rq->body_len), "accepted a NUL byte");
                CPN_FUZZ_CHECK(cpn_utf8_check(rq->body, rq->body_len) == 0, "accepted invalid UTF-8");
                check_campaign_fields(c);
                check_campaign_view(c);
        } else {
                cpn_fuzz_check_error_text(&err);
        }

        /* The handler parses at the real clock. The only use of "now" is the
         * default starts_at, which ends_at must follow: a body refused at
         * now = 0 is refused at any later time, and cannot reach the service. */
        refused_always = cpn_campaign_parse(rq->body, rq->body_len, 0, again, NULL) != 0;
        empty = cpn_fuzz_copy("", 0);
        hr.body = refused_always ? rq->body : empty;
        hr.body_len = refused_always ? rq->body_len : 0;
        check_handle(&hr, NULL, CPN_E_ADMIN_DISABLED);
        check_handle(&hr, TOKEN,
                     !authorized ? CPN_E_UNAUTHORIZED
                     : !json_content_type_ref(rq->content_type) ? CPN_E_UNSUPPORTED_MEDIA_TYPE
                                                             : CPN_E_INVALID_REQUEST);
        free(empty);
        free(again);
        free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct cpn_route_match m;
        struct request rq;

        setup();
        request_parse(&rq, data, size);
        rq.content_type = header_get(&rq, "Content-Type");
        rq.authorization = header_get(&rq, "Authorization");
        check_framing(&rq);
        check_admin(rq.authorization);
        if (check_route(&rq, &m) == CPN_ROUTE_OK) {
                const char *name = cpn_router_name(&router, m.route);

                if (strcmp(name, "issue") == 0)
                        check_issue(&rq, &m);
                else if (strcmp(name, "campaign_create") == 0)
                        check_campaigns(&rq, &m);
        }
        request_clear(&rq);
        return 0;
}
