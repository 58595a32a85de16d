/*
 * couponctl: the operator's tool. Talks to MySQL and Redis directly through
 * the same domain calls as coupon-api, so a campaign created here is exactly
 * one created over HTTP.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/config.h"
#include "cpn/json.h"
#include "cpn/log.h"
#include "cpn/coupon/db.h"
#include "cpn/coupon/ops.h"
#include "cpn/coupon/service.h"
#include "cpn/ticket/confirm.h"
#include "cpn/json.h"
#include "cpn/jwt.h"
#include "cpn/ticket/reconcile.h"
#include "cpn/ticket/service.h"

static void usage(FILE *f) {
        fprintf(f,
                "Usage: couponctl [OPTION...] COMMAND [ARG...]\n"
                "\n"
                "Operator tool of the coupon issuance service.\n"
                "\n"
                "Commands:\n"
                "  migrate                       create or upgrade the MySQL schema (idempotent)\n"
                "  campaign create --id ID --name NAME --total N [--starts-at T] [--ends-at T]\n"
                "                                create a campaign in MySQL and Redis; times are\n"
                "                                RFC 3339 (2026-11-21T10:00:00Z); starts now and\n"
                "                                never ends by default\n"
                "  campaign show ID              print the campaign as GET /v1/campaigns/ID does\n"
                "  ticket-type create --id ID --name NAME --price N --currency XYZ --total N\n"
                "                     [--hold-seconds S] [--starts-at T] [--ends-at T]\n"
                "                                create a ticket type in MySQL and Redis; price in the\n"
                "                                currency's minor unit, holds of S seconds (default 600)\n"
                "  ticket-type show ID           print the type as GET /v1/ticket-types/ID does\n"
                "  ticket-type reconcile ID [--dry-run]\n"
                "                                compare the type's Redis gate with MySQL (the truth):\n"
                "                                restore its meta and the holds of live tickets Redis\n"
                "                                lost, give back holds of nothing live older than 30 s;\n"
                "                                never writes MySQL; after Redis lost data, run it for\n"
                "                                every type. Also reports (exit 4) payments in flight,\n"
                "                                outbox rows unpublished and PAID tickets unconfirmed\n"
                "                                for longer than the running service should take\n"
                "  failed list [--status open|dead|resolved] [--scope ID] [--limit N]\n"
                "                                failed events of both products, newest first\n"
                "                                (default: open, 100); --scope: of one campaign or\n"
                "                                ticket type (--campaign is the same option); the\n"
                "                                subject column is a user (coupons) or a ticket\n"
                "  failed retry ID|--all         retry one failed event (open or dead), or all of\n"
                "                                them, now; prints what was resolved\n"
                "  reconcile [CAMPAIGN] [--dry-run] [--grace SECONDS]\n"
                "                                compare Redis (count, user set, outbox) with MySQL\n"
                "                                (rows, persisted, open failed events) per campaign;\n"
                "                                repair what is safe: re-publish users that stay\n"
                "                                missing downstream for --grace (default 10) seconds,\n"
                "                                correct persisted, raise a count below the set's size\n"
                "  rebuild CAMPAIGN [--wait SECONDS] [--force]\n"
                "                                after Redis lost data: pause the campaign, wait for\n"
                "                                the workers' Kafka lag to reach 0 (default 60 s),\n"
                "                                restore count and user set from MySQL, resume\n"
                "  lag                           the worker group's Kafka lag (messages not yet\n"
                "                                persisted)\n"
                "  audit CAMPAIGN [--users N] [--wait SECONDS]\n"
                "                                after a load test: wait (default 60 s) for the\n"
                "                                outbox and the lag to drain, then check issued =\n"
                "                                min(total, N distinct users), no user twice, every\n"
                "                                issued user in MySQL, outbox empty, lag 0, Redis =\n"
                "                                MySQL; prints PASS/FAIL per check, exits 4 on FAIL\n"
                "  token --sub USER [--ttl SECONDS] [--not-before SECONDS] [--iss ISS] [--aud AUD]\n"
                "        [--key PRIVATE.pem] [--claims JSON]\n"
                "                                print a user token for development and tests, as the\n"
                "                                shop's identity provider would issue it: signed with\n"
                "                                the PEM private key (RS256 for RSA, ES256 for P-256)\n"
                "                                or, without --key, with COUPON_USER_JWT_SECRET\n"
                "                                (HS256); exp = now + TTL (default 3600, negative:\n"
                "                                expired), nbf = now + SECONDS when given; iss and\n"
                "                                aud default to COUPON_USER_JWT_ISSUER / _AUDIENCE;\n"
                "                                --claims signs exactly that JSON object instead\n"
                "\n"
                "  -h, --help       show this help and exit\n"
                "  -V, --version    show the version and exit\n"
                "\n");
        cpn_config_usage(f, CPN_CFG_CTL);
        fprintf(f, "\nExit status: 0 on success (campaign and ticket-type create also when it\n"
                   "already exists with the same fields), 1 on failure, 2 on bad usage or a bad\n"
                   "setting; campaign and ticket-type create exit 3 when one with that id and other\n"
                   "fields exists;\n"
                   "reconcile (and ticket-type reconcile) exits 4 when differences remain that it\n"
                   "did not repair, audit 4\n"
                   "when a check fails; reconcile and rebuild exit 5 when another reconcile or\n"
                   "rebuild is changing the campaign (it holds its lease; the lease of one that\n"
                   "died expires within 15 s).\n");
}

/* couponctl token: exit status 0, 1 (the key) or 2 (usage). */
static int cmd_token(int argc, char **argv) {
        const char *sub = NULL, *key = NULL, *claims_arg = NULL, *iss = getenv("COUPON_USER_JWT_ISSUER"),
                   *aud = getenv("COUPON_USER_JWT_AUDIENCE");
        long ttl = 3600, nbf = 0;
        bool has_nbf = false;
        struct cpn_error err = { { 0 } };
        struct cpn_jwt_key *k = NULL;
        char claims[2048], token[CPN_JWT_MAX + 1], q[3][CPN_ID_MAX * 6 + 3];
        int64_t now = cpn_time_now_ms() / 1000;
        int r;

        for (int i = 1; i < argc; i++) {
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                char *end;

                if (!v)
                        goto usage;
                if (!strcmp(argv[i], "--sub"))
                        sub = v;
                else if (!strcmp(argv[i], "--key"))
                        key = v;
                else if (!strcmp(argv[i], "--claims"))
                        claims_arg = v;
                else if (!strcmp(argv[i], "--iss"))
                        iss = v;
                else if (!strcmp(argv[i], "--aud"))
                        aud = v;
                else if (!strcmp(argv[i], "--ttl") || !strcmp(argv[i], "--not-before")) {
                        long n = strtol(v, &end, 10);

                        if (!*v || *end || n < -315360000 || n > 315360000)
                                goto usage;
                        if (argv[i][2] == 't')
                                ttl = n;
                        else
                                nbf = n, has_nbf = true;
                } else
                        goto usage;
                i++;
        }
        if (!sub == !claims_arg)
                goto usage;
        if (!claims_arg) {
                if (cpn_json_quote(q[0], sizeof(q[0]), sub) < 0 || (iss && cpn_json_quote(q[1], sizeof(q[1]), iss) < 0) ||
                    (aud && cpn_json_quote(q[2], sizeof(q[2]), aud) < 0))
                        goto usage;
                r = snprintf(claims, sizeof(claims), "{\"sub\":%s,\"iat\":%lld,\"exp\":%lld", q[0], (long long)now,
                             (long long)(now + ttl));
                if (has_nbf)
                        r += snprintf(claims + r, sizeof(claims) - (size_t)r, ",\"nbf\":%lld", (long long)(now + nbf));
                if (iss && *iss)
                        r += snprintf(claims + r, sizeof(claims) - (size_t)r, ",\"iss\":%s", q[1]);
                if (aud && *aud)
                        r += snprintf(claims + r, sizeof(claims) - (size_t)r, ",\"aud\":%s", q[2]);
                snprintf(claims + r, sizeof(claims) - (size_t)r, "}");
                claims_arg = claims;
        }
        if (key)
                r = cpn_jwt_key_private(&k, key, &err);
        else if (getenv("COUPON_USER_JWT_SECRET"))
                r = cpn_jwt_key_secret(&k, getenv("COUPON_USER_JWT_SECRET"), strlen(getenv("COUPON_USER_JWT_SECRET")),
                                       &err);
        else
                r = cpn_error_set(&err, CPN_INVALID, "give --key PRIVATE.pem or set COUPON_USER_JWT_SECRET");
        if (!r) {
                r = cpn_jwt_sign(k, claims_arg, token, sizeof(token), &err);
                r = r < 0 && !err.msg[0] ? cpn_error_set(&err, r, "cannot sign: %s", strerror(-r)) : r < 0 ? r : 0;
        }
        cpn_jwt_key_free(k);
        if (r) {
                fprintf(stderr, "couponctl: token: %s\n", err.msg);
                return 1;
        }
        printf("%s\n", token);
        return 0;
usage:
        fprintf(stderr, "couponctl: usage: token --sub USER [--ttl SECONDS] [--not-before SECONDS] [--iss ISS] "
                        "[--aud AUD] [--key PRIVATE.pem] | token --claims JSON [--key PRIVATE.pem]\n");
        return 2;
}

