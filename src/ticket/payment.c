/*
 * Payments: the gateway is called with no transaction open and no lock
 * held. Before the call the attempt is recorded in MySQL (key, attempt
 * number, payment_started_at); after it, its outcome is recorded by UPDATEs
 * guarded on the status and that attempt, so that a late answer, the
 * settler, the reaper and a retry can never both win. A charge that finds
 * the hold gone is cancelled at the gateway and the ticket REFUNDED.
 *
 * The settler (cpn_ticket_settle) asks the gateway by order id about every
 * attempt whose outcome was not recorded within the gateway's timeout (an
 * answer lost, a process killed during the call) and records what it says.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/log.h"
#include "cpn/ticket/gateway.h"
#include "ticket-internal.h"

#define TX_TRIES 3
/* After its timeout, an attempt's outcome is asked for this much later:
 * the time a request thread needs to record what it got. */
#define SETTLE_AFTER_MS 1000
/* "Nothing was charged" is believed only this long after the timeout: a
 * gateway may still be working on a call its client gave up on. Until
 * then the attempt stays in flight (and its hold is kept). */
#define NOT_FOUND_GRACE_MS 30000

#define TICKET_COLS "id, ticket_type_id, user_id, status, price, currency, expires_at, paid_at, confirmed_at"
static const char lock_sql[] =
        "SELECT " TICKET_COLS ", payment_key, payment_attempt, payment_started_at IS NOT NULL,"
        " expires_at > NOW(3) FROM tickets WHERE id = ? FOR UPDATE";
static const char begin_sql[] =
        "UPDATE tickets SET payment_key = ?, payment_attempt = payment_attempt + 1, payment_started_at = NOW(3)"
        " WHERE id = ? AND status = 'PENDING'";
static const char again_sql[] =
        "UPDATE tickets SET payment_started_at = NOW(3) WHERE id = ? AND status = 'PENDING' AND payment_attempt = ?";
static const char clear_sql[] =
        "UPDATE tickets SET payment_started_at = NULL WHERE id = ? AND payment_attempt = ?";
static const char paid_sql[] =
        "UPDATE tickets SET status = 'PAID', paid_at = ?, payment_key = ?, payment_started_at = NULL"
        " WHERE id = ? AND status = 'PENDING' AND payment_attempt = ?";
static const char outbox_sql[] =
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, 'ticket', ?, 'ticket.paid', ?)";
static const char refunded_sql[] =
        "UPDATE tickets SET status = 'REFUNDED', ended_at = NOW(3), payment_started_at = NULL"
        " WHERE id = ? AND status IN ('EXPIRED', 'CANCELLED')";
static const char state_sql[] =
        "SELECT status, payment_key, payment_attempt FROM tickets WHERE id = ?";
static const char unsettled_sql[] =
        "SELECT id, payment_key, payment_attempt, payment_started_at <= NOW(3) - INTERVAL ? MICROSECOND"
        " FROM tickets WHERE payment_started_at IS NOT NULL"
        " AND payment_started_at <= NOW(3) - INTERVAL ? MICROSECOND ORDER BY payment_started_at LIMIT ?";

/* The ticket row of lock_sql. */
struct locked {
        struct cpn_ticket t;
        char key[CPN_PAYMENT_KEY_MAX + 1];
        int64_t attempt;
        bool in_flight, live;
};

