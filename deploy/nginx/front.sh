#!/usr/bin/env bash
# Renders and runs nginx in front of coupon-api (deploy/nginx/*.conf.in).
# Run with --help for the details.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=front.sh

# Every @NAME@ of the templates, with its variable and default.
: "${COUPON_FRONT_LISTEN:=127.0.0.1:8080}"
: "${COUPON_FRONT_UPSTREAM:=127.0.0.1:8081}"
: "${COUPON_FRONT_OPERATORS:=127.0.0.1 ::1}"
: "${COUPON_FRONT_EXEMPT:=}"
: "${COUPON_FRONT_RATE:=100r/s}"
: "${COUPON_FRONT_BURST:=500}"
: "${COUPON_FRONT_USER_RATE:=5r/s}"
: "${COUPON_FRONT_USER_BURST:=20}"
: "${COUPON_FRONT_CONN_PER_IP:=256}"
: "${COUPON_FRONT_HEADER_TIMEOUT:=5s}"
: "${COUPON_FRONT_WORKERS:=auto}"
: "${COUPON_FRONT_NGINX:=$(command -v nginx || echo /usr/sbin/nginx)}"
export "${!COUPON_FRONT_@}"

usage() {
	cat <<EOF
Usage: deploy/nginx/$PROG site | start DIR | stop DIR | status DIR

nginx in front of coupon-api, as a real deployment puts it: idle and slow
clients held by nginx (coupon-api keeps a thread per connection: never
expose it directly), requests read whole before they reach coupon-api
over kept-alive connections, per-client-IP (and, with user tokens, per
token) rate and connection limits answered 429 with the API's JSON error
body and Retry-After, only the public routes exposed (admin, /metrics and
the probes only to COUPON_FRONT_OPERATORS), the client address passed on.

Commands:
  site         print the site configuration (an http{} include, e.g. for
               /etc/nginx/conf.d/coupon-api.conf)
  start DIR    write DIR/nginx.conf and DIR/coupon-api.conf, check them
               (nginx -t) and start nginx with everything in DIR (pid,
               logs, temp files); prints the pid. Needs no root.
  stop DIR     stop that nginx (SIGQUIT: finish requests in flight, then
               SIGTERM after 10 s); idempotent
  status DIR   exit 0 when it runs

Settings (environment, default in brackets):
  COUPON_FRONT_LISTEN          address nginx listens on [$COUPON_FRONT_LISTEN]
  COUPON_FRONT_UPSTREAM        coupon-api's address [$COUPON_FRONT_UPSTREAM]
  COUPON_FRONT_OPERATORS       addresses/CIDRs that may reach admin routes,
                               /metrics, /readyz, /healthz and the dashboard
                               [$COUPON_FRONT_OPERATORS]
  COUPON_FRONT_EXEMPT          addresses/CIDRs never rate limited (a local
                               load generator) [none]
  COUPON_FRONT_RATE            requests per second per client IP [$COUPON_FRONT_RATE]
  COUPON_FRONT_BURST           requests above the rate taken at once [$COUPON_FRONT_BURST]
  COUPON_FRONT_USER_RATE       per user token, where tokens are sent [$COUPON_FRONT_USER_RATE]
  COUPON_FRONT_USER_BURST      [$COUPON_FRONT_USER_BURST]
  COUPON_FRONT_CONN_PER_IP     requests in progress per client IP [$COUPON_FRONT_CONN_PER_IP]
  COUPON_FRONT_HEADER_TIMEOUT  time a client gets to send its request head [$COUPON_FRONT_HEADER_TIMEOUT]
  COUPON_FRONT_WORKERS         nginx worker processes [$COUPON_FRONT_WORKERS]
  COUPON_FRONT_NGINX           the nginx binary [$COUPON_FRONT_NGINX]

Sizing the per-IP limits: mobile carriers put many phones behind one
address (CGNAT). Take the most users you expect behind one address in a
sale's first second (a few hundred for a large carrier) times about one
request per tap: that is the burst; the rate is what one address may
keep up afterwards. One bot stays held to it. Where identity is on, the
per-token limit holds each signed-in user to a few requests a second
whatever address they share.
EOF
}

# "a b c" -> one nginx line per item: "<prefix> a<suffix>" ...
lines() {
	local prefix=$1 suffix=$2 item out=""
	for item in $3; do
		out+="$prefix $item$suffix"$'\n'
	done
	printf '%s' "$out"
}

render() { # template -> stdout
	local exempt operators
	exempt=$(lines "   " " 1;" "$COUPON_FRONT_EXEMPT")
	operators=$(lines "        allow" ";" "$COUPON_FRONT_OPERATORS")
	EXEMPT=$exempt OPERATORS=$operators python3 - "$1" <<'PY'
import os, sys
text = open(sys.argv[1]).read()
values = {
    "EXEMPT": os.environ["EXEMPT"].rstrip("\n"),
    "OPERATORS": os.environ["OPERATORS"].rstrip("\n"),
}
for k, v in os.environ.items():
    if k.startswith("COUPON_FRONT_"):
        values.setdefault(k[len("COUPON_FRONT_"):], v)
for k, v in os.environ.items():
    if k.startswith("TPL_"):
        values[k[4:]] = v
out, i = [], 0
while True:
    j = text.find("@", i)
    if j < 0:
        out.append(text[i:]); break
    k = text.find("@", j + 1)
    name = text[j + 1:k] if k > 0 else ""
    if name and name.replace("_", "").isalnum() and name.isupper() and name in values:
        out.append(text[i:j]); out.append(values[name]); i = k + 1
    elif name and name.replace("_", "").isalnum() and name.isupper():
        sys.exit("front.sh: no value for @%s@" % name)
    else:
        out.append(text[i:j + 1]); i = j + 1
sys.stdout.write("".join(out))
PY
}

cmd=${1:-}
case "$cmd" in
-h|--help|help) usage; exit 0 ;;
site) render "$here/coupon-api.conf.in" ;;
start)
	dir=${2:?usage: $PROG start DIR}
	mkdir -p "$dir/tmp"
	dir=$(cd "$dir" && pwd)
	if [ -s "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null; then
		cat "$dir/nginx.pid"; exit 0
	fi
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] && hard=1048576
	nofile=$(( hard < 65536 ? hard : 65536 ))
	ulimit -n "$nofile" 2>/dev/null || true
	user=""
	[ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
	export TPL_DIR=$dir TPL_USER_LINE=$user TPL_NOFILE=$nofile TPL_WORKER_CONNECTIONS=$(( nofile - 100 ))
	render "$here/coupon-api.conf.in" > "$dir/coupon-api.conf"
	render "$here/nginx.conf.in" > "$dir/nginx.conf"
	if ! "$COUPON_FRONT_NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/check.log"; then
		cat "$dir/check.log" >&2
		exit 1
	fi
	"$COUPON_FRONT_NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
	for _ in $(seq 50); do
		[ -s "$dir/nginx.pid" ] && break
		sleep 0.1
	done
	[ -s "$dir/nginx.pid" ] || { echo "$PROG: nginx did not start; see $dir/error.log" >&2; exit 1; }
	cat "$dir/nginx.pid"
	;;
stop)
	dir=${2:?usage: $PROG stop DIR}
	[ -s "$dir/nginx.pid" ] || exit 0
	pid=$(cat "$dir/nginx.pid")
	kill -QUIT "$pid" 2>/dev/null || exit 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || exit 0
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null || true
	;;
status)
	dir=${2:?usage: $PROG status DIR}
	[ -s "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null
	;;
*) usage >&2; exit 2 ;;
esac
