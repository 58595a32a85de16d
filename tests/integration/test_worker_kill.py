"""kill -9 of coupon-worker in the middle of a load, twice, and a restart
each time; the second time the worker kills itself exactly between a MySQL
commit and storing the offsets (COUPON_TEST_CRASH_AFTER_COMMIT, a crash
point for tests), so its next incarnation reads committed messages again.
No 202 lost, no duplicate row, persisted = rows, no failed event."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import (Api, Worker, check, check_persisted_exactly, finish_load, main,  # noqa: E402
                     mysql_count, start_load, wait_settled, wait_until)


def run(svc):
    api = Api(svc).start()
    api.create_campaign("wk", 1000000)
    out = svc.path("load.tsv")
    load = start_load(api, "wk", out, duration=14, connections=6)

    w = Worker(svc, name="worker1").start()
    wait_until(lambda: mysql_count(svc, "wk") > 2000, 60, "rows to arrive", interval=0.1)
    time.sleep(1.5)  # past an offset commit, so that both sides of it are exercised
    w.kill9()
    print("killed worker1 at %d rows" % mysql_count(svc, "wk"), flush=True)
    time.sleep(1)

    before = mysql_count(svc, "wk")
    w2 = Worker(svc, {"COUPON_TEST_CRASH_AFTER_COMMIT": "30", "COUPON_WORKER_BATCH": "100"},
                name="worker2").start()
    rc = w2.wait_exit(timeout=90)
    check(rc == -9, "worker2 should have killed itself at the crash point (exit %s)" % rc)
    check("test crash point" in w2.log_text(), "worker2 did not reach the crash point")
    print("worker2 died at its crash point at %d rows (%d before it)" % (mysql_count(svc, "wk"), before),
          flush=True)
    check(mysql_count(svc, "wk") > before, "worker2 committed no new row before its crash point")

    w3 = Worker(svc, name="worker3").start()
    records = finish_load(load, out)
    took = wait_settled(svc, "wk", timeout=180)
    n = check_persisted_exactly(svc, "wk", records)
    log = w3.log_text()
    print("202: %d, all in MySQL once; settled %.1f s after the load" % (n, took), flush=True)
    check(w3.stop() == 0, "worker3 did not exit 0")
    dup = [line for line in w3.log_text().splitlines() if "stopped:" in line]
    print(dup[-1] if dup else log[-500:], flush=True)
    check(dup and " 0 duplicates" not in dup[-1], "worker3 saw no redelivered message: the test proved nothing")


if __name__ == "__main__":
    main(run)
