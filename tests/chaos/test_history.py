"""The chaos checker must be able to fail: one healthy history passes, and
each kind of violation planted in it is reported as that kind."""

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history  # noqa: E402


def healthy():
    # total 3: a, b, c issued; d refused sold out; a repeats (409); e's
    # request got no answer and was not issued; f's got none and was.
    h = [("a", 202, 1, 0, 1), ("b", 202, 2, 0, 1), ("c", 202, 3, 0, 1), ("d", 410, None, 1, 2),
         ("a", 409, None, 1, 2), ("e", 0, None, 1, 5), ("f", 504, None, 1, 5)]
    end = dict(total=4, rows={"a": 1, "b": 2, "c": 3, "f": 4}, persisted=4, count=4,
               users={"a", "b", "c", "f"}, outbox=0, failed_open=0)
    return h, end


def expect(kind, h, end, exact=True):
    v, ex = history.check(h, end)
    bad = {k: n for k, n in v.items() if n}
    if (list(bad) != [kind]) if exact else (kind not in bad):
        print("FAIL: planted %s, checker found %s %s" % (kind, bad, ex))
        sys.exit(1)


def main():
    h, end = healthy()
    v, ex = history.check(h, end)
    if any(v.values()):
        print("FAIL: healthy history flagged: %s %s" % (v, ex))
        sys.exit(1)

    def variant(mut):
        h2, e2 = copy.deepcopy(healthy())
        mut(h2, e2)
        return h2, e2

    def lose(h, e):  # b's row is gone, and Redis forgot it too
        del e["rows"]["b"]
        e["users"].discard("b")
        e["count"] = e["persisted"] = 3
    # (the seqs then have a hole, and d's sold_out is wrong: also reported)
    expect("lost", *variant(lose), exact=False)
    expect("duplicated", *variant(lambda h, e: h.append(("b", 202, 2, 3, 4))))
    expect("duplicated", *variant(lambda h, e: h.__setitem__(2, ("c", 202, 2, 0, 1)) or
                                  e["rows"].__setitem__("c", 2) or e["rows"].__setitem__("f", 3)))

    def oversell(h, e):
        e["total"] = 3
        h[6] = ("f", 0, None, 1, 5)
    v, _ = history.check(*variant(oversell))
    if not v["oversold"]:
        print("FAIL: rows over total not reported as oversold: %s" % v)
        sys.exit(1)

    def stranger(h, e):
        e["rows"]["zz"] = 5
        e["users"].add("zz")
        e["count"] = e["persisted"] = e["total"] = 5
    expect("unexpected", *variant(stranger))
    expect("broken", *variant(lambda h, e: e["rows"].__setitem__("c", 4) or e["rows"].__setitem__("f", 3)))
    expect("broken", *variant(lambda h, e: h.append(("e", 409, None, 5, 6))))
    swapped = variant(lambda h, e: e["rows"].__setitem__("c", 4) or e["rows"].__setitem__("f", 3))
    v, _ = history.check(*swapped, reseq_ok={"c"})
    if v["broken"] or v["reseq"] != 1:
        print("FAIL: a re-published user's other seq is not counted as reseq: %s" % v)
        sys.exit(1)

    def refused_holds(h, e):  # f was told 503 (nothing issued) and holds a coupon
        h[6] = ("f", 503, None, 1, 5)
    expect("broken", *variant(refused_holds))

    def early_sold_out(h, e):  # sold_out while only 3 of 5 went
        e["total"] = 5
        h[6] = ("f", 0, None, 1, 5)
    expect("broken", *variant(early_sold_out))
    expect("diverged", *variant(lambda h, e: e.__setitem__("outbox", 2)))
    expect("diverged", *variant(lambda h, e: e["users"].add("e") or e.__setitem__("count", 5) or
                                e.__setitem__("total", 5) or h.__setitem__(3, ("d", 0, None, 1, 2))))
    expect("diverged", *variant(lambda h, e: e.__setitem__("failed_open", 1)))
    expect("diverged", *variant(lambda h, e: e.__setitem__("persisted", 3)))
    print("PASS: the checker reports each planted violation as its kind")


if __name__ == "__main__":
    main()
