/*
 * Unit tests of coupon-worker's Prometheus text (src/worker/metrics.c,
 * cpn_worker_metrics_write) and of the lock-free lag table it reads
 * (cpn_consumer_lag_read, src/events/consumer.c). No network: nothing
 * here listens.
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

#include "metrics.h"

static char *render(const struct cpn_worker_metrics_view *v) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        cpn_worker_metrics_write(f, v);
        assert_int_equal(fclose(f), 0);
        return text;
}

/* @line must be one whole line of @text. */
static void has_line(const char *text, const char *line) {
        size_t n = strlen(line);

        for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
        fail_msg("no line \"%s\" in:\n%s", line, text);
}

static size_t count(const char *text, const char *what) {
        size_t n = 0;

        for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
                n++;
        return n;
}

static struct cpn_worker_metrics_view *view(void) {
        struct cpn_worker_metrics_view *v = calloc(1, sizeof(*v));

        assert_non_null(v);
        v->coupon_group = "coupon-worker";
        v->ticket_group = "coupon-worker-tickets";
        v->start_s = 1700000000.5;
        return v;
}

static void test_both_products(void **state) {
        struct cpn_worker_metrics_view *v = view();
        char *t;

        (void)state;
        v->have_coupons = v->have_tickets = true;
        v->coupons = (struct cpn_worker_stats){ .batches = 3, .messages = 120, .inserted = 100, .duplicates = 15,
                                                .failed = 5, .poison = 2, .batch_retries = 7, .retry_resolved = 4,
                                                .retry_dead = 1, .last_batch_ms = 1700000123456,
                                                .retry_attempts = 3, .in_hand = 40, .assigned = 2 };
        v->tickets = (struct cpn_ticket_confirm_stats){ .messages = 9, .confirmed = 8, .duplicates = 1,
                                                        .last_ms = 1700000000001, .assigned = 1 };
        v->n_coupon_lag = 2;
        v->coupon_lag[0] = (struct cpn_partition_lag){ 0, 17 };
        v->coupon_lag[1] = (struct cpn_partition_lag){ 5, 0 };
        v->n_ticket_lag = 1;
        v->ticket_lag[0] = (struct cpn_partition_lag){ 1, 3 };
        t = render(v);

        has_line(t, "coupon_worker_build_info{version=\"" CPN_VERSION "\"} 1");
        has_line(t, "coupon_worker_start_time_seconds 1700000000.500");
        has_line(t, "coupon_worker_messages_total{product=\"coupon\"} 120");
        has_line(t, "coupon_worker_messages_total{product=\"ticket\"} 9");
        has_line(t, "coupon_worker_batches_total 3");
        has_line(t, "coupon_worker_rows_inserted_total{product=\"coupon\"} 100");
        has_line(t, "coupon_worker_rows_inserted_total{product=\"ticket\"} 8");
        has_line(t, "coupon_worker_duplicates_total{product=\"coupon\"} 15");
        has_line(t, "coupon_worker_duplicates_total{product=\"ticket\"} 1");
        has_line(t, "coupon_worker_failed_events_recorded_total{product=\"coupon\"} 5");
        has_line(t, "coupon_worker_poison_messages_total{product=\"coupon\"} 2");
        has_line(t, "coupon_worker_failed_events_resolved_total{product=\"coupon\"} 4");
        has_line(t, "coupon_worker_failed_events_dead_total{product=\"coupon\"} 1");
        has_line(t, "coupon_worker_mysql_retries_total{product=\"coupon\"} 7");
        /* retrying is 0 or 1, whatever the number of attempts */
        has_line(t, "coupon_worker_mysql_retrying{product=\"coupon\"} 1");
        has_line(t, "coupon_worker_mysql_retrying{product=\"ticket\"} 0");
        has_line(t, "coupon_worker_mysql_retry_attempts{product=\"coupon\"} 3");
        has_line(t, "coupon_worker_messages_in_hand{product=\"coupon\"} 40");
        has_line(t, "coupon_worker_last_batch_timestamp_seconds{product=\"coupon\"} 1700000123.456");
        has_line(t, "coupon_worker_last_batch_timestamp_seconds{product=\"ticket\"} 1700000000.001");
        has_line(t, "coupon_worker_kafka_partitions_assigned{group=\"coupon-worker\"} 2");
        has_line(t, "coupon_worker_kafka_partitions_assigned{group=\"coupon-worker-tickets\"} 1");
        has_line(t, "coupon_worker_kafka_lag{group=\"coupon-worker\",partition=\"0\"} 17");
        has_line(t, "coupon_worker_kafka_lag{group=\"coupon-worker\",partition=\"5\"} 0");
        has_line(t, "coupon_worker_kafka_lag{group=\"coupon-worker-tickets\",partition=\"1\"} 3");
        has_line(t, "# TYPE coupon_worker_rows_inserted_total counter");
        has_line(t, "# TYPE coupon_worker_mysql_retrying gauge");
        has_line(t, "# TYPE coupon_worker_kafka_lag gauge");
        /* each family is announced once, its samples right after it */
        assert_int_equal(count(t, "# TYPE coupon_worker_kafka_lag "), 1);
        assert_int_equal(count(t, "# TYPE coupon_worker_messages_total "), 1);
        assert_true(strstr(t, "# TYPE coupon_worker_kafka_lag ") < strstr(t, "coupon_worker_kafka_lag{"));
        free(t);
        free(v);
}

