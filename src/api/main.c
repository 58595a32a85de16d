/*
 * coupon-api: the HTTP front. Stateless; run any number behind a load
 * balancer. main owns everything it creates: the config, the producer, the
 * relay and the server, and tears them down in reverse order on
 * SIGTERM/SIGINT after the requests in flight are answered.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cpn/api.h"
#include "cpn/log.h"
#include "cpn/coupon/http.h"
#include "cpn/ticket/gateway.h"
#include "cpn/ticket/http.h"
#include "cpn/ticket/outbox.h"
#include "dashboard.h"
#include "monitor.h"
#include "process.h"

static void usage(FILE *f) {
        fprintf(f,
                "Usage: coupon-api [OPTION...]\n"
                "\n"
                "The HTTP front of the coupon issuance service. Each POST\n"
                "/v1/campaigns/{id}/issue is decided atomically in Redis (lua/coupon/issue.lua),\n"
                "handed to Kafka (idempotent producer, acks=all) and answered 202 once Kafka\n"
                "has it or COUPON_KAFKA_ACK_TIMEOUT_MS has passed; the Redis outbox keeps\n"
                "what Kafka does not have yet and a relay thread delivers it later.\n"
                "\n"
                "  -h, --help       show this help and exit\n"
                "  -V, --version    show the version and exit\n"
                "\n");
        cpn_config_usage(f, CPN_CFG_API);
        fprintf(f, "\nExit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when it cannot start.\n");
}

/* Items in a comma-separated list. */
static long list_len(const char *s) {
        long n = 1;

        for (; *s; s++)
                n += *s == ',';
        return n;
}

/*
 * File descriptors coupon-api may hold at once, and whether the limit
 * allows them: raises the soft limit to what is needed (up to the hard
 * one), refuses to start when even that is too low. Short of descriptors,
 * civetweb's accept loop spins on EMFILE and every request that needs a
 * new connection fails; better not to start. Per request thread: its
 * client socket, two more waiting in civetweb's accept queue (which holds
 * twice the threads), a Redis connection for each product's calls and one
 * for /readyz (each opened on first use), and its payment gateway
 * connection (opened by its first payment). Besides: stdio and the log, the listening sockets, the
 * MySQL pool and its watcher, the Redis connections of the issue pipe,
 * the delivery reports and the relay, the reaper's MySQL, Redis and
 * gateway connections, the ticket relay's MySQL connection, and
 * librdkafka's sockets and
 * wake-up pipes (three per broker; the cluster may have more brokers than
 * the bootstrap list names).
 */
#define PER_THREAD 7

static int fd_budget(const struct cpn_config *cfg, struct cpn_error *err) {
        long fixed = 8 + list_len(cfg->http_addr) + (cfg->mysql_pool + 1) + 3 + 3 + 1 + 32 +
                     3 * (list_len(cfg->kafka_brokers) + 8);
        long need = fixed + PER_THREAD * cfg->http_threads;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
                return 0;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need) {
                struct rlimit want = { (rlim_t)need, rl.rlim_max };

                /* Above the hard limit only with CAP_SYS_RESOURCE (root). */
                if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need)
                        want.rlim_max = (rlim_t)need;
                if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
                        want.rlim_cur = rl.rlim_max;
                        want.rlim_max = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &want);
                }
                (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need) {
                long fit = ((long)rl.rlim_cur - fixed) / PER_THREAD;

                return cpn_error_set(err, CPN_INVALID,
                                     "COUPON_HTTP_THREADS=%ld needs up to %ld file descriptors (%d per thread: its "
                                     "client, two in the accept queue, three Redis connections, one to the payment "
                                     "gateway; %ld besides), the "
                                     "limit is %llu (ulimit -n, LimitNOFILE): raise it or use at most %ld threads",
                                     cfg->http_threads, need, PER_THREAD, fixed, (unsigned long long)rl.rlim_cur,
                                     fit > 0 ? fit : 0);
        }
        return 0;
}

