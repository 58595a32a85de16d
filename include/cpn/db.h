#pragma once
/*
 * DB: everything kept in MySQL/MariaDB, behind domain calls. Works with the
 * libmysqlclient API (no other module sees a MYSQL). A struct cpn_db is one
 * connection owned by one thread; it connects lazily, runs every session in
 * UTC, and after a connection error is closed and reopened by the next call.
 *
 * Return codes: 0, the positive outcomes each call lists, -EIO (server
 * unreachable or connection lost), -EPROTO (any other SQL error), -ENOMEM;
 * the server's text in @err.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cpn/error.h"
#include "cpn/types.h"

/* The db module's own outcomes (error.h). */
enum {
        CPN_DB_NO_SUCH_EVENT = CPN_DB_BASE, /* no failed event of that id is open or dead */
        CPN_DB_NO_ROW,                      /* the query found no row */
        CPN_DB_DUPLICATE,                   /* a unique key refused the row */
};

struct cpn_db_url {
        char host[256];
        int port;
        char user[128];
        char password[256];
        char database[65];
        char unix_path[256];
};

struct cpn_db;

/* Parses mysql://user[:password]@host[:port]/database (and ?socket=PATH).
 * Returns 0 or CPN_INVALID. */
int cpn_db_url_parse(struct cpn_db_url *out, const char *url, struct cpn_error *err);

/* Creates an unconnected handle; @url is borrowed and must outlive it.
 * @connect_ms bounds connecting, @rw_ms each read and write of a statement
 * (libmysqlclient counts both in whole seconds: rounded up). */
int cpn_db_new(struct cpn_db **ret, const struct cpn_db_url *url, long connect_ms, long rw_ms);
struct cpn_db *cpn_db_free(struct cpn_db *db);
long cpn_db_rw_timeout_ms(const struct cpn_db *db);
bool cpn_db_connected(const struct cpn_db *db);
/* Closes the connection if the server has closed it meanwhile (it was
 * idle: a restart, wait_timeout), so the next call connects anew instead
 * of failing on it. Call only between transactions. */
void cpn_db_drop_if_closed(struct cpn_db *db);

int cpn_db_ping(struct cpn_db *db, struct cpn_error *err);

/*
 * Statements and transactions: what a product writes its SQL with, without
 * seeing libmysqlclient. A statement is prepared once per connection and
 * cached by the address of its SQL text, which must therefore be a string
 * literal (or live as long as the program); '?' marks each parameter.
 */
enum cpn_db_type {
        CPN_DB_INT,  /* int64_t */
        CPN_DB_TEXT, /* a NUL-terminated string */
        CPN_DB_TIME, /* unix ms, as DATETIME(3) in UTC */
        CPN_DB_NULL, /* parameters only: SQL NULL */
        CPN_DB_BLOB, /* parameters only: @len bytes at @s, any bytes (read a blob column as TEXT) */
};

/* A parameter (in) or a column of the result (out). */
struct cpn_db_val {
        enum cpn_db_type type;
        int64_t i;      /* INT and TIME, in and out */
        const char *s;  /* TEXT and BLOB in: borrowed for the call; NULL is SQL NULL */
        char *buf;      /* TEXT out: the value, NUL-terminated, cut to cap - 1 bytes */
        size_t cap;
        size_t len;     /* TEXT out: the value's whole length; BLOB in: its length */
        bool null;      /* out: the column was NULL (i 0, buf "") */
};
#define CPN_DB_IN_INT(v) ((struct cpn_db_val){ .type = CPN_DB_INT, .i = (v) })
#define CPN_DB_IN_TEXT(v) ((struct cpn_db_val){ .type = CPN_DB_TEXT, .s = (v) })
#define CPN_DB_IN_TIME(v) ((struct cpn_db_val){ .type = CPN_DB_TIME, .i = (v) })
#define CPN_DB_IN_BLOB(p, n) ((struct cpn_db_val){ .type = CPN_DB_BLOB, .s = (const char *)(p), .len = (n) })
#define CPN_DB_OUT_INT() ((struct cpn_db_val){ .type = CPN_DB_INT })
#define CPN_DB_OUT_TIME() ((struct cpn_db_val){ .type = CPN_DB_TIME })
#define CPN_DB_OUT_TEXT(b) ((struct cpn_db_val){ .type = CPN_DB_TEXT, .buf = (b), .cap = sizeof(b) })
#define CPN_DB_VALS_MAX 16     /* columns of a result, and parameters bound on the caller's stack */
#define CPN_DB_PARAMS_MAX 1024 /* parameters of one statement (a multi-row INSERT): past
                                * CPN_DB_VALS_MAX they are bound in buffers the connection keeps */

