#pragma once
/*
 * The small vocabulary every layer shares, as pure functions: the
 * identifier grammars of the contract, display names, RFC 3339 times, the
 * clocks, random tokens from the kernel. No I/O beyond reading clocks and
 * getrandom(2); everything is unit-tested.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPN_ID_MAX 64
#define CPN_NAME_MAX 200          /* code points of a display name */
#define CPN_NAME_BYTES (CPN_NAME_MAX * 4 + 1)
#define CPN_TIME_NEVER INT64_MAX  /* the end of something that never ends */

/* The key grammar of the ids that name things an operator creates
 * (campaigns, ticket types): [A-Za-z0-9_-]{1,64}. @len is the byte length
 * (ids may arrive with embedded NULs). */
bool cpn_id_valid(const char *s, size_t len);
/* user_id: [A-Za-z0-9_.:-]{1,64}. */
bool cpn_user_id_valid(const char *s, size_t len);
/* A display name: 1..CPN_NAME_MAX code points of valid UTF-8 (checked
 * before), no control characters, under CPN_NAME_BYTES bytes. */
bool cpn_name_valid(const char *s, size_t len);

/* The value of a hex digit, or -1. */
int cpn_hex_value(char c);

/* Parses an RFC 3339 date-time ("2026-11-21T10:00:00Z", optional fraction,
 * 'Z' or ±hh:mm offset) into unix milliseconds. Returns 0 or -EINVAL, also
 * for an instant outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z. */
int cpn_time_parse(const char *s, int64_t *ms);
/* Formats unix ms as RFC 3339 UTC ("…T10:00:00Z", or "…T10:00:00.123Z"
 * when there is a fraction). @buf needs 32 bytes. Returns @buf. */
char *cpn_time_format(int64_t ms, char *buf, size_t n);
/* Like cpn_time_format, as a JSON value: the quoted time, or null for
 * CPN_TIME_NEVER and negative @ms (absent). @buf needs 40 bytes. */
char *cpn_time_json(int64_t ms, char *buf, size_t n);
int64_t cpn_time_now_ms(void);
/* Fills @buf (@n bytes, odd, at least 3) with (n-1)/2 random bytes from
 * the kernel in lower-case hex and a NUL. Returns 0 or a negative errno. */
int cpn_random_token(char *buf, size_t n);
/* A UUID v4 (122 random bits from the kernel) in lower-case canonical
 * form, 36 characters and a NUL. Returns 0 or a negative errno. */
int cpn_uuid_v4(char out[37]);
/* Whether @s[0..len) is a UUID in lower-case canonical form. */
bool cpn_uuid_valid(const char *s, size_t len);
/* Monotonic clock in ms / ns, for deadlines and latencies. */
int64_t cpn_mono_ms(void);
uint64_t cpn_mono_ns(void);
