/*
 * Unit tests of the coupon product's domain (src/coupon/campaign.c) on the
 * strict JSON of src/common/json.c: the issue and campaign bodies, the
 * campaign view, the Kafka message and its decoder, key names, phases.
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
#include "cpn/json.h"
#include "cpn/types.h"
#include "cpn/coupon/campaign.h"

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
                "\x80", "\xbf", ("a\x80" "b"), /* split: \x80b would be one escape */
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
        r = cpn_campaign_parse_issue(copy, n, user_id, err);
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

/* A member name longer than the message quotes is cut on a character
 * boundary: the message goes into a JSON answer or a failed_events row and
 * must stay valid UTF-8 (found by tests/fuzz/fuzz-request, reproducer in
 * tests/fuzz/regressions/). Each padding cuts a 4-byte character at a
 * different byte; 2-byte characters are cut too. */
static void test_member_in_message_utf8(void **state) {
        static const char *const chars[] = { "\xf0\x9f\x98\x80", "\xc3\xa9" };

        for (size_t k = 0; k < 2; k++) {
                size_t cl = strlen(chars[k]);

                for (size_t pad = 0; pad < cl; pad++) {
                        char name[256] = "", want[256], body[512];
                        struct cpn_error err = { { 0 } };
                        char uid[CPN_ID_MAX + 1];
                        struct cpn_campaign c;
                        struct cpn_issuance iss;
                        size_t keep = pad + (64 - pad) / cl * cl;

                        memset(name, 'a', pad);
                        while (strlen(name) < 80)
                                strcat(name, chars[k]);
                        snprintf(want, sizeof(want), "member \"%.*s\"", (int)keep, name);

                        snprintf(body, sizeof(body), "{\"user_id\":\"u\",\"%s\":1}", name);
                        assert_int_equal(issue_n(body, strlen(body), uid, &err), CPN_INVALID);
                        assert_int_equal(cpn_utf8_check(err.msg, strlen(err.msg)), 0);
                        if (!strstr(err.msg, want))
                                fail_msg("issue: message \"%s\", expected '%s'", err.msg, want);

                        snprintf(body, sizeof(body), "{\"id\":\"c\",\"name\":\"n\",\"total\":1,\"%s\":1}", name);
                        assert_int_equal(cpn_campaign_parse(body, strlen(body), NOW, &c, &err), CPN_INVALID);
                        assert_int_equal(cpn_utf8_check(err.msg, strlen(err.msg)), 0);
                        if (!strstr(err.msg, want))
                                fail_msg("campaign: message \"%s\", expected '%s'", err.msg, want);

                        snprintf(body, sizeof(body),
                                 "{\"campaign_id\":\"c\",\"user_id\":\"u\",\"seq\":1,"
                                 "\"issued_at\":\"2026-11-21T10:00:00Z\",\"%s\":1,\"%s\":2}", name, name);
                        assert_int_equal(cpn_issuance_parse(body, strlen(body), &iss, &err), CPN_INVALID);
                        assert_int_equal(cpn_utf8_check(err.msg, strlen(err.msg)), 0);
                        if (!strstr(err.msg, want))
                                fail_msg("issuance: message \"%s\", expected '%s'", err.msg, want);
                }
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

/* Refused (CPN_INVALID) either way; @deep: for its nesting. */
static void assert_nesting(const char *body, bool deep) {
        struct cpn_error err = { { 0 } };
        char uid[CPN_ID_MAX + 1];

        assert_int_equal(cpn_campaign_parse_issue(body, strlen(body), uid, &err), CPN_INVALID);
        if ((strstr(err.msg, "nested deeper") != NULL) != deep)
                fail_msg("%s: \"%s\"", body, err.msg);
}

/* cJSON recurses per level; civetweb's threads have 100 KiB stacks. */
static void test_nesting_depth(void **state) {
        char body[4096], uid[CPN_ID_MAX + 1];
        struct cpn_error err = { { 0 } };
        struct cpn_issuance iss;
        size_t n = 0;

        n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"user_id\":");
        for (int i = 0; i < 1500; i++)
                body[n++] = '[';
        for (int i = 0; i < 1500; i++)
                body[n++] = ']';
        body[n++] = '}';
        assert_int_equal(cpn_campaign_parse_issue(body, n, uid, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "nested deeper"));
        assert_int_equal(cpn_issuance_parse(body, n, &iss, NULL), CPN_INVALID);
        assert_nesting("{\"user_id\":[[[[[[[[]]]]]]]]}", true);      /* 9 levels */
        assert_nesting("{\"user_id\":[[[[[[[]]]]]]]}", false);       /* 8: only a type error */
        assert_nesting("{\"user_id\":[[[[]]]],\"x\":[[[[]]]]}", false); /* levels given back */
        assert_nesting("{\"user_id\":\"[[[[[[[[[\",\"user_id\":1}", false); /* in a string */
}

static void test_issue_err_null(void **state) {
        char uid[CPN_ID_MAX + 1];

        /* A NULL error struct is accepted. */
        assert_int_equal(cpn_campaign_parse_issue("{}", 2, uid, NULL), CPN_INVALID);
        assert_int_equal(cpn_campaign_parse_issue("[", 1, uid, NULL), CPN_INVALID);
        assert_int_equal(cpn_campaign_parse_issue("{\"user_id\":\"u\"}", 15, uid, NULL), 0);
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
        r = cpn_campaign_parse(copy, n, NOW, c, &err);
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
        static const char head[] = "{\"id\":\"c\",\"name\":\"";
        size_t ul = strlen(unit), cap = ul * (size_t)reps + 64;
        char *b = malloc(cap), *p = b;

        assert_non_null(b);
        memcpy(p, head, sizeof(head) - 1);
        p += sizeof(head) - 1;
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
        assert_int_equal(cpn_campaign_json(buf, sizeof(buf), &st, -1), (int)strlen(want));
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
        assert_int_equal(cpn_campaign_json(buf, sizeof(buf), &st, 998), (int)strlen(want));
        assert_string_equal(buf, want);

        /* sold out before the end; persisted 0 is a number, not null */
        st.now_ms = st.c.ends_at_ms - 1;
        st.issued = 1001; /* never shows a negative remainder */
        assert_true(cpn_campaign_json(buf, sizeof(buf), &st, 0) > 0);
        assert_non_null(strstr(buf, "\"issued\":1001,\"remaining\":0,\"persisted\":0,"));
        assert_non_null(strstr(buf, "\"state\":\"sold_out\"}"));

        st.issued = 0;
        st.now_ms = T_2026_11_21_10 - 1;
        assert_true(cpn_campaign_json(buf, sizeof(buf), &st, 0) > 0);
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
        assert_true(cpn_campaign_json(buf, sizeof(buf), &st, 5) > 0);
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
        len = cpn_campaign_json(buf, sizeof(buf), &st, -1);
        assert_true(len > 0);
        assert_int_equal(cpn_campaign_json(buf, (size_t)len + 1, &st, -1), len);
        /* json.h: "Returns the length or -ENOBUFS." */
        assert_int_equal(cpn_campaign_json(buf, (size_t)len, &st, -1), -ENOBUFS);
        assert_int_equal(cpn_campaign_json(buf, 16, &st, -1), -ENOBUFS);
}

/* ---- the Kafka issuance message ---- */

/* One message value from its four members, each given as a raw JSON token. */
#define MSG(cid, uid, seq, at) \
        "{\"campaign_id\":" cid ",\"user_id\":" uid ",\"seq\":" seq ",\"issued_at\":" at "}"
#define GOOD_CID "\"c1\""
#define GOOD_UID "\"u-1\""
#define GOOD_SEQ "17"
#define GOOD_AT "\"2026-11-21T10:00:00Z\""
#define GOOD MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, GOOD_AT)

/* Both ids of @out are NUL-terminated within their arrays and are either
 * empty or valid: a failed parse never leaves garbage for failed_events. */
static void assert_ids_sane(const struct cpn_issuance *out) {
        size_t lc = strnlen(out->campaign_id, sizeof(out->campaign_id));
        size_t lu = strnlen(out->user_id, sizeof(out->user_id));

        assert_true(lc < sizeof(out->campaign_id));
        assert_true(lu < sizeof(out->user_id));
        assert_true(lc == 0 || cpn_id_valid(out->campaign_id, lc));
        assert_true(lu == 0 || cpn_user_id_valid(out->user_id, lu));
}

/* Parses @buf from an exact-size heap copy (no NUL after it), so that ASan
 * and valgrind see any read past @n. @out starts out as stale garbage. */
static int issuance_n(const char *buf, size_t n, struct cpn_issuance *out, struct cpn_error *err) {
        char *copy = malloc(n ? n : 1);
        int r;

        assert_non_null(copy);
        memcpy(copy, buf, n);
        memset(out, 0x55, sizeof(*out));
        r = cpn_issuance_parse(copy, n, out, err);
        free(copy);
        assert_ids_sane(out);
        return r;
}

static int issuance(const char *buf, struct cpn_issuance *out) {
        struct cpn_error err = { { 0 } };
        int r = issuance_n(buf, strlen(buf), out, &err);

        if (r != 0 && !err.msg[0])
                fail_msg("CPN_INVALID without a message for %s", buf);
        return r;
}

static void assert_issuance_ok(const char *buf, const char *cid, const char *uid, int64_t seq,
                               int64_t at_ms) {
        struct cpn_issuance out;
        int r = issuance(buf, &out);

        if (r != 0)
                fail_msg("message %s: got %d, expected 0", buf, r);
        assert_string_equal(out.campaign_id, cid);
        assert_string_equal(out.user_id, uid);
        if (out.seq != seq)
                fail_msg("message %s: seq %lld, expected %lld", buf, (long long)out.seq,
                         (long long)seq);
        if (out.issued_at_ms != at_ms)
                fail_msg("message %s: issued_at_ms %lld, expected %lld", buf,
                         (long long)out.issued_at_ms, (long long)at_ms);
}

static void assert_good(const char *buf) {
        assert_issuance_ok(buf, "c1", "u-1", 17, T_2026_11_21_10);
}

static void assert_issuance_bad(const char *buf) {
        struct cpn_issuance out;
        int r = issuance(buf, &out);

        if (r != CPN_INVALID)
                fail_msg("message %s: got %d, expected CPN_INVALID", buf, r);
}

static void assert_issuance_bad_n(const char *buf, size_t n) {
        struct cpn_issuance out;
        struct cpn_error err = { { 0 } };
        int r = issuance_n(buf, n, &out, &err);

        if (r != CPN_INVALID)
                fail_msg("message of %zu bytes: got %d, expected CPN_INVALID", n, r);
        assert_true(err.msg[0] != '\0');
}

static void test_parse_issuance_valid(void **state) {
        assert_good("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                    "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_good(GOOD);
        assert_issuance_ok(MSG("\"spring-2026_B\"", "\"a.b:c_D-9\"", "0", "\"2026-11-21T10:00:00.250Z\""),
                           "spring-2026_B", "a.b:c_D-9", 0, T_2026_11_21_10 + 250);
}

static void test_parse_issuance_member_order_and_space(void **state) {
        assert_good("{\"issued_at\":\"2026-11-21T10:00:00Z\",\"seq\":17,\"user_id\":\"u-1\","
                    "\"campaign_id\":\"c1\"}");
        assert_good("{\"seq\":17,\"campaign_id\":\"c1\",\"issued_at\":\"2026-11-21T10:00:00Z\","
                    "\"user_id\":\"u-1\"}");
        assert_good(" \t\r\n{ \"campaign_id\" : \"c1\" ,\n\"user_id\":\"u-1\" , \"seq\" : 17 ,"
                    "\t\"issued_at\" :\"2026-11-21T10:00:00Z\" } \r\n");
        assert_good(GOOD "\n");
}

/* "other members are ignored (a newer producer may add some)", whatever
 * their type, including numbers seq itself could not be. */
static void test_parse_issuance_unknown_members(void **state) {
        assert_good("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                    "\"issued_at\":\"2026-11-21T10:00:00Z\",\"v\":2}");
        assert_good("{\"trace_id\":\"4bf92f3577b34da6\",\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                    "\"seq\":17,\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_good("{\"campaign_id\":\"c1\",\"meta\":{\"a\":[1,2,{\"b\":null}],\"c\":true},"
                    "\"user_id\":\"u-1\",\"tags\":[],\"seq\":17,\"x\":null,\"y\":false,"
                    "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        /* numbers with a fraction or an exponent, or out of seq's range,
         * elsewhere in the message do not matter */
        assert_good("{\"price\":9.99,\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                    "\"issued_at\":\"2026-11-21T10:00:00Z\",\"ratio\":-2.5e-3}");
        assert_good("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                    "\"issued_at\":\"2026-11-21T10:00:00Z\",\"w\":[1.5,1E3,{\"z\":0.0}],\"n\":-7}");
        /* names that differ only in case, or are not quite ours, are others */
        assert_good("{\"Seq\":\"x\",\"CAMPAIGN_ID\":5,\"user\":1,\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                    "\"seq\":17,\"issued_at\":\"2026-11-21T10:00:00Z\",\"\":0}");
        /* unknown members are still JSON: unicode and escapes are fine */
        assert_good("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                    "\"issued_at\":\"2026-11-21T10:00:00Z\",\"note\":\"caf\xc3\xa9 \\ud83d\\ude00 \\\"\\n\"}");
}

static void test_parse_issuance_seq_bounds(void **state) {
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, "0", GOOD_AT), "c1", "u-1", 0, T_2026_11_21_10);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, "1", GOOD_AT), "c1", "u-1", 1, T_2026_11_21_10);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, "99999999", GOOD_AT), "c1", "u-1", 99999999,
                           T_2026_11_21_10);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, "100000000", GOOD_AT), "c1", "u-1", CPN_TOTAL_MAX,
                           T_2026_11_21_10);
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "100000001", GOOD_AT));
}

