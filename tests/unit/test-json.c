/*
 * Unit tests of src/common/json.c: the UTF-8 check, the strict request
 * parsers, JSON string quoting and the campaign view.
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

#include "coupon/error.h"
#include "coupon/json.h"
#include "coupon/types.h"

#define T_2026_11_21_10 1795255200000LL /* 2026-11-21T10:00:00Z */
#define NOW T_2026_11_21_10

/* ---- UTF-8 ---- */

static int utf8(const char *s) {
        return cpn_utf8_check(s, strlen(s));
}

static void test_utf8_valid(void **state) {
        static const char *const ok[] = {
                "", "abc", "\x7f",
                "\xc2\x80",                 /* U+0080, smallest 2-byte */
                "\xc3\xa9",                 /* é */
                "\xdf\xbf",                 /* U+07FF */
                "\xe0\xa0\x80",             /* U+0800, smallest 3-byte */
                "\xe2\x82\xac",             /* € */
                "\xed\x9f\xbf",             /* U+D7FF, just below the surrogates */
                "\xee\x80\x80",             /* U+E000, just above */
                "\xef\xbf\xbf",             /* U+FFFF */
                "\xf0\x90\x80\x80",         /* U+10000, smallest 4-byte */
                "\xf0\x9f\x98\x80",         /* 😀 */
                "\xf4\x8f\xbf\xbf",         /* U+10FFFF, largest */
                "a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!",
        };

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
                if (utf8(ok[i]) != 0)
                        fail_msg("valid UTF-8 #%zu refused", i);
        /* An ASCII NUL is valid UTF-8; the length is explicit. */
        assert_int_equal(cpn_utf8_check("a\0b", 3), 0);
        assert_int_equal(cpn_utf8_check("\xff", 0), 0);
}

