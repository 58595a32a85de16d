/* The sale monitor: see monitor.h. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpn/consumer.h"
#include "cpn/coupon/db.h"
#include "cpn/coupon/store.h"
#include "cpn/log.h"
#include "cpn/ticket/watch.h"
#include "monitor.h"

#define TICK_MS 1000
#define HISTORY 300      /* samples kept: five minutes at one a second */
#define RATE_SENT 120    /* seconds of each campaign's issue rate in the JSON */
#define CAMPAIGNS_MAX 64 /* campaigns watched: open ones first */
#define TYPES_MAX 32     /* ticket types watched: the newest */
#define WINDOW 10        /* seconds of the issue endpoint's p50/p99 */
#define LAG_EVERY 5      /* ticks between two looks at the worker group's lag */
#define LAG_TIMEOUT_MS 2000

/* The issue endpoint's answers, as the page charts them. */
enum { K_ISSUED, K_ALREADY, K_SOLD_OUT, K_OTHER_4XX, K_5XX, K_N };
static const char *const k_names[K_N] = { "issued", "already_issued", "sold_out", "other_4xx", "errors_5xx" };

struct campaign {
        char id[CPN_ID_MAX + 1];
        struct cpn_campaign_state st;
        int64_t persisted;        /* -1: MySQL not read */
        int64_t failed_open, failed_dead;
        int64_t issued[HISTORY];  /* per sample slot; -1: not seen then */
        uint64_t seen_tick;       /* 0: free slot */
};

struct cpn_monitor {
        struct cpn_monitor_src src;
        const struct cpn_server *server;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock; /* view and stop; never held across I/O */
        pthread_cond_t wake;
        bool stop;
        struct cpn_monitor_view *view;

        /* The thread's own from here on. */
        struct cpn_redis *redis; /* owned */
        struct cpn_db *db;       /* owned */
        uint64_t tick;
        size_t at, n;            /* the newest sample's slot, samples kept */
        int64_t t_ms[HISTORY];
        uint64_t k[HISTORY][K_N];
        struct cpn_route_stats win[WINDOW + 1]; /* the route's counters at the last WINDOW + 1 ticks */
        bool have_prev;
        struct campaign camp[CAMPAIGNS_MAX];
        size_t n_camp;
        int order[CAMPAIGNS_MAX]; /* camp indexes of this tick, in the order shown */
        struct cpn_ticket_watch types[TYPES_MAX];
        size_t n_types;
        bool tickets_read;
        int64_t ticket_outbox, ticket_failed_open, ticket_failed_dead;
        int64_t coupon_failed_open, coupon_failed_dead;
        int64_t lag;             /* -1: unknown */
        char redis_error[512], mysql_error[512], lag_error[512];
};

int cpn_monitor_new(struct cpn_monitor **ret, const struct cpn_monitor_src *src) {
        struct cpn_monitor *m = calloc(1, sizeof(*m));
        pthread_condattr_t ca;
        int r;

        if (!m)
                return -ENOMEM;
        m->src = *src;
        m->lag = -1;
        pthread_mutex_init(&m->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&m->wake, &ca);
        pthread_condattr_destroy(&ca);
        r = cpn_redis_new(&m->redis, src->redis_url, src->cfg->redis_timeout_ms);
        if (!r)
                r = cpn_db_new(&m->db, src->db_url, src->cfg->mysql_timeout_ms, src->cfg->mysql_timeout_ms);
        if (r) {
                cpn_monitor_free(m);
                return r < 0 ? r : -ENOMEM;
        }
        *ret = m;
        return 0;
}

void cpn_monitor_view_put(struct cpn_monitor_view *v) {
        if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
                free(v->json);
                free(v->prom);
                free(v);
        }
}

struct cpn_monitor_view *cpn_monitor_view_get(struct cpn_monitor *m) {
        struct cpn_monitor_view *v;

        pthread_mutex_lock(&m->lock);
        v = m->view;
        if (v)
                atomic_fetch_add(&v->refs, 1);
        pthread_mutex_unlock(&m->lock);
        return v;
}

static void publish(struct cpn_monitor *m, struct cpn_monitor_view *v) {
        struct cpn_monitor_view *old;

        pthread_mutex_lock(&m->lock);
        old = m->view;
        m->view = v;
        pthread_mutex_unlock(&m->lock);
        cpn_monitor_view_put(old);
}

