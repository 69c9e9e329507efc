#!/usr/bin/env bash
# Regenerates the seed inputs of the committed corpora from real files the `mtlite` command
# writes, one small model per architecture (a few features, layers of 2-4 units, so that each file
# is a few KB):
#   tests/fuzz/make_seeds.sh build/tools/mtlite [build-fuzz/tests/fuzz/make_seed_model]
# Writes seed-* files into tests/fuzz/corpus/<target>/ (existing files are replaced, others kept):
#   fuzz_model_load   each architecture's checkpoint and its f32, f16 and int8 conversions
#   fuzz_convert      each architecture's float checkpoint and f32 conversion (packed panels)
#   fuzz_csv          the training data (a first byte picks the binding; see fuzz_csv.cpp), gzip too
#   fuzz_spec_json    each model.json, and a checkpoint's spec
#   fuzz_safetensors  a few hand-made files (every dtype, metadata, an empty tensor)
#   fuzz_file_view    make_seed_model's file, when given
set -euo pipefail
mtlite=$(realpath "$1")
seed_model=${2:+$(realpath "$2")}
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
mkdir -p "$corpus"/{fuzz_model_load,fuzz_convert,fuzz_csv,fuzz_spec_json,fuzz_safetensors,fuzz_file_view}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

# 600 funnel rows plus a multi-hot "tags" column (category|position), so that bags are reached.
"$mtlite" synth funnel --rows 600 --seed 3 --users 50 --items 30 --out raw.csv > /dev/null
awk -F, 'BEGIN { OFS = "," } NR == 1 { print $0, "tags"; next }
         { print $0, "c" $8 "|p" $4 (NR % 3 ? "" : "|x") }' raw.csv > data.csv
head -1 data.csv > head.csv

features='[
    {"name": "device", "kind": "categorical", "values": "strings", "embedding_dim": 2},
    {"name": "hour", "kind": "categorical", "values": "integers", "mapping": "vocabulary", "size": 24, "embedding_dim": 2},
    {"name": "item_category", "kind": "categorical", "values": "integers", "mapping": "hashing", "size": 8, "embedding_dim": 2},
    {"name": "tags", "kind": "multi_hot", "embedding_dim": 2, "pooling": "mean"},
    {"name": "price", "kind": "dense", "normalization": "log1p"},
    {"name": "discount", "kind": "dense", "normalization": "standardize"}
  ]'
two_tasks='[
    {"name": "purchase", "kind": "binary", "role": "main", "positive": ["1"], "tower": [2]},
    {"name": "click", "kind": "binary", "role": "auxiliary", "loss_weight": 0.5, "positive": ["1"], "tower": [2]}
  ]'
config() {  # architecture, tasks, extra top-level members
  printf '{"architecture": "%s", "data": {"separator": ",", "header": true, "group": "user_id"},\n  "features": %s,\n  "tasks": %s%s}\n' \
    "$1" "$features" "$2" "$3"
}
config single_task '[{"name": "purchase", "kind": "binary", "role": "main", "positive": ["1"], "tower": [3]}]' '' > single_task.json
config shared_bottom "$two_tasks" ', "bottom": [4]' > shared_bottom.json
config omoe "$two_tasks" ', "experts": 2, "expert": [3]' > omoe.json
config mmoe "$two_tasks" ', "experts": 2, "expert": [3]' > mmoe.json
config ple "$two_tasks" ', "levels": [{"task_experts": 1, "shared_experts": 1, "expert": [3]}]' > ple.json
config esmm '[
    {"name": "click", "kind": "binary", "role": "main", "positive": ["1"], "tower": [2]},
    {"name": "purchase", "kind": "binary", "role": "main", "positive": ["1"], "tower": [2]}
  ]' ', "esmm": {"ctr": "click", "cvr": "purchase"}' > esmm.json

for arch in single_task shared_bottom omoe mmoe ple esmm; do
  "$mtlite" train --config $arch.json --train data.csv --epochs 1 --batch-size 64 --patience 0 --seed 1 \
    --out $arch.mtl > /dev/null
  "$mtlite" convert $arch.mtl --out $arch-f32.mtl --dtype f32 > /dev/null
  "$mtlite" convert $arch.mtl --out $arch-f16.mtl --dtype f16 --embeddings f16 > /dev/null
  "$mtlite" convert $arch.mtl --out $arch-i8.mtl --dtype int8 --embeddings int4 --calib data.csv > /dev/null
  cp $arch.mtl "$corpus/fuzz_convert/seed-$arch-checkpoint"
  # A converted f32 model is a float model too (panels16 layout): float_weights unpacks it.
  cp $arch-f32.mtl "$corpus/fuzz_convert/seed-$arch-f32"
  for v in "" -f32 -f16 -i8; do cp $arch$v.mtl "$corpus/fuzz_model_load/seed-$arch${v:--checkpoint}"; done
  cp $arch.json "$corpus/fuzz_spec_json/seed-model-json-$arch"
