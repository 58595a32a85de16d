"""The fault matrix: one fault injected into the running system under
concurrent load, healed, left to quiesce, then checked against what every
client was told (history.py).

    chaos.py --case NAME [--seeds 1,2] [--table FILE]
    chaos.py --list

Each (case, seed) gets its own Redis, MariaDB and dev broker on free ports
in a fresh folder, one coupon-api and one or two coupon-workers, and two
campaigns under load at once:

  big    total 10,000,000: never sells out, so it issues all through the fault
  small  total 2,000 of 3,000 users: sells out, so 410s and the cap are tested

Load: cpn-loadgen, one line per request (user, status, seq, start, end);
5% of big's requests repeat an earlier user, small's users cycle, so 409s
race with first requests. The seed picks the users, the moment of the
fault and its length within the case's bounds.

After the load: everything is healed (services restarted, brokers up, RTT
0, api and workers running) and the run waits until it has quiesced: each
campaign's outbox empty, the worker group's lag 0, no failed event due,
and MySQL's rows + open failed events = Redis's count (or 90 s pass; the
checker then says what did not converge). Each fault also records evidence
that it had its effect (the outbox held entries at the kill, the other
worker took the partitions over, the relay re-produced, ...): a run
without it fails as no_effect. One table row per run is printed
and appended to --table (tab-separated). Exit 1 if any run had a violation.
"""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import history  # noqa: E402
from apitest import (Api, Failure, Worker, ctl, finish_load, kafka_lag, migrate, wait_until)  # noqa: E402
from services import Services, find_program, stop_process  # noqa: E402

BIG, SMALL = "big", "small"
BIG_TOTAL, SMALL_TOTAL, SMALL_USERS = 10_000_000, 2000, 3000
TAIL_S = 4.0          # load keeps running this long after the heal
QUIESCE_S = 90


class Run:
    def __init__(self, svc, case, seed):
        self.svc = svc
        self.case = case
        self.seed = seed
        self.rng = random.Random("%s/%d" % (case, seed))
        self.api_env = {}
        self.api = None
        self.workers = []
        self.notes = []
        self.evidence = []   # (seen, what): proof that the fault did something

    def require(self, cond, what):
        """Records evidence that the fault had its effect; a run without it
        fails (a fault that did nothing proves nothing)."""
        self.evidence.append((bool(cond), what))
        self.note("%s: %s", "seen" if cond else "NOT SEEN", what)

    def api_log(self):
        try:
            with open(self.api.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def relayed(self):
        """Outbox entries the relay re-produced, from coupon-api's log."""
        return sum(int(m) for m in re.findall(r"(\d+) outbox entries delivered to kafka", self.api_log()))

    def delivery(self):
        """coupon_issue_delivery_total by state, from /metrics."""
        st, _, body = self.api.request("GET", "/metrics")
        out = {}
        for state in ("acked", "pending", "failed"):
            m = re.search(r'coupon_issue_delivery_total\{state="%s"\} (\d+)' % state, str(body))
            out[state] = int(m.group(1)) if m else 0
        return out

    def note(self, fmt, *args):
        msg = fmt % args if args else fmt
        self.notes.append(msg)
        print("  [%s seed %d] %s" % (self.case, self.seed, msg), flush=True)

    def start_api(self):
        if self.api is None:
            debug = os.environ.get("CHAOS_KAFKA_DEBUG") or ("eos" if self.case in REPAIRED_BY_RECONCILE else "")
            if debug:  # e.g. eos or protocol (one word: COUPON_KAFKA_CONFIG splits on commas)
                conf = [self.api_env.get("COUPON_KAFKA_CONFIG"), "debug=" + debug]
                self.api_env["COUPON_KAFKA_CONFIG"] = ",".join(c for c in conf if c)
            self.api = Api(self.svc, self.api_env)
        self.api.start()
        return self.api

    def start_worker(self, env=None, name=None):
        w = Worker(self.svc, env, name=name or "worker%d" % (len(self.workers) + 1)).start()
        self.workers.append(w)
        return w

    def load(self, duration):
        """Starts both loadgens; returns [(campaign, Popen, out path)]."""
        procs = []
        for cid, args in ((BIG, ["--connections", "24", "--repeat-frac", "0.05"]),
                          (SMALL, ["--connections", "4", "--users", str(SMALL_USERS)])):
            out = self.svc.path("load-%s.tsv" % cid)
            argv = [find_program("cpn-loadgen"), "--addr", self.api.addr, "--campaign", cid,
                    "--duration", "%.1f" % duration, "--seed", str(self.seed), "--timeout-ms", "3000",
                    "--user-prefix", "%s%d-" % (cid[0], self.seed), "--out", out] + args
            procs.append((cid, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                text=True), out))
        return procs


