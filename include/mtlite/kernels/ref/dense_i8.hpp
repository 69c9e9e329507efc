// Scalar int8 dense layer (weights i8 panels16x4, packed.hpp / FORMAT.md): the reference for the
// SIMD kernel, which must produce the same bytes and the same float bits.
//
// Weights are symmetric per output: W[n][k] ~ Q[n][k] * scale[n], Q in -127..127. Each input row
// r is quantized asymmetrically to bytes u[k] = x[k] / sx + zp, and
//
//   acc[n]  = sum_k u[k] Q[n][k]                          int32, exact (K <= kMaxI8Inputs)
//   y[r][n] = act(fma(float(acc[n] - zp * colsum[n]), sx * scale[n], bias[n]))
//
// since sum_k (u[k] - zp) Q[n][k] * sx * scale[n] ~ sum_k x[k] W[n][k]. sx * scale[n] is one float
// multiply, float(...) rounds to nearest, fma rounds once: the SIMD epilogue does exactly these
// operations, so both backends give the same pre-activation bits.
//
// quantize_activations: the input quantizer, exactly these float operations in this order (both
// backends; the SIMD one is the same operations lane by lane, so the bytes agree):
//   lo = min(0, min_k x[k]),  hi = max(0, max_k x[k])          (min/max are exact)
//   hi - lo >= 2^-100:  sx = (hi - lo) / 255.0f,  inv = 255.0f / (hi - lo)
//   else:               sx = 1, inv = 1    (hi == lo, i.e. x == 0, and rows so tiny that
//                                           255 / (hi - lo) could overflow: every code is 0)
//   zp   = clamp((int) nearbyint(-lo * inv), 0, 255)
//   u[k] = clamp((int) nearbyint(x[k] * inv) + zp, 0, 255)      for k < K
//   u[k] = 0                                                    for K <= k < 4 ceil(K / 4)
// nearbyint rounds to nearest even in the default rounding mode (as vcvtps2dq does). The
// zero point makes 0 exact (zero padding and ReLU zeros cost nothing) and the range always
// holds 0. The error of one product term is at most |W| sx / 2 + |x| scale / 2
// (tests/quant_test.cpp).
//   A row that holds Inf or NaN, or whose range hi - lo overflows (activations that overflowed:
//   huge weights or inputs), cannot be quantized (converting it to int is undefined): its codes
//   are all 0, its zero point 0 and its scale NaN, so that its outputs are NaN in every backend.
#pragma once

#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../../core/config.hpp"
#include "../../core/finite.hpp"
#include "../i8.hpp"
#include "../packed.hpp"
#include "activation.hpp"

namespace mtlite::kernels {

// The quantized rows in a dense_i8 scratch (quantize.hpp: dense_i8_scratch_bytes).
struct I8Rows {
  std::uint8_t* codes;  // row r at codes + r * ld
  std::size_t ld;
  float* scale;
  std::int32_t* zp;
};
inline I8Rows i8_rows(std::uint8_t* scratch, std::size_t m, std::size_t k) noexcept {
  assert(reinterpret_cast<std::uintptr_t>(scratch) % 4 == 0);
  const std::size_t ld = i8_row_bytes(k);
  float* scale = reinterpret_cast<float*>(scratch + m * ld);
  return {scratch, ld, scale, reinterpret_cast<std::int32_t*>(scale + m)};
}

// The per-row parameters of quantize_activations, from the row's min and max (shared by the
// backends: every operation is scalar).
struct I8RowParams {
  float scale, inv;
  std::int32_t zp;
};
inline I8RowParams i8_row_params(float mn, float mx) noexcept {
  const float lo = mn < 0.0f ? mn : 0.0f;
  const float hi = mx > 0.0f ? mx : 0.0f;
  I8RowParams p{1.0f, 1.0f, 0};
  if (hi - lo >= 0x1p-100f) {
    p.scale = (hi - lo) / 255.0f;
    p.inv = 255.0f / (hi - lo);
  }
  // Clamped as a float: for a row holding an infinity, -lo * inv is NaN (inf * 0), and converting
  // NaN to int is undefined. i8_row_quantizable refuses such rows; their zero point is unused.
  const float zp = std::nearbyint(-lo * p.inv);
  p.zp = zp > 0.0f ? (zp < 255.0f ? static_cast<std::int32_t>(zp) : 255) : 0;
  return p;
}

// Whether row x[0..k), whose scale i8_row_params gave, can be quantized; when not, writes the codes (the
// padded row of ceil(k / 4) 4-groups), the scale and the zero point of a row whose outputs are NaN.
inline bool i8_row_quantizable(const float* x, std::size_t k, float scale, std::uint8_t* u, float* row_scale,
                               std::int32_t* row_zp) noexcept {
  if (scale <= std::numeric_limits<float>::max() && internal::first_non_finite(x, k) == k) return true;
  for (std::size_t c = 0; c < (k + 3) / 4 * 4; ++c) u[c] = 0;
  *row_scale = std::numeric_limits<float>::quiet_NaN();
  *row_zp = 0;
  return false;
}

}  // namespace mtlite::kernels

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

