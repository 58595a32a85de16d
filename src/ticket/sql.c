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
#include <stdlib.h>
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

/* ---- reservations, several in one transaction ---- */

static const char take_n_sql[] = "UPDATE ticket_types SET issued = issued + ? WHERE id = ? AND issued + ? <= total";
/* The terms a ticket is sold on, and the server's clock for expires_at
 * (the type row is locked by the UPDATE before). */
static const char terms_sql[] =
        "SELECT price, currency, hold_seconds, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
        " FROM ticket_types WHERE id = ?";

static struct cpn_db_rows ticket_rows = CPN_DB_ROWS(
        "INSERT INTO tickets (id, ticket_type_id, user_id, status, price, currency, expires_at) VALUES ",
        "(?, ?, ?, 'PENDING', ?, ?, ?)", 6, "", CPN_SQL_RESERVE_BATCH);

struct terms {
        int64_t price, hold_s, now_ms;
        char currency[4];
};

static int get_terms(struct cpn_db *db, const char *type_id, struct terms *t, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(type_id) };
        struct cpn_db_val col[4] = { CPN_DB_OUT_INT(), CPN_DB_OUT_TEXT(t->currency), CPN_DB_OUT_INT(),
                                     CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, terms_sql, in, 1, col, 4, NULL, err);

        if (r == CPN_DB_NO_ROW)
                return CPN_TICKET_TYPE_NOT_FOUND;
        t->price = col[0].i;
        t->hold_s = col[2].i;
        t->now_ms = col[3].i;
        return r;
}

struct ticket_fill {
        struct cpn_sql_reservation **v;
        const struct terms *t;
        int64_t expires;
};

static void ticket_row(size_t i, struct cpn_db_val *p, void *ud) {
        const struct ticket_fill *f = ud;
        const struct cpn_sql_reservation *x = f->v[i];

        p[0] = CPN_DB_IN_TEXT(x->id);
        p[1] = CPN_DB_IN_TEXT(x->type_id);
        p[2] = CPN_DB_IN_TEXT(x->user_id);
        p[3] = CPN_DB_IN_INT(f->t->price);
        p[4] = CPN_DB_IN_TEXT(f->t->currency);
        p[5] = CPN_DB_IN_TIME(f->expires);
}

/* Inserts the PENDING tickets of @v[0..n), all of one type. Returns 0,
 * CPN_DB_DUPLICATE (a user of them has a live ticket) or an error. */
static int insert_rows(struct cpn_db *db, struct cpn_sql_reservation **v, size_t n, const struct terms *t,
                       struct cpn_db_val *in, struct cpn_error *err) {
        struct ticket_fill f = { v, t, t->now_ms + t->hold_s * 1000 };
        uint64_t wrote = 0;
        int r = cpn_db_insert_rows(db, &ticket_rows, n, ticket_row, &f, in, &wrote, err);

        if (!r && wrote != n)
                r = cpn_error_set(err, -EPROTO, "ticket insert wrote %llu of %zu rows", (unsigned long long)wrote, n);
        return r;
}

static void issued(struct cpn_sql_reservation *x, const struct terms *t) {
        struct cpn_ticket *o = x->out;

        memset(o, 0, sizeof(*o));
        snprintf(o->id, sizeof(o->id), "%s", x->id);
        snprintf(o->type_id, sizeof(o->type_id), "%s", x->type_id);
        snprintf(o->user_id, sizeof(o->user_id), "%s", x->user_id);
        o->status = CPN_TS_PENDING;
        o->price = t->price;
        memcpy(o->currency, t->currency, sizeof(o->currency));
        o->expires_at_ms = t->now_ms + t->hold_s * 1000;
        o->paid_at_ms = o->confirmed_at_ms = -1;
        x->r = 0;
}

/* One at a time, each behind a savepoint: the path of a group MySQL
 * refused whole (less stock than asked, a user with a live ticket). */