/* Opens a transaction (connecting if needed). Returns 0, -EIO or -EPROTO. */
int cpn_db_begin(struct cpn_db *db, struct cpn_error *err);
/* Commits it. Returns 0, or -EIO: the outcome is unknown (the connection
 * is dropped; what was written must be safe to find done or not done). */
int cpn_db_commit(struct cpn_db *db, struct cpn_error *err);
/* Rolls back the open transaction, if any; never fails (a connection that
 * cannot roll back is dropped, which rolls back). */
void cpn_db_rollback(struct cpn_db *db);

/*
 * Runs @sql with @n_in parameters. A statement with a result set fills
 * @out (@n_out columns, in order) from its first row and discards the
 * rest. *@affected (may be NULL) gets the rows changed (matched rows do
 * not count: a guarded UPDATE that found nothing to change is 0).
 * Returns 0, CPN_DB_NO_ROW (a result set without rows), CPN_DB_DUPLICATE
 * (a unique key refused the write), -EAGAIN (transient: a deadlock, a lock
 * wait timeout, a read-only server during a failover, a killed query; the
 * transaction was rolled back, the whole of it may be retried later),
 * -EIO (connection lost; dropped) or -EPROTO (the statement's own fault: a
 * value the table refuses, a missing table; in a transaction only the
 * statement was undone); the server's text in @err. Outside a transaction
 * each statement commits on its own.
 */
int cpn_db_run(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
               struct cpn_db_val *out, size_t n_out, uint64_t *affected, struct cpn_error *err);
/* Like cpn_db_run, calling @fn for every row of the result with @out
 * filled; a non-zero return of @fn stops the walk (the rest is discarded)
 * and is returned. No rows is 0. */
int cpn_db_each(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                struct cpn_db_val *out, size_t n_out, int (*fn)(const struct cpn_db_val *out, void *ud), void *ud,
                struct cpn_error *err);
/* Like cpn_db_each, but the rows are read from the server as @fn takes
 * them instead of all first: for walks of millions of rows. @fn must not
 * use @db; after a non-zero return the rest is read and dropped. */
int cpn_db_stream(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                  struct cpn_db_val *out, size_t n_out, int (*fn)(const struct cpn_db_val *out, void *ud),
                  void *ud, struct cpn_error *err);

/* Savepoints inside the open transaction, so that one part of it can be
 * undone and the rest go on. @name is an SQL identifier of the caller's
 * ([a-z_]+); a savepoint of the same name replaces the older. Return 0,
 * -EINVAL (a bad name) or as cpn_db_run. */
int cpn_db_savepoint(struct cpn_db *db, const char *name, struct cpn_error *err);
int cpn_db_savepoint_undo(struct cpn_db *db, const char *name, struct cpn_error *err);

/*
 * Multi-row INSERTs: many rows in one statement instead of one round trip
 * each. A product declares the statement's shape once, as a static:
 *
 *   static struct cpn_db_rows things = CPN_DB_ROWS(
 *           "INSERT INTO things (owner, name) VALUES ", "(?, ?)", 2,
 *           " ON DUPLICATE KEY UPDATE id = id", 256);
 *
 * and cpn_db_insert_rows writes any number of rows in chunks of @max_rows,
 * 32, 4 and 1 rows, one statement text per chunk size, built on first use
 * and kept for the program's life (the statement cache keys on the text's
 * address). @max_rows * @row_params must be at most CPN_DB_PARAMS_MAX.
 */
#define CPN_DB_ROWS_CHUNKS 4
struct cpn_db_rows {
        const char *head, *row, *tail;
        size_t row_params, max_rows;
        _Atomic(char *) sql[CPN_DB_ROWS_CHUNKS]; /* built on first use */
};
#define CPN_DB_ROWS(head, row, row_params, tail, max_rows) \
        { (head), (row), (tail), (row_params), (max_rows), { NULL, NULL, NULL, NULL } }
