// The i8 panels16x4 format's runtime side (packed.hpp has the layout): the limit on inputs that
// keeps the int32 accumulators exact, the scratch the kernels quantize activations into, the
// byte offset of one code, and the column sums the loader computes from a file's panels. The
// quantizers that produce these panels are the converter's (offline/convert/quantize.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "packed.hpp"

namespace mtlite::kernels {


// The most inputs of an i8 dense layer: |sum_k (u[k] - zp) Q[n][k]| <= 255 * 127 * K, and the
// kernels compute acc - zp * colsum with both terms up to 255 * 127 * K in int32:
// 2 * 255 * 127 * 32768 = 2,122,383,360 < 2^31.
inline constexpr std::size_t kMaxI8Inputs = 32768;

// Bytes between two quantized activation rows in the i8 scratch: k rounded up to whole 4-groups,
// then to whole cache lines.
constexpr std::size_t i8_row_bytes(std::size_t k) noexcept { return (k + 63) / 64 * 64; }

// Scratch of dense_i8 for m rows of k inputs: m code rows of i8_row_bytes(k), then m float
// scales and m int32 zero points. The pointer must be 4-byte aligned (kAlign is best).
constexpr std::size_t dense_i8_scratch_bytes(std::size_t m, std::size_t k) noexcept {
  return m * (i8_row_bytes(k) + sizeof(float) + sizeof(std::int32_t));
}

// Byte offset of Q[n][k] in panels16x4 panels of k inputs.
constexpr std::size_t i8_index(std::size_t k, std::size_t row, std::size_t col) noexcept {
  const std::size_t G = panel_rows(WeightType::i8, k);
  return (((row / kPanel) * G + col / 4) * kPanel + row % kPanel) * 4 + col % 4;
}

// colsum[0 .. round_to_panel(n)): sum over k of the codes of output n (0 beyond n). The loader
// runs this over every i8 panel of a file, so it sums each 64-byte group position-wise first
// (a loop the compiler vectorises) and folds the 4 bytes of each output at the end; integer
// sums are exact in any order.
inline void compute_colsum(const std::int8_t* panels, std::size_t n, std::size_t k,
                           std::int32_t* colsum) noexcept {
  const std::size_t G = panel_rows(WeightType::i8, k);
  const std::size_t P = panel_count(n);
  for (std::size_t p = 0; p < P; ++p) {
    std::int32_t acc[kPanel * 4] = {};
    const std::int8_t* w = panels + p * G * kPanel * 4;
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t b = 0; b < kPanel * 4; ++b) acc[b] += w[g * kPanel * 4 + b];
    for (std::size_t j = 0; j < kPanel; ++j)
      colsum[p * kPanel + j] = p * kPanel + j < n ? acc[4 * j] + acc[4 * j + 1] + acc[4 * j + 2] + acc[4 * j + 3] : 0;
  }
}

}  // namespace mtlite::kernels
