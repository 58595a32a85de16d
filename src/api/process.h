#pragma once
/*
 * coupon-api's own routes, beside the products': GET /readyz (the state of
 * each backend the process uses) and the process's part of /metrics (the
 * Kafka producer, the MySQL pool). Wiring of src/api/main.c only.
 */
#include "cpn/config.h"
#include "cpn/db.h"
#include "cpn/coupon/delivery.h"
#include "cpn/events.h"
#include "cpn/http.h"
#include "cpn/store.h"

/* Borrowed by the product; main owns all of it and frees it after the server. */
struct cpn_process {
        const struct cpn_config *cfg;
        const struct cpn_redis_url *redis_url;
        struct cpn_producer *producer;
        struct cpn_coupon_outbox *outbox; /* the producer's sink: coupon_outbox_deleted_total */
        struct cpn_db_pool *db_pool;
};

struct cpn_http_product cpn_process_http_product(struct cpn_process *p);
