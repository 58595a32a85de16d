#!/usr/bin/env bash
# Starts, stops and reports the coupon service's local backing services:
# redis-server, MariaDB, coupon-devbroker (librdkafka's in-memory mock
# Kafka, development only) and coupon-devpay (a fake card payment gateway,
# development only), all on 127.0.0.1, all inside one data folder.
# Nothing system-wide is touched: no systemd, no /etc, no /var/lib/mysql;
# every server runs with --no-defaults or an explicit config file.
# Run with --help for the details.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
PROG=local-services.sh

DEFAULT_REDIS_PORT=16379
DEFAULT_MYSQL_PORT=13306
DEFAULT_DEVPAY_PORT=18090
DEFAULT_DEVPAY_CONTROL_PORT=18091
# The key coupon-devpay accepts. A fixed test key, never one from the
# caller's environment: a shell with a real COUPON_PAYMENT_SECRET must not
# hand it to a development gateway.
DEVPAY_SECRET=test_sk_devpay
STOP_TIMEOUT=${COUPON_LOCAL_STOP_TIMEOUT:-30}
DETACH=${COUPON_LOCAL_DETACH:-1}
READY_TIMEOUT=${COUPON_LOCAL_READY_TIMEOUT:-60}

usage() {
	cat <<EOF
Usage: deploy/$PROG [OPTIONS] start|stop|status|env

Local Redis, MariaDB, Kafka (coupon-devbroker) and a card payment gateway
(coupon-devpay) for development and tests, on 127.0.0.1 only, with all
data, pid files, sockets and logs in one folder.

Commands:
  start    start whatever is not running yet (idempotent), wait until each
           answers, create MariaDB database 'coupon' and user coupon/coupon,
           write DIR/env and print it
  stop     stop all four (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s); idempotent
  status   one line per service: running or not, pid, port; exit 0 when all
           four run, 3 otherwise
  env      print DIR/env (the COUPON_* variables the programs need):
             eval "\$(deploy/$PROG env)"

Options:
  --dir DIR            data folder (default $REPO_DIR/.local, git-ignored)
  --auto-ports         pick free loopback ports for Redis, MariaDB and
                       coupon-devpay instead of the defaults (the ports are
                       remembered in DIR/ports and reused while free)
  --build-dir DIR      where coupon-devbroker and coupon-devpay were built
                       (default $REPO_DIR/build; DIR/NAME and
                       DIR/src/dev/{devbroker,devpay}/NAME are tried)
  --devpay-port PORT   port of coupon-devpay's gateway API, the same as
                       COUPON_LOCAL_DEVPAY_PORT (ignored with --auto-ports)
  --mysql-flush N      innodb_flush_log_at_trx_commit for MariaDB: 1 (default,
                       durable), 2 or 0 (faster, may lose ~1 s on a crash)
  -h, --help           this text

Environment:
  COUPON_LOCAL_REDIS_PORT   Redis port (default $DEFAULT_REDIS_PORT)
  COUPON_LOCAL_MYSQL_PORT   MariaDB port (default $DEFAULT_MYSQL_PORT)
  COUPON_LOCAL_DEVPAY_PORT  coupon-devpay's gateway API port (default
                            $DEFAULT_DEVPAY_PORT)
  COUPON_LOCAL_DEVPAY_CONTROL_PORT
                            coupon-devpay's test controls port (default
                            $DEFAULT_DEVPAY_CONTROL_PORT)
  COUPON_LOCAL_DEVPAY_BIN   the coupon-devpay program to run (default: found
                            in --build-dir)
  COUPON_LOCAL_MYSQL_FLUSH  default of --mysql-flush
  COUPON_KAFKA_TOPIC        topic the devbroker creates (default coupon.issued)
  COUPON_DEVBROKER_BROKERS, COUPON_DEVBROKER_PARTITIONS
                            passed through to coupon-devbroker (3 and 6)
  COUPON_LOCAL_DETACH       1 (default): servers get their own session
                            (setsid); 0: they stay in the caller's process
                            group, so killing that group stops them (tests)
  COUPON_LOCAL_READY_TIMEOUT, COUPON_LOCAL_STOP_TIMEOUT
                            seconds to wait for a server to answer / to exit
                            after SIGTERM before SIGKILL (60 and 30)

