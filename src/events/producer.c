/*
 * The Kafka producer and its report thread. Only this file and consumer.c
 * see librdkafka.
 *
 * Ownership: each produced message carries a struct delivery from the
 * producer's pool as its opaque. The report thread owns it from the
 * delivery report on and returns it to the pool once the sink has had the
 * tag of a delivered message. A request waits on its thread's own
 * struct cpn_waiter; a report that arrives after the request stopped waiting
 * sees a newer generation and leaves the waiter alone.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/clock.h"
#include "cpn/events.h"
#include "cpn/log.h"
#include "events-internal.h"

struct cpn_waiter {
        struct cpn_waiter *next;      /* producer's list: waiters live as long as it */
        struct cpn_waiter *next_free;
        pthread_mutex_t mu;
        pthread_cond_t cv;     /* CLOCK_MONOTONIC */
        uint64_t gen;          /* bumped per batch and when a wait ends */
        size_t pending;
        size_t failed;
        /* A decision taken on another thread (cpn_waiter_arm). */
        bool decided;
        bool asleep_undecided; /* the owner sleeps until decided: wake it then */
        int decision;
        struct timespec decided_at; /* CLOCK_MONOTONIC */
};

struct delivery {
        unsigned char tag[CPN_PRODUCER_TAG_MAX]; /* for the sink once delivered */
        size_t tag_len;                          /* 0: no tag */
        struct cpn_waiter *w; /* NULL: nobody waits */
        uint64_t gen;
        /* A message of cpn_producer_send_bytes: its report goes here
         * instead. */
        void (*report)(void *ud, int err);
        void *ud;
        struct delivery *next;
};

#define POOL_CHUNK 256

struct chunk {
        struct chunk *next;
        struct delivery items[POOL_CHUNK];
};

struct cpn_topic {
        struct cpn_topic *next;
        rd_kafka_topic_t *rkt;
        char name[];
};

struct cpn_producer {
        rd_kafka_t *rk;
        pthread_t thread;
        atomic_bool stop;
        long drain_ms;
        struct cpn_producer_sink sink;    /* called on the report thread only */
        pthread_mutex_t topics_mu;        /* guards the list; never held across I/O */
        struct cpn_topic *topics;

        pthread_mutex_t pool_mu;          /* guards the pool lists only, never held across I/O */
        struct delivery *free_list;
        struct chunk *chunks;
        struct cpn_waiter *waiters;       /* all, in use or free (guarded by pool_mu) */
        struct cpn_waiter *free_waiters;

        /* Delivered during one poll with a tag, handed to the sink after
         * it. Touched by the report thread only (callbacks run there). */
        struct delivery **done;
        size_t ndone, done_cap;
        const void **done_tags;

        _Atomic uint64_t delivered, failed, enqueue_failed;
        atomic_bool brokers_down;
        pthread_mutex_t err_mu;
        char last_error[160];
};

static struct delivery *pool_get(struct cpn_producer *p) {
        struct delivery *d;

        pthread_mutex_lock(&p->pool_mu);
        if (!p->free_list) {
                struct chunk *c = malloc(sizeof(*c));

                if (!c) {
                        pthread_mutex_unlock(&p->pool_mu);
                        return NULL;
                }
                c->next = p->chunks;
                p->chunks = c;
                for (int i = 0; i < POOL_CHUNK; i++) {
                        c->items[i].next = p->free_list;
                        p->free_list = &c->items[i];
                }
        }
        d = p->free_list;
        p->free_list = d->next;
        pthread_mutex_unlock(&p->pool_mu);
        d->report = NULL;
        d->tag_len = 0;
        return d;
}

static void pool_put(struct cpn_producer *p, struct delivery *d) {
        pthread_mutex_lock(&p->pool_mu);
        d->next = p->free_list;
        p->free_list = d;
        pthread_mutex_unlock(&p->pool_mu);
}

static void set_last_error(struct cpn_producer *p, const char *msg) {
        pthread_mutex_lock(&p->err_mu);
        snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
        pthread_mutex_unlock(&p->err_mu);
}

/* Signals after unlocking, so the woken request does not go straight back
 * to sleep on the mutex this thread still holds. The waiter outlives the
 * signal: waiters are never freed before the producer. */
