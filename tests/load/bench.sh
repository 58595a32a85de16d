#!/usr/bin/env bash
# Throughput of the issue endpoint next to its HTTP ceiling, in one run on
# one machine (absolute numbers on a shared 2-core box are noise; the
# ratio measured side by side is the result).
#
#   tests/load/bench.sh [--duration S] [--connections "64 256"] [--loadgen-connections "64 256 1000"]
#
# Starts its own Redis, MariaDB and dev broker in a temporary folder, a
# coupon-api and the bare civetweb handler (same civetweb settings), and
# runs wrk with a new user per request against each, then cpn-loadgen
# (which times every request: p99.9, max, starved connections); measures
# the Redis ceiling (redis-benchmark running lua/coupon/issue.lua, new user each,
# unpipelined and 32 deep) and, last, the worker's persistence rate on a
# backlog (tests/load/worker_bench.py, --worker-messages, default 100000;
# 0 skips). The bare handler with --handoff runs the middle loadgen row
# for comparison (each answer waits for another
# thread to wake it, as coupon-api's wait for Redis and Kafka does): the
# ceiling of a thread-per-connection server that cannot answer at once.
# Two more rows there measure an event-driven front (cpn-bare-epoll: two
# epoll loops, no thread per connection), answering at once and with the
# same handoff: what replacing civetweb's model would buy. One row pair
# runs the issue endpoint through the nginx front (deploy/nginx) beside
# bare coupon-api. The dashboard rows run the issue endpoint with no one
# polling GET /v1/dashboard, with one open page (a poll a second) and with
# ten, in four alternating rounds of the same run: what an open dashboard
# costs issuing. --only dashboard runs just those rows.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${COUPON_BUILD_DIR:-$root/build}
duration=10
conns="64 256"
lg_conns="64 256 1000"
worker_messages=100000
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --worker-messages) worker_messages=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --loadgen-connections) lg_conns=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

dir=$(mktemp -d /tmp/coupon-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$root/deploy/local-services.sh" stop --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$root/deploy/local-services.sh" start --dir "$dir" --auto-ports --build-dir "$build" >/dev/null
eval "$("$root/deploy/local-services.sh" env --dir "$dir")"
"$build/src/couponctl" migrate >/dev/null
"$build/src/couponctl" campaign create --id bench --name bench --total 100000000 >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(port); bare_port=$(port); handoff_port=$(port)
epoll_port=$(port); epoll_handoff_port=$(port)
admin_token=bench-admin-token-0123456789
COUPON_HTTP_ADDR=127.0.0.1:$api_port COUPON_LOG_LEVEL=warn COUPON_ADMIN_TOKEN=$admin_token \
  "$build/src/coupon-api" 2>"$dir/api.log" &
pids+=($!)
"$build/tests/load/cpn-bare-civetweb" "127.0.0.1:$bare_port" 1024 &
pids+=($!)
"$build/tests/load/cpn-bare-civetweb" --handoff "127.0.0.1:$handoff_port" 1024 &
pids+=($!)
"$build/tests/load/cpn-bare-epoll" "127.0.0.1:$epoll_port" 2 &
pids+=($!)
"$build/tests/load/cpn-bare-epoll" --handoff "127.0.0.1:$epoll_handoff_port" 2 &
pids+=($!)
for p in $api_port $bare_port $handoff_port $epoll_port $epoll_handoff_port; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/healthz" && break; sleep 0.1; done
done

# cpn-loadgen times every request (wrk only those that complete): the
# table that judges latency and starvation, same client for both sides.
lg() { # lg ADDR PREFIX CONNS -> "rps p50 p99 p999 max errors starved"
  "$build/tests/support/cpn-loadgen" --addr "$1" --campaign bench --connections "$3" \
    --duration "$duration" --user-prefix "$2" --timeout-ms 10000 |
    awk -F= '{v[$1] = $2} END {
      err = 0; for (k in v) if (k ~ /^status_/ && k != "status_202") err += v[k]
      printf "%.0f %s %s %s %s %d %s\n", v["rps"], v["p50_ms"], v["p99_ms"], v["p999_ms"], v["max_ms"], err, v["starved_connections"] }'
}

