"""Integration test of coupon-devpay, the fake card payment gateway, and of
its place in deploy/local-services.sh and tests/support/services.py.

First against the gateway that local-services.sh starts (its env file, its
ledger file, status and stop): approve, Idempotency-Key replays and
mismatches, an order never charged twice, the test cards (decline, slow,
timeout, lost), cancel, look-ups, auth, bad requests, down/up, and 50
concurrent confirms of one order charged exactly once. Then against one
started here directly: --help/--version, bad usage, a port in use, the
ready file, the timeout hold, and SIGTERM with calls in flight (exit 0).

Each check compares the gateway's ledger too, so a call that answers right
but charges wrong fails. Exit 0 on pass, 1 on fail (77: skipped, servers
not installed).
"""

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.environ.get(
    "COUPON_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")),
    "tests", "support"))

from services import (Services, find_program, free_port, pid_alive, start_process,  # noqa: E402
                      stop_process, wait_http)

failures = []


def check(cond, what):
    if cond:
        print("ok   " + what, flush=True)
    else:
        print("FAIL " + what, flush=True)
        failures.append(what)
    return cond


def basic(secret):
    return "Basic " + base64.b64encode((secret + ":").encode()).decode()


class Gateway:
    """Calls to one coupon-devpay: the API at @url with @secret, the
    controls at @control."""

    def __init__(self, url, secret, control):
        self.url = url
        self.secret = secret
        self.control = control
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port

    def call(self, method, path, body=None, key=None, auth=True, raw=None, timeout=10,
             base=None):
        """Returns (status, parsed body, content type). A connection closed
        without an answer raises http.client.RemoteDisconnected; no answer
        within @timeout raises TimeoutError (socket.timeout)."""
        u = urllib.parse.urlsplit(base or self.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        try:
            headers = {}
            if auth is True:
                headers["Authorization"] = basic(self.secret)
            elif auth:
                headers["Authorization"] = auth
            if key is not None:
                headers["Idempotency-Key"] = key
            data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return resp.status, parsed, resp.getheader("Content-Type")
        finally:
            conn.close()

    def confirm(self, payment_key, order_id, amount, key=None, **kw):
        return self.call("POST", "/v1/payments/confirm",
                         {"paymentKey": payment_key, "orderId": order_id, "amount": amount},
                         key=key, **kw)

    def cancel(self, payment_key, reason="customer changed their mind", **kw):
        return self.call("POST", "/v1/payments/%s/cancel" % payment_key, {"cancelReason": reason}, **kw)

    def lookup(self, order_id, **kw):
        return self.call("GET", "/v1/payments/orders/%s" % order_id, **kw)

    def ctl(self, method, path):
        st, body, _ = self.call(method, path, auth=False, base=self.control)
        return st, body

    def ledger(self):
        st, body = self.ctl("GET", "/ledger")
        assert st == 200, (st, body)
        return body


def charges_of(ledger, order_id, op="charge"):
    return [e for e in ledger["entries"] if e["orderId"] == order_id and e["op"] == op]


def error_code(body):
    return body.get("code") if isinstance(body, dict) else None


# ---- the gateway API --------------------------------------------------------

def test_approve_and_replay(gw):
    st, body, ctype = gw.confirm("pk-approve-1", "order-approve-1", 55000, key="idem-approve-1")
    check(st == 200 and body.get("status") == "DONE" and body.get("totalAmount") == 55000 and
          body.get("paymentKey") == "pk-approve-1" and body.get("orderId") == "order-approve-1" and
          body.get("method") == "CARD" and body.get("approvedAt", "").endswith("Z") and
          ctype == "application/json", "approve: 200 DONE (%s %r)" % (st, body))
    first = body
    led = gw.ledger()
    check(len(charges_of(led, "order-approve-1")) == 1 and
          charges_of(led, "order-approve-1")[0]["amount"] == 55000, "approve: one charge of 55000 in the ledger")

    st, body, _ = gw.confirm("pk-approve-1", "order-approve-1", 55000, key="idem-approve-1")
    check(st == 200 and body == first, "replay with the same Idempotency-Key: the same 200 body")
    st, body, _ = gw.confirm("pk-approve-1", "order-approve-1", 55001, key="idem-approve-1")
    check(st == 422 and error_code(body) == "IDEMPOTENT_REQUEST_MISMATCH",
          "same key, different body: 422 IDEMPOTENT_REQUEST_MISMATCH (%s %r)" % (st, body))
    st, body, _ = gw.confirm("pk-approve-1", "order-approve-1", 55000)
    check(st == 200 and body == first, "same payment again without a key: 200, the existing payment")
    st, body, _ = gw.confirm("pk-approve-other", "order-approve-1", 55000)
    check(st == 400 and error_code(body) == "ALREADY_PROCESSED_PAYMENT",
          "another payment for a paid order: 400 ALREADY_PROCESSED_PAYMENT (%s %r)" % (st, body))
    st, body, _ = gw.confirm("pk-approve-1", "order-approve-2", 100)
    check(st == 400 and error_code(body) == "DUPLICATED_PAYMENT_KEY",
          "a paymentKey reused for another order: 400 DUPLICATED_PAYMENT_KEY (%s %r)" % (st, body))
    led = gw.ledger()
    check(len(charges_of(led, "order-approve-1")) == 1 and not charges_of(led, "order-approve-2"),
          "replays and refusals charged nothing more")

    st, body, _ = gw.lookup("order-approve-1")
    check(st == 200 and body == first, "lookup by orderId: the payment")
    st, body = gw.ctl("GET", "/payments/order-approve-1")
    check(st == 200 and body == first, "controls: GET /payments/{orderId}")


def test_decline(gw):
    before = gw.ledger()["charged"]
    st, body, _ = gw.confirm("decline-card-1", "order-decline-1", 1000, key="idem-decline-1")
    check(st == 403 and error_code(body) == "REJECT_CARD_PAYMENT",
          "decline card: 403 REJECT_CARD_PAYMENT (%s %r)" % (st, body))
    st2, body2, _ = gw.confirm("decline-card-1", "order-decline-1", 1000, key="idem-decline-1")
    check(st2 == 403 and body2 == body, "a decline is replayed for its Idempotency-Key")
    st, body, _ = gw.confirm("decline-limit-1", "order-decline-2", 1000)
    check(400 <= st < 500 and error_code(body) == "EXCEED_MAX_DAILY_PAYMENT_COUNT",
          "decline-limit card: 4xx EXCEED_MAX_DAILY_PAYMENT_COUNT (%s %r)" % (st, body))
    check(gw.ledger()["charged"] == before, "declines charged nothing")
    st, body, _ = gw.lookup("order-decline-1")
    check(st == 404 and error_code(body) == "NOT_FOUND_PAYMENT", "declined order: lookup 404")


def test_slow(gw):
    t0 = time.monotonic()
    st, body, _ = gw.confirm("slow1500-card-1", "order-slow-1", 2000, key="idem-slow-1")
    took = time.monotonic() - t0
    check(st == 200 and body.get("status") == "DONE" and took >= 1.5,
          "slow1500 card: 200 after %.2fs (>= 1.5)" % took)
    check(len(charges_of(gw.ledger(), "order-slow-1")) == 1, "slow card charged once")

    # The same key while the first call still sleeps: 409, and one charge.
    result = {}

    def first():
        result["first"] = gw.confirm("slow1500-card-2", "order-slow-2", 2000, key="idem-slow-2")

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.4)
    st, body, _ = gw.confirm("slow1500-card-2", "order-slow-2", 2000, key="idem-slow-2")
    t.join()
    check(st == 409 and error_code(body) == "IDEMPOTENT_REQUEST_PROCESSING",
          "same key while the first is in progress: 409 (%s %r)" % (st, body))
    check(result["first"][0] == 200, "the first one then answers 200")
    check(len(charges_of(gw.ledger(), "order-slow-2")) == 1, "in-progress retry charged nothing more")


