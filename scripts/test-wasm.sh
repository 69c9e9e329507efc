#!/usr/bin/env bash
# WebAssembly, in one command (CI and by hand):
#   scripts/test-wasm.sh
# 1. installs what it needs when dpkg says it is missing (Debian, root or sudo): emscripten (with
#    node and Debian's acorn), chromium, and what the native mtlite command builds with;
# 2. cross-builds the library's suites and examples/web (cross/wasm32-emscripten.ini) and runs
#    the suites under node;
# 3. with the native mtlite command: a funnel model (synth, train 2 epochs, and an int8 copy),
#    candidate rows encoded for the page (mtlite encode) and their native scores (mtlite predict),
#    from the native build and from the native twin of the page's kernels: the wasm build's
#    level, wasm-simd128, runs xsimd's sse2 kernels on emscripten's SSE2-over-SIMD128 and an
#    int8 path bit-exact to the scalar reference, as the x86 sse2 level does. The twin is the
#    native build at MTLITE_KERNELS=sse2 when it is an x86-64 dispatch build (compiled for the
#    baseline, which has no FMA), else a baseline build of its own (-Dsimd=portable
#    -ffp-contract=off);
# 4. serves build-wasm/examples/web on 127.0.0.1, loads the page in headless Chromium once per
#    model, and checks that its scores equal the native build's (f32 within 1e-6) and the
#    twin's (f32 and int8 within 1e-6), and that a bad file, wrong input sizes and a missing
#    file come back as JavaScript errors with the library's message. The int8 difference from the
#    native build's best level is printed, not checked: there other float steps (FMA, wider
#    vectors) before the int8 layers can move an activation across a rounding step of its
#    quantization;
# 5. prints the size of the page's .wasm file.
# Ends with "Ok: N" and "Fail: N" (the suites as meson test counts them, plus one per browser
# check) and exits non-zero on any failure.
#
# Environment: WASM_BUILD_DIR (build-wasm), WASM_NATIVE_BUILD_DIR (build: reused when
# configured, else set up; only its mtlite command is built), WASM_SCALAR_BUILD_DIR
# (build-wasm-twin, the twin's when it needs one), WASM_BUILD_JOBS (2),
# WASM_PORT (8779), WASM_ROWS (2000 candidate rows).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wasm=${WASM_BUILD_DIR:-$root/build-wasm}
native=${WASM_NATIVE_BUILD_DIR:-$root/build}
twin=${WASM_TWIN_BUILD_DIR:-$root/build-wasm-twin}
jobs=${WASM_BUILD_JOBS:-2}
port=${WASM_PORT:-8779}
rows=${WASM_ROWS:-2000}
start=$(date +%s)
ok=0; fail=0; server=
finish() {
  [ -z "$server" ] || kill "$server" 2>/dev/null
  echo "test-wasm.sh took $(( $(date +%s) - start )) s"
  echo "Ok: $ok"; echo "Fail: $fail"
  [ "$fail" -eq 0 ]; exit $?
}
check() {  # name, then a command that succeeds when the check passes
  local name=$1; shift
  if "$@"; then ok=$((ok + 1)); echo "   ok    $name"; else fail=$((fail + 1)); echo "   FAIL  $name"; fi
}

# --- 1. tools -----------------------------------------------------------------------------
"$root/scripts/deps.sh" emscripten chromium python3 meson ninja-build pkg-config doctest-dev g++ libxsimd-dev zlib1g-dev ||
  { echo "test-wasm.sh: cannot install what it needs"; fail=1; finish; }

# --- 2. the wasm build and its suites under node ------------------------------------------
echo "== wasm: $wasm (emscripten $(em++ --version | sed -n '1s/.* \([0-9][0-9.]*\) .*/\1/p'))"
[ -f "$wasm/build.ninja" ] || rm -rf "$wasm"
if [ ! -f "$wasm/build.ninja" ] &&
   ! meson setup "$wasm" "$root" --cross-file "$root/cross/wasm32-emscripten.ini" -Dwerror=true \
       -Dsimd=portable -Dbenchmarks=false > "$wasm.setup.log" 2>&1; then
  cat "$wasm.setup.log"; fail=$((fail + 1)); finish
