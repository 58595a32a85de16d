#pragma once
/*
 * The coupon product's Redis calls: the key layout of the contract
 * ("coupon:{<campaign_id>}:<part>"), its scripts (lua/coupon/) and what
 * their answers mean, on the shared store (store.h). Every call runs on
 * the caller's own struct cpn_redis, except the issue, which goes through
 * the shared pipe.
 *
 * Return codes: 0, the outcomes each call lists, or store.h's negative
 * errnos (-EIO: Redis unreachable or the connection broke; -EPROTO: an
 * unexpected reply), text in @err.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/coupon/campaign.h"
#include "cpn/error.h"
#include "cpn/store.h"

/*
 * One issue call through the pipe (lua/coupon/issue.lua for a validated
 * campaign and user). The caller owns its memory and fills the first block.
 *
 * done() runs on the pipe's thread with 0 (@out filled), CPN_ISSUE_DUPLICATE,
 * CPN_ISSUE_SOLD_OUT, CPN_ISSUE_NOT_OPEN, CPN_ISSUE_PAUSED,
 * CPN_CAMPAIGN_NOT_FOUND, CPN_UNKNOWN or a negative errno. A negative errno
 * means nothing was issued. When the answer of a script that went out was
 * lost, it is asked again once on a new connection: the script is safe to
 * repeat and its second answer is true of the first ("issued" means the
 * first did not issue; "already issued" that the user holds a coupon
 * either way). CPN_UNKNOWN means that failed as well: the script may or may
 * not have run, and the caller must claim neither (a later retry by the
 * client answers 202 or 409). done() must not block; the pipe no longer
 * touches @c once it returns.
 */
struct cpn_coupon_issue {
        const char *campaign_id, *user_id; /* validated; borrowed until done() */
        struct cpn_issuance *out;          /* filled before done(ret == 0) */
        struct cpn_error *err;             /* never NULL; set before done(ret != 0) */
        void (*done)(struct cpn_coupon_issue *c, int ret);
        void *ud;
        /* store.c's */
        struct cpn_redis_call call;
        char keys[4][CPN_ID_MAX + 32];
};

/* Queues @c on @p. Returns 0 (done() follows), or without queueing -EINVAL,
 * -EIO (the pipe is down: not sent) or -ESHUTDOWN, text in @c->err. Any
 * thread. */
int cpn_coupon_store_issue(struct cpn_redis_pipe *p, struct cpn_coupon_issue *c);

/* Creates the meta hash and registers the campaign for the relay.
 * Returns 0 (created), CPN_CAMPAIGN_SAME (there with identical fields),
 * CPN_CAMPAIGN_EXISTS, CPN_UNKNOWN (sent, no answer). */
int cpn_coupon_store_create(struct cpn_redis *r, const struct cpn_campaign *c, struct cpn_error *err);

/* Returns 0 with @out filled, or CPN_CAMPAIGN_NOT_FOUND. */
int cpn_coupon_store_get(struct cpn_redis *r, const char *campaign_id, struct cpn_campaign_state *out,
                         struct cpn_error *err);

/* Sets *@issued to whether @user_id is in the campaign's user set.
 * Returns 0 or CPN_CAMPAIGN_NOT_FOUND (no such campaign). */
int cpn_coupon_store_user_get(struct cpn_redis *r, const char *campaign_id, const char *user_id, bool *issued,
                              struct cpn_error *err);

/* Removes delivered outbox entries, all in one pipelined round trip. */
int cpn_coupon_store_outbox_delete(struct cpn_redis *r, const struct cpn_outbox_ref *const *items, size_t n,
                                   struct cpn_error *err);

/* Lists the campaign ids registered for the relay. @fn is called for each;
 * a non-zero return from it stops the walk and is returned. */
int cpn_coupon_store_campaigns_each(struct cpn_redis *r, int (*fn)(const char *id, void *ud), void *ud,
                                    struct cpn_error *err);

/* Sum of the outbox lengths of every registered campaign. */
int cpn_coupon_store_outbox_backlog(struct cpn_redis *r, int64_t *total, struct cpn_error *err);

