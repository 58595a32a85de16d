#pragma once
/*
 * Caller identity: JSON Web Tokens (RFC 7519) signed with JWS compact
 * serialization (RFC 7515), one algorithm per process: RS256, ES256 or
 * HS256. This module is the only one that sees OpenSSL's libcrypto; the
 * cryptography is libcrypto's, what is here is the parsing and the rules.
 *
 * A token is verified in this order, each step refusing before the next
 * looks at anything: size (CPN_JWT_MAX), shape (three base64url segments,
 * canonical, unpadded), header (a JSON object whose "alg" is the key's,
 * no "crit"), signature (over the first two segments as sent), and only
 * then the claims: "exp" required, "nbf" if present, both with the
 * configured leeway; "iss" and "aud" when configured; "sub" in the user id
 * grammar. Keys are loaded once and read-only afterwards: verification is
 * thread-safe.
 */
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/types.h"

/* A token longer than this is refused before it is decoded: real ones are
 * a few hundred bytes (an RS256 signature alone is 342). */
#define CPN_JWT_MAX 4096
#define CPN_JWT_SECRET_MIN 32   /* bytes of an HS256 secret (RFC 7518 3.2: at least the hash size) */
#define CPN_JWT_RSA_BITS_MIN 2048

enum cpn_jwt_alg { CPN_JWT_HS256, CPN_JWT_RS256, CPN_JWT_ES256 };

struct cpn_jwt_key;

/* A public key from the PEM file at @path: RSA of at least
 * CPN_JWT_RSA_BITS_MIN bits (RS256) or EC on P-256 (ES256). Returns 0,
 * CPN_INVALID (unreadable, not a public key, another type or curve, too
 * weak: the reason in @err, naming @path) or -ENOMEM. */
int cpn_jwt_key_public(struct cpn_jwt_key **ret, const char *path, struct cpn_error *err);
/* The same for a private key (signing, couponctl token): a PEM private key
 * of the same kinds. */
int cpn_jwt_key_private(struct cpn_jwt_key **ret, const char *path, struct cpn_error *err);
/* An HS256 secret: @len >= CPN_JWT_SECRET_MIN bytes (copied). Returns 0,
 * CPN_INVALID or -ENOMEM. */
int cpn_jwt_key_secret(struct cpn_jwt_key **ret, const char *secret, size_t len, struct cpn_error *err);
struct cpn_jwt_key *cpn_jwt_key_free(struct cpn_jwt_key *k);
enum cpn_jwt_alg cpn_jwt_key_alg(const struct cpn_jwt_key *k);
/* "RS256", "ES256", "HS256". */
const char *cpn_jwt_alg_name(enum cpn_jwt_alg alg);

struct cpn_jwt_rules {
        const char *issuer;   /* required "iss", or NULL */
        const char *audience; /* required in "aud" (a string or an array of them), or NULL */
        int64_t leeway_s;     /* allowed clock skew on exp and nbf */
};

/* Verifies @token[0..@len) (the bytes after "Bearer ") with @k at unix time
 * @now_s. Returns 0 with the token's "sub" in @sub, CPN_INVALID with the
 * reason in @err (fit for the client: it never quotes the token), or
 * -ENOMEM. */
int cpn_jwt_verify(const struct cpn_jwt_key *k, const struct cpn_jwt_rules *rules, const char *token, size_t len,
                   int64_t now_s, char sub[CPN_ID_MAX + 1], struct cpn_error *err);

/* Signs the claims @claims (a JSON object's text) with @k (a private key or
 * a secret) under the header {"alg":…,"typ":"JWT"}: the token into @out
 * (@n bytes), NUL-terminated. Returns its length, CPN_INVALID (a public
 * key cannot sign) or -ENOBUFS / -ENOMEM. For development tokens. */
int cpn_jwt_sign(const struct cpn_jwt_key *k, const char *claims, char *out, size_t n, struct cpn_error *err);

/* Strict base64url without padding (RFC 7515 2): the alphabet only, no
 * '=', a length that is not 1 mod 4, and unused trailing bits zero (one
 * text per byte string). Decodes @in[0..@len) into @out (@cap bytes).
 * Returns the decoded length or -EINVAL / -ENOBUFS. Pure. */
long cpn_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);
/* Encodes without padding; returns the length written (NUL added) or
 * -ENOBUFS. */
long cpn_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);
