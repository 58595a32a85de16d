#pragma once
/*
 * The built-in relay of the ticket outbox: a thread of coupon-api that
 * publishes the MySQL outbox's rows to COUPON_TICKET_TOPIC (key: the
 * ticket id, value: the payload exactly as written) with the shared
 * idempotent producer, and marks a row published only after Kafka's
 * delivery report. It claims rows in seq order with FOR UPDATE SKIP
 * LOCKED and a claim that expires (COUPON_KAFKA_MESSAGE_TIMEOUT_MS + 5 s),
 * so several relays share the work, no row that committed late is ever
 * skipped (there is no "last id seen"), no transaction stays open while
 * Kafka answers, and a relay killed at any moment costs at most a
 * duplicate. A deployment that runs Debezium's outbox event router
 * instead sets COUPON_TICKET_RELAY=0 (main then does not start it).
 *
 * Created and freed by coupon-api's main; it owns its MySQL connection and
 * borrows the producer.
 */
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/events.h"

struct cpn_ticket_relay;

int cpn_ticket_relay_new(struct cpn_ticket_relay **ret, const struct cpn_config *cfg,
                         const struct cpn_db_url *db_url, struct cpn_producer *producer, struct cpn_error *err);
struct cpn_ticket_relay *cpn_ticket_relay_free(struct cpn_ticket_relay *r);
/* Rows it has published so far. Any thread. */
uint64_t cpn_ticket_relay_published(const struct cpn_ticket_relay *r);
