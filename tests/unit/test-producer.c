/*
 * Unit tests of the one-sleep wait in src/events/producer.c
 * (cpn_waiter_arm / cpn_producer_decide / cpn_waiter_wait): when the
 * request wakes, and with what, for each way the decision can come. The
 * producer has no broker (bootstrap.servers is empty), so nothing leaves
 * the process and no delivery report comes within these tests: a produced
 * message's wait must end at its deadline, counted from the decision. The
 * decisions are a product's codes; the producer hands them through.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cpn/config.h"
#include "cpn/events.h"

/* A product's outcomes, as the waiter carries them. */
enum { REFUSED = 1000, OTHER_REFUSAL, NOT_FOUND };

static struct cpn_config cfg;
static struct cpn_producer *producer;
static struct cpn_topic *topic;

static long now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

struct decider {
        pthread_t thread;
        struct cpn_waiter *w;
        uint64_t gen;
        int decision;
        long after_ms, wait_ms;
        long decided_at;
};

static void *decide_later(void *arg) {
        struct decider *d = arg;
        static const char tag[] = "c 1-0";
        struct cpn_outgoing m = { .topic = topic, .key = "u-1", .key_len = 3, .value = "{}", .len = 2,
                                  .tag = tag, .tag_len = sizeof(tag) };

        sleep_ms(d->after_ms);
        d->decided_at = now_ms();
        cpn_producer_decide(producer, d->w, d->gen, d->decision, d->decision == 0 ? &m : NULL, d->wait_ms);
        return NULL;
}

/* Arms @w, lets another thread decide @decision after @after_ms, waits.
 * Returns the decision; *@delivery, and the times (ms) from the start to
 * the decision and to the wake-up. */
static int run(struct cpn_waiter *w, int decision, long after_ms, long wait_ms, int *delivery,
               long *decided, long *woke) {
        struct decider d = { .w = w, .decision = decision, .after_ms = after_ms, .wait_ms = wait_ms };
        long start = now_ms();
        int r;

        d.gen = cpn_waiter_arm(w, wait_ms);
        assert_int_equal(pthread_create(&d.thread, NULL, decide_later, &d), 0);
        r = cpn_waiter_wait(w, wait_ms, delivery);
        *woke = now_ms() - start;
        pthread_join(d.thread, NULL);
        *decided = d.decided_at - start;
        return r;
}

static int setup(void **state) {
        struct cpn_error err = { { 0 } };

        (void)state;
        assert_int_equal(cpn_config_init(&cfg), 0);
        free(cfg.kafka_brokers);
        cfg.kafka_brokers = strdup("");
        assert_int_equal(cpn_producer_new(&producer, &cfg, NULL, &err), 0);
        assert_int_equal(cpn_producer_topic(producer, "test.topic", &topic, &err), 0);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        cpn_producer_free(producer, 0);
        cpn_config_clear(&cfg);
        return 0;
}

/* A refusal wakes the request as soon as it is decided. */
static void test_refusal_wakes_at_once(void **state) {
        struct cpn_waiter *w;
        long decided, woke;
        int delivery = -1;

        (void)state;
        assert_int_equal(cpn_waiter_new(producer, &w), 0);
        assert_int_equal(run(w, REFUSED, 50, 2000, &delivery, &decided, &woke), REFUSED);
        assert_true(woke >= decided);
        assert_true(woke < decided + 300);
        cpn_waiter_free(producer, w);
}

/* An issued coupon without a report: the wait ends @wait_ms after the
 * decision (not after the arming), and says the delivery is pending. */
static void test_issued_waits_from_the_decision(void **state) {
        struct cpn_waiter *w;
        long decided, woke;
        int delivery = -1;

        (void)state;
        assert_int_equal(cpn_waiter_new(producer, &w), 0);
        assert_int_equal(run(w, 0, 100, 200, &delivery, &decided, &woke), 0);
        assert_int_equal(delivery, CPN_DELIVERY_PENDING);
        assert_true(woke >= decided + 200);
        assert_true(woke < decided + 700);
        cpn_waiter_free(producer, w);
}

/* The decision comes after the first deadline (Redis slow): the request,
 * asleep until the decision, is woken by it and then gives Kafka its full
 * wait. Without that wake it would sleep on to its 1 s recheck. */
