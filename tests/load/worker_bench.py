#!/usr/bin/env python3
"""Worker persistence rate on a backlog: starts the local services in a
temporary folder, writes N issuance messages straight into the topic (kcat),
then starts coupon-worker and times the rows arriving in MariaDB.

    tests/load/worker_bench.py [--messages 100000] [--workers 1] [--batch 1000]

Prints messages/s from the first row to the last (the group join is not
counted) and from the worker's start. Uses the plain build (build/)."""

import argparse
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "support"))
os.environ.setdefault("COUPON_SOURCE_DIR", os.path.abspath(os.path.join(here, "..", "..")))
os.environ.setdefault("COUPON_BUILD_DIR", os.path.join(os.environ["COUPON_SOURCE_DIR"], "build"))
from apitest import Worker, ctl, migrate, mysql_count, wait_until  # noqa: E402
from services import Services  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    with Services() as svc:
        migrate(svc)
        ctl(svc, "campaign", "create", "--id", "wb", "--name", "worker bench", "--total", a.messages)
        at = "2026-11-21T10:00:00.123Z"
        t0 = time.monotonic()
        chunk = 50000
        for start in range(0, a.messages, chunk):
            recs = []
            for i in range(start, min(a.messages, start + chunk)):
                u = "wb-%d" % i
                recs.append((u, '{"campaign_id":"wb","user_id":"%s","seq":%d,"issued_at":"%s"}' % (u, i + 1, at)))
            svc.kafka_produce(recs, props={"linger.ms": 50, "batch.num.messages": 10000}, timeout=600)
        print("backlog: %d messages produced in %.1f s" % (a.messages, time.monotonic() - t0), flush=True)
        workers = []
        t_start = time.monotonic()
        for k in range(a.workers):
            workers.append(Worker(svc, {"COUPON_WORKER_BATCH": str(a.batch)}, name="worker%d" % k).start())
        wait_until(lambda: mysql_count(svc, "wb") > 0, 120, "the first row", interval=0.02)
        t_first = time.monotonic()
        wait_until(lambda: mysql_count(svc, "wb") >= a.messages, 600, "all rows", interval=0.05)
        t_last = time.monotonic()
        for w in workers:
            w.stop()
        n = mysql_count(svc, "wb")
        print("worker_bench messages=%d workers=%d batch=%d first_row_after_s=%.2f persist_s=%.2f "
              "rate_per_s=%.0f rate_from_start_per_s=%.0f"
              % (n, a.workers, a.batch, t_first - t_start, t_last - t_first, n / (t_last - t_first),
                 n / (t_last - t_start)), flush=True)


if __name__ == "__main__":
    main()