# What open dashboards cost the issue endpoint: the same loadgen run with
# 0, 1 and 10 pages polling GET /v1/dashboard once a second (curl, one
# keep-alive connection each; "polls" counts the 200s coupon-api's own
# /metrics says it gave them), in four
# rounds of 0 1 10 so that drift falls on every side; the ratios are of
# the medians (one run on this box varies by 10 % and more).
dash_polls() {
  curl -s "http://127.0.0.1:$api_port/metrics" |
    awk '/^coupon_http_requests_total\{route="dashboard_data",status="200"\}/ {n = $2} END {print n + 0}'
}
dashboard_rows() {
  local c n r p poller x50 x99 x999 xmax xerr xst polls before
  local -A runs=()
  c=$(echo "$lg_conns" | awk '{print $(NF > 1 ? 2 : 1)}')
  curl -sf -o /dev/null -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$api_port/v1/dashboard" || sleep 2
  printf '%-30s %9s %8s %8s %8s %8s %7s %8s %6s\n' "issue with dashboards open, $c" req/s p50_ms p99_ms p999_ms max_ms errors starved polls
  for round in 1 2 3 4; do
    for n in 0 1 10; do
      poller=""
      before=$(dash_polls)
      for _ in $(seq "$n"); do
        curl -s --rate 1/s -o /dev/null -H "Authorization: Bearer $admin_token" \
          "http://127.0.0.1:$api_port/v1/dashboard?[1-100000]" >/dev/null &
        poller="$poller $!"
      done
      read -r r x50 x99 x999 xmax xerr xst < <(lg "127.0.0.1:$api_port" "ld$round-$n-" "$c")
      for p in $poller; do kill "$p"; wait "$p" 2>/dev/null || true; done
      polls=$(($(dash_polls) - before))
      printf '%-30s %9s %8s %8s %8s %8s %7s %8s %6s\n' "  round $round, $n pages" "$r" "$x50" "$x99" "$x999" "$xmax" "$xerr" "$xst" "$polls"
      runs[$n]="${runs[$n]:-} $r"
    done
  done
  python3 - "${runs[0]}" "${runs[1]}" "${runs[10]}" <<'PY'
import statistics, sys
m = [statistics.median(float(x) for x in a.split()) for a in sys.argv[1:]]
print("%-30s %9.0f / %.0f / %.0f" % ("  medians 0 / 1 / 10 pages", m[0], m[1], m[2]))
print("%-30s %9.3f" % ("  ratio 1 page / none", m[1] / m[0]))
print("%-30s %9.3f" % ("  ratio 10 pages / none", m[2] / m[0]))
PY
}
if [ "$only" = dashboard ]; then
  dashboard_rows
  exit 0
elif [ -n "$only" ]; then
  echo "bench: --only knows: dashboard" >&2
  exit 2
fi

# The Redis ceiling: the issue script itself, one call per round trip.
rport=${COUPON_REDIS_URL##*:}; rport=${rport%%/*}
redis-cli -p "$rport" HSET 'coupon:{rb}:meta' total 100000000 starts_at 0 >/dev/null
sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat "$root/lua/coupon/issue.lua")")
redis_rps=$(redis-benchmark -p "$rport" -c 50 -n $((duration * 20000)) -r 100000000 -q \
  EVALSHA "$sha" 4 'coupon:{rb}:meta' 'coupon:{rb}:count' 'coupon:{rb}:users' 'coupon:{rb}:outbox' \
  'u-__rand_int__' 2>/dev/null | tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($(i+1) == "requests") print $i}' | tail -1)
redis-cli -p "$rport" DEL 'coupon:{rb}:users' 'coupon:{rb}:outbox' 'coupon:{rb}:count' >/dev/null
redis_p_rps=$(redis-benchmark -p "$rport" -c 50 -P 32 -n $((duration * 50000)) -r 100000000 -q \
  EVALSHA "$sha" 4 'coupon:{rb}:meta' 'coupon:{rb}:count' 'coupon:{rb}:users' 'coupon:{rb}:outbox' \
  'u-__rand_int__' 2>/dev/null | tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($(i+1) == "requests") print $i}' | tail -1)
redis-cli -p "$rport" DEL 'coupon:{rb}:users' 'coupon:{rb}:outbox' 'coupon:{rb}:count' >/dev/null
printf '%-34s %12s\n' "redis-benchmark issue.lua, 50 conns" "$redis_rps"
printf '%-34s %12s\n' "  the same, pipelined 32 deep" "$redis_p_rps"

