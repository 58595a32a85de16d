/*
 * Unit tests of the HTTP surface as pure functions: src/http/routes.c (the
 * route registry, with the coupon product's table as coupon-api registers
 * it; the shared error rows and the coupon product's), src/http/metrics.c
 * (Prometheus text).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpn/error.h"
#include "cpn/http.h"
#include "cpn/coupon/http.h"

/* ---- routes ---- */

static void nop(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        (void)rs;
}

/* What coupon-api registers: the server's own routes, the process's, the
 * coupon product's. */
static const struct cpn_route own[] = {
        { "GET", "/healthz", "healthz", 0, nop, NULL },
        { "GET", "/metrics", "metrics", 0, nop, NULL },
        { "GET", "/readyz", "readyz", 0, nop, NULL },
};
static struct cpn_router router;
static struct cpn_coupon_http coupon_http;

static void router_setup(void) {
        struct cpn_http_product p = cpn_coupon_http_product(&coupon_http);
        struct cpn_error err = { { 0 } };

        cpn_router_init(&router);
        for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
                assert_int_equal(cpn_router_add(&router, &own[i], 99, &err), (int)i + 1);
        for (size_t i = 0; i < p.n_routes; i++)
                if (cpn_router_add(&router, &p.routes[i], 0, &err) < 0)
                        fail_msg("%s", err.msg);
}

static void assert_route(const char *method, const char *path, enum cpn_route_result want, const char *route,
                         const char *p0, const char *p1, const char *allow_want) {
        struct cpn_route_match m;
        enum cpn_route_result r;

        if (router.n == 0)
                router_setup();
        memset(&m, 0x5a, sizeof(m));
        r = cpn_router_match(&router, method, path, &m);
        if (r != want)
                fail_msg("%s %s: result %d, expected %d", method, path, r, want);
        if (want == CPN_ROUTE_BAD_METHOD) {
                if (strcmp(m.allow, allow_want) != 0)
                        fail_msg("%s %s: allow \"%s\", expected \"%s\"", method, path, m.allow, allow_want);
        } else if (m.allow[0]) {
                fail_msg("%s %s: allow set on result %d", method, path, r);
        }
        if (want == CPN_ROUTE_NO_ROUTE && m.route != 0)
                fail_msg("%s %s: route %d on no match", method, path, m.route);
        if (route && strcmp(cpn_router_name(&router, m.route), route) != 0)
                fail_msg("%s %s: route %s, expected %s", method, path, cpn_router_name(&router, m.route), route);
        if (want == CPN_ROUTE_OK) {
                assert_string_equal(m.param[0], p0 ? p0 : "");
                assert_string_equal(m.param[1], p1 ? p1 : "");
        } else {
                assert_string_equal(m.param[0], "");
                assert_string_equal(m.param[1], "");
        }
}

#define OK(meth, path, route, c, u) assert_route(meth, path, CPN_ROUTE_OK, route, c, u, NULL)
#define NO(meth, path) assert_route(meth, path, CPN_ROUTE_NO_ROUTE, "unknown", NULL, NULL, NULL)
#define BAD_ID(meth, path) assert_route(meth, path, CPN_ROUTE_BAD_ID, NULL, NULL, NULL, NULL)
#define NOT_ALLOWED(meth, path, route, allow) \
        assert_route(meth, path, CPN_ROUTE_BAD_METHOD, route, NULL, NULL, allow)

static void test_route_ops(void **state) {
        OK("GET", "/healthz", "healthz", NULL, NULL);
        OK("GET", "/readyz", "readyz", NULL, NULL);
        OK("GET", "/metrics", "metrics", NULL, NULL);
        NOT_ALLOWED("POST", "/healthz", "healthz", "GET");
        NOT_ALLOWED("PUT", "/readyz", "readyz", "GET");
        NOT_ALLOWED("DELETE", "/metrics", "metrics", "GET");
        NOT_ALLOWED("get", "/healthz", "healthz", "GET"); /* methods are case-sensitive */
}

static void test_route_campaigns(void **state) {
        OK("POST", "/v1/campaigns", "campaign_create", NULL, NULL);
        NOT_ALLOWED("GET", "/v1/campaigns", "campaign_create", "POST");
        NOT_ALLOWED("PUT", "/v1/campaigns", "campaign_create", "POST");

        OK("GET", "/v1/campaigns/spring-2026", "campaign_get", "spring-2026", NULL);
        NOT_ALLOWED("POST", "/v1/campaigns/spring-2026", "campaign_get", "GET");
        NOT_ALLOWED("DELETE", "/v1/campaigns/spring-2026", "campaign_get", "GET");

        OK("POST", "/v1/campaigns/spring-2026/issue", "issue", "spring-2026", NULL);
        NOT_ALLOWED("GET", "/v1/campaigns/spring-2026/issue", "issue", "POST");
        NOT_ALLOWED("PUT", "/v1/campaigns/spring-2026/issue", "issue", "POST");

        OK("GET", "/v1/campaigns/spring-2026/users/u-42", "user_get", "spring-2026", "u-42");
        OK("GET", "/v1/campaigns/A_b-9/users/a.b:c_D-9", "user_get", "A_b-9", "a.b:c_D-9");
        NOT_ALLOWED("POST", "/v1/campaigns/spring-2026/users/u-42", "user_get", "GET");
        NOT_ALLOWED("HEAD", "/v1/campaigns/spring-2026/users/u-42", "user_get", "GET");
}