static void notify(struct delivery *d, bool ok) {
        struct cpn_waiter *w = d->w;
        bool wake = false;

        if (!w)
                return;
        pthread_mutex_lock(&w->mu);
        if (w->gen == d->gen && w->pending > 0) {
                w->pending--;
                if (!ok)
                        w->failed++;
                wake = w->pending == 0;
        }
        pthread_mutex_unlock(&w->mu);
        if (wake)
                pthread_cond_signal(&w->cv);
}

/* Runs on the report thread, inside rd_kafka_poll/flush. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        struct cpn_producer *p = opaque;
        struct delivery *d = m->_private;

        (void)rk;
        if (!d)
                return;
        if (d->report) {
                if (m->err) {
                        atomic_fetch_add(&p->failed, 1);
                        set_last_error(p, rd_kafka_err2str(m->err));
                } else {
                        atomic_fetch_add(&p->delivered, 1);
                        atomic_store(&p->brokers_down, false);
                }
                d->report(d->ud, m->err ? -EIO : 0);
                pool_put(p, d);
                return;
        }
        if (m->err) {
                atomic_fetch_add(&p->failed, 1);
                set_last_error(p, rd_kafka_err2str(m->err));
                notify(d, false);
                pool_put(p, d); /* the product keeps what it must send again */
                return;
        }
        atomic_fetch_add(&p->delivered, 1);
        atomic_store(&p->brokers_down, false);
        notify(d, true);
        if (d->tag_len == 0 || !p->sink.delivered) {
                pool_put(p, d);
                return;
        }
        if (p->ndone == p->done_cap) {
                size_t cap = p->done_cap ? p->done_cap * 2 : 1024;
                struct delivery **nd = realloc(p->done, cap * sizeof(*nd));
                const void **nt = realloc(p->done_tags, cap * sizeof(*nt));

                if (nd)
                        p->done = nd;
                if (nt)
                        p->done_tags = nt;
                if (!nd || !nt) {
                        /* Out of memory: the sink does not hear of it (the
                         * product sends it again from its outbox). */
                        pool_put(p, d);
                        return;
                }
                p->done_cap = cap;
        }
        p->done[p->ndone++] = d;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
        struct cpn_producer *p = opaque;

        (void)rk;
        set_last_error(p, reason);
        if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
                if (!atomic_exchange(&p->brokers_down, true))
                        cpn_log_warn("kafka: all brokers down; messages wait in librdkafka's queue and the products' outboxes");
        } else if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[256];

                rd_kafka_fatal_error(rk, why, sizeof(why));
                cpn_log_error("kafka: fatal producer error: %s", why);
        } else {
                cpn_log_debug("kafka: %s: %s", rd_kafka_err2name(err), reason);
        }
}

/* Hands the tags of what was delivered to the sink, then recycles. */
static void flush_done(struct cpn_producer *p) {
        if (p->ndone == 0)
                return;
        for (size_t i = 0; i < p->ndone; i++)
                p->done_tags[i] = p->done[i]->tag;
        p->sink.delivered(p->sink.ud, p->done_tags, p->ndone);
        for (size_t i = 0; i < p->ndone; i++)
                pool_put(p, p->done[i]);
        p->ndone = 0;
}

static void *report_thread(void *arg) {
        struct cpn_producer *p = arg;

        while (!atomic_load(&p->stop)) {
                rd_kafka_poll(p->rk, 100);
                flush_done(p);
        }
        rd_kafka_flush(p->rk, (int)p->drain_ms);
        flush_done(p);
        return NULL;
}

struct conf_ctx {
        rd_kafka_conf_t *conf;
        const char *origin;
        struct cpn_error *err;
};

/* One property. A refusal names the property, and librdkafka's reason
 * only where the value cannot be a secret (the reason quotes it). */
static int conf_one(const char *key, const char *value, void *ud) {
        struct conf_ctx *x = ud;
        char errstr[512] = "";
        rd_kafka_conf_res_t res = rd_kafka_conf_set(x->conf, key, value, errstr, sizeof(errstr));

        if (res == RD_KAFKA_CONF_OK)
                return 0;
        if (res == RD_KAFKA_CONF_UNKNOWN)
                return cpn_error_set(x->err, CPN_INVALID, "%s: unknown librdkafka property '%.64s'", x->origin, key);
        if (cpn_config_secret_key(key))
                return cpn_error_set(x->err, CPN_INVALID, "%s: librdkafka refuses the value of '%.64s' (not shown)",
                                     x->origin, key);
        return cpn_error_set(x->err, CPN_INVALID, "%s: %s", x->origin, errstr);
}

