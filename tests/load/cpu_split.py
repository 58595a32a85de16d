#!/usr/bin/env python3
"""Where each issue request's CPU goes, per process and thread.

    COUPON_BUILD_DIR=build python3 tests/load/cpu_split.py [--connections 256] [--duration 6]

Starts its own Redis, MariaDB and dev broker (tests/support/services.py),
a coupon-api, the bare civetweb handler with and without --handoff and the
bare epoll server with and without it; runs cpn-loadgen (a new user per
request) against each in turn and prints, per run, the machine's busy
share (/proc/stat), the CPU per request of every thread of the server
(utime + stime from /proc/PID/task/*/stat, grouped by thread name), of
Redis and the dev broker for coupon-api, and of the load client
(getrusage of children); what no thread accounts for is the kernel's.
Numbers are µs of CPU per answered request; the machine is shared, so
compare rows of one run."""

import argparse
import collections
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
os.environ.setdefault("COUPON_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
from apitest import Api, migrate  # noqa: E402
from services import Services, find_program, free_port, start_process, stop_process  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def thread_ticks(pid):
    out = collections.Counter()
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                s = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        f = s[s.rindex(")") + 2:].split()
        out[s[s.index("(") + 1:s.rindex(")")]] += int(f[11]) + int(f[12])
    return out


def machine():
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def children_s():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def measure(label, addr, watch, args):
    before = {n: thread_ticks(p) for n, p in watch.items()}
    m0, c0 = machine(), children_s()
    r = subprocess.run([find_program("cpn-loadgen"), "--addr", addr, "--campaign", "bench",
                        "--connections", str(args.connections), "--duration", str(args.duration),
                        "--user-prefix", label + "-", "--timeout-ms", "10000"],
                       capture_output=True, text=True, check=True)
    after = {n: thread_ticks(p) for n, p in watch.items()}
    m1, c1 = machine(), children_s()
    s = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    n = int(s["requests"])
    d = [y - x for x, y in zip(m0, m1)]
    busy = sum(d) - d[3] - d[4]
    us = lambda ticks: ticks * 1e6 / HZ / n  # noqa: E731
    client = (c1 - c0) * 1e6 / n
    print("%-14s %9s req/s  machine %3.0f%% busy, %5.1f us/req; load client %5.1f"
          % (label, s["rps"], 100.0 * busy / sum(d), us(busy), client))
    total = 0.0
    for name in watch:
        delta = after[name] - before[name]
        total += us(sum(delta.values()))
        print("    %-12s %5.1f  (%s)" % (name, us(sum(delta.values())),
                                         ", ".join("%s %.1f" % (k, us(v)) for k, v in delta.most_common(8) if v)))
    print("    %-12s %5.1f" % ("not in these", us(busy) - total - client), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--duration", type=float, default=6.0)
    args = ap.parse_args()
    build = os.environ.get("COUPON_BUILD_DIR", os.path.join(os.environ["COUPON_SOURCE_DIR"], "build"))
    os.environ["COUPON_BUILD_DIR"] = build
    load = os.path.join(build, "tests", "load")
    threads = str(args.connections + 16)
    with Services() as svc:
        migrate(svc)
        bare = {
            "bare": ["cpn-bare-civetweb", threads],
            "handoff": ["cpn-bare-civetweb", "--handoff", threads],
            "epoll": ["cpn-bare-epoll", "2"],
            "epoll-handoff": ["cpn-bare-epoll", "--handoff", "2"],
        }
        procs = {}
        try:
            for name, argv in bare.items():
                port = free_port()
                # program [--handoff] HOST:PORT THREADS-or-LOOPS
                cmd = [os.path.join(load, argv[0])] + argv[1:-1] + ["127.0.0.1:%d" % port, argv[-1]]
                procs[name] = (port, start_process(cmd, {}, svc.path(name + ".log")))
            api = Api(svc, {"COUPON_HTTP_THREADS": threads}).start()
            api.create_campaign("bench", 100_000_000)
            time.sleep(1)
            for name, (port, p) in procs.items():
                measure(name, "127.0.0.1:%d" % port, {name: p.pid}, args)
            measure("coupon-api", api.addr, {"coupon-api": api.proc.pid, "redis": svc.pids["redis"],
                                             "devbroker": svc.pids["devbroker"]}, args)
            api.stop()
        finally:
            for _, p in procs.values():
                stop_process(p)


if __name__ == "__main__":
    main()
