// The converter's quantizers and packers (FORMAT.md: f16 panels16, i8 panels16x4, u8/u4 rows_q).
// Everything here runs once per model, offline; it allocates nothing and is plain scalar code,
// the same on every target.
//
//   pack_panels_f16    f32 [n][k] -> f16 panels16 (K' = k rounded up to even), round to nearest
//   quantize_dense_i8  f32 [n][k] -> i8 panels16x4 + per-output scale + column sums:
//                        scale[n] = max_k |W[n][k]| / 127, Q = clamp(nearbyint(W / scale), +-127)
//                        (a row whose scale is 0, i.e. all zero or below 127 * 2^-149: scale 1,
//                        codes 0). W[n][k] ~ Q[n][k] * scale[n] within scale[n] / 2.
//   quantize_rows      f32 embedding table [rows][dim] -> rows_q with 8- or 4-bit codes:
//                        offset = min, scale = (max - min) / (2^bits - 1) (constant row:
//                        scale 0), code = clamp(nearbyint((v - offset) / scale), 0, 2^bits - 1)
//                        (scale 0: code 0); v ~ fma(code, scale, offset) within scale / 2.
// The quantizers compute in double and round once to float, so huge values (max - min above
// FLT_MAX) do not overflow; weights must be finite. The runtime side of the i8 format (limits,
// scratch, column sums) is kernels/i8.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../core/dtype.hpp"
#include "../../kernels/f16.hpp"
#include "../../kernels/i8.hpp"
#include "../../kernels/packed.hpp"

namespace mtlite::kernels {

// ---------------------------------------------------------------------------------------------
// f16 panels

// Packs a row-major [n][k] f32 weight into panel_count(n) f16 panels of K' = panel_rows(f16, k)
// rows; writes every element, padding included (zero).
inline void pack_panels_f16(const float* w, std::size_t n, std::size_t k, std::uint16_t* panels) noexcept {
  const std::size_t kp = panel_rows(WeightType::f16, k);
  const std::size_t P = panel_count(n);
  for (std::size_t p = 0; p < P; ++p)
    for (std::size_t c = 0; c < kp; ++c)
      for (std::size_t j = 0; j < kPanel; ++j) {
        const std::size_t r = p * kPanel + j;
        panels[(p * kp + c) * kPanel + j] = r < n && c < k ? f32_to_f16(w[r * k + c]) : std::uint16_t{0};
      }
}

// ---------------------------------------------------------------------------------------------
// i8 dense weights

// Quantizes a row-major [n][k] f32 weight (finite) into panel_count(n) i8 panels16x4, writing
// every byte (padding zero), scale[0 .. round_to_panel(n)) (0 beyond n) and colsum likewise.
inline void quantize_dense_i8(const float* w, std::size_t n, std::size_t k, std::int8_t* panels,
                              float* scale, std::int32_t* colsum) noexcept {
  const std::size_t P = panel_count(n);
  std::memset(panels, 0, P * panel_bytes(WeightType::i8, k));
  for (std::size_t r = 0; r < P * kPanel; ++r) {
    if (r >= n) {
      scale[r] = 0.0f;
      continue;
    }
    const float* row = w + r * k;
    double amax = 0.0;
    for (std::size_t c = 0; c < k; ++c) amax = std::fmax(amax, std::fabs(static_cast<double>(row[c])));
    float s = static_cast<float>(amax / 127.0);
    if (!(s > 0.0f)) {  // all zero, or too small to scale: every code 0
      scale[r] = 1.0f;
      continue;
    }
    scale[r] = s;
    for (std::size_t c = 0; c < k; ++c) {
      double q = std::nearbyint(static_cast<double>(row[c]) / static_cast<double>(s));
      q = q > 127.0 ? 127.0 : q < -127.0 ? -127.0 : q;
      panels[i8_index(k, r, c)] = static_cast<std::int8_t>(q);
    }
  }
  compute_colsum(panels, n, k, colsum);
}

// ---------------------------------------------------------------------------------------------
// Quantized embedding rows (rows_q)

// Quantizes a row-major [rows][dim] f32 table (finite) into rows of rows_q_stride(u8 or
// u4, dim) bytes (format/mtl.hpp): f32 scale, f32 offset, codes (u8, or u4 two per byte, low
// nibble first); every byte is written, padding zero. bits is 8 or 4.
inline void quantize_rows(const float* table, std::size_t rows, std::size_t dim, unsigned bits,
                          std::uint8_t* out) noexcept {
  const auto stride =
      static_cast<std::size_t>(rows_q_stride(bits == 4 ? DType::u4 : DType::u8, dim));
  const double levels = bits == 4 ? 15.0 : 255.0;
  std::memset(out, 0, rows * stride);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* v = table + r * dim;
    std::uint8_t* dst = out + r * stride;
    float lo = 0.0f, hi = 0.0f;
    if (dim) lo = hi = v[0];
    for (std::size_t d = 1; d < dim; ++d) {
      lo = v[d] < lo ? v[d] : lo;
      hi = v[d] > hi ? v[d] : hi;
    }
    const float scale = static_cast<float>((static_cast<double>(hi) - lo) / levels);
    std::memcpy(dst, &scale, 4);
    std::memcpy(dst + 4, &lo, 4);
    std::uint8_t* codes = dst + 8;
    for (std::size_t d = 0; d < dim; ++d) {
      double c = 0.0;
      if (scale > 0.0f) {
        c = std::nearbyint((static_cast<double>(v[d]) - lo) / static_cast<double>(scale));
        c = c < 0.0 ? 0.0 : c > levels ? levels : c;
      }
      const auto code = static_cast<std::uint8_t>(c);
      if (bits == 4)
        codes[d / 2] = static_cast<std::uint8_t>(codes[d / 2] | (d % 2 ? code << 4 : code));
      else
        codes[d] = code;
    }
  }
}

}  // namespace mtlite::kernels
