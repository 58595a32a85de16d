/*
 * The worker's writes (coupon/db.h): batches of Kafka messages into coupons
 * rows and the campaign's persisted count, what cannot be persisted into
 * failed events, and the retry of one such event.
 *
 * Idempotence: a coupons row is inserted with ON DUPLICATE KEY UPDATE
 * id = id (not INSERT IGNORE, which would also swallow real errors such as
 * a value out of range); without CLIENT_FOUND_ROWS its affected-rows count
 * is exactly the new rows, which is what persisted is raised by.
 *
 * A batch goes first the fast way: per campaign (locked in id order), one
 * multi-row INSERT and one conditional UPDATE of persisted. When the cap
 * refuses it or a row of it is refused, the whole batch is redone one
 * record at a time behind a savepoint, so that only the bad record becomes
 * a failed event.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/coupon/db.h"
#include "cpn/log.h"

#define SLOW_PATH 1 /* internal: redo the batch one record at a time */

static const char lock_sql[] = "SELECT total, persisted FROM campaigns WHERE id = ? FOR UPDATE";
/* docs/design.md: the last line against overselling, even if Redis lost its state. */
static const char bump_sql[] = "UPDATE campaigns SET persisted = persisted + ? WHERE id = ? AND persisted + ? <= total";

/* 256 rows of 4 parameters is CPN_DB_PARAMS_MAX. */
static struct cpn_db_rows coupon_rows =
        CPN_DB_ROWS("INSERT INTO coupons (campaign_id, user_id, seq, issued_at) VALUES ", "(?,?,?,?)", 4,
                    " ON DUPLICATE KEY UPDATE id = id", 256);

/* -EIO for anything worth retrying later (the db layer's -EAGAIN too),
 * else @r. */
static int transient_as_eio(int r) {
        return r == -EAGAIN ? -EIO : r;
}

/* Locks the campaign's row. Returns 0 with *found, or an error. */
static int lock_campaign(struct cpn_db *db, const char *id, bool *found, int64_t *total, int64_t *persisted,
                         struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(id) };
        struct cpn_db_val col[] = { CPN_DB_OUT_INT(), CPN_DB_OUT_INT() };
        int r = cpn_db_run(db, lock_sql, in, 1, col, 2, NULL, err);

        *found = r == 0;
        *total = col[0].i;
        *persisted = col[1].i;
        return r == CPN_DB_NO_ROW ? 0 : r;
}

/* Raises persisted by @n if that keeps it <= total. Returns 0, or
 * SLOW_PATH when the cap refused it. */
static int bump(struct cpn_db *db, const char *id, int64_t n, struct cpn_error *err) {
        const struct cpn_db_val in[] = { CPN_DB_IN_INT(n), CPN_DB_IN_TEXT(id), CPN_DB_IN_INT(n) };
        uint64_t changed = 0;
        int r = cpn_db_run(db, bump_sql, in, 3, NULL, 0, &changed, err);

        if (r)
                return r;
        return changed == 1 ? 0 : SLOW_PATH;
}

static void coupon_row(size_t i, struct cpn_db_val *v, void *ud) {
        const struct cpn_issuance *iss = ((const struct cpn_issuance *const *)ud)[i];

        v[0] = CPN_DB_IN_TEXT(iss->campaign_id);
        v[1] = CPN_DB_IN_TEXT(iss->user_id);
        v[2] = CPN_DB_IN_INT(iss->seq);
        v[3] = CPN_DB_IN_TIME(iss->issued_at_ms);
}

/* Inserts @n rows (any n, in chunks); adds the new ones to *@inserted.
 * @vals is room for CPN_DB_PARAMS_MAX parameters. */
static int insert_rows(struct cpn_db *db, const struct cpn_issuance *const *rows, size_t n, struct cpn_db_val *vals,
                       size_t *inserted, struct cpn_error *err) {
        uint64_t added = 0;
        int r = cpn_db_insert_rows(db, &coupon_rows, n, coupon_row, (void *)rows, vals, &added, err);

        *inserted += (size_t)added;
        return r;
}

static int record_failure(struct cpn_db *db, const struct cpn_coupon_record *rec, const char *why,
                          const struct cpn_db_retry_policy *pol, struct cpn_error *err) {
        const struct cpn_db_failed f = {
                .topic = rec->topic,
                .partition = rec->partition,
                .offset = rec->offset,
                .key = rec->key,
                .key_len = rec->key_len,
                .payload = rec->payload,
                .payload_len = rec->payload_len,
                .scope = rec->iss ? rec->iss->campaign_id : rec->campaign_id,
                .subject = rec->iss ? rec->iss->user_id : rec->user_id,
                .error = why,
        };

        return cpn_db_failed_record(db, &f, pol, err);
}