static void test_route_unknown(void **state) {
        static const char *const paths[] = {
                "", "/", "healthz", "v1/campaigns", "/healthz/", "/healthz/x", "/Healthz", "/health",
                "/v1", "/v1/", "/v2/campaigns", "/V1/campaigns", "/v1/campaign", "/v1/Campaigns",
                "/v1/campaigns/", "//v1/campaigns", "/v1//campaigns", "/v1/campaigns//issue",
                "/v1/campaigns/c/", "/v1/campaigns/c//", "/v1/campaigns/c/issue/",
                "/v1/campaigns/c/issue/x", "/v1/campaigns/c/Issue", "/v1/campaigns/c/foo",
                "/v1/campaigns/c/users", "/v1/campaigns/c/users/", "/v1/campaigns/c/users/u/",
                "/v1/campaigns/c/users/u/x", "/v1/campaigns/c/users/u/x/y",
                "/v1/campaigns/c/users/u/x/y/z/w", "/v1/campaigns/../x", "/v1/campaigns/./issue/x",
                "/a/b/c/d/e/f/g/h", "/v1/campaigns/c/users//u", "/%76%31/campaigns",
        };

        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                NO("GET", paths[i]);
                NO("POST", paths[i]);
        }
}

static void test_route_bad_ids(void **state) {
        char path[256], id[80];

        BAD_ID("GET", "/v1/campaigns/..");
        BAD_ID("GET", "/v1/campaigns/.");
        BAD_ID("GET", "/v1/campaigns/%2e%2e");
        BAD_ID("GET", "/v1/campaigns/%2E%2E");
        BAD_ID("POST", "/v1/campaigns/%2e%2e/issue");
        BAD_ID("POST", "/v1/campaigns/../issue");
        BAD_ID("GET", "/v1/campaigns/spring%2D2026");     /* never percent-decoded */
        BAD_ID("GET", "/v1/campaigns/a.b");
        BAD_ID("GET", "/v1/campaigns/a:b");
        BAD_ID("GET", "/v1/campaigns/a%2fb");
        BAD_ID("GET", "/v1/campaigns/caf\xc3\xa9");
        BAD_ID("GET", "/v1/campaigns/a b");
        BAD_ID("GET", "/v1/campaigns/a?b");
        BAD_ID("POST", "/v1/campaigns/a.b/issue");
        BAD_ID("GET", "/v1/campaigns/a.b/users/u");
        /* a bad user id */
        BAD_ID("GET", "/v1/campaigns/c/users/a%20b");
        BAD_ID("GET", "/v1/campaigns/c/users/..%2f");
        BAD_ID("GET", "/v1/campaigns/c/users/caf\xc3\xa9");
        BAD_ID("GET", "/v1/campaigns/c/users/u@x");
        BAD_ID("GET", "/v1/campaigns/c/users/%75");
        OK("GET", "/v1/campaigns/c/users/..", "user_get", "c", ".."); /* a valid user id */

        /* lengths: 64 fits, 65 does not */
        memset(id, 'x', sizeof(id));
        id[64] = '\0';
        snprintf(path, sizeof(path), "/v1/campaigns/%s/issue", id);
        OK("POST", path, "issue", id, NULL);
        snprintf(path, sizeof(path), "/v1/campaigns/c/users/%s", id);
        OK("GET", path, "user_get", "c", id);
        id[64] = 'x';
        id[65] = '\0';
        snprintf(path, sizeof(path), "/v1/campaigns/%s/issue", id);
        BAD_ID("POST", path);
        snprintf(path, sizeof(path), "/v1/campaigns/%s", id);
        BAD_ID("GET", path);
        snprintf(path, sizeof(path), "/v1/campaigns/c/users/%s", id);
        BAD_ID("GET", path);
        {
                char big[4096];

                memset(big, 'a', sizeof(big));
                memcpy(big, "/v1/campaigns/", 14);
                big[sizeof(big) - 1] = '\0';
                BAD_ID("GET", big);
        }
}

static void test_route_names(void **state) {
        if (router.n == 0)
                router_setup();
        for (int r = 0; r < (int)router.n; r++) {
                const char *name = cpn_router_name(&router, r);

                assert_non_null(name);
                assert_true(name[0] != '\0');
                for (int q = 0; q < r; q++)
                        assert_string_not_equal(name, cpn_router_name(&router, q));
        }
        assert_string_equal(cpn_router_name(&router, 0), "unknown");
        assert_string_equal(cpn_router_name(&router, (int)router.n), "unknown");
        assert_string_equal(cpn_router_name(&router, -1), "unknown");
        assert_null(cpn_router_route(&router, 0));
        assert_null(cpn_router_route(&router, (int)router.n));
        assert_string_equal(cpn_router_route(&router, 1)->pattern, "/healthz");
}

/* A table of another product: several methods on one path, a {uuid}. */
static const struct cpn_route ticket_like[] = {
        { "GET", "/v1/tickets/{uuid}", "ticket_get", 0, nop, "bad ticket id" },
        { "DELETE", "/v1/tickets/{uuid}", "ticket_cancel", 0, nop, "bad ticket id" },
        { "POST", "/v1/tickets/{uuid}/payment", "ticket_pay", CPN_ROUTE_BODY, nop, "bad ticket id" },
        { "POST", "/v1/types/{id}/holds/{user}", "hold", 0, nop, "bad" },
};

