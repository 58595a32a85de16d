#pragma once
/*
 * The coupon-api server: civetweb (seen only by src/http/server.c) in front
 * of the routes of the products it is given (src/coupon/handlers.c, the
 * process's own in src/api/), each handler parsing, making one domain call
 * and mapping its result through its rows of the outcome table.
 */
#include <stddef.h>

#include "cpn/config.h"
#include "cpn/error.h"
#include "cpn/http.h"

struct cpn_server;

/* Starts listening on COUPON_HTTP_ADDR with COUPON_HTTP_THREADS threads,
 * serving GET /healthz, GET /metrics and the routes of @products (copied;
 * what they point at is borrowed and must outlive the server). Returns 0,
 * CPN_INVALID (bad address, port in use, a bad route table: text in
 * @err) or -ENOMEM. */
int cpn_server_new(struct cpn_server **ret, const struct cpn_config *cfg, const struct cpn_http_product *products,
                   size_t n_products, struct cpn_error *err);
/* Stops accepting, waits for requests in flight, frees. */
struct cpn_server *cpn_server_free(struct cpn_server *s);

/* What the server counted of one route since it started. */
struct cpn_route_stats {
        uint64_t status[CPN_METRIC_STATUSES];       /* by cpn_metrics_status(i) */
        uint64_t latency[CPN_LATENCY_BUCKETS + 1];  /* by cpn_metrics_bound_us(b), not cumulative */
};
/* Reads the counters of the route named @name (its metrics label); false
 * when there is none. Any thread, no lock: each counter is read on its
 * own, so a reading may be a request apart between two of them. */
bool cpn_server_route_stats(const struct cpn_server *s, const char *name, struct cpn_route_stats *out);
