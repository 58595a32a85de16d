"""A campaign create either completes or changes nothing visible, says
which, and a repeat of the same request always converges.

MySQL is written first, then Redis (from MySQL's row). When Redis fails in
between, the answer is 503 (Redis not written: the campaign is not open,
GET and issue answer 404) or 504 (Redis's answer lost), both saying that a
repeat completes it; a repeat without starts_at matches the start the
first attempt stored. Exactly one of any number of identical creates gets
201; the others 409 campaign_exists saying it exists with these fields.

1. Redis paused (SIGSTOP) for 2 s while 40 creates (no starts_at) go out
   with a 500 ms Redis timeout; then 40 more while Redis is down
   (SIGTERM), and it is started again. Every 503 left the campaign absent
   from the API (GET 404, issue 404). Then each campaign is created again
   with the same body until the answer is 201 or 409 "these fields": at
   most 3 tries each, never 409 "other fields". At the end every campaign
   is whole: one MySQL row, Redis meta with MySQL's fields (starts_at
   included), GET 200, a coupon can be issued.
2. Six rounds of 50 identical creates at once: one 201 per round, 49 ×
   409 with the message "already exists with these fields"; a repeat
   after that says the same; a create with other fields says "other
   fields"."""

import datetime
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, burst, check, main, wait_until  # noqa: E402


def body(cid):
    return {"id": cid, "name": "converge " + cid, "total": 7}


def ms(dt_text):
    if dt_text in (None, "NULL"):
        return None
    d = datetime.datetime.strptime(dt_text[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000 + 0.5)


def whole(svc, api, cid):
    rows = svc.mysql("SELECT total, starts_at, name FROM campaigns WHERE id = '%s'" % cid)
    check(len(rows) == 1, "%s: %d MySQL rows" % (cid, len(rows)))
    meta = svc.redis("HGETALL", "coupon:{%s}:meta" % cid) or []
    meta = dict(zip(meta[::2], meta[1::2]))
    check(meta.get("total") == "7" and meta.get("name") == rows[0][2], "%s: Redis meta %s" % (cid, meta))
    check(int(meta["starts_at"]) == ms(rows[0][1]), "%s: Redis starts_at %s, MySQL %s" % (
        cid, meta["starts_at"], rows[0][1]))
    st, _, b = api.request("GET", "/v1/campaigns/" + cid)
    check(st == 200 and b["total"] == 7, "%s: GET %s %s" % (cid, st, b))
    check(cid in svc.redis("SMEMBERS", "coupon:campaigns"), "%s not registered for the relay" % cid)


def absent(svc, api, cid):
    st, _, b = api.request("GET", "/v1/campaigns/" + cid)
    check(st == 404, "%s answered 503 but GET says %s %s" % (cid, st, b))
    st, _, b = api.issue(cid, "probe")
    check(st == 404, "%s answered 503 but issue says %s %s" % (cid, st, b))


def create_all(api, ids):
    return burst([(lambda cid=cid: api.admin("POST", "/v1/campaigns", body(cid))) for cid in ids])


def run(svc):
    # Few threads, so that the warm-up below reaches all of them.
    api = Api(svc, {"COUPON_REDIS_TIMEOUT_MS": "500", "COUPON_HTTP_THREADS": "40"}).start()
    answers = {}

    # -- 1a: Redis paused under creates ------------------------------------
    # Threads that already hold a Redis connection send the script and
    # lose its answer (504); new ones cannot set up a connection (503).
    for _ in range(5):
        burst([lambda: api.request("GET", "/readyz")] * 40)
    ids_a = ["pause-%d" % i for i in range(40)]
    pid = svc.pids["redis"]
    res = {}

    def go():
        res["r"] = create_all(api, ids_a)

    t = threading.Thread(target=go)
    os.kill(pid, signal.SIGSTOP)
    try:
        t.start()
        time.sleep(2.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    t.join(timeout=60)
    for cid, r in zip(ids_a, res["r"]):
        check(not isinstance(r, Exception), "%s: %s" % (cid, r))
        answers[cid] = r

    # -- 1b: Redis down under creates, then started again -------------------
    ids_b = ["down-%d" % i for i in range(40)]
    svc.signal_service("redis", signal.SIGTERM)
    for cid, r in zip(ids_b, create_all(api, ids_b)):
        check(not isinstance(r, Exception), "%s: %s" % (cid, r))
        answers[cid] = r
        check(r[0] == 503 and "repeat this same request" in r[2]["error"]["message"],
              "%s with Redis down: %s %s" % (cid, r[0], r[2]))
    svc.restart()
    wait_until(lambda: svc.redis("PING") == "PONG", 30, "redis back")

    seen = {}
    for cid, (st, hd, b) in answers.items():
        seen[st] = seen.get(st, 0) + 1
        check(st in (201, 503, 504), "%s: first answer %s %s" % (cid, st, b))
        if st in (503, 504):
            check("retry-after" in hd and "repeat this same request" in b["error"]["message"],
                  "%s: %s does not say how to complete it: %s" % (cid, st, b))
        if st == 503:
            absent(svc, api, cid)
    print("first answers: %s" % sorted(seen.items()), flush=True)
    check(seen.get(201, 0) < len(answers), "no create failed: the faults had no effect")

    for cid, (st, _, _) in answers.items():
        tries = 0
        while st != 201:
            tries += 1
            check(tries <= 3, "%s did not converge in 3 repeats" % cid)
            st, _, b = api.admin("POST", "/v1/campaigns", body(cid))
            if st == 409:
                check("these fields" in b["error"]["message"], "%s repeat: 409 %s" % (cid, b))
                break
            check(st == 201, "%s repeat: %s %s" % (cid, st, b))
        whole(svc, api, cid)
    st, _, b = api.issue(ids_a[0], "u-1")
    check(st == 202, "issue after convergence: %s %s" % (st, b))

    # -- 2: identical creates at once ---------------------------------------
    for rnd in range(6):
        cid = "same-%d" % rnd
        res = burst([lambda cid=cid: api.admin("POST", "/v1/campaigns", body(cid))] * 50)
        sts = [r[0] if not isinstance(r, Exception) else r for r in res]
        check(sts.count(201) == 1 and sts.count(409) == 49, "round %d: %s" % (rnd, sorted(map(str, sts))))
        for r in res:
            if r[0] == 409:
                check(r[2]["error"]["code"] == "campaign_exists" and "these fields" in r[2]["error"]["message"],
                      "round %d: 409 says %s" % (rnd, r[2]))
        whole(svc, api, cid)
    st, _, b = api.admin("POST", "/v1/campaigns", body("same-0"))
    check(st == 409 and "these fields" in b["error"]["message"], "identical repeat: %s %s" % (st, b))
    other = dict(body("same-0"), total=8)
    st, _, b = api.admin("POST", "/v1/campaigns", other)
    check(st == 409 and "other fields" in b["error"]["message"], "different create: %s %s" % (st, b))


if __name__ == "__main__":
    main(run)
