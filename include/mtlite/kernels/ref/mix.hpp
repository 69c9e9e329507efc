// Scalar expert mixing: out[r] = sum_e gates[r][e] * experts[e][r] over `width` values.
// Expert e's row r starts at experts[e] + r * expert_ld[e]: experts may live in different
// scratch buffers (PLE mixes a task's own experts with the shared ones).
#pragma once

#include <cstddef>

#include "../../core/config.hpp"

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

inline void mix(std::size_t rows, const float* gates, std::size_t ldg, std::size_t n_experts,
                const float* const* experts, const std::size_t* expert_ld, std::size_t width,
                float* out, std::size_t ldo) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    float* o = out + r * ldo;
    for (std::size_t h = 0; h < width; ++h) o[h] = 0.0f;
    for (std::size_t e = 0; e < n_experts; ++e) {
      const float g = gates[r * ldg + e];
      const float* ex = experts[e] + r * expert_ld[e];
      for (std::size_t h = 0; h < width; ++h) o[h] += g * ex[h];
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
