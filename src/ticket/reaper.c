/* The reaper of expired holds (reaper.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/clock.h"
#include "cpn/log.h"
#include "cpn/ticket/gateway.h"
#include "cpn/ticket/reaper.h"
#include "ticket-internal.h"

#define REAP_BATCH 200
/* A payment keeps its hold for the gateway's timeout after it began, and
 * this much more: time for the request, or else the settler (which asks a
 * second after the timeout, and believes "nothing charged" 30 s after
 * it), to record what the gateway answered. */
#define PAYMENT_MARGIN_MS 35000
#define SETTLE_BATCH 50

static const char due_sql[] =
        "SELECT id, ticket_type_id, user_id FROM tickets"
        " WHERE status = 'PENDING' AND expires_at <= NOW(3)"
        " AND (payment_started_at IS NULL OR payment_started_at <= NOW(3) - INTERVAL ? MICROSECOND)"
        " ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED";
static const char expire_sql[] =
        "UPDATE tickets SET status = 'EXPIRED', ended_at = NOW(3) WHERE id = ? AND status = 'PENDING'";
static const char give_back_sql[] = "UPDATE ticket_types SET issued = issued - 1 WHERE id = ? AND issued > 0";

struct hold {
        char id[CPN_TICKET_ID_LEN + 1];
        char type_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
};

struct pass {
        struct cpn_db *db;
        struct hold *holds;
        size_t n;
        struct cpn_error *err;
};

static int expire_one(const struct cpn_db_val *col, void *ud) {
        struct pass *p = ud;
        struct hold *h = &p->holds[p->n];
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(col[0].buf) };
        uint64_t changed = 0;
        int r;

        r = cpn_db_run(p->db, expire_sql, in, 1, NULL, 0, &changed, p->err);
        if (r || changed != 1)
                return r;
        {
                const struct cpn_db_val tin[] = { CPN_DB_IN_TEXT(col[1].buf) };

                r = cpn_db_run(p->db, give_back_sql, tin, 1, NULL, 0, NULL, p->err);
        }
        if (r)
                return r;
        snprintf(h->id, sizeof(h->id), "%s", col[0].buf);
        snprintf(h->type_id, sizeof(h->type_id), "%s", col[1].buf);
        snprintf(h->user_id, sizeof(h->user_id), "%s", col[2].buf);
        p->n++;
        return 0;
}

int cpn_ticket_reap(struct cpn_db *db, struct cpn_redis *redis, long payment_timeout_ms, size_t limit, size_t *n,
                    struct cpn_error *err) {
        char id[CPN_TICKET_ID_LEN + 1], type[CPN_ID_MAX + 1], user[CPN_ID_MAX + 1];
        const struct cpn_db_val in[] = { CPN_DB_IN_INT((int64_t)(payment_timeout_ms + PAYMENT_MARGIN_MS) * 1000),
                                         CPN_DB_IN_INT((int64_t)limit) };
        struct cpn_db_val col[3] = { CPN_DB_OUT_TEXT(id), CPN_DB_OUT_TEXT(type), CPN_DB_OUT_TEXT(user) };
        struct pass p = { .db = db, .err = err };
        int r;

        *n = 0;
        p.holds = calloc(limit ? limit : 1, sizeof(*p.holds));
        if (!p.holds)
                return -ENOMEM;
        r = cpn_db_begin(db, err);
        if (!r)
                r = cpn_db_each(db, due_sql, in, 2, col, 3, expire_one, &p, err);
        if (r) {
                cpn_db_rollback(db);
        } else {
                r = cpn_db_commit(db, err);
        }
        if (r) {
                free(p.holds);
                return r;
        }
        /* MySQL has given the stock back; now the gate. A release that fails
         * leaves a stale hold, which the user's next reservation finds and
         * gives back (the gate errs on the side of selling less). */
        for (size_t i = 0; i < p.n; i++)
                (void)cpn_gate_release(redis, p.holds[i].type_id, p.holds[i].user_id, p.holds[i].id, NULL, NULL);
        *n = p.n;
        free(p.holds);
        return 0;
}

/* A hold a reservation may have left in Redis when the gate's answer was
 * lost (the script can still run after the request gave up): released
 * while it names that ticket, tried each pass until it is gone or 30 s
 * old (by then the request's script has run or never will; a hold left
 * past that is stale to the next reservation of the user and to
 * reconcile). */
#define GIVE_BACK_MAX 1024
#define GIVE_BACK_MS 30000
struct give_back {
        char type_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
        char id[CPN_TICKET_ID_LEN + 1];
        int64_t until_ms;
};

struct cpn_ticket_reaper {
        const struct cpn_config *cfg;
        struct give_back gb[GIVE_BACK_MAX], gb_work[GIVE_BACK_MAX]; /* gb under mu; gb_work the thread's */
        size_t n_gb;
        struct cpn_db *db;       /* owned: the thread's */
        struct cpn_redis *redis; /* owned: the thread's */
        struct cpn_gateway *gw;  /* owned: the thread's; NULL without COUPON_PAYMENT_URL */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool stop;
        bool failing, settle_failing;
        _Atomic uint64_t expired;
        _Atomic uint64_t settled;
};

