#pragma once
/*
 * Store: everything the service keeps in Redis, behind domain calls. Works
 * with hiredis (which no other module sees) and the scripts of lua/, which
 * are embedded at build time, loaded with SCRIPT LOAD and run by EVALSHA;
 * a NOSCRIPT answer (Redis restarted, failed over, SCRIPT FLUSH) reloads
 * the script and retries once.
 *
 * A struct cpn_redis is one connection owned by one thread; it is never
 * shared. It connects lazily on first use and, after any I/O or protocol
 * error, is dropped and reconnected by the next call: a context is never
 * reused after an error.
 *
 * Return codes of every call: 0 on success; the positive outcomes each call
 * lists; -EIO when Redis cannot be reached or the connection broke (the
 * request had no effect, or an unknown one for writes: see cpn_store_issue),
 * -EPROTO for an unexpected reply (an error reply such as OOM included),
 * -ENOMEM. The text is in @err.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/types.h"
#include "cpn/coupon/campaign.h"

struct cpn_redis_url {
        char host[256];
        int port;
        int db;
        char user[128];
        char password[256];
        char unix_path[256]; /* redis+unix:///path or unix:///path */
};

struct cpn_redis;

/* Parses redis://[[user]:password@]host[:port][/db] and unix:///path[?db=N].
 * Returns 0 or CPN_INVALID. */
int cpn_redis_url_parse(struct cpn_redis_url *out, const char *url, struct cpn_error *err);

/* Creates an unconnected handle. @timeout_ms bounds connect and each reply.
 * @url is borrowed and must outlive the handle. */
int cpn_redis_new(struct cpn_redis **ret, const struct cpn_redis_url *url, long timeout_ms);
struct cpn_redis *cpn_redis_free(struct cpn_redis *r);

/* Connects if needed and PINGs. */
int cpn_store_ping(struct cpn_redis *r, struct cpn_error *err);

/* ---- any product's scripts ---- */

#define CPN_SCRIPTS_MAX 32       /* embedded Lua files */
#define CPN_REDIS_VALUES_MAX 8

/* One value of a script's answer, without hiredis's types. */
struct cpn_redis_value {
        enum { CPN_RV_NIL, CPN_RV_INT, CPN_RV_STR } type;
        long long i;  /* INT; for STR, its leading integer (0 if none) */
        char s[128];  /* STR, NUL-terminated, cut to 127 bytes */
        size_t len;
};

/* A script's answer: the elements of an array reply (the first
 * CPN_REDIS_VALUES_MAX), or one value. */
struct cpn_redis_answer {
        size_t n;
        struct cpn_redis_value v[CPN_REDIS_VALUES_MAX];
};

/*
 * Runs the embedded script @name (its file name under lua/, e.g.
 * "reserve.lua") with @nkeys keys then @nargs arguments from @kv (at most
 * 13 together). Loaded on first use on this connection; a NOSCRIPT answer
 * reloads it once. @safe: the script may run twice (see cpn_store_issue on
 * what a lost answer means otherwise). *@sent (may be NULL) becomes true
 * once the call was handed to the socket: after a failure from then on,
 * the script may have run. Returns 0 with @out filled, -EIO, -EPROTO (an
 * error reply, such as a script's own error), -ENOENT (no such script).
 */
int cpn_redis_script(struct cpn_redis *r, const char *name, bool safe, int nkeys, int nargs, const char **kv,
                     struct cpn_redis_answer *out, bool *sent, struct cpn_error *err);

/* Calls @fn for every field of the hash @key (HSCAN: a field changed
 * meanwhile may be seen twice or not at all; strings borrowed for the
 * call). A non-zero return of @fn stops the walk and is returned. */
int cpn_redis_hash_each(struct cpn_redis *r, const char *key,
                        int (*fn)(const char *field, const char *value, void *ud), void *ud, struct cpn_error *err);

/*
 * Runs lua/issue.lua for (@campaign_id, @user_id), both already validated.
 * Returns 0 with @out filled (seq, outbox id, issued_at), CPN_ISSUE_DUPLICATE,
 * CPN_ISSUE_SOLD_OUT, CPN_ISSUE_NOT_OPEN, CPN_ISSUE_PAUSED, CPN_CAMPAIGN_NOT_FOUND,
 * CPN_UNKNOWN or a negative errno. A negative errno means the script was
 * not sent (no connection): nothing was issued. When the connection fails
 * after the script was sent, it is asked again once on a new connection
 * (the answers above are then true of the first attempt too); CPN_UNKNOWN
 * means that failed as well: the script may or may not have run, and the
 * caller must claim neither (a later retry by the client answers 202 or
 * 409).
 */
int cpn_store_issue(struct cpn_redis *r, const char *campaign_id, const char *user_id,
                    struct cpn_issuance *out, struct cpn_error *err);

