"""COUPON_HTTP_REQUEST_TIMEOUT_MS covers the whole request, body included.

civetweb bounds the head itself, but a body only per read: a body trickled
one byte at a time was answered 202 after 20 and 29 s with a 10 s timeout.
With a 3 s timeout here:
- a body of 40 bytes sent one byte every 250 ms after a prompt head (10 s
  in all): 408 request_timeout within [3.0, 3.8] s of the connect, the
  connection closed, nothing issued;
- a head trickled over 2 s, then the body trickled: 408 within [3.0, 3.8] s
  of the connect;
- a head and 5 body bytes, then silence: 408 within [3.0, 6.5] s (the read
  in progress is civetweb's: it ends one timeout after the last byte);
- on a kept-alive connection: an answer, 1.5 s idle, then a request whose
  body trickles: 408 within [3.0, 3.8] s of the previous answer; a request
  sent whole after 2 s idle is answered 202 (a late but complete body is
  never refused);
- a body that arrives whole in 2 s of trickling (within the timeout): 202.
Every 408 changed nothing in Redis."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, main  # noqa: E402

TIMEOUT = 3.0


def head(cid, length):
    return (b"POST /v1/campaigns/%s/issue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (cid.encode(), length))


def body(user):
    b = b'{"user_id":"%s"}' % user.encode()
    return b + b" " * (40 - len(b))


def read_status(sock, timeout=15):
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, data
        data += chunk
    hd, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in hd.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += sock.recv(4096)
    return int(hd.split()[1]), hd + b"\r\n\r\n" + rest


def closed(sock):
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def trickle(sock, data, every, stop_at=None):
    """Sends @data a byte at a time; stops when the server answers or closes."""
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return
        time.sleep(every)


def run(svc):
    api = Api(svc, {"COUPON_HTTP_REQUEST_TIMEOUT_MS": str(int(TIMEOUT * 1000))}).start()
    api.create_campaign("sb", 1000)
    results = []

    def expect_408(name, t0, sock, lo, hi):
        st, raw = read_status(sock)
        dt = time.monotonic() - t0
        results.append((name, st, dt))
        check(st == 408 and b'"request_timeout"' in raw, "%s: %s %r" % (name, st, raw[-200:]))
        check(lo <= dt <= hi, "%s: answered after %.2fs, want %.1f..%.1f" % (name, dt, lo, hi))
        check(closed(sock), "%s: the connection stayed open" % name)

    import threading

    # 1. prompt head, body one byte every 250 ms
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", api.port))
    s.sendall(head("sb", 40))
    t = threading.Thread(target=trickle, args=(s, body("t-1"), 0.25))
    t.start()
    expect_408("trickled body", t0, s, TIMEOUT, TIMEOUT + 0.8)
    s.close()
    t.join()

    # 2. trickled head, then trickled body
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", api.port))
    h = head("sb", 40)

    def head_then_body():
        trickle(s, h, 2.0 / len(h))
        trickle(s, body("t-2"), 0.25)
    t = threading.Thread(target=head_then_body)
    t.start()
    expect_408("trickled head and body", t0, s, TIMEOUT, TIMEOUT + 0.8)
    s.close()
    t.join()

    # 3. head and 5 bytes, then silence
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", api.port))
    s.sendall(head("sb", 40) + body("t-3")[:5])
    expect_408("silent after 5 bytes", t0, s, TIMEOUT, 2 * TIMEOUT + 0.5)
    s.close()

    # 4. kept alive: an answer, idle, then a trickled body
    s = socket.create_connection(("127.0.0.1", api.port))
    s.sendall(head("sb", 40) + body("k-1"))
    st, _ = read_status(s)
    check(st == 202, "keep-alive first request: %s" % st)
    t0 = time.monotonic()
    time.sleep(1.5)
    s.sendall(head("sb", 40))
    t = threading.Thread(target=trickle, args=(s, body("k-2"), 0.25))
    t.start()
    expect_408("kept alive, trickled body", t0, s, TIMEOUT, TIMEOUT + 0.8)
    s.close()
    t.join()

    # 5. kept alive, a whole request after 2 s idle
    s = socket.create_connection(("127.0.0.1", api.port))
    s.sendall(head("sb", 40) + body("k-3"))
    st, _ = read_status(s)
    time.sleep(2.0)
    s.sendall(head("sb", 40) + body("k-4"))
    st, raw = read_status(s)
    check(st == 202, "whole request after 2 s idle: %s %r" % (st, raw[-200:]))
    s.close()

    # 6. a body trickled over 2 s: within the timeout
    s = socket.create_connection(("127.0.0.1", api.port))
    s.sendall(head("sb", 40))
    trickle(s, body("t-6"), 2.0 / 40)
    st, raw = read_status(s)
    check(st == 202, "body trickled within the timeout: %s %r" % (st, raw[-200:]))
    s.close()

    users = set(svc.redis("SMEMBERS", "coupon:{sb}:users"))
    check(users == {"k-1", "k-3", "k-4", "t-6"}, "issued: %s" % sorted(users))
    for name, st, dt in results:
        print("%-28s %s after %.2fs" % (name, st, dt), flush=True)


if __name__ == "__main__":
    main(run)
