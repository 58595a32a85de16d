/*
 * The ticket product's SQL, on the db layer's typed statements. MySQL is
 * the truth for stock: a reservation takes it with the conditional UPDATE
 * `issued = issued + 1 WHERE issued < total` in the transaction that
 * inserts the PENDING ticket, and every later change of a ticket is an
 * UPDATE guarded on its status (and gives the stock back in the same
 * transaction where it ends a hold).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ticket-internal.h"

#define TX_TRIES 3 /* a deadlock rolls the transaction back: it is run again whole */

static const char type_insert_sql[] =
        "INSERT INTO ticket_types (id, name, price, currency, total, hold_seconds, starts_at, ends_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char type_get_sql[] =
        "SELECT name, price, currency, total, hold_seconds, starts_at, ends_at FROM ticket_types WHERE id = ?";
/* held: PENDING and not expired, or with its payment in flight (that hold
 * is not given away); sold: PAID and CONFIRMED. */
static const char type_counts_sql[] =
        "SELECT CAST(COALESCE(SUM(status = 'PENDING' AND (expires_at > NOW(3) OR payment_started_at IS NOT NULL)), 0)"
        " AS SIGNED), CAST(COALESCE(SUM(status IN ('PAID', 'CONFIRMED')), 0) AS SIGNED),"
        " CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
        " FROM tickets WHERE ticket_type_id = ?";
static const char take_stock_sql[] =
        "UPDATE ticket_types SET issued = issued + 1 WHERE id = ? AND issued < total";
static const char type_exists_sql[] = "SELECT total FROM ticket_types WHERE id = ?";
static const char ticket_insert_sql[] =
        "INSERT INTO tickets (id, ticket_type_id, user_id, status, price, currency, expires_at)"
        " SELECT ?, id, ?, 'PENDING', price, currency, NOW(3) + INTERVAL hold_seconds SECOND"
        " FROM ticket_types WHERE id = ?";
#define TICKET_COLS "id, ticket_type_id, user_id, status, price, currency, expires_at, paid_at, confirmed_at"
static const char ticket_get_sql[] = "SELECT " TICKET_COLS " FROM tickets WHERE id = ?";
static const char ticket_lock_sql[] =
        "SELECT " TICKET_COLS ", payment_started_at IS NOT NULL FROM tickets WHERE id = ? FOR UPDATE";
static const char ticket_live_sql[] =
        "SELECT " TICKET_COLS " FROM tickets WHERE ticket_type_id = ? AND live_user = ?";
static const char cancel_sql[] =
        "UPDATE tickets SET status = 'CANCELLED', ended_at = NOW(3)"
        " WHERE id = ? AND status = 'PENDING' AND payment_started_at IS NULL";
static const char give_back_sql[] = "UPDATE ticket_types SET issued = issued - 1 WHERE id = ? AND issued > 0";

int cpn_sql_type_insert(struct cpn_db *db, const struct cpn_ticket_type *t, struct cpn_ticket_type *stored,
                        struct cpn_error *err) {
        struct cpn_ticket_type_state st;
        const struct cpn_db_val in[] = {
                CPN_DB_IN_TEXT(t->id),       CPN_DB_IN_TEXT(t->name),         CPN_DB_IN_INT(t->price),
                CPN_DB_IN_TEXT(t->currency), CPN_DB_IN_INT(t->total),         CPN_DB_IN_INT(t->hold_s),
                CPN_DB_IN_TIME(t->starts_at_ms),
                t->ends_at_ms == CPN_TIME_NEVER ? (struct cpn_db_val){ .type = CPN_DB_NULL }
                                                : CPN_DB_IN_TIME(t->ends_at_ms),
        };
        int r = cpn_db_run(db, type_insert_sql, in, 8, NULL, 0, NULL, err), g;

        if (r != 0 && r != CPN_DB_DUPLICATE)
                return r;
        g = cpn_sql_type_get(db, t->id, &st, err);
        if (g)
                return g == CPN_TICKET_TYPE_NOT_FOUND ? cpn_error_set(err, -EPROTO, "ticket type vanished") : g;
        *stored = st.t;
        if (r == 0)
                return 0;
        if (cpn_ticket_type_same(stored, t))
                return cpn_error_set(err, CPN_TICKET_TYPE_SAME, "ticket type %s exists with these fields", t->id);
        return cpn_error_set(err, CPN_TICKET_TYPE_EXISTS, "ticket type %s exists with other fields", t->id);
}

