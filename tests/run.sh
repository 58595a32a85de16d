#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, builds
# (plain, and with AddressSanitizer + UBSan), runs the unit and integration
# suites of both builds against real Redis, MariaDB and the Kafka dev
# broker started on free loopback ports in temporary folders, runs the unit
# suite once more under valgrind (memcheck: errors and leaks fail), runs
# the fault matrix (suite chaos, plain build only: each case under load
# with two seeds, its table printed at the end), fuzzes each libFuzzer
# target of tests/fuzz for 60 s in a clang build (build-fuzz), and prints
# `N passed, N failed` last.
#
#   tests/run.sh              everything
#   tests/run.sh --quick      plain build only (no valgrind, ASan or fuzz)
#   SUITES="unit" tests/run.sh  only the named meson suites (unit, integration,
#                               chaos, packaging, fuzz)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
[ "${1:-}" = "--quick" ] && quick=1
suites=${SUITES:-"unit integration chaos packaging fuzz"}
# The fuzz suite exists only in build-fuzz; the other builds run the rest,
# except that the chaos suite (about 12 minutes) and the packaging suite
# (builds, installs and purges the .debs) run in the plain build only.
build_suites=$(for s in $suites; do [ "$s" = fuzz ] || printf '%s ' "$s"; done)
asan_suites=$(for s in $build_suites; do [ "$s" = chaos ] || [ "$s" = packaging ] || printf '%s ' "$s"; done)

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

run_build() { # run_build <dir> <suites> <meson setup args...>
  local dir="$1" dir_suites="$2"; shift 2
  [ -n "${dir_suites// }" ] || return 0
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null || { failed=$((failed + 1)); return; }
  fi
  ninja -C "$dir" || { failed=$((failed + 1)); return; }
  rm -f "$dir/meson-logs/testlog.json"
  local args=()
  for s in $dir_suites; do args+=(--suite "$s"); done
  meson test -C "$dir" --print-errorlogs "${args[@]}"
  count "$dir"
}

rm -f build/meson-logs/chaos.tsv
run_build build "$build_suites"
if [ "$quick" -eq 0 ] && [[ " $build_suites " == *" unit "* ]]; then
  rm -f build/meson-logs/testlog-valgrind.json
  meson test -C build --setup valgrind --suite unit --print-errorlogs
  count build testlog-valgrind
fi
if [ "$quick" -eq 0 ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_build build-asan "$asan_suites" -Db_sanitize=address,undefined -Db_lundef=false
fi
# libFuzzer needs clang; the core library is instrumented too (meson adds
# -fsanitize=fuzzer-no-link with -Dfuzz=true). Each target fuzzes for 60 s
# on a copy of its seed corpus; any finding fails its test.
if [ "$quick" -eq 0 ] && [[ " $suites " == *" fuzz "* ]]; then
  CC=clang run_build build-fuzz fuzz -Db_sanitize=address,undefined -Db_lundef=false \
    -Dfuzz=true -Dintegration=false
fi

if [ -s build/meson-logs/chaos.tsv ]; then
  echo
  echo "Fault matrix (tests/chaos/chaos.py; counts over both campaigns of each run):"
  { printf 'case\tseed\trequests\t202\t409\t410\t503\tindeterminate\tlost\trepaired\treseq\tduplicated\toversold\tunexpected\tbroken\tdiverged\tno_effect\tredelivered\tquiesce_s\tseconds\tverdict\n'
    cat build/meson-logs/chaos.tsv; } | if command -v column >/dev/null; then column -t -s $'\t'; else cat; fi
fi

echo
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
