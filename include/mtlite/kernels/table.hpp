// Every kernel the runtime calls, as one value: the table of the kernels compiled into this
// translation unit, for this unit's instruction-set level. kernels/dispatch.hpp picks one of
// several such tables at run time; the tests walk a table to check each entry against ref/.
//
// The names (level and paths) are read inside the unit that compiled the kernels, so a table
// says which code it holds (the dispatch tests check them against the level asked for). The
// tables live in the MTLITE_TARGET namespace like the kernels they point to.
#pragma once

#include <string>

#include "../core/config.hpp"
#include "ref/activation.hpp"
#include "ref/dense.hpp"
#include "ref/dense_f16.hpp"
#include "ref/dense_i8.hpp"
#include "ref/embedding.hpp"
#include "ref/mix.hpp"
#include "ref/softmax.hpp"

#if !defined(MTLITE_NO_SIMD)
#include "simd/activation.hpp"
#include "simd/dense.hpp"
#include "simd/dense_f16.hpp"
#include "simd/dense_i8.hpp"
#include "simd/embedding.hpp"
#include "simd/mix.hpp"
#include "simd/softmax.hpp"
#endif

#define MTLITE_STRINGIFY_(x) #x
#define MTLITE_STRINGIFY(x) MTLITE_STRINGIFY_(x)

namespace mtlite::kernels {

struct KernelTable {
  const char* level;     // "avx512vnni", "avx2", "neon-dot", "scalar", ... (dispatch.hpp)
  const char* arch;      // xsimd's architecture, or "scalar"
  const char* i8_path;   // simd/intrinsics.hpp names them
  const char* f16_path;
  const char* q_path;
  decltype(&ref::activation) activation;
  decltype(&ref::dense) dense;
  decltype(&ref::mix) mix;
  decltype(&ref::add_rows) add_rows;
  decltype(&ref::softmax) softmax;
  decltype(&ref::dense_f16) dense_f16;
  decltype(&ref::dense_i8) dense_i8;
  decltype(&ref::quantize_activations) quantize_activations;
  decltype(&ref::add_rows_f16) add_rows_f16;
  decltype(&ref::add_rows_q8) add_rows_q8;
  decltype(&ref::add_rows_q4) add_rows_q4;
};

// What a table runs, for reports: "avx2 (i8 avx2, f16 f16c, rows_q avx2, xsimd fma3<avx2>)".
inline std::string describe(const KernelTable& t) {
  return std::string(t.level) + " (i8 " + t.i8_path + ", f16 " + t.f16_path + ", rows_q " + t.q_path +
         ", xsimd " + t.arch + ")";
}

inline namespace MTLITE_TARGET {

namespace detail {
// MTLITE_TARGET spelled as a level name: '_' becomes '-' (neon_dot is "neon-dot").
struct LevelName {
  char text[16];
  constexpr explicit LevelName(const char* s) : text{} {
    for (std::size_t i = 0; s[i] != '\0' && i + 1 < sizeof(text); ++i) text[i] = s[i] == '_' ? '-' : s[i];
  }
};
inline constexpr LevelName kTargetLevel{MTLITE_STRINGIFY(MTLITE_TARGET)};
}  // namespace detail

// The scalar references, at any level.
inline constexpr KernelTable kRefTable = {
    "scalar", "scalar", "scalar", "scalar", "scalar",
    &ref::activation, &ref::dense, &ref::mix, &ref::add_rows, &ref::softmax, &ref::dense_f16,
    &ref::dense_i8, &ref::quantize_activations, &ref::add_rows_f16, &ref::add_rows_q8, &ref::add_rows_q4};

#if defined(MTLITE_NO_SIMD)
inline constexpr const KernelTable& kTargetTable = kRefTable;
#else
// The kernels this unit's compiler flags chose.
inline constexpr KernelTable kTargetTable = {
    detail::kTargetLevel.text, simd::arch::name(), simd::i8_path_name(), simd::f16_path_name(),
    simd::q_path_name(),
    &simd::activation, &simd::dense, &simd::mix, &simd::add_rows, &simd::softmax,
    &simd::dense_f16, &simd::dense_i8, &simd::quantize_activations, &simd::add_rows_f16,
    &simd::add_rows_q8, &simd::add_rows_q4};
#endif

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels
