"""The issue pipe (COUPON_REDIS_PIPELINE=1, the default) under the faults it
must absorb without a wrong answer, while 200 connections issue:

- its connection killed mid-batch (CLIENT KILL, every 0.3 s): the calls of
  that batch went out without an answer and are asked again on a new
  connection, whose answer is true of both attempts;
- the script cache emptied (SCRIPT FLUSH, in between): the batch gets
  NOSCRIPT, which means the script did not run; it is reloaded and run.

Redis stays up, so no call may end unknown: no 5xx and no unanswered
request; exactly TOTAL 202s with seqs 1..TOTAL, every 409 a repeat of a
202 user, every 410 a user without a coupon; Redis's count and set are the
202 users; the outbox drains. Evidence that the faults hit: each CLIENT KILL
killed a connection, the pipe logged its reconnects, and /metrics shows
batches averaging more than one call."""

import collections
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, loadgen, main, redis_state, wait_until  # noqa: E402

TOTAL, REQUESTS, USERS, CONNS = 15000, 30000, 20000, 200


def run(svc):
    api = Api(svc, {"COUPON_LOG_LEVEL": "debug"}).start()
    api.create_campaign("pipe", TOTAL)
    stop = threading.Event()
    faults = {"kills": 0, "killed": 0, "flushes": 0}

    def chaos():
        time.sleep(0.3)
        while not stop.is_set():
            n = svc.redis("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            faults["kills"] += 1
            faults["killed"] += n
            stop.wait(0.15)
            if stop.is_set():
                break
            svc.redis("SCRIPT", "FLUSH")
            faults["flushes"] += 1
            stop.wait(0.15)

    t = threading.Thread(target=chaos)
    t.start()
    try:
        summary, recs = loadgen(api, "pipe", svc.path("load.tsv"), connections=CONNS,
                                requests=REQUESTS, users=USERS, seed=11, timeout_ms=20000)
    finally:
        stop.set()
        t.join()
    print("loadgen: " + " ".join("%s=%s" % kv for kv in sorted(summary.items())), flush=True)
    print("faults: %s" % faults, flush=True)
    check(faults["kills"] >= 3 and faults["flushes"] >= 3, "the load ended before the faults: %s" % faults)
    check(faults["killed"] >= faults["kills"], "a CLIENT KILL found no connection to kill: %s" % faults)
    check(len(recs) == REQUESTS, "expected %d records, got %d" % (REQUESTS, len(recs)))

    by_status = collections.Counter(r[1] for r in recs)
    check(set(by_status) <= {202, 409, 410}, "unexpected statuses: %s" % dict(by_status))
    winners = [r for r in recs if r[1] == 202]
    check(len(winners) == TOTAL, "202 answers: %d, expected %d" % (len(winners), TOTAL))
    check(sorted(r[2] for r in winners) == list(range(1, TOTAL + 1)), "seqs are not exactly 1..%d" % TOTAL)
    won = collections.Counter(r[0] for r in winners)
    check(max(won.values()) == 1, "a user got two 202s")
    for user, status, _, _, _ in recs:
        if status == 409:
            check(user in won, "user %s got 409 but never a 202" % user)
        if status == 410:
            check(user not in won, "user %s got 410 but holds a coupon" % user)

    st = redis_state(svc, "pipe")
    check(st["count"] == str(TOTAL), "redis count %s" % st["count"])
    check(sorted(won) == st["users"], "redis user set differs from the 202 users")
    wait_until(lambda: svc.redis("XLEN", "coupon:{pipe}:outbox") == 0, 60, "the outbox to drain")

    _, _, text = api.request("GET", "/metrics")
    m = dict(re.findall(r"^(coupon_redis_pipe_\w+) (\d+)$", text, re.M))
    batches, calls = int(m["coupon_redis_pipe_batches_total"]), int(m["coupon_redis_pipe_calls_total"])
    print("pipe: %d calls in %d batches (%.1f per batch)" % (calls, batches, calls / max(batches, 1)))
    check(calls >= REQUESTS, "the pipe carried %d calls for %d requests" % (calls, REQUESTS))
    check(calls > 1.5 * batches, "batches average %.2f calls: no pipelining" % (calls / max(batches, 1)))
    rc = api.stop()
    check(rc == 0, "coupon-api exited %s on SIGTERM" % rc)
    with open(api.log) as f:
        reconnects = sum("redis pipe:" in line for line in f)
    print("pipe reconnects logged: %d" % reconnects)
    check(reconnects >= 1, "the pipe never lost its connection: the kills missed it")


if __name__ == "__main__":
    main(run)
