#pragma once
/*
 * What redis.c shares with pipe.c, and nobody else: the connection and its
 * reply reader. hiredis types appear only here and in those two files.
 */
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "cpn/store.h"

struct cpn_embedded {
        const char *name;
        const char *text;
};
extern const struct cpn_embedded cpn_lua_files[]; /* lua_embedded.c, made at build time */

struct cpn_redis {
        const struct cpn_redis_url *url; /* borrowed: outlives every handle (main's) */
        long timeout_ms;
        redisContext *c;       /* NULL: not connected (or dropped after an error) */
        bool fresh;            /* connected by this call's ensure(): no reply read on it yet */
        bool setting_up;       /* inside ensure(): AUTH, SELECT */
        char sha[CPN_SCRIPTS_MAX][41]; /* per connection, by embedded file; "" = not loaded yet */
};

/* Connects if needed, first replacing a kept connection the server closed. */
int cpn_redis_ensure(struct cpn_redis *r, struct cpn_error *err);
/* Drops the connection: a context is never used again after an error. */
void cpn_redis_drop(struct cpn_redis *r);
/* Reads one reply through @buf (@cap bytes). Returns 0, -ECONNRESET (closed
 * by the server) or -EIO (timeout, protocol error), reason in *@why. */
int cpn_redis_read_reply(redisContext *c, char *buf, size_t cap, void **out, const char **why);
/* Writes what was appended. Returns 0, -ECONNRESET or -EIO (*@why). */
int cpn_redis_flush(redisContext *c, const char **why);
/* The index of the embedded script @name, or -ENOENT. */
int cpn_redis_script_index(const char *name);
/* SCRIPT LOADs embedded script @idx on the connection (r->sha[@idx]). */
int cpn_redis_script_load(struct cpn_redis *r, int idx, struct cpn_error *err);
/* Hands @rep to @fn as items (see cpn_redis_read_fn). */
int cpn_redis_deliver(const redisReply *rep, cpn_redis_read_fn fn, void *ud, struct cpn_error *err);