/* Before the worker is attached: the process's lines only, no family
 * without samples. */
static void test_nothing_attached(void **state) {
        struct cpn_worker_metrics_view *v = view();
        char *t;

        (void)state;
        t = render(v);
        has_line(t, "coupon_worker_start_time_seconds 1700000000.500");
        assert_null(strstr(t, "product="));
        assert_null(strstr(t, "coupon_worker_kafka"));
        assert_null(strstr(t, "coupon_worker_batches_total"));
        assert_int_equal(count(t, "# TYPE "), 2);
        free(t);

        /* the coupon side only: no ticket lines, no lag family without lag */
        v->have_coupons = true;
        t = render(v);
        has_line(t, "coupon_worker_batches_total 0");
        has_line(t, "coupon_worker_last_batch_timestamp_seconds{product=\"coupon\"} 0.000");
        assert_null(strstr(t, "product=\"ticket\""));
        assert_null(strstr(t, "coupon-worker-tickets"));
        assert_null(strstr(t, "coupon_worker_kafka_lag"));
        free(t);
        free(v);
}

/* Group names are settings: any text, escaped in a label value. */
static void test_label_escaping(void **state) {
        struct cpn_worker_metrics_view *v = view();
        char *t;

        (void)state;
        v->have_coupons = true;
        v->coupon_group = "a\"b\\c\nd";
        v->n_coupon_lag = 1;
        v->coupon_lag[0] = (struct cpn_partition_lag){ 2, 9 };
        t = render(v);
        has_line(t, "coupon_worker_kafka_partitions_assigned{group=\"a\\\"b\\\\c\\nd\"} 0");
        has_line(t, "coupon_worker_kafka_lag{group=\"a\\\"b\\\\c\\nd\",partition=\"2\"} 9");
        free(t);
        free(v);
}

static void test_lag_table(void **state) {
        struct cpn_consumer_lag *l = calloc(1, sizeof(*l));
        struct cpn_partition_lag out[CPN_LAG_PARTITIONS];

        (void)state;
        assert_non_null(l);
        /* zeroed: nothing assigned */
        assert_int_equal(cpn_consumer_lag_read(l, out, CPN_LAG_PARTITIONS), 0);
        atomic_store(&l->n, 3);
        for (int i = 0; i < 3; i++) {
                atomic_store(&l->partition[i], i * 2);
                atomic_store(&l->lag[i], 100 + i);
        }
        atomic_store(&l->seq, 2);
        assert_int_equal(cpn_consumer_lag_read(l, out, CPN_LAG_PARTITIONS), 3);
        assert_int_equal(out[2].partition, 4);
        assert_int_equal(out[2].lag, 102);
        /* at most @max */
        assert_int_equal(cpn_consumer_lag_read(l, out, 2), 2);
        /* a count past the table is cut to it */
        atomic_store(&l->n, CPN_LAG_PARTITIONS + 10);
        assert_int_equal(cpn_consumer_lag_read(l, out, CPN_LAG_PARTITIONS + 10), CPN_LAG_PARTITIONS);
        /* a writer in the middle of an update (odd count) that never ends
         * it: the reader gives up empty instead of returning a torn copy */
        atomic_store(&l->n, 3);
        atomic_store(&l->seq, 3);
        assert_int_equal(cpn_consumer_lag_read(l, out, CPN_LAG_PARTITIONS), 0);
        free(l);
}

/* Unset: no endpoint, no error; a bad address: CPN_INVALID naming the
 * setting (nothing listens in either case). */
static void test_new_without_listening(void **state) {
        struct cpn_config cfg;
        struct cpn_worker_metrics *m = (struct cpn_worker_metrics *)&cfg;
        struct cpn_error err = { { 0 } };

        (void)state;
        assert_int_equal(cpn_config_init(&cfg), 0);
        assert_int_equal(cpn_worker_metrics_new(&m, &cfg, &err), 0);
        assert_null(m);
        cfg.worker_metrics_addr = strdup("");
        assert_int_equal(cpn_worker_metrics_new(&m, &cfg, &err), 0);
        assert_null(m);
        free(cfg.worker_metrics_addr);
        cfg.worker_metrics_addr = strdup("127.0.0.1:70000");
        assert_int_equal(cpn_worker_metrics_new(&m, &cfg, &err), CPN_INVALID);
        assert_null(m);
        assert_non_null(strstr(err.msg, "COUPON_WORKER_METRICS_ADDR"));
        assert_null(cpn_worker_metrics_free(NULL));
        cpn_config_clear(&cfg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_both_products),
                cmocka_unit_test(test_nothing_attached),
                cmocka_unit_test(test_label_escaping),
                cmocka_unit_test(test_lag_table),
                cmocka_unit_test(test_new_without_listening),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
