/* The confirmer of paid tickets (confirm.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/clock.h"
#include "cpn/consumer.h"
#include "cpn/json.h"
#include "cpn/log.h"
#include "cpn/ticket/confirm.h"
#include "cpn/ticket/ticket.h"

#define BATCH 200

static const char status_sql[] = "SELECT status FROM tickets WHERE id = ? FOR UPDATE";
static const char confirm_sql[] =
        "UPDATE tickets SET status = 'CONFIRMED', confirmed_at = NOW(3) WHERE id = ? AND status = 'PAID'";
static const char payment_sql[] =
        "INSERT INTO payments (ticket_id, payment_key, event_id, amount, currency, paid_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id";
static const char failed_sql[] =
        "INSERT INTO failed_events (topic, kafka_partition, kafka_offset, message_key, payload, error,"
        " next_retry_at) VALUES (?, ?, ?, ?, ?, ?, NOW(3) + INTERVAL ? MICROSECOND) ON DUPLICATE KEY UPDATE id = id";

struct cpn_ticket_confirmer {
        const struct cpn_config *cfg;
        struct cpn_consumer *consumer; /* owned; the thread's only */
        struct cpn_db *db;             /* owned; the thread's only */
        pthread_t thread;
        atomic_bool stop;
        atomic_bool dead;
        volatile sig_atomic_t *stop_process; /* main's flag: set when this thread dies */
        char dead_why[512];            /* written before dead is set */
        struct cpn_message msgs[BATCH];
        char due_payload[CPN_TICKET_EVENT_MAX + 1]; /* retry_failed's column */
        _Atomic uint64_t messages, confirmed, duplicates, failed;
};

/* A message that cannot be applied: recorded for an operator. */
static int record_failed(struct cpn_ticket_confirmer *c, const struct cpn_message *m, const char *why,
                         struct cpn_error *err) {
        char key[256], payload[CPN_TICKET_EVENT_MAX + 1], text[512];
        size_t kl = m->key_len < sizeof(key) - 1 ? m->key_len : sizeof(key) - 1;
        size_t pl = m->len < sizeof(payload) - 1 ? m->len : sizeof(payload) - 1;
        const struct cpn_db_val in[] = {
                CPN_DB_IN_TEXT(m->topic), CPN_DB_IN_INT(m->partition), CPN_DB_IN_INT(m->offset),
                CPN_DB_IN_TEXT(key),      CPN_DB_IN_TEXT(payload),     CPN_DB_IN_TEXT(text),
                CPN_DB_IN_INT((int64_t)c->cfg->retry_base_ms * 1000),
        };

        /* Bytes that are not text are cut at their first NUL; the error text
         * is ours, in valid UTF-8. */
        memcpy(key, m->key ? m->key : "", m->key ? kl : 0);
        key[m->key ? kl : 0] = '\0';
        memcpy(payload, m->payload ? m->payload : "", m->payload ? pl : 0);
        payload[m->payload ? pl : 0] = '\0';
        if (cpn_utf8_check(payload, strlen(payload)) != 0)
                snprintf(payload, sizeof(payload), "(%zu bytes, not UTF-8)", m->len);
        if (cpn_utf8_check(key, strlen(key)) != 0)
                snprintf(key, sizeof(key), "(not UTF-8)");
        snprintf(text, sizeof(text), "%s", why);
        atomic_fetch_add(&c->failed, 1);
        cpn_log_warn("confirmer: %s[%d]@%lld to failed_events: %s", m->topic, (int)m->partition,
                     (long long)m->offset, why);
        return cpn_db_run(c->db, failed_sql, in, 7, NULL, 0, NULL, err);
}

/* Confirms the event in @payload in one transaction. Returns 0 (applied,
 * or a duplicate: *@confirmed says which), CPN_INVALID (it cannot be
 * applied: why in @why, for failed_events), or an error worth retrying. */
static int confirm_event(struct cpn_ticket_confirmer *c, const void *payload, size_t len, bool *confirmed,
                         struct cpn_error *why, struct cpn_error *err) {
        struct cpn_ticket_event ev;
        char status[16];
        struct cpn_db_val col = { .type = CPN_DB_TEXT, .buf = status, .cap = sizeof(status) };
        uint64_t n = 0;
        int r;

        *confirmed = false;
        if (!payload || cpn_ticket_event_parse(payload, len, &ev, why) != 0)
                return why->msg[0] ? CPN_INVALID : cpn_error_set(why, CPN_INVALID, "empty message");
        r = cpn_db_begin(c->db, err);
        if (r)
                return r;
        {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(ev.ticket_id) };

                r = cpn_db_run(c->db, status_sql, in, 1, &col, 1, NULL, err);
                if (r == CPN_DB_NO_ROW)
                        r = cpn_error_set(why, CPN_INVALID, "no ticket %s", ev.ticket_id);
                else if (!r && strcmp(status, "PAID") != 0 && strcmp(status, "CONFIRMED") != 0)
                        r = cpn_error_set(why, CPN_INVALID, "ticket %s is %s, not PAID", ev.ticket_id, status);
                if (!r)
                        r = cpn_db_run(c->db, confirm_sql, in, 1, NULL, 0, &n, err);
        }
        if (!r) {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(ev.ticket_id), CPN_DB_IN_TEXT(ev.payment_key),
                                                 CPN_DB_IN_TEXT(ev.event_id),  CPN_DB_IN_INT(ev.amount),
                                                 CPN_DB_IN_TEXT(ev.currency),  CPN_DB_IN_TIME(ev.paid_at_ms) };

                r = cpn_db_run(c->db, payment_sql, in, 6, NULL, 0, NULL, err);
                if (r == CPN_DB_DUPLICATE)
                        r = cpn_error_set(why, CPN_INVALID, "payment key %s is another ticket's", ev.payment_key);
        }
        if (r) {
                cpn_db_rollback(c->db);
                return r;
        }
        r = cpn_db_commit(c->db, err);
        if (!r)
                *confirmed = n == 1;
        return r;
}

