"""couponctl commands that change a campaign, run at the same time.

Two `rebuild` runs 50 ms apart used to stage into one scratch set: the
second emptied it while the first was filling it, the first then made the
user set (and the count) a fraction of the coupons, and the campaign
oversold. Now a command that changes a campaign (rebuild, reconcile
without --dry-run) holds the campaign's operator lease while it works:
any other such command refuses with exit 5 and says who holds it; a
holder that died lets it expire within 15 s; scratch keys are per run.

On a sold-out campaign of 3,000 (the worker persisted all of it, audit
PASS), each of these, started together (50 ms apart):
- two rebuilds; three rebuilds; two reconciles (--grace 2); three
  reconciles; a rebuild and a reconcile; a reconcile and a rebuild, the
  others started 50 ms apart once the first holds the lease: the first
  exits 0, the others exit 5 with "is being changed by couponctl <cmd>";
  afterwards count = SCARD = rows = 3,000. The runs are
  made to overlap: a rebuild waits for the workers' lag (one message
  produced while the worker is stopped, which starts again 1.5 s later),
  a reconcile for its --grace look at a user whose MySQL row was deleted.
  Kafka gets exactly one message more per round (that one message, or
  the winner's re-publication of the deleted user), so nothing was
  re-published twice or needlessly;
- a lease left by a couponctl that died (set by hand, 3 s to live): rebuild
  exits 5 naming it, and succeeds once it expired;
- an audit and a dry-run reconcile beside a rebuild: they do not take the
  lease and do not disturb it (their scratch sets are their own).
Then a load of 2,000 new users and the 3,000 holders again: no 202 (410
and 409 only), count = SCARD = rows = 3,000, audit PASS."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import (Api, Worker, check, ctl, find_program, loadgen, main,  # noqa: E402
                     mysql_count, wait_settled)

TOTAL = 3000
CID = "oc"


def start_ctl(svc, *args):
    return subprocess.Popen([find_program("couponctl"), *args], env={**os.environ, **svc.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_all(svc, commands):
    """Starts the first command, waits until it holds the campaign's lease
    (reconcile asks Kafka for the lag first, and a second command started
    a moment later could otherwise take the lease before it: the outcome
    would depend on who is first, not on the lease), then starts each of
    the others 50 ms after the one before. Returns [(argv, Popen)]."""
    procs = [(commands[0], start_ctl(svc, *commands[0]))]
    deadline = time.monotonic() + 30
    while svc.redis("EXISTS", "coupon:{%s}:ops" % CID) == 0:
        check(procs[0][1].poll() is None, "%s ended before taking the lease" % " ".join(commands[0]))
        check(time.monotonic() < deadline, "%s took no lease in 30 s" % " ".join(commands[0]))
        time.sleep(0.01)
    for argv in commands[1:]:
        time.sleep(0.05)
        procs.append((argv, start_ctl(svc, *argv)))
    return procs


def finish(procs):
    out = []
    for argv, p in procs:
        so, se = p.communicate(timeout=180)
        out.append((argv, p.returncode, so, se))
    return out


def together(svc, *commands):
    """The commands at once (start_all); [(argv, rc, stdout, stderr)]."""
    return finish(start_all(svc, list(commands)))


def redis_counts(svc):
    return int(svc.redis("GET", "coupon:{%s}:count" % CID)), svc.redis("SCARD", "coupon:{%s}:users" % CID)


def check_one_winner(svc, results, kafka_want, what):
    rcs = [r[1] for r in results]
    detail = "\n".join("%s -> %d\n%s%s" % (" ".join(a), rc, so[-600:], se[-600:]) for a, rc, so, se in results)
    check(rcs == [0] + [5] * (len(rcs) - 1), "%s: exit codes %s (the first holds the lease)\n%s" % (
        what, rcs, detail))
    for argv, rc, so, se in results:
        if rc == 5:
            check("is being changed by couponctl" in se or "verdict=busy" in so, "%s: refusal says %r" % (what, se))
    wait_settled(svc, CID)
    count, scard = redis_counts(svc)
    check(count == scard == TOTAL == mysql_count(svc, CID), "%s: count %d, SCARD %d, rows %d, total %d" % (
        what, count, scard, mysql_count(svc, CID), TOTAL))
    check(svc.redis("HGET", "coupon:{%s}:meta" % CID, "paused") is None, "%s: left paused" % what)
    check(svc.redis("EXISTS", "coupon:{%s}:ops" % CID) == 0, "%s: the lease was not given up" % what)
    n = len(svc.kafka_records())
    check(n == kafka_want, "%s: %d messages in Kafka, want %d" % (what, n, kafka_want))
    return n


def run(svc):
    api = Api(svc).start()
    api.create_campaign(CID, TOTAL)
    worker = Worker(svc).start()
    loadgen(api, CID, svc.path("sell.tsv"), connections=32, requests=4000, users=4000, user_prefix="a-", seed=3)
    wait_settled(svc, CID)
    check(mysql_count(svc, CID) == TOTAL, "not sold out in MySQL")
    ctl(svc, "audit", CID, "--users", "4000", "--wait", "5")
    kafka_n = len(svc.kafka_records())
    one = svc.kafka_records()[0]

    rebuild = ["rebuild", CID, "--wait", "30"]
    reconcile = ["reconcile", CID, "--grace", "2"]
    for what, cmds in (("two rebuilds", [rebuild, rebuild]),
                       ("three rebuilds", [rebuild, rebuild, rebuild]),
                       ("two reconciles", [reconcile, reconcile]),
                       ("three reconciles", [reconcile, reconcile, reconcile]),
                       ("rebuild, then reconcile", [rebuild, reconcile]),
                       ("reconcile, then rebuild", [reconcile, rebuild])):
        if cmds[0] is rebuild:
            # The first rebuild holds the campaign while it waits for the
            # workers' lag (one message, stopped worker) to reach 0.
            worker.stop()
            svc.kafka_produce([(one["key"], one["payload"])])
            procs = start_all(svc, cmds)
            time.sleep(1.5)
            worker = Worker(svc).start()
            results = finish(procs)
        else:
            # The first reconcile holds the campaign through its --grace look
            # at a user missing in MySQL (the winner re-publishes it, once).
            svc.mysql("DELETE FROM coupons WHERE campaign_id = '%s' ORDER BY seq LIMIT 1" % CID)
            results = together(svc, *cmds)
        kafka_n = check_one_winner(svc, results, kafka_n + 1, what)

    # A couponctl that died holding the campaign: refused until it expires.
    svc.redis("SET", "coupon:{%s}:ops" % CID, "deadbeef couponctl rebuild on elsewhere pid 1", "PX", 3000)
    rc, _ = ctl(svc, "rebuild", CID, check_rc=5)
    r = subprocess.run([find_program("couponctl"), "rebuild", CID], env={**os.environ, **svc.env},
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 5 and "couponctl rebuild on elsewhere pid 1" in r.stderr and "expires" in r.stderr,
          "refusal for a dead holder: %d %s" % (r.returncode, r.stderr))
    time.sleep(3.2)
    ctl(svc, "rebuild", CID)

    # Read-only commands beside a rebuild: no lease, their own scratch sets.
    res = together(svc, rebuild, ["audit", CID, "--users", "4000", "--wait", "5"],
                   ["reconcile", CID, "--dry-run"])
    check([r[1] for r in res] == [0, 0, 0], "rebuild beside audit and dry run: %s" % [
        (r[1], r[2][-300:], r[3][-300:]) for r in res])
    count, scard = redis_counts(svc)
    check(count == scard == TOTAL, "after audit beside rebuild: count %d SCARD %d" % (count, scard))

    # The load after all that: exact.
    summary, recs = loadgen(api, CID, svc.path("after-new.tsv"), connections=32, requests=2000, users=2000,
                            user_prefix="b-", seed=4)
    statuses = {st for _, st, _, _, _ in recs}
    check(statuses == {410}, "new users after the runs: %s" % statuses)
    summary, recs = loadgen(api, CID, svc.path("after-old.tsv"), connections=32, requests=4000, users=4000,
                            user_prefix="a-", seed=3)
    statuses = {st for _, st, _, _, _ in recs}
    check(statuses <= {409, 410} and 202 not in statuses, "holders again: %s" % statuses)
    count, scard = redis_counts(svc)
    check(count == scard == TOTAL == mysql_count(svc, CID), "end: count %d SCARD %d rows %d" % (
        count, scard, mysql_count(svc, CID)))
    ctl(svc, "audit", CID, "--users", "4000", "--wait", "10")


if __name__ == "__main__":
    main(run)