/*
 * Persists one issuance inside the open transaction, behind a savepoint:
 * *@outcome 0 = inserted, 1 = already there, 2 = refused (@why says why;
 * its row changes undone). Returns 0 or a transient/unexpected error.
 */
static int persist_one(struct cpn_db *db, const struct cpn_issuance *iss, int64_t total, int64_t *persisted,
                       struct cpn_db_val *vals, int *outcome, char *why, size_t why_n, struct cpn_error *err) {
        struct cpn_error rerr = { { 0 } };
        size_t inserted = 0;
        int r;

        r = cpn_db_savepoint(db, "rec", err);
        if (r)
                return r;
        r = insert_rows(db, &iss, 1, vals, &inserted, &rerr);
        if (r && r != -EPROTO)
                return cpn_error_set(err, transient_as_eio(r), "%s", rerr.msg);
        if (r) {
                snprintf(why, why_n, "%s", rerr.msg);
                *outcome = 2;
                return cpn_db_savepoint_undo(db, "rec", err);
        }
        if (inserted == 0) {
                *outcome = 1;
                return 0;
        }
        if (*persisted + 1 > total) {
                snprintf(why, why_n, "over the cap: campaign %s has all its %" PRId64 " coupons persisted",
                         iss->campaign_id, total);
                *outcome = 2;
                return cpn_db_savepoint_undo(db, "rec", err);
        }
        r = bump(db, iss->campaign_id, 1, err);
        if (r == SLOW_PATH) {
                snprintf(why, why_n, "over the cap: campaign %s refused one more coupon", iss->campaign_id);
                *outcome = 2;
                return cpn_db_savepoint_undo(db, "rec", err);
        }
        if (r)
                return r;
        (*persisted)++;
        *outcome = 0;
        return 0;
}

/* ---- batches ---- */

struct slot {
        const char *cid;
        size_t i;
};

