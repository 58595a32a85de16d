/*
 * The worker loop; see worker.h. The batch in hand (messages borrowed from
 * the consumer, their decoded issuances and db records) is owned by struct
 * cpn_worker and given back to the consumer only after its offsets are
 * stored, or at shutdown.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpn/consumer.h"
#include "cpn/json.h"
#include "cpn/log.h"
#include "cpn/coupon/worker.h"

#define BATCH_RETRY_MIN_MS 100
#define BATCH_RETRY_MAX_MS 5000
#define FAILED_RETRY_EVERY_MS 1000
#define FAILED_RETRY_LIMIT 200
#define STATS_EVERY_MS 10000
#define LAG_EVERY_MS 1000

struct decoded {
        struct cpn_issuance iss;
        char error[300];
};

struct cpn_worker {
        const struct cpn_config *cfg;
        struct cpn_consumer *consumer;
        struct cpn_db *db;
        struct cpn_db_retry_policy pol;

        /* the batch in hand */
        struct cpn_message *msgs;
        struct decoded *dec;
        struct cpn_coupon_record *recs;
        size_t n, ndecoded, cap;

        long crash_after_commits; /* test builds only: COUPON_TEST_CRASH_AFTER_COMMIT */
        uint64_t commits;
        /* What cpn_worker_stats reports: written by the worker's thread
         * only, relaxed (each is a number of its own), read by any. */
        struct {
                _Atomic uint64_t batches, messages, inserted, duplicates, failed, poison;
                _Atomic uint64_t batch_retries, retry_resolved, retry_dead, in_hand;
                _Atomic int64_t last_batch_ms;
                _Atomic unsigned retry_attempts;
                _Atomic int assigned;
        } ctr;
        struct cpn_consumer_lag lag;
};

