#!/usr/bin/env bash
# Installs Debian packages (apt; as root, or through sudo) when dpkg says they are missing, and
# does nothing when they are all present:
#   scripts/deps.sh           the packages mtlite builds, tests and benchmarks with
#   scripts/deps.sh PKG...    these (the platform and fuzzing scripts' own tools)
set -euo pipefail
if [ $# -gt 0 ]; then
  packages=("$@")
else
  packages=(g++ meson ninja-build pkg-config libxsimd-dev doctest-dev libbenchmark-dev libeigen3-dev zlib1g-dev cmake)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=; [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
