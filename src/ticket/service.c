/*
 * The ticket product's domain calls (service.h): the Redis gate first,
 * MySQL's transaction second, the hold given back wherever MySQL refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/ticket/gateway.h"
#include "cpn/ticket/service.h"
#include "ticket-internal.h"

#define READ_POOL_WAIT_MS 200
/* A hold that Redis has and MySQL does not: a reservation in progress (its
 * transaction takes at most a few MySQL timeouts), or one whose process
 * died between the two. Older than this, it is the second, and is given
 * back. */
#define STALE_HOLD_MS 30000

struct cpn_ticket_session {
        const struct cpn_ticket_service *svc;
        struct cpn_redis *redis; /* owned */
        struct cpn_gateway *gw;  /* owned; made on the first payment */
};

int cpn_ticket_session_new(struct cpn_ticket_session **ret, const struct cpn_ticket_service *svc) {
        struct cpn_ticket_session *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->svc = svc;
        r = cpn_redis_new(&s->redis, svc->redis_url, svc->cfg->redis_timeout_ms);
        if (r) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

struct cpn_ticket_session *cpn_ticket_session_free(struct cpn_ticket_session *s) {
        if (s) {
                cpn_gateway_free(s->gw);
                cpn_redis_free(s->redis);
                free(s);
        }
        return NULL;
}

/* The arguments of one MySQL call through the pool. */
struct call {
        const char *a, *b, *c;
        const struct cpn_ticket_type *type;
        struct cpn_ticket_type *stored;
        struct cpn_ticket_type_state *state;
        struct cpn_ticket *ticket;
        int64_t amount, attempt;
        struct cpn_gateway *gw;
        const struct cpn_gw_answer *answer;
        struct cpn_error *err;
};

static int run(struct cpn_ticket_session *s, long wait_ms, int (*fn)(struct cpn_db *, void *), struct call *c) {
        return cpn_db_pool_run(s->svc->db_pool, wait_ms, fn, c, c->err);
}

static int type_insert_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_sql_type_insert(db, c->type, c->stored, c->err);
}

static int type_get_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_sql_type_get(db, c->a, c->state, c->err);
}

static int reserve_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_sql_reserve(db, c->a, c->b, c->c, c->ticket, c->err);
}

static int ticket_get_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_sql_ticket_get(db, c->a, c->ticket, c->err);
}

static int ticket_live_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_sql_ticket_live(db, c->a, c->b, c->ticket, c->err);
}

static int cancel_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_sql_cancel(db, c->a, c->ticket, c->err);
}

int cpn_ticket_type_create(struct cpn_ticket_session *s, const struct cpn_ticket_type *t,
                           struct cpn_ticket_type_state *stored, struct cpn_error *err) {
        struct call c = { .type = t, .stored = &stored->t, .err = err };
        bool created = false;
        int in_db, r;

        memset(stored, 0, sizeof(*stored));
        /* MySQL first: it is the truth for stock, and the gate is written
         * from its row (a repeat without starts_at gets the stored start). */
        in_db = run(s, s->svc->cfg->mysql_timeout_ms, type_insert_fn, &c);
        if (in_db != 0 && in_db != CPN_TICKET_TYPE_SAME)
                return in_db;
        r = cpn_gate_type_set(s->redis, &stored->t, &created, err);
        if (r)
                return cpn_error_set(err, CPN_TICKET_TYPE_PARTIAL,
                                     "ticket type %s is recorded in MySQL but Redis could not be written", t->id);
        /* Exactly one of identical creates wrote the gate: that one created it
         * (a repeat that completes a half-done create included). */
        if (!created)
                return cpn_error_set(err, CPN_TICKET_TYPE_SAME, "ticket type %s exists with these fields", t->id);
        return 0;
}

int cpn_ticket_type_get(struct cpn_ticket_session *s, const char *id, struct cpn_ticket_type_state *out,
                        struct cpn_error *err) {
        struct call c = { .a = id, .state = out, .err = err };

        return run(s, READ_POOL_WAIT_MS, type_get_fn, &c);
}

/* The user's live ticket, as MySQL has it, where Redis holds @held for
 * them (@age_ms old). Returns CPN_TICKET_HELD with @out, 0 when the hold
 * was stale and has been given back (reserve again), -EBUSY while another
 * reservation of the user is still in progress, or an error. */
static int held_ticket(struct cpn_ticket_session *s, const char *type_id, const char *user_id, const char *held,
                       int64_t age_ms, struct cpn_ticket *out, struct cpn_error *err) {
        struct call c = { .a = type_id, .b = user_id, .ticket = out, .err = err };
        int r = run(s, s->svc->cfg->mysql_timeout_ms, ticket_live_fn, &c);

        if (r == 0)
                return CPN_TICKET_HELD;
        if (r != CPN_TICKET_NOT_FOUND)
                return r;
        if (age_ms < STALE_HOLD_MS)
                return cpn_error_set(err, -EBUSY, "another reservation of this user is in progress; retry");
        r = cpn_gate_release(s->redis, type_id, user_id, held, NULL, err);
        return r;
}

