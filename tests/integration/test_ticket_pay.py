"""Paying for tickets through the card gateway (coupon-devpay), against real
Redis and MariaDB (docs/design.md, "Paid tickets": invariants 2 and 3).

- approve: 200 PAID with paid_at, exactly one outbox row whose payload is
  the ticket.paid event; a repeat with the same key answers the same, with
  another key 409 already_paid;
- amount_mismatch 400 and nothing charged; a declined card 402, the
  ticket PENDING, then paid with another card (a new attempt);
- a lost answer: 504 payment_unknown; a retry with the same key gets the
  gateway's replay (PAID, one charge); without a retry the settler asks
  the gateway and the ticket becomes PAID on its own;
- a gateway that times out: 504 after COUPON_PAYMENT_TIMEOUT_MS, another
  key meanwhile 503 (one payment at a time), and once the settler has
  believed "nothing charged" the ticket is paid with another card;
- a slow gateway across the hold's end: the payment began in time, so it
  is PAID, not refunded; a payment after the hold expired: 409
  hold_expired, nothing charged;
- a charge that finds the hold gone (another process ended it): the
  charge is cancelled at the gateway, the ticket REFUNDED, 409;
- the gateway down: 503, nothing charged; payments off without
  COUPON_PAYMENT_URL: 503;
- 20 payments of one ticket at once with one key: one charge;
- at the end, the gateway's ledger: every order charged at most once,
  charged = PAID + REFUNDED tickets, cancelled = REFUNDED; one outbox row
  per PAID ticket; refused bodies changed nothing;
- coupon-worker confirms every PAID ticket once, with one payments row
  carrying the event's id; every event delivered three times, a poison message
  and an event of an unknown ticket change nothing but two failed_events;
- the outbox relay: every row reaches ticket.paid, keyed by the ticket id,
  its value exactly the payload; a row that commits after a later one
  (a long transaction) is relayed too."""

import collections
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, burst, check, ctl, main, wait_until  # noqa: E402

PRICE = 55000
PAID = ("PAID", "CONFIRMED")  # coupon-worker confirms a paid ticket moments later
TIMEOUT_MS = 3000


def create(api, tid, total, **f):
    body = {"id": tid, "name": "Type " + tid, "price": PRICE, "currency": "KRW", "total": total}
    body.update(f)
    st, _, b = api.admin("POST", "/v1/ticket-types", body)
    check(st == 201, "create %s: %s %s" % (tid, st, b))


def reserve(api, tid, user):
    st, _, b = api.request("POST", "/v1/ticket-types/%s/reservations" % tid, {"user_id": user})
    check(st == 201, "reserve %s/%s: %s %s" % (tid, user, st, b))
    return b["ticket_id"]


def pay(api, ticket, key, amount=PRICE, timeout=30):
    return api.request("POST", "/v1/tickets/%s/payment" % ticket, {"payment_key": key, "amount": amount},
                       timeout=timeout)


def get(api, ticket):
    st, _, b = api.request("GET", "/v1/tickets/" + ticket)
    check(st == 200, "GET %s: %s %s" % (ticket, st, b))
    return b


def charges(svc, ticket):
    return [e for e in svc.devpay_ledger()["entries"] if e["orderId"] == ticket and e["op"] == "charge"]


def outbox_rows(svc, ticket):
    return svc.mysql("SELECT id, type, payload FROM outbox WHERE aggregateid = '%s'" % ticket)


def code(b):
    return b.get("error", {}).get("code") if isinstance(b, dict) else None


