/*
 * Redis behind domain calls. Only this file sees hiredis. Uses calls present
 * in both hiredis 0.14 (Debian 12) and 1.x.
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

struct cpn_embedded {
        const char *name;
        const char *text;
};
extern const struct cpn_embedded cpn_lua_files[];

enum script_id {
        S_ISSUE, S_CREATE, S_GET, S_OUTBOX_USERS, S_COUNT_RAISE, S_PAUSE, S_REBUILD, S_LEASE, S_LEASE_DROP,
        S_OUTBOX_ADD, _S_N
};
static const char *const script_names[_S_N] = {
        "issue.lua",        "campaign_create.lua", "campaign_get.lua", "outbox_users.lua",
        "count_raise.lua",  "campaign_pause.lua",  "campaign_rebuild.lua", "lease.lua",
        "lease_drop.lua",   "outbox_add.lua",
};

struct cpn_redis {
        const struct cpn_redis_url *url; /* borrowed: outlives every handle (main's) */
        long timeout_ms;
        redisContext *c;       /* NULL: not connected (or dropped after an error) */
        bool fresh;            /* connected by this call's ensure(): no reply read on it yet */
        bool setting_up;       /* inside ensure(): AUTH, SELECT, SCRIPT LOAD */
        char sha[_S_N][41];    /* per connection: no shared mutable state */
        char named_sha[CPN_SCRIPTS_MAX][41]; /* cpn_redis_script's, by embedded file; "" = not loaded yet */
};

/* ---- URL ---- */

static int copy_part(char *dst, size_t n, const char *s, size_t len) {
        if (len >= n)
                return -ENOBUFS;
        memcpy(dst, s, len);
        dst[len] = '\0';
        return 0;
}

static int parse_int(const char *s, size_t len, int min, int max, int *out) {
        int v = 0;

        if (len == 0 || len > 9)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        if (v < min || v > max)
                return -EINVAL;
        *out = v;
        return 0;
}

