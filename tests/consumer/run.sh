#!/usr/bin/env bash
# mtlite the two ways other projects take it, each building and running main.cpp:
#   1. a Meson subproject: subprojects/mtlite and dependency('mtlite') (meson.override_dependency);
#   2. installed: `meson install` of this build into a temporary root, then the compiler with
#      `pkg-config --cflags mtlite` only.
# Both programs must print the same score (to 1e-5: one build may be scalar, the other SIMD).
#   3. the C API installed: main.c built with the C compiler and `pkg-config mtlite-c`, against
#      the shared library and against the static one, each opening MODEL and running its self-test.
#      SANITIZE is the build's -fsanitize= flag, or empty: its libraries need the sanitizers' runtime.
#   4. CMake: find_package(mtlite) from the same installed tree (CMakeLists.txt), the C++ program
#      with mtlite::mtlite, the C one with mtlite::mtlite_c and mtlite::mtlite_c_static; they must
#      print what steps 2 and 3 printed. CMAKE is the cmake program.
#   tests/consumer/run.sh MESON CXX SOURCE_ROOT BUILD_ROOT CC MODEL CMAKE [SANITIZE]
set -euo pipefail
meson=$1 cxx=$2 src=$(realpath "$3") build=$(realpath "$4") cc=$5 model=$(realpath "$6") cmake=$7 sanitize=${8:-}
here=$(realpath "$(dirname "$0")")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

mkdir -p "$dir/sub/subprojects"
cp "$here/main.cpp" "$dir/sub/"
cp "$here/meson.build.in" "$dir/sub/meson.build"
ln -s "$src" "$dir/sub/subprojects/mtlite"
"$meson" setup "$dir/sub/build" "$dir/sub" > "$dir/setup.log" 2>&1 || { cat "$dir/setup.log"; exit 1; }
"$meson" compile -C "$dir/sub/build" > "$dir/compile.log" 2>&1 || { cat "$dir/compile.log"; exit 1; }
from_subproject=$("$dir/sub/build/consumer")
echo "subproject: $from_subproject"

"$meson" install -C "$build" --no-rebuild --destdir "$dir/root" > "$dir/install.log" 2>&1 ||
  { cat "$dir/install.log"; exit 1; }
pc=$(dirname "$(find "$dir/root" -name mtlite.pc | head -1)")
[ -f "$pc/mtlite.pc" ] || { echo "meson install wrote no mtlite.pc"; exit 1; }
cflags=$(PKG_CONFIG_PATH="$pc" PKG_CONFIG_SYSROOT_DIR="$dir/root" pkg-config --cflags mtlite)
# shellcheck disable=SC2086  # cflags is a list of flags
"$cxx" $cflags -O1 "$here/main.cpp" -o "$dir/installed"
from_install=$("$dir/installed")
echo "installed:  $from_install  (pkg-config --cflags: $cflags)"

pc_c=$(dirname "$(find "$dir/root" -name mtlite-c.pc | head -1)")
[ -f "$pc_c/mtlite-c.pc" ] || { echo "meson install wrote no mtlite-c.pc"; exit 1; }
c_cflags=$(PKG_CONFIG_PATH="$pc_c" PKG_CONFIG_SYSROOT_DIR="$dir/root" pkg-config --cflags mtlite-c)
c_libs=$(PKG_CONFIG_PATH="$pc_c" PKG_CONFIG_SYSROOT_DIR="$dir/root" pkg-config --libs mtlite-c)
c_static_libs=$(PKG_CONFIG_PATH="$pc_c" PKG_CONFIG_SYSROOT_DIR="$dir/root" pkg-config --static --libs mtlite-c)
# shellcheck disable=SC2086  # lists of flags
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic $sanitize $c_cflags "$here/main.c" $c_libs -o "$dir/c_shared"
# shellcheck disable=SC2086
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic $sanitize $c_cflags "$here/main.c" ${c_static_libs/-lmtlite_c/-l:libmtlite_c.a} -o "$dir/c_static"
libdir=${c_libs#-L}; libdir=${libdir%% *}
c_shared=$(LD_LIBRARY_PATH="$libdir" "$dir/c_shared" "$model") || { echo "FAIL: C, shared: $c_shared"; exit 1; }
echo "C, shared:  $c_shared"
if ldd "$dir/c_static" | grep -q libmtlite_c; then echo "FAIL: the static program loads libmtlite_c.so"; exit 1; fi
c_static=$("$dir/c_static" "$model") || { echo "FAIL: C, static: $c_static"; exit 1; }
echo "C, static:  $c_static"

# The package as installed under the destdir, named by mtlite_DIR (CMake's search of a
# prefix for <libdir>/cmake depends on the multiarch folder it detects); the package finds
# its headers and libraries relative to itself.
command -v "$cmake" > /dev/null || { echo "FAIL: no cmake ($cmake); scripts/deps.sh installs it"; exit 1; }
config=$(find "$dir/root" -name mtliteConfig.cmake | head -1)
[ -f "$config" ] || { echo "meson install wrote no mtliteConfig.cmake"; exit 1; }
# Ninja, which Meson needs anyway: a machine with cmake need not have make.
CC=$cc CXX=$cxx "$cmake" -G Ninja -S "$here" -B "$dir/cmake" -Dmtlite_DIR="$(dirname "$config")" \
  -DCMAKE_BUILD_TYPE=Release ${sanitize:+-DSANITIZE="$sanitize"} > "$dir/cmake.log" 2>&1 &&
  "$cmake" --build "$dir/cmake" >> "$dir/cmake.log" 2>&1 || { cat "$dir/cmake.log"; exit 1; }
from_cmake=$("$dir/cmake/consumer")
echo "CMake:      $from_cmake"
cmake_shared=$("$dir/cmake/c_shared" "$model") || { echo "FAIL: CMake, C shared: $cmake_shared"; exit 1; }
cmake_static=$("$dir/cmake/c_static" "$model") || { echo "FAIL: CMake, C static: $cmake_static"; exit 1; }
echo "CMake, C:   $cmake_shared"
if ldd "$dir/cmake/c_static" | grep -q libmtlite_c; then echo "FAIL: the CMake static program loads libmtlite_c.so"; exit 1; fi
[ "$cmake_shared" = "$c_shared" ] && [ "$cmake_static" = "$c_static" ] ||
  { echo "FAIL: the CMake C programs print other than the pkg-config ones"; exit 1; }

case $from_subproject in click\ 0.*) ;; *) echo "FAIL: not a click probability"; exit 1 ;; esac
awk -v a="${from_subproject#click }" -v b="${from_install#click }" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' ||
  { echo "FAIL: the two builds disagree"; exit 1; }
[ "$from_cmake" = "$from_install" ] || { echo "FAIL: the CMake build prints other than the pkg-config one"; exit 1; }
echo "ok"
