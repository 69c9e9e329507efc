// The kernel layout of a dense layer, shared by the scalar and SIMD kernels and by the .mtl file
// (FORMAT.md, layouts panels16 and panels16x4).
//
// A layer computes y[n] = act(bias[n] + sum_k W[n][k] * x[k]) for n < N outputs, k < K inputs.
// Its weights are cut into P = ceil(N / 16) panels of 16 output columns, each stored k-major:
//
//   f32, f16  panels  P x K' x 16 elements   [(p*K' + k)*16 + j] = W[16p + j][k]  (0 beyond N)
//             K' = K for f32, K rounded up to even for f16: every panel is whole 64-byte lines
//   i8        panels  P x ceil(K/4) x 16 x 4 bytes   [((p*G + g)*16 + j)*4 + i] = Q[16p + j][4g + i]
//             (G = ceil(K/4); 0 beyond N and K), with W[n][k] = Q[n][k] * scale[n]
//   bias      P x 16 floats                   (0 beyond N)
//   scale     P x 16 floats, i8 only          (0 beyond N)
//   colsum    P x 16 int32, i8 only           sum_k Q[n][k]: computed when a model is loaded
//   act       P activation codes              one per panel
//
// Why: for every k the f32 kernel loads 16 consecutive weights (one 64-byte line, one AVX-512
// register, two AVX2 or four NEON registers) and multiplies them by one broadcast input, so the
// weights stream through memory exactly once and no horizontal sum is needed. The i8 layout
// groups four k per output because the integer dot-product instructions (VNNI vpdpbusd, NEON
// usdot) multiply and add four byte pairs into each 32-bit lane. 16 is fixed (not the machine's
// vector width) so that a packed layer means the same bytes on every target. The per-panel
// activation lets one packed matrix hold several fused layers, e.g. experts (ReLU) beside gate
// logits (identity), each padded to whole panels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../core/activation.hpp"

namespace mtlite::kernels {

inline constexpr std::size_t kPanel = 16;

constexpr std::size_t panel_count(std::size_t n) noexcept { return (n + kPanel - 1) / kPanel; }
constexpr std::size_t round_to_panel(std::size_t n) noexcept { return panel_count(n) * kPanel; }

enum class WeightType : std::uint8_t { f32, f16, i8 };

// Rows of k per panel in the f32/f16 layout (K'), and 4-groups of k in the i8 layout.
constexpr std::size_t panel_rows(WeightType t, std::size_t k) noexcept {
  return t == WeightType::f16 ? (k + 1) / 2 * 2 : t == WeightType::i8 ? (k + 3) / 4 : k;
}
// Bytes of one panel.
constexpr std::size_t panel_bytes(WeightType t, std::size_t k) noexcept {
  return t == WeightType::f32 ? k * kPanel * 4 : t == WeightType::f16 ? panel_rows(t, k) * kPanel * 2
                                                                       : panel_rows(t, k) * kPanel * 4;
}

struct DenseView {
  std::size_t k = 0;  // inputs
  std::size_t n = 0;  // outputs written (columns of y)
  const void* panels = nullptr;
  const float* bias = nullptr;
  const Activation* act = nullptr;
  WeightType type = WeightType::f32;
  const float* scale = nullptr;          // i8
  const std::int32_t* colsum = nullptr;  // i8

  const float* f32() const noexcept { return static_cast<const float*>(panels); }
  const std::uint16_t* f16() const noexcept { return static_cast<const std::uint16_t*>(panels); }
  const std::int8_t* i8() const noexcept { return static_cast<const std::int8_t*>(panels); }
};

// Packs a row-major [n][k] f32 weight into panel_count(n) panels (the caller zeroed `panels`).
inline void pack_panels(const float* w, std::size_t n, std::size_t k, float* panels) noexcept {
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < k; ++c)
      panels[((r / kPanel) * k + c) * kPanel + r % kPanel] = w[r * k + c];
}

}  // namespace mtlite::kernels
