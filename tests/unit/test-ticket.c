/*
 * Unit tests of src/ticket/ticket.c: the ticket product's request bodies,
 * answers, phases, statuses and key names.
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

#include "cpn/ticket/ticket.h"

#define NOW 1795255200000LL /* 2026-11-21T10:00:00Z */

static int parse(const char *body, struct cpn_ticket_type *t, struct cpn_error *err) {
        return cpn_ticket_type_parse(body, strlen(body), NOW, t, err);
}

static void test_type_parse_full(void **state) {
        struct cpn_error err = { { 0 } };
        struct cpn_ticket_type t;

        assert_int_equal(parse("{\"id\":\"concert-a\",\"name\":\"Concert A, floor\",\"price\":55000,"
                               "\"currency\":\"KRW\",\"total\":500,\"hold_seconds\":600,"
                               "\"starts_at\":\"2026-11-21T12:00:00Z\",\"ends_at\":\"2026-11-22T00:00:00Z\"}",
                               &t, &err),
                         0);
        assert_string_equal(t.id, "concert-a");
        assert_string_equal(t.name, "Concert A, floor");
        assert_int_equal(t.price, 55000);
        assert_string_equal(t.currency, "KRW");
        assert_int_equal(t.total, 500);
        assert_int_equal(t.hold_s, 600);
        assert_int_equal(t.starts_at_ms, NOW + 2 * 3600 * 1000);
        assert_int_equal(t.ends_at_ms, NOW + 14 * 3600 * 1000);
        assert_false(t.starts_now);
}

static void test_type_parse_defaults(void **state) {
        struct cpn_ticket_type t;

        assert_int_equal(parse("{\"id\":\"a\",\"name\":\"A\",\"price\":0,\"currency\":\"USD\",\"total\":1}", &t,
                               NULL),
                         0);
        assert_int_equal(t.hold_s, CPN_HOLD_DEFAULT_S);
        assert_int_equal(t.starts_at_ms, NOW);
        assert_true(t.starts_now);
        assert_int_equal(t.ends_at_ms, CPN_TIME_NEVER);
        assert_int_equal(parse("{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"USD\",\"total\":1,"
                               "\"hold_seconds\":null,\"starts_at\":null,\"ends_at\":null}",
                               &t, NULL),
                         0);
        assert_int_equal(t.hold_s, CPN_HOLD_DEFAULT_S);
        assert_int_equal(parse("{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"USD\",\"total\":10000000,"
                               "\"hold_seconds\":10}",
                               &t, NULL),
                         0);
        assert_int_equal(parse("{\"id\":\"a\",\"name\":\"A\",\"price\":1000000000000,\"currency\":\"USD\","
                               "\"total\":1,\"hold_seconds\":86400}",
                               &t, NULL),
                         0);
}

static void test_type_parse_refused(void **state) {
        static const char *const bad[] = {
                "",
                "[]",
                "{}",
                "{\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a.b\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"price\":1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"\",\"price\":1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\\u0007\",\"price\":1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":-1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1.5,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":\"1\",\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1000000000001,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"krw\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRWX\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"K1W\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":0}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":10000001}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1,\"hold_seconds\":9}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1,\"hold_seconds\":86401}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1,\"hold_seconds\":\"600\"}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1,\"starts_at\":\"tomorrow\"}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1,"
                "\"ends_at\":\"2026-11-21T10:00:00Z\"}", /* not after the default start (now) */
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1,\"colour\":\"red\"}",
                "{\"id\":\"a\",\"id\":\"b\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1}",
                "{\"id\":\"a\",\"name\":\"A\",\"price\":1,\"currency\":\"KRW\",\"total\":1} x",
        };
        struct cpn_ticket_type t;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct cpn_error err = { { 0 } };

                if (parse(bad[i], &t, &err) != CPN_INVALID)
                        fail_msg("accepted: %s", bad[i]);
                if (!err.msg[0])
                        fail_msg("no reason for: %s", bad[i]);
        }
}

