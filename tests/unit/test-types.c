/*
 * Unit tests of src/common/types.c: identifier grammars, RFC 3339 times,
 * Redis key names, the Kafka message value and campaign phases.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cpn/types.h"

/* 2026-11-21T10:00:00Z, computed independently (python calendar.timegm). */
#define T_2026_11_21_10 1795255200000LL

static bool cid(const char *s) {
        return cpn_id_valid(s, strlen(s));
}

static bool uid(const char *s) {
        return cpn_user_id_valid(s, strlen(s));
}

/* ---- identifiers ---- */

static void test_id_lengths(void **state) {
        char buf[CPN_ID_MAX + 2];

        memset(buf, 'a', sizeof(buf));
        /* length 0: both as "" and as a non-empty buffer with len 0 */
        assert_false(cpn_id_valid("", 0));
        assert_false(cpn_id_valid("abc", 0));
        assert_false(cpn_user_id_valid("", 0));
        assert_false(cpn_user_id_valid("abc", 0));
        assert_true(cpn_id_valid(buf, 1));
        assert_true(cpn_user_id_valid(buf, 1));
        assert_true(cpn_id_valid(buf, 64));
        assert_true(cpn_user_id_valid(buf, 64));
        assert_false(cpn_id_valid(buf, 65));
        assert_false(cpn_user_id_valid(buf, 65));
        assert_false(cpn_id_valid(buf, 66));
        assert_false(cpn_user_id_valid(buf, 66));
}

static void test_id_explicit_length(void **state) {
        /* Only the first @len bytes count: the forbidden '/' lies beyond. */
        assert_true(cpn_id_valid("abc/def", 3));
        assert_false(cpn_id_valid("abc/def", 4));
        assert_true(cpn_user_id_valid("u-1 x", 3));
        assert_false(cpn_user_id_valid("u-1 x", 4));
        /* An embedded NUL is a forbidden byte, not a terminator. */
        assert_false(cpn_id_valid("ab\0cd", 5));
        assert_false(cpn_user_id_valid("ab\0cd", 5));
        assert_false(cpn_id_valid("\0", 1));
        assert_false(cpn_user_id_valid("\0", 1));
        assert_false(cpn_id_valid("abc\0", 4));
        assert_false(cpn_user_id_valid("abc\0", 4));
}