static void test_parse_issuance_seq_negative(void **state) {
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-1", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-17", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-100000000", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-9223372036854775809", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-1e400", GOOD_AT));
}

static void test_parse_issuance_seq_fraction(void **state) {
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "17.5", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "0.5", GOOD_AT));
        /* integral values written with a fraction are not integers */
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "17.0", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "0.0", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "17.000000000000001", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-0.5", GOOD_AT));
        /* not JSON numbers at all */
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "17.", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, ".5", GOOD_AT));
}

static void test_parse_issuance_seq_exponent(void **state) {
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "1e3", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "1E3", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "17e0", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "1.7e1", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "1e+2", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "170e-1", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "1e8", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "1e400", GOOD_AT));
}

/* seq's own notation counts, not that of numbers around it. */
static void test_parse_issuance_seq_among_other_numbers(void **state) {
        /* integral seq after, between and before non-integral numbers */
        assert_good("{\"a\":[1.5,2,{\"b\":3e1,\"c\":[4,-5.0]}],\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                    "\"seq\":17,\"d\":0.25,\"issued_at\":\"2026-11-21T10:00:00Z\",\"e\":1E-9}");
        /* digits, dots and exponents inside strings and names are not numbers */
        assert_good("{\"1.5\":\"2e3\",\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"x\":\"-0.1 \\\" 7.5\","
                    "\"seq\":17,\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        /* a fraction or an exponent in seq among integral numbers */
        assert_issuance_bad("{\"a\":[1,2,{\"b\":3}],\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                            "\"seq\":17.0,\"d\":4,\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"a\":[1.5,2],\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                            "\"seq\":1.7e1,\"d\":4.5,\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"seq\":17e0,\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"d\":4}");
        assert_issuance_bad("{\"n\":\"9.5\",\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"seq\":17.00}");
}

static void test_parse_issuance_seq_leading_zero(void **state) {
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "017", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "00", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "0017", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "-01", GOOD_AT));
        /* also in a member that is otherwise ignored: it is not JSON */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"x\":07}");
}

