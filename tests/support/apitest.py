"""Helpers shared by the integration tests of coupon-api: start the API on a
free port against a Services instance, create campaigns, run cpn-loadgen
and read its per-request records, and snapshot what Redis and Kafka hold
so a test can prove that a refused request changed nothing."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from services import (Services, find_program, free_port, http, source_dir, start_process,  # noqa: E402
                      stop_process, wait_http)

ADMIN_TOKEN = "test-admin-token-0123456789"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


_running = []  # every Api started, stopped by main() whatever happens


class Front:
    """nginx in front of coupon-api (deploy/nginx/front.sh) listening on a
    free port; @settings are COUPON_FRONT_* values without the prefix."""

    def __init__(self, svc, upstream, name="front", **settings):
        self.svc = svc
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.base = "http://" + self.addr
        self.dir = svc.path(name)
        self.env = dict(os.environ)
        self.env.update({"COUPON_FRONT_LISTEN": self.addr, "COUPON_FRONT_UPSTREAM": upstream})
        for k, v in settings.items():
            self.env["COUPON_FRONT_" + k.upper()] = str(v)
        self.pid = None

    def script(self, *args):
        return subprocess.run(["bash", os.path.join(source_dir(), "deploy", "nginx", "front.sh"), *args],
                              env=self.env, capture_output=True, text=True, timeout=60)

    def start(self, probe=True):
        """@probe: wait for GET /healthz through it (the front lets the
        test's address reach the probes); else for the port to accept."""
        r = self.script("start", self.dir)
        check(r.returncode == 0, "front.sh start: %s" % r.stderr[-2000:])
        self.pid = int(r.stdout.strip().splitlines()[-1])
        _fronts.append(self)
        if probe:
            wait_http(self.base + "/healthz", timeout=30)
        else:
            import socket
            socket.create_connection(("127.0.0.1", self.port), timeout=10).close()
        print("front: nginx (pid %d) on %s before %s" % (self.pid, self.addr, self.env["COUPON_FRONT_UPSTREAM"]),
              file=sys.stderr, flush=True)
        return self

    def stop(self):
        if self.pid is not None:
            self.script("stop", self.dir)
            self.pid = None

    def request(self, method, path, body=None, headers=None, timeout=10):
        return http(method, self.base + path, body=body, headers=headers, timeout=timeout)


_fronts = []  # every Front started, stopped by main()


class Api:
    """One coupon-api process. @extra_env overrides its environment.

    With COUPON_TEST_FRONT=1 in the test's environment, start() also puts
    an nginx front before it (deploy/nginx, loopback exempt from the rate
    limits) and requests go through the front: a test written for bare
    coupon-api then runs unchanged through it."""

    def __init__(self, svc, extra_env=None, name="api"):
        self.svc = svc
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.base = "http://" + self.addr
        self.direct = self.addr
        self.front = None
        self.env = dict(svc.env)
        self.env.update({
            "COUPON_HTTP_ADDR": self.addr,
            "COUPON_ADMIN_TOKEN": ADMIN_TOKEN,
            "COUPON_HTTP_THREADS": "300",
        })
        if extra_env:
            self.env.update(extra_env)
        self.log = svc.path(name + ".log")
        self.proc = None

    def start(self):
        self.proc = start_process([find_program("coupon-api")], self.env, self.log)
        _running.append(self)
        wait_http("http://%s/healthz" % self.direct, timeout=30, proc=self.proc)
        if os.environ.get("COUPON_TEST_FRONT") == "1" and self.front is None:
            self.front = Front(self.svc, self.direct, name="front-" + os.path.basename(self.log)[:-4],
                               exempt="127.0.0.1").start()
            self.port, self.addr, self.base = self.front.port, self.front.addr, self.front.base
        return self

    def stop(self, sig=None):
        if self.proc is None:
            return None
        import signal
        rc = stop_process(self.proc, sig or signal.SIGTERM)
        self.proc = None
        return rc

    def kill9(self):
        import signal
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def request(self, method, path, body=None, headers=None, timeout=10):
        return http(method, self.base + path, body=body, headers=headers, timeout=timeout)

    def admin(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + ADMIN_TOKEN}
        h.update(headers or {})
        return self.request(method, path, body=body, headers=h)

    def create_campaign(self, cid, total, **fields):
        body = {"id": cid, "name": fields.pop("name", "Campaign " + cid), "total": total}
        body.update(fields)
        st, _, b = self.admin("POST", "/v1/campaigns", body)
        check(st == 201, "create %s: %s %s" % (cid, st, b))
        return b

    def issue(self, cid, user):
        return self.request("POST", "/v1/campaigns/%s/issue" % cid, {"user_id": user})


class Worker:
    """One coupon-worker process. Batches are small and the commit interval
    short in tests, so state settles fast."""

    def __init__(self, svc, extra_env=None, name="worker"):
        self.svc = svc
        self.env = dict(svc.env)
        self.env.update({
            "COUPON_RETRY_BASE_MS": "500",
            # a worker killed by a test must not hold its partitions for 45 s
            "COUPON_KAFKA_CONFIG": "session.timeout.ms=6000,heartbeat.interval.ms=500,"
                                   "reconnect.backoff.max.ms=500",
        })
        if extra_env:
            self.env.update(extra_env)
        self.name = name
        self.log = svc.path(name + ".log")
        self.proc = None

    def start(self):
        self.proc = start_process([find_program("coupon-worker")], self.env, self.log)
        _running.append(self)
        return self

    def stop(self, sig=None):
        if self.proc is None:
            return None
        import signal
        rc = stop_process(self.proc, sig or signal.SIGTERM, timeout=60)
        self.proc = None
        return rc

    def kill9(self):
        import signal
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def wait_exit(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def ctl(svc, *args, check_rc=0, timeout=180):
    """Runs couponctl with the services' environment; returns (rc, stdout).
    Fails the test when the exit status is not @check_rc (None: any)."""
    r = subprocess.run([find_program("couponctl"), *[str(a) for a in args]],
                       env={**os.environ, **svc.env}, capture_output=True, text=True, timeout=timeout)
    if check_rc is not None and r.returncode != check_rc:
        raise Failure("couponctl %s exited %d (expected %d):\n%s%s" % (
            " ".join(map(str, args)), r.returncode, check_rc, r.stdout[-3000:], r.stderr[-3000:]))
    return r.returncode, r.stdout


def kafka_lag(svc):
    _, out = ctl(svc, "lag")
    return int(out.split("lag=")[1].split()[0])


def mysql_coupons(svc, cid):
    """{user_id: seq} of the campaign's coupons rows; fails on a duplicate."""
    rows = svc.mysql("SELECT user_id, seq FROM coupons WHERE campaign_id = '%s'" % cid)
    out = {}
    for user, seq in rows:
        check(user not in out, "user %s has two coupons rows in %s" % (user, cid))
        out[user] = int(seq)
    return out


def mysql_count(svc, cid):
    return int(svc.mysql("SELECT COUNT(*) FROM coupons WHERE campaign_id = '%s'" % cid)[0][0])


def mysql_persisted(svc, cid):
    return int(svc.mysql("SELECT persisted FROM campaigns WHERE id = '%s'" % cid)[0][0])


def failed_events(svc, where="1=1"):
    """Rows of failed_events as dicts."""
    cols = ["id", "topic", "kafka_partition", "kafka_offset", "scope_id", "subject_id", "error",
            "attempts", "status", "payload"]
    rows = svc.mysql("SELECT %s FROM failed_events WHERE %s ORDER BY id" % (", ".join(cols), where))
    return [dict(zip(cols, r)) for r in rows]


def wait_settled(svc, cid, timeout=120):
    """Waits until the outbox is empty, the worker group's lag is 0 and
    MySQL holds as many rows (+ open failed events) as Redis's count.
    Returns the seconds it took."""
    t0 = time.monotonic()

    def settled():
        count = int(svc.redis("GET", "coupon:{%s}:count" % cid) or 0)
        if svc.redis("XLEN", "coupon:{%s}:outbox" % cid) != 0:
            return False
        failed = int(svc.mysql("SELECT COUNT(*) FROM failed_events WHERE scope_id = '%s'"
                               " AND status = 'open'" % cid)[0][0])
        if mysql_count(svc, cid) + failed != count:
            return False
        return kafka_lag(svc) == 0
    wait_until(settled, timeout, "campaign %s to settle in MySQL" % cid, interval=0.5)
    return time.monotonic() - t0


def start_load(api, cid, out_path, duration, connections=8, prefix="u-", timeout_ms=5000):
    """cpn-loadgen in the background, a new user per request; returns the
    Popen. finish_load() waits for it and returns its records."""
    argv = [find_program("cpn-loadgen"), "--addr", api.addr, "--campaign", cid, "--out", out_path,
            "--connections", str(connections), "--duration", str(duration), "--user-prefix", prefix,
            "--timeout-ms", str(timeout_ms)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_load(proc, out_path, timeout=300):
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failure("cpn-loadgen did not finish")
    if proc.returncode != 0:
        raise Failure("cpn-loadgen failed (%d): %s" % (proc.returncode, stderr[-2000:]))
    records = []
    with open(out_path) as f:
        for line in f:
            user, status, seq, start, end = line.rstrip("\n").split("\t")
            records.append((user, int(status), None if seq == "-" else int(seq), int(start), int(end)))
    return records


def check_persisted_exactly(svc, cid, records, allow_failed=False):
    """Every 202 of @records is one coupons row with its seq; MySQL's users
    are exactly Redis's; count = SCARD = rows = persisted; no failed event
    (unless @allow_failed). Returns the number of 202s."""
    got = {}
    for user, status, seq, _, _ in records:
        if status == 202:
            check(user not in got, "user %s got two 202s" % user)
            got[user] = seq
    rows = mysql_coupons(svc, cid)
    lost = set(got) - set(rows)
    check(not lost, "%d users that got 202 are not in MySQL (e.g. %s)" % (len(lost), sorted(lost)[:5]))
    for user, seq in got.items():
        check(rows[user] == seq, "user %s: told seq %d, MySQL has %d" % (user, seq, rows[user]))
    redis_users = set(svc.redis("SMEMBERS", "coupon:{%s}:users" % cid))
    count = int(svc.redis("GET", "coupon:{%s}:count" % cid) or 0)
    check(set(rows) == redis_users, "MySQL and Redis disagree: %d only in Redis, %d only in MySQL" % (
        len(redis_users - set(rows)), len(set(rows) - redis_users)))
    check(count == len(redis_users) == len(rows) == mysql_persisted(svc, cid),
          "count %d, SCARD %d, rows %d, persisted %d differ" % (
              count, len(redis_users), len(rows), mysql_persisted(svc, cid)))
    check(sorted(rows.values()) == list(range(1, len(rows) + 1)), "seqs in MySQL are not 1..n once each")
    if not allow_failed:
        fe = failed_events(svc)
        check(fe == [], "failed_events holds %d rows, e.g. %s" % (len(fe), fe[:2]))
    return len(got)


def migrate(svc):
    subprocess.run([find_program("couponctl"), "migrate"], env={**os.environ, **svc.env},
                   check=True, stdout=subprocess.DEVNULL)


def loadgen(api, cid, out_path, **opts):
    """Runs cpn-loadgen against @api; returns (summary dict, records) where
    records is a list of (user, status, seq or None, start_us, end_us)."""
    argv = [find_program("cpn-loadgen"), "--addr", api.addr, "--campaign", cid, "--out", out_path]
    for k, v in opts.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise Failure("cpn-loadgen failed (%d): %s" % (res.returncode, res.stderr[-2000:]))
    summary = {}
    for line in res.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            summary[k] = v
    records = []
    with open(out_path) as f:
        for line in f:
            user, status, seq, start, end = line.rstrip("\n").split("\t")
            records.append((user, int(status), None if seq == "-" else int(seq), int(start), int(end)))
    return summary, records


def redis_state(svc, cid):
    """Everything Redis holds of a campaign, comparable with ==."""
    k = "coupon:{%s}:" % cid
    return {
        "meta": sorted(svc.redis("HGETALL", k + "meta") or []),
        "count": svc.redis("GET", k + "count"),
        "users": sorted(svc.redis("SMEMBERS", k + "users") or []),
        "outbox": svc.redis("XLEN", k + "outbox"),
    }


def kafka_messages(svc):
    return svc.kafka_consume_all()


def burst(calls, workers=None):
    """Runs every callable of @calls at once, each on its own thread (so on
    its own connection), and returns their results in order; an exception
    becomes its result. Threads start together behind a barrier."""
    import threading
    calls = list(calls)
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def one(i):
        try:
            barrier.wait(timeout=30)
            results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001 - reported as the result
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def timed(fn):
    """A callable returning (seconds, fn()) for burst()."""
    def run():
        t0 = time.monotonic()
        r = fn()
        return time.monotonic() - t0, r
    return run


def wait_until(pred, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def main(fn):
    """Runs @fn(svc) inside Services; prints PASS/FAIL and exits 0/1."""
    name = os.path.basename(sys.argv[0])
    try:
        with Services() as svc:
            migrate(svc)
            try:
                fn(svc)
            finally:
                for f in _fronts:
                    f.stop()
                for p in _running:
                    if p.proc is not None:
                        import signal
                        stop_process(p.proc, signal.SIGKILL)
    except Failure as e:
        print("FAIL %s: %s" % (name, e), flush=True)
        sys.exit(1)
    print("PASS %s" % name, flush=True)
    sys.exit(0)
