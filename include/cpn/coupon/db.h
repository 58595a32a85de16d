#pragma once
/*
 * The coupon product's own MySQL statements (campaigns, coupons rows, the
 * worker's batches, reconcile's counts and walks), on the db layer's typed
 * statements: no libmysqlclient here. The coupon's failed events are the
 * db layer's, with the campaign as their scope and the user as their
 * subject.
 *
 * Return codes: 0, the outcomes each call lists, or the db layer's
 * negative errnos (-EIO connection lost, -EAGAIN deadlock: retry the
 * whole, -EPROTO), text in @err.
 */
#include <stdbool.h>
#include <stdint.h>

#include "cpn/coupon/campaign.h"
#include "cpn/db.h"
#include "cpn/error.h"

/* Inserts the campaigns row. Returns 0 (inserted), CPN_CAMPAIGN_SAME
 * (present with the fields @c asks for: a repeated create; a create
 * without starts_at, @c->starts_now, matches any stored start) or
 * CPN_CAMPAIGN_EXISTS (present and different); in those three cases
 * *@stored is the row as MySQL has it. Safe to repeat. */
int cpn_coupon_db_insert(struct cpn_db *db, const struct cpn_campaign *c, struct cpn_campaign *stored,
                         struct cpn_error *err);

/* Returns 0 with @out and *@persisted (may be NULL) filled, or
 * CPN_CAMPAIGN_NOT_FOUND. */
int cpn_coupon_db_get(struct cpn_db *db, const char *id, struct cpn_campaign *out, int64_t *persisted,
                      struct cpn_error *err);

/* Sets *@found to whether coupons holds (campaign, user). */
int cpn_coupon_db_coupon_exists(struct cpn_db *db, const char *campaign_id, const char *user_id, bool *found,
                                struct cpn_error *err);

/* Calls @fn for each campaign id in MySQL, in id order; a non-zero return
 * of @fn stops the walk and is returned. */
int cpn_coupon_db_campaigns_each(struct cpn_db *db, int (*fn)(const char *id, void *ud), void *ud,
                                 struct cpn_error *err);

struct cpn_coupon_db_counts {
        int64_t total;
        int64_t rows;        /* COUNT(*) of coupons */
        int64_t persisted;   /* campaigns.persisted */
        int64_t open_failed; /* open failed events of the campaign (of @topic: the coupon topic) */
};
/* Returns 0 or CPN_CAMPAIGN_NOT_FOUND. */
int cpn_coupon_db_counts(struct cpn_db *db, const char *topic, const char *id, struct cpn_coupon_db_counts *out,
                         struct cpn_error *err);

/* Calls @fn for each user holding a coupons row of campaign @id, with its
 * seq, streamed (a campaign may hold millions: @fn must not use @db). A
 * non-zero return of @fn stops the walk and is returned. */
int cpn_coupon_db_users_each(struct cpn_db *db, const char *id, int (*fn)(const char *user_id, int64_t seq, void *ud),
                             void *ud, struct cpn_error *err);
/* The same for the users of the campaign's open failed events of @topic
 * (seq 0). */
int cpn_coupon_db_failed_users_each(struct cpn_db *db, const char *topic, const char *id,
                                    int (*fn)(const char *user_id, int64_t seq, void *ud), void *ud,
                                    struct cpn_error *err);

/* ---- the worker's batches ---- */

/* One message taken from the topic. @iss is NULL when it could not be
 * decoded (@error says why; @campaign_id/@user_id hold what was readable,
 * "" if nothing). Everything is borrowed for the duration of the call. */
struct cpn_coupon_record {
        const struct cpn_issuance *iss;
        const char *error;
        const char *campaign_id;
        const char *user_id;
        const char *topic;
        int32_t partition;
        int64_t offset;
        const void *key;
        size_t key_len;
        const void *payload;
        size_t payload_len;
};

struct cpn_coupon_persist_stats {
        size_t inserted;   /* new rows in coupons */
        size_t duplicates; /* already there: redelivered or produced twice */
        size_t failed;     /* recorded in failed_events (poison, unknown campaign, over the cap, ...) */
};

/*
 * Persists @n records in one transaction: new coupons rows (a row already
 * there changes nothing), each campaign's persisted count raised by the
 * conditional UPDATE that keeps it <= total, and one failed_events row per
 * record that cannot be persisted (decode error, unknown campaign, over the
 * cap, any non-transient SQL error of its own row). The campaigns' rows are
 * locked first, in id order, so concurrent workers neither deadlock nor
 * race on the cap. Returns 0 (committed; @st filled), -EIO (transient:
 * server unreachable, connection lost, commit of unknown outcome, deadlock,
 * lock wait timeout, read-only server) or -EPROTO: in both cases the caller
 * retries the same records later, which is safe because all of it is
 * idempotent.
 */
int cpn_coupon_persist(struct cpn_db *db, const struct cpn_coupon_record *recs, size_t n,
                       const struct cpn_db_retry_policy *pol, struct cpn_coupon_persist_stats *st,
                       struct cpn_error *err);

/* The coupon's retry of one failed event (a cpn_db_failed_apply_fn; @ud
 * unused): decodes the payload and persists it like a batch record. */
int cpn_coupon_failed_apply(struct cpn_db *db, const char *payload, size_t len, struct cpn_error *why, void *ud);

/* Sets campaigns.persisted to the number of coupons rows when they differ
 * (rows deleted by hand, ...), under the campaign's row lock. *@before and
 * *@after say what it was and is. Returns 0, CPN_CAMPAIGN_NOT_FOUND, or
 * CPN_INVALID when the rows exceed total (nothing changed: a person must
 * look). */
int cpn_coupon_db_fix_persisted(struct cpn_db *db, const char *id, int64_t *before, int64_t *after,
                                struct cpn_error *err);
