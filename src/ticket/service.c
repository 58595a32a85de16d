/*
 * The ticket product's domain calls (service.h): the Redis gate first,
 * MySQL's transaction second, the hold given back wherever MySQL refused.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/ticket/gateway.h"
#include "cpn/ticket/service.h"
#include "ticket-internal.h"

#define READ_POOL_WAIT_MS 200
/* A hold that Redis has and MySQL does not: a reservation in progress (its
 * transaction takes at most a few MySQL timeouts), or one whose process
 * died between the two. Older than this, it is the second, and is given
 * back. */
#define STALE_HOLD_MS 30000
/* How long a repeat waits for the user's reservation in progress. */
#define IN_PROGRESS_TRIES 10
#define IN_PROGRESS_NAP_MS 50

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

/*
 * ---- reservations of all request threads, in shared transactions ----
 *
 * Each reservation that passed the gate costs MySQL a durable commit, and
 * every one of a type locks the same ticket_types row until its commit:
 * one at a time, they queue on that row. So they are combined: a thread
 * queues its reservation; if no batch is running it becomes the leader,
 * takes up to CPN_SQL_RESERVE_BATCH queued ones (its own first) and runs
 * them in one transaction on a pooled connection while the next ones
 * queue; then it wakes the threads it answered and the next in line, which
 * leads the next batch. The mutex guards only the queue and the flags:
 * nobody holds it across MySQL, and the wakes of a batch's waiters (one
 * semaphore each) are posted after it is released. A waiter lives on its
 * request thread's stack, so it must not return while a post to it may
 * still come: it waits for `released`, which its leader sets once done
 * with it. The one post made under the mutex (to the next leader, still
 * queued) cannot outlive its waiter.
 */
struct waiter {
        struct cpn_sql_reservation res;
        sem_t wake;            /* posted when res is answered, or when the waiter is to lead */
        bool done;             /* under the reserver's mutex */
        atomic_bool released;  /* its leader will not touch it again */
        struct waiter *next;
};

struct cpn_ticket_reserver {
        pthread_mutex_t mu;
        struct waiter *head, *tail; /* FIFO of waiters not yet in a batch */
        bool leading;
        struct cpn_db_val params[CPN_SQL_RESERVE_PARAMS]; /* the leader's: one leads at a time */
};

int cpn_ticket_service_open(struct cpn_ticket_service *svc) {
        struct cpn_ticket_reserver *rv = calloc(1, sizeof(*rv));

        if (!rv)
                return -ENOMEM;
        pthread_mutex_init(&rv->mu, NULL);
        svc->reserver = rv;
        return 0;
}

void cpn_ticket_service_close(struct cpn_ticket_service *svc) {
        if (svc->reserver) {
                pthread_mutex_destroy(&svc->reserver->mu);
                free(svc->reserver);
                svc->reserver = NULL;
        }
}

struct batch {
        struct cpn_sql_reservation *v[CPN_SQL_RESERVE_BATCH];
        struct waiter *w[CPN_SQL_RESERVE_BATCH];
        size_t n;
        struct cpn_db_val *params;
        struct cpn_error err; /* the batch's own: given to each when it fails whole */
};

static int batch_fn(struct cpn_db *db, void *ud) {
        struct batch *b = ud;

        return cpn_sql_reserve_batch(db, b->v, b->n, b->params, &b->err);
}

static void run_batch(struct cpn_ticket_session *s, struct batch *b) {
        int r;

        b->err.msg[0] = '\0';
        r = cpn_db_pool_run(s->svc->db_pool, s->svc->cfg->mysql_timeout_ms, batch_fn, b, &b->err);
        if (r)
                for (size_t i = 0; i < b->n; i++) {
                        b->v[i]->r = r;
                        *b->v[i]->err = b->err;
                }
}

