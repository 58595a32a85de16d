"""Paid tickets, before payment: ticket types, the reservation gate, cancel
and the reaper, against real Redis and MariaDB (docs/design.md, "Paid
tickets": invariants 1 and 4).

- create: 201 once; an identical repeat and a different body 409
  ticket_type_exists; of 8 identical creates at once exactly one is 201;
  refused bodies change nothing.
- exactness: a type of 300, 6,000 reservations of 3,000 users (repeats
  shuffled so they race the first) over 200 keep-alive connections:
  exactly 300 users get a 201, each of them only one ticket (a repeat is
  200 with the same ticket, even while the first is still in MySQL),
  everyone else 410, no 5xx; MySQL issued = 300 = live
  tickets, one per user; Redis's holds are exactly the 201 users.
- one user, 20 reservations at once: one ticket.
- cancel: the stock is reservable again at once; cancel again 409
  not_pending; unknown ids 404.
- expiry: a hold of 10 s ends and its stock is sold again within about a
  second after expires_at; the ticket reads EXPIRED; issued follows.
- MySQL is the truth: with Redis's gate letting more through, MySQL's
  conditional UPDATE refuses and the holds are given back (410); and the
  refusals of a sold-out type never reach MySQL.
- batches: reservations share transactions; 120 at once on a type whose
  gate lets 500 through and MySQL has 20: exactly 20 201s, 100 410s, the
  holds of the refused given back; 40 at once where 5 users have a live
  ticket only MySQL knows: those 5 get it (200), the 35 others a new one.
- the live-ticket key: MySQL itself refuses a second live ticket of a
  (type, user), not only Redis.
- couponctl ticket-type create|show: the same type as the API's, exit 0
  for a repeat, 3 for other fields, 2 for bad usage with nothing written;
- couponctl ticket-type reconcile: reports PAID tickets left unconfirmed
  and outbox rows left unpublished (exit 4, nothing changed); after Redis
  lost a type's gate (its
  reservations then 404), restores the meta and the live tickets' holds
  (a dry run only reports, exit 4); gives back a hold of nothing older
  than 30 s, leaves a young one (exit 4);
- Redis, then MySQL, not answering (SIGSTOP): 503 with Retry-After,
  nothing taken and no hold left in the gate;
- bad input: 40+ requests answered 4xx with the right code, nothing
  changed in MySQL or Redis."""

import collections
import datetime
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import ADMIN_TOKEN, Api, burst, check, ctl, main, wait_until  # noqa: E402


def type_body(tid, total, **f):
    b = {"id": tid, "name": "Type " + tid, "price": 55000, "currency": "KRW", "total": total}
    b.update(f)
    return b


def create(api, tid, total, want=201, **f):
    st, _, b = api.admin("POST", "/v1/ticket-types", type_body(tid, total, **f))
    check(st == want, "create %s: %s %s" % (tid, st, b))
    return b


def reserve(api, tid, user):
    return api.request("POST", "/v1/ticket-types/%s/reservations" % tid, {"user_id": user})


def state(svc, tid):
    """What MySQL and Redis hold of a type, comparable with ==."""
    rows = svc.mysql("SELECT issued, total FROM ticket_types WHERE id = '%s'" % tid)
    tickets = svc.mysql("SELECT id, user_id, status FROM tickets WHERE ticket_type_id = '%s' ORDER BY id" % tid)
    return {
        "type": rows,
        "tickets": tickets,
        "meta": sorted(svc.redis("HGETALL", "ticket:{%s}:meta" % tid) or []),
        "users": sorted(svc.redis("HGETALL", "ticket:{%s}:users" % tid) or []),
    }


def redis_holds(svc, tid):
    flat = svc.redis("HGETALL", "ticket:{%s}:users" % tid) or []
    return {flat[i]: flat[i + 1].split(":")[0] for i in range(0, len(flat), 2)}


def live_users(svc, tid):
    return svc.mysql("SELECT user_id, COUNT(*) FROM tickets WHERE ticket_type_id = '%s'"
                     " AND status IN ('PENDING', 'PAID', 'CONFIRMED') GROUP BY user_id" % tid)


