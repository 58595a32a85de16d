/*
 * The pipe: script calls of many threads over one Redis connection (see
 * store.h). Request threads queue their calls; one thread (the pipe's)
 * takes everything queued, writes it as one pipelined batch on its own
 * connection, reads the answers in order and hands each to its call's
 * done() callback. A call is its caller's memory; the pipe touches it no
 * more once done() has returned.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/clock.h"
#include "cpn/log.h"
#include "store-internal.h"

#define PIPE_BATCH_MAX 512
#define PIPE_READ_BUF 16384
#define PIPE_PROBE_MS 100

struct cpn_redis_pipe {
        struct cpn_redis *r;        /* owned; touched by the pipe thread only */
        char *buf;                  /* PIPE_READ_BUF bytes; the pipe thread's */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;          /* the pipe thread waits here for calls; CLOCK_MONOTONIC */
        struct cpn_redis_call *head, **tail; /* queued calls, under mu */
        bool stop, idle;            /* under mu */
        bool down;                  /* under mu; set and cleared by the pipe thread */
        char down_why[200];         /* under mu: why it is down */
        struct timespec down_since; /* the pipe thread's */
        _Atomic uint64_t batches, calls, asked_again, refused;
};

/* Hands the answer to the call's owner; @c is not ours after this. */
static void call_done(struct cpn_redis_call *c, int ret) {
        c->done(c, ret, NULL, 0);
}

/* A reply for @c: its items to done(). */
static int answer_items(const struct cpn_redis_item *items, size_t n, void *ud) {
        struct cpn_redis_call *c = ud;

        c->done(c, 0, items, n);
        return 0;
}

/* Answers calls never sent while the pipe is down. */
static void refuse(struct cpn_redis_pipe *p, struct cpn_redis_call *list, const char *why) {
        for (struct cpn_redis_call *c = list, *next; c; c = next) {
                next = c->next;
                atomic_fetch_add_explicit(&p->refused, 1, memory_order_relaxed);
                call_done(c, cpn_error_set(c->err, -EIO, "redis not answering (%s); not sent", why));
        }
}

/* Redis is not answering: refuse calls until a probe works. Those queued
 * now are refused at once, not after the batch in hand has gone through
 * its second attempt. Pipe thread. */
static void trip(struct cpn_redis_pipe *p, const char *why) {
        struct cpn_redis_call *queued;
        bool was;

        pthread_mutex_lock(&p->mu);
        was = p->down;
        p->down = true;
        snprintf(p->down_why, sizeof(p->down_why), "%.199s", why);
        queued = p->head;
        p->head = NULL;
        p->tail = &p->head;
        pthread_mutex_unlock(&p->mu);
        if (!was) {
                clock_gettime(CLOCK_MONOTONIC, &p->down_since);
                cpn_log_warn("redis pipe: %s; its calls are refused (503) until Redis answers again", why);
        }
        refuse(p, queued, why);
}

/* The attempt failed without an answer after the script went out: ask
 * again once, else the outcome is unknown. Returns true if @c is to be
 * queued again. */
static bool call_lost(struct cpn_redis_pipe *p, struct cpn_redis_call *c, const char *why) {
        if (!c->ask_again) {
                call_done(c, cpn_error_set(c->err, CPN_UNKNOWN, "redis EVALSHA %s: %.200s", c->script, why));
                return false;
        }
        if (!c->asked_again) {
                c->asked_again = true;
                atomic_fetch_add_explicit(&p->asked_again, 1, memory_order_relaxed);
                cpn_error_set(&c->first, -EIO, "redis EVALSHA: %s", why);
                return true;
        }
        call_done(c, cpn_error_set(c->err, CPN_UNKNOWN, "%.200s; asking again: redis EVALSHA: %.200s",
                                   c->first.msg, why));
        return false;
}

/* Answers every call of @list, none of which went out on this pass: @ret
 * (@why), except that a call already asked again stays unknown. */
static void unsent(struct cpn_redis_call *list, int ret, const char *why) {
        for (struct cpn_redis_call *c = list, *next; c; c = next) {
                next = c->next;
                if (c->asked_again)
                        call_done(c, cpn_error_set(c->err, CPN_UNKNOWN, "%.200s; asking again: %.200s", c->first.msg,
                                                   why));
                else
                        call_done(c, cpn_error_set(c->err, ret, "%s", why));
        }
}