static void test_router_other_product(void **state) {
        struct cpn_error err = { { 0 } };
        struct cpn_router r;
        struct cpn_route_match m;
        const char *id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        char path[128];

        cpn_router_init(&r);
        for (size_t i = 0; i < sizeof(ticket_like) / sizeof(ticket_like[0]); i++)
                assert_int_equal(cpn_router_add(&r, &ticket_like[i], 7, &err), (int)i + 1);
        assert_int_equal(r.e[2].owner, 7);
        snprintf(path, sizeof(path), "/v1/tickets/%s", id);
        assert_int_equal(cpn_router_match(&r, "GET", path, &m), CPN_ROUTE_OK);
        assert_int_equal(m.route, 1);
        assert_string_equal(m.param[0], id);
        assert_int_equal(cpn_router_match(&r, "DELETE", path, &m), CPN_ROUTE_OK);
        assert_int_equal(m.route, 2);
        assert_int_equal(cpn_router_match(&r, "PUT", path, &m), CPN_ROUTE_BAD_METHOD);
        assert_string_equal(m.allow, "GET, DELETE");
        assert_int_equal(cpn_router_match(&r, "POST", path, &m), CPN_ROUTE_BAD_METHOD);
        assert_string_equal(m.allow, "GET, DELETE");
        snprintf(path, sizeof(path), "/v1/tickets/%s/payment", id);
        assert_int_equal(cpn_router_match(&r, "POST", path, &m), CPN_ROUTE_OK);
        assert_int_equal(m.route, 3);
        assert_int_equal(cpn_router_match(&r, "GET", path, &m), CPN_ROUTE_BAD_METHOD);
        assert_string_equal(m.allow, "POST");
        assert_int_equal(cpn_router_match(&r, "POST", "/v1/types/t-1/holds/u.1:x", &m), CPN_ROUTE_OK);
        assert_string_equal(m.param[0], "t-1");
        assert_string_equal(m.param[1], "u.1:x");
        assert_int_equal(cpn_router_match(&r, "POST", "/v1/types/t.1/holds/u", &m), CPN_ROUTE_BAD_ID);
        assert_int_equal(m.route, 4);
        assert_int_equal(cpn_router_match(&r, "POST", "/v1/types/t/holds/u%20", &m), CPN_ROUTE_BAD_ID);
        /* the UUID grammar: canonical, lower case, exactly 36 characters */
        static const char *const bad[] = {
                "0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5bd9cb469fa16570867728950e",
                "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950e0",
                "0f8fad5b-d9cb-469f-a165_70867728950e", "0f8fad5b-d9cb-469f-a165-7086772895g0",
                "{0f8fad5b-d9cb-469f-a165-70867728950e}", "0f8fad5b-d9cb-469f-a16%-70867728950e",
                "..", "x",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(path, sizeof(path), "/v1/tickets/%s", bad[i]);
                if (cpn_router_match(&r, "GET", path, &m) != CPN_ROUTE_BAD_ID)
                        fail_msg("%s accepted", path);
                assert_string_equal(cpn_router_route(&r, m.route)->bad_param, "bad ticket id");
        }
        assert_int_equal(cpn_router_match(&r, "GET", "/v1/tickets", &m), CPN_ROUTE_NO_ROUTE);
        assert_int_equal(cpn_router_match(&r, "GET", "/v1/tickets/", &m), CPN_ROUTE_NO_ROUTE);
}

static void test_router_bad_tables(void **state) {
        static const struct cpn_route bad[] = {
                { "GET", "healthz", "a", 0, nop, NULL },        /* no leading '/' */
                { "GET", "/a//b", "b", 0, nop, NULL },          /* empty segment */
                { "GET", "/a/{name}", "c", 0, nop, NULL },      /* unknown parameter */
                { "GET", "/a/{id}x", "d", 0, nop, NULL },       /* brace in a literal */
                { "GET", "/{id}/{id}/{id}", "e", 0, nop, NULL }, /* more than CPN_ROUTE_PARAMS */
                { "GET", "/a/b/c/d/e/f/g", "f", 0, nop, NULL }, /* too many segments */
                { "GET", "/a", "g", 0, NULL, NULL },            /* no handler */
                { NULL, "/a", "h", 0, nop, NULL },
                { "GET", "/a", "", 0, nop, NULL },
                { "GET", "/a", "unknown", 0, nop, NULL },       /* the name of "no route" */
        };
        static const struct cpn_route first = { "GET", "/v1/x/{id}", "x", 0, nop, NULL },
                                      same_name = { "POST", "/v1/y", "x", 0, nop, NULL },
                                      same_path = { "GET", "/v1/x/{user}", "x2", 0, nop, NULL },
                                      other_method = { "DELETE", "/v1/x/{id}", "x3", 0, nop, NULL };
        struct cpn_error err = { { 0 } };
        struct cpn_router r;
        char names[CPN_ROUTES_MAX + 1][16];
        struct cpn_route many[CPN_ROUTES_MAX + 1];

        cpn_router_init(&r);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err.msg[0] = '\0';
                if (cpn_router_add(&r, &bad[i], 0, &err) != -EINVAL)
                        fail_msg("route %zu (%s) added", i, bad[i].pattern);
                assert_true(err.msg[0] != '\0');
        }
        assert_int_equal(r.n, 1);
        assert_int_equal(cpn_router_add(&r, &first, 0, &err), 1);
        assert_int_equal(cpn_router_add(&r, &same_name, 0, &err), -EINVAL);
        assert_int_equal(cpn_router_add(&r, &same_path, 0, &err), -EINVAL);
        assert_int_equal(cpn_router_add(&r, &other_method, 0, &err), 2);

        cpn_router_init(&r);
        for (int i = 0; i <= CPN_ROUTES_MAX; i++) {
                snprintf(names[i], sizeof(names[i]), "r%d", i);
                many[i] = (struct cpn_route){ "GET", "/many/{id}", names[i], 0, nop, NULL };
                many[i].method = i % 2 ? "GET" : "POST";
        }
        /* distinct (method, path): /many/{id} for GET and POST, then /m<i> */
        {
                static char paths[CPN_ROUTES_MAX + 1][16];

                for (int i = 0; i <= CPN_ROUTES_MAX; i++) {
                        snprintf(paths[i], sizeof(paths[i]), "/m%d", i);
                        many[i].pattern = paths[i];
                }
        }
        for (int i = 0; i < CPN_ROUTES_MAX; i++)
                assert_int_equal(cpn_router_add(&r, &many[i], 0, &err), i + 1);
        assert_int_equal(cpn_router_add(&r, &many[CPN_ROUTES_MAX], 0, &err), -EINVAL);
}

