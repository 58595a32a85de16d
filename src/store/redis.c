/*
 * Redis connections, commands and the script registry. Only this file and
 * pipe.c see hiredis. Uses calls present in both hiredis 0.14 (Debian 12)
 * and 1.x.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "cpn/clock.h"
#include "cpn/log.h"
#include "cpn/store.h"
#include "cpn/url.h"
#include "store-internal.h"

/* ---- URL ---- */

static int parse_db(const char *s, int *out) {
        long v = 0;

        if (!*s || strlen(s) > 7)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (*s - '0');
        }
        if (v > (1 << 20))
                return -EINVAL;
        *out = (int)v;
        return 0;
}

int cpn_redis_url_parse(struct cpn_redis_url *out, const char *url, struct cpn_error *err) {
        struct cpn_url u;
        int r = cpn_url_parse(&u, url, err);

        memset(out, 0, sizeof(*out));
        out->port = 6379;
        if (r)
                return cpn_error_prefix(err, CPN_INVALID, "redis url");
        if (strcmp(u.scheme, "unix") == 0 || strcmp(u.scheme, "redis+unix") == 0) {
                if (u.host[0] || u.user[0] || u.port || !u.path[0] ||
                    snprintf(out->unix_path, sizeof(out->unix_path), "%s", u.path) >= (int)sizeof(out->unix_path))
                        return cpn_error_set(err, CPN_INVALID, "redis url: bad socket path (unix:///path)");
                if (u.query[0] && (strncmp(u.query, "db=", 3) != 0 || parse_db(u.query + 3, &out->db)))
                        return cpn_error_set(err, CPN_INVALID, "redis url: expected ?db=N");
                return 0;
        }
        if (strcmp(u.scheme, "redis") != 0)
                return cpn_error_set(err, CPN_INVALID, "redis url must start with redis:// or unix://");
        if (!u.host[0])
                return cpn_error_set(err, CPN_INVALID, "redis url: missing host");
        if (u.query[0])
                return cpn_error_set(err, CPN_INVALID, "redis url: no query is understood");
        snprintf(out->host, sizeof(out->host), "%s", u.host);
        if (u.port)
                out->port = u.port;
        /* "redis://secret@h": a password alone (Redis before ACLs). */
        snprintf(out->user, sizeof(out->user), "%s", u.has_password ? u.user : "");
        snprintf(out->password, sizeof(out->password), "%s", u.has_password ? u.password : u.user);
        if (u.path[0] && u.path[1] && parse_db(u.path + 1, &out->db))
                return cpn_error_set(err, CPN_INVALID, "redis url: database must be a number");
        return 0;
}

/* ---- connection ---- */

int cpn_redis_new(struct cpn_redis **ret, const struct cpn_redis_url *url, long timeout_ms) {
        struct cpn_redis *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r->url = url;
        r->timeout_ms = timeout_ms;
        *ret = r;
        return 0;
}

void cpn_redis_drop(struct cpn_redis *r) {
        if (r->c) {
                redisFree(r->c);
                r->c = NULL;
        }
}

struct cpn_redis *cpn_redis_free(struct cpn_redis *r) {
        if (r) {
                cpn_redis_drop(r);
                free(r);
        }
        return NULL;
}

/* Reads one reply into *@out, feeding hiredis's reader from @buf (@cap
 * bytes) as needed. Not redisGetReply(): hiredis reads into a 16 KiB buffer
 * on the stack, and every request thread's stack keeps the pages it once
 * touched (a thousand threads: 16 MB of RSS for answers that are a hundred
 * bytes). The socket's timeout (redisSetTimeout) bounds each read. Returns
 * 0, -ECONNRESET when the server closed or reset the connection, or -EIO
 * (a timeout, a protocol error), with the reason in *@why (static text or
 * the context's errstr). */
