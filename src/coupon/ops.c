/*
 * couponctl's cross-store commands. Set differences are computed by Redis
 * itself (SDIFF over scratch sets under the campaign's hash tag), so a
 * campaign of millions of users needs no hash table here.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpn/coupon/db.h"
#include "cpn/coupon/delivery.h"
#include "cpn/coupon/store.h"
#include "cpn/clock.h"
#include "cpn/consumer.h"
#include "cpn/events.h"
#include "cpn/log.h"
#include "cpn/coupon/ops.h"

/* Scratch sets, "rc:<run>:<name>": each run its own, so that two commands
 * at once (an audit beside a reconcile) never stage into the same set. */
#define RC_MYSQL (ops->scratch[0])   /* users with a coupons row */
#define RC_KNOWN (ops->scratch[1])   /* rows + open failed events + outbox */
#define RC_MISSING (ops->scratch[2]) /* in Redis, nowhere downstream, first look */
#define RC_REBUILD (ops->scratch[3]) /* staged user set of rebuild */
#define LAG_TIMEOUT_MS 10000
/* The operator lease: renewed every LEASE_RENEW_MS, so a couponctl that
 * died blocks the campaign for at most LEASE_TTL_MS. */
#define LEASE_TTL_MS 15000
#define LEASE_RENEW_MS 5000

/* The lease a command that changes a campaign holds while it works, and
 * the thread that renews it. Owned by the struct cpn_ops. */
struct cpn_ops_lease {
        char campaign_id[CPN_ID_MAX + 1];
        char what[160];
        const char *token;
        struct cpn_redis *redis;    /* the renewing thread's own connection */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;          /* wakes the thread to stop; CLOCK_MONOTONIC */
        bool stop;                  /* under mu */
        atomic_bool lost;           /* someone else holds it now */
};

static int init_run(struct cpn_ops *ops, struct cpn_error *err) {
        static const char *const names[4] = { "mysql", "known", "missing", "rebuild" };
        int r;

        if (ops->run_id[0])
                return 0;
        r = cpn_random_token(ops->run_id, sizeof(ops->run_id));
        if (r)
                return cpn_error_set(err, r, "no random bytes for a run id");
        for (int i = 0; i < 4; i++)
                snprintf(ops->scratch[i], sizeof(ops->scratch[i]), "rc:%s:%s", ops->run_id, names[i]);
        return 0;
}

static void *renew_main(void *arg) {
        struct cpn_ops_lease *l = arg;

        pthread_mutex_lock(&l->mu);
        while (!l->stop) {
                cpn_cond_nap(&l->cv, &l->mu, LEASE_RENEW_MS, &l->stop);
                if (l->stop)
                        break;
                pthread_mutex_unlock(&l->mu);
                {
                        struct cpn_error err = { { 0 } };
                        char holder[160] = "";
                        int r = cpn_coupon_store_lease_take(l->redis, l->campaign_id, CPN_LEASE_OPS, l->token, l->what,
                                                     LEASE_TTL_MS, holder, sizeof(holder), NULL, &err);

                        if (r == CPN_HELD && !atomic_exchange(&l->lost, true))
                                cpn_log_warn("campaign %s: the operator lease went to '%s' (this run stalled "
                                             "past %d s?): this run stops before its next change",
                                             l->campaign_id, holder, LEASE_TTL_MS / 1000);
                        else if (r < 0)
                                cpn_log_warn("campaign %s: cannot renew the operator lease (%s); retrying",
                                             l->campaign_id, err.msg);
                }
                pthread_mutex_lock(&l->mu);
        }
        pthread_mutex_unlock(&l->mu);
        return NULL;
}

/* Takes the campaign's operator lease for @cmd and starts renewing it.
 * Returns 0, -EBUSY (another command holds it: who, in @err) or an error. */
