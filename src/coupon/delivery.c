/*
 * Issuances to Kafka on the shared producer, and the outbox cleaner that
 * removes what Kafka acknowledged: see delivery.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/coupon/delivery.h"
#include "cpn/coupon/store.h"
#include "cpn/log.h"

struct cpn_coupon_outbox {
        struct cpn_redis *redis; /* owned; the producer's report thread's only */
        _Atomic uint64_t deleted;
};

int cpn_coupon_outbox_new(struct cpn_coupon_outbox **ret, const struct cpn_redis_url *url, long timeout_ms) {
        struct cpn_coupon_outbox *o = calloc(1, sizeof(*o));
        int r;

        if (!o)
                return -ENOMEM;
        r = cpn_redis_new(&o->redis, url, timeout_ms);
        if (r) {
                free(o);
                return r;
        }
        *ret = o;
        return 0;
}

struct cpn_coupon_outbox *cpn_coupon_outbox_free(struct cpn_coupon_outbox *o) {
        if (o) {
                cpn_redis_free(o->redis);
                free(o);
        }
        return NULL;
}

/* The sink: the tags are struct cpn_outbox_ref, as cpn_coupon_message made them. */
static void delivered(void *ud, const void *const *tags, size_t n) {
        struct cpn_coupon_outbox *o = ud;
        struct cpn_error err = { { 0 } };

        if (cpn_coupon_store_outbox_delete(o->redis, (const struct cpn_outbox_ref *const *)tags, n, &err) < 0)
                cpn_log_warn("outbox: could not remove %zu delivered entries (%s); the relay will send them again", n,
                             err.msg);
        else
                atomic_fetch_add(&o->deleted, n);
}

struct cpn_producer_sink cpn_coupon_outbox_sink(struct cpn_coupon_outbox *o) {
        return (struct cpn_producer_sink){ .delivered = delivered, .ud = o };
}

uint64_t cpn_coupon_outbox_deleted(struct cpn_coupon_outbox *o) {
        return atomic_load(&o->deleted);
}

/* One issuance as a message, in buffers of the caller's frame. */
struct coupon_message {
        char value[512];
        char key[CPN_ID_MAX + 1];
        struct cpn_outbox_ref ref;
};

static int make(struct coupon_message *cm, struct cpn_topic *topic, const struct cpn_issuance *iss,
                struct cpn_outgoing *m) {
        int len = cpn_issuance_json(iss, cm->value, sizeof(cm->value));

        if (len < 0)
                return len;
        memcpy(cm->key, iss->user_id, sizeof(cm->key));
        memcpy(cm->ref.campaign_id, iss->campaign_id, sizeof(cm->ref.campaign_id));
        memcpy(cm->ref.outbox_id, iss->outbox_id, sizeof(cm->ref.outbox_id));
        *m = (struct cpn_outgoing){ .topic = topic,
                                   .key = cm->key,
                                   .key_len = strlen(cm->key),
                                   .value = cm->value,
                                   .len = (size_t)len,
                                   .tag = &cm->ref,
                                   .tag_len = sizeof(cm->ref) };
        return 0;
}

struct batch {
        struct cpn_topic *topic;
        const struct cpn_issuance *iss;
        struct coupon_message cm; /* reused: each message is copied when produced */
};

static int next(void *ud, size_t i, struct cpn_outgoing *m) {
        struct batch *b = ud;

        return make(&b->cm, b->topic, &b->iss[i], m);
}

int cpn_coupon_send_wait(struct cpn_producer *p, struct cpn_topic *topic, struct cpn_waiter *w,
                         const struct cpn_issuance *iss, size_t n, long wait_ms) {
        struct batch b = { .topic = topic, .iss = iss };

        return cpn_producer_send_wait(p, w, n, next, &b, wait_ms);
}

void cpn_coupon_decide(struct cpn_producer *p, struct cpn_topic *topic, struct cpn_waiter *w, uint64_t gen,
                       int decision, const struct cpn_issuance *iss, long wait_ms) {
        struct coupon_message cm;
        struct cpn_outgoing m;
        bool made = decision == 0 && make(&cm, topic, iss, &m) == 0;

        /* @iss may be the owner's: everything is in cm from here on. */
        cpn_producer_decide(p, w, gen, decision, made ? &m : NULL, wait_ms);
}