Files in DIR: redis/ and mysql/ (data), redis.pid mysql.pid devbroker.pid
devpay.pid, mysql.sock, devbroker.sock (fault injection: coupon-devbroker
ctl --control DIR/devbroker.sock status|down|up|rtt MS|produce-errors N),
kafka.bootstrap, devpay.ready, devpay-ledger.jsonl (every charge and cancel
of coupon-devpay, one JSON line each; kept across restarts), ports, env, and
the logs redis.log mysql.log mysql-install.log devbroker.log devpay.log.

coupon-devpay answers the payment API on \$COUPON_PAYMENT_URL with the key
\$COUPON_PAYMENT_SECRET ($DEVPAY_SECRET); its test controls (no auth) are on
\$COUPON_DEVPAY_CONTROL: curl -X POST \$COUPON_DEVPAY_CONTROL/down (or /up),
curl \$COUPON_DEVPAY_CONTROL/ledger. coupon-devpay --help has the test cards.

The Kafka and the payment gateway of this script are fakes: in memory, gone
on stop, for development and tests only.
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

say() {
	echo "$PROG: $*" >&2
}

now() {
	date +%s.%N
}

elapsed() {
	# seconds since $1 with one decimal, no bc needed
	local start=$1 end
	end=$(now)
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }'
}

# ---- arguments -------------------------------------------------------------

CMD=
DIR=
AUTO_PORTS=0
BUILD_DIR=
MYSQL_FLUSH=${COUPON_LOCAL_MYSQL_FLUSH:-1}

while (($#)); do
	case $1 in
	--dir) (($# >= 2)) || die "--dir needs a value"; DIR=$2; shift 2 ;;
	--dir=*) DIR=${1#*=}; shift ;;
	--auto-ports) AUTO_PORTS=1; shift ;;
	--build-dir) (($# >= 2)) || die "--build-dir needs a value"; BUILD_DIR=$2; shift 2 ;;
	--build-dir=*) BUILD_DIR=${1#*=}; shift ;;
	--mysql-flush) (($# >= 2)) || die "--mysql-flush needs a value"; MYSQL_FLUSH=$2; shift 2 ;;
	--mysql-flush=*) MYSQL_FLUSH=${1#*=}; shift ;;
	# The flag is the environment variable (choose_port reads it by name).
	--devpay-port) (($# >= 2)) || die "--devpay-port needs a value"; export COUPON_LOCAL_DEVPAY_PORT=$2; shift 2 ;;
	--devpay-port=*) export COUPON_LOCAL_DEVPAY_PORT=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	start | stop | status | env)
		[[ -z $CMD ]] || die "more than one command ('$CMD' and '$1')"
		CMD=$1; shift ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[[ -n $CMD ]] || { usage >&2; exit 2; }
[[ $DETACH =~ ^[01]$ ]] || die "COUPON_LOCAL_DETACH must be 0 or 1, got '$DETACH'"
[[ $READY_TIMEOUT =~ ^[0-9]+$ && $STOP_TIMEOUT =~ ^[0-9]+$ ]] || die "COUPON_LOCAL_READY_TIMEOUT and COUPON_LOCAL_STOP_TIMEOUT must be whole seconds"
[[ $MYSQL_FLUSH =~ ^[012]$ ]] || die "--mysql-flush / COUPON_LOCAL_MYSQL_FLUSH must be 0, 1 or 2, got '$MYSQL_FLUSH'"

DIR=${DIR:-$REPO_DIR/.local}
BUILD_DIR=${BUILD_DIR:-$REPO_DIR/build}
if [[ $CMD == start ]]; then
	mkdir -p "$DIR"
fi
if [[ -d $DIR ]]; then
	DIR=$(cd "$DIR" && pwd)
elif [[ $CMD != start ]]; then
	# stop/status/env on a folder that was never used: nothing runs there
	case $CMD in
	stop) exit 0 ;;
	status) echo "nothing started in $DIR"; exit 3 ;;
	env) die "no $DIR: run '$PROG start' first" ;;
	esac
fi

