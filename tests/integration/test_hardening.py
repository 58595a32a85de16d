"""Two hardening points of issue 14, item 15.

1. No MySQL connection accepts several statements in one query (every
   connection was opened with CLIENT_MULTI_STATEMENTS though nothing
   needs it): cpn-db-multi connects as the programs do and sends
   "SELECT 1; SELECT 2", which must be refused; couponctl migrate, whose
   files hold several statements, turns the mode on for its own run only,
   and it is off again after.
2. Test hooks stay out of release builds: a release build of
   coupon-worker (meson --buildtype=release, made here in a temporary
   folder) holds no trace of COUPON_TEST_CRASH_AFTER_COMMIT and does not
   say "test hooks" in --version; this test build says it does."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import check, find_program, main  # noqa: E402
from services import source_dir  # noqa: E402


def run(svc):
    r = subprocess.run([find_program("cpn-db-multi"), svc.env["COUPON_MYSQL_URL"]], capture_output=True, text=True,
                       timeout=120)
    print(r.stdout.strip(), flush=True)
    check(r.returncode == 0, "cpn-db-multi: %d %s %s" % (r.returncode, r.stdout, r.stderr))

    r = subprocess.run([find_program("coupon-worker"), "--version"], capture_output=True, text=True)
    check("test hooks" in r.stdout, "this test build does not say it has test hooks: %r" % r.stdout)
    with tempfile.TemporaryDirectory(prefix="coupon-release-") as d:
        b = os.path.join(d, "build")
        r = subprocess.run(["meson", "setup", b, source_dir(), "--buildtype=release", "-Dintegration=false"],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "meson setup (release): %s" % (r.stdout + r.stderr)[-2000:])
        r = subprocess.run(["ninja", "-C", b, "src/coupon-worker"], capture_output=True, text=True, timeout=900)
        check(r.returncode == 0, "ninja (release): %s" % (r.stdout + r.stderr)[-2000:])
        exe = os.path.join(b, "src", "coupon-worker")
        with open(exe, "rb") as f:
            data = f.read()
        check(b"COUPON_TEST_CRASH_AFTER_COMMIT" not in data and b"test crash point" not in data,
              "the release worker holds the test hook")
        v = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        check("test hooks" not in v and v.startswith("coupon-worker "), "release --version: %r" % v)
        print("release build: %s, no test hook in it" % v.strip(), flush=True)


if __name__ == "__main__":
    main(run)