static int fail(const char *what, const struct cpn_error *err) {
        fprintf(stderr, "couponctl: %s: %s\n", what, err->msg[0] ? err->msg : "failed");
        return 1;
}

static int cmd_migrate(struct cpn_session *s, const struct cpn_service *svc) {
        struct cpn_error err = { { 0 } };
        struct cpn_db *db;
        int r;

        (void)s;
        /* Long enough for a migration's ALTER on a big table. */
        if (cpn_db_new(&db, &svc->db_url, svc->cfg->mysql_timeout_ms, 600000) < 0)
                return fail("migrate", &(struct cpn_error){ "out of memory" });
        r = cpn_db_migrate(db, stdout, &err);
        cpn_db_free(db);
        if (r)
                return fail("migrate", &err);
        printf("schema is up to date\n");
        return 0;
}

static int cmd_campaign_show(struct cpn_session *s, const char *id) {
        struct cpn_error err = { { 0 } };
        struct cpn_campaign_state st;
        int64_t persisted;
        char out[4096];
        int r;

        if (!cpn_id_valid(id, strlen(id))) {
                fprintf(stderr, "couponctl: campaign id must match [A-Za-z0-9_-]{1,64}\n");
                return 2;
        }
        r = cpn_service_campaign_get(s, id, &st, &persisted, &err);
        if (r == CPN_CAMPAIGN_NOT_FOUND) {
                fprintf(stderr, "couponctl: no campaign %s\n", id);
                return 1;
        }
        if (r)
                return fail("campaign show", &err);
        if (cpn_campaign_json(out, sizeof(out), &st, persisted) < 0)
                return fail("campaign show", &(struct cpn_error){ "campaign too large to print" });
        printf("%s\n", out);
        return 0;
}

