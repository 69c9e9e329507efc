// Vector expert mixing (ref/mix.hpp defines it): for each row, blocks of up to four vectors of
// the output stay in registers while the experts stream past.
#pragma once

#include <cstddef>

#include "xsimd.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

inline void mix(std::size_t rows, const float* gates, std::size_t ldg, std::size_t n_experts,
                const float* const* experts, const std::size_t* expert_ld, std::size_t width,
                float* out, std::size_t ldo) noexcept {
  constexpr std::size_t kBlock = 4 * kWidth;
  for (std::size_t r = 0; r < rows; ++r) {
    const float* g = gates + r * ldg;
    float* o = out + r * ldo;
    std::size_t h = 0;
    for (; h + kBlock <= width; h += kBlock) {
      vfloat a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
      for (std::size_t e = 0; e < n_experts; ++e) {
        const float* ex = experts[e] + r * expert_ld[e] + h;
        const vfloat ge(g[e]);
        a0 = xsimd::fma(ge, vfloat::load_unaligned(ex), a0);
        a1 = xsimd::fma(ge, vfloat::load_unaligned(ex + kWidth), a1);
        a2 = xsimd::fma(ge, vfloat::load_unaligned(ex + 2 * kWidth), a2);
        a3 = xsimd::fma(ge, vfloat::load_unaligned(ex + 3 * kWidth), a3);
      }
      a0.store_unaligned(o + h);
      a1.store_unaligned(o + h + kWidth);
      a2.store_unaligned(o + h + 2 * kWidth);
      a3.store_unaligned(o + h + 3 * kWidth);
    }
    for (; h + kWidth <= width; h += kWidth) {
      vfloat a(0.0f);
      for (std::size_t e = 0; e < n_experts; ++e)
        a = xsimd::fma(vfloat(g[e]), vfloat::load_unaligned(experts[e] + r * expert_ld[e] + h), a);
      a.store_unaligned(o + h);
    }
    for (; h < width; ++h) {
      float a = 0.0f;
      for (std::size_t e = 0; e < n_experts; ++e) a += g[e] * experts[e][r * expert_ld[e] + h];
      o[h] = a;
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
