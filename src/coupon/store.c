/*
 * The coupon product's Redis calls on the shared store: keys, scripts and
 * what their answers mean. No hiredis here: replies arrive as items.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/coupon/store.h"
#include "cpn/log.h"

#define KEY(var, campaign, part)                                                 \
        char var[CPN_ID_MAX + 64];                                               \
        if (cpn_campaign_key(var, sizeof(var), campaign, part) < 0)              \
                return cpn_error_set(err, -EINVAL, "campaign id too long")

static bool is_str(const struct cpn_redis_item *it, const char *s) {
        return it->type == CPN_RV_STR && strcmp(it->s, s) == 0;
}

/* ---- issue ---- */

/* What issue.lua answered, as cpn_coupon_store_issue's done() gets it. */
static int issue_answer(const struct cpn_redis_item *v, size_t n, const struct cpn_coupon_issue *c) {
        struct cpn_error *err = c->err;
        struct cpn_issuance *out = c->out;

        if (n < 1 || v[0].type != CPN_RV_STR)
                return cpn_error_set(err, -EPROTO, "issue.lua: unexpected reply");
        if (is_str(&v[0], "issued") && n == 4 && v[2].type == CPN_RV_STR && v[2].len < sizeof(out->outbox_id)) {
                snprintf(out->campaign_id, sizeof(out->campaign_id), "%s", c->campaign_id);
                snprintf(out->user_id, sizeof(out->user_id), "%s", c->user_id);
                out->seq = v[1].i;
                memcpy(out->outbox_id, v[2].s, v[2].len + 1);
                out->issued_at_ms = v[3].i;
                return 0;
        }
        if (is_str(&v[0], "already_issued"))
                return CPN_ISSUE_DUPLICATE;
        if (is_str(&v[0], "sold_out"))
                return CPN_ISSUE_SOLD_OUT;
        if (is_str(&v[0], "not_open"))
                return cpn_error_set(err, CPN_ISSUE_NOT_OPEN, "campaign %s",
                                     n > 1 && is_str(&v[1], "ended") ? "has ended" : "has not started yet");
        if (is_str(&v[0], "not_found"))
                return CPN_CAMPAIGN_NOT_FOUND;
        if (is_str(&v[0], "paused"))
                return CPN_ISSUE_PAUSED;
        return cpn_error_set(err, -EPROTO, "issue.lua: unknown answer '%.32s'", v[0].s);
}

static void issue_done(struct cpn_redis_call *call, int ret, const struct cpn_redis_item *items, size_t n) {
        struct cpn_coupon_issue *c = call->ud;

        if (ret == 0)
                ret = issue_answer(items, n, c);
        c->done(c, ret);
}

int cpn_coupon_store_issue(struct cpn_redis_pipe *p, struct cpn_coupon_issue *c) {
        static const char *const parts[4] = { "meta", "count", "users", "outbox" };
        struct cpn_redis_call *call = &c->call;

        for (int i = 0; i < 4; i++)
                if (cpn_campaign_key(c->keys[i], sizeof(c->keys[i]), c->campaign_id, parts[i]) < 0)
                        return cpn_error_set(c->err, -EINVAL, "campaign id too long");
        memset(call, 0, sizeof(*call));
        call->script = "issue.lua";
        call->nkeys = 4;
        call->nargs = 1;
        for (int i = 0; i < 4; i++)
                call->kv[i] = c->keys[i];
        call->kv[4] = c->user_id;
        /* A lost answer is asked again: see store.h. */
        call->ask_again = true;
        call->err = c->err;
        call->done = issue_done;
        call->ud = c;
        return cpn_redis_pipe_submit(p, call);
}

/* ---- campaigns ---- */

/* The meta hash's numbers as script arguments; "" for an end that never comes. */
static void meta_fields(const struct cpn_campaign *c, char total[24], char starts[24], char ends[24]) {
        snprintf(total, 24, "%lld", (long long)c->total);
        snprintf(starts, 24, "%lld", (long long)c->starts_at_ms);
        if (c->ends_at_ms == CPN_TIME_NEVER)
                ends[0] = '\0';
        else
                snprintf(ends, 24, "%lld", (long long)c->ends_at_ms);
}

struct create_ctx {
        int outcome;
        struct cpn_error *err;
};

