/*
 * The coupon product's own statements on the db layer: see coupon/db.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cpn/coupon/db.h"

static const char get_sql[] = "SELECT name, total, starts_at, ends_at, persisted FROM campaigns WHERE id = ?";
static const char insert_sql[] = "INSERT INTO campaigns (id, name, total, starts_at, ends_at) VALUES (?, ?, ?, ?, ?)";
static const char exists_sql[] = "SELECT 1 FROM coupons WHERE campaign_id = ? AND user_id = ?";
static const char ids_sql[] = "SELECT id FROM campaigns ORDER BY id";
static const char rows_sql[] = "SELECT COUNT(*) FROM coupons WHERE campaign_id = ?";
static const char open_failed_sql[] =
        "SELECT COUNT(*) FROM failed_events WHERE topic = ? AND scope_id = ? AND status = 'open'";
static const char users_sql[] = "SELECT user_id, seq FROM coupons WHERE campaign_id = ?";
static const char failed_users_sql[] =
        "SELECT DISTINCT subject_id, 0 FROM failed_events WHERE topic = ? AND scope_id = ? AND status = 'open'"
        " AND subject_id IS NOT NULL";
static const char lock_sql[] = "SELECT total, persisted FROM campaigns WHERE id = ? FOR UPDATE";
static const char set_persisted_sql[] = "UPDATE campaigns SET persisted = ? WHERE id = ?";

int cpn_coupon_db_get(struct cpn_db *db, const char *id, struct cpn_campaign *out, int64_t *persisted,
                      struct cpn_error *err) {
        char name[CPN_NAME_BYTES];
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_TEXT(name), CPN_DB_OUT_INT(), CPN_DB_OUT_TIME(), CPN_DB_OUT_TIME(),
                                    CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, get_sql, in, 1, col, 5, NULL, err);

        if (r == CPN_DB_NO_ROW)
                return CPN_CAMPAIGN_NOT_FOUND;
        if (r)
                return r;
        memset(out, 0, sizeof(*out));
        snprintf(out->id, sizeof(out->id), "%s", id);
        snprintf(out->name, sizeof(out->name), "%s", name);
        out->total = col[1].i;
        out->starts_at_ms = col[2].i;
        out->ends_at_ms = col[3].null ? CPN_TIME_NEVER : col[3].i;
        if (persisted)
                *persisted = col[4].i;
        return 0;
}

/* Whether the stored @row is what the create @c asks for. A create without
 * starts_at meant "now" when it was first made: a repeat of it, whenever
 * it comes, matches the start the first one stored. */
static bool same_campaign(const struct cpn_campaign *row, const struct cpn_campaign *c) {
        return strcmp(row->id, c->id) == 0 && strcmp(row->name, c->name) == 0 && row->total == c->total &&
               (c->starts_now || row->starts_at_ms == c->starts_at_ms) && row->ends_at_ms == c->ends_at_ms;
}

int cpn_coupon_db_insert(struct cpn_db *db, const struct cpn_campaign *c, struct cpn_campaign *stored,
                         struct cpn_error *err) {
        const struct cpn_db_val in[] = {
                CPN_DB_IN_TEXT(c->id),
                CPN_DB_IN_TEXT(c->name),
                CPN_DB_IN_INT(c->total),
                CPN_DB_IN_TIME(c->starts_at_ms),
                c->ends_at_ms == CPN_TIME_NEVER ? (struct cpn_db_val){ .type = CPN_DB_NULL }
                                                : CPN_DB_IN_TIME(c->ends_at_ms),
        };
        struct cpn_campaign cur;
        int r = cpn_db_run(db, insert_sql, in, 5, NULL, 0, NULL, err);

        if (r == 0) {
                *stored = *c;
                stored->starts_now = false;
                return 0;
        }
        if (r != CPN_DB_DUPLICATE)
                return r;
        /* Present: identical means a retried create, else a conflict. */
        r = cpn_coupon_db_get(db, c->id, &cur, NULL, err);
        if (r)
                return r < 0 ? r : CPN_CAMPAIGN_EXISTS;
        *stored = cur;
        return same_campaign(&cur, c) ? CPN_CAMPAIGN_SAME : CPN_CAMPAIGN_EXISTS;
}

int cpn_coupon_db_coupon_exists(struct cpn_db *db, const char *campaign_id, const char *user_id, bool *found,
                                struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(campaign_id), CPN_DB_IN_TEXT(user_id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, exists_sql, in, 2, col, 1, NULL, err);

        if (r && r != CPN_DB_NO_ROW)
                return r;
        *found = r == 0;
        return 0;
}

