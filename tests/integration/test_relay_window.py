"""The outbox relay never stalls on entries it cannot (or used to not) send.

couponctl reconcile re-publishes a user with seq 0 when no free place is
left; the relay used to skip such entries, yet they filled its window of
500 (XRANGE ... COUNT 500), so 500 of them at the head of an outbox
stopped that campaign's relay for good. Here an outbox holds, oldest
first: 5 malformed entries (no user_id: written by hand), 600 entries with
seq 0, then one ordinary entry. With a 1.5 s relay age the relay must
deliver all 601 sendable ones (the worker persists them: 600 rows with
seq 0, one with its seq), leave the 5 malformed ones in place, and say so
in its log; the outbox then holds exactly those 5."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, check, main, mysql_coupons, wait_until  # noqa: E402


def run(svc):
    api = Api(svc, {"COUPON_KAFKA_MESSAGE_TIMEOUT_MS": "1000", "COUPON_RELAY_AFTER_MS": "1500",
                    "COUPON_RELAY_INTERVAL_MS": "200"}).start()
    api.create_campaign("rw", 1000)
    Worker(svc).start()
    key = "coupon:{rw}:outbox"
    now = str(int(time.time() * 1000))
    for i in range(5):
        svc.redis("XADD", key, "*", "junk", str(i))
    users = ["z-%d" % i for i in range(600)]
    for u in users:
        svc.redis("XADD", key, "*", "user_id", u, "seq", "0", "issued_at", now)
    svc.redis("XADD", key, "*", "user_id", "behind", "seq", "601", "issued_at", now)
    svc.redis("SADD", "coupon:{rw}:users", *users, "behind")
    svc.redis("SET", "coupon:{rw}:count", "601")

    wait_until(lambda: len(mysql_coupons(svc, "rw")) == 601, 60, "the 601 sendable entries to reach MySQL")
    rows = mysql_coupons(svc, "rw")
    check(rows["behind"] == 601 and all(rows[u] == 0 for u in users), "seqs in MySQL are not as sent")
    wait_until(lambda: svc.redis("XLEN", key) == 5, 30, "the outbox to hold only the malformed entries")
    left = svc.redis("XRANGE", key, "-", "+")
    check(all(e[1][0] == "junk" for e in left), "left in the outbox: %s" % left)
    with open(api.log, errors="replace") as f:
        log = f.read()
    check("5 outbox entries without a user or seq cannot be sent" in log,
          "the relay did not say why entries stay")


if __name__ == "__main__":
    main(run)
