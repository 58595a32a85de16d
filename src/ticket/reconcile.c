/*
 * Reconciling a ticket type's Redis gate with MySQL, the truth
 * (couponctl ticket-type reconcile). What is safe under live traffic:
 * - the gate's meta, written from MySQL's row where Redis lost it;
 * - a live ticket's hold that Redis lost, added back (HSETNX: never over
 *   another hold);
 * - a hold of a ticket that is not live in MySQL, given back once it is
 *   older than any reservation in progress can be (release.lua: only that
 *   very ticket's hold).
 * MySQL is never changed: a difference there (issued against the live
 * tickets) is reported for a person to look at.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/ticket/reconcile.h"
#include "ticket-internal.h"

#define STALE_HOLD_MS 30000 /* as service.c: older, a hold without a MySQL ticket is no reservation in progress */

static const char live_sql[] =
        "SELECT user_id, id FROM tickets WHERE ticket_type_id = ? AND status IN ('PENDING', 'PAID', 'CONFIRMED')"
        " ORDER BY user_id";
static const char now_sql[] = "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";
#define LATE_S 60 /* past this, what the running service repairs is late */
static const char stuck_sql[] =
        "SELECT COUNT(*) FROM tickets WHERE ticket_type_id = ? AND status = 'PENDING'"
        " AND payment_started_at < NOW(3) - INTERVAL ? SECOND";
static const char unpublished_sql[] =
        "SELECT COUNT(*) FROM outbox o JOIN tickets t ON t.id = o.aggregateid"
        " WHERE t.ticket_type_id = ? AND o.published_at IS NULL AND o.created_at < NOW(3) - INTERVAL ? SECOND";
static const char unconfirmed_sql[] =
        "SELECT COUNT(*) FROM tickets WHERE ticket_type_id = ? AND status = 'PAID'"
        " AND paid_at < NOW(3) - INTERVAL ? SECOND";

/* The counts of what the service repairs itself, late. */
static int late_counts(struct cpn_db *db, const char *type_id, long payment_timeout_ms,
                       struct cpn_ticket_reconcile_report *rep, struct cpn_error *err) {
        const struct {
                const char *sql;
                int64_t after_s;
                int64_t *out;
        } q[] = {
                { stuck_sql, (payment_timeout_ms + 999) / 1000 + LATE_S, &rep->stuck_payments },
                { unpublished_sql, LATE_S, &rep->unpublished },
                { unconfirmed_sql, LATE_S, &rep->unconfirmed },
        };

        for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(type_id), CPN_DB_IN_INT(q[i].after_s) };
                struct cpn_db_val n = CPN_DB_OUT_INT();
                int r = cpn_db_run(db, q[i].sql, in, 2, &n, 1, NULL, err);

                if (r)
                        return r;
                *q[i].out = n.i;
        }
        return 0;
}

struct entry {
        char user[CPN_ID_MAX + 1];
        char id[CPN_TICKET_ID_LEN + 1];
        int64_t since_ms; /* Redis: when the hold was recorded */
};

struct list {
        struct entry *v;
        size_t n, cap;
};

static int push(struct list *l, const char *user, const char *id, int64_t since) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 256;
                struct entry *v = realloc(l->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        snprintf(l->v[l->n].user, sizeof(l->v[l->n].user), "%s", user);
        snprintf(l->v[l->n].id, sizeof(l->v[l->n].id), "%s", id);
        l->v[l->n++].since_ms = since;
        return 0;
}

static int by_user(const void *a, const void *b) {
        return strcmp(((const struct entry *)a)->user, ((const struct entry *)b)->user);
}

static int take_live(const struct cpn_db_val *col, void *ud) {
        return push(ud, col[0].buf, col[1].buf, 0);
}

/* A hold is "<ticket id>:<unix ms>" (reserve.lua). */
static int take_hold(const char *field, const char *value, void *ud) {
        const char *sep = strchr(value, ':');
        size_t len = sep ? (size_t)(sep - value) : strlen(value);
        char id[CPN_TICKET_ID_LEN + 1];

        if (len > CPN_TICKET_ID_LEN)
                len = 0; /* not a hold of ours: it never matches a ticket, and is stale */
        memcpy(id, value, len);
        id[len] = '\0';
        return push(ud, field, id, sep ? strtoll(sep + 1, NULL, 10) : 0);
}

static int put_hold(struct cpn_redis *redis, const char *key, const struct entry *e,
                    struct cpn_ticket_reconcile_report *rep, struct cpn_error *err) {
        struct cpn_redis_answer a;
        int r = cpn_redis_script(redis, "hold_put.lua", true, 1, 2, (const char *[]){ key, e->user, e->id }, &a,
                                 NULL, err);

        if (!r)
                rep->holds_restored += a.n == 1 && a.v[0].i == 1;
        return r;
}