/* Takes the campaign's relay lease for @ttl_ms if free or already ours
 * (@owner). Returns 0 if held, CPN_HELD if another relay holds it. */
int cpn_coupon_store_relay_lease(struct cpn_redis *r, const char *campaign_id, const char *owner, long ttl_ms,
                                 struct cpn_error *err);

/* Reads up to @max outbox entries of @campaign_id older than @age_ms by
 * Redis's clock, oldest first, after the entry id in @cursor ("" = from
 * the start; @cursor_n bytes), which is set to the last entry read. The
 * well-formed ones go to @out (*@n of them); *@read counts every entry
 * read, *@malformed those left in place (no user, no seq): a full page
 * (*@read == @max) means more may follow. Entries that cannot be sent
 * never stop the ones behind them. */
int cpn_coupon_store_outbox_stale(struct cpn_redis *r, const char *campaign_id, int64_t age_ms, char *cursor,
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
int cpn_coupon_store_lease_take(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                                const char *what, long ttl_ms, char *holder, size_t holder_n, int64_t *left_ms,
                                struct cpn_error *err);

/* Drops the lease if it is still @token's. */
int cpn_coupon_store_lease_drop(struct cpn_redis *r, const char *campaign_id, const char *part, const char *token,
                                struct cpn_error *err);

/* ---- operator calls (couponctl reconcile / rebuild) ----
 * @part names a key of the campaign, "coupon:{<id>}:<part>": "users", or a
 * scratch set of couponctl ("rc:mysql", ...), which expires after an hour. */

/* *@n = SCARD of the part. */
int cpn_coupon_store_scard(struct cpn_redis *r, const char *campaign_id, const char *part, int64_t *n,
                           struct cpn_error *err);
/* Deletes a scratch key. */
int cpn_coupon_store_scratch_reset(struct cpn_redis *r, const char *campaign_id, const char *part,
                                   struct cpn_error *err);
/* SADDs @users (validated ids) to a scratch set, 512 per command. */
int cpn_coupon_store_scratch_add(struct cpn_redis *r, const char *campaign_id, const char *part,
                                 const char *const *users, size_t n, struct cpn_error *err);
/* Adds the user of every outbox entry to the set @part; *@entries = how
 * many entries the outbox has. */
int cpn_coupon_store_outbox_users_into(struct cpn_redis *r, const char *campaign_id, const char *part,
                                       int64_t *entries, struct cpn_error *err);
/* Calls @fn for each member of @a not in @b (SDIFF). */
int cpn_coupon_store_diff_each(struct cpn_redis *r, const char *campaign_id, const char *a, const char *b,
                               int (*fn)(const char *user_id, void *ud), void *ud, struct cpn_error *err);
/* Raises count to SCARD(users) when below it (never lowers). */
int cpn_coupon_store_count_raise(struct cpn_redis *r, const char *campaign_id, int64_t *before, int64_t *after,
                                 struct cpn_error *err);
/* Pauses or resumes issuing (issue answers CPN_ISSUE_PAUSED meanwhile);
 * writes the meta hash again from @c if it is missing (*@restored). */
int cpn_coupon_store_pause(struct cpn_redis *r, const struct cpn_campaign *c, bool pause, bool *restored,
                           struct cpn_error *err);
/* Atomically, while @token holds the campaign's CPN_LEASE_OPS lease:
 * users := the staged set, count := its size, resumed. The caller stages
 * the outbox's users too (cpn_coupon_store_outbox_users_into) while the
 * campaign is paused. @out: count before, count after, users before, users
 * after. Returns 0, CPN_HELD (the lease is not @token's: nothing changed). */
int cpn_coupon_store_rebuild(struct cpn_redis *r, const char *campaign_id, const char *staged, const char *token,
                             int64_t out[4], struct cpn_error *err);
/* Appends @iss to its campaign's outbox (fills outbox_id) while @token
 * holds the campaign's CPN_LEASE_OPS lease: the relay delivers it if
 * nobody else does. Returns 0 or CPN_HELD (the lease is not @token's). */
int cpn_coupon_store_outbox_add(struct cpn_redis *r, struct cpn_issuance *iss, const char *token,
                                struct cpn_error *err);