# ---- the faults ----------------------------------------------------------
# Each is fault(run, t0): called t0 seconds into the load (the load runs on
# meanwhile); injects, holds, heals what it broke; returns the seconds it
# held. setup(run) (optional) runs before the load.

def hold(run, lo, hi):
    s = run.rng.uniform(lo, hi)
    time.sleep(s)
    return s


def api_kill9(run):
    # The broker answers slowly, so at the kill requests wait for acks and
    # the outbox holds issuances Kafka may or may not have.
    run.svc.broker("rtt", 40)
    run.api.kill9()
    left = run.svc.redis("XLEN", "coupon:{%s}:outbox" % BIG)
    run.require(left > 0, "%d issuances in the outbox at the kill" % left)
    s = hold(run, 0.2, 2.0)
    run.start_api()
    run.svc.broker("rtt", 0)
    run.after = lambda: run.require(run.relayed() > 0, "the new coupon-api relayed %d of them" % run.relayed())
    return s


def worker_kill9(run):
    w = run.workers[0]
    w.kill9()
    rows = mysql_rows(run.svc)
    run.require(rows > 0, "kill -9 %s while persisting, at %d rows" % (w.name, rows))
    s = hold(run, 0.5, 3.0)
    run.start_worker(name="worker-restarted")
    return s


def crash_point_setup(run):
    run.crash_after = run.rng.randint(3, 20)
    run.start_worker({"COUPON_TEST_CRASH_AFTER_COMMIT": str(run.crash_after),
                      "COUPON_WORKER_BATCH": "200"}, name="worker-crashing")


def worker_crash_point(run):
    w = run.workers[0]
    t = time.monotonic()
    rc = w.wait_exit(timeout=60)
    if rc != -signal.SIGKILL or "test crash point" not in w.log_text():
        raise Failure("the worker did not die at its crash point (exit %s)" % rc)
    run.note("worker died at its crash point after commit %d", run.crash_after)
    run.start_worker(name="worker-restarted")
    return time.monotonic() - t


def two_workers_setup(run):
    run.start_worker()
    run.start_worker()


def worker_sigstop(run):
    # Past the workers' session timeout (6 s in tests), until the group has
    # moved the stopped worker's partitions to the other one (the dev
    # broker's coordinator takes about 14 s: the session timeout plus a join
    # round), then SIGCONT. The other may meanwhile wait on row locks the
    # stopped one holds in an open transaction; the stopped one wakes up
    # without its partitions and must not store offsets for them.
    w, other = run.workers[0], run.workers[1]
    before = other.log_text().count("partition(s) assigned")
    t = time.monotonic()
    w.proc.send_signal(signal.SIGSTOP)
    try:
        hold(run, 7.0, 8.0)
        took = lambda: other.log_text().count("partition(s) assigned") > before  # noqa: E731
        try:
            wait_until(took, 60, "the other worker to take the partitions over", interval=0.2)
        except Failure:
            pass
        hold(run, 0.0, 1.0)
    finally:
        w.proc.send_signal(signal.SIGCONT)
    took = other.log_text().count("partition(s) assigned") - before
    run.require(took > 0, "%s was assigned partitions %d more time(s) while %s was stopped" % (
        other.name, took, w.name))
    return time.monotonic() - t


def mysql_kill9(run):
    run.svc.signal_service("mysql", signal.SIGKILL)
    s = hold(run, 9.5, 10.5)
    run.svc.restart()
    run.after = lambda: mysql_outage_seen(run)
    return s


def mysql_outage_seen(run):
    run.require(any("MySQL back" in w.log_text() for w in run.workers),
                "a worker held a batch through the outage (\"MySQL back\" logged)")


def mysql_sigstop(run):
    # A stopped server still accepts connections (the kernel does) and then
    # answers nothing: the worker's statement waits, up to its MySQL read
    # timeout, and either completes after SIGCONT or fails and is retried.
    before = redis_count(run)
    run.svc.signal_service("mysql", signal.SIGSTOP)
    try:
        s = hold(run, 9.5, 10.5)
        during = redis_count(run) - before
    finally:
        run.svc.signal_service("mysql", signal.SIGCONT)
    run.require(during > 0, "%d coupons issued while MariaDB was stopped" % during)
    return s