struct ids {
        int (*fn)(const char *id, void *ud);
        void *ud;
};

static int one_id(const struct cpn_db_val *col, void *ud) {
        struct ids *x = ud;

        return x->fn(col[0].buf, x->ud);
}

int cpn_coupon_db_campaigns_each(struct cpn_db *db, int (*fn)(const char *id, void *ud), void *ud,
                                 struct cpn_error *err) {
        char id[CPN_ID_MAX + 1];
        struct cpn_db_val col[] = { CPN_DB_OUT_TEXT(id) };
        struct ids x = { fn, ud };

        return cpn_db_each(db, ids_sql, NULL, 0, col, 1, one_id, &x, err);
}

/* *@n = the COUNT(*) of @sql for campaign @id (of @topic first if not NULL). */
static int count_of(struct cpn_db *db, const char *sql, const char *topic, const char *id, int64_t *n,
                    struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(topic ? topic : id), CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, sql, topic ? in : in + 1, topic ? 2 : 1, col, 1, NULL, err);

        *n = r == 0 ? col[0].i : 0;
        return r == CPN_DB_NO_ROW ? 0 : r;
}

int cpn_coupon_db_counts(struct cpn_db *db, const char *topic, const char *id, struct cpn_coupon_db_counts *out,
                         struct cpn_error *err) {
        struct cpn_campaign c;
        int r;

        memset(out, 0, sizeof(*out));
        r = cpn_coupon_db_get(db, id, &c, &out->persisted, err);
        if (r)
                return r;
        out->total = c.total;
        r = count_of(db, rows_sql, NULL, id, &out->rows, err);
        if (!r)
                r = count_of(db, open_failed_sql, topic, id, &out->open_failed, err);
        return r;
}

struct users {
        int (*fn)(const char *user_id, int64_t seq, void *ud);
        void *ud;
};

static int one_user(const struct cpn_db_val *col, void *ud) {
        struct users *u = ud;

        return u->fn(col[0].buf, col[1].i, u->ud);
}

int cpn_coupon_db_users_each(struct cpn_db *db, const char *id, int (*fn)(const char *user_id, int64_t seq, void *ud),
                             void *ud, struct cpn_error *err) {
        char user[CPN_ID_MAX + 2];
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_TEXT(user), CPN_DB_OUT_INT() };
        struct users u = { fn, ud };

        return cpn_db_stream(db, users_sql, in, 1, col, 2, one_user, &u, err);
}

int cpn_coupon_db_failed_users_each(struct cpn_db *db, const char *topic, const char *id,
                                    int (*fn)(const char *user_id, int64_t seq, void *ud), void *ud,
                                    struct cpn_error *err) {
        char user[CPN_ID_MAX + 2];
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(topic), CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_TEXT(user), CPN_DB_OUT_INT() };
        struct users u = { fn, ud };

        return cpn_db_stream(db, failed_users_sql, in, 2, col, 2, one_user, &u, err);
}

int cpn_coupon_db_fix_persisted(struct cpn_db *db, const char *id, int64_t *before, int64_t *after,
                                struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_INT(), CPN_DB_OUT_INT() };
        int64_t total, persisted, rows;
        int r = cpn_db_begin(db, err);

        if (r)
                return r;
        r = cpn_db_run(db, lock_sql, in, 1, col, 2, NULL, err);
        if (r == CPN_DB_NO_ROW) {
                cpn_db_rollback(db);
                return CPN_CAMPAIGN_NOT_FOUND;
        }
        if (r)
                goto abort;
        total = col[0].i;
        persisted = col[1].i;
        r = count_of(db, rows_sql, NULL, id, &rows, err);
        if (r)
                goto abort;
        *before = *after = persisted;
        if (rows > total) {
                cpn_db_rollback(db);
                return cpn_error_set(err, CPN_INVALID,
                                     "campaign %s has %" PRId64 " coupons rows, above its total %" PRId64, id, rows,
                                     total);
        }
        if (rows != persisted) {
                const struct cpn_db_val set[] = { CPN_DB_IN_INT(rows), CPN_DB_IN_TEXT(id) };

                r = cpn_db_run(db, set_persisted_sql, set, 2, NULL, 0, NULL, err);
                if (r)
                        goto abort;
                *after = rows;
        }
        return cpn_db_commit(db, err);
abort:
        cpn_db_rollback(db);
        return r;
}
