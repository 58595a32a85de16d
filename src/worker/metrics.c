/* coupon-worker's Prometheus endpoint; see metrics.h. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/api.h"
#include "cpn/types.h"
#include "cpn/url.h"
#include "metrics.h"

/* A scrape or two at a time (Prometheus keeps one connection open per
 * target; a person with curl is the other). */
#define METRICS_THREADS 4

struct cpn_worker_metrics {
        const struct cpn_config *cfg;
        /* The worker's settings with the server's own on top: the metrics
         * address, a few threads, no request bodies. A shallow copy: the
         * strings stay @cfg's, so it is never cleared. */
        struct cpn_config server_cfg;
        struct cpn_listen_addr addr;
        char ticket_group[300];
        double start_s;
        struct cpn_server *server;
        _Atomic(const struct cpn_worker *) coupons;
        _Atomic(const struct cpn_ticket_confirmer *) tickets;
};

static void family(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: \, " and newline escaped
 * (the group names are settings: any text). */
static void label(FILE *f, const char *s) {
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*s, f);
        }
}

static void sample(FILE *f, const char *name, const char *product, long long value) {
        fprintf(f, "%s{product=\"%s\"} %lld\n", name, product, value);
}

static void seconds(FILE *f, const char *name, const char *product, int64_t ms) {
        fprintf(f, "%s{product=\"%s\"} %.3f\n", name, product, (double)ms / 1000.0);
}

/* A family of both products: the coupon consumer's value, the ticket
 * confirmer's (either left out when that side is not there). */
#define BOTH(name, type, help, cfield, tfield)                                                  \
        do {                                                                                    \
                if (!v->have_coupons && !v->have_tickets)                                       \
                        break;                                                                  \
                family(f, name, type, help);                                                    \
                if (v->have_coupons)                                                            \
                        sample(f, name, "coupon", (long long)(v->coupons.cfield));                \
                if (v->have_tickets)                                                            \
                        sample(f, name, "ticket", (long long)(v->tickets.tfield));                \
        } while (0)

static void lag_lines(FILE *f, const char *group, const struct cpn_partition_lag *lag, size_t n) {
        for (size_t i = 0; i < n; i++) {
                fputs("coupon_worker_kafka_lag{group=\"", f);
                label(f, group);
                fprintf(f, "\",partition=\"%d\"} %lld\n", (int)lag[i].partition, (long long)lag[i].lag);
        }
}

static void assigned_line(FILE *f, const char *group, int n) {
        fputs("coupon_worker_kafka_partitions_assigned{group=\"", f);
        label(f, group);
        fprintf(f, "\"} %d\n", n);
}

void cpn_worker_metrics_write(FILE *f, const struct cpn_worker_metrics_view *v) {
        family(f, "coupon_worker_build_info", "gauge", "The version of coupon-worker, as a label.");
        fprintf(f, "coupon_worker_build_info{version=\"%s\"} 1\n", CPN_VERSION);
        family(f, "coupon_worker_start_time_seconds", "gauge", "When the process started (unix time).");
        fprintf(f, "coupon_worker_start_time_seconds %.3f\n", v->start_s);

        BOTH("coupon_worker_messages_total", "counter",
             "Messages the worker is done with: persisted, found persisted or recorded in failed_events.",
             messages, messages);
        if (v->have_coupons) {
                family(f, "coupon_worker_batches_total", "counter",
                       "Batches of issuances written to MySQL, one transaction each.");
                fprintf(f, "coupon_worker_batches_total %llu\n", (unsigned long long)v->coupons.batches);
        }
        BOTH("coupon_worker_rows_inserted_total", "counter",
             "New rows: coupons rows (product coupon), confirmed tickets with their payments row (product "
             "ticket, retried failed events included).",
             inserted, confirmed);
        BOTH("coupon_worker_duplicates_total", "counter",
             "Messages already persisted (a redelivery or a second publication): nothing changed.", duplicates,
             duplicates);
        BOTH("coupon_worker_failed_events_recorded_total", "counter",
             "Messages recorded as open failed events (they are retried with backoff).", failed, failed);
        BOTH("coupon_worker_poison_messages_total", "counter",
             "Recorded messages that were not an event at all (did not decode).", poison, poison);
        BOTH("coupon_worker_failed_events_resolved_total", "counter",
             "Failed events this worker persisted on a retry.", retry_resolved, retry_resolved);
        BOTH("coupon_worker_failed_events_dead_total", "counter",
             "Failed events this worker marked dead (out of attempts: an operator must look).", retry_dead,
             retry_dead);
        BOTH("coupon_worker_mysql_retries_total", "counter",
             "Transient MySQL failures of the batch (coupon) or message (ticket) in hand.", batch_retries,
             retries);
        BOTH("coupon_worker_mysql_retrying", "gauge",
             "1 while the batch or message in hand waits for MySQL (partitions paused), else 0.",
             retry_attempts > 0, retry_attempts > 0);
        BOTH("coupon_worker_mysql_retry_attempts", "gauge",
             "Failed attempts of the batch or message in hand so far; 0 when not retrying.", retry_attempts,
             retry_attempts);
        if (v->have_coupons) {
                family(f, "coupon_worker_messages_in_hand", "gauge",
                       "Messages read from Kafka and not yet persisted.");
                sample(f, "coupon_worker_messages_in_hand", "coupon", (long long)v->coupons.in_hand);
        }
        if (v->have_coupons || v->have_tickets) {
                family(f, "coupon_worker_last_batch_timestamp_seconds", "gauge",
                       "When the last batch (coupon) or message (ticket) was committed (unix time); 0: none yet.");
                if (v->have_coupons)
                        seconds(f, "coupon_worker_last_batch_timestamp_seconds", "coupon", v->coupons.last_batch_ms);
                if (v->have_tickets)
                        seconds(f, "coupon_worker_last_batch_timestamp_seconds", "ticket", v->tickets.last_ms);

                family(f, "coupon_worker_kafka_partitions_assigned", "gauge",
                       "Partitions this member of the consumer group holds.");
                if (v->have_coupons)
                        assigned_line(f, v->coupon_group, v->coupons.assigned);
                if (v->have_tickets)
                        assigned_line(f, v->ticket_group, v->tickets.assigned);
        }
        if (v->n_coupon_lag || v->n_ticket_lag) {
                family(f, "coupon_worker_kafka_lag", "gauge",
                       "Messages of a partition not yet persisted: the high watermark of the last fetch minus the "
                       "first offset not done with (a paused partition's watermark is as old as its last fetch).");
                lag_lines(f, v->coupon_group, v->coupon_lag, v->n_coupon_lag);
                lag_lines(f, v->ticket_group, v->ticket_lag, v->n_ticket_lag);
        }
}

