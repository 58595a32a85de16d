/*
 * JSON Web Tokens (see jwt.h). The signatures are OpenSSL's (EVP digest
 * sign/verify for RS256 and ES256, HMAC for HS256, CRYPTO_memcmp for the
 * comparison); what is here is the strict parsing around them and the
 * claim rules. Nothing of a token is looked at before its signature has
 * been checked except its header's "alg", "typ" and "crit".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "cpn/json.h"
#include "cpn/jwt.h"

/* Owned by whoever loaded it; read-only once loaded, shared by every
 * request thread. */
struct cpn_jwt_key {
        enum cpn_jwt_alg alg;
        EVP_PKEY *pk;            /* RS256 / ES256; NULL for HS256 */
        bool can_sign;           /* a private key or a secret */
        unsigned char *secret;   /* HS256 */
        size_t secret_len;
};

#define ES256_HALF 32 /* bytes of r and of s in a JWS ES256 signature (RFC 7518 3.4) */
#define HS256_LEN 32

const char *cpn_jwt_alg_name(enum cpn_jwt_alg alg) {
        switch (alg) {
        case CPN_JWT_RS256: return "RS256";
        case CPN_JWT_ES256: return "ES256";
        default: return "HS256";
        }
}

enum cpn_jwt_alg cpn_jwt_key_alg(const struct cpn_jwt_key *k) {
        return k->alg;
}

struct cpn_jwt_key *cpn_jwt_key_free(struct cpn_jwt_key *k) {
        if (k) {
                EVP_PKEY_free(k->pk);
                if (k->secret)
                        OPENSSL_cleanse(k->secret, k->secret_len);
                free(k->secret);
                free(k);
        }
        return NULL;
}

/* The first error of OpenSSL's queue, for a message; empties the queue. */
static const char *ossl_why(char *buf, size_t n) {
        unsigned long e = ERR_get_error();

        if (!e)
                snprintf(buf, n, "no further detail");
        else
                ERR_error_string_n(e, buf, n);
        ERR_clear_error();
        return buf;
}

/* An encrypted private key is refused rather than prompted for. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        (void)buf, (void)size, (void)rwflag, (void)u;
        return -1;
}

/* Takes @pk (owned from here on): RSA of enough bits or EC on P-256. */
static int adopt(struct cpn_jwt_key **ret, EVP_PKEY *pk, bool priv, const char *path, struct cpn_error *err) {
        struct cpn_jwt_key *k;
        enum cpn_jwt_alg alg;
        char group[64];
        size_t glen = 0;

        switch (EVP_PKEY_get_base_id(pk)) {
        case EVP_PKEY_RSA: {
                int bits = EVP_PKEY_get_bits(pk);

                if (bits < CPN_JWT_RSA_BITS_MIN) {
                        EVP_PKEY_free(pk);
                        return cpn_error_set(err, CPN_INVALID, "%s: an RSA key of %d bits is too weak (at least %d)",
                                             path, bits, CPN_JWT_RSA_BITS_MIN);
                }
                alg = CPN_JWT_RS256;
                break;
        }
        case EVP_PKEY_EC:
                if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1 ||
                    OBJ_txt2nid(group) != NID_X9_62_prime256v1) {
                        EVP_PKEY_free(pk);
                        return cpn_error_set(err, CPN_INVALID, "%s: an EC key must be on P-256 (ES256), not %s", path,
                                             glen ? group : "an unnamed curve");
                }
                alg = CPN_JWT_ES256;
                break;
        default:
                EVP_PKEY_free(pk);
                return cpn_error_set(err, CPN_INVALID, "%s: not an RSA (RS256) or P-256 EC (ES256) key", path);
        }
        k = calloc(1, sizeof(*k));
        if (!k) {
                EVP_PKEY_free(pk);
                return -ENOMEM;
        }
        k->alg = alg;
        k->pk = pk;
        k->can_sign = priv;
        *ret = k;
        return 0;
}