/* ---- reading ---- */

/* The issue route's answers since the previous tick, and the slot of this one. */
static void sample_route(struct cpn_monitor *m, int64_t now_ms) {
        struct cpn_route_stats now = { { 0 } };
        uint64_t d[K_N] = { 0 };

        if (m->server)
                (void)cpn_server_route_stats(m->server, "issue", &now);
        if (m->have_prev) {
                const struct cpn_route_stats *prev = &m->win[m->tick % (WINDOW + 1)];

                for (int i = 0; i < CPN_METRIC_STATUSES; i++) {
                        int code = cpn_metrics_status(i);
                        uint64_t delta = now.status[i] - prev->status[i];

                        d[code == 202   ? K_ISSUED
                          : code == 409 ? K_ALREADY
                          : code == 410 ? K_SOLD_OUT
                          : code >= 400 && code < 500 ? K_OTHER_4XX
                          : code >= 500 || code == 0  ? K_5XX
                                                      : K_OTHER_4XX] += delta;
                }
        }
        m->have_prev = true;
        m->tick++;
        m->win[m->tick % (WINDOW + 1)] = now;
        m->at = (m->at + 1) % HISTORY;
        if (m->n < HISTORY)
                m->n++;
        m->t_ms[m->at] = now_ms;
        memcpy(m->k[m->at], d, sizeof(d));
}

/* The @q quantile, in ms, of the answers of the last WINDOW ticks, as
 * Prometheus's histogram_quantile reckons it; -1 without answers. */
static double quantile_ms(const struct cpn_monitor *m, double q) {
        size_t span = m->tick < WINDOW ? (size_t)m->tick : WINDOW;
        const struct cpn_route_stats *now = &m->win[m->tick % (WINDOW + 1)];
        const struct cpn_route_stats *then = &m->win[(m->tick - span) % (WINDOW + 1)];
        uint64_t d[CPN_LATENCY_BUCKETS + 1], total = 0, cum = 0;

        if (!span)
                return -1;
        for (int b = 0; b <= CPN_LATENCY_BUCKETS; b++) {
                d[b] = now->latency[b] - then->latency[b];
                total += d[b];
        }
        if (!total)
                return -1;
        for (int b = 0; b <= CPN_LATENCY_BUCKETS; b++) {
                double lo = b ? (double)cpn_metrics_bound_us(b - 1) : 0, rank = q * (double)total;

                if ((double)(cum + d[b]) < rank) {
                        cum += d[b];
                        continue;
                }
                if (b == CPN_LATENCY_BUCKETS) /* past the last bound: say the bound */
                        return lo / 1000.0;
                return (lo + ((double)cpn_metrics_bound_us(b) - lo) * (rank - (double)cum) / (double)d[b]) / 1000.0;
        }
        return -1;
}

struct ids {
        char (*id)[CPN_ID_MAX + 1];
        size_t n, cap;
};

static int take_id(const char *id, void *ud) {
        struct ids *x = ud;

        if (x->n < x->cap)
                snprintf(x->id[x->n++], sizeof(x->id[0]), "%s", id);
        return 0;
}

static int cmp_id(const void *a, const void *b) {
        return strcmp(a, b);
}

static struct campaign *slot_of(struct cpn_monitor *m, const char *id) {
        struct campaign *free_slot = NULL, *oldest = NULL;

        for (size_t i = 0; i < CAMPAIGNS_MAX; i++) {
                struct campaign *c = &m->camp[i];

                if (c->seen_tick && !strcmp(c->id, id))
                        return c;
                if (!c->seen_tick && !free_slot)
                        free_slot = c;
                if (c->seen_tick && c->seen_tick < m->tick && (!oldest || c->seen_tick < oldest->seen_tick))
                        oldest = c;
        }
        if (!free_slot)
                free_slot = oldest;
        if (!free_slot)
                return NULL;
        memset(free_slot, 0, sizeof(*free_slot));
        snprintf(free_slot->id, sizeof(free_slot->id), "%s", id);
        for (size_t i = 0; i < HISTORY; i++)
                free_slot->issued[i] = -1;
        return free_slot;
}