/* Runs one pass over @list on the pipe's connection. Calls that
 * must go again are linked into *@again; every other call is answered. */
static void pipe_pass(struct cpn_redis_pipe *p, struct cpn_redis_call *list, struct cpn_redis_call **again) {
        struct cpn_redis *r = p->r;
        struct cpn_redis_call *c, *next, **again_tail = again;
        struct cpn_error err = { { 0 } };
        const char *why = NULL;
        int ret;

#define AGAIN(call)                          \
        do {                                 \
                (call)->next = NULL;         \
                *again_tail = (call);        \
                again_tail = &(call)->next;  \
        } while (0)

        *again = NULL;
        ret = cpn_redis_ensure(r, &err);
        if (ret) {
                if (ret == -EIO)
                        trip(p, err.msg);
                unsent(list, ret, err.msg);
                return;
        }
        /* Every script of the batch loaded on this connection first: a
         * load that fails is an answer for the whole batch, nothing sent. */
        for (c = list; c && !ret; c = c->next)
                if (!r->sha[c->script_idx][0])
                        ret = cpn_redis_script_load(r, c->script_idx, &err);
        if (ret) {
                if (ret == -EIO)
                        trip(p, err.msg);
                unsent(list, ret, err.msg);
                cpn_redis_drop(r);
                return;
        }
        for (c = list; c; c = c->next) {
                const char *argv[3 + CPN_REDIS_KV_MAX];
                size_t lens[3 + CPN_REDIS_KV_MAX];
                char nk[8];
                int argc = 0;

                snprintf(nk, sizeof(nk), "%d", c->nkeys);
                argv[argc++] = "EVALSHA";
                argv[argc++] = r->sha[c->script_idx];
                argv[argc++] = nk;
                for (int i = 0; i < c->nkeys + c->nargs; i++)
                        argv[argc++] = c->kv[i];
                for (int i = 0; i < argc; i++)
                        lens[i] = strlen(argv[i]);
                if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK) {
                        /* Nothing went out yet: refuse the whole batch as
                         * unsent (only a call already asked again stays
                         * unknown), and drop what was appended. */
                        unsent(list, -ENOMEM, "redis: out of memory");
                        cpn_redis_drop(r);
                        return;
                }
        }
        /* From here on each call may have run: a failure is an unknown
         * outcome, asked again. */
        cpn_redis_flush(r->c, &why);
        for (c = list; c; c = next) {
                void *v = NULL;
                redisReply *rep;

                next = c->next;
                if (why || cpn_redis_read_reply(r->c, p->buf, PIPE_READ_BUF, &v, &why) < 0) {
                        if (call_lost(p, c, why))
                                AGAIN(c);
                        continue;
                }
                rep = v;
                if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && !c->reloaded) {
                        /* Not run: the script cache was emptied (restart,
                         * failover, SCRIPT FLUSH). */
                        c->reloaded = true;
                        r->sha[c->script_idx][0] = '\0'; /* loaded again before the next pass */
                        AGAIN(c);
                } else if (rep->type == REDIS_REPLY_ERROR && c->asked_again) {
                        call_done(c, cpn_error_set(c->err, CPN_UNKNOWN, "%.200s; asking again: redis EVALSHA: %.*s",
                                                   c->first.msg, (int)(rep->len < 200 ? rep->len : 200), rep->str));
                } else if (rep->type == REDIS_REPLY_ERROR) {
                        call_done(c, cpn_error_set(c->err, -EPROTO, "redis EVALSHA: %.*s", (int)rep->len, rep->str));
                } else {
                        struct cpn_error derr = { { 0 } };

                        if (cpn_redis_deliver(rep, answer_items, c, &derr) != 0)
                                call_done(c, cpn_error_set(c->err, -EPROTO, "%s", derr.msg));
                }
                freeReplyObject(rep);
        }
        if (why) {
                cpn_log_debug("redis pipe: %s; reconnecting", why);
                /* A closed connection is retried at once; a server that
                 * does not answer within the timeout is not. */
                if (strcmp(why, "timed out") == 0)
                        trip(p, "redis EVALSHA: timed out");
                cpn_redis_drop(r);
        }