static int reserve_each(struct cpn_db *db, struct cpn_sql_reservation **v, size_t n, struct cpn_db_val *params,
                        struct cpn_error *err) {
        struct terms t;
        int r = get_terms(db, v[0]->type_id, &t, err);

        if (r == CPN_TICKET_TYPE_NOT_FOUND) {
                for (size_t i = 0; i < n; i++)
                        v[i]->r = cpn_error_set(v[i]->err, CPN_TICKET_TYPE_NOT_FOUND, "no ticket type %s",
                                                v[i]->type_id);
                return 0;
        }
        for (size_t i = 0; i < n && !r; i++) {
                const struct cpn_db_val tin[] = { CPN_DB_IN_TEXT(v[i]->type_id) };
                uint64_t took = 0;

                r = cpn_db_savepoint(db, "one", err);
                if (!r)
                        r = cpn_db_run(db, take_stock_sql, tin, 1, NULL, 0, &took, err);
                if (r)
                        break;
                if (took == 0) {
                        v[i]->r = CPN_TICKET_SOLD_OUT;
                        continue;
                }
                r = insert_rows(db, &v[i], 1, &t, params, err);
                if (r == CPN_DB_DUPLICATE) {
                        v[i]->r = CPN_TICKET_HELD; /* the live-ticket key: the user has one */
                        r = cpn_db_savepoint_undo(db, "one", err);
                } else if (!r) {
                        issued(v[i], &t);
                }
        }
        return r;
}

/* The reservations of one type: all at once when MySQL takes them whole
 * (unless @each). Returns 0, an error, or CPN_DB_DUPLICATE: a user of them
 * has a live ticket, and what the transaction wrote must be undone (the
 * caller runs it again with @each; no savepoint is paid for on the path
 * that almost always succeeds). */
static int reserve_group(struct cpn_db *db, struct cpn_sql_reservation **v, size_t n, bool each,
                         struct cpn_db_val *params, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_INT((int64_t)n), CPN_DB_IN_TEXT(v[0]->type_id),
                                         CPN_DB_IN_INT((int64_t)n) };
        struct terms t;
        uint64_t took = 0;
        int r = 0;

        if (!each)
                r = cpn_db_run(db, take_n_sql, in, 3, NULL, 0, &took, err);
        if (!r && took == 1) {
                r = get_terms(db, v[0]->type_id, &t, err);
                if (!r)
                        r = insert_rows(db, v, n, &t, params, err);
                if (!r)
                        for (size_t i = 0; i < n; i++)
                                issued(v[i], &t);
                return r == CPN_TICKET_TYPE_NOT_FOUND ? cpn_error_set(err, -EPROTO, "type vanished") : r;
        }
        return r ? r : reserve_each(db, v, n, params, err);
}

static int by_type(const void *a, const void *b) {
        const struct cpn_sql_reservation *x = *(struct cpn_sql_reservation *const *)a;
        const struct cpn_sql_reservation *y = *(struct cpn_sql_reservation *const *)b;

        return strcmp(x->type_id, y->type_id);
}

static int reserve_tx(struct cpn_db *db, struct cpn_sql_reservation **v, size_t n, bool each,
                      struct cpn_db_val *params, struct cpn_error *err) {
        int r = cpn_db_begin(db, err);

        for (size_t i = 0; i < n; i++)
                v[i]->r = CPN_UNKNOWN;
        /* Types in one order in every transaction: two batches that lock
         * the same rows queue instead of deadlocking. */
        for (size_t i = 0, j; i < n && !r; i = j) {
                for (j = i + 1; j < n && !strcmp(v[j]->type_id, v[i]->type_id); j++)
                        ;
                r = reserve_group(db, &v[i], j - i, each, params, err);
        }
        if (r) {
                cpn_db_rollback(db);
                return r;
        }
        if (cpn_db_commit(db, err) != 0) {
                for (size_t i = 0; i < n; i++)
                        if (v[i]->r == 0)
                                v[i]->r = cpn_error_set(v[i]->err, CPN_UNKNOWN, "%s", err->msg);
        }
        return 0;
}

int cpn_sql_reserve_batch(struct cpn_db *db, struct cpn_sql_reservation **v, size_t n, struct cpn_db_val *params,
                          struct cpn_error *err) {
        bool each = false; /* once MySQL refused a group whole: one at a time */
        int r = -EAGAIN;

        if (n == 0 || n > CPN_SQL_RESERVE_BATCH)
                return cpn_error_set(err, -EINVAL, "a batch of %zu reservations", n);
        qsort(v, n, sizeof(*v), by_type);
        for (int i = 0; i < TX_TRIES + 1 && (r == -EAGAIN || r == CPN_DB_DUPLICATE); i++) {
                each = each || r == CPN_DB_DUPLICATE;
                r = reserve_tx(db, v, n, each, params, err);
        }
        return r == CPN_DB_DUPLICATE ? cpn_error_set(err, -EAGAIN, "reservations refused whole again; retry") : r;
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
