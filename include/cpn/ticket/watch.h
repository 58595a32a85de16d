#pragma once
/*
 * What an operator watches of the ticket product during a sale, read from
 * MySQL (the truth, whichever process sold): each type's stock by ticket
 * status, and the outbox rows not yet on Kafka. For coupon-api's monitor
 * (src/api/monitor.c): about once a second, on its own connection.
 */
#include <stddef.h>
#include <stdint.h>

#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/ticket/ticket.h"

struct cpn_ticket_watch {
        struct cpn_ticket_type_state st; /* held, sold (PAID + CONFIRMED) and MySQL's clock */
        int64_t issued;                  /* ticket_types.issued: held + sold as the stock counts them */
        int64_t by_status[_CPN_TS_N];    /* tickets of the type in each status */
        int64_t in_flight;               /* payments begun, outcome not yet recorded */
};

/* Fills @out with at most @cap ticket types, the most recently created
 * first; *@n gets how many. Returns 0 or an error as cpn_db_run. */
int cpn_ticket_watch_types(struct cpn_db *db, struct cpn_ticket_watch *out, size_t cap, size_t *n,
                           struct cpn_error *err);
/* Outbox rows not yet published. */
int cpn_ticket_watch_outbox(struct cpn_db *db, int64_t *unpublished, struct cpn_error *err);
