"""Every row of the contract's issue table (README) and the campaign endpoints' errors,
each checked to change nothing in Redis, Kafka or MySQL (docs/design.md:
"Nothing that answered 4xx/503 changed any state"), plus time windows."""

import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import Failure, ADMIN_TOKEN, Api, check, kafka_messages, main, redis_state, wait_until  # noqa: E402
from services import free_port, http  # noqa: E402


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def expect_error(resp, status, code, what):
    st, hd, body = resp
    check(st == status, "%s: status %s, expected %s (%s)" % (what, st, status, body))
    check(isinstance(body, dict) and body.get("error", {}).get("code") == code,
          "%s: body %r, expected error code %s" % (what, body, code))
    check(isinstance(body["error"].get("message"), str) and body["error"]["message"],
          "%s: error without a message" % what)
    check(hd.get("content-type", "").startswith("application/json"), "%s: not JSON" % what)
    return hd


def settle(svc, cid, issued):
    """Waits until the outbox is empty and Kafka shows @issued messages of
    @cid: an acknowledged message can become visible to consumers a moment
    after the ack, and a snapshot taken before that would see it 'change'."""
    wait_until(lambda: svc.redis("XLEN", "coupon:{%s}:outbox" % cid) == 0, 20, "outbox to drain")
    wait_until(lambda: sum(1 for _, v in kafka_messages(svc)
                           if isinstance(v, dict) and v.get("campaign_id") == cid) == issued,
               20, "kafka to show %d messages" % issued)


def kafka_count(svc):
    """Messages in the topic, read until two reads agree: on a loaded
    machine one read to the partitions' ends can stop short."""
    last = len(kafka_messages(svc))
    for _ in range(5):
        n = len(kafka_messages(svc))
        if n == last:
            return n
        last = n
    return last


def all_state(svc, cids):
    # The relay's lease keys (coupon:{id}:relay) are taken and expire on the
    # relay thread's own schedule, not by requests: they are not state.
    return ({c: redis_state(svc, c) for c in cids},
            kafka_count(svc),
            svc.mysql("SELECT id, total, persisted FROM campaigns ORDER BY id"),
            sorted(k for k in (svc.redis("KEYS", "coupon:*") or []) if not k.endswith(":relay")))


def same_state(svc, cids, before, what):
    """Fails naming what differs from @before (Redis per campaign, Kafka's
    count, MySQL's campaigns, the key set)."""
    after = all_state(svc, cids)
    if after == before:
        return
    parts = ["redis", "kafka messages", "mysql campaigns", "redis keys"]
    diff = ["%s: %r -> %r" % (parts[i], before[i], after[i]) for i in range(4) if before[i] != after[i]]
    raise Failure("%s: %s" % (what, "; ".join(diff)[:2000]))