def issued(svc, tid):
    return int(svc.mysql("SELECT issued FROM ticket_types WHERE id = '%s'" % tid)[0][0])


def test_create(svc, api):
    print("create", flush=True)
    b = create(api, "concert-a", 500, hold_seconds=600, ends_at="2099-01-01T00:00:00Z")
    for k, v in (("id", "concert-a"), ("total", 500), ("held", 0), ("sold", 0), ("available", 500),
                 ("hold_seconds", 600), ("price", 55000), ("currency", "KRW"), ("state", "open"),
                 ("ends_at", "2099-01-01T00:00:00Z")):
        check(b.get(k) == v, "created type: %s is %r, expected %r" % (k, b.get(k), v))
    st, _, e = api.admin("POST", "/v1/ticket-types", type_body("concert-a", 500, hold_seconds=600,
                                                                ends_at="2099-01-01T00:00:00Z"))
    check(st == 409 and e["error"]["code"] == "ticket_type_exists", "identical repeat: %s %s" % (st, e))
    st, _, e = api.admin("POST", "/v1/ticket-types", type_body("concert-a", 501))
    check(st == 409 and e["error"]["code"] == "ticket_type_exists", "different repeat: %s %s" % (st, e))
    st, _, g = api.request("GET", "/v1/ticket-types/concert-a")
    check(st == 200 and g == b, "GET: %s %s (created %s)" % (st, g, b))
    meta = dict(zip(*[iter(svc.redis("HGETALL", "ticket:{concert-a}:meta"))] * 2))
    check(meta.get("total") == "500" and meta.get("hold_ms") == "600000", "redis meta %s" % meta)

    # Eight identical creates at once: exactly one hears "created".
    body = type_body("race", 10)
    res = burst([lambda: api.admin("POST", "/v1/ticket-types", body) for _ in range(8)])
    codes = collections.Counter(r[0] for r in res)
    check(codes == {201: 1, 409: 7}, "8 identical creates: %s" % dict(codes))


def test_ctl(svc, api):
    print("couponctl ticket-type", flush=True)
    args = ["ticket-type", "create", "--id", "cli", "--name", "CLI \"type\"", "--price", "1999", "--currency",
            "USD", "--total", "7", "--hold-seconds", "30", "--starts-at", "2026-01-01T00:00:00Z"]
    _, out = ctl(svc, *args)
    t = json.loads(out)
    check(t["id"] == "cli" and t["name"] == 'CLI "type"' and t["price"] == 1999 and t["total"] == 7 and
          t["hold_seconds"] == 30 and t["state"] == "open", "created %s" % t)
    _, again = ctl(svc, *args)                                   # identical: 0
    check(json.loads(again) == t, "repeat printed %s" % again)
    other = list(args)
    other[other.index("--total") + 1] = "8"
    ctl(svc, *other, check_rc=3)                                 # other fields: 3
    _, shown = ctl(svc, "ticket-type", "show", "cli")
    check(json.loads(shown) == t, "show printed %s" % shown)
    st, _, g = api.request("GET", "/v1/ticket-types/cli")
    check(st == 200 and g == t, "the API sees %s" % g)
    st, _, r = reserve(api, "cli", "cli-user")
    check(st == 201 and r["price"] == 1999 and r["currency"] == "USD", "reserve of a couponctl type: %s" % r)
    ctl(svc, "ticket-type", "show", "nope", check_rc=1)
    for bad in (["ticket-type", "show"], ["ticket-type", "show", "a.b"], ["ticket-type", "frob"],
                ["ticket-type", "create", "--id", "x", "--name", "X", "--price", "-5", "--currency", "KRW",
                 "--total", "1"],
                ["ticket-type", "create", "--id", "x", "--name", "X", "--price", "5", "--currency", "KRW"],
                ["ticket-type", "create", "--id", "x", "--name", "X", "--price", "5", "--currency", "KRW",
                 "--total", "1", "extra"]):
        ctl(svc, *bad, check_rc=2)
    check(svc.mysql("SELECT COUNT(*) FROM ticket_types WHERE id = 'x'") == [("0",)], "a refused create wrote x")