def test_approve(svc, api):
    print("approve, repeat, another key", flush=True)
    t = reserve(api, "pay", "alice")
    st, _, b = pay(api, t, "pk_alice-1")
    check(st == 200 and b["status"] in PAID and b["paid_at"], "pay: %s %s" % (st, b))
    st, _, again = pay(api, t, "pk_alice-1")
    same = {k: again.get(k) for k in b if k not in ("status", "confirmed_at")}
    check(st == 200 and again["status"] in PAID and same == {k: v for k, v in b.items()
                                                            if k not in ("status", "confirmed_at")},
          "repeat: %s %s (first %s)" % (st, again, b))
    st, _, e = pay(api, t, "pk_alice-2")
    check(st == 409 and code(e) == "already_paid", "another key: %s %s" % (st, e))
    rows = outbox_rows(svc, t)
    check(len(rows) == 1 and rows[0][1] == "ticket.paid", "outbox rows %s" % rows)
    ev = json.loads(rows[0][2])
    want = {"v": 1, "event_id": rows[0][0], "type": "ticket.paid", "ticket_id": t, "ticket_type_id": "pay",
            "user_id": "alice", "amount": PRICE, "currency": "KRW", "payment_key": "pk_alice-1",
            "paid_at": b["paid_at"]}
    check(ev == want, "event %s, expected %s" % (ev, want))
    check(len(charges(svc, t)) == 1, "charges %s" % charges(svc, t))


def test_mismatch_and_decline(svc, api):
    print("amount mismatch, decline, then another card", flush=True)
    t = reserve(api, "pay", "bob")
    st, _, e = pay(api, t, "pk_bob", amount=PRICE - 1)
    check(st == 400 and code(e) == "amount_mismatch", "mismatch: %s %s" % (st, e))
    st, _, e = pay(api, t, "decline-bob")
    check(st == 402 and code(e) == "payment_declined" and "REJECT_CARD_PAYMENT" in e["error"]["message"],
          "decline: %s %s" % (st, e))
    check(get(api, t)["status"] == "PENDING", "declined ticket not PENDING")
    check(charges(svc, t) == [], "charged after a mismatch and a decline")
    st, _, b = pay(api, t, "pk_bob-2")
    check(st == 200 and b["status"] in PAID, "second card: %s %s" % (st, b))
    check(len(charges(svc, t)) == 1, "charges %s" % charges(svc, t))


def test_lost(svc, api):
    print("lost answers", flush=True)
    t = reserve(api, "pay", "carol")
    st, _, e = pay(api, t, "lost-carol")
    check(st == 504 and code(e) == "payment_unknown", "lost: %s %s" % (st, e))
    st, _, b = pay(api, t, "lost-carol")
    check(st == 200 and b["status"] in PAID, "retry after lost: %s %s" % (st, b))
    check(len(charges(svc, t)) == 1, "charges after the retry %s" % charges(svc, t))
    u = reserve(api, "pay", "dave")
    t0 = time.monotonic()
    st, _, e = pay(api, u, "lost-dave")
    check(st == 504, "lost: %s %s" % (st, e))
    wait_until(lambda: get(api, u)["status"] in PAID, TIMEOUT_MS / 1000 + 10, "the settler to record the charge")
    print("  settled PAID %.1f s after the lost answer" % (time.monotonic() - t0), flush=True)
    check(len(charges(svc, u)) == 1 and len(outbox_rows(svc, u)) == 1, "settled charge counted wrong")


def start_timeout(svc, api):
    """A timeout card; returns what test_timeout_end needs."""
    print("a gateway that times out", flush=True)
    t = reserve(api, "pay", "erin")
    t0 = time.monotonic()
    st, _, e = pay(api, t, "timeout-erin")
    took = time.monotonic() - t0
    check(st == 504 and code(e) == "payment_unknown", "timeout: %s %s" % (st, e))
    check(TIMEOUT_MS / 1000 - 0.2 < took < TIMEOUT_MS / 1000 + 2, "answered after %.1f s" % took)
    st, _, e = pay(api, t, "pk_erin")
    check(st == 503 and "in progress" in e["error"]["message"], "another key meanwhile: %s %s" % (st, e))
    check(get(api, t)["status"] == "PENDING", "timed-out ticket not PENDING")
    return t, t0


def test_timeout_end(svc, api, t, t0):
    # "Nothing was charged" is believed 30 s after the timeout; then the
    # customer pays with another card.
    def paid():
        st, _, b = pay(api, t, "pk_erin")
        return st == 200 and b["status"] in PAID
    wait_until(paid, TIMEOUT_MS / 1000 + 45 - (time.monotonic() - t0), "the timed-out attempt to end", interval=1)
    print("  paid with another card %.1f s after the timeout" % (time.monotonic() - t0), flush=True)
    c = charges(svc, t)
    check(len(c) == 1 and c[0]["paymentKey"] == "pk_erin", "charges %s" % c)


