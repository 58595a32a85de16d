/*
 * Unit tests of src/auth/jwt.c: strict base64url, HS256 tokens signed
 * and verified at fixed times (the claim rules and their edges), keys
 * made here with OpenSSL and written as PEM (RS256, ES256, refused weak
 * and wrong-curve keys), algorithm confusion and "none". The catalogue
 * against a running coupon-api is tests/integration/test_identity.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cpn/error.h"
#include "cpn/jwt.h"

#define NOW 1800000000
#define SECRET "a-test-secret-of-at-least-32-bytes!!"

static const struct cpn_jwt_rules rules = { "iss-1", "aud-1", 30 };

static int verify(const struct cpn_jwt_key *k, const char *tok, char *sub, struct cpn_error *err) {
        return cpn_jwt_verify(k, &rules, tok, strlen(tok), NOW, sub, err);
}

static void test_b64url(void **state) {
        unsigned char out[16];
        char enc[32];

        (void)state;
        assert_int_equal(cpn_b64url_decode("", 0, out, sizeof(out)), 0);
        assert_int_equal(cpn_b64url_decode("YQ", 2, out, sizeof(out)), 1);
        assert_int_equal(out[0], 'a');
        assert_int_equal(cpn_b64url_decode("YR", 2, out, sizeof(out)), -EINVAL); /* unused bits set */
        assert_int_equal(cpn_b64url_decode("YQ==", 4, out, sizeof(out)), -EINVAL); /* padding */
        assert_int_equal(cpn_b64url_decode("Y", 1, out, sizeof(out)), -EINVAL);
        assert_int_equal(cpn_b64url_decode("+/8", 3, out, sizeof(out)), -EINVAL); /* standard alphabet */
        assert_int_equal(cpn_b64url_decode("-_8", 3, out, sizeof(out)), 2);
        assert_int_equal(out[0], 0xfb);
        assert_int_equal(out[1], 0xff);
        assert_int_equal(cpn_b64url_decode("AAAAAAAAAAAAAAAAAAAAAAAA", 24, out, sizeof(out)), -ENOBUFS);
        assert_int_equal(cpn_b64url_encode((const unsigned char *)"\xfb\xff", 2, enc, sizeof(enc)), 3);
        assert_string_equal(enc, "-_8");
        assert_int_equal(cpn_b64url_encode((const unsigned char *)"abcd", 4, enc, 6), -ENOBUFS);
}

/* Signs @claims with @k and verifies it: the result of the verification. */
static int round_trip(const struct cpn_jwt_key *k, const char *claims, char *sub) {
        char tok[CPN_JWT_MAX + 1];
        struct cpn_error err = { { 0 } };

        assert_true(cpn_jwt_sign(k, claims, tok, sizeof(tok), NULL) > 0);
        return verify(k, tok, sub, &err);
}

static void test_claims(void **state) {
        struct cpn_jwt_key *k = NULL;
        char sub[CPN_ID_MAX + 1];

        (void)state;
        assert_int_equal(cpn_jwt_key_secret(&k, "short", 5, NULL), CPN_INVALID);
        assert_int_equal(cpn_jwt_key_secret(&k, SECRET, strlen(SECRET), NULL), 0);
        assert_int_equal(round_trip(k, "{\"sub\":\"u-1\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", sub), 0);
        assert_string_equal(sub, "u-1");
        /* exp: valid while now < exp + leeway */
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1799999971,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", sub), 0);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1799999970,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", sub),
                         CPN_INVALID);
        /* nbf: valid once now + leeway >= nbf */
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1800000100,\"nbf\":1800000030,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}",
                                    sub), 0);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1800000100,\"nbf\":1800000031,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}",
                                    sub), CPN_INVALID);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", sub), CPN_INVALID);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1800000100.5,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", sub),
                         CPN_INVALID);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1800000100,\"aud\":\"aud-1\"}", sub), CPN_INVALID);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":[\"x\",\"aud-1\"]}", sub), 0);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":[\"x\",1]}", sub),
                         CPN_INVALID);
        assert_int_equal(round_trip(k, "{\"sub\":\"u 1\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", sub),
                         CPN_INVALID);
        assert_int_equal(round_trip(k, "{\"sub\":\"u\",\"sub\":\"v\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}",
                                    sub), CPN_INVALID);
        assert_int_equal(round_trip(k, "[1]", sub), CPN_INVALID);
        cpn_jwt_key_free(k);
}