def redis_count(run):
    return sum(int(run.svc.redis("GET", "coupon:{%s}:count" % c) or 0) for c in (BIG, SMALL))


def redis_kill9(run):
    # The deploy's redis.conf: AOF on, appendfsync everysec.
    run.svc.signal_service("redis", signal.SIGKILL)
    s = hold(run, 0.5, 3.0)
    run.svc.restart()
    run.after = lambda: run.require(run.counts["unavailable"] > 0,
                                    "%d requests answered 503 while Redis was down" % run.counts["unavailable"])
    return s


def redis_sigstop(run):
    # A stopped Redis still accepts connections (the kernel does) and reads
    # nothing: the issue pipe's batch in flight times out
    # (COUPON_REDIS_TIMEOUT_MS, 2 s) and the pipe goes down: queued and new
    # calls are answered 503 at once, nothing sent, while it probes. The
    # batch is asked again on a new connection, whose script loading times
    # out too (504: those scripts sit in Redis's socket buffer and may run
    # after SIGCONT). Held past two timeouts.
    run.svc.signal_service("redis", signal.SIGSTOP)
    try:
        s = hold(run, 4.5, 6.0)
    finally:
        run.svc.signal_service("redis", signal.SIGCONT)
    run.after = lambda: run.require(run.counts["unavailable"] + run.counts["indeterminate"] > 0,
                                    "%d requests answered 503, %d 504 or not at all while Redis was stopped"
                                    % (run.counts["unavailable"], run.counts["indeterminate"]))
    return s


def brokers_down(run):
    run.svc.broker("down")
    try:
        s = hold(run, 9.5, 10.5)
        left = run.svc.redis("XLEN", "coupon:{%s}:outbox" % BIG)
    finally:
        run.svc.broker("up")
    run.require(left > 0, "the outbox held %d issuances with the brokers down" % left)
    run.after = lambda: delivery_trouble_seen(run)
    return s


def delivery_trouble_seen(run, relay=True):
    d = run.delivery()
    run.require(d["pending"] + d["failed"] > 0, "%d answers given before Kafka's ack, %d after a failed delivery"
                % (d["pending"], d["failed"]))
    if not relay:
        return
    tries = len(re.findall(r"outbox entries (?:delivered to kafka|not delivered yet)", run.api_log()))
    run.require(tries > 0, "the relay took up entries whose first produce was over without an ack "
                "(%d relay passes, %d entries delivered by it)" % (tries, run.relayed()))


def produce_errors(kind):
    """Produce requests fail for a while: @kind "retriable" (the idempotent
    producer retries them itself) or "fatal" (the deliveries fail; those
    issuances stay in the outbox and the relay produces them again)."""
    err = {"retriable": os.environ.get("CHAOS_RETRIABLE_ERROR", "NOT_ENOUGH_REPLICAS"),
           "fatal": "MSG_SIZE_TOO_LARGE"}[kind]

    def fault(run):
        # The mock broker takes one queued error per Produce request, and
        # the producer retries in parallel on every partition: one push of
        # 40-120 errors was used up in a few hundred ms, sometimes before
        # any answer had waited its whole ack timeout, and the run then
        # showed no effect. Topping the queue up for the whole hold makes
        # the errors last as long as the fault does.
        s = run.rng.uniform(3.0, 4.0)
        end = time.monotonic() + s
        while True:
            run.svc.broker("produce-errors", run.rng.randint(20, 60), err)
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(0.25, left))
        run.svc.broker("clear-errors")
        # Retriable errors are retried inside the producer: answers wait
        # longer, and the relay has nothing to do.
        run.after = lambda: delivery_trouble_seen(run, relay=kind == "fatal")
        return s
    return fault


def rtt_setup(run):
    run.api_env.update({"COUPON_KAFKA_MESSAGE_TIMEOUT_MS": "1000", "COUPON_RELAY_AFTER_MS": "2000",
                        "COUPON_RELAY_INTERVAL_MS": "500"})
    run.start_worker()


def broker_rtt(run):
    # Longer than the producer's message timeout: deliveries time out with
    # unknown outcome (the broker may append them late); the relay produces
    # them again, and the worker sees duplicates.
    run.svc.broker("rtt", run.rng.randint(3000, 4000))
    try:
        s = hold(run, 5.0, 7.0)
    finally:
        run.svc.broker("rtt", 0)
    run.after = lambda: delivery_trouble_seen(run)
    return s