def test_reconcile(svc, api):
    print("couponctl ticket-type reconcile after Redis lost the gate", flush=True)
    create(api, "rec", 5)
    held = {u: reserve(api, "rec", u)[2]["ticket_id"] for u in ("r1", "r2", "r3")}
    svc.redis("DEL", "ticket:{rec}:meta", "ticket:{rec}:users")  # Redis lost its data
    st, _, e = reserve(api, "rec", "r4")
    check(st == 404, "with the gate gone: %s %s" % (st, e))
    rc, out = ctl(svc, "ticket-type", "reconcile", "rec", "--dry-run", check_rc=4)
    rep = json.loads(out)
    check(rep["missing_holds"] == 3 and rep["live"] == 3 and rep["issued"] == 3 and not rep["meta_restored"],
          "dry run %s" % rep)
    check(svc.redis("EXISTS", "ticket:{rec}:meta") == 0, "the dry run wrote Redis")
    _, out = ctl(svc, "ticket-type", "reconcile", "rec")
    rep = json.loads(out)
    check(rep["meta_restored"] and rep["holds_restored"] == 3, "reconcile %s" % rep)
    check(redis_holds(svc, "rec") == held, "holds after reconcile %s" % redis_holds(svc, "rec"))
    st, _, again = reserve(api, "rec", "r1")
    check(st == 200 and again["ticket_id"] == held["r1"], "r1 after reconcile: %s %s" % (st, again))
    codes = [reserve(api, "rec", u)[0] for u in ("r4", "r5", "r6")]
    check(codes == [201, 201, 410], "the cap after reconcile: %s" % codes)
    # A hold of nothing: old ones are given back, young ones left alone.
    old_ms = int(time.time() * 1000) - 60000
    svc.redis("HSET", "ticket:{rec}:users", "ghost", "0f8fad5b-d9cb-469f-a165-70867728950e:%d" % old_ms)
    svc.redis("HSET", "ticket:{rec}:users", "young", "1f8fad5b-d9cb-469f-a165-70867728950e:%d" % (old_ms + 60000))
    rc, out = ctl(svc, "ticket-type", "reconcile", "rec", check_rc=4)
    rep = json.loads(out)
    check(rep["stale_released"] == 1 and rep["in_progress"] == 1, "ghosts %s" % rep)
    check(svc.redis("HEXISTS", "ticket:{rec}:users", "ghost") == 0 and
          svc.redis("HEXISTS", "ticket:{rec}:users", "young") == 1, "ghost handling")
    svc.redis("HDEL", "ticket:{rec}:users", "young")
    _, out = ctl(svc, "ticket-type", "reconcile", "rec", check_rc=0)
    rep = json.loads(out)
    check(rep["stuck_payments"] == 0 and rep["unpublished"] == 0 and rep["unconfirmed"] == 0, "quiet %s" % rep)
    # What the running service repairs, late: a PAID ticket nobody
    # confirmed for an hour and an outbox row no relay publishes (claimed
    # far ahead, so the running relay leaves it) are reported, exit 4,
    # and nothing is changed.
    r2 = held["r2"]
    svc.mysql("UPDATE tickets SET status = 'PAID', paid_at = NOW(3) - INTERVAL 1 HOUR WHERE id = '%s'" % r2)
    svc.mysql("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at, claimed_until)"
              " VALUES ('5f8fad5b-d9cb-469f-a165-70867728950e', 'ticket', '%s', 'ticket.paid', '{}',"
              " NOW(3) - INTERVAL 1 HOUR, NOW(3) + INTERVAL 1 HOUR)" % r2)
    rc, out = ctl(svc, "ticket-type", "reconcile", "rec", check_rc=4)
    rep = json.loads(out)
    check(rep["unconfirmed"] == 1 and rep["unpublished"] == 1 and rep["stuck_payments"] == 0, "late %s" % rep)
    check(svc.mysql("SELECT status FROM tickets WHERE id = '%s'" % r2) == [("PAID",)], "reconcile changed r2")
    svc.mysql("DELETE FROM outbox WHERE id = '5f8fad5b-d9cb-469f-a165-70867728950e'")
    svc.mysql("UPDATE tickets SET status = 'PENDING', paid_at = NULL WHERE id = '%s'" % r2)
    ctl(svc, "ticket-type", "reconcile", "rec", check_rc=0)
    ctl(svc, "ticket-type", "reconcile", "nope", check_rc=1)
    ctl(svc, "ticket-type", "reconcile", check_rc=2)