def run(svc):
    api = Api(svc).start()
    now = datetime.datetime.now(datetime.timezone.utc)
    api.create_campaign("errs", 2)
    api.create_campaign("later", 10, starts_at=iso(now + datetime.timedelta(days=1)))
    api.create_campaign("past", 10, starts_at=iso(now - datetime.timedelta(days=2)),
                        ends_at=iso(now - datetime.timedelta(days=1)))
    st, _, b = api.issue("errs", "u1")
    check(st == 202 and b == {"result": "issued", "campaign_id": "errs", "user_id": "u1", "seq": 1},
          "first issue: %s %s" % (st, b))
    settle(svc, "errs", 1)
    cids = ["errs", "later", "past", "nope"]
    before = all_state(svc, cids)

    issue = "/v1/campaigns/errs/issue"
    json_h = {"Content-Type": "application/json"}
    cases = [
        ("409 already_issued", api.issue("errs", "u1"), 409, "already_issued"),
        ("404 campaign_not_found", api.issue("nope", "u9"), 404, "campaign_not_found"),
        ("403 scheduled", api.issue("later", "u9"), 403, "not_open"),
        ("403 ended", api.issue("past", "u9"), 403, "not_open"),
        ("400 malformed JSON", api.request("POST", issue, '{"user_id":', json_h), 400, "invalid_request"),
        ("400 empty body", api.request("POST", issue, "", json_h), 400, "invalid_request"),
        ("400 missing user_id", api.request("POST", issue, {}), 400, "invalid_request"),
        ("400 user_id number", api.request("POST", issue, {"user_id": 5}), 400, "invalid_request"),
        ("400 bad user_id chars", api.request("POST", issue, {"user_id": "a/b"}), 400, "invalid_request"),
        ("400 user_id too long", api.request("POST", issue, {"user_id": "x" * 65}), 400, "invalid_request"),
        ("400 unknown member", api.request("POST", issue, {"user_id": "u5", "x": 1}), 400, "invalid_request"),
        ("400 duplicate member", api.request("POST", issue, '{"user_id":"u5","user_id":"u6"}', json_h),
         400, "invalid_request"),
        ("400 NUL escape", api.request("POST", issue, '{"user_id":"u5\\u0000x"}', json_h), 400,
         "invalid_request"),
        ("400 trailing garbage", api.request("POST", issue, '{"user_id":"u5"} x', json_h), 400,
         "invalid_request"),
        ("400 bad campaign id", api.request("POST", "/v1/campaigns/bad.id/issue", {"user_id": "u5"}),
         400, "invalid_request"),
        ("400 encoded dots", api.request("POST", "/v1/campaigns/%2e%2e/issue", {"user_id": "u5"}),
         400, "invalid_request"),
        ("413 body too large", api.request("POST", issue, '{"user_id":"%s"}' % ("a" * 5000), json_h),
         413, "body_too_large"),
        ("415 text/plain", api.request("POST", issue, '{"user_id":"u5"}', {"Content-Type": "text/plain"}),
         415, "unsupported_media_type"),
        ("415 no content type", api.request("POST", issue, b'{"user_id":"u5"}'), 415,
         "unsupported_media_type"),
        ("405 GET issue", api.request("GET", issue), 405, "method_not_allowed"),
        ("404 unknown path", api.request("GET", "/v2/whatever"), 404, "not_found"),
        ("404 trailing slash", api.request("GET", "/v1/campaigns/errs/"), 404, "not_found"),
        ("401 create without token", api.request("POST", "/v1/campaigns",
                                                 {"id": "x1", "name": "x", "total": 5}), 401, "unauthorized"),
        ("401 create wrong token", api.request("POST", "/v1/campaigns", {"id": "x1", "name": "x", "total": 5},
                                               {"Authorization": "Bearer " + ADMIN_TOKEN + "x"}),
         401, "unauthorized"),
        ("409 campaign_exists", api.admin("POST", "/v1/campaigns", {"id": "errs", "name": "y", "total": 9}),
         409, "campaign_exists"),
        ("400 total 0", api.admin("POST", "/v1/campaigns", {"id": "x2", "name": "x", "total": 0}), 400,
         "invalid_request"),
        ("400 total fraction", api.admin("POST", "/v1/campaigns", {"id": "x2", "name": "x", "total": 1.5}),
         400, "invalid_request"),
        ("400 ends before starts", api.admin("POST", "/v1/campaigns",
                                             {"id": "x2", "name": "x", "total": 3,
                                              "starts_at": "2030-01-02T00:00:00Z",
                                              "ends_at": "2030-01-01T00:00:00Z"}), 400, "invalid_request"),
        ("400 bad time", api.admin("POST", "/v1/campaigns",
                                   {"id": "x2", "name": "x", "total": 3, "starts_at": "tomorrow"}),
         400, "invalid_request"),
        ("404 get unknown campaign", api.request("GET", "/v1/campaigns/nope"), 404, "campaign_not_found"),
        ("404 user of unknown campaign", api.request("GET", "/v1/campaigns/nope/users/u1"), 404,
         "campaign_not_found"),
    ]
    for what, resp, status, code in cases:
        hd = expect_error(resp, status, code, what)
        if status == 405:
            check(hd.get("allow") == "POST", "405 without Allow: POST")
        print("ok  %-28s %d %s" % (what, status, code), flush=True)
    same_state(svc, cids, before, "a refused request changed Redis, Kafka or MySQL")

    # Fill the campaign, then sold_out changes nothing either.
    st, _, b = api.issue("errs", "u2")
    check(st == 202 and b["seq"] == 2, "second issue: %s %s" % (st, b))
    settle(svc, "errs", 2)
    before = all_state(svc, cids)
    expect_error(api.issue("errs", "u3"), 410, "sold_out", "410 sold_out")
    expect_error(api.issue("errs", "u2"), 409, "already_issued", "409 after sold out")
    same_state(svc, cids, before, "sold_out/already_issued changed state")
    print("ok  410 sold_out", flush=True)

    # Reads.
    st, _, b = api.request("GET", "/v1/campaigns/errs/users/u2")
    check(st == 200 and b == {"user_id": "u2", "state": "issued"}, "user state: %s %s" % (st, b))
    st, _, b = api.request("GET", "/v1/campaigns/errs/users/u3")
    check(st == 200 and b["state"] == "none", "user none: %s %s" % (st, b))
    st, _, b = api.request("GET", "/v1/campaigns/later")
    check(st == 200 and b["state"] == "scheduled" and b["issued"] == 0 and b["ends_at"] is None,
          "scheduled campaign: %s" % b)
    st, _, b = api.request("GET", "/v1/campaigns/past")
    check(b["state"] == "ended", "ended campaign: %s" % b)
    st, _, b = api.request("GET", "/v1/campaigns/errs")
    check(b["state"] == "sold_out" and b["remaining"] == 0 and b["persisted"] == 0, "sold out campaign: %s" % b)

    # 503: Redis unreachable -> unavailable with Retry-After, nothing issued;
    # admin without a configured token -> 503.
    dead = Api(svc, {"COUPON_REDIS_URL": "redis://127.0.0.1:%d/0" % free_port(), "COUPON_ADMIN_TOKEN": "",
                     "COUPON_REDIS_TIMEOUT_MS": "200"}, name="api-dead").start()
    before = all_state(svc, cids)
    hd = expect_error(dead.issue("errs", "u7"), 503, "unavailable", "503 redis down")
    check(hd.get("retry-after", "").isdigit(), "503 without Retry-After")
    expect_error(dead.admin("POST", "/v1/campaigns", {"id": "x3", "name": "x", "total": 3}), 503,
                 "unavailable", "503 admin disabled")
    st, _, b = http("GET", dead.base + "/readyz")
    check(st == 503 and b.get("redis") == "down", "readyz with redis down: %s %s" % (st, b))
    same_state(svc, cids, before, "503 answers changed state")
    print("ok  503 unavailable (redis down, admin disabled)", flush=True)
    check(dead.stop() == 0, "coupon-api (dead redis) did not exit 0")

    st, _, b = api.request("GET", "/readyz")
    check(st == 200 and b["redis"] == "up" and b["outbox_backlog"] == 0, "readyz: %s %s" % (st, b))
    st, _, text = api.request("GET", "/metrics")
    check(st == 200 and 'coupon_http_requests_total{route="issue",status="202"} 2' in text,
          "metrics lack the issue counter")
    check('coupon_issue_outcomes_total{outcome="sold_out"} 1' in text, "metrics lack outcomes")
    check("coupon_http_request_duration_seconds_bucket" in text, "metrics lack the histogram")
    check(api.stop() == 0, "coupon-api did not exit 0 on SIGTERM")


if __name__ == "__main__":
    main(run)
