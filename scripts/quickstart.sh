#!/usr/bin/env bash
# The quick start's main job, from a fresh machine to a model ranking items:
#   1. install the Debian packages and build mtlite (release; kernels chosen at run time for
#      this CPU, -Dsimd=dispatch) into build/;
#   2. generate a shopping funnel (impressions with click, add-to-cart and purchase labels) and
#      split it into train, validation and test rows;
#   3. train an MMoE with purchase as the main task and click and cart as auxiliary tasks,
#      balanced with MetaBalance (examples/funnel/model.json);
#   4. convert it to int8 without the auxiliary heads, checking the cost on the validation rows;
#   5. evaluate the int8 model on the test rows;
#   6. rank candidate items for a user with it (examples/quickstart.cpp).
# Everything it writes goes to build/quickstart/. ROWS (default 1000000) sets the data size.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build mtlite quickstart

start=$(date +%s)
mtlite=build/tools/mtlite
out=build/quickstart
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "synthetic funnel data: ${ROWS:-1000000} impressions"
"$mtlite" synth funnel --rows "${ROWS:-1000000}" --seed 1 --out "$out/funnel.csv"
# 70% train, 15% validation, 15% test, by a fixed pseudo-random function of the line number.
awk -v dir="$out" 'NR == 1 { print > (dir "/train.csv"); print > (dir "/valid.csv"); print > (dir "/test.csv"); next }
  { h = int(((NR * 2654435761) % 4294967296) / 65536) % 100
    print > (dir "/" (h < 70 ? "train" : h < 85 ? "valid" : "test") ".csv") }' "$out/funnel.csv"
rm "$out/funnel.csv"

step "train: MMoE, purchase (main) + click, cart (auxiliary), MetaBalance, 2 threads"
"$mtlite" train --config examples/funnel/model.json --train "$out/train.csv" --valid "$out/valid.csv" \
  --out "$out/funnel.mtl" --balance metabalance --threads 2 --plot "$out/training.svg"

step "convert: int8 weights, auxiliary heads dropped"
"$mtlite" convert "$out/funnel.mtl" --out "$out/funnel-int8.mtl" --dtype int8 --drop-aux --calib "$out/valid.csv"

step "evaluate the int8 model on the test rows"
"$mtlite" eval "$out/funnel-int8.mtl" --data "$out/test.csv"

step "rank candidates with it"
build/examples/quickstart "$out/funnel-int8.mtl"

printf '\nquick start: data, training, conversion, evaluation and ranking took %d s\n' $(( $(date +%s) - start ))
