#!/usr/bin/env bash
# What users of their own data and of PyTorch-trained weights ran into, end to end with the
# mtlite command on small synthetic files:
#   tests/cli/real_data_cli.sh build/tools/mtlite
# Checks: labels of one class in the validation rows (a "positive" spelled otherwise than in the
# file) stop training at once, naming the output, and only warn for other outputs and in eval; a
# stray first line is skipped with --skip-bad-rows; model.json may hold "tensors" and "data"
# together; convert refuses an unfitted binding and eval explains a missing one; shape errors
# name the weights file's tensor beside mtlite's parameter; mtlite split (random and by group and
# order) writes every row once, where the protocol says.
set -euo pipefail
mtlite=$(realpath "$1")
config=$(realpath "$(dirname "$0")/../../examples/funnel/model.json")
source "$(dirname "$0")/checks.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

"$mtlite" synth funnel --rows 6000 --seed 3 --users 100 --items 50 --out all.csv > /dev/null
head -4001 all.csv > train.csv
{ head -1 all.csv; tail -2000 all.csv; } > valid.csv
# purchase (column 17) and cart (16) written "1." where model.json's "positive" says "1".
awk -F, 'BEGIN { OFS = "," } NR > 1 && $17 == "1" { $17 = "1." } { print }' valid.csv > purchase1.csv
awk -F, 'BEGIN { OFS = "," } NR > 1 && $16 == "1" { $16 = "1." } { print }' valid.csv > cart1.csv
train() { "$mtlite" train --config "$config" --train train.csv --epochs 1 --batch-size 128 "$@"; }

# --- one class in the validation labels
fails_with "one-class labels of the selecting output stop training before it starts" \
  "--valid 'purchase1.csv': output 'purchase', whose AUC selects the best epoch, cannot be measured: all 2000 labelled rows have label 0" \
  train --valid purchase1.csv --out p.mtl
check "... and write nothing" test ! -e p.mtl
check "one-class labels of another output: trained and written, with a warning naming it" bash -c \
  "$(declare -f train); mtlite='$mtlite' config='$config'; train --valid cart1.csv --out c.mtl > train.log 2>&1;
   grep -qF \"warning: --valid 'cart1.csv': output 'cart': all 2000 labelled rows have label 0\" train.log && test -s c.mtl"
check "eval says the AUC is undefined and why" bash -c \
  "'$mtlite' eval c.mtl --data cart1.csv > eval.log 2>&1 && grep -qF 'auc undefined: all 2000 labelled rows have label 0' eval.log &&
   grep -qF \"warning: --data 'cart1.csv': output 'cart'\" eval.log"
check "eval --json counts the positives" bash -c \
  "'$mtlite' eval c.mtl --data cart1.csv --json 2>/dev/null | grep -qF '\"cart\":{\"labelled\":2000,\"positives\":0'"

# --- a stray first line in a file without a header
sed 's/"header": true/"header": false/; s/"column": "\([a-z_]*\)"/"column": "@\1"/g' "$config" > noheader.json
python3 - noheader.json all.csv <<'EOF'
import json, sys
cfg = json.load(open(sys.argv[1]))
cols = open(sys.argv[2]).readline().strip().split(",")
for x in cfg["features"] + cfg["tasks"]:
    x["column"] = cols.index(x["column"][1:])
cfg["data"].pop("group")
json.dump(cfg, open(sys.argv[1], "w"))
EOF
{ echo "# exported 2026-11-30"; tail -n +2 train.csv; } > comment.csv
fails_with "a comment line first stops the read without --skip-bad-rows" "comment.csv:1: " \
  "$mtlite" train --config noheader.json --train comment.csv --out n.mtl --epochs 1
check "--skip-bad-rows skips it and counts it" bash -c \
  "'$mtlite' train --config noheader.json --train comment.csv --out n.mtl --epochs 1 --skip-bad-rows | grep -q '4000 rows (1 malformed rows skipped)'"

# --- PyTorch weights: "tensors" and "data" together, fitted bindings, names in shape errors
cat > one.json <<'EOF'
{"architecture": "single_task", "data": {"header": true},
 "features": [{"name": "x", "kind": "dense", "fill": 0.5}], "tasks": [{"name": "y", "kind": "binary"}],
 "tensors": {"tower0.0.weight": "head.w", "tower0.0.bias": "head.b"}}
EOF
python3 - <<'EOF'
import json, struct
header = json.dumps({"head.w": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]},
                     "head.b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
