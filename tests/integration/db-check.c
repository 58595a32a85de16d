/*
 * cpn-db-check MYSQL_URL: the shared MySQL layer (db.h) against a real,
 * migrated server, with no product in it: bytes in and out of a blob,
 * statements past CPN_DB_VALS_MAX parameters, a streamed walk stopped
 * early, savepoints, and failed events as any product would use them
 * (labels, truncation, redelivery, retry outcomes, dead rows, topics kept
 * apart, and two connections retrying at once applying each row once).
 * Prints one line per check; exit 0 when all hold. Run by
 * test_db_layer.py.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/db.h"
#include "db-internal.h" /* cpn_db_exec, for the scratch table */

static int failures;

static void check(int ok, const char *what, const char *detail) {
        printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, detail && !ok ? ": " : "", detail && !ok ? detail : "");
        if (!ok)
                failures++;
}

static int64_t int_of(struct cpn_db *db, const char *sql, struct cpn_error *err) {
        struct cpn_db_val col = CPN_DB_OUT_INT();

        return cpn_db_run(db, sql, NULL, 0, &col, 1, NULL, err) == 0 ? col.i : -1;
}

/* ---- statements ---- */

static void check_blob(struct cpn_db *db) {
        static const char bytes[] = { 'a', 0, (char)0xff, 'b', 0, (char)0x80 };
        struct cpn_error err = { { 0 } };
        char out[16];
        struct cpn_db_val col = CPN_DB_OUT_TEXT(out);
        const struct cpn_db_val in[] = { CPN_DB_IN_INT(1), CPN_DB_IN_BLOB(bytes, sizeof(bytes)) };
        int r = cpn_db_run(db, "INSERT INTO db_check (k, b) VALUES (?, ?)", in, 2, NULL, 0, NULL, &err);

        if (!r)
                r = cpn_db_run(db, "SELECT b FROM db_check WHERE k = 1", NULL, 0, &col, 1, NULL, &err);
        check(!r && col.len == sizeof(bytes) && memcmp(out, bytes, sizeof(bytes)) == 0,
              "a blob's bytes (NUL, 0xff) come back whole", err.msg);
}

static const char wide_sql[] =
        "INSERT INTO db_check (k, v) VALUES (?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),"
        "(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?),(?,?)";

static void check_wide(struct cpn_db *db) {
        struct cpn_db_val in[CPN_DB_PARAMS_MAX + 1];
        struct cpn_error err = { { 0 } };
        char names[20][8];
        uint64_t n = 0;
        int r;

        for (int i = 0; i < 20; i++) {
                snprintf(names[i], sizeof(names[i]), "w%d", i);
                in[2 * i] = CPN_DB_IN_INT(100 + i);
                in[2 * i + 1] = CPN_DB_IN_TEXT(names[i]);
        }
        r = cpn_db_run(db, wide_sql, in, 40, NULL, 0, &n, &err);
        check(!r && n == 20 && int_of(db, "SELECT SUM(k) FROM db_check WHERE v LIKE 'w%'", &err) == 20 * 100 + 190,
              "40 parameters (past the stack's 16) bind and insert 20 rows", err.msg);
        for (size_t i = 0; i < CPN_DB_PARAMS_MAX + 1; i++)
                in[i] = CPN_DB_IN_INT(0);
        r = cpn_db_run(db, wide_sql, in, CPN_DB_PARAMS_MAX + 1, NULL, 0, NULL, &err);
        check(r == -EINVAL, "more than CPN_DB_PARAMS_MAX parameters are refused before the server", err.msg);
        r = cpn_db_run(db, wide_sql, in, 38, NULL, 0, NULL, &err);
        check(r == -EINVAL, "a parameter count that is not the statement's is refused", err.msg);
}

static struct cpn_db_rows check_rows =
        CPN_DB_ROWS("INSERT INTO db_check (k, v) VALUES ", "(?, ?)", 2, " ON DUPLICATE KEY UPDATE v = v", 256);
static struct cpn_db_rows bad_rows = CPN_DB_ROWS("INSERT INTO db_check (k) VALUES ", "(?)", 1, "", 2000);

static void check_row(size_t i, struct cpn_db_val *v, void *ud) {
        v[0] = CPN_DB_IN_INT(*(const int64_t *)ud + (int64_t)i);
        v[1] = CPN_DB_IN_TEXT("r");
}

