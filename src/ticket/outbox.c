/* The built-in relay of the ticket outbox (outbox.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/clock.h"
#include "cpn/log.h"
#include "cpn/ticket/outbox.h"
#include "cpn/ticket/ticket.h"

#define RELAY_BATCH 100
#define PAYLOAD_MAX 4096 /* a ticket.paid event is under 600 bytes */

static const char claim_sql[] =
        "SELECT id, aggregateid, payload FROM outbox WHERE published_at IS NULL"
        " AND (claimed_until IS NULL OR claimed_until < NOW(3)) ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED";
static const char claimed_sql[] =
        "UPDATE outbox SET claimed_until = NOW(3) + INTERVAL ? MICROSECOND, attempts = attempts + 1 WHERE id = ?";
static const char published_sql[] =
        "UPDATE outbox SET published_at = NOW(3), claimed_until = NULL WHERE id = ? AND published_at IS NULL";
static const char unclaim_sql[] = "UPDATE outbox SET claimed_until = NULL WHERE id = ? AND published_at IS NULL";

struct row {
        char id[40];
        char key[CPN_ID_MAX + 1];
        char payload[PAYLOAD_MAX];
        size_t len;
        bool ok;
};

struct slot {
        struct cpn_ticket_relay *r;
        size_t i;
        uint64_t gen;
};

struct cpn_ticket_relay {
        const struct cpn_config *cfg;
        struct cpn_producer *producer; /* borrowed */
        struct cpn_db *db;             /* owned: the thread's */
        pthread_t thread;
        pthread_mutex_t mu;            /* guards stop, gen, pending, rows[].ok; never held across I/O */
        pthread_cond_t cv;
        bool stop;
        bool failing;
        uint64_t gen;                  /* of the batch in flight: late reports of an older one are ignored */
        size_t pending;
        struct row rows[RELAY_BATCH];
        struct slot slots[RELAY_BATCH]; /* the reports' opaques: live as long as the relay */
        size_t n;
        /* the claim query's columns */
        char cid[40], ckey[CPN_ID_MAX + 1], cpayload[PAYLOAD_MAX];
        _Atomic uint64_t published;
};

/* On the producer's report thread. */
static void on_report(void *ud, int err) {
        struct slot *s = ud;
        struct cpn_ticket_relay *r = s->r;

        pthread_mutex_lock(&r->mu);
        if (s->gen == r->gen && r->pending > 0) {
                r->rows[s->i].ok = err == 0;
                if (--r->pending == 0)
                        pthread_cond_broadcast(&r->cv);
        }
        pthread_mutex_unlock(&r->mu);
}

struct claim {
        struct cpn_ticket_relay *r;
        struct cpn_error *err;
};

static int claim_one(const struct cpn_db_val *col, void *ud) {
        struct claim *c = ud;
        struct cpn_ticket_relay *r = c->r;
        struct row *w = &r->rows[r->n];
        const struct cpn_db_val in[] = {
                CPN_DB_IN_INT((int64_t)(r->cfg->kafka_message_timeout_ms + 5000) * 1000),
                CPN_DB_IN_TEXT(col[0].buf),
        };

        if (col[2].len >= PAYLOAD_MAX) {
                cpn_log_warn("ticket relay: outbox row %s has a payload of %zu bytes; left unpublished",
                             col[0].buf, col[2].len);
                return 0;
        }
        snprintf(w->id, sizeof(w->id), "%s", col[0].buf);
        snprintf(w->key, sizeof(w->key), "%s", col[1].buf);
        memcpy(w->payload, col[2].buf, col[2].len + 1);
        w->len = col[2].len;
        w->ok = false;
        r->n++;
        return cpn_db_run(r->db, claimed_sql, in, 2, NULL, 0, NULL, c->err);
}

