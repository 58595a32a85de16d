#pragma once
/*
 * The coupon product's hand-off to Kafka, on the shared producer
 * (events.h): an issuance becomes a message of the contract (key: the user
 * id; value: the JSON of cpn_issuance_json) tagged with its Redis outbox
 * entry, and the outbox cleaner, the producer's sink, removes the entries
 * of delivered messages in one pipelined round trip per poll. A message
 * whose delivery failed or is unknown is never compensated: its outbox
 * entry stays, and the relay produces it again later.
 */
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/coupon/campaign.h"
#include "cpn/error.h"
#include "cpn/events.h"
#include "cpn/store.h"

/* The outbox cleaner. Its Redis connection is used on the producer's report
 * thread only. Created before the producer whose sink it is, freed after. */
struct cpn_coupon_outbox;

int cpn_coupon_outbox_new(struct cpn_coupon_outbox **ret, const struct cpn_redis_url *url, long timeout_ms);
struct cpn_coupon_outbox *cpn_coupon_outbox_free(struct cpn_coupon_outbox *o);
/* The sink to give cpn_producer_new. */
struct cpn_producer_sink cpn_coupon_outbox_sink(struct cpn_coupon_outbox *o);
/* Outbox entries removed after delivery so far. Any thread. */
uint64_t cpn_coupon_outbox_deleted(struct cpn_coupon_outbox *o);

/* cpn_producer_send_wait of the @n issuances to @topic: 0 when Kafka has
 * them all, CPN_DELIVERY_PENDING, CPN_DELIVERY_FAILED, or a negative errno
 * (not even enqueued). In every non-zero case the outbox still holds the
 * undelivered entries. */
int cpn_coupon_send_wait(struct cpn_producer *p, struct cpn_topic *topic, struct cpn_waiter *w,
                         const struct cpn_issuance *iss, size_t n, long wait_ms);

/* cpn_producer_decide of an issue decision: 0 produces @iss (copied before
 * return) to @topic; any other decision wakes the waiter with it. */
void cpn_coupon_decide(struct cpn_producer *p, struct cpn_topic *topic, struct cpn_waiter *w, uint64_t gen,
                       int decision, const struct cpn_issuance *iss, long wait_ms);

/*
 * The outbox relay: a thread that, every COUPON_RELAY_INTERVAL_MS, walks
 * the registered campaigns and produces again each outbox entry older than
 * COUPON_RELAY_AFTER_MS (left by a crashed coupon-api, or while Kafka was
 * down) to COUPON_KAFKA_TOPIC. A lease per campaign keeps several
 * coupon-api instances from relaying the same entries at once; duplicates
 * are harmless anyway.
 */
struct cpn_relay;
int cpn_relay_new(struct cpn_relay **ret, const struct cpn_config *cfg, const struct cpn_redis_url *redis,
                  struct cpn_producer *p, struct cpn_error *err);
struct cpn_relay *cpn_relay_free(struct cpn_relay *r);
uint64_t cpn_relay_relayed(struct cpn_relay *r);
