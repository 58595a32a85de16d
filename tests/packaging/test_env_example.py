"""deploy/coupon.env (installed as /etc/coupon/coupon.env) against the
configuration table of src/common/config.c: every COUPON_* variable the
programs read has its line, commented out at its default (empty when it
has none), and the file names no variable the programs do not read.
No root, no servers (suite 'packaging')."""

import os
import re
import sys

SOURCE = os.path.abspath(os.environ.get("COUPON_SOURCE_DIR",
                                        os.path.join(os.path.dirname(__file__), "..", "..")))

ENTRY = re.compile(r'\{\s*"(COUPON_[A-Z0-9_]+)",\s*"[a-z0-9-]+",\s*T_(?:STR|LONG),\s*S\(\w+\),\s*(NULL|"[^"]*")')


def main():
    with open(os.path.join(SOURCE, "src", "common", "config.c")) as f:
        table = {name: ("" if d == "NULL" else d[1:-1]) for name, d in ENTRY.findall(f.read())}
    if len(table) < 30:
        print("FAIL: read only %d entries from config.c's table: has its layout changed?" % len(table))
        return 1
    with open(os.path.join(SOURCE, "deploy", "coupon.env")) as f:
        text = f.read()
    lines = dict(re.findall(r"^#(COUPON_[A-Z0-9_]+)=(.*)$", text, re.M))
    active = re.findall(r"^(COUPON_[A-Z0-9_]+)=", text, re.M)
    problems = []
    for name, default in sorted(table.items()):
        if name not in lines:
            problems.append("%s has no line '#%s=%s'" % (name, name, default))
        elif lines[name] != default:
            problems.append("#%s=%s, but its default is %r" % (name, lines[name], default))
    for name in sorted(set(lines) - set(table)):
        problems.append("%s is not read by the programs (not in config.c's table)" % name)
    for name in active:
        problems.append("%s is set: the example sets nothing, every line is commented out" % name)
    for p in problems:
        print("FAIL: deploy/coupon.env: " + p)
    if problems:
        return 1
    print("deploy/coupon.env: all %d variables at their defaults" % len(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
