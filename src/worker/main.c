/*
 * coupon-worker: a Kafka consumer-group member that persists accepted
 * issuances to MySQL and retries failed events. Run any number; the
 * topic's partitions spread the work. main owns the config and the worker.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpn/config.h"
#include "cpn/db.h"
#include "cpn/log.h"
#include "cpn/coupon/worker.h"
#include "cpn/ticket/confirm.h"
#include "metrics.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        (void)sig;
        stop_requested = 1;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: coupon-worker [OPTION...]\n"
                "\n"
                "Persists the issuances of the Kafka topic to MySQL, and confirms the paid\n"
                "tickets of COUPON_TICKET_TOPIC (PAID -> CONFIRMED plus the payments row,\n"
                "once, as group COUPON_WORKER_GROUP-tickets). Reads batches as a\n"
                "member of the consumer group COUPON_WORKER_GROUP and writes each in one\n"
                "transaction: one coupons row per (campaign, user) (a redelivered message\n"
                "changes nothing) and the campaign's persisted count, which never exceeds\n"
                "its total. Offsets are stored only after the commit. A message that cannot\n"
                "be persisted (bad JSON, unknown campaign, over the cap) becomes a\n"
                "failed_events row and is retried with backoff until it succeeds or is\n"
                "marked dead. When MySQL is down the batch is kept and retried; nothing is\n"
                "skipped. SIGTERM/SIGINT finish the batch in hand, leave the group, exit 0.\n"
                "\n"
                "With COUPON_WORKER_METRICS_ADDR set (off by default: several workers may\n"
                "share a host; 127.0.0.1:9102 is the port deploy/prometheus scrapes) it\n"
                "serves GET /metrics in Prometheus's text format there (and GET /healthz):\n"
                "messages, batches, rows inserted, duplicates, failed events recorded,\n"
                "resolved and dead, poison messages, MySQL retry state, the last commit's\n"
                "time and each partition's lag, by product (coupon, ticket). An address\n"
                "that does not parse or a port in use stops it at start (docs/prometheus.md).\n"
                "\n"
                "  -h, --help       show this help and exit\n"
                "  -V, --version    show the version and exit\n"
                "\n");
        cpn_config_usage(f, CPN_CFG_WORKER);
        fprintf(f, "\nExit status: 0 after a clean shutdown; 1 when it cannot start, on a fatal\n"
                   "Kafka error, or when the batch in hand could not be persisted at shutdown\n"
                   "(it stays in Kafka and is read again).\n");
}

int main(int argc, char **argv) {
        struct cpn_config cfg;
        struct cpn_db_url db_url;
        struct cpn_error err = { { 0 } };
        struct cpn_worker *w = NULL;
        struct cpn_worker_metrics *metrics = NULL;
        struct cpn_ticket_confirmer *confirmer = NULL;
        struct cpn_ticket_confirm_stats cs;
        struct cpn_worker_stats st;
        enum cpn_log_level level = CPN_LOG_INFO;
        struct sigaction sa;
        int argi, r;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        usage(stdout);
                        return 0;
                }
                if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
#ifdef CPN_TEST_HOOKS
                        printf("coupon-worker %s (built with test hooks: not for production)\n", CPN_VERSION);
#else
                        printf("coupon-worker %s\n", CPN_VERSION);
#endif
                        return 0;
                }
        }
        cpn_log_setup("coupon-worker", CPN_LOG_INFO);
        if (cpn_config_init(&cfg) < 0) {
                cpn_log_error("out of memory");
                return 1;
        }
        r = cpn_config_load(&cfg, CPN_CFG_WORKER, NULL, argc, argv, &argi, &err);
        if (!r && argi < argc)
                r = cpn_error_set(&err, CPN_INVALID, "unexpected argument '%s' (see --help)", argv[argi]);
        if (!r)
                r = cpn_config_check(&cfg, CPN_CFG_WORKER, &err);
        if (!r)
                r = cpn_db_url_parse(&db_url, cfg.mysql_url, &err);
        if (r) {
                cpn_log_error("cannot start: %s", err.msg);
                cpn_config_clear(&cfg);
                return 1;
        }
        cpn_log_level_parse(cfg.log_level, &level);
        cpn_log_setup("coupon-worker", level);
        srand((unsigned)time(NULL) ^ (unsigned)getpid());

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* Bound before the groups are joined: a port in use stops the
         * program before its arrival and departure rebalance the others. */
        r = cpn_worker_metrics_new(&metrics, &cfg, &err);
        if (!r)
                r = cpn_worker_new(&w, &cfg, &db_url, &err);
        if (!r)
                r = cpn_ticket_confirmer_new(&confirmer, &cfg, &db_url, &stop_requested, &err);
        if (r) {
                cpn_worker_metrics_free(metrics);
                cpn_worker_free(w);
                cpn_log_error("cannot start: %s", err.msg[0] ? err.msg : "out of memory");
                cpn_config_clear(&cfg);
                return 1;
        }
        {
                struct cpn_db *probe;
                struct cpn_error perr = { { 0 } };

                if (cpn_db_new(&probe, &db_url, cfg.mysql_timeout_ms, cfg.mysql_timeout_ms) == 0) {
                        if (cpn_db_ping(probe, &perr) != 0)
                                cpn_log_warn("mysql not reachable yet (%s); batches wait until it is", perr.msg);
                        cpn_db_free(probe);
                }
        }
        cpn_log_info("consuming %s from %s as group %s, batches of up to %ld, into %s:%d/%s", cfg.kafka_topic,
                     cfg.kafka_brokers, cfg.worker_group, cfg.worker_batch,
                     db_url.unix_path[0] ? db_url.unix_path : db_url.host, db_url.port, db_url.database);
        cpn_log_info("confirming paid tickets of %s as group %s-tickets", cfg.ticket_topic, cfg.worker_group);
        if (metrics) {
                cpn_worker_metrics_attach(metrics, w, confirmer);
                cpn_log_info("serving Prometheus metrics on http://%s/metrics", cpn_worker_metrics_addr(metrics));
        }
        r = cpn_worker_run(w, &stop_requested, 10000, &err);
        if (!r && cpn_ticket_confirmer_failed(confirmer, &err))
                r = -EIO;
        cpn_worker_stats(w, &st);
        if (r)
                cpn_log_error("stopping: %s", err.msg);
        else
                cpn_log_info("stopping: leaving the group");
        cpn_ticket_confirmer_stats(confirmer, &cs);
        metrics = cpn_worker_metrics_free(metrics); /* before what it reads goes */
        /* The coupon consumer leaves its group first: closed after the
         * confirmer's consumer had been destroyed, its revocation's
         * rd_kafka_assign(NULL) hung for good in 2 of 3 ASan runs of
         * integration/worker_e2e (librdkafka 2.0 against the mock cluster);
         * in this order 0 of 4. */
        cpn_worker_free(w);
        cpn_ticket_confirmer_free(confirmer);
        cpn_log_info("stopped: tickets: %llu messages, %llu confirmed, %llu duplicates, %llu to failed_events",
                     (unsigned long long)cs.messages, (unsigned long long)cs.confirmed,
                     (unsigned long long)cs.duplicates, (unsigned long long)cs.failed);
        cpn_log_info("stopped: %llu messages, %llu new coupons, %llu duplicates, %llu to failed_events",
                     (unsigned long long)st.messages, (unsigned long long)st.inserted,
                     (unsigned long long)st.duplicates, (unsigned long long)st.failed);
        cpn_config_clear(&cfg);
        return r ? 1 : 0;
}
