#!/usr/bin/env bash
# The shared C library exports exactly the functions include/mtlite.h declares: each of them,
# and nothing else (no C++ symbol of the library or of the standard library's templates).
#   tests/c_api/exports.sh NM LIBRARY HEADER
set -euo pipefail
nm=$1 lib=$2 header=$3
declared=$(grep -oE 'MTLITE_API [^(]*\(' "$header" | grep -oE 'mtlite_[a-z0-9_]+ *\($' | tr -d ' (' | sort)
exported=$("$nm" -D --defined-only "$lib" | awk '$2 ~ /^[TtWwDdBbRrVvi]$/ { print $3 }' | sed 's/@.*//' | sort)
if [ "$declared" != "$exported" ]; then
  echo "FAIL: exports differ from the header's functions (< header, > library):"
  diff <(echo "$declared") <(echo "$exported") || true
  exit 1
fi
echo "ok: $(wc -l <<<"$declared") functions exported, nothing else"