/* The server's product callback: any request thread. */
static void write_metrics(void *data, FILE *f) {
        struct cpn_worker_metrics *m = data;
        const struct cpn_worker *w = atomic_load(&m->coupons);
        const struct cpn_ticket_confirmer *c = atomic_load(&m->tickets);
        struct cpn_worker_metrics_view *v = calloc(1, sizeof(*v)); /* 8 KiB of lag tables: not on the stack */

        if (!v)
                return;
        v->coupon_group = m->cfg->worker_group;
        v->ticket_group = m->ticket_group;
        v->start_s = m->start_s;
        if (w) {
                v->have_coupons = true;
                cpn_worker_stats(w, &v->coupons);
                v->n_coupon_lag = cpn_worker_lag(w, v->coupon_lag, CPN_LAG_PARTITIONS);
        }
        if (c) {
                v->have_tickets = true;
                cpn_ticket_confirmer_stats(c, &v->tickets);
                v->n_ticket_lag = cpn_ticket_confirmer_lag(c, v->ticket_lag, CPN_LAG_PARTITIONS);
        }
        cpn_worker_metrics_write(f, v);
        free(v);
}

int cpn_worker_metrics_new(struct cpn_worker_metrics **ret, const struct cpn_config *cfg, struct cpn_error *err) {
        static char no_auth[] = "none";
        struct cpn_worker_metrics *m;
        struct cpn_http_product product;
        int r;

        *ret = NULL;
        if (!cfg->worker_metrics_addr || !*cfg->worker_metrics_addr)
                return 0;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        r = cpn_url_listen_parse(&m->addr, cfg->worker_metrics_addr, err);
        if (r) {
                free(m);
                return cpn_error_prefix(err, r, "COUPON_WORKER_METRICS_ADDR");
        }
        m->cfg = cfg;
        m->start_s = (double)cpn_time_now_ms() / 1000.0;
        snprintf(m->ticket_group, sizeof(m->ticket_group), "%s-tickets", cfg->worker_group);
        m->server_cfg = *cfg;
        m->server_cfg.http_addr = m->addr.text;
        m->server_cfg.http_threads = METRICS_THREADS;
        m->server_cfg.http_max_body = 256;
        m->server_cfg.user_auth = no_auth;
        product = (struct cpn_http_product){ .name = "worker", .data = m, .metrics = write_metrics };
        r = cpn_server_new(&m->server, &m->server_cfg, &product, 1, err);
        if (r) {
                free(m);
                return r < 0 ? r : cpn_error_prefix(err, r, "COUPON_WORKER_METRICS_ADDR");
        }
        *ret = m;
        return 0;
}

void cpn_worker_metrics_attach(struct cpn_worker_metrics *m, const struct cpn_worker *w,
                               const struct cpn_ticket_confirmer *c) {
        atomic_store(&m->coupons, w);
        atomic_store(&m->tickets, c);
}

const char *cpn_worker_metrics_addr(const struct cpn_worker_metrics *m) {
        return m->addr.text;
}

struct cpn_worker_metrics *cpn_worker_metrics_free(struct cpn_worker_metrics *m) {
        if (!m)
                return NULL;
        cpn_server_free(m->server); /* waits for a scrape in flight */
        free(m);
        return NULL;
}