static void test_utf8_invalid(void **state) {
        static const char *const bad[] = {
                /* overlongs */
                "\xc0\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x80\xaf", "\xe0\x9f\xbf",
                "\xf0\x80\x80\x80", "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf",
                /* UTF-16 surrogates */
                "\xed\xa0\x80", "\xed\xad\xbf", "\xed\xb0\x80", "\xed\xbf\xbf",
                "\xed\xa0\xbd\xed\xb8\x80", /* a CESU-8 pair */
                /* beyond U+10FFFF */
                "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", "\xf8\x88\x80\x80\x80",
                "\xfc\x84\x80\x80\x80\x80",
                /* never valid bytes */
                "\xfe", "\xff", "a\xff",
                /* truncated sequences */
                "\xc3", "\xe2\x82", "\xe2", "\xf0\x9f\x98", "\xf0\x9f", "\xf0", "abc\xc3",
                /* bad or missing continuation bytes */
                "\xc3\x28", "\xc3\xc3", "\xe2\x28\xa1", "\xe2\x82\x28", "\xf0\x28\x8c\xbc",
                "\xf0\x90\x28\xbc", "\xf0\x9f\x98\x28",
                /* lone continuation bytes */
                "\x80", "\xbf", "a\x80" "b",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (utf8(bad[i]) != -EINVAL)
                        fail_msg("invalid UTF-8 #%zu accepted", i);
        /* truncated by the explicit length */
        assert_int_equal(cpn_utf8_check("\xc3\xa9", 1), -EINVAL);
        assert_int_equal(cpn_utf8_check("\xe2\x82\xac", 2), -EINVAL);
        assert_int_equal(cpn_utf8_check("\xf0\x9f\x98\x80", 3), -EINVAL);
}

/* ---- the issue body ---- */

/* Parses @body from an exact-size heap copy (no NUL after it), so that
 * valgrind sees any read past @n. */
static int issue_n(const char *body, size_t n, char *user_id, struct cpn_error *err) {
        char *copy = malloc(n ? n : 1);
        int r;

        assert_non_null(copy);
        memcpy(copy, body, n);
        r = cpn_json_parse_issue(copy, n, user_id, err);
        free(copy);
        return r;
}

static int issue(const char *body, char *user_id) {
        struct cpn_error err = { { 0 } };
        int r = issue_n(body, strlen(body), user_id, &err);

        if (r != 0 && !err.msg[0])
                fail_msg("CPN_INVALID without a message for %s", body);
        return r;
}

static void assert_issue_ok(const char *body, const char *want) {
        char uid[CPN_ID_MAX + 1] = "";
        int r = issue(body, uid);

        if (r != 0)
                fail_msg("body %s: got %d, expected 0", body, r);
        assert_string_equal(uid, want);
}

static void assert_issue_bad(const char *body) {
        char uid[CPN_ID_MAX + 1];
        int r = issue(body, uid);

        if (r != CPN_INVALID)
                fail_msg("body %s: got %d, expected CPN_INVALID", body, r);
}

static void test_issue_valid(void **state) {
        assert_issue_ok("{\"user_id\":\"u-42\"}", "u-42");
        assert_issue_ok("{\"user_id\":\"a.b:c_D-9\"}", "a.b:c_D-9");
        assert_issue_ok(" \t\r\n{ \"user_id\" : \"u\" } \t\r\n", "u");     /* white space */
        assert_issue_ok("{\"user_id\":\"u-42\"}\n", "u-42");
        assert_issue_ok("{\"user_id\":\"u-42\"}   ", "u-42");
        /* escaped but valid id characters */
        assert_issue_ok("{\"user_id\":\"\\u0061\"}", "a");
        assert_issue_ok("{\"user_id\":\"a\\u002Eb\\u003ac\"}", "a.b:c");
        assert_issue_ok("{\"user\\u005fid\":\"x\"}", "x");
}

static void test_issue_explicit_length(void **state) {
        char uid[CPN_ID_MAX + 1] = "";
        const char *body = "{\"user_id\":\"u-42\"}garbage";

        /* only the first n bytes are the body */
        assert_int_equal(issue_n(body, 18, uid, NULL), 0);
        assert_string_equal(uid, "u-42");
        assert_int_equal(issue_n(body, 19, uid, NULL), CPN_INVALID);
        assert_int_equal(issue_n(body, 17, uid, NULL), CPN_INVALID);
        /* a NUL byte after the object is not the end of the body */
        assert_int_equal(issue_n("{\"user_id\":\"u\"}\0", 16, uid, NULL), CPN_INVALID);
        assert_int_equal(issue_n("{\"user_id\":\"u\0v\"}", 17, uid, NULL), CPN_INVALID);
}

static void test_issue_id_length(void **state) {
        char body[256], id[80];

        memset(id, 'a', sizeof(id));
        id[64] = '\0';
        snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", id);
        assert_issue_ok(body, id);
        id[64] = 'a';
        id[65] = '\0';
        snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", id);
        assert_issue_bad(body);
        assert_issue_bad("{\"user_id\":\"\"}");
        /* 64 characters once decoded, each written as an escape */
        {
                char big[1024];
                size_t o = 0;

                o += (size_t)snprintf(big + o, sizeof(big) - o, "{\"user_id\":\"");
                for (int i = 0; i < 64; i++)
                        o += (size_t)snprintf(big + o, sizeof(big) - o, "\\u0062");
                snprintf(big + o, sizeof(big) - o, "\"}");
                memset(id, 'b', 64);
                id[64] = '\0';
                assert_issue_ok(big, id);
        }
}

static void test_issue_bad_members(void **state) {
        assert_issue_bad("{}");
        assert_issue_bad("{\"user\":\"u\"}");                  /* missing, unknown */
        assert_issue_bad("{\"USER_ID\":\"u\"}");
        assert_issue_bad("{\"user_id\":\"u\",\"x\":1}");       /* unknown member */
        assert_issue_bad("{\"x\":1,\"user_id\":\"u\"}");
        assert_issue_bad("{\"user_id\":\"u\",\"\":1}");
        assert_issue_bad("{\"user_id\":\"a\",\"user_id\":\"b\"}"); /* duplicate */
        assert_issue_bad("{\"user_id\":\"a\",\"user_id\":\"a\"}");
        assert_issue_bad("{\"user_id\":\"a\",\"user\\u005fid\":\"b\"}"); /* duplicate via escape */
}

/* The reason names the member. json.c builds this message from the parsed
 * tree: valgrind also checks it is not read after cJSON_Delete. */
static void test_issue_member_in_message(void **state) {
        static const char *const cases[][2] = {
                { "{\"user_id\":\"u\",\"coupon_code\":1}", "unknown member \"coupon_code\"" },
                { "{\"extra_member_name\":1,\"user_id\":\"u\"}", "unknown member \"extra_member_name\"" },
                { "{\"user_id\":\"a\",\"user_id\":\"b\"}", "duplicate member \"user_id\"" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct cpn_error err = { { 0 } };
                char uid[CPN_ID_MAX + 1];

                assert_int_equal(issue_n(cases[i][0], strlen(cases[i][0]), uid, &err), CPN_INVALID);
                if (!strstr(err.msg, cases[i][1]))
                        fail_msg("body %s: message \"%s\", expected it to contain '%s'", cases[i][0],
                                 err.msg, cases[i][1]);
        }
}

static void test_issue_wrong_types(void **state) {
        assert_issue_bad("{\"user_id\":42}");
        assert_issue_bad("{\"user_id\":-1}");
        assert_issue_bad("{\"user_id\":1.5}");
        assert_issue_bad("{\"user_id\":null}");
        assert_issue_bad("{\"user_id\":[\"u\"]}");
        assert_issue_bad("{\"user_id\":[]}");
        assert_issue_bad("{\"user_id\":{}}");
        assert_issue_bad("{\"user_id\":{\"user_id\":\"u\"}}");
        assert_issue_bad("{\"user_id\":true}");
        assert_issue_bad("{\"user_id\":false}");
}

static void test_issue_bad_strings(void **state) {
        assert_issue_bad("{\"user_id\":\"ab\\u0000cd\"}");    /* \u0000 */
        assert_issue_bad("{\"user_id\":\"\\u0000\"}");
        assert_issue_bad("{\"user_id\":\"a\tb\"}");           /* raw control characters */
        assert_issue_bad("{\"user_id\":\"a\x01\"}");
        assert_issue_bad("{\"user_id\":\"a\nb\"}");
        assert_issue_bad("{\"user_id\":\"a\x1f\"}");
        assert_issue_bad("{\"user_id\":\"caf\xc3\"}");        /* invalid UTF-8 */
        assert_issue_bad("{\"user_id\":\"\xed\xa0\x80\"}");
        assert_issue_bad("{\"user_id\":\"\xc0\xae\"}");       /* overlong '.' */
        assert_issue_bad("{\"user_id\":\"u\"}\xff");
        assert_issue_bad("{\"user_id\":\"u\\x41\"}");         /* bad escapes */
        assert_issue_bad("{\"user_id\":\"u\\u00\"}");
        assert_issue_bad("{\"user_id\":\"u\\u00zz\"}");
        assert_issue_bad("{\"user_id\":\"\\ud800\"}");         /* lone surrogate escapes */
        assert_issue_bad("{\"user_id\":\"\\udc00\"}");
}

static void test_issue_bad_ids(void **state) {
        assert_issue_bad("{\"user_id\":\"a/b\"}");
        assert_issue_bad("{\"user_id\":\"a\\/b\"}");
        assert_issue_bad("{\"user_id\":\"\\u002f\"}");
        assert_issue_bad("{\"user_id\":\"a b\"}");
        assert_issue_bad("{\"user_id\":\"a%20b\"}");
        assert_issue_bad("{\"user_id\":\"a@b\"}");
        assert_issue_bad("{\"user_id\":\"caf\xc3\xa9\"}");   /* valid UTF-8, not in the grammar */
        assert_issue_bad("{\"user_id\":\"caf\\u00e9\"}");
        assert_issue_bad("{\"user_id\":\"a\\\"b\"}");
        assert_issue_bad("{\"user_id\":\"a\\\\b\"}");
        assert_issue_bad("{\"user_id\":\"a\\tb\"}");
}

static void test_issue_malformed(void **state) {
        char uid[CPN_ID_MAX + 1];

        assert_int_equal(issue_n("", 0, uid, NULL), CPN_INVALID);   /* empty body */
        assert_issue_bad("   ");
        assert_issue_bad("\n");
        assert_issue_bad("{\"user_id\":\"u-42\"");                   /* truncated */
        assert_issue_bad("{\"user_id\":\"u-4");
        assert_issue_bad("{\"user_id\":");
        assert_issue_bad("{\"user_id\"");
        assert_issue_bad("{");
        assert_issue_bad("{\"user_id\":\"u\\");
        assert_issue_bad("{\"user_id\":\"u\\u00");
        assert_issue_bad("{\"user_id\":\"u-42\"}x");                 /* trailing garbage */
        assert_issue_bad("{\"user_id\":\"u-42\"}{}");
        assert_issue_bad("{\"user_id\":\"u-42\"} 1");
        assert_issue_bad("{\"user_id\":\"u-42\"},");
        assert_issue_bad("{\"user_id\":\"u-42\",}");
        assert_issue_bad("{'user_id':'u-42'}");
        assert_issue_bad("{user_id:\"u-42\"}");
        assert_issue_bad("[{\"user_id\":\"u-42\"}]");                /* not an object */
        assert_issue_bad("[]");
        assert_issue_bad("\"u-42\"");
        assert_issue_bad("42");
        assert_issue_bad("null");
        assert_issue_bad("true");
        assert_issue_bad("user_id=u-42");
}

static void test_issue_err_null(void **state) {
        char uid[CPN_ID_MAX + 1];

        /* A NULL error struct is accepted. */
        assert_int_equal(cpn_json_parse_issue("{}", 2, uid, NULL), CPN_INVALID);
        assert_int_equal(cpn_json_parse_issue("[", 1, uid, NULL), CPN_INVALID);
        assert_int_equal(cpn_json_parse_issue("{\"user_id\":\"u\"}", 15, uid, NULL), 0);
        assert_string_equal(uid, "u");
}

/* ---- the campaign body ---- */

static int campaign(const char *body, struct cpn_campaign *c) {
        struct cpn_error err = { { 0 } };
        size_t n = strlen(body);
        char *copy = malloc(n ? n : 1);
        int r;

        assert_non_null(copy);
        memcpy(copy, body, n);
        r = cpn_json_parse_campaign(copy, n, NOW, c, &err);
        free(copy);
        if (r != 0 && !err.msg[0])
                fail_msg("CPN_INVALID without a message for %s", body);
        return r;
}

static void assert_campaign_bad(const char *body) {
        struct cpn_campaign c;
        int r = campaign(body, &c);

        if (r != CPN_INVALID)
                fail_msg("body %s: got %d, expected CPN_INVALID", body, r);
}

static void assert_campaign_ok(const char *body, struct cpn_campaign *c) {
        int r = campaign(body, c);

        if (r != 0)
                fail_msg("body %s: got %d, expected 0", body, r);
}

static void test_campaign_minimal(void **state) {
        struct cpn_campaign c;

        memset(&c, 0x55, sizeof(c));
        assert_campaign_ok("{\"id\":\"spring-2026\",\"name\":\"Spring sale\",\"total\":1000}", &c);
        assert_string_equal(c.id, "spring-2026");
        assert_string_equal(c.name, "Spring sale");
        assert_true(c.total == 1000);
        assert_true(c.starts_at_ms == NOW);
        assert_true(c.ends_at_ms == CPN_TIME_NEVER);
        /* order of members does not matter */
        assert_campaign_ok("{\"total\":1,\"name\":\"n\",\"id\":\"A_b-9\"}", &c);
        assert_string_equal(c.id, "A_b-9");
        assert_true(c.total == 1);
}

static void test_campaign_full(void **state) {
        struct cpn_campaign c;

        assert_campaign_ok("{\"id\":\"spring-2026\",\"name\":\"Spring sale\",\"total\":1000,"
                           "\"starts_at\":\"2026-11-21T10:00:00Z\","
                           "\"ends_at\":\"2026-11-21T12:00:00.250+01:00\"}", &c);
        assert_string_equal(c.id, "spring-2026");
        assert_string_equal(c.name, "Spring sale");
        assert_true(c.total == 1000);
        assert_true(c.starts_at_ms == T_2026_11_21_10);
        assert_true(c.ends_at_ms == T_2026_11_21_10 + 3600000 + 250);
        /* a start in the past or future is fine */
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":5,"
                           "\"starts_at\":\"2020-01-01T00:00:00Z\"}", &c);
        assert_true(c.starts_at_ms == 1577836800000LL);
        assert_true(c.ends_at_ms == CPN_TIME_NEVER);
        /* null means the default */
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":5,\"ends_at\":null}", &c);
        assert_true(c.starts_at_ms == NOW);
        assert_true(c.ends_at_ms == CPN_TIME_NEVER);
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":5,\"starts_at\":null,"
                           "\"ends_at\":null}", &c);
        assert_true(c.starts_at_ms == NOW);
        assert_true(c.ends_at_ms == CPN_TIME_NEVER);
        /* only ends_at: must be after now */
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":5,"
                           "\"ends_at\":\"2026-11-21T10:00:00.001Z\"}", &c);
        assert_true(c.starts_at_ms == NOW);
        assert_true(c.ends_at_ms == NOW + 1);
}