def test_timeout(gw):
    before = gw.ledger()["charged"]
    t0 = time.monotonic()
    try:
        gw.confirm("timeout-card-1", "order-timeout-1", 3000, key="idem-timeout-1", timeout=1)
        check(False, "timeout card: no answer")
    except TimeoutError:
        check(time.monotonic() - t0 >= 0.9, "timeout card: the client times out after 1 s")
    check(gw.ledger()["charged"] == before, "timeout card charged nothing")
    st, body, _ = gw.lookup("order-timeout-1")
    check(st == 404 and error_code(body) == "NOT_FOUND_PAYMENT", "timed-out order: lookup 404")


def test_lost(gw):
    try:
        st, body, _ = gw.confirm("lost-card-1", "order-lost-1", 4000, key="idem-lost-1")
        check(False, "lost card: connection closed without an answer (got %s %r)" % (st, body))
    except http.client.RemoteDisconnected:
        check(True, "lost card: connection closed without an answer")
    led = gw.ledger()
    check(len(charges_of(led, "order-lost-1")) == 1, "lost card: the ledger has the charge")
    st, body, _ = gw.lookup("order-lost-1")
    check(st == 200 and body.get("status") == "DONE" and body.get("paymentKey") == "lost-card-1",
          "lost card: lookup by orderId says DONE")
    st, body, _ = gw.confirm("lost-card-1", "order-lost-1", 4000, key="idem-lost-1")
    check(st == 200 and body.get("status") == "DONE", "lost card: a retry with the same key gets 200 (%s)" % st)
    check(len(charges_of(gw.ledger(), "order-lost-1")) == 1, "lost card: the retry charged nothing more")