/*
 * The issue pipe: cpn_store_issue for many threads over one connection.
 * Calls queued by any number of threads are written to Redis as one
 * pipelined batch by the pipe's own thread, which reads the answers in
 * order and hands each to its call's done(); Redis then runs a batch per
 * read instead of one script per read. Owned by main; created before and
 * freed after every caller.
 */
struct cpn_store_pipe;

/* One issue call. The caller owns its memory and fills the first block;
 * the rest is the pipe's. */
struct cpn_store_call {
        const char *campaign_id, *user_id; /* validated; borrowed until done() */
        struct cpn_issuance *out;          /* filled before done(ret == 0) */
        struct cpn_error *err;             /* never NULL; set before done(ret != 0) */
        /* Runs on the pipe's thread with cpn_store_issue's answer (its
         * codes and promises). From its return on the pipe no longer
         * touches @c, so done() may hand @c back to a thread that frees it;
         * it must not block on I/O (every later call waits for it). */
        void (*done)(struct cpn_store_call *c, int ret);
        void *ud;
        /* the pipe's */
        struct cpn_store_call *next;
        bool asked_again, reloaded;
        struct cpn_error first;
        char keys[4][CPN_ID_MAX + 32];
};

/* Starts the pipe's thread; it connects on the first call (and again after
 * any error). @timeout_ms bounds connect and each read and write. Returns
 * 0, -ENOMEM or a negative errno from pthread_create (text in @err). */
int cpn_store_pipe_new(struct cpn_store_pipe **ret, const struct cpn_redis_url *url, long timeout_ms,
                       struct cpn_error *err);
/* Answers every call already queued, then stops the thread. Accepts NULL. */
struct cpn_store_pipe *cpn_store_pipe_free(struct cpn_store_pipe *p);
/*
 * Queues @c; its done() follows after at most three attempts of connect,
 * write and read, each syscall bounded by @timeout_ms, once the batches
 * queued before it are through. When Redis stops answering (a connect or
 * script load fails, a read times out) the pipe is down until a probe
 * works: queued calls are answered -EIO unsent, and new ones refused here.
 * So with Redis stalled (SIGSTOP) a call already sent waits about two
 * timeouts (then CPN_UNKNOWN), one not sent at most about one.
 * Returns 0, or without queueing (done() is not called) -EINVAL (campaign
 * id too long), -EIO (the pipe is down; not sent) or -ESHUTDOWN (the pipe
 * is being freed), text in @c->err. Any thread.
 */
int cpn_store_pipe_submit(struct cpn_store_pipe *p, struct cpn_store_call *c);
struct cpn_store_pipe_stats {
        uint64_t batches;     /* written so far */
        uint64_t calls;       /* carried by them: calls/batches is the mean batch */
        uint64_t asked_again; /* calls whose answer was lost and that were sent again */
        uint64_t refused;     /* calls refused unsent while Redis was not answering */
        bool down;            /* Redis not answering now: calls are refused */
};
/* Any thread. */
void cpn_store_pipe_stats(struct cpn_store_pipe *p, struct cpn_store_pipe_stats *out);

/* Creates the meta hash and registers the campaign for the relay.
 * Returns 0 (created), CPN_CAMPAIGN_SAME (there with identical fields), CPN_CAMPAIGN_EXISTS. */
int cpn_store_campaign_create(struct cpn_redis *r, const struct cpn_campaign *c,
                              struct cpn_error *err);

/* Returns 0 with @out filled, or CPN_CAMPAIGN_NOT_FOUND. */
int cpn_store_campaign_get(struct cpn_redis *r, const char *campaign_id,
                           struct cpn_campaign_state *out, struct cpn_error *err);

/* Sets *@issued to whether @user_id is in the campaign's user set.
 * Returns 0 or CPN_CAMPAIGN_NOT_FOUND (no such campaign). */
int cpn_store_user_get(struct cpn_redis *r, const char *campaign_id, const char *user_id,
                       bool *issued, struct cpn_error *err);

/* Removes delivered outbox entries, all in one pipelined round trip. */
int cpn_store_outbox_delete(struct cpn_redis *r, const struct cpn_issuance *const *items,
                            size_t n, struct cpn_error *err);

/* Lists the campaign ids registered for the relay. @fn is called for each;
 * a non-zero return from it stops the walk and is returned. */
int cpn_store_campaigns_each(struct cpn_redis *r, int (*fn)(const char *id, void *ud),
                             void *ud, struct cpn_error *err);

/* Sum of the outbox lengths of every registered campaign. */
int cpn_store_outbox_backlog(struct cpn_redis *r, int64_t *total, struct cpn_error *err);