int cpn_redis_url_parse(struct cpn_redis_url *out, const char *url, struct cpn_error *err) {
        const char *p, *at, *hostend, *slash, *colon;

        memset(out, 0, sizeof(*out));
        out->port = 6379;
        if (strncmp(url, "unix://", 7) == 0 || strncmp(url, "redis+unix://", 13) == 0) {
                const char *path = strstr(url, "://") + 3, *q = strchr(path, '?');
                size_t len = q ? (size_t)(q - path) : strlen(path);

                if (len == 0 || copy_part(out->unix_path, sizeof(out->unix_path), path, len))
                        return cpn_error_set(err, CPN_INVALID, "redis url: bad socket path");
                if (q && (strncmp(q, "?db=", 4) != 0 ||
                          parse_int(q + 4, strlen(q + 4), 0, 1 << 20, &out->db)))
                        return cpn_error_set(err, CPN_INVALID, "redis url: expected ?db=N");
                return 0;
        }
        if (strncmp(url, "redis://", 8) != 0)
                return cpn_error_set(err, CPN_INVALID, "redis url must start with redis:// or unix://");
        p = url + 8;
        slash = strchr(p, '/');
        at = strrchr(p, '@');
        if (at && slash && at > slash)
                at = NULL;
        if (at) {
                const char *c = memchr(p, ':', (size_t)(at - p));

                if (c) {
                        if (copy_part(out->user, sizeof(out->user), p, (size_t)(c - p)) ||
                            copy_part(out->password, sizeof(out->password), c + 1, (size_t)(at - c - 1)))
                                return cpn_error_set(err, CPN_INVALID, "redis url: credentials too long");
                } else if (copy_part(out->password, sizeof(out->password), p, (size_t)(at - p))) {
                        return cpn_error_set(err, CPN_INVALID, "redis url: password too long");
                }
                p = at + 1;
        }
        hostend = slash ? slash : p + strlen(p);
        colon = memchr(p, ':', (size_t)(hostend - p));
        if (colon) {
                if (parse_int(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &out->port))
                        return cpn_error_set(err, CPN_INVALID, "redis url: bad port");
        } else {
                colon = hostend;
        }
        if (colon == p || copy_part(out->host, sizeof(out->host), p, (size_t)(colon - p)))
                return cpn_error_set(err, CPN_INVALID, "redis url: missing or too long host");
        if (slash && slash[1] && parse_int(slash + 1, strlen(slash + 1), 0, 1 << 20, &out->db))
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

static void drop(struct cpn_redis *r) {
        if (r->c) {
                redisFree(r->c);
                r->c = NULL;
        }
}

struct cpn_redis *cpn_redis_free(struct cpn_redis *r) {
        if (r) {
                drop(r);
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
static int read_reply(redisContext *c, char *buf, size_t cap, void **out, const char **why) {
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
static int flush_out(redisContext *c, const char **why) {
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
static int roundtrip(redisContext *c, redisReply **out, int argc, const char **argv, const size_t *lens,
                     const char **why) {
        char buf[1024];
        void *rep = NULL;
        int ret;

        if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) {
                *why = c->errstr[0] ? c->errstr : "out of memory";
                return -EIO;
        }
        ret = flush_out(c, why);
        if (!ret)
                ret = read_reply(c, buf, sizeof(buf), &rep, why);
        if (!ret)
                *out = rep;
        return ret;
}

static int ensure(struct cpn_redis *r, struct cpn_error *err);

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
                    const char **argv, const size_t *lens) {
        bool again = safe && !r->fresh && !r->setting_up;
        const char *why = NULL;
        redisReply *rep;
        int ret;

        *out = NULL;
        for (;;) {
                ret = roundtrip(r->c, &rep, argc, argv, lens, &why);
                if (ret == 0)
                        break;
                drop(r);
                if (ret != -ECONNRESET || !again) {
                        cpn_error_set(err, -EIO, "redis %s: %s", argv[0], why);
                        return -EIO;
                }
                cpn_log_debug("redis %s: %s on a connection kept from before; once more on a new one", argv[0],
                              why);
                again = false;
                ret = ensure(r, err);
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
static int run(struct cpn_redis *r, redisReply **out, struct cpn_error *err, int argc, const char **argv,
               const size_t *lens) {
        return exec_cmd(r, true, out, err, argc, argv, lens);
}

/* SCRIPT LOADs the embedded file @name; its SHA into @sha. */
static int load_named(struct cpn_redis *r, const char *name, char sha[41], struct cpn_error *err) {
        const char *text = NULL;
        redisReply *rep;
        int ret;

        for (const struct cpn_embedded *e = cpn_lua_files; e->name; e++)
                if (strcmp(e->name, name) == 0)
                        text = e->text;
        if (!text)
                return cpn_error_set(err, -ENOENT, "script %s not embedded", name);
        ret = run(r, &rep, err, 3, (const char *[]){ "SCRIPT", "LOAD", text },
                  (size_t[]){ 6, 4, strlen(text) });
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "SCRIPT LOAD %s: unexpected reply", name);
        }
        memcpy(sha, rep->str, 41);
        freeReplyObject(rep);
        return 0;
}

static int load_script(struct cpn_redis *r, enum script_id id, struct cpn_error *err) {
        return load_named(r, script_names[id], r->sha[id], err);
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
 * connection is; sending there made reads answer 503 and an issue call
 * unknown). */
static int ensure(struct cpn_redis *r, struct cpn_error *err) {
        struct timeval tv = { r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000 };
        redisReply *rep;
        int ret;

        if (r->c && !r->setting_up && idle_conn_dead(r->c)) {
                cpn_log_debug("redis: a kept connection was closed by the server; connecting again");
                drop(r);
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
                drop(r);
                return -EIO;
        }
        if (redisSetTimeout(r->c, tv) != REDIS_OK || redisEnableKeepAlive(r->c) != REDIS_OK) {
                drop(r);
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
        for (int i = 0; i < _S_N; i++) {
                ret = load_script(r, (enum script_id)i, err);
                if (ret)
                        goto fail;
        }
        r->setting_up = false;
        r->fresh = true;
        return 0;
fail:
        r->setting_up = false;
        drop(r);
        return ret;
}

/* EVALSHA with one NOSCRIPT reload-and-retry. *@sent (may be NULL) becomes
 * true once the EVALSHA itself was handed to the socket: after a failure
 * from then on, Redis may or may not have run the script. @safe as for
 * exec_cmd: the script may run twice. */
static int eval_named(struct cpn_redis *r, const char *name, char sha[41], bool safe, redisReply **out,
                      struct cpn_error *err, bool *sent, int nkeys, int nargs, const char **kv) {
        const char *argv[16];
        size_t lens[16];
        char nk[8];
        int argc = 0, ret;

        if (nkeys + nargs > 13)
                return cpn_error_set(err, -EINVAL, "script %s: too many keys and arguments", name);
        snprintf(nk, sizeof(nk), "%d", nkeys);
        for (int attempt = 0; attempt < 2; attempt++) {
                ret = ensure(r, err);
                if (!ret && !sha[0])
                        ret = load_named(r, name, sha, err);
                if (ret)
                        return ret;
                argc = 0;
                argv[argc++] = "EVALSHA";
                argv[argc++] = sha;
                argv[argc++] = nk;
                for (int i = 0; i < nkeys + nargs; i++)
                        argv[argc++] = kv[i];
                for (int i = 0; i < argc; i++)
                        lens[i] = strlen(argv[i]);
                if (sent)
                        *sent = true;
                ret = exec_cmd(r, safe, out, err, argc, argv, lens);
                if (ret == -EPROTO && err && strncmp(err->msg, "redis EVALSHA: NOSCRIPT", 23) == 0) {
                        ret = load_named(r, name, sha, err);
                        if (ret)
                                return ret;
                        continue;
                }
                return ret;
        }
        return ret;
}

static int evalsha_sent(struct cpn_redis *r, enum script_id id, bool safe, redisReply **out,
                        struct cpn_error *err, bool *sent, int nkeys, int nargs, const char **kv) {
        return eval_named(r, script_names[id], r->sha[id], safe, out, err, sent, nkeys, nargs, kv);
}

/* One element of a script's answer. */
static void take_value(const redisReply *e, struct cpn_redis_value *v) {
        memset(v, 0, sizeof(*v));
        switch (e->type) {
        case REDIS_REPLY_INTEGER:
                v->type = CPN_RV_INT;
                v->i = e->integer;
                break;
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
                v->type = CPN_RV_STR;
                v->len = e->len < sizeof(v->s) - 1 ? e->len : sizeof(v->s) - 1;
                memcpy(v->s, e->str, v->len);
                v->i = strtoll(v->s, NULL, 10);
                break;
        default:
                v->type = CPN_RV_NIL;
                break;
        }
}

int cpn_redis_script(struct cpn_redis *r, const char *name, bool safe, int nkeys, int nargs, const char **kv,
                     struct cpn_redis_answer *out, bool *sent, struct cpn_error *err) {
        redisReply *rep;
        int idx = 0, ret;

        if (sent)
                *sent = false;
        memset(out, 0, sizeof(*out));
        for (const struct cpn_embedded *e = cpn_lua_files; e->name && strcmp(e->name, name) != 0; e++)
                idx++;
        if (idx >= CPN_SCRIPTS_MAX)
                return cpn_error_set(err, -ENOENT, "script %s not embedded", name);
        ret = eval_named(r, name, r->named_sha[idx], safe, &rep, err, sent, nkeys, nargs, kv);
        if (ret)
                return ret;
        if (rep->type == REDIS_REPLY_ARRAY) {
                out->n = rep->elements < CPN_REDIS_VALUES_MAX ? rep->elements : CPN_REDIS_VALUES_MAX;
                for (size_t i = 0; i < out->n; i++)
                        take_value(rep->element[i], &out->v[i]);
        } else {
                out->n = 1;
                take_value(rep, &out->v[0]);
        }
        freeReplyObject(rep);
        return 0;
}

/* A script that may run twice (see exec_cmd). */
static int evalsha(struct cpn_redis *r, enum script_id id, redisReply **out, struct cpn_error *err,
                   int nkeys, int nargs, const char **kv) {
        return evalsha_sent(r, id, true, out, err, NULL, nkeys, nargs, kv);
}

/* A script that must not run twice. */
static int evalsha_once(struct cpn_redis *r, enum script_id id, redisReply **out, struct cpn_error *err,
                        int nkeys, int nargs, const char **kv) {
        return evalsha_sent(r, id, false, out, err, NULL, nkeys, nargs, kv);
}

#define KEY(var, campaign, part)                                                 \
        char var[CPN_ID_MAX + 64];                                               \
        if (cpn_campaign_key(var, sizeof(var), campaign, part) < 0)                       \
                return cpn_error_set(err, -EINVAL, "campaign id too long")

static int64_t str_int(const redisReply *e) {
        if (e->type == REDIS_REPLY_INTEGER)
                return e->integer;
        if (e->type == REDIS_REPLY_STRING)
                return strtoll(e->str, NULL, 10);
        return 0;
}

int cpn_store_ping(struct cpn_redis *r, struct cpn_error *err) {
        redisReply *rep;
        int ret = ensure(r, err);

        if (ret)
                return ret;
        ret = run(r, &rep, err, 1, (const char *[]){ "PING" }, (size_t[]){ 4 });
        if (ret)
                return ret;
        freeReplyObject(rep);
        return 0;
}

/* What issue.lua answered, as cpn_store_issue returns it; @rep stays the
 * caller's. */
static int issue_answer(const redisReply *rep, const char *campaign_id, const char *user_id,
                        struct cpn_issuance *out, struct cpn_error *err) {
        const redisReply *st;
        int ret;

        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
            rep->element[0]->type != REDIS_REPLY_STRING)
                return cpn_error_set(err, -EPROTO, "issue.lua: unexpected reply");
        st = rep->element[0];
        if (strcmp(st->str, "issued") == 0 && rep->elements == 4 &&
            rep->element[2]->type == REDIS_REPLY_STRING &&
            rep->element[2]->len < sizeof(out->outbox_id)) {
                snprintf(out->campaign_id, sizeof(out->campaign_id), "%s", campaign_id);
                snprintf(out->user_id, sizeof(out->user_id), "%s", user_id);
                out->seq = str_int(rep->element[1]);
                memcpy(out->outbox_id, rep->element[2]->str, rep->element[2]->len + 1);
                out->issued_at_ms = str_int(rep->element[3]);
                ret = 0;
        } else if (strcmp(st->str, "already_issued") == 0) {
                ret = CPN_ISSUE_DUPLICATE;
        } else if (strcmp(st->str, "sold_out") == 0) {
                ret = CPN_ISSUE_SOLD_OUT;
        } else if (strcmp(st->str, "not_open") == 0) {
                ret = cpn_error_set(err, CPN_ISSUE_NOT_OPEN, "campaign %s",
                                    rep->elements > 1 && rep->element[1]->type == REDIS_REPLY_STRING &&
                                    strcmp(rep->element[1]->str, "ended") == 0 ? "has ended"
                                                                               : "has not started yet");
        } else if (strcmp(st->str, "not_found") == 0) {
                ret = CPN_CAMPAIGN_NOT_FOUND;
        } else if (strcmp(st->str, "paused") == 0) {
                ret = CPN_ISSUE_PAUSED;
        } else {
                ret = cpn_error_set(err, -EPROTO, "issue.lua: unknown answer '%.32s'", st->str);
        }
        return ret;
}

int cpn_store_issue(struct cpn_redis *r, const char *campaign_id, const char *user_id,
                    struct cpn_issuance *out, struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(count, campaign_id, "count");
        KEY(users, campaign_id, "users");
        KEY(outbox, campaign_id, "outbox");
        const char *kv[] = { meta, count, users, outbox, user_id };
        redisReply *rep;
        bool sent = false;
        int ret;

        ret = evalsha_sent(r, S_ISSUE, false, &rep, err, &sent, 4, 1, kv);
        if (ret == -EIO && sent) {
                /* The script went out and no answer came back (connection
                 * lost, Redis killed or stalled past the timeout): it may
                 * have run. Ask again on a new connection; the script is
                 * safe to repeat, and its second answer is true of the
                 * first: "issued" means the first did not issue, "already
                 * issued" that the user holds a coupon either way. */
                struct cpn_error first = { { 0 } }, again = { { 0 } };

                if (err)
                        first = *err;
                ret = evalsha_once(r, S_ISSUE, &rep, &again, 4, 1, kv);
                if (ret < 0)
                        return cpn_error_set(err, CPN_UNKNOWN, "%.200s; asking again: %.200s", first.msg,
                                             again.msg);
        }
        if (ret)
                return ret;
        ret = issue_answer(rep, campaign_id, user_id, out, err);
        freeReplyObject(rep);
        return ret;
}

/* The meta hash's numbers as script arguments; "" for an end that never comes. */
static void meta_fields(const struct cpn_campaign *c, char total[24], char starts[24], char ends[24]) {
        snprintf(total, 24, "%lld", (long long)c->total);
        snprintf(starts, 24, "%lld", (long long)c->starts_at_ms);
        if (c->ends_at_ms == CPN_TIME_NEVER)
                ends[0] = '\0';
        else
                snprintf(ends, 24, "%lld", (long long)c->ends_at_ms);
}

int cpn_store_campaign_create(struct cpn_redis *r, const struct cpn_campaign *c,
                              struct cpn_error *err) {
        KEY(meta, c->id, "meta");
        KEY(mark, c->id, "create");
        char total[24], starts[24], ends[24], token[33];
        redisReply *rep;
        bool sent = false;
        int ret;

        /* The script may go twice (once more after a kept connection turned
         * out closed): the token makes the repeat answer "created" again. */
        ret = cpn_random_token(token, sizeof(token));
        if (ret)
                return cpn_error_set(err, ret, "no random bytes for the create token");
        meta_fields(c, total, starts, ends);
        ret = evalsha_sent(r, S_CREATE, true, &rep, err, &sent, 2, 5,
                           (const char *[]){ meta, mark, total, starts, ends, c->name, token });
        if (ret == -EIO && sent)
                return cpn_error_prefix(err, CPN_UNKNOWN, "campaign_create.lua sent, no answer");
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "campaign_create.lua: unexpected reply");
        }
        ret = strcmp(rep->str, "exists") == 0 ? CPN_CAMPAIGN_EXISTS : strcmp(rep->str, "same") == 0 ? CPN_CAMPAIGN_SAME : 0;
        freeReplyObject(rep);
        if (ret == CPN_CAMPAIGN_EXISTS)
                return ret;
        /* Registered after the meta exists: the relay only walks real
         * campaigns. A repeat (CPN_CAMPAIGN_SAME) registers it too, so a create
         * whose SADD failed completes when it is repeated. */
        {
                int r2 = run(r, &rep, err, 3, (const char *[]){ "SADD", CPN_KEY_CAMPAIGNS, c->id },
                             (size_t[]){ 4, strlen(CPN_KEY_CAMPAIGNS), strlen(c->id) });

                if (r2 == -EIO)
                        return cpn_error_prefix(err, CPN_UNKNOWN, "meta written, not yet registered");
                if (r2)
                        return r2;
        }
        freeReplyObject(rep);
        return ret;
}

int cpn_store_campaign_get(struct cpn_redis *r, const char *campaign_id,
                           struct cpn_campaign_state *out, struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(count, campaign_id, "count");
        KEY(outbox, campaign_id, "outbox");
        redisReply *rep, **e;
        int ret;

        ret = evalsha(r, S_GET, &rep, err, 3, 0, (const char *[]){ meta, count, outbox });
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_ARRAY || (rep->elements != 0 && rep->elements != 8)) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "campaign_get.lua: unexpected reply");
        }
        if (rep->elements == 0) {
                freeReplyObject(rep);
                return CPN_CAMPAIGN_NOT_FOUND;
        }
        e = rep->element;
        memset(out, 0, sizeof(*out));
        snprintf(out->c.id, sizeof(out->c.id), "%s", campaign_id);
        out->c.total = str_int(e[0]);
        out->c.starts_at_ms = str_int(e[1]);
        out->c.ends_at_ms = e[2]->type == REDIS_REPLY_STRING && e[2]->len ? str_int(e[2]) : CPN_TIME_NEVER;
        if (e[3]->type == REDIS_REPLY_STRING)
                snprintf(out->c.name, sizeof(out->c.name), "%s", e[3]->str);
        out->paused = str_int(e[4]) == 1;
        out->issued = str_int(e[5]);
        out->now_ms = str_int(e[6]);
        out->outbox_len = str_int(e[7]);
        freeReplyObject(rep);
        return 0;
}

