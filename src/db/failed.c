/*
 * Failed events (db.h): the rows any product's consumer records for a
 * message it cannot apply, their retries with backoff and their listing.
 * Nothing here knows what a message means: a product gives its topic and
 * the function that applies one payload.
 *
 * A row is keyed by (topic, partition, offset), so a redelivered message is
 * recorded once (ON DUPLICATE KEY UPDATE id = id: unlike INSERT IGNORE it
 * does not also swallow real errors).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/json.h"
#include "db-internal.h"

/* What a row can hold: message_key is VARBINARY(1024), payload MEDIUMBLOB,
 * error TEXT (utf8mb4). */
#define KEY_MAX 1024
#define PAYLOAD_MAX ((size_t)16 * 1024 * 1024 - 1)
#define ERROR_MAX 2000
#define BARE_PAYLOAD 1024

static const char record_sql[] =
        "INSERT INTO failed_events (topic, kafka_partition, kafka_offset, message_key, payload, scope_id,"
        " subject_id, error, next_retry_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, DATE_ADD(NOW(3), INTERVAL ? MICROSECOND))"
        " ON DUPLICATE KEY UPDATE id = id";

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

/* Copies @s into @out as valid UTF-8 (each byte of a bad sequence becomes
 * '?'), at most @n - 1 bytes. */
static void utf8_clean(char *out, size_t n, const char *s) {
        size_t o = 0, len = strlen(s);

        for (size_t i = 0; i < len && o + 4 < n;) {
                size_t k = 1;

                while (k < 4 && i + k < len && ((unsigned char)s[i + k] & 0xc0) == 0x80 &&
                       ((unsigned char)s[i] & 0x80))
                        k++;
                if (cpn_utf8_check(s + i, k) == 0) {
                        memcpy(out + o, s + i, k);
                        o += k;
                        i += k;
                } else {
                        out[o++] = '?';
                        i++;
                }
        }
        out[o] = '\0';
}

static const char *label(const char *s) {
        return s && *s ? s : NULL;
}

static int insert(struct cpn_db *db, const struct cpn_db_failed *f, const void *key, size_t key_len,
                  size_t payload_len, bool labels, const char *why, const struct cpn_db_retry_policy *pol,
                  struct cpn_error *err) {
        const struct cpn_db_val in[] = {
                CPN_DB_IN_TEXT(f->topic),
                CPN_DB_IN_INT(f->partition),
                CPN_DB_IN_INT(f->offset),
                CPN_DB_IN_BLOB(key, key_len),
                CPN_DB_IN_BLOB(f->payload ? (const char *)f->payload : "", f->payload ? payload_len : 0),
                CPN_DB_IN_TEXT(labels ? label(f->scope) : NULL),
                CPN_DB_IN_TEXT(labels ? label(f->subject) : NULL),
                CPN_DB_IN_TEXT(why),
                CPN_DB_IN_INT((int64_t)backoff_ms(pol, 1) * 1000),
        };

        return cpn_db_run(db, record_sql, in, sizeof(in) / sizeof(in[0]), NULL, 0, NULL, err);
}

int cpn_db_failed_record(struct cpn_db *db, const struct cpn_db_failed *f, const struct cpn_db_retry_policy *pol,
                         struct cpn_error *err) {
        size_t key_len = f->key ? f->key_len : 0, payload_len = f->payload_len;
        char text[ERROR_MAX + 600], clean[ERROR_MAX + 600];
        struct cpn_error first = { { 0 } };
        int r;

        snprintf(text, sizeof(text), "%.*s", ERROR_MAX, f->error ? f->error : "cannot be applied");
        if (key_len > KEY_MAX) {
                snprintf(text + strlen(text), sizeof(text) - strlen(text),
                         " [message key of %zu bytes: its first %d kept]", key_len, KEY_MAX);
                key_len = KEY_MAX;
        }
        if (payload_len > PAYLOAD_MAX) {
                snprintf(text + strlen(text), sizeof(text) - strlen(text),
                         " [payload of %zu bytes: its first %zu kept]", payload_len, PAYLOAD_MAX);
                payload_len = PAYLOAD_MAX;
        }
        utf8_clean(clean, sizeof(clean), text);
        r = insert(db, f, f->key, key_len, payload_len, true, clean, pol, &first);
        if (r != -EPROTO)
                return r == 0 ? 0 : cpn_error_set(err, r, "%s", first.msg);
        /* The row's own fault (a value the table refuses; only the statement
         * was undone, the transaction goes on): once more, bare. */
        snprintf(text, sizeof(text), "%.*s [recorded bare: %.300s]", ERROR_MAX, clean, first.msg);
        utf8_clean(clean, sizeof(clean), text);
        return insert(db, f, NULL, 0, payload_len < BARE_PAYLOAD ? payload_len : BARE_PAYLOAD, false, clean, pol,
                      err);
}

/* ---- retries ---- */

