/* GET /readyz and the process's metrics: see process.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpn/coupon/store.h"
#include "process.h"

/* A worker thread's state: its own Redis connection, opened on the first
 * readyz it answers. */
struct process_thread {
        struct cpn_process *p;
        struct cpn_redis *redis; /* owned */
};

/* Redis decides the answer: without it nothing can be issued or reserved.
 * MySQL's state is the pool watcher's (no I/O: a stalled MySQL must not
 * hold up a health check), Kafka's the producer's. */
static void handle_readyz(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct process_thread *t = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_producer_stats ps;
        struct cpn_db_pool_stats ds;
        int64_t backlog = -1;
        bool redis_ok;
        char bl[24];

        (void)rq;
        redis_ok = cpn_redis_ping(t->redis, &err) == 0;
        if (redis_ok && cpn_coupon_store_outbox_backlog(t->redis, &backlog, &err) != 0)
                backlog = -1;
        cpn_db_pool_stats(t->p->db_pool, &ds);
        cpn_producer_stats(t->p->producer, &ps);
        if (backlog < 0)
                snprintf(bl, sizeof(bl), "null");
        else
                snprintf(bl, sizeof(bl), "%lld", (long long)backlog);
        cpn_response_ok(rs, redis_ok ? 200 : 503,
                        snprintf(rs->body, rs->body_cap,
                                 "{\"status\":\"%s\",\"redis\":\"%s\",\"mysql\":\"%s\",\"kafka\":\"%s\","
                                 "\"outbox_backlog\":%s,\"kafka_in_flight\":%lld}",
                                 redis_ok ? "ready" : "unavailable", redis_ok ? "up" : "down",
                                 ds.down ? "down" : "up", ps.brokers_down ? "down" : "up", bl,
                                 (long long)ps.in_flight));
        if (!redis_ok)
                rs->retry_after = 1;
}

static const struct cpn_route routes[] = {
        { "GET", "/readyz", "readyz", 0, handle_readyz, NULL },
};

static int thread_new(void **ret, void *data) {
        struct process_thread *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->p = data;
        r = cpn_redis_new(&t->redis, t->p->redis_url, t->p->cfg->redis_timeout_ms);
        if (r) {
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

static void thread_free(void *thread) {
        struct process_thread *t = thread;

        if (t) {
                cpn_redis_free(t->redis);
                free(t);
        }
}

static void metrics(void *data, FILE *f) {
        struct cpn_process *p = data;
        struct cpn_producer_stats ps;
        struct cpn_db_pool_stats ds;

        cpn_producer_stats(p->producer, &ps);
        fprintf(f, "# HELP coupon_kafka_delivered_total Messages Kafka acknowledged.\n"
                   "# TYPE coupon_kafka_delivered_total counter\ncoupon_kafka_delivered_total %llu\n"
                   "# HELP coupon_kafka_delivery_failures_total Delivery reports with an error, and produce calls refused.\n"
                   "# TYPE coupon_kafka_delivery_failures_total counter\n"
                   "coupon_kafka_delivery_failures_total{kind=\"report\"} %llu\n"
                   "coupon_kafka_delivery_failures_total{kind=\"enqueue\"} %llu\n"
                   "# HELP coupon_kafka_queue_depth Messages in librdkafka's queue, not yet acknowledged.\n"
                   "# TYPE coupon_kafka_queue_depth gauge\ncoupon_kafka_queue_depth %lld\n"
                   "# HELP coupon_outbox_deleted_total Outbox entries removed after delivery.\n"
                   "# TYPE coupon_outbox_deleted_total counter\ncoupon_outbox_deleted_total %llu\n"
                   "# HELP coupon_kafka_brokers_down 1 while librdkafka reports all brokers down.\n"
                   "# TYPE coupon_kafka_brokers_down gauge\ncoupon_kafka_brokers_down %d\n",
                (unsigned long long)ps.delivered, (unsigned long long)ps.failed,
                (unsigned long long)ps.enqueue_failed, (long long)ps.in_flight,
                (unsigned long long)cpn_coupon_outbox_deleted(p->outbox), ps.brokers_down ? 1 : 0);
        cpn_db_pool_stats(p->db_pool, &ds);
        fprintf(f, "# HELP coupon_mysql_pool_connections MySQL connections of the pool (COUPON_MYSQL_POOL).\n"
                   "# TYPE coupon_mysql_pool_connections gauge\ncoupon_mysql_pool_connections %zu\n"
                   "# HELP coupon_mysql_pool_in_use Pool connections lent to a request now.\n"
                   "# TYPE coupon_mysql_pool_in_use gauge\ncoupon_mysql_pool_in_use %zu\n"
                   "# HELP coupon_mysql_pool_busy_total Calls that found every pool connection busy for their whole wait.\n"
                   "# TYPE coupon_mysql_pool_busy_total counter\ncoupon_mysql_pool_busy_total %llu\n"
                   "# HELP coupon_mysql_refused_total Calls answered without MySQL because it was not answering.\n"
                   "# TYPE coupon_mysql_refused_total counter\ncoupon_mysql_refused_total %llu\n"
                   "# HELP coupon_mysql_down 1 while MySQL is not answering (the pool refuses at once).\n"
                   "# TYPE coupon_mysql_down gauge\ncoupon_mysql_down %d\n",
                ds.size, ds.in_use, (unsigned long long)ds.busy_timeouts, (unsigned long long)ds.refused,
                ds.down ? 1 : 0);
}

struct cpn_http_product cpn_process_http_product(struct cpn_process *p) {
        return (struct cpn_http_product){
                .name = "process",
                .routes = routes,
                .n_routes = sizeof(routes) / sizeof(routes[0]),
                .data = p,
                .thread_new = thread_new,
                .thread_free = thread_free,
                .metrics = metrics,
        };
}