REDIS_PIDFILE=$DIR/redis.pid
MYSQL_PIDFILE=$DIR/mysql.pid
BROKER_PIDFILE=$DIR/devbroker.pid
DEVPAY_PIDFILE=$DIR/devpay.pid
DEVPAY_READY_FILE=$DIR/devpay.ready
DEVPAY_LEDGER=$DIR/devpay-ledger.jsonl
MYSQL_SOCK=$DIR/mysql.sock
BROKER_SOCK=$DIR/devbroker.sock
BOOTSTRAP_FILE=$DIR/kafka.bootstrap
PORTS_FILE=$DIR/ports
ENV_FILE=$DIR/env
TOPIC=${COUPON_KAFKA_TOPIC:-coupon.issued}

# Unix socket paths are limited to 107 bytes.
for sock in "$MYSQL_SOCK" "$BROKER_SOCK"; do
	((${#sock} < 108)) || die "socket path too long ($sock): use a shorter --dir"
done

# One start/stop at a time per folder. The lock fd is closed for every
# server started below, so they do not hold it after we exit.
if [[ $CMD == start || $CMD == stop ]]; then
	exec 9>"$DIR/.lock"
	flock 9
fi
MYSQLD_NAMES='mariadbd|mysqld'

# ---- processes -------------------------------------------------------------

# pid_of PIDFILE: the number in PIDFILE, if any.
pid_of() {
	local pidfile=$1 pid
	[[ -s $pidfile ]] || return 1
	read -r pid <"$pidfile" || true
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	echo "$pid"
}

# pid_running PID NAMES: PID runs one of the programs NAMES ("a|b"); a
# recycled pid of another program does not count, nor does a zombie that
# nobody reaped yet (pid 1 of a container may never reap).
pid_running() {
	local pid=$1 names=$2 state cmdline name
	[[ -r /proc/$pid/stat ]] || return 1
	state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]] || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	IFS='|' read -ra names <<<"$names"
	for name in "${names[@]}"; do
		[[ $cmdline == *"$name"* ]] && return 0
	done
	return 1
}

# alive PIDFILE NAMES: the pid in PIDFILE runs one of NAMES.
alive() {
	local pid
	pid=$(pid_of "$1") || return 1
	pid_running "$pid" "$2"
}

# port_busy PORT: something listens on 127.0.0.1:PORT (or on all addresses)
port_busy() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

free_port() {
	local port
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
		return
	fi
	for _ in $(seq 1 200); do
		port=$((20000 + RANDOM % 40000))
		port_busy "$port" || { echo "$port"; return; }
	done
	die "no free port found"
}

# launch LOG COMMAND...: runs COMMAND in the background with its output
# appended to LOG and sets LAUNCHED_PID. Detached (setsid: own session, no
# terminal signals) unless COUPON_LOCAL_DETACH=0, which the test harness
# uses so that the servers stay in the test's process group and a test
# runner that kills that group on timeout also ends them. The lock fd 9 is
# not passed on.
LAUNCHED_PID=
launch() {
	local log=$1
	shift
	if ((DETACH)); then
		setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
	else
		"$@" </dev/null >>"$log" 2>&1 9>&- &
	fi
	LAUNCHED_PID=$!
}

tail_log() {
	[[ -f $1 ]] || return 0
	echo "---- last lines of $1:" >&2
	tail -n "${2:-15}" "$1" >&2 || true
}

# ---- ports -----------------------------------------------------------------

REDIS_PORT=
MYSQL_PORT=
DEVPAY_PORT=
DEVPAY_CONTROL_PORT=

load_ports() {
	local key value
	[[ -f $PORTS_FILE ]] || return 0
	while IFS='=' read -r key value; do
		case $key in
		REDIS_PORT) [[ $value =~ ^[0-9]+$ ]] && REDIS_PORT=$value ;;
		MYSQL_PORT) [[ $value =~ ^[0-9]+$ ]] && MYSQL_PORT=$value ;;
		DEVPAY_PORT) [[ $value =~ ^[0-9]+$ ]] && DEVPAY_PORT=$value ;;
		DEVPAY_CONTROL_PORT) [[ $value =~ ^[0-9]+$ ]] && DEVPAY_CONTROL_PORT=$value ;;
		esac
	done <"$PORTS_FILE"
	return 0
}

