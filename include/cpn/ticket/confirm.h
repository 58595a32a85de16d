#pragma once
/*
 * The confirmer: coupon-worker's thread that consumes COUPON_TICKET_TOPIC
 * (group COUPON_WORKER_GROUP + "-tickets") and confirms each paid ticket
 * once: in one transaction the guarded PAID -> CONFIRMED and the payments
 * row (unique on the ticket and on the payment key), with offsets stored
 * only after the commit. A redelivered or duplicated event changes
 * nothing; one that cannot be applied (not an event, an unknown ticket, a
 * ticket that is not PAID) becomes a failed_events row, as a coupon's
 * would (scope: the ticket type, subject: the ticket, when the event
 * could be decoded that far), in the same transaction, and its offset is
 * stored. Those rows are retried like a coupon's (db.h's failed events:
 * COUPON_RETRY_BASE_MS doubling up to COUPON_RETRY_MAX_MS, dead after
 * COUPON_RETRY_MAX_ATTEMPTS, shared between workers by SKIP LOCKED).
 *
 * Created and freed by coupon-worker's main; owns its consumer and MySQL
 * connection.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/consumer.h"
#include "cpn/db.h"
#include "cpn/error.h"

struct cpn_ticket_confirmer;

struct cpn_ticket_confirm_stats {
        uint64_t messages;        /* messages done with: confirmed, duplicates and failed */
        uint64_t confirmed;       /* PAID -> CONFIRMED, from the topic or a retried failed event */
        uint64_t duplicates;      /* already confirmed: redelivered or published twice */
        uint64_t failed;          /* recorded in failed_events */
        uint64_t poison;          /* of those, the ones that were no ticket event at all */
        uint64_t retries;         /* transient MySQL failures of a message */
        uint64_t retry_resolved;  /* failed events confirmed on a retry */
        uint64_t retry_dead;
        int64_t last_ms;          /* wall clock of the last commit; 0: none yet */
        unsigned retry_attempts;  /* failed attempts of the message in hand; 0: not retrying */
        int assigned;             /* partitions assigned, as of the last second */
};

/* Creates the consumer (on the calling thread; from then on only the
 * confirmer's thread uses it) and starts the thread. When its consumer
 * fails for good, the thread logs it, sets *@stop_process (may be NULL)
 * and ends. */
int cpn_ticket_confirmer_new(struct cpn_ticket_confirmer **ret, const struct cpn_config *cfg,
                             const struct cpn_db_url *db_url, volatile sig_atomic_t *stop_process,
                             struct cpn_error *err);
/* Finishes the batch in hand, leaves the group, frees. Accepts NULL. */
struct cpn_ticket_confirmer *cpn_ticket_confirmer_free(struct cpn_ticket_confirmer *c);
/* What the confirmer counted since it started. Any thread, no lock. */
void cpn_ticket_confirmer_stats(const struct cpn_ticket_confirmer *c, struct cpn_ticket_confirm_stats *out);
/* Its partitions' lag as of the last second (cpn_consumer_lag_update):
 * at most @max into @out, returns how many. Any thread. */
size_t cpn_ticket_confirmer_lag(const struct cpn_ticket_confirmer *c, struct cpn_partition_lag *out, size_t max);
/* The confirm of one ticket.paid payload, as failed events retry it
 * (cpn_db_failed_apply_fn): couponctl's `failed retry` uses it with @ud
 * NULL; the confirmer passes itself, to count what it confirmed. */
int cpn_ticket_confirm_apply(struct cpn_db *db, const char *payload, size_t len, struct cpn_error *why, void *ud);
/* Whether its consumer failed for good (the thread has stopped: main exits 1). */
bool cpn_ticket_confirmer_failed(struct cpn_ticket_confirmer *c, struct cpn_error *err);
