"""Helpers shared by the integration tests of coupon-api: start the API on a
free port against a Services instance, create campaigns, run cpn-loadgen
and read its per-request records, and snapshot what Redis and Kafka hold
so a test can prove that a refused request changed nothing."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from services import (Services, find_program, free_port, http, start_process,  # noqa: E402
                      stop_process, wait_http)

ADMIN_TOKEN = "test-admin-token-0123456789"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


_running = []  # every Api started, stopped by main() whatever happens


class Api:
    """One coupon-api process. @extra_env overrides its environment."""

    def __init__(self, svc, extra_env=None, name="api"):
        self.svc = svc
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.base = "http://" + self.addr
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
        wait_http(self.base + "/healthz", timeout=30, proc=self.proc)
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
                for api in _running:
                    if api.proc is not None:
                        import signal
                        stop_process(api.proc, signal.SIGKILL)
    except Failure as e:
        print("FAIL %s: %s" % (name, e), flush=True)
        sys.exit(1)
    print("PASS %s" % name, flush=True)
    sys.exit(0)
