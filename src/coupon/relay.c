/*
 * The outbox relay. Outbox entries normally leave within milliseconds (the
 * report thread removes them once Kafka has the message). An entry older
 * than COUPON_RELAY_AFTER_MS was left behind: its coupon-api crashed before
 * the report, or Kafka refused or did not answer within the message
 * timeout. Since the deadline exceeds that timeout, the first produce is
 * over by then, and producing again at worst duplicates a message whose
 * outcome was unknown: harmless, the worker's insert is idempotent.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpn/coupon/store.h"
#include "cpn/clock.h"
#include "cpn/coupon/delivery.h"
#include "cpn/events.h"
#include "cpn/log.h"

#define RELAY_BATCH 500

struct cpn_relay {
        const struct cpn_config *cfg;
        struct cpn_producer *producer;    /* borrowed */
        struct cpn_topic *topic;          /* the producer's */
        struct cpn_redis *redis;          /* relay thread's own connection */
        struct cpn_waiter *waiter;
        char owner[96];                   /* lease value: host:pid */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;                /* wakes the sleep on stop */
        bool stop;
        _Atomic uint64_t relayed;
        struct cpn_issuance batch[RELAY_BATCH];
        bool redis_failing;
        int64_t last_bad_log_ms; /* the relay thread's: one warning a minute */
};

static int relay_campaign(const char *id, void *ud) {
        struct cpn_relay *r = ud;
        struct cpn_error err = { { 0 } };
        long ttl = r->cfg->kafka_message_timeout_ms + 2 * r->cfg->relay_interval_ms + 5000;
        char cursor[48] = "";
        size_t n, read, malformed, bad = 0;
        int ret;

        ret = cpn_coupon_store_relay_lease(r->redis, id, r->owner, ttl, &err);
        if (ret == CPN_HELD)
                return 0; /* another coupon-api relays this campaign */
        if (ret)
                return ret;
        do {
                ret = cpn_coupon_store_outbox_stale(r->redis, id, r->cfg->relay_after_ms, cursor, sizeof(cursor),
                                             r->batch, RELAY_BATCH, &n, &read, &malformed, &err);
                if (ret)
                        return ret;
                bad += malformed;
                if (n == 0)
                        continue;
                ret = cpn_coupon_send_wait(r->producer, r->topic, r->waiter, r->batch, n,
                                             r->cfg->kafka_message_timeout_ms + 2000);
                if (ret == 0) {
                        atomic_fetch_add(&r->relayed, n);
                        cpn_log_info("relay: campaign %s: %zu outbox entries delivered to kafka", id, n);
                } else {
                        cpn_log_warn("relay: campaign %s: %zu outbox entries not delivered yet (kafka %s); will retry",
                                     id, n, ret == CPN_DELIVERY_PENDING ? "did not answer" : "refused");
                        return 0;
                }
                pthread_mutex_lock(&r->mu);
                ret = r->stop;
                pthread_mutex_unlock(&r->mu);
        } while (read == RELAY_BATCH && !ret);
        if (bad && cpn_mono_ms() - r->last_bad_log_ms >= 60000) {
                r->last_bad_log_ms = cpn_mono_ms();
                cpn_log_warn("relay: campaign %s: %zu outbox entries without a user or seq cannot be sent "
                             "(written by hand?); left in place, the entries behind them are relayed", id, bad);
        }
        return 0;
}

static void *relay_thread(void *arg) {
        struct cpn_relay *r = arg;

        pthread_mutex_lock(&r->mu);
        while (!r->stop) {
                struct cpn_error err = { { 0 } };
                int ret;

                pthread_mutex_unlock(&r->mu);
                ret = cpn_coupon_store_campaigns_each(r->redis, relay_campaign, r, &err);
                if (ret < 0 && !r->redis_failing)
                        cpn_log_warn("relay: %s", err.msg);
                else if (ret == 0 && r->redis_failing)
                        cpn_log_info("relay: redis reachable again");
                r->redis_failing = ret < 0;
                pthread_mutex_lock(&r->mu);
                cpn_cond_nap(&r->cv, &r->mu, r->cfg->relay_interval_ms, &r->stop);
        }
        pthread_mutex_unlock(&r->mu);
        return NULL;
}

int cpn_relay_new(struct cpn_relay **ret, const struct cpn_config *cfg,
                  const struct cpn_redis_url *redis, struct cpn_producer *p, struct cpn_error *err) {
        struct cpn_relay *r = calloc(1, sizeof(*r));
        char host[64] = "";
        int e;

        if (!r)
                return -ENOMEM;
        r->cfg = cfg;
        r->producer = p;
        gethostname(host, sizeof(host) - 1);
        snprintf(r->owner, sizeof(r->owner), "%s:%d", host, (int)getpid());
        e = cpn_producer_topic(p, cfg->kafka_topic, &r->topic, err);
        if (e) {
                free(r);
                return e;
        }
        e = cpn_redis_new(&r->redis, redis, cfg->redis_timeout_ms);
        if (!e)
                e = cpn_waiter_new(p, &r->waiter);
        if (e) {
                cpn_redis_free(r->redis);
                free(r);
                return cpn_error_set(err, e, "relay: out of memory");
        }
        pthread_mutex_init(&r->mu, NULL);
        cpn_cond_init_monotonic(&r->cv);
        e = pthread_create(&r->thread, NULL, relay_thread, r);
        if (e) {
                cpn_waiter_free(p, r->waiter);
                cpn_redis_free(r->redis);
                free(r);
                return cpn_error_set(err, -e, "relay: cannot start thread");
        }
        pthread_setname_np(r->thread, "cpn:relay");
        *ret = r;
        return 0;
}

struct cpn_relay *cpn_relay_free(struct cpn_relay *r) {
        if (!r)
                return NULL;
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        cpn_waiter_free(r->producer, r->waiter);
        cpn_redis_free(r->redis);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return NULL;
}

uint64_t cpn_relay_relayed(struct cpn_relay *r) {
        return atomic_load(&r->relayed);
}