POISON = [
    '{not json', ' ', '[]', '{"campaign_id":"ghost","user_id":"p1","seq":1,"issued_at":"2026-11-22T10:00:00Z"}',
    '{"campaign_id":"ghost","user_id":"p2","seq":"7","issued_at":"2026-11-22T10:00:00Z"}',
    '{"campaign_id":"ghost","user_id":"p3","seq":1.5,"issued_at":"2026-11-22T10:00:00Z"}',
    '{"campaign_id":"ghost","user_id":"p4","seq":1}',
    '{"campaign_id":"ghost","user_id":"../x","seq":2,"issued_at":"2026-11-22T10:00:00Z"}',
    '{"campaign_id":"ghost"', '{"campaign_id":"ghost","user_id":"p5","seq":1,"issued_at":"yesterday"}',
]


def poison(run):
    n = run.rng.randint(1, 3)
    recs = [("p%d" % i, v) for _ in range(n) for i, v in enumerate(POISON)]
    run.svc.kafka_produce(recs)
    run.poison = len(recs)
    return hold(run, 0.5, 1.0)


CASES = {
    # name: (setup or None (one worker), fault, fault start range in s)
    "api-kill9": (None, api_kill9, (1.5, 4.0)),
    "worker-kill9": (None, worker_kill9, (1.5, 4.0)),
    "worker-crash-point": (crash_point_setup, worker_crash_point, (0.0, 0.0)),
    "worker-sigstop": (two_workers_setup, worker_sigstop, (1.5, 3.0)),
    "mysql-kill9": (None, mysql_kill9, (1.5, 3.0)),
    "mysql-sigstop": (None, mysql_sigstop, (1.5, 3.0)),
    "redis-kill9": (None, redis_kill9, (1.5, 4.0)),
    "redis-sigstop": (None, redis_sigstop, (1.5, 3.0)),
    "brokers-down": (None, brokers_down, (1.5, 3.0)),
    "produce-errors-retriable": (None, produce_errors("retriable"), (1.0, 2.0)),
    "produce-errors-fatal": (None, produce_errors("fatal"), (1.0, 2.0)),
    "broker-rtt": (rtt_setup, broker_rtt, (1.5, 3.0)),
    "poison": (None, poison, (1.0, 3.0)),
}

# Cases whose checker runs after `couponctl reconcile` when it finds lost
# users. Only retriable produce errors: the dev broker (librdkafka 2.0.2's
# mock cluster) does not enforce the idempotent producer's sequence
# numbers as Kafka does, so after a refused batch it can accept a later
# one, and the producer then "implicitly acks" the refused messages (its
# eos debug log says IMPLICITACK): their outbox entries go and the messages
# are lost. Seen in about one run of three, 2-4 users each time, every time
# exactly as many as implicitly acked. Real Kafka refuses the gap
# (OUT_OF_ORDER_SEQUENCE_NUMBER). The run requires that every lost user is
# accounted for by an implicit ack (anything else fails it as "broken"),
# then repairs as an operator would and checks again; the repaired users'
# rows then carry a free seq, not the one they were told ("reseq").
REPAIRED_BY_RECONCILE = {"produce-errors-retriable"}

# How long the load runs, at most: start + longest hold + tail.
MAX_HOLD = {"worker-crash-point": 8.0, "worker-sigstop": 20.0, "mysql-kill9": 10.5, "mysql-sigstop": 10.5,
            "brokers-down": 10.5, "broker-rtt": 7.0, "produce-errors-retriable": 4.0, "produce-errors-fatal": 4.0, "poison": 1.0,
            "api-kill9": 2.0, "worker-kill9": 3.0, "redis-kill9": 3.0, "redis-sigstop": 6.0}


# ---- quiesce and the end state --------------------------------------------

def mysql_rows(svc, cid=None):
    where = " WHERE campaign_id = '%s'" % cid if cid else ""
    return int(svc.mysql("SELECT COUNT(*) FROM coupons" + where)[0][0])


def heal(run):
    svc = run.svc
    svc.restart()             # whatever of the three is not running
    svc.broker("up")
    svc.broker("rtt", 0)
    svc.broker("clear-errors")
    if run.api.proc is None or run.api.proc.poll() is not None:
        run.api.proc = None
        run.start_api()
    live = [w for w in run.workers if w.proc is not None and w.proc.poll() is None]
    if not live:
        run.start_worker(name="worker-heal")


