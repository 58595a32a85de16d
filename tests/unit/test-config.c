/*
 * Unit tests of src/common/config.c: defaults, environment (through a fake
 * getter), flags overriding it, strict number parsing, masks, cross-field
 * checks. Every test clears its config (run under valgrind: no leaks).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpn/config.h"

#define ALL_MASK (CPN_CFG_API | CPN_CFG_WORKER | CPN_CFG_CTL)

/* The fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;
static int fake_calls;

static const char *fake_get(const char *name) {
        fake_calls++;
        for (const char *const *p = fake_env; p && *p; p += 2)
                if (strcmp(p[0], name) == 0)
                        return p[1];
        return NULL;
}

static int setup(void **state) {
        struct cpn_config *cfg = calloc(1, sizeof(*cfg));

        if (!cfg || cpn_config_init(cfg) != 0)
                return -1;
        fake_env = NULL;
        fake_calls = 0;
        *state = cfg;
        return 0;
}

static int teardown(void **state) {
        struct cpn_config *cfg = *state;

        cpn_config_clear(cfg);
        free(cfg);
        return 0;
}

/* Loads with the fake environment @env and the flags @args (NULL-terminated,
 * argv[0] added). */
static int load(struct cpn_config *cfg, unsigned mask, const char *const *env,
                const char *const *args, int *argi, struct cpn_error *err) {
        char *argv[32] = { (char *)"prog" };
        int argc = 1;

        for (const char *const *a = args; a && *a; a++)
                argv[argc++] = (char *)*a;
        argv[argc] = NULL;
        fake_env = env;
        return cpn_config_load(cfg, mask, fake_get, argc, argv, argi, err);
}

static void assert_defaults(const struct cpn_config *cfg) {
        assert_string_equal(cfg->http_addr, "127.0.0.1:8080");
        assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
        assert_string_equal(cfg->kafka_brokers, "127.0.0.1:9092");
        assert_string_equal(cfg->kafka_topic, "coupon.issued");
        assert_null(cfg->kafka_config);
        assert_string_equal(cfg->mysql_url, "mysql://coupon:coupon@127.0.0.1:3306/coupon");
        assert_null(cfg->admin_token);
        assert_string_equal(cfg->log_level, "info");
        assert_int_equal(cfg->kafka_ack_timeout_ms, 500);
        assert_int_equal(cfg->kafka_message_timeout_ms, 10000);
        assert_int_equal(cfg->kafka_linger_ms, 1);
        assert_int_equal(cfg->http_threads, 1024);
        assert_int_equal(cfg->http_max_body, 4096);
        assert_int_equal(cfg->http_request_timeout_ms, 10000);
        assert_int_equal(cfg->http_keepalive_ms, 5000);
        assert_int_equal(cfg->relay_after_ms, 15000);
        assert_int_equal(cfg->relay_interval_ms, 1000);
        assert_int_equal(cfg->redis_timeout_ms, 2000);
}

static void test_defaults(void **state) {
        struct cpn_config *cfg = *state;
        struct cpn_error err = { { 0 } };

        assert_defaults(cfg);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_CTL, &err), 0);
}

static void test_init_clear_repeat(void **state) {
        struct cpn_config *cfg = *state;

        /* clear is idempotent and init may follow it */
        cpn_config_clear(cfg);
        assert_null(cfg->http_addr);
        assert_null(cfg->kafka_topic);
        cpn_config_clear(cfg);
        assert_int_equal(cpn_config_init(cfg), 0);
        assert_defaults(cfg);
}

static void test_empty_env(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const env[] = { NULL };
        struct cpn_error err = { { 0 } };
        int argi = -1;

        assert_int_equal(load(cfg, ALL_MASK, env, NULL, &argi, &err), 0);
        assert_true(fake_calls > 0); /* the getter, not getenv, was asked */
        assert_int_equal(argi, 1);
        assert_defaults(cfg);
}

static void test_getter_replaces_getenv(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const env[] = { NULL };
        struct cpn_error err = { { 0 } };
        char *argv[] = { (char *)"prog", NULL };

        setenv("COUPON_KAFKA_TOPIC", "from-real-env", 1);
        assert_int_equal(load(cfg, ALL_MASK, env, NULL, NULL, &err), 0);
        assert_string_equal(cfg->kafka_topic, "coupon.issued");
        /* NULL getter: getenv */
        assert_int_equal(cpn_config_load(cfg, ALL_MASK, NULL, 1, argv, NULL, &err), 0);
        assert_string_equal(cfg->kafka_topic, "from-real-env");
        unsetenv("COUPON_KAFKA_TOPIC");
}

