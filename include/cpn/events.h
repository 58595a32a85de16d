#pragma once
/*
 * Events: the hand-off of accepted issuances to Kafka. Works with
 * librdkafka (no other module sees it): one idempotent producer (acks=all)
 * shared by all threads, and one thread of its own that serves delivery
 * reports. That thread wakes the request waiting for each report and
 * removes the outbox entries of delivered messages from Redis in one
 * pipelined batch per poll, over its own Redis connection.
 *
 * A message whose delivery failed or is unknown is never compensated: its
 * outbox entry stays, and the relay (cpn_relay) produces it again later.
 */
#include <stdbool.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/error.h"
#include "cpn/store.h"
#include "cpn/types.h"

struct cpn_producer;
struct cpn_waiter;

/* Delivery outcomes returned by cpn_producer_send_wait (positive). */
enum {
        CPN_DELIVERY_PENDING = CPN_DELIVERY_BASE, /* no report within the wait; the outbox carries it */
        CPN_DELIVERY_FAILED,        /* Kafka refused or timed out; the outbox carries it */
};

struct cpn_producer_stats {
        uint64_t delivered;
        uint64_t failed;        /* delivery reports with an error */
        uint64_t enqueue_failed;/* produce() refused (queue full, ...) */
        uint64_t outbox_deleted;
        int64_t in_flight;      /* librdkafka's out queue */
        bool brokers_down;      /* last broker-state event said all down */
        char last_error[160];
};

/*
 * Creates the producer from @cfg (brokers, topic, linger, message timeout,
 * COUPON_KAFKA_CONFIG extras) and starts its report thread, which opens its
 * own connection to @redis. Returns 0, CPN_INVALID (bad Kafka configuration,
 * text in @err) or a negative errno.
 */
int cpn_producer_new(struct cpn_producer **ret, const struct cpn_config *cfg,
                     const struct cpn_redis_url *redis, struct cpn_error *err);
/* Flushes for at most @drain_ms, stops the report thread, frees. */
struct cpn_producer *cpn_producer_free(struct cpn_producer *p, long drain_ms);

/* A waiter belongs to one thread and waits for one batch at a time. The
 * producer owns its memory (late reports may still point at it), so
 * cpn_waiter_free() only hands it back; both may be called from any thread
 * while @p lives. */
int cpn_waiter_new(struct cpn_producer *p, struct cpn_waiter **ret);
struct cpn_waiter *cpn_waiter_free(struct cpn_producer *p, struct cpn_waiter *w);

/*
 * Produces the @n issuances and waits up to @wait_ms for all their reports
 * (@wait_ms 0: do not wait). Returns 0 when every one was delivered,
 * CPN_DELIVERY_PENDING, CPN_DELIVERY_FAILED (at least one), or a negative
 * errno when a message could not even be enqueued. In every non-zero case
 * the outbox still holds the undelivered entries. Any thread; @w must be
 * the caller's own.
 */
int cpn_producer_send_wait(struct cpn_producer *p, struct cpn_waiter *w,
                           const struct cpn_issuance *iss, size_t n, long wait_ms);

/*
 * One issue request answered with one sleep, when the decision is taken on
 * another thread (the issue pipe's):
 * - the request's thread arms its waiter (cpn_waiter_arm: returns the
 *   wait's generation), hands the generation to the deciding thread and
 *   calls cpn_waiter_wait;
 * - the deciding thread calls cpn_producer_decide once with the decision
 *   (0: issued, @iss produced with this waiter; else a store code or a
 *   negative errno). It copies what it needs from @iss before the owner
 *   can see the decision, so @iss may live on the owner's stack.
 * - cpn_waiter_wait returns the decision once it is known and, for 0, the
 *   delivery report has come or @wait_ms have passed since the decision
 *   (*@delivery as cpn_producer_send_wait returns it; with @wait_ms 0 it
 *   does not wait for Kafka: CPN_DELIVERY_PENDING).
 * The waiter must not be used for anything else in between.
 */
uint64_t cpn_waiter_arm(struct cpn_waiter *w, long wait_ms);
void cpn_producer_decide(struct cpn_producer *p, struct cpn_waiter *w, uint64_t gen, int decision,
                         const struct cpn_issuance *iss, long wait_ms);
int cpn_waiter_wait(struct cpn_waiter *w, long wait_ms, int *delivery);

void cpn_producer_stats(struct cpn_producer *p, struct cpn_producer_stats *out);

/*
 * Produces one message of any product: @value (@len bytes) with @key to
 * @topic, copied (the caller's buffers are free again on return), with the
 * same idempotent producer (acks=all). @report(@ud, 0 or -EIO) is called
 * exactly once, on the report thread, when Kafka acknowledged or refused
 * it: it must not block. Returns 0 (then @report will be called),
 * -ENOBUFS (librdkafka's queue is full), -EIO or -ENOMEM (not produced, no
 * report). Any thread.
 */
int cpn_producer_send_bytes(struct cpn_producer *p, const char *topic, const void *key, size_t key_len,
                            const void *value, size_t len, void (*report)(void *ud, int err), void *ud);

/*
 * The outbox relay: a thread that, every COUPON_RELAY_INTERVAL_MS, walks
 * the registered campaigns and produces again each outbox entry older than
 * COUPON_RELAY_AFTER_MS (left by a crashed coupon-api, or while Kafka was
 * down). A lease per campaign keeps several coupon-api instances from
 * relaying the same entries at once; duplicates are harmless anyway.
 */
struct cpn_relay;
int cpn_relay_new(struct cpn_relay **ret, const struct cpn_config *cfg,
                  const struct cpn_redis_url *redis, struct cpn_producer *p,
                  struct cpn_error *err);
struct cpn_relay *cpn_relay_free(struct cpn_relay *r);
uint64_t cpn_relay_relayed(struct cpn_relay *r);