save_ports() {
	printf 'REDIS_PORT=%s\nMYSQL_PORT=%s\nDEVPAY_PORT=%s\nDEVPAY_CONTROL_PORT=%s\n' \
		"$REDIS_PORT" "$MYSQL_PORT" "$DEVPAY_PORT" "$DEVPAY_CONTROL_PORT" >"$PORTS_FILE.tmp"
	mv -f "$PORTS_FILE.tmp" "$PORTS_FILE"
}

# choose_port CURRENT_VAR ENV_VAR DEFAULT SERVICE OTHER_PORTS: decides the
# port of a service that is not running yet; OTHER_PORTS (a space-separated
# list) are the ports of the other services, which it must not take.
choose_port() {
	local recorded=$1 env_var=$2 default=$3 service=$4 other=" $5 " port
	if ((AUTO_PORTS)); then
		if [[ -n $recorded ]] && [[ $other != *" $recorded "* ]] && ! port_busy "$recorded"; then
			echo "$recorded"
			return
		fi
		for _ in 1 2 3 4 5; do
			port=$(free_port)
			[[ $other != *" $port "* ]] && { echo "$port"; return; }
		done
		die "could not pick a free port for $service"
	fi
	port=${!env_var:-$default}
	if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
		die "$env_var must be a port number, got '$port'"
	fi
	if [[ $other == *" $port "* ]]; then
		die "port $port for $service is also the port of another service; set $env_var to another port, or use --auto-ports"
	fi
	if port_busy "$port"; then
		die "port $port for $service on 127.0.0.1 is in use by another program; set $env_var to another port, or use --auto-ports"
	fi
	echo "$port"
}

# ---- redis -----------------------------------------------------------------

