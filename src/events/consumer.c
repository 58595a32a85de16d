/*
 * The worker's Kafka consumer (librdkafka high-level consumer). Offsets are
 * stored by hand after the MySQL commit and committed by librdkafka in the
 * background (auto.commit.interval.ms) and on close: at-least-once, as in
 * librdkafka's INTRODUCTION.md. Rebalances are handled here so that a
 * paused worker keeps newly assigned partitions paused too, and so that
 * stored offsets are committed before partitions are given away.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/consumer.h"
#include "cpn/log.h"
#include "cpn/types.h"
#include "events-internal.h"

struct cpn_consumer {
        rd_kafka_t *rk;
        bool paused;
        int assigned;
        uint64_t rebalances;
        char fatal[256]; /* set by the error callback on a fatal error */
};

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        struct cpn_consumer *c = opaque;
        bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
        rd_kafka_error_t *error = NULL;
        rd_kafka_topic_partition_list_t *now = NULL;

        c->rebalances++;
        if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                if (cooperative)
                        error = rd_kafka_incremental_assign(rk, parts);
                else
                        rd_kafka_assign(rk, parts);
                if (c->paused)
                        rd_kafka_pause_partitions(rk, parts);
                cpn_log_info("kafka: %d partition(s) assigned", parts->cnt);
        } else {
                /* Hand over what is durable, so the next owner starts there. */
                rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);

                if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
                        cpn_log_warn("kafka: commit before revocation: %s", rd_kafka_err2str(ce));
                if (cooperative)
                        error = rd_kafka_incremental_unassign(rk, parts);
                else
                        rd_kafka_assign(rk, NULL);
                cpn_log_info("kafka: %d partition(s) revoked", parts->cnt);
        }
        if (error) {
                cpn_log_warn("kafka: rebalance: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        if (rd_kafka_assignment(rk, &now) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                c->assigned = now->cnt;
                rd_kafka_topic_partition_list_destroy(now);
        }
}

static void on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque) {
        struct cpn_consumer *c = opaque;

        if (e == RD_KAFKA_RESP_ERR__FATAL) {
                char why[200];

                rd_kafka_fatal_error(rk, why, sizeof(why));
                snprintf(c->fatal, sizeof(c->fatal), "%s", why);
                return;
        }
        cpn_log_debug("kafka: %s: %s", rd_kafka_err2name(e), reason);
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, struct cpn_error *err) {
        char errstr[256];

        if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                return cpn_error_set(err, CPN_INVALID, "kafka: %s", errstr);
        return 0;
}

int cpn_consumer_new(struct cpn_consumer **ret, const struct cpn_config *cfg, struct cpn_error *err) {
        return cpn_consumer_new_for(ret, cfg, cfg->kafka_topic, cfg->worker_group, err);
}

int cpn_consumer_new_for(struct cpn_consumer **ret, const struct cpn_config *cfg, const char *topic,
                         const char *group, struct cpn_error *err) {
        struct cpn_consumer *c = calloc(1, sizeof(*c));
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_conf_t *conf;
        rd_kafka_resp_err_t e;
        char errstr[512];
        int r;

        if (!c)
                return -ENOMEM;
        conf = rd_kafka_conf_new();
        /* Defaults a user may override with COUPON_KAFKA_CONFIG ... */
        r = set(conf, "auto.offset.reset", "earliest", err);
        if (!r)
                r = set(conf, "auto.commit.interval.ms", "1000", err);
        if (!r)
                r = set(conf, "fetch.wait.max.ms", "100", err);
        if (!r)
                r = cpn_kafka_conf_apply(conf, cfg, "coupon-worker", err);
        /* ... and what correctness needs, which nobody may. */
        if (!r)
                r = set(conf, "group.id", group, err);
        if (!r)
                r = set(conf, "enable.auto.offset.store", "false", err);
        if (!r)
                r = set(conf, "enable.auto.commit", "true", err);
        if (!r)
                r = set(conf, "enable.partition.eof", "false", err);
        if (r) {
                rd_kafka_conf_destroy(conf);
                free(c);
                return r;
        }
        rd_kafka_conf_set_opaque(conf, c);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_error_cb(conf, on_error);
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!c->rk) {
                rd_kafka_conf_destroy(conf);
                free(c);
                return cpn_error_set(err, CPN_INVALID, "kafka: %s", errstr);
        }
        rd_kafka_poll_set_consumer(c->rk);
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
        e = rd_kafka_subscribe(c->rk, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (e) {
                cpn_error_set(err, -EIO, "kafka: subscribe to %s: %s", topic, rd_kafka_err2str(e));
                rd_kafka_destroy(c->rk);
                free(c);
                return -EIO;
        }
        *ret = c;
        return 0;
}

