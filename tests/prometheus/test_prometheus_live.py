"""A real Prometheus (Debian's /usr/bin/prometheus) scraping real
coupon-api and coupon-worker once a second, with the alert rules of
deploy/prometheus loaded. Issues a few coupons, then reads back through
Prometheus's HTTP API that both jobs are up and that what it stored is
what happened: Redis's count of the campaign, MySQL's persisted, the
answers by status, the worker's rows, messages and partitions. Every
alert rule is loaded and evaluates without error against the real
series, none is pending or firing while the sale is healthy. Then, as
Prometheus sees them: a poison message (the worker's poison and failed
counters, the open failed event, CouponFailedEvents pending); MySQL
stopped while two more coupons are issued (the worker's retrying gauge
and messages in hand, coupon_mysql_down) and started again (both rows
persisted, the gauge back at 0); the worker stopped (CouponWorkerDown
pending). Both /metrics texts pass `promtool check metrics`. Prometheus
is stopped by its PID."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, check, main, mysql_count, mysql_persisted, wait_until  # noqa: E402
from services import (free_port, http, skip_or_fail, source_dir, start_process,  # noqa: E402
                      stop_process, wait_http)

PROMETHEUS = "/usr/bin/prometheus"
USERS = 6


def alert_names(path):
    """The alert names of the rule file, read without a YAML parser: each
    rule's line `- alert: Name`."""
    names = []
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s.startswith("- alert:"):
                names.append(s.split(":", 1)[1].strip())
    return names


