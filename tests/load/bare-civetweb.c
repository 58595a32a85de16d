/*
 * cpn-bare-civetweb: the HTTP ceiling of the benchmarks. The same civetweb
 * settings as coupon-api (threads, keep-alive, tcp_nodelay, one write per
 * answer) and a handler that answers every request with a fixed 202 JSON
 * body, doing nothing else. coupon-api's throughput is reported as a ratio
 * to this one, measured in the same run.
 *
 * With --handoff each request is answered only after another thread has
 * "decided" it: the request thread queues itself and sleeps; one decider
 * thread takes everything queued and wakes each request, as coupon-api's
 * Redis pipe and Kafka delivery report do. That is the ceiling of any
 * thread-per-connection server whose answer waits on another thread; the
 * bench reports coupon-api against both.
 *
 * usage: cpn-bare-civetweb [--handoff] HOST:PORT [THREADS]
 *        (stops on SIGTERM/SIGINT)
 */
#include <civetweb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char body_text[] = "{\"result\":\"issued\",\"campaign_id\":\"c\",\"user_id\":\"u-1\",\"seq\":1}";
static char answer[256];
static int answer_len;

/* One request waiting for the decider; lives on its thread's stack. */
struct waiting {
        struct waiting *next;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool decided;
};

static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cv = PTHREAD_COND_INITIALIZER;
static struct waiting *queue_head; /* under queue_mu */
static bool decider_idle, stopping;

static void *decider(void *arg) {
        (void)arg;
        for (;;) {
                struct waiting *w, *next;

                pthread_mutex_lock(&queue_mu);
                while (!queue_head && !stopping) {
                        decider_idle = true;
                        pthread_cond_wait(&queue_cv, &queue_mu);
                }
                decider_idle = false;
                w = queue_head;
                queue_head = NULL;
                pthread_mutex_unlock(&queue_mu);
                if (!w && stopping)
                        return NULL;
                for (; w; w = next) {
                        next = w->next;
                        /* Signalled under the lock: once the owner sees
                         * decided it returns and its stack (w) is gone. */
                        pthread_mutex_lock(&w->mu);
                        w->decided = true;
                        pthread_cond_signal(&w->cv);
                        pthread_mutex_unlock(&w->mu);
                }
        }
}

static void hand_off(void) {
        struct waiting w = { .decided = false };

        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        pthread_mutex_lock(&queue_mu);
        w.next = queue_head; /* order does not matter here */
        queue_head = &w;
        if (decider_idle) {
                decider_idle = false;
                pthread_cond_signal(&queue_cv);
        }
        pthread_mutex_unlock(&queue_mu);
        pthread_mutex_lock(&w.mu);
        while (!w.decided)
                pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
}

static int handle(struct mg_connection *conn, void *ud) {
        char body[4096];

        while (mg_read(conn, body, sizeof(body)) > 0)
                ;
        if (ud)
                hand_off();
        mg_write(conn, answer, (size_t)answer_len);
        return 202;
}

static int allow_all(struct mg_connection *conn, void *ud) {
        (void)conn;
        (void)ud;
        return 1;
}

int main(int argc, char **argv) {
        bool handoff = argc > 1 && !strcmp(argv[1], "--handoff");
        pthread_t decider_thread;

        if (handoff) {
                argc--;
                argv++;
        }
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
                printf("usage: cpn-bare-civetweb [--handoff] HOST:PORT [THREADS]\n"
                       "  --handoff  each answer waits for another thread to wake it\n");
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
        if (handoff && pthread_create(&decider_thread, NULL, decider, NULL)) {
                fprintf(stderr, "cpn-bare-civetweb: cannot start the decider thread\n");
                return 1;
        }
        mg_init_library(0);
        ctx = mg_start(&cb, NULL, options);
        if (!ctx) {
                fprintf(stderr, "cpn-bare-civetweb: cannot listen on %s\n", options[1]);
                return 1;
        }
        mg_set_request_handler(ctx, "**", handle, handoff ? (void *)1 : NULL);
        mg_set_auth_handler(ctx, "**", allow_all, NULL); /* as coupon-api: no .htpasswd lookup */
        sigwait(&sigs, &sig);
        mg_stop(ctx);
        mg_exit_library();
        if (handoff) {
                pthread_mutex_lock(&queue_mu);
                stopping = true;
                pthread_cond_signal(&queue_cv);
                pthread_mutex_unlock(&queue_mu);
                pthread_join(decider_thread, NULL);
        }
        return 0;
}