int cpn_redis_read_reply(redisContext *c, char *buf, size_t cap, void **out, const char **why) {
        void *rep = NULL;

        for (;;) {
                ssize_t n;

                if (redisGetReplyFromReader(c, &rep) != REDIS_OK) {
                        *why = c->errstr[0] ? c->errstr : "protocol error";
                        return -EIO;
                }
                if (rep)
                        break;
                n = read(c->fd, buf, cap);
                if (n > 0) {
                        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                                *why = "protocol error";
                                return -EIO;
                        }
                } else if (n == 0) {
                        *why = "server closed the connection";
                        return -ECONNRESET;
                } else if (errno != EINTR) {
                        *why = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno);
                        return errno == ECONNRESET ? -ECONNRESET : -EIO;
                }
        }
        *out = rep;
        return 0;
}

/* Writes everything appended to the context. Returns 0, -ECONNRESET (the
 * server closed the connection) or -EIO (*@why; "timed out" when the
 * socket's send timeout expired, as read_reply says for its receive
 * timeout). */
int cpn_redis_flush(redisContext *c, const char **why) {
        int done = 0;

        while (!done)
                if (redisBufferWrite(c, &done) != REDIS_OK) {
                        int e = errno;

                        if (e == EAGAIN || e == EWOULDBLOCK)
                                *why = "timed out";
                        else
                                *why = c->errstr[0] ? c->errstr : "write failed";
                        return e == EPIPE || e == ECONNRESET ? -ECONNRESET : -EIO;
                }
        return 0;
}

/* Sends the command and reads its reply through a 1 KiB buffer. Returns 0,
 * -ECONNRESET or -EIO (*@why), as read_reply. */
static int roundtrip(redisContext *c, redisReply **out, int argc, const char *const *argv, const size_t *lens,
                     const char **why) {
        char buf[1024];
        void *rep = NULL;
        int ret;

        if (redisAppendCommandArgv(c, argc, (const char **)argv, lens) != REDIS_OK) {
                *why = c->errstr[0] ? c->errstr : "out of memory";
                return -EIO;
        }
        ret = cpn_redis_flush(c, why);
        if (!ret)
                ret = cpn_redis_read_reply(c, buf, sizeof(buf), &rep, why);
        if (!ret)
                *out = rep;
        return ret;
}


/*
 * Runs a command; on I/O failure drops the connection (-EIO); an error
 * reply becomes -EPROTO with its text, the reply freed.
 *
 * @safe: the command may run twice (a read, SADD, XDEL, a script that is
 * idempotent). Then, when a connection that had already served replies
 * turns out closed by the server (a Redis restart, CLIENT KILL, an idle
 * timeout: the thread kept it across), the command goes once more on a
 * new connection instead of failing: it either never reached the old one
 * or ran there with an effect a repeat does not change. A timeout is not
 * repeated: a stalled server would only make the caller wait twice.
 */
static int exec_cmd(struct cpn_redis *r, bool safe, redisReply **out, struct cpn_error *err, int argc,
                    const char *const *argv, const size_t *lens) {
        bool again = safe && !r->fresh && !r->setting_up;
        const char *why = NULL;
        redisReply *rep;
        int ret;

        *out = NULL;
        for (;;) {
                ret = roundtrip(r->c, &rep, argc, argv, lens, &why);
                if (ret == 0)
                        break;
                cpn_redis_drop(r);
                if (ret != -ECONNRESET || !again) {
                        cpn_error_set(err, -EIO, "redis %s: %s", argv[0], why);
                        return -EIO;
                }
                cpn_log_debug("redis %s: %s on a connection kept from before; once more on a new one", argv[0],
                              why);
                again = false;
                ret = cpn_redis_ensure(r, err);
                if (ret)
                        return ret;
        }
        r->fresh = false;
        if (rep->type == REDIS_REPLY_ERROR) {
                cpn_error_set(err, -EPROTO, "redis %s: %.*s", argv[0], (int)rep->len, rep->str);
                freeReplyObject(rep);
                return -EPROTO;
        }
        *out = rep;
        return 0;
}

/* A command that may be repeated (see exec_cmd). */
static int run(struct cpn_redis *r, redisReply **out, struct cpn_error *err, int argc, const char *const *argv,
               const size_t *lens) {
        return exec_cmd(r, true, out, err, argc, argv, lens);
}

