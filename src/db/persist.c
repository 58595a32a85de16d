/*
 * The worker's writes: batches of Kafka messages into coupons, the
 * campaign's persisted count, failed_events and their retries, plus the
 * reads of reconcile. Prepared statements are cached on the connection.
 *
 * Idempotence: a coupons row is inserted with ON DUPLICATE KEY UPDATE
 * id = id (not INSERT IGNORE, which would also swallow real errors such
 * as a missing campaign or a value out of range); without
 * CLIENT_FOUND_ROWS its affected-rows count is exactly the new rows, which
 * is what persisted is raised by. A failed_events row is keyed by
 * (topic, partition, offset), so a redelivered poison message is recorded
 * once.
 */
#include <errno.h>
#include <errmsg.h>
#include <inttypes.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/json.h"
#include "cpn/log.h"
#include "db-internal.h"

#define SLOW_PATH 1 /* internal: redo the batch one record at a time */

static const size_t chunk_rows[] = { 256, 32, 4, 1 };
static const int chunk_stmt[] = { CPN_DB_ST_INSERT_256, CPN_DB_ST_INSERT_32, CPN_DB_ST_INSERT_4,
                                  CPN_DB_ST_INSERT_1 };

static int stmt_fail(struct cpn_db *db, MYSQL_STMT *st, struct cpn_error *err, const char *what) {
        unsigned e = mysql_stmt_errno(st);
        int r = cpn_db_is_connection_error(e) ? -EIO : -EPROTO;

        db->last_errno = e;
        cpn_error_set(err, r, "mysql %s: %s (%u)", what, mysql_stmt_error(st), e);
        if (r == -EIO)
                cpn_db_drop(db);
        return r;
}

/* -EIO for anything worth retrying later, else @r. */
static int classify(struct cpn_db *db, int r) {
        if (r == -EPROTO && cpn_db_is_transient(db->last_errno))
                return -EIO;
        return r;
}

static char *insert_sql(size_t rows) {
        static const char head[] = "INSERT INTO coupons (campaign_id, user_id, seq, issued_at) VALUES ";
        static const char tail[] = " ON DUPLICATE KEY UPDATE id = id";
        size_t n = sizeof(head) + rows * 11 + sizeof(tail);
        char *s = malloc(n), *p;

        if (!s)
                return NULL;
        p = s + sprintf(s, "%s", head);
        for (size_t i = 0; i < rows; i++)
                p += sprintf(p, "%s(?,?,?,?)", i ? "," : "");
        strcpy(p, tail);
        return s;
}

static MYSQL_STMT *stmt(struct cpn_db *db, int id, struct cpn_error *err, int *r) {
        const char *sql = NULL;
        char *owned = NULL;
        MYSQL_STMT *st;

        *r = 0;
        if (db->stmt[id])
                return db->stmt[id];
        *r = cpn_db_ensure(db, err);
        if (*r)
                return NULL;
        switch (id) {
        case CPN_DB_ST_LOCK_CAMPAIGN:
                sql = "SELECT total, persisted FROM campaigns WHERE id = ? FOR UPDATE";
                break;
        case CPN_DB_ST_BUMP_PERSISTED:
                /* docs/design.md: the last line against overselling, even if Redis lost its state. */
                sql = "UPDATE campaigns SET persisted = persisted + ? WHERE id = ? AND persisted + ? <= total";
                break;
        case CPN_DB_ST_INSERT_FAILED:
                sql = "INSERT INTO failed_events (topic, kafka_partition, kafka_offset, message_key, payload,"
                      " campaign_id, user_id, error, next_retry_at)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, DATE_ADD(NOW(3), INTERVAL ? MICROSECOND))"
                      " ON DUPLICATE KEY UPDATE id = id";
                break;
        default:
                for (size_t i = 0; i < sizeof(chunk_stmt) / sizeof(chunk_stmt[0]); i++)
                        if (chunk_stmt[i] == id)
                                sql = owned = insert_sql(chunk_rows[i]);
                if (!sql) {
                        *r = cpn_error_set(err, -ENOMEM, "out of memory");
                        return NULL;
                }
        }
        st = mysql_stmt_init(db->m);
        if (!st) {
                free(owned);
                *r = cpn_error_set(err, -ENOMEM, "mysql: cannot allocate a statement");
                return NULL;
        }
        if (mysql_stmt_prepare(st, sql, strlen(sql))) {
                *r = stmt_fail(db, st, err, "prepare");
                mysql_stmt_close(st);
                free(owned);
                return NULL;
        }
        free(owned);
        db->stmt[id] = st;
        return st;
}