static int cmd_campaign_create(struct cpn_session *s, int argc, char **argv) {
        static const struct option opts[] = {
                { "id", required_argument, NULL, 'i' },        { "name", required_argument, NULL, 'n' },
                { "total", required_argument, NULL, 't' },     { "starts-at", required_argument, NULL, 's' },
                { "ends-at", required_argument, NULL, 'e' },   { NULL, 0, NULL, 0 },
        };
        struct cpn_error err = { { 0 } };
        struct cpn_campaign c;
        cJSON *o = cJSON_CreateObject();
        char *body;
        int ch, r;

        if (!o)
                return fail("campaign create", &(struct cpn_error){ "out of memory" });
        optind = 1;
        while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (ch) {
                case 'i': cJSON_AddStringToObject(o, "id", optarg); break;
                case 'n': cJSON_AddStringToObject(o, "name", optarg); break;
                case 's': cJSON_AddStringToObject(o, "starts_at", optarg); break;
                case 'e': cJSON_AddStringToObject(o, "ends_at", optarg); break;
                case 't': {
                        char *end;
                        long long v = strtoll(optarg, &end, 10);

                        if (*end || end == optarg) {
                                fprintf(stderr, "couponctl: --total must be an integer\n");
                                cJSON_Delete(o);
                                return 2;
                        }
                        cJSON_AddNumberToObject(o, "total", (double)v);
                        break;
                }
                default:
                        cJSON_Delete(o);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "couponctl: campaign create: unexpected argument '%s' (see --help)\n", argv[optind]);
                cJSON_Delete(o);
                return 2;
        }
        body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!body)
                return fail("campaign create", &(struct cpn_error){ "out of memory" });
        /* The same strict validation as POST /v1/campaigns. */
        r = cpn_campaign_parse(body, strlen(body), cpn_time_now_ms(), &c, &err);
        free(body);
        if (r) {
                fprintf(stderr, "couponctl: campaign create: %s\n", err.msg);
                return 2;
        }
        r = cpn_service_campaign_create(s, &c, &err);
        if (r == CPN_CAMPAIGN_EXISTS) {
                fprintf(stderr, "couponctl: campaign create: %s\n", err.msg);
                return 3;
        }
        if (r == CPN_CAMPAIGN_SAME) /* a repeat: what was asked for is there */
                fprintf(stderr, "couponctl: campaign %s already existed with these fields\n", c.id);
        else if (r == CPN_CAMPAIGN_PARTIAL || r == CPN_UNKNOWN)
                return fail("campaign create", &(struct cpn_error){
                        "recorded in MySQL, Redis not written (or its answer lost): run the same command "
                        "again to complete it" });
        else if (r)
                return fail("campaign create", &err);
        return cmd_campaign_show(s, c.id);
}