/* ---- framing (RFC 9112 6) ---- */

/* @fields: name, value, name, value, ... */
static const char *frame(int64_t *length, const char *const *fields, size_t n) {
        const char *names[16], *values[16];

        for (size_t i = 0; i < n / 2; i++) {
                names[i] = fields[2 * i];
                values[i] = fields[2 * i + 1];
        }
        return cpn_http_framing_error(names, values, n / 2, length);
}

#define FRAME(len, ...) \
        frame(len, (const char *const[]){ __VA_ARGS__ }, sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))

static void assert_length(const char *value, int64_t want) {
        int64_t len = 42;
        const char *why = FRAME(&len, "Host", "x", "Content-Length", value);

        if (why || len != want)
                fail_msg("Content-Length \"%s\": %s, %lld (expected %lld)", value, why ? why : "ok", (long long)len,
                         (long long)want);
}

static void assert_framing_bad(const char *why) {
        if (!why)
                fail_msg("framing accepted");
}

static void test_framing_length(void **state) {
        int64_t len = 42;

        assert_null(frame(&len, NULL, 0));
        assert_int_equal(len, -1);
        assert_length("0", 0);
        assert_length("18", 18);
        assert_length("18 ", 18); /* trailing white space is the field's, civetweb strips the leading */
        assert_length("18\t", 18);
        assert_length("007", 7);
        assert_length("9223372036854775806", INT64_MAX - 1);
        assert_length("9223372036854775807", INT64_MAX);
        assert_length("9223372036854775808", INT64_MAX); /* does not fit: too large, not malformed */
        assert_length("99999999999999999999999", INT64_MAX);
        /* what civetweb's strtoll took */
        static const char *const bad[] = { "", " ", "-5", "+5", "5x", "5, 5", "5,5", "0x12", "1.0", "1e3", "5 5" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                len = 42;
                if (!FRAME(&len, "Content-Length", bad[i]) || len != -1)
                        fail_msg("Content-Length \"%s\" accepted", bad[i]);
        }
}

static void test_framing_once(void **state) {
        int64_t len;

        assert_framing_bad(FRAME(&len, "Content-Length", "5", "Content-Length", "5"));
        assert_framing_bad(FRAME(&len, "Content-Length", "5", "content-length", "6"));
        assert_framing_bad(FRAME(&len, "Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"));
        assert_framing_bad(FRAME(&len, "Content-Type", "application/json", "CONTENT-TYPE", "text/plain"));
        assert_framing_bad(FRAME(&len, "Authorization", "Bearer a", "Authorization", "Bearer b"));
        /* both framings: the smuggling classic */
        len = 42;
        assert_framing_bad(FRAME(&len, "Transfer-Encoding", "chunked", "Content-Length", "5"));
        assert_int_equal(len, -1);
        assert_framing_bad(FRAME(&len, "Content-Length", "5", "transfer-encoding", "chunked"));
        /* others may repeat */
        assert_null(FRAME(&len, "X-A", "1", "X-A", "2", "Accept", "a", "Accept", "b"));
        assert_int_equal(len, -1);
        assert_null(FRAME(&len, "Transfer-Encoding", "chunked", "Content-Type", "application/json"));
        assert_int_equal(len, -1);
}

/* ---- the error table ---- */

/* Every coupon outcome code a domain call returns. */
static const int coupon_codes[] = { CPN_ISSUE_DUPLICATE, CPN_ISSUE_SOLD_OUT, CPN_ISSUE_NOT_OPEN,
                                    CPN_ISSUE_PAUSED, CPN_CAMPAIGN_NOT_FOUND, CPN_CAMPAIGN_EXISTS,
                                    CPN_CAMPAIGN_SAME, CPN_CAMPAIGN_PARTIAL, CPN_UNKNOWN };
#define N_CODES (sizeof(coupon_codes) / sizeof(coupon_codes[0]))

/* The shared rows, then the coupon product's. */
static const struct cpn_api_error_info *row(size_t i) {
        return i < _CPN_E_N ? cpn_api_error_info((enum cpn_api_error)i) : cpn_coupon_answer(coupon_codes[i - _CPN_E_N]);
}
#define N_ROWS (_CPN_E_N + N_CODES)