// Quantizes m rows of k floats (ldx apart) into u (ldu bytes apart, ldu >= 4 ceil(k / 4)), with
// their scales and zero points.
inline void quantize_activations(std::size_t m, const float* x, std::size_t ldx, std::size_t k,
                                 std::uint8_t* u, std::size_t ldu, float* scale,
                                 std::int32_t* zp) noexcept {
  for (std::size_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    std::uint8_t* ur = u + r * ldu;
    float mn = 0.0f, mx = 0.0f;
    for (std::size_t c = 0; c < k; ++c) {
      mn = xr[c] < mn ? xr[c] : mn;
      mx = xr[c] > mx ? xr[c] : mx;
    }
    const I8RowParams p = i8_row_params(mn, mx);
    if (!i8_row_quantizable(xr, k, p.scale, ur, scale + r, zp + r)) continue;
    for (std::size_t c = 0; c < k; ++c) {
      const int q = static_cast<int>(std::nearbyint(xr[c] * p.inv)) + p.zp;
      ur[c] = static_cast<std::uint8_t>(q < 0 ? 0 : q > 255 ? 255 : q);
    }
    for (std::size_t c = k; c < (k + 3) / 4 * 4; ++c) ur[c] = 0;
    scale[r] = p.scale;
    zp[r] = p.zp;
  }
}

// y[r][0..L.n) = act(L x[r]) for r < m (rows ldx / ldy floats apart), L.type == i8, with
// dense_i8_scratch_bytes(m, L.k) bytes of scratch (4-byte aligned).
inline void dense_i8(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                     std::size_t ldy, std::uint8_t* scratch) noexcept {
  assert(L.k <= kMaxI8Inputs);
  const I8Rows q = i8_rows(scratch, m, L.k);
  quantize_activations(m, x, ldx, L.k, q.codes, q.ld, q.scale, q.zp);
  const std::size_t panels = panel_count(L.n);
  const std::size_t G = panel_rows(WeightType::i8, L.k);
  for (std::size_t r = 0; r < m; ++r) {
    const std::uint8_t* u = q.codes + r * q.ld;
    float* yr = y + r * ldy;
    for (std::size_t p = 0; p < panels; ++p) {
      std::int32_t acc[kPanel] = {};
      const std::int8_t* w = L.i8() + p * G * kPanel * 4;
      for (std::size_t g = 0; g < G; ++g)
        for (std::size_t j = 0; j < kPanel; ++j)
          for (std::size_t i = 0; i < 4; ++i)
            acc[j] += static_cast<std::int32_t>(u[4 * g + i]) * w[(g * kPanel + j) * 4 + i];
      const std::size_t cols = L.n - p * kPanel < kPanel ? L.n - p * kPanel : kPanel;
      for (std::size_t j = 0; j < cols; ++j) {
        const std::size_t n = p * kPanel + j;
        const float v = std::fma(static_cast<float>(acc[j] - q.zp[r] * L.colsum[n]),
                                 q.scale[r] * L.scale[n], L.bias[n]);
        yr[n] = activate(L.act[p], v);
      }
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
