/*
 * libFuzzer target: the token parser of caller identity (src/auth/jwt.c)
 * and its base64url. The first byte chooses what the rest is:
 *
 *   even   a token as it would follow "Bearer ": verified with an HS256
 *          secret the input cannot know, so every path up to the
 *          signature check runs on the fuzzer's bytes (size, parts,
 *          base64url, the header's JSON and rules);
 *   odd    a claims text (up to its first NUL), signed here with that
 *          secret and verified, so the claim rules run on the fuzzer's
 *          bytes behind a valid signature.
 *
 * Invariants (a violation aborts): verification answers 0 or CPN_INVALID
 * only, with a message in valid UTF-8 that never quotes the token; an
 * accepted token has a sub of the user id grammar, which equals the
 * claims' "sub" as cJSON reads it, and an integer "exp" still valid at the
 * check's time with its leeway, "iss" and "aud" as the rules want; a
 * raw token is accepted only if its signature is the secret's (never, in
 * practice: the fuzzer cannot forge HMAC-SHA256). Every input's bytes
 * survive a base64url round trip, and decoding refuses exactly what a
 * plain reference refuses.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cpn/jwt.h"
#include "cpn/types.h"
#include "fuzz.h"

#define SECRET "fuzz-secret-of-thirty-two-bytes-or-more"
#define NOW 1800000000
#define LEEWAY 30

static struct cpn_jwt_key *key;
static const struct cpn_jwt_rules rules = { "iss-x", "aud-x", LEEWAY };

/* The reference: RFC 4648 5 without padding, unused bits zero. */
static bool ref_valid(const char *s, size_t n) {
        static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *p;

        if (n % 4 == 1)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!s[i] || !(p = strchr(abc, s[i])))
                        return false;
        if (n % 4) {
                int last = (int)(strchr(abc, s[n - 1]) - abc);
                int unused = n % 4 == 2 ? 4 : 2;

                if (last & ((1 << unused) - 1))
                        return false;
        }
        return true;
}

static void check_b64(const uint8_t *data, size_t size) {
        static char enc[2 * CPN_JWT_MAX + 4];
        static unsigned char dec[2 * CPN_JWT_MAX];
        size_t n = size < CPN_JWT_MAX ? size : CPN_JWT_MAX;
        long e, d;

        e = cpn_b64url_encode(data, n, enc, sizeof(enc));
        CPN_FUZZ_CHECK(e >= 0 && (size_t)e == strlen(enc), "encode failed");
        d = cpn_b64url_decode(enc, (size_t)e, dec, sizeof(dec));
        CPN_FUZZ_CHECK(d == (long)n && memcmp(dec, data, n) == 0, "round trip of %zu bytes", n);
        /* The input as a text: accepted exactly when the reference does. */
        d = cpn_b64url_decode((const char *)data, n, dec, sizeof(dec));
        CPN_FUZZ_CHECK((d >= 0) == ref_valid((const char *)data, n), "decode %ld vs reference", d);
}

static void check_accepted(const char *claims, const char *sub) {
        cJSON *o = cJSON_Parse(claims), *exp, *s, *iss, *aud;

        CPN_FUZZ_CHECK(cpn_user_id_valid(sub, strlen(sub)), "sub %s", sub);
        CPN_FUZZ_CHECK(o && cJSON_IsObject(o), "accepted claims are not an object");
        exp = cJSON_GetObjectItemCaseSensitive(o, "exp");
        s = cJSON_GetObjectItemCaseSensitive(o, "sub");
        iss = cJSON_GetObjectItemCaseSensitive(o, "iss");
        aud = cJSON_GetObjectItemCaseSensitive(o, "aud");
        CPN_FUZZ_CHECK(cJSON_IsNumber(exp) && exp->valuedouble + LEEWAY > NOW, "exp");
        CPN_FUZZ_CHECK(cJSON_IsString(s) && strcmp(s->valuestring, sub) == 0, "sub differs");
        CPN_FUZZ_CHECK(cJSON_IsString(iss) && strcmp(iss->valuestring, "iss-x") == 0, "iss");
        CPN_FUZZ_CHECK(aud && (cJSON_IsString(aud) || cJSON_IsArray(aud)), "aud");
        cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char token[CPN_JWT_MAX * 2 + 1];
        struct cpn_error err = { { 0 } };
        char sub[CPN_ID_MAX + 1];
        char *copy;
        int r;

        if (!key && cpn_jwt_key_secret(&key, SECRET, strlen(SECRET), NULL) != 0)
                abort();
        if (size == 0)
                return 0;
        check_b64(data + 1, size - 1);
        copy = cpn_fuzz_copy(data + 1, size - 1);
        if (data[0] % 2 == 0) {
                r = cpn_jwt_verify(key, &rules, copy, size - 1, NOW, sub, &err);
        } else {
                char *claims = calloc(1, size);

                if (!claims)
                        abort();
                memcpy(claims, data + 1, size - 1);
                r = cpn_jwt_sign(key, claims, token, sizeof(token), NULL);
                CPN_FUZZ_CHECK(r > 0 || r == -ENOBUFS, "sign: %d", r);
                if (r > 0) {
                        r = cpn_jwt_verify(key, &rules, token, (size_t)r, NOW, sub, &err);
                        if (r == 0)
                                check_accepted(claims, sub);
                } else {
                        r = CPN_INVALID;
                        snprintf(err.msg, sizeof(err.msg), "too long");
                }
                free(claims);
        }
        CPN_FUZZ_CHECK(r == 0 || r == CPN_INVALID, "verify returned %d", r);
        if (r)
                CPN_FUZZ_CHECK(err.msg[0] && cpn_utf8_check(err.msg, strlen(err.msg)) == 0, "message");
        free(copy);
        return 0;
}