static void test_campaign_total(void **state) {
        struct cpn_campaign c;

        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":100000000}", &c);
        assert_true(c.total == CPN_TOTAL_MAX);
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":99999999}", &c);
        assert_true(c.total == 99999999);
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"n\",\"total\":1}", &c);
        assert_true(c.total == 1);
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":0}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":-0}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":-1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1.5}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1.0}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1e3}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1E3}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1e400}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":-1e400}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":\"10\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":100000001}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":9223372036854775808}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":null}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":true}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":[10]}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":+10}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":0x10}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":Infinity}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":NaN}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\"}");
}

/* RFC 8259 section 6: "Leading zeros are not allowed." cJSON accepts them;
 * json.h promises a handler only ever sees well-formed JSON. */
static void test_campaign_total_leading_zero(void **state) {
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":010}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":00001}");
}

/* Builds {"id":"c","name":"<@reps times @unit>","total":1}. */
static char *name_body(const char *unit, int reps) {
        size_t ul = strlen(unit), cap = ul * (size_t)reps + 64;
        char *b = malloc(cap), *p = b;

        assert_non_null(b);
        p += sprintf(p, "{\"id\":\"c\",\"name\":\"");
        for (int i = 0; i < reps; i++) {
                memcpy(p, unit, ul);
                p += ul;
        }
        strcpy(p, "\",\"total\":1}");
        return b;
}