static const char due_sql[] =
        "SELECT id, attempts, payload, status = 'dead' FROM failed_events"
        " WHERE topic = ? AND status = 'open' AND next_retry_at <= NOW(3)"
        " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";
static const char one_sql[] =
        "SELECT id, attempts, payload, status = 'dead' FROM failed_events"
        " WHERE topic = ? AND id = ? AND status IN ('open', 'dead') LIMIT ? FOR UPDATE SKIP LOCKED";
static const char all_sql[] =
        "SELECT id, attempts, payload, status = 'dead' FROM failed_events"
        " WHERE topic = ? AND status IN ('open', 'dead') ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";
static const char resolved_sql[] =
        "UPDATE failed_events SET status = 'resolved', attempts = attempts + 1, next_retry_at = NULL WHERE id = ?";
static const char again_sql[] =
        "UPDATE failed_events SET status = 'open', attempts = attempts + 1, error = ?,"
        " next_retry_at = DATE_ADD(NOW(3), INTERVAL ? MICROSECOND) WHERE id = ?";
static const char dead_sql[] =
        "UPDATE failed_events SET status = 'dead', attempts = attempts + 1, error = ?, next_retry_at = NULL"
        " WHERE id = ?";

struct retry {
        struct cpn_db *db;
        const struct cpn_db_retry_policy *pol;
        cpn_db_failed_apply_fn *apply;
        void *ud;
        struct cpn_db_retry_stats *st;
        struct cpn_error *err;
};

/* One row of the retry's SELECT (all of it read first: cpn_db_each). */
static int retry_row(const struct cpn_db_val *col, void *ud) {
        struct retry *t = ud;
        struct cpn_error why = { { 0 } };
        int64_t id = col[0].i, attempts = col[1].i + 1;
        char clean[520];
        int r, a;

        r = cpn_db_savepoint(t->db, "failed_row", t->err);
        if (r)
                return r;
        a = t->apply(t->db, col[2].buf, col[2].len, &why, t->ud);
        if (a < 0)
                return cpn_error_set(t->err, a, "%s", why.msg[0] ? why.msg : "failed");
        if (a == 0) {
                const struct cpn_db_val in[] = { CPN_DB_IN_INT(id) };

                t->st->resolved++;
                return cpn_db_run(t->db, resolved_sql, in, 1, NULL, 0, NULL, t->err);
        }
        r = cpn_db_savepoint_undo(t->db, "failed_row", t->err);
        if (r)
                return r;
        utf8_clean(clean, sizeof(clean), why.msg[0] ? why.msg : "cannot be applied");
        utf8_clean(t->st->last_error, sizeof(t->st->last_error), clean);
        if (attempts >= t->pol->max_attempts || col[3].i) {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(clean), CPN_DB_IN_INT(id) };

                t->st->dead++;
                return cpn_db_run(t->db, dead_sql, in, 2, NULL, 0, NULL, t->err);
        }
        {
                const struct cpn_db_val in[] = { CPN_DB_IN_TEXT(clean),
                                                 CPN_DB_IN_INT((int64_t)backoff_ms(t->pol, attempts) * 1000),
                                                 CPN_DB_IN_INT(id) };

                t->st->failed++;
                return cpn_db_run(t->db, again_sql, in, 3, NULL, 0, NULL, t->err);
        }
}