static void test_env_overrides(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const env[] = {
                "COUPON_HTTP_ADDR", "0.0.0.0:9000",
                "COUPON_REDIS_URL", "redis://r:6380/2",
                "COUPON_KAFKA_BROKERS", "k1:9092,k2:9092",
                "COUPON_KAFKA_TOPIC", "t2",
                "COUPON_KAFKA_CONFIG", "security.protocol=ssl",
                "COUPON_MYSQL_URL", "mysql://u:p@db/x",
                "COUPON_ADMIN_TOKEN", "0123456789abcdef",
                "COUPON_LOG_LEVEL", "debug",
                "COUPON_KAFKA_ACK_TIMEOUT_MS", "0",
                "COUPON_KAFKA_MESSAGE_TIMEOUT_MS", "1000",
                "COUPON_KAFKA_LINGER_MS", "1000",
                "COUPON_HTTP_THREADS", "4",
                "COUPON_HTTP_MAX_BODY", "1048576",
                "COUPON_HTTP_REQUEST_TIMEOUT_MS", "100",
                "COUPON_HTTP_KEEPALIVE_MS", "0",
                "COUPON_RELAY_AFTER_MS", "3600000",
                "COUPON_RELAY_INTERVAL_MS", "50",
                "COUPON_REDIS_TIMEOUT_MS", "60000",
                NULL,
        };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_API, env, NULL, NULL, &err), 0);
        assert_string_equal(cfg->http_addr, "0.0.0.0:9000");
        assert_string_equal(cfg->redis_url, "redis://r:6380/2");
        assert_string_equal(cfg->kafka_brokers, "k1:9092,k2:9092");
        assert_string_equal(cfg->kafka_topic, "t2");
        assert_string_equal(cfg->kafka_config, "security.protocol=ssl");
        assert_string_equal(cfg->mysql_url, "mysql://u:p@db/x");
        assert_string_equal(cfg->admin_token, "0123456789abcdef");
        assert_string_equal(cfg->log_level, "debug");
        assert_int_equal(cfg->kafka_ack_timeout_ms, 0);
        assert_int_equal(cfg->kafka_message_timeout_ms, 1000);
        assert_int_equal(cfg->kafka_linger_ms, 1000);
        assert_int_equal(cfg->http_threads, 4);
        assert_int_equal(cfg->http_max_body, 1048576);
        assert_int_equal(cfg->http_request_timeout_ms, 100);
        assert_int_equal(cfg->http_keepalive_ms, 0);
        assert_int_equal(cfg->relay_after_ms, 3600000);
        assert_int_equal(cfg->relay_interval_ms, 50);
        assert_int_equal(cfg->redis_timeout_ms, 60000);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);
}

static void test_env_outside_mask_ignored(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const env[] = {
                "COUPON_HTTP_ADDR", "0.0.0.0:9000",
                "COUPON_ADMIN_TOKEN", "0123456789abcdef",
                "COUPON_KAFKA_ACK_TIMEOUT_MS", "abc", /* bad, but not ctl's */
                "COUPON_KAFKA_TOPIC", "t-ctl",
                NULL,
        };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_CTL, env, NULL, NULL, &err), 0);
        assert_string_equal(cfg->http_addr, "127.0.0.1:8080");
        assert_null(cfg->admin_token);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 500);
        assert_string_equal(cfg->kafka_topic, "t-ctl");
}

