/*
 * The domain calls: each composes the store, the producer and the db, and
 * holds no lock across their I/O. A session is one thread's connections.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/coupon/service.h"
#include "cpn/coupon/db.h"
#include "cpn/coupon/delivery.h"
#include "cpn/coupon/store.h"

/* How long a read waits for a pooled MySQL connection before it answers
 * without MySQL ("persisted": null): a busy pool must not hold it up. */
#define READ_POOL_WAIT_MS 100

struct cpn_session {
        const struct cpn_service *svc;
        struct cpn_redis *redis;   /* owned */
        struct cpn_waiter *waiter; /* borrowed from the producer; handed back on free */
};

int cpn_session_new(struct cpn_session **ret, const struct cpn_service *svc) {
        struct cpn_session *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->svc = svc;
        r = cpn_redis_new(&s->redis, &svc->redis_url, svc->cfg->redis_timeout_ms);
        if (!r && svc->producer)
                r = cpn_waiter_new(svc->producer, &s->waiter);
        if (r) {
                cpn_session_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

struct cpn_session *cpn_session_free(struct cpn_session *s) {
        if (!s)
                return NULL;
        cpn_redis_free(s->redis);
        if (s->waiter)
                cpn_waiter_free(s->svc->producer, s->waiter);
        free(s);
        return NULL;
}

/* An issue call in flight through the pipe: the request thread's. */
struct piped_issue {
        struct cpn_coupon_issue call;
        const struct cpn_service *svc;
        struct cpn_waiter *w;
        uint64_t gen;
};

/* On the pipe's thread: hands the decision (and an issued coupon) to the
 * producer, which wakes the request when Kafka has it. */
static void piped_issue_done(struct cpn_coupon_issue *c, int ret) {
        struct piped_issue *pi = c->ud;

        cpn_coupon_decide(pi->svc->producer, pi->svc->topic, pi->w, pi->gen, ret, c->out,
                          pi->svc->cfg->kafka_ack_timeout_ms);
}

int cpn_service_issue(struct cpn_session *s, const char *campaign_id, const char *user_id,
                      struct cpn_issuance *out, int *delivery, struct cpn_error *err) {
        long ack_ms = s->svc->cfg->kafka_ack_timeout_ms;
        struct cpn_error local = { { 0 } };
        struct piped_issue pi = {
                .call = { .campaign_id = campaign_id, .user_id = user_id, .out = out,
                          .err = err ? err : &local, .done = piped_issue_done, .ud = &pi },
                .svc = s->svc,
                .w = s->waiter,
        };
        int r;

        if (!s->svc->pipe || !s->waiter)
                return cpn_error_set(err, -EINVAL, "issue: no pipe or producer");
        /* One sleep per request: the pipe decides, the producer produces,
         * and the delivery report wakes this thread. From a decision of 0
         * on, the answer is 202 whatever Kafka does: the outbox entry
         * written with the decision carries it. */
        pi.gen = cpn_waiter_arm(s->waiter, ack_ms);
        r = cpn_coupon_store_issue(s->svc->pipe, &pi.call);
        if (r)
                return r;
        return cpn_waiter_wait(s->waiter, ack_ms, delivery);
}

struct insert_args {
        const struct cpn_campaign *c;
        struct cpn_campaign *stored;
        struct cpn_error *err;
};

static int insert_one(struct cpn_db *db, void *ud) {
        struct insert_args *a = ud;

        return cpn_coupon_db_insert(db, a->c, a->stored, a->err);
}

int cpn_service_campaign_create(struct cpn_session *s, const struct cpn_campaign *c,
                                struct cpn_error *err) {
        struct cpn_campaign stored;
        struct insert_args ia = { c, &stored, err };
        struct cpn_campaign_state st;
        int in_db, r;

        /* MySQL first: the worker must know a campaign before any coupon of
         * it can reach Kafka. Redis then gets MySQL's row (a repeated create
         * without starts_at gets the start the first one stored), so a create
         * that stopped half-way completes when it is repeated. */
        in_db = cpn_db_pool_run(s->svc->db_pool, s->svc->cfg->mysql_timeout_ms, insert_one, &ia, err);
        if (in_db == CPN_CAMPAIGN_EXISTS) {
                if (cpn_coupon_store_get(s->redis, c->id, &st, NULL) == CPN_CAMPAIGN_NOT_FOUND)
                        return cpn_error_set(err, CPN_CAMPAIGN_EXISTS,
                                             "campaign %s is in MySQL with other fields and not in Redis: a create "
                                             "that did not complete (repeat it with its original fields) or Redis "
                                             "lost it (see couponctl reconcile)",
                                             c->id);
                return cpn_error_set(err, CPN_CAMPAIGN_EXISTS, "a campaign with this id and other fields exists");
        }
        if (in_db != 0 && in_db != CPN_CAMPAIGN_SAME)
                return in_db; /* nothing was written */
        r = cpn_coupon_store_create(s->redis, &stored, err);
        if (r == CPN_CAMPAIGN_SAME)
                return cpn_error_set(err, CPN_CAMPAIGN_SAME, "campaign %s already exists with these fields", c->id);
        if (r == CPN_CAMPAIGN_EXISTS)
                return cpn_error_set(err, CPN_CAMPAIGN_EXISTS, "a campaign with this id and other fields exists");
        if (r == CPN_UNKNOWN)
                return r;
        if (r < 0)
                return cpn_error_prefix(err, CPN_CAMPAIGN_PARTIAL, "in MySQL, not in Redis");
        return r;
}

struct persisted_args {
        const char *id;
        int64_t *persisted;
        struct cpn_error err;
};

static int persisted_one(struct cpn_db *db, void *ud) {
        struct persisted_args *a = ud;
        struct cpn_campaign row;

        return cpn_coupon_db_get(db, a->id, &row, a->persisted, &a->err);
}

int cpn_service_campaign_get(struct cpn_session *s, const char *id, struct cpn_campaign_state *st,
                             int64_t *persisted, struct cpn_error *err) {
        struct persisted_args pa = { .id = id, .persisted = persisted };
        int r;

        r = cpn_coupon_store_get(s->redis, id, st, err);
        if (r)
                return r;
        /* MySQL down, slow, busy or the row missing: the read still answers. */
        if (cpn_db_pool_run(s->svc->db_pool, READ_POOL_WAIT_MS, persisted_one, &pa, &pa.err) != 0)
                *persisted = -1;
        return 0;
}

struct exists_args {
        const char *campaign_id, *user_id;
        bool *found;
        struct cpn_error err;
};

static int exists_one(struct cpn_db *db, void *ud) {
        struct exists_args *a = ud;

        return cpn_coupon_db_coupon_exists(db, a->campaign_id, a->user_id, a->found, &a->err);
}

int cpn_service_user_get(struct cpn_session *s, const char *campaign_id, const char *user_id,
                         enum cpn_user_state *state, struct cpn_error *err) {
        bool issued = false, persisted = false;
        struct exists_args ea = { campaign_id, user_id, &persisted };
        int r;

        r = cpn_coupon_store_user_get(s->redis, campaign_id, user_id, &issued, err);
        if (r)
                return r;
        if (issued && cpn_db_pool_run(s->svc->db_pool, READ_POOL_WAIT_MS, exists_one, &ea, &ea.err) != 0)
                persisted = false; /* MySQL cannot say: "issued" is still true */
        *state = persisted ? CPN_USER_PERSISTED : issued ? CPN_USER_ISSUED : CPN_USER_NONE;
        return 0;
}

int cpn_service_ping_redis(struct cpn_session *s, struct cpn_error *err) {
        return cpn_redis_ping(s->redis, err);
}