/* Claims, produces and marks one batch. *@n: rows claimed. */
static int relay_pass(struct cpn_ticket_relay *r, size_t *n, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_INT(RELAY_BATCH) };
        struct cpn_db_val col[3] = { CPN_DB_OUT_TEXT(r->cid), CPN_DB_OUT_TEXT(r->ckey), CPN_DB_OUT_TEXT(r->cpayload) };
        struct claim c = { .r = r, .err = err };
        struct timespec dl;
        size_t sent = 0, done = 0;
        uint64_t gen;
        int ret;

        *n = 0;
        r->n = 0;
        ret = cpn_db_begin(r->db, err);
        if (!ret)
                ret = cpn_db_each(r->db, claim_sql, in, 1, col, 3, claim_one, &c, err);
        if (ret) {
                cpn_db_rollback(r->db);
                return ret;
        }
        ret = cpn_db_commit(r->db, err);
        if (ret || r->n == 0)
                return ret;
        *n = r->n;

        /* No transaction is open from here on. */
        pthread_mutex_lock(&r->mu);
        gen = ++r->gen;
        r->pending = r->n;
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < r->n; i++) {
                r->slots[i] = (struct slot){ .r = r, .i = i, .gen = gen };
                if (cpn_producer_send_bytes(r->producer, r->cfg->ticket_topic, r->rows[i].key, strlen(r->rows[i].key),
                                            r->rows[i].payload, r->rows[i].len, on_report, &r->slots[i]) == 0) {
                        sent++;
                        continue;
                }
                pthread_mutex_lock(&r->mu);
                r->pending--;
                pthread_mutex_unlock(&r->mu);
        }
        cpn_deadline_in(&dl, r->cfg->kafka_message_timeout_ms + 2000);
        pthread_mutex_lock(&r->mu);
        while (r->pending > 0 && !r->stop)
                if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT)
                        break;
        r->gen++; /* reports from now on are too late */
        pthread_mutex_unlock(&r->mu);

        for (size_t i = 0; i < r->n; i++) {
                const struct cpn_db_val pin[] = { CPN_DB_IN_TEXT(r->rows[i].id) };
                int m = cpn_db_run(r->db, r->rows[i].ok ? published_sql : unclaim_sql, pin, 1, NULL, 0, NULL, err);

                if (m)
                        return m; /* the claims expire: published again, a duplicate at worst */
                done += r->rows[i].ok;
        }
        atomic_fetch_add(&r->published, done);
        if (done < r->n)
                return cpn_error_set(err, -EIO, "%zu of %zu outbox rows not acknowledged by Kafka (%zu produced)",
                                     r->n - done, r->n, sent);
        return 0;
}

static void *relay_thread(void *arg) {
        struct cpn_ticket_relay *r = arg;

        pthread_mutex_lock(&r->mu);
        while (!r->stop) {
                struct cpn_error err = { { 0 } };
                size_t n = 0;
                int ret;

                pthread_mutex_unlock(&r->mu);
                ret = relay_pass(r, &n, &err);
                if (ret && !r->failing)
                        cpn_log_warn("ticket relay: %s; will retry", err.msg);
                else if (!ret && r->failing)
                        cpn_log_info("ticket relay: publishing again");
                r->failing = ret != 0;
                pthread_mutex_lock(&r->mu);
                if (ret || n < RELAY_BATCH) /* a full batch: go on at once */
                        cpn_cond_nap(&r->cv, &r->mu, ret ? 1000 : r->cfg->ticket_relay_ms, &r->stop);
        }
        pthread_mutex_unlock(&r->mu);
        return NULL;
}

int cpn_ticket_relay_new(struct cpn_ticket_relay **ret, const struct cpn_config *cfg,
                         const struct cpn_db_url *db_url, struct cpn_producer *producer, struct cpn_error *err) {
        struct cpn_ticket_relay *r = calloc(1, sizeof(*r));
        int e;

        if (!r)
                return -ENOMEM;
        r->cfg = cfg;
        r->producer = producer;
        e = cpn_db_new(&r->db, db_url, cfg->mysql_timeout_ms, CPN_DB_SLOW_RW_MS(cfg->mysql_timeout_ms));
        if (e) {
                free(r);
                return cpn_error_set(err, e, "ticket relay: out of memory");
        }
        pthread_mutex_init(&r->mu, NULL);
        cpn_cond_init_monotonic(&r->cv);
        e = pthread_create(&r->thread, NULL, relay_thread, r);
        if (e) {
                cpn_db_free(r->db);
                free(r);
                return cpn_error_set(err, -e, "ticket relay: cannot start thread");
        }
        pthread_setname_np(r->thread, "cpn:trelay");
        *ret = r;
        return 0;
}

struct cpn_ticket_relay *cpn_ticket_relay_free(struct cpn_ticket_relay *r) {
        if (!r)
                return NULL;
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        cpn_db_free(r->db);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return NULL;
}

uint64_t cpn_ticket_relay_published(const struct cpn_ticket_relay *r) {
        return atomic_load(&((struct cpn_ticket_relay *)r)->published);
}
