#pragma once
/*
 * Service: the domain calls handlers make, one per request. It composes the
 * store (Redis), the producer (Kafka) and the db (MySQL) and holds no lock
 * across their I/O. struct cpn_service is shared by all threads and
 * read-only after creation; struct cpn_session is one thread's own set of
 * connections (Redis, a delivery waiter), created lazily; MySQL is
 * borrowed from the service's pool per call.
 */
#include <stdbool.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/error.h"
#include "cpn/events.h"
#include "cpn/store.h"
#include "cpn/coupon/campaign.h"
#include "cpn/db.h"
#include "cpn/types.h"

struct cpn_service {
        const struct cpn_config *cfg;
        struct cpn_redis_url redis_url;
        struct cpn_db_url db_url;
        struct cpn_producer *producer; /* borrowed; owned by main */
        struct cpn_topic *topic;       /* COUPON_KAFKA_TOPIC, the producer's */
        struct cpn_redis_pipe *pipe;   /* borrowed; owned by main: every issue goes through it */
        struct cpn_db_pool *db_pool;   /* borrowed; owned by main */
};

struct cpn_session;

int cpn_session_new(struct cpn_session **ret, const struct cpn_service *svc);
struct cpn_session *cpn_session_free(struct cpn_session *s);

/*
 * Decides in Redis (through the pipe), then hands off to Kafka, waiting up to
 * COUPON_KAFKA_ACK_TIMEOUT_MS for the delivery report. Returns 0 (issued:
 * @out filled; *@delivery is 0, CPN_DELIVERY_PENDING or _FAILED: the
 * outbox carries what Kafka does not have yet), CPN_ISSUE_DUPLICATE,
 * CPN_ISSUE_SOLD_OUT, CPN_ISSUE_NOT_OPEN, CPN_ISSUE_PAUSED, CPN_CAMPAIGN_NOT_FOUND,
 * CPN_UNKNOWN (Redis was lost after the script was sent: it may have run;
 * if it did, the outbox carries it) or a negative errno (Redis unreachable:
 * nothing was issued).
 */
int cpn_service_issue(struct cpn_session *s, const char *campaign_id, const char *user_id,
                      struct cpn_issuance *out, int *delivery, struct cpn_error *err);

/*
 * Writes the MySQL row, then the Redis meta (from MySQL's row). Returns 0
 * (created: exactly one of any number of identical creates gets it),
 * CPN_CAMPAIGN_SAME (it exists with these fields), CPN_CAMPAIGN_EXISTS (it exists with other
 * fields), and when the answer must say how far it got: a negative errno
 * (nothing written), CPN_CAMPAIGN_PARTIAL (MySQL has it, Redis could not be
 * written: not open, nothing issued) or CPN_UNKNOWN (MySQL has it, Redis's
 * answer was lost). In the last two a repeat of the same request completes
 * it (0, or CPN_CAMPAIGN_SAME if the lost answer had created it). The message in
 * @err is fit for the client for CPN_CAMPAIGN_SAME and CPN_CAMPAIGN_EXISTS.
 */
int cpn_service_campaign_create(struct cpn_session *s, const struct cpn_campaign *c,
                                struct cpn_error *err);

/* Redis state plus MySQL's persisted count; *@persisted is -1 when MySQL
 * could not be asked (the read still answers). Returns 0 or CPN_CAMPAIGN_NOT_FOUND. */
int cpn_service_campaign_get(struct cpn_session *s, const char *id,
                             struct cpn_campaign_state *st, int64_t *persisted,
                             struct cpn_error *err);

enum cpn_user_state { CPN_USER_NONE, CPN_USER_ISSUED, CPN_USER_PERSISTED };
/* Returns 0 with *@state, or CPN_CAMPAIGN_NOT_FOUND. */
int cpn_service_user_get(struct cpn_session *s, const char *campaign_id, const char *user_id,
                         enum cpn_user_state *state, struct cpn_error *err);

int cpn_service_ping_redis(struct cpn_session *s, struct cpn_error *err);