static int hold(struct cpn_ops *ops, const char *id, const char *cmd, struct cpn_error *err) {
        struct cpn_ops_lease *l;
        char host[64] = "", holder[160] = "";
        int64_t left = 0;
        int r = init_run(ops, err);

        if (r)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return cpn_error_set(err, -ENOMEM, "out of memory");
        gethostname(host, sizeof(host) - 1);
        snprintf(l->campaign_id, sizeof(l->campaign_id), "%s", id);
        snprintf(l->what, sizeof(l->what), "couponctl %s on %s pid %d", cmd, host, (int)getpid());
        l->token = ops->run_id;
        r = cpn_coupon_store_lease_take(ops->redis, id, CPN_LEASE_OPS, l->token, l->what, LEASE_TTL_MS, holder,
                                 sizeof(holder), &left, err);
        if (r == CPN_HELD)
                r = cpn_error_set(err, -EBUSY,
                                  "campaign %s is being changed by %s; try again when it is done (if that "
                                  "run died, its lease expires within %.0f s)",
                                  id, holder[0] ? holder : "another command", (double)(left > 0 ? left : 0) / 1000.0);
        if (!r)
                r = cpn_redis_new(&l->redis, ops->redis_url, ops->cfg->redis_timeout_ms);
        if (!r) {
                pthread_mutex_init(&l->mu, NULL);
                cpn_cond_init_monotonic(&l->cv);
                r = -pthread_create(&l->thread, NULL, renew_main, l);
                if (r) {
                        pthread_cond_destroy(&l->cv);
                        pthread_mutex_destroy(&l->mu);
                        cpn_coupon_store_lease_drop(ops->redis, id, CPN_LEASE_OPS, l->token, NULL);
                        cpn_error_set(err, r, "cannot start the lease's thread");
                }
        }
        if (r) {
                cpn_redis_free(l->redis);
                free(l);
                return r;
        }
        ops->lease = l;
        return 0;
}

/* Whether this run still holds its lease; if not, the error to stop with. */
static int still_held(struct cpn_ops *ops, struct cpn_error *err) {
        if (ops->lease && atomic_load(&ops->lease->lost))
                return cpn_error_set(err, -EBUSY, "campaign %s: another command took the operator lease from "
                                     "this run (it stalled past %d s); stopped", ops->lease->campaign_id,
                                     LEASE_TTL_MS / 1000);
        return 0;
}