int cpn_redis_script_index(const char *name) {
        int idx = 0;

        for (const struct cpn_embedded *e = cpn_lua_files; e->name; e++, idx++)
                if (strcmp(e->name, name) == 0)
                        return idx < CPN_SCRIPTS_MAX ? idx : -ENOENT;
        return -ENOENT;
}

int cpn_redis_script_load(struct cpn_redis *r, int idx, struct cpn_error *err) {
        const char *text = cpn_lua_files[idx].text, *name = cpn_lua_files[idx].name;
        redisReply *rep;
        int ret;

        ret = run(r, &rep, err, 3, (const char *[]){ "SCRIPT", "LOAD", text }, (size_t[]){ 6, 4, strlen(text) });
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "SCRIPT LOAD %s: unexpected reply", name);
        }
        memcpy(r->sha[idx], rep->str, 41);
        freeReplyObject(rep);
        return 0;
}

/* Whether a connection that is idle between commands was closed or broken
 * by the server: then it is readable (EOF, an error reply Redis sent
 * before closing) or hung up. Costs one poll() without waiting. */
static bool idle_conn_dead(redisContext *c) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN | POLLRDHUP };

        return poll(&p, 1, 0) != 0;
}

/* Connects if needed: a connection kept from an earlier call is checked
 * first and replaced if the server has closed it, so that nothing is sent
 * on a connection known dead (after a Redis restart every thread's
 * connection is; sending there made reads answer 503 and a write
 * unknown). */
int cpn_redis_ensure(struct cpn_redis *r, struct cpn_error *err) {
        struct timeval tv = { r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000 };
        redisReply *rep;
        int ret;

        if (r->c && !r->setting_up && idle_conn_dead(r->c)) {
                cpn_log_debug("redis: a kept connection was closed by the server; connecting again");
                cpn_redis_drop(r);
        }
        if (r->c)
                return 0;
        if (r->url->unix_path[0])
                r->c = redisConnectUnixWithTimeout(r->url->unix_path, tv);
        else
                r->c = redisConnectWithTimeout(r->url->host, r->url->port, tv);
        if (!r->c)
                return cpn_error_set(err, -ENOMEM, "redis: cannot allocate a context");
        if (r->c->err) {
                cpn_error_set(err, -EIO, "redis %s:%d: %s", r->url->host, r->url->port, r->c->errstr);
                cpn_redis_drop(r);
                return -EIO;
        }
        if (redisSetTimeout(r->c, tv) != REDIS_OK || redisEnableKeepAlive(r->c) != REDIS_OK) {
                cpn_redis_drop(r);
                return cpn_error_set(err, -EIO, "redis: cannot set socket options");
        }
        r->setting_up = true;
        if (r->url->password[0]) {
                if (r->url->user[0])
                        ret = run(r, &rep, err, 3, (const char *[]){ "AUTH", r->url->user, r->url->password },
                                  (size_t[]){ 4, strlen(r->url->user), strlen(r->url->password) });
                else
                        ret = run(r, &rep, err, 2, (const char *[]){ "AUTH", r->url->password },
                                  (size_t[]){ 4, strlen(r->url->password) });
                if (ret)
                        goto fail;
                freeReplyObject(rep);
        }
        if (r->url->db) {
                char db[16];

                snprintf(db, sizeof(db), "%d", r->url->db);
                ret = run(r, &rep, err, 2, (const char *[]){ "SELECT", db }, (size_t[]){ 6, strlen(db) });
                if (ret)
                        goto fail;
                freeReplyObject(rep);
        }
        /* The SHAs were this connection's: a new one loads each script
         * again on first use (Redis may have restarted empty). */
        memset(r->sha, 0, sizeof(r->sha));
        r->setting_up = false;
        r->fresh = true;
        return 0;
fail:
        r->setting_up = false;
        cpn_redis_drop(r);
        return ret;
}


/* EVALSHA of embedded script @idx with one NOSCRIPT reload-and-retry.
 * *@sent (may be NULL) becomes true once the EVALSHA itself was handed to
 * the socket: after a failure from then on, Redis may or may not have run
 * the script. @safe as for exec_cmd. */
