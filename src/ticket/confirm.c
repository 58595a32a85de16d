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
struct cpn_ticket_confirmer {
        const struct cpn_config *cfg;
        struct cpn_consumer *consumer; /* owned; the thread's only */
        struct cpn_db *db;             /* owned; the thread's only */
        pthread_t thread;
        atomic_bool stop;
        atomic_bool dead;
        volatile sig_atomic_t *stop_process; /* main's flag: set when this thread dies */
        char dead_why[512];            /* written before dead is set */
        struct cpn_db_retry_policy retry;
        struct cpn_message msgs[BATCH];
        /* Written by the thread (confirmed and duplicates also by a retry
         * on it), read by any: cpn_ticket_confirmer_stats. */
        _Atomic uint64_t messages, confirmed, duplicates, failed, poison, retries, retry_resolved, retry_dead;
        _Atomic int64_t last_ms;
        _Atomic unsigned retry_attempts;
        _Atomic int assigned;
        struct cpn_consumer_lag lag;
};

/*
 * Confirms the event in @payload in the caller's transaction: 0 (applied,
 * or found applied: *@confirmed says which), CPN_INVALID (it cannot be
 * applied: why in @err) or a MySQL error worth retrying. @ev is filled as
 * far as the payload could be decoded (for the failed event's labels).
 */
static int confirm_tx(struct cpn_db *db, const void *payload, size_t len, struct cpn_ticket_event *ev,
                      bool *confirmed, struct cpn_error *err) {
        char status[16];
        struct cpn_db_val col = { .type = CPN_DB_TEXT, .buf = status, .cap = sizeof(status) };
        uint64_t n = 0;
        int r;

        *confirmed = false;
        if (!payload || len == 0)
                return cpn_error_set(err, CPN_INVALID, "empty message");
        if (len > CPN_TICKET_EVENT_MAX)
                return cpn_error_set(err, CPN_INVALID, "%zu bytes: larger than any ticket event", len);
        if (cpn_ticket_event_parse(payload, len, ev, err) != 0) {
                ev->type_id[0] = ev->ticket_id[0] = '\0'; /* no labels from a half-decoded event */
                return CPN_INVALID;
        }
        {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(ev->ticket_id) };

                r = cpn_db_run(db, status_sql, in, 1, &col, 1, NULL, err);
                if (r == CPN_DB_NO_ROW)
                        return cpn_error_set(err, CPN_INVALID, "no ticket %s", ev->ticket_id);
                if (!r && strcmp(status, "PAID") != 0 && strcmp(status, "CONFIRMED") != 0)
                        return cpn_error_set(err, CPN_INVALID, "ticket %s is %s, not PAID", ev->ticket_id, status);
                if (!r)
                        r = cpn_db_run(db, confirm_sql, in, 1, NULL, 0, &n, err);
        }
        if (!r) {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(ev->ticket_id), CPN_DB_IN_TEXT(ev->payment_key),
                                                 CPN_DB_IN_TEXT(ev->event_id),  CPN_DB_IN_INT(ev->amount),
                                                 CPN_DB_IN_TEXT(ev->currency),  CPN_DB_IN_TIME(ev->paid_at_ms) };

                r = cpn_db_run(db, payment_sql, in, 6, NULL, 0, NULL, err);
                if (r == CPN_DB_DUPLICATE)
                        r = cpn_error_set(err, CPN_INVALID, "payment key %s is another ticket's", ev->payment_key);
        }
        if (!r)
                *confirmed = n == 1;
        return r;
}

int cpn_ticket_confirm_apply(struct cpn_db *db, const char *payload, size_t len, struct cpn_error *why, void *ud) {
        struct cpn_ticket_confirmer *c = ud;
        struct cpn_ticket_event ev;
        bool confirmed;
        int r = confirm_tx(db, payload, len, &ev, &confirmed, why);

        if (!r && c)
                atomic_fetch_add(confirmed ? &c->confirmed : &c->duplicates, 1);
        return r;
}

/*
 * Applies one message in a transaction of its own; one that cannot be
 * applied becomes a failed_events row in that transaction instead (what
 * the confirm wrote is undone first). Returns 0 (applied, a duplicate, or
 * recorded) or an error worth retrying the message for.
 */