/* Applies the k=v lines of @path ('#' starts a comment line). */
static int conf_file(struct conf_ctx *x, const char *path) {
        char line[8192];
        FILE *f = fopen(path, "re");
        int r = 0, no = 0;

        if (!f)
                return cpn_error_set(x->err, CPN_INVALID, "COUPON_KAFKA_CONFIG_FILE: cannot open %s: %s", path,
                                     strerror(errno));
        while (r == 0 && fgets(line, sizeof(line), f)) {
                size_t len = strcspn(line, "\r\n");
                char *k = line, *eq;

                no++;
                line[len] = '\0';
                while (*k == ' ' || *k == '\t')
                        k++;
                if (!*k || *k == '#')
                        continue;
                eq = strchr(k, '=');
                if (!eq || eq == k) {
                        r = cpn_error_set(x->err, CPN_INVALID, "COUPON_KAFKA_CONFIG_FILE: %s line %d is not key=value",
                                          path, no);
                        break;
                }
                *eq = '\0';
                r = conf_one(k, eq + 1, x);
        }
        explicit_bzero(line, sizeof(line));
        fclose(f);
        return r;
}

int cpn_kafka_conf_apply(void *vconf, const struct cpn_config *cfg, const char *client_id,
                         struct cpn_error *err) {
        struct conf_ctx x = { vconf, "COUPON_KAFKA_CONFIG", err };
        char errstr[512];
        int r;

        if (rd_kafka_conf_set(x.conf, "bootstrap.servers", cfg->kafka_brokers, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(x.conf, "client.id", client_id, errstr, sizeof(errstr)))
                return cpn_error_set(err, CPN_INVALID, "kafka: %s", errstr);
        if (cfg->kafka_config_file && *cfg->kafka_config_file) {
                x.origin = "COUPON_KAFKA_CONFIG_FILE";
                r = conf_file(&x, cfg->kafka_config_file);
                if (r)
                        return r;
        }
        if (!cfg->kafka_config || !*cfg->kafka_config)
                return 0;
        x.origin = "COUPON_KAFKA_CONFIG";
        r = cpn_config_each_kv(cfg->kafka_config, conf_one, &x, err);
        if (r == CPN_INVALID && err && !strstr(err->msg, "COUPON_KAFKA"))
                cpn_error_prefix(err, r, "COUPON_KAFKA_CONFIG");
        return r;
}

int cpn_producer_new(struct cpn_producer **ret, const struct cpn_config *cfg, const struct cpn_producer_sink *sink,
                     struct cpn_error *err) {
        struct cpn_producer *p;
        rd_kafka_conf_t *conf;
        char errstr[512], num[32];
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->pool_mu, NULL);
        pthread_mutex_init(&p->err_mu, NULL);
        pthread_mutex_init(&p->topics_mu, NULL);
        p->drain_ms = 5000;
        if (sink)
                p->sink = *sink;

        conf = rd_kafka_conf_new();
        r = cpn_kafka_conf_apply(conf, cfg, "coupon-api", err);
        if (r) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        /* Idempotent: retries never duplicate or reorder within a partition;
         * implies acks=all. */
        if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)) ||
            (snprintf(num, sizeof(num), "%ld", cfg->kafka_linger_ms),
             rd_kafka_conf_set(conf, "linger.ms", num, errstr, sizeof(errstr))) ||
            (snprintf(num, sizeof(num), "%ld", cfg->kafka_message_timeout_ms),
             rd_kafka_conf_set(conf, "message.timeout.ms", num, errstr, sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                r = cpn_error_set(err, CPN_INVALID, "kafka: %s", errstr);
                goto fail;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_opaque(conf, p);
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!p->rk) {
                rd_kafka_conf_destroy(conf);
                r = cpn_error_set(err, CPN_INVALID, "kafka: %s", errstr);
                goto fail;
        }
        r = -pthread_create(&p->thread, NULL, report_thread, p);
        if (r) {
                cpn_error_set(err, r, "cannot start the delivery report thread");
                goto fail;
        }
        /* Named for top -H and perf: "dr", delivery reports (15 chars max). */
        pthread_setname_np(p->thread, "cpn:kafka-dr");
        *ret = p;
        return 0;
fail:
        if (p->rk)
                rd_kafka_destroy(p->rk);
        pthread_mutex_destroy(&p->topics_mu);
        pthread_mutex_destroy(&p->pool_mu);
        pthread_mutex_destroy(&p->err_mu);
        free(p);
        return r;
}

