#pragma once
/*
 * The coupon product's domain: campaigns, issuances, their outcomes, the
 * Redis key layout of the contract ("coupon:{<campaign_id>}:<part>") and
 * the JSON of its requests, answers and Kafka messages. Pure functions on
 * the shared vocabulary (types.h, json.h); any thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/types.h"

/* The coupon product's outcomes (error.h: one meaning each). */
enum {
        CPN_ISSUE_DUPLICATE = CPN_PRODUCT_BASE, /* the user already holds this campaign's coupon */
        CPN_ISSUE_SOLD_OUT,        /* all `total` coupons are gone */
        CPN_ISSUE_NOT_OPEN,        /* before starts_at or at/after ends_at */
        CPN_ISSUE_PAUSED,          /* campaign paused by an operator (rebuild) */
        CPN_CAMPAIGN_NOT_FOUND,    /* no such campaign */
        CPN_CAMPAIGN_EXISTS,       /* a campaign with that id and other fields exists */
        CPN_CAMPAIGN_SAME,         /* it exists with exactly these fields: a repeated create */
        CPN_CAMPAIGN_PARTIAL,      /* MySQL has the new campaign, Redis could not be written:
                                    * repeating the create completes it */
        CPN_CAMPAIGN_DIFFERENT,    /* reconcile / audit: Redis and MySQL disagree (printed) */
};

#define CPN_TOTAL_MAX 100000000LL /* 10^8 coupons per campaign */

struct cpn_campaign {
        char id[CPN_ID_MAX + 1];
        char name[CPN_NAME_BYTES];
        int64_t total;
        int64_t starts_at_ms;
        int64_t ends_at_ms;              /* CPN_TIME_NEVER = never */
        bool starts_now;                 /* a create gave no starts_at: "now" when it was made */
};

/* What Redis knows of a campaign at one instant (campaign_get.lua). */
struct cpn_campaign_state {
        struct cpn_campaign c;
        int64_t issued;
        int64_t outbox_len;
        int64_t now_ms;   /* Redis's clock */
        bool paused;
};

enum cpn_campaign_phase {
        CPN_PHASE_SCHEDULED,
        CPN_PHASE_OPEN,
        CPN_PHASE_SOLD_OUT,
        CPN_PHASE_ENDED,
};

/* One accepted issuance, as carried by the outbox and the Kafka message. */
struct cpn_issuance {
        char campaign_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
        int64_t seq;
        int64_t issued_at_ms;
        char outbox_id[48]; /* Redis stream entry id, "<ms>-<n>" */
};

/* An outbox entry: what a delivered message's tag names. */
struct cpn_outbox_ref {
        char campaign_id[CPN_ID_MAX + 1];
        char outbox_id[48];
};

enum cpn_campaign_phase cpn_campaign_phase(const struct cpn_campaign_state *st);
const char *cpn_campaign_phase_name(enum cpn_campaign_phase p);

/* Redis key names of the contract: "coupon:{<id>}:<part>". Returns the length
 * written or -ENOBUFS. @part is one of "meta", "count", "users", "outbox",
 * a lease or a scratch key of couponctl. */
int cpn_campaign_key(char *buf, size_t n, const char *campaign_id, const char *part);
/* The registry of campaigns the outbox relay walks (not per campaign). */
#define CPN_KEY_CAMPAIGNS "coupon:campaigns"

/* Parses `{"user_id":"…"}` (no other members). Returns 0 or CPN_INVALID
 * with the reason in @err. @user_id gets CPN_ID_MAX+1 bytes. */
int cpn_campaign_parse_issue(const char *body, size_t n, char *user_id, struct cpn_error *err);

/* Parses a campaign creation body: "id", "name", "total" required;
 * "starts_at" (default @now_ms), "ends_at" (default never) optional;
 * nothing else. Returns 0 or CPN_INVALID. */
int cpn_campaign_parse(const char *body, size_t n, int64_t now_ms, struct cpn_campaign *out,
                       struct cpn_error *err);

/* The campaign as GET /v1/campaigns/{id} shows it; @persisted < 0 prints
 * null (MySQL could not be asked). Returns the length or -ENOBUFS. */
int cpn_campaign_json(char *buf, size_t n, const struct cpn_campaign_state *st, int64_t persisted);

/* The largest Kafka message value the decoder looks at. */
#define CPN_ISSUANCE_MAX 16384

/* Serialises an issuance as the Kafka message value of the contract into @buf.
 * Returns the length or -ENOBUFS. No allocation. */
int cpn_issuance_json(const struct cpn_issuance *iss, char *buf, size_t n);

/* Decodes a Kafka message value of the contract,
 * {"campaign_id","user_id","seq","issued_at"}: ids by their grammar, seq an
 * integer in 0..CPN_TOTAL_MAX, issued_at RFC 3339; other members are
 * ignored (a newer producer may add some), duplicates refused (in
 * m log m), a value over CPN_ISSUANCE_MAX bytes refused unread. Returns 0
 * with @out filled, or CPN_INVALID with the reason in @err and whatever ids
 * were valid left in @out (for the failed_events row). */
int cpn_issuance_parse(const char *buf, size_t n, struct cpn_issuance *out, struct cpn_error *err);
