#!/usr/bin/env bash
# mtlite embed end to end:
#   tests/cli/embed_cli.sh build/tools/mtlite MODEL.mtl CC CXX [RUN_WRAPPER...]
# Checks: the header compiles as C99, C11 and C++17 (-Wall -Wextra -Werror -pedantic), alone and
# two of them in one file, and a program built with it holds the model's bytes exactly, 64-byte
# aligned; the default name comes from the file name; an invalid --name, a damaged, truncated or
# foreign file, a missing one and a missing --out are refused with a clear message, and a
# refused run leaves the old header untouched. RUN_WRAPPER runs the programs built here in a
# cross build (qemu-user).
set -euo pipefail
mtlite=$(realpath "$1")
model=$(realpath "$2")
cc=$3 cxx=$4
shift 4
run=("$@")
source "$(dirname "$0")/checks.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

check "embed a model" "$mtlite" embed "$model" --out model_data.h --name game_model
check "... the header declares the array, aligned, and its size" bash -c \
  "grep -qF 'MTLITE_EMBED_ALIGNED_BYTES game_model[$(stat -c %s "$model")] = {' model_data.h &&
   grep -qF 'static const size_t game_model_size = $(stat -c %s "$model");' model_data.h &&
   grep -qF 'alignas(64)' model_data.h && grep -qF '_Alignas(64)' model_data.h &&
   grep -qF '__declspec(align(64))' model_data.h"
check "--json says what was written" bash -c \
  "'$mtlite' embed '$model' --out j.h --name j --json | grep -qF '\"name\":\"j\"'"

# A program that writes the embedded bytes out, and fails when they are not 64-byte aligned.
cat > dump.c <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include "model_data.h"
int main(void) {
  if ((uintptr_t)game_model % 64 != 0 || sizeof game_model != game_model_size) return 1;
  return fwrite(game_model, 1, game_model_size, stdout) == game_model_size ? 0 : 1;
}
EOF
flags=(-Wall -Wextra -Werror -pedantic)
for lang in c99 c11 c++17; do
  compiler=$cc x=c
  [ "$lang" = c++17 ] && compiler=$cxx x=c++
  check "$lang: dump.c with the header compiles" "$compiler" -std=$lang "${flags[@]}" -x $x dump.c -o dump-$lang
  check "$lang: the program holds the model's bytes, 64-byte aligned" \
    bash -c "${run[*]:-} ./dump-$lang > dumped-$lang.mtl && cmp '$model' dumped-$lang.mtl"
done

check "embed another model under another name" "$mtlite" embed "$model" --out second.h --name second_model
cat > both.c <<'EOF'
#include "model_data.h"
#include "second.h"
#include "model_data.h"
int main(void) { return game_model_size == second_model_size && game_model[0] == second_model[0] ? 0 : 1; }
EOF
check "two headers (one twice) in one C99 file" "$cc" -std=c99 "${flags[@]}" both.c -o both
check "two headers (one twice) in one C++17 file" "$cxx" -std=c++17 "${flags[@]}" -x c++ both.c -o both-cxx

cp "$model" my-model.v2.mtl
check "the default name comes from the file name" "$mtlite" embed my-model.v2.mtl --out default.h
check "... as an identifier: my_model_v2_mtl" bash -c \
  "grep -qF 'MTLITE_EMBED_ALIGNED_BYTES my_model_v2_mtl[' default.h && grep -qF 'my_model_v2_mtl_size' default.h"
cp "$model" 2024.mtl
check "a file name starting with a digit gets a prefix" bash -c \
  "'$mtlite' embed 2024.mtl --out digit.h && grep -qF 'MTLITE_EMBED_ALIGNED_BYTES mtl_2024_mtl[' digit.h"

long=$(printf 'a%.0s' {1..59})
for name in 1model model-1 int class size_t _model "" "$long" "mo del"; do
  fails_with "--name '$name' is refused" "--name '$name' " "$mtlite" embed "$model" --out bad.h --name "$name"
done
check "... and nothing is written" test ! -e bad.h

cp model_data.h before.h
size=$(stat -c %s "$model")
cp "$model" damaged.mtl
printf '\xff' | dd of=damaged.mtl bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$model" damaged.mtl && printf '\x00' | dd of=damaged.mtl bs=1 seek=$((size / 2)) conv=notrunc status=none
fails_with "a damaged model is refused by its checksum" "damaged.mtl: model file: checksum mismatch" \
  "$mtlite" embed damaged.mtl --out model_data.h
check "... and the old header is left as it was" cmp before.h model_data.h
head -c $((size - 100)) "$model" > truncated.mtl
fails_with "a truncated model is refused" "truncated.mtl: model file: truncated" "$mtlite" embed truncated.mtl --out model_data.h
echo "not a model" > text.mtl
fails_with "a file that is no model is refused" "text.mtl: " "$mtlite" embed text.mtl --out model_data.h
fails_with "a missing model is refused, naming it" "missing.mtl" "$mtlite" embed missing.mtl --out model_data.h
check "... the old header still as it was" cmp before.h model_data.h
check "no temporary file is left behind" bash -c "! ls | grep -q '\.tmp-'"

set +e
"$mtlite" embed "$model" > usage.log 2>&1
rc=$?
set -e
check "without --out: usage on stderr, exit code 2" bash -c "[ $rc -eq 2 ] && grep -qF 'usage: mtlite embed' usage.log"
check "--help names every option" bash -c \
  "'$mtlite' embed --help > help.log && grep -qF -- '--out FILE' help.log && grep -qF -- '--name IDENT' help.log"
check "mtlite --help lists embed" bash -c "'$mtlite' --help | grep -qE '^  embed '"

echo "$fails failed"
[ "$fails" -eq 0 ]
