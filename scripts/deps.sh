#!/usr/bin/env bash
# Installs the Debian packages mtlite builds, tests and benchmarks with (root, apt). Does nothing
# when they are all present already.
set -euo pipefail
packages=(g++ meson ninja-build pkg-config libxsimd-dev doctest-dev libbenchmark-dev libeigen3-dev zlib1g-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