def quiesced(run, counts=True):
    """Outboxes empty, no failed event due, lag 0, and (@counts) MySQL's
    rows + open failed events = Redis's count for both campaigns."""
    svc = run.svc
    for cid in (BIG, SMALL):
        if svc.redis("XLEN", "coupon:{%s}:outbox" % cid) != 0:
            return False
        if not counts:
            continue
        count = int(svc.redis("GET", "coupon:{%s}:count" % cid) or 0)
        failed = int(svc.mysql("SELECT COUNT(*) FROM failed_events WHERE scope_id = '%s'"
                               " AND status = 'open'" % cid)[0][0])
        if mysql_rows(svc, cid) + failed != count:
            return False
    due = int(svc.mysql("SELECT COUNT(*) FROM failed_events WHERE status = 'open'"
                        " AND next_retry_at <= NOW()")[0][0])
    return due == 0 and kafka_lag(svc) == 0


def end_state(svc, cid):
    rows = {}
    for user, seq in svc.mysql("SELECT user_id, seq FROM coupons WHERE campaign_id = '%s'" % cid):
        rows[user] = int(seq)
    camp = svc.mysql("SELECT total, persisted FROM campaigns WHERE id = '%s'" % cid)[0]
    k = "coupon:{%s}:" % cid
    return dict(total=int(camp[0]), persisted=int(camp[1]), rows=rows,
                count=int(svc.redis("GET", k + "count") or 0),
                users=set(svc.redis("SMEMBERS", k + "users") or []),
                outbox=svc.redis("XLEN", k + "outbox"),
                failed_open=int(svc.mysql("SELECT COUNT(*) FROM failed_events WHERE scope_id = '%s'"
                                          " AND status = 'open'" % cid)[0][0]))


def diagnose_lost(svc, hist, end):
    """Where the lost users are: in Kafka (which partition and offset), and
    what the worker group has consumed there."""
    lost = {u for u, st, _, _, _ in hist if st == 202 and u not in end["rows"]}
    out = []
    try:
        for m in svc.kafka_records():
            if m["key"] in lost:
                out.append("diagnosis: %s is in Kafka at partition %s offset %s: %s" % (
                    m["key"], m["partition"], m["offset"], (m["payload"] or "")[:120]))
                lost.discard(m["key"])
        out += ["diagnosis: %s is not in Kafka" % u for u in sorted(lost)[:5]]
        out.append("diagnosis: %s" % ctl(svc, "lag", check_rc=None)[1].strip().replace("\n", "; "))
    except Exception as e:
        out.append("diagnosis failed: %s" % e)
    return out


# ---- one run ----------------------------------------------------------------