static void add(_Atomic uint64_t *c, uint64_t n) {
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define SET(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

int cpn_worker_new(struct cpn_worker **ret, const struct cpn_config *cfg, const struct cpn_db_url *db,
                   struct cpn_error *err) {
        struct cpn_worker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->cfg = cfg;
        w->pol = (struct cpn_db_retry_policy){ cfg->retry_base_ms, cfg->retry_max_ms, cfg->retry_max_attempts };
        w->cap = (size_t)cfg->worker_batch + 64;
        w->msgs = calloc(w->cap, sizeof(*w->msgs));
        w->dec = calloc(w->cap, sizeof(*w->dec));
        w->recs = calloc(w->cap, sizeof(*w->recs));
        if (!w->msgs || !w->dec || !w->recs) {
                cpn_worker_free(w);
                return -ENOMEM;
        }
#ifdef CPN_TEST_HOOKS
        {
                const char *crash = getenv("COUPON_TEST_CRASH_AFTER_COMMIT");

                if (crash && *crash) {
                        w->crash_after_commits = strtol(crash, NULL, 10);
                        cpn_log_warn("COUPON_TEST_CRASH_AFTER_COMMIT=%ld: will kill itself after that many commits, "
                                     "before storing offsets (a test crash point)", w->crash_after_commits);
                }
        }
#endif
        r = cpn_db_new(&w->db, db, cfg->mysql_timeout_ms, CPN_DB_SLOW_RW_MS(cfg->mysql_timeout_ms));
        if (!r)
                r = cpn_consumer_new(&w->consumer, cfg, err);
        if (r) {
                cpn_worker_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

struct cpn_worker *cpn_worker_free(struct cpn_worker *w) {
        if (!w)
                return NULL;
        if (w->consumer) {
                cpn_consumer_release(w->consumer, w->msgs, w->n);
                cpn_consumer_free(w->consumer);
        }
        cpn_db_free(w->db);
        free(w->msgs);
        free(w->dec);
        free(w->recs);
        free(w);
        return NULL;
}

void cpn_worker_stats(const struct cpn_worker *w, struct cpn_worker_stats *out) {
        *out = (struct cpn_worker_stats){
                .batches = GET(w->ctr.batches),
                .messages = GET(w->ctr.messages),
                .inserted = GET(w->ctr.inserted),
                .duplicates = GET(w->ctr.duplicates),
                .failed = GET(w->ctr.failed),
                .poison = GET(w->ctr.poison),
                .batch_retries = GET(w->ctr.batch_retries),
                .retry_resolved = GET(w->ctr.retry_resolved),
                .retry_dead = GET(w->ctr.retry_dead),
                .last_batch_ms = GET(w->ctr.last_batch_ms),
                .retry_attempts = GET(w->ctr.retry_attempts),
                .in_hand = GET(w->ctr.in_hand),
                .assigned = GET(w->ctr.assigned),
        };
}

size_t cpn_worker_lag(const struct cpn_worker *w, struct cpn_partition_lag *out, size_t max) {
        return cpn_consumer_lag_read(&w->lag, out, max);
}

/* Once a second, on the worker's thread: no broker is asked. */
static void measure(struct cpn_worker *w) {
        struct cpn_consumer_stats cs;

        cpn_consumer_lag_update(w->consumer, w->msgs, w->n, &w->lag);
        cpn_consumer_stats(w->consumer, &cs);
        SET(w->ctr.assigned, cs.assigned);
}

/* Room for messages that arrive while the batch in hand waits (rare: the
 * partitions are paused). */
static int grow(struct cpn_worker *w) {
        size_t cap = w->cap * 2;
        struct cpn_message *m = realloc(w->msgs, cap * sizeof(*m));
        struct decoded *d;
        struct cpn_coupon_record *r;

        if (!m)
                return -ENOMEM;
        w->msgs = m;
        d = realloc(w->dec, cap * sizeof(*d));
        if (!d)
                return -ENOMEM;
        w->dec = d;
        r = realloc(w->recs, cap * sizeof(*r));
        if (!r)
                return -ENOMEM;
        w->recs = r;
        w->cap = cap;
        /* The records point into dec, which may have moved: decode again. */
        w->ndecoded = 0;
        return 0;
}

static void decode_new(struct cpn_worker *w) {
        for (; w->ndecoded < w->n; w->ndecoded++) {
                size_t i = w->ndecoded;
                const struct cpn_message *m = &w->msgs[i];
                struct decoded *d = &w->dec[i];
                struct cpn_error derr = { { 0 } };
                int r = cpn_issuance_parse(m->payload, m->len, &d->iss, &derr);

                snprintf(d->error, sizeof(d->error), "cannot decode: %.280s", derr.msg);
                w->recs[i] = (struct cpn_coupon_record){
                        .iss = r == 0 ? &d->iss : NULL,
                        .error = d->error,
                        .campaign_id = d->iss.campaign_id,
                        .user_id = d->iss.user_id,
                        .topic = m->topic,
                        .partition = m->partition,
                        .offset = m->offset,
                        .key = m->key,
                        .key_len = m->key_len,
                        .payload = m->payload,
                        .payload_len = m->len,
                };
        }
}

/* The records of the batch in hand that did not decode (poison: they go
 * to failed_events whatever MySQL says). */
static uint64_t undecoded(const struct cpn_worker *w) {
        uint64_t n = 0;

        for (size_t i = 0; i < w->n; i++)
                n += w->recs[i].iss == NULL;
        return n;
}

static long batch_backoff(unsigned attempts) {
        long d = BATCH_RETRY_MIN_MS;

        for (unsigned i = 1; i < attempts && d < BATCH_RETRY_MAX_MS; i++)
                d *= 2;
        if (d > BATCH_RETRY_MAX_MS)
                d = BATCH_RETRY_MAX_MS;
        return d / 2 + rand() % (d / 2 + 1); /* jitter: workers do not retry in step */
}

static void retry_failed(struct cpn_worker *w) {
        struct cpn_db_retry_stats rs;
        struct cpn_error err = { { 0 } };
        int r = cpn_db_failed_retry(w->db, w->cfg->kafka_topic, CPN_DB_RETRY_DUE, 0, FAILED_RETRY_LIMIT, &w->pol,
                                    cpn_coupon_failed_apply, NULL, &rs, &err);

        if (r) {
                cpn_log_debug("failed events: retry postponed: %s", err.msg);
                return;
        }
        add(&w->ctr.retry_resolved, rs.resolved);
        add(&w->ctr.retry_dead, rs.dead);
        if (rs.resolved || rs.dead || rs.failed)
                cpn_log_info("failed events retried: %zu persisted, %zu still failing, %zu dead%s%s",
                             rs.resolved, rs.failed, rs.dead, rs.last_error[0] ? "; last error: " : "",
                             rs.last_error);
}

int cpn_worker_run(struct cpn_worker *w, const volatile sig_atomic_t *stop, long drain_ms,
                   struct cpn_error *err) {
        int64_t next_try = 0, next_failed = 0, next_stats = cpn_mono_ms() + STATS_EVERY_MS, next_lag = 0;
        int64_t outage_since = 0, drain_deadline = 0;
        struct cpn_worker_stats last, cur;
        unsigned attempts = 0;
        int r;

        cpn_worker_stats(w, &last);
        for (;;) {
                int64_t now = cpn_mono_ms();

                if (*stop && !drain_deadline) {
                        drain_deadline = now + drain_ms;
                        if (w->n)
                                cpn_log_info("stopping: finishing the batch in hand (%zu messages)", w->n);
                }
                if (now >= next_stats) {
                        cpn_worker_stats(w, &cur);
                        if (cur.messages != last.messages || cur.retry_resolved != last.retry_resolved)
                                cpn_log_info("%" PRIu64 " messages in %" PRIu64 " batches: %" PRIu64
                                             " new coupons, %" PRIu64 " duplicates, %" PRIu64
                                             " to failed_events (%.0f messages/s)",
                                             cur.messages - last.messages, cur.batches - last.batches,
                                             cur.inserted - last.inserted, cur.duplicates - last.duplicates,
                                             cur.failed - last.failed,
                                             (double)(cur.messages - last.messages) * 1000.0 / STATS_EVERY_MS);
                        last = cur;
                        next_stats = now + STATS_EVERY_MS;
                }
                if (now >= next_lag) {
                        measure(w);
                        next_lag = now + LAG_EVERY_MS;
                }
                if (w->n == 0) {
                        if (*stop)
                                return 0;
                        if (now >= next_failed) {
                                retry_failed(w);
                                next_failed = cpn_mono_ms() + FAILED_RETRY_EVERY_MS;
                        }
                        r = cpn_consumer_poll(w->consumer, w->msgs, (size_t)w->cfg->worker_batch, &w->n, 200,
                                              w->cfg->worker_batch_wait_ms, err);
                        if (r)
                                return r;
                        SET(w->ctr.in_hand, w->n);
                        continue;
                }
                if (now < next_try) {
                        long wait = (long)(next_try - now);

                        if (*stop && now >= drain_deadline)
                                return cpn_error_set(err, -EIO,
                                                     "MySQL still failing: %zu messages not persisted, they stay "
                                                     "in Kafka and are read again", w->n);
                        if (w->n + 64 > w->cap && grow(w) < 0)
                                return cpn_error_set(err, -ENOMEM, "out of memory");
                        r = cpn_consumer_poll(w->consumer, w->msgs, w->n + 64, &w->n, wait < 100 ? wait : 100, 0,
                                              err);
                        if (r)
                                return r;
                        SET(w->ctr.in_hand, w->n);
                        continue;
                }

                decode_new(w);
                {
                        struct cpn_coupon_persist_stats ps;
                        struct cpn_error perr = { { 0 } };

                        r = cpn_coupon_persist(w->db, w->recs, w->n, &w->pol, &ps, &perr);
                        if (r) {
                                attempts++;
                                add(&w->ctr.batch_retries, 1);
                                SET(w->ctr.retry_attempts, attempts);
                                if (attempts == 1) {
                                        outage_since = now;
                                        cpn_log_warn("cannot persist a batch of %zu (%s); partitions paused, "
                                                     "retrying with backoff", w->n, perr.msg);
                                } else {
                                        cpn_log_debug("batch retry %u failed: %s", attempts, perr.msg);
                                }
                                cpn_consumer_pause(w->consumer, true);
                                next_try = cpn_mono_ms() + batch_backoff(attempts);
                                continue;
                        }
                        w->commits++;
#ifdef CPN_TEST_HOOKS
                        if (w->crash_after_commits > 0 && w->commits >= (uint64_t)w->crash_after_commits) {
                                cpn_log_warn("test crash point: killed after commit %" PRIu64
                                             ", before storing offsets", w->commits);
                                raise(SIGKILL);
                        }
#endif
                        r = cpn_consumer_store(w->consumer, w->msgs, w->n, &perr);
                        if (r)
                                cpn_log_warn("%s (the messages are persisted; a redelivery changes nothing)", perr.msg);
                        add(&w->ctr.batches, 1);
                        add(&w->ctr.messages, w->n);
                        add(&w->ctr.inserted, ps.inserted);
                        add(&w->ctr.duplicates, ps.duplicates);
                        add(&w->ctr.failed, ps.failed);
                        add(&w->ctr.poison, undecoded(w));
                        SET(w->ctr.last_batch_ms, cpn_time_now_ms());
                        if (ps.failed)
                                cpn_log_warn("%zu message(s) of a batch of %zu recorded in failed_events",
                                             ps.failed, w->n);
                }
                cpn_consumer_release(w->consumer, w->msgs, w->n);
                w->n = w->ndecoded = 0;
                SET(w->ctr.in_hand, 0);
                if (attempts) {
                        cpn_log_info("MySQL back: batch persisted after %u attempts over %.1f s; partitions resumed",
                                     attempts + 1, (double)(cpn_mono_ms() - outage_since) / 1000.0);
                        attempts = 0;
                        SET(w->ctr.retry_attempts, 0);
                        cpn_consumer_pause(w->consumer, false);
                }
        }
}
