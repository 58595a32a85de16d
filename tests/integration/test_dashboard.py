"""The live dashboard in a real browser (Debian's headless Chromium driven by
selenium) while a sale runs against real Redis, MariaDB and the dev broker.

- the endpoint: GET /v1/dashboard without or with a wrong token is 401, a
  POST is 405, a coupon-api without an admin token answers 503
  (admin endpoints disabled); none of them changes Redis. The page and its assets are
  served from the binary with a Content-Security-Policy, Chart.js included
  (nothing is fetched from elsewhere: the policy would refuse it).
- a wrong token typed into the login form shows the form again with an
  error; the right one shows the board.
- during a load of about 200 requests a second (a fifth of them repeats)
  on a campaign of 3,000 that sells out mid-run: every value the page
  shows for the campaign lies between what GET /v1/campaigns/{id} and
  MySQL said just before the snapshot it came from was taken and just
  after the page showed it; the snapshot is at most 2.5 s old when read;
  issued moves on the page; remaining = total - issued.
- after the load: the page settles on issued = persisted = 3,000 = MySQL,
  sold out; the answers chart's sums are exactly the 202 / 409 / 410
  answers the load got; the ticket table shows the held reservations.
- a wrong token put into the tab's session brings the login back.
- the browser's console has no errors except the 401s the test provoked.
Screenshots: meson-logs/dashboard-*.png of the build directory."""

import http.client
import json
import os
import sys
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
from apitest import ADMIN_TOKEN, Api, Failure, Worker, check, main, mysql_persisted, redis_state, wait_until  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
except ImportError:  # run with Debian's /usr/bin/python3 (python3-selenium)
    webdriver = None

TOTAL = 3000
TID = "gala"
HELD = 5
ARTEFACTS = os.path.join(os.environ.get("COUPON_BUILD_DIR", "."), "meson-logs")


class Load:
    """@threads keep-alive connections issuing for @cid at about
    @per_thread requests a second each; every fifth request repeats one of
    the thread's earlier users. Counts answers by status."""

    def __init__(self, api, cid, threads=4, per_thread=50):
        self.api, self.cid, self.threads, self.gap = api, cid, threads, 1.0 / per_thread
        self.stop = threading.Event()
        self.counts = {}
        self.lock = threading.Lock()
        self.errors = []
        self.workers = []

    def _run(self, n):
        conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=10)
        mine, i = [], 0
        path = "/v1/campaigns/%s/issue" % self.cid
        while not self.stop.is_set():
            if i % 5 == 4 and mine:
                user = mine[(i * 7) % len(mine)]
            else:
                user = "dash-%d-%d" % (n, i)
                mine.append(user)
            i += 1
            try:
                conn.request("POST", path, body=json.dumps({"user_id": user}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=10)
                continue
            with self.lock:
                self.counts[st] = self.counts.get(st, 0) + 1
            time.sleep(self.gap)
        conn.close()

    def start(self):
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self.workers.append(t)
        return self

    def finish(self):
        self.stop.set()
        for t in self.workers:
            t.join(timeout=30)
        return dict(self.counts)


class Samples:
    """What the API and MySQL say over time: (wall start, wall end, issued,
    persisted) from GET /v1/campaigns/{id} every 0.1 s, and (start, end,
    persisted) from MySQL every 0.3 s."""

    def __init__(self, svc, api, cid):
        self.svc, self.api, self.cid = svc, api, cid
        self.stop = threading.Event()
        self.api_rows, self.sql_rows = [], []
        self.threads = [threading.Thread(target=self._api, daemon=True),
                        threading.Thread(target=self._sql, daemon=True)]

    def _api(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=10)
        while not self.stop.is_set():
            t0 = time.time()
            conn.request("GET", "/v1/campaigns/" + self.cid)
            r = conn.getresponse()
            b = json.loads(r.read())
            self.api_rows.append((t0, time.time(), b["issued"], b["persisted"]))
            time.sleep(0.1)
        conn.close()

    def _sql(self):
        while not self.stop.is_set():
            t0 = time.time()
            n = mysql_persisted(self.svc, self.cid)
            self.sql_rows.append((t0, time.time(), n))
            time.sleep(0.3)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    @staticmethod
    def bracket(rows, col, before, after):
        """The last value read entirely before @before and the first read
        entirely after @after (None when there is none yet)."""
        lo = [r[col] for r in rows if r[1] <= before]
        hi = [r[col] for r in rows if r[0] >= after]
        return (lo[-1] if lo else None), (hi[0] if hi else None)


def parse_num(text):
    text = text.strip().replace(",", "")
    return None if text in ("", "–") else int(text)


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1700", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=ChromeService(executable_path="/usr/bin/chromedriver"), options=opts)


def shot(drv, name):
    os.makedirs(ARTEFACTS, exist_ok=True)
    path = os.path.join(ARTEFACTS, "dashboard-%s.png" % name)
    drv.save_screenshot(path)
    print("screenshot: %s" % path, flush=True)


def visible(drv, el_id):
    return drv.execute_script("const e = document.getElementById(arguments[0]); return !!e && !e.hidden;", el_id)


def card(drv, cid):
    """The campaign card's fields as text, the snapshot time and the poll
    count, read in one script so that they belong together."""
    return drv.execute_script("""
        const c = document.querySelector('.campaign[data-id="' + arguments[0] + '"]');
        if (!c) return null;
        const f = {};
        c.querySelectorAll('[data-f]').forEach((e) => { f[e.dataset.f] = e.textContent; });
        return { fields: f, now: document.body.dataset.now, polls: Number(document.body.dataset.polls || 0),
                 read_at: Date.now() / 1000 };""", cid)


def snapshot_time(iso):
    return datetime.strptime(iso.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z" if "." in iso
                             else "%Y-%m-%dT%H:%M:%S%z").timestamp()


def login(drv, token):
    box = drv.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)
    drv.find_element(By.ID, "login-button").click()