static int create_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct create_ctx *x = ud;

        if (n != 1 || v[0].type != CPN_RV_STR)
                return cpn_error_set(x->err, -EPROTO, "campaign_create.lua: unexpected reply");
        x->outcome = is_str(&v[0], "exists") ? CPN_CAMPAIGN_EXISTS : is_str(&v[0], "same") ? CPN_CAMPAIGN_SAME : 0;
        return 0;
}

int cpn_coupon_store_create(struct cpn_redis *r, const struct cpn_campaign *c, struct cpn_error *err) {
        KEY(meta, c->id, "meta");
        KEY(mark, c->id, "create");
        char total[24], starts[24], ends[24], token[33];
        struct create_ctx x = { 0, err };
        bool sent = false;
        int ret;

        /* The script may go twice (once more after a kept connection turned
         * out closed): the token makes the repeat answer "created" again. */
        ret = cpn_random_token(token, sizeof(token));
        if (ret)
                return cpn_error_set(err, ret, "no random bytes for the create token");
        meta_fields(c, total, starts, ends);
        ret = cpn_redis_script_read(r, "campaign_create.lua", true, 2, 5,
                                    (const char *[]){ meta, mark, total, starts, ends, c->name, token },
                                    create_answer, &x, &sent, err);
        if (ret == -EIO && sent)
                return cpn_error_prefix(err, CPN_UNKNOWN, "campaign_create.lua sent, no answer");
        if (ret)
                return ret;
        if (x.outcome == CPN_CAMPAIGN_EXISTS)
                return x.outcome;
        /* Registered after the meta exists: the relay only walks real
         * campaigns. A repeat (CPN_CAMPAIGN_SAME) registers it too, so a create
         * whose SADD failed completes when it is repeated. */
        ret = cpn_redis_command(r, true, 3, (const char *[]){ "SADD", CPN_KEY_CAMPAIGNS, c->id }, NULL, NULL, err);
        if (ret == -EIO)
                return cpn_error_prefix(err, CPN_UNKNOWN, "meta written, not yet registered");
        return ret ? ret : x.outcome;
}

struct get_ctx {
        const char *id;
        struct cpn_campaign_state *out;
        bool found;
        struct cpn_error *err;
};

static int get_answer(const struct cpn_redis_item *e, size_t n, void *ud) {
        struct get_ctx *g = ud;
        struct cpn_campaign_state *out = g->out;

        if (n == 0)
                return 0; /* no meta hash: not found */
        if (n != 8)
                return cpn_error_set(g->err, -EPROTO, "campaign_get.lua: unexpected reply");
        g->found = true;
        memset(out, 0, sizeof(*out));
        snprintf(out->c.id, sizeof(out->c.id), "%s", g->id);
        out->c.total = e[0].i;
        out->c.starts_at_ms = e[1].i;
        out->c.ends_at_ms = e[2].type == CPN_RV_STR && e[2].len ? e[2].i : CPN_TIME_NEVER;
        if (e[3].type == CPN_RV_STR)
                snprintf(out->c.name, sizeof(out->c.name), "%s", e[3].s);
        out->paused = e[4].i == 1;
        out->issued = e[5].i;
        out->now_ms = e[6].i;
        out->outbox_len = e[7].i;
        return 0;
}

int cpn_coupon_store_get(struct cpn_redis *r, const char *campaign_id, struct cpn_campaign_state *out,
                         struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(count, campaign_id, "count");
        KEY(outbox, campaign_id, "outbox");
        struct get_ctx g = { campaign_id, out, false, err };
        int ret = cpn_redis_script_read(r, "campaign_get.lua", true, 3, 0, (const char *[]){ meta, count, outbox },
                                        get_answer, &g, NULL, err);

        if (ret)
                return ret;
        return g.found ? 0 : CPN_CAMPAIGN_NOT_FOUND;
}

struct user_get_ctx {
        int k;       /* replies seen */
        bool exists, member, ok;
};

static int user_get_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct user_get_ctx *u = ud;

        if (n == 1 && v[0].type == CPN_RV_INT) {
                if (u->k == 0)
                        u->exists = v[0].i != 0;
                else
                        u->member = v[0].i == 1;
                u->ok = u->k == 0 || u->ok;
        } else {
                u->ok = false;
        }
        u->k++;
        return 0;
}

