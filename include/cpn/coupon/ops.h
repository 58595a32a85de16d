#pragma once
/*
 * Ops: couponctl's operator commands that look across Redis, MySQL and
 * Kafka at once (failed events, reconcile, rebuild, consumer lag). Each
 * prints its report to @ops->out and returns 0, a positive outcome it
 * lists, or a negative errno with the reason in @err. Called from one
 * thread; a command that changes a campaign (reconcile without --dry-run,
 * rebuild) first takes the campaign's operator lease (store.h), which a
 * thread of its own renews, and answers -EBUSY when another command holds
 * it. Scratch keys are per run.
 */
#include <stdbool.h>
#include <stdio.h>

#include "cpn/config.h"
#include "cpn/coupon/delivery.h"
#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/store.h"

struct cpn_producer;
struct cpn_ops_lease;

/* Fill the first block; the rest is the commands' own (zeroed). */
struct cpn_ops {
        const struct cpn_config *cfg;
        const struct cpn_redis_url *redis_url;
        struct cpn_redis *redis;       /* borrowed */
        struct cpn_db *db;             /* borrowed */
        FILE *out;

        struct cpn_producer *producer; /* owned; created when reconcile re-publishes */
        struct cpn_coupon_outbox *outbox; /* owned: the producer's sink, freed after it */
        struct cpn_topic *topic;       /* the producer's */
        struct cpn_ops_lease *lease;   /* owned: the campaign this run holds, if any */
        char run_id[17];               /* random per run: its scratch keys and lease token */
        char scratch[4][40];           /* the run's scratch parts, "rc:<run>:<name>" */
};

/* Frees what @ops created (the producer, after flushing). */
void cpn_ops_clear(struct cpn_ops *ops);

int cpn_ops_failed_list(struct cpn_ops *ops, const char *status, const char *campaign_id, size_t limit,
                        struct cpn_error *err);

/* Who applies a topic's failed events again (its product's consumer's
 * apply, db.h). */
struct cpn_ops_failed_handler {
        const char *topic;
        cpn_db_failed_apply_fn *apply;
        void *ud;
};
/* Retries the failed event @id (0: every open or dead one) now, each with
 * the handler of its topic; rows of a topic without one are left alone.
 * Prints the totals. CPN_DB_NO_SUCH_EVENT: @id is no open or dead event of
 * those topics. */
int cpn_ops_failed_retry(struct cpn_ops *ops, const struct cpn_ops_failed_handler *h, size_t nh, uint64_t id,
                         struct cpn_error *err);

/* Prints the consumer group's lag. */
int cpn_ops_lag(struct cpn_ops *ops, struct cpn_error *err);

/*
 * For @campaign_id (NULL: every campaign in MySQL) compares Redis's count
 * and user set, MySQL's rows and persisted count, open failed events and
 * the outbox, prints one report line per campaign, and (unless @dry_run)
 * repairs what is safe: users in Redis but nowhere downstream in two looks
 * @grace_s apart are re-published through the outbox; a persisted count
 * that differs from the rows is corrected; a count below the set's size is
 * raised. Returns 0 (consistent, or made so), CPN_CAMPAIGN_DIFFERENT (differences
 * remain: they are printed), or an error.
 */
int cpn_ops_reconcile(struct cpn_ops *ops, const char *campaign_id, long grace_s, bool dry_run,
                      struct cpn_error *err);

/*
 * The end-state check after a load test: waits up to @wait_s for the outbox
 * to drain and the lag to reach 0, then prints one PASS/FAIL line per
 * check (issued = min(total, @users) when @users >= 0, else issued <=
 * total; count = SCARD; every issued user in MySQL; outbox empty; lag 0;
 * Redis = MySQL) and a verdict. Returns 0 (PASS), CPN_CAMPAIGN_DIFFERENT (FAIL),
 * CPN_CAMPAIGN_NOT_FOUND or an error.
 */
int cpn_ops_audit(struct cpn_ops *ops, const char *campaign_id, int64_t users, long wait_s,
                  struct cpn_error *err);

/*
 * Restores a campaign's Redis state from MySQL after Redis lost data:
 * pauses it (writing its meta again if lost), waits up to @wait_s for the
 * workers' lag to reach 0 (unless @force), then sets the user set to
 * MySQL's users + open failed events + outbox users and the count to its
 * size, and resumes. Returns 0, CPN_CAMPAIGN_NOT_FOUND, or an error (the campaign
 * is then left paused: issuing on a half-restored state could oversell).
 */
int cpn_ops_rebuild(struct cpn_ops *ops, const char *campaign_id, long wait_s, bool force,
                    struct cpn_error *err);