static int cmd_ticket_type_show(struct cpn_ticket_session *s, const char *id) {
        struct cpn_error err = { { 0 } };
        struct cpn_ticket_type_state st;
        char out[4096];
        int r;

        if (!cpn_id_valid(id, strlen(id))) {
                fprintf(stderr, "couponctl: ticket type id must match [A-Za-z0-9_-]{1,64}\n");
                return 2;
        }
        r = cpn_ticket_type_get(s, id, &st, &err);
        if (r == CPN_TICKET_TYPE_NOT_FOUND) {
                fprintf(stderr, "couponctl: no ticket type %s\n", id);
                return 1;
        }
        if (r)
                return fail("ticket-type show", &err);
        if (cpn_ticket_type_json(out, sizeof(out), &st) < 0)
                return fail("ticket-type show", &(struct cpn_error){ "ticket type too large to print" });
        printf("%s\n", out);
        return 0;
}

/* Appends ,"@name":<@value as a JSON string> to @body. */
static int add_string(char *body, size_t cap, const char *name, const char *value) {
        char q[1024];
        size_t l = strlen(body);

        if (cpn_json_quote(q, sizeof(q), value) < 0)
                return -ENOBUFS;
        return (size_t)snprintf(body + l, cap - l, "%s\"%s\":%s", l > 1 ? "," : "", name, q) >= cap - l ? -ENOBUFS
                                                                                                          : 0;
}

/* Appends ,"@name":<@value, digits only> to @body; -EINVAL when it is no integer. */
static int add_int(char *body, size_t cap, const char *name, const char *value) {
        size_t l = strlen(body);

        if (!*value || strspn(value, "0123456789") != strlen(value) || strlen(value) > 15)
                return -EINVAL;
        return (size_t)snprintf(body + l, cap - l, "%s\"%s\":%s", l > 1 ? "," : "", name, value) >= cap - l ? -ENOBUFS
                                                                                                            : 0;
}

static int cmd_ticket_type_create(struct cpn_ticket_session *s, int argc, char **argv) {
        static const struct option opts[] = {
                { "id", required_argument, NULL, 'i' },       { "name", required_argument, NULL, 'n' },
                { "price", required_argument, NULL, 'p' },    { "currency", required_argument, NULL, 'c' },
                { "total", required_argument, NULL, 't' },    { "hold-seconds", required_argument, NULL, 'h' },
                { "starts-at", required_argument, NULL, 's' }, { "ends-at", required_argument, NULL, 'e' },
                { NULL, 0, NULL, 0 },
        };
        struct cpn_error err = { { 0 } };
        struct cpn_ticket_type t;
        struct cpn_ticket_type_state st;
        char body[4096] = "{";
        int ch, r = 0;

        optind = 1;
        while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1 && r == 0) {
                switch (ch) {
                case 'i': r = add_string(body, sizeof(body), "id", optarg); break;
                case 'n': r = add_string(body, sizeof(body), "name", optarg); break;
                case 'c': r = add_string(body, sizeof(body), "currency", optarg); break;
                case 's': r = add_string(body, sizeof(body), "starts_at", optarg); break;
                case 'e': r = add_string(body, sizeof(body), "ends_at", optarg); break;
                case 'p': r = add_int(body, sizeof(body), "price", optarg); break;
                case 't': r = add_int(body, sizeof(body), "total", optarg); break;
                case 'h': r = add_int(body, sizeof(body), "hold_seconds", optarg); break;
                default: return 2;
                }
                if (r == -EINVAL) {
                        fprintf(stderr, "couponctl: ticket-type create: --%s must be a non-negative integer\n",
                                ch == 'p' ? "price" : ch == 't' ? "total" : "hold-seconds");
                        return 2;
                }
        }
        if (r) {
                fprintf(stderr, "couponctl: ticket-type create: arguments too long\n");
                return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "couponctl: ticket-type create: unexpected argument '%s' (see --help)\n",
                        argv[optind]);
                return 2;
        }
        strcat(body, "}");
        /* The same strict validation as POST /v1/ticket-types. */
        r = cpn_ticket_type_parse(body, strlen(body), cpn_time_now_ms(), &t, &err);
        if (r) {
                fprintf(stderr, "couponctl: ticket-type create: %s\n", err.msg);
                return 2;
        }
        r = cpn_ticket_type_create(s, &t, &st, &err);
        if (r == CPN_TICKET_TYPE_EXISTS) {
                fprintf(stderr, "couponctl: ticket-type create: %s\n", err.msg);
                return 3;
        }
        if (r == CPN_TICKET_TYPE_SAME)
                fprintf(stderr, "couponctl: ticket type %s already existed with these fields\n", t.id);
        else if (r == CPN_TICKET_TYPE_PARTIAL)
                return fail("ticket-type create", &(struct cpn_error){
                        "recorded in MySQL, Redis not written: run the same command again to complete it" });
        else if (r)
                return fail("ticket-type create", &err);
        return cmd_ticket_type_show(s, t.id);
}