struct cpn_consumer *cpn_consumer_free(struct cpn_consumer *c) {
        if (!c)
                return NULL;
        rd_kafka_consumer_close(c->rk); /* commits stored offsets, leaves the group */
        rd_kafka_destroy(c->rk);
        free(c);
        return NULL;
}

int cpn_consumer_poll(struct cpn_consumer *c, struct cpn_message *out, size_t max, size_t *n, long wait_ms,
                      long fill_ms, struct cpn_error *err) {
        int64_t deadline = 0;
        long tmo = wait_ms;

        while (*n < max) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, (int)tmo);

                if (c->fatal[0])
                        return cpn_error_set(err, -EIO, "kafka: fatal consumer error: %s", c->fatal);
                if (!m)
                        break;
                if (m->err) {
                        /* Transient (broker down, ...) or informational: librdkafka recovers. */
                        cpn_log_debug("kafka: consumer: %s", rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                } else {
                        struct cpn_message *o = &out[(*n)++];

                        o->topic = rd_kafka_topic_name(m->rkt);
                        o->partition = m->partition;
                        o->offset = m->offset;
                        o->key = m->key;
                        o->key_len = m->key_len;
                        o->payload = m->payload;
                        o->len = m->len;
                        o->opaque = m;
                }
                if (!deadline)
                        deadline = cpn_mono_ms() + fill_ms;
                tmo = (long)(deadline - cpn_mono_ms());
                if (tmo < 0)
                        tmo = 0; /* still take what is already queued */
        }
        return 0;
}

int cpn_consumer_store(struct cpn_consumer *c, const struct cpn_message *msgs, size_t n, struct cpn_error *err) {
        rd_kafka_topic_partition_list_t *l;
        rd_kafka_resp_err_t e;

        if (n == 0)
                return 0;
        l = rd_kafka_topic_partition_list_new(8);
        for (size_t i = 0; i < n; i++) {
                rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, msgs[i].topic,
                                                                                   msgs[i].partition);

                if (!p)
                        p = rd_kafka_topic_partition_list_add(l, msgs[i].topic, msgs[i].partition);
                /* The stored offset is the next one to read. */
                if (msgs[i].offset + 1 > p->offset)
                        p->offset = msgs[i].offset + 1;
        }
        e = rd_kafka_offsets_store(c->rk, l);
        if (e && e != RD_KAFKA_RESP_ERR__STATE) {
                for (int i = 0; i < l->cnt; i++)
                        if (l->elems[i].err && l->elems[i].err != RD_KAFKA_RESP_ERR__STATE)
                                cpn_error_set(err, -EIO, "kafka: store offset %s[%d]: %s", l->elems[i].topic,
                                              (int)l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
        }
        rd_kafka_topic_partition_list_destroy(l);
        /* _STATE: the partition was revoked meanwhile; its next owner reads
         * it again, and the writes are idempotent. Nothing to report. */
        return 0;
}

void cpn_consumer_release(struct cpn_consumer *c, struct cpn_message *msgs, size_t n) {
        (void)c;
        for (size_t i = 0; i < n; i++) {
                rd_kafka_message_destroy(msgs[i].opaque);
                msgs[i].opaque = NULL;
        }
}

void cpn_consumer_pause(struct cpn_consumer *c, bool pause) {
        rd_kafka_topic_partition_list_t *parts = NULL;

        if (c->paused == pause)
                return;
        c->paused = pause;
        if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return;
        if (pause)
                rd_kafka_pause_partitions(c->rk, parts);
        else
                rd_kafka_resume_partitions(c->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
}

void cpn_consumer_stats(struct cpn_consumer *c, struct cpn_consumer_stats *out) {
        out->assigned = c->assigned;
        out->rebalances = c->rebalances;
        out->paused = c->paused;
}

void cpn_consumer_lag_update(struct cpn_consumer *c, const struct cpn_message *in_hand, size_t n,
                             struct cpn_consumer_lag *out) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        uint64_t seq = atomic_load_explicit(&out->seq, memory_order_relaxed);
        uint32_t k = 0;

        if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return;
        /* Local state only: positions and the watermarks of the last fetch. */
        rd_kafka_position(c->rk, parts);
        atomic_store_explicit(&out->seq, seq + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        for (int i = 0; i < parts->cnt && k < CPN_LAG_PARTITIONS; i++) {
                const rd_kafka_topic_partition_t *p = &parts->elems[i];
                int64_t lo, hi, at = p->offset;

                if (rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) || hi < 0)
                        continue;
                /* No position before the first message: known only for an
                 * empty partition (nothing to lag behind). */
                if (at < 0 && lo == hi)
                        at = hi;
                if (at < 0)
                        continue;
                for (size_t m = 0; m < n; m++)
                        if (in_hand[m].partition == p->partition && in_hand[m].offset < at &&
                            strcmp(in_hand[m].topic, p->topic) == 0)
                                at = in_hand[m].offset;
                atomic_store_explicit(&out->partition[k], p->partition, memory_order_relaxed);
                atomic_store_explicit(&out->lag[k], hi > at ? hi - at : 0, memory_order_relaxed);
                k++;
        }
        atomic_store_explicit(&out->n, k, memory_order_relaxed);
        atomic_store_explicit(&out->seq, seq + 2, memory_order_release);
        rd_kafka_topic_partition_list_destroy(parts);
}