static int eval_idx(struct cpn_redis *r, int idx, bool safe, redisReply **out, struct cpn_error *err, bool *sent,
                    int nkeys, int nargs, const char *const *kv) {
        const char *argv[3 + CPN_REDIS_KV_MAX];
        size_t lens[3 + CPN_REDIS_KV_MAX];
        char nk[8];
        int argc, ret = 0;

        if (nkeys < 0 || nargs < 0 || nkeys + nargs > CPN_REDIS_KV_MAX)
                return cpn_error_set(err, -EINVAL, "script %s: too many keys and arguments", cpn_lua_files[idx].name);
        snprintf(nk, sizeof(nk), "%d", nkeys);
        for (int attempt = 0; attempt < 2; attempt++) {
                ret = cpn_redis_ensure(r, err);
                if (!ret && !r->sha[idx][0])
                        ret = cpn_redis_script_load(r, idx, err);
                if (ret)
                        return ret;
                argc = 0;
                argv[argc++] = "EVALSHA";
                argv[argc++] = r->sha[idx];
                argv[argc++] = nk;
                for (int i = 0; i < nkeys + nargs; i++)
                        argv[argc++] = kv[i];
                for (int i = 0; i < argc; i++)
                        lens[i] = strlen(argv[i]);
                if (sent)
                        *sent = true;
                ret = exec_cmd(r, safe, out, err, argc, argv, lens);
                if (ret == -EPROTO && err && strncmp(err->msg, "redis EVALSHA: NOSCRIPT", 23) == 0) {
                        /* Not run: the script cache was emptied. */
                        r->sha[idx][0] = '\0';
                        continue;
                }
                return ret;
        }
        return ret;
}

static void take_item(const redisReply *e, struct cpn_redis_item *it) {
        memset(it, 0, sizeof(*it));
        switch (e->type) {
        case REDIS_REPLY_INTEGER:
                it->type = CPN_RV_INT;
                it->i = e->integer;
                break;
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
                it->type = CPN_RV_STR;
                it->s = e->str;
                it->len = e->len;
                it->i = strtoll(e->str, NULL, 10);
                break;
        case REDIS_REPLY_ERROR:
                it->type = CPN_RV_ERR;
                it->s = e->str;
                it->len = e->len;
                break;
        case REDIS_REPLY_ARRAY:
                it->type = CPN_RV_ARR;
                it->i = (long long)e->elements;
                break;
        default:
                it->type = CPN_RV_NIL;
                break;
        }
}

int cpn_redis_deliver(const redisReply *rep, cpn_redis_read_fn fn, void *ud, struct cpn_error *err) {
        struct cpn_redis_item items[CPN_REDIS_ITEMS_MAX];
        size_t n = 0;

        if (!fn)
                return 0;
        if (rep->type != REDIS_REPLY_ARRAY) {
                take_item(rep, &items[0]);
                return fn(items, 1, ud);
        }
        if (rep->elements > CPN_REDIS_ITEMS_MAX)
                return cpn_error_set(err, -EPROTO, "redis: a reply of %zu elements where at most %d were expected",
                                     (size_t)rep->elements, CPN_REDIS_ITEMS_MAX);
        for (; n < rep->elements; n++)
                take_item(rep->element[n], &items[n]);
        return fn(items, n, ud);
}

static void argv_lens(int argc, const char *const *argv, size_t *lens) {
        for (int i = 0; i < argc; i++)
                lens[i] = strlen(argv[i]);
}

#define ARGV_MAX (1 + 512 + 2)

/* One command on a connection made sure of, its reply in *@rep (the
 * caller's to free). Returns exec_cmd's codes, or -EINVAL. */
static int send_one(struct cpn_redis *r, bool safe, int argc, const char *const *argv, redisReply **rep,
                    struct cpn_error *err) {
        size_t lens[ARGV_MAX];
        int ret;

        if (argc < 1 || argc > ARGV_MAX)
                return cpn_error_set(err, -EINVAL, "redis: %d arguments", argc);
        argv_lens(argc, argv, lens);
        ret = cpn_redis_ensure(r, err);
        return ret ? ret : exec_cmd(r, safe, rep, err, argc, argv, lens);
}

