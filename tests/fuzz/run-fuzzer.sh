#!/bin/sh
# run-fuzzer.sh FUZZER SECONDS DICT ARTIFACT_DIR SEED_DIR...
#
# The meson test of one libFuzzer target (suite 'fuzz'): copies the seed
# folders into a scratch corpus (the repository's files are never
# written), fuzzes for SECONDS and fails on any crash, leak, sanitizer
# report, invariant violation (abort), slow input (over 5 s) or memory
# blow-up. The failing input is kept in ARTIFACT_DIR.
set -eu
fuzzer=$1 seconds=$2 dict=$3 artifacts=$4
shift 4

work=$(mktemp -d "${TMPDIR:-/tmp}/cpn-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/corpus" "$artifacts"
for dir in "$@"; do
  for f in "$dir"/*; do
    [ -f "$f" ] && cp -- "$f" "$work/corpus/"
  done
done
seeds=$(ls "$work/corpus" | wc -l)
if [ "$seeds" -eq 0 ]; then
  echo "run-fuzzer: no seed inputs in $*" >&2
  exit 1
fi
echo "run-fuzzer: $(basename "$fuzzer"): $seeds seeds, $seconds s"

# libFuzzer's default exit code for a finding is 77, which meson reads as
# "skipped": every finding must be a failure.
rc=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
  "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -dict="$dict" -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work/corpus" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "run-fuzzer: $(basename "$fuzzer") failed (exit $rc); the input is in $artifacts/" >&2
  echo "run-fuzzer: see tests/fuzz/meson.build for turning it into a regression file" >&2
  exit 1
fi
echo "run-fuzzer: corpus grew from $seeds to $(ls "$work/corpus" | wc -l) inputs"