static void test_env_empty_string(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const set[] = { "COUPON_ADMIN_TOKEN", "0123456789abcdef",
                                           "COUPON_KAFKA_CONFIG", "a=b", NULL };
        static const char *const unset[] = { "COUPON_ADMIN_TOKEN", "", "COUPON_KAFKA_CONFIG", "",
                                             NULL };
        static const char *const topic[] = { "COUPON_KAFKA_TOPIC", "", NULL };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_API, set, NULL, NULL, &err), 0);
        assert_string_equal(cfg->admin_token, "0123456789abcdef");
        /* empty: unset, for optional strings */
        assert_int_equal(load(cfg, CPN_CFG_API, unset, NULL, NULL, &err), 0);
        assert_null(cfg->admin_token);
        assert_null(cfg->kafka_config);
        /* empty topic: set, and refused by the check */
        assert_int_equal(load(cfg, CPN_CFG_API, topic, NULL, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_KAFKA_TOPIC"));
}

static void test_flags_override_env(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const env[] = { "COUPON_KAFKA_ACK_TIMEOUT_MS", "300",
                                           "COUPON_KAFKA_TOPIC", "env-topic", NULL };
        static const char *const sep[] = { "--kafka-ack-timeout-ms", "0", NULL };
        static const char *const eq[] = { "--kafka-ack-timeout-ms=0", "--kafka-topic=flag-topic",
                                          NULL };
        struct cpn_error err = { { 0 } };
        int argi = -1;

        assert_int_equal(load(cfg, CPN_CFG_API, env, NULL, &argi, &err), 0);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 300);
        assert_string_equal(cfg->kafka_topic, "env-topic");

        assert_int_equal(load(cfg, CPN_CFG_API, env, sep, &argi, &err), 0);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 0);
        assert_string_equal(cfg->kafka_topic, "env-topic");
        assert_int_equal(argi, 3);

        assert_int_equal(load(cfg, CPN_CFG_API, env, eq, &argi, &err), 0);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 0);
        assert_string_equal(cfg->kafka_topic, "flag-topic");
        assert_int_equal(argi, 3);
}

static void test_flags_all_forms(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const args[] = {
                "--http-addr", "[::1]:80", "--admin-token=abcdefghijklmnopq", "--log-level", "warn",
                "--http-threads=4", "--redis-url", "redis://x", "--kafka-config=a=b,c=d", NULL,
        };
        struct cpn_error err = { { 0 } };
        int argi = -1;

        assert_int_equal(load(cfg, CPN_CFG_API, NULL, args, &argi, &err), 0);
        assert_string_equal(cfg->http_addr, "[::1]:80");
        assert_string_equal(cfg->admin_token, "abcdefghijklmnopq");
        assert_string_equal(cfg->log_level, "warn");
        assert_int_equal(cfg->http_threads, 4);
        assert_string_equal(cfg->redis_url, "redis://x");
        assert_string_equal(cfg->kafka_config, "a=b,c=d"); /* only the first '=' splits */
        assert_int_equal(argi, 10);
        /* a value may be empty or look like a flag */
        {
                static const char *const odd[] = { "--kafka-topic=", "--kafka-brokers", "--x", NULL };

                assert_int_equal(load(cfg, CPN_CFG_API, NULL, odd, &argi, &err), 0);
                assert_string_equal(cfg->kafka_topic, "");
                assert_string_equal(cfg->kafka_brokers, "--x");
                assert_int_equal(argi, 4);
        }
}

/* Resets @cfg to the defaults (the teardown frees it even when an assertion
 * fails half-way). */
static void reset(struct cpn_config *cfg) {
        cpn_config_clear(cfg);
        assert_int_equal(cpn_config_init(cfg), 0);
}

static void assert_bad_env(struct cpn_config *cfg, const char *name, const char *value) {
        const char *env[] = { name, value, NULL };
        struct cpn_error err = { { 0 } };
        int r;

        reset(cfg);
        r = load(cfg, CPN_CFG_API, env, NULL, NULL, &err);
        if (r != CPN_INVALID)
                fail_msg("%s='%s': got %d, expected CPN_INVALID", name, value, r);
        if (!strstr(err.msg, name))
                fail_msg("%s='%s': message \"%s\" does not name the variable", name, value, err.msg);
}

static void assert_bad_flag(struct cpn_config *cfg, const char *flag, const char *value) {
        char joined[128];
        const char *sep[] = { flag, value, NULL };
        const char *eq[] = { joined, NULL };
        struct cpn_error err = { { 0 } };
        int r;

        snprintf(joined, sizeof(joined), "%s=%s", flag, value);
        reset(cfg);
        r = load(cfg, CPN_CFG_API, NULL, sep, NULL, &err);
        if (r != CPN_INVALID)
                fail_msg("%s '%s': got %d, expected CPN_INVALID", flag, value, r);
        if (!strstr(err.msg, flag))
                fail_msg("%s '%s': message \"%s\" does not name the flag", flag, value, err.msg);
        memset(&err, 0, sizeof(err));
        r = load(cfg, CPN_CFG_API, NULL, eq, NULL, &err);
        if (r != CPN_INVALID)
                fail_msg("%s: got %d, expected CPN_INVALID", joined, r);
        if (!strstr(err.msg, flag))
                fail_msg("%s: message \"%s\" does not name the flag", joined, err.msg);
}

