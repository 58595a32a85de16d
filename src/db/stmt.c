/*
 * Prepared statements cached per connection, with typed parameters and
 * columns, and transactions: what the products' SQL is written with (db.h).
 * Nothing here knows a table.
 */
#include <errno.h>
#include <errmsg.h>
#include <pthread.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"

/* The statement's error: see cpn_db_run for the codes. */
static int stmt_error(struct cpn_db *db, MYSQL_STMT *st, struct cpn_error *err) {
        unsigned e = mysql_stmt_errno(st);
        int r;

        db->last_errno = e;
        if (e == ER_DUP_ENTRY || e == ER_DUP_KEY)
                r = CPN_DB_DUPLICATE;
        else if (cpn_db_is_connection_error(e))
                r = -EIO;
        else if (cpn_db_is_transient(e))
                r = -EAGAIN;
        else
                r = -EPROTO;
        cpn_error_set(err, r, "mysql: %s (%u)", mysql_stmt_error(st), e);
        if (r == -EIO)
                cpn_db_drop(db);
        else if (r == -EAGAIN && db->in_tx)
                cpn_db_rollback(db); /* some (a lock wait timeout) roll back only the statement */
        return r;
}

/* The cached statement of @sql, prepared on first use on this connection. */
static int prepared(struct cpn_db *db, const char *sql, MYSQL_STMT **out, struct cpn_error *err) {
        size_t free_slot = CPN_DB_CACHE_N;
        MYSQL_STMT *st;
        int r;

        r = cpn_db_ensure(db, err);
        if (r)
                return r;
        for (size_t i = 0; i < CPN_DB_CACHE_N; i++) {
                if (db->cache[i].sql == sql) {
                        *out = db->cache[i].st;
                        return 0;
                }
                if (!db->cache[i].sql && free_slot == CPN_DB_CACHE_N)
                        free_slot = i;
        }
        if (free_slot == CPN_DB_CACHE_N)
                return cpn_error_set(err, -ENOBUFS, "mysql: more than %d distinct statements", CPN_DB_CACHE_N);
        st = mysql_stmt_init(db->m);
        if (!st)
                return cpn_error_set(err, -ENOMEM, "mysql: cannot allocate a statement");
        if (mysql_stmt_prepare(st, sql, strlen(sql))) {
                r = stmt_error(db, st, err);
                mysql_stmt_close(st);
                return r;
        }
        db->cache[free_slot].sql = sql;
        db->cache[free_slot].st = st;
        *out = st;
        return 0;
}

void cpn_db_to_time(int64_t ms, MYSQL_TIME *t) {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;

        gmtime_r(&s, &tm);
        memset(t, 0, sizeof(*t));
        t->year = (unsigned)tm.tm_year + 1900;
        t->month = (unsigned)tm.tm_mon + 1;
        t->day = (unsigned)tm.tm_mday;
        t->hour = (unsigned)tm.tm_hour;
        t->minute = (unsigned)tm.tm_min;
        t->second = (unsigned)tm.tm_sec;
        t->second_part = (unsigned long)(ms % 1000) * 1000;
        t->time_type = MYSQL_TIMESTAMP_DATETIME;
}

static int64_t from_time(const MYSQL_TIME *t) {
        struct tm tm = { .tm_year = (int)t->year - 1900, .tm_mon = (int)t->month - 1, .tm_mday = (int)t->day,
                         .tm_hour = (int)t->hour, .tm_min = (int)t->minute, .tm_sec = (int)t->second };

        return (int64_t)timegm(&tm) * 1000 + (int64_t)(t->second_part / 1000);
}

/* Bind buffers of one call, on the caller's stack; the parameters of a
 * statement with more than CPN_DB_VALS_MAX go to the connection's scratch. */
struct binds {
        MYSQL_BIND in_small[CPN_DB_VALS_MAX], out[CPN_DB_VALS_MAX];
        MYSQL_TIME tin_small[CPN_DB_VALS_MAX], tout[CPN_DB_VALS_MAX];
        long long iout[CPN_DB_VALS_MAX];
        unsigned long lin_small[CPN_DB_VALS_MAX], lout[CPN_DB_VALS_MAX];
        my_bool nout[CPN_DB_VALS_MAX];
        MYSQL_BIND *in;
        MYSQL_TIME *tin;
        unsigned long *lin;
};