static void test_parse_issuance_seq_too_large(void **state) {
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "100000001", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "2147483648", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "4294967313", GOOD_AT)); /* 2^32 + 17 */
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "9223372036854775807", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "9223372036854775808", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "18446744073709551633", GOOD_AT)); /* 2^64 + 17 */
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID,
                                "1000000000000000000000000000000000000000000000000000000000", GOOD_AT));
}

static void test_parse_issuance_seq_wrong_type(void **state) {
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "\"17\"", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "null", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "true", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "false", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "[17]", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "{\"seq\":17}", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "+17", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "0x11", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "NaN", GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, "Infinity", GOOD_AT));
}

static void test_parse_issuance_campaign_id(void **state) {
        char buf[512], id[80];

        memset(id, 'C', sizeof(id));
        id[64] = '\0';
        snprintf(buf, sizeof(buf), MSG("\"%s\"", GOOD_UID, GOOD_SEQ, GOOD_AT), id);
        assert_issuance_ok(buf, id, "u-1", 17, T_2026_11_21_10);
        id[64] = 'C';
        id[65] = '\0';
        snprintf(buf, sizeof(buf), MSG("\"%s\"", GOOD_UID, GOOD_SEQ, GOOD_AT), id);
        assert_issuance_bad(buf);
        assert_issuance_ok(MSG("\"A_z-09\"", GOOD_UID, GOOD_SEQ, GOOD_AT), "A_z-09", "u-1", 17,
                           T_2026_11_21_10);
        assert_issuance_ok(MSG("\"\\u0063\\u0031\"", GOOD_UID, GOOD_SEQ, GOOD_AT), "c1", "u-1", 17,
                           T_2026_11_21_10);                          /* escaped, decoded */
        assert_issuance_bad(MSG("\"\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"c.1\"", GOOD_UID, GOOD_SEQ, GOOD_AT)); /* user_id's grammar */
        assert_issuance_bad(MSG("\"c:1\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"c/1\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"c 1\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"c\\u002f1\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"caf\xc3\xa9\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"{c1}\"", GOOD_UID, GOOD_SEQ, GOOD_AT));  /* a Redis hash tag */
}

static void test_parse_issuance_user_id(void **state) {
        char buf[512], id[80];

        memset(id, 'u', sizeof(id));
        id[64] = '\0';
        snprintf(buf, sizeof(buf), MSG(GOOD_CID, "\"%s\"", GOOD_SEQ, GOOD_AT), id);
        assert_issuance_ok(buf, "c1", id, 17, T_2026_11_21_10);
        id[64] = 'u';
        id[65] = '\0';
        snprintf(buf, sizeof(buf), MSG(GOOD_CID, "\"%s\"", GOOD_SEQ, GOOD_AT), id);
        assert_issuance_bad(buf);
        assert_issuance_ok(MSG(GOOD_CID, "\"a.b:c_D-9\"", GOOD_SEQ, GOOD_AT), "c1", "a.b:c_D-9", 17,
                           T_2026_11_21_10);
        assert_issuance_ok(MSG(GOOD_CID, "\"u\\u002e1\"", GOOD_SEQ, GOOD_AT), "c1", "u.1", 17,
                           T_2026_11_21_10);
        assert_issuance_bad(MSG(GOOD_CID, "\"\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u/1\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u@x\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u 1\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u\\\"1\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u\\\\1\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u\\t1\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"caf\\u00e9\"", GOOD_SEQ, GOOD_AT));
}