static void test_shape(void **state) {
        struct cpn_jwt_key *k = NULL;
        struct cpn_error err = { { 0 } };
        char tok[CPN_JWT_MAX + 2], sub[CPN_ID_MAX + 1];
        int n;

        (void)state;
        assert_int_equal(cpn_jwt_key_secret(&k, SECRET, strlen(SECRET), NULL), 0);
        n = cpn_jwt_sign(k, "{\"sub\":\"u\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}", tok, sizeof(tok), NULL);
        assert_true(n > 0);
        assert_int_equal(verify(k, tok, sub, &err), 0);
        tok[n - 10] = tok[n - 10] == 'A' ? 'B' : 'A'; /* another signature */
        assert_int_equal(verify(k, tok, sub, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "signature"));
        /* "none" and an empty signature */
        assert_int_equal(verify(k, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxODAwMDAwMTAwfQ.", sub, &err), CPN_INVALID);
        assert_int_equal(verify(k, "a.b", sub, &err), CPN_INVALID);
        assert_int_equal(verify(k, "a.b.c.d", sub, &err), CPN_INVALID);
        assert_int_equal(cpn_jwt_verify(k, &rules, tok, 0, NOW, sub, &err), CPN_INVALID);
        memset(tok, 'A', CPN_JWT_MAX + 1);
        tok[CPN_JWT_MAX + 1] = '\0';
        assert_int_equal(verify(k, tok, sub, &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "longer"));
        cpn_jwt_key_free(k);
}

/* A fresh key of @alg ("RSA" with @bits, or "EC" with @curve) as PEM
 * files: the private key at @priv, the public at @pub. */
static void make_key(const char *type, const char *param, const char *priv, const char *pub) {
        EVP_PKEY *pk = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(param))
                                                : EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
        FILE *f;

        assert_non_null(pk);
        f = fopen(priv, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
        f = fopen(pub, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_PUBKEY(f, pk), 1);
        fclose(f);
        EVP_PKEY_free(pk);
}

static void test_keys(void **state) {
        char dir[] = "/tmp/cpn-jwt-XXXXXX", p[6][64], tok[CPN_JWT_MAX + 1], sub[CPN_ID_MAX + 1];
        struct cpn_jwt_key *rs_priv = NULL, *rs_pub = NULL, *es_priv = NULL, *es_pub = NULL, *k = NULL;
        struct cpn_error err = { { 0 } };
        const char *claims = "{\"sub\":\"u-k\",\"exp\":1800000100,\"iss\":\"iss-1\",\"aud\":\"aud-1\"}";

        (void)state;
        assert_non_null(mkdtemp(dir));
        for (int i = 0; i < 6; i++)
                snprintf(p[i], sizeof(p[i]), "%s/%d.pem", dir, i);
        make_key("RSA", "2048", p[0], p[1]);
        make_key("EC", "P-256", p[2], p[3]);
        assert_int_equal(cpn_jwt_key_private(&rs_priv, p[0], NULL), 0);
        assert_int_equal(cpn_jwt_key_public(&rs_pub, p[1], NULL), 0);
        assert_int_equal(cpn_jwt_key_private(&es_priv, p[2], NULL), 0);
        assert_int_equal(cpn_jwt_key_public(&es_pub, p[3], NULL), 0);
        assert_int_equal(cpn_jwt_key_alg(rs_pub), CPN_JWT_RS256);
        assert_int_equal(cpn_jwt_key_alg(es_pub), CPN_JWT_ES256);

        assert_true(cpn_jwt_sign(rs_priv, claims, tok, sizeof(tok), NULL) > 0);
        assert_int_equal(verify(rs_pub, tok, sub, &err), 0);
        assert_string_equal(sub, "u-k");
        assert_int_equal(verify(es_pub, tok, sub, &err), CPN_INVALID); /* RS256 at an ES256 key */
        assert_true(cpn_jwt_sign(es_priv, claims, tok, sizeof(tok), NULL) > 0);
        assert_int_equal(verify(es_pub, tok, sub, &err), 0);
        assert_int_equal(verify(rs_pub, tok, sub, &err), CPN_INVALID);
        /* A public key cannot sign. */
        assert_int_equal(cpn_jwt_sign(rs_pub, claims, tok, sizeof(tok), &err), CPN_INVALID);

        /* Algorithm confusion: HS256 keyed with the RSA public key's PEM. */
        {
                FILE *f = fopen(p[1], "r");
                char pem[4096];
                size_t n = fread(pem, 1, sizeof(pem), f);

                fclose(f);
                assert_int_equal(cpn_jwt_key_secret(&k, pem, n, NULL), 0);
                assert_true(cpn_jwt_sign(k, claims, tok, sizeof(tok), NULL) > 0);
                assert_int_equal(verify(rs_pub, tok, sub, &err), CPN_INVALID);
                assert_non_null(strstr(err.msg, "alg"));
                k = cpn_jwt_key_free(k);
        }

        /* Weak and wrong keys are refused, naming the file. */
        make_key("RSA", "1024", p[4], p[5]);
        assert_int_equal(cpn_jwt_key_public(&k, p[5], &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "too weak"));
        make_key("EC", "P-384", p[4], p[5]);
        assert_int_equal(cpn_jwt_key_public(&k, p[5], &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "P-256"));
        assert_int_equal(cpn_jwt_key_public(&k, p[0], &err), CPN_INVALID); /* a private key's file */
        assert_int_equal(cpn_jwt_key_public(&k, "/nonexistent.pem", &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "/nonexistent.pem"));
        assert_null(k);

        cpn_jwt_key_free(rs_priv);
        cpn_jwt_key_free(rs_pub);
        cpn_jwt_key_free(es_priv);
        cpn_jwt_key_free(es_pub);
        for (int i = 0; i < 6; i++)
                unlink(p[i]);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_b64url),
                cmocka_unit_test(test_claims),
                cmocka_unit_test(test_shape),
                cmocka_unit_test(test_keys),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