def test_cancel(gw):
    gw.confirm("pk-cancel-1", "order-cancel-1", 7000, key="idem-cancel-1")
    st, body, _ = gw.cancel("pk-cancel-1", "\uace0\uac1d \ubcc0\uc2ec")
    check(st == 200 and body.get("status") == "CANCELED" and body.get("cancelReason") == "\uace0\uac1d \ubcc0\uc2ec" and
          body.get("canceledAt", "").endswith("Z") and body.get("totalAmount") == 7000,
          "cancel: 200 CANCELED (%s %r)" % (st, body))
    first = body
    led = gw.ledger()
    cancels = charges_of(led, "order-cancel-1", "cancel")
    check(len(cancels) == 1 and cancels[0]["amount"] == 7000, "cancel: a ledger cancel entry of 7000")
    st, body, _ = gw.cancel("pk-cancel-1", "again")
    check(st == 200 and body == first, "second cancel: 200 with the same body")
    check(len(charges_of(gw.ledger(), "order-cancel-1", "cancel")) == 1, "second cancel: no new ledger entry")
    st, body, _ = gw.lookup("order-cancel-1")
    check(st == 200 and body.get("status") == "CANCELED", "lookup after cancel: CANCELED")
    st, body, _ = gw.cancel("pk-no-such-key")
    check(st == 404 and error_code(body) == "NOT_FOUND_PAYMENT", "cancel of an unknown key: 404 NOT_FOUND_PAYMENT")
    st, body, _ = gw.call("POST", "/v1/payments/pk-cancel-1/cancel", {"cancelReason": ""})
    check(st == 400 and error_code(body) == "INVALID_REQUEST", "cancel with an empty reason: 400")