int cpn_coupon_store_user_get(struct cpn_redis *r, const char *campaign_id, const char *user_id, bool *issued,
                              struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(users, campaign_id, "users");
        const struct cpn_redis_cmd cmds[2] = {
                { 2, (const char *[]){ "EXISTS", meta } },
                { 3, (const char *[]){ "SISMEMBER", users, user_id } },
        };
        struct user_get_ctx u = { 0 };
        int ret = cpn_redis_batch(r, 2, cmds, user_get_answer, &u, err);

        if (ret)
                return ret;
        if (!u.ok || u.k != 2)
                return cpn_error_set(err, -EPROTO, "redis EXISTS/SISMEMBER: unexpected reply");
        if (!u.exists)
                return CPN_CAMPAIGN_NOT_FOUND;
        *issued = u.member;
        return 0;
}

/* ---- the outbox ---- */

#define XDEL_IDS 256

static int xdel_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct cpn_error *err = ud;

        if (n == 1 && v[0].type == CPN_RV_ERR)
                return cpn_error_set(err, -EPROTO, "redis XDEL: %s", v[0].s);
        return 0;
}

int cpn_coupon_store_outbox_delete(struct cpn_redis *r, const struct cpn_outbox_ref *const *items, size_t n,
                                   struct cpn_error *err) {
        struct cpn_redis_cmd *cmds = NULL;
        const char **argv = NULL;
        char (*keys)[CPN_ID_MAX + 32] = NULL;
        size_t ncmd = 0, nargv = 0;
        int ret;

        if (n == 0)
                return 0;
        /* One XDEL per run of one campaign, at most XDEL_IDS ids each, all
         * in one round trip. At most n commands and n + 2n arguments. */
        cmds = malloc(n * sizeof(*cmds));
        argv = malloc(3 * n * sizeof(*argv));
        keys = malloc(n * sizeof(*keys));
        if (!cmds || !argv || !keys) {
                ret = cpn_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n;) {
                const char **a = &argv[nargv];
                int argc = 2;

                if (cpn_campaign_key(keys[ncmd], sizeof(keys[ncmd]), items[i]->campaign_id, "outbox") < 0) {
                        ret = cpn_error_set(err, -EINVAL, "campaign id too long");
                        goto out;
                }
                a[0] = "XDEL";
                a[1] = keys[ncmd];
                do {
                        a[argc++] = items[i]->outbox_id;
                        i++;
                } while (i < n && argc < 2 + XDEL_IDS && strcmp(items[i]->campaign_id, items[i - 1]->campaign_id) == 0);
                cmds[ncmd].argc = argc;
                cmds[ncmd].argv = a;
                ncmd++;
                nargv += (size_t)argc;
        }
        /* XDEL of an id already gone changes nothing: safe to repeat. */
        ret = cpn_redis_batch(r, ncmd, cmds, xdel_answer, err, err);
out:
        free(cmds);
        free(argv);
        free(keys);
        return ret;
}

struct each_ctx {
        int (*fn)(const char *s, void *ud);
        void *ud;
        bool ids; /* campaign ids: skip what is not one */
};

static int each_member(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct each_ctx *x = ud;

        if (n != 1 || v[0].type != CPN_RV_STR)
                return 0;
        if (x->ids && !cpn_id_valid(v[0].s, v[0].len))
                return 0;
        return x->fn(v[0].s, x->ud);
}

int cpn_coupon_store_campaigns_each(struct cpn_redis *r, int (*fn)(const char *id, void *ud), void *ud,
                                    struct cpn_error *err) {
        struct each_ctx x = { fn, ud, true };

        return cpn_redis_each(r, 2, (const char *[]){ "SMEMBERS", CPN_KEY_CAMPAIGNS }, each_member, &x, err);
}

static int take_int(const struct cpn_redis_item *v, size_t n, void *ud) {
        int64_t *out = ud;

        *out = n == 1 ? v[0].i : 0;
        return 0;
}

struct backlog_ctx {
        struct cpn_redis *r;
        int64_t total;
        struct cpn_error *err;
};

static int add_backlog(const char *id, void *ud) {
        struct backlog_ctx *b = ud;
        struct cpn_error *err = b->err;
        KEY(outbox, id, "outbox");
        int64_t len = 0;
        int ret = cpn_redis_command(b->r, true, 2, (const char *[]){ "XLEN", outbox }, take_int, &len, err);

        if (ret == -EPROTO)
                return 0; /* not a stream (yet): nothing pending */
        if (ret)
                return ret;
        b->total += len;
        return 0;
}