def test_slow_across_expiry(svc, api):
    print("a slow gateway across the hold's end; a payment after it", flush=True)
    create(api, "brief", 3, hold_seconds=10)
    t = reserve(api, "brief", "frank")
    expires = time.time() + 10
    time.sleep(max(0, expires - time.time() - 1.5))
    st, _, b = pay(api, t, "slow2500-frank")  # began before expiry, answered after it
    check(time.time() > expires, "the slow payment ended before the hold did")
    check(st == 200 and b["status"] in PAID, "slow payment across the expiry: %s %s" % (st, b))
    time.sleep(1)
    check(get(api, t)["status"] in PAID, "the reaper took a paid ticket")
    u = reserve(api, "brief", "gina")
    wait_until(lambda: get(api, u)["status"] == "EXPIRED", 20, "the hold to expire", interval=0.5)
    st, _, e = pay(api, u, "pk_gina")
    check(st == 409 and code(e) == "hold_expired", "pay after expiry: %s %s" % (st, e))
    check(charges(svc, u) == [], "charged after the hold expired")


def test_refund(svc, api):
    print("a charge that finds the hold gone is refunded", flush=True)
    t = reserve(api, "pay", "hank")
    out = {}

    def slow():
        out["r"] = pay(api, t, "slow1500-hank")
    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.5)
    # Another process (with a shorter payment timeout) ended the hold meanwhile.
    svc.mysql("UPDATE tickets SET status = 'EXPIRED', ended_at = NOW(3) WHERE id = '%s';"
              " UPDATE ticket_types SET issued = issued - 1 WHERE id = 'pay'" % t)
    th.join(timeout=30)
    st, _, e = out["r"]
    check(st == 409 and code(e) == "hold_expired", "late charge: %s %s" % (st, e))
    check(get(api, t)["status"] == "REFUNDED", "ticket %s" % get(api, t))
    ops = [x["op"] for x in svc.devpay_ledger()["entries"] if x["orderId"] == t]
    check(ops == ["charge", "cancel"], "ledger of the late charge %s" % ops)
    check(outbox_rows(svc, t) == [], "a refunded ticket has an outbox row")


def test_gateway_down(svc, api):
    print("the gateway down; payments off", flush=True)
    t = reserve(api, "pay", "ivan")
    svc.devpay("POST", "/down")
    try:
        st, hd, e = pay(api, t, "pk_ivan")
        check(st == 503 and code(e) == "unavailable" and "retry-after" in hd, "gateway down: %s %s" % (st, e))
    finally:
        svc.devpay("POST", "/up")
    check(charges(svc, t) == [] and get(api, t)["status"] == "PENDING", "changed while the gateway was down")
    st, _, b = pay(api, t, "pk_ivan")
    check(st == 200 and b["status"] in PAID, "after /up: %s %s" % (st, b))
    off = Api(svc, {"COUPON_PAYMENT_URL": "", "COUPON_PAYMENT_SECRET": ""}, name="api-nopay").start()
    try:
        u = reserve(off, "pay", "judy")
        st, _, e = pay(off, u, "pk_judy")
        check(st == 503 and "COUPON_PAYMENT_URL" in e["error"]["message"], "payments off: %s %s" % (st, e))
    finally:
        off.stop()


def test_concurrent(svc, api):
    print("20 payments of one ticket at once", flush=True)
    t = reserve(api, "pay", "kim")
    res = burst([lambda: pay(api, t, "pk_kim") for _ in range(20)])
    codes = collections.Counter(r[0] for r in res)
    check(set(codes) <= {200, 503, 504} and codes[200] >= 1, "answers %s" % dict(codes))
    check(len(charges(svc, t)) == 1 and get(api, t)["status"] in PAID, "charges %s" % charges(svc, t))
    print("  answers %s, one charge" % dict(codes), flush=True)