static void test_parse_issuance_id_wrong_types(void **state) {
        static const char *const bad[] = { "5", "-1", "1.5", "null", "true", "false", "[]",
                                           "[\"c1\"]", "{}", "{\"campaign_id\":\"c1\"}" };
        char buf[512];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(buf, sizeof(buf), MSG("%s", GOOD_UID, GOOD_SEQ, GOOD_AT), bad[i]);
                assert_issuance_bad(buf);
                snprintf(buf, sizeof(buf), MSG(GOOD_CID, "%s", GOOD_SEQ, GOOD_AT), bad[i]);
                assert_issuance_bad(buf);
                snprintf(buf, sizeof(buf), MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "%s"), bad[i]);
                assert_issuance_bad(buf);
        }
}

static void test_parse_issuance_missing_fields(void **state) {
        assert_issuance_bad("{}");
        assert_issuance_bad("{\"user_id\":\"u-1\",\"seq\":17,\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"seq\":17,\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17}");
        assert_issuance_bad("{\"campaign_id\":\"c1\"}");
        /* an unknown member does not stand in for a missing one */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"Seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
}

static void test_parse_issuance_issued_at(void **state) {
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T10:00:00.001Z\""), "c1", "u-1",
                           17, T_2026_11_21_10 + 1);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T10:00:00.999Z\""), "c1", "u-1",
                           17, T_2026_11_21_10 + 999);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T11:00:00+01:00\""), "c1", "u-1",
                           17, T_2026_11_21_10);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T05:30:00.5-04:30\""), "c1",
                           "u-1", 17, T_2026_11_21_10 + 500);
        assert_issuance_ok(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"1970-01-01T00:00:00Z\""), "c1", "u-1", 17,
                           0);
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"now\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T10:00:00\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21 10:00:00Z\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T10:00:00Z \""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-13-01T00:00:00Z\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2027-02-29T00:00:00Z\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"1969-12-31T23:59:59Z\""));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "1795255200000"));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "null"));
}

/* Many members, a duplicate among them: found, and fast (sorted, not
 * pairwise); a value over the bound is refused unread. */
static void test_parse_issuance_many_members(void **state) {
        static char buf[CPN_ISSUANCE_MAX + 64];
        struct cpn_issuance out;
        struct cpn_error err = { { 0 } };
        size_t n = (size_t)snprintf(buf, sizeof(buf), "{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                                                    "\"issued_at\":\"2026-11-21T10:00:00Z\"");
        uint64_t t0;
        int i;

        (void)state;
        for (i = 0; n + 40 < CPN_ISSUANCE_MAX; i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"m%d\":%d", i, i);
        snprintf(buf + n, sizeof(buf) - n, "}");
        assert_int_equal(cpn_issuance_parse(buf, strlen(buf), &out, &err), 0);
        snprintf(buf + n, sizeof(buf) - n, ",\"m7\":1}");
        t0 = cpn_mono_ns();
        assert_int_equal(cpn_issuance_parse(buf, strlen(buf), &out, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "duplicate member \"m7\""));
        /* ~1,500 members: pairwise that is a million comparisons, sorted some 16,000. */
        assert_true(cpn_mono_ns() - t0 < 200 * 1000 * 1000ull);
        memset(buf, ' ', sizeof(buf));
        buf[0] = '{';
        buf[sizeof(buf) - 1] = '}';
        assert_int_equal(cpn_issuance_parse(buf, sizeof(buf), &out, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "a coupon message is at most"));
}

static void test_parse_issuance_duplicates(void **state) {
        /* each member twice, equal or not */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"campaign_id\":\"c2\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"campaign_id\":\"c1\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"user_id\":\"u-2\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,\"seq\":18,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"issued_at\":null}");
        /* the same name through an escape */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,\"se\\u0071\":18,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        /* an unknown member twice is a duplicate too */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"x\":1,\"x\":1}");
}

static void test_parse_issuance_trailing_garbage(void **state) {
        assert_issuance_bad(GOOD "x");
        assert_issuance_bad(GOOD "{}");
        assert_issuance_bad(GOOD GOOD);
        assert_issuance_bad(GOOD ",");
        assert_issuance_bad(GOOD " 1");
        assert_issuance_bad(GOOD "\n]");
        assert_issuance_bad(GOOD "\xff");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",}");
        /* a NUL after the object, inside the given length */
        assert_issuance_bad_n(GOOD "\0", sizeof(GOOD));
        assert_issuance_bad_n(GOOD "\0x", sizeof(GOOD) + 1);
}

static void test_parse_issuance_invalid_utf8(void **state) {
        /* in the ids */
        assert_issuance_bad(MSG("\"c\xc3\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u\xff\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"\xc0\xae\"", GOOD_SEQ, GOOD_AT));      /* overlong '.' */
        /* in an unknown member, which is otherwise ignored */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"note\":\"caf\xc3\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"note\":\"\xed\xa0\x80\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"n\xe9\":1}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"note\":\"\xf4\x90\x80\x80\"}");
        /* lone surrogate escapes */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"note\":\"\\ud800\"}");
}

static void test_parse_issuance_nul_bytes(void **state) {
        static const char in_cid[] = "{\"campaign_id\":\"c1\0x\",\"user_id\":\"u-1\",\"seq\":17,"
                                     "\"issued_at\":\"2026-11-21T10:00:00Z\"}";
        static const char in_note[] = "{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                                      "\"issued_at\":\"2026-11-21T10:00:00Z\",\"n\":\"\0\"}";
        static const char between[] = "{\"campaign_id\":\"c1\",\0\"user_id\":\"u-1\",\"seq\":17,"
                                      "\"issued_at\":\"2026-11-21T10:00:00Z\"}";
        static const char before[] = "\0" GOOD;

        assert_issuance_bad_n(in_cid, sizeof(in_cid) - 1);
        assert_issuance_bad_n(in_note, sizeof(in_note) - 1);
        assert_issuance_bad_n(between, sizeof(between) - 1);
        assert_issuance_bad_n(before, sizeof(before) - 1);
}