/* Flushes the @n commands appended to the connection and reads their
 * replies into @reps (the caller frees them). Returns 0, or -ECONNRESET /
 * -EIO as read_reply (the connection dropped, no reply kept). */
static int pipeline(struct cpn_redis *r, redisReply **reps, size_t n, const char *what, struct cpn_error *err) {
        char buf[1024];
        const char *why = NULL;
        size_t got = 0;
        int ret = flush_out(r->c, &why);

        while (!ret && got < n) {
                void *v = NULL;

                ret = read_reply(r->c, buf, sizeof(buf), &v, &why);
                if (!ret)
                        reps[got++] = v;
        }
        if (ret) {
                while (got > 0)
                        freeReplyObject(reps[--got]);
                cpn_error_set(err, -EIO, "redis %s: %s", what, why);
                drop(r);
                return ret;
        }
        r->fresh = false;
        return 0;
}

/* A pipeline that may run twice: once more on a new connection when a kept
 * one turns out closed (as exec_cmd). @append queues the commands on the
 * context and returns how many (at most @max), or -1 when it cannot. */
static int pipeline_safe(struct cpn_redis *r, ssize_t (*append)(redisContext *c, void *ud), void *ud,
                         redisReply **reps, size_t max, size_t *n, const char *what, struct cpn_error *err) {
        for (int attempt = 0;; attempt++) {
                ssize_t k;
                bool again;
                int ret = ensure(r, err);

                if (ret)
                        return ret;
                again = !r->fresh && attempt == 0;
                k = append(r->c, ud);
                if (k < 0 || (size_t)k > max) {
                        drop(r);
                        return cpn_error_set(err, -ENOMEM, "redis %s: cannot queue", what);
                }
                *n = (size_t)k;
                ret = pipeline(r, reps, *n, what, err);
                if (ret == 0)
                        return 0;
                if (ret != -ECONNRESET || !again)
                        return -EIO;
        }
}