#undef AGAIN
}

/* Down: tries a new connection (connect and PING: Redis answered).
 * Pipe thread. Returns true when calls may go through again. */
static bool probe(struct cpn_redis_pipe *p) {
        struct cpn_error err = { { 0 } };
        struct timespec now;

        if (cpn_redis_ping(p->r, &err) != 0) {
                pthread_mutex_lock(&p->mu);
                snprintf(p->down_why, sizeof(p->down_why), "%.199s", err.msg);
                pthread_mutex_unlock(&p->mu);
                return false;
        }
        pthread_mutex_lock(&p->mu);
        p->down = false;
        pthread_mutex_unlock(&p->mu);
        clock_gettime(CLOCK_MONOTONIC, &now);
        cpn_log_warn("redis pipe: Redis answers again after %.1f s; calls go through again",
                     (double)(now.tv_sec - p->down_since.tv_sec) +
                             (double)(now.tv_nsec - p->down_since.tv_nsec) / 1e9);
        return true;
}

static void *pipe_main(void *arg) {
        struct cpn_redis_pipe *p = arg;

        for (;;) {
                struct cpn_redis_call *list, *again, **cut;
                size_t n = 0;
                bool down;

                pthread_mutex_lock(&p->mu);
                while (!p->head && !p->stop && !p->down) {
                        p->idle = true;
                        pthread_cond_wait(&p->cv, &p->mu);
                }
                p->idle = false;
                if (!p->head && p->stop) {
                        pthread_mutex_unlock(&p->mu);
                        break;
                }
                list = p->head;
                for (cut = &p->head; *cut && n < PIPE_BATCH_MAX; cut = &(*cut)->next)
                        n++;
                p->head = *cut;
                *cut = NULL;
                if (!p->head)
                        p->tail = &p->head;
                down = p->down;
                pthread_mutex_unlock(&p->mu);

                if (down) {
                        /* Nothing is queued while down: trip() answered
                         * what was, and submit refuses the rest. */
                        if (!probe(p)) {
                                struct timespec dl;

                                cpn_deadline_in(&dl, PIPE_PROBE_MS);
                                pthread_mutex_lock(&p->mu);
                                if (!p->stop)
                                        pthread_cond_timedwait(&p->cv, &p->mu, &dl);
                                pthread_mutex_unlock(&p->mu);
                        }
                        continue;
                }
                atomic_fetch_add_explicit(&p->batches, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&p->calls, n, memory_order_relaxed);
                /* At most three passes: each call goes again at most once
                 * for a lost answer and once for NOSCRIPT. */
                for (int pass = 0; list && pass < 3; pass++) {
                        pipe_pass(p, list, &again);
                        list = again;
                }
                for (struct cpn_redis_call *c = list, *next; c; c = next) {
                        next = c->next;
                        call_done(c, cpn_error_set(c->err, c->asked_again ? CPN_UNKNOWN : -EPROTO,
                                                   "redis EVALSHA: no answer after three attempts"));
                }
        }
        return NULL;
}

/* Frees what cpn_redis_pipe_new set up; its thread is not running. */
static void release(struct cpn_redis_pipe *p) {
        cpn_redis_free(p->r);
        free(p->buf);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
}

int cpn_redis_pipe_new(struct cpn_redis_pipe **ret, const struct cpn_redis_url *url, long timeout_ms,
                       struct cpn_error *err) {
        struct cpn_redis_pipe *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return cpn_error_set(err, -ENOMEM, "redis pipe: out of memory");
        p->tail = &p->head;
        pthread_mutex_init(&p->mu, NULL);
        cpn_cond_init_monotonic(&p->cv); /* the probe's wait must not follow the wall clock */
        p->buf = malloc(PIPE_READ_BUF);
        r = p->buf ? cpn_redis_new(&p->r, url, timeout_ms) : -ENOMEM;
        if (r)
                cpn_error_set(err, r, "redis pipe: out of memory");
        else {
                r = -pthread_create(&p->thread, NULL, pipe_main, p);
                if (r)
                        cpn_error_set(err, r, "redis pipe: cannot start its thread");
        }
        if (r) {
                release(p);
                return r;
        }
        pthread_setname_np(p->thread, "cpn:redis-pipe");
        *ret = p;
        return 0;
}

