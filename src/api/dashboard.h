#pragma once
/*
 * The live sale dashboard of coupon-api: GET /dashboard (the page, its
 * script and style, and Chart.js from Debian's libjs-chart.js, all built
 * into the binary: nothing is read from disk or fetched from elsewhere)
 * and GET /v1/dashboard, the admin JSON the page polls (the monitor's
 * snapshot); the monitor's gauges join /metrics. Wiring of src/api/main.c
 * only.
 */
#include "cpn/config.h"
#include "cpn/http.h"
#include "monitor.h"

/* Borrowed by the server; main owns it. */
struct cpn_dashboard {
        const struct cpn_config *cfg;
        struct cpn_monitor *monitor;
};

struct cpn_http_product cpn_dashboard_http_product(struct cpn_dashboard *d);