/* Stops renewing and gives the lease up. */
static void unhold(struct cpn_ops *ops) {
        struct cpn_ops_lease *l = ops->lease;

        if (!l)
                return;
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        if (!atomic_load(&l->lost))
                cpn_coupon_store_lease_drop(ops->redis, l->campaign_id, CPN_LEASE_OPS, l->token, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        cpn_redis_free(l->redis);
        free(l);
        ops->lease = NULL;
}

void cpn_ops_clear(struct cpn_ops *ops) {
        unhold(ops);
        if (ops->producer)
                ops->producer = cpn_producer_free(ops->producer, 10000);
        ops->outbox = cpn_coupon_outbox_free(ops->outbox);
}

/* ---- failed events ---- */

static int print_failed(const struct cpn_db_failed_row *f, void *ud) {
        FILE *out = ud;

        fprintf(out, "%" PRIu64 "\t%s\t%u\t%s\t%s\t%s[%d]@%" PRId64 "\t%s\t%s\t%s\n", f->id, f->status,
                f->attempts, f->scope[0] ? f->scope : "-", f->subject[0] ? f->subject : "-",
                f->topic, (int)f->partition, f->offset, f->next_retry_at[0] ? f->next_retry_at : "-",
                f->error, f->payload);
        return 0;
}

int cpn_ops_failed_list(struct cpn_ops *ops, const char *status, const char *campaign_id, size_t limit,
                        struct cpn_error *err) {
        fprintf(ops->out, "id\tstatus\tattempts\tscope\tsubject\tsource\tnext_retry_at\terror\tpayload\n");
        return cpn_db_failed_each(ops->db, status, NULL, campaign_id, limit, print_failed, ops->out, err);
}

int cpn_ops_failed_retry(struct cpn_ops *ops, const struct cpn_ops_failed_handler *h, size_t nh, uint64_t id,
                         struct cpn_error *err) {
        const struct cpn_db_retry_policy pol = { ops->cfg->retry_base_ms, ops->cfg->retry_max_ms,
                                                 ops->cfg->retry_max_attempts };
        struct cpn_db_retry_stats sum = { 0 };

        for (size_t i = 0; i < nh; i++) {
                struct cpn_db_retry_stats st;
                int r = cpn_db_failed_retry(ops->db, h[i].topic, id ? CPN_DB_RETRY_ONE : CPN_DB_RETRY_ALL, id,
                                            1000000, &pol, h[i].apply, h[i].ud, &st, err);

                if (r)
                        return cpn_error_prefix(err, r, "topic %s", h[i].topic);
                sum.resolved += st.resolved;
                sum.failed += st.failed;
                sum.dead += st.dead;
                if (st.last_error[0])
                        memcpy(sum.last_error, st.last_error, sizeof(sum.last_error));
        }
        if (id && sum.resolved + sum.failed + sum.dead == 0)
                return cpn_error_set(err, CPN_DB_NO_SUCH_EVENT, "no open or dead failed event %" PRIu64, id);
        fprintf(ops->out, "resolved=%zu still_failing=%zu dead=%zu%s%s\n", sum.resolved, sum.failed, sum.dead,
                sum.last_error[0] ? " last_error=" : "", sum.last_error);
        return 0;
}

int cpn_ops_lag(struct cpn_ops *ops, struct cpn_error *err) {
        int64_t lag;
        int r = cpn_kafka_group_lag(ops->cfg, ops->cfg->worker_group, LAG_TIMEOUT_MS, &lag, err);

        if (r)
                return r;
        fprintf(ops->out, "group=%s topic=%s lag=%" PRId64 "\n", ops->cfg->worker_group, ops->cfg->kafka_topic,
                lag);
        return 0;
}

/* ---- staging MySQL's users into Redis scratch sets ---- */

struct stager {
        struct cpn_ops *ops;
        const char *campaign_id;
        const char *parts[2];
        char ids[512][CPN_ID_MAX + 1];
        const char *ptrs[512];
        size_t n;
        unsigned char *seen_seq; /* bitmap of seqs in MySQL, or NULL */
        int64_t seq_max;
        struct cpn_error *err;
};

static int stage_flush(struct stager *s) {
        for (int p = 0; p < 2 && s->parts[p]; p++) {
                int r = cpn_coupon_store_scratch_add(s->ops->redis, s->campaign_id, s->parts[p], s->ptrs, s->n, s->err);

                if (r)
                        return r;
        }
        s->n = 0;
        return 0;
}

static int stage_one(const char *user_id, int64_t seq, void *ud) {
        struct stager *s = ud;

        if (s->seen_seq && seq >= 1 && seq <= s->seq_max)
                s->seen_seq[seq / 8] |= (unsigned char)(1u << (seq % 8));
        if (!cpn_user_id_valid(user_id, strlen(user_id)))
                return 0;
        memcpy(s->ids[s->n], user_id, strlen(user_id) + 1);
        s->ptrs[s->n] = s->ids[s->n];
        if (++s->n == 512)
                return stage_flush(s);
        return 0;
}

/* Fills @part_a (and @part_b if not NULL) with the campaign's MySQL users
 * (@with_rows) and open failed events' users (@with_failed). */
static int stage(struct cpn_ops *ops, const char *id, const char *part_a, const char *part_b, bool with_rows,
                 bool with_failed, unsigned char *seen_seq, int64_t seq_max, struct cpn_error *err) {
        struct stager *s = calloc(1, sizeof(*s));
        int r = 0;

        if (!s)
                return -ENOMEM;
        *s = (struct stager){ .ops = ops, .campaign_id = id, .parts = { part_a, part_b }, .seen_seq = seen_seq,
                              .seq_max = seq_max, .err = err };
        if (with_rows)
                r = cpn_coupon_db_users_each(ops->db, id, stage_one, s, err);
        s->seen_seq = NULL;
        if (!r && with_failed)
                r = cpn_coupon_db_failed_users_each(ops->db, ops->cfg->kafka_topic, id, stage_one, s, err);
        if (!r && s->n)
                r = stage_flush(s);
        free(s);
        return r;
}

/* ---- reconcile ---- */

struct idlist {
        char (*v)[CPN_ID_MAX + 1];
        size_t n, cap;
        size_t shown;
};

static int idlist_add(const char *user_id, void *ud) {
        struct idlist *l = ud;

        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                void *v = realloc(l->v, cap * sizeof(*l->v));

                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        snprintf(l->v[l->n++], CPN_ID_MAX + 1, "%s", user_id);
        return 0;
}

static void idlist_print(FILE *out, const char *what, const struct idlist *l) {
        if (!l->n)
                return;
        fprintf(out, "  %s: %zu:", what, l->n);
        for (size_t i = 0; i < l->n && i < 10; i++)
                fprintf(out, " %s", l->v[i]);
        fprintf(out, "%s\n", l->n > 10 ? " ..." : "");
}

/* Users in Redis's set that are nowhere downstream: not in MySQL, not in
 * an open failed event, not in the outbox. */
static int look_missing(struct cpn_ops *ops, const char *id, struct idlist *missing, unsigned char *seen_seq,
                        int64_t seq_max, struct cpn_error *err) {
        int64_t entries;
        int r;

        missing->n = 0;
        r = cpn_coupon_store_scratch_reset(ops->redis, id, RC_MYSQL, err);
        if (!r)
                r = cpn_coupon_store_scratch_reset(ops->redis, id, RC_KNOWN, err);
        if (!r)
                r = stage(ops, id, RC_MYSQL, RC_KNOWN, true, false, seen_seq, seq_max, err);
        if (!r)
                r = stage(ops, id, RC_KNOWN, NULL, false, true, NULL, 0, err);
        if (!r)
                r = cpn_coupon_store_outbox_users_into(ops->redis, id, RC_KNOWN, &entries, err);
        if (!r)
                r = cpn_coupon_store_diff_each(ops->redis, id, "users", RC_KNOWN, idlist_add, missing, err);
        return r;
}

/* Re-publishes @users through the outbox: each gets an entry (so the relay
 * of any coupon-api delivers it if this does not), then is produced and
 * waited for. Seqs are taken from the places 1..@count that no MySQL row
 * holds, in order; 0 when none is left. */
static int republish(struct cpn_ops *ops, const char *id, const struct idlist *users, const unsigned char *seen_seq,
                     int64_t seq_max, size_t *delivered, struct cpn_error *err) {
        struct cpn_issuance *batch = calloc(users->n, sizeof(*batch));
        struct cpn_waiter *w = NULL;
        int64_t next = 1, now = cpn_time_now_ms();
        int r = 0;

        *delivered = 0;
        if (!batch)
                return -ENOMEM;
        if (!ops->producer) {
                struct cpn_producer_sink sink;

                r = ops->outbox ? 0 : cpn_coupon_outbox_new(&ops->outbox, ops->redis_url, ops->cfg->redis_timeout_ms);
                if (r)
                        cpn_error_set(err, r, "out of memory");
                if (!r) {
                        sink = cpn_coupon_outbox_sink(ops->outbox);
                        r = cpn_producer_new(&ops->producer, ops->cfg, &sink, err);
                }
                if (!r)
                        r = cpn_producer_topic(ops->producer, ops->cfg->kafka_topic, &ops->topic, err);
        }
        if (!r)
                r = cpn_waiter_new(ops->producer, &w);
        for (size_t i = 0; !r && i < users->n; i++) {
                struct cpn_issuance *iss = &batch[i];

                while (seen_seq && next <= seq_max && (seen_seq[next / 8] & (1u << (next % 8))))
                        next++;
                snprintf(iss->campaign_id, sizeof(iss->campaign_id), "%s", id);
                snprintf(iss->user_id, sizeof(iss->user_id), "%s", users->v[i]);
                iss->seq = seen_seq && next <= seq_max ? next++ : 0;
                iss->issued_at_ms = now;
                r = cpn_coupon_store_outbox_add(ops->redis, iss, ops->run_id, err);
                if (r == CPN_HELD)
                        r = cpn_error_set(err, -EBUSY, "campaign %s: the operator lease was lost; stopped", id);
        }
        if (!r) {
                int d = cpn_coupon_send_wait(ops->producer, ops->topic, w, batch, users->n,
                                               ops->cfg->kafka_message_timeout_ms + 2000);

                if (d == 0)
                        *delivered = users->n;
                else if (d < 0)
                        r = cpn_error_set(err, d, "kafka: could not enqueue the re-published messages");
        }
        if (w)
                cpn_waiter_free(ops->producer, w);
        free(batch);
        return r;
}

struct reconcile_ctx {
        struct cpn_ops *ops;
        long grace_s;
        bool dry_run;
        int64_t lag;
        size_t campaigns, differing, busy;
        struct cpn_error *err;
};

/* Compares one campaign and repairs it; holds its lease unless dry_run. */
static int reconcile_held(const char *id, void *ud) {
        struct reconcile_ctx *x = ud;
        struct cpn_ops *ops = x->ops;
        struct cpn_error *err = x->err;
        struct cpn_coupon_db_counts dc;
        struct cpn_campaign_state rs;
        struct idlist missing = { 0 }, extra = { 0 };
        unsigned char *seen = NULL;
        int64_t scard = 0, seq_max = 0;
        size_t republished = 0, delivered = 0;
        int64_t fixed_before = -1, fixed_after = -1, raised_before = -1, raised_after = -1;
        bool consistent;
        int r;

        x->campaigns++;
        r = cpn_coupon_db_counts(ops->db, ops->cfg->kafka_topic, id, &dc, err);
        if (r == CPN_CAMPAIGN_NOT_FOUND) {
                fprintf(ops->out, "campaign=%s verdict=differs reason=not_in_mysql\n", id);
                x->differing++;
                return 0;
        }
        if (r)
                return r;
        r = cpn_coupon_store_get(ops->redis, id, &rs, err);
        if (r == CPN_CAMPAIGN_NOT_FOUND) {
                fprintf(ops->out,
                        "campaign=%s verdict=differs reason=not_in_redis mysql_rows=%" PRId64 " (%s: run "
                        "couponctl rebuild %s)\n", id, dc.rows,
                        dc.rows == 0 && dc.open_failed == 0
                                ? "a create that did not complete: repeat it to open it, or"
                                : "Redis lost it",
                        id);
                x->differing++;
                return 0;
        }
        if (r)
                return r;
        r = cpn_coupon_store_scard(ops->redis, id, "users", &scard, err);
        if (r)
                return r;
        seq_max = rs.issued > dc.total ? dc.total : rs.issued;
        seen = calloc((size_t)(seq_max / 8 + 1), 1);
        if (!seen)
                return -ENOMEM;
        r = look_missing(ops, id, &missing, seen, seq_max, err);
        if (!r)
                r = cpn_coupon_store_diff_each(ops->redis, id, RC_MYSQL, "users", idlist_add, &extra, err);
        if (r)
                goto out;

        fprintf(ops->out,
                "campaign=%s total=%" PRId64 " count=%" PRId64 " scard=%" PRId64 " mysql_rows=%" PRId64
                " persisted=%" PRId64 " failed_open=%" PRId64 " outbox=%" PRId64 " only_in_redis=%zu"
                " only_in_mysql=%zu", id, dc.total, rs.issued, scard, dc.rows, dc.persisted, dc.open_failed,
                rs.outbox_len, missing.n, extra.n);
        consistent = rs.issued == scard && scard == dc.rows + dc.open_failed + rs.outbox_len &&
                     dc.persisted == dc.rows && missing.n == 0 && extra.n == 0;
        if (consistent) {
                fprintf(ops->out, " verdict=ok\n");
                goto out;
        }
        if (x->dry_run) {
                fprintf(ops->out, " verdict=differs\n");
                idlist_print(ops->out, "only in Redis", &missing);
                idlist_print(ops->out, "only in MySQL (run couponctl rebuild)", &extra);
                x->differing++;
                goto out;
        }

        /* Repairs, each safe on its own; only while this run holds the
         * campaign (another reconcile or a rebuild may have taken over if
         * this one stalled). */
        r = still_held(ops, err);
        if (r)
                goto out;
        if (dc.persisted != dc.rows) {
                r = cpn_coupon_db_fix_persisted(ops->db, id, &fixed_before, &fixed_after, err);
                if (r == CPN_INVALID) {
                        cpn_log_warn("%s", err->msg);
                        r = 0;
                }
                if (r)
                        goto out;
        }
        if (rs.issued < scard) {
                r = cpn_coupon_store_count_raise(ops->redis, id, &raised_before, &raised_after, err);
                if (r)
                        goto out;
        }
        if (missing.n) {
                /* A user accepted a moment ago may be between the outbox and
                 * MySQL (in Kafka): only what stays missing is re-published. */
                r = cpn_coupon_store_scratch_reset(ops->redis, id, RC_MISSING, err);
                for (size_t i = 0; !r && i < missing.n; i++) {
                        const char *u = missing.v[i];

                        r = cpn_coupon_store_scratch_add(ops->redis, id, RC_MISSING, &u, 1, err);
                }
                if (r)
                        goto out;
                if (x->grace_s > 0)
                        sleep((unsigned)x->grace_s);
                memset(seen, 0, (size_t)(seq_max / 8 + 1));
                r = look_missing(ops, id, &missing, seen, seq_max, err);
                if (r)
                        goto out;
                missing.n = 0;
                r = cpn_coupon_store_diff_each(ops->redis, id, RC_MISSING, RC_KNOWN, idlist_add, &missing, err);
                if (!r && missing.n)
                        r = republish(ops, id, &missing, seen, seq_max, &delivered, err);
                if (r)
                        goto out;
                republished = missing.n;
        }
        fprintf(ops->out, " verdict=%s", extra.n || (rs.issued > scard) ? "differs" : "repaired");
        if (fixed_after != fixed_before)
                fprintf(ops->out, " fixed_persisted=%" PRId64 "->%" PRId64, fixed_before, fixed_after);
        if (raised_after != raised_before)
                fprintf(ops->out, " raised_count=%" PRId64 "->%" PRId64, raised_before, raised_after);
        fprintf(ops->out, " republished=%zu delivered=%zu\n", republished, delivered);
        idlist_print(ops->out, "re-published", &missing);
        idlist_print(ops->out, "only in MySQL, not repaired (run couponctl rebuild)", &extra);
        if (rs.issued > scard)
                fprintf(ops->out, "  count above the user set: not repaired (a lower count could oversell)\n");
        if (extra.n || rs.issued > scard)
                x->differing++;
out:
        cpn_coupon_store_scratch_reset(ops->redis, id, RC_MYSQL, NULL);
        cpn_coupon_store_scratch_reset(ops->redis, id, RC_KNOWN, NULL);
        cpn_coupon_store_scratch_reset(ops->redis, id, RC_MISSING, NULL);
        free(missing.v);
        free(extra.v);
        free(seen);
        return r;
}

static int reconcile_one(const char *id, void *ud) {
        struct reconcile_ctx *x = ud;
        int r;

        if (!x->dry_run) {
                r = hold(x->ops, id, "reconcile", x->err);
                if (r == -EBUSY) {
                        fprintf(x->ops->out, "campaign=%s verdict=busy (%s)\n", id, x->err->msg);
                        x->campaigns++;
                        x->busy++;
                        return 0;
                }
                if (r)
                        return r;
        }
        r = reconcile_held(id, ud);
        unhold(x->ops);
        return r;
}

int cpn_ops_reconcile(struct cpn_ops *ops, const char *campaign_id, long grace_s, bool dry_run,
                      struct cpn_error *err) {
        struct reconcile_ctx x = { .ops = ops, .grace_s = grace_s, .dry_run = dry_run, .lag = -1, .err = err };
        struct cpn_error lerr = { { 0 } };
        int r = init_run(ops, err);

        if (r)
                return r;
        if (cpn_kafka_group_lag(ops->cfg, ops->cfg->worker_group, LAG_TIMEOUT_MS, &x.lag, &lerr) == 0)
                fprintf(ops->out, "kafka_lag=%" PRId64 "%s\n", x.lag,
                        x.lag > 0 ? " (the workers are behind: differences may be in flight)" : "");
        else
                fprintf(ops->out, "kafka_lag=unknown (%s)\n", lerr.msg);
        if (campaign_id)
                r = reconcile_one(campaign_id, &x);
        else
                r = cpn_coupon_db_campaigns_each(ops->db, reconcile_one, &x, err);
        if (r)
                return r;
        fprintf(ops->out, "campaigns=%zu differing=%zu busy=%zu\n", x.campaigns, x.differing, x.busy);
        if (x.busy)
                return cpn_error_set(err, -EBUSY, "%zu campaign(s) skipped: another command is changing them",
                                     x.busy);
        return x.differing ? CPN_CAMPAIGN_DIFFERENT : 0;
}

/* ---- rebuild ---- */

int cpn_ops_rebuild(struct cpn_ops *ops, const char *campaign_id, long wait_s, bool force,
                    struct cpn_error *err) {
        struct cpn_campaign c;
        int64_t persisted, lag = -1, out[4], outbox_entries = 0;
        int64_t deadline = cpn_mono_ms() + wait_s * 1000;
        bool restored = false;
        int r;

        r = cpn_coupon_db_get(ops->db, campaign_id, &c, &persisted, err);
        if (r)
                return r;
        /* One command changes a campaign at a time: two rebuilds at once
         * staged into one set and left it with part of the users (and the
         * count with it), which oversold. */
        r = hold(ops, campaign_id, "rebuild", err);
        if (r)
                return r;
        r = cpn_coupon_store_pause(ops->redis, &c, true, &restored, err);
        if (r)
                goto out;
        fprintf(ops->out, "paused %s%s\n", campaign_id, restored ? " (its meta was missing: written again from MySQL)" : "");
        /* Everything Kafka holds must be in MySQL first, or its users would
         * be left out of the set. */
        for (;;) {
                struct cpn_error lerr = { { 0 } };

                r = cpn_kafka_group_lag(ops->cfg, ops->cfg->worker_group, LAG_TIMEOUT_MS, &lag, &lerr);
                if (r == 0 && lag == 0)
                        break;
                if (force) {
                        fprintf(ops->out, "--force: going on with kafka lag %s\n", r ? lerr.msg : "> 0");
                        break;
                }
                if (cpn_mono_ms() >= deadline) {
                        r = cpn_error_set(err, -ETIMEDOUT,
                                             "the workers did not catch up within %lds (%s); %s stays paused: "
                                             "run rebuild again once they have, or with --force",
                                             wait_s, r ? lerr.msg : "lag > 0", campaign_id);
                        goto out;
                }
                usleep(500 * 1000);
        }
        r = still_held(ops, err);
        if (!r)
                r = cpn_coupon_store_scratch_reset(ops->redis, campaign_id, RC_REBUILD, err);
        if (!r)
                r = stage(ops, campaign_id, RC_REBUILD, NULL, true, true, NULL, 0, err);
        /* Paused: the outbox can only shrink now, and what left it is in
         * Kafka, hence (lag 0) in MySQL already. */
        if (!r)
                r = cpn_coupon_store_outbox_users_into(ops->redis, campaign_id, RC_REBUILD, &outbox_entries, err);
        if (!r)
                r = cpn_coupon_store_rebuild(ops->redis, campaign_id, RC_REBUILD, ops->run_id, out, err);
        if (r == CPN_HELD)
                r = cpn_error_set(err, -EBUSY, "another command took the operator lease from this run");
        if (r) {
                cpn_error_prefix(err, r, "%s stays paused", campaign_id);
                goto out;
        }
        fprintf(ops->out, "rebuilt %s: count %" PRId64 " -> %" PRId64 ", users %" PRId64 " -> %" PRId64
                          " (mysql rows %" PRId64 "); resumed\n", campaign_id, out[0], out[1], out[2], out[3],
                persisted);
out:
        cpn_coupon_store_scratch_reset(ops->redis, campaign_id, RC_REBUILD, NULL);
        unhold(ops);
        return r;
}

/* ---- audit ---- */

static void verdict_line(FILE *out, bool ok, const char *what, const char *detail, int *fails) {
        fprintf(out, "%-4s %-34s %s\n", ok ? "PASS" : "FAIL", what, detail);
        if (!ok)
                (*fails)++;
}

int cpn_ops_audit(struct cpn_ops *ops, const char *id, int64_t users, long wait_s, struct cpn_error *err) {
        struct cpn_coupon_db_counts dc;
        struct cpn_campaign_state rs;
        struct idlist missing = { 0 }, extra = { 0 };
        int64_t lag = -1, scard = 0, deadline = cpn_mono_ms() + wait_s * 1000;
        char d[256];
        int fails = 0, r = init_run(ops, err);

        if (r)
                return r;
        /* Quiesce: the outbox drained into Kafka and Kafka into MySQL. */
        for (;;) {
                struct cpn_error lerr = { { 0 } };

                r = cpn_coupon_store_get(ops->redis, id, &rs, err);
                if (r == CPN_CAMPAIGN_NOT_FOUND)
                        return cpn_error_set(err, CPN_CAMPAIGN_NOT_FOUND, "no campaign %s in Redis", id);
                if (r)
                        return r;
                if (cpn_kafka_group_lag(ops->cfg, ops->cfg->worker_group, LAG_TIMEOUT_MS, &lag, &lerr) != 0)
                        lag = -1;
                if ((rs.outbox_len == 0 && lag == 0) || cpn_mono_ms() >= deadline)
                        break;
                usleep(500 * 1000);
        }
        r = cpn_coupon_db_counts(ops->db, ops->cfg->kafka_topic, id, &dc, err);
        if (r == CPN_CAMPAIGN_NOT_FOUND)
                return cpn_error_set(err, CPN_CAMPAIGN_NOT_FOUND, "no campaign %s in MySQL", id);
        if (!r)
                r = cpn_coupon_store_scard(ops->redis, id, "users", &scard, err);
        if (!r)
                r = look_missing(ops, id, &missing, NULL, 0, err);
        if (!r)
                r = cpn_coupon_store_diff_each(ops->redis, id, RC_MYSQL, "users", idlist_add, &extra, err);
        cpn_coupon_store_scratch_reset(ops->redis, id, RC_MYSQL, NULL);
        cpn_coupon_store_scratch_reset(ops->redis, id, RC_KNOWN, NULL);
        if (r)
                goto out;

        fprintf(ops->out, "audit of campaign %s: total %" PRId64 ", issued (Redis count) %" PRId64
                          ", MySQL rows %" PRId64 "\n", id, dc.total, rs.issued, dc.rows);
        if (users >= 0) {
                int64_t want = users < dc.total ? users : dc.total;

                snprintf(d, sizeof(d), "issued %" PRId64 ", min(total %" PRId64 ", distinct users %" PRId64 ") = %" PRId64,
                         rs.issued, dc.total, users, want);
                verdict_line(ops->out, rs.issued == want, "issued = min(total, users)", d, &fails);
        } else {
                snprintf(d, sizeof(d), "issued %" PRId64 " <= total %" PRId64 " (give --users N to check the exact number)",
                         rs.issued, dc.total);
                verdict_line(ops->out, rs.issued <= dc.total, "issued <= total", d, &fails);
        }
        snprintf(d, sizeof(d), "count %" PRId64 ", distinct users %" PRId64, rs.issued, scard);
        verdict_line(ops->out, rs.issued == scard, "no user twice (count = SCARD)", d, &fails);
        snprintf(d, sizeof(d), "%zu issued users not in MySQL, %" PRId64 " open failed events", missing.n,
                 dc.open_failed);
        verdict_line(ops->out, missing.n == 0 && dc.open_failed == 0, "every issued user in MySQL", d, &fails);
        snprintf(d, sizeof(d), "%" PRId64 " entries", rs.outbox_len);
        verdict_line(ops->out, rs.outbox_len == 0, "outbox empty", d, &fails);
        if (lag >= 0)
                snprintf(d, sizeof(d), "%" PRId64 " messages (group %s)", lag, ops->cfg->worker_group);
        else
                snprintf(d, sizeof(d), "unknown: Kafka not reachable");
        verdict_line(ops->out, lag == 0, "consumer lag 0", d, &fails);
        snprintf(d, sizeof(d), "rows %" PRId64 ", persisted %" PRId64 ", only in MySQL %zu, only in Redis %zu",
                 dc.rows, dc.persisted, extra.n, missing.n);
        verdict_line(ops->out, dc.rows == rs.issued && dc.persisted == dc.rows && extra.n == 0 && missing.n == 0,
                     "Redis = MySQL", d, &fails);
        idlist_print(ops->out, "issued but not in MySQL", &missing);
        idlist_print(ops->out, "in MySQL but not in Redis", &extra);
        fprintf(ops->out, "verdict: %s\n", fails ? "FAIL" : "PASS");
        r = fails ? CPN_CAMPAIGN_DIFFERENT : 0;
out:
        free(missing.v);
        free(extra.v);
        return r;
}