static const char *const bad_numbers[] = {
        "abc", "12x", "", "-1", " 5", "+5", "60001", "5 ", "0x10", "1e3", "1.5", "5\n",
        "99999999999999999999", "-99999999999999999999", "--5", "-", "\xef\xbc\x95",
};

static void test_bad_numbers_env(void **state) {
        for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++)
                assert_bad_env(*state, "COUPON_KAFKA_ACK_TIMEOUT_MS", bad_numbers[i]);
        assert_bad_env(*state, "COUPON_HTTP_THREADS", "3");
        assert_bad_env(*state, "COUPON_HTTP_THREADS", "20001");
        assert_bad_env(*state, "COUPON_HTTP_MAX_BODY", "255");
        assert_bad_env(*state, "COUPON_KAFKA_MESSAGE_TIMEOUT_MS", "999");
        assert_bad_env(*state, "COUPON_RELAY_INTERVAL_MS", "49");
        assert_bad_env(*state, "COUPON_REDIS_TIMEOUT_MS", "0");
}

static void test_bad_numbers_flags(void **state) {
        for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++)
                assert_bad_flag(*state, "--kafka-ack-timeout-ms", bad_numbers[i]);
        assert_bad_flag(*state, "--http-threads", "3");
        assert_bad_flag(*state, "--relay-after-ms", "3600001");
}

/* Leading white space is refused for ' ' ("strict"), so it must be for any
 * white space strtol would skip. */
static void test_bad_numbers_leading_whitespace(void **state) {
        assert_bad_env(*state, "COUPON_KAFKA_ACK_TIMEOUT_MS", "\t5");
        assert_bad_env(*state, "COUPON_KAFKA_ACK_TIMEOUT_MS", "\n5");
        assert_bad_flag(*state, "--kafka-ack-timeout-ms", "\t5");
}

static void test_bounds_inclusive(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const lo[] = { "--kafka-ack-timeout-ms", "0", "--http-threads", "4", NULL };
        static const char *const hi[] = { "--kafka-ack-timeout-ms", "60000", "--http-threads", "20000",
                                          NULL };
        static const char *const zero[] = { "--kafka-ack-timeout-ms=-0", NULL };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_API, NULL, lo, NULL, &err), 0);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 0);
        assert_int_equal(cfg->http_threads, 4);
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, hi, NULL, &err), 0);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 60000);
        assert_int_equal(cfg->http_threads, 20000);
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, zero, NULL, &err), 0);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 0);
}

static void test_unknown_flags(void **state) {
        static const char *const cases[][3] = {
                { "--nope", NULL }, { "--nope=1", NULL }, { "--kafka", "x" }, { "--kafka-topicx=1" },
                { "--KAFKA-TOPIC", "x" }, { "--=x" }, { "---kafka-topic", "x" }, { "--kafka_topic", "x" },
        };
        struct cpn_error err;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                reset(*state);
                memset(&err, 0, sizeof(err));
                if (load(*state, CPN_CFG_API, NULL, cases[i], NULL, &err) != CPN_INVALID)
                        fail_msg("flag %s accepted", cases[i][0]);
                assert_true(err.msg[0] != '\0');
        }
}

static void test_flag_missing_value(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const a[] = { "--kafka-ack-timeout-ms", NULL };
        static const char *const b[] = { "--kafka-topic=t", "--http-addr", NULL };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_API, NULL, a, NULL, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "--kafka-ack-timeout-ms"));
        memset(&err, 0, sizeof(err));
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, b, NULL, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "--http-addr"));
}

