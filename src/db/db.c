/*
 * MySQL/MariaDB behind domain calls. Only this file (and, later, the
 * worker's batch writer in this module) sees the libmysqlclient API.
 * Times are stored as DATETIME(3) in UTC and converted in C, so nothing
 * depends on the server's time zone or UNIX_TIMESTAMP's 2038 limit.
 */
#include <errno.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/db.h"
#include "cpn/log.h"
#include "cpn/url.h"

#include "db-internal.h"

struct cpn_embedded {
        const char *name;
        const char *text;
};
extern const struct cpn_embedded cpn_sql_files[];

/* ---- URL ---- */

int cpn_db_url_parse(struct cpn_db_url *out, const char *url, struct cpn_error *err) {
        struct cpn_url u;
        int r = cpn_url_parse(&u, url, err);

        memset(out, 0, sizeof(*out));
        out->port = 3306;
        if (r)
                return cpn_error_prefix(err, CPN_INVALID, "mysql url");
        if (strcmp(u.scheme, "mysql") != 0 && strcmp(u.scheme, "mariadb") != 0)
                return cpn_error_set(err, CPN_INVALID, "mysql url must start with mysql://");
        if (!u.host[0])
                return cpn_error_set(err, CPN_INVALID, "mysql url: missing host");
        if (!u.path[0])
                return cpn_error_set(err, CPN_INVALID, "mysql url: missing /database");
        if (!u.path[1] || strchr(u.path + 1, '/') ||
            snprintf(out->database, sizeof(out->database), "%s", u.path + 1) >= (int)sizeof(out->database))
                return cpn_error_set(err, CPN_INVALID, "mysql url: missing or bad database name");
        snprintf(out->host, sizeof(out->host), "%s", u.host);
        snprintf(out->user, sizeof(out->user), "%s", u.user);
        snprintf(out->password, sizeof(out->password), "%s", u.password);
        if (u.port)
                out->port = u.port;
        if (u.query[0] && (strncmp(u.query, "socket=", 7) != 0 ||
                           cpn_url_query_get(u.query, "socket", out->unix_path, sizeof(out->unix_path)) != 1 ||
                           strchr(u.query, '&')))
                return cpn_error_set(err, CPN_INVALID, "mysql url: only ?socket=PATH is understood");
        return 0;
}

/* ---- connection ---- */

int cpn_db_new(struct cpn_db **ret, const struct cpn_db_url *url, long connect_ms, long rw_ms) {
        struct cpn_db *db = calloc(1, sizeof(*db));

        if (!db)
                return -ENOMEM;
        db->url = url;
        db->connect_ms = connect_ms;
        db->rw_ms = rw_ms;
        *ret = db;
        return 0;
}

long cpn_db_rw_timeout_ms(const struct cpn_db *db) {
        return db->rw_ms;
}

bool cpn_db_connected(const struct cpn_db *db) {
        return db->m != NULL;
}

void cpn_db_drop(struct cpn_db *db) {
        /* Statements first: they belong to the connection. */
        for (size_t i = 0; i < CPN_DB_CACHE_N; i++)
                if (db->cache[i].st) {
                        mysql_stmt_close(db->cache[i].st);
                        db->cache[i].st = NULL;
                        db->cache[i].sql = NULL;
                }
        db->in_tx = false;
        if (db->m) {
                mysql_close(db->m);
                db->m = NULL;
        }
}

struct cpn_db *cpn_db_free(struct cpn_db *db) {
        if (db) {
                cpn_db_drop(db);
                free(db->scratch);
                free(db);
        }
        return NULL;
}

bool cpn_db_is_connection_error(unsigned e) {
        return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONN_HOST_ERROR ||
               e == CR_CONNECTION_ERROR || e == CR_UNKNOWN_HOST || e == ER_SERVER_SHUTDOWN ||
               e == CR_SERVER_LOST_EXTENDED || e == ER_CON_COUNT_ERROR;
}

bool cpn_db_is_transient(unsigned e) {
        return cpn_db_is_connection_error(e) || e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT ||
               e == ER_OPTION_PREVENTS_STATEMENT /* read-only during a failover */ ||
               e == ER_QUERY_INTERRUPTED || e == 1927 /* ER_CONNECTION_KILLED */ ||
               e == ER_CANT_LOCK || e == ER_OUT_OF_RESOURCES;
}

int cpn_db_fail(struct cpn_db *db, struct cpn_error *err, const char *what) {
        unsigned e = mysql_errno(db->m);
        int r = cpn_db_is_connection_error(e) ? -EIO : -EPROTO;

        db->last_errno = e;

        cpn_error_set(err, r, "mysql %s: %s (%u)", what, mysql_error(db->m), e);
        if (r == -EIO)
                cpn_db_drop(db);
        return r;
}

void cpn_db_drop_if_closed(struct cpn_db *db) {
        struct pollfd p;

        if (!db->m)
                return;
        /* Idle between statements, a connection the server closed (a
         * restart, wait_timeout, KILL) is readable or hung up. */
        p = (struct pollfd){ .fd = (int)mysql_get_socket(db->m), .events = POLLIN | POLLRDHUP };
        if (p.fd >= 0 && poll(&p, 1, 0) != 0) {
                cpn_log_debug("mysql: a kept connection was closed by the server; it is replaced");
                cpn_db_drop(db);
        }
}

