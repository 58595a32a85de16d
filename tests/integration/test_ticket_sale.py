"""A whole paid-ticket sale, with coupon-api killed (SIGKILL) in the middle
of its payments and coupon-worker killed while it confirms (docs/design.md,
"Paid tickets": every invariant at the end).

Two coupon-api instances (so two reapers, settlers and outbox relays work
on the same tables); a type of 150 with 12 s holds; 1,500 users reserve at
once over 48 keep-alive connections spread over both. The 150 winners then pay, 24 at a time: most with
a card that is approved, some declined first and then approved, some with
a card whose answer is lost, 60 slow (1.2 s, so that many are in flight
when coupon-api dies); 15 never pay (their holds expire
and the stock is reserved again by 15 late users, who pay). one coupon-api
is killed with SIGKILL while payments are in flight and started again;
coupon-worker is killed once too. Once quiet:
- MySQL: issued = PENDING + PAID + CONFIRMED <= total, no two live
  tickets of one user; every PAID ticket became CONFIRMED with one
  payments row; one outbox row per CONFIRMED ticket, every one published;
- the gateway's ledger: every order charged at most once; charged orders
  = CONFIRMED + REFUNDED tickets; cancels = REFUNDED;
- Kafka: every outbox event on ticket.paid at least once;
- Redis: the gate's holds are exactly the live tickets."""

import collections
import http.client
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, check, main, wait_until  # noqa: E402

TOTAL, USERS, HOLD_S, TIMEOUT_MS = 150, 1500, 12, 3000


class Client:
    """A keep-alive connection that reconnects (coupon-api is killed);
    clients alternate between the two coupon-api instances."""
    n = 0

    def __init__(self, api):
        if isinstance(api, (list, tuple)):
            Client.n += 1
            api = api[Client.n % len(api)]
        self.api = api
        self.conn = None

    def call(self, method, path, body):
        for attempt in range(40):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=30)
                self.conn.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, json.loads(r.read())
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
                time.sleep(0.25)
        raise OSError("coupon-api did not come back")


def run_all(api, jobs, conns, fn):
    lock = threading.Lock()
    out = []

    def worker():
        c = Client(api)
        while True:
            with lock:
                if not jobs:
                    return
                j = jobs.pop()
            r = fn(c, j)
            with lock:
                out.append((j, r))

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return out


def pay_until_done(c, ticket, cards):
    """Pays with each card in turn until one sticks; returns the answers."""
    answers = []
    for card in cards:
        for _ in range(30):
            st, b = c.call("POST", "/v1/tickets/%s/payment" % ticket, {"payment_key": card, "amount": 55000})
            answers.append((card, st))
            if st == 503 and "in progress" in b.get("error", {}).get("message", ""):
                time.sleep(1)  # the first attempt is still unsettled
                continue
            if st == 503:
                time.sleep(0.3)
                continue
            break
        if st == 200:
            return answers
    return answers


