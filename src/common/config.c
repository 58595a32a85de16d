/*
 * The configuration table: every setting's variable, flag, default, bounds
 * and meaning in one place (redis's config.c idea). Parsing is strict: a
 * number with trailing garbage or out of bounds is an error naming the
 * variable or flag, never a silent default.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/config.h"
#include "cpn/log.h"
#include "cpn/url.h"

enum entry_type { T_STR, T_LONG };

struct entry {
        const char *env;
        const char *flag;
        enum entry_type type;
        size_t offset;
        const char *def;   /* NULL: unset */
        long min, max;
        unsigned mask;
        const char *help;
};

#define ALL (CPN_CFG_API | CPN_CFG_WORKER | CPN_CFG_CTL)
#define S(field) offsetof(struct cpn_config, field)

static const struct entry table[] = {
        { "COUPON_HTTP_ADDR", "http-addr", T_STR, S(http_addr), "127.0.0.1:8080", 0, 0,
          CPN_CFG_API, "where coupon-api listens (host:port)" },
        { "COUPON_REDIS_URL", "redis-url", T_STR, S(redis_url), "redis://127.0.0.1:6379/0", 0, 0,
          ALL, "Redis, redis://[[user]:password@]host[:port][/db]" },
        { "COUPON_KAFKA_BROKERS", "kafka-brokers", T_STR, S(kafka_brokers), "127.0.0.1:9092", 0, 0,
          ALL, "Kafka bootstrap servers, comma separated" },
        { "COUPON_KAFKA_TOPIC", "kafka-topic", T_STR, S(kafka_topic), "coupon.issued", 0, 0,
          ALL, "topic of accepted issuances" },
        { "COUPON_KAFKA_CONFIG", "kafka-config", T_STR, S(kafka_config), NULL, 0, 0,
          ALL, "extra librdkafka properties, k=v[,k=v...] (e.g. security.protocol=ssl); \\, is a comma "
               "and \\\\ a backslash in a value" },
        { "COUPON_KAFKA_CONFIG_FILE", "kafka-config-file", T_STR, S(kafka_config_file), NULL, 0, 0,
          ALL, "a file of librdkafka properties, one k=v per line, # comments (for secrets: "
               "sasl.password=...); applied before COUPON_KAFKA_CONFIG" },
        { "COUPON_MYSQL_URL", "mysql-url", T_STR, S(mysql_url),
          "mysql://coupon:coupon@127.0.0.1:3306/coupon", 0, 0,
          ALL, "MySQL/MariaDB, mysql://user:password@host[:port]/database" },
        { "COUPON_ADMIN_TOKEN", "admin-token", T_STR, S(admin_token), NULL, 0, 0,
          CPN_CFG_API, "bearer token of admin endpoints; unset: they answer 503" },
        { "COUPON_USER_AUTH", "user-auth", T_STR, S(user_auth), "none", 0, 0, CPN_CFG_API,
          "caller identity of the customer endpoints: none (the body's user_id is trusted: behind a gateway "
          "that authenticated the user) or jwt (Authorization: Bearer <JWT>, its sub is the user)" },
        { "COUPON_USER_JWT_KEY", "user-jwt-key", T_STR, S(user_jwt_key), NULL, 0, 0, CPN_CFG_API,
          "PEM public key of the identity provider: RSA >= 2048 bits (RS256) or P-256 (ES256)" },
        { "COUPON_USER_JWT_SECRET", "user-jwt-secret", T_STR, S(user_jwt_secret), NULL, 0, 0, CPN_CFG_API,
          "HS256 secret shared with the identity provider, at least 32 bytes (instead of a key)" },
        { "COUPON_USER_JWT_ISSUER", "user-jwt-issuer", T_STR, S(user_jwt_issuer), NULL, 0, 0, CPN_CFG_API,
          "when set, a token's iss must equal it" },
        { "COUPON_USER_JWT_AUDIENCE", "user-jwt-audience", T_STR, S(user_jwt_audience), NULL, 0, 0, CPN_CFG_API,
          "when set, a token's aud must be or contain it" },
        { "COUPON_USER_JWT_LEEWAY_S", "user-jwt-leeway-s", T_LONG, S(user_jwt_leeway_s), "30", 0, 600, CPN_CFG_API,
          "clock skew allowed on a token's exp and nbf, in seconds" },
        { "COUPON_LOG_LEVEL", "log-level", T_STR, S(log_level), "info", 0, 0,
          ALL, "error, warn, info or debug" },
        { "COUPON_KAFKA_ACK_TIMEOUT_MS", "kafka-ack-timeout-ms", T_LONG, S(kafka_ack_timeout_ms),
          "500", 0, 60000, CPN_CFG_API,
          "how long an issue answer waits for Kafka's ack; 0 answers once Redis has it" },
        { "COUPON_KAFKA_MESSAGE_TIMEOUT_MS", "kafka-message-timeout-ms", T_LONG,
          S(kafka_message_timeout_ms), "10000", 1000, 900000, CPN_CFG_API | CPN_CFG_CTL,
          "librdkafka message.timeout.ms: a produce gives up after this (outbox keeps it)" },
        { "COUPON_KAFKA_LINGER_MS", "kafka-linger-ms", T_LONG, S(kafka_linger_ms), "1", 0, 1000,
          CPN_CFG_API | CPN_CFG_CTL, "librdkafka linger.ms: lets concurrent requests share a batch" },
        { "COUPON_HTTP_THREADS", "http-threads", T_LONG, S(http_threads), "1024", 4, 20000,
          CPN_CFG_API,
          "worker threads = keep-alive connections served at once; more connections wait" },
        { "COUPON_HTTP_MAX_BODY", "http-max-body", T_LONG, S(http_max_body), "4096", 256, 1048576,
          CPN_CFG_API, "largest request body in bytes; larger gets 413" },
        { "COUPON_HTTP_REQUEST_TIMEOUT_MS", "http-request-timeout-ms", T_LONG,
          S(http_request_timeout_ms), "10000", 100, 600000, CPN_CFG_API,
          "time a client gets to send a request (slow clients are cut off)" },
        { "COUPON_HTTP_KEEPALIVE_MS", "http-keepalive-ms", T_LONG, S(http_keepalive_ms), "5000", 0,
          600000, CPN_CFG_API, "idle keep-alive connection is closed after this" },
        { "COUPON_RELAY_AFTER_MS", "relay-after-ms", T_LONG, S(relay_after_ms), "15000", 1000,
          3600000, CPN_CFG_API | CPN_CFG_CTL,
          "outbox entries older than this are produced again (must exceed message timeout)" },
        { "COUPON_RELAY_INTERVAL_MS", "relay-interval-ms", T_LONG, S(relay_interval_ms), "1000", 50,
          600000, CPN_CFG_API, "how often the outbox relay looks" },
        { "COUPON_REDIS_TIMEOUT_MS", "redis-timeout-ms", T_LONG, S(redis_timeout_ms), "2000", 10,
          60000, ALL, "connect and reply timeout of Redis calls" },
        { "COUPON_MYSQL_TIMEOUT_MS", "mysql-timeout-ms", T_LONG, S(mysql_timeout_ms), "2000", 100,
          60000, ALL,
          "MySQL timeout in whole seconds, rounded up: coupon-api's connect, reads and writes; the worker's "
          "and couponctl's connect (their reads and writes get 5x, at least 30 s)" },
        { "COUPON_MYSQL_POOL", "mysql-pool", T_LONG, S(mysql_pool), "4", 1, 256, CPN_CFG_API,
          "MySQL connections of coupon-api for all its threads (plus one that watches MySQL)" },
        { "COUPON_TICKET_TOPIC", "ticket-topic", T_STR, S(ticket_topic), "ticket.paid", 0, 0, ALL,
          "topic of paid-ticket events (relayed from the MySQL outbox)" },
        { "COUPON_TICKET_RELAY", "ticket-relay", T_LONG, S(ticket_relay), "1", 0, 1, CPN_CFG_API,
          "1: coupon-api relays the ticket outbox to Kafka; 0: something else does (Debezium's outbox router)" },
        { "COUPON_TICKET_RELAY_MS", "ticket-relay-ms", T_LONG, S(ticket_relay_ms), "100", 10, 60000, CPN_CFG_API,
          "how often the ticket outbox relay looks for rows to publish while it finds none" },
        { "COUPON_PAYMENT_URL", "payment-url", T_STR, S(payment_url), NULL, 0, 0, CPN_CFG_API | CPN_CFG_WORKER,
          "base URL of the card payment gateway (http[s]://host[:port][/prefix]); unset: payments answer 503" },
        { "COUPON_PAYMENT_SECRET", "payment-secret", T_STR, S(payment_secret), NULL, 0, 0,
          CPN_CFG_API | CPN_CFG_WORKER, "the gateway's secret key, sent as HTTP Basic user with an empty password" },
        { "COUPON_PAYMENT_TIMEOUT_MS", "payment-timeout-ms", T_LONG, S(payment_timeout_ms), "10000", 100,
          120000, CPN_CFG_API | CPN_CFG_WORKER,
          "how long one payment gateway call may take before its outcome counts as unknown; a hold is not "
          "expired while its payment is in flight (up to this)" },
        { "COUPON_TICKET_REAP_MS", "ticket-reap-ms", T_LONG, S(ticket_reap_ms), "250", 50, 60000,
          CPN_CFG_API | CPN_CFG_WORKER,
          "how often expired ticket holds are looked for and their stock given back (0 rows: one query)" },
        { "COUPON_WORKER_GROUP", "worker-group", T_STR, S(worker_group), "coupon-worker", 0, 0,
          CPN_CFG_WORKER | CPN_CFG_CTL, "Kafka consumer group of coupon-worker" },
        { "COUPON_WORKER_METRICS_ADDR", "worker-metrics-addr", T_STR, S(worker_metrics_addr), NULL, 0, 0,
          CPN_CFG_WORKER,
          "where coupon-worker serves GET /metrics to Prometheus, host:port with a numeric host (e.g. "
          "127.0.0.1:9102; 0.0.0.0:9102 for every interface); unset: not served" },
        { "COUPON_WORKER_BATCH", "worker-batch", T_LONG, S(worker_batch), "1000", 1, 20000,
          CPN_CFG_WORKER, "most messages written to MySQL in one transaction" },
        { "COUPON_WORKER_BATCH_WAIT_MS", "worker-batch-wait-ms", T_LONG, S(worker_batch_wait_ms), "20", 0,
          10000, CPN_CFG_WORKER, "after a batch's first message, how long to wait for more" },
        { "COUPON_RETRY_BASE_MS", "retry-base-ms", T_LONG, S(retry_base_ms), "1000", 10, 3600000,
          CPN_CFG_WORKER | CPN_CFG_CTL,
          "first retry of a failed event / a failed batch after this; doubles each time" },
        { "COUPON_RETRY_MAX_MS", "retry-max-ms", T_LONG, S(retry_max_ms), "300000", 10, 86400000,
          CPN_CFG_WORKER | CPN_CFG_CTL, "longest wait between two retries" },
        { "COUPON_RETRY_MAX_ATTEMPTS", "retry-max-attempts", T_LONG, S(retry_max_attempts), "10", 1,
          1000, CPN_CFG_WORKER | CPN_CFG_CTL, "a failed event is marked dead after this many attempts" },
};

