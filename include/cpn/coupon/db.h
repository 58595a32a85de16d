#pragma once
/*
 * The coupon product's own MySQL statements (campaigns, coupons rows,
 * reconcile's counts), on the db layer's typed statements: no
 * libmysqlclient here. The worker's batch persistence and the failed
 * events stay in the db layer for now.
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
        int64_t open_failed; /* open failed events of the campaign */
};
/* Returns 0 or CPN_CAMPAIGN_NOT_FOUND. */
int cpn_coupon_db_counts(struct cpn_db *db, const char *id, struct cpn_coupon_db_counts *out,
                         struct cpn_error *err);

/* Sets campaigns.persisted to the number of coupons rows when they differ
 * (rows deleted by hand, ...), under the campaign's row lock. *@before and
 * *@after say what it was and is. Returns 0, CPN_CAMPAIGN_NOT_FOUND, or
 * CPN_INVALID when the rows exceed total (nothing changed: a person must
 * look). */
int cpn_coupon_db_fix_persisted(struct cpn_db *db, const char *id, int64_t *before, int64_t *after,
                                struct cpn_error *err);