static int lock_ticket(struct cpn_db *db, const char *id, struct locked *l, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[13];
        char status[16];
        int r, s;

        memset(l, 0, sizeof(*l));
        col[0] = CPN_DB_OUT_TEXT(l->t.id);
        col[1] = CPN_DB_OUT_TEXT(l->t.type_id);
        col[2] = CPN_DB_OUT_TEXT(l->t.user_id);
        col[3] = (struct cpn_db_val){ .type = CPN_DB_TEXT, .buf = status, .cap = sizeof(status) };
        col[4] = CPN_DB_OUT_INT();
        col[5] = CPN_DB_OUT_TEXT(l->t.currency);
        col[6] = CPN_DB_OUT_TIME();
        col[7] = CPN_DB_OUT_TIME();
        col[8] = CPN_DB_OUT_TIME();
        col[9] = CPN_DB_OUT_TEXT(l->key);
        col[10] = CPN_DB_OUT_INT();
        col[11] = CPN_DB_OUT_INT();
        col[12] = CPN_DB_OUT_INT();
        r = cpn_db_run(db, lock_sql, in, 1, col, 13, NULL, err);
        if (r == CPN_DB_NO_ROW)
                return CPN_TICKET_NOT_FOUND;
        if (r)
                return r;
        s = cpn_ticket_status_parse(status);
        if (s < 0)
                return cpn_error_set(err, -EPROTO, "ticket %s: status %s", id, status);
        l->t.status = (enum cpn_ticket_status)s;
        l->t.price = col[4].i;
        l->t.expires_at_ms = col[6].i;
        l->t.paid_at_ms = col[7].null ? -1 : col[7].i;
        l->t.confirmed_at_ms = col[8].null ? -1 : col[8].i;
        l->attempt = col[10].i;
        l->in_flight = col[11].i != 0;
        l->live = col[12].i != 0;
        return 0;
}

/*
 * The transaction before the call. Returns 0 with *@attempt (the attempt
 * to make: a new one, or the one in flight with this very key, sent again
 * under its Idempotency-Key), or the answer without a call:
 * CPN_TICKET_NOT_FOUND, CPN_TICKET_AMOUNT_MISMATCH, CPN_TICKET_ALREADY_PAID,
 * CPN_TICKET_HOLD_EXPIRED, CPN_TICKET_HELD (paid with this key already:
 * @t is the ticket), -EBUSY (an attempt with another key is in flight).
 */
static int begin_tx(struct cpn_db *db, const char *id, const char *key, int64_t amount, struct cpn_ticket *t,
                    int64_t *attempt, struct cpn_error *err) {
        struct locked l;
        uint64_t n = 0;
        int r;

        r = cpn_db_begin(db, err);
        if (r)
                return r;
        r = lock_ticket(db, id, &l, err);
        if (r)
                goto out;
        *t = l.t;
        if (amount != l.t.price) {
                r = cpn_error_set(err, CPN_TICKET_AMOUNT_MISMATCH, "amount %lld is not the ticket's price %lld %s",
                                  (long long)amount, (long long)l.t.price, l.t.currency);
        } else if (l.t.status == CPN_TS_PAID || l.t.status == CPN_TS_CONFIRMED) {
                r = strcmp(l.key, key) == 0 ? CPN_TICKET_HELD
                                            : cpn_error_set(err, CPN_TICKET_ALREADY_PAID,
                                                            "the ticket was paid with another payment_key");
        } else if (l.t.status != CPN_TS_PENDING) {
                r = cpn_error_set(err, CPN_TICKET_HOLD_EXPIRED, "the ticket is %s: nothing was charged",
                                  cpn_ticket_status_name(l.t.status));
        } else if (l.in_flight && strcmp(l.key, key) == 0) {
                /* The same payment again (a retry after 504): the same attempt,
                 * so the gateway replays its answer instead of charging twice. */
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id), CPN_DB_IN_INT(l.attempt) };

                *attempt = l.attempt;
                r = cpn_db_run(db, again_sql, in, 2, NULL, 0, &n, err);
        } else if (l.in_flight) {
                r = cpn_error_set(err, -EBUSY, "a payment of this ticket with another payment_key is in progress");
        } else if (!l.live) {
                r = cpn_error_set(err, CPN_TICKET_HOLD_EXPIRED, "the hold expired: nothing was charged");
        } else {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(key), CPN_DB_IN_TEXT(id) };

                *attempt = l.attempt + 1;
                r = cpn_db_run(db, begin_sql, in, 2, NULL, 0, &n, err);
                if (!r && n != 1)
                        r = cpn_error_set(err, -EPROTO, "payment start changed %llu rows", (unsigned long long)n);
        }
out:
        if (r) {
                cpn_db_rollback(db);
                return r;
        }
        return cpn_db_commit(db, err);
}