static int load_pem(struct cpn_jwt_key **ret, const char *path, bool priv, struct cpn_error *err) {
        char why[256];
        EVP_PKEY *pk;
        FILE *f;

        f = fopen(path, "re");
        if (!f)
                return cpn_error_set(err, CPN_INVALID, "%s: %s", path, strerror(errno));
        pk = priv ? PEM_read_PrivateKey(f, NULL, no_passphrase, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
        fclose(f);
        if (!pk)
                return cpn_error_set(err, CPN_INVALID, "%s: not a PEM %s key without a passphrase (%s)", path,
                                     priv ? "private" : "public", ossl_why(why, sizeof(why)));
        return adopt(ret, pk, priv, path, err);
}

int cpn_jwt_key_public(struct cpn_jwt_key **ret, const char *path, struct cpn_error *err) {
        return load_pem(ret, path, false, err);
}

int cpn_jwt_key_private(struct cpn_jwt_key **ret, const char *path, struct cpn_error *err) {
        return load_pem(ret, path, true, err);
}

int cpn_jwt_key_secret(struct cpn_jwt_key **ret, const char *secret, size_t len, struct cpn_error *err) {
        struct cpn_jwt_key *k;

        if (len < CPN_JWT_SECRET_MIN)
                return cpn_error_set(err, CPN_INVALID, "an HS256 secret of %zu bytes is too weak (at least %d)", len,
                                     CPN_JWT_SECRET_MIN);
        k = calloc(1, sizeof(*k));
        if (!k || !(k->secret = malloc(len))) {
                free(k);
                return -ENOMEM;
        }
        memcpy(k->secret, secret, len);
        k->secret_len = len;
        k->alg = CPN_JWT_HS256;
        k->can_sign = true;
        *ret = k;
        return 0;
}

/* ---- base64url ---- */

static int b64_value(unsigned char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

long cpn_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap) {
        size_t o = 0;
        uint32_t acc = 0;
        int bits = 0;

        if (len % 4 == 1)
                return -EINVAL;
        if (len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
                return -ENOBUFS;
        for (size_t i = 0; i < len; i++) {
                int v = b64_value((unsigned char)in[i]);

                if (v < 0)
                        return -EINVAL;
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (unsigned char)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        /* Left-over bits must be zero: otherwise two texts decode alike. */
        if (acc != 0)
                return -EINVAL;
        return (long)o;
}

long cpn_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap) {
        static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0), o = 0;
        uint32_t acc = 0;
        int bits = 0;

        if (need + 1 > cap)
                return -ENOBUFS;
        for (size_t i = 0; i < len; i++) {
                acc = (acc << 8) | in[i];
                bits += 8;
                while (bits >= 6) {
                        bits -= 6;
                        out[o++] = abc[(acc >> bits) & 63];
                }
        }
        if (bits)
                out[o++] = abc[(acc << (6 - bits)) & 63];
        out[o] = '\0';
        return (long)o;
}

/* ---- signatures ---- */

/* Whether @sig is @k's signature of @data. */
static bool signature_ok(const struct cpn_jwt_key *k, const char *data, size_t n, const unsigned char *sig,
                         size_t sig_len) {
        unsigned char der[80], mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        const unsigned char *s = sig;
        size_t s_len = sig_len;
        EVP_MD_CTX *ctx;
        bool ok;

        if (k->alg == CPN_JWT_HS256) {
                if (sig_len != HS256_LEN ||
                    !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)data, n, mac, &mac_len))
                        return false;
                return mac_len == HS256_LEN && CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
        }
        if (k->alg == CPN_JWT_RS256 && sig_len != (size_t)EVP_PKEY_get_size(k->pk))
                return false;
        if (k->alg == CPN_JWT_ES256) {
                /* JWS carries r || s; OpenSSL verifies the DER form. */
                ECDSA_SIG *es;
                BIGNUM *r, *sv;
                unsigned char *p = der;
                int len;

                if (sig_len != 2 * ES256_HALF)
                        return false;
                es = ECDSA_SIG_new();
                r = BN_bin2bn(sig, ES256_HALF, NULL);
                sv = BN_bin2bn(sig + ES256_HALF, ES256_HALF, NULL);
                if (!es || !r || !sv || ECDSA_SIG_set0(es, r, sv) != 1) {
                        BN_free(r);
                        BN_free(sv);
                        ECDSA_SIG_free(es);
                        ERR_clear_error();
                        return false;
                }
                len = i2d_ECDSA_SIG(es, NULL);
                if (len <= 0 || (size_t)len > sizeof(der) || i2d_ECDSA_SIG(es, &p) != len) {
                        ECDSA_SIG_free(es);
                        ERR_clear_error();
                        return false;
                }
                ECDSA_SIG_free(es);
                s = der;
                s_len = (size_t)len;
        }
        /* OpenSSL allocates its own per-operation state in the init below
         * whatever is pooled here, so the context is not kept. */
        ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
             EVP_DigestVerify(ctx, s, s_len, (const unsigned char *)data, n) == 1;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        return ok;
}