struct user_get_args {
        const char *meta, *users, *user_id;
};

static ssize_t append_user_get(redisContext *c, void *ud) {
        const struct user_get_args *a = ud;

        if (redisAppendCommandArgv(c, 2, (const char *[]){ "EXISTS", a->meta },
                                   (size_t[]){ 6, strlen(a->meta) }) != REDIS_OK ||
            redisAppendCommandArgv(c, 3, (const char *[]){ "SISMEMBER", a->users, a->user_id },
                                   (size_t[]){ 9, strlen(a->users), strlen(a->user_id) }) != REDIS_OK)
                return -1;
        return 2;
}

int cpn_store_user_get(struct cpn_redis *r, const char *campaign_id, const char *user_id,
                       bool *issued, struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(users, campaign_id, "users");
        struct user_get_args a = { meta, users, user_id };
        redisReply *rep[2];
        size_t n;
        int ret = pipeline_safe(r, append_user_get, &a, rep, 2, &n, "EXISTS/SISMEMBER", err);

        if (ret)
                return ret;
        if (rep[0]->type != REDIS_REPLY_INTEGER || rep[1]->type != REDIS_REPLY_INTEGER)
                ret = cpn_error_set(err, -EPROTO, "redis EXISTS/SISMEMBER: unexpected reply");
        else if (rep[0]->integer == 0)
                ret = CPN_CAMPAIGN_NOT_FOUND;
        else
                *issued = rep[1]->integer == 1;
        freeReplyObject(rep[0]);
        freeReplyObject(rep[1]);
        return ret;
}

struct xdel_args {
        const struct cpn_issuance *const *items;
        size_t n;
};

/* One XDEL per run of the same campaign, up to 256 ids each, all appended
 * first and read back after: one round trip in all. */
static ssize_t append_xdel(redisContext *c, void *ud) {
        struct xdel_args *a = ud;
        const char *argv[258];
        size_t lens[258];
        char key[CPN_ID_MAX + 32];
        size_t i = 0;
        ssize_t commands = 0;

        while (i < a->n) {
                int argc = 2;

                if (cpn_campaign_key(key, sizeof(key), a->items[i]->campaign_id, "outbox") < 0)
                        return -1; /* ids are validated long before: cannot happen */
                argv[0] = "XDEL";
                argv[1] = key;
                do {
                        argv[argc++] = a->items[i]->outbox_id;
                        i++;
                } while (i < a->n && argc < 258 &&
                         strcmp(a->items[i]->campaign_id, a->items[i - 1]->campaign_id) == 0);
                for (int k = 0; k < argc; k++)
                        lens[k] = strlen(argv[k]);
                if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
                        return -1;
                commands++;
        }
        return commands;
}