static void test_parse_issuance_escaped_nul(void **state) {
        /* cJSON would cut the string at \u0000: "c1\u0000x" must not be "c1" */
        assert_issuance_bad(MSG("\"c1\\u0000x\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG("\"c1\\u0000\"", GOOD_UID, GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, "\"u-1\\u0000\"", GOOD_SEQ, GOOD_AT));
        assert_issuance_bad(MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"2026-11-21T10:00:00Z\\u0000junk\""));
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"n\":\"\\u0000\"}");
        /* in a name: "seq\u0000" would otherwise become a second "seq" */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,\"seq\\u0000\":18,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
}

static void test_parse_issuance_empty(void **state) {
        struct cpn_issuance out;
        struct cpn_error err = { { 0 } };

        assert_int_equal(issuance_n("", 0, &out, &err), CPN_INVALID);
        assert_true(err.msg[0] != '\0');
        assert_string_equal(out.campaign_id, "");
        assert_string_equal(out.user_id, "");
        /* a zero length means empty, whatever the buffer holds */
        assert_int_equal(issuance_n(GOOD, 0, &out, NULL), CPN_INVALID);
        assert_issuance_bad(" ");
        assert_issuance_bad("\r\n\t ");
}

static void test_parse_issuance_not_object(void **state) {
        assert_issuance_bad("[" GOOD "]");
        assert_issuance_bad("[]");
        assert_issuance_bad("\"c1\"");
        assert_issuance_bad("17");
        assert_issuance_bad("0");
        assert_issuance_bad("null");
        assert_issuance_bad("true");
        assert_issuance_bad("false");
        assert_issuance_bad("{\"value\":" GOOD "}");               /* nested one level too deep */
        assert_issuance_bad("campaign_id=c1&user_id=u-1&seq=17");
}

static void test_parse_issuance_bad_syntax(void **state) {
        assert_issuance_bad("{'campaign_id':'c1','user_id':'u-1','seq':17,"
                            "'issued_at':'2026-11-21T10:00:00Z'}");
        assert_issuance_bad("{campaign_id:\"c1\",user_id:\"u-1\",seq:17,"
                            "issued_at:\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\" \"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\" \"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",,\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{/*x*/\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\"}");
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"x\":\"a\tb\"}"); /* raw tab */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"x\":\"\\q\"}"); /* bad escape */
        assert_issuance_bad("{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                            "\"issued_at\":\"2026-11-21T10:00:00Z\",\"x\":\"\\u12g4\"}");
}

/* Every proper prefix of a valid message is refused, read from an
 * exact-size buffer (ASan sees any read past the end). */
static void test_parse_issuance_truncated(void **state) {
        static const char *const msgs[] = {
                GOOD,
                "{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,"
                "\"issued_at\":\"2026-11-21T10:00:00.250Z\",\"n\":\"\\u00e9\\\"\",\"a\":[1,{\"b\":null}]}",
        };

        for (size_t k = 0; k < sizeof(msgs) / sizeof(msgs[0]); k++) {
                size_t len = strlen(msgs[k]);
                struct cpn_issuance out;

                for (size_t n = 0; n < len; n++)
                        assert_issuance_bad_n(msgs[k], n);
                assert_int_equal(issuance_n(msgs[k], len, &out, NULL), 0);
        }
}

static void test_parse_issuance_explicit_length(void **state) {
        static const char with_garbage[] = GOOD "garbage\xff\0{";
        const size_t n = sizeof(GOOD) - 1;
        struct cpn_issuance out;

        /* only the first n bytes are the message */
        assert_int_equal(issuance_n(with_garbage, n, &out, NULL), 0);
        assert_string_equal(out.campaign_id, "c1");
        assert_string_equal(out.user_id, "u-1");
        assert_true(out.seq == 17);
        assert_true(out.issued_at_ms == T_2026_11_21_10);
        assert_int_equal(issuance_n(with_garbage, n + 1, &out, NULL), CPN_INVALID);
        assert_int_equal(issuance_n(with_garbage, n - 1, &out, NULL), CPN_INVALID);
        /* directly, with the garbage really in the caller's buffer */
        memset(&out, 0x55, sizeof(out));
        assert_int_equal(cpn_issuance_parse(with_garbage, n, &out, NULL), 0);
        assert_string_equal(out.campaign_id, "c1");
        assert_true(out.seq == 17);
        /* a message ending in a number, cut right after it */
        {
                static const char num_last[] = "{\"campaign_id\":\"c1\",\"user_id\":\"u-1\","
                                               "\"issued_at\":\"2026-11-21T10:00:00Z\",\"seq\":17}"
                                               "999";
                struct cpn_error err = { { 0 } };

                assert_int_equal(issuance_n(num_last, sizeof(num_last) - 4, &out, &err), 0);
                assert_true(out.seq == 17);
        }
}

/* On failure the ids that were valid stay in @out, for the failed_events row. */
static void test_parse_issuance_keeps_ids_bad_seq(void **state) {
        static const char *const bad_seqs[] = { "-1", "17.5", "1e3", "100000001", "\"17\"", "null" };
        char buf[512];

        for (size_t i = 0; i < sizeof(bad_seqs) / sizeof(bad_seqs[0]); i++) {
                struct cpn_issuance out;
                struct cpn_error err = { { 0 } };

                snprintf(buf, sizeof(buf), MSG("\"spring-2026\"", "\"user:42\"", "%s", GOOD_AT),
                         bad_seqs[i]);
                assert_int_equal(issuance_n(buf, strlen(buf), &out, &err), CPN_INVALID);
                if (strcmp(out.campaign_id, "spring-2026") != 0 || strcmp(out.user_id, "user:42") != 0)
                        fail_msg("seq %s: ids \"%s\"/\"%s\" not kept", bad_seqs[i], out.campaign_id,
                                 out.user_id);
                assert_non_null(strstr(err.msg, "seq"));
        }
        /* seq missing altogether */
        {
                struct cpn_issuance out;

                const char *m = "{\"campaign_id\":\"c1\",\"user_id\":\"u-1\"}";

                assert_int_equal(issuance_n(m, strlen(m), &out, NULL), CPN_INVALID);
                assert_string_equal(out.campaign_id, "c1");
                assert_string_equal(out.user_id, "u-1");
        }
}