int cpn_sql_type_get(struct cpn_db *db, const char *id, struct cpn_ticket_type_state *out, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[7], cnt[3];
        int r;

        memset(out, 0, sizeof(*out));
        col[0] = CPN_DB_OUT_TEXT(out->t.name);
        col[1] = CPN_DB_OUT_INT();
        col[2] = CPN_DB_OUT_TEXT(out->t.currency);
        col[3] = CPN_DB_OUT_INT();
        col[4] = CPN_DB_OUT_INT();
        col[5] = CPN_DB_OUT_TIME();
        col[6] = CPN_DB_OUT_TIME();
        r = cpn_db_run(db, type_get_sql, in, 1, col, 7, NULL, err);
        if (r == CPN_DB_NO_ROW)
                return cpn_error_set(err, CPN_TICKET_TYPE_NOT_FOUND, "no ticket type %s", id);
        if (r)
                return r;
        snprintf(out->t.id, sizeof(out->t.id), "%s", id);
        out->t.price = col[1].i;
        out->t.total = col[3].i;
        out->t.hold_s = col[4].i;
        out->t.starts_at_ms = col[5].i;
        out->t.ends_at_ms = col[6].null ? CPN_TIME_NEVER : col[6].i;
        cnt[0] = CPN_DB_OUT_INT();
        cnt[1] = CPN_DB_OUT_INT();
        cnt[2] = CPN_DB_OUT_INT();
        r = cpn_db_run(db, type_counts_sql, in, 1, cnt, 3, NULL, err);
        if (r)
                return r == CPN_DB_NO_ROW ? cpn_error_set(err, -EPROTO, "no counts") : r;
        out->held = cnt[0].i;
        out->sold = cnt[1].i;
        out->now_ms = cnt[2].i;
        return 0;
}

/* The columns of TICKET_COLS into @t. */
static void ticket_cols(struct cpn_db_val *col, struct cpn_ticket *t, char status[16]) {
        memset(t, 0, sizeof(*t));
        col[0] = CPN_DB_OUT_TEXT(t->id);
        col[1] = CPN_DB_OUT_TEXT(t->type_id);
        col[2] = CPN_DB_OUT_TEXT(t->user_id);
        col[3] = (struct cpn_db_val){ .type = CPN_DB_TEXT, .buf = status, .cap = 16 };
        col[4] = CPN_DB_OUT_INT();
        col[5] = CPN_DB_OUT_TEXT(t->currency);
        col[6] = CPN_DB_OUT_TIME();
        col[7] = CPN_DB_OUT_TIME();
        col[8] = CPN_DB_OUT_TIME();
}

static int ticket_take(const struct cpn_db_val *col, struct cpn_ticket *t, const char *status,
                       struct cpn_error *err) {
        int s = cpn_ticket_status_parse(status);

        if (s < 0)
                return cpn_error_set(err, -EPROTO, "ticket %s: status %s", t->id, status);
        t->status = (enum cpn_ticket_status)s;
        t->price = col[4].i;
        t->expires_at_ms = col[6].i;
        t->paid_at_ms = col[7].null ? -1 : col[7].i;
        t->confirmed_at_ms = col[8].null ? -1 : col[8].i;
        return 0;
}

static int ticket_query(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                        struct cpn_ticket *out, struct cpn_error *err) {
        struct cpn_db_val col[9];
        char status[16];
        int r;

        ticket_cols(col, out, status);
        r = cpn_db_run(db, sql, in, n_in, col, 9, NULL, err);
        if (r == CPN_DB_NO_ROW)
                return CPN_TICKET_NOT_FOUND;
        return r ? r : ticket_take(col, out, status, err);
}

int cpn_sql_ticket_get(struct cpn_db *db, const char *id, struct cpn_ticket *out, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };

        return ticket_query(db, ticket_get_sql, in, 1, out, err);
}

