/*
 * libFuzzer target: coupon-worker's message decoder. The whole input is the
 * value of one Kafka message of topic coupon.issued, given to
 * cpn_issuance_parse as the worker does (no NUL after it).
 *
 * Invariants checked (a violation aborts):
 * - the result is 0 or CPN_INVALID, and the same, with the same output,
 *   whether or not an error struct is passed;
 * - accepted: the message was valid UTF-8 without NUL bytes; both ids are
 *   NUL-terminated and match their grammars, seq is in 0..CPN_TOTAL_MAX,
 *   issued_at is not before 1970; cJSON alone reads the same ids and seq;
 *   the message coupon-api would produce for it (cpn_issuance_json)
 *   decodes to the same issuance;
 * - refused: a message in valid UTF-8 (it goes to failed_events.error),
 *   and each id kept for the failed_events row is either empty or valid.
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/error.h"
#include "cpn/json.h"
#include "cpn/types.h"
#include "cpn/coupon/campaign.h"
#include "fuzz.h"

static bool id_ok(const char *id, size_t cap, bool (*valid)(const char *, size_t), bool may_be_empty) {
        if (!memchr(id, 0, cap))
                return false;
        if (id[0] == '\0')
                return may_be_empty;
        return valid(id, strlen(id));
}

static void check_accepted(const char *buf, size_t n, const struct cpn_issuance *iss) {
        struct cpn_issuance *back = malloc(sizeof(*back));
        const cJSON *c, *u, *q;
        char msg[512];
        cJSON *root;
        int len;

        if (!back)
                abort();
        CPN_FUZZ_CHECK(!memchr(buf, 0, n), "accepted a NUL byte");
        CPN_FUZZ_CHECK(cpn_utf8_check(buf, n) == 0, "accepted invalid UTF-8");
        CPN_FUZZ_CHECK(id_ok(iss->campaign_id, sizeof(iss->campaign_id), cpn_id_valid, false),
                       "campaign_id \"%.*s\"", (int)sizeof(iss->campaign_id), iss->campaign_id);
        CPN_FUZZ_CHECK(id_ok(iss->user_id, sizeof(iss->user_id), cpn_user_id_valid, false),
                       "user_id \"%.*s\"", (int)sizeof(iss->user_id), iss->user_id);
        CPN_FUZZ_CHECK(iss->seq >= 0 && iss->seq <= CPN_TOTAL_MAX, "seq %lld", (long long)iss->seq);
        CPN_FUZZ_CHECK(iss->issued_at_ms >= 0, "issued_at %lld", (long long)iss->issued_at_ms);
        CPN_FUZZ_CHECK(iss->outbox_id[0] == '\0', "outbox_id set by the decoder");

        /* cJSON alone reads the same members. */
        root = cJSON_ParseWithLength(buf, n);
        c = cJSON_GetObjectItemCaseSensitive(root, "campaign_id");
        u = cJSON_GetObjectItemCaseSensitive(root, "user_id");
        q = cJSON_GetObjectItemCaseSensitive(root, "seq");
        CPN_FUZZ_CHECK(cJSON_IsString(c) && strcmp(c->valuestring, iss->campaign_id) == 0 &&
                               cJSON_IsString(u) && strcmp(u->valuestring, iss->user_id) == 0 &&
                               cJSON_IsNumber(q) && q->valuedouble == (double)iss->seq,
                       "cJSON reads another issuance");
        cJSON_Delete(root);

        /* What coupon-api would send for it decodes to the same issuance. */
        len = cpn_issuance_json(iss, msg, sizeof(msg));
        CPN_FUZZ_CHECK(len > 0, "cpn_issuance_json: %d", len);
        CPN_FUZZ_CHECK(cpn_issuance_parse(msg, (size_t)len, back, NULL) == 0, "%s refused", msg);
        CPN_FUZZ_CHECK(strcmp(back->campaign_id, iss->campaign_id) == 0 &&
                               strcmp(back->user_id, iss->user_id) == 0 && back->seq == iss->seq &&
                               back->issued_at_ms == iss->issued_at_ms,
                       "%s decodes to another issuance (issued_at %lld, expected %lld)", msg,
                       (long long)back->issued_at_ms, (long long)iss->issued_at_ms);
        free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *buf = cpn_fuzz_copy(data, size);
        struct cpn_issuance *iss = malloc(sizeof(*iss)), *again = malloc(sizeof(*again));
        struct cpn_error err = { { 0 } };
        int r;

        if (!iss || !again)
                abort();
        memset(iss, 0x5a, sizeof(*iss));
        r = cpn_issuance_parse(buf, size, iss, &err);
        CPN_FUZZ_CHECK(r == 0 || r == CPN_INVALID, "returned %d", r);
        memset(again, 0xa5, sizeof(*again));
        CPN_FUZZ_CHECK(cpn_issuance_parse(buf, size, again, NULL) == r,
                       "result depends on err being NULL");
        CPN_FUZZ_CHECK(memcmp(iss->campaign_id, again->campaign_id, sizeof(iss->campaign_id)) == 0 &&
                               memcmp(iss->user_id, again->user_id, sizeof(iss->user_id)) == 0,
                       "output depends on err being NULL");
        if (r == 0) {
                check_accepted(buf, size, iss);
        } else {
                cpn_fuzz_check_error_text(&err);
                CPN_FUZZ_CHECK(id_ok(iss->campaign_id, sizeof(iss->campaign_id), cpn_id_valid, true),
                               "kept campaign_id \"%.*s\"", (int)sizeof(iss->campaign_id), iss->campaign_id);
                CPN_FUZZ_CHECK(id_ok(iss->user_id, sizeof(iss->user_id), cpn_user_id_valid, true),
                               "kept user_id \"%.*s\"", (int)sizeof(iss->user_id), iss->user_id);
        }
        free(again);
        free(iss);
        free(buf);
        return 0;
}