static void idem_key(char *buf, size_t n, const char *id, int64_t attempt) {
        if (attempt <= 1)
                snprintf(buf, n, "%s", id);
        else
                snprintf(buf, n, "%s-%lld", id, (long long)attempt);
}

/* The ticket.paid event, as the outbox row's payload and Kafka's value. */
static int event_json(char *buf, size_t n, const char *event_id, const struct cpn_ticket *t, const char *key,
                      int64_t paid_ms) {
        char at[40];
        int r = snprintf(buf, n,
                         "{\"v\":1,\"event_id\":\"%s\",\"type\":\"ticket.paid\",\"ticket_id\":\"%s\","
                         "\"ticket_type_id\":\"%s\",\"user_id\":\"%s\",\"amount\":%lld,\"currency\":\"%s\","
                         "\"payment_key\":\"%s\",\"paid_at\":\"%s\"}",
                         event_id, t->id, t->type_id, t->user_id, (long long)t->price, t->currency, key,
                         cpn_time_format(paid_ms, at, sizeof(at)));

        return r < 0 || (size_t)r >= n ? -ENOBUFS : 0;
}

/* Guarded PENDING -> PAID of @attempt plus its outbox row, in one
 * transaction. Returns 0 (recorded), CPN_TICKET_HOLD_EXPIRED (the guard
 * failed: the ticket is no longer PENDING, or another attempt is current),
 * or an error. */
static int paid_tx(struct cpn_db *db, const struct cpn_ticket *t, const char *key, int64_t attempt,
                   struct cpn_error *err) {
        char event_id[37], payload[1024];
        int64_t now = cpn_time_now_ms();
        const struct cpn_db_val in[] = { CPN_DB_IN_TIME(now), CPN_DB_IN_TEXT(key), CPN_DB_IN_TEXT(t->id),
                                         CPN_DB_IN_INT(attempt) };
        uint64_t n = 0;
        int r;

        r = cpn_uuid_v4(event_id);
        if (!r)
                r = event_json(payload, sizeof(payload), event_id, t, key, now);
        if (r)
                return cpn_error_set(err, r, "cannot make the ticket.paid event");
        r = cpn_db_begin(db, err);
        if (r)
                return r;
        r = cpn_db_run(db, paid_sql, in, 4, NULL, 0, &n, err);
        if (!r && n == 0)
                r = CPN_TICKET_HOLD_EXPIRED;
        if (!r) {
                const struct cpn_db_val oin[] = { CPN_DB_IN_TEXT(event_id), CPN_DB_IN_TEXT(t->id),
                                                  CPN_DB_IN_TEXT(payload) };

                r = cpn_db_run(db, outbox_sql, oin, 3, NULL, 0, NULL, err);
        }
        if (r) {
                cpn_db_rollback(db);
                return r;
        }
        return cpn_db_commit(db, err);
}

struct row_state {
        enum cpn_ticket_status status;
        char key[CPN_PAYMENT_KEY_MAX + 1];
        int64_t attempt;
};

static int read_state(struct cpn_db *db, const char *id, struct row_state *st, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        char status[16];
        struct cpn_db_val col[3] = { { .type = CPN_DB_TEXT, .buf = status, .cap = sizeof(status) },
                                     CPN_DB_OUT_TEXT(st->key), CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, state_sql, in, 1, col, 3, NULL, err), s;

        if (r)
                return r == CPN_DB_NO_ROW ? CPN_TICKET_NOT_FOUND : r;
        s = cpn_ticket_status_parse(status);
        st->status = s < 0 ? CPN_TS_PENDING : (enum cpn_ticket_status)s;
        st->attempt = col[2].i;
        return 0;
}

/*
 * Records a charge (@key, @attempt) of ticket @t: PAID plus the outbox
 * row; or, when the hold is gone, the charge is cancelled at the gateway
 * and the ticket REFUNDED. Returns 0 (PAID: by this call, or already with
 * this key), CPN_TICKET_HOLD_EXPIRED (refunded, or the refund is left to
 * the settler), or an error (nothing recorded: the settler will).
 */
