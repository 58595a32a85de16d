/* Prometheus metrics: atomic counters, no lock, no allocation per request. */
#include <stdio.h>

#include "cpn/http.h"

static const int statuses[CPN_METRIC_STATUSES] = { 200, 201, 202, 400, 401, 402, 403, 404, 405,
                                                   409, 410, 413, 415, 500, 503, 504, 0 };
/* Upper bounds in microseconds. */
static const uint64_t bounds_us[CPN_LATENCY_BUCKETS] = { 250,   500,    1000,   2000,   3000,
                                                         5000,  10000,  20000,  50000,  100000,
                                                         250000, 500000, 1000000, 2500000 };
static int status_index(int status) {
        for (int i = 0; i < CPN_METRIC_STATUSES - 1; i++)
                if (statuses[i] == status)
                        return i;
        return CPN_METRIC_STATUSES - 1; /* other */
}

int cpn_metrics_status(int i) {
        return i >= 0 && i < CPN_METRIC_STATUSES ? statuses[i] : 0;
}

uint64_t cpn_metrics_bound_us(int b) {
        return b >= 0 && b < CPN_LATENCY_BUCKETS ? bounds_us[b] : UINT64_MAX;
}

void cpn_metrics_request(struct cpn_metrics *m, int r, int status, uint64_t us) {
        int b = 0;

        if (r < 0 || r > CPN_ROUTES_MAX)
                r = 0;

        atomic_fetch_add_explicit(&m->requests[r][status_index(status)], 1, memory_order_relaxed);
        while (b < CPN_LATENCY_BUCKETS && us > bounds_us[b])
                b++;
        atomic_fetch_add_explicit(&m->latency[r][b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->latency_sum_us[r], us, memory_order_relaxed);
}

void cpn_metrics_write(const struct cpn_metrics *m, const struct cpn_router *rt, FILE *f) {
        fprintf(f, "# HELP coupon_http_requests_total HTTP requests by route and status.\n"
                   "# TYPE coupon_http_requests_total counter\n");
        for (int r = 0; r < (int)rt->n; r++)
                for (int s = 0; s < CPN_METRIC_STATUSES; s++) {
                        uint64_t v = atomic_load(&m->requests[r][s]);

                        if (!v)
                                continue;
                        if (statuses[s])
                                fprintf(f, "coupon_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                        cpn_router_name(rt, r), statuses[s], (unsigned long long)v);
                        else
                                fprintf(f, "coupon_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                                        cpn_router_name(rt, r), (unsigned long long)v);
                }
        fprintf(f, "# HELP coupon_http_request_duration_seconds Time from request to answer.\n"
                   "# TYPE coupon_http_request_duration_seconds histogram\n");
        for (int r = 0; r < (int)rt->n; r++) {
                uint64_t cum = 0;
                const char *name = cpn_router_name(rt, r);

                for (int b = 0; b <= CPN_LATENCY_BUCKETS; b++)
                        cum += atomic_load(&m->latency[r][b]);
                if (!cum)
                        continue;
                cum = 0;
                for (int b = 0; b < CPN_LATENCY_BUCKETS; b++) {
                        cum += atomic_load(&m->latency[r][b]);
                        fprintf(f, "coupon_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                                name, (double)bounds_us[b] / 1e6, (unsigned long long)cum);
                }
                cum += atomic_load(&m->latency[r][CPN_LATENCY_BUCKETS]);
                fprintf(f, "coupon_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                           "coupon_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                           "coupon_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        name, (unsigned long long)cum, name,
                        (double)atomic_load(&m->latency_sum_us[r]) / 1e6, name, (unsigned long long)cum);
        }
}