static int phase_rank(const struct campaign *c) {
        switch (cpn_campaign_phase(&c->st)) {
        case CPN_PHASE_OPEN: return 0;
        case CPN_PHASE_SCHEDULED: return 1;
        case CPN_PHASE_SOLD_OUT: return 2;
        default: return 3;
        }
}

static const struct cpn_monitor *sort_ctx; /* the monitor thread's only */

static int cmp_shown(const void *a, const void *b) {
        const struct campaign *x = &sort_ctx->camp[*(const int *)a], *y = &sort_ctx->camp[*(const int *)b];
        int d = phase_rank(x) - phase_rank(y);

        return d ? d : strcmp(x->id, y->id);
}

/* Redis: the campaigns and their stock. */
static void read_campaigns(struct cpn_monitor *m) {
        static char ids_buf[4 * CAMPAIGNS_MAX][CPN_ID_MAX + 1]; /* the monitor thread's only */
        struct ids ids = { ids_buf, 0, 4 * CAMPAIGNS_MAX };
        struct cpn_error err = { { 0 } };
        int r;

        m->n_camp = 0;
        m->redis_error[0] = '\0';
        for (size_t i = 0; i < CAMPAIGNS_MAX; i++)
                m->camp[i].issued[m->at] = -1; /* until read now */
        r = cpn_coupon_store_campaigns_each(m->redis, take_id, &ids, &err);
        if (r) {
                snprintf(m->redis_error, sizeof(m->redis_error), "%.500s", err.msg);
                return;
        }
        qsort(ids.id, ids.n, sizeof(ids.id[0]), cmp_id);
        for (size_t i = 0; i < ids.n && m->n_camp < CAMPAIGNS_MAX; i++) {
                struct cpn_campaign_state st;
                struct campaign *c;

                r = cpn_coupon_store_get(m->redis, ids.id[i], &st, &err);
                if (r == CPN_CAMPAIGN_NOT_FOUND)
                        continue;
                if (r) {
                        snprintf(m->redis_error, sizeof(m->redis_error), "%.500s", err.msg);
                        return;
                }
                c = slot_of(m, ids.id[i]);
                if (!c)
                        break;
                c->st = st;
                c->seen_tick = m->tick;
                c->persisted = -1;
                c->failed_open = c->failed_dead = 0;
                c->issued[m->at] = st.issued;
                m->order[m->n_camp++] = (int)(c - m->camp);
        }
        sort_ctx = m;
        qsort(m->order, m->n_camp, sizeof(m->order[0]), cmp_shown);
}

static int count_failed(const char *topic, const char *scope, const char *status, int64_t n, void *ud) {
        struct cpn_monitor *m = ud;
        bool dead = !strcmp(status, "dead");

        if (!strcmp(topic, m->src.cfg->kafka_topic)) {
                *(dead ? &m->coupon_failed_dead : &m->coupon_failed_open) += n;
                for (size_t i = 0; i < m->n_camp; i++) {
                        struct campaign *c = &m->camp[m->order[i]];

                        if (!strcmp(c->id, scope))
                                *(dead ? &c->failed_dead : &c->failed_open) += n;
                }
        } else if (m->src.cfg->ticket_topic && !strcmp(topic, m->src.cfg->ticket_topic)) {
                *(dead ? &m->ticket_failed_dead : &m->ticket_failed_open) += n;
        }
        return 0;
}

/* MySQL: persisted counts, failed events, ticket types. Skipped while the
 * pool's watcher says MySQL is down (each read would wait its timeout). */
static void read_mysql(struct cpn_monitor *m) {
        struct cpn_db_pool_stats ds;
        struct cpn_error err = { { 0 } };
        int r = 0;

        m->tickets_read = false;
        m->coupon_failed_open = m->coupon_failed_dead = m->ticket_failed_open = m->ticket_failed_dead = -1;
        m->ticket_outbox = -1;
        m->mysql_error[0] = '\0';
        cpn_db_pool_stats(m->src.db_pool, &ds);
        if (ds.down) {
                snprintf(m->mysql_error, sizeof(m->mysql_error), "MySQL is not answering");
                return;
        }
        for (size_t i = 0; i < m->n_camp && !r; i++) {
                struct campaign *c = &m->camp[m->order[i]];
                struct cpn_campaign row;

                r = cpn_coupon_db_get(m->db, c->id, &row, &c->persisted, &err);
                if (r == CPN_CAMPAIGN_NOT_FOUND) {
                        c->persisted = -1;
                        r = 0;
                }
        }
        if (!r) {
                m->coupon_failed_open = m->coupon_failed_dead = m->ticket_failed_open = m->ticket_failed_dead = 0;
                r = cpn_db_failed_counts(m->db, count_failed, m, &err);
        }
        if (!r)
                r = cpn_ticket_watch_types(m->db, m->types, TYPES_MAX, &m->n_types, &err);
        if (!r)
                r = cpn_ticket_watch_outbox(m->db, &m->ticket_outbox, &err);
        if (r) {
                snprintf(m->mysql_error, sizeof(m->mysql_error), "%.500s", err.msg);
                cpn_db_drop_if_closed(m->db);
                return;
        }
        m->tickets_read = true;
}

static void read_lag(struct cpn_monitor *m) {
        struct cpn_error err = { { 0 } };
        int64_t lag;

        if (m->tick % LAG_EVERY != 1)
                return;
        if (cpn_kafka_group_lag(m->src.cfg, m->src.cfg->worker_group, LAG_TIMEOUT_MS, &lag, &err) == 0) {
                m->lag = lag;
                m->lag_error[0] = '\0';
        } else {
                m->lag = -1;
                snprintf(m->lag_error, sizeof(m->lag_error), "%.500s", err.msg);
        }
}

/* ---- the snapshot ---- */

static void add_int(cJSON *o, const char *name, int64_t v) {
        cJSON_AddItemToObject(o, name, v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)v));
}

static void add_time(cJSON *o, const char *name, int64_t ms) {
        char buf[40];

        if (ms < 0 || ms == CPN_TIME_NEVER)
                cJSON_AddNullToObject(o, name);
        else
                cJSON_AddStringToObject(o, name, cpn_time_format(ms, buf, sizeof(buf)));
}

static void add_ms(cJSON *o, const char *name, double ms) {
        cJSON_AddItemToObject(o, name, ms < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)(int64_t)(ms * 100) / 100));
}

/* The slot @back samples before the newest. */
static size_t slot(const struct cpn_monitor *m, size_t back) {
        return (m->at + HISTORY - back) % HISTORY;
}

static cJSON *process_json(const struct cpn_monitor *m) {
        const struct cpn_monitor_src *s = &m->src;
        struct cpn_producer_stats ps;
        struct cpn_db_pool_stats ds;
        struct cpn_redis_pipe_stats rp = { 0 };
        cJSON *p = cJSON_CreateObject();
        uint64_t issued = 0;
        size_t span = m->n < WINDOW ? m->n : WINDOW;

        cpn_producer_stats(s->producer, &ps);
        cpn_db_pool_stats(s->db_pool, &ds);
        if (s->pipe)
                cpn_redis_pipe_stats(s->pipe, &rp);
        for (size_t i = 0; i < span; i++)
                issued += m->k[slot(m, i)][K_ISSUED];
        cJSON_AddStringToObject(p, "version", CPN_VERSION);
        cJSON_AddStringToObject(p, "redis_pipe", rp.down ? "down" : "up");
        cJSON_AddStringToObject(p, "mysql", ds.down ? "down" : "up");
        cJSON_AddStringToObject(p, "kafka", ps.brokers_down ? "down" : "up");
        add_int(p, "kafka_queue", ps.in_flight);
        add_int(p, "kafka_delivered", (int64_t)ps.delivered);
        add_int(p, "kafka_failures", (int64_t)(ps.failed + ps.enqueue_failed));
        add_int(p, "consumer_lag", m->lag);
        cJSON_AddStringToObject(p, "consumer_group", s->cfg->worker_group);
        add_ms(p, "issue_p50_ms", quantile_ms(m, 0.50));
        add_ms(p, "issue_p99_ms", quantile_ms(m, 0.99));
        cJSON_AddNumberToObject(p, "issued_per_s", span ? (double)issued / (double)span : 0);
        return p;
}

