#pragma once
/*
 * The coupon product's HTTP routes (src/coupon/handlers.c): issue, create
 * and read campaigns, a user's state. Each handler parses and validates,
 * makes one call of the coupon service and maps its result through the
 * product's rows of the outcome table; its counters of issue outcomes and
 * Kafka delivery join /metrics.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "cpn/config.h"
#include "cpn/http.h"
#include "cpn/coupon/service.h"

enum cpn_coupon_outcome {
        CPN_OUTCOME_ISSUED,
        CPN_OUTCOME_ALREADY_ISSUED,
        CPN_OUTCOME_SOLD_OUT,
        CPN_OUTCOME_NOT_OPEN,
        CPN_OUTCOME_NOT_FOUND,
        CPN_OUTCOME_PAUSED,
        CPN_OUTCOME_UNAVAILABLE,
        CPN_OUTCOME_INVALID,
        CPN_OUTCOME_UNKNOWN,
        _CPN_OUTCOME_N,
};

/* The product's shared state: created by main before the server, freed
 * after it. */
struct cpn_coupon_http {
        const struct cpn_config *cfg;
        struct cpn_service *svc; /* borrowed; NULL only where no handler gets past validation (the fuzz target) */
        _Atomic uint64_t outcomes[_CPN_OUTCOME_N];
        _Atomic uint64_t delivery[3]; /* acked in time, pending at answer, failed */
};

/* What the server needs of the product; @ch is borrowed. */
struct cpn_http_product cpn_coupon_http_product(struct cpn_coupon_http *ch);

/* The product's own answers (http.h has the shared ones); the row for a
 * coupon outcome code (error.h), or NULL when none is the product's. */
const struct cpn_api_error_info *cpn_coupon_answer(int r);
extern const struct cpn_api_error_info cpn_coupon_outcome_unknown;

/* Appends the product's Prometheus text: issue outcomes, delivery states
 * when answered, the issue pipe's counters. */
void cpn_coupon_http_metrics(void *ch, FILE *f);
