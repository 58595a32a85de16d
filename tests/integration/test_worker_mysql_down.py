"""MariaDB stopped for 10 s in the middle of a load, then started again.

coupon-api keeps issuing (MySQL is not on the hot path). The worker must
keep its batch, pause its partitions, retry with backoff, and catch up once
MariaDB is back: no 202 lost, no duplicate row, persisted = rows, and no
transient failure recorded in failed_events."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import (Api, Worker, check, check_persisted_exactly, finish_load, main,  # noqa: E402
                     start_load, wait_settled, wait_until, mysql_count)


def run(svc):
    api = Api(svc).start()
    api.create_campaign("db", 1000000)
    w = Worker(svc).start()
    wait_until(lambda: "assigned" in w.log_text(), 30, "the worker to join its group")

    out = svc.path("load.tsv")
    load = start_load(api, "db", out, duration=16, connections=6)
    wait_until(lambda: mysql_count(svc, "db") > 500, 30, "rows to arrive", interval=0.1)
    svc.signal_service("mysql", signal.SIGTERM)
    t_down = time.monotonic()
    issued_at_stop = int(svc.redis("GET", "coupon:{db}:count"))
    time.sleep(10)
    issued_during = int(svc.redis("GET", "coupon:{db}:count")) - issued_at_stop
    svc.restart()
    print("MariaDB down %.1f s; %d coupons issued meanwhile" % (time.monotonic() - t_down, issued_during),
          flush=True)
    check(issued_during > 1000, "issuing stopped while MySQL was down (%d)" % issued_during)

    records = finish_load(load, out)
    took = wait_settled(svc, "db", timeout=180)
    n = check_persisted_exactly(svc, "db", records)
    log = w.log_text()
    check("partitions paused" in log and "MySQL back" in log,
          "the worker did not report the outage and its end:\n" + log[-3000:])
    print("202: %d, all in MySQL once; settled %.1f s after the load" % (n, took), flush=True)
    check(w.stop() == 0, "worker did not exit 0")


if __name__ == "__main__":
    main(run)