int cpn_store_outbox_delete(struct cpn_redis *r, const struct cpn_issuance *const *items, size_t n,
                            struct cpn_error *err) {
        struct xdel_args a = { items, n };
        redisReply *stack[64], **reps = stack;
        size_t commands = 0, max = 1;
        int ret;

        if (n == 0)
                return 0;
        /* As many commands as append_xdel makes: runs of one campaign, cut at 256. */
        for (size_t i = 1, run_len = 1; i < n; i++, run_len++)
                if (run_len == 256 || strcmp(items[i]->campaign_id, items[i - 1]->campaign_id) != 0) {
                        max++;
                        run_len = 0;
                }
        if (max > 64 && !(reps = malloc(max * sizeof(*reps))))
                return cpn_error_set(err, -ENOMEM, "out of memory");
        /* XDEL of an id already gone changes nothing: safe to repeat. */
        ret = pipeline_safe(r, append_xdel, &a, reps, max, &commands, "XDEL", err);
        if (ret == 0) {
                for (size_t i = 0; i < commands; i++) {
                        if (reps[i]->type == REDIS_REPLY_ERROR)
                                ret = cpn_error_set(err, -EPROTO, "redis XDEL: %.*s", (int)reps[i]->len, reps[i]->str);
                        freeReplyObject(reps[i]);
                }
        }
        if (reps != stack)
                free(reps);
        return ret;
}

int cpn_redis_hash_each(struct cpn_redis *r, const char *key,
                        int (*fn)(const char *field, const char *value, void *ud), void *ud, struct cpn_error *err) {
        char cursor[32] = "0";
        int ret = ensure(r, err);

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

int cpn_store_campaigns_each(struct cpn_redis *r, int (*fn)(const char *id, void *ud), void *ud,
                             struct cpn_error *err) {
        redisReply *rep;
        int ret = ensure(r, err);

        if (ret)
                return ret;
        ret = run(r, &rep, err, 2, (const char *[]){ "SMEMBERS", CPN_KEY_CAMPAIGNS },
                  (size_t[]){ 8, strlen(CPN_KEY_CAMPAIGNS) });
        if (ret)
                return ret;
        if (rep->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < rep->elements && ret == 0; i++)
                        if (rep->element[i]->type == REDIS_REPLY_STRING &&
                            cpn_id_valid(rep->element[i]->str, rep->element[i]->len))
                                ret = fn(rep->element[i]->str, ud);
        freeReplyObject(rep);
        return ret;
}

struct backlog_ctx {
        struct cpn_redis *r;
        int64_t total;
        struct cpn_error *err;
};

static int add_backlog(const char *id, void *ud) {
        struct backlog_ctx *b = ud;
        struct cpn_redis *r = b->r;
        struct cpn_error *err = b->err;
        KEY(outbox, id, "outbox");
        redisReply *rep;
        int ret = run(r, &rep, b->err, 2, (const char *[]){ "XLEN", outbox },
                      (size_t[]){ 4, strlen(outbox) });

        if (ret == -EPROTO)
                return 0; /* not a stream (yet): nothing pending */
        if (ret)
                return ret;
        b->total += str_int(rep);
        freeReplyObject(rep);
        return 0;
}

int cpn_store_outbox_backlog(struct cpn_redis *r, int64_t *total, struct cpn_error *err) {
        struct backlog_ctx b = { r, 0, err };
        int ret = cpn_store_campaigns_each(r, add_backlog, &b, err);

        if (ret)
                return ret;
        *total = b.total;
        return 0;
}

int cpn_store_lease_take(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                         const char *what, long ttl_ms, char *holder, size_t holder_n, int64_t *left_ms,
                         struct cpn_error *err) {
        KEY(lease, campaign_id, part);
        char ttl[24];
        redisReply *rep;
        int ret;

        snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
        ret = evalsha(r, S_LEASE, &rep, err, 1, 3, (const char *[]){ lease, token, ttl, what });
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_STRING) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "lease.lua: unexpected reply");
        }
        ret = strcmp(rep->element[0]->str, "ok") == 0 ? 0 : CPN_HELD;
        if (ret == CPN_HELD && rep->elements == 3) {
                if (holder && holder_n)
                        snprintf(holder, holder_n, "%.*s", (int)rep->element[1]->len,
                                 rep->element[1]->str ? rep->element[1]->str : "");
                if (left_ms)
                        *left_ms = str_int(rep->element[2]);
        }
        freeReplyObject(rep);
        return ret;
}

int cpn_store_lease_drop(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                         struct cpn_error *err) {
        KEY(lease, campaign_id, part);
        redisReply *rep;
        int ret = evalsha(r, S_LEASE_DROP, &rep, err, 1, 1, (const char *[]){ lease, token });

        if (ret)
                return ret;
        freeReplyObject(rep);
        return 0;
}

int cpn_store_relay_lease(struct cpn_redis *r, const char *campaign_id, const char *owner,
                          long ttl_ms, struct cpn_error *err) {
        return cpn_store_lease_take(r, campaign_id, "relay", owner, "relay", ttl_ms, NULL, 0, NULL, err);
}

/* The stream id right after "<ms>-<seq>" (XRANGE's start is inclusive;
 * "(" for an exclusive one needs Redis 6.2). */
static int next_stream_id(const char *id, char *out, size_t n) {
        unsigned long long ms, seq;
        char tail;

        if (sscanf(id, "%llu-%llu%c", &ms, &seq, &tail) != 2)
                return -EINVAL;
        if (seq == UINT64_MAX)
                snprintf(out, n, "%llu-0", ms + 1);
        else
                snprintf(out, n, "%llu-%llu", ms, seq + 1);
        return 0;
}