/* Applies one message. Returns 0 (applied, a duplicate, or recorded as
 * failed) or an error worth retrying the batch for. */
static int apply_one(struct cpn_ticket_confirmer *c, const struct cpn_message *m, struct cpn_error *err) {
        struct cpn_error why = { { 0 } };
        bool confirmed;
        int r;

        atomic_fetch_add(&c->messages, 1);
        r = confirm_event(c, m->payload, m->len, &confirmed, &why, err);
        if (r == CPN_INVALID)
                return record_failed(c, m, why.msg, err);
        if (!r)
                atomic_fetch_add(confirmed ? &c->confirmed : &c->duplicates, 1);
        return r;
}

/* ---- retrying failed events, like a coupon's ---- */

static const char due_sql[] =
        "SELECT id, attempts, payload FROM failed_events WHERE topic = ? AND status = 'open'"
        " AND next_retry_at <= NOW(3) ORDER BY id LIMIT 50";
/* Claims the row for one attempt: whoever moves next_retry_at runs it. */
static const char claim_sql[] =
        "UPDATE failed_events SET attempts = attempts + 1, next_retry_at = NOW(3) + INTERVAL ? MICROSECOND"
        " WHERE id = ? AND status = 'open' AND attempts = ?";
static const char resolved_sql[] = "UPDATE failed_events SET status = 'resolved', next_retry_at = NULL WHERE id = ?";
static const char still_sql[] =
        "UPDATE failed_events SET error = ?, status = IF(attempts >= ?, 'dead', 'open'),"
        " next_retry_at = IF(attempts >= ?, NULL, next_retry_at) WHERE id = ?";

struct due {
        int64_t id, attempts;
        char *payload;
        size_t len;
};

struct due_list {
        struct due v[50];
        size_t n;
};

static int take_due(const struct cpn_db_val *col, void *ud) {
        struct due_list *l = ud;
        struct due *d = &l->v[l->n];

        d->payload = malloc(col[2].len + 1);
        if (!d->payload)
                return -ENOMEM;
        memcpy(d->payload, col[2].buf, col[2].len + 1);
        d->len = col[2].len;
        d->id = col[0].i;
        d->attempts = col[1].i;
        l->n++;
        return 0;
}

/* base * 2^(attempts - 1), at most max. */
static long backoff_ms(const struct cpn_config *cfg, int64_t attempts) {
        double d = (double)cfg->retry_base_ms;

        for (int64_t i = 1; i < attempts && d < (double)cfg->retry_max_ms; i++)
                d *= 2;
        return d > (double)cfg->retry_max_ms ? cfg->retry_max_ms : (long)d;
}

static int retry_failed(struct cpn_ticket_confirmer *c, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(c->cfg->ticket_topic) };
        struct cpn_db_val col[3] = { CPN_DB_OUT_INT(), CPN_DB_OUT_INT(), CPN_DB_OUT_TEXT(c->due_payload) };
        struct due_list l = { .n = 0 };
        int r = cpn_db_each(c->db, due_sql, in, 1, col, 3, take_due, &l, err);

        for (size_t i = 0; r == 0 && i < l.n; i++) {
                struct due *d = &l.v[i];
                const struct cpn_db_val cin[] = { CPN_DB_IN_INT(backoff_ms(c->cfg, d->attempts + 1) * 1000),
                                                  CPN_DB_IN_INT(d->id), CPN_DB_IN_INT(d->attempts) };
                struct cpn_error why = { { 0 } };
                uint64_t mine = 0;
                bool confirmed;
                int a;

                r = cpn_db_run(c->db, claim_sql, cin, 3, NULL, 0, &mine, err);
                if (r || mine != 1)
                        continue; /* another worker took it */
                a = confirm_event(c, d->payload, d->len, &confirmed, &why, err);
                if (a == 0) {
                        const struct cpn_db_val rin[] = { CPN_DB_IN_INT(d->id) };

                        r = cpn_db_run(c->db, resolved_sql, rin, 1, NULL, 0, NULL, err);
                        if (!r)
                                atomic_fetch_add(confirmed ? &c->confirmed : &c->duplicates, 1);
                } else if (a == CPN_INVALID) {
                        const struct cpn_db_val sin[] = { CPN_DB_IN_TEXT(why.msg),
                                                          CPN_DB_IN_INT(c->cfg->retry_max_attempts),
                                                          CPN_DB_IN_INT(c->cfg->retry_max_attempts),
                                                          CPN_DB_IN_INT(d->id) };

                        r = cpn_db_run(c->db, still_sql, sin, 4, NULL, 0, NULL, err);
                } else {
                        r = a; /* MySQL trouble: the claim's backoff brings it back */
                }
        }
        for (size_t i = 0; i < l.n; i++)
                free(l.v[i].payload);
        return r;
}

