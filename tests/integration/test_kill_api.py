"""kill -9 of coupon-api under load, then a restart.

Answers are given before Kafka's ack (COUPON_KAFKA_ACK_TIMEOUT_MS=0) and
the broker is slowed down, so at the kill the outbox holds accepted
issuances that Kafka does not have. After the restart the relay delivers
them: every user that got a 202 is in Kafka, Redis's set equals Kafka's
users, and no user is in Redis twice (count = SCARD)."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, kafka_messages, main, wait_until  # noqa: E402
from services import find_program  # noqa: E402

ENV = {
    "COUPON_KAFKA_ACK_TIMEOUT_MS": "0",
    "COUPON_KAFKA_MESSAGE_TIMEOUT_MS": "2000",
    "COUPON_RELAY_AFTER_MS": "3000",
    "COUPON_RELAY_INTERVAL_MS": "500",
}


def read_records(path):
    out = []
    with open(path) as f:
        for line in f:
            user, status, seq, _, _ = line.rstrip("\n").split("\t")
            out.append((user, int(status)))
    return out


def run(svc):
    api = Api(svc, ENV).start()
    api.create_campaign("k9", 100000)
    svc.broker("rtt", "400")
    out = svc.path("load.tsv")
    lg = subprocess.Popen([find_program("cpn-loadgen"), "--addr", api.addr, "--campaign", "k9",
                           "--connections", "40", "--duration", "4", "--user-prefix", "k-",
                           "--timeout-ms", "1000", "--out", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: int(svc.redis("GET", "coupon:{k9}:count") or 0) > 500, 20, "load to get going",
               interval=0.05)
    api.kill9()
    left = svc.redis("XLEN", "coupon:{k9}:outbox")
    count_at_kill = int(svc.redis("GET", "coupon:{k9}:count"))
    try:
        lg.communicate(timeout=60)
    except Exception:
        lg.kill()
        raise
    check(lg.returncode == 0, "loadgen failed")
    print("killed coupon-api with %d accepted, %d not yet in Kafka" % (count_at_kill, left), flush=True)
    check(left > 0, "nothing was left in the outbox at the kill: the test proves nothing")

    svc.broker("rtt", "0")
    api2 = Api(svc, ENV, name="api2").start()
    wait_until(lambda: svc.redis("XLEN", "coupon:{k9}:outbox") == 0, 60, "the relay to drain the outbox")

    recs = read_records(out)
    got202 = {u for u, s in recs if s == 202}
    check(len(got202) > 0, "no 202 at all")
    redis_users = set(svc.redis("SMEMBERS", "coupon:{k9}:users"))
    count = int(svc.redis("GET", "coupon:{k9}:count"))
    check(count == len(redis_users), "count %d != SCARD %d" % (count, len(redis_users)))
    check(got202 <= redis_users, "a 202 user is missing in Redis")
    msgs = [v for _, v in kafka_messages(svc) if isinstance(v, dict) and v.get("campaign_id") == "k9"]
    kusers = {m["user_id"] for m in msgs}
    check(got202 <= kusers, "%d users that got 202 are not in Kafka" % len(got202 - kusers))
    check(kusers == redis_users, "Kafka and Redis disagree: %d only in Redis, %d only in Kafka" % (
        len(redis_users - kusers), len(kusers - redis_users)))
    indeterminate = sum(1 for _, s in recs if s == 0)
    print("202: %d, indeterminate at the kill: %d, redis: %d, kafka messages: %d (users %d)" % (
        len(got202), indeterminate, len(redis_users), len(msgs), len(kusers)), flush=True)
    check(api2.stop() == 0, "restarted coupon-api did not exit 0")


if __name__ == "__main__":
    main(run)