int cpn_coupon_store_outbox_backlog(struct cpn_redis *r, int64_t *total, struct cpn_error *err) {
        struct backlog_ctx b = { r, 0, err };
        int ret = cpn_coupon_store_campaigns_each(r, add_backlog, &b, err);

        if (ret)
                return ret;
        *total = b.total;
        return 0;
}

/* ---- leases ---- */

struct lease_ctx {
        bool ok;
        char *holder;
        size_t holder_n;
        int64_t *left_ms;
        struct cpn_error *err;
};

static int lease_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct lease_ctx *l = ud;

        if (n < 1 || v[0].type != CPN_RV_STR)
                return cpn_error_set(l->err, -EPROTO, "lease.lua: unexpected reply");
        l->ok = is_str(&v[0], "ok");
        if (!l->ok && n == 3) {
                if (l->holder && l->holder_n)
                        snprintf(l->holder, l->holder_n, "%s", v[1].s ? v[1].s : "");
                if (l->left_ms)
                        *l->left_ms = v[2].i;
        }
        return 0;
}

int cpn_coupon_store_lease_take(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                                const char *what, long ttl_ms, char *holder, size_t holder_n, int64_t *left_ms,
                                struct cpn_error *err) {
        KEY(lease, campaign_id, part);
        struct lease_ctx l = { false, holder, holder_n, left_ms, err };
        char ttl[24];
        int ret;

        snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
        ret = cpn_redis_script_read(r, "lease.lua", true, 1, 3, (const char *[]){ lease, token, ttl, what },
                                    lease_answer, &l, NULL, err);
        if (ret)
                return ret;
        return l.ok ? 0 : CPN_HELD;
}

int cpn_coupon_store_lease_drop(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                                struct cpn_error *err) {
        KEY(lease, campaign_id, part);

        return cpn_redis_script_read(r, "lease_drop.lua", true, 1, 1, (const char *[]){ lease, token }, NULL, NULL,
                                     NULL, err);
}

int cpn_coupon_store_relay_lease(struct cpn_redis *r, const char *campaign_id, const char *owner, long ttl_ms,
                                 struct cpn_error *err) {
        return cpn_coupon_store_lease_take(r, campaign_id, "relay", owner, "relay", ttl_ms, NULL, 0, NULL, err);
}

/* ---- the relay's reads ---- */

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

static int time_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        int64_t *now = ud;

        if (n != 2)
                return -EPROTO;
        *now = v[0].i * 1000 + v[1].i / 1000;
        return 0;
}

struct stale_ctx {
        const char *campaign_id, *outbox;
        char *cursor;
        size_t cursor_n;
        struct cpn_issuance *out;
        size_t max, *n, *read, *malformed;
};

/* One XRANGE entry, flattened: id, field, value, ... */
static int stale_entry(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct stale_ctx *x = ud;
        struct cpn_issuance *iss = &x->out[*x->n];
        bool seq_seen = false;

        if (*x->n >= x->max)
                return 0;
        (*x->read)++;
        if (n < 1 || v[0].type != CPN_RV_STR || v[0].len >= sizeof(iss->outbox_id)) {
                (*x->malformed)++;
                return 0;
        }
        snprintf(x->cursor, x->cursor_n, "%s", v[0].s);
        memset(iss, 0, sizeof(*iss));
        snprintf(iss->campaign_id, sizeof(iss->campaign_id), "%s", x->campaign_id);
        memcpy(iss->outbox_id, v[0].s, v[0].len + 1);
        for (size_t k = 1; k + 1 < n; k += 2) {
                const struct cpn_redis_item *name = &v[k], *val = &v[k + 1];

                if (name->type != CPN_RV_STR || val->type != CPN_RV_STR)
                        continue;
                if (strcmp(name->s, "user_id") == 0 && cpn_user_id_valid(val->s, val->len))
                        memcpy(iss->user_id, val->s, val->len + 1);
                else if (strcmp(name->s, "seq") == 0) {
                        iss->seq = val->i;
                        seq_seen = true;
                } else if (strcmp(name->s, "issued_at") == 0)
                        iss->issued_at_ms = val->i;
        }
        /* seq 0: a user reconcile re-published with no free place left;
         * the worker takes it like any other. */
        if (!iss->user_id[0] || !seq_seen || iss->seq < 0 || iss->seq > CPN_TOTAL_MAX) {
                cpn_log_debug("outbox %s entry %s is malformed; left in place", x->outbox, iss->outbox_id);
                (*x->malformed)++;
                return 0;
        }
        (*x->n)++;
        return 0;
}