static int drop_hold(struct cpn_redis *redis, const char *type_id, const struct entry *e,
                     struct cpn_ticket_reconcile_report *rep, struct cpn_error *err) {
        bool released = false;
        int r = cpn_gate_release(redis, type_id, e->user, e->id, &released, err);

        rep->stale_released += released;
        return r;
}

int cpn_ticket_reconcile(struct cpn_db *db, struct cpn_redis *redis, const char *type_id, bool dry_run,
                         long payment_timeout_ms, struct cpn_ticket_reconcile_report *rep, struct cpn_error *err) {
        char user[CPN_ID_MAX + 1], id[CPN_TICKET_ID_LEN + 1], key[CPN_ID_MAX + 32];
        struct cpn_db_val col[2] = { CPN_DB_OUT_TEXT(user), CPN_DB_OUT_TEXT(id) };
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(type_id) };
        struct cpn_db_val now = CPN_DB_OUT_INT();
        struct cpn_ticket_type_state st;
        struct list live = { 0 }, holds = { 0 };
        size_t i = 0, k = 0;
        bool created = false;
        int r;

        memset(rep, 0, sizeof(*rep));
        r = cpn_sql_type_get(db, type_id, &st, err);
        if (r)
                return r;
        if (cpn_ticket_key(key, sizeof(key), type_id, "users") < 0)
                return cpn_error_set(err, -EINVAL, "ticket type id too long");
        /* Redis first, then MySQL: a reservation that commits between the two
         * has its hold already (the gate records it before MySQL does). */
        r = cpn_redis_hash_each(redis, key, take_hold, &holds, err);
        if (!r)
                r = cpn_db_each(db, live_sql, in, 1, col, 2, take_live, &live, err);
        if (!r)
                r = cpn_db_run(db, now_sql, NULL, 0, &now, 1, NULL, err);
        if (!r)
                r = late_counts(db, type_id, payment_timeout_ms, rep, err);
        if (r)
                goto out;
        rep->live = (int64_t)live.n;
        rep->holds = (int64_t)holds.n;
        {
                const struct cpn_db_val tin[] = { CPN_DB_IN_TEXT(type_id) };
                struct cpn_db_val iss = CPN_DB_OUT_INT();
                static const char issued_sql[] = "SELECT issued FROM ticket_types WHERE id = ?";

                r = cpn_db_run(db, issued_sql, tin, 1, &iss, 1, NULL, err);
                if (r)
                        goto out;
                rep->issued = iss.i;
        }
        if (!dry_run) {
                r = cpn_gate_type_set(redis, &st.t, &created, err);
                if (r)
                        goto out;
                rep->meta_restored = created;
        }
        if (live.n)
                qsort(live.v, live.n, sizeof(*live.v), by_user);
        if (holds.n)
                qsort(holds.v, holds.n, sizeof(*holds.v), by_user);
        while (r == 0 && (i < live.n || k < holds.n)) {
                int c = i == live.n ? 1 : k == holds.n ? -1 : strcmp(live.v[i].user, holds.v[k].user);
                bool young = c >= 0 && now.i - holds.v[k].since_ms < STALE_HOLD_MS;

                if (c == 0 && strcmp(live.v[i].id, holds.v[k].id) == 0) {
                        i++, k++;
                } else if (c == 0 && young) {
                        rep->in_progress++; /* the other hold may be a reservation in progress */
                        i++, k++;
                } else if (c == 0) {
                        /* The user's live ticket is A, the hold names an old B. */
                        rep->stale_holds++;
                        rep->missing_holds++;
                        if (!dry_run)
                                r = drop_hold(redis, type_id, &holds.v[k], rep, err);
                        if (!r && !dry_run)
                                r = put_hold(redis, key, &live.v[i], rep, err);
                        i++, k++;
                } else if (c < 0) {
                        rep->missing_holds++; /* a live ticket the gate does not count */
                        if (!dry_run)
                                r = put_hold(redis, key, &live.v[i], rep, err);
                        i++;
                } else if (young) {
                        rep->in_progress++;
                        k++;
                } else {
                        rep->stale_holds++; /* a hold of nothing live: stock the gate does not sell */
                        if (!dry_run)
                                r = drop_hold(redis, type_id, &holds.v[k], rep, err);
                        k++;
                }
        }
out:
        free(live.v);
        free(holds.v);
        return r;
}
