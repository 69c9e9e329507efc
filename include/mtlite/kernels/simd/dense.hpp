// Vector dense layer over the packed layout (packed.hpp; ref/dense.hpp defines the result).
//
// The work is cut into register tiles: MR input rows x NP panels. For every k the tile loads
// NP*16 weights once and multiplies them by MR broadcast inputs, so the accumulators
// (MR * NP * 16 floats) never leave registers until the bias and activation are applied and the
// tile is stored. Two tile shapes:
//   batch tiles  up to 6 rows x 4 vectors across with 32 registers (four panels on AVX-512, one
//                on NEON), 6 x 2 with AVX2's 16 (one panel): one broadcast input feeds every
//                vector of the tile. The outer loop walks panel groups so that a group's weights
//                stay in cache while every row block of the chunk passes. Rows and panels are cut
//                into blocks of nearly equal size, so that no thin remainder tile is left. On
//                Zen 4 the reference model's layers on 64-row chunks ran at 104 GFLOP/s with
//                12-row x 2-vector tiles cut 12+12+12+12+12+4, at 114 with the same tiles cut
//                11+11+11+11+10+10, and at 115 with 6 x 4 tiles (the FMA peak there is 117).
//   row tiles    1 row x NP_ROW panels, for a single example: eight independent accumulators
//                hide the FMA latency while the weights stream from memory once.
#pragma once

#include <array>
#include <cstddef>
#include <utility>

#include "activation.hpp"
#include "xsimd.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

inline constexpr std::size_t kVecPerPanel = kPanel / kWidth;
// Batch tiles: 4 vectors across with 32 registers, 2 with 16, in whole panels; as many rows as
// leave registers for one k's weights and a broadcast input (6 on AVX-512, AVX2 and NEON).
inline constexpr std::size_t kBatchVecs = kRegisters / 8 > kVecPerPanel ? kRegisters / 8 : kVecPerPanel;
inline constexpr std::size_t kBatchPanels = kBatchVecs / kVecPerPanel;
inline constexpr std::size_t kBatchRows = (kRegisters - kBatchVecs - 1) / kBatchVecs;
// Row tiles: eight vectors across.
inline constexpr std::size_t kRowPanels = 8 / kVecPerPanel >= 1 ? 8 / kVecPerPanel : 1;

namespace detail {

// How a weight element type becomes floats: f32 is loaded as it is (dense_f16.hpp adds f16).
struct F32Weights {
  using type = float;
  static MTLITE_ALWAYS_INLINE vfloat load(const float* w) noexcept { return vfloat::load_unaligned(w); }
};

// An MR-row x NP-panel tile over K inputs; panels are panel_stride elements apart.
template <class Weights, std::size_t MR, std::size_t NP>
void dense_tile(std::size_t K, std::size_t panel_stride, const float* MTLITE_RESTRICT x, std::size_t ldx,
                const typename Weights::type* MTLITE_RESTRICT w, const float* MTLITE_RESTRICT bias,
                const Activation* act, std::size_t cols, float* MTLITE_RESTRICT y,
                std::size_t ldy) noexcept {
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
        wv[p * kVecPerPanel + v] = Weights::load(w + p * panel_stride + k * kPanel + v * kWidth);
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

template <class Weights>
using TileFn = void (*)(std::size_t, std::size_t, const float*, std::size_t, const typename Weights::type*,
                        const float*, const Activation*, std::size_t, float*, std::size_t) noexcept;

// table[np - 1][mr - 1] = dense_tile<Weights, mr, np>
template <class Weights, std::size_t NP, std::size_t... M>
constexpr std::array<TileFn<Weights>, sizeof...(M)> tiles_for_np(std::index_sequence<M...>) {
  return {&dense_tile<Weights, M + 1, NP>...};
}
template <class Weights, std::size_t MRMax, std::size_t... P>
constexpr std::array<std::array<TileFn<Weights>, MRMax>, sizeof...(P)> tile_table(std::index_sequence<P...>) {
  return {tiles_for_np<Weights, P + 1>(std::make_index_sequence<MRMax>{})...};
}

// Calls tile(r, mr, p, np) for the tiles of m rows x `panels` panels: panel groups outside, so
// that a group's weights stay in cache while every row block passes, row blocks inside. Both are
// cut into near-equal blocks of at most max_rows / max_panels: block i of `blocks` holds
// total / blocks, one more for i < total % blocks.
template <class Tile>
MTLITE_ALWAYS_INLINE void for_each_tile(std::size_t m, std::size_t max_rows, std::size_t panels,
                                        std::size_t max_panels, const Tile& tile) noexcept {
  const std::size_t groups = (panels + max_panels - 1) / max_panels;
  const std::size_t blocks = (m + max_rows - 1) / max_rows;
  for (std::size_t g = 0, p = 0; g < groups; ++g) {
    const std::size_t np = panels / groups + (g < panels % groups ? 1 : 0);
    for (std::size_t b = 0, r = 0; b < blocks; ++b) {
      const std::size_t mr = m / blocks + (b < m % blocks ? 1 : 0);
      tile(r, mr, p, np);
      r += mr;
    }
    p += np;
  }
}

// The dense layer for every float-like weight type: row tiles for one example, batch tiles
// otherwise.
template <class Weights>
void dense_panels(std::size_t m, const float* x, std::size_t ldx, const DenseView& L,
                  const typename Weights::type* w, std::size_t panel_stride, float* y,
                  std::size_t ldy) noexcept {
  static constexpr auto row_tiles = tile_table<Weights, 1>(std::make_index_sequence<kRowPanels>{});
  static constexpr auto batch_tiles =
      tile_table<Weights, kBatchRows>(std::make_index_sequence<kBatchPanels>{});
  const std::size_t panels = panel_count(L.n);
  const bool one_row = m == 1;
  for_each_tile(m, one_row ? 1 : kBatchRows, panels, one_row ? kRowPanels : kBatchPanels,
                [&](std::size_t r, std::size_t mr, std::size_t p, std::size_t np) {
                  (one_row ? row_tiles[np - 1][0] : batch_tiles[np - 1][mr - 1])(
                      L.k, panel_stride, x + r * ldx, ldx, w + p * panel_stride, L.bias + p * kPanel,
                      L.act + p, L.n - p * kPanel, y + r * ldy + p * kPanel, ldy);
                });
}

}  // namespace detail

// y[r][0..L.n) = act(L x[r]) for r < m; rows are ldx / ldy floats apart.
inline void dense(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                  std::size_t ldy) noexcept {
  detail::dense_panels<detail::F32Weights>(m, x, ldx, L, L.f32(), L.k * kPanel, y, ldy);
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
