"""Harness for the integration tests: real Redis, MariaDB, Kafka
(coupon-devbroker) and a fake card payment gateway (coupon-devpay) on free
loopback ports in a temporary folder.

Python 3 standard library only. Tests run as
``python3 tests/integration/test_x.py`` with COUPON_SOURCE_DIR (the
repository) and COUPON_BUILD_DIR (the meson build folder) in the
environment, and use it like this::

    sys.path.insert(0, os.path.join(os.environ["COUPON_SOURCE_DIR"], "tests", "support"))
    from services import Services, start_process, stop_process, wait_http

    with Services() as svc:
        svc.redis("PING")                       # -> "PONG"
        svc.mysql("SELECT 1")                   # -> [("1",)]
        svc.broker("down"); svc.broker("up")    # fault injection
        svc.kafka_consume_all()                 # -> [(key, value), ...]
        svc.devpay("POST", "/down")             # payment gateway controls
        svc.devpay_ledger()["charged"]          # -> charges so far
        api = start_process([find_program("coupon-api")], svc.env, log_path)
        wait_http("http://127.0.0.1:PORT/healthz", proc=api)
        ...
        stop_process(api)

Services runs ``deploy/local-services.sh start --dir TMP --auto-ports`` and
``stop`` around the block; the folder is removed afterwards unless
COUPON_KEEP_TMP=1. A missing server binary makes the test exit 77 (skipped)
when run by hand and fail under CI (CI=true), see skip_or_fail().
"""

import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

__all__ = [
    "Services", "ServiceError", "BrokerError", "RedisError", "MysqlError",
    "free_port", "skip_or_fail", "require_programs", "source_dir", "build_dir",
    "find_program", "start_process", "stop_process", "wait_http", "http",
    "pid_alive",
]

# Programs the services need; a missing one is a skip by hand, a failure in CI.
SERVER_PROGRAMS = ("redis-server", "redis-cli", "mariadbd", "mariadb-install-db",
                   "mariadb", "kcat")

# Every service local-services.sh runs, by the name of its pid file. The
# first three are also Services.pids, which tests compare as a whole.
SERVICE_NAMES = ("redis", "mysql", "devbroker", "devpay")
CORE_SERVICE_NAMES = SERVICE_NAMES[:3]


class ServiceError(Exception):
    """A service could not be started, stopped or talked to."""


class BrokerError(ServiceError):
    """coupon-devbroker answered ``error ...`` to a control command."""


class RedisError(ServiceError):
    """Redis answered with an error reply (the message is Redis's text)."""


class MysqlError(ServiceError):
    """The mariadb client failed; the message holds its stderr."""


def _log(msg):
    print("services: " + msg, file=sys.stderr, flush=True)


def _in_ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def skip_or_fail(msg):
    """Ends the test because something it needs is missing: exit 77 (meson's
    "skipped") when run by hand, exit 1 (failed) when CI is set, so that CI
    never passes a test whose servers were not there. Does not return."""
    if _in_ci():
        print("FAIL: " + msg + " (CI is set: a missing dependency is a failure)",
              file=sys.stderr, flush=True)
        sys.exit(1)
    print("SKIP: " + msg, file=sys.stderr, flush=True)
    sys.exit(77)


