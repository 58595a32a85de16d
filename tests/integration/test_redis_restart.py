"""Redis restarts under a coupon-api that has been serving for a while.

Every request thread that once answered a read keeps its own Redis
connection; after a restart each of those is dead. A connection found
dead must be replaced before a command is sent on it (or, when it dies
between the check and the command, the command sent again on a new one
if it is safe to repeat), so that the first requests after the restart
are answered as if nothing happened.

Three rounds: warm up (bursts of 200 concurrent reads, so that most of
the 300 threads hold a connection), then Redis is stopped (SIGTERM, as
`redis-cli SHUTDOWN` does) and started again on the same port and data,
then at once bursts of 100 concurrent /readyz, 100 GET campaign, 100
GET user, 100 creates (distinct ids, no starts_at) and 100 issue
requests (the pipe's own connection was killed too: those must not be
504). Required in every round: not one 5xx; every create 201 and fully
there afterwards (MySQL row, Redis meta, GET 200, a coupon can be
issued); the issues are 202 and their users are in Redis's set. Last,
Redis stopped and left down: the first issue request is 503 with
Retry-After, not 504: its script was never sent."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, burst, check, main, wait_until  # noqa: E402

ROUNDS, N = 3, 100


def statuses(results):
    out = []
    for r in results:
        out.append(r if isinstance(r, Exception) else r[0])
    return out


def count_5xx(results):
    return sum(1 for s in statuses(results) if isinstance(s, Exception) or s >= 500)


def run(svc):
    api = Api(svc).start()
    api.create_campaign("rr", 10_000_000)
    for i in range(20):
        api.issue("rr", "warm-%d" % i)
    for rnd in range(ROUNDS):
        # Warm up: most threads now hold a Redis connection of their own.
        for _ in range(3):
            res = burst([lambda: api.request("GET", "/v1/campaigns/rr")] * 200)
            check(count_5xx(res) == 0, "round %d warm-up: %s" % (rnd, statuses(res)[:20]))
        svc.signal_service("redis", signal.SIGTERM)
        svc.restart()
        wait_until(lambda: svc.redis("PING") == "PONG", 30, "redis back")

        problems = []
        res = burst([lambda: api.request("GET", "/readyz")] * N)
        if count_5xx(res):
            problems.append("/readyz: %d of %d 5xx, e.g. %s" % (
                count_5xx(res), N, [r for r in res if isinstance(r, Exception) or r[0] >= 500][:2]))
        res = burst([lambda: api.request("GET", "/v1/campaigns/rr")] * N)
        if count_5xx(res):
            problems.append("GET campaign: %d of %d 5xx" % (count_5xx(res), N))
        res = burst([lambda: api.request("GET", "/v1/campaigns/rr/users/warm-1")] * N)
        if count_5xx(res):
            problems.append("GET user: %d of %d 5xx" % (count_5xx(res), N))
        ids = ["r%d-c%d" % (rnd, i) for i in range(N)]
        res = burst([(lambda cid=cid: api.admin("POST", "/v1/campaigns",
                                                {"id": cid, "name": "restart " + cid, "total": 5}))
                     for cid in ids])
        created = [s for s in statuses(res) if s == 201]
        if len(created) != N:
            problems.append("creates: %d of %d 201, others %s" % (
                len(created), N, sorted(set(map(str, statuses(res))) - {"201"})))
        users = ["r%d-u%d" % (rnd, i) for i in range(N)]
        res = burst([(lambda u=u: api.issue("rr", u)) for u in users])
        if any(s != 202 for s in statuses(res)):
            problems.append("issues: %s" % sorted(set(map(str, statuses(res)))))
        check(not problems, "round %d after a Redis restart:\n  %s" % (rnd, "\n  ".join(problems)))

        # Every create is whole: MySQL, Redis, the API, and issuing.
        rows = {r[0] for r in svc.mysql("SELECT id FROM campaigns WHERE id LIKE 'r%d-c%%'" % rnd)}
        check(rows == set(ids), "round %d: MySQL has %d of the %d campaigns" % (rnd, len(rows), N))
        for cid in ids:
            check(svc.redis("HGET", "coupon:{%s}:meta" % cid, "total") == "5", "%s has no Redis meta" % cid)
        st, _, b = api.request("GET", "/v1/campaigns/" + ids[0])
        check(st == 200 and b["total"] == 5, "GET %s: %s %s" % (ids[0], st, b))
        st, _, b = api.issue(ids[-1], "first")
        check(st == 202, "issue on a campaign created after the restart: %s %s" % (st, b))
        members = set(svc.redis("SMEMBERS", "coupon:{rr}:users"))
        check(set(users) <= members, "round %d: %d issued users not in Redis" % (
            rnd, len(set(users) - members)))

    # Redis stopped and not back: the first issue request is refused 503
    # (the pipe's connection is known closed before anything is sent), not
    # 504 "outcome unknown".
    before = (svc.redis("GET", "coupon:{rr}:count"), svc.redis("SCARD", "coupon:{rr}:users"),
              svc.redis("XLEN", "coupon:{rr}:outbox"))
    svc.signal_service("redis", signal.SIGTERM)
    st, hd, b = api.issue("rr", "after-stop")
    check(st == 503 and b["error"]["code"] == "unavailable" and "retry-after" in hd,
          "first issue after Redis stopped: %s %s" % (st, b))
    svc.restart()
    wait_until(lambda: svc.redis("PING") == "PONG", 30, "redis back")
    # Nothing was changed: the script never reached Redis.
    after = (svc.redis("GET", "coupon:{rr}:count"), svc.redis("SCARD", "coupon:{rr}:users"),
             svc.redis("XLEN", "coupon:{rr}:outbox"))
    check(svc.redis("SISMEMBER", "coupon:{rr}:users", "after-stop") == 0 and after[:2] == before[:2],
          "the refused issue changed Redis: %s -> %s" % (before, after))


if __name__ == "__main__":
    main(run)