rps() { awk '/^Requests\/sec/ {print $2}'; }
lat() { awk -v q="$1" '$1 == q {print $2}'; }
printf '%-34s %12s %10s %10s\n' "run ($duration s, wrk, new user each)" "req/s" "p50" "p99"
for c in $conns; do
  b=$(wrk -t2 -c"$c" -d"${duration}s" --latency -s "$root/tests/load/issue-unique.lua" \
        "http://127.0.0.1:$bare_port" -- bench "b$c-" 2>&1)
  a=$(wrk -t2 -c"$c" -d"${duration}s" --latency -s "$root/tests/load/issue-unique.lua" \
        "http://127.0.0.1:$api_port" -- bench "a$c-" 2>&1)
  br=$(echo "$b" | rps); ar=$(echo "$a" | rps)
  printf '%-34s %12s %10s %10s\n' "bare civetweb, $c conns" "$br" "$(echo "$b" | lat 50%)" "$(echo "$b" | lat 99%)"
  printf '%-34s %12s %10s %10s\n' "coupon-api issue, $c conns" "$ar" "$(echo "$a" | lat 50%)" "$(echo "$a" | lat 99%)"
  printf '%-34s %12s\n' "  ratio api/bare" "$(python3 -c "print('%.2f' % ($ar / $br))")"
  printf '%-34s %12s\n' "  ratio api/redis" "$(python3 -c "print('%.2f' % ($ar / $redis_rps))")"
  echo "$a" | grep -E 'Non-2xx|Socket errors' | sed 's/^/  api: /' || true
done
echo
printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "cpn-loadgen, $duration s, new user each" req/s p50_ms p99_ms p999_ms max_ms errors starved
for c in $lg_conns; do
  read -r br b50 b99 b999 bmax berr bst < <(lg "127.0.0.1:$bare_port" "lb$c-" "$c")
  read -r ar a50 a99 a999 amax aerr ast < <(lg "127.0.0.1:$api_port" "la$c-" "$c")
  printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "bare civetweb, $c conns" "$br" "$b50" "$b99" "$b999" "$bmax" "$berr" "$bst"
  printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "coupon-api issue, $c conns" "$ar" "$a50" "$a99" "$a999" "$amax" "$aerr" "$ast"
  printf '%-30s %9s   (api/redis %s)\n' "  ratio api/bare" "$(python3 -c "print('%.2f' % ($ar / $br))")" \
    "$(python3 -c "print('%.2f' % ($ar / $redis_rps))")"
  if [ "$c" = 256 ]; then
    read -r hr h50 h99 h999 hmax herr hst < <(lg "127.0.0.1:$handoff_port" "lh$c-" "$c")
    printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "  bare civetweb --handoff" "$hr" "$h50" "$h99" "$h999" "$hmax" "$herr" "$hst"
    printf '%-30s %9s   (coupon-api/handoff %s)\n' "    ratio to bare" "$(python3 -c "print('%.2f' % ($hr / $br))")" \
      "$(python3 -c "print('%.2f' % ($ar / $hr))")"
    for v in "epoll:$epoll_port" "epoll --handoff:$epoll_handoff_port"; do
      read -r er e50 e99 e999 emax eerr est < <(lg "127.0.0.1:${v##*:}" "le${v##*:}-" "$c")
      printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "  bare ${v%:*}" "$er" "$e50" "$e99" "$e999" "$emax" "$eerr" "$est"
      printf '%-30s %9s\n' "    ratio to bare civetweb" "$(python3 -c "print('%.2f' % ($er / $br))")"
    done
  fi
done
echo "redis count: $(redis-cli -u "$COUPON_REDIS_URL" GET 'coupon:{bench}:count'), outbox: $(redis-cli -u "$COUPON_REDIS_URL" XLEN 'coupon:{bench}:outbox')"

# The issue endpoint through the nginx front (deploy/nginx, loopback exempt
# from its rate limits) next to bare coupon-api, same run, middle
# connection count: what the front costs.
if command -v nginx >/dev/null; then
  fc=$(echo "$lg_conns" | awk '{print $(NF > 1 ? 2 : 1)}')
  front_port=$(port)
  COUPON_FRONT_LISTEN=127.0.0.1:$front_port COUPON_FRONT_UPSTREAM=127.0.0.1:$api_port \
    COUPON_FRONT_EXEMPT=127.0.0.1 bash "$root/deploy/nginx/front.sh" start "$dir/front" >/dev/null
  read -r ar a50 a99 a999 amax aerr ast < <(lg "127.0.0.1:$api_port" "fa$fc-" "$fc")
  read -r fr f50 f99 f999 fmax ferr fst < <(lg "127.0.0.1:$front_port" "ff$fc-" "$fc")
  printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "coupon-api issue, $fc conns" "$ar" "$a50" "$a99" "$a999" "$amax" "$aerr" "$ast"
  printf '%-30s %9s %8s %8s %8s %8s %7s %8s\n' "  through the nginx front" "$fr" "$f50" "$f99" "$f999" "$fmax" "$ferr" "$fst"
  printf '%-30s %9s\n' "    ratio front/bare" "$(python3 -c "print('%.2f' % ($fr / $ar))")"
  bash "$root/deploy/nginx/front.sh" stop "$dir/front"