static void assert_name(const char *unit, int reps, bool ok, size_t want_bytes) {
        struct cpn_campaign c;
        char *b = name_body(unit, reps);
        int r = campaign(b, &c);

        if (ok && r != 0)
                fail_msg("name of %d x \"%s\" refused (%d)", reps, unit, r);
        if (!ok && r != CPN_INVALID)
                fail_msg("name of %d x \"%s\" accepted (%d)", reps, unit, r);
        if (ok)
                assert_int_equal(strlen(c.name), want_bytes);
        free(b);
}

static void test_campaign_name(void **state) {
        struct cpn_campaign c;

        assert_campaign_bad("{\"id\":\"c\",\"name\":\"\",\"total\":1}");
        assert_name("a", 1, true, 1);
        assert_name("a", 200, true, 200);
        assert_name("a", 201, false, 0);
        assert_name("\xc3\xa9", 200, true, 400);               /* 2-byte code points */
        assert_name("\xc3\xa9", 201, false, 0);
        assert_name("\xe2\x82\xac", 200, true, 600);           /* 3-byte */
        assert_name("\xf0\x9f\x98\x80", 200, true, 800);       /* 4-byte: fills the buffer */
        assert_name("\xf0\x9f\x98\x80", 201, false, 0);
        assert_name("\\ud83d\\ude00", 200, true, 800);         /* the same, escaped */
        assert_name("\\u00e9", 200, true, 400);
        assert_name("\\u0041", 200, true, 200);                /* escapes count decoded */
        assert_name("\\u0041", 201, false, 0);
        assert_name("\\\"", 200, true, 200);
        /* control characters, raw or escaped */
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\\nb\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\\tb\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\\u0001b\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\\u001fb\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\\u007fb\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\x7f" "b\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\tb\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\\u0000b\",\"total\":1}");
        /* invalid UTF-8 or surrogates */
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"a\xc3\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"\\ud800\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"\\ude00\\ud83d\",\"total\":1}");
        /* wrong types */
        assert_campaign_bad("{\"id\":\"c\",\"name\":null,\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":5,\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"total\":1}");
        /* quotes and backslashes are fine */
        assert_campaign_ok("{\"id\":\"c\",\"name\":\"say \\\"hi\\\" \\\\ \\/\",\"total\":1}", &c);
        assert_string_equal(c.name, "say \"hi\" \\ /");
}