static void test_flag_outside_mask(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const http[] = { "--http-addr", "0.0.0.0:1", NULL };
        static const char *const http_eq[] = { "--http-addr=0.0.0.0:1", NULL };
        static const char *const token[] = { "--admin-token", "0123456789abcdef", NULL };
        static const char *const ack[] = { "--kafka-ack-timeout-ms=0", NULL };
        static const char *const topic[] = { "--kafka-topic", "t", NULL };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, http, NULL, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "http-addr"));
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, http_eq, NULL, &err), CPN_INVALID);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, token, NULL, &err), CPN_INVALID);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, ack, NULL, &err), CPN_INVALID);
        assert_string_equal(cfg->http_addr, "127.0.0.1:8080");
        assert_null(cfg->admin_token);
        assert_int_equal(cfg->kafka_ack_timeout_ms, 500);
        /* shared entries are accepted by every program */
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, topic, NULL, &err), 0);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, topic, NULL, &err), 0);
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, http, NULL, &err), 0);
        assert_string_equal(cfg->http_addr, "0.0.0.0:1");
}

static void test_argi(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const sub[] = { "--kafka-topic", "t", "create", "--kafka-topic=u", NULL };
        static const char *const dashdash[] = { "--kafka-topic=t", "--", "--kafka-topic=u", NULL };
        static const char *const single[] = { "-v", "--kafka-topic=u", NULL };
        static const char *const only_dd[] = { "--", NULL };
        struct cpn_error err = { { 0 } };
        int argi = -1;

        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, NULL, &argi, &err), 0);
        assert_int_equal(argi, 1);
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, sub, &argi, &err), 0);
        assert_int_equal(argi, 3);                     /* "create" */
        assert_string_equal(cfg->kafka_topic, "t");   /* flags after it are not ours */
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, dashdash, &argi, &err), 0);
        assert_int_equal(argi, 3);                     /* after "--" */
        assert_string_equal(cfg->kafka_topic, "t");
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, single, &argi, &err), 0);
        assert_int_equal(argi, 1);
        assert_string_equal(cfg->kafka_topic, "t");
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, only_dd, &argi, &err), 0);
        assert_int_equal(argi, 2);
}

static void test_check_relay_after(void **state) {
        struct cpn_config *cfg = *state;
        struct cpn_error err = { { 0 } };

        cfg->kafka_message_timeout_ms = 10000;
        cfg->relay_after_ms = 10000;
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_RELAY_AFTER_MS"));
        cfg->relay_after_ms = 9999;
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), CPN_INVALID);
        cfg->relay_after_ms = 10001;
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);

        /* the same through the environment */
        {
                static const char *const env[] = { "COUPON_KAFKA_MESSAGE_TIMEOUT_MS", "20000", NULL };

                assert_int_equal(load(cfg, CPN_CFG_API, env, NULL, NULL, &err), 0);
                assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), CPN_INVALID);
        }
}

static void test_check_admin_token(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const t15[] = { "--admin-token", "0123456789abcde", NULL };
        static const char *const t16[] = { "--admin-token", "0123456789abcdef", NULL };
        static const char *const t0[] = { "--admin-token=", NULL };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_API, NULL, t15, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_ADMIN_TOKEN"));
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, t16, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, t0, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), CPN_INVALID);
}

static void test_check_log_level(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const levels_ok[] = { "error", "warn", "info", "debug", "DEBUG", NULL };
        static const char *const levels_bad[] = { "verbose", "", "warning", "info ", "trace", NULL };
        struct cpn_error err = { { 0 } };

        for (const char *const *l = levels_ok; *l; l++) {
                const char *env[] = { "COUPON_LOG_LEVEL", *l, NULL };

                assert_int_equal(load(cfg, CPN_CFG_WORKER, env, NULL, NULL, &err), 0);
                if (cpn_config_check(cfg, CPN_CFG_WORKER, &err) != 0)
                        fail_msg("log level '%s' refused", *l);
        }
        for (const char *const *l = levels_bad; *l; l++) {
                const char *env[] = { "COUPON_LOG_LEVEL", *l, NULL };

                assert_int_equal(load(cfg, CPN_CFG_WORKER, env, NULL, NULL, &err), 0);
                memset(&err, 0, sizeof(err));
                if (cpn_config_check(cfg, CPN_CFG_WORKER, &err) != CPN_INVALID)
                        fail_msg("log level '%s' accepted", *l);
                assert_non_null(strstr(err.msg, "COUPON_LOG_LEVEL"));
        }
}

/* ---- coupon-worker entries ---- */