def test_bad_bodies(svc, api):
    print("bad payment bodies", flush=True)
    t = reserve(api, "pay", "leo")
    before = svc.mysql("SELECT status, payment_attempt, payment_key FROM tickets WHERE id = '%s'" % t)
    p = "/v1/tickets/%s/payment" % t
    ct = {"Content-Type": "application/json"}
    for body, headers, want in [
        ('{"payment_key":"pk","amount":"55000"}', ct, 400),
        ('{"payment_key":"pk"}', ct, 400),
        ('{"amount":55000}', ct, 400),
        ('{"payment_key":"","amount":55000}', ct, 400),
        ('{"payment_key":"a b","amount":55000}', ct, 400),
        ('{"payment_key":"' + "k" * 201 + '","amount":55000}', ct, 400),
        ('{"payment_key":"pk","amount":55000.0}', ct, 400),
        ('{"payment_key":"pk","amount":-1}', ct, 400),
        ('{"payment_key":"pk","amount":55000,"x":1}', ct, 400),
        ('{"payment_key":"pk","amount":55000}', {"Content-Type": "text/plain"}, 415),
        ("", ct, 400),
    ]:
        st, _, e = api.request("POST", p, body=body, headers=headers)
        check(st == want, "%r: %s %s, expected %d" % (body[:50], st, e, want))
    st, _, e = pay(api, "0f8fad5b-d9cb-469f-a165-70867728950e", "pk")
    check(st == 404 and code(e) == "ticket_not_found", "unknown ticket: %s %s" % (st, e))
    check(svc.mysql("SELECT status, payment_attempt, payment_key FROM tickets WHERE id = '%s'" % t) == before,
          "a refused payment changed the ticket")
    check(charges(svc, t) == [], "a refused payment charged")


def test_ledger(svc):
    print("the ledger against MySQL", flush=True)
    led = svc.devpay_ledger()["entries"]
    charged = collections.Counter(e["orderId"] for e in led if e["op"] == "charge")
    cancelled = {e["orderId"] for e in led if e["op"] == "cancel"}
    check(max(charged.values()) == 1, "an order charged twice: %s" % charged.most_common(1))
    rows = dict(svc.mysql("SELECT id, status FROM tickets WHERE status IN ('PAID', 'CONFIRMED', 'REFUNDED')"))
    paid = {t for t, s in rows.items() if s != "REFUNDED"}
    refunded = {t for t, s in rows.items() if s == "REFUNDED"}
    check(set(charged) == paid | refunded, "charged orders %s != PAID %s + REFUNDED %s" % (
        sorted(charged), sorted(paid), sorted(refunded)))
    check(cancelled == refunded, "cancelled %s != refunded %s" % (cancelled, refunded))
    per = dict(svc.mysql("SELECT aggregateid, COUNT(*) FROM outbox GROUP BY aggregateid"))
    check(set(per) == paid and set(per.values()) == {"1"}, "outbox rows per PAID ticket: %s" % per)
    print("  %d charged, %d refunded, %d outbox rows" % (len(charged), len(refunded), len(per)), flush=True)


def test_relay(svc):
    print("the outbox relay", flush=True)
    wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL") == [("0",)], 30,
               "every outbox row published")
    rows = {r[0]: (r[1], json.loads(r[2])) for r in svc.mysql("SELECT id, aggregateid, payload FROM outbox")}
    msgs = svc.kafka_consume_all("ticket.paid")
    got = collections.Counter(m[1]["event_id"] for m in msgs)
    check(set(got) == set(rows), "events on ticket.paid %s != outbox rows %s" % (sorted(got), sorted(rows)))
    for key, value in msgs:
        agg, payload = rows[value["event_id"]]
        check(key == agg and value == payload, "message %s %s is not its row %s %s" % (key, value, agg, payload))
    print("  %d rows, %d messages (%d duplicates)" % (len(rows), len(msgs), len(msgs) - len(rows)), flush=True)