/* Takes the campaign's relay lease for @ttl_ms if free or already ours
 * (@owner). Returns 0 if held, CPN_HELD if another relay holds it. */
int cpn_store_relay_lease(struct cpn_redis *r, const char *campaign_id, const char *owner,
                          long ttl_ms, struct cpn_error *err);

/* Reads up to @max outbox entries of @campaign_id older than @age_ms by
 * Redis's clock, oldest first, after the entry id in @cursor ("" = from
 * the start; @cursor_n bytes), which is set to the last entry read. The
 * well-formed ones go to @out (*@n of them); *@read counts every entry
 * read, *@malformed those left in place (no user, no seq): a full page
 * (*@read == @max) means more may follow. Entries that cannot be sent
 * never stop the ones behind them. */
int cpn_store_outbox_stale(struct cpn_redis *r, const char *campaign_id, int64_t age_ms, char *cursor,
                           size_t cursor_n, struct cpn_issuance *out, size_t max, size_t *n, size_t *read,
                           size_t *malformed, struct cpn_error *err);

/* ---- leases ----
 * A lease, "coupon:{<id>}:<part>", says who works on a campaign: the part
 * CPN_LEASE_OPS is held by one couponctl command that changes it
 * (reconcile, rebuild) at a time, "relay" by one coupon-api's relay. Its
 * value is "<token> <what>". A holder renews it well within @ttl_ms; one
 * that dies lets it expire. */
#define CPN_LEASE_OPS "ops"

/* Takes the lease @part of @campaign_id for @token (unique per run), or
 * renews it if it is @token's already. Returns 0, or CPN_HELD when
 * another holds it: @holder (may be NULL) gets its @what, *@left_ms (may be
 * NULL) how long it has left. Any thread, on its own handle. */
int cpn_store_lease_take(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                         const char *what, long ttl_ms, char *holder, size_t holder_n, int64_t *left_ms,
                         struct cpn_error *err);

/* Drops the lease if it is still @token's. */
int cpn_store_lease_drop(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                         struct cpn_error *err);

/* ---- operator calls (couponctl reconcile / rebuild) ----
 * @part names a key of the campaign, "coupon:{<id>}:<part>": "users", or a
 * scratch set of couponctl ("rc:mysql", ...), which expires after an hour. */

/* *@n = SCARD of the part. */
int cpn_store_scard(struct cpn_redis *r, const char *campaign_id, const char *part, int64_t *n,
                    struct cpn_error *err);
/* Deletes a scratch key. */
int cpn_store_scratch_reset(struct cpn_redis *r, const char *campaign_id, const char *part,
                            struct cpn_error *err);
/* SADDs @users (validated ids) to a scratch set, 512 per command. */
int cpn_store_scratch_add(struct cpn_redis *r, const char *campaign_id, const char *part,
                          const char *const *users, size_t n, struct cpn_error *err);
/* Adds the user of every outbox entry to the set @part; *@entries = how
 * many entries the outbox has. */
int cpn_store_outbox_users_into(struct cpn_redis *r, const char *campaign_id, const char *part,
                                int64_t *entries, struct cpn_error *err);
/* Calls @fn for each member of @a not in @b (SDIFF). */
int cpn_store_diff_each(struct cpn_redis *r, const char *campaign_id, const char *a, const char *b,
                        int (*fn)(const char *user_id, void *ud), void *ud, struct cpn_error *err);
/* Raises count to SCARD(users) when below it (never lowers). */
int cpn_store_count_raise(struct cpn_redis *r, const char *campaign_id, int64_t *before, int64_t *after,
                          struct cpn_error *err);
/* Pauses or resumes issuing (issue answers CPN_ISSUE_PAUSED meanwhile);
 * writes the meta hash again from @c if it is missing (*@restored). */
int cpn_store_campaign_pause(struct cpn_redis *r, const struct cpn_campaign *c, bool pause, bool *restored,
                             struct cpn_error *err);
/* Atomically, while @token holds the campaign's CPN_LEASE_OPS lease:
 * users := the staged set, count := its size, resumed. The caller stages
 * the outbox's users too (cpn_store_outbox_users_into) while the campaign
 * is paused. @out: count before, count after, users before, users after.
 * Returns 0, CPN_HELD (the lease is not @token's: nothing changed). */
int cpn_store_campaign_rebuild(struct cpn_redis *r, const char *campaign_id, const char *staged,
                               const char *token, int64_t out[4], struct cpn_error *err);
/* Appends @iss to its campaign's outbox (fills outbox_id) while @token
 * holds the campaign's CPN_LEASE_OPS lease: the relay delivers it if
 * nobody else does. Returns 0 or CPN_HELD (the lease is not @token's). */
int cpn_store_outbox_add(struct cpn_redis *r, struct cpn_issuance *iss, const char *token,
                         struct cpn_error *err);