static void test_type_same(void **state) {
        struct cpn_ticket_type a, b;

        assert_int_equal(parse("{\"id\":\"a\",\"name\":\"A\",\"price\":5,\"currency\":\"KRW\",\"total\":3,"
                               "\"starts_at\":\"2026-11-21T12:00:00Z\"}",
                               &a, NULL),
                         0);
        b = a;
        assert_true(cpn_ticket_type_same(&a, &b));
        b.starts_at_ms++;
        assert_false(cpn_ticket_type_same(&a, &b));
        b.starts_now = true; /* a create without starts_at matches any stored start */
        assert_true(cpn_ticket_type_same(&a, &b));
        b = a;
        b.price++;
        assert_false(cpn_ticket_type_same(&a, &b));
        b = a;
        b.hold_s = 11;
        assert_false(cpn_ticket_type_same(&a, &b));
        b = a;
        strcpy(b.currency, "USD");
        assert_false(cpn_ticket_type_same(&a, &b));
}

static cJSON *json_of(const char *s) {
        cJSON *j = cJSON_Parse(s);

        if (!j)
                fail_msg("not JSON: %s", s);
        return j;
}

static void test_type_json(void **state) {
        struct cpn_ticket_type_state st = { .now_ms = NOW };
        char buf[2048];
        cJSON *j;

        assert_int_equal(parse("{\"id\":\"concert-a\",\"name\":\"Concert \\\"A\\\"\",\"price\":55000,"
                               "\"currency\":\"KRW\",\"total\":500}",
                               &st.t, NULL),
                         0);
        st.held = 20;
        st.sold = 30;
        assert_true(cpn_ticket_type_json(buf, sizeof(buf), &st) > 0);
        j = json_of(buf);
        assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "Concert \"A\"");
        assert_int_equal(cJSON_GetObjectItem(j, "available")->valueint, 450);
        assert_int_equal(cJSON_GetObjectItem(j, "held")->valueint, 20);
        assert_int_equal(cJSON_GetObjectItem(j, "sold")->valueint, 30);
        assert_int_equal(cJSON_GetObjectItem(j, "price")->valueint, 55000);
        assert_int_equal(cJSON_GetObjectItem(j, "hold_seconds")->valueint, 600);
        assert_string_equal(cJSON_GetObjectItem(j, "starts_at")->valuestring, "2026-11-21T10:00:00Z");
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "ends_at")));
        assert_string_equal(cJSON_GetObjectItem(j, "state")->valuestring, "open");
        assert_int_equal(cJSON_GetArraySize(j), 12);
        cJSON_Delete(j);
        /* phases */
        st.held = 470;
        assert_int_equal(cpn_ticket_type_phase(&st), CPN_TICKET_SOLD_OUT_PHASE);
        st.held = 0;
        st.now_ms = NOW - 1;
        assert_int_equal(cpn_ticket_type_phase(&st), CPN_TICKET_SCHEDULED);
        st.t.ends_at_ms = NOW + 10;
        st.now_ms = NOW + 10;
        assert_int_equal(cpn_ticket_type_phase(&st), CPN_TICKET_ENDED);
        assert_int_equal(cpn_ticket_type_json(buf, 50, &st), -ENOBUFS);
}

