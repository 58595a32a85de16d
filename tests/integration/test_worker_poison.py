"""Poison messages of any size or bytes never stop a partition.

All on partition 0, each followed by valid messages:
1. a key of 2,000 bytes with a value that is not JSON (message_key is
   VARBINARY(1024): the row used to be refused in strict mode, that error
   was not transient, and the worker retried the batch forever with the
   partition paused);
2. a value of 1.1 MB: an object of 100,000 members (the duplicate check
   was quadratic: minutes of CPU, again on every retry);
3. a value of 15 KB with 1,200 unknown members and valid fields (within
   the size bound: persisted; the duplicate check is m log m);
4. a value with bytes that are not UTF-8 and a key with NUL bytes;
5. a value whose user id is a duplicate member among 1,200 others.
Required: the worker's lag reaches 0 within 20 s; each poison message is
one failed_events row with its offset (1: the key's first 1,024 bytes and
the error says so; 2: "message of ... bytes"); every valid message is a
coupons row; the worker stays up."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Api, Worker, check, kafka_lag, main, mysql_coupons, wait_until  # noqa: E402

AT = "2026-11-21T10:00:00.250Z"
KSEP, MSEP = b"\x1f", b"\x1e"


def msg(user, seq, extra=None):
    m = {"campaign_id": "po", "user_id": user, "seq": seq, "issued_at": AT}
    m.update(extra or {})
    return json.dumps(m, separators=(",", ":")).encode()


def produce(svc, records):
    """(key bytes, value bytes) pairs, all to partition 0."""
    data = b"".join(k + KSEP + v + MSEP for k, v in records)
    r = subprocess.run(["kcat", "-b", svc.kafka_brokers, "-P", "-t", svc.topic, "-p", "0", "-K", "\x1f",
                        "-D", "\x1e", "-X", "message.max.bytes=4000000"], input=data, capture_output=True,
                       timeout=60)
    check(r.returncode == 0 and b"ERROR" not in r.stderr, "kcat: %s" % r.stderr[-500:])


def run(svc):
    api = Api(svc).start()
    api.create_campaign("po", 1000)
    # No retry of the failed events while the test reads them: a retry
    # rewrites the error with its own.
    worker = Worker(svc, {"COUPON_RETRY_BASE_MS": "600000", "COUPON_RETRY_MAX_MS": "600000"}).start()
    many = {"m%d" % i: i for i in range(1200)}
    huge = b"{" + b",".join(b'"a%d":%d' % (i, i) for i in range(100000)) + b"}"
    check(len(huge) > 1_000_000, "the huge message is only %d bytes" % len(huge))
    dup = msg("u-dup", 99, many)[:-1] + b',"user_id":"u-dup2"}'
    records = [
        (b"k" * 2000, b"{not json"),
        (b"v1", msg("v-1", 1)),
        (b"huge", huge),
        (b"v2", msg("v-2", 2)),
        (b"many", msg("many-1", 3, many)),
        (b"v3", msg("v-3", 4)),
        (b"a\x00b\x00", b'{"campaign_id":"po","user_id":"\xff\xfe","seq":5,"issued_at":"' + AT.encode() + b'"}'),
        (b"v4", msg("v-4", 6)),
        (b"dup", dup),
        (b"v5", msg("v-5", 7)),
    ]
    check(len(msg("many-1", 3, many)) < 16384, "the many-member message exceeds the bound")
    t0 = time.monotonic()
    produce(svc, records)
    wait_until(lambda: kafka_lag(svc) == 0, 60, "the worker's lag to reach 0")
    took = time.monotonic() - t0
    print("lag 0 after %.1fs" % took, flush=True)
    check(took < 20, "the worker needed %.1fs for ten messages" % took)
    check(worker.proc.poll() is None, "the worker died")

    rows = mysql_coupons(svc, "po")
    check(set(rows) == {"v-1", "v-2", "v-3", "v-4", "v-5", "many-1"}, "coupons: %s" % sorted(rows))
    fe = [dict(zip(("id", "kafka_offset", "error"), r))
          for r in svc.mysql("SELECT id, kafka_offset, error FROM failed_events ORDER BY id")]
    check(len(fe) == 4, "failed_events: %d rows: %s" % (len(fe), [(f["kafka_offset"], f["error"][:80]) for f in fe]))
    by_off = {int(f["kafka_offset"]): f for f in fe}
    base = min(by_off)
    long_key = by_off[base]
    check("2000 bytes" in long_key["error"] and "first 1024 kept" in long_key["error"],
          "long key row: %s" % long_key["error"])
    klen = int(svc.mysql("SELECT LENGTH(message_key) FROM failed_events WHERE id = %s" % long_key["id"])[0][0])
    check(klen == 1024, "stored key of %d bytes" % klen)
    check("message of %d bytes" % len(huge) in by_off[base + 2]["error"], "huge row: %s" % by_off[base + 2]["error"])
    check(base + 6 in by_off and base + 8 in by_off, "offsets of the failed rows: %s" % sorted(by_off))
    check("duplicate member" in by_off[base + 8]["error"], "duplicate row: %s" % by_off[base + 8]["error"])
    plen = int(svc.mysql("SELECT LENGTH(payload) FROM failed_events WHERE id = %s" % by_off[base + 2]["id"])[0][0])
    check(plen == len(huge), "the huge payload was stored as %d bytes" % plen)


if __name__ == "__main__":
    main(run)