static void assert_bad_worker_env(struct cpn_config *cfg, const char *name, const char *value) {
        const char *env[] = { name, value, NULL };
        struct cpn_error err = { { 0 } };
        int r;

        reset(cfg);
        r = load(cfg, CPN_CFG_WORKER, env, NULL, NULL, &err);
        if (r != CPN_INVALID)
                fail_msg("%s='%s': got %d, expected CPN_INVALID", name, value, r);
        if (!strstr(err.msg, name))
                fail_msg("%s='%s': message \"%s\" does not name the variable", name, value, err.msg);
}

static void test_worker_defaults(void **state) {
        struct cpn_config *cfg = *state;

        assert_string_equal(cfg->worker_group, "coupon-worker");
        assert_int_equal(cfg->worker_batch, 1000);
        assert_int_equal(cfg->worker_batch_wait_ms, 20);
        assert_int_equal(cfg->retry_base_ms, 1000);
        assert_int_equal(cfg->retry_max_ms, 300000);
        assert_int_equal(cfg->retry_max_attempts, 10);
}

static void test_worker_batch_bounds(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const lo[] = { "COUPON_WORKER_BATCH", "1", NULL };
        static const char *const hi[] = { "COUPON_WORKER_BATCH", "20000", NULL };
        static const char *const flag_lo[] = { "--worker-batch", "1", NULL };
        static const char *const flag_hi[] = { "--worker-batch=20000", NULL };
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_WORKER, lo, NULL, NULL, &err), 0);
        assert_int_equal(cfg->worker_batch, 1);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, hi, NULL, NULL, &err), 0);
        assert_int_equal(cfg->worker_batch, 20000);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, flag_lo, NULL, &err), 0);
        assert_int_equal(cfg->worker_batch, 1);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, flag_hi, NULL, &err), 0);
        assert_int_equal(cfg->worker_batch, 20000);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);
}

static void test_worker_batch_out_of_bounds(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const values[] = { "0", "20001", "-1", "1e3", "", " 5", "1000x" };

        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
                assert_bad_worker_env(cfg, "COUPON_WORKER_BATCH", values[i]);
        /* the message gives the range and the value */
        {
                static const char *const env[] = { "COUPON_WORKER_BATCH", "20001", NULL };
                struct cpn_error err = { { 0 } };

                reset(cfg);
                assert_int_equal(load(cfg, CPN_CFG_WORKER, env, NULL, NULL, &err), CPN_INVALID);
                assert_non_null(strstr(err.msg, "1..20000"));
                assert_non_null(strstr(err.msg, "'20001'"));
                assert_int_equal(cfg->worker_batch, 1000); /* unchanged */
        }
        /* the same as flags, in both forms */
        for (size_t i = 0; i < 2; i++) {
                char joined[64];
                const char *sep[] = { "--worker-batch", values[i], NULL };
                const char *eq[] = { joined, NULL };
                struct cpn_error err = { { 0 } };

                snprintf(joined, sizeof(joined), "--worker-batch=%s", values[i]);
                reset(cfg);
                assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, sep, NULL, &err), CPN_INVALID);
                assert_non_null(strstr(err.msg, "--worker-batch"));
                memset(&err, 0, sizeof(err));
                assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, eq, NULL, &err), CPN_INVALID);
                assert_non_null(strstr(err.msg, "--worker-batch"));
        }
}

static void test_worker_flags_outside_mask(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const sep[] = { "--worker-batch", "10", NULL };
        static const char *const eq[] = { "--worker-batch=10", NULL };
        static const char *const wait[] = { "--worker-batch-wait-ms=5", NULL };
        static const char *const env[] = { "COUPON_WORKER_BATCH", "0", NULL }; /* bad, not api's */
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_API, NULL, sep, NULL, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "unknown option"));
        assert_non_null(strstr(err.msg, "--worker-batch"));
        memset(&err, 0, sizeof(err));
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, eq, NULL, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "unknown option"));
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, wait, NULL, &err), CPN_INVALID);
        assert_int_equal(load(cfg, CPN_CFG_CTL, NULL, sep, NULL, &err), CPN_INVALID);
        assert_int_equal(cfg->worker_batch, 1000);
        /* in the environment, outside the mask: ignored */
        assert_int_equal(load(cfg, CPN_CFG_API, env, NULL, NULL, &err), 0);
        assert_int_equal(cfg->worker_batch, 1000);
        /* the worker takes it */
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, sep, NULL, &err), 0);
        assert_int_equal(cfg->worker_batch, 10);
}