static void test_error_table_complete(void **state) {
        for (size_t e = 0; e < N_ROWS; e++) {
                const struct cpn_api_error_info *info = row(e);

                assert_non_null(info);
                if (info->status < 400 || info->status > 599)
                        fail_msg("error %zu: status %d", e, info->status);
                assert_non_null(info->code);
                assert_non_null(info->message);
                assert_true(info->message[0] != '\0');
                assert_true(info->code[0] != '\0');
                for (const char *c = info->code; *c; c++)
                        if (!((*c >= 'a' && *c <= 'z') || *c == '_'))
                                fail_msg("error %zu: code \"%s\"", e, info->code);
                assert_true(info->retry_after >= 0);
                /* nothing but 503 and 504 asks to retry */
                if (info->status != 503 && info->status != 504)
                        assert_int_equal(info->retry_after, 0);
        }
        /* out of range: internal */
        assert_ptr_equal(cpn_api_error_info(_CPN_E_N), cpn_api_error_info(CPN_E_INTERNAL));
        assert_ptr_equal(cpn_api_error_info((enum cpn_api_error)-1), cpn_api_error_info(CPN_E_INTERNAL));
        /* codes that are not the coupon product's */
        assert_null(cpn_coupon_answer(0));
        assert_null(cpn_coupon_answer(CPN_INVALID));
        assert_null(cpn_coupon_answer(-EIO));
        assert_null(cpn_coupon_answer(12345));
}

static void assert_info(const struct cpn_api_error_info *info, int status, const char *code) {
        assert_non_null(info);
        if (info->status != status || strcmp(info->code, code) != 0)
                fail_msg("%d %s, expected %d %s", info->status, info->code, status, code);
}
#define assert_error(e, status, code) assert_info(cpn_api_error_info(e), status, code)
#define assert_coupon(r, status, code) assert_info(cpn_coupon_answer(r), status, code)

