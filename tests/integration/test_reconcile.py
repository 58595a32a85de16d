"""couponctl reconcile and rebuild against real damage.

1. Injected differences on a campaign in the middle of its life (a row
   deleted in MySQL, a user added to Redis's set by hand): reconcile
   --dry-run reports them and exits 4 changing nothing; reconcile repairs
   what it says (persisted corrected, count raised to the set, the users
   missing downstream re-published and persisted by the worker), and a
   second reconcile says ok.
2. rebuild refuses to restore while the workers have a lag (it leaves the
   campaign paused: issuing answers 503 with Retry-After and changes
   nothing), then, with the worker back, restores count and set after
   FLUSHALL; a further load on the campaign stays exact: the total is
   never exceeded and every user that got a coupon before gets 409."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import (Api, Worker, check, ctl, loadgen, main,  # noqa: E402
                     mysql_coupons, mysql_count, mysql_persisted, redis_state, wait_settled, wait_until)

TOTAL = 3000


def run(svc):
    api = Api(svc).start()
    api.create_campaign("rc", TOTAL)
    w = Worker(svc).start()
    _, first = loadgen(api, "rc", svc.path("load1.tsv"), connections=32, requests=1200, users=1000,
                       user_prefix="a-", seed=1)
    wait_settled(svc, "rc")
    _, out = ctl(svc, "reconcile")
    check("verdict=ok" in out and "differing=0" in out, "clean state not ok:\n" + out)

    # -- 1. injected differences ------------------------------------------
    victims = [r[0] for r in svc.mysql("SELECT user_id FROM coupons WHERE campaign_id = 'rc' ORDER BY seq LIMIT 2")]
    svc.mysql("DELETE FROM coupons WHERE campaign_id = 'rc' AND user_id IN ('%s')" % "','".join(victims))
    svc.redis("SADD", "coupon:{rc}:users", "intruder-1")
    before = redis_state(svc, "rc")
    rc, out = ctl(svc, "reconcile", "rc", "--dry-run", check_rc=4)
    line = out.split("campaign=rc")[1].split("\n")[0]
    check("only_in_redis=3" in line and "verdict=differs" in line and "count=1000 scard=1001" in line
          and "mysql_rows=998 persisted=1000" in line, "dry run report:\n" + out)
    check(redis_state(svc, "rc") == before and mysql_count(svc, "rc") == 998, "--dry-run changed something")
    _, out = ctl(svc, "audit", "rc", "--wait", "1", check_rc=4)
    check("FAIL every issued user in MySQL" in out and "FAIL Redis = MySQL" in out
          and "FAIL no user twice" in out, "audit missed the damage:\n" + out)

    rc, out = ctl(svc, "reconcile", "rc", "--grace", "1")
    line = out.split("campaign=rc")[1].split("\n")[0]
    check("verdict=repaired" in line and "fixed_persisted=1000->998" in line and "raised_count=1000->1001" in line
          and "republished=3 delivered=3" in line, "repair report:\n" + out)
    wait_until(lambda: mysql_count(svc, "rc") == 1001, 60, "the re-published users to be persisted")
    rows = mysql_coupons(svc, "rc")
    check(set(victims) | {"intruder-1"} <= set(rows), "re-published users missing in MySQL")
    check(mysql_persisted(svc, "rc") == 1001, "persisted %d != 1001" % mysql_persisted(svc, "rc"))
    seqs = sorted(v for v in rows.values() if v > 0)
    check(len(seqs) == len(set(seqs)) and max(seqs) <= 1001, "re-published seqs collide: %s" % seqs[-5:])
    rc, out = ctl(svc, "reconcile", "rc")
    check("verdict=ok" in out and "count=1001 scard=1001 mysql_rows=1001 persisted=1001" in out,
          "not ok after the repair:\n" + out)

    # -- 2. rebuild after FLUSHALL -----------------------------------------
    check(w.stop() == 0, "worker did not stop cleanly")
    _, extra = loadgen(api, "rc", svc.path("load2.tsv"), connections=8, requests=50, user_prefix="b-")
    check(sum(1 for r in extra if r[1] == 202) == 50, "50 more issues expected")
    wait_until(lambda: svc.redis("XLEN", "coupon:{rc}:outbox") == 0, 30, "the outbox to drain into Kafka")
    # Redis loses everything while 50 accepted messages wait in Kafka
    svc.redis("FLUSHALL")
    st, _, _ = api.issue("rc", "z-1")
    check(st == 404, "after FLUSHALL issuing should say campaign_not_found, got %d" % st)
    rc, out = ctl(svc, "reconcile", check_rc=4)
    check("reason=not_in_redis" in out, "reconcile did not notice the lost campaign:\n" + out)

    rc, out = ctl(svc, "rebuild", "rc", "--wait", "2", check_rc=1)
    st, hdrs, body = api.issue("rc", "z-1")
    check(st == 503 and hdrs.get("retry-after", "").isdigit(), "while paused, issuing should answer 503: %s %s" % (st, body))
    check(svc.redis("GET", "coupon:{rc}:count") is None and not svc.redis("SMEMBERS", "coupon:{rc}:users"),
          "a refused issue changed Redis")

    w = Worker(svc, name="worker2").start()
    _, out = ctl(svc, "rebuild", "rc", "--wait", "60")
    check("count 0 -> 1051" in out and "resumed" in out, "rebuild report:\n" + out)
    check(int(svc.redis("GET", "coupon:{rc}:count")) == 1051 and svc.redis("SCARD", "coupon:{rc}:users") == 1051,
          "count/set not restored")
    check(set(svc.redis("SMEMBERS", "coupon:{rc}:users")) == set(mysql_coupons(svc, "rc")),
          "restored set != MySQL's users")
    for user in [r[0] for r in first if r[1] == 202][:20]:
        st, _, _ = api.issue("rc", user)
        check(st == 409, "user %s who had a coupon got %d after the rebuild" % (user, st))

    # a further burst stays exact: 3000 - 1051 = 1949 more, not one over
    _, third = loadgen(api, "rc", svc.path("load3.tsv"), connections=64, requests=4000, users=3000,
                       user_prefix="c-", seed=3)
    n202 = sum(1 for r in third if r[1] == 202)
    check(n202 == TOTAL - 1051, "after the rebuild %d were issued, expected %d" % (n202, TOTAL - 1051))
    wait_settled(svc, "rc")
    check(mysql_count(svc, "rc") == TOTAL and mysql_persisted(svc, "rc") == TOTAL, "MySQL not at the total")
    got = {r[0] for r in first + extra + third if r[1] == 202}
    check(got | {"intruder-1"} == set(mysql_coupons(svc, "rc")) == set(svc.redis("SMEMBERS", "coupon:{rc}:users")),
          "the users told 202 over the campaign's life are not exactly MySQL's and Redis's")
    rc, out = ctl(svc, "reconcile", "rc")
    check("verdict=ok" in out and "count=%d scard=%d mysql_rows=%d" % (TOTAL, TOTAL, TOTAL) in out,
          "final reconcile:\n" + out)
    check(w.stop() == 0, "worker did not exit 0")


if __name__ == "__main__":
    main(run)