def test_relay_commit_order(svc):
    """A row that commits after a later one (a long transaction) is still
    relayed: the relay has no "last id seen"."""
    print("a row committed out of seq order", flush=True)
    import subprocess
    slow = subprocess.Popen(
        ["mariadb", "--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "-P", str(svc.mysql_port), "-ucoupon",
         "-pcoupon", "-D", "coupon"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    slow.stdin.write("BEGIN; INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES"
                     " ('00000000-0000-4000-8000-000000000001', 'ticket', 'early', 'ticket.paid',"
                     " '{\"event_id\":\"00000000-0000-4000-8000-000000000001\",\"n\":1}');"
                     " SELECT SLEEP(3); COMMIT;\n")
    slow.stdin.close()
    time.sleep(0.5)
    svc.mysql("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES"
              " ('00000000-0000-4000-8000-000000000002', 'ticket', 'late', 'ticket.paid',"
              " '{\"event_id\":\"00000000-0000-4000-8000-000000000002\",\"n\":2}')")
    wait_until(lambda: svc.mysql("SELECT published_at IS NOT NULL FROM outbox WHERE aggregateid = 'late'")
               == [("1",)], 10, "the later row published")
    slow.wait(timeout=30)
    seqs = dict(svc.mysql("SELECT aggregateid, seq FROM outbox WHERE aggregateid IN ('early', 'late')"))
    check(int(seqs["early"]) < int(seqs["late"]), "seqs %s" % seqs)
    wait_until(lambda: svc.mysql("SELECT published_at IS NOT NULL FROM outbox WHERE aggregateid = 'early'")
               == [("1",)], 10, "the row that committed late published")
    keys = [m[0] for m in svc.kafka_consume_all("ticket.paid")]
    check("early" in keys and "late" in keys, "keys on ticket.paid: %s" % keys[-5:])


def test_confirm(svc, worker):
    print("coupon-worker confirms each paid ticket once", flush=True)
    paid = {r[0] for r in svc.mysql("SELECT id FROM tickets WHERE status IN ('PAID', 'CONFIRMED')")}
    wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM tickets WHERE status = 'PAID'") == [("0",)], 30,
               "every PAID ticket CONFIRMED")
    pays = svc.mysql("SELECT p.ticket_id, p.event_id, p.payment_key, o.id, t.status, p.amount"
                     " FROM payments p JOIN tickets t ON t.id = p.ticket_id"
                     " JOIN outbox o ON o.aggregateid = p.ticket_id")
    check({p[0] for p in pays} == paid and len(pays) == len(paid), "payments %d for %d paid" % (len(pays), len(paid)))
    for tid, ev, key, oid, status, amount in pays:
        check(ev == oid and status == "CONFIRMED" and int(amount) == PRICE, "payment row %s" % (pays,))
    before = svc.mysql("SELECT id, status, confirmed_at FROM tickets WHERE status = 'CONFIRMED' ORDER BY id")
    # the two hand-made rows of test_relay_commit_order are not events
    wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM failed_events WHERE topic = 'ticket.paid'") == [("2",)], 30,
               "the hand-made outbox rows in failed_events")
    # Every event twice more (relays that died before marking them: each
    # event delivered three times in all), plus a poison message and one
    # for a ticket that does not exist.
    for _ in range(2):
        svc.mysql("UPDATE outbox SET published_at = NULL WHERE aggregatetype = 'ticket' AND type = 'ticket.paid'"
                  " AND aggregateid IN (SELECT id FROM tickets)")
        wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL") == [("0",)], 30,
                   "the events published again")
    svc.kafka_produce([("poison", "{not json"),
                       ("0f8fad5b-d9cb-469f-a165-70867728950e", json.dumps({
                           "v": 1, "event_id": "11111111-1111-4111-8111-111111111111", "type": "ticket.paid",
                           "ticket_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "ticket_type_id": "pay",
                           "user_id": "nobody", "amount": 1, "currency": "KRW", "payment_key": "pk_nobody",
                           "paid_at": "2026-11-21T10:00:00Z"}))], topic="ticket.paid")
    wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM failed_events WHERE topic = 'ticket.paid'") == [("4",)], 30,
               "the two bad messages in failed_events")
    errors = [r[0] for r in svc.mysql("SELECT error FROM failed_events WHERE topic = 'ticket.paid' ORDER BY id")]
    check(any("no ticket 0f8fad5b" in e for e in errors), "failed_events errors %s" % errors)
    # Each row carries the labels the confirmer could decode: the ticket
    # type and the ticket, none for the message that is not an event.
    labels = svc.mysql("SELECT scope_id, subject_id FROM failed_events WHERE topic = 'ticket.paid'"
                       " AND (error LIKE 'no ticket%' OR message_key = 'poison')")
    check(sorted(labels) == [("NULL", "NULL"), ("pay", "0f8fad5b-d9cb-469f-a165-70867728950e")],
          "failed_events labels %s" % labels)
    _, out = ctl(svc, "failed", "list", "--scope", "pay")
    check(len(out.splitlines()) == 2 and "\tpay\t0f8fad5b-" in out, "failed list --scope pay:\n" + out)
    # The unknown ticket turns up (PAID): the retry of its event will find it.
    svc.mysql("INSERT INTO tickets (id, ticket_type_id, user_id, status, price, currency, expires_at, paid_at,"
              " payment_key) VALUES ('0f8fad5b-d9cb-469f-a165-70867728950e', 'pay', 'nobody', 'PAID', 1, 'KRW',"
              " NOW(3), NOW(3), 'pk_nobody'); UPDATE ticket_types SET issued = issued + 1 WHERE id = 'pay'")

    wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL") == [("0",)], 30,
               "the events published again")
    time.sleep(2)
    late = "0f8fad5b-d9cb-469f-a165-70867728950e"
    check([r for r in svc.mysql("SELECT id, status, confirmed_at FROM tickets WHERE status = 'CONFIRMED' ORDER BY id")
           if r[0] != late] == before, "a redelivered event changed a confirmed ticket")
    # Failed events are retried like a coupon's: the event of the unknown
    # ticket resolves once the ticket is there (PAID); the rest die after
    # COUPON_RETRY_MAX_ATTEMPTS.
    wait_until(lambda: svc.mysql("SELECT status FROM tickets WHERE id = '0f8fad5b-d9cb-469f-a165-70867728950e'")
               == [("CONFIRMED",)], 30, "the retried event to confirm its ticket")
    check(svc.mysql("SELECT status FROM failed_events WHERE error LIKE 'no ticket 0f8fad5b%'") == [("resolved",)],
          "the retried event is not resolved")
    wait_until(lambda: svc.mysql("SELECT COUNT(*) FROM failed_events WHERE topic = 'ticket.paid'"
                                 " AND status = 'dead' AND attempts = 4") == [("3",)], 60,
               "the three that cannot be applied marked dead after 4 attempts", interval=0.5)
    # couponctl retries a ticket event with the confirmer's own apply: one
    # that still cannot be applied stays dead, one attempt more.
    dead = svc.mysql("SELECT id FROM failed_events WHERE topic = 'ticket.paid' AND status = 'dead' ORDER BY id")
    _, out = ctl(svc, "failed", "retry", dead[0][0])
    check("resolved=0 still_failing=0 dead=1" in out, "failed retry of a dead ticket event: " + out)
    check(svc.mysql("SELECT status, attempts FROM failed_events WHERE id = %s" % dead[0][0]) == [("dead", "5")],
          "the retried dead row")
    paid.add(late)
    check(svc.mysql("SELECT COUNT(*) FROM payments") == [(str(len(paid)),)], "payments rows after redelivery")
    check(worker.proc.poll() is None, "coupon-worker exited")
    print("  %d confirmed once; redelivery and 2 bad messages changed nothing else; failed events retried"
          % len(paid), flush=True)


def run(svc):
    api = Api(svc, {"COUPON_PAYMENT_TIMEOUT_MS": str(TIMEOUT_MS), "COUPON_TICKET_REAP_MS": "100"}).start()
    worker = Worker(svc, {"COUPON_RETRY_BASE_MS": "500", "COUPON_RETRY_MAX_MS": "1000",
                          "COUPON_RETRY_MAX_ATTEMPTS": "4"}).start()
    create(api, "pay", 100)
    timed_out = start_timeout(svc, api)
    test_approve(svc, api)
    test_mismatch_and_decline(svc, api)
    test_bad_bodies(svc, api)
    test_lost(svc, api)
    test_refund(svc, api)
    test_gateway_down(svc, api)
    test_concurrent(svc, api)
    test_slow_across_expiry(svc, api)
    test_timeout_end(svc, api, *timed_out)
    test_ledger(svc)
    test_relay(svc)
    test_relay_commit_order(svc)
    test_confirm(svc, worker)
    check(worker.stop() == 0, "coupon-worker did not exit 0")
    check(api.stop() == 0, "coupon-api did not exit 0")


if __name__ == "__main__":
    main(run)