static void test_error_table_api_md(void **state) {
        assert_coupon(CPN_ISSUE_DUPLICATE, 409, "already_issued");
        assert_coupon(CPN_ISSUE_SOLD_OUT, 410, "sold_out");
        assert_coupon(CPN_ISSUE_NOT_OPEN, 403, "not_open");
        assert_coupon(CPN_CAMPAIGN_NOT_FOUND, 404, "campaign_not_found");
        assert_coupon(CPN_CAMPAIGN_EXISTS, 409, "campaign_exists");
        assert_coupon(CPN_CAMPAIGN_SAME, 409, "campaign_exists");
        assert_coupon(CPN_ISSUE_PAUSED, 503, "unavailable");
        assert_coupon(CPN_CAMPAIGN_PARTIAL, 503, "unavailable");
        assert_error(CPN_E_INVALID_REQUEST, 400, "invalid_request");
        assert_error(CPN_E_BODY_TOO_LARGE, 413, "body_too_large");
        assert_error(CPN_E_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type");
        assert_error(CPN_E_UNAVAILABLE, 503, "unavailable");
        assert_error(CPN_E_UNAUTHORIZED, 401, "unauthorized");
        assert_error(CPN_E_NOT_FOUND, 404, "not_found");
        assert_error(CPN_E_METHOD_NOT_ALLOWED, 405, "method_not_allowed");
        assert_error(CPN_E_ADMIN_DISABLED, 503, "unavailable");
        assert_error(CPN_E_INTERNAL, 500, "internal");
        /* not in the contract: an issue whose outcome Redis never told */
        assert_coupon(CPN_UNKNOWN, 504, "outcome_unknown");
        assert_true(cpn_coupon_answer(CPN_UNKNOWN)->retry_after > 0);
        /* "503 unavailable, with a Retry-After header" */
        assert_true(cpn_api_error_info(CPN_E_UNAVAILABLE)->retry_after > 0);
        assert_true(cpn_coupon_answer(CPN_ISSUE_PAUSED)->retry_after > 0);
}

/* Not in the contract: HTTP framing, answered by server.c. */
static void test_error_table_http(void **state) {
        assert_error(CPN_E_LENGTH_REQUIRED, 411, "length_required");
        assert_error(CPN_E_HEADERS_TOO_LARGE, 431, "headers_too_large");
        assert_error(CPN_E_HTTP_VERSION, 505, "http_version_not_supported");
}

static void test_error_from_code(void **state) {
        assert_int_equal(cpn_api_error_from_code(CPN_INVALID), CPN_E_INVALID_REQUEST);
        assert_int_equal(cpn_api_error_from_code(-EIO), CPN_E_UNAVAILABLE);
        assert_int_equal(cpn_api_error_from_code(-ETIMEDOUT), CPN_E_UNAVAILABLE);
        assert_int_equal(cpn_api_error_from_code(-ECONNREFUSED), CPN_E_UNAVAILABLE);
        assert_int_equal(cpn_api_error_from_code(-EPROTO), CPN_E_UNAVAILABLE);
        assert_int_equal(cpn_api_error_from_code(-EBUSY), CPN_E_UNAVAILABLE);
        assert_int_equal(cpn_api_error_from_code(-ENOMEM), CPN_E_INTERNAL);
        assert_int_equal(cpn_api_error_from_code(-EINVAL), CPN_E_INTERNAL);
        /* a product's code no product claimed is a bug: internal */
        assert_int_equal(cpn_api_error_from_code(CPN_ISSUE_SOLD_OUT), CPN_E_INTERNAL);
        assert_int_equal(cpn_api_error_from_code(12345), CPN_E_INTERNAL);
}

/* Parses an error body; checks its exact shape and returns the message. */
static char *parse_error_body(const char *body, const char *want_code) {
        cJSON *j = cJSON_Parse(body), *error, *code, *message;
        char *msg;

        if (!j)
                fail_msg("not JSON: %s", body);
        assert_true(cJSON_IsObject(j));
        assert_int_equal(cJSON_GetArraySize(j), 1);
        error = cJSON_GetObjectItemCaseSensitive(j, "error");
        assert_true(cJSON_IsObject(error));
        assert_int_equal(cJSON_GetArraySize(error), 2);
        code = cJSON_GetObjectItemCaseSensitive(error, "code");
        message = cJSON_GetObjectItemCaseSensitive(error, "message");
        assert_true(cJSON_IsString(code));
        assert_true(cJSON_IsString(message));
        assert_string_equal(code->valuestring, want_code);
        msg = strdup(message->valuestring);
        cJSON_Delete(j);
        return msg;
}

static void test_error_body(void **state) {
        char buf[4096], *msg;
        int n;

        for (size_t e = 0; e < N_ROWS; e++) {
                const struct cpn_api_error_info *info = row(e);

                n = cpn_api_error_body(buf, sizeof(buf), info, NULL);
                assert_int_equal(n, (int)strlen(buf));
                msg = parse_error_body(buf, info->code);
                assert_string_equal(msg, info->message);
                free(msg);
                /* an empty message means the default too */
                cpn_api_error_body(buf, sizeof(buf), info, "");
                msg = parse_error_body(buf, info->code);
                assert_string_equal(msg, info->message);
                free(msg);
        }
        n = cpn_api_error_body(buf, sizeof(buf), cpn_coupon_answer(CPN_ISSUE_SOLD_OUT), NULL);
        assert_string_equal(buf, "{\"error\":{\"code\":\"sold_out\",\"message\":"
                                 "\"all coupons of this campaign are gone\"}}");
        assert_int_equal(n, (int)strlen(buf));
}

/* cpn_response_answer and _ok: the status, the row, the Retry-After. */
static void test_response(void **state) {
        char buf[256];
        struct cpn_response rs = { .body = buf, .body_cap = sizeof(buf) };

        cpn_response_answer(&rs, cpn_coupon_answer(CPN_ISSUE_PAUSED), "held");
        assert_int_equal(rs.status, 503);
        assert_int_equal(rs.retry_after, 5);
        assert_ptr_equal(rs.error, cpn_coupon_answer(CPN_ISSUE_PAUSED));
        assert_int_equal(rs.body_len, strlen("{\"error\":{\"code\":\"unavailable\",\"message\":\"held\"}}"));
        cpn_response_ok(&rs, 200, snprintf(rs.body, rs.body_cap, "{}"));
        assert_int_equal(rs.status, 200);
        assert_int_equal(rs.body_len, 2);
        cpn_response_ok(&rs, 200, (int)sizeof(buf)); /* did not fit */
        assert_int_equal(rs.status, 500);
        cpn_response_ok(&rs, 200, -1);
        assert_int_equal(rs.status, 500);
}

static void test_error_body_escapes(void **state) {
        const char *m = "\"user_id\" must be \"a\\b\"\n\ttab \x01 </script> caf\xc3\xa9";
        char buf[4096], *msg;

        assert_true(cpn_api_error_body(buf, sizeof(buf), cpn_api_error_info(CPN_E_INVALID_REQUEST), m) > 0);
        assert_non_null(strstr(buf, "\\\"user_id\\\""));
        assert_null(strchr(buf, '\n'));
        msg = parse_error_body(buf, "invalid_request");
        assert_string_equal(msg, m);
        free(msg);
}

static void test_error_body_long_message(void **state) {
        char buf[8192], big[3000], *msg;

        /* too long to quote: the default message, still valid JSON */
        memset(big, '"', sizeof(big));
        big[sizeof(big) - 1] = '\0';
        assert_true(cpn_api_error_body(buf, sizeof(buf), cpn_api_error_info(CPN_E_INVALID_REQUEST), big) > 0);
        msg = parse_error_body(buf, "invalid_request");
        assert_string_equal(msg, cpn_api_error_info(CPN_E_INVALID_REQUEST)->message);
        free(msg);
}

static void test_error_body_nobufs(void **state) {
        char buf[512];
        const struct cpn_api_error_info *info = cpn_coupon_answer(CPN_ISSUE_NOT_OPEN);
        int n = cpn_api_error_body(buf, sizeof(buf), info, "closed");

        assert_true(n > 0);
        assert_int_equal(cpn_api_error_body(buf, (size_t)n + 1, info, "closed"), n);
        assert_int_equal(cpn_api_error_body(buf, (size_t)n, info, "closed"), -ENOBUFS);
        assert_int_equal(cpn_api_error_body(buf, 10, info, "closed"), -ENOBUFS);
}

/* ---- admin authorization ---- */

static void test_bearer_ok(void **state) {
        const char *token = "s3cret-token-0123456789";

        assert_true(cpn_http_bearer_ok("Bearer s3cret-token-0123456789", token));
        assert_true(cpn_http_bearer_ok("bearer s3cret-token-0123456789", token));
        assert_true(cpn_http_bearer_ok("BEARER s3cret-token-0123456789", token));
        assert_false(cpn_http_bearer_ok(NULL, token));
        assert_false(cpn_http_bearer_ok("", token));
        assert_false(cpn_http_bearer_ok("Bearer", token));
        assert_false(cpn_http_bearer_ok("Bearer ", token));
        assert_false(cpn_http_bearer_ok("Bearer wrong", token));
        assert_false(cpn_http_bearer_ok("Bearer s3cret-token-0123456788", token)); /* last char */
        assert_false(cpn_http_bearer_ok("Bearer t3cret-token-0123456789", token)); /* first char */
        assert_false(cpn_http_bearer_ok("Bearer s3cret-token", token));            /* prefix */
        assert_false(cpn_http_bearer_ok("Bearer s3cret-token-012345678", token));
        assert_false(cpn_http_bearer_ok("Bearer s3cret-token-0123456789x", token)); /* extra */
        assert_false(cpn_http_bearer_ok("Bearer s3cret-token-0123456789 ", token));
        assert_false(cpn_http_bearer_ok("s3cret-token-0123456789", token));  /* no "Bearer " */
        assert_false(cpn_http_bearer_ok("Bearers3cret-token-0123456789", token));
        assert_false(cpn_http_bearer_ok("Bearer  s3cret-token-0123456789", token));
        assert_false(cpn_http_bearer_ok("Basic s3cret-token-0123456789", token));
        assert_false(cpn_http_bearer_ok("Token s3cret-token-0123456789", token));
        assert_false(cpn_http_bearer_ok("Bearer S3CRET-TOKEN-0123456789", token));
}

/* ---- metrics ---- */

static int route(const char *name) {
        if (router.n == 0)
                router_setup();
        for (int r = 0; r < (int)router.n; r++)
                if (strcmp(cpn_router_name(&router, r), name) == 0)
                        return r;
        fail_msg("no route %s", name);
        return -1;
}
#define R_ISSUE route("issue")
#define R_HEALTHZ route("healthz")
#define R_CREATE route("campaign_create")
#define R_GET route("campaign_get")

static char *metrics_text(const struct cpn_metrics *m) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        cpn_metrics_write(m, &router, f);
        cpn_coupon_http_metrics(&coupon_http, f);
        assert_int_equal(fclose(f), 0);
        assert_non_null(text);
        return text;
}

