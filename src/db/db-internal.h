#pragma once
/* Shared by the db module's files only: the connection and its helpers. */
#include <mysql.h>
#include <stdbool.h>

#include "cpn/db.h"

#define CPN_DB_CACHE_N 48

/* Bind buffers of a statement with many parameters, allocated on first use. */
struct cpn_db_scratch {
        MYSQL_BIND in[CPN_DB_PARAMS_MAX];
        MYSQL_TIME tin[CPN_DB_PARAMS_MAX];
        unsigned long lin[CPN_DB_PARAMS_MAX];
};

struct cpn_db {
        const struct cpn_db_url *url; /* borrowed: outlives every handle (main's) */
        long connect_ms, rw_ms;            /* libmysqlclient's, rounded up to seconds */
        MYSQL *m;                          /* NULL: not connected (or dropped after a connection error) */
        struct cpn_db_scratch *scratch;    /* owned */
        struct {                           /* cpn_db_run's statements, by the address of their SQL */
                const char *sql;
                MYSQL_STMT *st;
        } cache[CPN_DB_CACHE_N];
        bool in_tx;                        /* between cpn_db_begin and commit/rollback */
        unsigned last_errno;               /* of the last failure, for classification */
};

int cpn_db_ensure(struct cpn_db *db, struct cpn_error *err);
/* Closes the statements and the connection; the next call reconnects. */
void cpn_db_drop(struct cpn_db *db);
bool cpn_db_is_connection_error(unsigned e);
/* Worth retrying later with the same input: connection trouble, deadlock,
 * lock wait timeout, read-only server. */
bool cpn_db_is_transient(unsigned e);
/* Translates the last error of the connection: -EIO (connection lost; it is
 * dropped) or -EPROTO; the text in @err, the code in db->last_errno. */
int cpn_db_fail(struct cpn_db *db, struct cpn_error *err, const char *what);
int cpn_db_exec(struct cpn_db *db, const char *sql, struct cpn_error *err);
int cpn_db_query_row(struct cpn_db *db, const char *sql, MYSQL_RES **res_out, MYSQL_ROW *row_out,
                     struct cpn_error *err);
void cpn_db_fmt_dt(int64_t ms, char *buf, size_t n);
/* Unix ms as a DATETIME(3) in UTC, for a bound parameter. */
void cpn_db_to_time(int64_t ms, MYSQL_TIME *t);
int cpn_db_parse_dt(const char *s, int64_t *ms);
