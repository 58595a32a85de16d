#pragma once
/* Shared by the ticket product's files only: its Redis gate (gate.c) and
 * its SQL (sql.c), both on the shared layers' generic calls. */
#include "cpn/db.h"
#include "cpn/store.h"
#include "cpn/ticket/ticket.h"

/* ---- gate.c: the Redis gate ---- */

/* Writes the gate's meta from MySQL's row. *@created: this call wrote it. */
int cpn_gate_type_set(struct cpn_redis *r, const struct cpn_ticket_type *t, bool *created, struct cpn_error *err);

enum cpn_gate_answer { CPN_GATE_OK, CPN_GATE_HELD, CPN_GATE_SOLD_OUT, CPN_GATE_NOT_OPEN, CPN_GATE_NO_TYPE };
/* Runs reserve.lua through the pipe (the hot path: one pipelined batch for
 * many request threads). *@held: the id the user's hold names (ok or
 * held), *@age_ms how long ago that hold was recorded (held); @why:
 * "scheduled" or "ended" on not_open. */
int cpn_gate_reserve(struct cpn_redis_pipe *p, const char *type_id, const char *user_id, const char *new_id,
                     enum cpn_gate_answer *ans, char held[CPN_TICKET_ID_LEN + 1], int64_t *age_ms, char why[16],
                     struct cpn_error *err);
/* Gives back the hold of @ticket_id, if it is that one's. */
int cpn_gate_release(struct cpn_redis *r, const char *type_id, const char *user_id, const char *ticket_id,
                     bool *released, struct cpn_error *err);

/* ---- sql.c: MySQL, the truth ---- */

/* Inserts the row. Returns 0, CPN_TICKET_TYPE_SAME or CPN_TICKET_TYPE_EXISTS; *@stored is MySQL's row. */
int cpn_sql_type_insert(struct cpn_db *db, const struct cpn_ticket_type *t, struct cpn_ticket_type *stored,
                        struct cpn_error *err);
/* The type and its counts. Returns 0 or CPN_TICKET_TYPE_NOT_FOUND. */
int cpn_sql_type_get(struct cpn_db *db, const char *id, struct cpn_ticket_type_state *out, struct cpn_error *err);
/* One reservation that passed the gate, in a batch of several request
 * threads'. */
struct cpn_sql_reservation {
        const char *type_id, *user_id, *id; /* borrowed */
        struct cpn_ticket *out;             /* the PENDING ticket, when r is 0 */
        struct cpn_error *err;              /* its own error text */
        int r;
};
#define CPN_SQL_RESERVE_BATCH 128 /* 6 parameters a row: within CPN_DB_PARAMS_MAX */
/*
 * One transaction for @v[0..n) (n <= CPN_SQL_RESERVE_BATCH): per type,
 * stock taken by the conditional UPDATE `issued + n <= total` and the n
 * PENDING tickets inserted in one statement; a type MySQL refuses whole
 * (less stock than asked, a user with a live ticket: the unique key) goes
 * one reservation at a time behind savepoints, so each gets its own
 * answer. Returns 0 with each v[i]->r: 0 (@out filled),
 * CPN_TICKET_SOLD_OUT, CPN_TICKET_HELD (the user has a live ticket),
 * CPN_TICKET_TYPE_NOT_FOUND or CPN_UNKNOWN (the commit went unanswered);
 * or a negative errno for all of them (rolled back, nothing written).
 * Reorders @v. @params: room for CPN_SQL_RESERVE_PARAMS values, the
 * caller's (kept off the request threads' stacks).
 */
#define CPN_SQL_RESERVE_PARAMS (CPN_SQL_RESERVE_BATCH * 6)
int cpn_sql_reserve_batch(struct cpn_db *db, struct cpn_sql_reservation **v, size_t n, struct cpn_db_val *params,
                          struct cpn_error *err);
/* Returns 0 or CPN_TICKET_NOT_FOUND. */
int cpn_sql_ticket_get(struct cpn_db *db, const char *id, struct cpn_ticket *out, struct cpn_error *err);
/* The user's live ticket of the type: 0 or CPN_TICKET_NOT_FOUND. */
int cpn_sql_ticket_live(struct cpn_db *db, const char *type_id, const char *user_id, struct cpn_ticket *out,
                        struct cpn_error *err);
/* PENDING (no payment in flight) -> CANCELLED and issued - 1 in one
 * transaction. Returns 0, CPN_TICKET_NOT_PENDING or CPN_TICKET_NOT_FOUND;
 * @out is the ticket after it. */
int cpn_sql_cancel(struct cpn_db *db, const char *id, struct cpn_ticket *out, struct cpn_error *err);

/* ---- payment.c: payments and their settling ---- */

struct cpn_gateway;
struct cpn_gw_answer;

/* Before the gateway call (one transaction): see begin_tx in payment.c.
 * Returns 0 with @t and *@attempt, CPN_TICKET_HELD (paid with this key
 * already: @t), CPN_TICKET_NOT_FOUND, CPN_TICKET_AMOUNT_MISMATCH,
 * CPN_TICKET_ALREADY_PAID, CPN_TICKET_HOLD_EXPIRED, -EBUSY, or an error. */
int cpn_pay_begin(struct cpn_db *db, const char *id, const char *key, int64_t amount, struct cpn_ticket *t,
                  int64_t *attempt, struct cpn_error *err);
/* The gateway call of @attempt, with no transaction open. */
int cpn_pay_call(struct cpn_gateway *gw, const struct cpn_ticket *t, const char *key, int64_t attempt,
                 struct cpn_gw_answer *a);
/* Records what the call answered. Returns 0 (PAID), CPN_TICKET_DECLINED,
 * CPN_TICKET_HOLD_EXPIRED (charged too late: cancelled, REFUNDED),
 * CPN_TICKET_PAYMENT_UNKNOWN (left to the settler), CPN_TICKET_GATEWAY_DOWN
 * (the gateway refused or was unreachable: nothing charged), or an error
 * (-EIO is MySQL's alone: the pool's breaker counts it). */
int cpn_pay_finish(struct cpn_db *db, struct cpn_gateway *gw, const struct cpn_ticket *t, const char *key,
                   int64_t attempt, const struct cpn_gw_answer *a, struct cpn_error *err);
/* Settles up to @limit attempts whose outcome went unrecorded for longer
 * than @timeout_ms (and a second): asks the gateway by order id, records
 * PAID (or a refund when the hold is gone) or ends the attempt. *@n gets
 * how many were settled. Returns 0 or the first error. */
int cpn_ticket_settle(struct cpn_db *db, struct cpn_gateway *gw, long timeout_ms, size_t limit, size_t *n,
                      struct cpn_error *err);