static int bind_in(struct cpn_db *db, struct binds *b, const struct cpn_db_val *in, size_t n,
                   struct cpn_error *err) {
        if (n <= CPN_DB_VALS_MAX) {
                b->in = b->in_small;
                b->tin = b->tin_small;
                b->lin = b->lin_small;
        } else {
                /* Owned by @db, freed with it: only batch writers need it. */
                if (!db->scratch && !(db->scratch = calloc(1, sizeof(*db->scratch))))
                        return cpn_error_set(err, -ENOMEM, "out of memory");
                b->in = db->scratch->in;
                b->tin = db->scratch->tin;
                b->lin = db->scratch->lin;
        }
        memset(b->in, 0, n * sizeof(*b->in));
        for (size_t i = 0; i < n; i++) {
                MYSQL_BIND *x = &b->in[i];

                switch (in[i].type) {
                case CPN_DB_INT:
                        x->buffer_type = MYSQL_TYPE_LONGLONG;
                        x->buffer = (void *)&in[i].i;
                        break;
                case CPN_DB_TEXT:
                        if (!in[i].s) {
                                x->buffer_type = MYSQL_TYPE_NULL;
                                break;
                        }
                        b->lin[i] = (unsigned long)strlen(in[i].s);
                        x->buffer_type = MYSQL_TYPE_STRING;
                        x->buffer = (void *)in[i].s;
                        x->buffer_length = b->lin[i];
                        x->length = &b->lin[i];
                        break;
                case CPN_DB_BLOB:
                        if (!in[i].s) {
                                x->buffer_type = MYSQL_TYPE_NULL;
                                break;
                        }
                        b->lin[i] = (unsigned long)in[i].len;
                        x->buffer_type = MYSQL_TYPE_BLOB;
                        x->buffer = (void *)in[i].s;
                        x->buffer_length = b->lin[i];
                        x->length = &b->lin[i];
                        break;
                case CPN_DB_TIME:
                        cpn_db_to_time(in[i].i, &b->tin[i]);
                        x->buffer_type = MYSQL_TYPE_DATETIME;
                        x->buffer = &b->tin[i];
                        break;
                default:
                        x->buffer_type = MYSQL_TYPE_NULL;
                        break;
                }
        }
        return 0;
}

static void bind_out(struct binds *b, struct cpn_db_val *out, size_t n) {
        memset(b->out, 0, sizeof(b->out));
        for (size_t i = 0; i < n; i++) {
                MYSQL_BIND *x = &b->out[i];

                x->is_null = &b->nout[i];
                x->length = &b->lout[i];
                switch (out[i].type) {
                case CPN_DB_TEXT:
                case CPN_DB_BLOB:
                        x->buffer_type = MYSQL_TYPE_STRING;
                        x->buffer = out[i].buf;
                        x->buffer_length = out[i].cap ? (unsigned long)out[i].cap - 1 : 0;
                        break;
                case CPN_DB_TIME:
                        x->buffer_type = MYSQL_TYPE_DATETIME;
                        x->buffer = &b->tout[i];
                        break;
                default:
                        x->buffer_type = MYSQL_TYPE_LONGLONG;
                        x->buffer = &b->iout[i];
                        break;
                }
        }
}

/* Copies the fetched row into @out. */
static void take_row(struct binds *b, struct cpn_db_val *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                out[i].null = b->nout[i];
                out[i].i = 0;
                switch (out[i].type) {
                case CPN_DB_TEXT:
                case CPN_DB_BLOB:
                        out[i].len = b->nout[i] ? 0 : b->lout[i];
                        if (out[i].cap)
                                out[i].buf[out[i].len < out[i].cap ? out[i].len : out[i].cap - 1] = '\0';
                        break;
                case CPN_DB_TIME:
                        if (!b->nout[i])
                                out[i].i = from_time(&b->tout[i]);
                        break;
                default:
                        if (!b->nout[i])
                                out[i].i = b->iout[i];
                        break;
                }
        }
}

