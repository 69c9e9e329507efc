#!/usr/bin/env bash
# The models the C API tests open, made with the mtlite command (a meson custom target):
#   tests/c_api/make_model.sh MTLITE OUT_DIR
# From a small synthetic funnel with two more columns, a hashed string (sku) and a multi-hot
# field (tags, some rows empty or NA), trains tests/c_api/model.json for one epoch and writes
#   checkpoint.mtl  the f32 checkpoint (a data binding, no self-test)
#   model.mtl       int8, the auxiliary head dropped, with a self-test
#   rows.csv        rows to score, and scores.csv, what `mtlite predict` gives for them
set -euo pipefail
mtlite=$(realpath "$1")
config=$(realpath "$(dirname "$0")/model.json")
out=$(realpath "$2")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$mtlite" synth funnel --rows 4000 --seed 11 --users 100 --items 200 --out funnel.csv > /dev/null
# sku: the item as text; tags: one to two of its category's and hour's tags, none at position 9,
# NA (missing) at position 8.
awk -F, 'BEGIN { OFS = "," }
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; print $0, "sku", "tags"; next }
  { p = $col["position"]; t = "c" ($col["item_category"] % 6) ((p % 2) ? "|h" ($col["hour"] % 4) : "")
    if (p == 9) t = ""; else if (p == 8) t = "NA"
    print $0, "sku-" $col["item_id"], t }' funnel.csv > all.csv
head -3201 all.csv > train.csv
{ head -1 all.csv; tail -n 800 all.csv; } > valid.csv
{ head -1 all.csv; tail -n 40 all.csv; } > "$out/rows.csv"
"$mtlite" train --config "$config" --train train.csv --valid valid.csv --out "$out/checkpoint.mtl" --seed 3 > train.log ||
  { cat train.log; exit 1; }
"$mtlite" convert "$out/checkpoint.mtl" --out "$out/model.mtl" --dtype int8 --drop-aux --calib valid.csv > convert.log ||
  { cat convert.log; exit 1; }
"$mtlite" predict "$out/model.mtl" --data "$out/rows.csv" --out "$out/scores.csv" > /dev/null
