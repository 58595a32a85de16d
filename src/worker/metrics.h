#pragma once
/*
 * coupon-worker's Prometheus endpoint: GET /metrics (text format 0.0.4)
 * on COUPON_WORKER_METRICS_ADDR, apart from anything coupon-api serves.
 * It reads what the worker loop and the ticket confirmer count (atomics
 * they update on their own threads; see cpn_worker_stats and
 * cpn_ticket_confirmer_stats) and their partitions' lag as of the last
 * second: a scrape never waits on Kafka or MySQL, and the hot path never
 * waits on a scrape. The HTTP side is src/http's server (civetweb stays
 * behind it) with no product routes: /healthz, /metrics, and the JSON 404
 * for anything else. Wiring of src/worker/main.c only.
 */
#include <stdio.h>

#include "cpn/config.h"
#include "cpn/consumer.h"
#include "cpn/coupon/worker.h"
#include "cpn/error.h"
#include "cpn/ticket/confirm.h"

struct cpn_worker_metrics;

/*
 * Listens on COUPON_WORKER_METRICS_ADDR (@cfg, borrowed: it must outlive
 * the endpoint). Called before the worker joins its groups, so that a
 * taken port stops the program before any rebalance. Sets *@ret to NULL
 * and returns 0 when the setting is unset. Returns 0, CPN_INVALID (an
 * address that does not parse, a port in use: text in @err) or -ENOMEM.
 */
int cpn_worker_metrics_new(struct cpn_worker_metrics **ret, const struct cpn_config *cfg, struct cpn_error *err);
/* What the endpoint reports from now on (both borrowed; either may be
 * NULL): until then it serves only the process's own lines. Any thread. */
void cpn_worker_metrics_attach(struct cpn_worker_metrics *m, const struct cpn_worker *w,
                               const struct cpn_ticket_confirmer *c);
/* The normalized address it listens on ("127.0.0.1:9102"). */
const char *cpn_worker_metrics_addr(const struct cpn_worker_metrics *m);
/* Stops listening and waits for a scrape in flight: before what it reads
 * is freed. Accepts NULL. */
struct cpn_worker_metrics *cpn_worker_metrics_free(struct cpn_worker_metrics *m);

/* One reading of everything the endpoint reports. */
struct cpn_worker_metrics_view {
        const char *coupon_group;                /* COUPON_WORKER_GROUP */
        const char *ticket_group;                /* its -tickets group */
        double start_s;                          /* the process's start, unix time */
        bool have_coupons, have_tickets;         /* false: their lines are left out */
        struct cpn_worker_stats coupons;
        struct cpn_ticket_confirm_stats tickets;
        size_t n_coupon_lag, n_ticket_lag;
        struct cpn_partition_lag coupon_lag[CPN_LAG_PARTITIONS];
        struct cpn_partition_lag ticket_lag[CPN_LAG_PARTITIONS];
};

/* Writes @v as Prometheus text to @f (label values escaped). Pure. */
void cpn_worker_metrics_write(FILE *f, const struct cpn_worker_metrics_view *v);
