#pragma once
/*
 * Events: Kafka for any product. Works with librdkafka (no other module
 * sees it): one idempotent producer (acks=all) shared by all threads, and
 * one thread of its own that serves delivery reports. A message is a
 * topic, a key and bytes; its report wakes the thread waiting for it (a
 * struct cpn_waiter), or calls the sender's callback, and a message with a
 * tag hands the tag to the product's sink once Kafka has it, in one batch
 * per poll (the coupon product removes its Redis outbox entries there).
 *
 * A message whose delivery failed or is unknown is never compensated here:
 * what the product keeps to send again (an outbox) stays until the sink
 * says it was delivered.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/error.h"

struct cpn_producer;
struct cpn_waiter;
struct cpn_topic; /* a topic handle: the producer's, freed with it */

#define CPN_PRODUCER_TAG_MAX 128

/* One message to produce. Everything is copied by the call that takes it:
 * the caller's buffers are free again on return. */
struct cpn_outgoing {
        struct cpn_topic *topic;
        const void *key;
        size_t key_len;
        const void *value;
        size_t len;
        const void *tag; /* NULL, or CPN_PRODUCER_TAG_MAX bytes at most: see the sink */
        size_t tag_len;
};

/* Where the tags of delivered messages go: delivered() runs on the report
 * thread after each poll with the tags of the messages Kafka acknowledged
 * during it (n > 0; borrowed for the call), and once more at shutdown. It
 * may do I/O (one round trip); the reports behind it wait meanwhile. */
struct cpn_producer_sink {
        void (*delivered)(void *ud, const void *const *tags, size_t n);
        void *ud;
};

/* Delivery outcomes returned by cpn_producer_send_wait (positive). */
enum {
        CPN_DELIVERY_PENDING = CPN_DELIVERY_BASE, /* no report within the wait; the outbox carries it */
        CPN_DELIVERY_FAILED,        /* Kafka refused or timed out; the outbox carries it */
};

struct cpn_producer_stats {
        uint64_t delivered;
        uint64_t failed;        /* delivery reports with an error */
        uint64_t enqueue_failed;/* produce() refused (queue full, ...) */
        int64_t in_flight;      /* librdkafka's out queue */
        bool brokers_down;      /* last broker-state event said all down */
        char last_error[160];
};

/*
 * Creates the producer from @cfg (brokers, linger, message timeout,
 * COUPON_KAFKA_CONFIG extras) and starts its report thread. @sink (may be
 * NULL; copied) gets the tags of delivered messages; whatever it uses must
 * outlive the producer. Returns 0, CPN_INVALID (bad Kafka configuration,
 * text in @err) or a negative errno.
 */
int cpn_producer_new(struct cpn_producer **ret, const struct cpn_config *cfg, const struct cpn_producer_sink *sink,
                     struct cpn_error *err);

/* The handle of topic @name, created on first ask (any thread; the same
 * handle for the same name). Returns 0 or -EINVAL (text in @err). */
int cpn_producer_topic(struct cpn_producer *p, const char *name, struct cpn_topic **ret, struct cpn_error *err);
/* Flushes for at most @drain_ms, stops the report thread, frees. */
struct cpn_producer *cpn_producer_free(struct cpn_producer *p, long drain_ms);

/* A waiter belongs to one thread and waits for one batch at a time. The
 * producer owns its memory (late reports may still point at it), so
 * cpn_waiter_free() only hands it back; both may be called from any thread
 * while @p lives. */
int cpn_waiter_new(struct cpn_producer *p, struct cpn_waiter **ret);
struct cpn_waiter *cpn_waiter_free(struct cpn_producer *p, struct cpn_waiter *w);

/*
 * Produces @n messages, each filled in turn by @next(@ud, i, m) (which
 * returns 0, or non-zero: that message is not produced and counts as
 * failed), and waits up to @wait_ms for all their reports (@wait_ms 0: do
 * not wait). Returns 0 when every one was delivered, CPN_DELIVERY_PENDING,
 * CPN_DELIVERY_FAILED (at least one), or a negative errno when a message
 * could not even be enqueued. Any thread; @w must be the caller's own.
 */
int cpn_producer_send_wait(struct cpn_producer *p, struct cpn_waiter *w, size_t n,
                           int (*next)(void *ud, size_t i, struct cpn_outgoing *m), void *ud, long wait_ms);

/*
 * One request answered with one sleep, when the decision is taken on
 * another thread (the Redis pipe's):
 * - the request's thread arms its waiter (cpn_waiter_arm: returns the
 *   wait's generation), hands the generation to the deciding thread and
 *   calls cpn_waiter_wait;
 * - the deciding thread calls cpn_producer_decide once with the decision
 *   (0: @m is produced with this waiter; else a product's code or a
 *   negative errno, and @m may be NULL). @m and what it points to are
 *   borrowed for the call only and must not be the owner's memory: the
 *   owner may return as soon as it sees the decision (copy the key and
 *   value into the deciding thread's own buffers).
 * - cpn_waiter_wait returns the decision once it is known and, for 0, the
 *   delivery report has come or @wait_ms have passed since the decision
 *   (*@delivery as cpn_producer_send_wait returns it; with @wait_ms 0 it
 *   does not wait for Kafka: CPN_DELIVERY_PENDING).
 * The waiter must not be used for anything else in between.
 */
uint64_t cpn_waiter_arm(struct cpn_waiter *w, long wait_ms);
void cpn_producer_decide(struct cpn_producer *p, struct cpn_waiter *w, uint64_t gen, int decision,
                         const struct cpn_outgoing *m, long wait_ms);
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