static void test_campaign_id(void **state) {
        char body[256], id[80];

        memset(id, 'x', sizeof(id));
        id[64] = '\0';
        snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"n\",\"total\":1}", id);
        {
                struct cpn_campaign c;

                assert_campaign_ok(body, &c);
                assert_string_equal(c.id, id);
        }
        id[64] = 'x';
        id[65] = '\0';
        snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"n\",\"total\":1}", id);
        assert_campaign_bad(body);
        assert_campaign_bad("{\"id\":\"\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"a.b\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"a:b\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"a/b\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"..\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"a\\u0000b\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":5,\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":null,\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"name\":\"n\",\"total\":1}");
}

static void test_campaign_times(void **state) {
        /* ends_at before or equal to starts_at */
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"2026-11-21T10:00:00Z\",\"ends_at\":\"2026-11-21T09:00:00Z\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"2026-11-21T10:00:00Z\",\"ends_at\":\"2026-11-21T10:00:00Z\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"2026-11-21T10:00:00Z\",\"ends_at\":\"2026-11-21T11:00:00+01:00\"}");
        /* ends_at alone, not after now */
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"ends_at\":\"2026-11-21T10:00:00Z\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"ends_at\":\"2020-01-01T00:00:00Z\"}");
        /* bad times */
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"starts_at\":\"tomorrow\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"starts_at\":\"\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"starts_at\":1795255200000}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"starts_at\":true}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"starts_at\":{}}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"2026-13-01T00:00:00Z\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"2026-11-21 10:00:00Z\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"ends_at\":\"2027-02-29T00:00:00Z\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"ends_at\":\"2030-01-01T00:00:00\"}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"ends_at\":0}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"1969-12-31T23:59:59Z\"}");
}