static void bind_str(MYSQL_BIND *b, const char *s, unsigned long *len) {
        memset(b, 0, sizeof(*b));
        *len = s ? (unsigned long)strlen(s) : 0;
        b->buffer_type = s ? MYSQL_TYPE_STRING : MYSQL_TYPE_NULL;
        b->buffer = (void *)s;
        b->buffer_length = *len;
        b->length = len;
}

static void bind_blob(MYSQL_BIND *b, const void *p, unsigned long *len, size_t n) {
        memset(b, 0, sizeof(*b));
        *len = (unsigned long)n;
        b->buffer_type = p ? MYSQL_TYPE_BLOB : MYSQL_TYPE_NULL;
        b->buffer = (void *)p;
        b->buffer_length = *len;
        b->length = len;
}

static void bind_ll(MYSQL_BIND *b, long long *v) {
        memset(b, 0, sizeof(*b));
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = v;
}

static long backoff_ms(const struct cpn_db_retry_policy *pol, long attempts) {
        double d = (double)pol->base_ms;

        for (long i = 1; i < attempts && d < (double)pol->max_ms; i++)
                d *= 2;
        if (d > (double)pol->max_ms)
                d = (double)pol->max_ms;
        /* ±20 % so that rows failed together are not retried in lockstep. */
        d *= 0.8 + 0.4 * ((double)(rand() % 1000) / 1000.0);
        return d < 1 ? 1 : (long)d;
}

/* ---- the pieces of a transaction ---- */

/* Locks the campaign's row. Returns 0 with *found, or an error. */
static int lock_campaign(struct cpn_db *db, const char *id, bool *found, int64_t *total,
                         int64_t *persisted, struct cpn_error *err) {
        MYSQL_BIND in[1], out[2];
        unsigned long len;
        long long t = 0, p = 0;
        int r;
        MYSQL_STMT *st = stmt(db, CPN_DB_ST_LOCK_CAMPAIGN, err, &r);

        if (!st)
                return r;
        bind_str(&in[0], id, &len);
        memset(out, 0, sizeof(out));
        bind_ll(&out[0], &t);
        bind_ll(&out[1], &p);
        if (mysql_stmt_bind_param(st, in) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, out) ||
            mysql_stmt_store_result(st))
                return stmt_fail(db, st, err, "lock campaign");
        r = mysql_stmt_fetch(st);
        *found = r == 0 || r == MYSQL_DATA_TRUNCATED;
        mysql_stmt_free_result(st);
        *total = t;
        *persisted = p;
        return 0;
}

/* Raises persisted by @n if that keeps it <= total. Returns 0, or
 * SLOW_PATH when the cap refused it. */
static int bump(struct cpn_db *db, const char *id, int64_t n, struct cpn_error *err) {
        MYSQL_BIND in[3];
        unsigned long len;
        long long v = n;
        int r;
        MYSQL_STMT *st = stmt(db, CPN_DB_ST_BUMP_PERSISTED, err, &r);

        if (!st)
                return r;
        bind_ll(&in[0], &v);
        bind_str(&in[1], id, &len);
        bind_ll(&in[2], &v);
        if (mysql_stmt_bind_param(st, in) || mysql_stmt_execute(st))
                return stmt_fail(db, st, err, "update persisted");
        return mysql_stmt_affected_rows(st) == 1 ? 0 : SLOW_PATH;
}