/* Fills the @row_params values of row @i at @vals. */
typedef void cpn_db_row_fn(size_t i, struct cpn_db_val *vals, void *ud);
/* Inserts rows 0..@n-1, each filled by @fill, into @vals (room for
 * @max_rows * @row_params values: the caller's, kept off small stacks).
 * *@affected (may be NULL) gets the sum of the rows the statements
 * changed. Returns 0 or as cpn_db_run, stopping at the first error (the
 * chunks before it are written: run it in a transaction). */
int cpn_db_insert_rows(struct cpn_db *db, struct cpn_db_rows *rows, size_t n, cpn_db_row_fn *fill, void *ud,
                       struct cpn_db_val *vals, uint64_t *affected, struct cpn_error *err);

/*
 * The pool: coupon-api's MySQL connections, COUPON_MYSQL_POOL of them for
 * all request threads (MySQL serves only the admin create and the
 * "persisted" part of reads there), so that a thousand threads never hold
 * a thousand connections of the server's max_connections.
 *
 * Its breaker: with @watch, a thread of its own pings MySQL every second
 * over one more connection. While that fails, or after a call through the
 * pool failed for a reason other than a dead kept connection (a timeout,
 * a refused connect), the pool is "down": borrowers are refused at once
 * (-EIO) instead of each waiting out the timeout, until the next ping
 * works. Without @watch (couponctl) it is never down.
 *
 * Created by main before and freed after every caller; any thread.
 */
struct cpn_db_pool;

struct cpn_db_pool_stats {
        size_t size, in_use;
        bool down;
        uint64_t busy_timeouts; /* borrowers that found every connection busy for their whole wait */
        uint64_t refused;       /* borrowers refused while down */
};

/* @connect_ms and @rw_ms as for cpn_db_new, for every connection. Returns
 * 0, -ENOMEM or a pthread error (negative). */
int cpn_db_pool_new(struct cpn_db_pool **ret, const struct cpn_db_url *url, size_t size, long connect_ms,
                    long rw_ms, bool watch, struct cpn_error *err);
/* The read and write timeout the worker and couponctl give MySQL: a batch or
 * a scan may legitimately take long. */
#define CPN_DB_SLOW_RW_MS(connect_ms) ((connect_ms) * 5 < 30000 ? 30000 : (connect_ms) * 5)
struct cpn_db_pool *cpn_db_pool_free(struct cpn_db_pool *p);
/*
 * Runs @fn on a borrowed connection, waiting up to @wait_ms for one to be
 * free. When @fn fails at once (-EIO) on a connection kept from before
 * (its server went away meanwhile), it runs once more on a new connection:
 * @fn must be safe to repeat. Returns @fn's result, -EIO (MySQL not
 * answering: @fn not run) or -EBUSY (no connection free in time).
 */
int cpn_db_pool_run(struct cpn_db_pool *p, long wait_ms, int (*fn)(struct cpn_db *db, void *ud), void *ud,
                    struct cpn_error *err);
void cpn_db_pool_stats(struct cpn_db_pool *p, struct cpn_db_pool_stats *out);

/* Applies the embedded deploy/sql migrations not yet recorded in
 * schema_migrations, each in order; prints one line per applied step to
 * @out (may be NULL). Idempotent. */
int cpn_db_migrate(struct cpn_db *db, FILE *out, struct cpn_error *err);

/*
 * ---- failed events: messages a consumer could not apply ----
 *
 * Any product's consumer records a message it cannot apply (it cannot be
 * decoded, it names what does not exist, a rule refuses it) as one
 * failed_events row keyed by (topic, partition, offset), so that the
 * partition goes on and an operator sees it; the product retries its own
 * topic's rows with backoff until they apply or are marked dead. The rows
 * carry two labels of the product's choosing, for operators and reconcile:
 * @scope (what the message belongs to: a campaign, a ticket type) and
 * @subject (what in it: a user, a ticket).
 */

/* One message that could not be applied; borrowed for the call. */
struct cpn_db_failed {
        const char *topic;
        int32_t partition;
        int64_t offset;
        const void *key;       /* may be NULL */
        size_t key_len;
        const void *payload;   /* may be NULL */
        size_t payload_len;
        const char *scope;     /* NULL or "": unknown */
        const char *subject;   /* NULL or "": unknown */
        const char *error;     /* why; any bytes (made valid UTF-8 here) */
};

/* When a failed event is retried: base * 2^(attempts-1), at most max_ms,
 * ±20 % jitter; after max_attempts failed attempts it is marked dead. */