int cpn_ticket_reserve(struct cpn_ticket_session *s, const char *type_id, const char *user_id,
                       struct cpn_ticket *out, struct cpn_error *err) {
        char id[CPN_TICKET_ID_LEN + 1], held[CPN_TICKET_ID_LEN + 1], why[16];
        struct call c = { .a = type_id, .b = user_id, .c = id, .ticket = out, .err = err };
        enum cpn_gate_answer ans;
        int64_t age;
        int r;

        r = cpn_uuid_v4(id);
        if (r)
                return cpn_error_set(err, r, "no random bytes for a ticket id");
        for (int attempt = 0; attempt < 2; attempt++) {
                r = cpn_gate_reserve(s->redis, type_id, user_id, id, &ans, held, &age, why, err);
                if (r)
                        return r;
                switch (ans) {
                case CPN_GATE_NO_TYPE:
                        return cpn_error_set(err, CPN_TICKET_TYPE_NOT_FOUND, "no ticket type %s", type_id);
                case CPN_GATE_SOLD_OUT:
                        return CPN_TICKET_SOLD_OUT;
                case CPN_GATE_NOT_OPEN:
                        return cpn_error_set(err, CPN_TICKET_NOT_OPEN, strcmp(why, "ended") == 0
                                                                               ? "the sale of this ticket type has ended"
                                                                               : "the sale of this ticket type has not started");
                case CPN_GATE_HELD:
                        if (strcmp(held, id) != 0) {
                                r = held_ticket(s, type_id, user_id, held, age, out, err);
                                if (r)
                                        return r;
                                continue; /* a stale hold was given back */
                        }
                        /* our own hold: the script ran on a connection that broke */
                        /* fallthrough */
                case CPN_GATE_OK:
                        break;
                }
                r = run(s, s->svc->cfg->mysql_timeout_ms, reserve_fn, &c);
                if (r == 0 || r == CPN_UNKNOWN)
                        return r; /* unknown: the hold stays; a repeat finds the ticket, or the stale hold */
                (void)cpn_gate_release(s->redis, type_id, user_id, id, NULL, NULL);
                if (r == CPN_TICKET_HELD) {
                        struct call l = { .a = type_id, .b = user_id, .ticket = out, .err = err };
                        int g = run(s, s->svc->cfg->mysql_timeout_ms, ticket_live_fn, &l);

                        return g == 0 ? CPN_TICKET_HELD : g == CPN_TICKET_NOT_FOUND ? -EBUSY : g;
                }
                return r;
        }
        return cpn_error_set(err, -EBUSY, "the reservation could not be decided; retry");
}

int cpn_ticket_get(struct cpn_ticket_session *s, const char *ticket_id, struct cpn_ticket *out,
                   struct cpn_error *err) {
        struct call c = { .a = ticket_id, .ticket = out, .err = err };

        return run(s, READ_POOL_WAIT_MS, ticket_get_fn, &c);
}

static int pay_begin_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_pay_begin(db, c->a, c->b, c->amount, c->ticket, &c->attempt, c->err);
}

static int pay_finish_fn(struct cpn_db *db, void *ud) {
        struct call *c = ud;

        return cpn_pay_finish(db, c->gw, c->ticket, c->b, c->attempt, c->answer, c->err);
}

int cpn_ticket_pay(struct cpn_ticket_session *s, const char *ticket_id, const char *key, int64_t amount,
                   struct cpn_ticket *out, struct cpn_error *err) {
        const struct cpn_config *cfg = s->svc->cfg;
        struct call c = { .a = ticket_id, .b = key, .amount = amount, .ticket = out, .err = err };
        struct cpn_gw_answer a;
        int r;

        if (!cfg->payment_url || !*cfg->payment_url)
                return CPN_TICKET_PAYMENT_DISABLED;
        if (!s->gw) {
                r = cpn_gateway_new(&s->gw, cfg->payment_url, cfg->payment_secret ? cfg->payment_secret : "",
                                    cfg->payment_timeout_ms);
                if (r)
                        return cpn_error_set(err, r, "out of memory");
        }
        r = run(s, cfg->mysql_timeout_ms, pay_begin_fn, &c);
        if (r == CPN_TICKET_HELD)
                return 0; /* paid with this key already: the same answer again */
        if (r)
                return r;
        /* No MySQL connection, transaction or lock is held from here... */
        r = cpn_pay_call(s->gw, out, key, c.attempt, &a);
        if (r)
                return cpn_error_set(err, r, "payment gateway call: %s", strerror(-r));
        /* ...to here. */
        c.gw = s->gw;
        c.answer = &a;
        r = run(s, cfg->mysql_timeout_ms, pay_finish_fn, &c);
        if (r == -EIO && a.result == CPN_GW_DONE)
                /* Charged, and MySQL could not record it: the settler will. */
                r = cpn_error_set(err, CPN_TICKET_PAYMENT_UNKNOWN, "charged; MySQL could not record it yet");
        if (r)
                return r;
        r = cpn_ticket_get(s, ticket_id, out, err);
        return r == CPN_TICKET_NOT_FOUND ? cpn_error_set(err, -EPROTO, "ticket vanished") : r;
}

int cpn_ticket_cancel(struct cpn_ticket_session *s, const char *ticket_id, struct cpn_ticket *out,
                      struct cpn_error *err) {
        struct call c = { .a = ticket_id, .ticket = out, .err = err };
        int r = run(s, s->svc->cfg->mysql_timeout_ms, cancel_fn, &c);

        if (r)
                return r;
        /* The stock is MySQL's again; the gate follows. Should this fail, the
         * hold is stale and is given back by the next reservation of the user
         * or the reconciliation; the gate only ever errs on the side of
         * selling less. */
        (void)cpn_gate_release(s->redis, out->type_id, out->user_id, out->id, NULL, NULL);
        return 0;
}