static void test_parse_issuance_keeps_ids_bad_time(void **state) {
        struct cpn_issuance out;
        struct cpn_error err = { { 0 } };
        const char *m = MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"yesterday\"");

        assert_int_equal(issuance_n(m, strlen(m), &out, &err), CPN_INVALID);
        assert_string_equal(out.campaign_id, "c1");
        assert_string_equal(out.user_id, "u-1");
        assert_non_null(strstr(err.msg, "issued_at"));
        m = MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "42");
        assert_int_equal(issuance_n(m, strlen(m), &out, NULL), CPN_INVALID);
        assert_string_equal(out.campaign_id, "c1");
        assert_string_equal(out.user_id, "u-1");
}

static void test_parse_issuance_keeps_ids_one_bad(void **state) {
        struct cpn_issuance out;
        struct cpn_error err = { { 0 } };
        const char *m;

        /* bad campaign_id, good user_id: user_id kept, campaign_id empty */
        m = MSG("\"c.1\"", GOOD_UID, GOOD_SEQ, GOOD_AT);
        assert_int_equal(issuance_n(m, strlen(m), &out, &err), CPN_INVALID);
        assert_string_equal(out.campaign_id, "");
        assert_string_equal(out.user_id, "u-1");
        assert_non_null(strstr(err.msg, "campaign_id"));
        /* missing campaign_id */
        m = "{\"user_id\":\"u-1\",\"seq\":17,\"issued_at\":\"2026-11-21T10:00:00Z\"}";
        assert_int_equal(issuance_n(m, strlen(m), &out, NULL), CPN_INVALID);
        assert_string_equal(out.campaign_id, "");
        assert_string_equal(out.user_id, "u-1");
        /* good campaign_id, bad user_id */
        memset(&err, 0, sizeof(err));
        m = MSG(GOOD_CID, "\"u/1\"", GOOD_SEQ, GOOD_AT);
        assert_int_equal(issuance_n(m, strlen(m), &out, &err), CPN_INVALID);
        assert_string_equal(out.campaign_id, "c1");
        assert_string_equal(out.user_id, "");
        assert_non_null(strstr(err.msg, "user_id"));
        /* good campaign_id, user_id of the wrong type, and a bad seq too */
        m = MSG(GOOD_CID, "7", "-1", GOOD_AT);
        assert_int_equal(issuance_n(m, strlen(m), &out, NULL), CPN_INVALID);
        assert_string_equal(out.campaign_id, "c1");
        assert_string_equal(out.user_id, "");
        /* ids too long are not kept (they would not fit) */
        m = MSG("\"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"", GOOD_UID, "-1",
                GOOD_AT);
        assert_int_equal(issuance_n(m, strlen(m), &out, NULL), CPN_INVALID);
        assert_string_equal(out.campaign_id, "");
        assert_string_equal(out.user_id, "u-1");
}

/* A failed parse never leaves a previous message's ids behind. */
static void test_parse_issuance_no_stale_output(void **state) {
        static const char *const bad[] = {
                "", "{", "[]", GOOD "x", MSG("\"c.1\"", "\"u/1\"", GOOD_SEQ, GOOD_AT),
                "{\"seq\":17}",
        };
        static const size_t bad_n[] = { 0, 1, 2, sizeof(GOOD), 0, 10 };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct cpn_issuance out;
                size_t n = bad_n[i] ? bad_n[i] : strlen(bad[i]);

                memset(&out, 0, sizeof(out));
                strcpy(out.campaign_id, "stale");
                strcpy(out.user_id, "stale");
                out.seq = 99;
                assert_int_equal(cpn_issuance_parse(bad[i], n, &out, NULL), CPN_INVALID);
                if (strcmp(out.campaign_id, "") != 0 || strcmp(out.user_id, "") != 0)
                        fail_msg("message #%zu: stale ids \"%s\"/\"%s\" left", i, out.campaign_id,
                                 out.user_id);
        }
}

static void test_parse_issuance_messages(void **state) {
        static const char *const cases[][2] = {
                { MSG("\"c.1\"", GOOD_UID, GOOD_SEQ, GOOD_AT), "campaign_id" },
                { MSG(GOOD_CID, "\"\"", GOOD_SEQ, GOOD_AT), "user_id" },
                { MSG(GOOD_CID, GOOD_UID, "1.5", GOOD_AT), "seq" },
                { MSG(GOOD_CID, GOOD_UID, GOOD_SEQ, "\"x\""), "issued_at" },
                { "{\"campaign_id\":\"c1\",\"user_id\":\"u-1\",\"seq\":17,\"seq\":17,"
                  "\"issued_at\":\"2026-11-21T10:00:00Z\"}", "duplicate member \"seq\"" },
                { GOOD "x", "unexpected data" },
                { "[]", "expected a JSON object" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct cpn_error err = { { 0 } };
                struct cpn_issuance out;

                assert_int_equal(issuance_n(cases[i][0], strlen(cases[i][0]), &out, &err), CPN_INVALID);
                if (!strstr(err.msg, cases[i][1]))
                        fail_msg("message %s: reason \"%s\", expected it to contain '%s'", cases[i][0],
                                 err.msg, cases[i][1]);
        }
}

static void test_parse_issuance_err_null(void **state) {
        struct cpn_issuance out;

        assert_int_equal(cpn_issuance_parse("{}", 2, &out, NULL), CPN_INVALID);
        assert_int_equal(cpn_issuance_parse("[", 1, &out, NULL), CPN_INVALID);
        assert_int_equal(cpn_issuance_parse(GOOD, sizeof(GOOD) - 1, &out, NULL), 0);
        assert_string_equal(out.campaign_id, "c1");
}

/* What cpn_issuance_json writes (the producer) reads back the same. */
static void test_parse_issuance_round_trip(void **state) {
        static const struct {
                const char *cid, *uid;
                int64_t seq, at;
        } cases[] = {
                { "c1", "u-1", 17, T_2026_11_21_10 },
                { "c1", "u-1", 17, T_2026_11_21_10 + 250 },
                { "spring-2026", "user.42:x_Y-z", 0, T_2026_11_21_10 + 1 },
                { "A", "b", 1, T_2026_11_21_10 + 999 },
                { "Z_9-", ":.", CPN_TOTAL_MAX, T_2026_11_21_10 + 3600123 },
                { "x", "y", 99999999, 0 },
                { "x", "y", 12345, 1 },
                { "x", "y", 54321, 253402300799999LL }, /* 9999-12-31T23:59:59.999Z */
                { "leap", "day", 2, 1709164800042LL },   /* 2024-02-29T00:00:00.042Z */
        };
        char long_c[CPN_ID_MAX + 1], long_u[CPN_ID_MAX + 1];

        memset(long_c, '-', CPN_ID_MAX);
        long_c[CPN_ID_MAX] = '\0';
        memset(long_u, '.', CPN_ID_MAX);
        long_u[CPN_ID_MAX] = '\0';
        for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
                struct cpn_issuance in, out;
                struct cpn_error err = { { 0 } };
                char buf[512];
                int len;

                memset(&in, 0, sizeof(in));
                if (i < sizeof(cases) / sizeof(cases[0])) {
                        strcpy(in.campaign_id, cases[i].cid);
                        strcpy(in.user_id, cases[i].uid);
                        in.seq = cases[i].seq;
                        in.issued_at_ms = cases[i].at;
                } else { /* the longest ids */
                        strcpy(in.campaign_id, long_c);
                        strcpy(in.user_id, long_u);
                        in.seq = 7;
                        in.issued_at_ms = T_2026_11_21_10 + 7;
                }
                len = cpn_issuance_json(&in, buf, sizeof(buf));
                assert_true(len > 0);
                if (issuance_n(buf, (size_t)len, &out, &err) != 0)
                        fail_msg("round trip #%zu: %s refused: %s", i, buf, err.msg);
                assert_string_equal(out.campaign_id, in.campaign_id);
                assert_string_equal(out.user_id, in.user_id);
                if (out.seq != in.seq || out.issued_at_ms != in.issued_at_ms)
                        fail_msg("round trip #%zu: %s gave seq %lld at %lld, expected %lld at %lld", i,
                                 buf, (long long)out.seq, (long long)out.issued_at_ms,
                                 (long long)in.seq, (long long)in.issued_at_ms);
        }
}

