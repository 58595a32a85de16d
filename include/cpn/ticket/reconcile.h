#pragma once
/*
 * Reconciling a ticket type's Redis gate with MySQL (the truth), for
 * couponctl ticket-type reconcile: after Redis lost data (a restart
 * without persistence, a failover), or to check a sale. Safe while the
 * sale goes on: it restores the gate's meta and the holds of live tickets
 * Redis lost, gives back holds of nothing live once they are older than
 * a reservation in progress can be (30 s), and never writes MySQL.
 */
#include <stdbool.h>
#include <stdint.h>

#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/store.h"

struct cpn_ticket_reconcile_report {
        int64_t issued;         /* MySQL's ticket_types.issued */
        int64_t live;           /* MySQL's live tickets (PENDING, PAID, CONFIRMED) */
        int64_t holds;          /* the gate's holds before */
        bool meta_restored;     /* the gate had lost the type */
        int64_t missing_holds;  /* live tickets without their hold */
        int64_t holds_restored;
        int64_t stale_holds;    /* holds of nothing live, older than 30 s */
        int64_t stale_released;
        int64_t in_progress;    /* differences younger than 30 s: left alone */
        /* Reported, never repaired here: coupon-api's settler, outbox relay
         * and coupon-worker's confirmer repair these while they run; past
         * these ages one of them is not running or not keeping up. */
        int64_t stuck_payments; /* PENDING with a payment in flight past the gateway timeout + 60 s */
        int64_t unpublished;    /* outbox rows of the type not on Kafka after 60 s */
        int64_t unconfirmed;    /* PAID for more than 60 s, not CONFIRMED */
};

/* With @dry_run, only reports. @payment_timeout_ms is
 * COUPON_PAYMENT_TIMEOUT_MS (what makes a payment in flight stuck).
 * Returns 0 or CPN_TICKET_TYPE_NOT_FOUND, or an error. */
int cpn_ticket_reconcile(struct cpn_db *db, struct cpn_redis *redis, const char *type_id, bool dry_run,
                         long payment_timeout_ms, struct cpn_ticket_reconcile_report *rep, struct cpn_error *err);