static int cmd_ticket_type_reconcile(const struct cpn_service *svc, int argc, char **argv) {
        struct cpn_ticket_reconcile_report rep;
        struct cpn_error err = { { 0 } };
        struct cpn_redis *redis = NULL;
        struct cpn_db *db = NULL;
        bool dry = false;
        const char *id = NULL;
        int r;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--dry-run"))
                        dry = true;
                else if (argv[i][0] != '-' && !id)
                        id = argv[i];
                else {
                        fprintf(stderr, "couponctl: usage: ticket-type reconcile ID [--dry-run]\n");
                        return 2;
                }
        }
        if (!id || !cpn_id_valid(id, strlen(id))) {
                fprintf(stderr, "couponctl: usage: ticket-type reconcile ID [--dry-run] (ID: [A-Za-z0-9_-]{1,64})\n");
                return 2;
        }
        r = cpn_db_new(&db, &svc->db_url, svc->cfg->mysql_timeout_ms, CPN_DB_SLOW_RW_MS(svc->cfg->mysql_timeout_ms));
        if (!r)
                r = cpn_redis_new(&redis, &svc->redis_url, svc->cfg->redis_timeout_ms);
        if (!r)
                r = cpn_ticket_reconcile(db, redis, id, dry, svc->cfg->payment_timeout_ms, &rep, &err);
        cpn_redis_free(redis);
        cpn_db_free(db);
        if (r == CPN_TICKET_TYPE_NOT_FOUND) {
                fprintf(stderr, "couponctl: no ticket type %s in MySQL\n", id);
                return 1;
        }
        if (r)
                return fail("ticket-type reconcile", &err);
        printf("{\"ticket_type\":\"%s\",\"dry_run\":%s,\"issued\":%lld,\"live\":%lld,\"holds\":%lld,"
               "\"meta_restored\":%s,\"missing_holds\":%lld,\"holds_restored\":%lld,\"stale_holds\":%lld,"
               "\"stale_released\":%lld,\"in_progress\":%lld,\"stuck_payments\":%lld,\"unpublished\":%lld,"
               "\"unconfirmed\":%lld}\n",
               id, dry ? "true" : "false", (long long)rep.issued, (long long)rep.live, (long long)rep.holds,
               rep.meta_restored ? "true" : "false", (long long)rep.missing_holds, (long long)rep.holds_restored,
               (long long)rep.stale_holds, (long long)rep.stale_released, (long long)rep.in_progress,
               (long long)rep.stuck_payments, (long long)rep.unpublished, (long long)rep.unconfirmed);
        if (rep.stuck_payments)
                fprintf(stderr, "couponctl: %lld payments in flight past the gateway timeout: coupon-api's settler "
                                "asks the gateway for them while it runs (is one running, with COUPON_PAYMENT_URL?)\n",
                        (long long)rep.stuck_payments);
        if (rep.unpublished)
                fprintf(stderr, "couponctl: %lld outbox rows not on Kafka after %d s: the relay (COUPON_TICKET_RELAY) "
                                "or Debezium is not publishing\n",
                        (long long)rep.unpublished, 60);
        if (rep.unconfirmed)
                fprintf(stderr, "couponctl: %lld tickets PAID for over %d s and not CONFIRMED: is coupon-worker "
                                "consuming the ticket topic? (couponctl failed list shows what it could not apply)\n",
                        (long long)rep.unconfirmed, 60);
        if (rep.issued != rep.live)
                fprintf(stderr, "couponctl: MySQL's issued (%lld) is not its live tickets (%lld): look at "
                                "ticket_types and tickets (nothing changed there)\n",
                        (long long)rep.issued, (long long)rep.live);
        return rep.issued == rep.live && rep.in_progress == 0 && rep.holds_restored == rep.missing_holds &&
                               rep.stale_released == rep.stale_holds && !rep.stuck_payments && !rep.unpublished &&
                               !rep.unconfirmed
                       ? 0
                       : 4;
}

