#!/usr/bin/env bash
# mtlite train, eval, predict and convert end to end, on a small synthetic funnel:
#   tests/cli/train_cli.sh build/tools/mtlite
# Checks: a resumed run equals an uninterrupted one (same predictions, bit for bit); the same
# seed and threads give the same model, another seed another; checkpoints and converted models
# both evaluate and predict; --resume refuses changed options; malformed rows stop the read with
# file:line (or are skipped and counted); a failed run leaves the previous output untouched;
# the loss falls and the main task learns something.
set -euo pipefail
mtlite=$(realpath "$1")
config=$(realpath "$(dirname "$0")/../../examples/funnel/model.json")
source "$(dirname "$0")/checks.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

"$mtlite" synth funnel --rows 12000 --seed 5 --users 500 --items 200 --out all.csv > /dev/null
head -1 all.csv > train.csv; head -1 all.csv > valid.csv
awk 'NR > 1 { print >> (NR % 5 == 0 ? "valid.csv" : "train.csv") }' all.csv
train() { "$mtlite" train --config "$config" --train train.csv --valid valid.csv --batch-size 128 --patience 0 "$@"; }

check "train 3 epochs, 2 threads" train --out full.mtl --epochs 3 --threads 2 --seed 7 --json --plot curves.svg
cp out.log full.json
check "the plot has the loss and every output's AUC" bash -c "grep -q '<svg' curves.svg && grep -q '</svg>' curves.svg && for s in 'training loss' 'validation AUC' '>purchase<' '>click<' '>cart<'; do grep -q \"\$s\" curves.svg || exit 1; done"
check "train 1 epoch, then resume to 3" bash -c "$(declare -f train); mtlite='$mtlite' config='$config'; train --out part.mtl --epochs 1 --threads 2 --seed 7 && \"$mtlite\" train --resume part.mtl --train train.csv --valid valid.csv --epochs 3 --threads 2"
check "predict with both" bash -c "'$mtlite' predict full.mtl --data valid.csv --out full.csv && '$mtlite' predict part.mtl --data valid.csv --out part.csv"
check "resumed run == uninterrupted run (predictions identical)" cmp full.csv part.csv
fails_with "MTLITE_KERNELS=bogus: an error naming the variable, not ignored" "MTLITE_KERNELS: " \
  env MTLITE_KERNELS=bogus "$mtlite" inspect full.mtl
# The scalar level, forced, in a dispatch build (a build whose flags chose its kernels says so).
if MTLITE_KERNELS=scalar "$mtlite" bench --reference --batch 1 > level.log 2>&1 || ! grep -q 'chosen when it was compiled' level.log; then
  check "MTLITE_KERNELS=scalar: bench --reference runs the scalar kernels and says so" grep -q 'kernels scalar (i8 scalar' level.log
else
  echo "SKIP MTLITE_KERNELS=scalar: $(cat level.log)"
fi
check "train again with the same seed" train --out again.mtl --epochs 3 --threads 2 --seed 7
"$mtlite" predict again.mtl --data valid.csv --out again.csv > /dev/null
check "same seed and threads -> same model" cmp full.csv again.csv
check "train --task click: a one-task model of the same network" bash -c \
  "$(declare -f train); mtlite='$mtlite' config='$config'; train --out one.mtl --epochs 1 --task click --json > one.json &&
   '$mtlite' predict one.mtl --data valid.csv --out one.csv && head -1 one.csv | grep -qx 'group,click' && grep -q '\"architecture\":\"mmoe\"' one.json"
check "train with another seed" train --out other.mtl --epochs 1 --threads 2 --seed 8
"$mtlite" predict other.mtl --data valid.csv --out other.csv > /dev/null
check "another seed -> another model" bash -c "! cmp -s full.csv other.csv"
check "--json: the parameter count the text prints, and every epoch's validation metrics" bash -c \
  "grep -qE '\"parameters\":[1-9][0-9]*,' full.json && [ \$(grep -o '\"valid\":{\"purchase\":{\"labelled\"' full.json | wc -l) -eq 3 ]"