/* Prepares, binds and executes; on success with a result set, binds @out. */
static int execute(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                   struct cpn_db_val *out, size_t n_out, struct binds *b, MYSQL_STMT **stp, bool *rows,
                   uint64_t *affected, struct cpn_error *err) {
        MYSQL_STMT *st = NULL;
        MYSQL_RES *meta;
        int r;

        if (n_in > CPN_DB_PARAMS_MAX || n_out > CPN_DB_VALS_MAX)
                return cpn_error_set(err, -EINVAL, "mysql: more than %d parameters or %d columns",
                                     CPN_DB_PARAMS_MAX, CPN_DB_VALS_MAX);
        r = prepared(db, sql, &st, err);
        if (r)
                return r;
        if (mysql_stmt_param_count(st) != n_in)
                return cpn_error_set(err, -EINVAL, "mysql: statement takes %lu parameters, %zu given",
                                     mysql_stmt_param_count(st), n_in);
        r = bind_in(db, b, in, n_in, err);
        if (r)
                return r;
        if ((n_in && mysql_stmt_bind_param(st, b->in)) || mysql_stmt_execute(st))
                return stmt_error(db, st, err);
        meta = mysql_stmt_result_metadata(st);
        *rows = meta != NULL;
        if (meta) {
                mysql_free_result(meta);
                if (mysql_stmt_field_count(st) != n_out) {
                        mysql_stmt_free_result(st);
                        return cpn_error_set(err, -EINVAL, "mysql: statement gives %u columns, %zu asked",
                                             mysql_stmt_field_count(st), n_out);
                }
                bind_out(b, out, n_out);
                if (n_out && mysql_stmt_bind_result(st, b->out)) {
                        r = stmt_error(db, st, err);
                        mysql_stmt_free_result(st);
                        return r;
                }
        } else if (affected) {
                *affected = (uint64_t)mysql_stmt_affected_rows(st);
        }
        *stp = st;
        return 0;
}

int cpn_db_run(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
               struct cpn_db_val *out, size_t n_out, uint64_t *affected, struct cpn_error *err) {
        struct binds b;
        MYSQL_STMT *st = NULL;
        bool rows = false;
        int r, f;

        if (affected)
                *affected = 0;
        r = execute(db, sql, in, n_in, out, n_out, &b, &st, &rows, affected, err);
        if (r || !rows)
                return r;
        f = mysql_stmt_fetch(st);
        if (f == 0 || f == MYSQL_DATA_TRUNCATED)
                take_row(&b, out, n_out);
        else if (f == MYSQL_NO_DATA)
                r = CPN_DB_NO_ROW;
        else
                r = stmt_error(db, st, err);
        if (db->m)
                mysql_stmt_free_result(st);
        return r;
}

int cpn_db_each(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                struct cpn_db_val *out, size_t n_out, int (*fn)(const struct cpn_db_val *out, void *ud), void *ud,
                struct cpn_error *err) {
        struct binds b;
        MYSQL_STMT *st = NULL;
        bool rows = false;
        int r;

        r = execute(db, sql, in, n_in, out, n_out, &b, &st, &rows, NULL, err);
        if (r || !rows)
                return r;
        /* All rows first: @fn may run statements of its own on this connection. */
        if (mysql_stmt_store_result(st)) {
                r = stmt_error(db, st, err);
                goto done;
        }
        for (;;) {
                int f = mysql_stmt_fetch(st);

                if (f == MYSQL_NO_DATA)
                        break;
                if (f != 0 && f != MYSQL_DATA_TRUNCATED) {
                        r = stmt_error(db, st, err);
                        break;
                }
                take_row(&b, out, n_out);
                r = fn(out, ud);
                if (r)
                        break;
        }
done:
        if (db->m)
                mysql_stmt_free_result(st);
        return r;
}

int cpn_db_stream(struct cpn_db *db, const char *sql, const struct cpn_db_val *in, size_t n_in,
                  struct cpn_db_val *out, size_t n_out, int (*fn)(const struct cpn_db_val *out, void *ud),
                  void *ud, struct cpn_error *err) {
        struct binds b;
        MYSQL_STMT *st = NULL;
        bool rows = false;
        int r, f;

        r = execute(db, sql, in, n_in, out, n_out, &b, &st, &rows, NULL, err);
        if (r || !rows)
                return r;
        /* No store_result: each fetch reads on from the server. */
        while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
                if (r)
                        continue; /* read to the end: the connection must be left clean */
                take_row(&b, out, n_out);
                r = fn(out, ud);
        }
        if (f != MYSQL_NO_DATA && r == 0)
                r = stmt_error(db, st, err);
        if (db->m)
                mysql_stmt_free_result(st);
        return r;
}