int cpn_producer_topic(struct cpn_producer *p, const char *name, struct cpn_topic **ret, struct cpn_error *err) {
        struct cpn_topic *t;
        int r = 0;

        pthread_mutex_lock(&p->topics_mu);
        for (t = p->topics; t && strcmp(t->name, name) != 0; t = t->next)
                ;
        if (!t) {
                size_t len = strlen(name);

                t = calloc(1, sizeof(*t) + len + 1);
                if (!t) {
                        r = cpn_error_set(err, -ENOMEM, "out of memory");
                } else {
                        memcpy(t->name, name, len + 1);
                        t->rkt = rd_kafka_topic_new(p->rk, name, NULL);
                        if (!t->rkt) {
                                r = cpn_error_set(err, -EINVAL, "kafka: topic %s: %s", name,
                                                  rd_kafka_err2str(rd_kafka_last_error()));
                                free(t);
                                t = NULL;
                        } else {
                                t->next = p->topics;
                                p->topics = t;
                        }
                }
        }
        pthread_mutex_unlock(&p->topics_mu);
        if (t)
                *ret = t;
        return r;
}

struct cpn_producer *cpn_producer_free(struct cpn_producer *p, long drain_ms) {
        struct chunk *c;

        if (!p)
                return NULL;
        p->drain_ms = drain_ms;
        atomic_store(&p->stop, true);
        pthread_join(p->thread, NULL);
        if (rd_kafka_outq_len(p->rk) > 0)
                cpn_log_warn("kafka: %d messages undelivered at shutdown; what keeps them (an outbox) sends them again",
                             rd_kafka_outq_len(p->rk));
        /* Remaining reports (purged messages) arrive on this thread now. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
        flush_done(p);
        while (p->topics) {
                struct cpn_topic *t = p->topics;

                p->topics = t->next;
                rd_kafka_topic_destroy(t->rkt);
                free(t);
        }
        rd_kafka_destroy(p->rk);
        while ((c = p->chunks)) {
                p->chunks = c->next;
                free(c);
        }
        while (p->waiters) {
                struct cpn_waiter *w = p->waiters;

                p->waiters = w->next;
                pthread_mutex_destroy(&w->mu);
                pthread_cond_destroy(&w->cv);
                free(w);
        }
        free(p->done);
        free(p->done_tags);
        pthread_mutex_destroy(&p->topics_mu);
        pthread_mutex_destroy(&p->pool_mu);
        pthread_mutex_destroy(&p->err_mu);
        free(p);
        return NULL;
}

/*
 * Waiters are owned by the producer and freed only after its report thread
 * is gone: a late delivery report may still point at a waiter whose thread
 * has exited. cpn_waiter_free() hands it back for reuse.
 */
int cpn_waiter_new(struct cpn_producer *p, struct cpn_waiter **ret) {
        struct cpn_waiter *w;

        pthread_mutex_lock(&p->pool_mu);
        w = p->free_waiters;
        if (w)
                p->free_waiters = w->next_free;
        pthread_mutex_unlock(&p->pool_mu);
        if (w) {
                *ret = w;
                return 0;
        }
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->mu, NULL);
        cpn_cond_init_monotonic(&w->cv);
        pthread_mutex_lock(&p->pool_mu);
        w->next = p->waiters;
        p->waiters = w;
        pthread_mutex_unlock(&p->pool_mu);
        *ret = w;
        return 0;
}

struct cpn_waiter *cpn_waiter_free(struct cpn_producer *p, struct cpn_waiter *w) {
        if (w) {
                pthread_mutex_lock(&w->mu);
                w->gen++; /* reports still in flight leave it alone */
                w->pending = 0;
                pthread_mutex_unlock(&w->mu);
                pthread_mutex_lock(&p->pool_mu);
                w->next_free = p->free_waiters;
                p->free_waiters = w;
                pthread_mutex_unlock(&p->pool_mu);
        }
        return NULL;
}

