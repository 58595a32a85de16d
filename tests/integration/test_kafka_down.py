"""Kafka taken away under load with the dev broker's fault command.

Issuing goes on (every request answered 202/409/410, none 5xx), the outbox
backlog grows and /readyz reports it and Kafka down; with Kafka back the
relay drains the backlog and every user that got a 202 is in Kafka."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, kafka_messages, loadgen, main, wait_until  # noqa: E402

FAST = {
    "COUPON_KAFKA_ACK_TIMEOUT_MS": "300",
    "COUPON_KAFKA_MESSAGE_TIMEOUT_MS": "2000",
    "COUPON_RELAY_AFTER_MS": "3000",
    "COUPON_RELAY_INTERVAL_MS": "500",
}


def run(svc):
    api = Api(svc, FAST).start()
    api.create_campaign("kd", 5000)

    _, up1 = loadgen(api, "kd", svc.path("up1.tsv"), connections=20, requests=300, user_prefix="a-")
    svc.broker("down")
    _, down = loadgen(api, "kd", svc.path("down.tsv"), connections=50, requests=1500, user_prefix="b-",
                      timeout_ms=10000)
    statuses = {r[1] for r in down}
    check(statuses == {202}, "with Kafka down, statuses were %s (expected only 202)" % statuses)
    backlog = svc.redis("XLEN", "coupon:{kd}:outbox")
    check(backlog > 0, "outbox backlog did not grow while Kafka was down")
    _, _, ready = api.request("GET", "/readyz")
    print("readyz while down: %s" % ready, flush=True)
    check(ready["status"] == "ready" and ready["outbox_backlog"] > 0,
          "readyz must stay ready and show the backlog: %s" % ready)
    wait_until(lambda: api.request("GET", "/readyz")[2]["kafka"] == "down", 20, "readyz to report kafka down")

    svc.broker("up")
    _, up2 = loadgen(api, "kd", svc.path("up2.tsv"), connections=20, requests=300, user_prefix="c-")
    wait_until(lambda: svc.redis("XLEN", "coupon:{kd}:outbox") == 0, 90, "the outbox backlog to drain")
    wait_until(lambda: api.request("GET", "/readyz")[2]["outbox_backlog"] == 0, 10, "readyz backlog 0")

    accepted = {r[0] for r in up1 + down + up2 if r[1] == 202}
    check(len(accepted) == 2100, "expected 2100 accepted users, got %d" % len(accepted))
    msgs = [v for _, v in kafka_messages(svc) if isinstance(v, dict) and v.get("campaign_id") == "kd"]
    users = {m["user_id"] for m in msgs}
    check(users == accepted, "kafka users differ: %d missing, %d unexpected" % (
        len(accepted - users), len(users - accepted)))
    print("backlog at peak %d; kafka messages %d for %d users (%d duplicates of unknown-outcome sends)"
          % (backlog, len(msgs), len(users), len(msgs) - len(users)), flush=True)
    check(svc.redis("SCARD", "coupon:{kd}:users") == 2100, "redis set size")
    check(api.stop() == 0, "coupon-api did not exit 0")


if __name__ == "__main__":
    main(run)