static cJSON *history_json(const struct cpn_monitor *m) {
        cJSON *h = cJSON_CreateObject(), *t = cJSON_AddArrayToObject(h, "t");
        cJSON *k[K_N];

        for (int i = 0; i < K_N; i++)
                k[i] = cJSON_AddArrayToObject(h, k_names[i]);
        for (size_t back = m->n; back-- > 0;) {
                size_t at = slot(m, back);

                cJSON_AddItemToArray(t, cJSON_CreateNumber((double)m->t_ms[at]));
                for (int i = 0; i < K_N; i++)
                        cJSON_AddItemToArray(k[i], cJSON_CreateNumber((double)m->k[at][i]));
        }
        return h;
}

static cJSON *campaign_json(const struct cpn_monitor *m, const struct campaign *c) {
        cJSON *o = cJSON_CreateObject(), *rate;
        size_t sent = m->n < RATE_SENT ? m->n : RATE_SENT;

        cJSON_AddStringToObject(o, "id", c->id);
        cJSON_AddStringToObject(o, "name", c->st.c.name);
        add_int(o, "total", c->st.c.total);
        add_int(o, "issued", c->st.issued);
        add_int(o, "remaining", c->st.c.total > c->st.issued ? c->st.c.total - c->st.issued : 0);
        add_int(o, "persisted", c->persisted);
        add_int(o, "outbox_backlog", c->st.outbox_len);
        add_int(o, "failed_open", m->coupon_failed_open < 0 ? -1 : c->failed_open);
        add_int(o, "failed_dead", m->coupon_failed_dead < 0 ? -1 : c->failed_dead);
        cJSON_AddStringToObject(o, "state", cpn_campaign_phase_name(cpn_campaign_phase(&c->st)));
        cJSON_AddBoolToObject(o, "paused", c->st.paused);
        add_time(o, "starts_at", c->st.c.starts_at_ms);
        add_time(o, "ends_at", c->st.c.ends_at_ms);
        /* Coupons issued in each of the last seconds, aligned with the end
         * of history.t; null where the campaign was not read. */
        rate = cJSON_AddArrayToObject(o, "issued_per_s");
        for (size_t back = sent; back-- > 0;) {
                int64_t now = c->issued[slot(m, back)], before = back + 1 < m->n ? c->issued[slot(m, back + 1)] : -1;

                cJSON_AddItemToArray(rate, now < 0 || before < 0 ? cJSON_CreateNull()
                                                                 : cJSON_CreateNumber((double)(now - before)));
        }
        return o;
}

