/*
 * cpn-bare-epoll: what an event-driven HTTP front would buy, measured. A
 * minimal HTTP/1.1 keep-alive server on epoll (one loop per thread, each
 * with its own SO_REUSEPORT listener) that answers every request with the
 * same fixed 202 as cpn-bare-civetweb. With --handoff each answer waits
 * for a second thread to "decide" it, as coupon-api's answers wait for the
 * Redis pipe and Kafka's delivery report: the request is queued, the loop
 * goes on with other connections, and the decider hands the batch back
 * through an eventfd, so no thread sleeps per request.
 *
 * Benchmark code only: it reads just enough HTTP for cpn-loadgen and wrk
 * (a head, an optional Content-Length body, one request at a time per
 * connection) and is no server for untrusted clients.
 *
 * usage: cpn-bare-epoll [--handoff] HOST:PORT [LOOPS]   (default 2 loops;
 *        stops on SIGTERM/SIGINT)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

static const char body_text[] = "{\"result\":\"issued\",\"campaign_id\":\"c\",\"user_id\":\"u-1\",\"seq\":1}";
static char answer[256];
static size_t answer_len;

struct loop;

struct conn {
        int fd;
        struct loop *loop;
        bool waiting;       /* handed to the decider; no reading meanwhile */
        bool unread;        /* readable while waiting: read once answered */
        struct conn *next;  /* the decider's queue, then the loop's done list */
        size_t len;
        char in[8192];
};

struct loop {
        pthread_t thread;
        int ep, lfd, efd;
        pthread_mutex_t mu;
        struct conn *done; /* under mu: decided, to be answered */
        struct conn *dead; /* closed in this epoll batch; freed after it */
};

static struct sockaddr_in addr;
static bool handoff;
static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cv = PTHREAD_COND_INITIALIZER;
static struct conn *queue_head; /* under queue_mu */
static bool decider_idle;

/* Closes now, frees after the current epoll batch: a later event of the
 * same batch may still point at @c. */
static void conn_close(struct conn *c) {
        close(c->fd);
        c->fd = -1;
        c->next = c->loop->dead;
        c->loop->dead = c;
}

/* Length of the first whole request in @c->in, 0 if incomplete, -1 if bad. */
static long request_len(const struct conn *c) {
        const char *end = memmem(c->in, c->len, "\r\n\r\n", 4);
        long head, body = 0;

        if (!end)
                return c->len == sizeof(c->in) ? -1 : 0;
        head = end + 4 - c->in;
        for (const char *p = c->in; p < end; p++) {
                if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
                        body = strtol(p + 15, NULL, 10);
                        break;
                }
        }
        if (body < 0 || head + body > (long)sizeof(c->in))
                return -1;
        return c->len >= (size_t)(head + body) ? head + body : 0;
}

static bool reply(struct conn *c) {
        return send(c->fd, answer, answer_len, MSG_NOSIGNAL) == (ssize_t)answer_len;
}

/* Answers (or hands off) every whole request buffered; false: close it. */
static bool serve(struct conn *c) {
        while (!c->waiting) {
                long n = request_len(c);

                if (n < 0)
                        return false;
                if (n == 0)
                        return true;
                memmove(c->in, c->in + n, c->len - (size_t)n);
                c->len -= (size_t)n;
                if (!handoff) {
                        if (!reply(c))
                                return false;
                        continue;
                }
                c->waiting = true;
                pthread_mutex_lock(&queue_mu);
                c->next = queue_head;
                queue_head = c;
                if (decider_idle) {
                        decider_idle = false;
                        pthread_cond_signal(&queue_cv);
                }
                pthread_mutex_unlock(&queue_mu);
        }
        return true;
}

/* Edge-triggered: reads until EAGAIN, serving as it goes. A connection
 * handed to the decider is not read (its next request must wait for this
 * answer); it is read again once answered. False: close it. */
static bool readable(struct conn *c) {
        for (;;) {
                ssize_t n;

                if (c->waiting) {
                        c->unread = true;
                        return true;
                }
                size_t room = sizeof(c->in) - c->len;

                n = read(c->fd, c->in + c->len, room);
                if (n > 0) {
                        c->len += (size_t)n;
                        if (!serve(c))
                                return false;
                        /* A short read emptied the socket: wait for the
                         * next edge rather than read EAGAIN. */
                        if ((size_t)n < room)
                                return true;
                } else if (n == 0) {
                        return false;
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        return true;
                } else if (errno != EINTR) {
                        return false;
                }
        }
}