start_redis() {
	local start deadline pid
	command -v redis-server >/dev/null || die "redis-server not found (Debian package redis-server)"
	command -v redis-cli >/dev/null || die "redis-cli not found (Debian package redis-tools)"
	if alive "$REDIS_PIDFILE" redis-server; then
		say "redis: already running, pid $(pid_of "$REDIS_PIDFILE"), port $REDIS_PORT"
		return
	fi
	REDIS_PORT=$(choose_port "$REDIS_PORT" COUPON_LOCAL_REDIS_PORT "$DEFAULT_REDIS_PORT" Redis \
		"$MYSQL_PORT $DEVPAY_PORT $DEVPAY_CONTROL_PORT")
	save_ports
	mkdir -p "$DIR/redis"
	rm -f "$REDIS_PIDFILE"
	start=$(now)
	launch "$DIR/redis.log" redis-server "$REPO_DIR/deploy/redis.conf" \
		--port "$REDIS_PORT" --bind 127.0.0.1 \
		--dir "$DIR/redis" \
		--pidfile "$REDIS_PIDFILE" \
		--logfile "$DIR/redis.log" \
		--daemonize no
	pid=$LAUNCHED_PID
	echo "$pid" >"$REDIS_PIDFILE"
	deadline=$((SECONDS + READY_TIMEOUT))
	until [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
		if ! pid_running "$pid" redis-server; then
			rm -f "$REDIS_PIDFILE"
			tail_log "$DIR/redis.log"
			die "redis-server exited while starting (log: $DIR/redis.log)"
		fi
		if ((SECONDS > deadline)); then
			tail_log "$DIR/redis.log"
			die "redis-server on port $REDIS_PORT did not answer PING within ${READY_TIMEOUT}s (pid $pid; '$PROG stop' ends it)"
		fi
		sleep 0.05
	done
	say "redis: started, pid $pid, port $REDIS_PORT ($(elapsed "$start")s)"
}

# ---- mariadb ---------------------------------------------------------------

MYSQLD=
MYSQL_INSTALL_DB=
MYSQL_CLIENT=

find_mysql_tools() {
	local c
	for c in mariadbd /usr/sbin/mariadbd mysqld /usr/sbin/mysqld; do
		command -v "$c" >/dev/null 2>&1 && { MYSQLD=$(command -v "$c"); break; }
	done
	for c in mariadb-install-db mysql_install_db; do
		command -v "$c" >/dev/null 2>&1 && { MYSQL_INSTALL_DB=$(command -v "$c"); break; }
	done
	for c in mariadb mysql; do
		command -v "$c" >/dev/null 2>&1 && { MYSQL_CLIENT=$(command -v "$c"); break; }
	done
	[[ -n $MYSQLD ]] || die "mariadbd not found (Debian package mariadb-server)"
	[[ -n $MYSQL_INSTALL_DB ]] || die "mariadb-install-db not found (Debian package mariadb-server)"
	[[ -n $MYSQL_CLIENT ]] || die "mariadb client not found (Debian package mariadb-client)"
}

# Options shared by install-db and the server, so the InnoDB files are
# created the way the server then opens them (no redo-log resize at start).
MYSQL_COMMON_OPTS=(
	--innodb-buffer-pool-size=128M   # plenty for tests, fits a small box
	--innodb-log-file-size=48M       # small files, but enough for load tests' batches
	--character-set-server=utf8mb4   # --no-defaults would otherwise mean latin1
	--collation-server=utf8mb4_general_ci
)

mysql_user_opts() {
	# mariadbd refuses to run as root unless told to; CI runs as root.
	if ((EUID == 0)); then
		echo --user=root
	fi
}

mysql_root() {
	"$MYSQL_CLIENT" --no-defaults --protocol=socket --socket="$MYSQL_SOCK" -uroot "$@"
}

# Database coupon and user coupon/coupon (TCP from 127.0.0.1, and the unix
# socket as localhost); idempotent, so every start makes sure of it.
create_coupon_db() {
	mysql_root <<'SQL' || die "could not create database/user coupon (log: $DIR/mysql.log)"
CREATE DATABASE IF NOT EXISTS coupon CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER IF NOT EXISTS 'coupon'@'127.0.0.1' IDENTIFIED BY 'coupon';
CREATE USER IF NOT EXISTS 'coupon'@'localhost' IDENTIFIED BY 'coupon';
GRANT ALL PRIVILEGES ON coupon.* TO 'coupon'@'127.0.0.1';
GRANT ALL PRIVILEGES ON coupon.* TO 'coupon'@'localhost';
SQL
}

start_mysql() {
	local start init_start pid deadline tmp user_opt
	find_mysql_tools
	if alive "$MYSQL_PIDFILE" "$MYSQLD_NAMES"; then
		say "mariadb: already running, pid $(pid_of "$MYSQL_PIDFILE"), port $MYSQL_PORT"
		create_coupon_db
		return
	fi
	MYSQL_PORT=$(choose_port "$MYSQL_PORT" COUPON_LOCAL_MYSQL_PORT "$DEFAULT_MYSQL_PORT" MariaDB \
		"$REDIS_PORT $DEVPAY_PORT $DEVPAY_CONTROL_PORT")
	save_ports
	user_opt=$(mysql_user_opts)
	start=$(now)

	if [[ ! -d $DIR/mysql/mysql ]]; then
		# Initialise into a scratch folder and rename, so an interrupted
		# install never leaves a half-made datadir that looks complete.
		init_start=$(now)
		tmp=$DIR/mysql.init
		rm -rf "$tmp" "$DIR/mysql"
		mkdir -p "$tmp"
		if ! "$MYSQL_INSTALL_DB" --no-defaults --datadir="$tmp" \
			--auth-root-authentication-method=normal \
			--skip-test-db --skip-name-resolve \
			${user_opt:+"$user_opt"} "${MYSQL_COMMON_OPTS[@]}" \
			</dev/null >"$DIR/mysql-install.log" 2>&1 9>&-; then
			tail_log "$DIR/mysql-install.log"
			die "mariadb-install-db failed (log: $DIR/mysql-install.log)"
		fi
		mv "$tmp" "$DIR/mysql"
		say "mariadb: data folder initialised in $(elapsed "$init_start")s"
	fi

	rm -f "$MYSQL_PIDFILE"
	launch "$DIR/mysql.log" "$MYSQLD" --no-defaults \
		--datadir="$DIR/mysql" \
		--socket="$MYSQL_SOCK" \
		--port="$MYSQL_PORT" \
		--bind-address=127.0.0.1 \
		--pid-file="$MYSQL_PIDFILE" \
		--log-error="$DIR/mysql.log" \
		--skip-name-resolve \
		--innodb-flush-log-at-trx-commit="$MYSQL_FLUSH" \
		${user_opt:+"$user_opt"} "${MYSQL_COMMON_OPTS[@]}"
	pid=$LAUNCHED_PID
	# mariadbd writes its own pid file only once InnoDB is up; record the
	# pid now so 'stop' can find a server that hangs while starting.
	echo "$pid" >"$MYSQL_PIDFILE"

	deadline=$((SECONDS + READY_TIMEOUT))
	until mysql_root -N -B -e 'SELECT 1' >/dev/null 2>&1; do
		if ! pid_running "$pid" "$MYSQLD_NAMES"; then
			tail_log "$DIR/mysql.log"
			die "mariadbd exited while starting (log: $DIR/mysql.log)"
		fi
		if ((SECONDS > deadline)); then
			tail_log "$DIR/mysql.log"
			die "mariadbd did not answer within ${READY_TIMEOUT}s (still running as pid $pid; '$PROG stop' ends it)"
		fi
		sleep 0.05
	done
	# From here on the server's own pid file is authoritative.
	pid=$(pid_of "$MYSQL_PIDFILE") || die "mariadbd answers but wrote no $MYSQL_PIDFILE"

	create_coupon_db
	say "mariadb: started, pid $pid, port $MYSQL_PORT, flush_log_at_trx_commit=$MYSQL_FLUSH ($(elapsed "$start")s)"
}

# ---- devbroker -------------------------------------------------------------

find_devbroker() {
	local c
	for c in "$BUILD_DIR/coupon-devbroker" "$BUILD_DIR/src/dev/devbroker/coupon-devbroker"; do
		[[ -x $c ]] && { echo "$c"; return; }
	done
	die "coupon-devbroker not found in $BUILD_DIR: build it (ninja -C $BUILD_DIR coupon-devbroker) or pass --build-dir"
}

start_devbroker() {
	local bin start pid deadline
	if alive "$BROKER_PIDFILE" coupon-devbroker; then
		say "devbroker: already running, pid $(pid_of "$BROKER_PIDFILE"), bootstrap $(cat "$BOOTSTRAP_FILE" 2>/dev/null || echo '?')"
		return
	fi
	bin=$(find_devbroker)
	start=$(now)
	# A bootstrap file left by a killed broker names dead ports.
	rm -f "$BOOTSTRAP_FILE" "$BROKER_PIDFILE"
	launch "$DIR/devbroker.log" "$bin" \
		--topic "$TOPIC" \
		--bootstrap-file "$BOOTSTRAP_FILE" \
		--control "$BROKER_SOCK"
	pid=$LAUNCHED_PID
	echo "$pid" >"$BROKER_PIDFILE"
	deadline=$((SECONDS + READY_TIMEOUT))
	until [[ -s $BOOTSTRAP_FILE ]]; do
		if ! pid_running "$pid" coupon-devbroker; then
			rm -f "$BROKER_PIDFILE"
			tail_log "$DIR/devbroker.log" 5
			die "coupon-devbroker exited while starting (log: $DIR/devbroker.log)"
		fi
		if ((SECONDS > deadline)); then
			tail_log "$DIR/devbroker.log" 5
			die "coupon-devbroker wrote no $BOOTSTRAP_FILE within ${READY_TIMEOUT}s"
		fi
		sleep 0.02
	done
	say "devbroker: started, pid $pid, bootstrap $(cat "$BOOTSTRAP_FILE") ($(elapsed "$start")s)"
}

# ---- devpay ----------------------------------------------------------------

find_devpay() {
	local c
	if [[ -n ${COUPON_LOCAL_DEVPAY_BIN:-} ]]; then
		[[ -x $COUPON_LOCAL_DEVPAY_BIN ]] || die "COUPON_LOCAL_DEVPAY_BIN=$COUPON_LOCAL_DEVPAY_BIN is not an executable"
		echo "$COUPON_LOCAL_DEVPAY_BIN"
		return
	fi
	for c in "$BUILD_DIR/coupon-devpay" "$BUILD_DIR/src/dev/devpay/coupon-devpay"; do
		[[ -x $c ]] && { echo "$c"; return; }
	done
	die "coupon-devpay not found in $BUILD_DIR: build it (ninja -C $BUILD_DIR src/dev/devpay/coupon-devpay) or pass --build-dir"
}

start_devpay() {
	local bin start pid deadline
	if alive "$DEVPAY_PIDFILE" coupon-devpay; then
		say "devpay: already running, pid $(pid_of "$DEVPAY_PIDFILE"), port $DEVPAY_PORT, control port $DEVPAY_CONTROL_PORT"
		return
	fi
	bin=$(find_devpay)
	DEVPAY_PORT=$(choose_port "$DEVPAY_PORT" COUPON_LOCAL_DEVPAY_PORT "$DEFAULT_DEVPAY_PORT" coupon-devpay \
		"$REDIS_PORT $MYSQL_PORT $DEVPAY_CONTROL_PORT")
	DEVPAY_CONTROL_PORT=$(choose_port "$DEVPAY_CONTROL_PORT" COUPON_LOCAL_DEVPAY_CONTROL_PORT \
		"$DEFAULT_DEVPAY_CONTROL_PORT" "coupon-devpay control" "$REDIS_PORT $MYSQL_PORT $DEVPAY_PORT")
	save_ports
	start=$(now)
	# A ready file left by a killed devpay names a dead listener.
	rm -f "$DEVPAY_READY_FILE" "$DEVPAY_PIDFILE"
	launch "$DIR/devpay.log" "$bin" \
		--listen "127.0.0.1:$DEVPAY_PORT" \
		--control "127.0.0.1:$DEVPAY_CONTROL_PORT" \
		--secret "$DEVPAY_SECRET" \
		--ledger "$DEVPAY_LEDGER" \
		--ready-file "$DEVPAY_READY_FILE"
	pid=$LAUNCHED_PID
	echo "$pid" >"$DEVPAY_PIDFILE"
	deadline=$((SECONDS + READY_TIMEOUT))
	until [[ -s $DEVPAY_READY_FILE ]]; do
		if ! pid_running "$pid" coupon-devpay; then
			rm -f "$DEVPAY_PIDFILE"
			tail_log "$DIR/devpay.log" 5
			die "coupon-devpay exited while starting (log: $DIR/devpay.log)"
		fi
		if ((SECONDS > deadline)); then
			tail_log "$DIR/devpay.log" 5
			die "coupon-devpay wrote no $DEVPAY_READY_FILE within ${READY_TIMEOUT}s"
		fi
		sleep 0.02
	done
	say "devpay: started, pid $pid, api http://127.0.0.1:$DEVPAY_PORT, control http://127.0.0.1:$DEVPAY_CONTROL_PORT ($(elapsed "$start")s)"
}

# ---- env -------------------------------------------------------------------

quote() {
	# single-quoted for sh; also what Python's shlex reads back
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

write_env() {
	local bootstrap
	bootstrap=$(cat "$BOOTSTRAP_FILE")
	{
		echo "# written by deploy/$PROG start; services in $DIR"
		echo "export COUPON_REDIS_URL=$(quote "redis://127.0.0.1:$REDIS_PORT/0")"
		echo "export COUPON_MYSQL_URL=$(quote "mysql://coupon:coupon@127.0.0.1:$MYSQL_PORT/coupon")"
		echo "export COUPON_KAFKA_BROKERS=$(quote "$bootstrap")"
		echo "export COUPON_KAFKA_TOPIC=$(quote "$TOPIC")"
		echo "export COUPON_DEVBROKER_CONTROL=$(quote "$BROKER_SOCK")"
		echo "export COUPON_LOCAL_DIR=$(quote "$DIR")"
		echo "export COUPON_LOCAL_MYSQL_SOCKET=$(quote "$MYSQL_SOCK")"
		echo "export COUPON_PAYMENT_URL=$(quote "http://127.0.0.1:$DEVPAY_PORT")"
		echo "export COUPON_PAYMENT_SECRET=$(quote "$DEVPAY_SECRET")"
		echo "export COUPON_DEVPAY_CONTROL=$(quote "http://127.0.0.1:$DEVPAY_CONTROL_PORT")"
		echo "export COUPON_DEVPAY_LEDGER=$(quote "$DEVPAY_LEDGER")"
	} >"$ENV_FILE.tmp"
	mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---- commands --------------------------------------------------------------

cmd_start() {
	local start
	start=$(now)
	load_ports
	start_redis
	start_mysql
	start_devbroker
	start_devpay
	write_env
	say "all services up in $(elapsed "$start")s; data in $DIR"
	cat "$ENV_FILE"
}

# cmd_stop: SIGTERM to every service at once, then wait for all of them;
# SIGKILL whatever is left after STOP_TIMEOUT seconds.
cmd_stop() {
	local -a pidfiles=("$DEVPAY_PIDFILE" "$BROKER_PIDFILE" "$REDIS_PIDFILE" "$MYSQL_PIDFILE")
	local -a matches=(coupon-devpay coupon-devbroker redis-server "$MYSQLD_NAMES")
	local -a pids=() names=() left
	local pid i deadline killed=0
	for i in "${!pidfiles[@]}"; do
		if pid=$(pid_of "${pidfiles[$i]}") && pid_running "$pid" "${matches[$i]}"; then
			pids+=("$pid")
			names+=("${matches[$i]%%|*}")
			kill -TERM "$pid" 2>/dev/null || true
		fi
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	while :; do
		left=()
		for i in "${!pids[@]}"; do
			pid_running "${pids[$i]}" "${names[$i]}" && left+=("$i")
		done
		((${#left[@]} == 0)) && break
		if ((SECONDS >= deadline)); then
			((killed == 0)) || die "could not stop pids: $(for i in "${left[@]}"; do printf '%s ' "${pids[$i]}"; done)"
			for i in "${left[@]}"; do
				say "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
				kill -KILL "${pids[$i]}" 2>/dev/null || true
			done
			killed=1
			deadline=$((SECONDS + 10))
			continue
		fi
		sleep 0.05
	done
	for i in "${!pids[@]}"; do
		say "${names[$i]}: stopped (pid ${pids[$i]})"
	done
	rm -f "$DEVPAY_PIDFILE" "$BROKER_PIDFILE" "$REDIS_PIDFILE" "$MYSQL_PIDFILE" "$ENV_FILE" \
		"$BOOTSTRAP_FILE" "$BROKER_SOCK" "$DEVPAY_READY_FILE"
	((${#pids[@]})) || say "nothing was running in $DIR"
}

status_line() {
	local name=$1 pidfile=$2 match=$3 where=$4 pid
	if pid=$(pid_of "$pidfile") && pid_running "$pid" "$match"; then
		printf '%-10s running  pid %-8s %s\n' "$name" "$pid" "$where"
		return 0
	fi
	printf '%-10s stopped\n' "$name"
	return 1
}

cmd_status() {
	local ok=0 bootstrap
	load_ports
	bootstrap=$(cat "$BOOTSTRAP_FILE" 2>/dev/null || echo '?')
	status_line redis "$REDIS_PIDFILE" redis-server "port ${REDIS_PORT:-?}" || ok=3
	status_line mariadb "$MYSQL_PIDFILE" "$MYSQLD_NAMES" "port ${MYSQL_PORT:-?} socket $MYSQL_SOCK" || ok=3
	status_line devbroker "$BROKER_PIDFILE" coupon-devbroker "bootstrap $bootstrap control $BROKER_SOCK" || ok=3
	status_line devpay "$DEVPAY_PIDFILE" coupon-devpay \
		"api http://127.0.0.1:${DEVPAY_PORT:-?} control http://127.0.0.1:${DEVPAY_CONTROL_PORT:-?} ledger $DEVPAY_LEDGER" || ok=3
	return $ok
}

cmd_env() {
	[[ -f $ENV_FILE ]] || die "no $ENV_FILE: run '$PROG start${DIR:+ --dir $DIR}' first"
	cat "$ENV_FILE"
}

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
esac
