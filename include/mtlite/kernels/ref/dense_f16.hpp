// Scalar dense layer with f16 weights (panels16, K' = K rounded up to even rows per panel;
// packed.hpp / FORMAT.md): ref/dense.hpp with every weight widened exactly to float first, so
// the result is the f32 layer's for the weights f16_to_f32(W).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../core/config.hpp"
#include "../f16.hpp"
#include "../packed.hpp"
#include "activation.hpp"

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

// y[r][0..L.n) = act(L x[r]) for r < m (rows ldx / ldy floats apart), L.type == f16.
inline void dense_f16(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                      std::size_t ldy) noexcept {
  const std::size_t panels = panel_count(L.n);
  const std::size_t kp = panel_rows(WeightType::f16, L.k);
  for (std::size_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    for (std::size_t p = 0; p < panels; ++p) {
      float acc[kPanel];
      for (std::size_t j = 0; j < kPanel; ++j) acc[j] = L.bias[p * kPanel + j];
      const std::uint16_t* w = L.f16() + p * kp * kPanel;
      for (std::size_t k = 0; k < L.k; ++k)
        for (std::size_t j = 0; j < kPanel; ++j) acc[j] += xr[k] * f16_to_f32(w[k * kPanel + j]);
      const std::size_t cols = L.n - p * kPanel < kPanel ? L.n - p * kPanel : kPanel;
      for (std::size_t j = 0; j < cols; ++j) yr[p * kPanel + j] = activate(L.act[p], acc[j]);
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