static void check_insert_rows(struct cpn_db *db) {
        static struct cpn_db_val vals[CPN_DB_PARAMS_MAX];
        struct cpn_error err = { { 0 } };
        const int64_t base = -1000000; /* out of the other checks' ranges */
        uint64_t n = 0;
        int r = cpn_db_insert_rows(db, &check_rows, 301, check_row, (void *)&base, vals, &n, &err);

        check(!r && n == 301 && int_of(db, "SELECT COUNT(*) * 1000000000 + SUM(k) FROM db_check WHERE k < 0", &err) ==
                                       301LL * 1000000000 - 301LL * 1000000 + 300 * 301 / 2,
              "301 rows go in as chunks of 256, 32, 4 and 1, each row once", err.msg);
        r = cpn_db_insert_rows(db, &bad_rows, 3, check_row, (void *)&base, vals, &n, &err);
        check(r == -EINVAL, "a shape past CPN_DB_PARAMS_MAX is refused", err.msg);
}

struct walk {
        int64_t seen, sum;
};

static int take(const struct cpn_db_val *col, void *ud) {
        struct walk *w = ud;

        w->sum += col[0].i;
        return ++w->seen == 100 ? 42 : 0;
}

static void check_stream(struct cpn_db *db) {
        struct cpn_error err = { { 0 } };
        struct cpn_db_val col = CPN_DB_OUT_INT();
        struct walk w = { 0, 0 };
        int r = cpn_db_exec(db, "INSERT INTO db_check (k) SELECT 1000 + seq FROM seq_1_to_3000", &err);

        if (!r)
                r = cpn_db_stream(db, "SELECT k FROM db_check WHERE k >= 1000 ORDER BY k", NULL, 0, &col, 1, take, &w,
                                  &err);
        check(r == 42 && w.seen == 100 && w.sum == 100 * 1000 + 5050, "a stream stops where its callback says",
              err.msg);
        check(int_of(db, "SELECT COUNT(*) FROM db_check WHERE k >= 1000", &err) == 3000,
              "the connection works after a stopped stream (the rest was drained)", err.msg);
        w = (struct walk){ 0, 0 };
        r = cpn_db_stream(db, "SELECT k FROM db_check WHERE k >= 4000", NULL, 0, &col, 1, take, &w, &err);
        check(r == 0 && w.seen == 1, "a stream walks to the end", err.msg);
}

static void check_savepoint(struct cpn_db *db) {
        struct cpn_error err = { { 0 } };
        int r = cpn_db_begin(db, &err);

        if (!r)
                r = cpn_db_run(db, "INSERT INTO db_check (k) VALUES (7001)", NULL, 0, NULL, 0, NULL, &err);
        if (!r)
                r = cpn_db_savepoint(db, "part", &err);
        if (!r)
                r = cpn_db_run(db, "INSERT INTO db_check (k) VALUES (7002)", NULL, 0, NULL, 0, NULL, &err);
        if (!r)
                r = cpn_db_savepoint_undo(db, "part", &err);
        if (!r)
                r = cpn_db_commit(db, &err);
        else
                cpn_db_rollback(db);
        check(!r && int_of(db, "SELECT COUNT(*) FROM db_check WHERE k = 7001", &err) == 1 &&
                      int_of(db, "SELECT COUNT(*) FROM db_check WHERE k = 7002", &err) == 0,
              "a savepoint undoes only what came after it", err.msg);
        check(cpn_db_savepoint(db, "x; DROP TABLE db_check", &err) == -EINVAL, "a savepoint name that is not [a-z_]+",
              err.msg);
}

/* ---- failed events ---- */

static const struct cpn_db_retry_policy policy = { 200, 400, 3 };

static int record(struct cpn_db *db, const char *topic, int64_t offset, const char *payload, const char *scope,
                  struct cpn_error *err) {
        const struct cpn_db_failed f = { .topic = topic,
                                         .partition = 0,
                                         .offset = offset,
                                         .key = "k",
                                         .key_len = 1,
                                         .payload = payload,
                                         .payload_len = strlen(payload),
                                         .scope = scope,
                                         .subject = "s",
                                         .error = "first" };

        return cpn_db_failed_record(db, &f, &policy, err);
}

/* The payload says what the apply does: "ok", "again", "abort", "write"
 * (inserts a row, then cannot be applied), "slow" (ok after 50 ms). */
static atomic_int applied;

static int apply(struct cpn_db *db, const char *payload, size_t len, struct cpn_error *why, void *ud) {
        (void)len;
        (void)ud;
        atomic_fetch_add(&applied, 1);
        if (!strcmp(payload, "ok"))
                return 0;
        if (!strcmp(payload, "slow")) {
                nanosleep(&(struct timespec){ 0, 50000000L }, NULL);
                return 0;
        }
        if (!strcmp(payload, "abort"))
                return cpn_error_set(why, -EIO, "the apply's own trouble");
        if (!strcmp(payload, "write")) {
                int r = cpn_db_run(db, "INSERT INTO db_check (k) VALUES (8001)", NULL, 0, NULL, 0, NULL, why);

                if (r)
                        return r;
        }
        return cpn_error_set(why, CPN_INVALID, "still \xff not applicable");
}

