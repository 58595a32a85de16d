"""The Debian packages, end to end, on this machine (suite 'packaging').

Copies the tree (git's tracked files and the untracked ones it does not
ignore) to a temporary folder, builds the packages there with
`dpkg-buildpackage -b -us -uc`, installs coupon-common, coupon-api and
coupon-worker with dpkg, and checks what an operator relies on: the
programs in /usr/bin answer --version / --help (a worker without test
hooks), /etc/coupon/coupon.env is a conffile, 0600 root, equal to
deploy/coupon.env; the units pass `systemd-analyze verify` as installed
and are neither enabled nor running; the coupon user exists; the dev
fakes are not installed; the nginx front renders from
/usr/share/coupon/nginx.

With COUPON_TEST_BOOT_UNITS=1 (off by default: it needs namespaces and
mounts a CI machine may not grant) it then runs the installed units the
way docs/production.md says, under
a systemd of its own (boot-systemd.sh: private namespaces, only these
units, a read-only view of the machine) against Redis, MariaDB, the dev
broker and the dev gateway on free loopback ports (tests/support): fills
in coupon.env (the programs with a MySQL account that may only read and
write rows, the migrations with one that may change the schema, in
/etc/coupon/migrate.env), `systemctl start coupon-migrate`, starts coupon-api and
coupon-worker, checks each runs as coupon with no new privileges and a
seccomp filter, creates a campaign and issues three coupons through the
API, waits for the worker to persist them in MySQL, stops both units and
checks that each exited 0 within its TimeoutStopSec.

Last, always (also after a failure or SIGTERM): the private systemd is
killed and its cgroup folders removed, the packages are purged, the
coupon user is removed when this test created it, and the test checks
that none of the packages' files is left.

Needs root (exit 77 otherwise: it installs packages). Refuses to run
when one of the packages is installed already. Missing build or server
programs: skip by hand, failure under CI=true (tests/support/services.py).
"""

import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.environ.get("COUPON_SOURCE_DIR", os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from services import Services, ServiceError, free_port, http, skip_or_fail, wait_http  # noqa: E402

PACKAGES = ["coupon-common", "coupon-api", "coupon-worker"]
UNITS = ["coupon-api.service", "coupon-worker.service", "coupon-migrate.service"]
UNIT_DIR = "/lib/systemd/system"
# Every path the packages install (directories: and everything below).
INSTALLED = ["/usr/bin/coupon-api", "/usr/bin/coupon-worker", "/usr/bin/couponctl",
             "/etc/coupon", "/usr/lib/sysusers.d/coupon.conf", "/usr/share/coupon",
             "/usr/share/doc/coupon-common", "/usr/share/doc/coupon-api",
             "/usr/share/doc/coupon-worker"] + [UNIT_DIR + "/" + u for u in UNITS]
ENV_FILE = "/etc/coupon/coupon.env"
MIGRATE_ENV = "/etc/coupon/migrate.env"  # the operator's file, not the package's
BUILD_TIMEOUT = 900


class Failure(Exception):
    pass


def step(msg):
    print("== " + msg, flush=True)


def tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def run(argv, what, timeout=120, log=None, cwd=None, env=None, check=True):
    """Runs @argv; output to @log (a path) or captured. A non-zero exit
    raises Failure naming @what, with the end of the output."""
    try:
        if log:
            with open(log, "wb") as f:
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                   timeout=timeout, cwd=cwd, env=env)
            with open(log, "rb") as f:
                out = f.read().decode("utf-8", "replace")
        else:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                               cwd=cwd, env=env)
            out = (r.stdout + r.stderr).decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        raise Failure("%s: took more than %d s (%s)" % (what, timeout, " ".join(argv)))
    except FileNotFoundError as e:
        raise Failure("%s: %s" % (what, e))
    if check and r.returncode != 0:
        raise Failure("%s: exit %d (%s)%s\n%s" % (what, r.returncode, " ".join(argv),
                                                  " log: " + log if log else "", tail(out)))
    r.out = out
    return r


