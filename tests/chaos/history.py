"""The chaos suite's checker: what every client was told, against what
Redis and MySQL hold once everything has been healed and has quiesced.

A history is the list of cpn-loadgen records of one campaign:
(user, status, seq or None, start_us, end_us). A status is

  202                 issued: the user was promised a coupon with that seq
  409                 already issued: the user holds a coupon
  410, 403, 404, 503  refused: nothing was issued by that request
  0, 504, other 5xx   indeterminate: no answer, or one that says the outcome
                      is unknown; the request may or may not have issued

The end state is a dict (see end_state() in chaos.py): MySQL's rows
{user: seq}, persisted, Redis's count, user set and outbox length, the
campaign's open failed events and its total.

check() returns the counts of each kind of violation; all must be 0:

  lost         a 202 whose user is not in MySQL
  duplicated   a user told 202 twice, or one seq told to two users
  oversold     more than total anywhere (rows, persisted, count, set, a seq)
  unexpected   a MySQL row of a user nobody asked for
  broken       a promise the end state contradicts: a 202 whose seq MySQL
               does not have, a 409 to a user without a coupon, a coupon
               held by a user whose every request was refused, a 410 while
               the campaign never sold out
  diverged     Redis and MySQL disagree (count, set, rows, persisted,
               outbox not empty, open failed events)

and, not a failure by itself, reseq: users of @reseq_ok (re-published by
`couponctl reconcile` after a loss) whose row carries another seq than the
one they were told: reconcile cannot know it, Redis keeps only the set.
"""

REFUSED = {403, 404, 410, 503}


def indeterminate(status):
    return status == 0 or (status >= 500 and status != 503)


def check(history, end, reseq_ok=frozenset()):
    """Returns (violations: dict kind -> count, examples: list of str)."""
    total = end["total"]
    rows = end["rows"]
    told = {}           # user -> seq of its 202
    seq_owner = {}      # seq -> user told it
    statuses = {}       # user -> set of statuses
    v = dict(lost=0, duplicated=0, oversold=0, unexpected=0, broken=0, diverged=0, reseq=0)
    ex = []

    def bad(kind, n, what):
        if n:
            v[kind] += n
            if len(ex) < 12:
                ex.append("%s: %s" % (kind, what))

    for user, status, seq, _, _ in history:
        statuses.setdefault(user, set()).add(status)
        if status != 202:
            continue
        if user in told:
            bad("duplicated", 1, "user %s told 202 twice (seq %s and %s)" % (user, told[user], seq))
            continue
        told[user] = seq
        if seq in seq_owner:
            bad("duplicated", 1, "seq %s told to %s and %s" % (seq, seq_owner[seq], user))
        seq_owner[seq] = user
        if seq is None or seq < 1 or seq > total:
            bad("oversold", 1, "user %s told seq %s of %d" % (user, seq, total))

    for user, seq in told.items():
        if user not in rows:
            bad("lost", 1, "user %s got 202 (seq %s) and is not in MySQL" % (user, seq))
        elif rows[user] != seq and user in reseq_ok:
            bad("reseq", 1, "user %s told seq %s, re-published with %s" % (user, seq, rows[user]))
        elif rows[user] != seq:
            bad("broken", 1, "user %s told seq %s, MySQL has %s" % (user, seq, rows[user]))

    for user, st in statuses.items():
        if 409 in st and user not in rows:
            bad("broken", 1, "user %s told already_issued but holds no coupon" % user)

    for user in rows:
        st = statuses.get(user)
        if st is None:
            bad("unexpected", 1, "MySQL has user %s, whom nobody asked for" % user)
        elif 202 not in st and not any(indeterminate(s) for s in st):
            bad("broken", 1, "user %s holds a coupon though every answer refused it (%s)" % (
                user, sorted(st)))

    sold_out_told = sum(1 for _, s, _, _, _ in history if s == 410)
    if sold_out_told and len(rows) < total:
        bad("broken", sold_out_told, "%d told sold_out, but only %d of %d were issued" % (
            sold_out_told, len(rows), total))

    for name, n in (("rows", len(rows)), ("persisted", end["persisted"]), ("count", end["count"]),
                    ("SCARD", len(end["users"]))):
        if n > total:
            bad("oversold", n - total, "%s %d > total %d" % (name, n, total))
    if sorted(rows.values()) != list(range(1, len(rows) + 1)):
        bad("duplicated" if len(set(rows.values())) < len(rows) else "broken", 1,
            "MySQL's seqs are not 1..%d once each" % len(rows))

    users = end["users"]
    only_redis, only_mysql = users - set(rows), set(rows) - users
    bad("diverged", len(only_redis), "%d users only in Redis, e.g. %s" % (
        len(only_redis), sorted(only_redis)[:3]))
    bad("diverged", len(only_mysql), "%d users only in MySQL, e.g. %s" % (
        len(only_mysql), sorted(only_mysql)[:3]))
    if not end["count"] == len(users) == len(rows) == end["persisted"]:
        bad("diverged", 1, "count %d, SCARD %d, rows %d, persisted %d differ" % (
            end["count"], len(users), len(rows), end["persisted"]))
    bad("diverged", end["outbox"], "outbox still holds %d entries" % end["outbox"])
    bad("diverged", end["failed_open"], "%d open failed events" % end["failed_open"])
    return v, ex


def summary(history):
    """Counts of answers: requests, issued, already, sold_out, unavailable,
    indeterminate (0, 504, other 5xx), other."""
    s = dict(requests=len(history), issued=0, already=0, sold_out=0, unavailable=0, indeterminate=0,
             other=0)
    for _, status, _, _, _ in history:
        if status == 202:
            s["issued"] += 1
        elif status == 409:
            s["already"] += 1
        elif status == 410:
            s["sold_out"] += 1
        elif status == 503:
            s["unavailable"] += 1
        elif indeterminate(status):
            s["indeterminate"] += 1
        else:
            s["other"] += 1
    return s