static void test_campaign_members(void **state) {
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"paused\":true}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"Total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"issued\":0}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"total\":2}");
        assert_campaign_bad("{\"id\":\"c\",\"id\":\"d\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"name\":\"n\",\"total\":1}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"ends_at\":null,\"ends_at\":null}");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1,"
                            "\"starts_at\":\"2026-11-21T10:00:00Z\",\"starts\\u005fat\":null}");
        assert_campaign_bad("[{\"id\":\"c\",\"name\":\"n\",\"total\":1}]");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1}x");
        assert_campaign_bad("{\"id\":\"c\",\"name\":\"n\",\"total\":1");
        assert_campaign_bad("");
        assert_campaign_bad("{}");
}

/* ---- quoting ---- */

static void assert_quote(const char *s, const char *want) {
        char buf[256];
        int r = cpn_json_quote(buf, sizeof(buf), s);

        assert_int_equal(r, (int)strlen(want));
        assert_string_equal(buf, want);
}

static void test_quote(void **state) {
        assert_quote("", "\"\"");
        assert_quote("abc", "\"abc\"");
        assert_quote("a\"b", "\"a\\\"b\"");
        assert_quote("a\\b", "\"a\\\\b\"");
        assert_quote("\n\r\t", "\"\\n\\r\\t\"");
        assert_quote("\x01\x1f", "\"\\u0001\\u001f\"");
        assert_quote("\b\f", "\"\\u0008\\u000c\"");
        assert_quote("/", "\"/\"");
        assert_quote("\x7f", "\"\x7f\"");
        assert_quote("caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
        assert_quote("</script>", "\"</script>\"");
}

static void test_quote_round_trip(void **state) {
        char s[128], buf[1024];
        cJSON *j;
        int r;

        /* every ASCII byte but NUL, decoded back by cJSON */
        for (int i = 1; i < 128; i++)
                s[i - 1] = (char)i;
        s[127] = '\0';
        r = cpn_json_quote(buf, sizeof(buf), s);
        assert_true(r > 0);
        assert_int_equal(strlen(buf), (size_t)r);
        j = cJSON_Parse(buf);
        assert_non_null(j);
        assert_true(cJSON_IsString(j));
        assert_string_equal(j->valuestring, s);
        cJSON_Delete(j);
}

static void test_quote_nobufs(void **state) {
        static const char *const inputs[] = { "", "abc", "a\"", "\x01", "\\\\", "\xc3\xa9" };
        char buf[64];

        for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
                int len = cpn_json_quote(buf, sizeof(buf), inputs[k]);

                assert_true(len >= 2);
                for (size_t n = 0; n <= (size_t)len; n++) {
                        memset(buf, 'X', sizeof(buf));
                        if (cpn_json_quote(buf, n, inputs[k]) != -ENOBUFS)
                                fail_msg("input #%zu with n=%zu: expected -ENOBUFS", k, n);
                        assert_int_equal(buf[n], 'X'); /* nothing written past n */
                }
                assert_int_equal(cpn_json_quote(buf, (size_t)len + 1, inputs[k]), len);
        }
}