static void test_reserve_and_payment_bodies(void **state) {
        char user[CPN_ID_MAX + 1], key[CPN_PAYMENT_KEY_MAX + 1], big[400];
        int64_t amount;

        assert_int_equal(cpn_ticket_parse_reserve("{\"user_id\":\"u-42\"}", 18, user, NULL), 0);
        assert_string_equal(user, "u-42");
        assert_int_equal(cpn_ticket_parse_reserve("{\"user_id\":\"u 42\"}", 18, user, NULL), CPN_INVALID);
        assert_int_equal(cpn_ticket_parse_reserve("{\"user\":\"u\"}", 12, user, NULL), CPN_INVALID);
#define PAY(s) cpn_ticket_parse_payment(s, strlen(s), key, &amount, NULL)
        assert_int_equal(PAY("{\"payment_key\":\"pk_1.a:b-c\",\"amount\":55000}"), 0);
        assert_string_equal(key, "pk_1.a:b-c");
        assert_int_equal(amount, 55000);
        assert_int_equal(PAY("{\"payment_key\":\"\",\"amount\":1}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":\"a b\",\"amount\":1}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":\"a/b\",\"amount\":1}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":\"a\"}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":\"a\",\"amount\":-1}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":\"a\",\"amount\":1.0}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":\"a\",\"amount\":1,\"currency\":\"KRW\"}"), CPN_INVALID);
        assert_int_equal(PAY("{\"payment_key\":7,\"amount\":1}"), CPN_INVALID);
        /* 200 characters fit, 201 do not */
        memset(big, 'k', sizeof(big));
        snprintf(big, sizeof(big), "{\"payment_key\":\"%.*s\",\"amount\":1}", 200,
                 "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                 "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
        assert_int_equal(PAY(big), 0);
        assert_int_equal(strlen(key), 200);
        snprintf(big, sizeof(big), "{\"payment_key\":\"x%s\",\"amount\":1}", key);
        assert_int_equal(PAY(big), CPN_INVALID);
}

static void test_ticket_json(void **state) {
        struct cpn_ticket t = { .id = "0f8fad5b-d9cb-469f-a165-70867728950e", .type_id = "concert-a",
                                .user_id = "u-42", .status = CPN_TS_PENDING, .price = 55000, .currency = "KRW",
                                .expires_at_ms = NOW + 600000, .paid_at_ms = -1, .confirmed_at_ms = -1 };
        char buf[1024];
        cJSON *j;

        assert_true(cpn_ticket_json(buf, sizeof(buf), &t) > 0);
        j = json_of(buf);
        assert_string_equal(cJSON_GetObjectItem(j, "ticket_id")->valuestring, t.id);
        assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "PENDING");
        assert_string_equal(cJSON_GetObjectItem(j, "expires_at")->valuestring, "2026-11-21T10:10:00Z");
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "paid_at")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "confirmed_at")));
        assert_int_equal(cJSON_GetArraySize(j), 9);
        cJSON_Delete(j);
        t.status = CPN_TS_CONFIRMED;
        t.paid_at_ms = NOW + 1000;
        t.confirmed_at_ms = NOW + 1500;
        assert_true(cpn_ticket_json(buf, sizeof(buf), &t) > 0);
        j = json_of(buf);
        assert_string_equal(cJSON_GetObjectItem(j, "paid_at")->valuestring, "2026-11-21T10:00:01Z");
        assert_string_equal(cJSON_GetObjectItem(j, "confirmed_at")->valuestring, "2026-11-21T10:00:01.500Z");
        cJSON_Delete(j);
}

static void test_status_and_keys(void **state) {
        char key[128];

        for (int s = 0; s < _CPN_TS_N; s++)
                assert_int_equal(cpn_ticket_status_parse(cpn_ticket_status_name((enum cpn_ticket_status)s)), s);
        assert_int_equal(cpn_ticket_status_parse("pending"), -1);
        assert_int_equal(cpn_ticket_status_parse(""), -1);
        assert_string_equal(cpn_ticket_status_name(_CPN_TS_N), "UNKNOWN");
        assert_int_equal(cpn_ticket_key(key, sizeof(key), "concert-a", "meta"), 23);
        assert_string_equal(key, "ticket:{concert-a}:meta");
        assert_int_equal(cpn_ticket_key(key, 10, "concert-a", "meta"), -ENOBUFS);
        assert_true(cpn_currency_valid("KRW", 3));
        assert_false(cpn_currency_valid("KR", 2));
}

#define EVENT(extra)                                                                                   \
        "{\"v\":1,\"event_id\":\"83c6286d-fffd-4d3e-a200-d8cb692d7c31\",\"type\":\"ticket.paid\","     \
        "\"ticket_id\":\"bdb6f734-1ea4-4e5b-867c-5fd690a87aff\",\"ticket_type_id\":\"concert-a\","     \
        "\"user_id\":\"u-42\",\"amount\":55000,\"currency\":\"KRW\",\"payment_key\":\"pk_1\","          \
        "\"paid_at\":\"2026-11-21T10:00:00.250Z\"" extra "}"