/* Inserts @n rows (any n, in chunks); adds the new ones to *@inserted. */
static int insert_rows(struct cpn_db *db, const struct cpn_issuance *const *rows, size_t n,
                       size_t *inserted, struct cpn_error *err) {
        struct cpn_db_scratch *sc = db->scratch;
        MYSQL_BIND *b;
        MYSQL_TIME *at;
        long long *seq;
        unsigned long *len;
        size_t done = 0;

        if (!sc) {
                /* Owned by @db, freed with it; only workers ever need it. */
                sc = db->scratch = calloc(1, sizeof(*sc));
                if (!sc)
                        return cpn_error_set(err, -ENOMEM, "out of memory");
        }
        b = sc->b;
        at = sc->at;
        seq = sc->seq;
        len = sc->len;

        while (done < n) {
                size_t k = 0, m;
                MYSQL_STMT *st;
                int r;

                while (chunk_rows[k] > n - done)
                        k++;
                m = chunk_rows[k];
                st = stmt(db, chunk_stmt[k], err, &r);
                if (!st)
                        return r;
                for (size_t i = 0; i < m; i++) {
                        const struct cpn_issuance *iss = rows[done + i];

                        bind_str(&b[4 * i], iss->campaign_id, &len[2 * i]);
                        bind_str(&b[4 * i + 1], iss->user_id, &len[2 * i + 1]);
                        seq[i] = iss->seq;
                        bind_ll(&b[4 * i + 2], &seq[i]);
                        cpn_db_to_time(iss->issued_at_ms, &at[i]);
                        memset(&b[4 * i + 3], 0, sizeof(b[0]));
                        b[4 * i + 3].buffer_type = MYSQL_TYPE_DATETIME;
                        b[4 * i + 3].buffer = &at[i];
                }
                if (mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st))
                        return stmt_fail(db, st, err, "insert coupons");
                *inserted += (size_t)mysql_stmt_affected_rows(st);
                done += m;
        }
        return 0;
}

/* What a failed_events row can hold: message_key is VARBINARY(1024),
 * payload MEDIUMBLOB, error TEXT (utf8mb4). */
#define FAILED_KEY_MAX 1024
#define FAILED_PAYLOAD_MAX ((size_t)16 * 1024 * 1024 - 1)
#define FAILED_ERROR_MAX 2000

/* Copies @why into @out as valid UTF-8 (each byte of a bad sequence
 * becomes '?'), at most @n - 1 bytes. */
static void utf8_clean(char *out, size_t n, const char *why) {
        size_t o = 0, len = strlen(why);

        for (size_t i = 0; i < len && o + 4 < n;) {
                size_t k = 1;

                while (k < 4 && i + k < len && ((unsigned char)why[i + k] & 0xc0) == 0x80 &&
                       ((unsigned char)why[i] & 0x80))
                        k++;
                if (cpn_utf8_check(why + i, k) == 0) {
                        memcpy(out + o, why + i, k);
                        o += k;
                        i += k;
                } else {
                        out[o++] = '?';
                        i++;
                }
        }
        out[o] = '\0';
}

static int insert_failed(struct cpn_db *db, const struct cpn_db_record *rec, const void *key, size_t key_len,
                         const void *payload, size_t payload_len, const char *why,
                         const struct cpn_db_retry_policy *pol, struct cpn_error *err) {
        MYSQL_BIND b[9];
        unsigned long len[7];
        long long part = rec->partition, off = rec->offset, delay_us;
        const char *cid = rec->iss ? rec->iss->campaign_id : rec->campaign_id;
        const char *uid = rec->iss ? rec->iss->user_id : rec->user_id;
        int r;
        MYSQL_STMT *st = stmt(db, CPN_DB_ST_INSERT_FAILED, err, &r);

        if (!st)
                return r;
        delay_us = (long long)backoff_ms(pol, 1) * 1000;
        bind_str(&b[0], rec->topic, &len[0]);
        bind_ll(&b[1], &part);
        bind_ll(&b[2], &off);
        bind_blob(&b[3], key, &len[1], key_len);
        bind_blob(&b[4], payload ? payload : "", &len[2], payload_len);
        bind_str(&b[5], cid && *cid ? cid : NULL, &len[3]);
        bind_str(&b[6], uid && *uid ? uid : NULL, &len[4]);
        bind_str(&b[7], why, &len[5]);
        bind_ll(&b[8], &delay_us);
        if (mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st))
                return stmt_fail(db, st, err, "insert failed_events");
        return 0;
}