static void test_id_char_classes(void **state) {
        assert_true(cid("abcdefghijklmnopqrstuvwxyz"));
        assert_true(cid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        assert_true(cid("0123456789"));
        assert_true(cid("_"));
        assert_true(cid("-"));
        assert_true(cid("spring-2026_A"));
        assert_true(uid("abcdefghijklmnopqrstuvwxyz"));
        assert_true(uid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        assert_true(uid("0123456789"));
        assert_true(uid("_"));
        assert_true(uid("-"));
        assert_true(uid("."));
        assert_true(uid(":"));
        assert_true(uid("u-42.a:b_C"));
}

static void test_id_forbidden(void **state) {
        static const char *const both[] = {
                "a/b", "a b", " ", "a%20b", "%", "a@b", "a+b", "a~b", "a\tb", "a\nb", "a\"b",
                "a\\b", "a?b", "a#b", "a{b", "a}b", "a,b", "a=b", "a*b",
                "caf\xc3\xa9",     /* UTF-8 é */
                "\xe2\x82\xac",    /* UTF-8 € */
                "a\x80", "a\xff", "a\x7f",
        };

        for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
                if (cid(both[i]) || uid(both[i]))
                        fail_msg("id \"%s\" (#%zu) accepted", both[i], i);
        }
        /* '.' and ':' are user-id characters only */
        assert_false(cid("a.b"));
        assert_false(cid("a:b"));
        assert_false(cid("."));
        assert_false(cid(".."));
        assert_false(cid(":"));
        assert_true(uid("a.b"));
        assert_true(uid("a:b"));
}

static void test_id_every_byte(void **state) {
        int campaign_ok = 0, user_ok = 0;

        for (int c = 0; c < 256; c++) {
                char s[3] = { 'a', (char)c, 'z' };
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                bool cexp = alnum || c == '_' || c == '-';
                bool uexp = cexp || c == '.' || c == ':';

                if (cpn_id_valid(s, 3) != cexp)
                        fail_msg("campaign id with byte 0x%02x: expected %d", c, cexp);
                if (cpn_user_id_valid(s, 3) != uexp)
                        fail_msg("user id with byte 0x%02x: expected %d", c, uexp);
                campaign_ok += cexp;
                user_ok += uexp;
        }
        assert_int_equal(campaign_ok, 64);
        assert_int_equal(user_ok, 66);
}

/* ---- times ---- */

static void assert_time(const char *s, int64_t want) {
        int64_t ms = -42;
        int r = cpn_time_parse(s, &ms);

        if (r != 0)
                fail_msg("cpn_time_parse(\"%s\") = %d, expected 0", s, r);
        if (ms != want)
                fail_msg("cpn_time_parse(\"%s\") = %lld ms, expected %lld", s, (long long)ms,
                         (long long)want);
}

static void assert_time_bad(const char *s) {
        int64_t ms = 0;
        int r = cpn_time_parse(s, &ms);

        if (r != -EINVAL)
                fail_msg("cpn_time_parse(\"%s\") = %d (ms %lld), expected -EINVAL", s, r,
                         (long long)ms);
}

static void test_time_parse_basic(void **state) {
        assert_time("2026-11-21T10:00:00Z", T_2026_11_21_10);
        assert_time("2026-11-21t10:00:00z", T_2026_11_21_10);
        assert_time("2026-11-21T10:00:00z", T_2026_11_21_10);
        assert_time("1970-01-01T00:00:00Z", 0);
        assert_time("2000-03-01T00:00:00Z", 951868800000LL);
        assert_time("2026-01-01T00:00:00Z", 1767225600000LL);
        assert_time("9999-12-31T23:59:59Z", 253402300799000LL);
        assert_time("2026-11-21T10:00:01Z", T_2026_11_21_10 + 1000);
        assert_time("2026-11-21T10:01:00Z", T_2026_11_21_10 + 60000);
}

static void test_time_parse_fraction(void **state) {
        assert_time("2026-11-21T10:00:00.1Z", T_2026_11_21_10 + 100);
        assert_time("2026-11-21T10:00:00.12Z", T_2026_11_21_10 + 120);
        assert_time("2026-11-21T10:00:00.123Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.1234Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.12345Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.123456Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.1234567Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.12345678Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.123456789Z", T_2026_11_21_10 + 123);
        assert_time("2026-11-21T10:00:00.999999999Z", T_2026_11_21_10 + 999);
        assert_time("2026-11-21T10:00:00.000Z", T_2026_11_21_10);
        assert_time("2026-11-21T10:00:00.001Z", T_2026_11_21_10 + 1);
        assert_time("2026-11-21T10:00:00.5+01:00", T_2026_11_21_10 - 3600000 + 500);
        assert_time_bad("2026-11-21T10:00:00.1234567890Z"); /* 10 digits */
        assert_time_bad("2026-11-21T10:00:00.Z");
        assert_time_bad("2026-11-21T10:00:00.");
        assert_time_bad("2026-11-21T10:00:00.12a3Z");
        assert_time_bad("2026-11-21T10:00:00,123Z");
}

static void test_time_parse_offsets(void **state) {
        assert_time("2026-11-21T12:00:00+02:00", T_2026_11_21_10);
        assert_time("2026-11-21T05:30:00-04:30", T_2026_11_21_10);
        assert_time("2026-11-21T10:00:00+00:00", T_2026_11_21_10);
        assert_time("2026-11-21T10:00:00-00:00", T_2026_11_21_10);
        assert_time("2026-11-22T09:59:00+23:59", T_2026_11_21_10);
        assert_time("2026-11-20T10:01:00-23:59", T_2026_11_21_10);
        assert_time("1970-01-01T01:00:00+01:00", 0);
        assert_time_bad("2026-11-21T10:00:00+24:00");
        assert_time_bad("2026-11-21T10:00:00+02:60");
        assert_time_bad("2026-11-21T10:00:00+0200");
        assert_time_bad("2026-11-21T10:00:00+02");
        assert_time_bad("2026-11-21T10:00:00+2:00");
        assert_time_bad("2026-11-21T10:00:00+");
        assert_time_bad("2026-11-21T10:00:00Z+02:00");
        assert_time_bad("2026-11-21T10:00:00 +02:00");
}

static void test_time_parse_calendar(void **state) {
        assert_time("2024-02-29T00:00:00Z", 1709164800000LL);
        assert_time("2000-02-29T00:00:00Z", 951782400000LL);
        assert_time("2026-12-31T23:59:59Z", 1798761599000LL);
        assert_time_bad("2023-02-29T00:00:00Z");
        assert_time_bad("2100-02-29T00:00:00Z"); /* divisible by 100, not by 400 */
        assert_time_bad("2024-02-30T00:00:00Z");
        assert_time_bad("2026-04-31T00:00:00Z");
        assert_time_bad("2026-13-01T00:00:00Z");
        assert_time_bad("2026-00-01T00:00:00Z");
        assert_time_bad("2026-01-00T00:00:00Z");
        assert_time_bad("2026-01-32T00:00:00Z");
        assert_time_bad("2026-11-21T24:00:00Z");
        assert_time_bad("2026-11-21T10:60:00Z");
        assert_time_bad("2026-11-21T10:00:61Z");
        /* RFC 3339 leap second: counted as :59 */
        assert_time("2026-12-31T23:59:60Z", 1798761599000LL);
}

static void test_time_parse_syntax(void **state) {
        assert_time_bad("");
        assert_time_bad("2026-11-21");
        assert_time_bad("2026-11-21T10:00:00");     /* no zone */
        assert_time_bad("2026-11-21 10:00:00Z");    /* missing 'T' */
        assert_time_bad("2026-11-2110:00:00Z");
        assert_time_bad("2026-11-21X10:00:00Z");
        assert_time_bad("2026-11-21T10:00:00Zx");   /* trailing garbage */
        assert_time_bad("2026-11-21T10:00:00Z ");
        assert_time_bad("2026-11-21T10:00:00+02:00x");
        assert_time_bad(" 2026-11-21T10:00:00Z");
        assert_time_bad("2026-1-21T10:00:00Z");
        assert_time_bad("2026-11-21T1:00:00Z");
        assert_time_bad("2026-11-21T10:00Z");
        assert_time_bad("26-11-21T10:00:00Z");
        assert_time_bad("12026-11-21T10:00:00Z");
        assert_time_bad("+2026-11-21T10:00:00Z");
        assert_time_bad("2026/11/21T10:00:00Z");
        assert_time_bad("tomorrow");
        assert_time_bad("1795255200000");
}

static void test_time_parse_before_epoch(void **state) {
        assert_time_bad("1969-12-31T23:59:59Z");
        assert_time_bad("1969-12-31T23:59:59.999Z");
        assert_time_bad("0000-01-01T00:00:00Z");
        assert_time_bad("1970-01-01T00:30:00+01:00"); /* 1969-12-31T23:30:00Z */
        assert_time_bad("1970-01-01T00:59:59.999+01:00");
}

/* A negative offset can carry the last day of 9999 into year 10000, which
 * cpn_time_format writes with five digits that RFC 3339 and this parser
 * refuse (and MySQL's DATETIME cannot store): a campaign's view did not
 * post back, a decoded message did not re-encode (found by the invariants
 * of tests/fuzz/, reproducers in tests/fuzz/regressions/). */
static void test_time_parse_after_9999(void **state) {
        assert_time("9999-12-31T23:59:59.999Z", 253402300799999LL);
        assert_time("9999-12-31T23:59:59.999+00:01", 253402300739999LL);
        assert_time("9999-12-31T23:59:59.999-00:00", 253402300799999LL);
        assert_time("9999-12-31T22:59:59.999-01:00", 253402300799999LL);
        assert_time_bad("9999-12-31T23:59:59-00:01");          /* 10000-01-01T00:00:59Z */
        assert_time_bad("9999-12-31T23:59:59.999-23:59");
        assert_time_bad("9999-12-31T23:00:00.000-01:00");      /* exactly year 10000 */
        assert_time_bad("9999-12-31T23:59:60.999-00:01");
}

static void test_time_format(void **state) {
        char buf[32];

        assert_string_equal(cpn_time_format(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
        assert_ptr_equal(cpn_time_format(0, buf, sizeof(buf)), buf);
        assert_string_equal(cpn_time_format(T_2026_11_21_10, buf, sizeof(buf)), "2026-11-21T10:00:00Z");
        assert_string_equal(cpn_time_format(T_2026_11_21_10 + 123, buf, sizeof(buf)),
                            "2026-11-21T10:00:00.123Z");
        assert_string_equal(cpn_time_format(T_2026_11_21_10 + 5, buf, sizeof(buf)),
                            "2026-11-21T10:00:00.005Z");
        assert_string_equal(cpn_time_format(T_2026_11_21_10 + 50, buf, sizeof(buf)),
                            "2026-11-21T10:00:00.050Z");
        assert_string_equal(cpn_time_format(1709164800000LL, buf, sizeof(buf)), "2024-02-29T00:00:00Z");
        assert_string_equal(cpn_time_format(253402300799999LL, buf, sizeof(buf)),
                            "9999-12-31T23:59:59.999Z");
}

static void test_time_round_trip(void **state) {
        static const int64_t values[] = {
                0, 1, 999, 1000, 1001, T_2026_11_21_10, T_2026_11_21_10 + 1, T_2026_11_21_10 + 10,
                T_2026_11_21_10 + 100, T_2026_11_21_10 + 999, 951782400000LL, 1709164800000LL,
                1798761599999LL, 253402300799000LL, 253402300799999LL,
        };
        static const char *const strings[] = {
                "2026-11-21T10:00:00Z", "2026-11-21T10:00:00.123Z", "2026-11-21T10:00:00.001Z",
                "2024-02-29T23:59:59.999Z", "1970-01-01T00:00:00.001Z",
        };
        char buf[32];

        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                int64_t ms = -1;

                cpn_time_format(values[i], buf, sizeof(buf));
                if (cpn_time_parse(buf, &ms) != 0 || ms != values[i])
                        fail_msg("round trip of %lld via \"%s\" gave %lld", (long long)values[i], buf,
                                 (long long)ms);
        }
        for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
                int64_t ms = -1;

                assert_int_equal(cpn_time_parse(strings[i], &ms), 0);
                assert_string_equal(cpn_time_format(ms, buf, sizeof(buf)), strings[i]);
        }
        /* A spread of values, each millisecond pattern. */
        for (int64_t ms0 = 0; ms0 < 253402300799999LL; ms0 += 9876543210987LL) {
                int64_t ms = -1;

                cpn_time_format(ms0, buf, sizeof(buf));
                assert_int_equal(cpn_time_parse(buf, &ms), 0);
                assert_true(ms == ms0);
        }
}

static void test_time_now(void **state) {
        int64_t now = cpn_time_now_ms();
        int64_t a = cpn_mono_ms(), b;

        /* After 2020 and before 2200: a wall clock in milliseconds. */
        assert_true(now > 1577836800000LL);
        assert_true(now < 7258118400000LL);
        b = cpn_mono_ms();
        assert_true(b >= a);
        assert_true(cpn_mono_ns() >= (uint64_t)a * 1000000u);
}

/* ---- key names ---- */

static void test_uuid_v4(void **state) {
        char a[37], b[37];
        int seen[16] = { 0 };

        for (int i = 0; i < 2000; i++) {
                assert_int_equal(cpn_uuid_v4(a), 0);
                assert_int_equal(strlen(a), 36);
                assert_true(cpn_uuid_valid(a, 36));
                assert_int_equal(a[14], '4');
                assert_non_null(strchr("89ab", a[19]));
                seen[a[19] <= '9' ? a[19] - '0' : a[19] - 'a' + 10]++;
        }
        /* all four variant digits turn up, roughly equally */
        for (int v = 8; v < 12; v++)
                assert_in_range(seen[v], 350, 650);
        assert_int_equal(cpn_uuid_v4(b), 0);
        assert_string_not_equal(a, b);
        assert_true(cpn_uuid_valid("00000000-0000-0000-0000-000000000000", 36));
        assert_false(cpn_uuid_valid("00000000-0000-0000-0000-00000000000A", 36));
        assert_false(cpn_uuid_valid("00000000-0000-0000-0000-0000000000000", 37));
        assert_false(cpn_uuid_valid("00000000_0000-0000-0000-000000000000", 36));
        assert_false(cpn_uuid_valid("000000000000-0000-0000-0000-00000000", 36));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_id_lengths),
                cmocka_unit_test(test_id_explicit_length),
                cmocka_unit_test(test_id_char_classes),
                cmocka_unit_test(test_id_forbidden),
                cmocka_unit_test(test_id_every_byte),
                cmocka_unit_test(test_time_parse_basic),
                cmocka_unit_test(test_time_parse_fraction),
                cmocka_unit_test(test_time_parse_offsets),
                cmocka_unit_test(test_time_parse_calendar),
                cmocka_unit_test(test_time_parse_syntax),
                cmocka_unit_test(test_time_parse_before_epoch),
                cmocka_unit_test(test_time_parse_after_9999),
                cmocka_unit_test(test_time_format),
                cmocka_unit_test(test_time_round_trip),
                cmocka_unit_test(test_time_now),
                cmocka_unit_test(test_uuid_v4),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