/* Takes @m's tag into @d. Returns false when it does not fit. */
static bool take_tag(struct delivery *d, const struct cpn_outgoing *m) {
        if (!m->tag || m->tag_len == 0) {
                d->tag_len = 0;
                return true;
        }
        if (m->tag_len > sizeof(d->tag))
                return false;
        memcpy(d->tag, m->tag, m->tag_len);
        d->tag_len = m->tag_len;
        return true;
}

/* Hands @d (message @m, or NULL when it could not be made) to librdkafka.
 * Returns 0 or the error, @d given back on failure. */
static rd_kafka_resp_err_t produce_one(struct cpn_producer *p, struct delivery *d, const struct cpn_outgoing *m) {
        rd_kafka_resp_err_t e;

        if (!d || !m || !m->topic) {
                e = RD_KAFKA_RESP_ERR__FAIL;
        } else {
                e = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(m->topic->rkt),
                                      RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_KEY(m->key, m->key_len),
                                      RD_KAFKA_V_VALUE((void *)m->value, m->len), RD_KAFKA_V_OPAQUE(d),
                                      RD_KAFKA_V_END);
        }
        if (e) {
                if (d)
                        pool_put(p, d);
                atomic_fetch_add(&p->enqueue_failed, 1);
                set_last_error(p, rd_kafka_err2str(e));
        }
        return e;
}

int cpn_producer_send_bytes(struct cpn_producer *p, const char *topic, const void *key, size_t key_len,
                            const void *value, size_t len, void (*report)(void *ud, int err), void *ud) {
        struct delivery *d = pool_get(p);
        rd_kafka_resp_err_t e;

        if (!d)
                return -ENOMEM;
        d->w = NULL;
        d->report = report;
        d->ud = ud;
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (e) {
                pool_put(p, d);
                atomic_fetch_add(&p->enqueue_failed, 1);
                set_last_error(p, rd_kafka_err2str(e));
                return e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? -ENOBUFS : -EIO;
        }
        return 0;
}

int cpn_producer_send_wait(struct cpn_producer *p, struct cpn_waiter *w, size_t n,
                           int (*next)(void *ud, size_t i, struct cpn_outgoing *m), void *ud, long wait_ms) {
        uint64_t gen;
        int ret = 0;

        pthread_mutex_lock(&w->mu);
        gen = ++w->gen;
        w->pending = n;
        w->failed = 0;
        pthread_mutex_unlock(&w->mu);

        for (size_t i = 0; i < n; i++) {
                struct delivery *d = pool_get(p);
                struct cpn_outgoing m = { 0 };
                bool made = next(ud, i, &m) == 0;
                rd_kafka_resp_err_t e;

                if (d && made && take_tag(d, &m)) {
                        d->w = wait_ms > 0 ? w : NULL;
                        d->gen = gen;
                }
                e = produce_one(p, d, made && d && (m.tag_len <= sizeof(d->tag)) ? &m : NULL);
                if (e) {
                        ret = e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? -ENOBUFS : -EIO;
                        pthread_mutex_lock(&w->mu);
                        w->pending--;
                        w->failed++;
                        pthread_mutex_unlock(&w->mu);
                }
        }
        if (wait_ms <= 0)
                return ret ? ret : CPN_DELIVERY_PENDING;

        struct timespec dl;

        cpn_deadline_in(&dl, wait_ms);
        pthread_mutex_lock(&w->mu);
        while (w->pending > 0)
                if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT)
                        break;
        if (ret == 0)
                ret = w->pending > 0 ? CPN_DELIVERY_PENDING : w->failed > 0 ? CPN_DELIVERY_FAILED : 0;
        w->gen++; /* late reports must not touch the next batch */
        pthread_mutex_unlock(&w->mu);
        return ret;
}

static bool reached(const struct timespec *dl) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        return now.tv_sec > dl->tv_sec || (now.tv_sec == dl->tv_sec && now.tv_nsec >= dl->tv_nsec);
}

uint64_t cpn_waiter_arm(struct cpn_waiter *w, long wait_ms) {
        uint64_t gen;

        pthread_mutex_lock(&w->mu);
        gen = ++w->gen;
        w->pending = 0;
        w->failed = 0;
        w->decided = false;
        w->asleep_undecided = wait_ms <= 0;
        pthread_mutex_unlock(&w->mu);
        return gen;
}

