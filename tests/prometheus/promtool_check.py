"""Runs promtool with the arguments given, in the folder of the first
file argument, and passes its exit status on. Without promtool the test
is skipped by hand and fails under CI (services.skip_or_fail), as a
missing server is for the integration tests."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from services import skip_or_fail  # noqa: E402


def main():
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_or_fail("not installed: promtool (Debian package prometheus)")
    args = sys.argv[1:]
    files = [a for a in args if os.path.isfile(a)]
    cwd = os.path.dirname(os.path.abspath(files[0])) if files else None
    # rule_files in a test file are relative to it: run where it is.
    r = subprocess.run([promtool] + [os.path.abspath(a) if a in files else a for a in args],
                       cwd=cwd, timeout=120)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
