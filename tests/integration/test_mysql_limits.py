"""coupon-api's MySQL: a small bounded pool, and a stall that does not hold
up reads or the health check.

1. Connections: 200 concurrent /readyz, then 200 concurrent GET campaign
   and GET user (each a thread of its own on coupon-api): coupon-api never
   holds more than COUPON_MYSQL_POOL + 4 connections (the pool, its
   watcher, the reaper, the relay and the dashboard's monitor, each one
   connection of its own; counted in MariaDB's process list), creates still answer 201
   and couponctl reconcile and audit work (no "Too many connections").
2. MariaDB paused (SIGSTOP) for 12 s with the default 2 s MySQL timeout:
   - /readyz: every probe 200 within 0.5 s ("mysql" turns "down"), as
     long as Redis answers: a load balancer keeps the instance;
   - GET campaign: every one 200, none slower than the timeout + 0.7 s
     (the pool's connections in use when MySQL stopped wait it out), and
     from 4 s into the stall (the watcher has noticed) every one within
     0.5 s with "persisted": null; GET user answers likewise;
   - issuing goes on (202);
   - a create once the stall was noticed: 503 within 0.5 s, nothing
     written anywhere;
   - after SIGCONT: within 4 s /readyz says "mysql": "up" and GET shows
     "persisted" again."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, burst, check, ctl, main, timed, wait_until  # noqa: E402

POOL, STALL = 4, 12.0


def api_connections(svc):
    rows = svc.mysql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'coupon'"
                     " AND ID <> CONNECTION_ID()")
    return int(rows[0][0])


def run(svc):
    base = api_connections(svc)
    api = Api(svc).start()
    api.create_campaign("lim", 1000)
    st, _, _ = api.issue("lim", "u-0")
    check(st == 202, "issue: %s" % st)

    # -- 1: bounded connections --------------------------------------------
    peak = 0
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, api_connections(svc) - base)
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    try:
        for path in ("/readyz", "/v1/campaigns/lim", "/v1/campaigns/lim/users/u-0"):
            res = burst([lambda path=path: api.request("GET", path)] * 200)
            bad = [r for r in res if isinstance(r, Exception) or r[0] != 200]
            check(not bad, "%s: %d of 200 not 200, e.g. %s" % (path, len(bad), bad[:2]))
    finally:
        stop.set()
        w.join()
    peak = max(peak, api_connections(svc) - base)
    # The pool, its watcher, and the ticket reaper's and outbox relay's own.
    print("coupon-api MySQL connections: peak %d (pool %d + watcher + reaper + relay + dashboard monitor)"
          % (peak, POOL), flush=True)
    check(peak <= POOL + 4, "coupon-api held %d MySQL connections, more than the pool %d + 4" % (peak, POOL))
    api.create_campaign("lim-2", 10)
    ctl(svc, "reconcile", "lim", "--grace", "0")
    ctl(svc, "audit", "lim", "--wait", "1", check_rc=None)

    # -- 2: MariaDB stalled -------------------------------------------------
    samples = []  # (t since stop, kind, seconds, status, body)
    pid = svc.pids["mysql"]
    t_stop = None
    done = threading.Event()

    def sampler(kind, fn):
        while not done.is_set():
            dt, (st, _, b) = timed(fn)()
            samples.append((time.monotonic() - t_stop, kind, dt, st, b))
            time.sleep(0.1)

    os.kill(pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    try:
        threads = [threading.Thread(target=sampler, args=a) for a in (
            ("readyz", lambda: api.request("GET", "/readyz")),
            ("campaign", lambda: api.request("GET", "/v1/campaigns/lim")),
            ("campaign", lambda: api.request("GET", "/v1/campaigns/lim")),
            ("user", lambda: api.request("GET", "/v1/campaigns/lim/users/u-0")),
        )]
        for t in threads:
            t.start()
        time.sleep(5.0)
        dt, (st_c, _, b_c) = timed(lambda: api.admin("POST", "/v1/campaigns",
                                                     {"id": "stalled", "name": "x", "total": 3}))()
        check(st_c == 503 and dt < 0.5, "create during the stall: %s in %.2fs %s" % (st_c, dt, b_c))
        for i in range(20):
            st, _, b = api.issue("lim", "stall-%d" % i)
            check(st == 202, "issue during the stall: %s %s" % (st, b))
        time.sleep(max(0.0, STALL - (time.monotonic() - t_stop)))
        done.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        os.kill(pid, signal.SIGCONT)
    t_cont = time.monotonic()
    during = [s for s in samples if s[0] < STALL - 0.5]
    check(len(during) > 50, "only %d samples during the stall" % len(during))
    for t, kind, dt, st, b in during:
        check(st == 200, "%s at %.1fs of the stall: %s %s" % (kind, t, st, b))
        if kind == "readyz":
            check(dt < 0.5, "/readyz took %.2fs at %.1fs of the stall" % (dt, t))
        else:
            check(dt < 2.7, "%s took %.2fs at %.1fs of the stall" % (kind, dt, t))
            if t > 4.0:
                check(dt < 0.5, "%s took %.2fs at %.1fs of the stall (the pool should refuse at once)" % (
                    kind, dt, t))
                if kind == "campaign":
                    check(b["persisted"] is None, "persisted during the stall: %s" % b)
    late = [s for s in during if s[1] == "readyz" and s[0] > 4.0]
    check(late and all(s[4]["mysql"] == "down" for s in late), "readyz did not say mysql down: %s" % late[-1:])
    slowest = max(s[2] for s in during if s[1] != "readyz")
    print("stall: %d samples, slowest read %.2fs, slowest after 4 s %.3fs" % (
        len(during), slowest, max([s[2] for s in during if s[0] > 4.0] or [0])), flush=True)

    wait_until(lambda: api.request("GET", "/readyz")[2]["mysql"] == "up", 10, "readyz to say mysql up")
    check(time.monotonic() - t_cont < 4.0, "mysql up only %.1fs after SIGCONT" % (time.monotonic() - t_cont))
    st, _, b = api.request("GET", "/v1/campaigns/lim")
    check(st == 200 and b["persisted"] is not None, "after the stall: %s %s" % (st, b))
    check(svc.mysql("SELECT COUNT(*) FROM campaigns WHERE id = 'stalled'")[0][0] == "0",
          "the refused create was written to MySQL")
    check(api.request("GET", "/v1/campaigns/stalled")[0] == 404, "the refused create is in Redis")


if __name__ == "__main__":
    main(run)
