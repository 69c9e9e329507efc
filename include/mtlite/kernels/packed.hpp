// The kernel layout of a dense layer, shared by the scalar and SIMD kernels.
//
// A layer computes y[n] = act(bias[n] + sum_k W[n][k] * x[k]) for n < N outputs, k < K inputs.
// Its weights are cut into P = ceil(N / 16) panels of 16 output columns, each stored k-major:
//
//   panels  P x K x 16 floats   panels[(p*K + k)*16 + j] = W[16p + j][k]   (0 when 16p + j >= N)
//   bias    P x 16 floats       bias[16p + j]            = b[16p + j]      (0 beyond N)
//   act     P activation codes  one per panel
//
// Why: for every k the kernel loads 16 consecutive weights (one 64-byte line, one AVX-512
// register, two AVX2 or four NEON registers) and multiplies them by one broadcast input, so the
// weights stream through memory exactly once and no horizontal sum is needed. 16 is fixed (not
// the machine's vector width) so that a packed layer means the same bytes on every target.
// The per-panel activation lets one packed matrix hold several fused layers, e.g. experts
// (ReLU) beside gate logits (identity), each padded to whole panels.
#pragma once

#include <cstddef>

#include "../spec.hpp"

namespace mtlite::kernels {

inline constexpr std::size_t kPanel = 16;

constexpr std::size_t panel_count(std::size_t n) noexcept { return (n + kPanel - 1) / kPanel; }
constexpr std::size_t round_to_panel(std::size_t n) noexcept { return panel_count(n) * kPanel; }

struct DenseView {
  std::size_t k = 0;  // inputs
  std::size_t n = 0;  // outputs written (columns of y)
  const float* panels = nullptr;
  const float* bias = nullptr;
  const Activation* act = nullptr;
};

// Packs a row-major [n][k] weight into panel_count(n) panels (the caller zeroed `panels`).
inline void pack_panels(const float* w, std::size_t n, std::size_t k, float* panels) noexcept {
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < k; ++c)
      panels[((r / kPanel) * k + c) * kPanel + r % kPanel] = w[r * k + c];
}

}  // namespace mtlite::kernels
