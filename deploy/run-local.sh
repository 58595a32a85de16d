#!/usr/bin/env bash
# The one command that runs the service on a fresh Debian machine:
# installs the packages, builds, starts local Redis, MariaDB and the Kafka
# dev broker (deploy/local-services.sh, data in .local/), migrates the
# schema, and serves in the foreground: nginx (deploy/nginx) on
# 127.0.0.1:8080 in front of coupon-api on 127.0.0.1:8081, as a real
# deployment puts it (coupon-api keeps a thread per connection: it is
# never exposed directly). COUPON_FRONT=0 (or --bare) serves coupon-api
# itself on COUPON_HTTP_ADDR (default 127.0.0.1:8080) instead. Loopback is
# exempt from the front's rate limits here, so that local load tests
# measure the service. Ctrl-C stops coupon-api and the front; the local
# services keep running until `deploy/local-services.sh stop`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

front=${COUPON_FRONT:-1}
for arg in "$@"; do
  case "$arg" in
  --bare) front=0 ;;
  -h|--help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0 ;;
  *) echo "run-local: unknown argument '$arg' (--bare, --help)" >&2; exit 2 ;;
  esac
done

bash deploy/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
ninja -C build >/dev/null

deploy/local-services.sh start >/dev/null
eval "$(deploy/local-services.sh env)"

build/src/couponctl migrate

# A local admin token, generated once and kept in .local/ (git-ignored).
if [ -z "${COUPON_ADMIN_TOKEN:-}" ]; then
  tokfile="$COUPON_LOCAL_DIR/admin-token"
  if [ ! -s "$tokfile" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tokfile"
  fi
  COUPON_ADMIN_TOKEN=$(cat "$tokfile")
  export COUPON_ADMIN_TOKEN
fi
if [ "$front" = 1 ]; then
  export COUPON_HTTP_ADDR=${COUPON_HTTP_ADDR:-127.0.0.1:8081}
  export COUPON_FRONT_LISTEN=${COUPON_FRONT_LISTEN:-127.0.0.1:8080}
  export COUPON_FRONT_UPSTREAM=$COUPON_HTTP_ADDR
  export COUPON_FRONT_EXEMPT=${COUPON_FRONT_EXEMPT:-127.0.0.1 ::1}
else
  export COUPON_HTTP_ADDR=${COUPON_HTTP_ADDR:-127.0.0.1:8080}
fi
# coupon-api needs about 4 file descriptors per thread and will not start
# when they cannot fit: on a machine whose hard limit is low, use fewer
# threads (it says how many fit) rather than fail.
if [ -z "${COUPON_HTTP_THREADS:-}" ]; then
  hard=$(ulimit -Hn)
  # coupon-api needs up to 7 descriptors per thread (it says so and exits
  # when they do not fit): fewer threads than the default where the limit
  # is low.
  if [ "$hard" != unlimited ] && [ "$hard" -lt 7500 ]; then
    COUPON_HTTP_THREADS=$(( (hard - 200) / 7 ))
    [ "$COUPON_HTTP_THREADS" -ge 4 ] || COUPON_HTTP_THREADS=4
    export COUPON_HTTP_THREADS
    echo "run-local: open-files limit $hard: COUPON_HTTP_THREADS=$COUPON_HTTP_THREADS (raise ulimit -n for the default 1024)" >&2
  fi
fi

build/src/coupon-worker >>"$COUPON_LOCAL_DIR/worker.log" 2>&1 &
worker=$!
api=
stop_all() {
  [ -n "$api" ] && kill -TERM "$api" 2>/dev/null || true
  kill -TERM "$worker" 2>/dev/null || true
}
trap stop_all INT TERM

if [ "$front" = 1 ]; then
  front_pid=$(bash deploy/nginx/front.sh start "$COUPON_LOCAL_DIR/nginx")
  cat >&2 <<MSG
nginx (pid $front_pid) on http://$COUPON_FRONT_LISTEN in front of coupon-api on $COUPON_HTTP_ADDR
  (front: config and error.log in $COUPON_LOCAL_DIR/nginx; --bare serves coupon-api alone)
MSG
fi
cat >&2 <<MSG
coupon-api on http://$COUPON_HTTP_ADDR   (admin token: $COUPON_ADMIN_TOKEN)
coupon-worker pid $worker, log $COUPON_LOCAL_DIR/worker.log
  environment for couponctl/redis-cli:  eval "\$(deploy/local-services.sh env)"
  stop the local services afterwards:   deploy/local-services.sh stop
MSG
build/src/coupon-api &
api=$!
status=0
wait "$api" || status=$?
# a signal interrupts the first wait; wait again for the drain to finish
wait "$api" 2>/dev/null || true
kill -TERM "$worker" 2>/dev/null || true
wait "$worker" 2>/dev/null || true
if [ "$front" = 1 ]; then
  bash deploy/nginx/front.sh stop "$COUPON_LOCAL_DIR/nginx" || true
fi
exit "$status"