/* Signs @data: the JWS signature into @sig (at least 512 bytes); returns
 * its length or a negative errno. */
static long sign(const struct cpn_jwt_key *k, const char *data, size_t n, unsigned char *sig, size_t cap) {
        unsigned char der[256];
        unsigned int mac_len = 0;
        size_t len = sizeof(der);
        EVP_MD_CTX *ctx;
        bool ok;

        if (k->alg == CPN_JWT_HS256) {
                if (cap < HS256_LEN ||
                    !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)data, n, sig, &mac_len))
                        return -ENOMEM;
                return (long)mac_len;
        }
        if ((size_t)EVP_PKEY_get_size(k->pk) > (k->alg == CPN_JWT_RS256 ? cap : sizeof(der)))
                return -ENOBUFS;
        ctx = EVP_MD_CTX_new();
        if (k->alg == CPN_JWT_RS256)
                len = cap;
        ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
             EVP_DigestSign(ctx, k->alg == CPN_JWT_RS256 ? sig : der, &len, (const unsigned char *)data, n) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok) {
                ERR_clear_error();
                return -ENOMEM;
        }
        if (k->alg == CPN_JWT_ES256) {
                const unsigned char *p = der;
                ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
                const BIGNUM *r, *s;

                if (!es || cap < 2 * ES256_HALF) {
                        ECDSA_SIG_free(es);
                        ERR_clear_error();
                        return -ENOMEM;
                }
                ECDSA_SIG_get0(es, &r, &s);
                ok = BN_bn2binpad(r, sig, ES256_HALF) == ES256_HALF &&
                     BN_bn2binpad(s, sig + ES256_HALF, ES256_HALF) == ES256_HALF;
                ECDSA_SIG_free(es);
                return ok ? 2 * ES256_HALF : -ENOMEM;
        }
        return (long)len;
}

/* ---- tokens ---- */

#define NUMERIC_DATE_MAX ((int64_t)1 << 52)

static int check_header(const struct cpn_jwt_key *k, const unsigned char *h, size_t n, struct cpn_error *err) {
        struct cpn_json o;
        const char *alg, *typ;
        int r;

        r = cpn_json_object(&o, (const char *)h, n, NULL, err);
        if (r)
                return r == CPN_INVALID ? cpn_error_prefix(err, CPN_INVALID, "token header") : r;
        if (cpn_json_string(&o, "alg", &alg, NULL) != 0)
                r = cpn_error_set(err, CPN_INVALID, "token header: \"alg\" is required");
        else if (strcmp(alg, cpn_jwt_alg_name(k->alg)) != 0)
                r = cpn_error_set(err, CPN_INVALID, "token header: \"alg\" must be %s", cpn_jwt_alg_name(k->alg));
        else if (cpn_json_present(&o, "crit"))
                /* RFC 7515 4.1.11: extensions we do not implement. */
                r = cpn_error_set(err, CPN_INVALID, "token header: \"crit\" names extensions this service does not "
                                                    "understand");
        else if (cpn_json_present(&o, "typ") &&
                 (cpn_json_string(&o, "typ", &typ, NULL) != 0 ||
                  (strcasecmp(typ, "JWT") != 0 && strcasecmp(typ, "at+jwt") != 0 &&
                   strcasecmp(typ, "application/at+jwt") != 0)))
                r = cpn_error_set(err, CPN_INVALID, "token header: \"typ\" must be JWT or at+jwt");
        cpn_json_clear(&o);
        return r;
}

