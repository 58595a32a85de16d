#pragma once
/*
 * Consumer: coupon-worker's side of Kafka. Works with librdkafka (no other
 * module sees it): a consumer-group member subscribed to the topic, with
 * offsets stored by hand only after what they cover is durable in MySQL
 * (enable.auto.offset.store=false; librdkafka commits stored offsets in
 * the background and on close), which is at-least-once delivery.
 *
 * A struct cpn_consumer belongs to one thread: every call below must come
 * from the thread that created it.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/error.h"

struct cpn_consumer;

/* One message, borrowed from the consumer until cpn_consumer_release(). */
struct cpn_message {
        const char *topic;
        int32_t partition;
        int64_t offset;
        const void *key;
        size_t key_len;
        const void *payload;
        size_t len;
        void *opaque;
};

struct cpn_consumer_stats {
        int assigned;         /* partitions currently assigned */
        uint64_t rebalances;
        bool paused;
};

/* Creates the consumer (group COUPON_WORKER_GROUP, earliest offset for a new
 * group) and subscribes to the topic. Returns 0, CPN_INVALID (bad Kafka
 * configuration) or a negative errno. */
int cpn_consumer_new(struct cpn_consumer **ret, const struct cpn_config *cfg, struct cpn_error *err);
/* The same for @topic as a member of @group (both copied by librdkafka). */
int cpn_consumer_new_for(struct cpn_consumer **ret, const struct cpn_config *cfg, const char *topic,
                         const char *group, struct cpn_error *err);

/* Commits what was stored, leaves the group (its partitions go to the
 * others at once), frees. Accepts NULL. */
struct cpn_consumer *cpn_consumer_free(struct cpn_consumer *c);

/*
 * Appends messages to @out from index *@n up to @max: waits up to @wait_ms
 * for the first, then at most @fill_ms more for the batch to fill. Serves
 * rebalances and Kafka's events meanwhile; call it regularly even while
 * paused (the group evicts a member that stops polling). Consumer errors
 * that librdkafka recovers from are logged at debug and not returned.
 * Returns 0, or -EIO on a fatal consumer error (text in @err).
 */
int cpn_consumer_poll(struct cpn_consumer *c, struct cpn_message *out, size_t max, size_t *n,
                      long wait_ms, long fill_ms, struct cpn_error *err);

/* Stores, for each partition, the offset after the last of @msgs. Only for
 * messages that are durable elsewhere. Partitions no longer assigned are
 * skipped (their new owner reads them again: harmless, writes are
 * idempotent). */
int cpn_consumer_store(struct cpn_consumer *c, const struct cpn_message *msgs, size_t n,
                       struct cpn_error *err);

/* Gives the messages back to librdkafka. */
void cpn_consumer_release(struct cpn_consumer *c, struct cpn_message *msgs, size_t n);

/* Pauses (stops fetching) or resumes every assigned partition; partitions
 * assigned later follow. When resumed, fetching goes on after the last
 * message handed out. */
void cpn_consumer_pause(struct cpn_consumer *c, bool pause);

void cpn_consumer_stats(struct cpn_consumer *c, struct cpn_consumer_stats *out);

/*
 * The lag of a consumer's assigned partitions, published by its thread
 * for any other to read (a metrics endpoint) without a lock: a sequence
 * count that is odd while the thread writes, and a reader that copies
 * again when it changed meanwhile. Zero-initialized is valid (nothing
 * assigned). Partitions past CPN_LAG_PARTITIONS are left out.
 */
#define CPN_LAG_PARTITIONS 256

struct cpn_partition_lag {
        int32_t partition;
        int64_t lag;
};

struct cpn_consumer_lag {
        _Atomic uint64_t seq;
        _Atomic uint32_t n;
        _Atomic int32_t partition[CPN_LAG_PARTITIONS];
        _Atomic int64_t lag[CPN_LAG_PARTITIONS];
};

/*
 * Measures each assigned partition's lag without asking the broker: the
 * last high watermark librdkafka saw (each fetch brings it; a paused
 * partition's is as old as its last fetch) minus the offset of the first
 * message not yet done with, which is the position minus the messages of
 * that partition in @in_hand (read, not yet stored). Partitions whose
 * watermark is not known yet, or whose position is not (nothing read
 * from it yet) while it holds messages, are left out. Publishes into
 * @out. The consumer's thread only.
 */
void cpn_consumer_lag_update(struct cpn_consumer *c, const struct cpn_message *in_hand, size_t n,
                             struct cpn_consumer_lag *out);
/* Copies the published partitions (at most @max) into @out and returns
 * how many. Any thread, no lock. */
size_t cpn_consumer_lag_read(const struct cpn_consumer_lag *l, struct cpn_partition_lag *out, size_t max);

/*
 * The consumer group's lag on the topic: for each partition, the high
 * watermark minus the group's committed offset (minus the low watermark
 * when nothing is committed yet), summed. Opens its own short-lived
 * client; any thread. Returns 0 or a negative errno (broker unreachable
 * within @timeout_ms).
 */
int cpn_kafka_group_lag(const struct cpn_config *cfg, const char *group, long timeout_ms, int64_t *lag,
                        struct cpn_error *err);
