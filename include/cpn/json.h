#pragma once
/*
 * Strict request-body parsing on top of cJSON. cJSON alone accepts
 * duplicate keys, "\u0000" inside strings (which it silently truncates),
 * invalid UTF-8 and trailing garbage; these checks refuse all of that, so
 * a handler only ever sees a well-formed object with known fields.
 * Pure functions, any thread.
 */
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/types.h"

/* Returns 0 if @s[0..n) is valid UTF-8 without overlongs or surrogates. */
int cpn_utf8_check(const char *s, size_t n);

/* Parses `{"user_id":"…"}` (no other members). Returns 0 or CPN_INVALID
 * with the reason in @err. @user_id gets CPN_ID_MAX+1 bytes. */
int cpn_json_parse_issue(const char *body, size_t n, char *user_id, struct cpn_error *err);

/* Parses a campaign creation body: "id", "name", "total" required;
 * "starts_at" (default @now_ms), "ends_at" (default never) optional;
 * nothing else. Returns 0 or CPN_INVALID. */
int cpn_json_parse_campaign(const char *body, size_t n, int64_t now_ms,
                            struct cpn_campaign *out, struct cpn_error *err);

/* The largest Kafka message value the decoder looks at. */
#define CPN_ISSUANCE_MAX 16384

/* Decodes a Kafka message value of the contract,
 * {"campaign_id","user_id","seq","issued_at"}: ids by their grammar, seq an
 * integer in 0..CPN_TOTAL_MAX, issued_at RFC 3339; other members are
 * ignored (a newer producer may add some), duplicates refused (in
 * m log m), a value over CPN_ISSUANCE_MAX bytes refused unread. Returns 0
 * with @out filled, or CPN_INVALID with the reason in @err and whatever ids
 * were valid left in @out (for the failed_events row). */
int cpn_json_parse_issuance(const char *buf, size_t n, struct cpn_issuance *out,
                            struct cpn_error *err);

/* Writes a JSON string literal (quotes included) of @s into @buf, escaping
 * as RFC 8259 requires. Returns the length or -ENOBUFS. */
int cpn_json_quote(char *buf, size_t n, const char *s);

/* The campaign as GET /v1/campaigns/{id} shows it; @persisted < 0 prints null (MySQL could
 * not be asked). Returns the length or -ENOBUFS. */
int cpn_json_campaign(char *buf, size_t n, const struct cpn_campaign_state *st, int64_t persisted);
