/*
 * coupon-devpay: a fake card payment gateway, FOR DEVELOPMENT AND TESTS ONLY.
 *
 * THIS IS NOT A PAYMENT GATEWAY. No card is charged and no money moves:
 * every payment lives in this process's memory and is gone when it exits.
 * Never point production at it.
 *
 * It answers the confirm, cancel and look-up calls of a Korean card
 * gateway's v1 API (Toss Payments style), so that coupon-api's payment
 * client can be tested against something that behaves like the real one:
 * HTTP Basic auth with the secret key, Idempotency-Key replays, an order
 * never charged twice, and test cards chosen by the paymentKey prefix that
 * decline, answer slowly, never answer, or charge and lose the answer.
 *
 * A second listener, the controls, lets tests take the gateway down and up
 * and read the ledger of every charge and cancel. Payments and the ledger
 * are kept outside the civetweb contexts, so they survive down/up.
 *
 * Threads: civetweb's workers run the handlers; one mutex guards the maps
 * and the ledger and is never held across a sleep or a socket write. The
 * main thread only waits for SIGTERM/SIGINT.
 *
 * Standalone on purpose: it links civetweb, cJSON and libc, nothing of the
 * project's core library.
 */

/* meson passes -D_GNU_SOURCE; a hand build of this one file needs it too
 * (strndup, flockfile). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

/* Header-only (no project library is linked): the monotonic waits. */
#include "cpn/clock.h"

/* The top-level meson.build defines it; a hand build says so. */
#ifndef CPN_VERSION
#define CPN_VERSION "unknown (built outside meson)"
#endif

#define PROG "coupon-devpay"

#define DEFAULT_LISTEN "127.0.0.1:8090"
#define DEFAULT_SECRET "test_sk_devpay"
#define DEFAULT_THREADS 64
#define MAX_THREADS 1000
#define DEFAULT_HOLD_MS 60000
#define MAX_HOLD_MS 3600000
/* Controls are a handful of test calls at a time. */
#define CONTROL_THREADS "4"
/* A client that stops sending its request in the middle gives up its
 * worker after this long. */
#define REQUEST_TIMEOUT_MS "30000"

#define MAX_BODY (64 * 1024)
#define MAX_SECRET 1000
#define MAX_SLOW_MS 600000
#define MAX_AMOUNT 1000000000000LL
#define MAX_IDEMPOTENCY_KEY 300
#define MAX_CANCEL_REASON 200

/* After "up", the old listening socket may not be free at once. */
#define UP_RETRY_MS 5000
#define UP_RETRY_STEP_MS 100

/* "2024-05-01T12:34:56Z" and room for a five-digit year. */
#define TIMESTAMP_SIZE 32

struct options {
        char *listen;           /* IPv4:PORT */
        char *control;          /* IPv4:PORT on loopback, or NULL */
        const char *secret;
        const char *ledger_path;
        const char *ready_file;
        long threads;
        long hold_ms;
};

/* ---- a string-keyed hash map -------------------------------------------- */

struct map_node {
        struct map_node *next;
        void *value;
        char key[];
};

/* Chained, power-of-two buckets, grown when it holds as many keys as it
 * has buckets. Keys are copied; values are the caller's. */
struct map {
        struct map_node **buckets;
        size_t n_buckets;
        size_t n;
};