fi
t0=$(date +%s)
if ! ninja -C "$wasm" -j"$jobs" > "$wasm.build.log" 2>&1; then
  tail -n 40 "$wasm.build.log"; fail=$((fail + 1)); finish
fi
echo "   built in $(( $(date +%s) - t0 )) s"
meson test -C "$wasm" --no-rebuild --print-errorlogs --timeout-multiplier 2 > "$wasm/test.log" 2>&1
n_ok=$(awk '/^Ok:/{print $2}' "$wasm/test.log" | tail -n 1)
n_fail=$(awk '/^(Fail|Unexpected Pass|Timeout):/{s+=$NF} END{print s+0}' "$wasm/test.log")
[ -n "$n_ok" ] || { n_ok=0; n_fail=$((n_fail + 1)); tail -n 20 "$wasm/test.log"; }
grep -E "^ *[0-9]+/[0-9]+ " "$wasm/test.log"
echo "   suites under node: $n_ok ok, $n_fail failed"
ok=$((ok + n_ok)); fail=$((fail + n_fail))

# --- 3. a model, candidate rows and their native scores -----------------------------------
native_mtlite() {  # build dir, meson options...: builds its mtlite command
  local dir=$1; shift
  echo "== native mtlite: $dir"
  if [ ! -f "$dir/build.ninja" ] &&
     ! meson setup "$dir" "$root" -Dwerror=true -Dbenchmarks=false "$@" > "$dir.setup.log" 2>&1; then
    cat "$dir.setup.log"; fail=$((fail + 1)); finish
  fi
  ninja -C "$dir" -j"$jobs" tools/mtlite > "$dir.mtlite.log" 2>&1 || { tail -n 40 "$dir.mtlite.log"; fail=$((fail + 1)); finish; }
}
native_mtlite "$native"
mtlite=$native/tools/mtlite
native_simd=$(meson introspect "$native" --buildoptions |
  python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "simd"))')
if [ "$native_simd" = dispatch ] && [ "$(uname -m)" = x86_64 ]; then
  twin_mtlite=(env MTLITE_KERNELS=sse2 "$mtlite")
else
  native_mtlite "$twin" -Dsimd=portable -Dtests=false -Dcpp_args="-march=x86-64 -ffp-contract=off"
  twin_mtlite=("$twin/tools/mtlite")
fi
echo "   the page's native twin: ${twin_mtlite[*]}"
web=$wasm/examples/web
data=$wasm/web-data
rm -rf "$data" && mkdir -p "$data"
# Train on the first rows, validate on the next, score the last ones ("mtlite synth" rows are
# independent draws).
make_model() {
  "$mtlite" synth funnel --rows $((20000 + 1000 + rows)) --seed 1 --out "$data/funnel.csv" &&
  head -n 20001 "$data/funnel.csv" > "$data/train.csv" &&
  { head -n 1 "$data/funnel.csv"; sed -n "20002,21001p" "$data/funnel.csv"; } > "$data/valid.csv" &&
  { head -n 1 "$data/funnel.csv"; tail -n +21002 "$data/funnel.csv"; } > "$data/rows.csv" &&
  "$mtlite" train --config "$root/examples/funnel/model.json" --train "$data/train.csv" --valid "$data/valid.csv" \
    --out "$web/model.mtl" --epochs 2 --seed 1 &&
  "$mtlite" convert "$web/model.mtl" --out "$web/model-int8.mtl" --dtype int8 &&
  "$mtlite" encode --model "$web/model.mtl" --out "$data/enc" "$data/rows.csv" &&
  cp "$data/enc/rows.csv.safetensors" "$web/rows.safetensors" &&
  "$mtlite" predict "$web/model.mtl" --data "$data/rows.csv" --out "$data/native-f32.csv" &&
  "$mtlite" predict "$web/model-int8.mtl" --data "$data/rows.csv" --out "$data/native-int8.csv" &&
  "${twin_mtlite[@]}" predict "$web/model.mtl" --data "$data/rows.csv" --out "$data/twin-f32.csv" &&
  "${twin_mtlite[@]}" predict "$web/model-int8.mtl" --data "$data/rows.csv" --out "$data/twin-int8.csv"
}
make_model > "$data/make.log" 2>&1 || { tail -n 30 "$data/make.log"; fail=$((fail + 1)); finish; }
echo "   funnel MMoE (f32 and int8) and $rows candidate rows with their native scores"