static void test_check_worker_group(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const flag[] = { "--worker-group=", NULL };
        static const char *const env[] = { "COUPON_WORKER_GROUP", "", NULL };
        static const char *const named[] = { "--worker-group", "g2", NULL };
        struct cpn_error err = { { 0 } };

        /* empty is set (not "unset": the entry has a default), then refused */
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, flag, NULL, &err), 0);
        assert_string_equal(cfg->worker_group, "");
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_WORKER_GROUP"));
        /* coupon-api does not use it */
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);

        reset(cfg);
        memset(&err, 0, sizeof(err));
        assert_int_equal(load(cfg, CPN_CFG_WORKER, env, NULL, NULL, &err), 0);
        assert_string_equal(cfg->worker_group, "");
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_WORKER_GROUP"));

        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, named, NULL, &err), 0);
        assert_string_equal(cfg->worker_group, "g2");
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);
}

static void test_check_retry_max_below_base(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const below[] = { "COUPON_RETRY_BASE_MS", "5000", "COUPON_RETRY_MAX_MS", "4999",
                                             NULL };
        static const char *const equal[] = { "--retry-base-ms=5000", "--retry-max-ms", "5000", NULL };
        static const char *const flags_below[] = { "--retry-max-ms=10", NULL }; /* base 1000 */
        struct cpn_error err = { { 0 } };

        assert_int_equal(load(cfg, CPN_CFG_WORKER, below, NULL, NULL, &err), 0);
        assert_int_equal(cfg->retry_base_ms, 5000);
        assert_int_equal(cfg->retry_max_ms, 4999);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_RETRY_MAX_MS"));
        assert_non_null(strstr(err.msg, "COUPON_RETRY_BASE_MS"));
        /* coupon-api does not use them */
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);

        /* equal is fine */
        reset(cfg);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, equal, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);

        /* only the maximum given, below the default base */
        reset(cfg);
        memset(&err, 0, sizeof(err));
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, flags_below, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_RETRY_MAX_MS"));

        /* directly on the struct, one below */
        reset(cfg);
        cfg->retry_base_ms = 2000;
        cfg->retry_max_ms = 1999;
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        cfg->retry_max_ms = 2000;
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);
}

static void test_check_worker_metrics_addr(void **state) {
        struct cpn_config *cfg = *state;
        static const char *const unset[] = { "COUPON_WORKER_METRICS_ADDR", "", NULL };
        static const char *const good[] = { "COUPON_WORKER_METRICS_ADDR", "127.0.0.1:9102", NULL };
        static const char *const bad_port[] = { "--worker-metrics-addr=127.0.0.1:99999", NULL };
        static const char *const no_host[] = { "--worker-metrics-addr", "9102", NULL };
        struct cpn_error err = { { 0 } };

        /* off by default, and an empty value is unset */
        assert_null(cfg->worker_metrics_addr);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, unset, NULL, NULL, &err), 0);
        assert_null(cfg->worker_metrics_addr);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);

        assert_int_equal(load(cfg, CPN_CFG_WORKER, good, NULL, NULL, &err), 0);
        assert_string_equal(cfg->worker_metrics_addr, "127.0.0.1:9102");
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), 0);

        reset(cfg);
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, bad_port, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "COUPON_WORKER_METRICS_ADDR"));
        assert_non_null(strstr(err.msg, "99999"));
        /* coupon-api neither takes nor checks it */
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_API, &err), 0);

        reset(cfg);
        memset(&err, 0, sizeof(err));
        assert_int_equal(load(cfg, CPN_CFG_WORKER, NULL, no_host, NULL, &err), 0);
        assert_int_equal(cpn_config_check(cfg, CPN_CFG_WORKER, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "host:port"));
        assert_int_equal(load(cfg, CPN_CFG_API, NULL, no_host, NULL, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "unknown option"));
}

