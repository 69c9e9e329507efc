#!/usr/bin/env bash
# mtlite beside ONNX Runtime (docs/performance.md) on the benchmark model: the same
# weights, one thread, back to back on an idle machine.
#   bench/compare/onnxruntime/run.sh [BUILD_DIR [WORK_DIR]]      (defaults: build, /tmp/mtlite-ort)
# Needs node and npm, and /usr/bin/python3 with onnx and numpy:
#   apt-get install -y nodejs npm python3-onnx python3-numpy
# The first run installs onnxruntime-node into WORK_DIR with npm.
# Steps: ort_reference_data (weights, inputs, mtlite's scores) -> export_onnx.py (the ONNX
# graphs) -> ORT, reference_bench, ORT again, each after waiting for an idle machine ->
# compare.py (medians and ratios).
set -euo pipefail
here=$(realpath "$(dirname "$0")")
build=$(realpath "${1:-build}")
work=${2:-/tmp/mtlite-ort}
ort_version=1.30.0
for tool in node npm; do
  command -v $tool > /dev/null || { echo "$tool not found: apt-get install -y nodejs npm" >&2; exit 1; }
done
/usr/bin/python3 -c "import onnx, numpy" 2> /dev/null ||
  { echo "/usr/bin/python3 cannot import onnx and numpy: apt-get install -y python3-onnx python3-numpy" >&2; exit 1; }
for exe in ort_reference_data reference_bench; do
  [ -x "$build/bench/$exe" ] || { echo "$build/bench/$exe not found: build mtlite first (meson compile -C $build)" >&2; exit 1; }
done
mkdir -p "$work"
if [ ! -d "$work/node_modules/onnxruntime-node" ]; then
  echo "installing onnxruntime-node $ort_version into $work"
  # Its install script would fetch CUDA files; the CPU library ships in the package.
  ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install --prefix "$work" --no-save "onnxruntime-node@$ort_version" > "$work/npm.log" 2>&1 ||
    { cat "$work/npm.log"; exit 1; }
fi
export NODE_PATH="$work/node_modules"
"$build/bench/ort_reference_data" "$work"
/usr/bin/python3 "$here/export_onnx.py" "$work"

# Busy and total jiffies of all cores so far (/proc/stat).
jiffies() {
  local a t=0 i
  read -r -a a < /proc/stat
  for i in 1 2 3 4 5 6 7 8; do t=$((t + a[i])); done
  echo $((t - a[4] - a[5])) $t
}
# The machine's busy share over a command, in percent of all cores; the command's output goes to fd 3.
busy_during() {
  local a b rc=0
  read -r -a a <<< "$(jiffies)"
  "$@" >&3 || rc=$?
  read -r -a b <<< "$(jiffies)"
  echo $((100 * (b[0] - a[0]) / (b[1] - a[1] > 0 ? b[1] - a[1] : 1)))
  return $rc
}
# Three 2-second samples in a row at most 5% busy, or, after 10 minutes, a warning.
wait_idle() {
  local end=$((SECONDS + 600)) n=0 b
  while ((n < 3)); do
    b=$(busy_during sleep 2)
    if ((b <= 5)); then n=$((n + 1)); else n=0; fi
    if ((SECONDS > end)); then echo "# the machine is not idle (${b}% busy): measuring anyway"; return; fi
  done
}
cores=$(nproc)
measure() {
  wait_idle
  local b
  b=$(busy_during "$@")
  if ((b * cores > 100 + 20)); then echo "# WARNING: ${b}% of the machine was busy during this step, more than the benchmark's one core"; fi
}

exec 3>&1
models=("$work"/empty.onnx "$work"/mmoe_{f32,int8}_{fused,separate}.onnx)
measure node "$here/ort_bench.js" --dir "$work" --json "$work/ort_before.json" "${models[@]}"
measure "$build/bench/reference_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$work/mtlite.json" --benchmark_out_format=json
measure node "$here/ort_bench.js" --dir "$work" --json "$work/ort_after.json" "${models[@]}"
echo
/usr/bin/python3 "$here/compare.py" "$work/ort_before.json" "$work/mtlite.json" "$work/ort_after.json"