void cpn_producer_decide(struct cpn_producer *p, struct cpn_waiter *w, uint64_t gen, int decision,
                         const struct cpn_outgoing *m, long wait_ms) {
        struct delivery *d = NULL;
        const struct cpn_outgoing *use = NULL;
        bool wake, failed = false;

        if (decision == 0) {
                /* The tag is copied now; the key and value by librdkafka
                 * when produced, which is before the owner can see the
                 * decision when nobody waits, and else before the wake-up
                 * that only the report gives: the owner sleeps until then
                 * (or its deadline, which the produce below precedes). */
                d = pool_get(p);
                if (d && m && take_tag(d, m)) {
                        d->w = wait_ms > 0 ? w : NULL;
                        d->gen = gen;
                        use = m;
                }
                /* Nobody waits for the report: produce first, so the
                 * answer can say whether Kafka even took the message. */
                if (wait_ms <= 0)
                        failed = produce_one(p, d, use) != 0;
        }
        pthread_mutex_lock(&w->mu);
        if (w->gen != gen) { /* cannot happen: the owner waits for the decision */
                pthread_mutex_unlock(&w->mu);
                if (d && !failed && wait_ms > 0)
                        pool_put(p, d);
                return;
        }
        w->decided = true;
        w->decision = decision;
        clock_gettime(CLOCK_MONOTONIC, &w->decided_at);
        /* The report must find the waiter pending: set before producing. */
        w->pending = decision == 0 && wait_ms > 0 ? 1 : 0;
        w->failed = failed ? 1 : 0;
        /* A produced message wakes its owner with the delivery report (or at
         * its deadline); anything else, now. */
        wake = w->pending == 0 || w->asleep_undecided;
        pthread_mutex_unlock(&w->mu);
        if (decision == 0 && wait_ms > 0 && produce_one(p, d, use) != 0) {
                pthread_mutex_lock(&w->mu);
                if (w->gen == gen && w->pending > 0) {
                        w->pending = 0;
                        w->failed = 1;
                        wake = true;
                }
                pthread_mutex_unlock(&w->mu);
        }
        if (wake)
                pthread_cond_signal(&w->cv);
}

int cpn_waiter_wait(struct cpn_waiter *w, long wait_ms, int *delivery) {
        struct timespec start, dl;
        int decision;

        clock_gettime(CLOCK_MONOTONIC, &start);
        /* Normally the decision comes in a few milliseconds and the report
         * soon after: one sleep, ended by the report. Kafka gets @wait_ms
         * from the decision on, as cpn_producer_send_wait gives it. */
        cpn_deadline_after(&dl, &start, wait_ms > 0 ? wait_ms : 1000);
        pthread_mutex_lock(&w->mu);
        for (;;) {
                if (w->decided && (w->pending == 0 || wait_ms <= 0))
                        break;
                if (w->decided) {
                        cpn_deadline_after(&dl, &w->decided_at, wait_ms);
                        if (reached(&dl))
                                break;
                } else if (reached(&dl)) {
                        /* Redis is slow: sleep until the decision, which
                         * the store's timeouts bound; look again each
                         * second all the same. */
                        w->asleep_undecided = true;
                        clock_gettime(CLOCK_MONOTONIC, &start);
                        cpn_deadline_after(&dl, &start, 1000);
                }
                pthread_cond_timedwait(&w->cv, &w->mu, &dl);
        }
        decision = w->decision;
        *delivery = w->pending > 0 ? CPN_DELIVERY_PENDING : w->failed > 0 ? CPN_DELIVERY_FAILED : 0;
        if (decision == 0 && wait_ms <= 0 && !w->failed)
                *delivery = CPN_DELIVERY_PENDING; /* handed to Kafka, not waited for */
        w->gen++; /* late reports must not touch the next wait */
        w->decided = false;
        pthread_mutex_unlock(&w->mu);
        return decision;
}

void cpn_producer_stats(struct cpn_producer *p, struct cpn_producer_stats *out) {
        memset(out, 0, sizeof(*out));
        out->delivered = atomic_load(&p->delivered);
        out->failed = atomic_load(&p->failed);
        out->enqueue_failed = atomic_load(&p->enqueue_failed);
        out->in_flight = rd_kafka_outq_len(p->rk);
        out->brokers_down = atomic_load(&p->brokers_down);
        pthread_mutex_lock(&p->err_mu);
        snprintf(out->last_error, sizeof(out->last_error), "%s", p->last_error);
        pthread_mutex_unlock(&p->err_mu);
}