void cpn_ticket_reaper_give_back(struct cpn_ticket_reaper *r, const char *type_id, const char *user_id,
                                 const char *ticket_id) {
        struct give_back *g;

        if (!r)
                return;
        pthread_mutex_lock(&r->mu);
        if (r->n_gb < GIVE_BACK_MAX) {
                g = &r->gb[r->n_gb++];
                snprintf(g->type_id, sizeof(g->type_id), "%s", type_id);
                snprintf(g->user_id, sizeof(g->user_id), "%s", user_id);
                snprintf(g->id, sizeof(g->id), "%s", ticket_id);
                g->until_ms = cpn_mono_ms() + GIVE_BACK_MS;
        }
        pthread_mutex_unlock(&r->mu);
}

/* Gives back what cpn_ticket_reaper_give_back queued; keeps what is not
 * gone yet. */
static void give_back_pass(struct cpn_ticket_reaper *r) {
        size_t n;

        pthread_mutex_lock(&r->mu);
        n = r->n_gb;
        memcpy(r->gb_work, r->gb, n * sizeof(r->gb[0]));
        r->n_gb = 0;
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n; i++) {
                struct give_back *g = &r->gb_work[i];
                bool released = false;

                if (cpn_gate_release(r->redis, g->type_id, g->user_id, g->id, &released, NULL) == 0 && released)
                        continue;
                if (cpn_mono_ms() >= g->until_ms)
                        continue;
                pthread_mutex_lock(&r->mu);
                if (r->n_gb < GIVE_BACK_MAX)
                        r->gb[r->n_gb++] = *g;
                pthread_mutex_unlock(&r->mu);
        }
}

static void *reaper_thread(void *arg) {
        struct cpn_ticket_reaper *r = arg;

        pthread_mutex_lock(&r->mu);
        while (!r->stop) {
                struct cpn_error err = { { 0 } };
                size_t n = 0;
                int ret;

                pthread_mutex_unlock(&r->mu);
                give_back_pass(r);
                if (r->gw) {
                        /* Payments whose outcome went unrecorded first: their holds
                         * are not to be reaped while that is unknown. */
                        ret = cpn_ticket_settle(r->db, r->gw, r->cfg->payment_timeout_ms, SETTLE_BATCH, &n, &err);
                        if (n)
                                atomic_fetch_add(&r->settled, n);
                        if (ret && !r->settle_failing)
                                cpn_log_warn("settler: %s; unknown payments wait", err.msg);
                        r->settle_failing = ret != 0;
                        err.msg[0] = '\0';
                }
                do {
                        ret = cpn_ticket_reap(r->db, r->redis, r->cfg->payment_timeout_ms, REAP_BATCH, &n, &err);
                        if (ret == 0 && n) {
                                atomic_fetch_add(&r->expired, n);
                                cpn_log_debug("reaper: %zu holds expired", n);
                        }
                } while (ret == 0 && n == REAP_BATCH);
                if (ret && !r->failing)
                        cpn_log_warn("reaper: %s; expired holds wait", err.msg);
                else if (!ret && r->failing)
                        cpn_log_info("reaper: MySQL answers again");
                r->failing = ret != 0;
                pthread_mutex_lock(&r->mu);
                cpn_cond_nap(&r->cv, &r->mu, r->cfg->ticket_reap_ms, &r->stop);
        }
        pthread_mutex_unlock(&r->mu);
        return NULL;
}

int cpn_ticket_reaper_new(struct cpn_ticket_reaper **ret, const struct cpn_config *cfg,
                          const struct cpn_db_url *db_url, const struct cpn_redis_url *redis_url,
                          struct cpn_error *err) {
        struct cpn_ticket_reaper *r = calloc(1, sizeof(*r));
        int e;

        if (!r)
                return -ENOMEM;
        r->cfg = cfg;
        e = cpn_db_new(&r->db, db_url, cfg->mysql_timeout_ms, CPN_DB_SLOW_RW_MS(cfg->mysql_timeout_ms));
        if (!e)
                e = cpn_redis_new(&r->redis, redis_url, cfg->redis_timeout_ms);
        if (!e && cfg->payment_url && *cfg->payment_url)
                e = cpn_gateway_new(&r->gw, cfg->payment_url, cfg->payment_secret ? cfg->payment_secret : "",
                                    cfg->payment_timeout_ms);
        if (e) {
                cpn_redis_free(r->redis);
                cpn_db_free(r->db);
                free(r);
                return cpn_error_set(err, e, "reaper: out of memory");
        }
        pthread_mutex_init(&r->mu, NULL);
        cpn_cond_init_monotonic(&r->cv);
        e = pthread_create(&r->thread, NULL, reaper_thread, r);
        if (e) {
                cpn_gateway_free(r->gw);
                cpn_redis_free(r->redis);
                cpn_db_free(r->db);
                free(r);
                return cpn_error_set(err, -e, "reaper: cannot start thread");
        }
        pthread_setname_np(r->thread, "cpn:reaper");
        *ret = r;
        return 0;
}

struct cpn_ticket_reaper *cpn_ticket_reaper_free(struct cpn_ticket_reaper *r) {
        if (!r)
                return NULL;
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        cpn_gateway_free(r->gw);
        cpn_redis_free(r->redis);
        cpn_db_free(r->db);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return NULL;
}

uint64_t cpn_ticket_reaper_settled(const struct cpn_ticket_reaper *r) {
        return atomic_load(&((struct cpn_ticket_reaper *)r)->settled);
}

uint64_t cpn_ticket_reaper_expired(const struct cpn_ticket_reaper *r) {
        return atomic_load(&((struct cpn_ticket_reaper *)r)->expired);
}