done
# A model file's metadata, spec included (fuzz_spec_json also reads a top-level "spec").
"$mtlite" inspect mmoe.mtl --json > "$corpus/fuzz_spec_json/seed-inspect-mmoe" 2>/dev/null || true
cp "$here/../../examples/funnel/model.json" "$corpus/fuzz_spec_json/seed-example-funnel"
cp "$here/../../examples/census-income/model.json" "$corpus/fuzz_spec_json/seed-example-census"

# fuzz_csv: byte 0 = 0 (",", header) or 1 (tab, no header, by index) | 2 (skip bad rows).
csv_a() {  # the columns fuzz_csv's first binding names
  printf 'price,rating,device,hour,city,tags,seen,click,buy,value,w,user\n'
  printf '3.5,4,ios,3,paris,a|b,1;2,1,0.7,2.5,1,u1\n'
  printf '"1,5",NA,android,23,"new ""york""",b,,yes,-,0,0.5,2\n'
  printf '2,,web,,berlin,a|a|c,7;8;9,0,1,-1.25,2,u1\n'
  printf '\n4e2,1e-3,ios,0,rome,"x|y",3,no,0,1e3,0,17\r\n'
}
{ printf '\x00'; csv_a; } > "$corpus/fuzz_csv/seed-header-comma"
{ printf '\x02'; csv_a; printf '1,2\n5,x,ios,99,a,b,c,1,0,1,1,u\n'; } > "$corpus/fuzz_csv/seed-header-skip-bad"
{ printf '\x00'; csv_a | gzip -9n; } > "$corpus/fuzz_csv/seed-header-gzip"
csv_b() {
  printf '39\t0\tm\t3\ta|b\t50000+.\t40\t1.5\t7\n'
  printf '?\t12.5\tf\t?\t\t- 50000.\t20\t0\t7\n'
  printf '71\t-3\tx\t9\tc\t50000+.\t?\t2\t8\n'
}
{ printf '\x01'; csv_b; } > "$corpus/fuzz_csv/seed-tab-index"
{ printf '\x03'; csv_b; printf 'a\tb\n'; } > "$corpus/fuzz_csv/seed-tab-skip-bad"
{ printf '\x01'; csv_b | gzip -1n; csv_b | gzip -1n; } > "$corpus/fuzz_csv/seed-tab-gzip-2-members"
# The real training data's first rows, with the first binding (most columns unknown to it: the
# header names decide), plain and gzip.
{ printf '\x00'; head -20 data.csv; } > "$corpus/fuzz_csv/seed-funnel"
{ printf '\x00'; head -20 data.csv | gzip -n; } > "$corpus/fuzz_csv/seed-funnel-gzip"

# fuzz_safetensors: the layout by hand (8-byte little-endian header length, JSON, data).
safetensors() {  # out, header json, data as printf escapes
  local len; len=$(printf '%s' "$2" | wc -c)
  { printf "$(printf '\\x%02x' $((len & 255)) $(((len >> 8) & 255)) 0 0 0 0 0 0)"; printf '%s' "$2"; printf "$3"; } > "$1"
}
st=$corpus/fuzz_safetensors
safetensors "$st/seed-f32" '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' \
  '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\xbf'
safetensors "$st/seed-every-dtype" '{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[4,8]},"c":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},"d":{"dtype":"F32","shape":[0,3],"data_offsets":[16,16]}}' \
  '\x00\x3c\x00\xc0\x80\x3f\x00\x40\x00\x00\x00\x00\x00\x00\xf0\x3f'
safetensors "$st/seed-scalar-padded" '{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}        ' '\x00\x00\x20\x41'

if [ -n "$seed_model" ]; then "$seed_model" "$corpus/fuzz_file_view/seed-make-seed-model"; fi
cp "$corpus/fuzz_model_load/seed-mmoe-i8" "$corpus/fuzz_file_view/seed-mmoe-i8"
cp "$corpus/fuzz_model_load/seed-ple-checkpoint" "$corpus/fuzz_file_view/seed-ple-checkpoint"
du -sh "$corpus"/*
