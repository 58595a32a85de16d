/* The ticket product as an operator watches it: see watch.h. */
#include <errno.h>
#include <string.h>

#include "cpn/ticket/watch.h"

static const char types_sql[] =
        "SELECT id, name, price, currency, total, issued, hold_seconds, starts_at, ends_at,"
        " CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
        " FROM ticket_types ORDER BY created_at DESC, id LIMIT ?";
/* One walk of the type's tickets (ix_tickets_type_user); held as GET
 * /v1/ticket-types/{id} counts it: PENDING and not expired, or with its
 * payment in flight. */
#define N(cond) "CAST(COALESCE(SUM(" cond "), 0) AS SIGNED)"
static const char counts_sql[] =
        "SELECT " N("status = 'PENDING' AND (expires_at > NOW(3) OR payment_started_at IS NOT NULL)") ", "
        N("status = 'PENDING'") ", " N("status = 'PAID'") ", " N("status = 'CONFIRMED'") ", "
        N("status = 'EXPIRED'") ", " N("status = 'CANCELLED'") ", " N("status = 'REFUNDED'") ", "
        N("payment_started_at IS NOT NULL")
        " FROM tickets WHERE ticket_type_id = ?";
#undef N
static const char outbox_sql[] = "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL";

struct lister {
        struct cpn_ticket_watch *out;
        size_t cap, n;
        char id[CPN_ID_MAX + 1], name[CPN_NAME_BYTES], currency[4];
};

static int type_row(const struct cpn_db_val *c, void *ud) {
        struct lister *l = ud;
        struct cpn_ticket_watch *w;

        if (l->n >= l->cap)
                return 0;
        w = &l->out[l->n++];
        memset(w, 0, sizeof(*w));
        memcpy(w->st.t.id, l->id, sizeof(w->st.t.id));
        memcpy(w->st.t.name, l->name, sizeof(w->st.t.name));
        memcpy(w->st.t.currency, l->currency, sizeof(w->st.t.currency));
        w->st.t.price = c[2].i;
        w->st.t.total = c[4].i;
        w->issued = c[5].i;
        w->st.t.hold_s = c[6].i;
        w->st.t.starts_at_ms = c[7].i;
        w->st.t.ends_at_ms = c[8].null ? CPN_TIME_NEVER : c[8].i;
        w->st.now_ms = c[9].i;
        return 0;
}

int cpn_ticket_watch_types(struct cpn_db *db, struct cpn_ticket_watch *out, size_t cap, size_t *n,
                           struct cpn_error *err) {
        struct lister l = { .out = out, .cap = cap };
        const struct cpn_db_val in[] = { CPN_DB_IN_INT((int64_t)cap) };
        struct cpn_db_val col[10] = {
                CPN_DB_OUT_TEXT(l.id),  CPN_DB_OUT_TEXT(l.name), CPN_DB_OUT_INT(),  CPN_DB_OUT_TEXT(l.currency),
                CPN_DB_OUT_INT(),       CPN_DB_OUT_INT(),        CPN_DB_OUT_INT(),  CPN_DB_OUT_TIME(),
                CPN_DB_OUT_TIME(),      CPN_DB_OUT_INT(),
        };
        int r;

        *n = 0;
        r = cpn_db_each(db, types_sql, in, 1, col, 10, type_row, &l, err);
        if (r)
                return r;
        for (size_t i = 0; i < l.n; i++) {
                struct cpn_ticket_watch *w = &out[i];
                const struct cpn_db_val tin[] = { CPN_DB_IN_TEXT(w->st.t.id) };
                struct cpn_db_val cnt[8];

                for (int k = 0; k < 8; k++)
                        cnt[k] = CPN_DB_OUT_INT();
                r = cpn_db_run(db, counts_sql, tin, 1, cnt, 8, NULL, err);
                if (r)
                        return r == CPN_DB_NO_ROW ? cpn_error_set(err, -EPROTO, "no counts") : r;
                w->st.held = cnt[0].i;
                w->st.sold = cnt[2].i + cnt[3].i;
                w->by_status[CPN_TS_PENDING] = cnt[1].i;
                w->by_status[CPN_TS_PAID] = cnt[2].i;
                w->by_status[CPN_TS_CONFIRMED] = cnt[3].i;
                w->by_status[CPN_TS_EXPIRED] = cnt[4].i;
                w->by_status[CPN_TS_CANCELLED] = cnt[5].i;
                w->by_status[CPN_TS_REFUNDED] = cnt[6].i;
                w->in_flight = cnt[7].i;
        }
        *n = l.n;
        return 0;
}

int cpn_ticket_watch_outbox(struct cpn_db *db, int64_t *unpublished, struct cpn_error *err) {
        struct cpn_db_val col[1] = { CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, outbox_sql, NULL, 0, col, 1, NULL, err);

        *unpublished = r ? -1 : col[0].i;
        return r == CPN_DB_NO_ROW ? 0 : r;
}
