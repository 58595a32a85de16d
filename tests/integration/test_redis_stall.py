"""A stalled Redis (SIGSTOP) under the issue pipe: answers stay fast.

64 connections issue to a campaign for 6 s (a new user each) with
COUPON_REDIS_TIMEOUT_MS=500; Redis is stopped for 3 s in the middle. The
batch in flight at the stop cannot be answered (504 after its read and
its second attempt time out). From the first timeout on, the pipe is down:
every queued and every new call is refused 503 at once, unsent, while the
pipe probes Redis every 100 ms; after SIGCONT issuing resumes.

Required:
- statuses only 202, 503 and 504; nothing in flight is left unanswered;
  504 only for requests sent before the pipe went down (started within a
  timeout of the stop);
- requests that start once the pipe is down (the stop + 1.2 s) until
  shortly before SIGCONT: at least 95 % answered 503 within 100 ms, and
  more than ten per connection (without the breaker each waits out a
  timeout: a few per connection, none fast);
- no request waits more than 2.5 s (two timeouts and a queued batch, with
  room for a loaded machine), no 503 more than the timeout + 0.4 s (a
  call queued behind the stalled batch is refused when its read times
  out, not after the batch's second attempt);
- requests that start 1 s after SIGCONT: all 202;
- nothing a 503 answered changed Redis; each 202 user holds a coupon;
  count = users; the outbox drains and Kafka's users = Redis's;
- /metrics: coupon_redis_pipe_refused_total > 0, coupon_redis_pipe_down 0
  at the end; the log says when Redis stopped and started answering."""

import collections
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, kafka_messages, loadgen, main, redis_state, wait_until  # noqa: E402

CONNS, DURATION, TIMEOUT_MS = 64, 6.0, 500
STOP_AT, STOP_FOR = 1.5, 3.0


def run(svc):
    api = Api(svc, {"COUPON_REDIS_TIMEOUT_MS": str(TIMEOUT_MS)}).start()
    api.create_campaign("stall", 10_000_000)
    redis_pid = svc.pids["redis"]
    out = {}

    def load():
        out["res"] = loadgen(api, "stall", svc.path("load.tsv"), connections=CONNS, duration=DURATION,
                             user_prefix="s-", timeout_ms=20000)

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(STOP_AT)
        stopped = time.monotonic()
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            time.sleep(STOP_FOR)
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        resumed = time.monotonic()
    finally:
        t.join()
    summary, recs = out["res"]
    # The records count from loadgen's start signal, which comes after its
    # connections are up: both moments on its clock (CLOCK_MONOTONIC, as
    # time.monotonic()).
    t0 = int(summary["t0_monotonic_ns"]) / 1e9
    stopped -= t0
    resumed -= t0
    check(0.5 < stopped < DURATION - STOP_FOR, "the load started %.2f s before the stop: not under load" % stopped)
    print("loadgen: " + " ".join("%s=%s" % kv for kv in sorted(summary.items())), flush=True)
    print("redis stopped at %.2f s, resumed at %.2f s" % (stopped, resumed))

    by_status = collections.Counter(r[1] for r in recs)
    print("statuses: %s" % dict(by_status))
    check(set(by_status) <= {202, 503, 504}, "unexpected statuses: %s" % dict(by_status))
    lat = lambda r: (r[4] - r[3]) / 1e6  # noqa: E731
    start = lambda r: r[3] / 1e6  # noqa: E731
    worst = max(recs, key=lat)
    print("slowest: %.3f s (status %d, started at %.2f s)" % (lat(worst), worst[1], start(worst)))
    check(lat(worst) < 2.5, "a request waited %.2f s (status %d)" % (lat(worst), worst[1]))
    slow_503 = max((lat(r) for r in recs if r[1] == 503), default=0)
    print("slowest 503: %.3f s" % slow_503)
    check(slow_503 < TIMEOUT_MS / 1000 + 0.4, "a 503 took %.2f s: a call queued behind the stalled batch "
          "waited for its second attempt" % slow_503)

    late_504 = [r for r in recs if r[1] == 504 and start(r) > stopped + TIMEOUT_MS / 1000 + 0.2]
    check(not late_504, "%d requests started after the pipe went down were answered 504 (sent to a stopped "
          "Redis), the first at %.2f s" % (len(late_504), min((start(r) for r in late_504), default=0)))
    down = [r for r in recs if stopped + 1.2 <= start(r) <= resumed - 0.3]
    fast = [r for r in down if r[1] == 503 and lat(r) < 0.1]
    print("while down: %d requests, %d answered 503 within 100 ms" % (len(down), len(fast)))
    check(len(down) > 10 * CONNS, "only %d requests while Redis was stopped: they waited" % len(down))
    check(len(fast) >= 0.95 * len(down), "only %d of %d requests while Redis was stopped were refused fast"
          % (len(fast), len(down)))
    after = [r for r in recs if start(r) >= resumed + 1.0]
    check(after, "no request after Redis resumed")
    check(all(r[1] == 202 for r in after), "after Redis resumed: %s"
          % dict(collections.Counter(r[1] for r in after)))

    st = redis_state(svc, "stall")
    holders = set(st["users"])
    won = {r[0] for r in recs if r[1] == 202}
    refused = {r[0] for r in recs if r[1] == 503}
    check(int(st["count"]) == len(holders), "count %s, %d users" % (st["count"], len(holders)))
    check(won <= holders, "a user with a 202 holds no coupon")
    check(not (refused & holders), "%d users answered 503 hold a coupon" % len(refused & holders))
    wait_until(lambda: svc.redis("XLEN", "coupon:{stall}:outbox") == 0, 90, "the outbox to drain")
    in_kafka = {v["user_id"] for _, v in kafka_messages(svc) if isinstance(v, dict) and v.get("campaign_id") == "stall"}
    check(in_kafka == holders, "kafka's users differ from Redis's: %d missing, %d unexpected"
          % (len(holders - in_kafka), len(in_kafka - holders)))

    _, _, text = api.request("GET", "/metrics")
    m = dict(re.findall(r"^(coupon_redis_pipe_\w+) (\d+)$", text, re.M))
    print("metrics: %s" % m)
    check(int(m["coupon_redis_pipe_refused_total"]) > 0, "no call counted as refused")
    check(m["coupon_redis_pipe_down"] == "0", "the pipe still says Redis is down")
    rc = api.stop()
    check(rc == 0, "coupon-api exited %s on SIGTERM" % rc)
    with open(api.log) as f:
        log = f.read()
    check("calls are refused (503) until Redis answers again" in log, "no log line when it went down")
    check("Redis answers again after" in log, "no log line when it came back")


if __name__ == "__main__":
    main(run)