#define N_ENTRIES (sizeof(table) / sizeof(table[0]))

static char **str_at(struct cpn_config *cfg, const struct entry *e) {
        return (char **)((char *)cfg + e->offset);
}

static long *long_at(struct cpn_config *cfg, const struct entry *e) {
        return (long *)((char *)cfg + e->offset);
}

static int parse_long(const char *s, long min, long max, long *out) {
        char *end;
        long v;

        /* Digits only, with an optional '-': strtol would skip white space
         * and take '+'. */
        if (!*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *out = v;
        return 0;
}

static int set_value(struct cpn_config *cfg, const struct entry *e, const char *v,
                     const char *origin, struct cpn_error *err) {
        if (e->type == T_LONG) {
                if (parse_long(v, e->min, e->max, long_at(cfg, e)) < 0)
                        return cpn_error_set(err, CPN_INVALID,
                                             "%s: expected an integer in %ld..%ld, got '%.64s'",
                                             origin, e->min, e->max, v);
                return 0;
        }
        char *copy = strdup(v);

        if (!copy)
                return -ENOMEM;
        free(*str_at(cfg, e));
        *str_at(cfg, e) = copy;
        return 0;
}

int cpn_config_init(struct cpn_config *cfg) {
        memset(cfg, 0, sizeof(*cfg));
        for (size_t i = 0; i < N_ENTRIES; i++) {
                if (!table[i].def)
                        continue;
                if (set_value(cfg, &table[i], table[i].def, table[i].env, NULL) != 0) {
                        cpn_config_clear(cfg);
                        return -ENOMEM;
                }
        }
        return 0;
}

void cpn_config_clear(struct cpn_config *cfg) {
        for (size_t i = 0; i < N_ENTRIES; i++)
                if (table[i].type == T_STR) {
                        free(*str_at(cfg, &table[i]));
                        *str_at(cfg, &table[i]) = NULL;
                }
}

static const struct entry *find_flag(const char *name, size_t len) {
        for (size_t i = 0; i < N_ENTRIES; i++)
                if (strlen(table[i].flag) == len && strncmp(table[i].flag, name, len) == 0)
                        return &table[i];
        return NULL;
}

int cpn_config_load(struct cpn_config *cfg, unsigned mask, const char *(*get)(const char *name),
                    int argc, char **argv, int *argi, struct cpn_error *err) {
        char origin[96];
        int r, i;

        for (size_t k = 0; k < N_ENTRIES; k++) {
                const char *v;

                if (!(table[k].mask & mask))
                        continue;
                v = get ? get(table[k].env) : getenv(table[k].env);
                if (!v)
                        continue;
                /* An empty string means "unset" for optional strings only. */
                if (!*v && table[k].type == T_STR && !table[k].def) {
                        free(*str_at(cfg, &table[k]));
                        *str_at(cfg, &table[k]) = NULL;
                        continue;
                }
                r = set_value(cfg, &table[k], v, table[k].env, err);
                if (r)
                        return r;
        }

        for (i = 1; i < argc; i++) {
                const char *a = argv[i], *name, *eq, *v;
                const struct entry *e;
                size_t len;

                if (strcmp(a, "--") == 0) {
                        i++;
                        break;
                }
                if (strncmp(a, "--", 2) != 0)
                        break;
                name = a + 2;
                eq = strchr(name, '=');
                len = eq ? (size_t)(eq - name) : strlen(name);
                e = find_flag(name, len);
                if (!e || !(e->mask & mask))
                        return cpn_error_set(err, CPN_INVALID, "unknown option '--%.*s' (see --help)",
                                             (int)(len > 64 ? 64 : len), name);
                if (eq) {
                        v = eq + 1;
                } else {
                        if (i + 1 >= argc)
                                return cpn_error_set(err, CPN_INVALID, "option '--%s' needs a value",
                                                     e->flag);
                        v = argv[++i];
                }
                snprintf(origin, sizeof(origin), "--%s", e->flag);
                r = set_value(cfg, e, v, origin, err);
                if (r)
                        return r;
        }
        if (argi)
                *argi = i;
        return 0;
}

int cpn_config_check(const struct cpn_config *cfg, unsigned mask, struct cpn_error *err) {
        enum cpn_log_level lvl;

        if (cpn_log_level_parse(cfg->log_level, &lvl) < 0)
                return cpn_error_set(err, CPN_INVALID,
                                     "COUPON_LOG_LEVEL: expected error, warn, info or debug, got '%.32s'",
                                     cfg->log_level);
        if ((mask & CPN_CFG_API) && cfg->relay_after_ms <= cfg->kafka_message_timeout_ms)
                return cpn_error_set(err, CPN_INVALID,
                                     "COUPON_RELAY_AFTER_MS (%ld) must exceed COUPON_KAFKA_MESSAGE_TIMEOUT_MS "
                                     "(%ld): an entry is relayed only once its first produce is over",
                                     cfg->relay_after_ms, cfg->kafka_message_timeout_ms);
        if ((mask & CPN_CFG_API) && cfg->admin_token && strlen(cfg->admin_token) < 16)
                return cpn_error_set(err, CPN_INVALID,
                                     "COUPON_ADMIN_TOKEN: use at least 16 characters");
        if ((mask & CPN_CFG_API) && strcmp(cfg->user_auth, "none") != 0 && strcmp(cfg->user_auth, "jwt") != 0)
                return cpn_error_set(err, CPN_INVALID, "COUPON_USER_AUTH: expected none or jwt, got \"%.40s\"",
                                     cfg->user_auth);
        if ((mask & CPN_CFG_API) && strcmp(cfg->user_auth, "jwt") == 0 &&
            !!(cfg->user_jwt_key && *cfg->user_jwt_key) == !!(cfg->user_jwt_secret && *cfg->user_jwt_secret))
                return cpn_error_set(err, CPN_INVALID, "COUPON_USER_AUTH=jwt needs exactly one of COUPON_USER_JWT_KEY "
                                                       "(RS256/ES256) and COUPON_USER_JWT_SECRET (HS256)");
        if (cfg->payment_url && *cfg->payment_url && strncmp(cfg->payment_url, "http://", 7) != 0 &&
            strncmp(cfg->payment_url, "https://", 8) != 0)
                return cpn_error_set(err, CPN_INVALID, "COUPON_PAYMENT_URL: expected http:// or https://...");
        if (cfg->payment_url && *cfg->payment_url && (!cfg->payment_secret || !*cfg->payment_secret))
                return cpn_error_set(err, CPN_INVALID,
                                     "COUPON_PAYMENT_SECRET is needed with COUPON_PAYMENT_URL (the gateway's secret key)");
        if ((mask & CPN_CFG_WORKER) && cfg->retry_max_ms < cfg->retry_base_ms)
                return cpn_error_set(err, CPN_INVALID, "COUPON_RETRY_MAX_MS (%ld) is below COUPON_RETRY_BASE_MS (%ld)",
                                     cfg->retry_max_ms, cfg->retry_base_ms);
        if ((mask & CPN_CFG_WORKER) && cfg->worker_metrics_addr) {
                struct cpn_listen_addr la;
                struct cpn_error why = { { 0 } };

                if (cpn_url_listen_parse(&la, cfg->worker_metrics_addr, &why) != 0)
                        return cpn_error_set(err, CPN_INVALID, "COUPON_WORKER_METRICS_ADDR: %s, got '%.64s'", why.msg,
                                             cfg->worker_metrics_addr);
        }
        if ((mask & (CPN_CFG_WORKER | CPN_CFG_CTL)) && !*cfg->worker_group)
                return cpn_error_set(err, CPN_INVALID, "COUPON_WORKER_GROUP must not be empty");
        if (!*cfg->kafka_topic)
                return cpn_error_set(err, CPN_INVALID, "COUPON_KAFKA_TOPIC must not be empty");
        if (!*cfg->ticket_topic || strcmp(cfg->ticket_topic, cfg->kafka_topic) == 0)
                return cpn_error_set(err, CPN_INVALID,
                                     "COUPON_TICKET_TOPIC must be set and differ from COUPON_KAFKA_TOPIC");
        return 0;
}

int cpn_config_each_kv(const char *list, int (*fn)(const char *key, const char *value, void *ud), void *ud,
                       struct cpn_error *err) {
        size_t n = strlen(list), item = 0;
        char *buf = malloc(n + 1);
        int r = 0;

        if (!buf)
                return cpn_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i <= n && r == 0;) {
                size_t o = 0;
                char *eq;

                item++;
                /* One item, unescaped: "\," is a comma, "\\" a backslash. */
                for (; i < n && list[i] != ','; i++) {
                        if (list[i] == '\\' && i + 1 < n && (list[i + 1] == ',' || list[i + 1] == '\\'))
                                i++;
                        buf[o++] = list[i];
                }
                buf[o] = '\0';
                i++;
                if (o == 0 && i > n && item > 1)
                        break; /* a trailing comma */
                eq = strchr(buf, '=');
                if (!eq || eq == buf) {
                        /* Never the text itself: it may be part of a secret. */
                        r = cpn_error_set(err, CPN_INVALID, "item %zu is not key=value", item);
                        break;
                }
                *eq = '\0';
                r = fn(buf, eq + 1, ud);
        }
        /* The copy may hold a secret. */
        explicit_bzero(buf, n + 1);
        free(buf);
        return r;
}

bool cpn_config_secret_key(const char *key) {
        static const char *const words[] = { "password", "secret", "jaas", "token", "credential", "key", NULL };

        for (const char *const *w = words; *w; w++)
                if (strstr(key, *w))
                        return true;
        return false;
}

void cpn_config_usage(FILE *f, unsigned mask) {
        fprintf(f, "Configuration (environment variable / flag, which overrides it):\n");
        for (size_t i = 0; i < N_ENTRIES; i++) {
                const struct entry *e = &table[i];

                if (!(e->mask & mask))
                        continue;
                fprintf(f, "  %-32s --%s\n      %s\n", e->env, e->flag, e->help);
                if (e->type == T_LONG)
                        fprintf(f, "      default %s, range %ld..%ld\n", e->def, e->min, e->max);
                else
                        fprintf(f, "      default %s\n", e->def ? e->def : "(unset)");
        }
}