def run(svc):
    env = {"COUPON_PAYMENT_TIMEOUT_MS": str(TIMEOUT_MS), "COUPON_TICKET_REAP_MS": "100",
           "COUPON_HTTP_THREADS": "200"}
    api = Api(svc, env).start()
    other = Api(svc, env, name="api-b").start()  # a second instance: two reapers, settlers and relays
    apis = (api, other)
    worker = Worker(svc).start()
    st, _, b = api.admin("POST", "/v1/ticket-types", {"id": "sale", "name": "The sale", "price": 55000,
                                                       "currency": "KRW", "total": TOTAL, "hold_seconds": HOLD_S})
    check(st == 201, "create: %s %s" % (st, b))

    rng = random.Random(5)
    jobs = ["u-%d" % i for i in range(USERS)]
    rng.shuffle(jobs)
    t0 = time.monotonic()
    res = run_all(apis, jobs, 48, lambda c, u: c.call("POST", "/v1/ticket-types/sale/reservations", {"user_id": u}))
    by = collections.Counter(r[0] for _, r in res)
    print("reservations: %s in %.1f s" % (dict(by), time.monotonic() - t0), flush=True)
    winners = {u: r[1]["ticket_id"] for u, r in res if r[0] == 201}
    check(len(winners) == TOTAL and set(by) <= {201, 410}, "reservations %s" % dict(by))

    users = sorted(winners)
    rng.shuffle(users)
    plans = {}
    for i, u in enumerate(users):
        kind = ("skip" if i < 15 else "lost" if i < 30 else "decline" if i < 50 else "slow" if i < 110 else "ok")
        cards = {"lost": ["lost-%s" % u], "decline": ["decline-%s" % u, "pk-%s" % u],
                 "slow": ["slow1200-%s" % u], "ok": ["pk-%s" % u], "skip": []}[kind]
        plans[u] = (kind, cards)

    # Kill coupon-api while payments are in flight, then start it again.
    def killer():
        time.sleep(1.0)
        inflight = svc.mysql("SELECT COUNT(*) FROM tickets WHERE payment_started_at IS NOT NULL")[0][0]
        print("SIGKILL coupon-api with %s payments in flight" % inflight, flush=True)
        api.kill9()
        time.sleep(0.5)
        api.start()
        time.sleep(1.0)
        print("SIGKILL coupon-worker", flush=True)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=30)
        worker.start()
    k = threading.Thread(target=killer)
    k.start()
    jobs = [(u, winners[u], plans[u][1]) for u in users if plans[u][1]]
    paid = run_all(apis, jobs, 24, lambda c, j: pay_until_done(c, j[1], j[2]))
    k.join()
    answers = collections.Counter(st for _, a in paid for _, st in a)
    print("payment answers: %s" % dict(answers), flush=True)

    # The skipped holds expire; late users take their stock and pay.
    wait_until(lambda: int(svc.mysql("SELECT COUNT(*) FROM tickets WHERE ticket_type_id = 'sale'"
                                     " AND status = 'EXPIRED'")[0][0]) >= 15,
               HOLD_S + 60, "the unpaid holds to expire", interval=0.5)
    c = Client(api)
    late = {}
    for i in range(15):
        # The gate follows MySQL a moment after the reaper's commit.
        def reserved():
            st, b = c.call("POST", "/v1/ticket-types/sale/reservations", {"user_id": "late-%d" % i})
            check(st in (201, 410), "late reservation %d: %s %s" % (i, st, b))
            return b if st == 201 else None
        late["late-%d" % i] = wait_until(reserved, 5, "late reservation %d" % i, interval=0.1)["ticket_id"]
    for u, t in late.items():
        pay_until_done(c, t, ["pk-%s" % u])

    # Quiet: nothing in flight, nothing PAID unconfirmed, the outbox published.
    def quiet():
        rows = svc.mysql("SELECT"
                         " (SELECT COUNT(*) FROM tickets WHERE payment_started_at IS NOT NULL),"
                         " (SELECT COUNT(*) FROM tickets WHERE status = 'PAID'),"
                         " (SELECT COUNT(*) FROM outbox WHERE published_at IS NULL)")
        return rows == [("0", "0", "0")]
    wait_until(quiet, TIMEOUT_MS / 1000 + 90, "the sale to settle", interval=1)

    counts = dict(svc.mysql("SELECT status, COUNT(*) FROM tickets WHERE ticket_type_id = 'sale' GROUP BY status"))
    print("tickets: %s" % counts, flush=True)
    issued = int(svc.mysql("SELECT issued FROM ticket_types WHERE id = 'sale'")[0][0])
    live = sum(int(counts.get(s, 0)) for s in ("PENDING", "PAID", "CONFIRMED"))
    check(issued == live <= TOTAL, "issued %d, live %d, total %d" % (issued, live, TOTAL))
    check(int(counts.get("CONFIRMED", 0)) == TOTAL, "confirmed %s of %d" % (counts.get("CONFIRMED"), TOTAL))
    dup = svc.mysql("SELECT user_id FROM tickets WHERE ticket_type_id = 'sale'"
                    " AND status IN ('PENDING', 'PAID', 'CONFIRMED') GROUP BY user_id HAVING COUNT(*) > 1")
    check(dup == [], "users with two live tickets: %s" % dup)
    confirmed = {r[0] for r in svc.mysql("SELECT id FROM tickets WHERE status = 'CONFIRMED'")}
    refunded = {r[0] for r in svc.mysql("SELECT id FROM tickets WHERE status = 'REFUNDED'")}
    payments = collections.Counter(r[0] for r in svc.mysql("SELECT ticket_id FROM payments"))
    check(set(payments) == confirmed and max(payments.values()) == 1, "payments rows vs confirmed tickets")
    outbox = svc.mysql("SELECT id, aggregateid FROM outbox")
    per = collections.Counter(a for _, a in outbox)
    check(set(per) == confirmed and max(per.values()) == 1, "outbox rows per confirmed ticket")

    led = svc.devpay_ledger()["entries"]
    charged = collections.Counter(e["orderId"] for e in led if e["op"] == "charge")
    cancels = {e["orderId"] for e in led if e["op"] == "cancel"}
    check(max(charged.values()) == 1, "an order charged twice: %s" % charged.most_common(2))
    check(set(charged) == confirmed | refunded, "charged %d != confirmed %d + refunded %d" % (
        len(charged), len(confirmed), len(refunded)))
    check(cancels == refunded, "cancels %d != refunded %d" % (len(cancels), len(refunded)))

    events = {m[1]["event_id"] for m in svc.kafka_consume_all("ticket.paid") if isinstance(m[1], dict)}
    check({i for i, _ in outbox} <= events, "outbox events missing on ticket.paid")
    flat = svc.redis("HGETALL", "ticket:{sale}:users") or []
    holds = {flat[i]: flat[i + 1].split(":")[0] for i in range(0, len(flat), 2)}
    live_rows = dict(svc.mysql("SELECT user_id, id FROM tickets WHERE ticket_type_id = 'sale'"
                               " AND status IN ('PENDING', 'PAID', 'CONFIRMED')"))
    check(holds == live_rows, "Redis holds (%d) differ from live tickets (%d)" % (len(holds), len(live_rows)))
    print("sale settled: %d confirmed, %d refunded, %d charges, %d events on Kafka" % (
        len(confirmed), len(refunded), len(charged), len(events)), flush=True)
    check(int(counts.get("EXPIRED", 0)) == 15, "expired %s, expected the 15 unpaid" % counts.get("EXPIRED"))
    check(worker.stop() == 0, "coupon-worker did not exit 0")
    check(api.stop() == 0 and other.stop() == 0, "a coupon-api did not exit 0")


if __name__ == "__main__":
    main(run)
