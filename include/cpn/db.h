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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cpn/error.h"
#include "cpn/types.h"
#include "cpn/coupon/campaign.h"

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
};

/* A parameter (in) or a column of the result (out). */
struct cpn_db_val {
        enum cpn_db_type type;
        int64_t i;      /* INT and TIME, in and out */
        const char *s;  /* TEXT in: borrowed for the call; NULL is SQL NULL */
        char *buf;      /* TEXT out: the value, NUL-terminated, cut to cap - 1 bytes */
        size_t cap;
        size_t len;     /* TEXT out: the value's whole length */
        bool null;      /* out: the column was NULL (i 0, buf "") */
};
#define CPN_DB_IN_INT(v) ((struct cpn_db_val){ .type = CPN_DB_INT, .i = (v) })
#define CPN_DB_IN_TEXT(v) ((struct cpn_db_val){ .type = CPN_DB_TEXT, .s = (v) })
#define CPN_DB_IN_TIME(v) ((struct cpn_db_val){ .type = CPN_DB_TIME, .i = (v) })
#define CPN_DB_OUT_INT() ((struct cpn_db_val){ .type = CPN_DB_INT })
#define CPN_DB_OUT_TIME() ((struct cpn_db_val){ .type = CPN_DB_TIME })
#define CPN_DB_OUT_TEXT(b) ((struct cpn_db_val){ .type = CPN_DB_TEXT, .buf = (b), .cap = sizeof(b) })
#define CPN_DB_VALS_MAX 16

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
 * (a unique key refused the write), -EAGAIN (a deadlock or lock wait
 * timeout: the transaction was rolled back, the whole of it may be
 * retried), -EIO (connection lost; dropped) or -EPROTO; the server's text
 * in @err. Outside a transaction each statement commits on its own.
 */
int cpn_db_run(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
               struct cpn_db_val *out, size_t n_out, uint64_t *affected, struct cpn_error *err);
/* Like cpn_db_run, calling @fn for every row of the result with @out
 * filled; a non-zero return of @fn stops the walk (the rest is discarded)
 * and is returned. No rows is 0. */
int cpn_db_each(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                struct cpn_db_val *out, size_t n_out, int (*fn)(const struct cpn_db_val *out, void *ud), void *ud,
                struct cpn_error *err);

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

/* ---- the worker's side: batches of Kafka messages into coupons ---- */

/* One message taken from the topic. @iss is NULL when it could not be
 * decoded (@error says why; @campaign_id/@user_id hold what was readable,
 * "" if nothing). Everything is borrowed for the duration of the call. */
struct cpn_db_record {
        const struct cpn_issuance *iss;
        const char *error;
        const char *campaign_id;
        const char *user_id;
        const char *topic;
        int32_t partition;
        int64_t offset;
        const void *key;
        size_t key_len;
        const void *payload;
        size_t payload_len;
};

/* When a failed event is retried: base * 2^(attempts-1), at most max_ms,
 * ±20 % jitter; after max_attempts failed attempts it is marked dead. */
struct cpn_db_retry_policy {
        long base_ms;
        long max_ms;
        long max_attempts;
};

struct cpn_db_persist_stats {
        size_t inserted;   /* new rows in coupons */
        size_t duplicates; /* already there: redelivered or produced twice */
        size_t failed;     /* recorded in failed_events (poison, unknown campaign, over the cap, ...) */
};

/*
 * Persists @n records in one transaction: new coupons rows (a row already
 * there changes nothing), each campaign's persisted count raised by the
 * conditional UPDATE that keeps it <= total, and one failed_events row per
 * record that cannot be persisted (decode error, unknown campaign, over the
 * cap, any non-transient SQL error of its own row). The campaigns' rows are
 * locked first, in id order, so concurrent workers neither deadlock nor
 * race on the cap. Returns 0 (committed; @st filled), -EIO (transient:
 * server unreachable, connection lost, commit of unknown outcome, deadlock,
 * lock wait timeout) or -EPROTO: in both cases the caller retries the same
 * records later, which is safe because all of it is idempotent.
 */
int cpn_db_persist(struct cpn_db *db, const struct cpn_db_record *recs, size_t n,
                   const struct cpn_db_retry_policy *pol, struct cpn_db_persist_stats *st,
                   struct cpn_error *err);

enum cpn_db_retry_which {
        CPN_DB_RETRY_DUE, /* open rows whose next_retry_at has come (the worker's loop) */
        CPN_DB_RETRY_ONE, /* the row @id, open or dead */
        CPN_DB_RETRY_ALL, /* every open or dead row, due or not */
};

struct cpn_db_retry_stats {
        size_t resolved;  /* now in coupons (or found there) */
        size_t failed;    /* still failing, retried later */
        size_t dead;      /* failed its last allowed attempt */
        char last_error[256];
};

/* Retries up to @limit failed events of @topic (the coupon topic: other
 * products' events are theirs to retry) in one transaction (rows locked with
 * SKIP LOCKED: several workers share the work). Each is decoded and
 * persisted like a batch record; then marked resolved, or its attempts,
 * error and next_retry_at updated, or marked dead (after the policy's last
 * attempt; a dead row retried by an operator that fails again stays dead). Returns 0 or a negative
 * errno (transient ones as cpn_db_persist). */
int cpn_db_failed_retry(struct cpn_db *db, const char *topic, enum cpn_db_retry_which which, uint64_t id,
                        size_t limit, const struct cpn_db_retry_policy *pol, struct cpn_db_retry_stats *st,
                        struct cpn_error *err);

struct cpn_db_failed_row {
        uint64_t id;
        char topic[256];
        int32_t partition;
        int64_t offset;
        char campaign_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
        char status[16];
        unsigned attempts;
        char next_retry_at[40]; /* RFC 3339 or "" */
        char created_at[40];
        char error[512];
        char payload[512];      /* truncated to fit, NUL-terminated */
};

/* Calls @fn for failed events, newest first: @status "open", "dead",
 * "resolved" or NULL (all), @campaign_id or NULL, at most @limit. A
 * non-zero return of @fn stops the walk and is returned. */
int cpn_db_failed_each(struct cpn_db *db, const char *status, const char *campaign_id, size_t limit,
                       int (*fn)(const struct cpn_db_failed_row *row, void *ud), void *ud,
                       struct cpn_error *err);

/* ---- reconcile / rebuild ---- */

/* Calls @fn for each user holding a coupons row of @id (@failed false), or
 * each user of an open failed event of @id (@failed true; seq 0). */
int cpn_db_campaign_users_each(struct cpn_db *db, const char *id, bool failed,
                               int (*fn)(const char *user_id, int64_t seq, void *ud), void *ud,
                               struct cpn_error *err);
