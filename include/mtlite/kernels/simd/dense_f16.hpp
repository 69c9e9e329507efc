// Vector dense layer with f16 weights (ref/dense_f16.hpp defines the result): the register tiles
// of simd/dense.hpp (same shapes, same traversal), with each k's 16 weights of a panel widened
// by vcvtph2ps as they are loaded (one 512-bit or two 256-bit conversions; four fcvtl on NEON). The conversion is
// exact, so this is simd::dense on the weights f16_to_f32(W); the sums differ from the
// reference only by the order of roundings, as for f32. Without AVX-512 F or AVX2 + F16C the
// scalar reference runs (AArch64 always has the conversion).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "../ref/dense_f16.hpp"
#include "activation.hpp"
#include "dense.hpp"
#include "intrinsics.hpp"

namespace mtlite::kernels::simd {

#if defined(MTLITE_F16_AVX512) || defined(MTLITE_F16_F16C) || defined(MTLITE_F16_NEON)
#define MTLITE_F16_SIMD 1

namespace detail_f16 {

// The v-th vector of 16 halves at w, widened.
MTLITE_ALWAYS_INLINE vfloat load_f16(const std::uint16_t* w) noexcept {
#if defined(MTLITE_F16_AVX512)
  static_assert(kWidth == 16, "AVX-512: 16-float vectors");
  return vfloat(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
#elif defined(MTLITE_F16_F16C)
  static_assert(kWidth == 8, "AVX2: 8-float vectors");
  return vfloat(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
#else
  static_assert(kWidth == 4, "NEON: 4-float vectors");
  return vfloat(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w))));
#endif
}

template <std::size_t MR, std::size_t NP>
void dense_f16_tile(std::size_t K, std::size_t panel_stride, const float* MTLITE_RESTRICT x, std::size_t ldx,
                    const std::uint16_t* MTLITE_RESTRICT w, const float* MTLITE_RESTRICT bias,
                    const Activation* act, std::size_t cols, float* MTLITE_RESTRICT y, std::size_t ldy) noexcept {
  constexpr std::size_t NV = NP * kVecPerPanel;
  vfloat acc[MR][NV];
  MTLITE_UNROLL
  for (std::size_t v = 0; v < NV; ++v) {
    const vfloat b = vfloat::load_unaligned(bias + v * kWidth);
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m) acc[m][v] = b;
  }
  for (std::size_t k = 0; k < K; ++k) {
    vfloat wv[NV];
    MTLITE_UNROLL
    for (std::size_t p = 0; p < NP; ++p)
      MTLITE_UNROLL
      for (std::size_t v = 0; v < kVecPerPanel; ++v)
        wv[p * kVecPerPanel + v] = load_f16(w + p * panel_stride + k * kPanel + v * kWidth);
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m) {
      const vfloat xb(x[m * ldx + k]);
      MTLITE_UNROLL
      for (std::size_t v = 0; v < NV; ++v) acc[m][v] = xsimd::fma(xb, wv[v], acc[m][v]);
    }
  }
  MTLITE_UNROLL
  for (std::size_t p = 0; p < NP; ++p) {
    const Activation a = act[p];
    const std::size_t c0 = p * kPanel;
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m) {
      float* yr = y + m * ldy + c0;
      if (c0 + kPanel <= cols) {
        for (std::size_t v = 0; v < kVecPerPanel; ++v)
          activate(a, acc[m][p * kVecPerPanel + v]).store_unaligned(yr + v * kWidth);
      } else if (c0 < cols) {
        alignas(kAlign) float tmp[kPanel];
        for (std::size_t v = 0; v < kVecPerPanel; ++v)
          activate(a, acc[m][p * kVecPerPanel + v]).store_aligned(tmp + v * kWidth);
        for (std::size_t j = 0; j < cols - c0; ++j) yr[j] = tmp[j];
      }
    }
  }
}

using F16TileFn = void (*)(std::size_t, std::size_t, const float*, std::size_t, const std::uint16_t*,
                           const float*, const Activation*, std::size_t, float*, std::size_t) noexcept;

template <std::size_t NP, std::size_t... M>
constexpr std::array<F16TileFn, sizeof...(M)> f16_tiles_for_np(std::index_sequence<M...>) {
  return {&dense_f16_tile<M + 1, NP>...};
}
// table[np - 1][mr - 1] = dense_f16_tile<mr, np>
template <std::size_t MRMax, std::size_t... P>
constexpr std::array<std::array<F16TileFn, MRMax>, sizeof...(P)> f16_tile_table(std::index_sequence<P...>) {
  return {f16_tiles_for_np<P + 1>(std::make_index_sequence<MRMax>{})...};
}

inline constexpr auto kF16BatchTiles = f16_tile_table<kBatchRows>(std::make_index_sequence<kBatchPanels>{});
inline constexpr auto kF16RowTiles = f16_tile_table<1>(std::make_index_sequence<kRowPanels>{});

}  // namespace detail_f16
#endif

// y[r][0..L.n) = act(L x[r]) for r < m (rows ldx / ldy floats apart), L.type == f16.
inline void dense_f16(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                      std::size_t ldy) noexcept {
#if defined(MTLITE_F16_SIMD)
  using namespace detail_f16;
  const std::size_t panels = panel_count(L.n);
  const std::size_t stride = panel_rows(WeightType::f16, L.k) * kPanel;
  if (m == 1) {
    for (std::size_t p = 0; p < panels; p += kRowPanels) {
      const std::size_t np = panels - p < kRowPanels ? panels - p : kRowPanels;
      kF16RowTiles[np - 1][0](L.k, stride, x, ldx, L.f16() + p * stride, L.bias + p * kPanel, L.act + p,
                              L.n - p * kPanel, y + p * kPanel, ldy);
    }
    return;
  }
  for (std::size_t p = 0; p < panels; p += kBatchPanels) {
    const std::size_t np = panels - p < kBatchPanels ? panels - p : kBatchPanels;
    for (std::size_t r = 0; r < m; r += kBatchRows) {
      const std::size_t mr = m - r < kBatchRows ? m - r : kBatchRows;
      kF16BatchTiles[np - 1][mr - 1](L.k, stride, x + r * ldx, ldx, L.f16() + p * stride, L.bias + p * kPanel,
                                     L.act + p, L.n - p * kPanel, y + r * ldy + p * kPanel, ldy);
    }
  }
#else
  ref::dense_f16(m, x, ldx, L, y, ldy);
#endif
}

}  // namespace mtlite::kernels::simd