static void assert_line(const char *text, const char *line) {
        const char *p = text;
        size_t n = strlen(line);

        while ((p = strstr(p, line))) {
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
                p++;
        }
        fail_msg("line \"%s\" not in:\n%s", line, text);
}

static void assert_no_line_prefix(const char *text, const char *prefix) {
        const char *p = text;

        while ((p = strstr(p, prefix))) {
                if (p == text || p[-1] == '\n')
                        fail_msg("unexpected line starting \"%s\"", prefix);
                p++;
        }
}

static void test_metrics_counters(void **state) {
        struct cpn_metrics *m = calloc(1, sizeof(*m));
        char *text;

        assert_non_null(m);
        for (int i = 0; i < 3; i++)
                cpn_metrics_request(m, R_ISSUE, 202, 100);
        cpn_metrics_request(m, R_ISSUE, 409, 600);
        cpn_metrics_request(m, R_ISSUE, 418, 3000000);
        cpn_metrics_request(m, R_HEALTHZ, 200, 250);
        cpn_metrics_request(m, 0, 404, 10);
        cpn_metrics_request(m, R_CREATE, 201, 1000);
        cpn_metrics_request(m, R_CREATE, 0, 1000);
        cpn_metrics_request(m, 99, 200, 1);  /* out of range: counted as unknown */
        cpn_metrics_request(m, -1, 200, 1);
        memset(&coupon_http, 0, sizeof(coupon_http));
        atomic_store(&coupon_http.outcomes[CPN_OUTCOME_ISSUED], 3);
        atomic_store(&coupon_http.outcomes[CPN_OUTCOME_ALREADY_ISSUED], 1);
        atomic_store(&coupon_http.outcomes[CPN_OUTCOME_INVALID], 1);
        text = metrics_text(m);

        assert_line(text, "# TYPE coupon_http_requests_total counter");
        assert_line(text, "coupon_http_requests_total{route=\"issue\",status=\"202\"} 3");
        assert_line(text, "coupon_http_requests_total{route=\"issue\",status=\"409\"} 1");
        assert_line(text, "coupon_http_requests_total{route=\"issue\",status=\"other\"} 1");
        assert_line(text, "coupon_http_requests_total{route=\"healthz\",status=\"200\"} 1");
        assert_line(text, "coupon_http_requests_total{route=\"unknown\",status=\"404\"} 1");
        assert_line(text, "coupon_http_requests_total{route=\"unknown\",status=\"200\"} 2");
        assert_line(text, "coupon_http_requests_total{route=\"campaign_create\",status=\"201\"} 1");
        assert_line(text, "coupon_http_requests_total{route=\"campaign_create\",status=\"other\"} 1");
        assert_no_line_prefix(text, "coupon_http_requests_total{route=\"campaign_get\"");
        assert_no_line_prefix(text, "coupon_http_requests_total{route=\"issue\",status=\"0\"");

        assert_line(text, "# TYPE coupon_issue_outcomes_total counter");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"issued\"} 3");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"already_issued\"} 1");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"sold_out\"} 0");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"not_open\"} 0");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"campaign_not_found\"} 0");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"paused\"} 0");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"unavailable\"} 0");
        assert_line(text, "coupon_issue_outcomes_total{outcome=\"invalid\"} 1");

        assert_line(text, "coupon_issue_delivery_total{state=\"acked\"} 0");
        assert_line(text, "coupon_issue_delivery_total{state=\"pending\"} 0");
        assert_line(text, "coupon_issue_delivery_total{state=\"failed\"} 0");
        free(text);
        free(m);
}