def test_bad_requests(gw):
    before = gw.ledger()["charged"]
    st, body, _ = gw.lookup("order-never-1")
    check(st == 404 and error_code(body) == "NOT_FOUND_PAYMENT", "lookup of an unknown order: 404 NOT_FOUND_PAYMENT")

    st, body, ctype = gw.confirm("pk-auth-1", "order-auth-1", 100, auth=False)
    check(st == 401 and error_code(body) == "UNAUTHORIZED_KEY" and ctype == "application/json",
          "missing Basic auth: 401 UNAUTHORIZED_KEY")
    st, body, _ = gw.confirm("pk-auth-1", "order-auth-1", 100, auth=basic("test_sk_wrong"))
    check(st == 401 and error_code(body) == "UNAUTHORIZED_KEY", "wrong secret: 401")
    st, body, _ = gw.confirm("pk-auth-1", "order-auth-1", 100,
                             auth="Basic " + base64.b64encode(gw.secret.encode()).decode())
    check(st == 401, "secret without the ':' : 401")
    st, body, _ = gw.lookup("order-auth-1", auth=False)
    check(st == 401, "lookup without auth: 401")
    st, body, _ = gw.lookup("order-auth-1")
    check(st == 404, "unauthorized confirms charged nothing (lookup 404)")

    bad = [
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1","amount":100', "malformed JSON"),
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1","amount":100} x', "trailing garbage"),
        (b'[1,2]', "not an object"),
        (b'', "empty body"),
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1","amount":"100"}', "amount as a string"),
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1","amount":0}', "amount 0"),
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1","amount":1.5}', "amount 1.5"),
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1","amount":1000000000001}', "amount 10^12+1"),
        (b'{"paymentKey":"pk-bad-1","orderId":"order-bad-1"}', "amount missing"),
        (b'{"paymentKey":"pk-bad-1","orderId":"short","amount":100}', "orderId too short"),
        (b'{"paymentKey":"pk bad","orderId":"order-bad-1","amount":100}', "paymentKey with a space"),
        (b'{"paymentKey":7,"orderId":"order-bad-1","amount":100}', "paymentKey a number"),
    ]
    for raw, what in bad:
        st, body, ctype = gw.call("POST", "/v1/payments/confirm", raw=raw)
        check(st == 400 and error_code(body) == "INVALID_REQUEST" and ctype == "application/json",
              "%s: 400 INVALID_REQUEST (%s %r)" % (what, st, body))
    st, body, _ = gw.confirm("pk-bad-1", "order-bad-1", 100, key="k" * 301)
    check(st == 400, "Idempotency-Key of 301 characters: 400")
    st, body, _ = gw.confirm("slow600001-x", "order-bad-1", 100)
    check(st == 400, "slow card above 600000 ms: 400")

    big = json.dumps({"paymentKey": "pk-big-1", "orderId": "order-big-1", "amount": 100,
                      "pad": "x" * (70 * 1024)}).encode()
    st, body, _ = gw.call("POST", "/v1/payments/confirm", raw=big)
    check(st == 413, "a 70 KiB body: 413 (%s %r)" % (st, body if not isinstance(body, bytes) else body[:80]))

    st, body, _ = gw.call("GET", "/v1/payments/nothing/here")
    check(st == 404 and error_code(body) == "NOT_FOUND", "unknown path: 404 NOT_FOUND")
    st, body, _ = gw.call("GET", "/v1/payments/confirm/")
    check(st == 404, "trailing slash is another path: 404")
    st, body, _ = gw.call("GET", "/v1/payments/confirm")
    check(st == 405, "GET of confirm: 405")
    st, body, _ = gw.call("DELETE", "/v1/payments/orders/order-approve-1")
    check(st == 405, "DELETE of a lookup: 405")
    check(gw.ledger()["charged"] == before, "bad requests charged nothing")


def test_down_up(gw):
    st, body = gw.ctl("POST", "/down")
    check(st == 200 and body == {"state": "down"}, "POST /down: {\"state\":\"down\"}")
    check(gw.ctl("GET", "/state") == (200, {"state": "down"}), "GET /state: down")
    try:
        gw.lookup("order-approve-1", timeout=3)
        check(False, "down: connection refused")
    except ConnectionRefusedError:
        check(True, "down: connection refused")
    st, body = gw.ctl("POST", "/up")
    check(st == 200 and body == {"state": "up"}, "POST /up: {\"state\":\"up\"} (%s %r)" % (st, body))
    st, body, _ = gw.lookup("order-approve-1")
    check(st == 200 and body.get("status") == "DONE", "up: works again, the earlier payment is still there")
    st, body, _ = gw.confirm("pk-after-up", "order-after-up", 10)
    check(st == 200, "up: new confirms work")