def package_state(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def user_exists(name):
    return subprocess.run(["getent", "passwd", name], capture_output=True).returncode == 0


def group_exists(name):
    return subprocess.run(["getent", "group", name], capture_output=True).returncode == 0


# ---- the tree and the build ----

def copy_tree(dest):
    r = run(["git", "-C", SOURCE, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            "list the tree's files (git ls-files)")
    names = [n for n in r.stdout.decode().split("\0") if n]
    copied = 0
    for name in names:
        src = os.path.join(SOURCE, name)
        if not os.path.lexists(src):  # deleted in the working tree, not yet in git
            continue
        dst = os.path.join(dest, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
        copied += 1
    if not os.path.isfile(os.path.join(dest, "debian", "rules")):
        raise Failure("the copy has no debian/rules: is %s the tree?" % SOURCE)
    return copied


def build(tmp):
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    n = copy_tree(src)
    step("copied %d files to %s; dpkg-buildpackage -b -us -uc" % (n, src))
    t0 = time.monotonic()
    log = os.path.join(tmp, "build.log")
    run(["dpkg-buildpackage", "-b", "-us", "-uc"], "dpkg-buildpackage", timeout=BUILD_TIMEOUT,
        log=log, cwd=src)
    step("built in %.0f s" % (time.monotonic() - t0))
    version = run(["dpkg-parsechangelog", "-S", "Version"], "read debian/changelog", cwd=src).out.strip()
    debs = []
    for pkg in PACKAGES:
        deb = os.path.join(tmp, "%s_%s_%s.deb" % (
            pkg, version, run(["dpkg", "--print-architecture"], "dpkg --print-architecture").out.strip()))
        if not os.path.isfile(deb):
            raise Failure("dpkg-buildpackage made no %s (in %s: %s)" % (
                os.path.basename(deb), tmp, " ".join(sorted(os.listdir(tmp)))))
        debs.append(deb)
    return version, debs


# ---- what an installed system must hold ----

def check_installed(version):
    for prog, args in (("coupon-api", ["--version"]), ("coupon-worker", ["--version"]),
                       ("couponctl", ["--version"])):
        out = run(["/usr/bin/" + prog] + args, prog + " --version").out.strip()
        upstream = version.split("-")[0]
        if out != "%s %s" % (prog, upstream):
            raise Failure("%s --version printed %r, expected %r (a distribution build has no test hooks)"
                          % (prog, out, "%s %s" % (prog, upstream)))
    help_out = run(["/usr/bin/couponctl", "--help"], "couponctl --help").out
    if "migrate" not in help_out:
        raise Failure("couponctl --help does not list migrate")
    step("programs: --version %s, couponctl --help" % version)

    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "coupon-common"], "dpkg-query Conffiles").out
    if not re.search(r"^\s*%s\s" % re.escape(ENV_FILE), conffiles, re.M):
        raise Failure("%s is not a conffile of coupon-common: %r" % (ENV_FILE, conffiles))
    st = os.stat(ENV_FILE)
    if stat.S_IMODE(st.st_mode) != 0o600 or st.st_uid != 0 or st.st_gid != 0:
        raise Failure("%s is %o %d:%d, expected 0600 root:root (it will hold passwords)"
                      % (ENV_FILE, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    with open(ENV_FILE, "rb") as a, open(os.path.join(SOURCE, "deploy", "coupon.env"), "rb") as b:
        if a.read() != b.read():
            raise Failure("%s differs from deploy/coupon.env" % ENV_FILE)
    step("%s: a conffile, 0600 root:root, deploy/coupon.env" % ENV_FILE)

    run(["systemd-analyze", "verify"] + [UNIT_DIR + "/" + u for u in UNITS], "systemd-analyze verify")
    for u in UNITS:
        for d in ("/etc/systemd/system", "/lib/systemd/system"):
            for root, _, files in os.walk(d):
                if u in files and root.endswith(".wants"):
                    raise Failure("%s is enabled after installation (%s/%s)" % (u, root, u))
    step("units: systemd-analyze verify passes, none enabled")

    r = subprocess.run(["getent", "passwd", "coupon"], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure("no user coupon after installation (systemd-sysusers in coupon-common's postinst)")
    fields = r.stdout.strip().split(":")
    if int(fields[2]) >= 1000 or not fields[6].endswith("nologin"):
        raise Failure("user coupon is not a system user without a shell: %s" % r.stdout.strip())
    step("user: %s" % r.stdout.strip())

    for dev in ("coupon-devbroker", "coupon-devpay", "cpn-loadgen"):
        if shutil.which(dev) or os.path.exists("/usr/bin/" + dev):
            raise Failure("%s is installed: development tools belong to no package" % dev)

    site = run(["/usr/share/coupon/nginx/front.sh", "site"], "front.sh site (installed)").out
    if "upstream coupon_api" not in site or re.search(r"@[A-Z_]+@", site):
        raise Failure("front.sh site from /usr/share/coupon/nginx did not render the site:\n" + tail(site))
    step("nginx front renders from /usr/share/coupon/nginx")


# ---- the units, run by a systemd of our own ----

def cgroup_dirs():
    found = set()
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            found.add(os.path.join(root, d))
    return found


class PrivateSystemd:
    """systemd as PID 1 of private namespaces (boot-systemd.sh), loading
    only the installed coupon units and a journal."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.pid1 = None
        self.cgroups_before = cgroup_dirs()
        self.log = os.path.join(tmp, "systemd.log")

    def units(self):
        d = os.path.join(self.tmp, "units")
        os.mkdir(d)
        for u in UNITS:
            shutil.copy(os.path.join(UNIT_DIR, u), d)  # the installed files
        # Empty stand-ins for the targets every service is ordered with.
        for t in ("coupon-test", "sysinit", "basic", "shutdown"):
            with open(os.path.join(d, t + ".target"), "w") as f:
                f.write("[Unit]\nDescription=%s (packaging test)\nDefaultDependencies=no\n" % t)
        with open(os.path.join(d, "systemd-journald.socket"), "w") as f:
            f.write("[Unit]\nDescription=journal sockets (packaging test)\nDefaultDependencies=no\n"
                    "[Socket]\nListenStream=/run/systemd/journal/stdout\n"
                    "ListenDatagram=/run/systemd/journal/socket\nSocketMode=0666\nPassCredentials=yes\n"
                    "PassSecurity=yes\nReceiveBuffer=8M\nService=systemd-journald.service\n")
        with open(os.path.join(d, "systemd-journald.service"), "w") as f:
            f.write("[Unit]\nDescription=journal (packaging test)\nDefaultDependencies=no\n"
                    "Requires=systemd-journald.socket\nAfter=systemd-journald.socket\n"
                    "[Service]\nType=notify\nSockets=systemd-journald.socket\n"
                    "ExecStart=/lib/systemd/systemd-journald\n")
        return d

    def start(self):
        for prog in ("unshare", "nsenter", "pivot_root", "mountpoint"):
            if not shutil.which(prog):
                skip_or_fail("not installed: %s (util-linux), needed to run the units" % prog)
        if not os.path.exists("/lib/systemd/systemd"):
            skip_or_fail("no /lib/systemd/systemd to run the units with")
        units = self.units()
        open(self.log, "w").close()
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--uts", "--cgroup", "--mount-proc",
             "--propagation", "private", os.path.join(HERE, "boot-systemd.sh"), self.log, units],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log + ".err", "wb"))
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log + ".err", errors="replace") as f:
                    err = f.read()
                skip_or_fail("cannot boot a private systemd here (exit %s): %s" % (
                    self.proc.returncode, tail(err, 10)))
            if self.pid1 is None:
                try:
                    with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                        kids = f.read().split()
                    self.pid1 = int(kids[0]) if kids else None
                except OSError:
                    pass
            if self.pid1 is not None:
                r = self.ctl(["systemctl", "is-system-running"], check=False, timeout=10)
                state = r.out.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.2)
        raise Failure("the private systemd did not come up in 30 s (state %r); see %s" % (state, self.log))

    def ctl(self, argv, what=None, check=True, timeout=120):
        """@argv inside the namespaces (nsenter into PID 1's)."""
        return run(["nsenter", "-t", str(self.pid1), "-m", "-p", "-u", "-r", "-w"] + argv,
                   what or " ".join(argv), timeout=timeout, check=check)

    def show(self, unit, *props):
        out = self.ctl(["systemctl", "show", unit] + ["-p" + p for p in props]).out
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit, lines=40):
        r = self.ctl(["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit], check=False)
        return r.out

    def stop(self):
        """Kills PID 1 (the kernel then kills its namespace), removes the
        cgroup folders it made. Returns a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        if self.pid1 is not None:
            try:
                os.kill(self.pid1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None
        left = []
        for _ in range(50):
            left = sorted(cgroup_dirs() - self.cgroups_before, key=lambda p: -p.count("/"))
            for d in left:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            left = sorted(cgroup_dirs() - self.cgroups_before)
            if not left:
                break
            time.sleep(0.1)
        if left:
            problems.append("cgroup folders of the private systemd left behind: " + " ".join(left))
        return problems


def set_env(values):
    """Fills in /etc/coupon/coupon.env as an operator does: each setting's
    commented line becomes NAME='value'."""
    with open(ENV_FILE) as f:
        text = f.read()
    for name, value in values.items():
        if "'" in value:
            raise Failure("value of %s has a quote" % name)
        text, n = re.subn(r"^#%s=.*$" % re.escape(name), "%s='%s'" % (name, value), text, count=1, flags=re.M)
        if n != 1:
            raise Failure("%s has no line '#%s=...' to fill in" % (ENV_FILE, name))
    with open(ENV_FILE, "w") as f:
        f.write(text)


def status(sd, unit):
    return "%s\n---- journal of %s:\n%s" % (
        sd.ctl(["systemctl", "status", "--no-pager", unit], check=False).out, unit, sd.journal(unit))


def run_units(tmp, sd):
    with Services() as svc:
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        token = secrets.token_hex(16)
        # As docs/production.md has it: the programs with an account that
        # may only read and write rows, the migrations with one that may
        # change the schema (/etc/coupon/migrate.env).
        password = secrets.token_hex(8)
        svc.mysql("".join("CREATE USER 'svc'@'%s' IDENTIFIED BY '%s'; "
                          "GRANT SELECT, INSERT, UPDATE, DELETE ON coupon.* TO 'svc'@'%s'; " % (h, password, h)
                          for h in ("127.0.0.1", "localhost")), database=None, root=True)
        values = {k: svc.env[k] for k in ("COUPON_REDIS_URL", "COUPON_KAFKA_BROKERS",
                                          "COUPON_KAFKA_TOPIC", "COUPON_PAYMENT_URL", "COUPON_PAYMENT_SECRET")}
        values.update({"COUPON_MYSQL_URL": "mysql://svc:%s@127.0.0.1:%d/coupon" % (password, svc.mysql_port),
                       "COUPON_HTTP_ADDR": "127.0.0.1:%d" % port, "COUPON_ADMIN_TOKEN": token,
                       "COUPON_HTTP_THREADS": "64", "COUPON_WORKER_BATCH_WAIT_MS": "5"})
        set_env(values)
        fd = os.open(MIGRATE_ENV, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("COUPON_MYSQL_URL='%s'\n" % svc.env["COUPON_MYSQL_URL"])
        step("coupon.env filled in for Redis :%d, MariaDB :%d, brokers %s, coupon-api :%d" % (
            svc.redis_port, svc.mysql_port, svc.kafka_brokers, port))
        step("MySQL: the programs as svc (SELECT, INSERT, UPDATE, DELETE), migrations as coupon "
             "(migrate.env)")

        sd.start()
        sd.ctl(["systemctl", "start", "systemd-journald.service"], "start the private journal")
        step("private systemd up (pid %d on this machine)" % sd.pid1)

        if sd.ctl(["systemctl", "start", "coupon-migrate.service"], check=False).returncode != 0:
            raise Failure("systemctl start coupon-migrate failed:\n" + status(sd, "coupon-migrate.service"))
        applied = int(svc.mysql("SELECT COUNT(*) FROM schema_migrations")[0][0])
        expected = len([f for f in os.listdir(os.path.join(SOURCE, "deploy", "sql")) if f.endswith(".sql")])
        if applied != expected:
            raise Failure("coupon-migrate applied %d migrations, deploy/sql has %d" % (applied, expected))
        step("coupon-migrate: %d migrations applied" % applied)

        units = ["coupon-api.service", "coupon-worker.service"]
        if sd.ctl(["systemctl", "start"] + units, check=False).returncode != 0:
            raise Failure("systemctl start coupon-api coupon-worker failed:\n" +
                          "\n".join(status(sd, u) for u in units))
        try:
            wait_http(base + "/readyz", timeout=30)
        except ServiceError as e:
            raise Failure("coupon-api under systemd: %s\n%s" % (e, status(sd, "coupon-api.service")))
        for u in units:
            p = sd.show(u, "MainPID", "ActiveState")
            if p.get("ActiveState") != "active":
                raise Failure("%s is %s:\n%s" % (u, p.get("ActiveState"), status(sd, u)))
            proc_status = sd.ctl(["cat", "/proc/%s/status" % p["MainPID"]]).out
            fields = dict(line.split(":", 1) for line in proc_status.splitlines() if ":" in line)
            uid = fields.get("Uid", "").split()
            want_uid = subprocess.run(["id", "-u", "coupon"], capture_output=True, text=True).stdout.strip()
            if not uid or uid[0] != want_uid or fields.get("NoNewPrivs", "").strip() != "1" or \
                    fields.get("Seccomp", "").strip() != "2" or fields.get("CapEff", "").strip().strip("0"):
                raise Failure("%s runs with Uid %s NoNewPrivs %s Seccomp %s CapEff %s, expected user coupon "
                              "(%s), 1, 2 (a filter), none" % (u, fields.get("Uid"), fields.get("NoNewPrivs"),
                                                               fields.get("Seccomp"), fields.get("CapEff"),
                                                               want_uid))
        step("coupon-api and coupon-worker active, as user coupon, no new privileges, seccomp filter")

        auth = {"Authorization": "Bearer " + token}
        st, _, body = http("POST", base + "/v1/campaigns", {"id": "pkg", "name": "Packaging", "total": 10},
                           headers=auth)
        if st != 201:
            raise Failure("create campaign: %s %s" % (st, body))
        for user in ("u1", "u2", "u3"):
            st, _, body = http("POST", base + "/v1/campaigns/pkg/issue", {"user_id": user})
            if st != 202:
                raise Failure("issue %s: %s %s\n%s" % (user, st, body, status(sd, "coupon-api.service")))
        deadline = time.monotonic() + 60
        rows = 0
        while time.monotonic() < deadline:
            rows = int(svc.mysql("SELECT COUNT(*) FROM coupons WHERE campaign_id = 'pkg'")[0][0])
            if rows == 3:
                break
            time.sleep(0.2)
        if rows != 3:
            raise Failure("after 60 s MySQL holds %d of the 3 issued coupons:\n%s" % (
                rows, status(sd, "coupon-worker.service")))
        step("a campaign created, 3 coupons issued (202) and persisted by the worker")

        limits = {u: sd.show(u, "TimeoutStopUSec")["TimeoutStopUSec"] for u in units}
        t0 = time.monotonic()
        sd.ctl(["systemctl", "stop"] + units, "systemctl stop coupon-api coupon-worker", timeout=180)
        took = time.monotonic() - t0
        for u in units:
            p = sd.show(u, "Result", "ExecMainCode", "ExecMainStatus", "ActiveState")
            if p.get("Result") != "success" or p.get("ExecMainStatus") != "0" or p.get("ActiveState") != "inactive":
                raise Failure("%s did not stop cleanly (Result=%s, exit status %s, %s; TimeoutStopSec %s):\n%s" % (
                    u, p.get("Result"), p.get("ExecMainStatus"), p.get("ActiveState"), limits[u], status(sd, u)))
        for u, line in (("coupon-api.service", "coupon-api: stopped"),
                        ("coupon-worker.service", "coupon-worker: stopped")):
            if line not in sd.journal(u, 200):
                raise Failure("no %r in the journal of %s" % (line, u))
        step("both stopped on SIGTERM in %.1f s, exit 0, 'stopped' in the journal" % took)


# ---- cleanup ----

def purge(user_existed):
    problems = []
    r = subprocess.run(["dpkg", "--purge"] + PACKAGES, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        problems.append("dpkg --purge exit %d:\n%s" % (r.returncode, tail(r.stdout + r.stderr)))
    for pkg in PACKAGES:
        s = package_state(pkg)
        if s and not s.startswith("pn") and not s.startswith("un"):
            problems.append("%s is still known to dpkg as %r after purge" % (pkg, s))
    for path in INSTALLED:
        if os.path.lexists(path):
            problems.append("%s is left after purge" % path)
    if not user_existed:
        if user_exists("coupon"):
            subprocess.run(["userdel", "coupon"], capture_output=True)
        if group_exists("coupon"):
            subprocess.run(["groupdel", "coupon"], capture_output=True)
        if user_exists("coupon") or group_exists("coupon"):
            problems.append("could not remove the user or group coupon this test created")
    return problems


def main():
    if os.geteuid() != 0:
        print("SKIP: installs packages: run as root", file=sys.stderr)
        return 77
    for prog in ("dpkg-buildpackage", "dpkg-parsechangelog", "dh", "git", "systemd-analyze"):
        if not shutil.which(prog):
            skip_or_fail("not installed: " + prog)
    for pkg in PACKAGES:
        s = package_state(pkg)
        if s and not s.startswith("un") and not s.startswith("pn"):
            print("FAIL: %s is installed (%s): this test installs and purges the packages; "
                  "purge it first" % (pkg, s), file=sys.stderr)
            return 1
    user_existed = user_exists("coupon")

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)

    tmp = tempfile.mkdtemp(prefix="coupon-pkg-")
    installed = False
    sd = None
    problems = []
    skipped = False
    t0 = time.monotonic()
    try:
        version, debs = build(tmp)
        installed = True  # from here on, whatever dpkg did is purged
        run(["dpkg", "-i"] + debs, "dpkg -i", timeout=300, log=os.path.join(tmp, "install.log"))
        step("installed %s" % " ".join(os.path.basename(d) for d in debs))
        check_installed(version)
        # Booting a systemd of its own needs namespaces and mounts that a
        # CI machine may not grant: asked for, not by default.
        if os.environ.get("COUPON_TEST_BOOT_UNITS") == "1":
            sd = PrivateSystemd(tmp)
            run_units(tmp, sd)
        else:
            step("units verified, not run (COUPON_TEST_BOOT_UNITS=1 runs them under a private systemd)")
    except Failure as e:
        problems.append(str(e))
    except SystemExit as e:
        if e.code == 77:  # skip_or_fail() by hand: it said why
            skipped = True
        elif e.code == 1:  # skip_or_fail() under CI: it said why
            problems.append("a program the test needs is missing (CI)")
        else:
            problems.append("interrupted (exit %s)" % e.code)
    finally:
        if sd is not None:
            problems += sd.stop()
        if installed:
            if os.path.exists(MIGRATE_ENV):
                os.unlink(MIGRATE_ENV)
            more = purge(user_existed)
            if not more:
                step("purged; no file of the packages left")
            problems += more
        if os.environ.get("COUPON_KEEP_TMP") == "1" or problems:
            print("kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        for p in problems:
            print("FAIL: " + p, file=sys.stderr, flush=True)
        return 1
    if skipped:
        step("SKIP after %.0f s: the packages were built, installed and purged, the units not run"
             % (time.monotonic() - t0))
        return 77
    step("PASS in %.0f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
