#pragma once
/*
 * The ticket product's domain calls, one per request: create and read a
 * type, reserve, read and cancel a ticket. Redis is the gate (the flood of
 * a sale is answered there); MySQL is the truth for stock and tickets, and
 * every change of a ticket is an UPDATE guarded on its status. struct
 * cpn_ticket_service is shared and read-only after creation; a struct
 * cpn_ticket_session is one thread's (its Redis connection); MySQL is
 * borrowed from the pool per call. No lock is held across any I/O.
 */
#include <stdbool.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/store.h"
#include "cpn/ticket/reaper.h"
#include "cpn/ticket/ticket.h"

struct cpn_ticket_reserver;

struct cpn_ticket_service {
        const struct cpn_config *cfg;
        const struct cpn_redis_url *redis_url; /* borrowed; main's */
        struct cpn_db_pool *db_pool;           /* borrowed; main's */
        struct cpn_redis_pipe *pipe;           /* borrowed; main's: reservations' gate (NULL: none taken) */
        struct cpn_ticket_reaper *reaper;      /* borrowed; main's: gives back holds of lost gate answers */
        struct cpn_ticket_reserver *reserver;  /* owned: open/close below; NULL: each reservation alone */
};

/* Makes the reserver that combines the reservations of all request
 * threads into shared MySQL transactions (coupon-api; couponctl needs
 * none). Call before the first session; close after the last. Returns 0
 * or -ENOMEM. */
int cpn_ticket_service_open(struct cpn_ticket_service *svc);
void cpn_ticket_service_close(struct cpn_ticket_service *svc);

struct cpn_ticket_session;

int cpn_ticket_session_new(struct cpn_ticket_session **ret, const struct cpn_ticket_service *svc);
struct cpn_ticket_session *cpn_ticket_session_free(struct cpn_ticket_session *s);

/*
 * Writes the MySQL row, then the Redis gate from MySQL's row. Returns 0
 * (created: exactly one of identical creates), CPN_TICKET_TYPE_SAME (it
 * exists with these fields), CPN_TICKET_TYPE_EXISTS (with other fields),
 * CPN_TICKET_TYPE_PARTIAL (MySQL has it, Redis could not be written: a
 * repeat completes it), or a negative errno (nothing written). *@stored
 * is the row as MySQL has it whenever MySQL answered.
 */
int cpn_ticket_type_create(struct cpn_ticket_session *s, const struct cpn_ticket_type *t,
                           struct cpn_ticket_type_state *stored, struct cpn_error *err);
/* The type and its stock from MySQL. Returns 0 or CPN_TICKET_TYPE_NOT_FOUND. */
int cpn_ticket_type_get(struct cpn_ticket_session *s, const char *id, struct cpn_ticket_type_state *out,
                        struct cpn_error *err);

/*
 * Reserves a ticket of @type_id for @user_id. Returns 0 (a new PENDING
 * ticket in @out), CPN_TICKET_HELD (the user's live ticket in @out),
 * CPN_TICKET_SOLD_OUT, CPN_TICKET_NOT_OPEN (the reason in @err),
 * CPN_TICKET_TYPE_NOT_FOUND, CPN_UNKNOWN (MySQL's commit went unanswered:
 * the ticket may exist; repeating the request tells, never taking a
 * second one) or a negative errno (nothing taken).
 */
int cpn_ticket_reserve(struct cpn_ticket_session *s, const char *type_id, const char *user_id,
                       struct cpn_ticket *out, struct cpn_error *err);
/* Returns 0 with @out, or CPN_TICKET_NOT_FOUND. */
int cpn_ticket_get(struct cpn_ticket_session *s, const char *ticket_id, struct cpn_ticket *out,
                   struct cpn_error *err);
/*
 * Pays ticket @ticket_id through the gateway (no transaction open during
 * the call; order id and Idempotency-Key the ticket's). Returns 0 (@out
 * PAID, or PAID/CONFIRMED already with this @key), CPN_TICKET_NOT_FOUND,
 * CPN_TICKET_AMOUNT_MISMATCH, CPN_TICKET_DECLINED (the gateway's code and
 * message in @err; still PENDING), CPN_TICKET_HOLD_EXPIRED (nothing
 * charged, or the charge cancelled), CPN_TICKET_ALREADY_PAID,
 * CPN_TICKET_PAYMENT_UNKNOWN (no answer in COUPON_PAYMENT_TIMEOUT_MS: the
 * settler asks the gateway and the ticket shows the outcome),
 * CPN_TICKET_PAYMENT_DISABLED, CPN_TICKET_GATEWAY_DOWN (nothing charged),
 * -EBUSY (another payment of the ticket is in flight), or a negative errno
 * (MySQL unreachable before any charge).
 */
int cpn_ticket_pay(struct cpn_ticket_session *s, const char *ticket_id, const char *key, int64_t amount,
                   struct cpn_ticket *out, struct cpn_error *err);
/* Gives a PENDING hold back at once. Returns 0 (@out CANCELLED),
 * CPN_TICKET_NOT_PENDING (@out as it is), CPN_TICKET_NOT_FOUND. */
int cpn_ticket_cancel(struct cpn_ticket_session *s, const char *ticket_id, struct cpn_ticket *out,
                      struct cpn_error *err);