size_t cpn_consumer_lag_read(const struct cpn_consumer_lag *l, struct cpn_partition_lag *out, size_t max) {
        /* The writer holds the odd count for a few microseconds; a reader
         * that keeps missing (the writer preempted) gives up empty. */
        for (int tries = 0; tries < 1000; tries++) {
                uint64_t seq = atomic_load_explicit(&l->seq, memory_order_acquire);
                size_t n = atomic_load_explicit(&l->n, memory_order_relaxed);

                if (n > max)
                        n = max;
                if (n > CPN_LAG_PARTITIONS)
                        n = CPN_LAG_PARTITIONS;
                for (size_t i = 0; i < n; i++) {
                        out[i].partition = atomic_load_explicit(&l->partition[i], memory_order_relaxed);
                        out[i].lag = atomic_load_explicit(&l->lag[i], memory_order_relaxed);
                }
                atomic_thread_fence(memory_order_acquire);
                if (!(seq & 1) && atomic_load_explicit(&l->seq, memory_order_relaxed) == seq)
                        return n;
                if (tries >= 10)
                        sched_yield();
        }
        return 0;
}

int cpn_kafka_group_lag(const struct cpn_config *cfg, const char *group, long timeout_ms, int64_t *lag,
                        struct cpn_error *err) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts = NULL;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *t = NULL;
        rd_kafka_resp_err_t e;
        rd_kafka_t *rk;
        char errstr[512];
        int r;

        *lag = 0;
        r = cpn_kafka_conf_apply(conf, cfg, "couponctl", err);
        if (!r)
                r = set(conf, "group.id", group, err);
        if (!r)
                r = set(conf, "enable.auto.commit", "false", err);
        if (r) {
                rd_kafka_conf_destroy(conf);
                return r;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                return cpn_error_set(err, CPN_INVALID, "kafka: %s", errstr);
        }
        t = rd_kafka_topic_new(rk, cfg->kafka_topic, NULL);
        e = t ? rd_kafka_metadata(rk, 0, t, &md, (int)timeout_ms) : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e || md->topic_cnt != 1 || md->topics[0].err) {
                r = cpn_error_set(err, -EIO, "kafka: metadata of %s: %s", cfg->kafka_topic,
                                  rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err
                                                                          : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
                goto out;
        }
        parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, cfg->kafka_topic, md->topics[0].partitions[i].id);
        e = rd_kafka_committed(rk, parts, (int)timeout_ms);
        if (e) {
                r = cpn_error_set(err, -EIO, "kafka: committed offsets of group %s: %s", group, rd_kafka_err2str(e));
                goto out;
        }
        for (int i = 0; i < parts->cnt; i++) {
                int64_t lo, hi, at;

                e = rd_kafka_query_watermark_offsets(rk, cfg->kafka_topic, parts->elems[i].partition, &lo, &hi,
                                                     (int)timeout_ms);
                if (e) {
                        r = cpn_error_set(err, -EIO, "kafka: watermarks of %s[%d]: %s", cfg->kafka_topic,
                                          (int)parts->elems[i].partition, rd_kafka_err2str(e));
                        goto out;
                }
                at = parts->elems[i].offset >= 0 ? parts->elems[i].offset : lo;
                if (hi > at)
                        *lag += hi - at;
        }
out:
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        if (md)
                rd_kafka_metadata_destroy(md);
        if (t)
                rd_kafka_topic_destroy(t);
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return r;
}