struct cpn_redis_pipe *cpn_redis_pipe_free(struct cpn_redis_pipe *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        release(p);
        return NULL;
}

void cpn_redis_pipe_stats(struct cpn_redis_pipe *p, struct cpn_redis_pipe_stats *out) {
        out->batches = atomic_load_explicit(&p->batches, memory_order_relaxed);
        out->calls = atomic_load_explicit(&p->calls, memory_order_relaxed);
        out->asked_again = atomic_load_explicit(&p->asked_again, memory_order_relaxed);
        out->refused = atomic_load_explicit(&p->refused, memory_order_relaxed);
        pthread_mutex_lock(&p->mu);
        out->down = p->down;
        pthread_mutex_unlock(&p->mu);
}

int cpn_redis_pipe_submit(struct cpn_redis_pipe *p, struct cpn_redis_call *c) {
        c->next = NULL;
        c->asked_again = c->reloaded = false;
        if (c->nkeys < 0 || c->nargs < 0 || c->nkeys + c->nargs > CPN_REDIS_KV_MAX)
                return cpn_error_set(c->err, -EINVAL, "script %s: too many keys and arguments", c->script);
        c->script_idx = cpn_redis_script_index(c->script);
        if (c->script_idx < 0)
                return cpn_error_set(c->err, -ENOENT, "script %s not embedded", c->script);
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
                pthread_mutex_unlock(&p->mu);
                return cpn_error_set(c->err, -ESHUTDOWN, "redis pipe: shutting down");
        }
        if (p->down) {
                int r = cpn_error_set(c->err, -EIO, "redis not answering (%s); not sent", p->down_why);

                pthread_mutex_unlock(&p->mu);
                atomic_fetch_add_explicit(&p->refused, 1, memory_order_relaxed);
                return r;
        }
        *p->tail = c;
        p->tail = &c->next;
        if (p->idle) {
                p->idle = false;
                pthread_cond_signal(&p->cv);
        }
        pthread_mutex_unlock(&p->mu);
        return 0;
}
/* ---- a call waited for ---- */

struct waited {
        struct cpn_redis_call c; /* first: done() gets it */
        pthread_mutex_t mu;
        pthread_cond_t cv;
        cpn_redis_read_fn fn;
        void *ud;
        int ret;
        bool done;
};

static void waited_done(struct cpn_redis_call *c, int ret, const struct cpn_redis_item *items, size_t n) {
        struct waited *w = (struct waited *)c;

        if (ret == 0 && w->fn)
                ret = w->fn(items, n, w->ud);
        pthread_mutex_lock(&w->mu);
        w->ret = ret;
        w->done = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu); /* from here on the waiter may free it */
}

int cpn_redis_pipe_call(struct cpn_redis_pipe *p, const char *script, int nkeys, int nargs, const char *const *kv,
                        bool ask_again, cpn_redis_read_fn fn, void *ud, struct cpn_error *err) {
        struct cpn_error local;
        struct waited w;
        int r;

        if (!err)
                err = &local; /* a call's err is never NULL */
        w = (struct waited){ .c = { .script = script, .nkeys = nkeys, .nargs = nargs, .ask_again = ask_again,
                                   .err = err, .done = waited_done },
                            .fn = fn,
                            .ud = ud };

        if (nkeys < 0 || nargs < 0 || nkeys + nargs > CPN_REDIS_KV_MAX)
                return cpn_error_set(err, -EINVAL, "script %s: too many keys and arguments", script);
        memcpy(w.c.kv, kv, sizeof(*kv) * (size_t)(nkeys + nargs));
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        r = cpn_redis_pipe_submit(p, &w.c);
        if (r == 0) {
                pthread_mutex_lock(&w.mu);
                while (!w.done)
                        pthread_cond_wait(&w.cv, &w.mu);
                pthread_mutex_unlock(&w.mu);
                r = w.ret;
        }
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
        return r;
}
