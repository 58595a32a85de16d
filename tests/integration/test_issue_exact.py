"""Exactness under concurrency (docs/design.md, invariants 1, 2, 6).

A campaign of 1,000; 20,000 requests from 12,000 distinct users (8,000
repeats, shuffled so they race their first request) over 200 concurrent
keep-alive connections. Exactly 1,000 answers are 202 with each seq in
1..1000 once; every 409 is a repeat of a user who got a 202; everything
else is 410; no 5xx and no unanswered request; Redis count = SCARD = 1,000
and the set is exactly the 202 users; the outbox drains; a Kafka consumer
reads exactly the 1,000 accepted users, each once, with their seq.
Every issue goes through the pipe (one pipelined Redis connection for all
request threads): its metrics must show these calls."""

import collections
import os
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, kafka_messages, loadgen, main, redis_state, wait_until  # noqa: E402

TOTAL, REQUESTS, USERS, CONNS = 1000, 20000, 12000, 200


def run(svc):
    scenario(svc, "exact")


def scenario(svc, cid):
    api = Api(svc).start()
    api.create_campaign(cid, TOTAL)
    summary, recs = loadgen(api, cid, svc.path(cid + ".tsv"), connections=CONNS,
                            requests=REQUESTS, users=USERS, seed=7, timeout_ms=10000)
    print("loadgen: " + " ".join("%s=%s" % kv for kv in sorted(summary.items())), flush=True)
    check(len(recs) == REQUESTS, "expected %d records, got %d" % (REQUESTS, len(recs)))
    check(int(summary.get("starved_connections", 1)) == 0, "a connection was starved")
    check(len({r[0] for r in recs}) == USERS, "loadgen did not use %d distinct users" % USERS)

    by_status = collections.Counter(r[1] for r in recs)
    check(set(by_status) <= {202, 409, 410}, "unexpected statuses: %s" % dict(by_status))
    winners = [r for r in recs if r[1] == 202]
    check(len(winners) == TOTAL, "202 answers: %d, expected %d" % (len(winners), TOTAL))
    seqs = sorted(r[2] for r in winners)
    check(seqs == list(range(1, TOTAL + 1)), "seqs of the 202 answers are not exactly 1..%d" % TOTAL)
    won = collections.Counter(r[0] for r in winners)
    check(max(won.values()) == 1, "a user got two 202s")
    for user, status, _, _, _ in recs:
        if status == 409:
            check(user in won, "user %s got 409 but never a 202" % user)
        if status == 410:
            check(user not in won, "user %s got 410 but holds a coupon" % user)
    # Every request after the last 202 of a user is a 409 for that user.
    first_202 = {r[0]: r[4] for r in winners}
    for user, status, _, start, _ in recs:
        if user in first_202 and start > first_202[user]:
            check(status == 409, "user %s asked again after its 202 and got %d" % (user, status))

    st = redis_state(svc, cid)
    check(st["count"] == str(TOTAL), "redis count %s" % st["count"])
    check(sorted(won) == st["users"], "redis user set differs from the 202 users")
    wait_until(lambda: svc.redis("XLEN", "coupon:{%s}:outbox" % cid) == 0, 30, "the outbox to drain")

    msgs = [v for k, v in kafka_messages(svc) if isinstance(v, dict) and v.get("campaign_id") == cid]
    ku = collections.Counter(m["user_id"] for m in msgs)
    check(len(msgs) == TOTAL, "kafka holds %d messages for the campaign, expected %d" % (len(msgs), TOTAL))
    check(set(ku) == set(won) and max(ku.values()) == 1, "kafka users differ from the 202 users")
    seq_of = {r[0]: r[2] for r in winners}
    for m in msgs:
        check(m["seq"] == seq_of[m["user_id"]], "kafka seq of %s differs" % m["user_id"])
    for k, v in kafka_messages(svc):
        if isinstance(v, dict) and v.get("campaign_id") == cid:
            check(k == v["user_id"], "message key %r is not the user id" % k)

    _, _, text = api.request("GET", "/metrics")
    piped = [ln for ln in text.splitlines() if ln.startswith("coupon_redis_pipe_calls_total ")]
    check(piped and int(piped[0].split()[1]) >= REQUESTS,
          "the pipe carried fewer calls than the %d requests: %s" % (REQUESTS, piped))
    st, _, body = api.request("GET", "/v1/campaigns/" + cid)
    check(st == 200 and body["issued"] == TOTAL and body["remaining"] == 0 and body["state"] == "sold_out",
          "campaign read: %s %s" % (st, body))
    rc = api.stop()
    check(rc == 0, "coupon-api exited %s on SIGTERM" % rc)


if __name__ == "__main__":
    main(run)
