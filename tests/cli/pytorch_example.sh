#!/usr/bin/env bash
# examples/pytorch/run.sh at a small size (ROWS=20000, EPOCHS=2), checked:
#   tests/cli/pytorch_example.sh build/tools/mtlite /usr/bin/python3
# PyTorch in 1 and in 2 processes (DDP) take the same steps, so their test AUCs agree within
# 0.002; every model learned something (on census-income every test AUC >= 0.8; on the synthetic
# funnel run.sh falls back to without it, whose 14,000 training rows hold too few purchases to
# learn from in 2 epochs, the click AUC >= 0.56); int8 costs at most 0.002 AUC.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
MTLITE=$(realpath "$1") PYTHON="$2" ROWS=20000 EPOCHS=2 "$root/examples/pytorch/run.sh" "${MTLITE_CENSUS_DIR:-$root/../shared/data/census-income}" "$dir" > "$dir/run.log" 2>&1 ||
  { sed 's/^/     /' "$dir/run.log"; echo "FAIL examples/pytorch/run.sh"; echo "1 failed"; exit 1; }
grep -E '^(census|rows)' "$dir/run.log"
cat "$dir/summary.txt"
# columns 3-6: task A f32, int8, task B f32, int8; the smallest AUC that says "learned"
if grep -q 'running on synthetic data' "$dir/run.log"; then floor="0 0 0.56 0.56"; else floor="0.8 0.8 0.8 0.8"; fi
awk -F'|' -v floor="$floor" '
  function abs(x) { return x < 0 ? -x : x }
  function check(what, ok) { printf "%s %s\n", ok ? "ok  " : "FAIL", what; if (!ok) fails++ }
  NR > 2 { run[NR - 2] = $2; for (c = 3; c <= 6; c++) auc[NR - 2, c] = $c + 0 }
  END {
    for (c = 3; c <= 6; c++) check("PyTorch 1 process vs 2, column " c - 2 ": " auc[1, c] " vs " auc[2, c], abs(auc[1, c] - auc[2, c]) <= 0.002)
    split(floor, lo, " ")
    for (r = 1; r <= 3; r++) for (c = 3; c <= 6; c++) if (lo[c - 2] > 0) check(run[r] "column " c - 2 " AUC " auc[r, c] " >= " lo[c - 2], auc[r, c] >= lo[c - 2] + 0)
    for (r = 1; r <= 3; r++) for (c = 3; c <= 5; c += 2) check(run[r] "int8 within 0.002 of f32 (column " c - 2 ")", abs(auc[r, c] - auc[r, c + 1]) <= 0.002)
    printf "%d failed\n", fails; exit fails > 0
  }' "$dir/summary.txt"
