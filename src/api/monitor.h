#pragma once
/*
 * The sale monitor of coupon-api: one thread that, once a second, reads
 * what an operator watches during a sale (each campaign's stock, persisted
 * count and outbox, failed events, ticket types by status, the process's
 * backends, the issue endpoint's answers and latency) on connections of
 * its own, keeps the last minutes of it, and publishes it as one snapshot:
 * the JSON of GET /v1/dashboard and the gauges it adds to /metrics.
 * Requests never wait on Redis or MySQL for it: they take the published
 * snapshot (a reference count, no copy), so an open dashboard costs the
 * issue path nothing but the writes of its answers. Wiring of
 * src/api/main.c only.
 */
#include <stdatomic.h>
#include <stddef.h>

#include "cpn/api.h"
#include "cpn/config.h"
#include "cpn/coupon/http.h"
#include "cpn/db.h"
#include "cpn/events.h"
#include "cpn/store.h"
#include "cpn/ticket/http.h"

/* What the monitor reads; all borrowed, owned by main, outliving it. */
struct cpn_monitor_src {
        const struct cpn_config *cfg;
        const struct cpn_redis_url *redis_url;
        const struct cpn_db_url *db_url;
        struct cpn_producer *producer;
        struct cpn_redis_pipe *pipe;
        struct cpn_db_pool *db_pool;
        struct cpn_coupon_http *coupon;  /* its outcome counters */
        struct cpn_ticket_http *tickets; /* its payment counters, reaper */
};

/* A published snapshot; immutable; freed by the last cpn_monitor_view_put. */
struct cpn_monitor_view {
        _Atomic int refs;
        size_t json_len, prom_len;
        char *json; /* GET /v1/dashboard */
        char *prom; /* the gauges of /metrics */
};

struct cpn_monitor;

/* Returns 0 or -ENOMEM. Nothing runs before cpn_monitor_start. */
int cpn_monitor_new(struct cpn_monitor **ret, const struct cpn_monitor_src *src);
/* Starts the thread; @server (borrowed, outlives it) gives the issue
 * route's counters. Returns 0 or a negative errno. */
int cpn_monitor_start(struct cpn_monitor *m, const struct cpn_server *server);
/* Stops the thread (before the server it reads goes); the last snapshot
 * stays published. */
void cpn_monitor_stop(struct cpn_monitor *m);
/* Stops the thread if running and frees; the views still held stay valid
 * until put. After the server (whose requests take views). */
struct cpn_monitor *cpn_monitor_free(struct cpn_monitor *m);
/* The newest snapshot, or NULL before the first; any thread. */
struct cpn_monitor_view *cpn_monitor_view_get(struct cpn_monitor *m);
void cpn_monitor_view_put(struct cpn_monitor_view *v);