static int apply_one(struct cpn_ticket_confirmer *c, const struct cpn_message *m, struct cpn_error *err) {
        struct cpn_ticket_event ev = { .ticket_id = "" };
        struct cpn_error why = { { 0 } };
        bool confirmed = false, recorded = false;
        int r;

        r = cpn_db_begin(c->db, err);
        if (!r)
                r = cpn_db_savepoint(c->db, "confirm", err);
        if (!r) {
                r = confirm_tx(c->db, m->payload, m->len, &ev, &confirmed, &why);
                if (r && r != CPN_INVALID)
                        *err = why;
        }
        if (r == CPN_INVALID) {
                const struct cpn_db_failed f = {
                        .topic = m->topic,     .partition = m->partition, .offset = m->offset,
                        .key = m->key,         .key_len = m->key_len,     .payload = m->payload,
                        .payload_len = m->len, .scope = ev.type_id,       .subject = ev.ticket_id,
                        .error = why.msg,
                };

                cpn_log_warn("confirmer: %s[%d]@%lld to failed_events: %s", m->topic, (int)m->partition,
                             (long long)m->offset, why.msg);
                r = cpn_db_savepoint_undo(c->db, "confirm", err);
                if (!r)
                        r = cpn_db_failed_record(c->db, &f, &c->retry, err);
                recorded = true;
        }
        if (!r)
                r = cpn_db_commit(c->db, err);
        if (r) {
                cpn_db_rollback(c->db);
                return r;
        }
        atomic_fetch_add(&c->messages, 1);
        if (recorded) {
                atomic_fetch_add(&c->failed, 1);
                if (!ev.ticket_id[0]) /* not even a ticket event */
                        atomic_fetch_add(&c->poison, 1);
        } else {
                atomic_fetch_add(confirmed ? &c->confirmed : &c->duplicates, 1);
        }
        atomic_store(&c->last_ms, cpn_time_now_ms());
        return 0;
}

/* Retries the ticket topic's failed events that are due, with the
 * confirmer's own apply: shared with other workers by SKIP LOCKED. */
static int retry_failed(struct cpn_ticket_confirmer *c, struct cpn_error *err) {
        struct cpn_db_retry_stats st;
        int r = cpn_db_failed_retry(c->db, c->cfg->ticket_topic, CPN_DB_RETRY_DUE, 0, 50, &c->retry,
                                    cpn_ticket_confirm_apply, c, &st, err);

        if (!r) {
                atomic_fetch_add(&c->retry_resolved, st.resolved);
                atomic_fetch_add(&c->retry_dead, st.dead);
        }
        return r;
}

static void *confirm_thread(void *arg) {
        struct cpn_ticket_confirmer *c = arg;
        struct cpn_error err = { { 0 } };
        bool failing = false;
        int64_t next_retry = 0, next_lag = 0;
        unsigned attempts = 0;

        while (!atomic_load(&c->stop)) {
                if (cpn_mono_ms() >= next_lag) {
                        struct cpn_consumer_stats cs;

                        /* Nothing in hand here: every message polled was done with. */
                        cpn_consumer_lag_update(c->consumer, NULL, 0, &c->lag);
                        cpn_consumer_stats(c->consumer, &cs);
                        atomic_store(&c->assigned, cs.assigned);
                        next_lag = cpn_mono_ms() + 1000;
                }
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
                        atomic_fetch_add(&c->retries, 1);
                        atomic_store(&c->retry_attempts, ++attempts);
                        for (int i = 0; i < 10 && !atomic_load(&c->stop); i++)
                                nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
                        if (atomic_load(&c->stop))
                                break;
                }
                if (failing && done == n) {
                        cpn_log_info("confirmer: MySQL answers again");
                        failing = false;
                        attempts = 0;
                        atomic_store(&c->retry_attempts, 0);
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
        c->retry = (struct cpn_db_retry_policy){ cfg->retry_base_ms, cfg->retry_max_ms, cfg->retry_max_attempts };
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

void cpn_ticket_confirmer_stats(const struct cpn_ticket_confirmer *c, struct cpn_ticket_confirm_stats *out) {
        *out = (struct cpn_ticket_confirm_stats){
                .messages = atomic_load(&c->messages),
                .confirmed = atomic_load(&c->confirmed),
                .duplicates = atomic_load(&c->duplicates),
                .failed = atomic_load(&c->failed),
                .poison = atomic_load(&c->poison),
                .retries = atomic_load(&c->retries),
                .retry_resolved = atomic_load(&c->retry_resolved),
                .retry_dead = atomic_load(&c->retry_dead),
                .last_ms = atomic_load(&c->last_ms),
                .retry_attempts = atomic_load(&c->retry_attempts),
                .assigned = atomic_load(&c->assigned),
        };
}

size_t cpn_ticket_confirmer_lag(const struct cpn_ticket_confirmer *c, struct cpn_partition_lag *out, size_t max) {
        return cpn_consumer_lag_read(&c->lag, out, max);
}

bool cpn_ticket_confirmer_failed(struct cpn_ticket_confirmer *c, struct cpn_error *err) {
        if (!atomic_load(&c->dead))
                return false;
        cpn_error_set(err, -EIO, "%s", c->dead_why);
        return true;
}
