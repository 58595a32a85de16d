#pragma once
/*
 * The reaper: a thread that ends expired holds. Every COUPON_TICKET_REAP_MS
 * it takes PENDING tickets past their expires_at (and without a payment in
 * flight, which keeps a hold until COUPON_PAYMENT_TIMEOUT_MS after it began)
 * with FOR UPDATE SKIP LOCKED, and in one transaction marks them EXPIRED
 * and gives their stock back (issued - 1, guarded on the status); then the
 * Redis holds go, so the stock is reservable again about a reap interval
 * after expiry. Any number of reapers may run, in any processes: the
 * guarded updates and the skipped locks make that safe.
 *
 * Created and freed by one program's main (coupon-api, coupon-worker); it
 * owns its own MySQL and Redis connections.
 */
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/store.h"

struct cpn_ticket_reaper;

/* @db_url, @redis_url and @cfg are borrowed and must outlive it. Returns 0
 * or a negative errno. */
int cpn_ticket_reaper_new(struct cpn_ticket_reaper **ret, const struct cpn_config *cfg,
                          const struct cpn_db_url *db_url, const struct cpn_redis_url *redis_url,
                          struct cpn_error *err);
/* Queues the Redis hold of @ticket_id for (@type_id, @user_id) to be given
 * back: a reservation whose gate call went unanswered (its script may
 * still run). Any thread; @r may be NULL (nothing queued). */
void cpn_ticket_reaper_give_back(struct cpn_ticket_reaper *r, const char *type_id, const char *user_id,
                                 const char *ticket_id);
/* Stops the thread (after the pass in progress) and frees. Accepts NULL. */
struct cpn_ticket_reaper *cpn_ticket_reaper_free(struct cpn_ticket_reaper *r);
/* Unknown payments it has settled so far (the settler runs in the same
 * thread, before each pass, when COUPON_PAYMENT_URL is set). Any thread. */
uint64_t cpn_ticket_reaper_settled(const struct cpn_ticket_reaper *r);
/* Holds it has ended so far. Any thread. */
uint64_t cpn_ticket_reaper_expired(const struct cpn_ticket_reaper *r);

/* One pass on @db and @redis (the thread's body; couponctl and tests may
 * call it): ends up to @limit expired holds. *@n gets how many. Returns 0
 * or a negative errno. */
int cpn_ticket_reap(struct cpn_db *db, struct cpn_redis *redis, long payment_timeout_ms, size_t limit, size_t *n,
                    struct cpn_error *err);
