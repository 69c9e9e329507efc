// Scalar dense layer over the packed layout (packed.hpp): the reference for the SIMD kernel and
// the portable path. One output row at a time, one panel at a time, 16 accumulators.
#pragma once

#include <cstddef>

#include "../../core/config.hpp"
#include "../packed.hpp"
#include "activation.hpp"

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

// y[r][0..L.n) = act(L x[r]) for r < m; rows are ldx / ldy floats apart.
inline void dense(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                  std::size_t ldy) noexcept {
  const std::size_t panels = panel_count(L.n);
  for (std::size_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    for (std::size_t p = 0; p < panels; ++p) {
      float acc[kPanel];
      for (std::size_t j = 0; j < kPanel; ++j) acc[j] = L.bias[p * kPanel + j];
      const float* w = L.f32() + p * L.k * kPanel;
      for (std::size_t k = 0; k < L.k; ++k)
        for (std::size_t j = 0; j < kPanel; ++j) acc[j] += xr[k] * w[k * kPanel + j];
      const std::size_t cols = L.n - p * kPanel < kPanel ? L.n - p * kPanel : kPanel;
      for (std::size_t j = 0; j < cols; ++j) yr[p * kPanel + j] = activate(L.act[p], acc[j]);
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
