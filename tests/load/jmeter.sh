#!/usr/bin/env bash
# Runs the JMeter plan tests/load/jmeter/coupon-issue.jmx non-GUI against a
# coupon-api, summarises the results and, with --audit, checks the
# campaign's end state with `couponctl audit`.
#
#   tests/load/jmeter.sh --campaign ID [--host 127.0.0.1] [--port 8080]
#        [--threads 50] [--repeat-threads 0] [--users 10000] [--rampup 5]
#        [--duration 30] [--prefix jm-<time>-] [--out DIR] [--audit]
#        [--jmeter-home DIR] [--plan FILE] [-- more JMeter arguments]
#
# --threads send a new user per request; --repeat-threads draw users from
# 1..--users at random (repeats get 409). --jmeter-home points at an
# unpacked Apache JMeter (run as is); without it Debian's jmeter package
# (2.13) is used through a small launcher (jmeter/CouponJMeter.java,
# compiled here with javac) that allows JMeter's classes in XStream's
# security framework: plain `jmeter -n` on Debian 12 loads no plan, runs
# nothing, writes no results and exits 0. Whatever runs it, a run that
# recorded no samples fails here, loudly. --audit needs COUPON_REDIS_URL,
# COUPON_MYSQL_URL, COUPON_KAFKA_BROKERS (as for couponctl) and exits with
# the audit's status. Results: DIR/results.jtl (CSV), DIR/jmeter.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${COUPON_BUILD_DIR:-$root/build}
host=127.0.0.1 port=8080 campaign= threads=50 repeat=0 users=10000 rampup=5 duration=30
prefix="jm-$(date +%s)-" out= audit=0 jhome= plan=$root/tests/load/jmeter/coupon-issue.jmx
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --campaign) campaign=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeat-threads) repeat=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --rampup) rampup=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --audit) audit=1; shift ;;
    --jmeter-home) jhome=$2; shift 2 ;;
    --plan) plan=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "jmeter.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$campaign" ] || { echo "jmeter.sh: --campaign is required" >&2; exit 2; }
for v in "$port" "$threads" "$repeat" "$users" "$rampup" "$duration"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "jmeter.sh: '$v' is not a whole number" >&2; exit 2; }
done
out=${out:-$(mktemp -d /tmp/coupon-jmeter.XXXXXX)}
mkdir -p "$out"
rm -f "$out/results.jtl"

props=(-Jhost="$host" -Jport="$port" -Jcampaign="$campaign" -Junique_threads="$threads"
       -Jrepeat_threads="$repeat" -Jusers="$users" -Jrampup="$rampup" -Jduration="$duration"
       -Jprefix="$prefix" -Jsample_variables=uid
       -Jjmeter.save.saveservice.output_format=csv -Jjmeter.save.saveservice.print_field_names=true)
args=(-n -t "$plan" -l "$out/results.jtl" -j "$out/jmeter.log" "${props[@]}" "$@")

if [ -n "$jhome" ]; then
  [ -x "$jhome/bin/jmeter" ] || { echo "jmeter.sh: no $jhome/bin/jmeter" >&2; exit 2; }
  (cd "$out" && "$jhome/bin/jmeter" "${args[@]}") >"$out/jmeter.out" 2>&1 || true
else
  dh=/usr/share/jmeter
  [ -f "$dh/bin/ApacheJMeter.jar" ] ||
    { echo "jmeter.sh: Debian's jmeter is not installed (apt-get install jmeter jmeter-http), or give --jmeter-home" >&2; exit 2; }
  command -v javac >/dev/null ||
    { echo "jmeter.sh: javac is needed for the launcher (apt-get install default-jdk-headless)" >&2; exit 2; }
  mkdir -p "$out/launcher"
  javac -d "$out/launcher" "$root/tests/load/jmeter/CouponJMeter.java"
  (cd "$out" && java -Djmeter.home="$dh" \
      -cp "$out/launcher:$dh/bin/ApacheJMeter.jar:$dh/lib/*:$dh/lib/ext/*" CouponJMeter "${args[@]}") \
      >"$out/jmeter.out" 2>&1 || true
fi
grep -E '^(summary =|Error)' "$out/jmeter.out" || true

# JMeter exits 0 even when it ran nothing: judge by what it recorded.
summary=$(python3 - "$out/results.jtl" <<'PY'
import csv, sys
path = sys.argv[1]
try:
    rows = list(csv.DictReader(open(path, newline="")))
except FileNotFoundError:
    rows = []
if not rows:
    print("NO_SAMPLES")
    sys.exit(0)
codes = {}
for r in rows:
    codes[r["responseCode"]] = codes.get(r["responseCode"], 0) + 1
answered = {r.get("uid") for r in rows if r["responseCode"] in ("202", "409", "410")}
errors = sum(n for c, n in codes.items() if c not in ("202", "409", "410"))
el = sorted(int(r["elapsed"]) for r in rows)
ts = [int(r["timeStamp"]) for r in rows]
span = max(1, max(t + int(r["elapsed"]) for t, r in zip(ts, rows)) - min(ts)) / 1000.0
q = lambda p: el[min(len(el) - 1, int(p * len(el)))]
print("samples=%d req_per_s=%.0f p50_ms=%d p99_ms=%d p999_ms=%d max_ms=%d errors=%d distinct_users=%d %s" % (
    len(rows), len(rows) / span, q(0.5), q(0.99), q(0.999), el[-1], errors, len(answered),
    " ".join("status_%s=%d" % kv for kv in sorted(codes.items()))))
PY
)
if [ "$summary" = NO_SAMPLES ]; then
  echo "jmeter.sh: JMeter recorded no samples; nothing was tested. See $out/jmeter.log:" >&2
  grep -E 'ERROR|Exception' "$out/jmeter.log" 2>/dev/null | head -5 >&2 || true
  exit 1
fi
echo "jmeter: $summary"
echo "jmeter: results in $out/results.jtl"
if [ "$audit" -eq 1 ]; then
  n=$(echo "$summary" | sed 's/.*distinct_users=\([0-9]*\).*/\1/')
  errors=$(echo "$summary" | sed 's/.* errors=\([0-9]*\).*/\1/')
  [ "$errors" -eq 0 ] || echo "jmeter.sh: $errors requests got no answer: the exact issued count is unknowable" >&2
  "$build/src/couponctl" audit "$campaign" --users "$n"
fi