else
  echo "(nginx not installed: no front row)"
fi

# Ticket reservations, at the middle connection count, each next to the
# coupon issue endpoint measured right before it in the same run (the
# issue's target: taking stock at 0.8 of issuing a coupon): the sold-out
# flood (the gate's refusals, answered from Redis), reservations that take
# stock (combined into shared MySQL transactions, durable:
# innodb_flush_log_at_trx_commit=1) on a type far larger than the run, and
# a type of 1,000 that sells out at once, with what reached MySQL meanwhile
# (statements and rows; the refusals must add none).
"$build/src/couponctl" ticket-type create --id flood --name flood --price 1 --currency KRW --total 1 >/dev/null
"$build/src/couponctl" ticket-type create --id stock --name stock --price 1 --currency KRW --total 10000000 >/dev/null
"$build/src/couponctl" ticket-type create --id k1 --name k1 --price 1 --currency KRW --total 1000 >/dev/null
lgt() { # lgt ADDR TYPE PREFIX CONNS [PATH] -> "rps p50 p99 p999 max statuses"
  "$build/tests/support/cpn-loadgen" --addr "$1" --campaign "$2" --path "${5:-/v1/ticket-types/{campaign\}/reservations}" \
    --connections "$4" --duration "$duration" --user-prefix "$3" --timeout-ms 10000 |
    awk -F= '{v[$1] = $2} END {
      s = ""; for (k in v) if (k ~ /^status_/ && v[k] > 0) s = s sprintf("%s%s:%s", s == "" ? "" : ",", substr(k, 8), v[k])
      printf "%.0f %s %s %s %s %s\n", v["rps"], v["p50_ms"], v["p99_ms"], v["p999_ms"], v["max_ms"], s }'
}
mysql_status() { # the server's counters that say what reached it
  local port=${COUPON_MYSQL_URL##*:}
  mariadb -h 127.0.0.1 -P "${port%%/*}" -u coupon -pcoupon -N -B -e \
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_insert', 'Com_update', 'Innodb_rows_inserted')" |
    awk '{printf "%s=%s ", $1, $2}'
}
tc=$(echo "$lg_conns" | awk '{print $(NF > 1 ? 2 : 1)}')
row() { printf '%-30s %9s %8s %8s %8s %8s  %s\n' "$@"; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
printf '%-30s %9s %8s %8s %8s %8s  %s\n' "tickets, $duration s, $tc conns" req/s p50_ms p99_ms p999_ms max_ms statuses
read -r br b50 b99 b999 bmax bst < <(lgt "127.0.0.1:$bare_port" flood "tb$tc-" "$tc")
row "bare civetweb" "$br" "$b50" "$b99" "$b999" "$bmax" "$bst"
for t in flood stock k1; do
  read -r ir i50 i99 i999 imax ist < <(lgt "127.0.0.1:$api_port" bench "ti$t$tc-" "$tc" '/v1/campaigns/{campaign}/issue')
  before=$(mysql_status)
  read -r fr f50 f99 f999 fmax fst < <(lgt "127.0.0.1:$api_port" "$t" "t$t$tc-" "$tc")
  after=$(mysql_status)
  row "coupon issue" "$ir" "$i50" "$i99" "$i999" "$imax" "$ist"
  case $t in
    flood) what="reserve, sold out (gate)" ;;
    stock) what="reserve, taking stock" ;;
    k1) what="reserve, 1,000 selling out" ;;
  esac
  row "$what" "$fr" "$f50" "$f99" "$f999" "$fmax" "$fst"
  printf '%-30s %9s   (to bare: %s)\n' "  ratio to coupon issue" "$(ratio "$fr" "$ir")" "$(ratio "$fr" "$br")"
  python3 -c "
import sys
b = dict(kv.split('=') for kv in sys.argv[1].split())
a = dict(kv.split('=') for kv in sys.argv[2].split())
print('  %-28s %s' % ('mysql during it', ' '.join('%s +%d' % (k, int(a[k]) - int(b[k])) for k in sorted(a))))
" "$before" "$after"
done
echo
dashboard_rows
echo "coupon-api peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/${pids[0]}/status) (64 MiB = 65536 kB)"

if [ "$worker_messages" -gt 0 ]; then
  echo
  echo "worker persistence on a backlog of $worker_messages messages:"
  COUPON_BUILD_DIR=$build python3 "$root/tests/load/worker_bench.py" --messages "$worker_messages" 2>/dev/null |
    grep '^worker_bench'
fi