static uint64_t hash(const char *s) {
        uint64_t h = 1469598103934665603ULL;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

static void *map_get(const struct map *m, const char *key) {
        if (m->n_buckets == 0)
                return NULL;
        for (struct map_node *n = m->buckets[hash(key) & (m->n_buckets - 1)]; n; n = n->next)
                if (strcmp(n->key, key) == 0)
                        return n->value;
        return NULL;
}

static int map_grow(struct map *m) {
        size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
        struct map_node **b = calloc(nb, sizeof(*b));

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_buckets; i++) {
                struct map_node *n, *next;

                for (n = m->buckets[i]; n; n = next) {
                        size_t j = hash(n->key) & (nb - 1);

                        next = n->next;
                        n->next = b[j];
                        b[j] = n;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = nb;
        return 0;
}

/* Adds @key -> @value; @key must not be in the map. 0 or -ENOMEM (the map
 * is unchanged then). */
static int map_put(struct map *m, const char *key, void *value) {
        size_t len = strlen(key), i;
        struct map_node *n;

        if (m->n >= m->n_buckets && map_grow(m) < 0)
                return -ENOMEM;
        n = malloc(sizeof(*n) + len + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n->key, key, len + 1);
        n->value = value;
        i = hash(key) & (m->n_buckets - 1);
        n->next = m->buckets[i];
        m->buckets[i] = n;
        m->n++;
        return 0;
}

/* Takes @key out of the map and returns its value (NULL if absent). */
static void *map_remove(struct map *m, const char *key) {
        struct map_node **p;

        if (m->n_buckets == 0)
                return NULL;
        for (p = &m->buckets[hash(key) & (m->n_buckets - 1)]; *p; p = &(*p)->next) {
                struct map_node *n = *p;
                void *v;

                if (strcmp(n->key, key) != 0)
                        continue;
                *p = n->next;
                v = n->value;
                free(n);
                m->n--;
                return v;
        }
        return NULL;
}

static void map_clear(struct map *m, void (*free_value)(void *)) {
        for (size_t i = 0; i < m->n_buckets; i++) {
                struct map_node *n, *next;

                for (n = m->buckets[i]; n; n = next) {
                        next = n->next;
                        if (free_value)
                                free_value(n->value);
                        free(n);
                }
        }
        free(m->buckets);
        *m = (struct map){ 0 };
}

/* ---- the gateway's state ------------------------------------------------ */

struct payment {
        char *payment_key;
        char *order_id;
        char *cancel_reason;    /* NULL while the payment is DONE */
        int64_t amount;
        char approved_at[TIMESTAMP_SIZE];
        char canceled_at[TIMESTAMP_SIZE];
};

struct ledger_entry {
        uint64_t seq;
        const struct payment *payment;  /* payments live until exit */
        int64_t amount;
        bool cancel;
        char at[TIMESTAMP_SIZE];
};

/* What an Idempotency-Key was first used for, and its answer once known. */
struct replay {
        char *payment_key;
        char *order_id;
        int64_t amount;
        bool done;              /* false while the first request runs */
        int status;
        char *body;
};

enum behaviour {
        APPROVE,
        DECLINE,
        DECLINE_LIMIT,
        SLOW,
        TIMEOUT,
        LOST,
        N_BEHAVIOURS
};

static const char *const behaviour_names[N_BEHAVIOURS] = {
        [APPROVE] = "approve",
        [DECLINE] = "decline",
        [DECLINE_LIMIT] = "decline_limit",
        [SLOW] = "slow",
        [TIMEOUT] = "timeout",
        [LOST] = "lost",
};

struct stats {
        uint64_t confirms[N_BEHAVIOURS];
        uint64_t replayed;      /* answered from an Idempotency-Key */
        uint64_t in_progress;   /* 409: the key's first request still runs */
        uint64_t mismatched;    /* 422: the key was used for another body */
        uint64_t abandoned;     /* slow or timeout calls cut short by a stop */
        uint64_t cancels;
        uint64_t lookups;
        uint64_t unauthorized;
        uint64_t invalid;       /* 400, 404, 405 and 413 */
};

struct devpay {
        const struct options *opts;
        char *auth;             /* base64(secret ":"), as Basic auth carries it */

        pthread_mutex_t lock;   /* guards everything down to stats */
        struct map by_order;    /* orderId -> payment, owns the payments */
        struct map by_key;      /* paymentKey -> the same payments */
        struct map replays;     /* Idempotency-Key -> struct replay, owned */
        struct ledger_entry *ledger;
        size_t n_ledger;
        size_t ledger_cap;
        uint64_t charged;
        uint64_t cancelled;
        int64_t charged_amount;
        int64_t cancelled_amount;
        FILE *ledger_file;
        struct stats stats;

        /* Wakes the handlers that wait on purpose (slow and timeout cards)
         * when the API listener stops, so that mg_stop() does not wait for
         * minutes and "down" really drops them. */
        pthread_mutex_t hold_lock;
        pthread_cond_t hold_cond;
        bool api_stopping;

        /* Serializes down, up and shutdown. Never taken by API handlers,
         * so holding it across mg_stop() of the API cannot deadlock. */
        pthread_mutex_t api_lock;
        struct mg_context *api;
        bool shutting_down;

        struct mg_context *control;
};

/* ---- small helpers ------------------------------------------------------ */

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
        va_list ap;

        /* One locked stdio sequence, so lines of concurrent handlers never
         * interleave. */
        flockfile(stderr);
        fputs(PROG ": ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
}

/* Header values and paths come from the client: they go into the one-line
 * log only when they cannot break the line. */
static const char *loggable(const char *s) {
        if (!s)
                return "-";
        for (const char *p = s; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        return "(unprintable)";
        return s;
}

static void timestamp_now(char out[TIMESTAMP_SIZE]) {
        struct timespec ts;
        struct tm tm;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm) ||
            strftime(out, TIMESTAMP_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(out, TIMESTAMP_SIZE, "1970-01-01T00:00:00Z");
}

static void nap_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Parses a whole decimal number in [min, max]; 0 or -EINVAL. */
static int parse_long(const char *s, long min, long max, long *ret) {
        char *end;
        long v;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static char *base64(const char *in, size_t len) {
        static const char digits[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)(unsigned char)in[i] << 16;

                if (i + 1 < len)
                        v |= (uint32_t)(unsigned char)in[i + 1] << 8;
                if (i + 2 < len)
                        v |= (unsigned char)in[i + 2];
                *o++ = digits[v >> 18 & 63];
                *o++ = digits[v >> 12 & 63];
                *o++ = i + 1 < len ? digits[v >> 6 & 63] : '=';
                *o++ = i + 2 < len ? digits[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

/* Characters of @s when it is valid UTF-8 (no overlong forms, no
 * surrogates), else -1: a reason is echoed back in JSON answers, which
 * must stay valid UTF-8. */
static long utf8_chars(const char *s) {
        const unsigned char *p = (const unsigned char *)s;
        long n = 0;

        while (*p) {
                unsigned c = *p;
                size_t len;
                uint32_t cp;

                if (c < 0x80) {
                        p++;
                        n++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        len = 2;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        len = 3;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        len = 4;
                        cp = c & 0x07;
                } else {
                        return -1;
                }
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return -1;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return -1;
                p += len;
                n++;
        }
        return n;
}

/* @s is @min..@max characters of [A-Za-z0-9] and @extra. */
static bool ident_valid(const char *s, size_t min, size_t max, const char *extra) {
        size_t n = strlen(s);

        if (n < min || n > max)
                return false;
        for (const char *p = s; *p; p++) {
                bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                             (*p >= '0' && *p <= '9');

                if (!alnum && !strchr(extra, *p))
                        return false;
        }
        return true;
}

/* ---- payments and the ledger (callers hold d->lock) --------------------- */

static void payment_free(void *v) {
        struct payment *p = v;

        if (!p)
                return;
        free(p->payment_key);
        free(p->order_id);
        free(p->cancel_reason);
        free(p);
}

static void replay_free(void *v) {
        struct replay *r = v;

        if (!r)
                return;
        free(r->payment_key);
        free(r->order_id);
        free(r->body);
        free(r);
}

static cJSON *payment_json(const struct payment *p) {
        cJSON *o = cJSON_CreateObject();
        bool ok = o &&
                  cJSON_AddStringToObject(o, "paymentKey", p->payment_key) &&
                  cJSON_AddStringToObject(o, "orderId", p->order_id) &&
                  cJSON_AddStringToObject(o, "status", p->cancel_reason ? "CANCELED" : "DONE") &&
                  cJSON_AddNumberToObject(o, "totalAmount", (double)p->amount) &&
                  cJSON_AddStringToObject(o, "method", "CARD") &&
                  cJSON_AddStringToObject(o, "approvedAt", p->approved_at);

        if (ok && p->cancel_reason)
                ok = cJSON_AddStringToObject(o, "canceledAt", p->canceled_at) &&
                     cJSON_AddStringToObject(o, "cancelReason", p->cancel_reason);
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

static cJSON *ledger_entry_json(const struct ledger_entry *e) {
        cJSON *o = cJSON_CreateObject();

        if (!o ||
            !cJSON_AddNumberToObject(o, "seq", (double)e->seq) ||
            !cJSON_AddStringToObject(o, "at", e->at) ||
            !cJSON_AddStringToObject(o, "op", e->cancel ? "cancel" : "charge") ||
            !cJSON_AddStringToObject(o, "paymentKey", e->payment->payment_key) ||
            !cJSON_AddStringToObject(o, "orderId", e->payment->order_id) ||
            !cJSON_AddNumberToObject(o, "amount", (double)e->amount)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* Makes room for one more entry, so that the entry itself can be added
 * after the maps changed, without a way to fail. 0 or -ENOMEM. */
static int ledger_reserve(struct devpay *d) {
        struct ledger_entry *n;
        size_t cap;

        if (d->n_ledger < d->ledger_cap)
                return 0;
        cap = d->ledger_cap ? d->ledger_cap * 2 : 256;
        n = realloc(d->ledger, cap * sizeof(*n));
        if (!n)
                return -ENOMEM;
        d->ledger = n;
        d->ledger_cap = cap;
        return 0;
}

/* The file copy is for people and scripts; a failed write is logged and
 * the in-memory ledger, which tests read, stays complete. */
static void ledger_file_append(struct devpay *d, const struct ledger_entry *e) {
        cJSON *o = ledger_entry_json(e);
        char *line = o ? cJSON_PrintUnformatted(o) : NULL;

        cJSON_Delete(o);
        if (!line) {
                log_line("ledger file %s: entry %" PRIu64 " not written: out of memory",
                         d->opts->ledger_path, e->seq);
                return;
        }
        if (fprintf(d->ledger_file, "%s\n", line) < 0 || fflush(d->ledger_file) != 0) {
                log_line("ledger file %s: entry %" PRIu64 " not written: %s",
                         d->opts->ledger_path, e->seq, strerror(errno));
                clearerr(d->ledger_file);
        }
        free(line);
}

/* Needs a successful ledger_reserve() first. */
static void ledger_push(struct devpay *d, const struct payment *p, bool cancel, const char *at) {
        struct ledger_entry *e = &d->ledger[d->n_ledger++];

        e->seq = d->n_ledger;
        e->payment = p;
        e->amount = p->amount;
        e->cancel = cancel;
        snprintf(e->at, sizeof(e->at), "%s", at);
        if (cancel) {
                d->cancelled++;
                d->cancelled_amount += p->amount;
        } else {
                d->charged++;
                d->charged_amount += p->amount;
        }
        if (d->ledger_file)
                ledger_file_append(d, e);
}

/* ---- answers ------------------------------------------------------------ */

/* A JSON answer; body NULL means building it ran out of memory, which is
 * answered with a fixed 500. */
struct answer {
        int status;
        char *body;
};

static const char oom_body[] =
        "{\"code\":\"INTERNAL_ERROR\",\"message\":\"" PROG " ran out of memory\"}";

/* Takes @o (may be NULL) and prints it into @a. 0 or -ENOMEM. */
static int answer_take(struct answer *a, int status, cJSON *o) {
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;

        cJSON_Delete(o);
        /* cJSON allocates with malloc (no hooks are installed), so every
         * body is released with free(). */
        free(a->body);
        a->body = s;
        a->status = s ? status : 500;
        return s ? 0 : -ENOMEM;
}

static int answer_error(struct answer *a, int status, const char *code, const char *message) {
        cJSON *o = cJSON_CreateObject();

        if (o && (!cJSON_AddStringToObject(o, "code", code) ||
                  !cJSON_AddStringToObject(o, "message", message))) {
                cJSON_Delete(o);
                o = NULL;
        }
        return answer_take(a, status, o);
}

static int answer_payment(struct answer *a, int status, const struct payment *p) {
        return answer_take(a, status, payment_json(p));
}

/* Writes one JSON answer and returns its status for civetweb's log. The
 * connection is closed after it (keep-alive is off), so a client that
 * goes away mid-answer costs nothing but a log line. */
static int send_json(struct mg_connection *conn, int status, const char *body, const char *extra_headers) {
        size_t len = strlen(body);

        if (mg_printf(conn,
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n"
                      "Connection: close\r\n"
                      "%s\r\n",
                      status, mg_get_response_code_text(conn, status), len,
                      extra_headers ? extra_headers : "") <= 0 ||
            mg_write(conn, body, len) != (int)len) {
                const struct mg_request_info *ri = mg_get_request_info(conn);

                log_line("client %s:%d gone before its %d answer was written",
                         ri->remote_addr, ri->remote_port, status);
        }
        return status;
}

static int send_answer(struct mg_connection *conn, const struct answer *a, const char *extra_headers) {
        if (!a->body)
                return send_json(conn, 500, oom_body, NULL);
        return send_json(conn, a->status, a->body, extra_headers);
}

/* Sends and releases @a. */
static int send_answer_free(struct mg_connection *conn, struct answer *a) {
        int status = send_answer(conn, a, NULL);

        free(a->body);
        a->body = NULL;
        return status;
}

static int send_error(struct mg_connection *conn, int status, const char *code, const char *message,
                      const char *extra_headers) {
        struct answer a = { 0 };
        int sent;

        answer_error(&a, status, code, message);
        sent = send_answer(conn, &a, extra_headers);
        free(a.body);
        return sent;
}

/* ---- requests ----------------------------------------------------------- */

static void count(struct devpay *d, uint64_t *counter) {
        pthread_mutex_lock(&d->lock);
        (*counter)++;
        pthread_mutex_unlock(&d->lock);
}

/* Reads the whole request body into a NUL-terminated heap buffer. 0;
 * -EMSGSIZE when it is longer than MAX_BODY; -EIO when the client stopped
 * sending or went away; -ENOMEM. */
static int read_body(struct mg_connection *conn, char **ret, size_t *ret_len) {
        const struct mg_request_info *ri = mg_get_request_info(conn);
        size_t len = 0, cap;
        char *buf;

        if (ri->content_length > MAX_BODY)
                return -EMSGSIZE;
        /* Chunked bodies have no length: start small and grow. */
        cap = ri->content_length >= 0 ? (size_t)ri->content_length + 1 : 1024;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                int n;

                if (ri->content_length >= 0 && len == (size_t)ri->content_length)
                        break;
                if (len + 1 == cap) {
                        size_t ncap = cap * 2 > MAX_BODY + 2 ? MAX_BODY + 2 : cap * 2;
                        char *nbuf = realloc(buf, ncap);

                        if (!nbuf) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nbuf;
                        cap = ncap;
                }
                n = mg_read(conn, buf + len, cap - len - 1);
                if (n < 0) {
                        free(buf);
                        return -EIO;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > MAX_BODY) {
                        free(buf);
                        return -EMSGSIZE;
                }
        }
        if (ri->content_length >= 0 && len < (size_t)ri->content_length) {
                free(buf);
                return -EIO;
        }
        buf[len] = '\0';
        *ret = buf;
        *ret_len = len;
        return 0;
}

/* Reads and parses a JSON object body. Returns the tree, or NULL after it
 * has answered the request itself (400, 413, 500, or nothing when the
 * client is gone); *status is what civetweb logs then. */
static cJSON *read_object(struct devpay *d, struct mg_connection *conn, const char *what, int *status) {
        const char *why = NULL;
        cJSON *root = NULL;
        char *body = NULL;
        size_t len = 0;
        int r;

        r = read_body(conn, &body, &len);
        switch (r) {
        case 0:
                break;
        case -EMSGSIZE:
                count(d, &d->stats.invalid);
                log_line("%s: body larger than %d bytes -> 413", what, MAX_BODY);
                *status = send_error(conn, 413, "PAYLOAD_TOO_LARGE",
                                     "the request body is larger than 64 KiB", NULL);
                return NULL;
        case -ENOMEM:
                log_line("%s: out of memory reading the body -> 500", what);
                *status = send_json(conn, 500, oom_body, NULL);
                return NULL;
        default:
                log_line("%s: client stopped sending its body, no answer", what);
                *status = 400;
                return NULL;
        }

        if (len == 0)
                why = "the body is empty; a JSON object is expected";
        else if (memchr(body, '\0', len))
                why = "the body contains a NUL byte";
        /* cJSON 1.7.15 checks for the terminating NUL inside the length it
         * is given; with NULs refused above, that NUL is the body's end, so
         * trailing bytes after the object are refused too. */
        else if (!(root = cJSON_ParseWithLengthOpts(body, len + 1, NULL, true)))
                why = "the body is not valid JSON";
        else if (!cJSON_IsObject(root))
                why = "the body must be a JSON object";
        free(body);
        if (why) {
                cJSON_Delete(root);
                count(d, &d->stats.invalid);
                log_line("%s: %s -> 400", what, why);
                *status = send_error(conn, 400, "INVALID_REQUEST", why, NULL);
                return NULL;
        }
        return root;
}

struct confirm {
        const char *payment_key;        /* borrowed from the request's tree */
        const char *order_id;
        int64_t amount;
};

/* Validates a confirm body. 0, or -EINVAL with the reason in @why. */
static int parse_confirm(const cJSON *o, struct confirm *c, char *why, size_t why_size) {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "paymentKey");
        const cJSON *order = cJSON_GetObjectItemCaseSensitive(o, "orderId");
        const cJSON *amount = cJSON_GetObjectItemCaseSensitive(o, "amount");
        double v;

        if (!cJSON_IsString(key) || !ident_valid(key->valuestring, 1, 200, "_.:-")) {
                snprintf(why, why_size, "paymentKey must be a string of 1-200 characters of [A-Za-z0-9_.:-]");
                return -EINVAL;
        }
        if (!cJSON_IsString(order) || !ident_valid(order->valuestring, 6, 64, "_-")) {
                snprintf(why, why_size, "orderId must be a string of 6-64 characters of [A-Za-z0-9_-]");
                return -EINVAL;
        }
        v = cJSON_IsNumber(amount) ? amount->valuedouble : 0;
        /* The range test comes first: it also rejects NaN and infinities,
         * which the cast below must never see. */
        if (!(v >= 1 && v <= (double)MAX_AMOUNT) || (double)(int64_t)v != v) {
                snprintf(why, why_size, "amount must be a whole number from 1 to %lld", MAX_AMOUNT);
                return -EINVAL;
        }
        c->payment_key = key->valuestring;
        c->order_id = order->valuestring;
        c->amount = (int64_t)v;
        return 0;
}

/* The test card a paymentKey stands for. 0, or -EINVAL when it asks for a
 * delay longer than MAX_SLOW_MS. */
static int classify(const char *key, enum behaviour *ret, long *slow_ms) {
        const char *p;
        long ms = 0;

        if (strncmp(key, "decline-limit", 13) == 0)
                *ret = DECLINE_LIMIT;
        else if (strncmp(key, "decline", 7) == 0)
                *ret = DECLINE;
        else if (strncmp(key, "timeout", 7) == 0)
                *ret = TIMEOUT;
        else if (strncmp(key, "lost", 4) == 0)
                *ret = LOST;
        else
                *ret = APPROVE;
        if (*ret != APPROVE || strncmp(key, "slow", 4) != 0)
                return 0;

        /* "slow<N>-...": a key that merely starts with "slow" approves. */
        for (p = key + 4; *p >= '0' && *p <= '9'; p++) {
                if (ms > MAX_SLOW_MS)
                        return -EINVAL;
                ms = ms * 10 + (*p - '0');
        }
        if (p == key + 4 || (*p != '-' && *p != '\0'))
                return 0;
        if (ms > MAX_SLOW_MS)
                return -EINVAL;
        *ret = SLOW;
        *slow_ms = ms;
        return 0;
}

/* Waits @ms unless the API listener stops first. True when the whole time
 * passed, false when it was cut short. */
static bool hold(struct devpay *d, long ms) {
        struct timespec until;
        bool stopped;

        cpn_deadline_in(&until, ms);
        pthread_mutex_lock(&d->hold_lock);
        while (!d->api_stopping)
                if (pthread_cond_timedwait(&d->hold_cond, &d->hold_lock, &until) == ETIMEDOUT)
                        break;
        stopped = d->api_stopping;
        pthread_mutex_unlock(&d->hold_lock);
        return !stopped;
}

/* Charges @c unless its order was paid before, and puts the answer in @a
 * and what happened, for the log, in @event. 0 or -ENOMEM (then
 * nothing was charged, or the charge is kept and only the answer is
 * missing: a retry finds the payment). */
static int approve(struct devpay *d, const struct confirm *c, struct answer *a, const char **event) {
        struct payment *p;
        char now[TIMESTAMP_SIZE];
        int r;

        *event = "out of memory";
        timestamp_now(now);
        pthread_mutex_lock(&d->lock);
        p = map_get(&d->by_order, c->order_id);
        if (p) {
                /* A retry of the same payment gets it again; anything else
                 * would charge the order a second time. */
                if (strcmp(p->payment_key, c->payment_key) == 0 && p->amount == c->amount) {
                        *event = "paid before, not charged again";
                        r = answer_payment(a, 200, p);
                } else {
                        *event = "order paid before by another payment";
                        r = answer_error(a, 400, "ALREADY_PROCESSED_PAYMENT",
                                         "this order was already paid with another payment");
                }
                goto out;
        }
        if (map_get(&d->by_key, c->payment_key)) {
                *event = "paymentKey used before for another order";
                r = answer_error(a, 400, "DUPLICATED_PAYMENT_KEY",
                                 "this paymentKey was already used for another order");
                goto out;
        }

        r = -ENOMEM;
        p = calloc(1, sizeof(*p));
        if (!p || !(p->payment_key = strdup(c->payment_key)) || !(p->order_id = strdup(c->order_id)) ||
            ledger_reserve(d) < 0) {
                payment_free(p);
                goto out;
        }
        p->amount = c->amount;
        snprintf(p->approved_at, sizeof(p->approved_at), "%s", now);
        if (map_put(&d->by_order, p->order_id, p) < 0) {
                payment_free(p);
                goto out;
        }
        if (map_put(&d->by_key, p->payment_key, p) < 0) {
                map_remove(&d->by_order, p->order_id);
                payment_free(p);
                goto out;
        }
        ledger_push(d, p, false, now);
        *event = "charged";
        r = answer_payment(a, 200, p);
out:
        pthread_mutex_unlock(&d->lock);
        return r;
}

static bool same_request(const struct replay *r, const struct confirm *c) {
        return strcmp(r->payment_key, c->payment_key) == 0 && strcmp(r->order_id, c->order_id) == 0 &&
               r->amount == c->amount;
}

/* For a confirm with Idempotency-Key @key: registers the key as in progress
 * and returns 0 (run the request), or puts what to answer instead into @a
 * and returns 1 (a replay, a 409 or a 422; @event says which). -ENOMEM. */
static int replay_begin(struct devpay *d, const char *key, const struct confirm *c, struct answer *a,
                        const char **event) {
        struct replay *r;
        int ret = 1;

        pthread_mutex_lock(&d->lock);
        r = map_get(&d->replays, key);
        if (r) {
                if (!same_request(r, c)) {
                        d->stats.mismatched++;
                        *event = "key used before for another request";
                        if (answer_error(a, 422, "IDEMPOTENT_REQUEST_MISMATCH",
                                         "this Idempotency-Key was used for a different request") < 0)
                                ret = -ENOMEM;
                } else if (!r->done) {
                        d->stats.in_progress++;
                        *event = "key's first request still running";
                        if (answer_error(a, 409, "IDEMPOTENT_REQUEST_PROCESSING",
                                         "a request with this Idempotency-Key is still being processed") < 0)
                                ret = -ENOMEM;
                } else {
                        d->stats.replayed++;
                        *event = "replayed";
                        a->status = r->status;
                        a->body = strdup(r->body);
                        if (!a->body)
                                ret = -ENOMEM;
                }
                goto out;
        }

        ret = -ENOMEM;
        r = calloc(1, sizeof(*r));
        if (!r || !(r->payment_key = strdup(c->payment_key)) || !(r->order_id = strdup(c->order_id))) {
                replay_free(r);
                goto out;
        }
        r->amount = c->amount;
        if (map_put(&d->replays, key, r) < 0) {
                replay_free(r);
                goto out;
        }
        ret = 0;
out:
        pthread_mutex_unlock(&d->lock);
        return ret;
}

/* Remembers @a as the answer of @key, or forgets the key when @a is NULL:
 * nothing happened (a timeout card, a call cut short), so a retry must run
 * again rather than replay a non-answer. */
static void replay_finish(struct devpay *d, const char *key, const struct answer *a) {
        struct replay *r;
        char *body = a && a->body ? strdup(a->body) : NULL;

        pthread_mutex_lock(&d->lock);
        r = map_get(&d->replays, key);
        if (r && body) {
                r->done = true;
                r->status = a->status;
                r->body = body;
                body = NULL;
        } else if (r) {
                /* Without a stored answer the key must not stay "in
                 * progress" for ever; the order map still prevents a
                 * second charge when it is retried. */
                replay_free(map_remove(&d->replays, key));
        }
        pthread_mutex_unlock(&d->lock);
        free(body);
}

static int on_confirm(struct devpay *d, struct mg_connection *conn) {
        const char *idem = mg_get_header(conn, "Idempotency-Key");
        const char *event = NULL;
        struct answer a = { 0 };
        struct confirm c;
        enum behaviour b;
        char why[160];
        bool silent = false, abandoned = false;
        long slow_ms = 0;
        cJSON *root;
        int status = 0, r;

        root = read_object(d, conn, "confirm", &status);
        if (!root)
                return status;
        r = parse_confirm(root, &c, why, sizeof(why));
        if (r == 0 && idem && (strlen(idem) < 1 || strlen(idem) > MAX_IDEMPOTENCY_KEY ||
                               strcmp(loggable(idem), idem) != 0)) {
                snprintf(why, sizeof(why), "Idempotency-Key must be 1-%d printable ASCII characters",
                         MAX_IDEMPOTENCY_KEY);
                r = -EINVAL;
        }
        if (r == 0 && classify(c.payment_key, &b, &slow_ms) < 0) {
                snprintf(why, sizeof(why), "a slow<N> test card may wait at most %d ms", MAX_SLOW_MS);
                r = -EINVAL;
        }
        if (r < 0) {
                count(d, &d->stats.invalid);
                log_line("confirm: %s -> 400", why);
                status = send_error(conn, 400, "INVALID_REQUEST", why, NULL);
                goto out;
        }
        count(d, &d->stats.confirms[b]);

        if (idem) {
                r = replay_begin(d, idem, &c, &a, &event);
                if (r != 0) {
                        log_line("confirm order=%s key=%s amount=%" PRId64 " idempotency=%s -> %d (%s)",
                                 c.order_id, c.payment_key, c.amount, idem, a.body ? a.status : 500,
                                 r < 0 ? "out of memory" : event);
                        status = send_answer(conn, &a, NULL);
                        goto out;
                }
        }

        switch (b) {
        case DECLINE:
                r = answer_error(&a, 403, "REJECT_CARD_PAYMENT", "the card issuer declined the payment");
                event = "declined";
                break;
        case DECLINE_LIMIT:
                r = answer_error(&a, 403, "EXCEED_MAX_DAILY_PAYMENT_COUNT",
                                 "the card's daily payment count is exhausted");
                event = "declined";
                break;
        case TIMEOUT:
                hold(d, d->opts->hold_ms);
                abandoned = true;
                r = 0;
                event = "timeout card: held the connection, closed it without an answer";
                break;
        case SLOW:
                if (!hold(d, slow_ms)) {
                        abandoned = true;
                        r = 0;
                        event = "slow card cut short by the listener stopping: no answer, no charge";
                        break;
                }
                /* fall through - then it approves, like any card */
        case APPROVE:
        case LOST:
        default:
                r = approve(d, &c, &a, &event);
                silent = b == LOST;
                break;
        }
        if (abandoned)
                count(d, &d->stats.abandoned);

        /* Remember before answering: a retry after a lost answer must find
         * it. A 500 is not an answer of the payment, so it is not kept. */
        if (idem)
                replay_finish(d, idem, abandoned || r < 0 ? NULL : &a);

        status = a.body ? a.status : 500;
        if (abandoned)
                log_line("confirm order=%s key=%s amount=%" PRId64 " idempotency=%s -> no answer (%s)",
                         c.order_id, c.payment_key, c.amount, loggable(idem), event);
        else
                log_line("confirm order=%s key=%s amount=%" PRId64 " idempotency=%s -> %s%d (%s)",
                         c.order_id, c.payment_key, c.amount, loggable(idem),
                         silent ? "lost card, connection closed instead of " : "", status,
                         event);
        if (abandoned || silent) {
                /* Returning without writing anything makes civetweb close
                 * the connection: the client sees it end with no answer.
                 * The status returned is only for civetweb's own log. */
                mg_disable_connection_keep_alive(conn);
                status = abandoned ? 504 : status;
                goto out;
        }
        status = send_answer(conn, &a, NULL);
out:
        free(a.body);
        cJSON_Delete(root);
        return status;
}

static int on_cancel(struct devpay *d, struct mg_connection *conn, const char *payment_key) {
        struct answer a = { 0 };
        const cJSON *reason;
        struct payment *p;
        const char *event;
        char now[TIMESTAMP_SIZE];
        cJSON *root;
        long chars;
        int status = 0;

        root = read_object(d, conn, "cancel", &status);
        if (!root)
                return status;
        reason = cJSON_GetObjectItemCaseSensitive(root, "cancelReason");
        chars = cJSON_IsString(reason) ? utf8_chars(reason->valuestring) : -1;
        if (chars < 1 || chars > MAX_CANCEL_REASON) {
                count(d, &d->stats.invalid);
                log_line("cancel key=%s: bad cancelReason -> 400", loggable(payment_key));
                status = send_error(conn, 400, "INVALID_REQUEST",
                                    "cancelReason must be a string of 1-200 characters", NULL);
                goto out;
        }

        timestamp_now(now);
        pthread_mutex_lock(&d->lock);
        d->stats.cancels++;
        p = map_get(&d->by_key, payment_key);
        if (!p) {
                event = "no such payment";
                answer_error(&a, 404, "NOT_FOUND_PAYMENT", "no payment has this paymentKey");
        } else if (p->cancel_reason) {
                event = "already canceled";
                answer_payment(&a, 200, p);
        } else if (ledger_reserve(d) < 0 || !(p->cancel_reason = strdup(reason->valuestring))) {
                event = "out of memory";
        } else {
                event = "canceled";
                snprintf(p->canceled_at, sizeof(p->canceled_at), "%s", now);
                ledger_push(d, p, true, now);
                answer_payment(&a, 200, p);
        }
        pthread_mutex_unlock(&d->lock);

        log_line("cancel key=%s -> %d (%s)", loggable(payment_key), a.body ? a.status : 500, event);
        status = send_answer(conn, &a, NULL);
out:
        free(a.body);
        cJSON_Delete(root);
        return status;
}

/* GET of a payment by order: the API's look-up and the controls' view. */
static int on_lookup(struct devpay *d, struct mg_connection *conn, const char *order_id, const char *who) {
        struct answer a = { 0 };
        struct payment *p;
        int status;

        pthread_mutex_lock(&d->lock);
        d->stats.lookups++;
        p = map_get(&d->by_order, order_id);
        if (p)
                answer_payment(&a, 200, p);
        else
                answer_error(&a, 404, "NOT_FOUND_PAYMENT", "nothing was charged for this orderId");
        pthread_mutex_unlock(&d->lock);
        log_line("%s order=%s -> %d", who, loggable(order_id), a.body ? a.status : 500);
        status = send_answer(conn, &a, NULL);
        free(a.body);
        return status;
}

/* ---- routing ------------------------------------------------------------ */

struct route {
        const char *method;
        const char *prefix;     /* the whole path, or what comes before its {param} */
        const char *suffix;     /* NULL: no {param}; else what follows it */
        int op;
};

/* Exact match of @path against @rt; a {param} is one non-empty segment. */
static bool route_matches(const struct route *rt, const char *path, const char **param, size_t *param_len) {
        size_t pl = strlen(rt->prefix), sl, n = strlen(path);

        if (!rt->suffix)
                return strcmp(path, rt->prefix) == 0;
        sl = strlen(rt->suffix);
        if (n <= pl + sl || strncmp(path, rt->prefix, pl) != 0 || strcmp(path + n - sl, rt->suffix) != 0)
                return false;
        if (memchr(path + pl, '/', n - pl - sl))
                return false;
        *param = path + pl;
        *param_len = n - pl - sl;
        return true;
}

/* Finds the route of @method @path and copies its {param} into *param
 * (NULL without one). Returns the route; NULL with *allow set to a method
 * the path does have (405), or to NULL for an unknown path (404); or NULL
 * with *oom set. */
static const struct route *route_find(const struct route *routes, size_t n, const char *method,
                                      const char *path, char **param, const char **allow, bool *oom) {
        *allow = NULL;
        *param = NULL;
        *oom = false;
        if (!path)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const char *p = NULL;
                size_t len = 0;

                if (!route_matches(&routes[i], path, &p, &len))
                        continue;
                if (strcmp(method, routes[i].method) != 0) {
                        *allow = routes[i].method;
                        continue;
                }
                if (p && !(*param = strndup(p, len))) {
                        *oom = true;
                        return NULL;
                }
                return &routes[i];
        }
        return NULL;
}

/* Answers a request no route took: 404, 405 or 500. */
static int unrouted(struct devpay *d, struct mg_connection *conn, const char *where, const char *method,
                    const char *path, const char *allow, bool oom) {
        char header[64];

        if (oom) {
                log_line("%s %s %s: out of memory -> 500", where, loggable(method), loggable(path));
                return send_json(conn, 500, oom_body, NULL);
        }
        count(d, &d->stats.invalid);
        if (allow) {
                log_line("%s %s %s -> 405", where, loggable(method), loggable(path));
                snprintf(header, sizeof(header), "Allow: %s\r\n", allow);
                return send_error(conn, 405, "METHOD_NOT_ALLOWED", "this path takes another method", header);
        }
        log_line("%s %s %s -> 404", where, loggable(method), loggable(path));
        return send_error(conn, 404, "NOT_FOUND", "no such path", NULL);
}

enum { OP_CONFIRM, OP_CANCEL, OP_ORDER };

static const struct route api_routes[] = {
        { "POST", "/v1/payments/confirm", NULL, OP_CONFIRM },
        { "POST", "/v1/payments/", "/cancel", OP_CANCEL },
        { "GET", "/v1/payments/orders/", "", OP_ORDER },
};

static bool authorized(const struct devpay *d, const struct mg_connection *conn) {
        const char *h = mg_get_header(conn, "Authorization");
        size_t n;

        if (!h || strncasecmp(h, "Basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
                return false;
        for (h += 5; *h == ' ' || *h == '\t'; h++)
                ;
        n = strlen(h);
        while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
                n--;
        return n == strlen(d->auth) && memcmp(h, d->auth, n) == 0;
}

/* civetweb's begin_request for the gateway API: it sees every request,
 * before any handler lookup, so there is no window after mg_start() in
 * which civetweb itself would answer. */
static int api_request(struct mg_connection *conn) {
        const struct mg_request_info *ri = mg_get_request_info(conn);
        struct devpay *d = ri->user_data;
        const char *path = ri->local_uri_raw, *allow;
        const struct route *rt;
        char *param;
        bool oom;
        int status;

        if (!authorized(d, conn)) {
                count(d, &d->stats.unauthorized);
                log_line("api %s %s from %s: missing or wrong secret key -> 401",
                         loggable(ri->request_method), loggable(path), ri->remote_addr);
                return send_error(conn, 401, "UNAUTHORIZED_KEY",
                                  "send Authorization: Basic base64(secretKey + \":\")", NULL);
        }
        rt = route_find(api_routes, sizeof(api_routes) / sizeof(api_routes[0]), ri->request_method, path,
                        &param, &allow, &oom);
        if (!rt)
                return unrouted(d, conn, "api", ri->request_method, path, allow, oom);
        switch (rt->op) {
        case OP_CONFIRM:
                status = on_confirm(d, conn);
                break;
        case OP_CANCEL:
                status = on_cancel(d, conn, param);
                break;
        default:
                status = on_lookup(d, conn, param, "lookup");
                break;
        }
        free(param);
        return status;
}

/* ---- the API listener and the controls ---------------------------------- */

/* civetweb reports why a listener did not start (e.g. "cannot bind to
 * 127.0.0.1:8090: 98 (Address already in use)") only through its log
 * callback, from inside mg_start2() in the calling thread: while a start
 * runs, this thread's messages are kept here instead of logged. */
static _Thread_local char *start_error;
static _Thread_local bool starting;

static int civetweb_log(const struct mg_connection *conn, const char *message) {
        size_t n = strlen(message);

        (void)conn;
        while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
                n--;
        if (starting) {
                if (!start_error)
                        start_error = strndup(message, n);
                return 1;
        }
        log_line("civetweb: %.*s", (int)n, message);
        return 1;
}

/* Starts a listener on @addr whose requests go to @begin. Returns the
 * context, or NULL with the reason in @err. */
static struct mg_context *listener_start(struct devpay *d, const char *addr, const char *threads,
                                         int (*begin)(struct mg_connection *), char *err, size_t err_size) {
        const char *options[] = {
                "listening_ports", addr,
                "num_threads", threads,
                /* One request per connection: a lost or timed-out answer
                 * then ends its connection, as a real one would. */
                "enable_keep_alive", "no",
                "request_timeout_ms", REQUEST_TIMEOUT_MS,
                NULL
        };
        struct mg_callbacks callbacks;
        struct mg_init_data init = { .callbacks = &callbacks, .user_data = d,
                                     .configuration_options = options };
        char text[256] = "";
        unsigned code = 0;
        struct mg_error_data error = { .code = &code, .text = text, .text_buffer_size = sizeof(text) };
        struct mg_context *ctx;

        memset(&callbacks, 0, sizeof(callbacks));
        callbacks.begin_request = begin;
        callbacks.log_message = civetweb_log;
        starting = true;
        ctx = mg_start2(&init, &error);
        starting = false;
        if (!ctx)
                snprintf(err, err_size, "%s", start_error ? start_error : text[0] ? text : "civetweb failed");
        free(start_error);
        start_error = NULL;
        return ctx;
}

/* Starts the API listener; with @retry, for up to UP_RETRY_MS while the
 * address is still taken. Caller holds api_lock. 0 or -EADDRINUSE. */
static int api_start_locked(struct devpay *d, bool retry, char *err, size_t err_size) {
        char threads[24];

        snprintf(threads, sizeof(threads), "%ld", d->opts->threads);
        for (long waited = 0;; waited += UP_RETRY_STEP_MS) {
                d->api = listener_start(d, d->opts->listen, threads, api_request, err, err_size);
                if (d->api || !retry || waited >= UP_RETRY_MS)
                        break;
                nap_ms(UP_RETRY_STEP_MS);
        }
        return d->api ? 0 : -EADDRINUSE;
}

/* Stops the API listener: new connections are refused, requests being
 * handled finish, the ones waiting on purpose are woken and dropped.
 * Caller holds api_lock. */
static void api_stop_locked(struct devpay *d) {
        if (!d->api)
                return;
        pthread_mutex_lock(&d->hold_lock);
        d->api_stopping = true;
        pthread_cond_broadcast(&d->hold_cond);
        pthread_mutex_unlock(&d->hold_lock);

        mg_stop(d->api);
        d->api = NULL;

        /* Every worker of the old context has returned: nobody is left to
         * see the flag, and the next context starts clean. */
        pthread_mutex_lock(&d->hold_lock);
        d->api_stopping = false;
        pthread_mutex_unlock(&d->hold_lock);
}

static int send_state(struct mg_connection *conn, bool up) {
        return send_json(conn, 200, up ? "{\"state\":\"up\"}" : "{\"state\":\"down\"}", NULL);
}

static int on_down(struct devpay *d, struct mg_connection *conn) {
        bool was_up;

        pthread_mutex_lock(&d->api_lock);
        was_up = d->api != NULL;
        api_stop_locked(d);
        pthread_mutex_unlock(&d->api_lock);
        log_line("control: down (%s)", was_up ? "API listener stopped" : "was down already");
        return send_state(conn, false);
}

static int on_up(struct devpay *d, struct mg_connection *conn) {
        char err[256] = "";
        bool was_up;
        int r = 0;

        pthread_mutex_lock(&d->api_lock);
        was_up = d->api != NULL;
        if (d->shutting_down) {
                r = -ESHUTDOWN;
                snprintf(err, sizeof(err), "shutting down");
        } else if (!was_up) {
                r = api_start_locked(d, true, err, sizeof(err));
        }
        pthread_mutex_unlock(&d->api_lock);
        if (r < 0) {
                log_line("control: up failed: %s", err);
                return send_error(conn, 503, "UNAVAILABLE", err, NULL);
        }
        log_line("control: up (%s on %s)", was_up ? "was up already" : "API listener started",
                 d->opts->listen);
        return send_state(conn, true);
}

static int on_ledger(struct devpay *d, struct mg_connection *conn) {
        struct answer a = { 0 };
        cJSON *o = cJSON_CreateObject(), *entries = NULL;
        bool ok;

        pthread_mutex_lock(&d->lock);
        ok = o && (entries = cJSON_AddArrayToObject(o, "entries"));
        for (size_t i = 0; ok && i < d->n_ledger; i++) {
                cJSON *e = ledger_entry_json(&d->ledger[i]);

                ok = e && cJSON_AddItemToArray(entries, e);
                if (!ok)
                        cJSON_Delete(e);
        }
        ok = ok &&
             cJSON_AddNumberToObject(o, "charged", (double)d->charged) &&
             cJSON_AddNumberToObject(o, "cancelled", (double)d->cancelled) &&
             cJSON_AddNumberToObject(o, "charged_amount", (double)d->charged_amount) &&
             cJSON_AddNumberToObject(o, "cancelled_amount", (double)d->cancelled_amount);
        pthread_mutex_unlock(&d->lock);
        if (!ok) {
                cJSON_Delete(o);
                o = NULL;
        }
        answer_take(&a, 200, o);
        return send_answer_free(conn, &a);
}

static int on_stats(struct devpay *d, struct mg_connection *conn) {
        struct answer a = { 0 };
        cJSON *o = cJSON_CreateObject(), *calls = NULL;
        struct stats s;
        size_t payments;
        bool up, ok;

        pthread_mutex_lock(&d->api_lock);
        up = d->api != NULL;
        pthread_mutex_unlock(&d->api_lock);
        pthread_mutex_lock(&d->lock);
        s = d->stats;
        payments = d->by_order.n;
        pthread_mutex_unlock(&d->lock);

        ok = o && cJSON_AddStringToObject(o, "state", up ? "up" : "down") &&
             (calls = cJSON_AddObjectToObject(o, "confirms"));
        for (int b = 0; ok && b < N_BEHAVIOURS; b++)
                ok = cJSON_AddNumberToObject(calls, behaviour_names[b], (double)s.confirms[b]) != NULL;
        ok = ok &&
             cJSON_AddNumberToObject(o, "replayed", (double)s.replayed) &&
             cJSON_AddNumberToObject(o, "in_progress", (double)s.in_progress) &&
             cJSON_AddNumberToObject(o, "mismatched", (double)s.mismatched) &&
             cJSON_AddNumberToObject(o, "abandoned", (double)s.abandoned) &&
             cJSON_AddNumberToObject(o, "cancels", (double)s.cancels) &&
             cJSON_AddNumberToObject(o, "lookups", (double)s.lookups) &&
             cJSON_AddNumberToObject(o, "unauthorized", (double)s.unauthorized) &&
             cJSON_AddNumberToObject(o, "invalid", (double)s.invalid) &&
             cJSON_AddNumberToObject(o, "payments", (double)payments);
        if (!ok) {
                cJSON_Delete(o);
                o = NULL;
        }
        answer_take(&a, 200, o);
        return send_answer_free(conn, &a);
}

enum { CTL_DOWN, CTL_UP, CTL_STATE, CTL_LEDGER, CTL_PAYMENT, CTL_STATS };

static const struct route control_routes[] = {
        { "POST", "/down", NULL, CTL_DOWN },
        { "POST", "/up", NULL, CTL_UP },
        { "GET", "/state", NULL, CTL_STATE },
        { "GET", "/ledger", NULL, CTL_LEDGER },
        { "GET", "/payments/", "", CTL_PAYMENT },
        { "GET", "/stats", NULL, CTL_STATS },
};

static int control_request(struct mg_connection *conn) {
        const struct mg_request_info *ri = mg_get_request_info(conn);
        struct devpay *d = ri->user_data;
        const char *allow;
        const struct route *rt;
        char *param;
        bool up, oom;
        int status;

        rt = route_find(control_routes, sizeof(control_routes) / sizeof(control_routes[0]),
                        ri->request_method, ri->local_uri_raw, &param, &allow, &oom);
        if (!rt)
                return unrouted(d, conn, "control", ri->request_method, ri->local_uri_raw, allow, oom);
        switch (rt->op) {
        case CTL_DOWN:
                status = on_down(d, conn);
                break;
        case CTL_UP:
                status = on_up(d, conn);
                break;
        case CTL_STATE:
                pthread_mutex_lock(&d->api_lock);
                up = d->api != NULL;
                pthread_mutex_unlock(&d->api_lock);
                status = send_state(conn, up);
                break;
        case CTL_LEDGER:
                status = on_ledger(d, conn);
                break;
        case CTL_PAYMENT:
                status = on_lookup(d, conn, param, "control payment");
                break;
        default:
                status = on_stats(d, conn);
                break;
        }
        free(param);
        return status;
}

/* ---- start-up ----------------------------------------------------------- */

static const char *env_nonempty(const char *name) {
        const char *v = getenv(name);

        return v && *v ? v : NULL;
}

/* Accepts "IPv4:PORT", also written as the URL "http://IPv4:PORT/" (the form
 * local-services.sh exports), and returns "IPv4:PORT" in a new string. 0,
 * -EINVAL, -ENOMEM. */
static int parse_addr(const char *in, char **ret) {
        struct in_addr ia;
        char *copy, *colon;
        size_t len;
        long port;

        if (strncmp(in, "http://", 7) == 0)
                in += 7;
        len = strlen(in);
        if (len > 0 && in[len - 1] == '/')
                len--;
        copy = strndup(in, len);
        if (!copy)
                return -ENOMEM;
        colon = strrchr(copy, ':');
        if (!colon)
                goto bad;
        *colon = '\0';
        if (inet_pton(AF_INET, copy, &ia) != 1 || parse_long(colon + 1, 1, 65535, &port) < 0)
                goto bad;
        *colon = ':';
        *ret = copy;
        return 0;
bad:
        free(copy);
        return -EINVAL;
}

static void options_clear(struct options *o) {
        free(o->listen);
        free(o->control);
        o->listen = o->control = NULL;
}

static void usage(FILE *f) {
        fprintf(f,
"Usage: " PROG " [OPTIONS]\n"
"\n"
"  *** FOR DEVELOPMENT AND TESTS ONLY. NEVER USE IT IN PRODUCTION. ***\n"
"  A fake card payment gateway: the confirm / cancel / look-up calls of a\n"
"  Korean card gateway's v1 API (Toss Payments style). No card is charged\n"
"  and no money moves; it keeps everything in memory, and all of it is\n"
"  gone when it exits.\n"
"\n"
"Options (environment fallback in brackets; flags win):\n"
"  --listen ADDR          gateway API on IPv4:PORT (default " DEFAULT_LISTEN ")\n"
"                         [COUPON_DEVPAY_ADDR]\n"
"  --control ADDR         test controls on a loopback IPv4:PORT (default: none)\n"
"                         [COUPON_DEVPAY_CONTROL]\n"
"                         ADDR may also be written http://IPv4:PORT\n"
"  --secret KEY           secret key clients send as Basic auth user with an\n"
"                         empty password (default " DEFAULT_SECRET ")\n"
"                         [COUPON_PAYMENT_SECRET]\n"
"  --ledger FILE          also append every ledger entry to FILE, one JSON\n"
"                         line each (the file keeps earlier runs; seq\n"
"                         starts at 1 in each run)\n"
"  --ready-file FILE      write \"http://ADDR\" there (atomically) once both\n"
"                         listeners are up; removed on exit\n"
"  --threads N            API worker threads, 1-%d (default %d); every\n"
"                         slow or timeout call holds one while it waits\n"
"  --timeout-hold-ms N    how long a timeout card holds its connection\n"
"                         before closing it, 0-%d (default %d)\n"
"  --help, --version\n"
"\n"
"Gateway API (every call: Authorization: Basic base64(KEY + \":\")):\n"
"  POST /v1/payments/confirm              {\"paymentKey\",\"orderId\",\"amount\"}\n"
"       with an optional Idempotency-Key header: the first answer of a key\n"
"       is replayed to the same request; another request gets 422\n"
"  POST /v1/payments/{paymentKey}/cancel  {\"cancelReason\"}\n"
"  GET  /v1/payments/orders/{orderId}\n"
"\n"
"Test cards, by paymentKey prefix:\n"
"  decline...      403 REJECT_CARD_PAYMENT, nothing charged\n"
"                  (decline-limit...: EXCEED_MAX_DAILY_PAYMENT_COUNT)\n"
"  slow<N>-...     waits N ms (at most %d), then approves\n"
"  timeout...      never answers: holds the connection for --timeout-hold-ms,\n"
"                  then closes it; nothing charged, nothing remembered\n"
"  lost...         charges, then closes the connection without an answer\n"
"  anything else   approves; an order is never charged twice\n"
"\n"
"Controls (on --control, no auth):\n"
"  POST /down              stop the API listener (new connections refused)\n"
"  POST /up                start it again on the same address\n"
"  GET  /state             {\"state\":\"up\"|\"down\"}\n"
"  GET  /ledger            every charge and cancel in order, with totals\n"
"  GET  /payments/ORDERID  the stored payment\n"
"  GET  /stats             calls by test card and outcome\n"
"Payments and the ledger survive down/up, never a restart.\n"
"\n"
"Exit status: 0 after SIGTERM/SIGINT (requests being handled finish; slow\n"
"and timeout cards still waiting are dropped unanswered and uncharged, as\n"
"on /down), 1 when it cannot start (address in use, unwritable file), 2 on\n"
"bad usage.\n",
                MAX_THREADS, DEFAULT_THREADS, MAX_HOLD_MS, DEFAULT_HOLD_MS, MAX_SLOW_MS);
}

/* 0 to run, 1 when --help/--version was handled, negative on bad usage
 * (already reported). */
static int parse_options(int argc, char **argv, struct options *o) {
        enum { OPT_LISTEN = 256, OPT_CONTROL, OPT_SECRET, OPT_LEDGER, OPT_READY_FILE, OPT_THREADS,
               OPT_HOLD, OPT_HELP, OPT_VERSION };
        static const struct option longopts[] = {
                { "listen", required_argument, NULL, OPT_LISTEN },
                { "control", required_argument, NULL, OPT_CONTROL },
                { "secret", required_argument, NULL, OPT_SECRET },
                { "ledger", required_argument, NULL, OPT_LEDGER },
                { "ready-file", required_argument, NULL, OPT_READY_FILE },
                { "threads", required_argument, NULL, OPT_THREADS },
                { "timeout-hold-ms", required_argument, NULL, OPT_HOLD },
                { "help", no_argument, NULL, OPT_HELP },
                { "version", no_argument, NULL, OPT_VERSION },
                { NULL, 0, NULL, 0 }
        };
        const char *listen = env_nonempty("COUPON_DEVPAY_ADDR");
        const char *control = env_nonempty("COUPON_DEVPAY_CONTROL");
        const char *threads = NULL, *hold = NULL;
        int c, r;

        o->secret = env_nonempty("COUPON_PAYMENT_SECRET");
        while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_LISTEN:
                        listen = optarg;
                        break;
                case OPT_CONTROL:
                        control = optarg;
                        break;
                case OPT_SECRET:
                        o->secret = optarg;
                        break;
                case OPT_LEDGER:
                        o->ledger_path = optarg;
                        break;
                case OPT_READY_FILE:
                        o->ready_file = optarg;
                        break;
                case OPT_THREADS:
                        threads = optarg;
                        break;
                case OPT_HOLD:
                        hold = optarg;
                        break;
                case 'h':
                case OPT_HELP:
                        usage(stdout);
                        return 1;
                case 'V':
                case OPT_VERSION:
                        printf(PROG " %s\n", CPN_VERSION);
                        return 1;
                default:
                        fprintf(stderr, PROG ": bad usage, see --help\n");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, PROG ": unexpected argument '%s', see --help\n", argv[optind]);
                return -EINVAL;
        }

        r = parse_addr(listen ? listen : DEFAULT_LISTEN, &o->listen);
        if (r < 0) {
                if (r == -ENOMEM)
                        fprintf(stderr, PROG ": out of memory\n");
                else
                        fprintf(stderr, PROG ": --listen must be IPv4:PORT (port 1-65535), got '%s'\n",
                                listen);
                return r;
        }
        if (control) {
                r = parse_addr(control, &o->control);
                if (r == -EINVAL || (r == 0 && strncmp(o->control, "127.", 4) != 0)) {
                        fprintf(stderr, PROG ": --control must be a loopback IPv4:PORT (127.x.x.x, "
                                "the controls have no auth), got '%s'\n", control);
                        return -EINVAL;
                }
                if (r < 0) {
                        fprintf(stderr, PROG ": out of memory\n");
                        return r;
                }
                if (strcmp(o->control, o->listen) == 0) {
                        fprintf(stderr, PROG ": --control and --listen are both %s\n", o->listen);
                        return -EINVAL;
                }
        }
        if (!o->secret)
                o->secret = DEFAULT_SECRET;
        if (strlen(o->secret) > MAX_SECRET || strcmp(loggable(o->secret), o->secret) != 0) {
                fprintf(stderr, PROG ": --secret must be 1-%d printable ASCII characters\n", MAX_SECRET);
                return -EINVAL;
        }
        o->threads = DEFAULT_THREADS;
        if (threads && parse_long(threads, 1, MAX_THREADS, &o->threads) < 0) {
                fprintf(stderr, PROG ": --threads must be 1-%d, got '%s'\n", MAX_THREADS, threads);
                return -EINVAL;
        }
        o->hold_ms = DEFAULT_HOLD_MS;
        if (hold && parse_long(hold, 0, MAX_HOLD_MS, &o->hold_ms) < 0) {
                fprintf(stderr, PROG ": --timeout-hold-ms must be 0-%d, got '%s'\n", MAX_HOLD_MS, hold);
                return -EINVAL;
        }
        return 0;
}

/* Writes @content to @path through a temporary file in the same folder
 * and rename(), so a script waiting for the file never reads half of it.
 * 0 or a negative errno. */
static int write_file_atomic(const char *path, const char *content) {
        size_t len = strlen(content), n = strlen(path);
        char *tmp = malloc(n + sizeof(".XXXXXX"));
        int fd, r = 0;

        if (!tmp)
                return -ENOMEM;
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".XXXXXX", sizeof(".XXXXXX"));
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                free(tmp);
                return r;
        }
        for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, content + off, len - off);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0) {
                        r = -errno;
                        break;
                }
                off += (size_t)w;
        }
        if (r == 0 && fchmod(fd, 0644) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        free(tmp);
        return r;
}

/* 0, or negative after reporting why. Once d->opts is set, devpay_clear()
 * and the shutdown in main() must run, whatever failed later. */
static int devpay_init(struct devpay *d, const struct options *o) {
        size_t n = strlen(o->secret);
        char *user;

        /* The hold deadlines are monotonic: a clock step must not end a
         * timeout card early or make it hang. */
        if (cpn_cond_init_monotonic(&d->hold_cond) != 0)
                goto no_cond;
        pthread_mutex_init(&d->lock, NULL);
        pthread_mutex_init(&d->hold_lock, NULL);
        pthread_mutex_init(&d->api_lock, NULL);
        d->opts = o;

        user = malloc(n + 2);
        if (!user) {
                fprintf(stderr, PROG ": out of memory\n");
                return -ENOMEM;
        }
        memcpy(user, o->secret, n);
        memcpy(user + n, ":", 2);
        d->auth = base64(user, n + 1);
        free(user);
        if (!d->auth) {
                fprintf(stderr, PROG ": out of memory\n");
                return -ENOMEM;
        }

        if (o->ledger_path) {
                d->ledger_file = fopen(o->ledger_path, "ae");
                if (!d->ledger_file) {
                        fprintf(stderr, PROG ": cannot open ledger file %s: %s\n", o->ledger_path,
                                strerror(errno));
                        return -EIO;
                }
        }
        return 0;
no_cond:
        fprintf(stderr, PROG ": cannot create a condition variable\n");
        return -EIO;
}

/* Only once no listener runs any more. */
static void devpay_clear(struct devpay *d) {
        if (d->ledger_file && fclose(d->ledger_file) != 0)
                fprintf(stderr, PROG ": closing ledger file %s: %s\n", d->opts->ledger_path, strerror(errno));
        d->ledger_file = NULL;
        map_clear(&d->replays, replay_free);
        map_clear(&d->by_key, NULL);
        map_clear(&d->by_order, payment_free);
        free(d->ledger);
        d->ledger = NULL;
        free(d->auth);
        d->auth = NULL;
}

int main(int argc, char **argv) {
        struct options opts = { 0 };
        struct devpay d = { 0 };
        char err[256] = "";
        char *ready = NULL;
        sigset_t mask;
        bool initialized = false, wrote_ready = false;
        int r, sig = 0, exit_code = 1;

        r = parse_options(argc, argv, &opts);
        if (r != 0) {
                options_clear(&opts);
                return r > 0 ? 0 : 2;
        }

        /* Blocked before civetweb starts its threads, which inherit the
         * mask: the signals then only ever reach sigwait() below. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
                fprintf(stderr, PROG ": cannot set up signal handling\n");
                options_clear(&opts);
                return 1;
        }
        /* It returns the features it set up, none asked here (no TLS), so
         * its 0 cannot tell a failure; a real one shows at mg_start2(). */
        mg_init_library(0);
        initialized = true;
        if (devpay_init(&d, &opts) < 0)
                goto out;

        pthread_mutex_lock(&d.api_lock);
        r = api_start_locked(&d, false, err, sizeof(err));
        pthread_mutex_unlock(&d.api_lock);
        if (r < 0) {
                fprintf(stderr, PROG ": cannot listen on %s: %s\n", opts.listen, err);
                goto out;
        }
        if (opts.control) {
                d.control = listener_start(&d, opts.control, CONTROL_THREADS, control_request, err,
                                           sizeof(err));
                if (!d.control) {
                        fprintf(stderr, PROG ": cannot listen on %s (control): %s\n", opts.control, err);
                        goto out;
                }
        }
        if (opts.ready_file) {
                if (asprintf(&ready, "http://%s\n", opts.listen) < 0) {
                        ready = NULL;
                        fprintf(stderr, PROG ": out of memory\n");
                        goto out;
                }
                r = write_file_atomic(opts.ready_file, ready);
                if (r < 0) {
                        fprintf(stderr, PROG ": cannot write ready file %s: %s\n", opts.ready_file,
                                strerror(-r));
                        goto out;
                }
                wrote_ready = true;
        }
        log_line("listening on %s (control %s)", opts.listen, opts.control ? opts.control : "none");

        for (;;) {
                r = sigwait(&mask, &sig);
                if (r == 0)
                        break;
                if (r != EINTR) {
                        fprintf(stderr, PROG ": sigwait: %s\n", strerror(r));
                        goto out;
                }
        }
        log_line("%s, finishing the requests in flight", strsignal(sig));
        exit_code = 0;

out:
        /* Withdraw the advertised address before the listener goes away. */
        if (wrote_ready && unlink(opts.ready_file) < 0 && errno != ENOENT)
                fprintf(stderr, PROG ": cannot remove %s: %s\n", opts.ready_file, strerror(errno));
        free(ready);
        if (d.opts) {
                /* A control call waiting for api_lock sees shutting_down
                 * and does not start the API again behind our back. */
                pthread_mutex_lock(&d.api_lock);
                d.shutting_down = true;
                api_stop_locked(&d);
                pthread_mutex_unlock(&d.api_lock);
                if (d.control)
                        mg_stop(d.control);
                d.control = NULL;
                devpay_clear(&d);
                pthread_mutex_destroy(&d.api_lock);
                pthread_mutex_destroy(&d.hold_lock);
                pthread_mutex_destroy(&d.lock);
                pthread_cond_destroy(&d.hold_cond);
        }
        if (initialized)
                mg_exit_library();
        options_clear(&opts);
        if (exit_code == 0)
                log_line("stopped");
        return exit_code;
}
