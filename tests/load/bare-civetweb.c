/*
 * cpn-bare-civetweb: the HTTP ceiling of the benchmarks. The same civetweb
 * settings as coupon-api (threads, keep-alive, tcp_nodelay, one write per
 * answer) and a handler that answers every request with a fixed 202 JSON
 * body, doing nothing else. coupon-api's throughput is reported as a ratio
 * to this one, measured in the same run.
 *
 * usage: cpn-bare-civetweb HOST:PORT [THREADS]   (stops on SIGTERM/SIGINT)
 */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char body_text[] = "{\"result\":\"issued\",\"campaign_id\":\"c\",\"user_id\":\"u-1\",\"seq\":1}";
static char answer[256];
static int answer_len;

static int handle(struct mg_connection *conn, void *ud) {
        char body[4096];

        (void)ud;
        while (mg_read(conn, body, sizeof(body)) > 0)
                ;
        mg_write(conn, answer, (size_t)answer_len);
        return 202;
}

static int allow_all(struct mg_connection *conn, void *ud) {
        (void)conn;
        (void)ud;
        return 1;
}

int main(int argc, char **argv) {
        const char *threads = argc > 2 ? argv[2] : "1024";
        const char *options[] = {
                "listening_ports", argc > 1 ? argv[1] : "127.0.0.1:8090",
                "num_threads", threads,
                "request_timeout_ms", "10000",
                "keep_alive_timeout_ms", "5000",
                "enable_keep_alive", "yes",
                "tcp_nodelay", "1",
                "decode_url", "no",
                "listen_backlog", "4096",
                "max_request_size", "16384",
                NULL,
        };
        struct mg_callbacks cb;
        struct mg_context *ctx;
        sigset_t sigs;
        int sig;

        if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
                printf("usage: cpn-bare-civetweb HOST:PORT [THREADS]\n");
                return 0;
        }
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        answer_len = snprintf(answer, sizeof(answer),
                              "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                              "Cache-Control: no-store\r\n\r\n%s",
                              sizeof(body_text) - 1, body_text);
        memset(&cb, 0, sizeof(cb));
        mg_init_library(0);
        ctx = mg_start(&cb, NULL, options);
        if (!ctx) {
                fprintf(stderr, "cpn-bare-civetweb: cannot listen on %s\n", options[1]);
                return 1;
        }
        mg_set_request_handler(ctx, "**", handle, NULL);
        mg_set_auth_handler(ctx, "**", allow_all, NULL); /* as coupon-api: no .htpasswd lookup */
        sigwait(&sigs, &sig);
        mg_stop(ctx);
        mg_exit_library();
        return 0;
}
