// Vector dense layer over the packed layout (packed.hpp; ref/dense.hpp defines the result).
//
// The work is cut into register tiles: MR input rows x NP panels. For every k the tile loads
// NP*16 weights once and multiplies them by MR broadcast inputs, so the accumulators
// (MR * NP * 16 floats) never leave registers until the bias and activation are applied and the
// tile is stored. Two tile shapes:
//   batch tiles  MR rows x NP_BATCH panels, about 3/4 of the registers as accumulators; the outer
//                loop walks panel groups so that a group's weights stay in L1 while every row
//                block of the chunk passes.
//   row tiles    1 row x NP_ROW panels, for a single example: eight independent accumulators
//                hide the FMA latency while the weights stream from memory once.
#pragma once

#include <array>
#include <cstddef>
#include <utility>

#include "activation.hpp"
#include "xsimd.hpp"

namespace mtlite::kernels::simd {

inline constexpr std::size_t kVecPerPanel = kPanel / kWidth;
// Batch tiles: two vectors across (one panel on AVX2, two on AVX-512), as many rows as fit.
inline constexpr std::size_t kBatchVecs = kVecPerPanel >= 2 ? kVecPerPanel : 2;
inline constexpr std::size_t kBatchPanels = kBatchVecs / kVecPerPanel;
inline constexpr std::size_t kBatchRows =
    (kRegisters - kBatchVecs - 2) / kBatchVecs < 12 ? (kRegisters - kBatchVecs - 2) / kBatchVecs : 12;
// Row tiles: eight vectors across.
inline constexpr std::size_t kRowPanels = 8 / kVecPerPanel >= 1 ? 8 / kVecPerPanel : 1;

namespace detail {

template <std::size_t MR, std::size_t NP>
void dense_tile(std::size_t K, const float* MTLITE_RESTRICT x, std::size_t ldx,
                const float* MTLITE_RESTRICT w, const float* MTLITE_RESTRICT bias,
                const Activation* act, std::size_t cols, float* MTLITE_RESTRICT y,
                std::size_t ldy) noexcept {
  constexpr std::size_t NV = NP * kVecPerPanel;
  const std::size_t panel_stride = K * kPanel;
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
        wv[p * kVecPerPanel + v] = vfloat::load_unaligned(w + p * panel_stride + k * kPanel + v * kWidth);
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

using TileFn = void (*)(std::size_t, const float*, std::size_t, const float*, const float*,
                        const Activation*, std::size_t, float*, std::size_t) noexcept;

// table[mr - 1][np - 1] = dense_tile<mr, np>
template <std::size_t NP, std::size_t... M>
constexpr std::array<TileFn, sizeof...(M)> tiles_for_np(std::index_sequence<M...>) {
  return {&dense_tile<M + 1, NP>...};
}
template <std::size_t MRMax, std::size_t... P>
constexpr std::array<std::array<TileFn, MRMax>, sizeof...(P)> tile_table(std::index_sequence<P...>) {
  return {tiles_for_np<P + 1>(std::make_index_sequence<MRMax>{})...};
}

inline constexpr auto kBatchTiles = tile_table<kBatchRows>(std::make_index_sequence<kBatchPanels>{});
inline constexpr auto kRowTiles = tile_table<1>(std::make_index_sequence<kRowPanels>{});

}  // namespace detail

// y[r][0..L.n) = act(L x[r]) for r < m; rows are ldx / ldy floats apart.
inline void dense(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                  std::size_t ldy) noexcept {
  const std::size_t panels = panel_count(L.n);
  if (m == 1) {
    for (std::size_t p = 0; p < panels; p += kRowPanels) {
      const std::size_t np = panels - p < kRowPanels ? panels - p : kRowPanels;
      detail::kRowTiles[np - 1][0](L.k, x, ldx, L.f32() + p * L.k * kPanel, L.bias + p * kPanel,
                                   L.act + p, L.n - p * kPanel, y + p * kPanel, ldy);
    }
    return;
  }
  for (std::size_t p = 0; p < panels; p += kBatchPanels) {
    const std::size_t np = panels - p < kBatchPanels ? panels - p : kBatchPanels;
    for (std::size_t r = 0; r < m; r += kBatchRows) {
      const std::size_t mr = m - r < kBatchRows ? m - r : kBatchRows;
      detail::kBatchTiles[np - 1][mr - 1](L.k, x + r * ldx, ldx, L.f32() + p * L.k * kPanel,
                                          L.bias + p * kPanel, L.act + p, L.n - p * kPanel,
                                          y + r * ldy + p * kPanel, ldy);
    }
  }
}

}  // namespace mtlite::kernels::simd