static int record_charge(struct cpn_db *db, struct cpn_gateway *gw, const struct cpn_ticket *t, const char *key,
                         int64_t attempt, struct cpn_error *err) {
        struct cpn_gw_answer a;
        struct row_state st;
        int r = -EAGAIN;

        for (int i = 0; i < TX_TRIES && r == -EAGAIN; i++)
                r = paid_tx(db, t, key, attempt, err);
        if (r != CPN_TICKET_HOLD_EXPIRED)
                return r;
        r = read_state(db, t->id, &st, err);
        if (r)
                return r;
        if ((st.status == CPN_TS_PAID || st.status == CPN_TS_CONFIRMED) && strcmp(st.key, key) == 0)
                return 0; /* another recorder of the same charge was first */
        if (st.status != CPN_TS_EXPIRED && st.status != CPN_TS_CANCELLED)
                return cpn_error_set(err, -EPROTO, "ticket %s is %s after a charge of attempt %lld", t->id,
                                     cpn_ticket_status_name(st.status), (long long)attempt);
        /* The hold was given to someone else meanwhile: the money goes back. */
        r = cpn_gateway_cancel(gw, key, "the ticket's hold had expired", &a);
        if (r)
                return r;
        if (a.result == CPN_GW_CANCELED || a.result == CPN_GW_NOT_FOUND) {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(t->id) };

                r = cpn_db_run(db, refunded_sql, in, 1, NULL, 0, NULL, err);
                if (r)
                        return r;
                cpn_log_info("ticket %s: charge %s refunded, the hold had expired", t->id, key);
        } else {
                cpn_log_warn("ticket %s: charge %s could not be cancelled yet (%s); the settler retries", t->id,
                             key, a.message[0] ? a.message : a.code);
        }
        return cpn_error_set(err, CPN_TICKET_HOLD_EXPIRED,
                             "the hold had expired before the payment could be recorded: the charge was cancelled");
}

/* The attempt ended without a charge: the ticket may be paid again. */
static int clear_attempt(struct cpn_db *db, const char *id, int64_t attempt, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id), CPN_DB_IN_INT(attempt) };

        return cpn_db_run(db, clear_sql, in, 2, NULL, 0, NULL, err);
}

int cpn_pay_begin(struct cpn_db *db, const char *id, const char *key, int64_t amount, struct cpn_ticket *t,
                  int64_t *attempt, struct cpn_error *err) {
        int r = -EAGAIN;

        for (int i = 0; i < TX_TRIES && r == -EAGAIN; i++)
                r = begin_tx(db, id, key, amount, t, attempt, err);
        return r;
}

int cpn_pay_call(struct cpn_gateway *gw, const struct cpn_ticket *t, const char *key, int64_t attempt,
                 struct cpn_gw_answer *a) {
        char idem[64];

        idem_key(idem, sizeof(idem), t->id, attempt);
        return cpn_gateway_confirm(gw, key, t->id, t->price, idem, a);
}

int cpn_pay_finish(struct cpn_db *db, struct cpn_gateway *gw, const struct cpn_ticket *t, const char *key,
                   int64_t attempt, const struct cpn_gw_answer *a, struct cpn_error *err) {
        int r;

        switch (a->result) {
        case CPN_GW_DONE:
                return record_charge(db, gw, t, a->payment_key[0] ? a->payment_key : key, attempt, err);
        case CPN_GW_DECLINED:
                r = clear_attempt(db, t->id, attempt, err);
                return r ? r : cpn_error_set(err, CPN_TICKET_DECLINED, "%s: %s", a->code, a->message);
        case CPN_GW_REFUSED:
        case CPN_GW_UNREACHABLE:
                r = clear_attempt(db, t->id, attempt, err);
                return r ? r
                         : cpn_error_set(err, CPN_TICKET_GATEWAY_DOWN,
                                         "payment gateway: %s %s (HTTP %d); nothing was charged", a->code,
                                         a->message, a->http_status);
        default:
                /* Left in flight: the settler asks the gateway. */
                return cpn_error_set(err, CPN_TICKET_PAYMENT_UNKNOWN, "payment gateway: %s",
                                     a->message[0] ? a->message : "no answer");
        }
}