static int savepoint_sql(struct cpn_db *db, const char *verb, const char *name, struct cpn_error *err) {
        char sql[96];
        size_t n = strlen(name);

        if (n == 0 || n > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz_") != n)
                return cpn_error_set(err, -EINVAL, "mysql: bad savepoint name");
        if (!db->m || !db->in_tx)
                return cpn_error_set(err, -EIO, "mysql: no transaction open for a savepoint");
        snprintf(sql, sizeof(sql), "%s %s", verb, name);
        if (mysql_query(db->m, sql)) {
                int r = cpn_db_fail(db, err, "savepoint");

                if (r != -EIO && cpn_db_is_transient(db->last_errno)) {
                        cpn_db_rollback(db);
                        r = -EAGAIN;
                }
                return r;
        }
        return 0;
}

int cpn_db_savepoint(struct cpn_db *db, const char *name, struct cpn_error *err) {
        return savepoint_sql(db, "SAVEPOINT", name, err);
}

int cpn_db_savepoint_undo(struct cpn_db *db, const char *name, struct cpn_error *err) {
        return savepoint_sql(db, "ROLLBACK TO SAVEPOINT", name, err);
}

/* ---- multi-row INSERTs ---- */

static pthread_mutex_t rows_mu = PTHREAD_MUTEX_INITIALIZER; /* builds statement texts */

static size_t chunk_of(const struct cpn_db_rows *rows, size_t k) {
        static const size_t fixed[CPN_DB_ROWS_CHUNKS] = { 0, 32, 4, 1 };

        return k == 0 ? rows->max_rows : fixed[k];
}

/* The text of chunk @k (NULL: out of memory), built once. */
static const char *rows_sql(struct cpn_db_rows *rows, size_t k) {
        char *q = atomic_load_explicit(&rows->sql[k], memory_order_acquire);
        size_t m = chunk_of(rows, k), hl, rl, tl;

        if (q)
                return q;
        pthread_mutex_lock(&rows_mu);
        q = atomic_load_explicit(&rows->sql[k], memory_order_relaxed);
        hl = strlen(rows->head);
        rl = strlen(rows->row);
        tl = strlen(rows->tail);
        if (!q && (q = malloc(hl + m * (rl + 1) + tl + 1)) != NULL) {
                char *p = q;

                memcpy(p, rows->head, hl);
                p += hl;
                for (size_t i = 0; i < m; i++) {
                        if (i)
                                *p++ = ',';
                        memcpy(p, rows->row, rl);
                        p += rl;
                }
                memcpy(p, rows->tail, tl + 1);
                /* lives as long as the program: the statement cache keys on it */
                atomic_store_explicit(&rows->sql[k], q, memory_order_release);
        }
        pthread_mutex_unlock(&rows_mu);
        return q;
}

int cpn_db_insert_rows(struct cpn_db *db, struct cpn_db_rows *rows, size_t n, cpn_db_row_fn *fill, void *ud,
                       struct cpn_db_val *vals, uint64_t *affected, struct cpn_error *err) {
        size_t done = 0;

        if (affected)
                *affected = 0;
        if (rows->max_rows < 32 || rows->max_rows * rows->row_params > CPN_DB_PARAMS_MAX)
                return cpn_error_set(err, -EINVAL, "mysql: %zu rows of %zu parameters in one statement",
                                     rows->max_rows, rows->row_params);
        while (done < n) {
                size_t k = 0, m;
                uint64_t wrote = 0;
                const char *sql;
                int r;

                while (chunk_of(rows, k) > n - done)
                        k++;
                m = chunk_of(rows, k);
                sql = rows_sql(rows, k);
                if (!sql)
                        return cpn_error_set(err, -ENOMEM, "out of memory");
                for (size_t i = 0; i < m; i++)
                        fill(done + i, &vals[i * rows->row_params], ud);
                r = cpn_db_run(db, sql, vals, m * rows->row_params, NULL, 0, &wrote, err);
                if (r)
                        return r;
                if (affected)
                        *affected += wrote;
                done += m;
        }
        return 0;
}

int cpn_db_begin(struct cpn_db *db, struct cpn_error *err) {
        int r = cpn_db_ensure(db, err);

        if (r)
                return r;
        if (mysql_query(db->m, "START TRANSACTION"))
                return cpn_db_fail(db, err, "start transaction");
        db->in_tx = true;
        return 0;
}

int cpn_db_commit(struct cpn_db *db, struct cpn_error *err) {
        if (!db->m)
                return cpn_error_set(err, -EIO, "mysql: the connection was lost during the transaction");
        if (!mysql_commit(db->m)) {
                db->in_tx = false;
                return 0;
        }
        cpn_db_fail(db, err, "commit");
        /* Whether it committed is not known: never reuse this connection. */
        cpn_db_drop(db);
        return -EIO;
}

void cpn_db_rollback(struct cpn_db *db) {
        if (db->m && db->in_tx && mysql_rollback(db->m))
                cpn_db_drop(db);
        db->in_tx = false;
}
