#!/usr/bin/env python3
"""The shared MySQL layer on its own, with no product in it.

cpn-db-check (db-check.c) runs against the migrated MariaDB of this test:
a blob's bytes (NUL, 0xff) round-trip; a statement of 40 parameters binds
(past the 16 kept on the stack), one of more than CPN_DB_PARAMS_MAX or of
the wrong count is refused before the server; a streamed walk stopped
early leaves the connection usable; a savepoint undoes only what follows
it, and a name that is not an identifier is refused; failed events keep
their labels, are recorded once when redelivered, keep a long key's first
1,024 bytes and drop a label the column refuses (the row kept); a retry
resolves what applies, undoes what a failing apply wrote, backs the rest
off, leaves rows not yet due alone, never touches another topic's rows,
marks rows dead after the policy's last attempt, and changes nothing when
the apply fails on its own; the listing filters by scope; two connections
retrying 40 rows at once both take some and apply each exactly once (SKIP
LOCKED)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from apitest import check, find_program, main  # noqa: E402


def run(svc):
    r = subprocess.run([find_program("cpn-db-check"), svc.env["COUPON_MYSQL_URL"]], capture_output=True, text=True,
                       timeout=300)
    print(r.stdout.strip(), flush=True)
    check(r.returncode == 0, "cpn-db-check: %d\n%s%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    check(r.stdout.count("\nok ") >= 20, "cpn-db-check ran fewer checks than it has:\n" + r.stdout)


main(run)