def test_concurrent(gw):
    before = gw.ledger()
    statuses = []
    lock = threading.Lock()
    go = threading.Event()

    def one(order_id, payment_key, key):
        go.wait()
        try:
            st, _, _ = gw.confirm(payment_key, order_id, 9900, key=key, timeout=30)
        except OSError as e:
            st = repr(e)
        with lock:
            statuses.append(st)

    threads = [threading.Thread(target=one, args=("order-race-1", "pk-race-1", "idem-race-1"))
               for _ in range(50)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    led = gw.ledger()
    n = len(charges_of(led, "order-race-1"))
    check(n == 1 and led["charged"] == before["charged"] + 1,
          "50 concurrent confirms, same order and key: exactly one charge (%d)" % n)
    check(set(statuses) <= {200, 409} and 200 in statuses,
          "... answered 200 or 409 (%s)" % sorted(set(map(str, statuses))))

    # Without a key, different paymentKeys: the order map alone decides.
    statuses.clear()
    go.clear()
    threads = [threading.Thread(target=one, args=("order-race-2", "pk-race-2-%d" % i, None))
               for i in range(20)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    n = len(charges_of(gw.ledger(), "order-race-2"))
    check(n == 1 and statuses.count(200) == 1 and statuses.count(400) == 19,
          "20 concurrent payments of one order without a key: one 200, 19 400, one charge "
          "(%d charges, %s)" % (n, sorted(map(str, statuses))))


def test_ledger_file(svc, gw):
    led = gw.ledger()
    with open(svc.devpay_ledger_path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    check(lines == led["entries"], "the ledger file has the same %d entries as GET /ledger" % len(lines))
    check(led["charged"] == sum(1 for e in led["entries"] if e["op"] == "charge") and
          led["charged_amount"] == sum(e["amount"] for e in led["entries"] if e["op"] == "charge") and
          led["cancelled_amount"] == sum(e["amount"] for e in led["entries"] if e["op"] == "cancel"),
          "ledger totals add up")
    check([e["seq"] for e in led["entries"]] == list(range(1, len(led["entries"]) + 1)), "ledger seq 1..N")
    st, stats = gw.ctl("GET", "/stats")
    check(st == 200 and stats.get("state") == "up" and stats["confirms"]["lost"] >= 1, "GET /stats")


def run_services(svc):
    env = svc.env
    check(env.get("COUPON_PAYMENT_URL", "").startswith("http://127.0.0.1:") and
          env.get("COUPON_PAYMENT_SECRET") == "test_sk_devpay" and
          env.get("COUPON_DEVPAY_CONTROL", "").startswith("http://127.0.0.1:") and
          env.get("COUPON_DEVPAY_LEDGER") == os.path.join(svc.dir, "devpay-ledger.jsonl"),
          "env file: COUPON_PAYMENT_URL, _SECRET, COUPON_DEVPAY_CONTROL, _LEDGER (%r)" % (
              {k: v for k, v in env.items() if "PAY" in k},))
    check(svc.payment_url == env["COUPON_PAYMENT_URL"] and svc.payment_secret == "test_sk_devpay" and
          svc.devpay_control == env["COUPON_DEVPAY_CONTROL"], "svc.payment_url / payment_secret / devpay_control")
    check(svc.devpay_pid and pid_alive(svc.devpay_pid), "coupon-devpay runs (pid %s)" % svc.devpay_pid)
    check(svc.devpay("GET", "/state") == (200, {"state": "up"}), "svc.devpay GET /state")
    r = subprocess.run([svc.script, "status", "--dir", svc.dir], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and any(line.startswith("devpay") and "running" in line
                                    for line in r.stdout.splitlines()),
          "local-services.sh status: devpay running, exit 0 (%d: %s)" % (r.returncode, r.stdout.strip()))

    gw = Gateway(svc.payment_url, svc.payment_secret, svc.devpay_control)
    test_approve_and_replay(gw)
    test_decline(gw)
    test_slow(gw)
    test_timeout(gw)
    test_lost(gw)
    test_cancel(gw)
    test_bad_requests(gw)
    test_down_up(gw)
    test_concurrent(gw)
    test_ledger_file(svc, gw)
    check(svc.devpay_ledger() == gw.ledger(), "svc.devpay_ledger()")


# ---- the program itself -------------------------------------------------------

def run_direct(tmp):
    prog = find_program("coupon-devpay")
    r = subprocess.run([prog, "--version"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and r.stdout.startswith("coupon-devpay ") and len(r.stdout.splitlines()) == 1,
          "--version: %r" % r.stdout)
    r = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "DEVELOPMENT AND TESTS ONLY" in r.stdout and "PRODUCTION" in r.stdout and
          "memory" in r.stdout, "--help says development and tests only, never production, in memory")
    r = subprocess.run([prog, "--no-such-flag"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 2 and r.stderr.strip(), "a bad flag: exit 2 (%d)" % r.returncode)
    r = subprocess.run([prog, "--threads", "0"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, "--threads 0: exit 2, one line")

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run([prog, "--listen", "127.0.0.1:%d" % port], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "in use" in r.stderr,
              "port in use: exit 1 with one line (%d: %r)" % (r.returncode, r.stderr))

    port, cport = free_port(), free_port()
    ready = os.path.join(tmp, "ready")
    log = os.path.join(tmp, "devpay.log")
    proc = start_process([prog, "--listen", "127.0.0.1:%d" % port, "--control", "127.0.0.1:%d" % cport,
                          "--secret", "sk_direct", "--ready-file", ready, "--timeout-hold-ms", "1000",
                          "--threads", "8"], {"COUPON_PAYMENT_SECRET": "ignored"}, log)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(ready) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(ready) as f:
            check(f.read() == "http://127.0.0.1:%d\n" % port, "ready file: http://ADDR")
        wait_http("http://127.0.0.1:%d/state" % cport, proc=proc)
        gw = Gateway("http://127.0.0.1:%d" % port, "sk_direct", "http://127.0.0.1:%d" % cport)
        st, _, _ = gw.confirm("pk-direct-1", "order-direct-1", 5)
        check(st == 200, "--secret wins over COUPON_PAYMENT_SECRET")

        t0 = time.monotonic()
        try:
            gw.confirm("timeout-direct", "order-direct-2", 5, timeout=10)
            check(False, "--timeout-hold-ms 1000: connection closed without an answer")
        except http.client.RemoteDisconnected:
            took = time.monotonic() - t0
            check(0.9 <= took < 5, "--timeout-hold-ms 1000: closed without an answer after %.2fs" % took)
        check(gw.lookup("order-direct-2")[0] == 404, "... and nothing charged")

        # /down while a slow card sleeps: prompt, and the sleeper is dropped
        # unanswered and uncharged.
        out = {}

        def slow():
            try:
                out["r"] = gw.confirm("slow20000-direct", "order-direct-3", 5, timeout=30)
            except OSError as e:
                out["r"] = e
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        st, body = gw.ctl("POST", "/down")
        took = time.monotonic() - t0
        t.join(10)
        check(st == 200 and took < 3, "/down with a slow card in flight returns in %.2fs" % took)
        check(isinstance(out.get("r"), http.client.RemoteDisconnected),
              "... the slow call ends without an answer (%r)" % (out.get("r"),))
        gw.ctl("POST", "/up")
        check(gw.lookup("order-direct-3")[0] == 404, "... and charged nothing")

        # SIGTERM with calls in flight: a normal one finishes, a timeout
        # card is dropped, and the exit is 0 and prompt.
        out.clear()

        def hold():
            try:
                out["hold"] = gw.confirm("timeout-direct-2", "order-direct-4", 5, timeout=30)
            except OSError as e:
                out["hold"] = e
        t = threading.Thread(target=hold)
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = stop_process(proc, signal.SIGTERM, timeout=30)
        took = time.monotonic() - t0
        t.join(10)
        check(rc == 0 and took < 5, "SIGTERM: exit 0 in %.2fs (rc %s)" % (took, rc))
        check(not os.path.exists(ready), "the ready file is removed on exit")
        with open(log) as f:
            lines = f.read().splitlines()
        check(any(line == "coupon-devpay: listening on 127.0.0.1:%d (control 127.0.0.1:%d)" % (port, cport)
                  for line in lines), "start line on stderr")
        check(all(line.startswith("coupon-devpay: ") for line in lines), "every log line is prefixed")
    finally:
        stop_process(proc, signal.SIGKILL, timeout=10)


def main():
    svc = Services()
    devpay_pid = None
    try:
        with svc:
            devpay_pid = svc.devpay_pid
            run_services(svc)
    except Exception as e:  # report, then fail
        import traceback
        traceback.print_exc()
        failures.append("exception: %s" % e)
    check(devpay_pid and not pid_alive(devpay_pid), "local-services.sh stop ends coupon-devpay")

    try:
        with tempfile.TemporaryDirectory(prefix="coupon-devpay-") as tmp:
            run_direct(tmp)
    except Exception as e:
        import traceback
        traceback.print_exc()
        failures.append("exception: %s" % e)

    if failures:
        print("\n%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)), flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
