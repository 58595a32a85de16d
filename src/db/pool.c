/*
 * A small bounded pool of MySQL connections for coupon-api's request
 * threads, with a breaker: see the block in db.h. The pool owns every
 * struct cpn_db in it; a borrower has one until it puts it back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/clock.h"
#include "cpn/log.h"

#include "db-internal.h"

#define PROBE_EVERY_MS 1000

struct cpn_db_pool {
        size_t size;
        struct cpn_db **conns;     /* all of them; owned */
        struct cpn_db **idle;      /* a stack of free ones, under mu */
        size_t nidle;
        pthread_mutex_t mu;
        pthread_cond_t cv;         /* a connection was put back; CLOCK_MONOTONIC */
        bool down;                 /* under mu: MySQL not answering, borrowers refused */
        char down_why[200];        /* under mu */
        int64_t down_since_ms;     /* under mu */

        /* The watcher: its own connection, pings while up, probes while down. */
        bool watch, stop;          /* stop under mu */
        pthread_cond_t stop_cv;    /* CLOCK_MONOTONIC */
        pthread_t thread;
        struct cpn_db *probe;

        _Atomic uint64_t busy_timeouts, refused;
};

static void set_down(struct cpn_db_pool *p, const char *why) {
        bool was;

        pthread_mutex_lock(&p->mu);
        was = p->down;
        if (!was) {
                p->down = true;
                p->down_since_ms = cpn_mono_ms();
        }
        snprintf(p->down_why, sizeof(p->down_why), "%.199s", why);
        pthread_mutex_unlock(&p->mu);
        if (!was)
                cpn_log_warn("mysql: %s; reads answer without MySQL and creates are refused (503) until it "
                             "answers again", why);
}

static void set_up(struct cpn_db_pool *p) {
        bool was;
        int64_t since;

        pthread_mutex_lock(&p->mu);
        was = p->down;
        since = p->down_since_ms;
        p->down = false;
        pthread_mutex_unlock(&p->mu);
        if (was)
                cpn_log_warn("mysql: answers again after %.1f s", (double)(cpn_mono_ms() - since) / 1000.0);
}

static void *watch_main(void *arg) {
        struct cpn_db_pool *p = arg;

        pthread_mutex_lock(&p->mu);
        while (!p->stop) {
                struct cpn_error err = { { 0 } };

                pthread_mutex_unlock(&p->mu);
                cpn_db_drop_if_closed(p->probe);
                if (cpn_db_ping(p->probe, &err) == 0)
                        set_up(p);
                else
                        set_down(p, err.msg);
                pthread_mutex_lock(&p->mu);
                cpn_cond_nap(&p->stop_cv, &p->mu, PROBE_EVERY_MS, &p->stop);
        }
        pthread_mutex_unlock(&p->mu);
        return NULL;
}

int cpn_db_pool_new(struct cpn_db_pool **ret, const struct cpn_db_url *url, size_t size, long connect_ms,
                    long rw_ms, bool watch, struct cpn_error *err) {
        struct cpn_db_pool *p = calloc(1, sizeof(*p));
        int r = 0;

        if (!p)
                return cpn_error_set(err, -ENOMEM, "mysql pool: out of memory");
        p->size = size;
        p->conns = calloc(size, sizeof(*p->conns));
        p->idle = calloc(size, sizeof(*p->idle));
        pthread_mutex_init(&p->mu, NULL);
        cpn_cond_init_monotonic(&p->cv);
        cpn_cond_init_monotonic(&p->stop_cv);
        if (!p->conns || !p->idle)
                r = -ENOMEM;
        for (size_t i = 0; !r && i < size; i++) {
                r = cpn_db_new(&p->conns[i], url, connect_ms, rw_ms);
                if (!r)
                        p->idle[p->nidle++] = p->conns[i];
        }
        if (!r && watch) {
                r = cpn_db_new(&p->probe, url, connect_ms, rw_ms);
                if (!r)
                        r = -pthread_create(&p->thread, NULL, watch_main, p);
                if (!r) {
                        p->watch = true;
                        pthread_setname_np(p->thread, "cpn:mysql-watch");
                }
        }
        if (r) {
                cpn_db_pool_free(p);
                return cpn_error_set(err, r, "mysql pool: cannot set up (%s)", strerror(-r));
        }
        *ret = p;
        return 0;
}

