/*
 * Unit tests of src/common/json.c as a shared layer: the strict object and
 * its typed getters, which every product's parser is built on (the
 * products' own tests go through their parsers: test-campaign.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cpn/error.h"
#include "cpn/json.h"

static int parse(struct cpn_json *o, const char *body, const char *const *known) {
        struct cpn_error err = { { 0 } };
        int r = cpn_json_object(o, body, strlen(body), known, &err);

        if (r)
                assert_true(err.msg[0] != '\0');
        return r;
}

static void test_object_refusals(void **state) {
        static const char *const known[] = { "a", "b", NULL };
        static const char *const bad[] = {
                "", "[]", "\"x\"", "1", "null", "{", "{\"a\":1", "{\"a\":1}x", "{\"a\":1}{}",
                "{\"a\":1,\"a\":2}", "{\"c\":1}", "{\"a\":\"\\u0000\"}", "{\"a\":01}", "{\"a\":\"\xff\"}",
                "{\"a\":[[[[[[[[[1]]]]]]]]]}",
        };
        struct cpn_json o;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                int r = parse(&o, bad[i], known);

                if (r != CPN_INVALID)
                        fail_msg("accepted %s (%d)", bad[i], r);
        }
        /* Unknown members pass without a list, duplicates never do. */
        assert_int_equal(parse(&o, "{\"c\":1}", NULL), 0);
        cpn_json_clear(&o);
        cpn_json_clear(&o);
        assert_int_equal(parse(&o, "{\"c\":1,\"d\":2,\"c\":3}", NULL), CPN_INVALID);
        /* A NUL byte inside the given length is refused, not a terminator. */
        assert_int_equal(cpn_json_object(&o, "{\"a\":1}\0", 8, known, NULL), CPN_INVALID);
}

static void test_strings(void **state) {
        static const char *const known[] = { "s", "n", "z", NULL };
        struct cpn_json o;
        const char *s = NULL;
        size_t len = 0;

        (void)state;
        assert_int_equal(parse(&o, " {\"s\":\"h\\u00e9\\\"\",\"n\":1,\"z\":null} \n", known), 0);
        assert_int_equal(cpn_json_string(&o, "s", &s, &len), 0);
        assert_string_equal(s, "h\xc3\xa9\"");
        assert_int_equal(len, 4);
        assert_int_equal(cpn_json_string(&o, "s", &s, NULL), 0);
        assert_int_equal(cpn_json_string(&o, "n", &s, &len), CPN_INVALID);
        assert_int_equal(cpn_json_string(&o, "z", &s, &len), CPN_JSON_ABSENT);
        assert_int_equal(cpn_json_string(&o, "missing", &s, &len), CPN_JSON_ABSENT);
        assert_int_equal(cpn_json_string(&o, "S", &s, &len), CPN_JSON_ABSENT); /* case matters */
        cpn_json_clear(&o);
}

static void test_ints(void **state) {
        struct cpn_json o;
        int64_t v = -7;

        (void)state;
        assert_int_equal(parse(&o, "{\"a\":0,\"b\":-5,\"c\":1000000000000,\"d\":1.5,\"e\":1e3,"
                                   "\"f\":\"1\",\"g\":true,\"h\":9007199254740993,\"i\":2.0}", NULL), 0);
        assert_int_equal(cpn_json_int(&o, "a", 0, 10, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(cpn_json_int(&o, "a", 1, 10, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "b", -5, -5, &v), 0);
        assert_int_equal(v, -5);
        assert_int_equal(cpn_json_int(&o, "c", 1, 1000000000000LL, &v), 0);
        assert_int_equal(v, 1000000000000LL);
        assert_int_equal(cpn_json_int(&o, "c", 1, 999999999999LL, &v), CPN_INVALID);
        /* Written with a fraction or an exponent: not an integer, whatever its value. */
        assert_int_equal(cpn_json_int(&o, "d", 0, 10, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "e", 0, 100000, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "i", 0, 10, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "f", 0, 10, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "g", 0, 10, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "h", 0, 1000000000000LL, &v), CPN_INVALID);
        assert_int_equal(cpn_json_int(&o, "x", 0, 10, &v), CPN_JSON_ABSENT);
        cpn_json_clear(&o);
        /* Other numbers' notation does not spoil an integer member. */
        assert_int_equal(parse(&o, "{\"x\":1.25,\"a\":7,\"y\":2e2}", NULL), 0);
        assert_int_equal(cpn_json_int(&o, "a", 0, 10, &v), 0);
        assert_int_equal(v, 7);
        cpn_json_clear(&o);
}

static void test_times(void **state) {
        struct cpn_json o;
        int64_t ms = 0;

        (void)state;
        assert_int_equal(parse(&o, "{\"t\":\"2026-11-21T10:00:00Z\",\"u\":\"yesterday\",\"v\":5,\"w\":null}",
                               NULL), 0);
        assert_int_equal(cpn_json_time(&o, "t", &ms), 0);
        assert_int_equal(ms, 1795255200000LL);
        assert_int_equal(cpn_json_time(&o, "u", &ms), CPN_INVALID);
        assert_int_equal(cpn_json_time(&o, "v", &ms), CPN_INVALID);
        assert_int_equal(cpn_json_time(&o, "w", &ms), CPN_JSON_ABSENT);
        cpn_json_clear(&o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_object_refusals),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_ints),
                cmocka_unit_test(test_times),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
