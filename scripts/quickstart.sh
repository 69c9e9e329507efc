#!/usr/bin/env bash
# The quick start's main job: install the packages, build (release, tuned for this CPU) into
# build/, and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build
build/examples/quickstart