struct cpn_db_pool *cpn_db_pool_free(struct cpn_db_pool *p) {
        if (!p)
                return NULL;
        if (p->watch) {
                pthread_mutex_lock(&p->mu);
                p->stop = true;
                pthread_cond_signal(&p->stop_cv);
                pthread_mutex_unlock(&p->mu);
                pthread_join(p->thread, NULL);
        }
        cpn_db_free(p->probe);
        for (size_t i = 0; p->conns && i < p->size; i++)
                cpn_db_free(p->conns[i]);
        free(p->conns);
        free(p->idle);
        pthread_cond_destroy(&p->cv);
        pthread_cond_destroy(&p->stop_cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
}

/* Takes an idle connection, waiting up to @wait_ms. */
static int take(struct cpn_db_pool *p, long wait_ms, struct cpn_db **db, struct cpn_error *err) {
        struct timespec dl;
        int r = 0;

        cpn_deadline_in(&dl, wait_ms);
        pthread_mutex_lock(&p->mu);
        while (!p->down && p->nidle == 0 && r == 0)
                r = pthread_cond_timedwait(&p->cv, &p->mu, &dl);
        if (p->down) {
                cpn_error_set(err, -EIO, "mysql not answering (%s); not asked", p->down_why);
                pthread_mutex_unlock(&p->mu);
                atomic_fetch_add_explicit(&p->refused, 1, memory_order_relaxed);
                return -EIO;
        }
        if (p->nidle == 0) {
                pthread_mutex_unlock(&p->mu);
                atomic_fetch_add_explicit(&p->busy_timeouts, 1, memory_order_relaxed);
                return cpn_error_set(err, -EBUSY, "mysql pool: all %zu connections busy for %ld ms", p->size,
                                     wait_ms);
        }
        *db = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return 0;
}

static void give_back(struct cpn_db_pool *p, struct cpn_db *db) {
        pthread_mutex_lock(&p->mu);
        p->idle[p->nidle++] = db;
        pthread_mutex_unlock(&p->mu);
        pthread_cond_signal(&p->cv);
}

int cpn_db_pool_run(struct cpn_db_pool *p, long wait_ms, int (*fn)(struct cpn_db *db, void *ud), void *ud,
                    struct cpn_error *err) {
        struct cpn_db *db = NULL;
        int r = take(p, wait_ms, &db, err);

        if (r)
                return r;
        for (int attempt = 0;; attempt++) {
                bool kept;
                int64_t t0;

                cpn_db_drop_if_closed(db);
                kept = cpn_db_connected(db);
                t0 = cpn_mono_ms();
                r = fn(db, ud);
                if (r != -EIO)
                        break;
                /* A kept connection that fails at once was dead already (its
                 * server restarted between our check and the statement): once
                 * more on a new one. A failure that took long, or one on a new
                 * connection, means MySQL is not answering: trip. */
                if (attempt == 0 && kept && cpn_mono_ms() - t0 < cpn_db_rw_timeout_ms(db) / 2) {
                        cpn_log_debug("mysql: %s, on a kept connection: once more on a new one", err ? err->msg : "");
                        continue;
                }
                if (p->watch)
                        set_down(p, err && err->msg[0] ? err->msg : "connection failed");
                break;
        }
        give_back(p, db);
        return r;
}

void cpn_db_pool_stats(struct cpn_db_pool *p, struct cpn_db_pool_stats *out) {
        pthread_mutex_lock(&p->mu);
        out->size = p->size;
        out->in_use = p->size - p->nidle;
        out->down = p->down;
        pthread_mutex_unlock(&p->mu);
        out->busy_timeouts = atomic_load_explicit(&p->busy_timeouts, memory_order_relaxed);
        out->refused = atomic_load_explicit(&p->refused, memory_order_relaxed);
}
