#!/usr/bin/env bash
# ARM64 under emulation, in one command (CI and by hand):
#   scripts/test-arm64.sh
# 1. installs what it needs when dpkg says it is missing (Debian, root or sudo): the arm64
#    architecture, g++-aarch64-linux-gnu, qemu-user, the arm64 xsimd and zlib;
# 2. cross-builds the library, the mtlite command and the test suite once for any ARMv8-A CPU
#    (cross/aarch64-linux-gnu.ini, -Dsimd=dispatch: the int8 path is chosen at run time from
#    the CPU's hardware capabilities) and runs it under qemu-user:
#      cortex-a72 (no dot product)  the whole suite: the best level there is neon (smlal)
#      max (dot product and i8mm)   the whole suite: the best level there is neon-i8mm (usdot)
#      max, MTLITE_KERNELS=neon-dot and =scalar   the suites that run kernels (sdot; ref/)
#    and checks from the quant suite's report that each run used the path it should;
# 3. builds the library, the command and the suite with clang and libc++ (the compiler and C++
#    library of the Android NDK and Xcode) for this machine (-Dsimd=dispatch) and runs the suite,
#    at every level this CPU runs.
# Ends with "Ok: N" and "Fail: N" (one per suite run, as meson test counts them) and exits non-zero
# on any failure.
#
# Environment: ARM64_BUILD_DIR (build-arm64), ARM64_BUILD_JOBS (2), LIBCXX_BUILD_DIR
# (build-libcxx; LIBCXX_BUILD_DIR=none skips step 3).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ARM64_BUILD_DIR:-$root/build-arm64}
jobs=${ARM64_BUILD_JOBS:-2}
ok=0; fail=0
finish() { echo "Ok: $ok"; echo "Fail: $fail"; [ "$fail" -eq 0 ]; exit $?; }
# Runs a build's suite (meson test, with VAR=value environment), adds its counts to ok and fail,
# and prints them under a label; then checks the quant suite's i8 path report when one is wanted.
run_suite() {  # label dir log want_i8_path "meson test selection" [VAR=value...]
  local label=$1 dir=$2 log=$3 want=$4 selection=$5 n_ok n_fail t0
  shift 5
  t0=$(date +%s)
  # shellcheck disable=SC2086 # the selection is words
  env "$@" meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 6 $selection > "$log" 2>&1
  n_ok=$(awk '/^Ok:/{print $2}' "$log" | tail -n 1)
  n_fail=$(awk '/^(Fail|Unexpected Pass|Timeout):/{s+=$NF} END{print s+0}' "$log")
  [ -n "$n_ok" ] || { n_ok=0; n_fail=$((n_fail + 1)); tail -n 20 "$log"; }
  local path
  path=$(grep -o 'i8 path: [a-z0-9-]*' "$dir/meson-logs/testlog.txt" | head -n 1)
  if [ -n "$want" ] && [ "$path" != "i8 path: $want" ]; then
    echo "   the quant suite reported '${path:-no i8 path}', not 'i8 path: $want'"
    n_fail=$((n_fail + 1))
  fi
  echo "   $label: $n_ok ok, $n_fail failed (${path:-no i8 path}) in $(($(date +%s) - t0)) s"
  [ "$n_fail" -eq 0 ] || grep -E "^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT)" "$log"
  ok=$((ok + n_ok)); fail=$((fail + n_fail))
}

# --- 1. tools -----------------------------------------------------------------------------
sudo=; [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64 && $sudo apt-get update -qq ||
    { echo "test-arm64.sh: cannot add the arm64 architecture"; fail=1; finish; }
fi
"$root/scripts/deps.sh" meson ninja-build pkg-config doctest-dev g++-aarch64-linux-gnu qemu-user libxsimd-dev:arm64 \
  zlib1g-dev:arm64 clang libc++-dev libc++abi-dev libxsimd-dev zlib1g-dev ||
  { echo "test-arm64.sh: cannot install what it needs"; fail=1; finish; }

# --- 2. build and emulated runs -------------------------------------------------------------
echo "== ARM64 (armv8-a, int8 path chosen at run time)"
[ -f "$dir/build.ninja" ] || rm -rf "$dir"
if [ ! -f "$dir/build.ninja" ] &&
   ! meson setup "$dir" "$root" --cross-file "$root/cross/aarch64-linux-gnu.ini" -Dwerror=true \
       -Dbenchmarks=false > "$dir.setup.log" 2>&1; then
  cat "$dir.setup.log"; fail=$((fail + 1)); finish
fi
t0=$(date +%s)
if ! ninja -C "$dir" -j"$jobs" > "$dir.build.log" 2>&1; then
  tail -n 40 "$dir.build.log"; fail=$((fail + 1)); finish
fi
echo "   built in $(($(date +%s) - t0)) s"
kernel_suites="kernels quant architectures session threads alloc hostile"
at_level() { for s in $kernel_suites; do echo -n "$s@$1 "; done; }
run_suite "cortex-a72" "$dir" "$dir/test-cortex-a72.log" neon "--no-suite levels" QEMU_CPU=cortex-a72
run_suite "max" "$dir" "$dir/test-max.log" neon-i8mm "--no-suite levels" QEMU_CPU=max
run_suite "max, neon-dot" "$dir" "$dir/test-max-dot.log" neon-dot "$(at_level neon-dot)" QEMU_CPU=max
run_suite "max, scalar" "$dir" "$dir/test-max-scalar.log" scalar "$(at_level scalar)" QEMU_CPU=max

# --- 3. clang and libc++ ----------------------------------------------------------------------
libcxx=${LIBCXX_BUILD_DIR:-$root/build-libcxx}
if [ "$libcxx" != none ]; then
  echo "== clang + libc++ (this machine)"
  [ -f "$libcxx/build.ninja" ] || rm -rf "$libcxx"
  if [ ! -f "$libcxx/build.ninja" ] &&
     ! CC=clang CXX=clang++ meson setup "$libcxx" "$root" -Dwerror=true -Dbenchmarks=false \
         -Dcpp_args=-stdlib=libc++ -Dcpp_link_args=-stdlib=libc++ > "$libcxx.setup.log" 2>&1; then
    cat "$libcxx.setup.log"; fail=$((fail + 1))
  elif t0=$(date +%s) && ! ninja -C "$libcxx" -j"$jobs" > "$libcxx.build.log" 2>&1; then
    tail -n 40 "$libcxx.build.log"; fail=$((fail + 1))
  else
    echo "   built in $(($(date +%s) - t0)) s"
    run_suite "clang + libc++" "$libcxx" "$libcxx/test.log" "" ""
  fi
fi
finish