/* The MySQL half of a reservation; see cpn_sql_reserve_batch. */
static int reserve_mysql(struct cpn_ticket_session *s, const char *type_id, const char *user_id, const char *id,
                         struct cpn_ticket *out, struct cpn_error *err) {
        struct cpn_ticket_reserver *rv = s->svc->reserver;
        struct waiter w = { .res = { type_id, user_id, id, out, err, CPN_UNKNOWN } };
        struct batch b;

        if (!rv) { /* couponctl's: no other thread to combine with */
                b.v[0] = &w.res;
                b.n = 1;
                b.params = calloc(CPN_SQL_RESERVE_PARAMS, sizeof(*b.params));
                if (!b.params)
                        return cpn_error_set(err, -ENOMEM, "out of memory");
                run_batch(s, &b);
                free(b.params);
                return w.res.r;
        }
        sem_init(&w.wake, 0, 0);
        pthread_mutex_lock(&rv->mu);
        if (rv->tail)
                rv->tail->next = &w;
        else
                rv->head = &w;
        rv->tail = &w;
        while (!w.done) {
                if (rv->leading) {
                        pthread_mutex_unlock(&rv->mu);
                        while (sem_wait(&w.wake) != 0)
                                ; /* EINTR */
                        pthread_mutex_lock(&rv->mu);
                        continue;
                }
                rv->leading = true;
                for (b.n = 0; rv->head && b.n < CPN_SQL_RESERVE_BATCH; b.n++) {
                        struct waiter *x = rv->head;

                        rv->head = x->next;
                        if (!rv->head)
                                rv->tail = NULL;
                        b.w[b.n] = x;
                        b.v[b.n] = &x->res;
                }
                b.params = rv->params;
                pthread_mutex_unlock(&rv->mu);
                run_batch(s, &b);
                pthread_mutex_lock(&rv->mu);
                for (size_t i = 0; i < b.n; i++)
                        b.w[i]->done = true;
                rv->leading = false;
                if (rv->head && rv->head != &w)
                        sem_post(&rv->head->wake); /* leads the next batch */
                pthread_mutex_unlock(&rv->mu);
                for (size_t i = 0; i < b.n; i++) {
                        if (b.w[i] != &w)
                                sem_post(&b.w[i]->wake);
                        atomic_store_explicit(&b.w[i]->released, true, memory_order_release);
                }
                pthread_mutex_lock(&rv->mu);
        }
        pthread_mutex_unlock(&rv->mu);
        while (!atomic_load_explicit(&w.released, memory_order_acquire))
                sched_yield(); /* its leader is between the mutex and the post */
        sem_destroy(&w.wake);
        return w.res.r;
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
        int r;

        /* A double tap: the first reservation is most likely in a batch
         * that commits within milliseconds; wait for it (up to about half
         * a second) so that the repeat gets the ticket, not a 503. */
        for (int i = 0;; i++) {
                r = run(s, s->svc->cfg->mysql_timeout_ms, ticket_live_fn, &c);
                if (r == 0)
                        return CPN_TICKET_HELD;
                if (r != CPN_TICKET_NOT_FOUND || age_ms >= STALE_HOLD_MS || i == IN_PROGRESS_TRIES)
                        break;
                nanosleep(&(struct timespec){ 0, IN_PROGRESS_NAP_MS * 1000000L }, NULL);
                age_ms += IN_PROGRESS_NAP_MS;
        }
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
        enum cpn_gate_answer ans;
        int64_t age;
        int r;

        if (!s->svc->pipe)
                return cpn_error_set(err, -EINVAL, "reserve: no Redis pipe");
        r = cpn_uuid_v4(id);
        if (r)
                return cpn_error_set(err, r, "no random bytes for a ticket id");
        for (int attempt = 0; attempt < 2; attempt++) {
                r = cpn_gate_reserve(s->svc->pipe, type_id, user_id, id, &ans, held, &age, why, err);
                if (r == CPN_UNKNOWN) {
                        /* Nothing is sold before MySQL: only a hold may be
                         * left (its script may still run); the reaper gives
                         * it back once Redis answers. */
                        cpn_ticket_reaper_give_back(s->svc->reaper, type_id, user_id, id);
                        return cpn_error_set(err, -EIO, "redis did not answer the gate (%s); nothing was reserved",
                                             err->msg);
                }
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
                r = reserve_mysql(s, type_id, user_id, id, out, err);
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
