"""Caller identity (COUPON_USER_AUTH=jwt) against real Redis, MariaDB,
dev broker and coupon-devpay: three coupon-api processes, one per
algorithm (RS256 with a required issuer and audience, ES256, HS256), keys
made by openssl, valid tokens minted by `couponctl token`, bad ones made
here byte by byte.

The catalogue: every refused case is answered with its status and code
(401 invalid_token with WWW-Authenticate, 403 forbidden, 400 for a
framing error) and is checked to change nothing: the campaign's Redis
count, user set and outbox, the ticket type's gate, MySQL's tickets and
the gateway's ledger are compared before and after. The accepted cases
(each algorithm, the leeway edges from inside, aud in an array, the
scheme in lower case) issue to the token's sub. A bad key stops
coupon-api at start with one line.

Prints the catalogue count ("identity cases: N")."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, ctl, main  # noqa: E402
from services import find_program  # noqa: E402

ISS, AUD = "https://id.shop.example", "coupon-api"
SECRET = "s3cret-of-the-identity-provider-0123456789"
PRICE = 55000
CASES = []


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header, claims, secret=SECRET):
    """A token made here: @header and @claims are dicts or raw text."""
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    c = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    signing = b64(h) + "." + b64(c)
    key = secret.encode() if isinstance(secret, str) else secret
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def now():
    return int(time.time())


def keys(svc):
    d = svc.path("keys")
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    paths = {}
    for name, gen in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      ("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      ("weak", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
                      ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                      ("p384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"])):
        priv, pub = os.path.join(d, name + ".pem"), os.path.join(d, name + ".pub")
        ossl("genpkey", *gen, "-out", priv)
        ossl("pkey", "-in", priv, "-pubout", "-out", pub)
        paths[name] = (priv, pub)
    return paths


def token(svc, *args, key=None, secret=None):
    env_args = ["--key", key] if key else []
    if secret:
        r = subprocess.run([find_program("couponctl"), "token", *map(str, args)],
                           env={**os.environ, **svc.env, "COUPON_USER_JWT_SECRET": secret},
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "couponctl token: %s" % r.stderr)
        return r.stdout.strip()
    _, out = ctl(svc, "token", *args, *env_args)
    return out.strip()


def snapshot(svc):
    return (svc.redis("GET", "coupon:{idc}:count"), svc.redis("SCARD", "coupon:{idc}:users"),
            svc.redis("XLEN", "coupon:{idc}:outbox"),
            tuple(svc.mysql("SELECT id, status FROM tickets ORDER BY id")),
            tuple(sorted(svc.redis("HGETALL", "ticket:{idt}:users") or [])),
            len(svc.devpay_ledger()["entries"]))


def issue(api, tok, body=None, headers=None, scheme="Bearer"):
    h = dict(headers or {})
    if tok is not None:
        h["Authorization"] = "%s %s" % (scheme, tok) if scheme else tok
    return api.request("POST", "/v1/campaigns/idc/issue", {} if body is None else body, headers=h)


def refused(svc, name, call, status=401, code="invalid_token"):
    """A case that must be refused with @status / @code and change nothing."""
    before = snapshot(svc)
    st, hd, b = call()
    got = b.get("error", {}).get("code") if isinstance(b, dict) else None
    check(st == status and (code is None or got == code),
          "%s: expected %d %s, got %s %s" % (name, status, code, st, b))
    if status == 401 and code == "invalid_token":
        check(hd.get("www-authenticate") == 'Bearer error="invalid_token"',
              "%s: WWW-Authenticate is %r" % (name, hd.get("www-authenticate")))
    check(snapshot(svc) == before, "%s changed state: %s -> %s" % (name, before, snapshot(svc)))
    CASES.append(name)


def accepted(svc, name, call, user, status=202):
    st, _, b = call()
    check(st == status, "%s: expected %d, got %s %s" % (name, status, st, b))
    if status == 202:
        check(b.get("user_id") == user, "%s: issued to %s, not the token's sub %s" % (name, b.get("user_id"), user))
        check(svc.redis("SISMEMBER", "coupon:{idc}:users", user) == 1, "%s: %s not in the user set" % (name, user))
    CASES.append(name)
    return b


def start_fails(svc, name, env, expect):
    """coupon-api with @env stops at start with one line naming @expect."""
    e = {**os.environ, **svc.env, "COUPON_HTTP_ADDR": "127.0.0.1:0", "COUPON_USER_AUTH": "jwt"}
    e.update(env)
    r = subprocess.run([find_program("coupon-api")], env=e, capture_output=True, text=True, timeout=60)
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln or "cannot" in ln]
    check(r.returncode != 0 and expect in r.stderr and len(lines) == 1,
          "%s: coupon-api exited %d, stderr:\n%s" % (name, r.returncode, r.stderr[-2000:]))
    CASES.append(name)


def run(svc):
    k = keys(svc)
    rs = Api(svc, {"COUPON_USER_AUTH": "jwt", "COUPON_USER_JWT_KEY": k["rsa"][1],
                   "COUPON_USER_JWT_ISSUER": ISS, "COUPON_USER_JWT_AUDIENCE": AUD}, name="api-rs").start()
    es = Api(svc, {"COUPON_USER_AUTH": "jwt", "COUPON_USER_JWT_KEY": k["ec"][1]}, name="api-es").start()
    hs = Api(svc, {"COUPON_USER_AUTH": "jwt", "COUPON_USER_JWT_SECRET": SECRET}, name="api-hs").start()
    rs.create_campaign("idc", 1000)
    st, _, b = rs.admin("POST", "/v1/ticket-types", {"id": "idt", "name": "Identity", "price": PRICE,
                                                      "currency": "KRW", "total": 50})
    check(st == 201, "admin create with identity on: %s %s" % (st, b))

    def rs_tok(sub, *extra):
        return token(svc, "--sub", sub, "--iss", ISS, "--aud", AUD, *extra, key=k["rsa"][0])

    # ---- accepted ----
    accepted(svc, "RS256 valid, empty body", lambda: issue(rs, rs_tok("u-rs")), "u-rs")
    accepted(svc, "RS256 valid, body user_id = sub",
             lambda: issue(rs, rs_tok("u-rs2"), {"user_id": "u-rs2"}), "u-rs2")
    accepted(svc, "ES256 valid", lambda: issue(es, token(svc, "--sub", "u-es", key=k["ec"][0])), "u-es")
    accepted(svc, "HS256 valid", lambda: issue(hs, token(svc, "--sub", "u-hs", secret=SECRET)), "u-hs")
    accepted(svc, "scheme in lower case", lambda: issue(rs, rs_tok("u-lower"), scheme="bearer"), "u-lower")
    accepted(svc, "expired 25 s ago, inside the 30 s leeway",
             lambda: issue(rs, rs_tok("u-leeway", "--ttl", -25)), "u-leeway")
    accepted(svc, "nbf 20 s ahead, inside the leeway",
             lambda: issue(rs, rs_tok("u-nbf", "--not-before", 20)), "u-nbf")
    accepted(svc, "aud as an array holding ours",
             lambda: issue(rs, token(svc, "--claims", json.dumps(
                 {"sub": "u-aud", "exp": now() + 600, "iss": ISS, "aud": ["other", AUD]}), key=k["rsa"][0])),
             "u-aud")
    accepted(svc, "HS256 with typ at+jwt",
             lambda: issue(hs, hs256({"alg": "HS256", "typ": "at+jwt"}, {"sub": "u-typ", "exp": now() + 60})),
             "u-typ")
    accepted(svc, "a repeat of an issued user is 409 as without identity",
             lambda: issue(rs, rs_tok("u-rs")), "u-rs", status=409)

    # ---- refused: where the token is ----
    good = rs_tok("u-x")
    refused(svc, "no Authorization", lambda: issue(rs, None))
    refused(svc, "Basic scheme", lambda: issue(rs, b64("u-x:pw"), scheme="Basic"))
    refused(svc, "Bearer without a token", lambda: issue(rs, "", scheme="Bearer"))
    refused(svc, "two spaces after Bearer", lambda: issue(rs, " " + good))
    refused(svc, "token without a scheme", lambda: issue(rs, good, scheme=None))
    refused(svc, "token in X-Auth-Token", lambda: issue(rs, None, headers={"X-Auth-Token": good}))
    refused(svc, "token in the query string",
            lambda: rs.request("POST", "/v1/campaigns/idc/issue?access_token=" + good, {}))
    refused(svc, "token with a trailing space", lambda: issue(rs, good + " "))
    refused(svc, "two Authorization headers", lambda: raw_two_auth(rs, good),
        400, "invalid_request")

    # ---- refused: time ----
    refused(svc, "expired an hour ago", lambda: issue(rs, rs_tok("u-x", "--ttl", -3600)))
    refused(svc, "expired exactly the leeway ago", lambda: issue(rs, rs_tok("u-x", "--ttl", -30)))
    refused(svc, "not valid for an hour", lambda: issue(rs, rs_tok("u-x", "--not-before", 3600)))
    refused(svc, "nbf 40 s ahead, past the leeway", lambda: issue(rs, rs_tok("u-x", "--not-before", 40)))
    refused(svc, "no exp", lambda: issue(hs, hs256({"alg": "HS256"}, {"sub": "u-x"})))
    refused(svc, "exp as a string", lambda: issue(hs, hs256({"alg": "HS256"}, {"sub": "u-x", "exp": str(now() + 60)})))
    refused(svc, "exp with a fraction", lambda: issue(hs, hs256({"alg": "HS256"}, '{"sub":"u-x","exp":%d.5}' % (now() + 60))))

    # ---- refused: issuer and audience ----
    refused(svc, "wrong iss", lambda: issue(rs, token(svc, "--sub", "u-x", "--iss", "https://evil.example",
                                                      "--aud", AUD, key=k["rsa"][0])))
    refused(svc, "no iss", lambda: issue(rs, token(svc, "--claims", json.dumps(
        {"sub": "u-x", "exp": now() + 60, "aud": AUD}), key=k["rsa"][0])))
    refused(svc, "wrong aud", lambda: issue(rs, token(svc, "--sub", "u-x", "--iss", ISS, "--aud", "another-api",
                                                      key=k["rsa"][0])))
    refused(svc, "aud array without ours", lambda: issue(rs, token(svc, "--claims", json.dumps(
        {"sub": "u-x", "exp": now() + 60, "iss": ISS, "aud": ["a", "b"]}), key=k["rsa"][0])))

    # ---- refused: algorithm ----
    refused(svc, "alg none, empty signature",
            lambda: issue(hs, b64('{"alg":"none"}') + "." + b64(json.dumps({"sub": "u-x", "exp": now() + 60})) + "."))
    refused(svc, "alg none with a signature",
            lambda: issue(rs, b64('{"alg":"none"}') + "." + b64(json.dumps({"sub": "u-x", "exp": now() + 60})) + ".AAAA"))
    pub_pem = open(k["rsa"][1], "rb").read()
    refused(svc, "alg confusion: HS256 signed with the RS256 public key",
            lambda: issue(rs, hs256({"alg": "HS256", "typ": "JWT"},
                                    {"sub": "u-x", "exp": now() + 60, "iss": ISS, "aud": AUD}, pub_pem)))
    refused(svc, "RS256 token at the ES256 service", lambda: issue(es, rs_tok("u-x")))
    refused(svc, "ES256 token at the RS256 service", lambda: issue(rs, token(svc, "--sub", "u-x", "--iss", ISS,
                                                                              "--aud", AUD, key=k["ec"][0])))
    refused(svc, "HS256 token at the RS256 service",
            lambda: issue(rs, hs256({"alg": "HS256"}, {"sub": "u-x", "exp": now() + 60, "iss": ISS, "aud": AUD})))
    refused(svc, "alg in lower case", lambda: issue(hs, hs256({"alg": "hs256"}, {"sub": "u-x", "exp": now() + 60})))
    refused(svc, "crit header", lambda: issue(hs, hs256({"alg": "HS256", "crit": ["exp"]},
                                                        {"sub": "u-x", "exp": now() + 60})))
    refused(svc, "typ JWE", lambda: issue(hs, hs256({"alg": "HS256", "typ": "JWE"}, {"sub": "u-x", "exp": now() + 60})))
    refused(svc, "header with alg twice",
            lambda: issue(hs, hs256('{"alg":"HS256","alg":"none"}', {"sub": "u-x", "exp": now() + 60})))
    refused(svc, "header not JSON", lambda: issue(hs, hs256("alg=HS256", {"sub": "u-x", "exp": now() + 60})))

    # ---- refused: signature ----
    refused(svc, "RS256 signed by another key", lambda: issue(rs, token(svc, "--sub", "u-x", "--iss", ISS, "--aud", AUD,
                                                                        key=k["rsa2"][0])))
    refused(svc, "HS256 with another secret",
            lambda: issue(hs, hs256({"alg": "HS256"}, {"sub": "u-x", "exp": now() + 60}, SECRET + "x")))
    h, p, s = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    forged["sub"] = "u-admin"
    refused(svc, "claims changed under a valid signature", lambda: issue(rs, h + "." + b64(json.dumps(forged)) + "." + s))
    refused(svc, "signature truncated", lambda: issue(rs, good[:-2]))
    refused(svc, "signature cut by a byte", lambda: issue(rs, h + "." + p + "." + b64(
        base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))[:-1])))
    refused(svc, "signature padded with '='", lambda: issue(rs, good + "=="))
    refused(svc, "a '+' of standard base64 in the signature", lambda: issue(rs, h + "." + p + ".+" + s[1:]))
    refused(svc, "a '/' of standard base64 in the claims", lambda: issue(rs, h + "." + p[:-1] + "/." + s))
    # The last character of 256 bytes carries 2 bits and 4 unused ones:
    # setting an unused bit gives another text of the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(s[-1])
    refused(svc, "non-canonical base64url (unused bits set)",
            lambda: issue(rs, h + "." + p + "." + s[:-1] + alphabet[last | 1]))
    refused(svc, "two parts", lambda: issue(rs, h + "." + p))
    refused(svc, "four parts", lambda: issue(rs, good + ".AAAA"))
    refused(svc, "empty claims part", lambda: issue(rs, h + ".." + s))

    # ---- refused: sub ----
    for what, sub in (("with a space", "u 1"), ("of 65 characters", "u" * 65), ("empty", ""),
                      ("with a slash", "u/1"), ("not a string", 42)):
        refused(svc, "sub %s" % what, lambda sub=sub: issue(hs, hs256({"alg": "HS256"},
                                                                    {"sub": sub, "exp": now() + 60})))
    refused(svc, "no sub", lambda: issue(hs, hs256({"alg": "HS256"}, {"exp": now() + 60})))
    refused(svc, "sub is not the body's user_id",
            lambda: issue(rs, rs_tok("u-me"), {"user_id": "u-someone-else"}), 403, "forbidden")

    # ---- refused: size ----
    refused(svc, "token of 5000 bytes", lambda: issue(hs, hs256({"alg": "HS256"}, {
        "sub": "u-x", "exp": now() + 60, "pad": "x" * 3600})))
    refused(svc, "token of 20000 bytes (past the request head limit: civetweb refuses the head)",
            lambda: issue(hs, "A" * 20000), 400, "invalid_request")

    # ---- user state ----
    accepted(svc, "own user state", lambda: rs.request("GET", "/v1/campaigns/idc/users/u-rs",
                                                       headers={"Authorization": "Bearer " + rs_tok("u-rs")}),
             "u-rs", status=200)
    refused(svc, "another user's state", lambda: rs.request(
        "GET", "/v1/campaigns/idc/users/u-rs", headers={"Authorization": "Bearer " + rs_tok("u-other")}),
        403, "forbidden")
    refused(svc, "user state without a token", lambda: rs.request("GET", "/v1/campaigns/idc/users/u-rs"))

    # ---- tickets: only their owner reads, pays or cancels them ----
    alice, bob = rs_tok("alice"), rs_tok("bob")

    def as_(tok):
        return {"Authorization": "Bearer " + tok}
    refused(svc, "reserve without a token",
            lambda: rs.request("POST", "/v1/ticket-types/idt/reservations", {}))
    refused(svc, "reserve for another user",
            lambda: rs.request("POST", "/v1/ticket-types/idt/reservations", {"user_id": "bob"}, headers=as_(alice)),
            403, "forbidden")
    st, _, t = rs.request("POST", "/v1/ticket-types/idt/reservations", {}, headers=as_(alice))
    check(st == 201 and t["user_id"] == "alice", "alice reserves: %s %s" % (st, t))
    CASES.append("reserve with a token")
    tid = t["ticket_id"]
    refused(svc, "bob reads alice's ticket", lambda: rs.request("GET", "/v1/tickets/" + tid, headers=as_(bob)),
            403, "forbidden")
    refused(svc, "bob pays alice's ticket", lambda: rs.request(
        "POST", "/v1/tickets/%s/payment" % tid, {"payment_key": "pk_bob-1", "amount": PRICE}, headers=as_(bob)),
        403, "forbidden")
    refused(svc, "bob cancels alice's ticket", lambda: rs.request("DELETE", "/v1/tickets/" + tid, headers=as_(bob)),
            403, "forbidden")
    refused(svc, "ticket read without a token", lambda: rs.request("GET", "/v1/tickets/" + tid))
    refused(svc, "payment with an expired token", lambda: rs.request(
        "POST", "/v1/tickets/%s/payment" % tid, {"payment_key": "pk_x-1", "amount": PRICE},
        headers=as_(rs_tok("alice", "--ttl", -3600))))
    st, _, b = rs.request("GET", "/v1/tickets/" + tid, headers=as_(alice))
    check(st == 200 and b["status"] == "PENDING", "alice reads her ticket: %s %s" % (st, b))
    st, _, b = rs.request("POST", "/v1/tickets/%s/payment" % tid, {"payment_key": "pk_alice-1", "amount": PRICE},
                          headers=as_(alice), timeout=30)
    check(st == 200 and b["status"] in ("PAID", "CONFIRMED"), "alice pays: %s %s" % (st, b))
    CASES.append("owner reads and pays")
    st, _, t2 = rs.request("POST", "/v1/ticket-types/idt/reservations", {}, headers=as_(bob))
    check(st == 201, "bob reserves: %s %s" % (st, t2))
    st, _, b = rs.request("DELETE", "/v1/tickets/" + t2["ticket_id"], headers=as_(bob))
    check(st == 200 and b["status"] == "CANCELLED", "bob cancels his own: %s %s" % (st, b))
    CASES.append("owner cancels")
    # Public and admin routes take no user token.
    st, _, _ = rs.request("GET", "/v1/campaigns/idc")
    check(st == 200, "GET campaign with identity on: %s" % st)
    st, _, _ = rs.request("GET", "/v1/ticket-types/idt")
    check(st == 200, "GET ticket type with identity on: %s" % st)

    # ---- a bad key stops the program at start, with one line ----
    start_fails(svc, "RSA key of 1024 bits", {"COUPON_USER_JWT_KEY": k["weak"][1]}, "too weak")
    start_fails(svc, "EC key on P-384", {"COUPON_USER_JWT_KEY": k["p384"][1]}, "P-256")
    start_fails(svc, "key file missing", {"COUPON_USER_JWT_KEY": svc.path("keys", "nope.pub")}, "nope.pub")
    start_fails(svc, "a private key's file is not a public key", {"COUPON_USER_JWT_KEY": os.devnull}, "not a PEM")
    start_fails(svc, "HS256 secret of 16 bytes", {"COUPON_USER_JWT_SECRET": "0123456789abcdef"}, "too weak")
    start_fails(svc, "both key and secret", {"COUPON_USER_JWT_KEY": k["rsa"][1],
                                             "COUPON_USER_JWT_SECRET": SECRET}, "exactly one")
    start_fails(svc, "neither key nor secret", {}, "exactly one")
    start_fails(svc, "COUPON_USER_AUTH=maybe", {"COUPON_USER_AUTH": "maybe"}, "none or jwt")

    # Only the accepted cases issued: the set is exactly their users.
    members = set(svc.redis("SMEMBERS", "coupon:{idc}:users"))
    check(members == {"u-rs", "u-rs2", "u-es", "u-hs", "u-lower", "u-leeway", "u-nbf", "u-aud", "u-typ"},
          "issued users: %s" % sorted(members))
    print("identity cases: %d" % len(CASES), flush=True)
    check(len(CASES) >= 40, "only %d identity cases" % len(CASES))


def raw_two_auth(api, tok):
    """A request with Authorization twice (urllib cannot send that)."""
    import socket
    body = b"{}"
    req = ("POST /v1/campaigns/idc/issue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n" % (tok, tok, len(body))).encode() + body
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    hd = {}
    for line in head.split(b"\r\n")[1:]:
        n, _, v = line.decode().partition(":")
        hd[n.strip().lower()] = v.strip()
    return status, hd, json.loads(rest.decode())


if __name__ == "__main__":
    main(run)