static int slot_cmp(const void *a, const void *b) {
        const struct slot *x = a, *y = b;
        int c = strcmp(x->cid, y->cid);

        return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/* The buffers of one cpn_coupon_persist call. */
struct batch {
        const struct cpn_coupon_record *recs;
        size_t n;
        struct slot *slots; /* the decoded records, by campaign */
        size_t m;
        const struct cpn_issuance **rows;
        struct cpn_db_val *vals;
};

/* One campaign's records, slots [g, end), the fast way. */
static int group_fast(struct cpn_db *db, struct batch *b, size_t g, size_t end, int64_t total, int64_t persisted,
                      struct cpn_coupon_persist_stats *st, struct cpn_error *err) {
        size_t inserted = 0;
        int r;

        for (size_t k = g; k < end; k++)
                b->rows[k - g] = b->recs[b->slots[k].i].iss;
        r = insert_rows(db, b->rows, end - g, b->vals, &inserted, err);
        if (r)
                return r;
        if (persisted + (int64_t)inserted > total)
                return SLOW_PATH;
        if (inserted) {
                r = bump(db, b->slots[g].cid, (int64_t)inserted, err);
                if (r)
                        return r;
        }
        st->inserted += inserted;
        st->duplicates += end - g - inserted;
        return 0;
}

/* The same one record at a time. */
static int group_slow(struct cpn_db *db, struct batch *b, size_t g, size_t end, int64_t total, int64_t persisted,
                      const struct cpn_db_retry_policy *pol, struct cpn_coupon_persist_stats *st,
                      struct cpn_error *err) {
        char why[600];

        for (size_t k = g; k < end; k++) {
                const struct cpn_coupon_record *rec = &b->recs[b->slots[k].i];
                int outcome, r;

                r = persist_one(db, rec->iss, total, &persisted, b->vals, &outcome, why, sizeof(why), err);
                if (r)
                        return r;
                if (outcome == 2) {
                        r = record_failure(db, rec, why, pol, err);
                        if (r)
                                return r;
                        st->failed++;
                } else if (outcome == 1) {
                        st->duplicates++;
                } else {
                        st->inserted++;
                }
        }
        return 0;
}

static int run_batch(struct cpn_db *db, struct batch *b, bool slow, const struct cpn_db_retry_policy *pol,
                     struct cpn_coupon_persist_stats *st, struct cpn_error *err) {
        char why[600];
        int r;

        memset(st, 0, sizeof(*st));
        r = cpn_db_begin(db, err);
        if (r)
                return transient_as_eio(r);
        for (size_t g = 0; g < b->m;) {
                size_t end = g;
                int64_t total, persisted;
                bool found;

                while (end < b->m && strcmp(b->slots[end].cid, b->slots[g].cid) == 0)
                        end++;
                r = lock_campaign(db, b->slots[g].cid, &found, &total, &persisted, err);
                if (r)
                        goto abort;
                if (!found) {
                        snprintf(why, sizeof(why), "unknown campaign '%s'", b->slots[g].cid);
                        for (size_t k = g; k < end; k++) {
                                r = record_failure(db, &b->recs[b->slots[k].i], why, pol, err);
                                if (r)
                                        goto abort;
                                st->failed++;
                        }
                } else if (!slow) {
                        r = group_fast(db, b, g, end, total, persisted, st, err);
                } else {
                        r = group_slow(db, b, g, end, total, persisted, pol, st, err);
                }
                if (r)
                        goto abort;
                g = end;
        }
        for (size_t i = 0; i < b->n; i++) {
                if (b->recs[i].iss)
                        continue;
                r = record_failure(db, &b->recs[i], b->recs[i].error ? b->recs[i].error : "cannot decode", pol,
                                   err);
                if (r)
                        goto abort;
                st->failed++;
        }
        return transient_as_eio(cpn_db_commit(db, err));
abort:
        cpn_db_rollback(db);
        if (r == SLOW_PATH)
                return SLOW_PATH;
        r = transient_as_eio(r);
        /* In the fast path a row's own error (a value out of range, ...)
         * sends the batch through the slow path, which records that row. */
        if (!slow && r == -EPROTO)
                return SLOW_PATH;
        return r;
}

int cpn_coupon_persist(struct cpn_db *db, const struct cpn_coupon_record *recs, size_t n,
                       const struct cpn_db_retry_policy *pol, struct cpn_coupon_persist_stats *st,
                       struct cpn_error *err) {
        struct batch b = { .recs = recs, .n = n };
        int r = -ENOMEM;

        memset(st, 0, sizeof(*st));
        if (n == 0)
                return 0;
        b.slots = malloc(n * sizeof(*b.slots));
        b.rows = malloc(n * sizeof(*b.rows));
        b.vals = malloc(CPN_DB_PARAMS_MAX * sizeof(*b.vals));
        if (!b.slots || !b.rows || !b.vals) {
                cpn_error_set(err, r, "out of memory");
                goto done;
        }
        for (size_t i = 0; i < n; i++)
                if (recs[i].iss)
                        b.slots[b.m++] = (struct slot){ recs[i].iss->campaign_id, i };
        qsort(b.slots, b.m, sizeof(*b.slots), slot_cmp);
        r = run_batch(db, &b, false, pol, st, err);
        if (r == SLOW_PATH) {
                cpn_log_debug("batch of %zu needs the one-by-one path (%s)", n, err && err->msg[0] ? err->msg : "cap");
                r = run_batch(db, &b, true, pol, st, err);
                if (r == SLOW_PATH)
                        r = cpn_error_set(err, -EPROTO, "persist: the one-by-one path failed");
        }
done:
        free(b.slots);
        free(b.rows);
        free(b.vals);
        return r;
}

int cpn_coupon_failed_apply(struct cpn_db *db, const char *payload, size_t len, struct cpn_error *why, void *ud) {
        struct cpn_error derr = { { 0 } };
        struct cpn_db_val vals[4];
        struct cpn_issuance iss;
        int64_t total, persisted;
        char text[600] = "";
        bool found;
        int outcome, r;

        (void)ud;
        if (len > CPN_DB_FAILED_READ_MAX)
                return cpn_error_set(why, CPN_INVALID, "cannot decode: a value of %zu bytes", len);
        if (cpn_issuance_parse(payload, len, &iss, &derr) != 0)
                return cpn_error_set(why, CPN_INVALID, "cannot decode: %s", derr.msg);
        r = lock_campaign(db, iss.campaign_id, &found, &total, &persisted, why);
        if (r)
                return transient_as_eio(r);
        if (!found)
                return cpn_error_set(why, CPN_INVALID, "unknown campaign '%s'", iss.campaign_id);
        r = persist_one(db, &iss, total, &persisted, vals, &outcome, text, sizeof(text), why);
        if (r)
                return transient_as_eio(r);
        return outcome == 2 ? cpn_error_set(why, CPN_INVALID, "%s", text) : 0;
}
