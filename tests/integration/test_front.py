"""The nginx front (deploy/nginx) before a real coupon-api, against real
Redis, MariaDB and the dev broker.

- Idle sockets and slowloris: 10,000 connections that send nothing and
  500 that trickle their request head a byte a second are held open at
  the front while 600 normal requests (half on new connections) are
  made: each is answered, and their p99 stays within 5x the p99 of the
  same requests without that load (floored at 5 ms: sub-millisecond p99s
  are noise). The same against bare coupon-api (1,030 idle sockets, its
  default 1,024 threads) is measured and printed for comparison.
- Rate limits: a client (from 127.0.0.2) over its per-IP rate gets 429
  with the API's JSON error body and Retry-After, and exactly the users
  answered 202 are in Redis; one bearer token over its own rate is held
  back even from an address exempt from the per-IP limit.
- Only the public routes: with operators elsewhere, admin routes, the dashboard,
  /metrics and the probes (also through "..", "//" and %-encoded paths)
  answer 404 and change nothing; unknown paths 404 JSON.
- What coupon-api receives (a recording upstream): requests read whole
  before they are passed on (a body trickled over 2 s arrives at once,
  after it), chunked bodies turned into Content-Length, the client's
  address in X-Real-IP / X-Forwarded-For, several requests over one
  kept-alive upstream connection.

Prints the figures ("front: ..." lines) for the README."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import ADMIN_TOKEN, Api, Front, check, main, wait_until  # noqa: E402

IDLE, SLOW, NORMAL = 10_000, 500, 600


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def normal_requests(addr, cid, prefix, n=NORMAL, workers=8):
    """@n issue requests of distinct users over @workers threads, every
    other one on a new connection; returns (latencies in s, statuses)."""
    host, port = addr.split(":")
    lat, statuses, lock = [], [], threading.Lock()

    def work(w):
        conn = None
        for i in range(w, n, workers):
            body = json.dumps({"user_id": "%s-%d" % (prefix, i)})
            t0 = time.monotonic()
            try:
                if conn is None or i % 2:
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request("POST", "/v1/campaigns/%s/issue" % cid, body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                st = r.status
            except OSError as e:
                st = "error: %s" % e
                conn = None
            with lock:
                lat.append(time.monotonic() - t0)
                statuses.append(st)
        if conn:
            conn.close()
    ts = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, statuses


def open_idle(addr, n):
    host, port = addr.split(":")
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((host, int(port)))
        except BlockingIOError:
            pass
        socks.append(s)
    time.sleep(1.0)
    return socks


def established(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True).stdout
    return len(out.splitlines())


class Slowloris:
    """@n clients that send a request head one byte a second, never ending it."""

    def __init__(self, addr, n):
        host, port = addr.split(":")
        self.socks, self.stop = [], threading.Event()
        for _ in range(n):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"POST /v1/campaigns/fr/issue HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            self.socks.append(s)
        self.thread = threading.Thread(target=self.drip, daemon=True)
        self.thread.start()

    def drip(self):
        while not self.stop.wait(1.0):
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def idle_and_slowloris(svc, api, front):
    base_lat, base_st = normal_requests(front.addr, "fr", "base")
    check(all(s == 202 for s in base_st), "unloaded: %s" % sorted(set(map(str, base_st))))
    base_p99 = pct(base_lat, 0.99)

    idle = open_idle(front.addr, IDLE)
    slow = Slowloris(front.addr, SLOW)
    held = established(front.port)
    lat, st = normal_requests(front.addr, "fr", "load")
    held_after = established(front.port)
    slow.close()
    for s in idle:
        s.close()
    bad = [s for s in st if s != 202]
    check(not bad, "under %d idle + %d slowloris: %d of %d not 202: %s" % (IDLE, SLOW, len(bad), len(st), bad[:5]))
    check(held >= IDLE + SLOW - 50 and held_after >= IDLE + SLOW - 50,
          "the front held %d / %d connections, not the %d opened" % (held, held_after, IDLE + SLOW))
    p99, mx = pct(lat, 0.99), max(lat)
    print("front: %d idle + %d slowloris held (%d established): %d normal requests all 202, "
          "p50 %.1f ms p99 %.1f ms max %.1f ms; unloaded p99 %.1f ms" % (
              IDLE, SLOW, held, len(lat), pct(lat, 0.5) * 1e3, p99 * 1e3, mx * 1e3, base_p99 * 1e3), flush=True)
    check(p99 <= 5 * max(base_p99, 0.005),
          "p99 %.1f ms under load vs %.1f ms unloaded" % (p99 * 1e3, base_p99 * 1e3))


def bare_idle(svc):
    """The same kind of load against bare coupon-api, for the record."""
    bare = Api(svc, {"COUPON_HTTP_THREADS": "1024"}, name="api-bare").start()
    host, port = bare.direct.split(":")
    idle = open_idle(bare.direct, 1030)
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/healthz")
        c.getresponse().read()
        waited = time.monotonic() - t0
    except OSError:
        waited = float("inf")
    for s in idle:
        s.close()
    print("front: bare coupon-api with 1030 idle sockets: the next request waited %.2f s" % waited, flush=True)
    bare.stop()


def rate_limits(svc, front):
    host, port = front.addr.split(":")
    results, lock = [], threading.Lock()

    def work(w):
        conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=("127.0.0.2", 0))
        for i in range(w, 1000, 16):
            user = "rl-%d" % i
            conn.request("POST", "/v1/campaigns/fr/issue", json.dumps({"user_id": user}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            with lock:
                results.append((user, r.status, r.getheader("Retry-After"), r.getheader("Content-Type"), body))
        conn.close()
    t0 = time.monotonic()
    ts = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    limited = [r for r in results if r[1] == 429]
    ok = [r for r in results if r[1] == 202]
    check(limited, "1000 requests in %.1f s from one address: none limited" % elapsed)
    check(len(ok) + len(limited) == len(results), "other answers: %s" % sorted({r[1] for r in results}))
    for user, st, ra, ct, body in limited:
        b = json.loads(body)
        check(ra == "1" and ct == "application/json" and b["error"]["code"] == "rate_limited",
              "429 of %s: Retry-After %s, %s, %s" % (user, ra, ct, body))
    members = set(svc.redis("SMEMBERS", "coupon:{fr}:users"))
    check({u for u, *_ in ok} <= members and not ({u for u, *_ in limited} & members),
          "Redis disagrees with the answers")
    rl_members = {m for m in members if m.startswith("rl-")}
    check(rl_members == {u for u, *_ in ok}, "%d rl- users in Redis, %d answered 202" % (len(rl_members), len(ok)))
    print("front: 1000 requests from one address in %.2f s: %d passed, %d got 429 (rate 100 r/s, burst 500)"
          % (elapsed, len(ok), len(limited)), flush=True)

    # One token over its own rate, from an address exempt from the IP limit.
    tok = "Bearer aaaa.bbbb." + "s" * 43
    sts = [front.request("GET", "/v1/campaigns/fr", headers={"Authorization": tok})[0] for _ in range(60)]
    check(sts.count(429) >= 20 and sts.count(200) >= 20,
          "one token, 60 requests: %s" % {s: sts.count(s) for s in set(sts)})
    print("front: one token, 60 requests at once: %d passed, %d got 429 (5 r/s, burst 20)"
          % (sts.count(200), sts.count(429)), flush=True)


def only_public(svc, api):
    front = Front(svc, api.direct, name="front-closed", operators="10.9.9.9").start(probe=False)
    campaigns = svc.mysql("SELECT COUNT(*) FROM campaigns")
    cases = [("GET", "/metrics", None), ("GET", "/readyz", None), ("GET", "/healthz", None),
             ("POST", "/v1/campaigns", {"id": "sneaky", "name": "x", "total": 5}),
             ("POST", "/v1/ticket-types", {"id": "sneaky", "name": "x", "price": 1, "currency": "KRW", "total": 5}),
             ("GET", "/v1/campaigns/fr/../../metrics", None), ("GET", "//metrics", None),
             ("GET", "/%6detrics", None), ("POST", "/v1/campaigns/", {"id": "sneaky", "name": "x", "total": 5}),
             ("GET", "/nope", None), ("GET", "/v1/campaigns/fr/issue/x", None),
             ("GET", "/dashboard", None), ("GET", "/v1/dashboard", None), ("GET", "/dashboard/app.js", None),
             ("GET", "/dashboard/chart.min.js", None), ("GET", "/dashboard/../v1/dashboard", None),
             ("GET", "/dashboard/", None)]
    for method, path, body in cases:
        st, hd, b = raw(front.addr, method, path, body)
        check(st == 404 and isinstance(b, dict) and b["error"]["code"] == "not_found",
              "%s %s through a closed front: %s %s" % (method, path, st, b))
    check(svc.mysql("SELECT COUNT(*) FROM campaigns") == campaigns, "a campaign was created through the front")
    st, _, b = front.request("GET", "/v1/campaigns/fr")
    check(st == 200, "public GET through the closed front: %s %s" % (st, b))
    front.stop()
    # from an operator's address the dashboard passes, its page policy intact
    front = Front(svc, api.direct, name="front-ops").start()
    for path in ("/dashboard", "/dashboard/app.js", "/dashboard/app.css", "/dashboard/chart.min.js"):
        st, hd, _ = raw(front.addr, "GET", path, None)
        hd = {k.lower(): v for k, v in hd.items()}
        check(st == 200 and "default-src 'none'" in hd.get("content-security-policy", ""),
              "%s from an operator through the front: %s %s" % (path, st, hd))
    wait_until(lambda: raw(front.addr, "GET", "/v1/dashboard", None)[0] == 200, 10, "the dashboard's data")
    front.stop()


def raw(addr, method, path, body):
    """One request with the path exactly as given (urllib normalizes)."""
    host, port = addr.split(":")
    data = json.dumps(body).encode() if body is not None else b""
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.putrequest(method, path, skip_accept_encoding=True)
    c.putheader("Authorization", "Bearer " + ADMIN_TOKEN)
    if body is not None:
        c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        return r.status, dict(r.getheaders()), json.loads(text)
    except ValueError:
        return r.status, dict(r.getheaders()), text


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        Recorder.seen.append({"at": time.monotonic(), "headers": dict(self.headers), "body": body,
                              "peer": self.client_address[1]})
        out = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def what_upstream_sees(svc):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    front = Front(svc, "127.0.0.1:%d" % srv.server_address[1], name="front-rec").start(probe=False)
    host, port = front.addr.split(":")
    # A body trickled over 2 s reaches the upstream at once, after it.
    s = socket.create_connection((host, int(port)), timeout=10, source_address=("127.0.0.2", 0))
    body = b'{"user_id":"trickle"}'
    t0 = time.monotonic()
    s.sendall(b"POST /v1/campaigns/fr/issue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    for i in range(len(body)):
        if i:
            time.sleep(2.0 / len(body))
        s.sendall(body[i:i + 1])
    sent = time.monotonic()  # the last byte is out
    s.recv(4096)
    s.close()
    check(len(Recorder.seen) == 1, "upstream saw %d requests" % len(Recorder.seen))
    r = Recorder.seen[0]
    check(r["at"] >= sent and r["body"] == body,
          "upstream got the request %.2f s after the first byte, the body ended at %.2f s" % (r["at"] - t0, sent - t0))
    h = {k.lower(): v for k, v in r["headers"].items()}
    check(h.get("x-real-ip") == "127.0.0.2" and h.get("x-forwarded-for") == "127.0.0.2",
          "client address passed on: %s" % h)
    # A chunked body arrives with Content-Length.
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"POST /v1/campaigns/fr/issue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n\"b\"\r\n1\r\n}\r\n0\r\n\r\n")
    s.recv(4096)
    s.close()
    h = {k.lower(): v for k, v in Recorder.seen[-1]["headers"].items()}
    check(h.get("content-length") == "9" and "transfer-encoding" not in h and Recorder.seen[-1]["body"] == b'{"a":"b"}',
          "chunked body reached the upstream as %s" % h)
    # Kept alive: many client requests, few upstream connections.
    for i in range(20):
        front.request("POST", "/v1/campaigns/fr/issue", {"user_id": "ka-%d" % i})
    peers = {r["peer"] for r in Recorder.seen[-20:]}
    check(len(peers) <= 4, "20 requests used %d upstream connections" % len(peers))
    front.stop()
    srv.shutdown()


def run(svc):
    api = Api(svc).start()
    api.create_campaign("fr", 10_000_000)
    front = Front(svc, api.direct, exempt="127.0.0.1", header_timeout="30s").start()
    idle_and_slowloris(svc, api, front)
    rate_limits(svc, front)
    only_public(svc, api)
    what_upstream_sees(svc)
    bare_idle(svc)
    front.stop()


if __name__ == "__main__":
    main(run)
