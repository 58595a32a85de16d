"""couponctl's command line: every option is one its command takes, every
argument is expected, every refusal is exit 2 before anything is done.

- `rebuild C --dry-run` used to really rebuild: now exit 2 and Redis is
  untouched (no pause, no lease, the same keys);
- options of other commands (`lag --force`, `audit C --grace 1`,
  `failed list --all`, `reconcile --users 5`) and extra arguments
  (`migrate now`, `lag x`, `campaign create ... extra`, `rebuild a b`):
  exit 2 with a message;
- `failed list --status bogus`: exit 2 and nothing printed on stdout;
- `campaign show` without an id: exit 2 with its usage, not "unknown
  command"; `campaign frob`: exit 2;
- `campaign create` of an identical campaign: exit 0 and says it already
  existed; with other fields: exit 3.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, check, find_program, main, redis_state  # noqa: E402


def ctl(svc, *args):
    r = subprocess.run([find_program("couponctl"), *args], env={**os.environ, **svc.env},
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def run(svc):
    api = Api(svc).start()
    api.create_campaign("cli", 10)
    for u in ("a", "b"):
        api.issue("cli", u)
    before = redis_state(svc, "cli")

    rc, out, err = ctl(svc, "rebuild", "cli", "--dry-run")
    check(rc == 2 and "does not take --dry-run" in err, "rebuild --dry-run: %d %s" % (rc, err))
    check(redis_state(svc, "cli") == before and svc.redis("EXISTS", "coupon:{cli}:ops") == 0,
          "rebuild --dry-run changed Redis")

    for args, what in ((["lag", "--force"], "does not take --force"),
                       (["audit", "cli", "--grace", "1"], "does not take --grace"),
                       (["failed", "list", "--all"], "does not take --all"),
                       (["reconcile", "--users", "5"], "does not take --users"),
                       (["migrate", "now"], "takes no arguments"),
                       (["lag", "x"], "bad usage"),
                       (["rebuild", "a", "b"], "bad usage"),
                       (["campaign", "create", "--id", "cx", "--name", "X", "--total", "5", "extra"],
                        "unexpected argument"),
                       (["campaign", "show"], "usage: campaign show ID"),
                       (["campaign", "frob"], "usage: campaign create"),
                       (["failed", "list", "--status", "bogus"], "--status must be")):
        rc, out, err = ctl(svc, *args)
        check(rc == 2 and what in err, "%s: exit %d, %r" % (" ".join(args), rc, err))
        check(out == "", "%s printed %r before refusing" % (" ".join(args), out))
    check(svc.mysql("SELECT COUNT(*) FROM campaigns WHERE id = 'cx'")[0][0] == "0", "the refused create ran")

    rc, out, err = ctl(svc, "campaign", "create", "--id", "cli", "--name", "Campaign cli", "--total", "10",
                       "--starts-at", svc.mysql("SELECT DATE_FORMAT(starts_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM "
                                                "campaigns WHERE id = 'cli'")[0][0][:23] + "Z")
    check(rc == 0 and "already existed" in err and '"id":"cli"' in out, "identical create: %d %s %s" % (rc, out, err))
    rc, out, err = ctl(svc, "campaign", "create", "--id", "cli", "--name", "Campaign cli", "--total", "11")
    check(rc == 3 and "other fields" in err, "different create: %d %s" % (rc, err))
    rc, out, err = ctl(svc, "failed", "list", "--status", "all")
    check(rc == 0 and out.startswith("id\t"), "failed list --status all: %d %s %s" % (rc, out, err))
    check(redis_state(svc, "cli") == before, "Redis changed")


if __name__ == "__main__":
    main(run)