header += b" " * (-len(header) % 8)
open("one.safetensors", "wb").write(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 0.0))
EOF
printf 'x,y\n1,1\n-1,0\n,1\n0.25,0\n0.75,0\n' > rows.csv  # the missing x gets fill 0.5: AUC 5/6
check "\"tensors\" and \"data\" in one model.json: converted, evaluated from raw rows" bash -c \
  "'$mtlite' convert one.safetensors --config one.json --out one.mtl --calib rows.csv > /dev/null &&
   '$mtlite' eval one.mtl --data rows.csv | grep -q 'auc 0.8333'"
sed 's/, "fill": 0.5//' one.json > unfitted.json
fails_with "convert refuses a binding that is not fitted" \
  "unfitted.json: \"data\" binds the columns but is not fitted: feature 'x' has no fill value" \
  "$mtlite" convert one.safetensors --config unfitted.json --out u.mtl
sed 's/"data": {"header": true},//; s/, "fill": 0.5//' one.json > nodata.json
"$mtlite" convert one.safetensors --config nodata.json --out nodata.mtl > /dev/null
fails_with "eval of a model without a binding says how to give it one" \
  "has no data binding, so raw rows cannot be read for it" "$mtlite" eval nodata.mtl --data rows.csv
sed 's/"kind": "dense", "fill": 0.5}/"kind": "dense", "fill": 0.5}, {"name": "z", "kind": "dense", "fill": 0}/' one.json > two.json
fails_with "a shape error names the file's tensor beside mtlite's parameter" \
  "tensor 'tower0.0.weight' (the weights file's 'head.w'): shape [1, 1], the spec needs [1, 2]" \
  "$mtlite" convert one.safetensors --config two.json --out t.mtl

# --- mtlite split: seeded random, and each group's last rows by order
split() { "$mtlite" split all.csv --header "$@"; }
check "split --valid-fraction 0.1 --test-fraction 0.2: every row once, the header in each file, fractions near" bash -c \
  "$(declare -f split); mtlite='$mtlite'; split --out r --valid-fraction 0.1 --test-fraction 0.2 --seed 4 > /dev/null &&
   for f in r.train.csv r.valid.csv r.test.csv; do head -1 \$f | cmp -s - <(head -1 all.csv) || exit 1; done &&
   cat <(tail -n +2 r.train.csv) <(tail -n +2 r.valid.csv) <(tail -n +2 r.test.csv) | sort | cmp -s - <(tail -n +2 all.csv | sort) &&
   v=\$(( \$(wc -l < r.valid.csv) - 1 )) t=\$(( \$(wc -l < r.test.csv) - 1 )) &&
   [ \$v -gt 500 ] && [ \$v -lt 700 ] && [ \$t -gt 1070 ] && [ \$t -lt 1330 ]"
check "split: the same seed gives the same split, another seed another" bash -c \
  "$(declare -f split); mtlite='$mtlite'; split --out a --valid-fraction 0.1 --seed 4 > /dev/null && split --out b --valid-fraction 0.1 --seed 4 > /dev/null &&
   split --out c --valid-fraction 0.1 --seed 5 > /dev/null && cmp -s a.valid.csv b.valid.csv && ! cmp -s a.valid.csv c.valid.csv"
check "split --group user_id --order request_id: each user's last row is test, the 2 before validation" bash -c \
  "$(declare -f split); mtlite='$mtlite'; split --out g --group user_id --order request_id --valid-last 2 --test-last 1 > /dev/null &&
   awk -F, 'FNR == 1 { part++; next } { n[\$2]++; if (part == 1) tr[\$2] = (\$1 > tr[\$2] ? \$1 : tr[\$2]);
            else if (part == 2) { v[\$2]++; if (!(\$2 in vmin) || \$1 < vmin[\$2]) vmin[\$2] = \$1; if (\$1 > vmax[\$2]) vmax[\$2] = \$1 }
            else { t[\$2]++; tmin[\$2] = \$1 } }
     END { for (u in n) { if (n[u] > 3 && (v[u] != 2 || t[u] != 1 || tr[u] > vmin[u] || vmax[u] > tmin[u])) exit 1;
                          if (n[u] <= 3 && (v[u] + t[u]) > 0) exit 1; users++ } exit !(users > 50) }' g.train.csv g.valid.csv g.test.csv"
printf 'id,text,y\n1,\"a, \"\"b\"\"\",1\n2,plain,0\n' > quoted.csv
check "split writes a quoted field back quoted" bash -c \
  "'$mtlite' split quoted.csv --out q --header --valid-fraction 0 > /dev/null && cmp -s quoted.csv q.train.csv"
fails_with "split: a column that is not there" "--group: no column 'uid' in the header" \
  "$mtlite" split all.csv --header --out x --group uid --order request_id

echo "$fails failed"
[ "$fails" -eq 0 ]