static void test_late_decision_wakes_the_sleeper(void **state) {
        struct cpn_waiter *w;
        long decided, woke;
        int delivery = -1;

        (void)state;
        assert_int_equal(cpn_waiter_new(producer, &w), 0);
        assert_int_equal(run(w, 0, 300, 100, &delivery, &decided, &woke), 0);
        assert_int_equal(delivery, CPN_DELIVERY_PENDING);
        assert_true(woke >= decided + 100);
        assert_true(woke < decided + 500);
        cpn_waiter_free(producer, w);
}

/* COUPON_KAFKA_ACK_TIMEOUT_MS=0: the answer comes with the decision. */
static void test_no_wait_answers_with_the_decision(void **state) {
        struct cpn_waiter *w;
        long decided, woke;
        int delivery = -1;

        (void)state;
        assert_int_equal(cpn_waiter_new(producer, &w), 0);
        assert_int_equal(run(w, 0, 50, 0, &delivery, &decided, &woke), 0);
        assert_int_equal(delivery, CPN_DELIVERY_PENDING);
        assert_true(woke < decided + 300);
        /* A store error is handed through the same way. */
        assert_int_equal(run(w, -EIO, 20, 0, &delivery, &decided, &woke), -EIO);
        assert_true(woke < decided + 300);
        cpn_waiter_free(producer, w);
}

/* The waiter serves one wait after another: nothing of the last one
 * leaks into the next. */
static void test_waits_in_a_row(void **state) {
        struct cpn_waiter *w;
        long decided, woke;
        int delivery = -1;

        (void)state;
        assert_int_equal(cpn_waiter_new(producer, &w), 0);
        for (int i = 0; i < 20; i++) {
                int want = i % 3 == 0 ? OTHER_REFUSAL : i % 3 == 1 ? 0 : NOT_FOUND;

                delivery = -1;
                assert_int_equal(run(w, want, i % 2, 30, &delivery, &decided, &woke), want);
                if (want == 0) {
                        assert_int_equal(delivery, CPN_DELIVERY_PENDING);
                        assert_true(woke >= decided + 30);
                }
                assert_true(woke < decided + 400);
        }
        cpn_waiter_free(producer, w);
}

/* One handle per topic name; another name gets another. */
static void test_topic_handles(void **state) {
        struct cpn_error err = { { 0 } };
        struct cpn_topic *a = NULL, *b = NULL;

        (void)state;
        assert_int_equal(cpn_producer_topic(producer, "test.topic", &a, &err), 0);
        assert_ptr_equal(a, topic);
        assert_int_equal(cpn_producer_topic(producer, "other.topic", &b, &err), 0);
        assert_ptr_not_equal(b, topic);
}

static int never_made(void *ud, size_t i, struct cpn_outgoing *m) {
        (void)ud;
        (void)i;
        (void)m;
        return -ENOBUFS;
}

static int oversized_tag(void *ud, size_t i, struct cpn_outgoing *m) {
        static char tag[CPN_PRODUCER_TAG_MAX + 1];

        (void)ud;
        (void)i;
        *m = (struct cpn_outgoing){ .topic = topic, .key = "k", .key_len = 1, .value = "{}", .len = 2,
                                    .tag = tag, .tag_len = sizeof(tag) };
        return 0;
}

/* A message that cannot be made, or whose tag does not fit, is not
 * produced: the send says so (a negative errno) at once instead of sitting
 * out its deadline for a report that cannot come. */
static void test_unmade_messages_fail_at_once(void **state) {
        struct cpn_waiter *w;
        long start;

        (void)state;
        assert_int_equal(cpn_waiter_new(producer, &w), 0);
        start = now_ms();
        assert_true(cpn_producer_send_wait(producer, w, 3, never_made, NULL, 2000) < 0);
        assert_true(cpn_producer_send_wait(producer, w, 1, oversized_tag, NULL, 2000) < 0);
        assert_true(now_ms() - start < 1000);
        cpn_waiter_free(producer, w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_refusal_wakes_at_once),
                cmocka_unit_test(test_issued_waits_from_the_decision),
                cmocka_unit_test(test_late_decision_wakes_the_sleeper),
                cmocka_unit_test(test_no_wait_answers_with_the_decision),
                cmocka_unit_test(test_waits_in_a_row),
                cmocka_unit_test(test_topic_handles),
                cmocka_unit_test(test_unmade_messages_fail_at_once),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