struct rows_out {
        struct cpn_db_failed_row *v;
        size_t *n;
};

static int take_row(const struct cpn_db_failed_row *row, void *ud) {
        struct rows_out *o = ud;

        if (*o->n < 4)
                o->v[(*o->n)++] = *row;
        return 0;
}

static void check_failed(struct cpn_db *db) {
        struct cpn_error err = { { 0 } };
        struct cpn_db_retry_stats st;
        char big[3000], detail[600];
        int r;

        /* Labels, a redelivery, a key past the column, labels the column refuses. */
        r = record(db, "check.a", 1, "again", "scope-1", &err);
        if (!r)
                r = record(db, "check.a", 1, "again", "scope-1", &err);
        check(!r && int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.a'", &err) == 1,
              "a redelivered message is recorded once", err.msg);
        check(int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.a' AND scope_id = 'scope-1'"
                         " AND subject_id = 's' AND attempts = 1 AND status = 'open'", &err) == 1,
              "the row carries its scope and subject", err.msg);
        memset(big, 'K', sizeof(big));
        {
                const struct cpn_db_failed f = { .topic = "check.b", .offset = 1, .key = big, .key_len = sizeof(big),
                                                 .payload = "ok", .payload_len = 2, .scope = "scope-2",
                                                 .error = "bad \xc3 utf8" };
                const struct cpn_db_failed g = { .topic = "check.b", .offset = 2, .key = "k", .key_len = 1,
                                                 .payload = "ok", .payload_len = 2, .scope = "caf\xc3\xa9",
                                                 .error = "a label the column refuses" };
                int64_t v;

                r = cpn_db_failed_record(db, &f, &policy, &err);
                v = r ? -1 : int_of(db, "SELECT LENGTH(message_key) FROM failed_events WHERE topic = 'check.b'"
                                        " AND kafka_offset = 1 AND scope_id = 'scope-2'", &err);
                snprintf(detail, sizeof(detail), "key length %lld %s", (long long)v, err.msg);
                check(v == 1024, "a key past the column is kept to its first 1,024 bytes", detail);
                r = cpn_db_failed_record(db, &g, &policy, &err);
                v = r ? -1 : int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.b'"
                                        " AND kafka_offset = 2 AND scope_id IS NULL AND payload = 'ok'", &err);
                snprintf(detail, sizeof(detail), "rows %lld %s", (long long)v, err.msg);
                check(v == 1, "a row the table refuses (a label not ASCII) is written bare, not lost", detail);
        }

        /* Outcomes of a retry. */
        r = record(db, "check.a", 2, "ok", NULL, &err);
        if (!r)
                r = record(db, "check.a", 3, "write", NULL, &err);
        nanosleep(&(struct timespec){ 0, 300000000L }, NULL); /* due: the policy's first backoff is 200 ms */
        if (!r)
                r = cpn_db_failed_retry(db, "check.a", CPN_DB_RETRY_DUE, 0, 100, &policy, apply, NULL, &st, &err);
        snprintf(detail, sizeof(detail), "r=%d resolved=%zu failed=%zu dead=%zu %s", r, st.resolved, st.failed,
                 st.dead, err.msg);
        check(!r && st.resolved == 1 && st.failed == 2 && st.dead == 0, "a retry resolves one, two still fail",
              detail);
        check(int_of(db, "SELECT COUNT(*) FROM db_check WHERE k = 8001", &err) == 0,
              "what a failing apply wrote is undone (its savepoint)", err.msg);
        check(int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.a' AND status = 'open'"
                         " AND attempts = 2 AND next_retry_at > NOW(3) AND error LIKE 'still ? not applicable'",
                     &err) == 2,
              "a row that failed again: attempts 2, next retry later, its error made valid UTF-8", err.msg);
        r = cpn_db_failed_retry(db, "check.a", CPN_DB_RETRY_DUE, 0, 100, &policy, apply, NULL, &st, &err);
        check(!r && st.resolved + st.failed + st.dead == 0, "rows not yet due are left alone", err.msg);
        r = cpn_db_failed_retry(db, "check.b", CPN_DB_RETRY_ALL, 0, 100, &policy, apply, NULL, &st, &err);
        check(!r && st.resolved == 2 &&
                      int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.a' AND attempts = 2"
                                 " AND status = 'open'", &err) == 2,
              "a retry of one topic touches no other's rows", err.msg);
        r = cpn_db_failed_retry(db, "check.a", CPN_DB_RETRY_ALL, 0, 100, &policy, apply, NULL, &st, &err);
        check(!r && st.dead == 2 &&
                      int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.a' AND status = 'dead'"
                                 " AND attempts = 3 AND next_retry_at IS NULL", &err) == 2,
              "after the policy's last attempt a row is dead", err.msg);

        /* An apply's own error undoes the whole retry. */
        r = record(db, "check.c", 1, "ok", NULL, &err);
        if (!r)
                r = record(db, "check.c", 2, "abort", NULL, &err);
        if (!r)
                r = cpn_db_failed_retry(db, "check.c", CPN_DB_RETRY_ALL, 0, 100, &policy, apply, NULL, &st, &err);
        check(r == -EIO && strstr(err.msg, "the apply's own trouble") &&
                      int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.c' AND status = 'open'"
                                 " AND attempts = 1", &err) == 2,
              "an apply's error stops the retry and changes nothing", err.msg);

        /* Listing: by scope, newest first. */
        {
                static struct cpn_db_failed_row rows[4];
                size_t n = 0;
                struct rows_out o = { rows, &n };

                r = cpn_db_failed_each(db, NULL, NULL, "scope-1", 10, take_row, &o, &err);
                check(!r && n == 1 && !strcmp(rows[0].scope, "scope-1") && !strcmp(rows[0].subject, "s") &&
                              !strcmp(rows[0].status, "dead"),
                      "the listing by scope", err.msg);
        }
}