int cpn_db_ensure(struct cpn_db *db, struct cpn_error *err) {
        /* libmysqlclient's timeouts are whole seconds. */
        unsigned tmo = (unsigned)((db->connect_ms + 999) / 1000);
        unsigned rw = (unsigned)((db->rw_ms + 999) / 1000);
        my_bool off = 0;

        if (db->m)
                return 0;
        db->m = mysql_init(NULL);
        if (!db->m)
                return cpn_error_set(err, -ENOMEM, "mysql: cannot allocate a handle");
        mysql_options(db->m, MYSQL_OPT_CONNECT_TIMEOUT, &tmo);
        mysql_options(db->m, MYSQL_OPT_READ_TIMEOUT, &rw);
        mysql_options(db->m, MYSQL_OPT_WRITE_TIMEOUT, &rw);
        mysql_options(db->m, MYSQL_OPT_RECONNECT, &off); /* we reconnect ourselves, visibly */
        mysql_options(db->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(db->m, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
        if (!mysql_real_connect(db->m, db->url->unix_path[0] ? NULL : db->url->host, db->url->user,
                                db->url->password, db->url->database, (unsigned)db->url->port,
                                db->url->unix_path[0] ? db->url->unix_path : NULL, 0)) {
                cpn_error_set(err, -EIO, "mysql %s:%d: %s", db->url->host, db->url->port, mysql_error(db->m));
                cpn_db_drop(db);
                return -EIO;
        }
        return 0;
}

/* Runs @sql, discarding any results (several statements only on a
 * connection in multi-statement mode: migrations). */
int cpn_db_exec(struct cpn_db *db, const char *sql, struct cpn_error *err) {
        int r = cpn_db_ensure(db, err), st;

        if (r)
                return r;
        if (mysql_query(db->m, sql))
                return cpn_db_fail(db, err, "query");
        do {
                MYSQL_RES *res = mysql_store_result(db->m);

                if (res)
                        mysql_free_result(res);
                else if (mysql_field_count(db->m) != 0)
                        return cpn_db_fail(db, err, "result");
                st = mysql_next_result(db->m);
                if (st > 0)
                        return cpn_db_fail(db, err, "statement");
        } while (st == 0);
        return 0;
}

/* Runs a query whose result is at most one row; *row_out is NULL if none.
 * The caller frees *res_out. */
int cpn_db_query_row(struct cpn_db *db, const char *sql, MYSQL_RES **res_out, MYSQL_ROW *row_out,
                     struct cpn_error *err) {
        int r = cpn_db_ensure(db, err);

        if (r)
                return r;
        if (mysql_query(db->m, sql))
                return cpn_db_fail(db, err, "query");
        *res_out = mysql_store_result(db->m);
        if (!*res_out)
                return cpn_db_fail(db, err, "result");
        *row_out = mysql_fetch_row(*res_out);
        return 0;
}

int cpn_db_ping(struct cpn_db *db, struct cpn_error *err) {
        int r = cpn_db_ensure(db, err);

        if (r)
                return r;
        if (mysql_ping(db->m))
                return cpn_db_fail(db, err, "ping");
        return 0;
}

/* ---- time conversion ---- */

void cpn_db_fmt_dt(int64_t ms, char *buf, size_t n) {
        char iso[40];

        cpn_time_format(ms, iso, sizeof(iso));
        /* "2026-11-21T10:00:00.123Z" -> "2026-11-21 10:00:00.123" */
        iso[10] = ' ';
        iso[strlen(iso) - 1] = '\0';
        snprintf(buf, n, "%s", iso);
}

int cpn_db_parse_dt(const char *s, int64_t *ms) {
        char iso[48];

        if (!s || strlen(s) < 19 || strlen(s) > 30)
                return -EINVAL;
        snprintf(iso, sizeof(iso), "%sZ", s);
        iso[10] = 'T';
        return cpn_time_parse(iso, ms);
}

/* ---- migrations ---- */

int cpn_db_migrate(struct cpn_db *db, FILE *out, struct cpn_error *err) {
        MYSQL_RES *res;
        MYSQL_ROW row;
        char sql[512];
        int r;

        r = cpn_db_query_row(db, "SELECT GET_LOCK('coupon_migrate', 30)", &res, &row, err);
        if (r)
                return r;
        r = row && row[0] && strcmp(row[0], "1") == 0 ? 0 : -EBUSY;
        mysql_free_result(res);
        if (r)
                return cpn_error_set(err, r, "mysql: another migrate holds the lock");
        /* Migration files hold several statements; nothing else may (a
         * connection that accepts them turns one injected quote into any
         * statement), so only this connection, only for now. */
        if (mysql_set_server_option(db->m, MYSQL_OPTION_MULTI_STATEMENTS_ON))
                return cpn_db_fail(db, err, "multi-statement mode");
        r = cpn_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(128) NOT NULL,"
                     " applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))"
                     " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin", err);
        for (const struct cpn_embedded *f = cpn_sql_files; r == 0 && f->name; f++) {
                unsigned version = (unsigned)strtoul(f->name, NULL, 10);
                bool applied;

                snprintf(sql, sizeof(sql), "SELECT 1 FROM schema_migrations WHERE version = %u", version);
                r = cpn_db_query_row(db, sql, &res, &row, err);
                if (r)
                        break;
                applied = row != NULL;
                mysql_free_result(res);
                if (applied)
                        continue;
                r = cpn_db_exec(db, f->text, err);
                if (r) {
                        cpn_error_prefix(err, r, "migration %s", f->name);
                        break;
                }
                snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations (version, name) VALUES (%u, '%s')",
                         version, f->name);
                r = cpn_db_exec(db, sql, err);
                if (r == 0 && out)
                        fprintf(out, "applied %s\n", f->name);
        }
        if (db->m) {
                (void)mysql_set_server_option(db->m, MYSQL_OPTION_MULTI_STATEMENTS_OFF);
                (void)mysql_query(db->m, "DO RELEASE_LOCK('coupon_migrate')");
        }
        return r;
}