# --- 4. the page in headless Chromium -----------------------------------------------------
echo "== examples/web in headless Chromium (http://127.0.0.1:$port/)"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$web" > "$data/http.log" 2>&1 &
server=$!
for _ in $(seq 50); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null && break
  sleep 0.1
done
page() {  # query, dom file
  timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=30000 \
    --dump-dom "http://127.0.0.1:$port/index.html?$1" > "$2" 2> "$2.err"
}
# The page's scores (#scores) against mtlite predict's CSV, by output name: every row, every output.
compare() {  # dom file, native csv, tolerance, label
  python3 - "$@" <<'PY'
import csv, html, io, re, sys
dom, native, tol, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
text = open(dom).read()
status = re.search(r'<p id="status">(.*?)</p>', text, re.S)
status = html.unescape(status.group(1)) if status else 'no #status: the page did not load'
scores = re.search(r'<pre id="scores">(.*?)</pre>', text, re.S)
if not status.startswith('ok') or not scores:
    sys.exit(f'   {label}: the page says: {status}')
page = list(csv.DictReader(io.StringIO(html.unescape(scores.group(1)))))
want = list(csv.DictReader(open(native)))
outputs = [c for c in want[0] if c != 'group'] if want else []
if len(page) != len(want) or not page or sorted(page[0]) != sorted(outputs):
    sys.exit(f'   {label}: the page scored {len(page)} rows of {sorted(page[0]) if page else []}, '
             f'mtlite predict {len(want)} rows of {outputs}')
diff = max(abs(float(p[o]) - float(w[o])) for p, w in zip(page, want) for o in outputs)
print(f'   {label}: {len(page)} rows x {len(outputs)} outputs, max |page - native| = {diff:.3g} (tolerance {tol:g})')
sys.exit(0 if diff <= tol else 1)
PY
}
# What the page's check=1 run shows for a bad file and wrong sizes: the library's messages.
errors_ok() {  # dom file
  python3 - "$1" <<'PY'
import html, re, sys
text = open(sys.argv[1]).read()
m = re.search(r'<pre id="errors">(.*?)</pre>', text, re.S)
got = dict(l.split(': ', 1) for l in html.unescape(m.group(1)).splitlines()) if m else {}
want = {'bad model': 'model file: not an mtlite model file (bad magic)',
        'short dense': 'dense: got ', 'too many rows': 'batch has ',
        'freed session': 'mtlite: the session was freed'}
bad = [k for k, v in want.items() if not got.get(k, '').startswith(v)]
for k in want: print(f'   {k}: {got.get(k, "(nothing)")}')
sys.exit(1 if bad else 0)
PY
}
page "model=model.mtl&rows=rows.safetensors&check=1" "$data/page-f32.html"
check "f32 model: the page's scores equal the native build's" compare "$data/page-f32.html" "$data/native-f32.csv" 1e-6 "f32 vs native"
check "f32 model: the page's scores equal its native twin's" compare "$data/page-f32.html" "$data/twin-f32.csv" 1e-6 "f32 vs twin"
check "bad file and wrong sizes: JavaScript errors with the library's message" errors_ok "$data/page-f32.html"
page "model=model-int8.mtl&rows=rows.safetensors" "$data/page-int8.html"
check "int8 model: the page's scores equal its native twin's" compare "$data/page-int8.html" "$data/twin-int8.csv" 1e-6 "int8 vs twin"
compare "$data/page-int8.html" "$data/native-int8.csv" inf "int8 vs native (printed, not checked)" || true
page "model=missing.mtl&rows=rows.safetensors" "$data/page-missing.html"
check "a missing model: the page reports it" grep -q '<p id="status">error: mtlite: missing.mtl: HTTP 404' "$data/page-missing.html"

# --- 5. size ----------------------------------------------------------------------------------
for f in "$web"/*.wasm "$web"/mtlite_web.js; do echo "   $(basename "$f"): $(stat -c %s "$f") bytes"; done
finish