static cJSON *type_json(const struct cpn_ticket_watch *w) {
        cJSON *o = cJSON_CreateObject();
        const struct cpn_ticket_type_state *st = &w->st;

        cJSON_AddStringToObject(o, "id", st->t.id);
        cJSON_AddStringToObject(o, "name", st->t.name);
        add_int(o, "total", st->t.total);
        add_int(o, "issued", w->issued);
        add_int(o, "available", st->t.total > w->issued ? st->t.total - w->issued : 0);
        add_int(o, "held", st->held);
        add_int(o, "sold", st->sold);
        for (int s = 0; s < _CPN_TS_N; s++) {
                char name[24];
                size_t i;

                snprintf(name, sizeof(name), "%s", cpn_ticket_status_name((enum cpn_ticket_status)s));
                for (i = 0; name[i]; i++)
                        name[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
                add_int(o, name, w->by_status[s]);
        }
        add_int(o, "payments_in_flight", w->in_flight);
        add_int(o, "price", st->t.price);
        cJSON_AddStringToObject(o, "currency", st->t.currency);
        cJSON_AddStringToObject(o, "state", cpn_ticket_phase_name(cpn_ticket_type_phase(st)));
        add_time(o, "starts_at", st->t.starts_at_ms);
        add_time(o, "ends_at", st->t.ends_at_ms);
        return o;
}

static cJSON *tickets_json(const struct cpn_monitor *m) {
        const struct cpn_ticket_http *th = m->src.tickets;
        cJSON *o = cJSON_CreateObject(), *types = cJSON_AddArrayToObject(o, "types"), *pay;
        static const char *const pay_names[5] = { "paid", "declined", "hold_expired", "unknown", "other" };

        for (size_t i = 0; m->tickets_read && i < m->n_types; i++)
                cJSON_AddItemToArray(types, type_json(&m->types[i]));
        add_int(o, "outbox_backlog", m->ticket_outbox);
        add_int(o, "failed_open", m->ticket_failed_open);
        add_int(o, "failed_dead", m->ticket_failed_dead);
        /* This process's answers (each coupon-api counts its own). */
        pay = cJSON_AddObjectToObject(o, "payments");
        for (int i = 0; i < 5; i++)
                add_int(pay, pay_names[i], th ? (int64_t)atomic_load(&th->pay[i]) : 0);
        add_int(o, "expired_by_this_process",
                th && th->reaper ? (int64_t)cpn_ticket_reaper_expired(th->reaper) : 0);
        add_int(o, "cancelled", th ? (int64_t)atomic_load(&th->cancelled) : 0);
        return o;
}

static char *json_of(const struct cpn_monitor *m, int64_t now_ms, size_t *len) {
        cJSON *root = cJSON_CreateObject(), *camps, *errs;
        char *text;

        add_time(root, "now", now_ms);
        cJSON_AddNumberToObject(root, "interval_ms", TICK_MS);
        cJSON_AddItemToObject(root, "process", process_json(m));
        cJSON_AddItemToObject(root, "history", history_json(m));
        camps = cJSON_AddArrayToObject(root, "campaigns");
        for (size_t i = 0; i < m->n_camp; i++)
                cJSON_AddItemToArray(camps, campaign_json(m, &m->camp[m->order[i]]));
        add_int(root, "coupon_failed_open", m->coupon_failed_open);
        add_int(root, "coupon_failed_dead", m->coupon_failed_dead);
        cJSON_AddItemToObject(root, "tickets", tickets_json(m));
        /* What this snapshot could not read: its numbers are absent (null). */
        errs = cJSON_AddArrayToObject(root, "errors");
        if (m->redis_error[0])
                cJSON_AddItemToArray(errs, cJSON_CreateString(m->redis_error));
        if (m->mysql_error[0])
                cJSON_AddItemToArray(errs, cJSON_CreateString(m->mysql_error));
        if (m->lag_error[0])
                cJSON_AddItemToArray(errs, cJSON_CreateString(m->lag_error));
        text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        *len = text ? strlen(text) : 0;
        return text;
}

static void gauge(FILE *f, const char *name, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* Ids follow the id grammar: nothing in a label value needs escaping. */
static char *prom_of(const struct cpn_monitor *m, size_t *len) {
        char *text = NULL;
        FILE *f = open_memstream(&text, len);

        if (!f)
                return NULL;
        if (m->n_camp) {
                gauge(f, "coupon_campaign_stock", "Coupons a campaign gives out.");
                for (size_t i = 0; i < m->n_camp; i++)
                        fprintf(f, "coupon_campaign_stock{campaign=\"%s\"} %lld\n", m->camp[m->order[i]].id,
                                (long long)m->camp[m->order[i]].st.c.total);
                gauge(f, "coupon_campaign_issued", "Coupons issued (Redis's count).");
                for (size_t i = 0; i < m->n_camp; i++)
                        fprintf(f, "coupon_campaign_issued{campaign=\"%s\"} %lld\n", m->camp[m->order[i]].id,
                                (long long)m->camp[m->order[i]].st.issued);
                gauge(f, "coupon_campaign_outbox_backlog", "Accepted issuances not yet acknowledged by Kafka.");
                for (size_t i = 0; i < m->n_camp; i++)
                        fprintf(f, "coupon_campaign_outbox_backlog{campaign=\"%s\"} %lld\n", m->camp[m->order[i]].id,
                                (long long)m->camp[m->order[i]].st.outbox_len);
                gauge(f, "coupon_campaign_persisted", "Coupons persisted in MySQL.");
                for (size_t i = 0; i < m->n_camp; i++)
                        if (m->camp[m->order[i]].persisted >= 0)
                                fprintf(f, "coupon_campaign_persisted{campaign=\"%s\"} %lld\n",
                                        m->camp[m->order[i]].id, (long long)m->camp[m->order[i]].persisted);
        }
        if (m->coupon_failed_open >= 0) {
                gauge(f, "coupon_failed_events", "Open and dead failed events (MySQL failed_events).");
                fprintf(f, "coupon_failed_events{product=\"coupon\",state=\"open\"} %lld\n"
                           "coupon_failed_events{product=\"coupon\",state=\"dead\"} %lld\n"
                           "coupon_failed_events{product=\"ticket\",state=\"open\"} %lld\n"
                           "coupon_failed_events{product=\"ticket\",state=\"dead\"} %lld\n",
                        (long long)m->coupon_failed_open, (long long)m->coupon_failed_dead,
                        (long long)m->ticket_failed_open, (long long)m->ticket_failed_dead);
        }
        if (m->tickets_read) {
                gauge(f, "coupon_ticket_outbox_backlog", "Ticket outbox rows not yet published to Kafka.");
                fprintf(f, "coupon_ticket_outbox_backlog %lld\n", (long long)m->ticket_outbox);
                if (m->n_types) {
                        gauge(f, "coupon_ticket_type_stock", "Tickets a type sells.");
                        for (size_t i = 0; i < m->n_types; i++)
                                fprintf(f, "coupon_ticket_type_stock{ticket_type=\"%s\"} %lld\n", m->types[i].st.t.id,
                                        (long long)m->types[i].st.t.total);
                        gauge(f, "coupon_ticket_type_held", "Tickets held (PENDING, not expired) of a type.");
                        for (size_t i = 0; i < m->n_types; i++)
                                fprintf(f, "coupon_ticket_type_held{ticket_type=\"%s\"} %lld\n", m->types[i].st.t.id,
                                        (long long)m->types[i].st.held);
                        gauge(f, "coupon_ticket_type_sold", "Tickets sold (PAID and CONFIRMED) of a type.");
                        for (size_t i = 0; i < m->n_types; i++)
                                fprintf(f, "coupon_ticket_type_sold{ticket_type=\"%s\"} %lld\n", m->types[i].st.t.id,
                                        (long long)m->types[i].st.sold);
                }
        }
        if (m->lag >= 0) {
                gauge(f, "coupon_kafka_group_lag", "Messages of the coupon topic the worker group has not committed.");
                fprintf(f, "coupon_kafka_group_lag{group=\"%s\"} %lld\n", m->src.cfg->worker_group,
                        (long long)m->lag);
        }
        gauge(f, "coupon_monitor_last_read_seconds", "When the monitor last read the sale (unix time).");
        fprintf(f, "coupon_monitor_last_read_seconds %.3f\n", (double)m->t_ms[m->at] / 1000.0);
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}

static void tick(struct cpn_monitor *m) {
        int64_t now_ms = cpn_time_now_ms();
        struct cpn_monitor_view *v;

        sample_route(m, now_ms);
        read_campaigns(m);
        read_mysql(m);
        read_lag(m);
        v = calloc(1, sizeof(*v));
        if (!v)
                return;
        atomic_init(&v->refs, 1);
        v->json = json_of(m, now_ms, &v->json_len);
        v->prom = prom_of(m, &v->prom_len);
        if (!v->json || !v->prom) {
                cpn_monitor_view_put(v);
                return;
        }
        publish(m, v);
}

static void *run(void *arg) {
        struct cpn_monitor *m = arg;
        struct timespec next;

        clock_gettime(CLOCK_MONOTONIC, &next);
        pthread_mutex_lock(&m->lock);
        while (!m->stop) {
                pthread_mutex_unlock(&m->lock);
                tick(m);
                next.tv_sec += TICK_MS / 1000;
                pthread_mutex_lock(&m->lock);
                while (!m->stop && pthread_cond_timedwait(&m->wake, &m->lock, &next) != ETIMEDOUT)
                        ;
                {
                        struct timespec now;

                        /* Late by more than a tick (a slow MySQL): start again from now. */
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        if (now.tv_sec > next.tv_sec + 1)
                                next = now;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

int cpn_monitor_start(struct cpn_monitor *m, const struct cpn_server *server) {
        int r;

        m->server = server;
        r = pthread_create(&m->thread, NULL, run, m);
        if (r)
                return -r;
        m->started = true;
        return 0;
}

void cpn_monitor_stop(struct cpn_monitor *m) {
        if (!m || !m->started)
                return;
        pthread_mutex_lock(&m->lock);
        m->stop = true;
        pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
        m->started = false;
}

struct cpn_monitor *cpn_monitor_free(struct cpn_monitor *m) {
        if (!m)
                return NULL;
        cpn_monitor_stop(m);
        cpn_monitor_view_put(m->view);
        cpn_redis_free(m->redis);
        cpn_db_free(m->db);
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
}