/* Every millisecond fraction of one second survives the round trip. */
static void test_parse_issuance_round_trip_ms(void **state) {
        for (int ms = 0; ms < 1000; ms++) {
                struct cpn_issuance in, out;
                char buf[512];
                int len;

                memset(&in, 0, sizeof(in));
                strcpy(in.campaign_id, "c1");
                strcpy(in.user_id, "u-1");
                in.seq = ms;
                in.issued_at_ms = T_2026_11_21_10 + ms;
                len = cpn_issuance_json(&in, buf, sizeof(buf));
                assert_true(len > 0);
                assert_int_equal(cpn_issuance_parse(buf, (size_t)len, &out, NULL), 0);
                if (out.issued_at_ms != in.issued_at_ms || out.seq != in.seq)
                        fail_msg("%s: issued_at_ms %lld, expected %lld", buf, (long long)out.issued_at_ms,
                                 (long long)in.issued_at_ms);
        }
}

static void test_key_names(void **state) {
        char buf[128];

        static const char *const parts[] = { "meta", "count", "users", "outbox" };
        static const char *const want[] = {
                "coupon:{spring-2026}:meta", "coupon:{spring-2026}:count",
                "coupon:{spring-2026}:users", "coupon:{spring-2026}:outbox",
        };

        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(cpn_campaign_key(buf, sizeof(buf), "spring-2026", parts[i]),
                                 (int)strlen(want[i]));
                assert_string_equal(buf, want[i]);
        }
        assert_int_equal(cpn_campaign_key(buf, sizeof(buf), "A_b-9", "meta"), 19);
        assert_string_equal(buf, "coupon:{A_b-9}:meta");
        assert_string_equal(CPN_KEY_CAMPAIGNS, "coupon:campaigns");
}

static void test_key_nobufs(void **state) {
        char buf[64];
        const char *want = "coupon:{c1}:meta"; /* 16 bytes + NUL */

        assert_int_equal(cpn_campaign_key(buf, 17, "c1", "meta"), 16);
        assert_string_equal(buf, want);
        for (size_t n = 0; n < 17; n++) {
                memset(buf, 'X', sizeof(buf));
                assert_int_equal(cpn_campaign_key(buf, n, "c1", "meta"), -ENOBUFS);
                /* never writes past n */
                assert_int_equal(buf[n], 'X');
        }
}

/* ---- the Kafka message value ---- */

static void test_issuance_json(void **state) {
        struct cpn_issuance iss = { .campaign_id = "spring-2026", .user_id = "u-42", .seq = 17,
                                    .issued_at_ms = T_2026_11_21_10 };
        const char *want = "{\"campaign_id\":\"spring-2026\",\"user_id\":\"u-42\",\"seq\":17,"
                           "\"issued_at\":\"2026-11-21T10:00:00Z\"}";
        char buf[256];
        int len = (int)strlen(want);

        assert_int_equal(cpn_issuance_json(&iss, buf, sizeof(buf)), len);
        assert_string_equal(buf, want);

        iss.issued_at_ms = T_2026_11_21_10 + 7;
        iss.seq = 100000000;
        strcpy(iss.user_id, "a.b:c");
        assert_int_equal(cpn_issuance_json(&iss, buf, sizeof(buf)),
                         (int)strlen("{\"campaign_id\":\"spring-2026\",\"user_id\":\"a.b:c\","
                                     "\"seq\":100000000,\"issued_at\":\"2026-11-21T10:00:00.007Z\"}"));
        assert_string_equal(buf, "{\"campaign_id\":\"spring-2026\",\"user_id\":\"a.b:c\","
                                 "\"seq\":100000000,\"issued_at\":\"2026-11-21T10:00:00.007Z\"}");
}

static void test_issuance_json_nobufs(void **state) {
        struct cpn_issuance iss = { .campaign_id = "c", .user_id = "u", .seq = 1,
                                    .issued_at_ms = 0 };
        char buf[128];
        int len = cpn_issuance_json(&iss, buf, sizeof(buf));

        assert_true(len > 0);
        assert_int_equal(cpn_issuance_json(&iss, buf, (size_t)len + 1), len);
        assert_int_equal(cpn_issuance_json(&iss, buf, (size_t)len), -ENOBUFS);
        assert_int_equal(cpn_issuance_json(&iss, buf, 1), -ENOBUFS);
}

