#!/usr/bin/env bash
# The MMoE paper's census-income experiment, end to end from the raw files:
#
#   examples/census-income/run.sh [DATA_DIR] [OUT_DIR]
#
# DATA_DIR holds census-income.data.gz and census-income.test.gz (default: ../shared/data/census-income
# next to the repository). As in the paper, the test file is split 1:1 into validation and test
# rows (a fixed pseudo-random split by line number). For Group 1 (income, never married) and
# Group 2 (education, never married), and seeds 1, 2, 3: train the MMoE with early stopping on
# the validation AUC of the first task, evaluate the f32 model on the test rows, convert it to
# int8 and evaluate that too. Prints the test AUCs per run and their means. Needs build/tools/mtlite
# (scripts/quickstart.sh builds it) or MTLITE=/path/to/mtlite; THREADS (default 2), SEEDS
# (default "1 2 3") and EPOCHS (default: model.json's) override.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${1:-$root/../shared/data/census-income}"
out="${2:-$root/build/census-income}"
mtlite="${MTLITE:-$root/build/tools/mtlite}"
threads="${THREADS:-2}"
seeds="${SEEDS:-1 2 3}"
[ -x "$mtlite" ] || { echo "run.sh: $mtlite not found: build first (scripts/quickstart.sh) or set MTLITE" >&2; exit 1; }
for f in census-income.data.gz census-income.test.gz; do
  [ -f "$data/$f" ] || { echo "run.sh: $data/$f not found. Get census-income.data.gz and census-income.test.gz from the UCI repository (\"Census-Income (KDD)\") and pass their folder as the first argument." >&2; exit 1; }
done
mkdir -p "$out"

# The split: line n goes to validation when bit 16 of n * 2654435761 mod 2^32 is 0.
gzip -dc "$data/census-income.test.gz" |
  awk -v v="$out/valid.csv" -v t="$out/test.csv" \
    '{ h = (NR * 2654435761) % 4294967296; if (int(h / 65536) % 2 == 0) print > v; else print > t }'
echo "validation rows: $(wc -l < "$out/valid.csv"), test rows: $(wc -l < "$out/test.csv")"

# "auc" of one output in an `mtlite eval --json` line.
auc_of() { sed -n "s/.*\"$2\":{[^}]*\"auc\":\([0-9.e-]*\).*/\1/p" "$1"; }

summary="$out/summary.tsv"
printf "group\tseed\tepochs\trows_per_s\ttask_a\tauc_a_f32\tauc_a_int8\ttask_b\tauc_b_f32\tauc_b_int8\n" > "$summary"
for group in 1 2; do
  config="$here/model.json"; tasks="income never_married"
  if [ "$group" = 2 ]; then config="$here/group2.json"; tasks="education never_married"; fi
  set -- $tasks
  for seed in $seeds; do
    run="$out/group$group-seed$seed"
    "$mtlite" train --config "$config" --train "$data/census-income.data.gz" --valid "$out/valid.csv" \
      --out "$run.mtl" --seed "$seed" --threads "$threads" ${EPOCHS:+--epochs "$EPOCHS"} --json > "$run.train.json"
    "$mtlite" eval "$run.mtl" --data "$out/test.csv" --json > "$run.f32.json"
    "$mtlite" convert "$run.mtl" --out "$run.int8.mtl" --dtype int8 --calib "$out/valid.csv" --json > "$run.convert.json"
    "$mtlite" eval "$run.int8.mtl" --data "$out/test.csv" --json > "$run.int8.json"
    epochs=$(sed -n 's/.*"epochs_done":\([0-9]*\),"best_epoch":\([0-9]*\).*/\2 of \1/p' "$run.train.json")
    rate=$(sed -n 's/.*"train_rows_per_second":\([0-9.e+]*\).*/\1/p' "$run.train.json")
    printf "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\n" "$group" "$seed" "$epochs" "${rate:-0}" \
      "$1" "$(auc_of "$run.f32.json" "$1")" "$(auc_of "$run.int8.json" "$1")" \
      "$2" "$(auc_of "$run.f32.json" "$2")" "$(auc_of "$run.int8.json" "$2")" >> "$summary"
    tail -1 "$summary" | awk -F'\t' '{ printf "group %s seed %s: best epoch %s, %s rows/s; test AUC %s %.4f (int8 %.4f), %s %.4f (int8 %.4f)\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
  done
done

echo
awk -F'\t' 'NR > 1 {
    g = $1; n[g]++; ta[g] = $5; tb[g] = $8
    a[g] += $6; a8[g] += $7; b[g] += $9; b8[g] += $10
    da = $6 - $7; if (da > lossa[g]) lossa[g] = da
    db = $9 - $10; if (db > lossb[g]) lossb[g] = db
  }
  END {
    printf "%-7s %-14s %10s %10s %14s   %-14s %10s %10s %14s\n", "", "task", "f32 mean", "int8 mean", "max int8 loss", "task", "f32 mean", "int8 mean", "max int8 loss"
    for (g = 1; g <= 2; g++) if (n[g])
      printf "group %d %-14s %10.4f %10.4f %14.4f   %-14s %10.4f %10.4f %14.4f\n", g, ta[g], a[g] / n[g], a8[g] / n[g], lossa[g], tb[g], b[g] / n[g], b8[g] / n[g], lossb[g]
  }' "$summary"
echo "(per-run JSON and $summary in $out)"
