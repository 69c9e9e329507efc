#!/usr/bin/env bash
# A -Dsimd=dispatch program runs on every CPU of its architecture only if no instruction beyond
# the baseline lies outside the kernel levels' own functions. The risk: an inline function
# compiled into a level's unit with that level's flags, whose copy the linker keeps for the whole
# program (config.hpp, MTLITE_TARGET). This disassembles each program and fails for any function
# that uses such instructions without a level's name in its own:
#   x86_64   VEX and EVEX instructions (every AVX, AVX2, FMA, F16C, AVX-512 mnemonic starts
#            with 'v'); allowed in functions naming avx2, avxvnni, avx512 or fma3 (xsimd's)
#   aarch64  the dot-product and i8mm instructions; allowed in neon_dot and neon_i8mm functions
# usage: dispatch_isolation.sh OBJDUMP x86_64|aarch64 PROGRAM...
set -uo pipefail
objdump=$1 family=$2; shift 2
case $family in
  x86_64) insn='^v' allowed='avx2|avxvnni|avx512|fma3' ;;
  aarch64) insn='^(sdot|udot|usdot|sudot|smmla|ummla|usmmla)$' allowed='neon_dot|neon_i8mm' ;;
  *) echo "unknown family $family"; exit 2 ;;
esac
status=0
for prog in "$@"; do
  listing=$(mktemp)
  "$objdump" -d -C --no-show-raw-insn "$prog" >"$listing" || { echo "FAIL $prog: $objdump failed"; status=1; continue; }
  found=$(awk -v insn="$insn" '
    /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
    $2 ~ insn && !(fn in seen) { seen[fn] = 1; print fn }' "$listing")
  rm -f "$listing"
  levels=$(grep -cE "$allowed" <<<"$found")
  stray=$(grep -vE "$allowed" <<<"$found" | grep -v '^$')
  if [ -n "$stray" ]; then
    echo "FAIL $prog: functions outside the kernel levels use instructions beyond the baseline:"
    head -n 20 <<<"$stray"
    status=1
  elif [ "$levels" -eq 0 ]; then
    echo "FAIL $prog: no level's kernels found (is this a dispatch build?)"
    status=1
  else
    echo "ok $prog: $levels functions use level instructions, all inside the levels"
  fi
done
exit $status