def test_backends_down(svc, api):
    """Redis or MySQL not answering: 503 with Retry-After, nothing taken,
    nothing left held."""
    import signal
    print("Redis, then MySQL, not answering", flush=True)
    create(api, "outage", 3)
    before = state(svc, "outage")
    svc.signal_service("redis", signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st, hd, e = reserve(api, "outage", "o-1")
        took = time.monotonic() - t0
    finally:
        svc.signal_service("redis", signal.SIGCONT)
    check(st == 503 and e["error"]["code"] == "unavailable" and "retry-after" in hd,
          "Redis stopped: %s %s" % (st, e))
    print("  Redis stopped: 503 after %.1f s" % took, flush=True)
    # The gate's script was sent and may run once Redis is back: the hold
    # it leaves is the reaper's to give back (a reap interval), and MySQL
    # never saw the reservation.
    t0 = time.monotonic()
    wait_until(lambda: state(svc, "outage") == before, 5,
               "the state before Redis stopped (the reaper gives back a hold the late script left)", interval=0.05)
    print("  state as before %.2f s after Redis resumed" % (time.monotonic() - t0), flush=True)
    svc.signal_service("mysql", signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st, hd, e = reserve(api, "outage", "o-2")
        took = time.monotonic() - t0
    finally:
        svc.signal_service("mysql", signal.SIGCONT)
    check(st == 503 and e["error"]["code"] == "unavailable" and "retry-after" in hd,
          "MySQL stopped: %s %s" % (st, e))
    print("  MySQL stopped: 503 after %.1f s, the Redis hold given back" % took, flush=True)
    check(redis_holds(svc, "outage") == {}, "a hold was left after MySQL refused: %s" % redis_holds(svc, "outage"))
    wait_until(lambda: reserve(api, "outage", "o-2")[0] == 201, 30, "reservations once MySQL answers again",
               interval=0.5)
    check(issued(svc, "outage") == 1, "issued %d" % issued(svc, "outage"))


def keepalive_worker(addr, jobs, out, lock):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    while True:
        with lock:
            if not jobs:
                break
            tid, user = jobs.pop()
        t0 = time.monotonic()
        conn.request("POST", "/v1/ticket-types/%s/reservations" % tid, json.dumps({"user_id": user}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        with lock:
            out.append((user, resp.status, body, t0, time.monotonic()))
    conn.close()


def flood(api, tid, users, requests, conns, seed):
    rng = random.Random(seed)
    jobs = ["u-%d" % i for i in range(users)]
    jobs += [rng.choice(jobs) for _ in range(requests - users)]
    rng.shuffle(jobs)
    jobs = [(tid, u) for u in jobs]
    out, lock = [], threading.Lock()
    threads = [threading.Thread(target=keepalive_worker, args=(api.addr, jobs, out, lock)) for _ in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out, time.monotonic() - t0


def test_exactness(svc, api):
    total, users, requests, conns = 300, 3000, 6000, 200
    print("exactness: %d of %d users, %d requests, %d connections" % (total, users, requests, conns), flush=True)
    create(api, "floor", total)
    recs, took = flood(api, "floor", users, requests, conns, seed=11)
    check(len(recs) == requests, "answered %d of %d" % (len(recs), requests))
    by = collections.Counter(r[1] for r in recs)
    print("  %.1f s, statuses %s" % (took, dict(by)), flush=True)
    # No 5xx: a repeat racing its own first reservation waits for it.
    check(set(by) <= {200, 201, 410}, "unexpected statuses %s" % dict(by))
    winners = {}
    for user, status, body, _, _ in recs:
        if status == 201:
            check(user not in winners, "user %s got two 201s" % user)
            check(body["status"] == "PENDING" and body["user_id"] == user and body["expires_at"],
                  "201 body %s" % body)
            winners[user] = body["ticket_id"]
    check(len(winners) == total, "201 answers: %d, expected %d" % (len(winners), total))
    check(len(set(winners.values())) == total, "two users got the same ticket")
    for user, status, body, _, _ in recs:
        if status == 200:
            check(winners.get(user) == body["ticket_id"], "200 for %s is not its ticket: %s" % (user, body))
        elif status == 410:
            check(body["error"]["code"] == "sold_out", "410 body %s" % body)
        elif status == 503:
            check("in progress" in body["error"]["message"], "503 body %s" % body)
    # A user that holds a ticket never hears 410 after its 201.
    first = {u: t1 for u, s, _, _, t1 in recs if s == 201}
    for user, status, _, t0, _ in recs:
        if user in first and t0 > first[user]:
            check(status == 200, "%s asked again after its 201 and got %d" % (user, status))
    check(issued(svc, "floor") == total, "MySQL issued %d" % issued(svc, "floor"))
    live = live_users(svc, "floor")
    check(len(live) == total and all(n == "1" for _, n in live), "live tickets per user: %s" % live[:5])
    check({u for u, _ in live} == set(winners), "MySQL's live users are not the 201 users")
    holds = redis_holds(svc, "floor")
    check(holds == winners, "Redis holds differ from the 201 answers (%d vs %d)" % (len(holds), len(winners)))
    st, _, t = api.request("GET", "/v1/ticket-types/floor")
    check(st == 200 and t["held"] == total and t["available"] == 0 and t["state"] == "sold_out",
          "type after the sale: %s" % t)

    # The refusals are Redis's: 500 more users hear 410 without one write
    # reaching MySQL (the reaper only reads while nothing expires).
    def writes():
        rows = dict(svc.mysql("SHOW GLOBAL STATUS WHERE Variable_name IN"
                              " ('Com_update', 'Com_insert', 'Com_delete', 'Com_insert_select')"))
        return {k: int(v) for k, v in rows.items()}
    w0 = writes()
    late, _ = flood(api, "floor", 500, 500, 16, seed=12)
    late = [r for r in late if r[0] not in winners]
    check(late and all(r[1] == 410 for r in late), "late users: %s" % collections.Counter(r[1] for r in late))
    w1 = writes()
    check(w1 == w0, "sold-out refusals reached MySQL: %s -> %s" % (w0, w1))


def test_mysql_is_truth(svc, api):
    """Redis's gate lets through more than MySQL has (its state drifted):
    MySQL refuses, the holds are given back, the answers are 410."""
    print("MySQL is the truth", flush=True)
    create(api, "drift", 2)
    svc.redis("HSET", "ticket:{drift}:meta", "total", "10")
    res = [reserve(api, "drift", "d-%d" % i) for i in range(6)]
    codes = collections.Counter(r[0] for r in res)
    check(codes == {201: 2, 410: 4}, "answers %s" % dict(codes))
    check(issued(svc, "drift") == 2, "issued %d" % issued(svc, "drift"))
    holds = redis_holds(svc, "drift")
    check(sorted(holds) == ["d-0", "d-1"], "Redis holds %s: the refused ones were not given back" % holds)


def test_batch_refusals(svc, api):
    """Reservations are combined into shared transactions: when MySQL
    refuses a batch whole (less stock than Redis let through, a user with a
    live ticket Redis does not know), each reservation in it still gets its
    own answer."""
    print("batched reservations that MySQL refuses in part, at once", flush=True)
    create(api, "drift2", 20)
    svc.redis("HSET", "ticket:{drift2}:meta", "total", "500")
    res = burst([lambda i=i: reserve(api, "drift2", "b-%d" % i) for i in range(120)])
    codes = collections.Counter(r[0] for r in res)
    check(codes == {201: 20, 410: 100}, "answers %s" % dict(codes))
    won = {"b-%d" % i for i, r in enumerate(res) if r[0] == 201}
    check(issued(svc, "drift2") == 20 and {u for u, _ in live_users(svc, "drift2")} == won,
          "MySQL: issued %d, live %s" % (issued(svc, "drift2"), live_users(svc, "drift2")[:5]))
    check(set(redis_holds(svc, "drift2")) == won, "Redis holds are not the 201 users")

    create(api, "mixed", 100)
    known = {}
    for i in range(5):
        tid = "22222222-3333-4444-8555-%012d" % i
        known["m-%d" % i] = tid
        svc.mysql("INSERT INTO tickets (id, ticket_type_id, user_id, status, price, currency, expires_at)"
                  " VALUES ('%s', 'mixed', 'm-%d', 'PENDING', 1, 'KRW', NOW(3) + INTERVAL 1 HOUR);"
                  " UPDATE ticket_types SET issued = issued + 1 WHERE id = 'mixed'" % (tid, i))
    res = burst([lambda i=i: reserve(api, "mixed", "m-%d" % i) for i in range(40)])
    for i, (st, _, b) in enumerate(res):
        u = "m-%d" % i
        if u in known:
            check(st == 200 and b["ticket_id"] == known[u], "%s has a live ticket in MySQL: %s %s" % (u, st, b))
        else:
            check(st == 201 and b["user_id"] == u and b["status"] == "PENDING", "%s: %s %s" % (u, st, b))
    check(issued(svc, "mixed") == 40 and len(live_users(svc, "mixed")) == 40,
          "MySQL after the mixed batch: issued %d" % issued(svc, "mixed"))


def test_one_user(svc, api):
    print("one user, 20 reservations at once", flush=True)
    create(api, "tap", 5)
    res = burst([lambda: reserve(api, "tap", "double-tapper") for _ in range(20)])
    codes = collections.Counter(r[0] for r in res)
    check(codes[201] == 1 and set(codes) <= {200, 201, 503}, "answers %s" % dict(codes))
    ids = {r[2]["ticket_id"] for r in res if r[0] in (200, 201)}
    check(len(ids) == 1, "tickets: %s" % ids)
    check(issued(svc, "tap") == 1, "issued %d" % issued(svc, "tap"))
    st, _, b = reserve(api, "tap", "double-tapper")
    check(st == 200 and b["ticket_id"] in ids, "a later repeat: %s %s" % (st, b))


def test_cancel(svc, api):
    print("cancel", flush=True)
    create(api, "solo", 1)
    st, _, a = reserve(api, "solo", "first")
    check(st == 201, "first: %s %s" % (st, a))
    st, _, b = reserve(api, "solo", "second")
    check(st == 410, "second before the cancel: %s %s" % (st, b))
    st, _, c = api.request("DELETE", "/v1/tickets/" + a["ticket_id"])
    check(st == 200 and c["status"] == "CANCELLED" and c["ticket_id"] == a["ticket_id"], "cancel: %s %s" % (st, c))
    t0 = time.monotonic()
    st, _, b = reserve(api, "solo", "second")
    check(st == 201, "second after the cancel: %s %s" % (st, b))
    print("  stock reservable %.0f ms after the cancel" % ((time.monotonic() - t0) * 1000), flush=True)
    st, _, e = api.request("DELETE", "/v1/tickets/" + a["ticket_id"])
    check(st == 409 and e["error"]["code"] == "not_pending", "cancel again: %s %s" % (st, e))
    st, _, g = api.request("GET", "/v1/tickets/" + a["ticket_id"])
    check(st == 200 and g["status"] == "CANCELLED" and g["paid_at"] is None, "GET cancelled: %s %s" % (st, g))
    # The first user may reserve again: a cancelled ticket is not live.
    st, _, e = reserve(api, "solo", "first")
    check(st == 410, "first again while second holds the only ticket: %s %s" % (st, e))
    check(issued(svc, "solo") == 1, "issued %d" % issued(svc, "solo"))
    unknown = "0f8fad5b-d9cb-469f-a165-70867728950e"
    for method in ("GET", "DELETE"):
        st, _, e = api.request(method, "/v1/tickets/" + unknown)
        check(st == 404 and e["error"]["code"] == "ticket_not_found", "%s unknown: %s %s" % (method, st, e))


def parse_time(s):
    return datetime.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z" if "." in s
                                      else "%Y-%m-%dT%H:%M:%S%z").timestamp()


def test_expiry(svc, api):
    print("expiry of a 10 s hold", flush=True)
    create(api, "brief", 1, hold_seconds=10)
    st, _, a = reserve(api, "brief", "slow-payer")
    check(st == 201, "reserve: %s %s" % (st, a))
    expires = parse_time(a["expires_at"])
    st, _, e = reserve(api, "brief", "waiting")
    check(st == 410, "while held: %s %s" % (st, e))
    got = wait_until(lambda: reserve(api, "brief", "waiting")[0] == 201 and time.time(), 30,
                     "the expired hold's stock", interval=0.1)
    late = got - expires
    print("  stock sold again %.2f s after expires_at" % late, flush=True)
    check(-0.5 < late < 2.0, "the stock came back %.2f s after expiry" % late)
    st, _, g = api.request("GET", "/v1/tickets/" + a["ticket_id"])
    check(st == 200 and g["status"] == "EXPIRED", "expired ticket: %s %s" % (st, g))
    check(issued(svc, "brief") == 1, "issued %d" % issued(svc, "brief"))
    st, _, d = api.request("DELETE", "/v1/tickets/" + a["ticket_id"])
    check(st == 409 and d["error"]["code"] == "not_pending", "cancel of an expired ticket: %s %s" % (st, d))
    m = svc.redis("HGET", "ticket:{brief}:users", "slow-payer")
    check(m is None, "the expired hold is still in Redis: %s" % m)


def test_live_key(svc, api):
    print("MySQL's live-ticket key", flush=True)
    create(api, "keyed", 5)
    st, _, a = reserve(api, "keyed", "k-user")
    check(st == 201, "reserve: %s" % st)
    try:
        svc.mysql("INSERT INTO tickets (id, ticket_type_id, user_id, status, price, currency, expires_at)"
                  " VALUES ('11111111-2222-4333-8444-555555555555', 'keyed', 'k-user', 'PAID', 1, 'KRW', NOW(3))")
        check(False, "MySQL took a second live ticket of one (type, user)")
    except Exception as e:  # noqa: BLE001
        check("Duplicate entry" in str(e), "unexpected error %s" % e)
    svc.mysql("INSERT INTO tickets (id, ticket_type_id, user_id, status, price, currency, expires_at)"
              " VALUES ('11111111-2222-4333-8444-555555555555', 'keyed', 'k-user', 'EXPIRED', 1, 'KRW', NOW(3))")


def test_bad_input(svc, api):
    print("bad input", flush=True)
    create(api, "guarded", 3)
    st, _, held = reserve(api, "guarded", "holder")
    check(st == 201, "reserve: %s" % st)
    before = state(svc, "guarded")
    tid = held["ticket_id"]
    json_ct = {"Content-Type": "application/json"}
    auth = {"Authorization": "Bearer " + ADMIN_TOKEN}
    R = "/v1/ticket-types/guarded/reservations"
    cases = [
        # reservations
        ("POST", R, "{}", json_ct, 400, "invalid_request"),
        ("POST", R, "", json_ct, 400, "invalid_request"),
        ("POST", R, "[]", json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":""}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"a b"}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"' + "x" * 65 + '"}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":7}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"u","x":1}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"u","user_id":"v"}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"u\\u0000"}', json_ct, 400, "invalid_request"),
        ("POST", R, b'{"user_id":"\xff"}', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"u"} x', json_ct, 400, "invalid_request"),
        ("POST", R, '{"user_id":"u"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("POST", R, '{"user_id":"u"}', {}, 415, "unsupported_media_type"),
        ("POST", R, '{"user_id":"' + "u" * 5000 + '"}', json_ct, 413, "body_too_large"),
        ("POST", "/v1/ticket-types/gu.arded/reservations", '{"user_id":"u"}', json_ct, 400, "invalid_request"),
        ("POST", "/v1/ticket-types/%2e%2e/reservations", '{"user_id":"u"}', json_ct, 400, "invalid_request"),
        ("POST", "/v1/ticket-types/nope/reservations", '{"user_id":"u"}', json_ct, 404, "ticket_type_not_found"),
        ("GET", R, None, {}, 405, "method_not_allowed"),
        ("PUT", R, '{"user_id":"u"}', json_ct, 405, "method_not_allowed"),
        ("POST", R + "/", '{"user_id":"u"}', json_ct, 404, "not_found"),
        # tickets
        ("GET", "/v1/tickets/" + tid.upper(), None, {}, 400, "invalid_request"),
        ("GET", "/v1/tickets/" + tid[:-1], None, {}, 400, "invalid_request"),
        ("GET", "/v1/tickets/" + tid + "0", None, {}, 400, "invalid_request"),
        ("GET", "/v1/tickets/" + tid.replace("-", ""), None, {}, 400, "invalid_request"),
        ("GET", "/v1/tickets/..", None, {}, 400, "invalid_request"),
        ("DELETE", "/v1/tickets/" + tid.upper(), None, {}, 400, "invalid_request"),
        ("DELETE", "/v1/tickets/%s%%00" % tid[:-3], None, {}, 400, "invalid_request"),
        ("PUT", "/v1/tickets/" + tid, None, {}, 405, "method_not_allowed"),
        ("POST", "/v1/tickets/" + tid, "{}", json_ct, 405, "method_not_allowed"),
        ("GET", "/v1/tickets", None, {}, 404, "not_found"),
        ("GET", "/v1/tickets/" + tid + "/x", None, {}, 404, "not_found"),
        # types
        ("GET", "/v1/ticket-types/nope", None, {}, 404, "ticket_type_not_found"),
        ("GET", "/v1/ticket-types/a.b", None, {}, 400, "invalid_request"),
        ("DELETE", "/v1/ticket-types/guarded", None, {}, 405, "method_not_allowed"),
        ("GET", "/v1/ticket-types", None, {}, 405, "method_not_allowed"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1)), json_ct, 401, "unauthorized"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1)),
         {**json_ct, "Authorization": "Bearer wrong"}, 401, "unauthorized"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1)), auth, 415, "unsupported_media_type"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 0)), {**json_ct, **auth}, 400, "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, price=-1)), {**json_ct, **auth}, 400,
         "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, currency="won")), {**json_ct, **auth}, 400,
         "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, hold_seconds=5)), {**json_ct, **auth}, 400,
         "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, hold_seconds=86401)), {**json_ct, **auth},
         400, "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, starts_at="2026-13-01T00:00:00Z")),
         {**json_ct, **auth}, 400, "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, starts_at="2030-01-01T00:00:00Z",
                                                            ends_at="2029-01-01T00:00:00Z")),
         {**json_ct, **auth}, 400, "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t.1", 1)), {**json_ct, **auth}, 400,
         "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps({**type_body("t1", 1), "extra": True}), {**json_ct, **auth}, 400,
         "invalid_request"),
        ("POST", "/v1/ticket-types", json.dumps(type_body("t1", 1, price=1.5)), {**json_ct, **auth}, 400,
         "invalid_request"),
    ]
    for method, path, body, headers, want, code in cases:
        st, hd, b = api.request(method, path, body=body, headers=headers)
        check(st == want and isinstance(b, dict) and b.get("error", {}).get("code") == code,
              "%s %s %r: %s %s, expected %s %s" % (method, path, (body or "")[:60], st, b, want, code))
        if st == 405:
            check("allow" in hd, "405 without Allow for %s %s" % (method, path))
    print("  %d bad requests answered right" % len(cases), flush=True)
    check(state(svc, "guarded") == before, "a refused request changed state")
    check(svc.mysql("SELECT COUNT(*) FROM ticket_types WHERE id = 't1'") == [("0",)], "t1 was created")
    check(svc.redis("EXISTS", "ticket:{t1}:meta") == 0, "t1 is in Redis")
    check(len(cases) >= 40, "only %d cases" % len(cases))


def run(svc):
    api = Api(svc, {"COUPON_TICKET_REAP_MS": "100"}).start()
    test_create(svc, api)
    test_bad_input(svc, api)
    test_cancel(svc, api)
    test_one_user(svc, api)
    test_live_key(svc, api)
    test_mysql_is_truth(svc, api)
    test_batch_refusals(svc, api)
    test_ctl(svc, api)
    test_reconcile(svc, api)
    test_backends_down(svc, api)
    test_expiry(svc, api)
    test_exactness(svc, api)
    check(api.stop() == 0, "coupon-api did not exit 0")


if __name__ == "__main__":
    main(run)