/*
 * Records @rec in failed_events, whatever its size or bytes: a key or a
 * payload larger than the columns is kept to its first bytes (the error
 * says so), the error text made valid UTF-8. A row that still cannot be
 * written for a reason of its own is written once more bare (no key, the
 * payload's first 1,024 bytes, the error and why the first try failed):
 * a poison message must never stop its partition. Returns 0 or an error
 * that is not the row's (connection, deadlock, a missing table).
 */
static int record_failure(struct cpn_db *db, const struct cpn_db_record *rec, const char *why,
                          const struct cpn_db_retry_policy *pol, struct cpn_error *err) {
        size_t key_len = rec->key_len, payload_len = rec->payload_len;
        char text[FAILED_ERROR_MAX + 600], clean[FAILED_ERROR_MAX + 600];
        struct cpn_error first = { { 0 } };
        int r;

        snprintf(text, sizeof(text), "%.*s", FAILED_ERROR_MAX, why);
        if (key_len > FAILED_KEY_MAX) {
                snprintf(text + strlen(text), sizeof(text) - strlen(text),
                         " [message key of %zu bytes: its first %d kept]", key_len, FAILED_KEY_MAX);
                key_len = FAILED_KEY_MAX;
        }
        if (payload_len > FAILED_PAYLOAD_MAX) {
                snprintf(text + strlen(text), sizeof(text) - strlen(text),
                         " [payload of %zu bytes: its first %zu kept]", payload_len, FAILED_PAYLOAD_MAX);
                payload_len = FAILED_PAYLOAD_MAX;
        }
        utf8_clean(clean, sizeof(clean), text);
        r = insert_failed(db, rec, rec->key, key_len, rec->payload, payload_len, clean, pol, &first);
        if (r == 0 || r == -EIO || cpn_db_is_transient(db->last_errno))
                return r == 0 ? 0 : cpn_error_set(err, r, "%s", first.msg);
        /* The row's own fault (a value the table refuses): the statement
         * was rolled back alone, the transaction goes on. */
        snprintf(text, sizeof(text), "%.*s [recorded bare: %.300s]", FAILED_ERROR_MAX, clean, first.msg);
        utf8_clean(clean, sizeof(clean), text);
        return insert_failed(db, rec, NULL, 0, rec->payload, payload_len < 1024 ? payload_len : 1024, clean, pol,
                             err);
}

static int savepoint(struct cpn_db *db, bool rollback, struct cpn_error *err) {
        return cpn_db_exec(db, rollback ? "ROLLBACK TO SAVEPOINT rec" : "SAVEPOINT rec", err);
}

static void rollback(struct cpn_db *db) {
        if (db->m)
                (void)mysql_query(db->m, "ROLLBACK");
}

/* Commits the open transaction. A failed COMMIT has an unknown outcome:
 * -EIO, and the caller retries (everything written here is idempotent). */
static int commit(struct cpn_db *db, struct cpn_error *err) {
        if (!mysql_commit(db->m))
                return 0;
        cpn_db_fail(db, err, "commit");
        rollback(db);
        return -EIO;
}

/*
 * Persists one issuance inside the open transaction, behind a savepoint:
 * *@outcome 0 = inserted, 1 = already there, 2 = refused (*why says why;
 * its row changes rolled back). Returns 0 or a transient/unexpected error.
 */
