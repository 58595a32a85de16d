"""Messages written straight into the topic, past coupon-api:

- the same message produced three times -> one row, persisted = 1;
- poison messages (bad JSON, unknown campaign, wrong types, missing or
  extra-bad fields, empty value) -> one failed_events row each, with the
  topic/partition/offset they came from, while the valid messages behind
  them on the same partition are persisted;
- more valid messages than the campaign's total -> the cap holds in MySQL
  and the excess is a failed event ("over the cap");
- a redelivery (a second consumer group reads everything again) changes
  nothing;
- the operator creates the unknown campaign and `couponctl failed retry ID`
  persists that message; `failed retry --all` leaves the rest failing with
  attempts counted; after the last allowed attempt a row is dead."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import (Api, Worker, check, ctl, failed_events, main, mysql_coupons,  # noqa: E402
                     mysql_persisted, wait_until, kafka_lag)

AT = "2026-11-21T10:00:00.250Z"


def msg(cid, user, seq):
    return {"campaign_id": cid, "user_id": user, "seq": seq, "issued_at": AT}


def run(svc):
    api = Api(svc).start()
    api.create_campaign("m1", 100)
    api.create_campaign("cap", 2)
    # every worker of a deployment shares one retry policy
    policy = {"COUPON_RETRY_MAX_ATTEMPTS": "3", "COUPON_RETRY_BASE_MS": "200", "COUPON_RETRY_MAX_MS": "400"}
    w = Worker(svc, policy).start()

    # 1. the same message three times (all on one partition: same key)
    svc.kafka_produce([("u-dup", msg("m1", "u-dup", 1))] * 3)

    # 2. poison and valid interleaved, all with one key -> one partition
    key = "one-partition"
    poison = [
        "{not json",
        '{"campaign_id":"m1","user_id":"u-p1","seq":2',                     # truncated
        msg("nope", "u-p2", 3),                                             # unknown campaign
        {"campaign_id": "m1", "user_id": "u-p3", "seq": "4", "issued_at": AT},   # seq a string
        {"campaign_id": "m1", "user_id": 5, "seq": 5, "issued_at": AT},          # user a number
        {"campaign_id": "m1", "user_id": "u-p4", "seq": 6.5, "issued_at": AT},   # fractional
        {"campaign_id": "m1", "user_id": "u-p5", "seq": 7},                      # no issued_at
        {"campaign_id": "m1", "user_id": "bad user", "seq": 8, "issued_at": AT}, # bad id
        '{"campaign_id":"m1","campaign_id":"m1","user_id":"u-p6","seq":9,"issued_at":"%s"}' % AT,
        "[]",
    ]
    valid = [msg("m1", "u-v%d" % i, 10 + i) for i in range(20)]
    records = []
    for i, p in enumerate(poison):
        records.append((key, p))
        records.append((key, valid[i]))
    records += [(key, v) for v in valid[len(poison):]]
    svc.kafka_produce(records)

    # 3. over the cap: three users for a campaign of 2
    svc.kafka_produce([(u, msg("cap", u, i + 1)) for i, u in enumerate(["c-a", "c-b", "c-c"])])

    wait_until(lambda: kafka_lag(svc) == 0 and len(mysql_coupons(svc, "m1")) >= 21, 60,
               "the worker to take everything")
    rows = mysql_coupons(svc, "m1")
    check(set(rows) == {"u-dup"} | {v["user_id"] for v in valid},
          "m1 rows: %s" % sorted(rows))
    check(mysql_persisted(svc, "m1") == 21, "persisted of m1 = %d, expected 21" % mysql_persisted(svc, "m1"))

    fe = failed_events(svc, "scope_id IS NULL OR scope_id <> 'cap'")
    check(len(fe) == len(poison), "expected %d failed events, got %d: %s" % (
        len(poison), len(fe), [(f["error"], f["payload"]) for f in fe]))
    parts = {f["kafka_partition"] for f in fe}
    recs = [r for r in svc.kafka_records() if r["key"] == key]
    check(len({r["partition"] for r in recs}) == 1 and parts == {str(recs[0]["partition"])},
          "poison and valid messages were not on one partition")
    offsets = {int(f["kafka_offset"]) for f in fe}
    poison_offsets = {r["offset"] for r in recs if r["payload"] not in
                      [__import__("json").dumps(v, separators=(",", ":")) for v in valid]}
    check(offsets == poison_offsets, "failed_events offsets %s != poison offsets %s" % (
        sorted(offsets), sorted(poison_offsets)))
    check(all(f["status"] == "open" and f["error"] for f in fe), "a failed event is not open with an error")
    unknown = [f for f in fe if f["scope_id"] == "nope"]
    check(len(unknown) == 1 and "unknown campaign" in unknown[0]["error"], "unknown campaign row: %s" % unknown)

    cap_rows = mysql_coupons(svc, "cap")
    check(len(cap_rows) == 2 and mysql_persisted(svc, "cap") == 2, "cap campaign: %s" % cap_rows)
    capf = failed_events(svc, "scope_id = 'cap'")
    check(len(capf) == 1 and "over the cap" in capf[0]["error"], "over-cap failed event: %s" % capf)

    # redelivery: a second group reads the whole topic again
    w2 = Worker(svc, {**policy, "COUPON_WORKER_GROUP": "second-group"}, name="worker-second").start()
    wait_until(lambda: kafka_lag_group(svc, "second-group") == 0, 60, "the second group to read everything")
    check(w2.stop() == 0, "second worker did not exit 0")
    check(set(mysql_coupons(svc, "m1")) == set(rows) and mysql_persisted(svc, "m1") == 21,
          "a redelivery changed m1")
    check(len(failed_events(svc)) == len(poison) + 1, "a redelivery added failed events")

    # the operator fixes the cause and retries one
    api.create_campaign("nope", 5)
    ctl(svc, "failed", "retry", unknown[0]["id"])
    check(mysql_coupons(svc, "nope") == {"u-p2": 3}, "retry did not persist the message")
    row = failed_events(svc, "id = %s" % unknown[0]["id"])[0]
    check(row["status"] == "resolved", "retried row is %s" % row["status"])
    rc, _ = ctl(svc, "failed", "retry", unknown[0]["id"], check_rc=1)

    # the rest keep failing; the worker retries them to death (3 attempts)
    wait_until(lambda: all(f["status"] == "dead" for f in failed_events(svc, "status <> 'resolved'")),
               60, "the worker to retry the poison to death")
    for f in failed_events(svc, "status = 'dead'"):
        check(int(f["attempts"]) == 3, "dead after %s attempts" % f["attempts"])
    _, out = ctl(svc, "failed", "list", "--status", "dead")
    check(len(out.strip().splitlines()) == 1 + len(poison) - 1 + 1, "failed list:\n" + out)
    # an operator's retry that fails again leaves a dead row dead
    _, out = ctl(svc, "failed", "retry", "--all")
    check("resolved=0" in out and "dead=%d" % (len(poison)) in out, "retry --all: " + out)
    check(all(f["status"] == "dead" and int(f["attempts"]) == 4 for f in failed_events(svc, "status <> 'resolved'")),
          "retry --all changed a dead row's status or did not count the attempt")
    check(w.stop() == 0, "worker did not exit 0")
    # bad usage is refused with 2
    ctl(svc, "failed", "retry", "abc", check_rc=2)
    _, out = ctl(svc, "failed", "list", "--status", "nonsense", check_rc=2)
    check(out == "", "a refused failed list printed %r" % out)


def kafka_lag_group(svc, group):
    _, out = ctl(svc, "--worker-group", group, "lag")
    return int(out.split("lag=")[1].split()[0])


if __name__ == "__main__":
    main(run)