static int parse_count(const char *s, long max, long *out) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < 0 || v > max)
                return -EINVAL;
        *out = v;
        return 0;
}

/* failed / reconcile / rebuild / lag: exit status as usage() says. */
static int cmd_ops(struct cpn_service *svc, int argc, char **argv) {
        static const struct option opts[] = {
                { "status", required_argument, NULL, 's' }, { "campaign", required_argument, NULL, 'c' },
                { "scope", required_argument, NULL, 'c' },
                { "limit", required_argument, NULL, 'l' },  { "all", no_argument, NULL, 'a' },
                { "dry-run", no_argument, NULL, 'd' },      { "grace", required_argument, NULL, 'g' },
                { "wait", required_argument, NULL, 'w' },   { "force", no_argument, NULL, 'f' },
                { "users", required_argument, NULL, 'u' },  { NULL, 0, NULL, 0 },
        };
        struct cpn_error err = { { 0 } };
        /* The options each command takes; any other is refused. */
        static const struct {
                const char *cmd, *sub, *takes;
        } allowed[] = {
                { "failed", "list", "scl" }, { "failed", "retry", "a" }, { "reconcile", NULL, "dg" },
                { "rebuild", NULL, "wf" },   { "audit", NULL, "uw" },    { "lag", NULL, "" },
        };
        struct cpn_ops ops = { .cfg = svc->cfg, .redis_url = &svc->redis_url, .out = stdout };
        const char *status = "open", *campaign = NULL, *cmd = argv[0];
        long limit = 100, grace = 10, wait = 60, users = -1;
        bool all = false, dry = false, force = false;
        char given[16] = "";
        int ch, r, nargs;
        char **args;

        optind = 1;
        opterr = 1;
        while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (ch != '?' && !strchr(given, ch) && strlen(given) + 1 < sizeof(given))
                        given[strlen(given)] = (char)ch;
                switch (ch) {
                case 's':
                        if (strcmp(optarg, "open") && strcmp(optarg, "dead") && strcmp(optarg, "resolved") &&
                            strcmp(optarg, "all")) {
                                fprintf(stderr, "couponctl: --status must be open, dead, resolved or all\n");
                                return 2;
                        }
                        status = strcmp(optarg, "all") ? optarg : NULL;
                        break;
                case 'c': campaign = optarg; break;
                case 'a': all = true; break;
                case 'd': dry = true; break;
                case 'f': force = true; break;
                case 'l':
                        if (parse_count(optarg, 1000000, &limit)) {
                                fprintf(stderr, "couponctl: --limit must be 0..1000000\n");
                                return 2;
                        }
                        break;
                case 'g':
                        if (parse_count(optarg, 3600, &grace)) {
                                fprintf(stderr, "couponctl: --grace must be 0..3600 seconds\n");
                                return 2;
                        }
                        break;
                case 'u':
                        if (parse_count(optarg, 2000000000L, &users)) {
                                fprintf(stderr, "couponctl: --users must be a count of distinct users\n");
                                return 2;
                        }
                        break;
                case 'w':
                        if (parse_count(optarg, 86400, &wait)) {
                                fprintf(stderr, "couponctl: --wait must be 0..86400 seconds\n");
                                return 2;
                        }
                        break;
                default:
                        return 2;
                }
        }
        args = argv + optind;
        nargs = argc - optind;
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
                if (strcmp(allowed[i].cmd, cmd) != 0 ||
                    (allowed[i].sub && (nargs < 1 || strcmp(allowed[i].sub, args[0]) != 0)))
                        continue;
                for (const char *g = given; *g; g++)
                        if (!strchr(allowed[i].takes, *g)) {
                                const char *name = "?";

                                for (const struct option *o = opts; o->name; o++)
                                        if (o->val == *g)
                                                name = o->name;
                                fprintf(stderr, "couponctl: %s%s%s does not take --%s (see --help)\n", cmd,
                                        allowed[i].sub ? " " : "", allowed[i].sub ? allowed[i].sub : "", name);
                                return 2;
                        }
        }
        if (campaign && !cpn_id_valid(campaign, strlen(campaign))) {
                fprintf(stderr, "couponctl: --scope (a campaign or ticket type id) must match [A-Za-z0-9_-]{1,64}\n");
                return 2;
        }
        if (cpn_redis_new(&ops.redis, &svc->redis_url, svc->cfg->redis_timeout_ms) < 0 ||
            cpn_db_new(&ops.db, &svc->db_url, svc->cfg->mysql_timeout_ms,
                       CPN_DB_SLOW_RW_MS(svc->cfg->mysql_timeout_ms)) < 0) {
                cpn_redis_free(ops.redis);
                return fail(cmd, &(struct cpn_error){ "out of memory" });
        }
        r = 2;
        if (!strcmp(cmd, "failed") && nargs == 1 && !strcmp(args[0], "list")) {
                r = cpn_ops_failed_list(&ops, status, campaign, (size_t)limit, &err);
        } else if (!strcmp(cmd, "failed") && nargs >= 1 && !strcmp(args[0], "retry") &&
                   ((nargs == 1 && all) || (nargs == 2 && !all))) {
                unsigned long long id = 0;

                if (!all) {
                        char *end;

                        errno = 0;
                        id = strtoull(args[1], &end, 10);
                        if (errno || *end || id == 0) {
                                fprintf(stderr, "couponctl: failed retry: ID must be a positive integer\n");
                                goto usage;
                        }
                }
                const struct cpn_ops_failed_handler by_topic[] = {
                        { svc->cfg->kafka_topic, cpn_coupon_failed_apply, NULL },
                        { svc->cfg->ticket_topic, cpn_ticket_confirm_apply, NULL },
                };

                r = cpn_ops_failed_retry(&ops, by_topic, 2, id, &err);
        } else if (!strcmp(cmd, "reconcile") && nargs <= 1) {
                if (nargs == 1 && !cpn_id_valid(args[0], strlen(args[0]))) {
                        fprintf(stderr, "couponctl: campaign id must match [A-Za-z0-9_-]{1,64}\n");
                        goto usage;
                }
                r = cpn_ops_reconcile(&ops, nargs ? args[0] : NULL, grace, dry, &err);
                if (r == CPN_CAMPAIGN_DIFFERENT) {
                        r = 4;
                        goto done;
                }
        } else if (!strcmp(cmd, "rebuild") && nargs == 1) {
                if (!cpn_id_valid(args[0], strlen(args[0]))) {
                        fprintf(stderr, "couponctl: campaign id must match [A-Za-z0-9_-]{1,64}\n");
                        goto usage;
                }
                r = cpn_ops_rebuild(&ops, args[0], wait, force, &err);
                if (r == CPN_CAMPAIGN_NOT_FOUND)
                        cpn_error_set(&err, r, "no campaign %s in MySQL", args[0]);
        } else if (!strcmp(cmd, "audit") && nargs == 1) {
                if (!cpn_id_valid(args[0], strlen(args[0]))) {
                        fprintf(stderr, "couponctl: campaign id must match [A-Za-z0-9_-]{1,64}\n");
                        goto usage;
                }
                r = cpn_ops_audit(&ops, args[0], users, wait, &err);
                if (r == CPN_CAMPAIGN_DIFFERENT) {
                        r = 4;
                        goto done;
                }
        } else if (!strcmp(cmd, "lag") && nargs == 0) {
                r = cpn_ops_lag(&ops, &err);
        } else {
                fprintf(stderr, "couponctl: bad usage of '%s' (see --help)\n", cmd);
                goto usage;
        }
        if (r == -EBUSY) {
                fprintf(stderr, "couponctl: %s: %s\n", cmd, err.msg);
                r = 5;
        } else if (r == CPN_INVALID) { /* a bad setting found only now (COUPON_KAFKA_CONFIG, ...) */
                fail(cmd, &err);
                r = 2;
        } else {
                r = r ? fail(cmd, &err) : 0;
        }
        goto done;