struct cpn_db_retry_policy {
        long base_ms;
        long max_ms;
        long max_attempts;
};

/*
 * Records @f, in the open transaction if there is one, whatever its size
 * or bytes: a key or a payload larger than the columns is kept to its first
 * bytes (the error says so). A row that still cannot be written for a
 * reason of its own is written once more bare (no key, the payload's first
 * 1,024 bytes, why the first try failed): a poison message must never stop
 * its partition. A message already recorded (redelivered) is not recorded
 * twice. Returns 0, or -EIO / -EAGAIN / -EPROTO that are not the row's
 * fault (connection, deadlock, a missing table).
 */
int cpn_db_failed_record(struct cpn_db *db, const struct cpn_db_failed *f, const struct cpn_db_retry_policy *pol,
                         struct cpn_error *err);

/*
 * A product's second try at one message, called by cpn_db_failed_retry
 * inside its transaction (behind a savepoint of its own): returns 0 (it
 * applied now, or was found applied: the row is resolved), CPN_INVALID (it
 * still cannot be applied; whatever it wrote is undone) or a negative
 * errno, which stops the retry and rolls all of it back; the text of
 * either in @why. It may
 * run statements on @db, but not begin or commit. @payload is borrowed for
 * the call; @len may exceed CPN_DB_FAILED_READ_MAX, in which case only that
 * much was read (and the product should refuse it).
 */
#define CPN_DB_FAILED_READ_MAX (64 * 1024)
typedef int cpn_db_failed_apply_fn(struct cpn_db *db, const char *payload, size_t len, struct cpn_error *why,
                                   void *ud);

enum cpn_db_retry_which {
        CPN_DB_RETRY_DUE, /* open rows whose next_retry_at has come (a consumer's loop) */
        CPN_DB_RETRY_ONE, /* the row @id, open or dead */
        CPN_DB_RETRY_ALL, /* every open or dead row, due or not */
};

struct cpn_db_retry_stats {
        size_t resolved;  /* applied now (or found applied) */
        size_t failed;    /* still failing, retried later */
        size_t dead;      /* failed its last allowed attempt */
        char last_error[256];
};

/* Retries up to @limit failed events of @topic (a product retries only its
 * own topic's) in one transaction, rows locked with SKIP LOCKED so that
 * several consumers share the work: each goes through @apply, then is
 * marked resolved, or its attempts, error and next_retry_at updated, or
 * marked dead (after the policy's last attempt; a dead row an operator
 * retries that fails again stays dead). Returns 0 (@st filled), or
 * -EIO / -EAGAIN / -EPROTO / @apply's error (nothing changed). */
int cpn_db_failed_retry(struct cpn_db *db, const char *topic, enum cpn_db_retry_which which, uint64_t id,
                        size_t limit, const struct cpn_db_retry_policy *pol, cpn_db_failed_apply_fn *apply,
                        void *ud, struct cpn_db_retry_stats *st, struct cpn_error *err);

struct cpn_db_failed_row {
        uint64_t id;
        char topic[256];
        int32_t partition;
        int64_t offset;
        char scope[CPN_ID_MAX + 1];
        char subject[CPN_ID_MAX + 1];
        char status[16];
        unsigned attempts;
        char next_retry_at[40]; /* RFC 3339 or "" */
        char created_at[40];
        char error[512];
        char payload[512];      /* truncated to fit, NUL-terminated */
};

/* Calls @fn for each (topic, scope, status) of the open and dead failed
 * events with their count (@scope "" for events of no scope): a look at
 * what is failing now, cheap while failures are few. Returns 0, a
 * non-zero return of @fn or an error as cpn_db_each. */
int cpn_db_failed_counts(struct cpn_db *db,
                         int (*fn)(const char *topic, const char *scope, const char *status, int64_t n, void *ud),
                         void *ud, struct cpn_error *err);

/* Calls @fn for failed events, newest first: @status "open", "dead",
 * "resolved" or NULL (all), of @topic and @scope (NULL: any), at most
 * @limit. Returns 0, CPN_INVALID (a bad @status or @scope), a non-zero
 * return of @fn (which stops the walk) or an error as cpn_db_each. */
int cpn_db_failed_each(struct cpn_db *db, const char *status, const char *topic, const char *scope, size_t limit,
                       int (*fn)(const struct cpn_db_failed_row *row, void *ud), void *ud,
                       struct cpn_error *err);
