// The kernels the runtime calls. Each kernel is defined once in ref/ (plain loops: the
// definition the tests hold every backend to) and vectorised once in simd/; table.hpp gathers
// one compiled set of them. Which set runs:
//   header-only (default)  the one the including program's compiler flags choose: simd/ for
//                          the target's instruction set, or ref/ with MTLITE_NO_SIMD
//   MTLITE_DISPATCH        the best set for the CPU at run time, among tables compiled once per
//                          level (dispatch.hpp; the programs of a -Dsimd=dispatch build)
// Either way table() is the set in use, with its level's and code paths' names.
//
// The quantized kernels (f16.hpp and quantize.hpp hold the conversions and formats):
//   dense_f16     f16 panels16 weights
//   dense_i8      i8 panels16x4 weights, inputs quantized per row to u8 in a caller's scratch
//                 of dense_i8_scratch_bytes(m, k) bytes; quantize_activations is its first step
//   add_rows_f16, add_rows_q8, add_rows_q4   embedding bags over f16 / rows_q tables
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "f16.hpp"
#include "i8.hpp"
#include "packed.hpp"
#include "table.hpp"

#if defined(MTLITE_DISPATCH)
#include "dispatch.hpp"
#else
namespace mtlite::kernels {

#if defined(MTLITE_NO_SIMD)
namespace backend = ref;
#else
namespace backend = simd;
#endif

inline namespace MTLITE_TARGET {
inline const KernelTable& table() noexcept { return kTargetTable; }

// What dispatch.hpp's version does, for a program whose compiler flags chose its kernels: an
// Error if MTLITE_KERNELS asks for any other level than those, so it is never ignored.
inline void level_from_environment() {
  const char* env = std::getenv("MTLITE_KERNELS");
  if (env == nullptr || *env == '\0' || std::string_view(env) == kTargetTable.level) return;
  throw Error(std::string("MTLITE_KERNELS: this program's kernels were chosen when it was compiled (level ") +
              kTargetTable.level + "); a -Dsimd=dispatch build chooses them at run time");
}
}  // namespace MTLITE_TARGET

using backend::activation;
using backend::dense;
using backend::mix;
using backend::add_rows;
using backend::softmax;
using backend::dense_f16;
using backend::dense_i8;
using backend::quantize_activations;
using backend::add_rows_f16;
using backend::add_rows_q8;
using backend::add_rows_q4;

}  // namespace mtlite::kernels
#endif

namespace mtlite::kernels {
// xsimd's architecture of the kernels in use, or "scalar".
inline const char* backend_name() noexcept { return table().arch; }
}  // namespace mtlite::kernels
