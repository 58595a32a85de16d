#pragma once
/*
 * Domain types shared by every module, and the pure functions that check
 * them: identifier grammars of the contract, RFC 3339 times, key names.
 * No I/O here; everything is unit-tested.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPN_ID_MAX 64
#define CPN_NAME_MAX 200
#define CPN_TOTAL_MAX 100000000LL /* 10^8 coupons per campaign */
#define CPN_TIME_NEVER INT64_MAX  /* ends_at of a campaign that never ends */

struct cpn_campaign {
        char id[CPN_ID_MAX + 1];
        char name[CPN_NAME_MAX * 4 + 1]; /* UTF-8: up to 200 code points */
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

/* campaign_id: [A-Za-z0-9_-]{1,64}; user_id: [A-Za-z0-9_.:-]{1,64}.
 * @len is the byte length (ids may arrive with embedded NULs). */
bool cpn_campaign_id_valid(const char *s, size_t len);
bool cpn_user_id_valid(const char *s, size_t len);

/* The value of a hex digit, or -1. */
int cpn_hex_value(char c);

/* Parses an RFC 3339 date-time ("2026-11-21T10:00:00Z", optional fraction,
 * 'Z' or ±hh:mm offset) into unix milliseconds. Returns 0 or -EINVAL, also
 * for an instant outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z. */
int cpn_time_parse(const char *s, int64_t *ms);
/* Formats unix ms as RFC 3339 UTC ("…T10:00:00Z", or "…T10:00:00.123Z"
 * when there is a fraction). @buf needs 32 bytes. Returns @buf. */
char *cpn_time_format(int64_t ms, char *buf, size_t n);
int64_t cpn_time_now_ms(void);
/* Fills @buf (@n bytes, odd, at least 3) with (n-1)/2 random bytes from
 * the kernel in lower-case hex and a NUL. Returns 0 or a negative errno. */
int cpn_random_token(char *buf, size_t n);
/* Monotonic clock in ms / ns, for deadlines and latencies. */
int64_t cpn_mono_ms(void);
uint64_t cpn_mono_ns(void);

enum cpn_campaign_phase cpn_campaign_phase(const struct cpn_campaign_state *st);
const char *cpn_campaign_phase_name(enum cpn_campaign_phase p);

/* Redis key names of the contract: "coupon:{<id>}:<part>". Returns the length
 * written or -ENOBUFS. @part is one of "meta", "count", "users", "outbox". */
int cpn_key(char *buf, size_t n, const char *campaign_id, const char *part);
/* The registry of campaigns the outbox relay walks (not per campaign). */
#define CPN_KEY_CAMPAIGNS "coupon:campaigns"

/* Serialises an issuance as the Kafka message value of the contract into @buf.
 * Returns the length or -ENOBUFS. No allocation. */
int cpn_issuance_json(const struct cpn_issuance *iss, char *buf, size_t n);
