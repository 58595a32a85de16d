#pragma once
/*
 * Worker: the loop of coupon-worker. Polls a batch from Kafka (consumer.h),
 * decodes each message (json.h), writes the batch in one MySQL transaction
 * (coupon/db.h: cpn_coupon_persist), and only then stores the offsets. When MySQL
 * fails transiently the batch is kept, the partitions are paused (the
 * consumer keeps polling, so the group does not evict the worker) and the
 * same batch is retried with backoff and jitter; nothing transient ever
 * goes to failed_events. Between batches it retries the failed events that
 * are due. One thread: everything here runs on the caller's, except the
 * two readers of its counters at the end (for a metrics endpoint).
 */
#include <signal.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/consumer.h"
#include "cpn/coupon/db.h"
#include "cpn/error.h"

struct cpn_worker;

struct cpn_worker_stats {
        uint64_t batches;         /* batches committed */
        uint64_t messages;        /* messages of the committed batches */
        uint64_t inserted;
        uint64_t duplicates;
        uint64_t failed;          /* messages recorded in failed_events */
        uint64_t poison;          /* of those, the ones that did not even decode */
        uint64_t batch_retries;   /* transient MySQL failures of a batch */
        uint64_t retry_resolved;  /* failed events persisted on a retry */
        uint64_t retry_dead;
        int64_t last_batch_ms;    /* wall clock of the last commit; 0: none yet */
        unsigned retry_attempts;  /* failed attempts of the batch in hand; 0: not retrying */
        uint64_t in_hand;         /* messages read and not yet persisted */
        int assigned;             /* partitions assigned, as of the last second */
};

/* Creates the consumer (subscribes) and the MySQL handle (connects
 * lazily). Returns 0, CPN_INVALID or a negative errno. */
int cpn_worker_new(struct cpn_worker **ret, const struct cpn_config *cfg, const struct cpn_db_url *db,
                   struct cpn_error *err);
/* Leaves the group (committing stored offsets), frees. Accepts NULL. */
struct cpn_worker *cpn_worker_free(struct cpn_worker *w);

/*
 * Runs until *@stop is set, then finishes the batch in hand (retrying a
 * failing MySQL for at most @drain_ms) and returns. Returns 0, or -EIO
 * when the batch in hand could not be persisted in time (it stays in Kafka
 * and is read again) or on a fatal Kafka error (text in @err).
 */
int cpn_worker_run(struct cpn_worker *w, const volatile sig_atomic_t *stop, long drain_ms,
                   struct cpn_error *err);

/* What the worker counted since it was created. Any thread, no lock: the
 * counters are read one by one, so two of them may be a batch apart. */
void cpn_worker_stats(const struct cpn_worker *w, struct cpn_worker_stats *out);
/* Its partitions' lag as of the last second (cpn_consumer_lag_update):
 * copies at most @max into @out, returns how many. Any thread. */
size_t cpn_worker_lag(const struct cpn_worker *w, struct cpn_partition_lag *out, size_t max);