int cpn_sql_ticket_live(struct cpn_db *db, const char *type_id, const char *user_id, struct cpn_ticket *out,
                        struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(type_id), CPN_DB_IN_TEXT(user_id) };

        return ticket_query(db, ticket_live_sql, in, 2, out, err);
}

static int reserve_tx(struct cpn_db *db, const char *type_id, const char *user_id, const char *id,
                      struct cpn_error *err) {
        const struct cpn_db_val tin[] = { CPN_DB_IN_TEXT(type_id) };
        const struct cpn_db_val iin[] = { CPN_DB_IN_TEXT(id), CPN_DB_IN_TEXT(user_id), CPN_DB_IN_TEXT(type_id) };
        struct cpn_db_val total = CPN_DB_OUT_INT();
        uint64_t n = 0;
        int r;

        r = cpn_db_begin(db, err);
        if (r)
                return r;
        r = cpn_db_run(db, take_stock_sql, tin, 1, NULL, 0, &n, err);
        if (!r && n == 0) {
                r = cpn_db_run(db, type_exists_sql, tin, 1, &total, 1, NULL, err);
                r = r == CPN_DB_NO_ROW ? CPN_TICKET_TYPE_NOT_FOUND : r == 0 ? CPN_TICKET_SOLD_OUT : r;
        }
        if (!r) {
                r = cpn_db_run(db, ticket_insert_sql, iin, 3, NULL, 0, &n, err);
                if (r == CPN_DB_DUPLICATE)
                        r = CPN_TICKET_HELD; /* the live-ticket key: the user has one */
                else if (!r && n != 1)
                        r = cpn_error_set(err, -EPROTO, "ticket insert wrote %llu rows", (unsigned long long)n);
        }
        if (r) {
                cpn_db_rollback(db);
                return r;
        }
        return cpn_db_commit(db, err) == 0 ? 0 : CPN_UNKNOWN;
}

int cpn_sql_reserve(struct cpn_db *db, const char *type_id, const char *user_id, const char *id,
                    struct cpn_ticket *out, struct cpn_error *err) {
        int r = -EAGAIN;

        for (int i = 0; i < TX_TRIES && r == -EAGAIN; i++)
                r = reserve_tx(db, type_id, user_id, id, err);
        if (r)
                return r;
        r = cpn_sql_ticket_get(db, id, out, err);
        return r == CPN_TICKET_NOT_FOUND ? cpn_error_set(err, -EPROTO, "ticket %s not found after commit", id) : r;
}

static int cancel_tx(struct cpn_db *db, const char *id, struct cpn_ticket *out, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[10];
        char status[16];
        uint64_t n = 0;
        int r;

        r = cpn_db_begin(db, err);
        if (r)
                return r;
        ticket_cols(col, out, status);
        col[9] = CPN_DB_OUT_INT(); /* a payment in flight */
        r = cpn_db_run(db, ticket_lock_sql, in, 1, col, 10, NULL, err);
        if (r == CPN_DB_NO_ROW)
                r = CPN_TICKET_NOT_FOUND;
        if (!r)
                r = ticket_take(col, out, status, err);
        if (!r && (out->status != CPN_TS_PENDING || col[9].i))
                r = cpn_error_set(err, CPN_TICKET_NOT_PENDING,
                                  out->status == CPN_TS_PENDING ? "a payment of this ticket is in progress"
                                                                : "the ticket is not PENDING");
        if (!r)
                r = cpn_db_run(db, cancel_sql, in, 1, NULL, 0, &n, err);
        if (!r && n == 1) {
                const struct cpn_db_val tin[] = { CPN_DB_IN_TEXT(out->type_id) };

                r = cpn_db_run(db, give_back_sql, tin, 1, NULL, 0, NULL, err);
        }
        if (r) {
                cpn_db_rollback(db);
                return r;
        }
        return cpn_db_commit(db, err);
}

int cpn_sql_cancel(struct cpn_db *db, const char *id, struct cpn_ticket *out, struct cpn_error *err) {
        int r = -EAGAIN;

        for (int i = 0; i < TX_TRIES && r == -EAGAIN; i++)
                r = cancel_tx(db, id, out, err);
        if (r)
                return r;
        return cpn_sql_ticket_get(db, id, out, err);
}
