// The converter's quantizers and packers (FORMAT.md: f16 panels16, i8 panels16x4, u8/u4 rows_q).
// Everything here runs once per model, offline; it allocates nothing and is plain scalar code,
// the same on every target.
//
//   pack_panels_f16    f32 [n][k] -> f16 panels16 (K' = k rounded up to even), round to nearest
//   quantize_dense_i8  f32 [n][k] -> i8 panels16x4 + per-output scale + column sums:
//                        scale[n] = max_k |W[n][k]| / 127, Q = clamp(nearbyint(W / scale), +-127)
//                        (a row whose scale is 0, i.e. all zero or below 127 * 2^-149: scale 1,
//                        codes 0). W[n][k] ~ Q[n][k] * scale[n] within scale[n] / 2.
//   quantize_rows      f32 embedding table [rows][dim] -> rows_q with 8- or 4-bit codes,
//                        per row the (scale, offset) with the least squared error that a search
//                        finds (below); code = clamp(nearbyint((v - offset) / scale), 0, 2^bits - 1)
//                        (scale 0: code 0), v ~ fma(code, scale, offset).
// The quantizers compute in double and round once to float, so huge values (max - min above
// FLT_MAX) do not overflow; weights must be finite. The runtime side of the i8 format (limits,
// scratch, column sums) is kernels/i8.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

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
    // (a compare, not std::fmax: GCC 12 for AArch64 crashes vectorising an fmax reduction)
    for (std::size_t c = 0; c < k; ++c) {
      const double a = std::fabs(static_cast<double>(row[c]));
      amax = a > amax ? a : amax;
    }
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

// One row's scale and offset. min/max (offset = min, scale = range / levels) keeps both extremes
// exact but spends levels on them: trained rows are near-Gaussian, so most values fall on a few
// codes. fit_row_scale also tries grids of levels * (1 +- spread) steps over the range (finer
// ones clip the top values), fits scale and offset to each grid's codes by least squares, and
// keeps the pair with the least squared error of the runtime's fma reconstruction after
// re-coding (in the manner of ggml's k-quants). min/max is the first candidate and wins ties,
// so no row gets worse; a pair that dequantizes some value to a non-finite float never wins.
struct RowScale {
  float scale = 0.0f, offset = 0.0f;
};

namespace detail {

inline double row_code(double v, float scale, float offset, double levels) noexcept {
  if (!(scale > 0.0f)) return 0.0;
  const double c = std::nearbyint((v - offset) / static_cast<double>(scale));
  return c < 0.0 ? 0.0 : c > levels ? levels : c;
}

// The squared error of `v` quantized with q, or infinity when some value dequantizes to a
// non-finite float.
inline double row_error(const float* v, std::size_t dim, RowScale q, double levels) noexcept {
  double err = 0.0;
  for (std::size_t d = 0; d < dim; ++d) {
    const float x = std::fma(static_cast<float>(row_code(v[d], q.scale, q.offset, levels)), q.scale, q.offset);
    if (!std::isfinite(x)) return INFINITY;
    const double e = static_cast<double>(x) - v[d];
    err += e * e;
  }
  return err;
}

// The least-squares scale and offset for v's codes on the grid of `steps` steps over
// [lo, lo + range] (codes above levels clamped), or nothing when they are not a usable pair
// (one code for every value; not finite, or scale not above 0, as floats).
inline std::optional<RowScale> fit_grid(const float* v, std::size_t dim, float lo, double range, double steps,
                                        double levels) noexcept {
  double sc = 0, scc = 0, sv = 0, scv = 0;
  for (std::size_t d = 0; d < dim; ++d) {
    double c = std::nearbyint((static_cast<double>(v[d]) - lo) * steps / range);
    c = c > levels ? levels : c;
    sc += c;
    scc += c * c;
    sv += v[d];
    scv += c * v[d];
  }
  const auto n = static_cast<double>(dim);
  const double det = n * scc - sc * sc;
  if (!(det > 0.0)) return std::nullopt;
  const RowScale q{static_cast<float>((n * scv - sc * sv) / det), static_cast<float>((scc * sv - sc * scv) / det)};
  if (!(q.scale > 0.0f) || !std::isfinite(q.scale) || !std::isfinite(q.offset)) return std::nullopt;
  return q;
}

}  // namespace detail

inline RowScale fit_row_scale(const float* v, std::size_t dim, unsigned bits) noexcept {
  const double levels = bits == 4 ? 15.0 : 255.0;
  float lo = 0.0f, hi = 0.0f;
  if (dim) lo = hi = v[0];
  for (std::size_t d = 1; d < dim; ++d) {
    lo = v[d] < lo ? v[d] : lo;
    hi = v[d] > hi ? v[d] : hi;
  }
  const double range = static_cast<double>(hi) - lo;
  RowScale best{static_cast<float>(range / levels), lo};
  if (!(range > 0.0) || dim < 3) return best;  // constant, or every value an extreme: exact
  double best_err = detail::row_error(v, dim, best, levels);
  constexpr int tries = 20;  // per side; a finer or wider search gained nothing on census-income
  constexpr double spread = 0.3;
  for (int t = -tries; t <= tries; ++t) {
    const std::optional<RowScale> q = detail::fit_grid(v, dim, lo, range, levels * (1.0 + spread * t / tries), levels);
    if (!q) continue;
    const double err = detail::row_error(v, dim, *q, levels);
    if (err < best_err) {
      best = *q;
      best_err = err;
    }
  }
  return best;
}

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
    const RowScale q = fit_row_scale(v, dim, bits);
    std::memcpy(dst, &q.scale, 4);
    std::memcpy(dst + 4, &q.offset, 4);
    std::uint8_t* codes = dst + 8;
    for (std::size_t d = 0; d < dim; ++d) {
      const auto code = static_cast<std::uint8_t>(detail::row_code(v[d], q.scale, q.offset, levels));
      if (bits == 4)
        codes[d / 2] = static_cast<std::uint8_t>(codes[d / 2] | (d % 2 ? code << 4 : code));
      else
        codes[d] = code;
    }
  }
}

}  // namespace mtlite::kernels
