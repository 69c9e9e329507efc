#!/usr/bin/env bash
# The census-income MMoE trained in PyTorch with DistributedDataParallel, served by mtlite:
#
#   examples/pytorch/run.sh [DATA_DIR] [OUT_DIR]
#
# 1. splits census-income.test.gz 1:1 into validation and test rows (as examples/census-income/run.sh);
# 2. encodes the training and validation rows with the model's data bindings (mtlite encode);
# 3. trains the model in PyTorch (train_ddp.py) in 1 process and in 2 (DDP, gloo), and with
#    mtlite train, each keeping its best epoch by the validation AUC of the first task;
# 4. converts each to f32 and int8 (the PyTorch ones from the .safetensors and .json that export()
#    wrote, with the fitted bindings) and evaluates them all with mtlite eval on the raw test rows.
# Prints a table of the test AUCs. DATA_DIR (default ../shared/data/census-income beside the
# repository) holds census-income.data.gz and census-income.test.gz; without them it says so and
# runs on synthetic data (mtlite synth funnel, examples/funnel/model.json) instead.
# Environment: MTLITE (build/tools/mtlite), PYTHON (/usr/bin/python3, which has Debian's torch),
# ROWS (training rows; default all), EPOCHS (default model.json's), SEED (1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${1:-$root/../shared/data/census-income}"
out="${2:-$root/build/pytorch}"
mtlite="${MTLITE:-$root/build/tools/mtlite}"
python="${PYTHON:-/usr/bin/python3}"
seed="${SEED:-1}"
[ -x "$mtlite" ] || { echo "run.sh: $mtlite not found: build first (scripts/quickstart.sh) or set MTLITE" >&2; exit 1; }
"$python" -c 'import torch' 2>/dev/null || { echo "run.sh: $python cannot import torch (apt-get install python3-torch)" >&2; exit 1; }
mkdir -p "$out"

take() {  # the first ROWS lines of a plain or gzip file
  gzip -dcf "$1" | awk -v n="${ROWS:-0}" 'n == 0 || NR <= n'  # awk reads to the end: no SIGPIPE
}
if [ -f "$data/census-income.data.gz" ] && [ -f "$data/census-income.test.gz" ]; then
  config="$root/examples/census-income/model.json"
  tasks="income never_married"
  take "$data/census-income.data.gz" > "$out/train.csv"
  # line n goes to validation when bit 16 of n * 2654435761 mod 2^32 is 0
  gzip -dc "$data/census-income.test.gz" |
    awk -v v="$out/valid.csv" -v t="$out/test.csv" \
      '{ h = (NR * 2654435761) % 4294967296; if (int(h / 65536) % 2 == 0) print > v; else print > t }'
else
  echo "census-income not found in $data: running on synthetic data (mtlite synth funnel) instead"
  config="$root/examples/funnel/model.json"
  tasks="purchase click"
  "$mtlite" synth funnel --rows "${ROWS:-200000}" --seed 5 --out "$out/all.csv" > /dev/null
  head -1 "$out/all.csv" | tee "$out/train.csv" "$out/valid.csv" > "$out/test.csv"
  awk -v a="$out/train.csv" -v v="$out/valid.csv" -v t="$out/test.csv" \
    'NR > 1 { r = NR % 10; print >> (r < 7 ? a : r < 8 ? v : t) }' "$out/all.csv"
fi
echo "rows: train $(wc -l < "$out/train.csv"), validation $(wc -l < "$out/valid.csv"), test $(wc -l < "$out/test.csv")"

"$mtlite" encode --config "$config" --fit "$out/train.csv" --out "$out/enc" \
  "train=$out/train.csv" "valid=$out/valid.csv"
for procs in 1 2; do
  echo "== PyTorch, $procs process(es)"
  "$python" "$here/train_ddp.py" "$out/enc" "$out/torch$procs" --procs "$procs" --seed "$seed" ${EPOCHS:+--epochs "$EPOCHS"}
done
echo "== mtlite train"
"$mtlite" train --config "$config" --train "$out/train.csv" --valid "$out/valid.csv" --out "$out/mtlite.mtl" \
  --seed "$seed" --threads 2 ${EPOCHS:+--epochs "$EPOCHS"} --json > "$out/mtlite.train.json"

auc_of() { sed -n "s/.*\"$2\":{[^}]*\"auc\":\([0-9.e-]*\).*/\1/p" "$1"; }
set -- $tasks
echo
{ printf "| run | %s f32 | %s int8 | %s f32 | %s int8 |\n|---|---:|---:|---:|---:|\n" "$1" "$1" "$2" "$2"
for run in torch1 torch2 mtlite; do
  if [ "$run" = mtlite ]; then
    cp "$out/mtlite.mtl" "$out/$run.f32.mtl"
  else
    "$mtlite" convert "$out/$run.safetensors" --config "$out/$run.json" --out "$out/$run.f32.mtl" > /dev/null
  fi
  "$mtlite" convert "$out/$run.f32.mtl" --out "$out/$run.int8.mtl" --dtype int8 --calib "$out/valid.csv" > /dev/null
  for t in f32 int8; do "$mtlite" eval "$out/$run.$t.mtl" --data "$out/test.csv" --json > "$out/$run.$t.eval.json"; done
  label=$([ "$run" = mtlite ] && echo "mtlite train" || echo "PyTorch, ${run#torch} process(es)")
  printf "| %s | %.5f | %.5f | %.5f | %.5f |\n" "$label" \
    "$(auc_of "$out/$run.f32.eval.json" "$1")" "$(auc_of "$out/$run.int8.eval.json" "$1")" \
    "$(auc_of "$out/$run.f32.eval.json" "$2")" "$(auc_of "$out/$run.int8.eval.json" "$2")"
done; } | tee "$out/summary.txt"