static int persist_one(struct cpn_db *db, const struct cpn_issuance *iss, int64_t total, int64_t *persisted,
                       int *outcome, char *why, size_t why_n, struct cpn_error *err) {
        struct cpn_error rerr = { { 0 } };
        size_t inserted = 0;
        int r;

        r = savepoint(db, false, err);
        if (r)
                return r;
        r = insert_rows(db, &iss, 1, &inserted, &rerr);
        if (r && (r == -EIO || cpn_db_is_transient(db->last_errno))) {
                cpn_error_set(err, -EIO, "%s", rerr.msg);
                return -EIO;
        }
        if (r) {
                snprintf(why, why_n, "%s", rerr.msg);
                *outcome = 2;
                return savepoint(db, true, err);
        }
        if (inserted == 0) {
                *outcome = 1;
                return 0;
        }
        if (*persisted + 1 > total) {
                snprintf(why, why_n, "over the cap: campaign %s has all its %" PRId64 " coupons persisted",
                         iss->campaign_id, total);
                *outcome = 2;
                return savepoint(db, true, err);
        }
        r = bump(db, iss->campaign_id, 1, err);
        if (r == SLOW_PATH) {
                snprintf(why, why_n, "over the cap: campaign %s refused one more coupon", iss->campaign_id);
                *outcome = 2;
                return savepoint(db, true, err);
        }
        if (r)
                return classify(db, r);
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

static int run_batch(struct cpn_db *db, const struct cpn_db_record *recs, size_t n, const struct slot *slots,
                     size_t m, const struct cpn_issuance **rows, bool slow,
                     const struct cpn_db_retry_policy *pol, struct cpn_db_persist_stats *st,
                     struct cpn_error *err) {
        char why[600];
        int r;

        memset(st, 0, sizeof(*st));
        r = cpn_db_exec(db, "START TRANSACTION", err);
        if (r)
                return classify(db, r);
        for (size_t g = 0; g < m;) {
                size_t end = g;
                int64_t total, persisted;
                bool found;

                while (end < m && strcmp(slots[end].cid, slots[g].cid) == 0)
                        end++;
                r = lock_campaign(db, slots[g].cid, &found, &total, &persisted, err);
                if (r)
                        goto abort;
                if (!found) {
                        snprintf(why, sizeof(why), "unknown campaign '%s'", slots[g].cid);
                        for (size_t k = g; k < end; k++) {
                                r = record_failure(db, &recs[slots[k].i], why, pol, err);
                                if (r)
                                        goto abort;
                                st->failed++;
                        }
                } else if (!slow) {
                        size_t inserted = 0;

                        for (size_t k = g; k < end; k++)
                                rows[k - g] = recs[slots[k].i].iss;
                        r = insert_rows(db, rows, end - g, &inserted, err);
                        if (r)
                                goto abort;
                        if (persisted + (int64_t)inserted > total) {
                                r = SLOW_PATH;
                                goto abort;
                        }
                        if (inserted) {
                                r = bump(db, slots[g].cid, (int64_t)inserted, err);
                                if (r)
                                        goto abort;
                        }
                        st->inserted += inserted;
                        st->duplicates += end - g - inserted;
                } else {
                        for (size_t k = g; k < end; k++) {
                                int outcome;

                                r = persist_one(db, recs[slots[k].i].iss, total, &persisted, &outcome, why,
                                                sizeof(why), err);
                                if (r)
                                        goto abort;
                                if (outcome == 2) {
                                        r = record_failure(db, &recs[slots[k].i], why, pol, err);
                                        if (r)
                                                goto abort;
                                        st->failed++;
                                } else if (outcome == 1) {
                                        st->duplicates++;
                                } else {
                                        st->inserted++;
                                }
                        }
                }
                g = end;
        }
        for (size_t i = 0; i < n; i++) {
                if (recs[i].iss)
                        continue;
                r = record_failure(db, &recs[i], recs[i].error ? recs[i].error : "cannot decode", pol, err);
                if (r)
                        goto abort;
                st->failed++;
        }
        return commit(db, err);
abort:
        rollback(db);
        if (r == SLOW_PATH)
                return SLOW_PATH;
        r = classify(db, r);
        /* In the fast path a row's own error (a value out of range, ...)
         * sends the batch through the slow path, which records that row. */
        if (!slow && r == -EPROTO)
                return SLOW_PATH;
        return r;
}

int cpn_db_persist(struct cpn_db *db, const struct cpn_db_record *recs, size_t n,
                   const struct cpn_db_retry_policy *pol, struct cpn_db_persist_stats *st,
                   struct cpn_error *err) {
        struct slot *slots = NULL;
        const struct cpn_issuance **rows = NULL;
        size_t m = 0;
        int r;

        memset(st, 0, sizeof(*st));
        if (n == 0)
                return 0;
        slots = malloc(n * sizeof(*slots));
        rows = malloc(n * sizeof(*rows));
        if (!slots || !rows) {
                free(slots);
                free(rows);
                return cpn_error_set(err, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++)
                if (recs[i].iss)
                        slots[m++] = (struct slot){ recs[i].iss->campaign_id, i };
        qsort(slots, m, sizeof(*slots), slot_cmp);
        r = run_batch(db, recs, n, slots, m, rows, false, pol, st, err);
        if (r == SLOW_PATH) {
                cpn_log_debug("batch of %zu needs the one-by-one path (%s)", n, err && err->msg[0] ? err->msg : "cap");
                r = run_batch(db, recs, n, slots, m, rows, true, pol, st, err);
                if (r == SLOW_PATH)
                        r = cpn_error_set(err, -EPROTO, "persist: the one-by-one path failed");
        }
        free(slots);
        free(rows);
        return r;
}

/* ---- failed events ---- */

struct due_row {
        unsigned long long id;
        long attempts;
        bool was_dead; /* an operator's retry of a dead row */
        char *payload;
        size_t len;
};

static int mark(struct cpn_db *db, const struct due_row *d, bool ok, const char *why,
                const struct cpn_db_retry_policy *pol, struct cpn_db_retry_stats *st, struct cpn_error *err) {
        char sql[2048], esc[1100], clean[520];
        long attempts = d->attempts + 1;
        size_t wl;

        snprintf(sql, sizeof(sql), "%.500s", why);
        utf8_clean(clean, sizeof(clean), sql);
        why = clean;
        wl = strlen(why);

        if (ok) {
                snprintf(sql, sizeof(sql),
                         "UPDATE failed_events SET status = 'resolved', attempts = %ld, next_retry_at = NULL"
                         " WHERE id = %llu", attempts, d->id);
                st->resolved++;
        } else {
                mysql_real_escape_string(db->m, esc, why, (unsigned long)wl);
                snprintf(st->last_error, sizeof(st->last_error), "%.*s", (int)wl, why);
                if (attempts >= pol->max_attempts || d->was_dead) {
                        snprintf(sql, sizeof(sql),
                                 "UPDATE failed_events SET status = 'dead', attempts = %ld, error = '%s',"
                                 " next_retry_at = NULL WHERE id = %llu", attempts, esc, d->id);
                        st->dead++;
                } else {
                        snprintf(sql, sizeof(sql),
                                 "UPDATE failed_events SET status = 'open', attempts = %ld, error = '%s',"
                                 " next_retry_at = DATE_ADD(NOW(3), INTERVAL %ld MICROSECOND) WHERE id = %llu",
                                 attempts, esc, backoff_ms(pol, attempts) * 1000L, d->id);
                        st->failed++;
                }
        }
        return cpn_db_exec(db, sql, err);
}

static void free_due(struct due_row *rows, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(rows[i].payload);
        free(rows);
}

int cpn_db_failed_retry(struct cpn_db *db, const char *topic, enum cpn_db_retry_which which, uint64_t id,
                        size_t limit, const struct cpn_db_retry_policy *pol, struct cpn_db_retry_stats *st,
                        struct cpn_error *err) {
        char sql[1200], where[160], topic_q[2 * 249 + 1];
        struct due_row *rows = NULL;
        size_t n = 0;
        MYSQL_RES *res;
        MYSQL_ROW row;
        int r;

        memset(st, 0, sizeof(*st));
        switch (which) {
        case CPN_DB_RETRY_DUE:
                snprintf(where, sizeof(where), "status = 'open' AND next_retry_at <= NOW(3)");
                break;
        case CPN_DB_RETRY_ONE:
                snprintf(where, sizeof(where), "id = %" PRIu64 " AND status IN ('open', 'dead')", id);
                break;
        default:
                snprintf(where, sizeof(where), "status IN ('open', 'dead')");
        }
        if (strlen(topic) > 249)
                return cpn_error_set(err, -EINVAL, "topic name too long");
        r = cpn_db_ensure(db, err);
        if (r)
                return classify(db, r);
        mysql_real_escape_string(db->m, topic_q, topic, (unsigned long)strlen(topic));
        snprintf(sql, sizeof(sql),
                 "SELECT id, attempts, payload, status = 'dead' FROM failed_events WHERE %s AND topic = '%s'"
                 " ORDER BY id LIMIT %zu FOR UPDATE SKIP LOCKED", where, topic_q, limit);
        r = cpn_db_exec(db, "START TRANSACTION", err);
        if (r)
                return classify(db, r);
        if (mysql_query(db->m, sql)) {
                r = cpn_db_fail(db, err, "select failed_events");
                goto abort;
        }
        res = mysql_store_result(db->m);
        if (!res) {
                r = cpn_db_fail(db, err, "select failed_events");
                goto abort;
        }
        rows = calloc(mysql_num_rows(res) + 1, sizeof(*rows));
        if (!rows) {
                mysql_free_result(res);
                r = cpn_error_set(err, -ENOMEM, "out of memory");
                goto abort;
        }
        while ((row = mysql_fetch_row(res))) {
                unsigned long *lens = mysql_fetch_lengths(res);

                rows[n].id = strtoull(row[0], NULL, 10);
                rows[n].attempts = strtol(row[1], NULL, 10);
                rows[n].was_dead = row[3] && strcmp(row[3], "1") == 0;
                rows[n].len = lens[2];
                rows[n].payload = malloc(lens[2] + 1);
                if (!rows[n].payload) {
                        mysql_free_result(res);
                        r = cpn_error_set(err, -ENOMEM, "out of memory");
                        goto abort;
                }
                memcpy(rows[n].payload, row[2] ? row[2] : "", lens[2]);
                rows[n].payload[lens[2]] = '\0';
                n++;
        }
        mysql_free_result(res);
        for (size_t i = 0; i < n; i++) {
                struct cpn_issuance iss;
                struct cpn_error derr = { { 0 } };
                char why[600] = "";
                int outcome = 2;

                if (cpn_issuance_parse(rows[i].payload, rows[i].len, &iss, &derr) != 0) {
                        snprintf(why, sizeof(why), "cannot decode: %s", derr.msg);
                } else {
                        int64_t total, persisted;
                        bool found;

                        r = lock_campaign(db, iss.campaign_id, &found, &total, &persisted, err);
                        if (r)
                                goto abort;
                        if (!found)
                                snprintf(why, sizeof(why), "unknown campaign '%s'", iss.campaign_id);
                        else if ((r = persist_one(db, &iss, total, &persisted, &outcome, why, sizeof(why), err)))
                                goto abort;
                }
                r = mark(db, &rows[i], outcome != 2, why, pol, st, err);
                if (r)
                        goto abort;
        }
        free_due(rows, n);
        return commit(db, err);
abort:
        free_due(rows, n);
        rollback(db);
        return classify(db, r);
}

static void copy_col(char *dst, size_t n, const char *s) {
        snprintf(dst, n, "%s", s ? s : "");
}

static void iso_col(char *dst, size_t n, const char *s) {
        int64_t ms;

        if (s && cpn_db_parse_dt(s, &ms) == 0)
                cpn_time_format(ms, dst, n);
        else
                dst[0] = '\0';
}

int cpn_db_failed_each(struct cpn_db *db, const char *status, const char *campaign_id, size_t limit,
                       int (*fn)(const struct cpn_db_failed_row *row, void *ud), void *ud,
                       struct cpn_error *err) {
        char sql[768], cond[200] = "1 = 1";
        MYSQL_RES *res;
        MYSQL_ROW row;
        int r;

        if (status && strcmp(status, "open") && strcmp(status, "dead") && strcmp(status, "resolved"))
                return cpn_error_set(err, CPN_INVALID, "status must be open, dead or resolved");
        if (campaign_id && !cpn_id_valid(campaign_id, strlen(campaign_id)))
                return cpn_error_set(err, CPN_INVALID, "bad campaign id");
        if (status && campaign_id)
                snprintf(cond, sizeof(cond), "status = '%s' AND campaign_id = '%s'", status, campaign_id);
        else if (status)
                snprintf(cond, sizeof(cond), "status = '%s'", status);
        else if (campaign_id)
                snprintf(cond, sizeof(cond), "campaign_id = '%s'", campaign_id);
        snprintf(sql, sizeof(sql),
                 "SELECT id, topic, kafka_partition, kafka_offset, campaign_id, user_id, status, attempts,"
                 " next_retry_at, created_at, error, LEFT(payload, 511) FROM failed_events WHERE %s"
                 " ORDER BY id DESC LIMIT %zu", cond, limit);
        r = cpn_db_ensure(db, err);
        if (r)
                return r;
        if (mysql_query(db->m, sql) || !(res = mysql_store_result(db->m)))
                return cpn_db_fail(db, err, "select failed_events");
        while ((row = mysql_fetch_row(res))) {
                struct cpn_db_failed_row f;

                memset(&f, 0, sizeof(f));
                f.id = strtoull(row[0], NULL, 10);
                copy_col(f.topic, sizeof(f.topic), row[1]);
                f.partition = (int32_t)strtol(row[2], NULL, 10);
                f.offset = strtoll(row[3], NULL, 10);
                copy_col(f.campaign_id, sizeof(f.campaign_id), row[4]);
                copy_col(f.user_id, sizeof(f.user_id), row[5]);
                copy_col(f.status, sizeof(f.status), row[6]);
                f.attempts = (unsigned)strtoul(row[7], NULL, 10);
                iso_col(f.next_retry_at, sizeof(f.next_retry_at), row[8]);
                iso_col(f.created_at, sizeof(f.created_at), row[9]);
                copy_col(f.error, sizeof(f.error), row[10]);
                copy_col(f.payload, sizeof(f.payload), row[11]);
                r = fn(&f, ud);
                if (r)
                        break;
        }
        mysql_free_result(res);
        return r;
}

/* ---- reconcile ---- */

int cpn_db_campaign_users_each(struct cpn_db *db, const char *id, bool failed,
                               int (*fn)(const char *user_id, int64_t seq, void *ud), void *ud,
                               struct cpn_error *err) {
        char sql[256];
        MYSQL_RES *res;
        MYSQL_ROW row;
        int r;

        if (!cpn_id_valid(id, strlen(id)))
                return cpn_error_set(err, -EINVAL, "bad campaign id");
        if (failed)
                snprintf(sql, sizeof(sql),
                         "SELECT DISTINCT user_id, 0 FROM failed_events WHERE campaign_id = '%s'"
                         " AND status = 'open' AND user_id IS NOT NULL", id);
        else
                snprintf(sql, sizeof(sql), "SELECT user_id, seq FROM coupons WHERE campaign_id = '%s'", id);
        r = cpn_db_ensure(db, err);
        if (r)
                return r;
        /* Streamed: a campaign may hold millions of rows. */
        if (mysql_query(db->m, sql) || !(res = mysql_use_result(db->m)))
                return cpn_db_fail(db, err, "select users");
        while ((row = mysql_fetch_row(res)))
                if (r == 0)
                        r = fn(row[0], strtoll(row[1], NULL, 10), ud); /* keep reading to the end */
        if (r == 0 && mysql_errno(db->m)) {
                r = cpn_db_fail(db, err, "read users");
                if (db->m)
                        mysql_free_result(res);
                return r;
        }
        mysql_free_result(res);
        return r;
}