int cpn_coupon_store_outbox_stale(struct cpn_redis *r, const char *campaign_id, int64_t age_ms, char *cursor,
                                  size_t cursor_n, struct cpn_issuance *out, size_t max, size_t *n, size_t *read,
                                  size_t *malformed, struct cpn_error *err) {
        KEY(outbox, campaign_id, "outbox");
        struct stale_ctx x = { campaign_id, outbox, cursor, cursor_n, out, max, n, read, malformed };
        char end[32], cnt[24], start[48];
        int64_t now = 0;
        int ret;

        *n = *read = *malformed = 0;
        ret = cpn_redis_command(r, true, 1, (const char *[]){ "TIME" }, time_answer, &now, err);
        if (ret == -EPROTO && !now)
                return cpn_error_set(err, -EPROTO, "redis TIME: unexpected reply");
        if (ret)
                return ret;
        if (now - age_ms <= 0)
                return 0;
        if (!cursor[0])
                snprintf(start, sizeof(start), "-");
        else if (next_stream_id(cursor, start, sizeof(start)) < 0)
                return cpn_error_set(err, -EINVAL, "bad outbox cursor");
        snprintf(end, sizeof(end), "%lld", (long long)(now - age_ms));
        snprintf(cnt, sizeof(cnt), "%zu", max);
        return cpn_redis_each(r, 6, (const char *[]){ "XRANGE", outbox, start, end, "COUNT", cnt }, stale_entry, &x,
                              err);
}

/* ---- operator calls: couponctl reconcile and rebuild ---- */

int cpn_coupon_store_scard(struct cpn_redis *r, const char *campaign_id, const char *part, int64_t *n,
                           struct cpn_error *err) {
        KEY(key, campaign_id, part);

        *n = 0;
        return cpn_redis_command(r, true, 2, (const char *[]){ "SCARD", key }, take_int, n, err);
}

int cpn_coupon_store_scratch_reset(struct cpn_redis *r, const char *campaign_id, const char *part,
                                   struct cpn_error *err) {
        KEY(key, campaign_id, part);

        return cpn_redis_command(r, true, 2, (const char *[]){ "DEL", key }, NULL, NULL, err);
}

#define SADD_USERS 512

int cpn_coupon_store_scratch_add(struct cpn_redis *r, const char *campaign_id, const char *part,
                                 const char *const *users, size_t n, struct cpn_error *err) {
        KEY(key, campaign_id, part);
        const char *argv[2 + SADD_USERS];
        int ret;

        for (size_t i = 0; i < n;) {
                int argc = 2;

                argv[0] = "SADD";
                argv[1] = key;
                while (i < n && argc < 2 + SADD_USERS)
                        argv[argc++] = users[i++];
                ret = cpn_redis_command(r, true, argc, argv, NULL, NULL, err);
                if (ret)
                        return ret;
        }
        /* Scratch keys never outlive a crashed couponctl by long. */
        return cpn_redis_command(r, true, 3, (const char *[]){ "EXPIRE", key, "3600" }, NULL, NULL, err);
}

int cpn_coupon_store_outbox_users_into(struct cpn_redis *r, const char *campaign_id, const char *part,
                                       int64_t *entries, struct cpn_error *err) {
        KEY(outbox, campaign_id, "outbox");
        KEY(dst, campaign_id, part);

        *entries = 0;
        return cpn_redis_script_read(r, "outbox_users.lua", true, 2, 0, (const char *[]){ outbox, dst }, take_int,
                                     entries, NULL, err);
}

int cpn_coupon_store_diff_each(struct cpn_redis *r, const char *campaign_id, const char *a, const char *b,
                               int (*fn)(const char *user_id, void *ud), void *ud, struct cpn_error *err) {
        KEY(ka, campaign_id, a);
        KEY(kb, campaign_id, b);
        struct each_ctx x = { fn, ud, false };

        return cpn_redis_each(r, 3, (const char *[]){ "SDIFF", ka, kb }, each_member, &x, err);
}

