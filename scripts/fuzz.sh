#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz, in one command (CI and by hand):
#   scripts/fuzz.sh                       every target
#   scripts/fuzz.sh fuzz_csv fuzz_convert only these
# 1. installs clang and its fuzzer runtime when missing (apt-get, only if dpkg says they are not
#    installed), configures and builds build-fuzz/ (clang, ASan + UBSan, debug);
# 2. regression: runs every target once over its committed corpus (tests/fuzz/corpus/<target>);
# 3. fuzzing: runs every target for FUZZ_SECONDS on a scratch copy of its corpus (the committed
#    corpus is never written), under the same memory limits, and prints executions and coverage.
# Ends with "Ok: N" and "Fail: N" (one check per target and phase) and exits non-zero on any crash,
# leak, timeout, out-of-memory or sanitizer report. Crashing inputs are kept in FUZZ_ARTIFACTS.
#
# Environment: FUZZ_SECONDS (60), FUZZ_RSS_MB (512: -rss_limit_mb and -malloc_limit_mb, so an
# unbounded allocation from a small input is a failure), FUZZ_TIMEOUT (25 s per input),
# FUZZ_BUILD_DIR (build-fuzz), FUZZ_ARTIFACTS (<build>/fuzz-artifacts), FUZZ_BUILD_JOBS (1).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
mem=${FUZZ_RSS_MB:-512}
timeout=${FUZZ_TIMEOUT:-25}
jobs=${FUZZ_BUILD_JOBS:-1}
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
corpora=$root/tests/fuzz/corpus

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for d in "$corpora"/*/; do targets+=("$(basename "$d")"); done
fi

# --- 1. tools and build -------------------------------------------------------------------
"$root/scripts/deps.sh" clang libclang-rt-14-dev || {
  echo "fuzz.sh: cannot install clang and its fuzzer runtime"; echo "Ok: 0"; echo "Fail: 1"; exit 1; }

if [ ! -f "$build/build.ninja" ]; then
  CXX=clang++ meson setup "$build" "$root" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug -Dtests=false -Dbenchmarks=false > "$build.setup.log" 2>&1 ||
    { cat "$build.setup.log"; echo "Ok: 0"; echo "Fail: 1"; exit 1; }
  rm -f "$build.setup.log"
fi
ninja_targets=()
for t in "${targets[@]}"; do ninja_targets+=("tests/fuzz/$t"); done
if ! ninja -C "$build" -j"$jobs" "${ninja_targets[@]}"; then
  echo "fuzz.sh: the build failed"; echo "Ok: 0"; echo "Fail: 1"; exit 1
fi

mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ok=0 fail=0
limits=(-rss_limit_mb="$mem" -malloc_limit_mb="$mem" -timeout="$timeout")
# UBSan: a report is a failure, not a message (ASan aborts on its own).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

result() {  # name, phase, log, status, summary
  if [ "$4" -eq 0 ]; then
    ok=$((ok + 1)); printf 'ok   %-18s %-10s %s\n' "$1" "$2" "$5"
  else
    fail=$((fail + 1)); printf 'FAIL %-18s %-10s %s (exit %d; log below)\n' "$1" "$2" "$5" "$4"
    grep -E 'ERROR: |SUMMARY: |runtime error|==[0-9]+==|#[0-9]+ 0x|Test unit written|artifact_prefix|out-of-memory|Timeout|deadly signal' "$3" | head -40 | sed 's/^/     /'
  fi
}

# --- 2. regression over the committed corpora -------------------------------------------------
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/$t
  log=$scratch/$t.regress.log
  n=$(find "$corpora/$t" -type f | wc -l)
  # In a subshell, so that bash's "Aborted" line for a crashing target goes to the log too.
  ("$exe" -runs=0 "${limits[@]}" -artifact_prefix="$artifacts/$t-" "$corpora/$t") > "$log" 2>&1
  result "$t" regression "$log" $? "$n inputs"
done

# --- 3. bounded fuzzing on scratch copies -----------------------------------------------------
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/$t
  log=$scratch/$t.fuzz.log
  cp -r "$corpora/$t" "$scratch/$t"
  start=$(date +%s)
  ("$exe" -max_total_time="$seconds" -print_final_stats=1 "${limits[@]}" \
    -artifact_prefix="$artifacts/$t-" "$scratch/$t") > "$log" 2>&1
  status=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<< "$last")
  result "$t" "${seconds}s" "$log" "$status" "execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} time=${took}s"
done

echo "Ok: $ok"
echo "Fail: $fail"
[ "$fail" -eq 0 ]