/* ---- the campaign view ---- */

static void base_state(struct cpn_campaign_state *st) {
        memset(st, 0, sizeof(*st));
        strcpy(st->c.id, "spring-2026");
        strcpy(st->c.name, "Spring \"sale\"");
        st->c.total = 1000;
        st->c.starts_at_ms = T_2026_11_21_10;
        st->c.ends_at_ms = CPN_TIME_NEVER;
        st->issued = 17;
        st->now_ms = T_2026_11_21_10 + 100000;
}

static void test_campaign_json_never(void **state) {
        const char *want = "{\"id\":\"spring-2026\",\"name\":\"Spring \\\"sale\\\"\",\"total\":1000,"
                           "\"issued\":17,\"remaining\":983,\"persisted\":null,"
                           "\"starts_at\":\"2026-11-21T10:00:00Z\",\"ends_at\":null,\"state\":\"open\"}";
        struct cpn_campaign_state st;
        char buf[2048];
        cJSON *j;

        base_state(&st);
        assert_int_equal(cpn_json_campaign(buf, sizeof(buf), &st, -1), (int)strlen(want));
        assert_string_equal(buf, want);
        j = cJSON_Parse(buf);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "Spring \"sale\"");
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "persisted")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "ends_at")));
        cJSON_Delete(j);
}