def run_one(case, seed):
    setup, fault, (lo, hi) = CASES[case]
    t_start = time.monotonic()
    row = dict(case=case, seed=seed)
    with Services() as svc:
        migrate(svc)
        run = Run(svc, case, seed)
        try:
            if setup:  # first: it may set coupon-api's environment
                setup(run)
            else:
                run.start_worker()
            api = run.start_api()
            api.create_campaign(BIG, BIG_TOTAL)
            api.create_campaign(SMALL, SMALL_TOTAL)
            # The fault's moment counts from when the workers consume, not
            # from their group join (a few seconds).
            wait_until(lambda: all("partition(s) assigned" in w.log_text() for w in run.workers), 60,
                       "the workers to join the group")
            t0 = run.rng.uniform(lo, hi)
            loads = run.load(t0 + MAX_HOLD[case] + TAIL_S)
            time.sleep(t0)
            held = fault(run)
            run.note("fault at %.1f s, held %.1f s", t0, held)
            hist = {cid: finish_load(p, out, timeout=600) for cid, p, out in loads}
            heal(run)
            republished = set()
            unexplained = 0
            if case in REPAIRED_BY_RECONCILE:
                wait_until(lambda: quiesced(run, counts=False), QUIESCE_S, "outboxes to drain", interval=0.5)
                time.sleep(1)  # the last batch's commit
                lost = sum(history.check(hist[cid], end_state(svc, cid))[0]["lost"] for cid in (BIG, SMALL))
                implicit = sum(int(n) for n in re.findall(r"IMPLICITACK.*? (\d+) message\(s\) implicitly acked",
                                                           run.api_log()))
                row["repaired"] = lost
                if lost > implicit:
                    unexplained = lost - implicit
                if lost:
                    _, out = ctl(svc, "reconcile", "--grace", "1", check_rc=None)
                    for line in out.splitlines():
                        if "re-published:" in line:
                            republished.update(line.split(":", 2)[2].split())
                    run.note("%d lost, %d implicitly acked by the producer; couponctl reconcile re-published %d",
                             lost, implicit, len(republished))
            t_q = time.monotonic()
            try:
                wait_until(lambda: quiesced(run), QUIESCE_S, "quiesce", interval=0.5)
                row["quiesce_s"] = "%.1f" % (time.monotonic() - t_q)
            except Failure:
                row["quiesce_s"] = "no"
            violations = dict(lost=0, duplicated=0, oversold=0, unexpected=0, broken=0, diverged=0, reseq=0)
            counts = dict(requests=0, issued=0, already=0, sold_out=0, unavailable=0, indeterminate=0,
                          other=0)
            examples = []
            for cid in (BIG, SMALL):
                end = end_state(svc, cid)
                v, ex = history.check(hist[cid], end, reseq_ok=republished)
                if v["lost"]:
                    ex += diagnose_lost(svc, hist[cid], end)
                for k in v:
                    violations[k] += v[k]
                examples += ["%s: %s" % (cid, e) for e in ex]
                for k, n in history.summary(hist[cid]).items():
                    counts[k] += n
            if unexplained:
                violations["broken"] += unexplained
                examples.append("%d users lost that no implicit ack accounts for: not the dev broker's" % unexplained)
            if counts["other"]:
                violations["broken"] += counts["other"]
                examples.append("%d answers that are neither issued, refused nor indeterminate"
                                % counts["other"])
            failed = svc.mysql("SELECT COUNT(*) FROM failed_events")[0][0]
            expect_failed = getattr(run, "poison", 0)
            if int(failed) != expect_failed:
                violations["diverged"] += abs(int(failed) - expect_failed)
                examples.append("%s failed events, expected %d (the poison messages)" % (failed, expect_failed))
            run.counts = counts
            if getattr(run, "after", None):
                run.after()
            redelivered = 0
            for w in run.workers:
                if w.proc is not None and w.proc.poll() is None:
                    w.stop()
                m = re.findall(r"stopped: .*?(\d+) duplicates", w.log_text())
                redelivered += sum(int(x) for x in m)
            row["redelivered"] = redelivered
            missing = [what for ok, what in run.evidence if not ok]
            violations["no_effect"] = len(missing)
            examples += ["the fault had no visible effect: " + m for m in missing]
            row.update(counts)
            row.update(violations)
            row["small_sold_out"] = "yes" if len(end_state(svc, SMALL)["rows"]) == SMALL_TOTAL else "no"
            row["examples"] = examples
        finally:
            for p in [run.api] + run.workers:
                if p is not None and p.proc is not None:
                    if p.proc.poll() is None:
                        try:
                            p.proc.send_signal(signal.SIGCONT)
                        except OSError:
                            pass
                    stop_process(p.proc, signal.SIGKILL)
                    p.proc = None
    row["seconds"] = "%.0f" % (time.monotonic() - t_start)
    return row


COLUMNS = ["case", "seed", "requests", "issued", "already", "sold_out", "unavailable", "indeterminate",
           "lost", "repaired", "reseq", "duplicated", "oversold", "unexpected", "broken", "diverged", "no_effect", "redelivered",
           "quiesce_s", "seconds"]
BAD = ["lost", "duplicated", "oversold", "unexpected", "broken", "diverged", "no_effect"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--table", help="append one tab-separated row per run to this file")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list or not a.case:
        print("\n".join(CASES))
        return 0 if a.list else 2
    if a.case not in CASES:
        print("unknown case %s; --list shows them" % a.case)
        return 2
    ok = True
    for seed in [int(s) for s in a.seeds.split(",")]:
        try:
            row = run_one(a.case, seed)
        except Exception as e:  # a run that could not even be checked fails the case
            print("FAIL %s seed %d: %s: %s" % (a.case, seed, type(e).__name__, e), flush=True)
            row = dict(case=a.case, seed=seed, examples=[str(e)], lost="?", seconds="-")
            ok = False
        bad = [k for k in BAD if row.get(k) != 0]
        verdict = "FAIL" if bad else "ok"
        ok = ok and not bad
        line = "\t".join(str(row.get(c, "-")) for c in COLUMNS) + "\t" + verdict
        print("CHAOS\t" + line, flush=True)
        for e in row.get("examples", []):
            print("    " + e, flush=True)
        if a.table:
            with open(a.table, "a") as f:
                f.write(line + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