static int check_claims(const struct cpn_jwt_rules *rules, const unsigned char *p, size_t n, int64_t now,
                        char sub[CPN_ID_MAX + 1], struct cpn_error *err) {
        struct cpn_json o;
        int64_t exp, nbf;
        const char *s;
        size_t len;
        int r;

        r = cpn_json_object(&o, (const char *)p, n, NULL, err);
        if (r)
                return r == CPN_INVALID ? cpn_error_prefix(err, CPN_INVALID, "token claims") : r;
        r = cpn_json_int(&o, "exp", 0, NUMERIC_DATE_MAX, &exp);
        if (r != 0) {
                r = cpn_error_set(err, CPN_INVALID, "token: \"exp\" is required (an integer NumericDate)");
                goto out;
        }
        if (now >= exp + rules->leeway_s) {
                r = cpn_error_set(err, CPN_INVALID, "token expired");
                goto out;
        }
        r = cpn_json_int(&o, "nbf", 0, NUMERIC_DATE_MAX, &nbf);
        if (r == CPN_INVALID) {
                r = cpn_error_set(err, CPN_INVALID, "token: \"nbf\" must be an integer NumericDate");
                goto out;
        }
        if (r == 0 && now + rules->leeway_s < nbf) {
                r = cpn_error_set(err, CPN_INVALID, "token not valid yet");
                goto out;
        }
        if (rules->issuer && (cpn_json_string(&o, "iss", &s, NULL) != 0 || strcmp(s, rules->issuer) != 0)) {
                r = cpn_error_set(err, CPN_INVALID, "token: \"iss\" is not the configured issuer");
                goto out;
        }
        if (rules->audience && cpn_json_string_among(&o, "aud", rules->audience) != 0) {
                r = cpn_error_set(err, CPN_INVALID, "token: \"aud\" does not name this service");
                goto out;
        }
        if (cpn_json_string(&o, "sub", &s, &len) != 0 || !cpn_user_id_valid(s, len)) {
                r = cpn_error_set(err, CPN_INVALID, "token: \"sub\" is required and must match [A-Za-z0-9_.:-]{1,64}");
                goto out;
        }
        memcpy(sub, s, len + 1);
        r = 0;
out:
        cpn_json_clear(&o);
        return r;
}

int cpn_jwt_verify(const struct cpn_jwt_key *k, const struct cpn_jwt_rules *rules, const char *token, size_t len,
                   int64_t now_s, char sub[CPN_ID_MAX + 1], struct cpn_error *err) {
        /* Decoded parts are shorter than the token: CPN_JWT_MAX each. */
        unsigned char head[CPN_JWT_MAX], claims[CPN_JWT_MAX], sig[CPN_JWT_MAX];
        const char *dot1, *dot2;
        long hn, cn, sn;
        int r;

        if (len == 0)
                return cpn_error_set(err, CPN_INVALID, "no token");
        if (len > CPN_JWT_MAX)
                return cpn_error_set(err, CPN_INVALID, "token longer than %d bytes", CPN_JWT_MAX);
        dot1 = memchr(token, '.', len);
        dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
        if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
                return cpn_error_set(err, CPN_INVALID, "not a JWS compact token (three base64url parts)");
        hn = cpn_b64url_decode(token, (size_t)(dot1 - token), head, sizeof(head));
        cn = cpn_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), claims, sizeof(claims));
        sn = cpn_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig));
        if (hn <= 0 || cn <= 0 || sn <= 0)
                return cpn_error_set(err, CPN_INVALID, "token parts must be non-empty unpadded base64url");
        r = check_header(k, head, (size_t)hn, err);
        if (r)
                return r;
        if (!signature_ok(k, token, (size_t)(dot2 - token), sig, (size_t)sn))
                return cpn_error_set(err, CPN_INVALID, "token signature does not verify");
        return check_claims(rules, claims, (size_t)cn, now_s, sub, err);
}

int cpn_jwt_sign(const struct cpn_jwt_key *k, const char *claims, char *out, size_t n, struct cpn_error *err) {
        unsigned char sig[1024];
        char head[64];
        long a, b, s, c;

        if (!k->can_sign)
                return cpn_error_set(err, CPN_INVALID, "a public key cannot sign: give the private key");
        snprintf(head, sizeof(head), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", cpn_jwt_alg_name(k->alg));
        a = cpn_b64url_encode((const unsigned char *)head, strlen(head), out, n);
        if (a < 0 || (size_t)a + 1 >= n)
                return -ENOBUFS;
        out[a] = '.';
        b = cpn_b64url_encode((const unsigned char *)claims, strlen(claims), out + a + 1, n - (size_t)a - 1);
        if (b < 0)
                return -ENOBUFS;
        s = sign(k, out, (size_t)(a + 1 + b), sig, sizeof(sig));
        if (s < 0)
                return (int)s;
        if ((size_t)(a + 1 + b + 1) >= n)
                return -ENOBUFS;
        out[a + 1 + b] = '.';
        c = cpn_b64url_encode(sig, (size_t)s, out + a + b + 2, n - (size_t)(a + b + 2));
        if (c < 0)
                return -ENOBUFS;
        return (int)(a + b + 2 + c);
}
