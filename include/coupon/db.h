#pragma once
/*
 * DB: everything kept in MySQL/MariaDB, behind domain calls. Works with the
 * libmysqlclient API (no other module sees a MYSQL). A struct cpn_db is one
 * connection owned by one thread; it connects lazily, runs every session in
 * UTC, and after a connection error is closed and reopened by the next call.
 *
 * Return codes: 0, the positive outcomes each call lists, -EIO (server
 * unreachable or connection lost), -EPROTO (any other SQL error), -ENOMEM;
 * the server's text in @err.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "coupon/error.h"
#include "coupon/types.h"

struct cpn_db_url {
        char host[256];
        int port;
        char user[128];
        char password[256];
        char database[65];
        char unix_path[256];
};

struct cpn_db;

/* Parses mysql://user[:password]@host[:port]/database (and ?socket=PATH).
 * Returns 0 or CPN_INVALID. */
int cpn_db_url_parse(struct cpn_db_url *out, const char *url, struct cpn_error *err);

int cpn_db_new(struct cpn_db **ret, const struct cpn_db_url *url, long timeout_ms);
struct cpn_db *cpn_db_free(struct cpn_db *db);

int cpn_db_ping(struct cpn_db *db, struct cpn_error *err);

/* Applies the embedded deploy/sql migrations not yet recorded in
 * schema_migrations, each in order; prints one line per applied step to
 * @out (may be NULL). Idempotent. */
int cpn_db_migrate(struct cpn_db *db, FILE *out, struct cpn_error *err);

/* Inserts the campaigns row. Returns 0 (inserted), CPN_SAME (present with
 * identical fields), CPN_EXISTS (present and different). */
int cpn_db_campaign_insert(struct cpn_db *db, const struct cpn_campaign *c,
                           struct cpn_error *err);

/* Returns 0 with @out and *@persisted filled, or CPN_NOT_FOUND. */
int cpn_db_campaign_get(struct cpn_db *db, const char *id, struct cpn_campaign *out,
                        int64_t *persisted, struct cpn_error *err);

/* Sets *@found to whether coupons holds (campaign, user). */
int cpn_db_coupon_exists(struct cpn_db *db, const char *campaign_id, const char *user_id,
                         bool *found, struct cpn_error *err);
