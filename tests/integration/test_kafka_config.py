"""librdkafka properties with secrets in them.

COUPON_KAFKA_CONFIG was split on every comma: a SASL password with a comma
in it could not be set, and the error quoted the password's tail. Now "\\,"
is a comma and "\\\\" a backslash in a value, COUPON_KAFKA_CONFIG_FILE takes
one k=v per line (no escaping needed), and no message ever shows a value
that may be a secret.

- couponctl lag with sasl.password=to\\,p-SECRET-1 (plaintext: the password
  is set and unused) works, and nothing it prints holds the secret;
- an unknown property beside a secret: exit 2 naming the property, not the
  secret; an item without '=' is named by its position;
- a bad value of a property that is no secret: librdkafka's reason;
- coupon-api and coupon-worker with COUPON_KAFKA_CONFIG_FILE (a password
  with a comma and an '=') and COUPON_KAFKA_CONFIG together: they start,
  a coupon is issued and persisted, and neither log holds the secret."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, check, find_program, main, mysql_coupons, wait_until  # noqa: E402


def ctl_env(svc, **extra):
    r = subprocess.run([find_program("couponctl"), "lag"], env={**os.environ, **svc.env, **extra},
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def run(svc):
    rc, out = ctl_env(svc, COUPON_KAFKA_CONFIG="sasl.password=to\\,p-SECRET-1,client.rack=r1")
    check(rc == 0 and "lag=" in out, "lag with an escaped comma: %d %s" % (rc, out))
    check("SECRET" not in out, "the secret was printed: %s" % out)

    rc, out = ctl_env(svc, COUPON_KAFKA_CONFIG="sasl.password=p-SECRET-2,bogus.property=1")
    check(rc == 2 and "bogus.property" in out and "SECRET" not in out, "unknown property: %d %s" % (rc, out))
    rc, out = ctl_env(svc, COUPON_KAFKA_CONFIG="sasl.password=p-SECRET-3,with-no-equals-SECRET")
    check(rc == 2 and "item 2" in out and "SECRET" not in out, "item without '=': %d %s" % (rc, out))
    rc, out = ctl_env(svc, COUPON_KAFKA_CONFIG="acks=banana")
    check(rc == 2 and "Invalid value" in out and "acks" in out, "bad value of acks: %d %s" % (rc, out))

    path = svc.path("kafka.properties")
    with open(path, "w") as f:
        f.write("# secrets of the deployment\nsasl.password=a,b=c-SECRET-4\n\nclient.rack=r2\n")
    env = {"COUPON_KAFKA_CONFIG_FILE": path, "COUPON_KAFKA_CONFIG": "linger.ms=2"}
    api = Api(svc, env).start()
    api.create_campaign("kc", 10)
    w = Worker(svc, env)
    w.env["COUPON_KAFKA_CONFIG"] = w.env["COUPON_KAFKA_CONFIG"] + ",linger.ms=2"
    w.start()
    st, _, b = api.issue("kc", "u-1")
    check(st == 202, "issue: %s %s" % (st, b))
    wait_until(lambda: "u-1" in mysql_coupons(svc, "kc"), 60, "the coupon in MySQL")
    for name, log in (("coupon-api", api.log), ("coupon-worker", w.log)):
        with open(log, errors="replace") as f:
            check("SECRET" not in f.read(), "%s logged the secret" % name)
    rc, out = ctl_env(svc, COUPON_KAFKA_CONFIG_FILE=svc.path("missing.properties"))
    check(rc == 2 and "cannot open" in out, "missing file: %d %s" % (rc, out))


if __name__ == "__main__":
    main(run)