/* ---- two retriers at once ---- */

struct retrier {
        const struct cpn_db_url *url;
        struct cpn_db_retry_stats st;
        int r;
        char msg[512];
};

static void *retry_thread(void *arg) {
        struct retrier *t = arg;
        struct cpn_error err = { { 0 } };
        struct cpn_db *db;

        t->r = cpn_db_new(&db, t->url, 5000, 30000);
        if (t->r)
                return NULL;
        /* Five at a time, as a worker's loop would, until nothing is left. */
        for (;;) {
                struct cpn_db_retry_stats st;

                t->r = cpn_db_failed_retry(db, "check.d", CPN_DB_RETRY_DUE, 0, 5, &policy, apply, NULL, &st, &err);
                if (t->r || st.resolved + st.failed + st.dead == 0)
                        break;
                t->st.resolved += st.resolved;
        }
        snprintf(t->msg, sizeof(t->msg), "%s", err.msg);
        cpn_db_free(db);
        return NULL;
}

static void check_shared(struct cpn_db *db, const struct cpn_db_url *url) {
        struct cpn_error err = { { 0 } };
        struct retrier t[2] = { { .url = url }, { .url = url } };
        pthread_t th[2];
        char detail[1400];
        int r = 0;

        for (int i = 0; i < 40 && !r; i++)
                r = record(db, "check.d", i, "slow", NULL, &err);
        nanosleep(&(struct timespec){ 0, 300000000L }, NULL); /* all due */
        atomic_store(&applied, 0);
        for (int i = 0; i < 2; i++)
                pthread_create(&th[i], NULL, retry_thread, &t[i]);
        for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
        snprintf(detail, sizeof(detail), "applied %d, resolved %zu + %zu, %s %s", atomic_load(&applied),
                 t[0].st.resolved, t[1].st.resolved, t[0].msg, t[1].msg);
        check(!r && !t[0].r && !t[1].r && atomic_load(&applied) == 40 && t[0].st.resolved + t[1].st.resolved == 40 &&
                      t[0].st.resolved && t[1].st.resolved &&
                      int_of(db, "SELECT COUNT(*) FROM failed_events WHERE topic = 'check.d' AND status = 'resolved'",
                             &err) == 40,
              "two connections retrying at once share the rows and apply each once", detail);
}

int main(int argc, char **argv) {
        struct cpn_db_url url;
        struct cpn_error err = { { 0 } };
        struct cpn_db *db;

        if (argc != 2 || cpn_db_url_parse(&url, argv[1], &err) != 0 || cpn_db_new(&db, &url, 5000, 30000) != 0) {
                fprintf(stderr, "usage: cpn-db-check MYSQL_URL (%s)\n", err.msg);
                return 2;
        }
        if (cpn_db_exec(db, "DROP TABLE IF EXISTS db_check", &err) != 0 ||
            cpn_db_exec(db, "CREATE TABLE db_check (id INT AUTO_INCREMENT PRIMARY KEY, k BIGINT, v VARCHAR(16),"
                            " b BLOB) ENGINE=InnoDB", &err) != 0 ||
            cpn_db_exec(db, "DELETE FROM failed_events WHERE topic LIKE 'check.%'", &err) != 0) {
                fprintf(stderr, "cpn-db-check: cannot make its table: %s\n", err.msg);
                cpn_db_free(db);
                return 2;
        }
        check_blob(db);
        check_wide(db);
        check_insert_rows(db);
        check_stream(db);
        check_savepoint(db);
        check_failed(db);
        check_shared(db, &url);
        cpn_db_free(db);
        printf("%s: %d failed\n", failures ? "FAIL" : "PASS", failures);
        return failures ? 1 : 0;
}