/* ---- phases ---- */

static enum cpn_campaign_phase phase_at(int64_t now, int64_t issued, int64_t total,
                                        int64_t starts, int64_t ends) {
        struct cpn_campaign_state st = { 0 };

        st.c.total = total;
        st.c.starts_at_ms = starts;
        st.c.ends_at_ms = ends;
        st.issued = issued;
        st.now_ms = now;
        return cpn_campaign_phase(&st);
}

static void test_phase(void **state) {
        const int64_t s = T_2026_11_21_10, e = T_2026_11_21_10 + 3600000;

        assert_int_equal(phase_at(s - 1, 0, 10, s, e), CPN_PHASE_SCHEDULED);
        assert_int_equal(phase_at(0, 0, 10, s, e), CPN_PHASE_SCHEDULED);
        assert_int_equal(phase_at(s, 0, 10, s, e), CPN_PHASE_OPEN);      /* now == starts_at */
        assert_int_equal(phase_at(s + 1, 9, 10, s, e), CPN_PHASE_OPEN);
        assert_int_equal(phase_at(e - 1, 0, 10, s, e), CPN_PHASE_OPEN);
        assert_int_equal(phase_at(e, 0, 10, s, e), CPN_PHASE_ENDED);     /* now == ends_at */
        assert_int_equal(phase_at(e + 1, 0, 10, s, e), CPN_PHASE_ENDED);
        assert_int_equal(phase_at(s, 10, 10, s, e), CPN_PHASE_SOLD_OUT);
        assert_int_equal(phase_at(e - 1, 10, 10, s, e), CPN_PHASE_SOLD_OUT);
        assert_int_equal(phase_at(s + 5, 11, 10, s, e), CPN_PHASE_SOLD_OUT);
        /* sold out but past the end: ended; before the start: scheduled */
        assert_int_equal(phase_at(e, 10, 10, s, e), CPN_PHASE_ENDED);
        assert_int_equal(phase_at(s - 1, 10, 10, s, e), CPN_PHASE_SCHEDULED);
        /* never ends */
        assert_int_equal(phase_at(INT64_MAX - 1, 0, 10, s, CPN_TIME_NEVER), CPN_PHASE_OPEN);
        assert_int_equal(phase_at(s, 1, 1, s, CPN_TIME_NEVER), CPN_PHASE_SOLD_OUT);
}

static void test_phase_names(void **state) {
        assert_string_equal(cpn_campaign_phase_name(CPN_PHASE_SCHEDULED), "scheduled");
        assert_string_equal(cpn_campaign_phase_name(CPN_PHASE_OPEN), "open");
        assert_string_equal(cpn_campaign_phase_name(CPN_PHASE_SOLD_OUT), "sold_out");
        assert_string_equal(cpn_campaign_phase_name(CPN_PHASE_ENDED), "ended");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf8_valid),
                cmocka_unit_test(test_key_names),
                cmocka_unit_test(test_key_nobufs),
                cmocka_unit_test(test_issuance_json),
                cmocka_unit_test(test_issuance_json_nobufs),
                cmocka_unit_test(test_phase),
                cmocka_unit_test(test_phase_names),
                cmocka_unit_test(test_utf8_invalid),
                cmocka_unit_test(test_issue_valid),
                cmocka_unit_test(test_issue_explicit_length),
                cmocka_unit_test(test_issue_id_length),
                cmocka_unit_test(test_issue_bad_members),
                cmocka_unit_test(test_issue_member_in_message),
                cmocka_unit_test(test_member_in_message_utf8),
                cmocka_unit_test(test_issue_wrong_types),
                cmocka_unit_test(test_issue_bad_strings),
                cmocka_unit_test(test_issue_bad_ids),
                cmocka_unit_test(test_issue_malformed),
                cmocka_unit_test(test_nesting_depth),
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
                cmocka_unit_test(test_parse_issuance_valid),
                cmocka_unit_test(test_parse_issuance_member_order_and_space),
                cmocka_unit_test(test_parse_issuance_unknown_members),
                cmocka_unit_test(test_parse_issuance_seq_bounds),
                cmocka_unit_test(test_parse_issuance_seq_negative),
                cmocka_unit_test(test_parse_issuance_seq_fraction),
                cmocka_unit_test(test_parse_issuance_seq_exponent),
                cmocka_unit_test(test_parse_issuance_seq_among_other_numbers),
                cmocka_unit_test(test_parse_issuance_seq_leading_zero),
                cmocka_unit_test(test_parse_issuance_seq_too_large),
                cmocka_unit_test(test_parse_issuance_seq_wrong_type),
                cmocka_unit_test(test_parse_issuance_campaign_id),
                cmocka_unit_test(test_parse_issuance_user_id),
                cmocka_unit_test(test_parse_issuance_id_wrong_types),
                cmocka_unit_test(test_parse_issuance_missing_fields),
                cmocka_unit_test(test_parse_issuance_issued_at),
                cmocka_unit_test(test_parse_issuance_duplicates),
                cmocka_unit_test(test_parse_issuance_many_members),
                cmocka_unit_test(test_parse_issuance_trailing_garbage),
                cmocka_unit_test(test_parse_issuance_invalid_utf8),
                cmocka_unit_test(test_parse_issuance_nul_bytes),
                cmocka_unit_test(test_parse_issuance_escaped_nul),
                cmocka_unit_test(test_parse_issuance_empty),
                cmocka_unit_test(test_parse_issuance_not_object),
                cmocka_unit_test(test_parse_issuance_bad_syntax),
                cmocka_unit_test(test_parse_issuance_truncated),
                cmocka_unit_test(test_parse_issuance_explicit_length),
                cmocka_unit_test(test_parse_issuance_keeps_ids_bad_seq),
                cmocka_unit_test(test_parse_issuance_keeps_ids_bad_time),
                cmocka_unit_test(test_parse_issuance_keeps_ids_one_bad),
                cmocka_unit_test(test_parse_issuance_no_stale_output),
                cmocka_unit_test(test_parse_issuance_messages),
                cmocka_unit_test(test_parse_issuance_err_null),
                cmocka_unit_test(test_parse_issuance_round_trip),
                cmocka_unit_test(test_parse_issuance_round_trip_ms),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