class Prometheus:
    def __init__(self, svc, targets, rules):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.dir = svc.path("prometheus")
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "prometheus.yml")
        lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 900ms", "  evaluation_interval: 1s",
                 "rule_files:", "  - %s" % json.dumps(rules), "scrape_configs:"]
        for job, addr in targets.items():
            lines += ["  - job_name: %s" % job, "    static_configs:", "      - targets: [%s]" % json.dumps(addr)]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = svc.path("prometheus.log")
        self.proc = None

    def start(self):
        self.proc = start_process([PROMETHEUS, "--config.file=" + self.config,
                                   "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                                   "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
                                  log_path=self.log, cwd=self.dir)
        wait_http(self.base + "/-/ready", timeout=30, proc=self.proc)
        print("prometheus (pid %d) on %s" % (self.proc.pid, self.base), file=sys.stderr, flush=True)
        return self

    def stop(self):
        if self.proc is not None:
            rc = stop_process(self.proc, timeout=20)
            self.proc = None
            return rc
        return None

    def api(self, path, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        st, _, body = http("GET", url)
        check(st == 200 and isinstance(body, dict) and body.get("status") == "success",
              "prometheus %s: %s %s" % (path, st, str(body)[:500]))
        return body["data"]

    def query(self, q):
        """{labels-as-frozenset: float} of an instant query."""
        data = self.api("/api/v1/query", query=q)
        check(data["resultType"] == "vector", "%s: %s" % (q, data))
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}

    def scalar(self, q):
        """The one value of @q, or None when it has no or several series."""
        r = self.query(q)
        return next(iter(r.values())) if len(r) == 1 else None


def promtool_lint(text, what):
    """`promtool check metrics`: exit 1 is a text Prometheus cannot parse,
    3 a lint finding (a naming convention): both fail."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    check(r.returncode == 0, "promtool check metrics on %s (exit %d):\n%s" % (what, r.returncode, out[-3000:]))


def run(svc):
    if not os.access(PROMETHEUS, os.X_OK) or shutil.which("promtool") is None:
        skip_or_fail("not installed: %s and promtool (Debian package prometheus)" % PROMETHEUS)
    t0 = time.monotonic()
    rules = os.path.join(source_dir(), "deploy", "prometheus", "coupon-alerts.yml")
    names = alert_names(rules)
    check(len(names) >= 10, "only %d alerts in %s" % (len(names), rules))

    api = Api(svc).start()
    waddr = "127.0.0.1:%d" % free_port()
    worker = Worker(svc, {"COUPON_WORKER_METRICS_ADDR": waddr}).start()
    wait_http("http://%s/healthz" % waddr, timeout=30, proc=worker.proc)
    start_s = time.time()

    api.create_campaign("prom", 10)
    for i in range(USERS):
        st, _, b = api.issue("prom", "prom-user-%d" % i)
        check(st == 202, "issue %d: %s %s" % (i, st, b))
    st, _, b = api.issue("prom", "prom-user-0")
    check(st == 409, "repeated issue: %s %s" % (st, b))
    wait_until(lambda: mysql_persisted(svc, "prom") == USERS and mysql_count(svc, "prom") == USERS, 60,
               "%d rows in MySQL" % USERS)
    rows = mysql_count(svc, "prom")

    # The texts themselves follow the exposition format.
    st, _, wtext = http("GET", "http://%s/metrics" % waddr)
    check(st == 200, "worker /metrics: %s" % st)
    promtool_lint(wtext, "coupon-worker's /metrics")
    st, _, _ = http("GET", "http://%s/nothing-here" % waddr)
    check(st == 404, "worker /nothing-here: %s" % st)
    st, _, atext = http("GET", "http://%s/metrics" % api.direct)
    check(st == 200, "api /metrics: %s" % st)
    promtool_lint(atext, "coupon-api's /metrics")

    prom = Prometheus(svc, {"coupon-api": api.direct, "coupon-worker": waddr}, rules)
    try:
        prom.start()
        def scraped():
            return (prom.scalar('up{job="coupon-api"}') == 1 and prom.scalar('up{job="coupon-worker"}') == 1 and
                    prom.scalar('coupon_campaign_persisted{campaign="prom"}') == USERS and
                    prom.scalar('coupon_worker_rows_inserted_total{product="coupon"}') == rows)
        wait_until(scraped, 30, "both jobs up in Prometheus with the sale's numbers", interval=0.5)

        expect = {
            'coupon_campaign_stock{job="coupon-api",campaign="prom"}': 10,
            'coupon_campaign_issued{job="coupon-api",campaign="prom"}': USERS,
            'coupon_campaign_persisted{job="coupon-api",campaign="prom"}': USERS,
            'coupon_campaign_outbox_backlog{job="coupon-api",campaign="prom"}': 0,
            'sum(coupon_http_requests_total{job="coupon-api",route="issue",status="202"})': USERS,
            'sum(coupon_http_requests_total{job="coupon-api",route="issue",status="409"})': 1,
            'coupon_redis_pipe_down{job="coupon-api"}': 0,
            'sum(coupon_failed_events{job="coupon-api"})': 0,
            'coupon_worker_rows_inserted_total{job="coupon-worker",product="coupon"}': rows,
            'coupon_worker_failed_events_recorded_total{job="coupon-worker",product="coupon"}': 0,
            'coupon_worker_mysql_retrying{job="coupon-worker",product="coupon"}': 0,
            'coupon_worker_messages_in_hand{job="coupon-worker",product="coupon"}': 0,
            # every message was a new row or a duplicate (a produce the relay repeated)
            'coupon_worker_messages_total{job="coupon-worker",product="coupon"} - ignoring(product) '
            '(coupon_worker_duplicates_total{job="coupon-worker",product="coupon"})': rows,
            'sum(coupon_worker_kafka_lag{job="coupon-worker",group="coupon-worker"})': 0,
        }
        for q, want in expect.items():
            got = prom.scalar(q)
            check(got == want, "%s: Prometheus has %s, expected %s" % (q, got, want))
        for q in ('coupon_worker_batches_total{job="coupon-worker"}',
                  'coupon_worker_kafka_partitions_assigned{job="coupon-worker",group="coupon-worker"}',
                  'coupon_worker_kafka_partitions_assigned{job="coupon-worker",group="coupon-worker-tickets"}'):
            got = prom.scalar(q)
            check(got is not None and got >= 1, "%s: %s, expected at least 1" % (q, got))
        last = prom.scalar('coupon_worker_last_batch_timestamp_seconds{job="coupon-worker",product="coupon"}')
        check(last is not None and start_s - 5 <= last <= time.time() + 5,
              "last batch at %s, the worker started at %.0f" % (last, start_s))

        # Every rule loaded and evaluated against these series without error.
        def evaluated():
            groups = prom.api("/api/v1/rules", type="alert")["groups"]
            rules_seen = [r for g in groups for r in g["rules"]]
            return rules_seen if rules_seen and all(r["health"] == "ok" for r in rules_seen) else None
        loaded = wait_until(evaluated, 20, "every alert rule evaluated", interval=0.5)
        check(sorted(r["name"] for r in loaded) == sorted(names),
              "Prometheus loaded %s, the file has %s" % (sorted(r["name"] for r in loaded), sorted(names)))
        active = prom.api("/api/v1/alerts")["alerts"]
        check(active == [], "alerts pending or firing on a healthy sale: %s" % active)

        def alert(name, **labels):
            for al in prom.api("/api/v1/alerts")["alerts"]:
                if al["labels"].get("alertname") == name and all(al["labels"].get(k) == v
                                                                 for k, v in labels.items()):
                    return al
            return None

        def equals(q, want):
            return lambda: prom.scalar(q) == want

        # A poison message: counted by the worker, an open failed event in
        # MySQL as the API's monitor reads it, and the alert on its way.
        svc.kafka_produce([("poison", "{not json")])
        for q in ('coupon_worker_poison_messages_total{job="coupon-worker",product="coupon"}',
                  'coupon_worker_failed_events_recorded_total{job="coupon-worker",product="coupon"}',
                  'coupon_failed_events{job="coupon-api",product="coupon",state="open"}'):
            wait_until(equals(q, 1), 20, "%s = 1 in Prometheus" % q, interval=0.5)
        wait_until(lambda: alert("CouponFailedEvents", product="coupon"), 20, "CouponFailedEvents pending",
                   interval=0.5)

        # MySQL goes away while coupons are issued: the worker keeps the
        # batch and says it retries; once MySQL is back it is persisted.
        svc.signal_service("mysql", signal.SIGTERM)
        for i in range(2):
            st, _, b = api.issue("prom", "prom-late-%d" % i)
            check(st == 202, "issue while MySQL is down: %s %s" % (st, b))
        wait_until(equals('coupon_worker_mysql_retrying{job="coupon-worker",product="coupon"}', 1), 30,
                   "the worker's retrying gauge at 1", interval=0.5)
        wait_until(equals('coupon_mysql_down{job="coupon-api"}', 1), 30, "coupon_mysql_down at 1", interval=0.5)
        held = prom.scalar('coupon_worker_messages_in_hand{job="coupon-worker",product="coupon"}')
        check(held is not None and held >= 1, "messages in hand while MySQL is down: %s" % held)
        check(prom.scalar('coupon_worker_mysql_retries_total{job="coupon-worker",product="coupon"}') >= 1,
              "no MySQL retry counted")
        svc.restart()
        wait_until(equals('coupon_worker_rows_inserted_total{job="coupon-worker",product="coupon"}', rows + 2), 40,
                   "the two late coupons persisted", interval=0.5)
        wait_until(equals('coupon_worker_mysql_retrying{job="coupon-worker",product="coupon"}', 0), 10,
                   "the retrying gauge back at 0", interval=0.5)
        check(mysql_count(svc, "prom") == rows + 2, "MySQL has %d rows" % mysql_count(svc, "prom"))

        # And one of them sees the worker go away.
        check(worker.stop() == 0, "the worker did not exit 0")

        down = wait_until(lambda: alert("CouponWorkerDown", instance=waddr), 20, "CouponWorkerDown pending",
                          interval=0.5)
        check(down["state"] in ("pending", "firing") and down["labels"]["severity"] == "critical",
              "alert: %s" % down)
    finally:
        rc = prom.stop()
    check(rc == 0, "prometheus exited %s on SIGTERM" % rc)
    print("prometheus_live: %d coupons seen through Prometheus, %d alert rules loaded, in %.1f s" % (
        USERS, len(names), time.monotonic() - t0), flush=True)


if __name__ == "__main__":
    main(run)