static void test_event_parse(void **state) {
        struct cpn_ticket_event ev;
        struct cpn_error err = { { 0 } };
        const char *ok = EVENT(""), *newer = EVENT(",\"channel\":\"app\"");

        assert_int_equal(cpn_ticket_event_parse(ok, strlen(ok), &ev, &err), 0);
        assert_string_equal(ev.event_id, "83c6286d-fffd-4d3e-a200-d8cb692d7c31");
        assert_string_equal(ev.ticket_id, "bdb6f734-1ea4-4e5b-867c-5fd690a87aff");
        assert_string_equal(ev.type_id, "concert-a");
        assert_string_equal(ev.user_id, "u-42");
        assert_int_equal(ev.amount, 55000);
        assert_string_equal(ev.currency, "KRW");
        assert_string_equal(ev.payment_key, "pk_1");
        assert_int_equal(ev.paid_at_ms, NOW + 250);
        assert_int_equal(cpn_ticket_event_parse(newer, strlen(newer), &ev, NULL), 0); /* unknown members: fine */
        static const char *const bad[] = {
                "", "{}", "[]", "not json",
                "{\"v\":2,\"event_id\":\"83c6286d-fffd-4d3e-a200-d8cb692d7c31\"}",
                EVENT(",\"v\":1"),                 /* duplicate member */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err.msg[0] = '\0';
                if (cpn_ticket_event_parse(bad[i], strlen(bad[i]), &ev, &err) != CPN_INVALID || !err.msg[0])
                        fail_msg("accepted: %s", bad[i]);
        }
        /* each field broken in turn */
        static const char *const from[] = { "\"v\":1", "\"type\":\"ticket.paid\"", "\"event_id\":\"83c6",
                                            "\"ticket_id\":\"bdb6", "\"ticket_type_id\":\"concert-a\"",
                                            "\"user_id\":\"u-42\"", "\"amount\":55000", "\"currency\":\"KRW\"",
                                            "\"payment_key\":\"pk_1\"", "\"paid_at\":\"2026" };
        static const char *const to[] = { "\"v\":\"1\"", "\"type\":\"ticket.gone\"", "\"event_id\":\"X3c6",
                                          "\"ticket_id\":\"BDB6", "\"ticket_type_id\":\"con.cert\"",
                                          "\"user_id\":\"u 42\"", "\"amount\":-5", "\"currency\":\"krw\"",
                                          "\"payment_key\":\"pk/1\"", "\"paid_at\":\"20x6" };
        for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
                char buf[1024], *p;

                snprintf(buf, sizeof(buf), "%s", ok);
                p = strstr(buf, from[i]);
                assert_non_null(p);
                memmove(p + strlen(to[i]), p + strlen(from[i]), strlen(p + strlen(from[i])) + 1);
                memcpy(p, to[i], strlen(to[i]));
                if (cpn_ticket_event_parse(buf, strlen(buf), &ev, NULL) != CPN_INVALID)
                        fail_msg("accepted: %s", buf);
        }
        {
                char big[CPN_TICKET_EVENT_MAX + 2];

                memset(big, ' ', sizeof(big));
                big[sizeof(big) - 1] = '\0';
                memcpy(big, ok, strlen(ok));
                assert_int_equal(cpn_ticket_event_parse(big, strlen(big), &ev, NULL), CPN_INVALID);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_parse_full),
                cmocka_unit_test(test_type_parse_defaults),
                cmocka_unit_test(test_type_parse_refused),
                cmocka_unit_test(test_type_same),
                cmocka_unit_test(test_type_json),
                cmocka_unit_test(test_reserve_and_payment_bodies),
                cmocka_unit_test(test_ticket_json),
                cmocka_unit_test(test_status_and_keys),
                cmocka_unit_test(test_event_parse),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
