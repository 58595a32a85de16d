#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, builds
# (plain, and with AddressSanitizer + UBSan), runs the unit and integration
# suites of both builds against real Redis, MariaDB and the Kafka dev
# broker started on free loopback ports in temporary folders, runs the unit
# suite once more under valgrind (memcheck: errors and leaks fail), and
# prints `N passed, N failed` last.
#
#   tests/run.sh              everything
#   tests/run.sh --quick      plain build only
#   SUITES="unit" tests/run.sh  only the named meson suites
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
[ "${1:-}" = "--quick" ] && quick=1
suites=${SUITES:-"unit integration"}

bash deploy/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0
count() { # count <build dir> [log name]
  local log="$1/meson-logs/${2:-testlog}.json"
  [ -f "$log" ] || { failed=$((failed + 1)); return; }
  local p f s
  p=$(grep -c '"result": "OK"' "$log" || true)
  s=$(grep -c '"result": "SKIP"' "$log" || true)
  f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

run_build() { # run_build <dir> <meson setup args...>
  local dir="$1"; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null || { failed=$((failed + 1)); return; }
  fi
  ninja -C "$dir" || { failed=$((failed + 1)); return; }
  rm -f "$dir/meson-logs/testlog.json"
  local args=()
  for s in $suites; do args+=(--suite "$s"); done
  meson test -C "$dir" --print-errorlogs "${args[@]}"
  count "$dir"
}

run_build build
if [ "$quick" -eq 0 ] && [[ " $suites " == *" unit "* ]]; then
  rm -f build/meson-logs/testlog-valgrind.json
  meson test -C build --setup valgrind --suite unit --print-errorlogs
  count build testlog-valgrind
fi
if [ "$quick" -eq 0 ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_build build-asan -Db_sanitize=address,undefined -Db_lundef=false
fi

echo
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