def require_programs(*names):
    """skip_or_fail() unless every program in @names is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        skip_or_fail("not installed: " + ", ".join(missing))


def source_dir():
    """The repository: $COUPON_SOURCE_DIR, else two folders above this file."""
    d = os.environ.get("COUPON_SOURCE_DIR")
    if d:
        return os.path.abspath(d)
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_dir():
    """The meson build folder: $COUPON_BUILD_DIR, else <repo>/build."""
    d = os.environ.get("COUPON_BUILD_DIR")
    if d:
        return os.path.abspath(d)
    return os.path.join(source_dir(), "build")


def find_program(name, required=True):
    """Path of the built program @name: <build>/name, <build>/src/*/name, or
    anywhere under the build folder. Missing: skip_or_fail() when @required,
    else None."""
    bdir = build_dir()
    candidates = [os.path.join(bdir, name)]
    src = os.path.join(bdir, "src")
    if os.path.isdir(src):
        candidates += [os.path.join(src, d, name) for d in sorted(os.listdir(src))]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    for root, dirs, files in os.walk(bdir):
        dirs[:] = [d for d in dirs if not d.startswith(("meson-", "."))]
        if name in files:
            c = os.path.join(root, name)
            if os.access(c, os.X_OK):
                return c
    if required:
        skip_or_fail("%s not built in %s" % (name, bdir))
    return None


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel
    picks it; it may in theory be taken again before the caller binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    """True while @pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _become_subreaper():
    """Makes this process adopt orphaned descendants (the servers that the
    start script leaves behind), so that they are reaped here after they
    stop instead of lingering as zombies under a pid 1 that may not reap.
    Best effort, Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start_process(argv, env=None, log_path=None, cwd=None):
    """Starts @argv in the background and returns its subprocess.Popen.

    @env is added on top of os.environ (None: inherit unchanged), e.g.
    ``start_process([api], {**svc.env, "COUPON_HTTP_ADDR": addr}, log)``.
    stdout and stderr are appended to @log_path (None: inherited), stdin is
    /dev/null. The log path is kept as ``proc.log_path`` for error messages.
    Stop it with stop_process()."""
    full_env = dict(os.environ)
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    out = None
    if log_path:
        out = open(log_path, "ab")
    try:
        proc = subprocess.Popen(list(argv), env=full_env, cwd=cwd,
                                stdin=subprocess.DEVNULL,
                                stdout=out if out else None,
                                stderr=subprocess.STDOUT if out else None)
    finally:
        if out:
            out.close()
    proc.log_path = log_path
    return proc


def _log_tail(path, lines=30):
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n---- last lines of %s:\n%s" % (path, "\n".join(data[-lines:]))


def stop_process(proc, sig=signal.SIGTERM, timeout=30):
    """Sends @sig to @proc (a Popen) and waits for it; SIGKILL after
    @timeout seconds. Returns the exit status as Popen does (negative: the
    signal that ended it). A process that already exited is only reaped."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _log("pid %d ignored signal %d for %ss: SIGKILL" % (proc.pid, sig, timeout))
        proc.kill()
        return proc.wait(timeout=30)


def http(method, url, body=None, headers=None, timeout=10):
    """One HTTP request. @body: dict/list (sent as JSON), str or bytes.
    Returns (status, headers dict with lower-case names, body) where body
    is the decoded JSON when the answer is JSON, else text. 4xx/5xx are
    returned, not raised; connection errors raise OSError."""
    data = None
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
    elif body is not None:
        data = bytes(body)
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, rhdrs, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, rhdrs, raw = e.code, e.headers, e.read()
    hd = {k.lower(): v for k, v in rhdrs.items()} if rhdrs else {}
    text = raw.decode("utf-8", "replace")
    if "json" in hd.get("content-type", ""):
        try:
            return status, hd, json.loads(text)
        except ValueError:
            pass
    return status, hd, text


def wait_http(url, timeout=30, proc=None, status=None):
    """Polls GET @url until it answers 2xx (or exactly @status when given)
    and returns (status, headers, body). Raises ServiceError after @timeout
    seconds, or at once if @proc (a Popen) exits meanwhile (with its log)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceError("%s exited with %s before %s answered%s" % (
                proc.args[0] if isinstance(proc.args, (list, tuple)) else proc.args,
                proc.returncode, url, _log_tail(getattr(proc, "log_path", None))))
        try:
            st, hd, body = http("GET", url, timeout=2)
            if (status is None and 200 <= st < 300) or st == status:
                return st, hd, body
            last = "HTTP %d" % st
        except OSError as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise ServiceError("%s not ready after %ss (%s)%s" % (
                url, timeout, last,
                _log_tail(getattr(proc, "log_path", None)) if proc else ""))
        time.sleep(0.05)


class _Resp:
    """A minimal RESP2 client on one connection: enough for tests, binary
    safe, errors raised as RedisError."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ServiceError("redis closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, bytes):
                b = a
            else:
                b = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self.reply()

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "surrogateescape")
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self._exact(n).decode("utf-8", "surrogateescape")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            items = []
            for _ in range(n):
                try:
                    items.append(self.reply())
                except RedisError as e:  # keep reading: the stream must stay in sync
                    items.append(e)
            return items
        raise ServiceError("bad RESP reply %r" % line[:80])


class Services:
    """Redis, MariaDB, coupon-devbroker and coupon-devpay for one test, in a
    temporary folder, started by deploy/local-services.sh on free loopback
    ports.

    Use as a context manager (or call start()/stop()). After start:
    ``env`` is the dict of COUPON_* variables from the script's env file
    (COUPON_REDIS_URL, COUPON_MYSQL_URL, COUPON_KAFKA_BROKERS,
    COUPON_KAFKA_TOPIC, COUPON_DEVBROKER_CONTROL, COUPON_PAYMENT_URL,
    COUPON_PAYMENT_SECRET, ...), ready to pass to start_process(); ``dir``
    is the folder; ``redis_port``, ``mysql_port``, ``kafka_brokers``,
    ``topic``, ``control_path``, ``payment_url``, ``payment_secret``,
    ``devpay_control`` (the controls' base URL) and ``devpay_ledger_path``
    are parsed from it. ``pids`` holds redis, mysql and devbroker;
    ``devpay_pid`` the gateway's.
    """

    def __init__(self, source=None, build=None, start_timeout=180,
                 mysql_flush=None, keep=None):
        self.source_dir = source or source_dir()
        self.build_dir = build or build_dir()
        self.script = os.path.join(self.source_dir, "deploy", "local-services.sh")
        self.start_timeout = start_timeout
        self.mysql_flush = mysql_flush
        self.keep = keep if keep is not None else os.environ.get("COUPON_KEEP_TMP") == "1"
        self.dir = None
        self.devbroker = None
        self.devpay_program = None
        self.env = {}
        self.pids = {}
        self.devpay_pid = None
        self.start_seconds = None
        self._old_sigterm = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    def _script(self, *args, timeout):
        env = dict(os.environ)
        # Keep the servers in our process group: a test runner that kills
        # the group on timeout then ends them too.
        env["COUPON_LOCAL_DETACH"] = "0"
        for k in ("COUPON_LOCAL_REDIS_PORT", "COUPON_LOCAL_MYSQL_PORT",
                  "COUPON_LOCAL_DEVPAY_PORT", "COUPON_LOCAL_DEVPAY_CONTROL_PORT"):
            env.pop(k, None)
        # --build-dir names the devbroker's folder; the gateway may be
        # built elsewhere in the tree.
        env["COUPON_LOCAL_DEVPAY_BIN"] = self.devpay_program
        if self.mysql_flush is not None:
            env["COUPON_LOCAL_MYSQL_FLUSH"] = str(self.mysql_flush)
        argv = [self.script, *args, "--dir", self.dir,
                "--build-dir", os.path.dirname(self.devbroker)]
        return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)

    def _on_sigterm(self, signum, frame):
        # Turn SIGTERM into an exception so __exit__ stops the services.
        raise SystemExit(128 + signum)

    def start(self):
        """Starts the three services (skip_or_fail() if a program is
        missing) and fills ``env``. Raises ServiceError with the script's
        output when start fails; the services started so far are stopped."""
        require_programs(*SERVER_PROGRAMS)
        if not os.path.exists(self.script):
            raise ServiceError("no %s" % self.script)
        self.devbroker = find_program("coupon-devbroker")
        self.devpay_program = find_program("coupon-devpay")
        _become_subreaper()
        self.dir = tempfile.mkdtemp(prefix="coupon-it-")
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            try:
                self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
            except ValueError:  # not the main thread
                self._old_sigterm = None
        t0 = time.monotonic()
        try:
            r = self._script("start", "--auto-ports", timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ServiceError("local-services.sh start took more than %ss" % self.start_timeout)
        self.start_seconds = time.monotonic() - t0
        if r.returncode != 0:
            out = (r.stdout + r.stderr).decode("utf-8", "replace")
            self.stop()
            raise ServiceError("local-services.sh start failed (exit %d):\n%s" % (r.returncode, out))
        self.env = self._read_env()
        self._parse_env()
        self.pids = self._read_pids()
        self.devpay_pid = self._read_pids(("devpay",)).get("devpay")
        _log("started in %.1fs in %s: %s" % (self.start_seconds, self.dir, " ".join(
            "%s=%s" % (k, v) for k, v in sorted(self.env.items()))))
        return self

    def stop(self):
        """Stops the services (idempotent), reaps them, removes the folder
        unless COUPON_KEEP_TMP=1. Raises ServiceError if the stop script
        failed (after removing what it could)."""
        if self.dir is None:
            return
        pids = self._read_pids(SERVICE_NAMES) or dict(self.pids)
        if self.devpay_pid and "devpay" not in pids:
            pids["devpay"] = self.devpay_pid
        err = None
        try:
            r = self._script("stop", timeout=120)
            if r.returncode != 0:
                err = "local-services.sh stop failed (exit %d):\n%s" % (
                    r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace"))
        except subprocess.TimeoutExpired:
            err = "local-services.sh stop took more than 120s"
        for pid in pids.values():
            _reap(pid)
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self.keep or err:
            _log("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        if err:
            raise ServiceError(err)

    def _read_env(self):
        env = {}
        path = os.path.join(self.dir, "env")
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                words = shlex.split(line)
                if words and words[0] == "export":
                    words = words[1:]
                for w in words:
                    k, sep, v = w.partition("=")
                    if sep:
                        env[k] = v
        return env

    def _parse_env(self):
        def port(url):
            hostport = url.split("@")[-1].split("://")[-1].split("/")[0]
            return int(hostport.rsplit(":", 1)[1])
        self.redis_port = port(self.env["COUPON_REDIS_URL"])
        self.mysql_port = port(self.env["COUPON_MYSQL_URL"])
        self.kafka_brokers = self.env["COUPON_KAFKA_BROKERS"]
        self.topic = self.env["COUPON_KAFKA_TOPIC"]
        self.control_path = self.env["COUPON_DEVBROKER_CONTROL"]
        self.mysql_socket = self.env.get("COUPON_LOCAL_MYSQL_SOCKET",
                                         os.path.join(self.dir, "mysql.sock"))
        self.payment_url = self.env["COUPON_PAYMENT_URL"]
        self.payment_secret = self.env["COUPON_PAYMENT_SECRET"]
        self.devpay_control = self.env["COUPON_DEVPAY_CONTROL"]
        self.devpay_ledger_path = self.env.get("COUPON_DEVPAY_LEDGER",
                                               os.path.join(self.dir, "devpay-ledger.jsonl"))

    def _read_pids(self, names=CORE_SERVICE_NAMES):
        pids = {}
        if not self.dir:
            return pids
        for name in names:
            try:
                with open(os.path.join(self.dir, name + ".pid")) as f:
                    pids[name] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def signal_service(self, name, sig):
        """Sends @sig to the service @name ("redis", "mysql", "devbroker",
        "devpay"); after SIGKILL or SIGTERM, waits until it is gone and
        reaps it."""
        if name not in SERVICE_NAMES:
            raise ServiceError("no service %r (one of %s)" % (name, ", ".join(SERVICE_NAMES)))
        pid = (self._read_pids(SERVICE_NAMES).get(name) or self.pids.get(name) or
               (self.devpay_pid if name == "devpay" else None))
        if not pid:
            raise ServiceError("no pid for %s" % name)
        os.kill(pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            deadline = time.monotonic() + 60
            while pid_alive(pid):
                _reap(pid)
                if time.monotonic() > deadline:
                    raise ServiceError("%s (pid %d) did not exit" % (name, pid))
                time.sleep(0.05)

    def restart(self):
        """Starts again whatever of the four is not running, on the same
        ports and data (local-services.sh start is idempotent). A restarted
        coupon-devpay starts with no payments: it keeps them in memory."""
        r = self._script("start", "--auto-ports", timeout=self.start_timeout)
        if r.returncode != 0:
            raise ServiceError("local-services.sh start (restart) failed (exit %d):\n%s" % (
                r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")))
        self.pids = self._read_pids()
        self.devpay_pid = self._read_pids(("devpay",)).get("devpay")

    def path(self, *parts):
        """A path inside the services' folder (for logs of the test's own
        processes: they are kept with the rest when COUPON_KEEP_TMP=1)."""
        return os.path.join(self.dir, *parts)

    # -- kafka -------------------------------------------------------------

    def broker(self, *words, timeout=30):
        """Sends one control command to coupon-devbroker, e.g.
        broker("down"), broker("produce-errors", 3). Returns the reply line
        (``ok ...``); raises BrokerError on ``error ...``."""
        cmd = " ".join(str(w) for w in words)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control_path)
            s.sendall(cmd.encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        reply = data.decode("utf-8", "replace").split("\n", 1)[0]
        if reply == "ok" or reply.startswith("ok "):
            return reply
        raise BrokerError("devbroker %r: %s" % (cmd, reply or "no reply"))

    def broker_status(self):
        """``status`` as a dict (brokers, partitions, topic, state, down, rtt,
        bootstrap, ...), values as strings."""
        reply = self.broker("status")
        return dict(w.split("=", 1) for w in reply.split()[1:] if "=" in w)

    def kafka_produce(self, records, topic=None, props=None, timeout=60, check=True):
        """Produces @records with kcat: each a value, or a (key, value) pair;
        dict/list values are sent as JSON (with keys, a record without one
        gets an empty key). @props are extra librdkafka
        properties, e.g. {"enable.idempotence": "true",
        "message.timeout.ms": 2000}. Returns the CompletedProcess (stdout and
        stderr as text); with @check, raises ServiceError when kcat fails or
        reports an error."""
        ksep, msep = "\x1f", "\x1e"  # ASCII unit and record separators
        records = list(records)
        keyed = any(isinstance(r, tuple) for r in records)
        lines = []
        for r in records:
            k, v = r if isinstance(r, tuple) else (None, r)
            if isinstance(v, (dict, list)):
                v = json.dumps(v, separators=(",", ":"))
            v = str(v)
            k = "" if k is None else str(k)
            if ksep in k or msep in k or msep in v:
                raise ValueError("record contains a separator byte: %r" % (r,))
            lines.append(k + ksep + v if keyed else v)
        argv = ["kcat", "-b", self.kafka_brokers, "-P", "-t", topic or self.topic,
                "-D", msep]
        if keyed:
            argv += ["-K", ksep]
        for k, v in (props or {}).items():
            argv += ["-X", "%s=%s" % (k, v)]
        data = msep.join(lines) + msep if lines else ""
        try:
            r = subprocess.run(argv, input=data, text=True, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            if check:
                raise ServiceError("kcat produce did not finish in %ss" % timeout) from e
            return subprocess.CompletedProcess(argv, -1, e.stdout or "", e.stderr or "")
        failed = r.returncode != 0 or "% ERROR" in r.stderr or "Delivery failed" in r.stderr
        if check and failed:
            raise ServiceError("kcat produce failed (exit %d): %s" % (r.returncode, r.stderr[-2000:]))
        return r

    def kafka_records(self, topic=None, timeout=60):
        """Every message of @topic, read from the beginning of each partition
        to its end with ``kcat -C -e -J``: a list of dicts with partition,
        offset, key and payload (str or None), ordered by partition and
        offset."""
        argv = ["kcat", "-b", self.kafka_brokers, "-C", "-t", topic or self.topic,
                "-o", "beginning", "-e", "-q", "-J",
                # an empty fetch otherwise waits the default 500 ms per round
                "-X", "fetch.wait.max.ms=10"]
        try:
            r = subprocess.run(argv, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise ServiceError("kcat consume did not reach the end in %ss" % timeout) from e
        if r.returncode != 0:
            raise ServiceError("kcat consume failed (exit %d): %s" % (
                r.returncode, r.stderr.decode("utf-8", "replace")[-2000:]))
        out = []
        for line in r.stdout.decode("utf-8", "surrogateescape").splitlines():
            line = line.strip()
            if not line:
                continue
            m = json.loads(line)
            out.append({"partition": m.get("partition"), "offset": m.get("offset"),
                        "key": m.get("key"), "payload": m.get("payload")})
        out.sort(key=lambda m: (m["partition"], m["offset"]))
        return out

    def kafka_consume_all(self, topic=None, timeout=60):
        """Every message of @topic (default: the services' topic,
        coupon.issued) as (key, value) pairs, in partition and
        offset order; values that are JSON are decoded (the service's
        messages become dicts), others stay str."""
        result = []
        for m in self.kafka_records(topic, timeout):
            v = m["payload"]
            if v is not None:
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            result.append((m["key"], v))
        return result

    # -- payment gateway (coupon-devpay) -----------------------------------

    def devpay(self, method, path, body=None, timeout=10):
        """One call to coupon-devpay's controls (no auth), e.g.
        devpay("POST", "/down"), devpay("GET", "/payments/ORDER"). Returns
        (status, body): the decoded JSON, or text if the answer is not JSON.
        Connection errors raise OSError."""
        status, _, answer = http(method, self.devpay_control + path, body=body, timeout=timeout)
        return status, answer

    def devpay_ledger(self, timeout=10):
        """GET /ledger of coupon-devpay: {"entries": [{"seq", "at", "op"
        ("charge" or "cancel"), "paymentKey", "orderId", "amount"}, ...],
        "charged", "cancelled", "charged_amount", "cancelled_amount"}.
        Raises ServiceError unless it answers 200 with JSON."""
        status, answer = self.devpay("GET", "/ledger", timeout=timeout)
        if status != 200 or not isinstance(answer, dict):
            raise ServiceError("devpay /ledger answered %s: %r" % (status, answer))
        return answer

    # -- redis -------------------------------------------------------------

    def redis(self, *args, timeout=10):
        """Runs one Redis command on a fresh connection and returns the reply:
        str (simple and bulk strings), int, None, or a list of those. An
        error reply raises RedisError (inside an array it is returned as the
        RedisError object)."""
        conn = _Resp("127.0.0.1", self.redis_port, timeout)
        try:
            return conn.command(*args)
        finally:
            conn.close()

    # -- mysql -------------------------------------------------------------

    def mysql(self, sql, database="coupon", user="coupon", password="coupon",
              root=False, timeout=60):
        """Runs @sql (one or more statements) with the mariadb client over TCP
        as coupon/coupon on database coupon (root=True: as root over the
        unix socket) and returns the rows of the last result as tuples of
        str (``-N -B``: no header, NULL as "NULL"). Raises MysqlError."""
        argv = ["mariadb", "--no-defaults", "-N", "-B"]
        if root:
            argv += ["--protocol=socket", "--socket=" + self.mysql_socket, "-uroot"]
        else:
            argv += ["--protocol=tcp", "-h", "127.0.0.1", "-P", str(self.mysql_port),
                     "-u", user, "-p" + password]
        if database:
            argv += ["-D", database]
        r = subprocess.run(argv, input=sql, text=True, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise MysqlError("mariadb failed (exit %d) on %r: %s" % (
                r.returncode, sql[:200], r.stderr.strip()))
        return [tuple(line.split("\t")) for line in r.stdout.splitlines()]
