"""Integration test of the local services themselves: deploy/local-services.sh,
deploy/redis.conf, coupon-devbroker and tests/support/services.py.

Starts Redis, MariaDB and the devbroker in a temporary folder; checks Redis
PING, MariaDB as user coupon on database coupon, a round trip of 100 keyed
messages through Kafka with an idempotent producer, that `down` makes a
produce fail and `up` makes it work again without losing anything, that
pushed Produce errors are retried through, and that stop leaves no process
behind. Exit 0 on pass, 1 on fail (77: skipped, servers not installed).
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get(
    "COUPON_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")),
    "tests", "support"))

from services import BrokerError, Services, pid_alive  # noqa: E402

IDEMPOTENT = {"enable.idempotence": "true", "acks": "all"}

failures = []


def check(cond, what):
    if cond:
        print("ok   " + what, flush=True)
    else:
        print("FAIL " + what, flush=True)
        failures.append(what)
    return cond


def message(i, batch):
    return ("user-%d" % i, {"campaign_id": "svc-test", "user_id": "user-%d" % i,
                            "seq": i, "batch": batch,
                            "note": "tab\there, \"quotes\", newline\nand unicode \u00e9"})


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def run(svc):
    print("services started in %.1fs" % svc.start_seconds, flush=True)

    # Redis, with the project's config
    check(svc.redis("PING") == "PONG", "redis PING")
    cfg = svc.redis("CONFIG", "GET", "appendonly")
    check(cfg == ["appendonly", "yes"], "redis appendonly yes (%r)" % (cfg,))
    cfg = svc.redis("CONFIG", "GET", "maxmemory-policy")
    check(cfg == ["maxmemory-policy", "noeviction"], "redis noeviction (%r)" % (cfg,))
    check(svc.redis("SET", "svc:test", "v\r\nw") == "OK" and svc.redis("GET", "svc:test") == "v\r\nw",
          "redis binary-safe SET/GET")
    check(svc.redis("INCR", "svc:n") == 1, "redis INCR returns an int")

    # MariaDB as coupon@127.0.0.1 on database coupon
    rows = svc.mysql("SELECT 1, DATABASE(), CURRENT_USER()")
    check(rows == [("1", "coupon", "coupon@127.0.0.1")], "mysql SELECT 1 as coupon on coupon (%r)" % (rows,))
    svc.mysql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'a'), (2, NULL)")
    rows = svc.mysql("SELECT id, v FROM t ORDER BY id")
    check(rows == [("1", "a"), ("2", "NULL")], "mysql create/insert/select (%r)" % (rows,))

    # Devbroker status
    st = svc.broker_status()
    check(st.get("state") == "up" and st.get("topic") == svc.topic and
          st.get("bootstrap") == svc.kafka_brokers, "devbroker status %r" % (st,))

    # 100 messages through an idempotent producer, read back
    batch1 = [message(i, 1) for i in range(100)]
    svc.kafka_produce(batch1, props=IDEMPOTENT)
    got = svc.kafka_consume_all()
    check(sorted(got, key=lambda kv: kv[1]["seq"]) == batch1,
          "100 keyed JSON messages round trip (got %d)" % len(got))
    parts = {m["partition"] for m in svc.kafka_records()}
    check(len(parts) > 1, "messages spread over partitions %s" % sorted(parts))

    # down: a produce with a short message timeout fails
    check(svc.broker("down").startswith("ok"), "broker down")
    check(svc.broker_status().get("state") == "down", "status says down")
    t0 = time.monotonic()
    r = svc.kafka_produce([message(1000, "down")], check=False, timeout=60,
                          props={**IDEMPOTENT, "message.timeout.ms": 2000})
    failed = r.returncode != 0 or "ERROR" in r.stderr
    check(failed, "produce while down fails (exit %d in %.1fs: %s)" % (
        r.returncode, time.monotonic() - t0, r.stderr.strip().splitlines()[-1:] if r.stderr else ""))

    # up: producing works again and nothing earlier is lost
    check(svc.broker("up").startswith("ok"), "broker up")
    batch2 = [message(i, 2) for i in range(100, 110)]
    svc.kafka_produce(batch2, props=IDEMPOTENT, timeout=60)
    got = svc.kafka_consume_all()
    values = [v for _, v in got]
    check(all(m[1] in values for m in batch1 + batch2), "after up: all %d earlier + new messages present (got %d)"
          % (len(batch1) + len(batch2), len(got)))

    # produce-errors: retriable errors are retried through. Each retry waits
    # retry.backoff.ms, so taking at least 3 backoffs shows that the three
    # errors were really injected (a no-op injection would also "succeed").
    reply = svc.broker("produce-errors", 3)
    check("NOT_LEADER_FOR_PARTITION" in reply, "produce-errors 3 (%s)" % reply)
    before = len(svc.kafka_consume_all())
    t0 = time.monotonic()
    svc.kafka_produce([message(200, 3)], props={**IDEMPOTENT, "retry.backoff.ms": 400}, timeout=60)
    took = time.monotonic() - t0
    got = svc.kafka_consume_all()
    check(len(got) == before + 1 and message(200, 3)[1] in [v for _, v in got],
          "produce after 3 injected errors succeeds exactly once")
    check(took >= 1.0, "the 3 errors were retried through (%.2fs, 3 x 0.4s backoff)" % took)

    # a non-retriable injected error reaches the producer
    svc.broker("produce-errors", 1, "MSG_SIZE_TOO_LARGE")
    r = svc.kafka_produce([message(300, 4)], check=False, timeout=60)
    check(r.returncode != 0 and "too large" in r.stderr, "injected MSG_SIZE_TOO_LARGE fails the produce (%d: %s)"
          % (r.returncode, r.stderr.strip()[-200:]))
    check(svc.broker("produce-errors", 2, "10").startswith("ok"), "numeric error code accepted")
    check(svc.broker("clear-errors").startswith("ok"), "clear-errors")
    svc.kafka_produce([message(301, 5)], props={"message.send.max.retries": 0}, timeout=60)
    check(True, "produce after clear-errors succeeds without retries")

    # rtt and the ctl client of the binary
    check(svc.broker("rtt", 20) == "ok rtt 20" and svc.broker_status().get("rtt") == "20", "rtt 20")
    svc.broker("rtt", 0)
    ctl = [svc.devbroker, "ctl", "--control", svc.control_path]
    r = subprocess.run(ctl + ["status"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and r.stdout.startswith("ok brokers=3"), "ctl status exits 0 (%r)" % r.stdout)
    r = subprocess.run(ctl + ["no-such-command"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and r.stdout.startswith("error"), "ctl with a bad command exits 1 (%r)" % r.stdout)

    # bad commands answer error
    try:
        svc.broker("produce-errors", "x")
        check(False, "bad command raises BrokerError")
    except BrokerError:
        check(True, "bad command raises BrokerError")


def main():
    svc = Services()
    pids = {}
    try:
        with svc:
            pids = dict(svc.pids)
            check(len(pids) == 3 and all(pid_alive(p) for p in pids.values()),
                  "three services running %r" % (pids,))
            run(svc)
    except Exception as e:  # report, then fail
        import traceback
        traceback.print_exc()
        failures.append("exception: %s" % e)

    gone = wait_for(lambda: not any(pid_alive(p) for p in pids.values()), 10)
    check(pids and gone, "all processes gone after stop %r" % (pids,))
    check(svc.dir is None, "stop finished")

    if failures:
        print("\n%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)), flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