static void *confirm_thread(void *arg) {
        struct cpn_ticket_confirmer *c = arg;
        struct cpn_error err = { { 0 } };
        bool failing = false;
        int64_t next_retry = 0;

        while (!atomic_load(&c->stop)) {
                if (cpn_mono_ms() >= next_retry) {
                        struct cpn_error rerr = { { 0 } };

                        if (retry_failed(c, &rerr) != 0)
                                cpn_log_debug("confirmer: retrying failed events: %s", rerr.msg);
                        next_retry = cpn_mono_ms() + 1000;
                }
                size_t n = 0, done = 0;
                int r = cpn_consumer_poll(c->consumer, c->msgs, BATCH, &n, 500, 20, &err);

                if (r) {
                        snprintf(c->dead_why, sizeof(c->dead_why), "%s", err.msg);
                        atomic_store(&c->dead, true);
                        cpn_log_error("confirmer stopped: %s", err.msg);
                        if (c->stop_process)
                                *c->stop_process = 1;
                        return NULL;
                }
                while (done < n) {
                        r = apply_one(c, &c->msgs[done], &err);
                        if (r == 0) {
                                done++;
                                continue;
                        }
                        /* MySQL trouble: the same message again, a second later. */
                        if (!failing)
                                cpn_log_warn("confirmer: %s; retrying", err.msg);
                        failing = true;
                        for (int i = 0; i < 10 && !atomic_load(&c->stop); i++)
                                nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
                        if (atomic_load(&c->stop))
                                break;
                }
                if (failing && done == n) {
                        cpn_log_info("confirmer: MySQL answers again");
                        failing = false;
                }
                if (done)
                        (void)cpn_consumer_store(c->consumer, c->msgs, done, &err); /* after the commits */
                cpn_consumer_release(c->consumer, c->msgs, n);
        }
        return NULL;
}

int cpn_ticket_confirmer_new(struct cpn_ticket_confirmer **ret, const struct cpn_config *cfg,
                             const struct cpn_db_url *db_url, volatile sig_atomic_t *stop_process,
                             struct cpn_error *err) {
        struct cpn_ticket_confirmer *c = calloc(1, sizeof(*c));
        char group[300];
        int r;

        if (!c)
                return -ENOMEM;
        c->cfg = cfg;
        c->stop_process = stop_process;
        snprintf(group, sizeof(group), "%s-tickets", cfg->worker_group);
        r = cpn_consumer_new_for(&c->consumer, cfg, cfg->ticket_topic, group, err);
        if (!r)
                r = cpn_db_new(&c->db, db_url, cfg->mysql_timeout_ms, CPN_DB_SLOW_RW_MS(cfg->mysql_timeout_ms));
        if (!r) {
                r = -pthread_create(&c->thread, NULL, confirm_thread, c);
                if (r)
                        cpn_error_set(err, r, "confirmer: cannot start thread");
        }
        if (r) {
                cpn_db_free(c->db);
                cpn_consumer_free(c->consumer);
                free(c);
                return r;
        }
        pthread_setname_np(c->thread, "cpn:confirm");
        *ret = c;
        return 0;
}

struct cpn_ticket_confirmer *cpn_ticket_confirmer_free(struct cpn_ticket_confirmer *c) {
        if (!c)
                return NULL;
        atomic_store(&c->stop, true);
        pthread_join(c->thread, NULL);
        cpn_consumer_free(c->consumer);
        cpn_db_free(c->db);
        free(c);
        return NULL;
}

void cpn_ticket_confirmer_stats(struct cpn_ticket_confirmer *c, struct cpn_ticket_confirm_stats *out) {
        out->messages = atomic_load(&c->messages);
        out->confirmed = atomic_load(&c->confirmed);
        out->duplicates = atomic_load(&c->duplicates);
        out->failed = atomic_load(&c->failed);
}

bool cpn_ticket_confirmer_failed(struct cpn_ticket_confirmer *c, struct cpn_error *err) {
        if (!atomic_load(&c->dead))
                return false;
        cpn_error_set(err, -EIO, "%s", c->dead_why);
        return true;
}
