"""coupon-api counts the file descriptors it may need and does not start
when they cannot fit (short of them, civetweb's accept loop spins on
EMFILE and every request that needs a new connection fails).

Per request thread it may hold seven: its client socket, two sockets in
civetweb's accept queue (twice the threads), a Redis connection for each
product and one for /readyz, one to the payment gateway; plus a fixed
part. It raises its soft limit as far as that needs (and the
hard one where it may). Under `ulimit -n 600` (without CAP_SYS_RESOURCE):
- COUPON_HTTP_THREADS=300 exits 1 at once with one line saying how many
  descriptors it needs, the limit, and how many threads fit;
- with that many threads it starts, and 3 x threads connections at once
  (each thread serving one, the others waiting in the accept queue), each
  asking GET campaign (a Redis connection per thread) and closing: every
  one answered 200; then /readyz 200 and an issue 202; the log never says
  "Too many open files"."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import ADMIN_TOKEN, Api, check, find_program, main, stop_process  # noqa: E402
from services import free_port, start_process, wait_http  # noqa: E402

LIMIT = 600


def api_under_limit(svc, threads, log):
    port = free_port()
    env = dict(svc.env, COUPON_HTTP_ADDR="127.0.0.1:%d" % port, COUPON_HTTP_THREADS=str(threads),
               COUPON_ADMIN_TOKEN=ADMIN_TOKEN)
    # Without CAP_SYS_RESOURCE, so that root's coupon-api cannot lift the
    # hard limit either.
    argv = ["setpriv", "--bounding-set", "-sys_resource", "bash", "-c", 'ulimit -n %d && exec "$0"' % LIMIT,
            find_program("coupon-api")]
    return port, start_process(argv, env, svc.path(log))


def get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split()[1]) if data else None
    finally:
        s.close()


def run(svc):
    port, p = api_under_limit(svc, 300, "too-many.log")
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        stop_process(p)
        rc = None
    with open(svc.path("too-many.log"), errors="replace") as f:
        log = f.read()
    check(rc == 1, "300 threads under ulimit -n %d: exit %s\n%s" % (LIMIT, rc, log[-1000:]))
    m = re.search(r"needs up to (\d+) file descriptors.*the limit is (\d+).*use at most (\d+) threads", log)
    check(m and int(m.group(2)) == LIMIT, "the refusal does not say what is needed and what fits:\n%s" % log)
    fit = int(m.group(3))
    print("needs %s for 300 threads; %d threads fit under %d" % (m.group(1), fit, LIMIT), flush=True)
    check(20 < fit < 300, "%d threads said to fit" % fit)

    port, p = api_under_limit(svc, fit, "fit.log")
    try:
        wait_http("http://127.0.0.1:%d/healthz" % port, proc=p)
        api = Api(svc)
        api.port, api.addr, api.base = port, "127.0.0.1:%d" % port, "http://127.0.0.1:%d" % port
        api.create_campaign("fd", 100)
        results = [None] * (3 * fit)

        def one(i):
            try:
                results[i] = get(port, "/v1/campaigns/fd")
            except OSError as e:
                results[i] = str(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(3 * fit)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        bad = [r for r in results if r != 200]
        check(not bad, "%d of %d requests not 200: %s" % (len(bad), len(results), sorted(set(map(str, bad)))))
        check(api.request("GET", "/readyz")[0] == 200, "readyz after the burst")
        st, _, b = api.issue("fd", "u-1")
        check(st == 202, "issue after the burst: %s %s" % (st, b))
        check(p.poll() is None, "coupon-api died")
    finally:
        stop_process(p)
    with open(svc.path("fit.log"), errors="replace") as f:
        log = f.read()
    check("Too many open files" not in log, "EMFILE in the log:\n%s" % log[-2000:])


if __name__ == "__main__":
    main(run)