static void test_metrics_histogram(void **state) {
        static const char *const les[] = { "0.00025", "0.0005", "0.001", "0.002", "0.003", "0.005",
                                           "0.01", "0.02", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
                                           "+Inf" };
        /* cumulative counts for issue latencies 100, 100, 100, 250, 251, 600,
         * 3000000 us */
        static const unsigned long long want[] = { 4, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7 };
        struct cpn_metrics *m = calloc(1, sizeof(*m));
        char *text, line[256];

        assert_non_null(m);
        for (int i = 0; i < 3; i++)
                cpn_metrics_request(m, R_ISSUE, 202, 100);
        cpn_metrics_request(m, R_ISSUE, 202, 250);      /* on a bound: le is inclusive */
        cpn_metrics_request(m, R_ISSUE, 202, 251);
        cpn_metrics_request(m, R_ISSUE, 409, 600);
        cpn_metrics_request(m, R_ISSUE, 418, 3000000);  /* past the last bound */
        cpn_metrics_request(m, R_HEALTHZ, 200, 2500000);
        text = metrics_text(m);

        assert_line(text, "# TYPE coupon_http_request_duration_seconds histogram");
        for (size_t b = 0; b < sizeof(les) / sizeof(les[0]); b++) {
                snprintf(line, sizeof(line),
                         "coupon_http_request_duration_seconds_bucket{route=\"issue\",le=\"%s\"} %llu",
                         les[b], want[b]);
                assert_line(text, line);
        }
        assert_line(text, "coupon_http_request_duration_seconds_count{route=\"issue\"} 7");
        assert_line(text, "coupon_http_request_duration_seconds_sum{route=\"issue\"} 3.001401");
        assert_line(text, "coupon_http_request_duration_seconds_bucket{route=\"healthz\",le=\"1\"} 0");
        assert_line(text, "coupon_http_request_duration_seconds_bucket{route=\"healthz\",le=\"2.5\"} 1");
        assert_line(text, "coupon_http_request_duration_seconds_bucket{route=\"healthz\",le=\"+Inf\"} 1");
        assert_line(text, "coupon_http_request_duration_seconds_count{route=\"healthz\"} 1");
        /* routes without requests have no series */
        assert_no_line_prefix(text, "coupon_http_request_duration_seconds_bucket{route=\"readyz\"");
        assert_no_line_prefix(text, "coupon_http_request_duration_seconds_count{route=\"readyz\"");
        free(text);
        free(m);
}

static bool starts_with(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Every bucket series, read back from the text: non-decreasing, ending in
 * +Inf equal to _count. */
static void test_metrics_cumulative(void **state) {
        struct cpn_metrics *m = calloc(1, sizeof(*m));
        char *text, *save = NULL;
        unsigned long long prev = 0, inf = 0, count = 0;
        int buckets = 0;
        uint64_t us = 1;

        assert_non_null(m);
        for (int i = 0; i < 1000; i++) {
                cpn_metrics_request(m, R_GET, 200, us);
                us = (us * 7 + 13) % 4000000;
        }
        text = metrics_text(m);
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                unsigned long long v;
                char *sp = strrchr(l, ' ');

                if (starts_with(l, "coupon_http_request_duration_seconds_bucket{route=\"campaign_get\",")) {
                        assert_non_null(sp);
                        v = strtoull(sp + 1, NULL, 10);
                        if (v < prev)
                                fail_msg("bucket count decreases: %s after %llu", l, prev);
                        prev = v;
                        buckets++;
                        if (strstr(l, "le=\"+Inf\""))
                                inf = v;
                } else if (starts_with(l, "coupon_http_request_duration_seconds_count{route=\"campaign_get\"} ")) {
                        count = strtoull(sp + 1, NULL, 10);
                }
        }
        assert_int_equal(buckets, CPN_LATENCY_BUCKETS + 1);
        assert_int_equal(inf, 1000);
        assert_int_equal(count, 1000);
        free(text);
        free(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_route_ops),
                cmocka_unit_test(test_route_campaigns),
                cmocka_unit_test(test_route_unknown),
                cmocka_unit_test(test_route_bad_ids),
                cmocka_unit_test(test_route_names),
                cmocka_unit_test(test_router_other_product),
                cmocka_unit_test(test_router_bad_tables),
                cmocka_unit_test(test_error_table_complete),
                cmocka_unit_test(test_error_table_api_md),
                cmocka_unit_test(test_error_table_http),
                cmocka_unit_test(test_framing_length),
                cmocka_unit_test(test_framing_once),
                cmocka_unit_test(test_error_from_code),
                cmocka_unit_test(test_error_body),
                cmocka_unit_test(test_response),
                cmocka_unit_test(test_error_body_escapes),
                cmocka_unit_test(test_error_body_long_message),
                cmocka_unit_test(test_error_body_nobufs),
                cmocka_unit_test(test_bearer_ok),
                cmocka_unit_test(test_metrics_counters),
                cmocka_unit_test(test_metrics_histogram),
                cmocka_unit_test(test_metrics_cumulative),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