int cpn_store_outbox_stale(struct cpn_redis *r, const char *campaign_id, int64_t age_ms, char *cursor,
                           size_t cursor_n, struct cpn_issuance *out, size_t max, size_t *n, size_t *read,
                           size_t *malformed, struct cpn_error *err) {
        KEY(outbox, campaign_id, "outbox");
        char end[32], cnt[24], start[48];
        redisReply *rep;
        int64_t now;
        int ret = ensure(r, err);

        *n = *read = *malformed = 0;
        if (ret)
                return ret;
        ret = run(r, &rep, err, 1, (const char *[]){ "TIME" }, (size_t[]){ 4 });
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "redis TIME: unexpected reply");
        }
        now = str_int(rep->element[0]) * 1000 + str_int(rep->element[1]) / 1000;
        freeReplyObject(rep);
        if (now - age_ms <= 0)
                return 0;
        if (!cursor[0])
                snprintf(start, sizeof(start), "-");
        else if (next_stream_id(cursor, start, sizeof(start)) < 0)
                return cpn_error_set(err, -EINVAL, "bad outbox cursor");
        snprintf(end, sizeof(end), "%lld", (long long)(now - age_ms));
        snprintf(cnt, sizeof(cnt), "%zu", max);
        ret = run(r, &rep, err, 6, (const char *[]){ "XRANGE", outbox, start, end, "COUNT", cnt },
                  (size_t[]){ 6, strlen(outbox), strlen(start), strlen(end), 5, strlen(cnt) });
        if (ret)
                return ret;
        for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && *n < max; i++) {
                redisReply *e = rep->element[i], *f;
                struct cpn_issuance *iss = &out[*n];
                bool seq_seen = false;

                if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                    e->element[0]->type != REDIS_REPLY_STRING ||
                    e->element[0]->len >= sizeof(iss->outbox_id) || e->element[1]->type != REDIS_REPLY_ARRAY) {
                        (*read)++;
                        (*malformed)++;
                        continue;
                }
                (*read)++;
                snprintf(cursor, cursor_n, "%s", e->element[0]->str);
                memset(iss, 0, sizeof(*iss));
                snprintf(iss->campaign_id, sizeof(iss->campaign_id), "%s", campaign_id);
                memcpy(iss->outbox_id, e->element[0]->str, e->element[0]->len + 1);
                f = e->element[1];
                for (size_t k = 0; k + 1 < f->elements; k += 2) {
                        redisReply *name = f->element[k], *val = f->element[k + 1];

                        if (name->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
                                continue;
                        if (strcmp(name->str, "user_id") == 0 && cpn_user_id_valid(val->str, val->len))
                                memcpy(iss->user_id, val->str, val->len + 1);
                        else if (strcmp(name->str, "seq") == 0) {
                                iss->seq = str_int(val);
                                seq_seen = true;
                        } else if (strcmp(name->str, "issued_at") == 0)
                                iss->issued_at_ms = str_int(val);
                }
                /* seq 0: a user reconcile re-published with no free place
                 * left; the worker takes it like any other. */
                if (!iss->user_id[0] || !seq_seen || iss->seq < 0 || iss->seq > CPN_TOTAL_MAX) {
                        cpn_log_debug("outbox %s entry %s is malformed; left in place", outbox, iss->outbox_id);
                        (*malformed)++;
                        continue;
                }
                (*n)++;
        }
        freeReplyObject(rep);
        return 0;
}

/* ---- operator calls: couponctl reconcile and rebuild ---- */

/* Runs `@cmd coupon:{@campaign_id}:@part`; *@n (may be NULL) gets the
 * integer reply. */
static int key_command(struct cpn_redis *r, const char *cmd, const char *campaign_id, const char *part,
                       int64_t *n, struct cpn_error *err) {
        KEY(key, campaign_id, part);
        redisReply *rep;
        int ret = ensure(r, err);

        if (ret)
                return ret;
        ret = run(r, &rep, err, 2, (const char *[]){ cmd, key }, (size_t[]){ strlen(cmd), strlen(key) });
        if (ret)
                return ret;
        if (n)
                *n = str_int(rep);
        freeReplyObject(rep);
        return 0;
}

int cpn_store_scard(struct cpn_redis *r, const char *campaign_id, const char *part, int64_t *n,
                    struct cpn_error *err) {
        return key_command(r, "SCARD", campaign_id, part, n, err);
}

int cpn_store_scratch_reset(struct cpn_redis *r, const char *campaign_id, const char *part,
                            struct cpn_error *err) {
        return key_command(r, "DEL", campaign_id, part, NULL, err);
}

int cpn_store_scratch_add(struct cpn_redis *r, const char *campaign_id, const char *part,
                          const char *const *users, size_t n, struct cpn_error *err) {
        KEY(key, campaign_id, part);
        const char *argv[2 + 512];
        size_t lens[2 + 512];
        redisReply *rep;
        int ret = ensure(r, err);

        if (ret)
                return ret;
        for (size_t i = 0; i < n;) {
                int argc = 2;

                argv[0] = "SADD";
                argv[1] = key;
                while (i < n && argc < 2 + 512)
                        argv[argc++] = users[i++];
                for (int k = 0; k < argc; k++)
                        lens[k] = strlen(argv[k]);
                ret = run(r, &rep, err, argc, argv, lens);
                if (ret)
                        return ret;
                freeReplyObject(rep);
        }
        /* Scratch keys never outlive a crashed couponctl by long. */
        ret = run(r, &rep, err, 3, (const char *[]){ "EXPIRE", key, "3600" }, (size_t[]){ 6, strlen(key), 4 });
        if (ret)
                return ret;
        freeReplyObject(rep);
        return 0;
}

int cpn_store_outbox_users_into(struct cpn_redis *r, const char *campaign_id, const char *part,
                                int64_t *entries, struct cpn_error *err) {
        KEY(outbox, campaign_id, "outbox");
        KEY(dst, campaign_id, part);
        redisReply *rep;
        int ret = evalsha(r, S_OUTBOX_USERS, &rep, err, 2, 0, (const char *[]){ outbox, dst });

        if (ret)
                return ret;
        *entries = str_int(rep);
        freeReplyObject(rep);
        return 0;
}

int cpn_store_diff_each(struct cpn_redis *r, const char *campaign_id, const char *a, const char *b,
                        int (*fn)(const char *user_id, void *ud), void *ud, struct cpn_error *err) {
        KEY(ka, campaign_id, a);
        KEY(kb, campaign_id, b);
        redisReply *rep;
        int ret = ensure(r, err);

        if (ret)
                return ret;
        ret = run(r, &rep, err, 3, (const char *[]){ "SDIFF", ka, kb }, (size_t[]){ 5, strlen(ka), strlen(kb) });
        if (ret)
                return ret;
        for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && ret == 0; i++)
                if (rep->element[i]->type == REDIS_REPLY_STRING)
                        ret = fn(rep->element[i]->str, ud);
        freeReplyObject(rep);
        return ret;
}

int cpn_store_count_raise(struct cpn_redis *r, const char *campaign_id, int64_t *before, int64_t *after,
                          struct cpn_error *err) {
        KEY(count, campaign_id, "count");
        KEY(users, campaign_id, "users");
        redisReply *rep;
        int ret = evalsha(r, S_COUNT_RAISE, &rep, err, 2, 0, (const char *[]){ count, users });

        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "count_raise.lua: unexpected reply");
        }
        *before = str_int(rep->element[0]);
        *after = str_int(rep->element[1]);
        freeReplyObject(rep);
        return 0;
}