int main(int argc, char **argv) {
        struct cpn_config cfg;
        struct cpn_service svc = { 0 };
        struct cpn_error err = { { 0 } };
        struct cpn_server *server = NULL;
        struct cpn_coupon_http coupon = { 0 };
        struct cpn_ticket_service tickets_svc = { 0 };
        struct cpn_ticket_http tickets = { 0 };
        struct cpn_process process = { 0 };
        struct cpn_http_product products[4];
        struct cpn_monitor *monitor = NULL; /* read by the dashboard's routes: freed after the server */
        struct cpn_dashboard dashboard = { 0 };
        struct cpn_coupon_outbox *outbox = NULL; /* the producer's sink; freed after it */
        struct cpn_relay *relay = NULL;
        struct cpn_ticket_reaper *reaper = NULL;
        struct cpn_ticket_relay *ticket_relay = NULL;
        enum cpn_log_level level = CPN_LOG_INFO;
        sigset_t sigs;
        int argi, sig, r;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        usage(stdout);
                        return 0;
                }
                if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
                        printf("coupon-api %s\n", CPN_VERSION);
                        return 0;
                }
        }
        cpn_log_setup("coupon-api", CPN_LOG_INFO);
        if (cpn_config_init(&cfg) < 0) {
                cpn_log_error("out of memory");
                return 1;
        }
        r = cpn_config_load(&cfg, CPN_CFG_API, NULL, argc, argv, &argi, &err);
        if (!r && argi < argc)
                r = cpn_error_set(&err, CPN_INVALID, "unexpected argument '%s' (see --help)", argv[argi]);
        if (!r)
                r = cpn_config_check(&cfg, CPN_CFG_API, &err);
        if (!r)
                r = cpn_redis_url_parse(&svc.redis_url, cfg.redis_url, &err);
        if (!r)
                r = cpn_db_url_parse(&svc.db_url, cfg.mysql_url, &err);
        if (r) {
                cpn_log_error("cannot start: %s", err.msg);
                cpn_config_clear(&cfg);
                return 1;
        }
        cpn_log_level_parse(cfg.log_level, &level);
        cpn_log_setup("coupon-api", level);
        svc.cfg = &cfg;

        r = fd_budget(&cfg, &err);
        if (r) {
                cpn_log_error("cannot start: %s", err.msg);
                cpn_config_clear(&cfg);
                return 1;
        }

        /* Signals are taken by sigwait below; every thread inherits the mask. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = cpn_gateway_global_init() == 0 ? 0 : cpn_error_set(&err, -EIO, "libcurl cannot initialise");
        if (!r)
                r = cpn_coupon_outbox_new(&outbox, &svc.redis_url, cfg.redis_timeout_ms) == 0
                            ? 0
                            : cpn_error_set(&err, -ENOMEM, "out of memory");
        if (!r) {
                struct cpn_producer_sink sink = cpn_coupon_outbox_sink(outbox);

                r = cpn_producer_new(&svc.producer, &cfg, &sink, &err);
        }
        if (!r)
                r = cpn_producer_topic(svc.producer, cfg.kafka_topic, &svc.topic, &err);
        if (!r)
                r = cpn_db_pool_new(&svc.db_pool, &svc.db_url, (size_t)cfg.mysql_pool, cfg.mysql_timeout_ms,
                                    cfg.mysql_timeout_ms, true, &err);
        if (!r)
                r = cpn_redis_pipe_new(&svc.pipe, &svc.redis_url, cfg.redis_timeout_ms, &err);
        if (!r)
                r = cpn_relay_new(&relay, &cfg, &svc.redis_url, svc.producer, &err);
        if (!r)
                r = cpn_ticket_reaper_new(&reaper, &cfg, &svc.db_url, &svc.redis_url, &err);
        if (!r && cfg.ticket_relay)
                r = cpn_ticket_relay_new(&ticket_relay, &cfg, &svc.db_url, svc.producer, &err);
        if (!r) {
                process = (struct cpn_process){ .cfg = &cfg, .redis_url = &svc.redis_url,
                                                .producer = svc.producer, .outbox = outbox,
                                                .db_pool = svc.db_pool };
                coupon.cfg = &cfg;
                coupon.svc = &svc;
                products[0] = cpn_process_http_product(&process);
                products[1] = cpn_coupon_http_product(&coupon);
                tickets_svc = (struct cpn_ticket_service){ .cfg = &cfg, .redis_url = &svc.redis_url,
                                                           .db_pool = svc.db_pool, .pipe = svc.pipe,
                                                           .reaper = reaper };
                r = cpn_ticket_service_open(&tickets_svc);
                if (r)
                        cpn_error_set(&err, r, "out of memory");
        }
        if (!r) {
                tickets.cfg = &cfg;
                tickets.svc = &tickets_svc;
                tickets.reaper = reaper;
                tickets.relay = ticket_relay;
                products[2] = cpn_ticket_http_product(&tickets);
                {
                        const struct cpn_monitor_src ms = { .cfg = &cfg, .redis_url = &svc.redis_url,
                                                            .db_url = &svc.db_url, .producer = svc.producer,
                                                            .pipe = svc.pipe, .db_pool = svc.db_pool,
                                                            .coupon = &coupon, .tickets = &tickets };

                        r = cpn_monitor_new(&monitor, &ms);
                        if (r)
                                cpn_error_set(&err, r, "out of memory");
                }
        }
        if (!r) {
                dashboard = (struct cpn_dashboard){ .cfg = &cfg, .monitor = monitor };
                products[3] = cpn_dashboard_http_product(&dashboard);
                r = cpn_server_new(&server, &cfg, products, 4, &err);
        }
        if (!r) {
                r = cpn_monitor_start(monitor, server);
                if (r) {
                        cpn_error_set(&err, r, "cannot start the monitor thread");
                        server = cpn_server_free(server);
                }
        }
        if (r) {
                cpn_log_error("cannot start: %s", err.msg);
                cpn_monitor_free(monitor);
                cpn_ticket_service_close(&tickets_svc);
                cpn_ticket_relay_free(ticket_relay);
                cpn_ticket_reaper_free(reaper);
                cpn_relay_free(relay);
                cpn_redis_pipe_free(svc.pipe);
                cpn_db_pool_free(svc.db_pool);
                cpn_producer_free(svc.producer, 0);
                cpn_coupon_outbox_free(outbox);
                cpn_config_clear(&cfg);
                return 1;
        }
        {
                struct cpn_session *probe;
                struct cpn_error perr = { { 0 } };

                if (cpn_session_new(&probe, &svc) == 0) {
                        if (cpn_service_ping_redis(probe, &perr) != 0)
                                cpn_log_warn("redis not reachable yet (%s); /readyz answers 503 until it is",
                                             perr.msg);
                        cpn_session_free(probe);
                }
        }
        cpn_log_info("listening on %s (%ld threads), kafka %s topic %s, ack timeout %ld ms", cfg.http_addr,
                     cfg.http_threads, cfg.kafka_brokers, cfg.kafka_topic, cfg.kafka_ack_timeout_ms);

        while (sigwait(&sigs, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
                ;
        cpn_log_info("%s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        cpn_monitor_stop(monitor);     /* it reads the server's counters */
        cpn_server_free(server);       /* answers what is in flight */
        cpn_monitor_free(monitor);     /* after the requests holding its snapshots */
        cpn_ticket_service_close(&tickets_svc); /* no reservation is left */
        cpn_redis_pipe_free(svc.pipe); /* no caller is left */
        cpn_ticket_reaper_free(reaper);
        cpn_ticket_relay_free(ticket_relay); /* before the producer it borrows */
        cpn_db_pool_free(svc.db_pool);
        cpn_relay_free(relay);
        cpn_producer_free(svc.producer, 5000); /* waits for Kafka's reports */
        cpn_coupon_outbox_free(outbox);        /* the producer's sink, used until then */
        cpn_log_info("stopped");
        cpn_config_clear(&cfg);
        return 0;
}