int cpn_redis_command(struct cpn_redis *r, bool safe, int argc, const char *const *argv, cpn_redis_read_fn fn,
                      void *ud, struct cpn_error *err) {
        redisReply *rep;
        int ret = send_one(r, safe, argc, argv, &rep, err);

        if (ret)
                return ret;
        ret = cpn_redis_deliver(rep, fn, ud, err);
        freeReplyObject(rep);
        return ret;
}

int cpn_redis_each(struct cpn_redis *r, int argc, const char *const *argv, cpn_redis_read_fn fn, void *ud,
                   struct cpn_error *err) {
        struct cpn_redis_item items[CPN_REDIS_ITEMS_MAX];
        redisReply *rep;
        int ret = send_one(r, true, argc, argv, &rep, err);

        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "redis %s: not an array", argv[0]);
        }
        for (size_t i = 0; i < rep->elements && ret == 0; i++) {
                const redisReply *e = rep->element[i];
                size_t n = 0;

                if (e->type != REDIS_REPLY_ARRAY) {
                        take_item(e, &items[n++]);
                } else {
                        for (size_t k = 0; k < e->elements && n < CPN_REDIS_ITEMS_MAX; k++) {
                                const redisReply *f = e->element[k];

                                if (f->type != REDIS_REPLY_ARRAY) {
                                        take_item(f, &items[n++]);
                                        continue;
                                }
                                for (size_t j = 0; j < f->elements && n < CPN_REDIS_ITEMS_MAX; j++)
                                        take_item(f->element[j], &items[n++]);
                        }
                }
                ret = fn(items, n, ud);
        }
        freeReplyObject(rep);
        return ret;
}

/* Appends the @n commands and reads their replies into @reps (the caller
 * frees them). Returns 0, or -ECONNRESET / -EIO as the reader (the
 * connection dropped, no reply kept). */
static int pipeline(struct cpn_redis *r, size_t n, const struct cpn_redis_cmd *cmds, redisReply **reps,
                    struct cpn_error *err) {
        char buf[1024];
        const char *why = NULL;
        size_t got = 0;
        int ret = 0;

        for (size_t i = 0; i < n; i++) {
                size_t lens[ARGV_MAX];

                argv_lens(cmds[i].argc, cmds[i].argv, lens);
                if (redisAppendCommandArgv(r->c, cmds[i].argc, (const char **)cmds[i].argv, lens) != REDIS_OK) {
                        cpn_redis_drop(r);
                        return cpn_error_set(err, -ENOMEM, "redis %s: cannot queue", cmds[0].argv[0]);
                }
        }
        ret = cpn_redis_flush(r->c, &why);
        while (!ret && got < n) {
                void *v = NULL;

                ret = cpn_redis_read_reply(r->c, buf, sizeof(buf), &v, &why);
                if (!ret)
                        reps[got++] = v;
        }
        if (ret) {
                while (got > 0)
                        freeReplyObject(reps[--got]);
                cpn_error_set(err, -EIO, "redis %s: %s", cmds[0].argv[0], why);
                cpn_redis_drop(r);
                return ret;
        }
        r->fresh = false;
        return 0;
}

