#pragma once
/*
 * Configuration: one struct, filled once in main from a table of names,
 * defaults and bounds (environment first, then command-line flags, which
 * override), and passed down by pointer. Each program declares which
 * entries it uses with a mask, so --help lists only what matters to it.
 */
#include <stdbool.h>
#include <stdio.h>

#include "cpn/error.h"

enum {
        CPN_CFG_API = 1 << 0,
        CPN_CFG_WORKER = 1 << 1,
        CPN_CFG_CTL = 1 << 2,
};

struct cpn_config {
        char *http_addr;            /* COUPON_HTTP_ADDR */
        char *redis_url;            /* COUPON_REDIS_URL */
        char *kafka_brokers;        /* COUPON_KAFKA_BROKERS */
        char *kafka_topic;          /* COUPON_KAFKA_TOPIC */
        char *kafka_config;         /* COUPON_KAFKA_CONFIG: extra librdkafka k=v,k=v */
        char *kafka_config_file;    /* COUPON_KAFKA_CONFIG_FILE: k=v lines */
        char *mysql_url;            /* COUPON_MYSQL_URL */
        char *admin_token;          /* COUPON_ADMIN_TOKEN, NULL = admin disabled */
        char *log_level;            /* COUPON_LOG_LEVEL */
        char *user_auth;            /* COUPON_USER_AUTH: "none" or "jwt" */
        char *user_jwt_key;         /* COUPON_USER_JWT_KEY: PEM public key path */
        char *user_jwt_secret;      /* COUPON_USER_JWT_SECRET: HS256 secret */
        char *user_jwt_issuer;      /* COUPON_USER_JWT_ISSUER */
        char *user_jwt_audience;    /* COUPON_USER_JWT_AUDIENCE */
        long user_jwt_leeway_s;     /* COUPON_USER_JWT_LEEWAY_S */
        long kafka_ack_timeout_ms;  /* COUPON_KAFKA_ACK_TIMEOUT_MS */
        long kafka_message_timeout_ms;
        long kafka_linger_ms;
        long http_threads;
        long http_max_body;
        long http_request_timeout_ms;
        long http_keepalive_ms;
        long relay_after_ms;
        long relay_interval_ms;
        long redis_timeout_ms;
        long mysql_timeout_ms;
        long mysql_pool;
        char *ticket_topic;         /* COUPON_TICKET_TOPIC */
        long ticket_relay;          /* COUPON_TICKET_RELAY: 0 = not relayed by coupon-api */
        long ticket_relay_ms;       /* COUPON_TICKET_RELAY_MS */
        char *payment_url;          /* COUPON_PAYMENT_URL, NULL = payments disabled */
        char *payment_secret;       /* COUPON_PAYMENT_SECRET */
        long payment_timeout_ms;    /* COUPON_PAYMENT_TIMEOUT_MS */
        long ticket_reap_ms;        /* COUPON_TICKET_REAP_MS */
        char *worker_group;         /* COUPON_WORKER_GROUP */
        char *worker_metrics_addr;  /* COUPON_WORKER_METRICS_ADDR, NULL = no metrics endpoint */
        long worker_batch;
        long worker_batch_wait_ms;
        long retry_base_ms;
        long retry_max_ms;
        long retry_max_attempts;
};

/* Fills @cfg with defaults. Strings are heap copies owned by @cfg. Returns 0
 * or -ENOMEM. */
int cpn_config_init(struct cpn_config *cfg);
void cpn_config_clear(struct cpn_config *cfg);

/*
 * Applies COUPON_* variables from @envp-style getter (NULL = getenv), then
 * the flags in argv (`--name value` or `--name=value`). Entries outside
 * @mask are rejected as flags but ignored in the environment.
 * Returns 0, CPN_INVALID (message in @err: which variable or flag, what was
 * expected, what was given), or -ENOMEM. `--help`/`--version` are not
 * handled here; *argi is set to the first non-flag argument.
 */
int cpn_config_load(struct cpn_config *cfg, unsigned mask,
                    const char *(*get)(const char *name),
                    int argc, char **argv, int *argi, struct cpn_error *err);

/* Cross-field checks (e.g. the relay deadline must exceed Kafka's message
 * timeout). Returns 0 or CPN_INVALID. */
int cpn_config_check(const struct cpn_config *cfg, unsigned mask, struct cpn_error *err);

/*
 * Calls @fn for each "key=value" of the comma-separated @list (the form of
 * COUPON_KAFKA_CONFIG), in order: "\," in a value is a comma, "\\" a
 * backslash, the first '=' ends the key. Stops at a non-zero return of
 * @fn and returns it; CPN_INVALID for an item without a key (the message
 * names its position, never its text: it may be part of a secret).
 */
int cpn_config_each_kv(const char *list, int (*fn)(const char *key, const char *value, void *ud), void *ud,
                       struct cpn_error *err);
/* Whether a librdkafka property may hold a secret (its value must never
 * be shown): sasl.password, ssl.key.password, sasl.jaas.config, ... */
bool cpn_config_secret_key(const char *key);

/* Prints the table of variables/flags of @mask with defaults and bounds. */
void cpn_config_usage(FILE *f, unsigned mask);
