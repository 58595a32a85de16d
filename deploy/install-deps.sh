#!/usr/bin/env bash
# Installs the Debian packages the project builds, runs and tests with.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  gcc meson ninja-build pkg-config
  libcivetweb-dev libhiredis-dev librdkafka-dev default-libmysqlclient-dev libcjson-dev
  libcurl4-openssl-dev libssl-dev
  # the dashboard's charts, built into coupon-api
  libjs-chart.js
  # tests
  libcmocka-dev python3 kcat curl valgrind
  # the dashboard's browser test (Debian's python3, which has selenium)
  chromium chromium-driver python3-selenium
  # the Prometheus configuration and its alert rules (promtool), tested live
  prometheus
  # packaging: the .deb build, and the units' verification
  devscripts debhelper dpkg-dev fakeroot systemd
  # fuzzing (tests/fuzz): clang and its libFuzzer runtime
  clang libclang-rt-14-dev
  # local services, and the nginx front (deploy/nginx)
  redis-server redis-tools mariadb-server mariadb-client nginx-light iproute2
  # load testing (JMeter: Debian's 2.13, run through tests/load/jmeter.sh)
  wrk jmeter jmeter-http default-jdk-headless
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian's mariadb-server/redis-server try to start system services; in a
# container there is no init to do it and that is fine: we never use them.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
