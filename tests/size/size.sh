#!/usr/bin/env bash
# The size of serving a model file (README "Size"), as built by tests/meson.build:
#   tests/size/size.sh STRIP "WRAPPER" CPP_PROGRAM C_PROGRAM C_LIBRARY MODEL
# runs the smallest C++ program (the headers alone) and the smallest C one (through the shared
# C library) on MODEL, checks that both print one score per output and that they agree, and
# prints the stripped sizes: the C++ program, and the C program with the library it loads.
# WRAPPER runs a program of the build (qemu-user in a cross build; empty otherwise).
set -euo pipefail
strip=$1 wrapper=$2 cpp_prog=$3 c_prog=$4 c_lib=$5 model=$6
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck disable=SC2086 # the wrapper is words
$wrapper "$cpp_prog" "$model" > "$dir/cpp.txt" || { echo "FAIL: C++: $(cat "$dir/cpp.txt")"; exit 1; }
# shellcheck disable=SC2086
$wrapper "$c_prog" "$model" > "$dir/c.txt" || { echo "FAIL: C: $(cat "$dir/c.txt")"; exit 1; }
# One line per output, each a probability or score; the two programs may run different kernel
# levels (the C library picks its own), whose float steps round apart before int8 layers.
python3 - "$dir/cpp.txt" "$dir/c.txt" <<'PY' || exit 1
import math, sys
a, b = ([float(x) for x in open(p).read().split()] for p in sys.argv[1:3])
if not a or len(a) != len(b) or not all(math.isfinite(x) for x in a + b):
    sys.exit(f"FAIL: the programs printed {a} and {b}")
d = max(abs(x - y) for x, y in zip(a, b))
print(f"{len(a)} outputs, C++ {a[0]:.6f}..., C {b[0]:.6f}..., max difference {d:.2g}")
if d > 1e-3:
    sys.exit("FAIL: the C++ and C programs disagree")
PY
stripped() { "$strip" -o "$dir/s" "$1" && stat -c %s "$dir/s"; }
cpp_size=$(stripped "$cpp_prog") c_size=$(stripped "$c_prog") lib_size=$(stripped "$c_lib")
arch=$(od -An -t x2 -j 18 -N 2 "$cpp_prog" | tr -d ' ')
case $arch in 003e) arch=x86-64 ;; 00b7) arch=arm64 ;; *) arch="e_machine 0x$arch" ;; esac
echo "$arch stripped: C++ load + predict $cpp_size bytes; C $c_size bytes + $(basename "$c_lib") $lib_size bytes"