int cpn_db_failed_retry(struct cpn_db *db, const char *topic, enum cpn_db_retry_which which, uint64_t id,
                        size_t limit, const struct cpn_db_retry_policy *pol, cpn_db_failed_apply_fn *apply,
                        void *ud, struct cpn_db_retry_stats *st, struct cpn_error *err) {
        struct retry t = { db, pol, apply, ud, st, err };
        struct cpn_db_val in[3], col[4];
        const char *sql;
        char *payload;
        size_t n = 0;
        int r;

        memset(st, 0, sizeof(*st));
        in[n++] = CPN_DB_IN_TEXT(topic);
        if (which == CPN_DB_RETRY_ONE)
                in[n++] = CPN_DB_IN_INT((int64_t)id);
        in[n++] = CPN_DB_IN_INT(limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
        sql = which == CPN_DB_RETRY_DUE ? due_sql : which == CPN_DB_RETRY_ONE ? one_sql : all_sql;
        payload = malloc(CPN_DB_FAILED_READ_MAX + 1);
        if (!payload)
                return cpn_error_set(err, -ENOMEM, "out of memory");
        col[0] = CPN_DB_OUT_INT();
        col[1] = CPN_DB_OUT_INT();
        col[2] = (struct cpn_db_val){ .type = CPN_DB_TEXT, .buf = payload, .cap = CPN_DB_FAILED_READ_MAX + 1 };
        col[3] = CPN_DB_OUT_INT();
        r = cpn_db_begin(db, err);
        if (!r)
                r = cpn_db_each(db, sql, in, n, col, 4, retry_row, &t, err);
        if (!r)
                r = cpn_db_commit(db, err);
        else
                cpn_db_rollback(db);
        free(payload);
        if (r)
                memset(st, 0, sizeof(*st)); /* nothing of it happened */
        return r;
}

/* ---- listing ---- */

static const char list_sql[] =
        "SELECT id, topic, kafka_partition, kafka_offset, scope_id, subject_id, status, attempts, next_retry_at,"
        " created_at, error, LEFT(payload, 511) FROM failed_events"
        " WHERE (? IS NULL OR status = ?) AND (? IS NULL OR topic = ?) AND (? IS NULL OR scope_id = ?)"
        " ORDER BY id DESC LIMIT ?";

struct lister {
        struct cpn_db_failed_row row;
        int (*fn)(const struct cpn_db_failed_row *row, void *ud);
        void *ud;
};

static void iso(int64_t ms, bool null, char *dst, size_t n) {
        if (null)
                dst[0] = '\0';
        else
                cpn_time_format(ms, dst, n);
}

static int list_row(const struct cpn_db_val *col, void *ud) {
        struct lister *l = ud;
        struct cpn_db_failed_row *f = &l->row;

        f->id = (uint64_t)col[0].i;
        f->partition = (int32_t)col[2].i;
        f->offset = col[3].i;
        f->attempts = (unsigned)col[7].i;
        iso(col[8].i, col[8].null, f->next_retry_at, sizeof(f->next_retry_at));
        iso(col[9].i, col[9].null, f->created_at, sizeof(f->created_at));
        return l->fn(f, l->ud);
}

int cpn_db_failed_each(struct cpn_db *db, const char *status, const char *topic, const char *scope, size_t limit,
                       int (*fn)(const struct cpn_db_failed_row *row, void *ud), void *ud,
                       struct cpn_error *err) {
        struct lister *l;
        int r;

        if (status && strcmp(status, "open") && strcmp(status, "dead") && strcmp(status, "resolved"))
                return cpn_error_set(err, CPN_INVALID, "status must be open, dead or resolved");
        if (scope && !cpn_id_valid(scope, strlen(scope)))
                return cpn_error_set(err, CPN_INVALID, "bad id '%.80s'", scope);
        l = calloc(1, sizeof(*l));
        if (!l)
                return cpn_error_set(err, -ENOMEM, "out of memory");
        l->fn = fn;
        l->ud = ud;
        {
                const struct cpn_db_val in[] = {
                        CPN_DB_IN_TEXT(status), CPN_DB_IN_TEXT(status), CPN_DB_IN_TEXT(topic), CPN_DB_IN_TEXT(topic),
                        CPN_DB_IN_TEXT(scope),  CPN_DB_IN_TEXT(scope),
                        CPN_DB_IN_INT(limit > INT64_MAX ? INT64_MAX : (int64_t)limit),
                };
                struct cpn_db_val col[] = {
                        CPN_DB_OUT_INT(),
                        CPN_DB_OUT_TEXT(l->row.topic),
                        CPN_DB_OUT_INT(),
                        CPN_DB_OUT_INT(),
                        CPN_DB_OUT_TEXT(l->row.scope),
                        CPN_DB_OUT_TEXT(l->row.subject),
                        CPN_DB_OUT_TEXT(l->row.status),
                        CPN_DB_OUT_INT(),
                        CPN_DB_OUT_TIME(),
                        CPN_DB_OUT_TIME(),
                        CPN_DB_OUT_TEXT(l->row.error),
                        CPN_DB_OUT_TEXT(l->row.payload),
                };

                r = cpn_db_each(db, list_sql, in, sizeof(in) / sizeof(in[0]), col, sizeof(col) / sizeof(col[0]),
                                list_row, l, err);
        }
        free(l);
        return r;
}

static const char counts_sql[] =
        "SELECT topic, COALESCE(scope_id, ''), status, COUNT(*) FROM failed_events"
        " WHERE status IN ('open', 'dead') GROUP BY topic, scope_id, status";

struct counter {
        int (*fn)(const char *topic, const char *scope, const char *status, int64_t n, void *ud);
        void *ud;
        char topic[256], scope[CPN_ID_MAX + 1], status[16];
};

static int count_row(const struct cpn_db_val *out, void *ud) {
        struct counter *c = ud;

        return c->fn(c->topic, c->scope, c->status, out[3].i, c->ud);
}

int cpn_db_failed_counts(struct cpn_db *db,
                         int (*fn)(const char *topic, const char *scope, const char *status, int64_t n, void *ud),
                         void *ud, struct cpn_error *err) {
        struct counter c = { .fn = fn, .ud = ud };
        struct cpn_db_val col[] = { CPN_DB_OUT_TEXT(c.topic), CPN_DB_OUT_TEXT(c.scope), CPN_DB_OUT_TEXT(c.status),
                                    CPN_DB_OUT_INT() };

        return cpn_db_each(db, counts_sql, NULL, 0, col, 4, count_row, &c, err);
}