struct pair_ctx {
        size_t want; /* values expected */
        int64_t *all;
        struct cpn_error *err;
        const char *what;
};

static int take_ints(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct pair_ctx *x = ud;

        if (n != x->want)
                return cpn_error_set(x->err, -EPROTO, "%s: unexpected reply", x->what);
        for (size_t i = 0; i < n; i++)
                x->all[i] = v[i].i;
        return 0;
}

int cpn_coupon_store_count_raise(struct cpn_redis *r, const char *campaign_id, int64_t *before, int64_t *after,
                                 struct cpn_error *err) {
        KEY(count, campaign_id, "count");
        KEY(users, campaign_id, "users");
        int64_t v[2];
        struct pair_ctx x = { .want = 2, .all = v, .err = err, .what = "count_raise.lua" };
        int ret = cpn_redis_script_read(r, "count_raise.lua", true, 2, 0, (const char *[]){ count, users }, take_ints,
                                        &x, NULL, err);

        if (ret)
                return ret;
        *before = v[0];
        *after = v[1];
        return 0;
}

static int restored_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        bool *restored = ud;

        *restored = n == 1 && is_str(&v[0], "restored");
        return 0;
}

int cpn_coupon_store_pause(struct cpn_redis *r, const struct cpn_campaign *c, bool pause, bool *restored,
                           struct cpn_error *err) {
        KEY(meta, c->id, "meta");
        char total[24], starts[24], ends[24];
        bool dummy = false;

        meta_fields(c, total, starts, ends);
        return cpn_redis_script_read(r, "campaign_pause.lua", true, 2, 6,
                                     (const char *[]){ meta, CPN_KEY_CAMPAIGNS, pause ? "1" : "0", c->id, total,
                                                       starts, ends, c->name },
                                     restored_answer, restored ? restored : &dummy, NULL, err);
}

/* A script's error reply saying the operator lease was lost: CPN_HELD. */
static int lease_lost(int ret, struct cpn_error *err) {
        if (ret == -EPROTO && err && strstr(err->msg, "LEASE lost"))
                return cpn_error_set(err, CPN_HELD, "the campaign's operator lease was lost");
        return ret;
}

int cpn_coupon_store_rebuild(struct cpn_redis *r, const char *campaign_id, const char *staged, const char *token,
                             int64_t out[4], struct cpn_error *err) {
        KEY(meta, campaign_id, "meta");
        KEY(count, campaign_id, "count");
        KEY(users, campaign_id, "users");
        KEY(tmp, campaign_id, staged);
        KEY(lease, campaign_id, CPN_LEASE_OPS);
        struct pair_ctx x = { .want = 4, .all = out, .err = err, .what = "campaign_rebuild.lua" };

        return lease_lost(cpn_redis_script_read(r, "campaign_rebuild.lua", false, 5, 1,
                                                (const char *[]){ meta, count, users, tmp, lease, token }, take_ints,
                                                &x, NULL, err),
                          err);
}

struct add_ctx {
        struct cpn_issuance *iss;
        struct cpn_error *err;
};

static int add_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        struct add_ctx *x = ud;

        if (n != 1 || v[0].type != CPN_RV_STR || v[0].len >= sizeof(x->iss->outbox_id))
                return cpn_error_set(x->err, -EPROTO, "outbox_add.lua: unexpected reply");
        memcpy(x->iss->outbox_id, v[0].s, v[0].len + 1);
        return 0;
}

int cpn_coupon_store_outbox_add(struct cpn_redis *r, struct cpn_issuance *iss, const char *token,
                                struct cpn_error *err) {
        KEY(outbox, iss->campaign_id, "outbox");
        KEY(lease, iss->campaign_id, CPN_LEASE_OPS);
        struct add_ctx x = { iss, err };
        char seq[24], at[24];

        snprintf(seq, sizeof(seq), "%lld", (long long)iss->seq);
        snprintf(at, sizeof(at), "%lld", (long long)iss->issued_at_ms);
        return lease_lost(cpn_redis_script_read(r, "outbox_add.lua", false, 2, 4,
                                                (const char *[]){ outbox, lease, token, iss->user_id, seq, at },
                                                add_answer, &x, NULL, err),
                          err);
}