def check_endpoint(svc, api):
    before = (redis_state(svc, "live"), redis_state(svc, "quiet"))
    st, _, b = api.request("GET", "/v1/dashboard")
    check(st == 401 and b["error"]["code"] == "unauthorized", "no token: %s %s" % (st, b))
    st, _, b = api.request("GET", "/v1/dashboard", headers={"Authorization": "Bearer not-" + ADMIN_TOKEN})
    check(st == 401, "wrong token: %s %s" % (st, b))
    st, _, b = api.admin("POST", "/v1/dashboard", {})
    check(st == 405, "POST /v1/dashboard: %s %s" % (st, b))
    def shows_both():
        st, _, b = api.admin("GET", "/v1/dashboard")
        return st == 200 and {"live", "quiet"} <= {c["id"] for c in b["campaigns"]}
    wait_until(shows_both, 10, "a snapshot with both campaigns")
    st, _, b = api.admin("GET", "/v1/dashboard")
    check(st == 200 and {"now", "process", "history", "campaigns", "tickets", "errors"} <= set(b),
          "GET /v1/dashboard: %s %s" % (st, b))
    check([c["id"] for c in b["campaigns"]] == ["live", "quiet"], "campaigns: %s" % b["campaigns"])
    check(b["process"]["redis_pipe"] == "up" and b["process"]["mysql"] == "up", "process: %s" % b["process"])
    for path, ctype in (("/dashboard", "text/html"), ("/dashboard/app.js", "text/javascript"),
                        ("/dashboard/app.css", "text/css"), ("/dashboard/chart.min.js", "text/javascript")):
        st, h, body = api.request("GET", path)
        h = {k.lower(): v for k, v in h.items()}
        check(st == 200 and h.get("content-type", "").startswith(ctype), "%s: %s %s" % (path, st, h))
        check("default-src 'none'" in h.get("content-security-policy", ""), "%s: no CSP: %s" % (path, h))
    st, _, body = api.request("GET", "/dashboard/chart.min.js")
    check("Chart" in str(body)[:2000], "chart.min.js is not Chart.js")
    st, _, _ = api.request("GET", "/dashboard/nope.js")
    check(st == 404, "unknown asset: %s" % st)

    bare = Api(svc, extra_env={"COUPON_ADMIN_TOKEN": ""}, name="api-noadmin").start()
    st, _, b = bare.request("GET", "/v1/dashboard", headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    check(st == 503 and "COUPON_ADMIN_TOKEN" in b["error"]["message"], "no admin token: %s %s" % (st, b))
    bare.stop()
    check((redis_state(svc, "live"), redis_state(svc, "quiet")) == before, "a refused request changed Redis")


def check_page_against(samples, seen, r):
    """One reading @r of the card against what the API and MySQL said
    around the snapshot it shows; @seen collects staleness."""
    f = r["fields"]
    issued, total, remaining = parse_num(f["issued"]), parse_num(f["total"]), parse_num(f["remaining"])
    persisted = parse_num(f["persisted"])
    taken = snapshot_time(r["now"])
    age = r["read_at"] - taken
    seen.append(age)
    check(age <= 2.5, "the page shows a snapshot %.2f s old" % age)
    check(total == TOTAL and remaining == total - issued, "card: %s" % f)
    lo, hi = Samples.bracket(samples.api_rows, 2, taken, r["read_at"])
    check((lo is None or lo <= issued) and (hi is None or issued <= hi),
          "page issued %d not within the API's %s..%s around its snapshot" % (issued, lo, hi))
    lo, hi = Samples.bracket(samples.api_rows, 3, taken, r["read_at"])
    check((lo is None or lo <= persisted) and (hi is None or persisted <= hi),
          "page persisted %d not within the API's %s..%s" % (persisted, lo, hi))
    lo, hi = Samples.bracket(samples.sql_rows, 2, taken, r["read_at"])
    check((lo is None or lo <= persisted) and (hi is None or persisted <= hi),
          "page persisted %d not within MySQL's %s..%s" % (persisted, lo, hi))
    return issued


def run(svc):
    if webdriver is None:
        raise Failure("selenium is missing: run this test with Debian's /usr/bin/python3 (python3-selenium)")
    api = Api(svc).start()
    Worker(svc).start()
    api.create_campaign("live", TOTAL, name="Flash sale")
    api.create_campaign("quiet", 50, name="Untouched")
    st, _, b = api.admin("POST", "/v1/ticket-types", {"id": TID, "name": "Gala night", "price": 55000,
                                                       "currency": "KRW", "total": 40})
    check(st == 201, "ticket type: %s %s" % (st, b))
    for i in range(HELD):
        st, _, b = api.request("POST", "/v1/ticket-types/%s/reservations" % TID, {"user_id": "t-%d" % i})
        check(st == 201, "reservation: %s %s" % (st, b))
    check_endpoint(svc, api)

    drv = browser()
    try:
        drv.get(api.base + "/dashboard")
        wait_until(lambda: visible(drv, "login"), 15, "the login form")
        shot(drv, "login")
        login(drv, "not-the-token")
        wait_until(lambda: "refused" in drv.find_element(By.ID, "login-error").text, 10, "the refusal")
        check(visible(drv, "login") and not visible(drv, "board"), "a wrong token showed the board")
        check(drv.execute_script("return sessionStorage.getItem('coupon-admin-token')") is None,
              "the refused token stayed in the session")
        check("token" not in drv.current_url and ADMIN_TOKEN not in drv.current_url, "token in the URL")
        shot(drv, "refused")

        login(drv, ADMIN_TOKEN)
        wait_until(lambda: visible(drv, "board") and card(drv, "live") is not None, 15, "the board")
        check(ADMIN_TOKEN not in drv.current_url, "the token went into the URL")

        samples = Samples(svc, api, "live").start()
        load = Load(api, "live").start()
        seen, values, t_end = [], [], time.monotonic() + 30
        try:
            while time.monotonic() < t_end:
                r = card(drv, "live")
                values.append(check_page_against(samples, seen, r))
                if values[-1] == TOTAL and len(values) > 8:
                    break
                if len(values) == 6:
                    shot(drv, "live")
                time.sleep(0.7)
            check(len(set(values)) >= 4, "issued did not move on the page: %s" % values)
            check(values == sorted(values), "issued went backwards on the page: %s" % values)
            time.sleep(3)  # 410s after the sell-out
        finally:
            counts = load.finish()
        print("load: %s; %d readings, snapshot age max %.2f s, mean %.2f s" % (
            counts, len(values), max(seen), sum(seen) / len(seen)), flush=True)
        check(not load.errors, "load errors: %s" % load.errors[:3])
        check(counts.get(202, 0) == TOTAL and set(counts) <= {202, 409, 410} and counts.get(410, 0) > 0,
              "load answers: %s" % counts)

        wait_until(lambda: mysql_persisted(svc, "live") == TOTAL, 60, "MySQL to hold the sale")

        def settled():
            f = card(drv, "live")["fields"]
            return (parse_num(f["issued"]) == TOTAL and parse_num(f["persisted"]) == TOTAL
                    and parse_num(f["outbox_backlog"]) == 0 and f["state"].strip() == "sold out")
        wait_until(settled, 15, "the page to show the sale settled")
        for _ in range(3):
            check_page_against(samples, seen, card(drv, "live"))
            time.sleep(0.5)
        samples.finish()
        f = card(drv, "live")["fields"]
        check(parse_num(f["remaining"]) == 0 and parse_num(f["failed_open"]) == 0
              and parse_num(f["failed_dead"]) == 0 and parse_num(f["unpersisted"]) == 0, "settled card: %s" % f)
        q = card(drv, "quiet")["fields"]
        check(parse_num(q["issued"]) == 0 and parse_num(q["total"]) == 50 and q["state"].strip() == "open",
              "the untouched campaign: %s" % q)

        # the answers chart adds up to what the load was told (its window
        # covers the whole run); a tick after the last answer first
        time.sleep(2.5)
        sums = drv.execute_script("""
            const c = Chart.getChart(document.getElementById('answers-chart'));
            return c.data.datasets.map((d) => d.data.reduce((a, b) => a + b, 0));""")
        check(sums[:3] == [counts.get(202, 0), counts.get(409, 0), counts.get(410, 0)] and sums[3:] == [0, 0],
              "answers chart sums %s, the load got %s" % (sums, counts))
        rate = drv.execute_script("""
            const c = Chart.getChart(document.querySelector('.campaign[data-id="live"] canvas'));
            return c.data.datasets[0].data.reduce((a, b) => a + (b || 0), 0);""")
        check(rate == TOTAL, "the campaign's issued-per-second chart adds up to %s, not %d" % (rate, TOTAL))

        row = drv.execute_script("""
            const r = document.querySelector('#types tr[data-id="' + arguments[0] + '"]');
            if (!r) return null;
            const f = {}; r.querySelectorAll('td[data-f]').forEach((e) => { f[e.dataset.f] = e.textContent; });
            return f;""", TID)
        check(row is not None, "no row for the ticket type")
        check(parse_num(row["held"]) == HELD and parse_num(row["available"]) == 40 - HELD
              and parse_num(row["total"]) == 40 and parse_num(row["sold"]) == 0, "ticket row: %s" % row)
        for chip_id in ("chip-redis", "chip-mysql", "chip-kafka"):
            check(drv.find_element(By.ID, chip_id).text.endswith("up"), "%s is not up" % chip_id)
        polls0 = card(drv, "live")["polls"]
        time.sleep(4)
        polls1 = card(drv, "live")["polls"]
        check(polls1 - polls0 >= 3, "the page polled %d times in 4 s" % (polls1 - polls0))
        shot(drv, "soldout")

        drv.execute_script("sessionStorage.setItem('coupon-admin-token', 'stolen-or-stale')")
        wait_until(lambda: visible(drv, "login") and not visible(drv, "board"), 5,
                   "the login form after the token went bad")
        check("refused" in drv.find_element(By.ID, "login-error").text, "no error shown for the bad token")

        logs = drv.get_log("browser")
        bad = [e for e in logs if e["level"] == "SEVERE"
               and not ("/v1/dashboard" in e["message"] and "401" in e["message"])]
        check(not bad, "console errors: %s" % bad[:5])
        print("console: %d entries, %d the provoked 401s" % (len(logs), len(logs) - len(bad)), flush=True)
    finally:
        drv.quit()


if __name__ == "__main__":
    main(run)
