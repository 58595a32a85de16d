"""The JMeter kit: tests/load/jmeter.sh runs the plan non-GUI on Debian's
JMeter 2.13 (through the XStream launcher) against a coupon-api with a
worker, with unique and repeating users; it must record samples, get only
202/409/410, and its --audit must PASS. The kit must also fail loudly when
JMeter records nothing (a plan that does not load), which is what plain
`jmeter -n` does on this Debian silently."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, check, main, wait_until  # noqa: E402
from services import skip_or_fail  # noqa: E402

KIT = os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "load", "jmeter.sh")


def kit(svc, *args):
    env = {**os.environ, **svc.env, "COUPON_BUILD_DIR": os.environ["COUPON_BUILD_DIR"]}
    return subprocess.run([KIT, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def run(svc):
    if not os.path.exists("/usr/share/jmeter/bin/ApacheJMeter.jar") or not shutil.which("javac"):
        skip_or_fail("Debian's jmeter or javac is not installed")
    api = Api(svc).start()
    w = Worker(svc).start()
    wait_until(lambda: "assigned" in w.log_text(), 60, "the worker to join")
    api.create_campaign("jm", 2000)

    r = kit(svc, "--campaign", "jm", "--port", api.port, "--threads", 16, "--repeat-threads", 4,
            "--users", 500, "--rampup", 1, "--duration", 4, "--out", svc.path("jm"), "--audit")
    print(r.stdout[-3000:], r.stderr[-2000:], flush=True)
    check(r.returncode == 0, "jmeter.sh --audit exited %d" % r.returncode)
    line = [x for x in r.stdout.splitlines() if x.startswith("jmeter: samples=")]
    check(line, "no summary line")
    fields = dict(kv.split("=") for kv in line[0].split()[1:])
    check(int(fields["samples"]) > 2000, "too few samples: %s" % fields["samples"])
    check(fields["errors"] == "0", "requests without an answer: %s" % fields["errors"])
    check(fields.get("status_202") == "2000" and int(fields.get("status_410", 0)) > 0
          and int(fields.get("status_409", 0)) > 0, "status counts: %s" % line[0])
    check("verdict: PASS" in r.stdout, "audit did not pass")

    bad = svc.path("bad.jmx")
    with open(bad, "w") as f:
        f.write("<notaplan/>\n")
    r = kit(svc, "--campaign", "jm", "--port", api.port, "--plan", bad, "--duration", 1,
            "--out", svc.path("bad"))
    check(r.returncode == 1 and "recorded no samples" in r.stderr,
          "a plan that runs nothing must fail the kit (exit %d): %s" % (r.returncode, r.stderr[-1000:]))
    check(w.stop() == 0, "worker did not exit 0")


if __name__ == "__main__":
    main(run)