static void *decider(void *arg) {
        (void)arg;
        for (;;) {
                struct conn *c, *next;

                pthread_mutex_lock(&queue_mu);
                while (!queue_head) {
                        decider_idle = true;
                        pthread_cond_wait(&queue_cv, &queue_mu);
                }
                c = queue_head;
                queue_head = NULL;
                pthread_mutex_unlock(&queue_mu);
                for (; c; c = next) {
                        struct loop *l = c->loop;
                        bool first;
                        uint64_t one = 1;

                        next = c->next;
                        pthread_mutex_lock(&l->mu);
                        first = !l->done;
                        c->next = l->done;
                        l->done = c;
                        pthread_mutex_unlock(&l->mu);
                        if (first && write(l->efd, &one, sizeof(one)) < 0)
                                perror("eventfd");
                }
        }
        return NULL;
}

static int listener(void) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
            bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 4096))
                return -1;
        return fd;
}

static void *loop_main(void *arg) {
        struct loop *l = arg;
        struct epoll_event evs[256];

        for (;;) {
                int n = epoll_wait(l->ep, evs, 256, -1);

                for (int i = 0; i < n; i++) {
                        void *p = evs[i].data.ptr;

                        if (p == &l->lfd) {
                                int fd, one = 1;

                                while ((fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                                        struct conn *c = calloc(1, sizeof(*c));
                                        struct epoll_event ev = { .events = EPOLLIN | EPOLLET };

                                        if (!c) {
                                                close(fd);
                                                continue;
                                        }
                                        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                                        c->fd = fd;
                                        c->loop = l;
                                        ev.data.ptr = c;
                                        epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
                                }
                        } else if (p == &l->efd) {
                                uint64_t v;
                                struct conn *c, *next;

                                if (read(l->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                                        perror("eventfd");
                                pthread_mutex_lock(&l->mu);
                                c = l->done;
                                l->done = NULL;
                                pthread_mutex_unlock(&l->mu);
                                for (; c; c = next) {
                                        bool ok;

                                        next = c->next;
                                        c->waiting = false;
                                        ok = reply(c) && serve(c);
                                        if (ok && c->unread) {
                                                c->unread = false;
                                                ok = readable(c);
                                        }
                                        if (!ok)
                                                conn_close(c);
                                }
                        } else {
                                struct conn *c = p;

                                /* Never closed while waiting: the decider
                                 * holds it (readable() does not read then). */
                                if (c->fd >= 0 && !readable(c))
                                        conn_close(c);
                        }
                }
                while (l->dead) {
                        struct conn *c = l->dead;

                        l->dead = c->next;
                        free(c);
                }
        }
        return NULL;
}

int main(int argc, char **argv) {
        int nloops = 2;
        char host[64];
        const char *colon;
        pthread_t dt;
        sigset_t sigs;
        int sig;

        if (argc > 1 && !strcmp(argv[1], "--handoff")) {
                handoff = true;
                argc--;
                argv++;
        }
        if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                printf("usage: cpn-bare-epoll [--handoff] HOST:PORT [LOOPS]\n"
                       "  --handoff  each answer waits for another thread, without a thread sleeping\n");
                return argc < 2 ? 2 : 0;
        }
        colon = strrchr(argv[1], ':');
        if (!colon || (size_t)(colon - argv[1]) >= sizeof(host)) {
                fprintf(stderr, "cpn-bare-epoll: HOST:PORT expected\n");
                return 2;
        }
        memcpy(host, argv[1], (size_t)(colon - argv[1]));
        host[colon - argv[1]] = 0;
        addr.sin_family = AF_INET;
        addr.sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
                fprintf(stderr, "cpn-bare-epoll: bad address %s\n", host);
                return 2;
        }
        if (argc > 2)
                nloops = atoi(argv[2]);
        if (nloops < 1 || nloops > 64)
                nloops = 2;
        answer_len = (size_t)snprintf(answer, sizeof(answer),
                                      "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                                      "Cache-Control: no-store\r\n\r\n%s",
                                      sizeof(body_text) - 1, body_text);
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        for (int i = 0; i < nloops; i++) {
                struct loop *l = calloc(1, sizeof(*l));
                struct epoll_event ev = { .events = EPOLLIN };

                if (!l || (l->lfd = listener()) < 0 || (l->ep = epoll_create1(0)) < 0 ||
                    (l->efd = eventfd(0, EFD_NONBLOCK)) < 0) {
                        fprintf(stderr, "cpn-bare-epoll: cannot listen on %s: %s\n", argv[1], strerror(errno));
                        return 1;
                }
                pthread_mutex_init(&l->mu, NULL);
                ev.data.ptr = &l->lfd;
                epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev);
                ev.data.ptr = &l->efd;
                epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev);
                if (pthread_create(&l->thread, NULL, loop_main, l)) {
                        fprintf(stderr, "cpn-bare-epoll: cannot start a loop\n");
                        return 1;
                }
        }
        if (handoff && pthread_create(&dt, NULL, decider, NULL)) {
                fprintf(stderr, "cpn-bare-epoll: cannot start the decider\n");
                return 1;
        }
        sigwait(&sigs, &sig);
        return 0; /* the threads go with the process */
}