static void test_campaign_json_end(void **state) {
        const char *want = "{\"id\":\"spring-2026\",\"name\":\"Spring \\\"sale\\\"\",\"total\":1000,"
                           "\"issued\":1000,\"remaining\":0,\"persisted\":998,"
                           "\"starts_at\":\"2026-11-21T10:00:00Z\","
                           "\"ends_at\":\"2026-11-21T11:00:00.500Z\",\"state\":\"ended\"}";
        struct cpn_campaign_state st;
        char buf[2048];

        base_state(&st);
        st.c.ends_at_ms = T_2026_11_21_10 + 3600500;
        st.issued = 1000;
        st.now_ms = st.c.ends_at_ms;
        assert_int_equal(cpn_json_campaign(buf, sizeof(buf), &st, 998), (int)strlen(want));
        assert_string_equal(buf, want);

        /* sold out before the end; persisted 0 is a number, not null */
        st.now_ms = st.c.ends_at_ms - 1;
        st.issued = 1001; /* never shows a negative remainder */
        assert_true(cpn_json_campaign(buf, sizeof(buf), &st, 0) > 0);
        assert_non_null(strstr(buf, "\"issued\":1001,\"remaining\":0,\"persisted\":0,"));
        assert_non_null(strstr(buf, "\"state\":\"sold_out\"}"));

        st.issued = 0;
        st.now_ms = T_2026_11_21_10 - 1;
        assert_true(cpn_json_campaign(buf, sizeof(buf), &st, 0) > 0);
        assert_non_null(strstr(buf, "\"remaining\":1000,"));
        assert_non_null(strstr(buf, "\"state\":\"scheduled\"}"));
}

static void test_campaign_json_name_escaped(void **state) {
        struct cpn_campaign_state st;
        char buf[4096];
        cJSON *j;

        base_state(&st);
        /* 200 four-byte code points: the largest name */
        st.c.name[0] = '\0';
        for (int i = 0; i < 200; i++)
                strcat(st.c.name, "\xf0\x9f\x98\x80");
        assert_true(cpn_json_campaign(buf, sizeof(buf), &st, 5) > 0);
        j = cJSON_Parse(buf);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, st.c.name);
        cJSON_Delete(j);
}

static void test_campaign_json_nobufs(void **state) {
        struct cpn_campaign_state st;
        char buf[2048];
        int len;

        base_state(&st);
        len = cpn_json_campaign(buf, sizeof(buf), &st, -1);
        assert_true(len > 0);
        assert_int_equal(cpn_json_campaign(buf, (size_t)len + 1, &st, -1), len);
        /* json.h: "Returns the length or -ENOBUFS." */
        assert_int_equal(cpn_json_campaign(buf, (size_t)len, &st, -1), -ENOBUFS);
        assert_int_equal(cpn_json_campaign(buf, 16, &st, -1), -ENOBUFS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf8_valid),
                cmocka_unit_test(test_utf8_invalid),
                cmocka_unit_test(test_issue_valid),
                cmocka_unit_test(test_issue_explicit_length),
                cmocka_unit_test(test_issue_id_length),
                cmocka_unit_test(test_issue_bad_members),
                cmocka_unit_test(test_issue_member_in_message),
                cmocka_unit_test(test_issue_wrong_types),
                cmocka_unit_test(test_issue_bad_strings),
                cmocka_unit_test(test_issue_bad_ids),
                cmocka_unit_test(test_issue_malformed),
                cmocka_unit_test(test_issue_err_null),
                cmocka_unit_test(test_campaign_minimal),
                cmocka_unit_test(test_campaign_full),
                cmocka_unit_test(test_campaign_total),
                cmocka_unit_test(test_campaign_total_leading_zero),
                cmocka_unit_test(test_campaign_name),
                cmocka_unit_test(test_campaign_id),
                cmocka_unit_test(test_campaign_times),
                cmocka_unit_test(test_campaign_members),
                cmocka_unit_test(test_quote),
                cmocka_unit_test(test_quote_round_trip),
                cmocka_unit_test(test_quote_nobufs),
                cmocka_unit_test(test_campaign_json_never),
                cmocka_unit_test(test_campaign_json_end),
                cmocka_unit_test(test_campaign_json_name_escaped),
                cmocka_unit_test(test_campaign_json_nobufs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