int cpn_redis_batch(struct cpn_redis *r, size_t n, const struct cpn_redis_cmd *cmds, cpn_redis_read_fn fn,
                    void *ud, struct cpn_error *err) {
        redisReply *stack[64], **reps = stack;
        int ret = 0;

        if (n == 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (cmds[i].argc < 1 || cmds[i].argc > ARGV_MAX)
                        return cpn_error_set(err, -EINVAL, "redis: %d arguments", cmds[i].argc);
        if (n > 64 && !(reps = malloc(n * sizeof(*reps))))
                return cpn_error_set(err, -ENOMEM, "out of memory");
        for (int attempt = 0;; attempt++) {
                bool again;

                ret = cpn_redis_ensure(r, err);
                if (ret)
                        break;
                /* A kept connection the server closed meanwhile: once more
                 * on a new one (every command is safe to repeat). */
                again = !r->fresh && attempt == 0;
                ret = pipeline(r, n, cmds, reps, err);
                if (ret == 0 || ret == -ENOMEM)
                        break;
                if (ret != -ECONNRESET || !again) {
                        ret = -EIO;
                        break;
                }
        }
        if (ret == 0) {
                for (size_t i = 0; i < n; i++) {
                        int r2 = ret ? 0 : cpn_redis_deliver(reps[i], fn, ud, err);

                        if (r2)
                                ret = r2;
                        freeReplyObject(reps[i]);
                }
        }
        if (reps != stack)
                free(reps);
        return ret;
}

int cpn_redis_script_read(struct cpn_redis *r, const char *name, bool safe, int nkeys, int nargs,
                          const char *const *kv, cpn_redis_read_fn fn, void *ud, bool *sent, struct cpn_error *err) {
        redisReply *rep;
        int idx = cpn_redis_script_index(name), ret;

        if (sent)
                *sent = false;
        if (idx < 0)
                return cpn_error_set(err, -ENOENT, "script %s not embedded", name);
        ret = eval_idx(r, idx, safe, &rep, err, sent, nkeys, nargs, kv);
        if (ret)
                return ret;
        ret = cpn_redis_deliver(rep, fn, ud, err);
        freeReplyObject(rep);
        return ret;
}

static int copy_answer(const struct cpn_redis_item *items, size_t n, void *ud) {
        struct cpn_redis_answer *out = ud;

        out->n = n < CPN_REDIS_VALUES_MAX ? n : CPN_REDIS_VALUES_MAX;
        for (size_t i = 0; i < out->n; i++) {
                struct cpn_redis_value *v = &out->v[i];

                v->type = items[i].type;
                v->i = items[i].i;
                v->len = 0;
                v->s[0] = '\0';
                if (items[i].s) {
                        v->len = items[i].len < sizeof(v->s) - 1 ? items[i].len : sizeof(v->s) - 1;
                        memcpy(v->s, items[i].s, v->len);
                        v->s[v->len] = '\0';
                }
        }
        return 0;
}

int cpn_redis_script(struct cpn_redis *r, const char *name, bool safe, int nkeys, int nargs, const char *const *kv,
                     struct cpn_redis_answer *out, bool *sent, struct cpn_error *err) {
        memset(out, 0, sizeof(*out));
        return cpn_redis_script_read(r, name, safe, nkeys, nargs, kv, copy_answer, out, sent, err);
}

int cpn_redis_ping(struct cpn_redis *r, struct cpn_error *err) {
        return cpn_redis_command(r, true, 1, (const char *[]){ "PING" }, NULL, NULL, err);
}

int cpn_redis_hash_each(struct cpn_redis *r, const char *key,
                        int (*fn)(const char *field, const char *value, void *ud), void *ud, struct cpn_error *err) {
        char cursor[32] = "0";
        int ret = cpn_redis_ensure(r, err);

        if (ret)
                return ret;
        do {
                redisReply *rep, *items;

                ret = run(r, &rep, err, 5, (const char *[]){ "HSCAN", key, cursor, "COUNT", "1000" },
                          (size_t[]){ 5, strlen(key), strlen(cursor), 5, 4 });
                if (ret)
                        return ret;
                if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                    rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY ||
                    rep->element[0]->len >= sizeof(cursor)) {
                        freeReplyObject(rep);
                        return cpn_error_set(err, -EPROTO, "redis HSCAN %s: unexpected reply", key);
                }
                memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
                items = rep->element[1];
                for (size_t i = 0; i + 1 < items->elements && ret == 0; i += 2)
                        if (items->element[i]->type == REDIS_REPLY_STRING &&
                            items->element[i + 1]->type == REDIS_REPLY_STRING)
                                ret = fn(items->element[i]->str, items->element[i + 1]->str, ud);
                freeReplyObject(rep);
        } while (ret == 0 && strcmp(cursor, "0") != 0);
        return ret;
}