/* ---- the settler ---- */

struct unsettled {
        char id[CPN_TICKET_ID_LEN + 1];
        char key[CPN_PAYMENT_KEY_MAX + 1];
        int64_t attempt;
        bool final; /* past the grace: "not found" means nothing was charged */
};

struct collect {
        struct unsettled *rows;
        size_t n, cap;
};

static int collect_one(const struct cpn_db_val *col, void *ud) {
        struct collect *c = ud;
        struct unsettled *u = &c->rows[c->n++];

        snprintf(u->id, sizeof(u->id), "%s", col[0].buf);
        snprintf(u->key, sizeof(u->key), "%s", col[1].buf);
        u->attempt = col[2].i;
        u->final = col[3].i != 0;
        return 0;
}

/* Settles one attempt by asking the gateway. */
static int settle_one(struct cpn_db *db, struct cpn_gateway *gw, const struct unsettled *u, struct cpn_error *err) {
        struct cpn_gw_answer a;
        struct cpn_ticket t;
        struct row_state st;
        int r;

        r = cpn_gateway_lookup(gw, u->id, &a);
        if (r)
                return r;
        if (a.result == CPN_GW_UNKNOWN || a.result == CPN_GW_UNREACHABLE || a.result == CPN_GW_REFUSED)
                return cpn_error_set(err, -EIO, "payment gateway: %s", a.message[0] ? a.message : a.code);
        r = read_state(db, u->id, &st, err);
        if (r)
                return r;
        if (st.attempt != u->attempt)
                return 0; /* a newer attempt began: it is its own business */
        if (a.result == CPN_GW_DONE) {
                r = cpn_sql_ticket_get(db, u->id, &t, err);
                if (r)
                        return r;
                r = record_charge(db, gw, &t, a.payment_key[0] ? a.payment_key : u->key, u->attempt, err);
                if (r == 0)
                        cpn_log_info("ticket %s: unknown payment settled: charged, PAID", u->id);
                return r == CPN_TICKET_HOLD_EXPIRED ? 0 : r;
        }
        if (a.result == CPN_GW_CANCELED && (st.status == CPN_TS_EXPIRED || st.status == CPN_TS_CANCELLED)) {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(u->id) };

                return cpn_db_run(db, refunded_sql, in, 1, NULL, 0, NULL, err);
        }
        if (a.result == CPN_GW_NOT_FOUND && !u->final)
                return 0; /* not yet: asked again on the next pass */
        /* Nothing charged (or given back already): the attempt is over. */
        cpn_log_info("ticket %s: unknown payment settled: nothing was charged", u->id);
        return clear_attempt(db, u->id, u->attempt, err);
}

int cpn_ticket_settle(struct cpn_db *db, struct cpn_gateway *gw, long timeout_ms, size_t limit, size_t *n,
                      struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_INT((int64_t)(timeout_ms + NOT_FOUND_GRACE_MS) * 1000),
                                         CPN_DB_IN_INT((int64_t)(timeout_ms + SETTLE_AFTER_MS) * 1000),
                                         CPN_DB_IN_INT((int64_t)limit) };
        char id[CPN_TICKET_ID_LEN + 1], key[CPN_PAYMENT_KEY_MAX + 1];
        struct cpn_db_val col[4] = { CPN_DB_OUT_TEXT(id), CPN_DB_OUT_TEXT(key), CPN_DB_OUT_INT(), CPN_DB_OUT_INT() };
        struct collect c = { .cap = limit };
        int r, first = 0;

        *n = 0;
        c.rows = calloc(limit ? limit : 1, sizeof(*c.rows));
        if (!c.rows)
                return -ENOMEM;
        r = cpn_db_each(db, unsettled_sql, in, 3, col, 4, collect_one, &c, err);
        for (size_t i = 0; r == 0 && i < c.n; i++) {
                int s = settle_one(db, gw, &c.rows[i], err);

                if (s && !first)
                        first = s;
                else if (!s)
                        (*n)++;
        }
        free(c.rows);
        return r ? r : first;
}