int cpn_store_campaign_pause(struct cpn_redis *r, const struct cpn_campaign *c, bool pause, bool *restored,
                             struct cpn_error *err) {
        KEY(meta, c->id, "meta");
        char total[24], starts[24], ends[24];
        redisReply *rep;
        int ret;

        meta_fields(c, total, starts, ends);
        ret = evalsha(r, S_PAUSE, &rep, err, 2, 6,
                      (const char *[]){ meta, CPN_KEY_CAMPAIGNS, pause ? "1" : "0", c->id, total, starts, ends,
                                        c->name });
        if (ret)
                return ret;
        if (restored)
                *restored = (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) &&
                            strcmp(rep->str, "restored") == 0;
        freeReplyObject(rep);
        return 0;
}

int cpn_store_campaign_rebuild(struct cpn_redis *r, const char *campaign_id, const char *staged,
                               const char *token, int64_t out[4], struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(count, campaign_id, "count");
        KEY(users, campaign_id, "users");
        KEY(tmp, campaign_id, staged);
        KEY(lease, campaign_id, CPN_LEASE_OPS);
        redisReply *rep;
        int ret = evalsha_once(r, S_REBUILD, &rep, err, 5, 1,
                               (const char *[]){ meta, count, users, tmp, lease, token });

        if (ret == -EPROTO && err && strstr(err->msg, "LEASE lost"))
                return cpn_error_set(err, CPN_HELD, "the campaign's operator lease was lost");
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "campaign_rebuild.lua: unexpected reply");
        }
        for (int i = 0; i < 4; i++)
                out[i] = str_int(rep->element[i]);
        freeReplyObject(rep);
        return 0;
}

int cpn_store_outbox_add(struct cpn_redis *r, struct cpn_issuance *iss, const char *token,
                         struct cpn_error *err) {
        KEY(outbox, iss->campaign_id, "outbox");
        KEY(lease, iss->campaign_id, CPN_LEASE_OPS);
        char seq[24], at[24];
        redisReply *rep;
        int ret;

        snprintf(seq, sizeof(seq), "%lld", (long long)iss->seq);
        snprintf(at, sizeof(at), "%lld", (long long)iss->issued_at_ms);
        ret = evalsha_once(r, S_OUTBOX_ADD, &rep, err, 2, 4,
                           (const char *[]){ outbox, lease, token, iss->user_id, seq, at });
        if (ret == -EPROTO && err && strstr(err->msg, "LEASE lost"))
                return cpn_error_set(err, CPN_HELD, "the campaign's operator lease was lost");
        if (ret)
                return ret;
        if (rep->type != REDIS_REPLY_STRING || rep->len >= sizeof(iss->outbox_id)) {
                freeReplyObject(rep);
                return cpn_error_set(err, -EPROTO, "outbox_add.lua: unexpected reply");
        }
        memcpy(iss->outbox_id, rep->str, rep->len + 1);
        freeReplyObject(rep);
        return 0;
}

/* ---- the issue pipe ----
 *
 * Request threads queue their issue calls; one thread (the pipe's) takes
 * everything queued, writes it as one pipelined batch on its own
 * connection, reads the answers in order and hands each to its call's
 * done() callback. Redis then parses, runs and answers a batch per read
 * instead of one script per read, and the service keeps one Redis
 * connection instead of one per HTTP thread. A call is its caller's
 * memory; the pipe touches it no more once done() has returned.
 *
 * Failures keep cpn_store_issue's promises, call by call: a batch that
 * could not be sent (no connection) answers -EIO; a call whose script went
 * out without an answer coming back is asked once more on a new
 * connection, and CPN_UNKNOWN when that fails too; a NOSCRIPT answer
 * reloads the script and runs the call again (the script did not run).
 *
 * When Redis cannot be reached or stops answering (a connect or script
 * load fails, a read times out), the pipe is "down": calls already queued
 * and every new one are refused at once with -EIO, never sent, instead of
 * each waiting out timeouts behind the stalled batch. The pipe thread
 * probes (connects and loads the scripts) every PIPE_PROBE_MS and lets
 * calls through again when that works. A closed connection alone (CLIENT
 * KILL, a restart) does not trip it: the next batch reconnects. */

#define PIPE_BATCH_MAX 512
#define PIPE_READ_BUF 16384
#define PIPE_PROBE_MS 100

struct cpn_store_pipe {
        struct cpn_redis *r;        /* owned; touched by the pipe thread only */
        char *buf;                  /* PIPE_READ_BUF bytes; the pipe thread's */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;          /* the pipe thread waits here for calls; CLOCK_MONOTONIC */
        struct cpn_store_call *head, **tail; /* queued calls, under mu */
        bool stop, idle;            /* under mu */
        bool down;                  /* under mu; set and cleared by the pipe thread */
        char down_why[200];         /* under mu: why it is down */
        struct timespec down_since; /* the pipe thread's */
        _Atomic uint64_t batches, calls, asked_again, refused;
};

/* Hands the answer to the call's owner; @c is not ours after this. */
static void call_done(struct cpn_store_call *c, int ret) {
        c->done(c, ret);
}

/* Answers calls never sent while the pipe is down. */
static void refuse(struct cpn_store_pipe *p, struct cpn_store_call *list, const char *why) {
        for (struct cpn_store_call *c = list, *next; c; c = next) {
                next = c->next;
                atomic_fetch_add_explicit(&p->refused, 1, memory_order_relaxed);
                call_done(c, cpn_error_set(c->err, -EIO, "redis not answering (%s); not sent", why));
        }
}

/* Redis is not answering: refuse calls until a probe works. Those queued
 * now are refused at once, not after the batch in hand has gone through
 * its second attempt. Pipe thread. */
static void trip(struct cpn_store_pipe *p, const char *why) {
        struct cpn_store_call *queued;
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
                cpn_log_warn("redis pipe: %s; issue requests are refused (503) until Redis answers again", why);
        }
        refuse(p, queued, why);
}

/* The attempt failed without an answer after the script went out: ask
 * again once, else the outcome is unknown. Returns true if @c is to be
 * queued again. */