check "the loss falls over the epochs" awk 'BEGIN { RS = "\"train_loss\":" } NR > 1 { split($0, a, ","); l[NR - 1] = a[1] } END { exit !(l[3] < l[1]) }' full.json
check "eval of the checkpoint (purchase AUC > 0.6)" bash -c "'$mtlite' eval full.mtl --data valid.csv --json > eval.json && grep -o '\"purchase\":{[^}]*' eval.json | awk -F'\"auc\":' '{ split(\$2, a, \",\"); exit !(a[1] > 0.6) }'"
check "eval --ndcg-k 5 --rank-by: one output ranked by its own label equals its own NDCG@5 and gAUC" bash -c \
  "'$mtlite' eval full.mtl --data valid.csv --ndcg-k 5 --rank-by purchase --relevance purchase --json > rank.json &&
   own=\$(grep -o '\"purchase\":{[^}]*' rank.json | grep -o '\"gauc\":[^,]*,\"ndcg@5\":[0-9.e-]*') &&
   ranked=\$(grep -o '\"ranking\":{[^}]*' rank.json | grep -o '\"ndcg@5\":[0-9.e-]*,\"gauc\":[0-9.e-]*') &&
   [ -n \"\$own\" ] && [ \"\${own#*,}\" = \"\${ranked%,*}\" ] && [ \"\${own%,*}\" = \"\${ranked#*,}\" ]"
check "eval --rank-by click --relevance purchase: a ranking over the groups" bash -c \
  "'$mtlite' eval full.mtl --data valid.csv --rank-by click --relevance purchase | grep -q 'ranked by click, relevance purchase: ndcg@10 0\.'"
check "convert the checkpoint to int8 without auxiliary heads" "$mtlite" convert full.mtl --out int8.mtl --dtype int8 --drop-aux --calib valid.csv
check "--calib --json: per-row |diff| median <= p99 <= max, for every output" bash -c \
  "'$mtlite' convert full.mtl --out int8b.mtl --dtype int8 --calib valid.csv --json | tee int8b.json | grep -o '\"median_abs_diff\":[^,]*,\"p99_abs_diff\":[^,]*,\"max_abs_diff\":[^,}]*' |
   tr ':,' '  ' | awk '{ n++; if (!(\$2 <= \$4 && \$4 <= \$6 && \$6 > 0)) bad++ } END { exit !(n == 3 && !bad) }'"
p99s() { grep -o '"p99_abs_diff":[0-9.e-]*' "$1" | cut -d: -f2; }
target=$(p99s int8b.json | sort -g | tail -1 | awk '{ print $1 / 2 }')
check "--max-p99 (half the worst int8 p99): tensors kept finer until every output's p99 is within it" bash -c \
  "'$mtlite' convert full.mtl --out int8c.mtl --dtype int8 --calib valid.csv --max-p99 $target --json > int8c.json &&
   grep -q '\"finer\":\[\"' int8c.json && $(declare -f p99s); p99s int8c.json | awk '{ n++; if (\$1 > $target) bad++ } END { exit !(n == 3 && !bad) }' &&
   '$mtlite' inspect int8c.mtl --json | grep -q 'one step finer (calibration)'"
fails_with "--max-p99 without --calib" "--max-p99 needs --calib" "$mtlite" convert full.mtl --out x.mtl --dtype int8 --max-p99 0.01
check "eval of the converted model" bash -c "'$mtlite' eval int8.mtl --data valid.csv | grep -q 'purchase'"
check "predict with the converted model: header and rows" bash -c "'$mtlite' predict int8.mtl --data valid.csv --out int8.csv && head -1 int8.csv | grep -qx 'group,purchase' && [ \$(wc -l < int8.csv) -eq \$(wc -l < valid.csv) ]"
check "gate diagnostics and affinity are printed" bash -c "$(declare -f train); mtlite='$mtlite' config='$config'; train --out aff.mtl --epochs 1 --affinity --affinity-every 20 | grep -q 'best grouping' && train --out aff.mtl --epochs 1 | grep -q 'gates on the validation rows'"

fails_with "--resume refuses a changed learning rate" "--lr cannot change on --resume" \
  "$mtlite" train --resume part.mtl --train train.csv --lr 0.5
fails_with "--resume of a converted model" "not a checkpoint of mtlite train" \
  "$mtlite" train --resume int8.mtl --train train.csv
{ sed -n 1,3p train.csv; echo "1,2,3"; sed -n 4,103p train.csv; } > bad.csv
fails_with "a malformed row stops training with file:line" "bad.csv:4: expected 17 fields, got 3" train --train bad.csv --out bad.mtl --epochs 1
check "--skip-bad-rows skips it and says so" bash -c "$(declare -f train); mtlite='$mtlite' config='$config'; train --train bad.csv --out bad.mtl --epochs 1 --skip-bad-rows | grep -q '1 malformed rows skipped'"
cp full.mtl keep.mtl
fails_with "a failed run (missing validation file)" "nothing.csv" train --out full.mtl --valid nothing.csv --epochs 1
check "... leaves the previous file untouched" cmp full.mtl keep.mtl
check "... and no temporary file behind" bash -c "! ls | grep -q tmp"
fails_with "unknown training key in model.json" "training.learning_rate: unknown key" \
  bash -c "sed 's/\"training\": {/\"training\": {\"learning_rate\": 1, /' '$config' > cfg.json && '$mtlite' train --config cfg.json --train train.csv --out x.mtl"

# A finite but absurd weight (3e38 in a one-layer model, as safetensors): converted, with a warning
# that names the tensor (docs/reliability.md: the rule for huge weights).
echo '{"architecture": "single_task", "features": [{"name": "x", "kind": "dense"}], "tasks": [{"name": "y", "kind": "binary"}],
  "tensors": {"tower0.0.weight": "w", "tower0.0.bias": "b"}}' > huge.json
hdr='{"w":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
printf '\x70\x00\x00\x00\x00\x00\x00\x00%s   \xe6\xb1\x61\x7f\x00\x00\x00\x00' "$hdr" > huge.safetensors
check "a weight of 3e38 converts with a warning naming its tensor" bash -c \
  "'$mtlite' convert huge.safetensors --config huge.json --out huge.mtl 2>&1 | grep -qF \"up to 3e+38 in tensor 'tower0.0.weight'\""

echo "$fails failed"
[ "$fails" -eq 0 ]