usage:
        r = 2;
done:
        cpn_ops_clear(&ops);
        cpn_redis_free(ops.redis);
        cpn_db_free(ops.db);
        return r;
}

int main(int argc, char **argv) {
        struct cpn_config cfg;
        struct cpn_service svc = { 0 };
        struct cpn_error err = { { 0 } };
        struct cpn_session *s = NULL;
        struct cpn_ticket_service tsvc = { 0 };
        struct cpn_ticket_session *ts = NULL;
        enum cpn_log_level level = CPN_LOG_WARN;
        int argi, r;

        if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
                usage(stdout);
                return 0;
        }
        if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
                printf("couponctl %s\n", CPN_VERSION);
                return 0;
        }
        cpn_log_setup("couponctl", CPN_LOG_WARN);
        if (cpn_config_init(&cfg) < 0)
                return 1;
        r = cpn_config_load(&cfg, CPN_CFG_CTL, NULL, argc, argv, &argi, &err);
        if (!r)
                r = cpn_config_check(&cfg, CPN_CFG_CTL, &err);
        if (!r)
                r = cpn_redis_url_parse(&svc.redis_url, cfg.redis_url, &err);
        if (!r)
                r = cpn_db_url_parse(&svc.db_url, cfg.mysql_url, &err);
        if (r) {
                fprintf(stderr, "couponctl: %s\n", err.msg);
                cpn_config_clear(&cfg);
                return 2;
        }
        if (cpn_log_level_parse(cfg.log_level, &level) == 0 && level > CPN_LOG_WARN)
                cpn_log_setup("couponctl", level);
        svc.cfg = &cfg;
        if (argi >= argc) {
                usage(stderr);
                cpn_config_clear(&cfg);
                return 2;
        }
        if (!strcmp(argv[argi], "token")) {
                /* Needs no service: no connection is made. */
                r = cmd_token(argc - argi, argv + argi);
                cpn_config_clear(&cfg);
                return r;
        }
        r = cpn_db_pool_new(&svc.db_pool, &svc.db_url, 1, cfg.mysql_timeout_ms,
                            CPN_DB_SLOW_RW_MS(cfg.mysql_timeout_ms), false, &err);
        tsvc = (struct cpn_ticket_service){ .cfg = &cfg, .redis_url = &svc.redis_url, .db_pool = svc.db_pool };
        if (!r)
                r = cpn_session_new(&s, &svc);
        if (!r)
                r = cpn_ticket_session_new(&ts, &tsvc);
        if (r) {
                fprintf(stderr, "couponctl: out of memory\n");
                cpn_session_free(s);
                cpn_db_pool_free(svc.db_pool);
                cpn_config_clear(&cfg);
                return 1;
        }
        argc -= argi;
        argv += argi;
        if (!strcmp(argv[0], "migrate")) {
                if (argc == 1) {
                        r = cmd_migrate(s, &svc);
                } else {
                        fprintf(stderr, "couponctl: migrate takes no arguments (see --help)\n");
                        r = 2;
                }
        } else if (!strcmp(argv[0], "campaign") && argc >= 2 && !strcmp(argv[1], "create")) {
                r = cmd_campaign_create(s, argc - 1, argv + 1);
        } else if (!strcmp(argv[0], "campaign") && argc >= 2 && !strcmp(argv[1], "show")) {
                if (argc == 3 && argv[2][0] != '-') {
                        r = cmd_campaign_show(s, argv[2]);
                } else {
                        fprintf(stderr, "couponctl: usage: campaign show ID\n");
                        r = 2;
                }
        } else if (!strcmp(argv[0], "campaign")) {
                fprintf(stderr, "couponctl: usage: campaign create --id ID --name NAME --total N ... | "
                                "campaign show ID (see --help)\n");
                r = 2;
        } else if (!strcmp(argv[0], "ticket-type") && argc >= 2 && !strcmp(argv[1], "create")) {
                r = cmd_ticket_type_create(ts, argc - 1, argv + 1);
        } else if (!strcmp(argv[0], "ticket-type") && argc >= 2 && !strcmp(argv[1], "show")) {
                if (argc == 3 && argv[2][0] != '-') {
                        r = cmd_ticket_type_show(ts, argv[2]);
                } else {
                        fprintf(stderr, "couponctl: usage: ticket-type show ID\n");
                        r = 2;
                }
        } else if (!strcmp(argv[0], "ticket-type") && argc >= 2 && !strcmp(argv[1], "reconcile")) {
                r = cmd_ticket_type_reconcile(&svc, argc - 1, argv + 1);
        } else if (!strcmp(argv[0], "ticket-type")) {
                fprintf(stderr, "couponctl: usage: ticket-type create --id ID --name NAME --price N --currency XYZ "
                                "--total N ... | ticket-type show ID | ticket-type reconcile ID (see --help)\n");
                r = 2;
        } else if (!strcmp(argv[0], "failed") || !strcmp(argv[0], "reconcile") || !strcmp(argv[0], "rebuild") ||
                   !strcmp(argv[0], "lag") || !strcmp(argv[0], "audit")) {
                r = cmd_ops(&svc, argc, argv);
        } else {
                fprintf(stderr, "couponctl: unknown command '%s' (see --help)\n", argv[0]);
                r = 2;
        }
        cpn_ticket_session_free(ts);
        cpn_session_free(s);
        cpn_db_pool_free(svc.db_pool);
        cpn_config_clear(&cfg);
        return r;
}