static bool call_lost(struct cpn_store_pipe *p, struct cpn_store_call *c, const char *why) {
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

/* Runs one pass over @list on the pipe's connection. Calls that
 * must go again are linked into *@again; every other call is answered. */
static void pipe_pass(struct cpn_store_pipe *p, struct cpn_store_call *list, struct cpn_store_call **again) {
        struct cpn_redis *r = p->r;
        struct cpn_store_call *c, *next, **again_tail = again;
        struct cpn_error err = { { 0 } };
        const char *why = NULL;
        bool reload = false;
        int ret;

#define AGAIN(call)                          \
        do {                                 \
                (call)->next = NULL;         \
                *again_tail = (call);        \
                again_tail = &(call)->next;  \
        } while (0)

        *again = NULL;
        ret = ensure(r, &err);
        if (ret) {
                if (ret == -EIO)
                        trip(p, err.msg);
                for (c = list; c; c = next) {
                        next = c->next;
                        if (c->asked_again)
                                call_done(c, cpn_error_set(c->err, CPN_UNKNOWN, "%.200s; asking again: %.200s",
                                                           c->first.msg, err.msg));
                        else
                                call_done(c, cpn_error_set(c->err, ret, "%s", err.msg));
                }
                return;
        }
        for (c = list; c; c = c->next) {
                const char *argv[8] = { "EVALSHA", r->sha[S_ISSUE], "4", c->keys[0], c->keys[1],
                                        c->keys[2], c->keys[3], c->user_id };
                size_t lens[8];

                for (int i = 0; i < 8; i++)
                        lens[i] = strlen(argv[i]);
                if (redisAppendCommandArgv(r->c, 8, argv, lens) != REDIS_OK) {
                        /* Nothing went out yet: refuse the whole batch as
                         * unsent (only a call already asked again stays
                         * unknown), and drop what was appended. */
                        for (c = list; c; c = next) {
                                next = c->next;
                                if (c->asked_again)
                                        call_done(c, cpn_error_set(c->err, CPN_UNKNOWN,
                                                                   "%.200s; asking again: redis: out of memory",
                                                                   c->first.msg));
                                else
                                        call_done(c, cpn_error_set(c->err, -ENOMEM, "redis: out of memory"));
                        }
                        drop(r);
                        return;
                }
        }
        /* From here on each call may have run: a failure is an unknown
         * outcome, asked again. */
        flush_out(r->c, &why);
        for (c = list; c; c = next) {
                void *v = NULL;
                redisReply *rep;

                next = c->next;
                if (why || read_reply(r->c, p->buf, PIPE_READ_BUF, &v, &why) < 0) {
                        if (call_lost(p, c, why))
                                AGAIN(c);
                        continue;
                }
                rep = v;
                if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && !c->reloaded) {
                        /* Not run: the script cache was emptied (restart,
                         * failover, SCRIPT FLUSH). */
                        c->reloaded = true;
                        reload = true;
                        AGAIN(c);
                } else if (rep->type == REDIS_REPLY_ERROR && c->asked_again) {
                        call_done(c, cpn_error_set(c->err, CPN_UNKNOWN, "%.200s; asking again: redis EVALSHA: %.*s",
                                                   c->first.msg, (int)(rep->len < 200 ? rep->len : 200), rep->str));
                } else if (rep->type == REDIS_REPLY_ERROR) {
                        call_done(c, cpn_error_set(c->err, -EPROTO, "redis EVALSHA: %.*s", (int)rep->len, rep->str));
                } else {
                        call_done(c, issue_answer(rep, c->campaign_id, c->user_id, c->out, c->err));
                }
                freeReplyObject(rep);
        }
        if (why) {
                cpn_log_debug("redis pipe: %s; reconnecting", why);
                /* A closed connection is retried at once; a server that
                 * does not answer within the timeout is not. */
                if (strcmp(why, "timed out") == 0)
                        trip(p, "redis EVALSHA: timed out");
                drop(r);
        } else if (reload && load_script(r, S_ISSUE, &err) < 0) {
                /* The calls go again anyway: ensure() reloads every script
                 * on the new connection, or answers them. */
                drop(r);
        }
#undef AGAIN
}

/* Down: tries a new connection (connect, scripts loaded: Redis answered).
 * Pipe thread. Returns true when calls may go through again. */
static bool probe(struct cpn_store_pipe *p) {
        struct cpn_error err = { { 0 } };
        struct timespec now;

        if (ensure(p->r, &err) != 0) {
                pthread_mutex_lock(&p->mu);
                snprintf(p->down_why, sizeof(p->down_why), "%.199s", err.msg);
                pthread_mutex_unlock(&p->mu);
                return false;
        }
        pthread_mutex_lock(&p->mu);
        p->down = false;
        pthread_mutex_unlock(&p->mu);
        clock_gettime(CLOCK_MONOTONIC, &now);
        cpn_log_warn("redis pipe: Redis answers again after %.1f s; issuing resumes",
                     (double)(now.tv_sec - p->down_since.tv_sec) +
                             (double)(now.tv_nsec - p->down_since.tv_nsec) / 1e9);
        return true;
}

static void *pipe_main(void *arg) {
        struct cpn_store_pipe *p = arg;

        for (;;) {
                struct cpn_store_call *list, *again, **cut;
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
                for (struct cpn_store_call *c = list, *next; c; c = next) {
                        next = c->next;
                        call_done(c, cpn_error_set(c->err, c->asked_again ? CPN_UNKNOWN : -EPROTO,
                                                   "redis EVALSHA: no answer after three attempts"));
                }
        }
        return NULL;
}

/* Frees what cpn_store_pipe_new set up; its thread is not running. */
static void release(struct cpn_store_pipe *p) {
        cpn_redis_free(p->r);
        free(p->buf);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
}

int cpn_store_pipe_new(struct cpn_store_pipe **ret, const struct cpn_redis_url *url, long timeout_ms,
                       struct cpn_error *err) {
        struct cpn_store_pipe *p = calloc(1, sizeof(*p));
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

struct cpn_store_pipe *cpn_store_pipe_free(struct cpn_store_pipe *p) {
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

void cpn_store_pipe_stats(struct cpn_store_pipe *p, struct cpn_store_pipe_stats *out) {
        out->batches = atomic_load_explicit(&p->batches, memory_order_relaxed);
        out->calls = atomic_load_explicit(&p->calls, memory_order_relaxed);
        out->asked_again = atomic_load_explicit(&p->asked_again, memory_order_relaxed);
        out->refused = atomic_load_explicit(&p->refused, memory_order_relaxed);
        pthread_mutex_lock(&p->mu);
        out->down = p->down;
        pthread_mutex_unlock(&p->mu);
}

int cpn_store_pipe_submit(struct cpn_store_pipe *p, struct cpn_store_call *c) {
        static const char *const parts[4] = { "meta", "count", "users", "outbox" };

        c->next = NULL;
        c->asked_again = c->reloaded = false;
        for (int i = 0; i < 4; i++)
                if (cpn_campaign_key(c->keys[i], sizeof(c->keys[i]), c->campaign_id, parts[i]) < 0)
                        return cpn_error_set(c->err, -EINVAL, "campaign id too long");
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
