#!/usr/bin/env bash
# The layout rules of the tree, checked (a meson test; also runnable by hand):
#   1. no kernel header depends on the file format or the spec (core types sit below both);
#   2. the serving umbrella mtlite.hpp pulls in nothing offline (trainer, converter, writer,
#      safetensors, metrics, benchmark model, random inputs);
#   3. every .md file the repository names exists in it;
#   4. no function in include/ or tools/ is longer than 120 lines unless a comment
#      "long function: <why>" stands on one of the 3 lines above it.
# usage: scripts/check-layout.sh [CXX] [SOURCE_ROOT]
set -uo pipefail
cxx=${1:-c++}
root=${2:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 1
fail=0
# The project headers a header pulls in (g++ -MM); a header that does not compile fails the check.
deps() {
  local out
  out=$("$cxx" -std=c++17 -MM -Iinclude "$1") || { echo "FAIL $1 does not compile alone" >&2; return 1; }
  tr ' \\' '\n\n' <<<"$out" | grep '\.hpp$' | xargs realpath -m --relative-to=.
}

for h in $(find include/mtlite/kernels -name '*.hpp' | sort); do
  d=$(deps "$h") || { fail=1; continue; }
  bad=$(grep -E 'include/mtlite/(format/|spec\.hpp|offline/)' <<<"$d" || true)
  [ -z "$bad" ] || { echo "FAIL kernels: $h depends on: $bad"; fail=1; }
done
d=$(deps include/mtlite/mtlite.hpp) || fail=1
bad=$(grep -E 'include/mtlite/offline/' <<<"$d" || true)
[ -z "$bad" ] || { echo "FAIL mtlite.hpp pulls in offline headers: $bad"; fail=1; }

python3 - "$root" <<'PY' || fail=1
import os, re, subprocess, sys
root = sys.argv[1]
try:  # the tracked files; without git (a tarball, a bare machine), the tree less build output
    files = subprocess.check_output(['git', '-C', root, 'ls-files'], text=True,
                                    stderr=subprocess.DEVNULL).split()
except (OSError, subprocess.CalledProcessError):
    files = [os.path.relpath(os.path.join(d, f), root) for d, dirs, fs in os.walk(root)
             for f in fs if not dirs.__setitem__(slice(None), [x for x in dirs
                                                              if not x.startswith(('.', 'build', 'subprojects'))])]
bad = 0
for f in files:
    if f.endswith(('.gz', '.png', '.svg')) or not os.path.isfile(os.path.join(root, f)):
        continue
    try:
        text = open(os.path.join(root, f), encoding='utf-8').read()
    except UnicodeDecodeError:
        continue
    for m in re.finditer(r'(?<![\w/.-])((?:\.\./|\./)?[\w./-]*[\w-]\.md)\b', text):
        name = m.group(1)
        here = os.path.dirname(f)
        cands = [os.path.normpath(os.path.join(here, name)), os.path.normpath(name)]
        if not any(os.path.isfile(os.path.join(root, c)) and not c.startswith('..') for c in cands):
            line = text.count('\n', 0, m.start()) + 1
            print(f'FAIL {f}:{line}: names {name}, which the repository does not hold')
            bad = 1
sys.exit(bad)
PY

python3 scripts/function_lengths.py 120 include tools || fail=1
[ "$fail" -eq 0 ] && echo "layout: ok"
exit "$fail"