static void test_usage(void **state) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        cpn_config_usage(f, CPN_CFG_CTL);
        fclose(f);
        assert_non_null(strstr(text, "COUPON_REDIS_URL"));
        assert_non_null(strstr(text, "--redis-url"));
        assert_null(strstr(text, "COUPON_HTTP_ADDR"));
        assert_null(strstr(text, "COUPON_ADMIN_TOKEN"));
        free(text);

        text = NULL;
        f = open_memstream(&text, &len);
        assert_non_null(f);
        cpn_config_usage(f, CPN_CFG_API);
        fclose(f);
        assert_non_null(strstr(text, "COUPON_HTTP_ADDR"));
        assert_non_null(strstr(text, "COUPON_KAFKA_ACK_TIMEOUT_MS"));
        assert_non_null(strstr(text, "default 500, range 0..60000"));
        free(text);
}

/* cpn_config_each_kv: what COUPON_KAFKA_CONFIG's items become. */
struct kv_seen {
        char out[512];
        int stop_at, n;
};

static int kv_collect(const char *k, const char *v, void *ud) {
        struct kv_seen *s = ud;
        size_t len = strlen(s->out);

        snprintf(s->out + len, sizeof(s->out) - len, "[%s|%s]", k, v);
        return ++s->n == s->stop_at ? 42 : 0;
}

static void assert_kv(const char *list, const char *want) {
        struct kv_seen seen = { "", 0, 0 };
        struct cpn_error err = { { 0 } };

        assert_int_equal(cpn_config_each_kv(list, kv_collect, &seen, &err), 0);
        if (strcmp(seen.out, want) != 0)
                fail_msg("'%s' -> %s, expected %s", list, seen.out, want);
}

static void test_kv_list(void **state) {
        struct kv_seen seen = { "", 2, 0 };
        struct cpn_error err = { { 0 } };

        (void)state;
        assert_kv("a=b", "[a|b]");
        assert_kv("a=b,c=d", "[a|b][c|d]");
        assert_kv("a=b,", "[a|b]");
        assert_kv("sasl.password=se\\,cret,x=1", "[sasl.password|se,cret][x|1]");
        assert_kv("p=a\\\\,b=c", "[p|a\\][b|c]");   /* an escaped backslash, then a real comma */
        assert_kv("p=a\\b", "[p|a\\b]");             /* any other backslash stays */
        assert_kv("j=k=v", "[j|k=v]");               /* the first '=' splits */
        assert_kv("e=", "[e|]");
        assert_int_equal(cpn_config_each_kv("a=1,b=2,c=3", kv_collect, &seen, &err), 42);
        assert_string_equal(seen.out, "[a|1][b|2]");
        /* A broken item is named by position, never by its text. */
        assert_int_equal(cpn_config_each_kv("sasl.password=x,TOPSECRET", kv_collect, &(struct kv_seen){ "", 0, 0 },
                                            &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "item 2"));
        assert_null(strstr(err.msg, "TOPSECRET"));
        assert_int_equal(cpn_config_each_kv("=v", kv_collect, &(struct kv_seen){ "", 0, 0 }, &err), CPN_INVALID);
        assert_true(cpn_config_secret_key("sasl.password"));
        assert_true(cpn_config_secret_key("ssl.key.password"));
        assert_true(cpn_config_secret_key("sasl.jaas.config"));
        assert_true(cpn_config_secret_key("sasl.oauthbearer.client.secret"));
        assert_false(cpn_config_secret_key("acks"));
        assert_false(cpn_config_secret_key("session.timeout.ms"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_defaults),
                T(test_init_clear_repeat),
                T(test_empty_env),
                T(test_getter_replaces_getenv),
                T(test_env_overrides),
                T(test_env_outside_mask_ignored),
                T(test_env_empty_string),
                T(test_flags_override_env),
                T(test_flags_all_forms),
                T(test_bad_numbers_env),
                T(test_bad_numbers_flags),
                T(test_bad_numbers_leading_whitespace),
                T(test_bounds_inclusive),
                T(test_unknown_flags),
                T(test_flag_missing_value),
                T(test_flag_outside_mask),
                T(test_argi),
                T(test_check_relay_after),
                T(test_check_admin_token),
                T(test_check_log_level),
                T(test_worker_defaults),
                T(test_worker_batch_bounds),
                T(test_worker_batch_out_of_bounds),
                T(test_worker_flags_outside_mask),
                T(test_check_worker_group),
                T(test_check_retry_max_below_base),
                T(test_check_worker_metrics_addr),
                cmocka_unit_test(test_usage),
                cmocka_unit_test(test_kv_list),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
