// The trainer's vector loops (math.hpp says what each computes and how it is called), compiled
// once per instruction-set level like the runtime's kernels: everything here lives in the
// MTLITE_TARGET namespace, and MathTable gathers one compiled set. With MTLITE_NO_SIMD they are
// plain loops.
//
// Every loop is written for any vector width that divides kPad, the padding of the trainer's
// rows, so that all levels share one memory layout.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <utility>

#include "../../core/config.hpp"
#include "../../kernels/ref/activation.hpp"
#include "../../kernels/ref/softmax.hpp"
#include "../../kernels/table.hpp"
#include "../../spec.hpp"
#include "optimizer.hpp"

#if !defined(MTLITE_NO_SIMD)
#include "../../kernels/simd/xsimd.hpp"
#endif

namespace mtlite::train::math {

// The padding of the trainer's rows (see math.hpp): the widest vector of any level (AVX-512's
// 16 floats), so that the layout does not depend on the level that runs.
#if defined(MTLITE_NO_SIMD)
inline constexpr std::size_t kPad = 1;
#else
inline constexpr std::size_t kPad = 16;
#endif

constexpr std::size_t round_up(std::size_t n, std::size_t m) { return (n + m - 1) / m * m; }

// What the kernel may do beyond the N columns of C.
struct GemmOptions {
  const float* bias = nullptr;   // C starts from bias[n] (when !accumulate; null = 0)
  const float* floor = nullptr;  // then C = max(C, floor[n]) (ReLU columns 0, others -inf)
  bool accumulate = false;       // C += A B instead
  // C's rows may be read and written for round_up(N, kPad) columns: an activation buffer with
  // padded rows, or an accumulation whose B is zero past N (the extra lanes are rewritten with
  // their own value). Then no lane needs the slow partial path.
  bool padded = false;
};

namespace impl {
inline namespace MTLITE_TARGET {

#if !defined(MTLITE_NO_SIMD)
using kernels::simd::vfloat;
using kernels::simd::kWidth;
static_assert(kPad % kWidth == 0, "a padded row must be a whole number of vectors");
// Register tile: MR rows (broadcasts) x up to NV vectors of B. MR * NV accumulators plus NV
// B vectors plus one broadcast stay within the architectural registers.
inline constexpr std::size_t kTileRows = kernels::simd::kRegisters >= 32 ? 8 : 4;
inline constexpr std::size_t kTileVecs = 3;

namespace detail {

template <std::size_t MR, std::size_t NV>
void gemm_tile(std::size_t K, const float* MTLITE_RESTRICT a, std::size_t am, std::size_t ak,
               const float* MTLITE_RESTRICT b, std::size_t ldb, float* MTLITE_RESTRICT c,
               std::size_t ldc, std::size_t cols, const float* bias, const float* floor,
               bool accumulate, bool padded) noexcept {
  constexpr std::size_t W = kWidth;
  // cols is in ((NV - 1) * W, NV * W]: only the last vector may be partial, and it is handled
  // through a temporary unless C's rows are padded.
  const bool partial = !padded && cols < NV * W;
  const std::size_t last = cols - (NV - 1) * W;
  vfloat acc[MR][NV];
  if (accumulate) {
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m) {
      MTLITE_UNROLL
      for (std::size_t v = 0; v + 1 < NV; ++v) acc[m][v] = vfloat::load_unaligned(c + m * ldc + v * W);
      if (partial) {
        alignas(kAlign) float tmp[W] = {};
        std::memcpy(tmp, c + m * ldc + (NV - 1) * W, last * sizeof(float));
        acc[m][NV - 1] = vfloat::load_aligned(tmp);
      } else {
        acc[m][NV - 1] = vfloat::load_unaligned(c + m * ldc + (NV - 1) * W);
      }
    }
  } else {
    MTLITE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) {
      vfloat init(0.0f);
      if (bias) {
        if (v + 1 < NV || !partial) {  // readable padding
          init = vfloat::load_unaligned(bias + v * W);
        } else {
          alignas(kAlign) float tmp[W] = {};
          std::memcpy(tmp, bias + v * W, last * sizeof(float));
          init = vfloat::load_aligned(tmp);
        }
      }
      MTLITE_UNROLL
      for (std::size_t m = 0; m < MR; ++m) acc[m][v] = init;
    }
  }
  for (std::size_t k = 0; k < K; ++k) {
    vfloat bv[NV];
    MTLITE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) bv[v] = vfloat::load_unaligned(b + k * ldb + v * W);
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m) {
      const vfloat x(a[m * am + k * ak]);
      MTLITE_UNROLL
      for (std::size_t v = 0; v < NV; ++v) acc[m][v] = xsimd::fma(x, bv[v], acc[m][v]);
    }
  }
  if (floor) {
    MTLITE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) {
      const vfloat f = vfloat::load_unaligned(floor + v * W);
      MTLITE_UNROLL
      for (std::size_t m = 0; m < MR; ++m) acc[m][v] = xsimd::max(acc[m][v], f);
    }
  }
  MTLITE_UNROLL
  for (std::size_t m = 0; m < MR; ++m) {
    MTLITE_UNROLL
    for (std::size_t v = 0; v + 1 < NV; ++v) acc[m][v].store_unaligned(c + m * ldc + v * W);
    if (partial) {
      alignas(kAlign) float tmp[W];
      acc[m][NV - 1].store_aligned(tmp);
      std::memcpy(c + m * ldc + (NV - 1) * W, tmp, last * sizeof(float));
    } else {
      acc[m][NV - 1].store_unaligned(c + m * ldc + (NV - 1) * W);
    }
  }
}

using TileFn = void (*)(std::size_t, const float*, std::size_t, std::size_t, const float*,
                        std::size_t, float*, std::size_t, std::size_t, const float*, const float*,
                        bool, bool) noexcept;

template <std::size_t NV, std::size_t... M>
constexpr std::array<TileFn, sizeof...(M)> tiles_for(std::index_sequence<M...>) {
  return {&gemm_tile<M + 1, NV>...};
}
template <std::size_t... V>
constexpr std::array<std::array<TileFn, kTileRows>, sizeof...(V)> tile_table(std::index_sequence<V...>) {
  return {tiles_for<V + 1>(std::make_index_sequence<kTileRows>{})...};
}
// kTiles[nv - 1][mr - 1] = gemm_tile<mr, nv>
inline constexpr auto kTiles = tile_table(std::make_index_sequence<kTileVecs>{});

}  // namespace detail
#endif

// The scalar activation: the runtime's definition.
using kernels::ref::activate;

// The derivative of the activation, from its output y: dz = dy * f'(z).
inline float activation_grad(Activation a, float y, float dy) noexcept {
  switch (a) {
    case Activation::identity: return dy;
    case Activation::relu: return y > 0.0f ? dy : 0.0f;
    case Activation::sigmoid: return dy * y * (1.0f - y);
    case Activation::tanh: return dy * (1.0f - y * y);
  }
  return dy;
}

// C[m][n] = (accumulate ? C[m][n] : bias[n] or 0) + sum_k A(m, k) B[k][n] for m < M, n < N, with
// A(m, k) = a[m * am + k * ak], B rows ldb floats apart (readable padding, see the top), C rows
// ldc floats apart; then the floor. bias and floor are read like B rows (readable padding).
inline void gemm(std::size_t M, std::size_t N, std::size_t K, const float* a, std::size_t am,
                 std::size_t ak, const float* b, std::size_t ldb, float* c, std::size_t ldc,
                 const GemmOptions& opt) noexcept {
  if (M == 0 || N == 0) return;
#if defined(MTLITE_NO_SIMD)
  for (std::size_t m = 0; m < M; ++m) {
    float* cr = c + m * ldc;
    if (!opt.accumulate)
      for (std::size_t n = 0; n < N; ++n) cr[n] = opt.bias ? opt.bias[n] : 0.0f;
    for (std::size_t k = 0; k < K; ++k) {
      const float x = a[m * am + k * ak];
      const float* br = b + k * ldb;
      for (std::size_t n = 0; n < N; ++n) cr[n] += x * br[n];
    }
    if (opt.floor)
      for (std::size_t n = 0; n < N; ++n) cr[n] = cr[n] > opt.floor[n] ? cr[n] : opt.floor[n];
  }
#else
  const std::size_t vecs = (N + kWidth - 1) / kWidth;
  const std::size_t panels = (vecs + kTileVecs - 1) / kTileVecs;
  // Spread the vectors evenly over the panels: 9 vectors are 3 + 3 + 3, not 3 + 3 + 3 + 0.
  const std::size_t base = vecs / panels, extra = vecs % panels;
  std::size_t v0 = 0;
  for (std::size_t p = 0; p < panels; ++p) {
    const std::size_t nv = base + (p < extra ? 1 : 0);
    const std::size_t c0 = v0 * kWidth;
    const std::size_t cols = std::min(N - c0, nv * kWidth);
    const auto& row = detail::kTiles[nv - 1];
    for (std::size_t m = 0; m < M; m += kTileRows) {
      const std::size_t mr = std::min(kTileRows, M - m);
      row[mr - 1](K, a + m * am, am, ak, b + c0, ldb, c + m * ldc + c0, ldc, cols,
                  opt.bias ? opt.bias + c0 : nullptr, opt.floor ? opt.floor + c0 : nullptr,
                  opt.accumulate, opt.padded);
    }
    v0 += nv;
  }
#endif
}

// y[i] += x[i]
inline void add(std::size_t n, const float* MTLITE_RESTRICT x, float* MTLITE_RESTRICT y) noexcept {
  std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
  for (; i + kWidth <= n; i += kWidth)
    (vfloat::load_unaligned(y + i) + vfloat::load_unaligned(x + i)).store_unaligned(y + i);
#endif
  for (; i < n; ++i) y[i] += x[i];
}

// y[i] += a * x[i]
inline void axpy(std::size_t n, float a, const float* MTLITE_RESTRICT x,
                 float* MTLITE_RESTRICT y) noexcept {
  std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
  const vfloat av(a);
  for (; i + kWidth <= n; i += kWidth)
    xsimd::fma(av, vfloat::load_unaligned(x + i), vfloat::load_unaligned(y + i)).store_unaligned(y + i);
#endif
  for (; i < n; ++i) y[i] += a * x[i];
}

// sum_i x[i] y[i]
inline float dot(std::size_t n, const float* x, const float* y) noexcept {
  std::size_t i = 0;
  float s = 0.0f;
#if !defined(MTLITE_NO_SIMD)
  if (n >= kWidth) {
    vfloat acc(0.0f);
    for (; i + kWidth <= n; i += kWidth)
      acc = xsimd::fma(vfloat::load_unaligned(x + i), vfloat::load_unaligned(y + i), acc);
    s = xsimd::hadd(acc);
  }
#endif
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

// x[r][0..n) = act(x[r][0..n)) for r < rows.
inline void activate_rows(Activation a, std::size_t rows, std::size_t n, float* x,
                          std::size_t ld) noexcept {
  if (a == Activation::identity) return;
  for (std::size_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
    for (; i + kWidth <= n; i += kWidth) {
      vfloat v = vfloat::load_unaligned(xr + i);
      switch (a) {
        case Activation::identity: break;
        case Activation::relu: v = xsimd::max(v, vfloat(0.0f)); break;
        case Activation::sigmoid: v = vfloat(1.0f) / (vfloat(1.0f) + xsimd::exp(-v)); break;
        case Activation::tanh: v = xsimd::tanh(v); break;
      }
      v.store_unaligned(xr + i);
    }
#endif
    for (; i < n; ++i) xr[i] = activate(a, xr[i]);
  }
}

// dy[r][i] = dy[r][i] * act'(z) where y = act(z), for r < rows, i < n.
inline void activation_grad_rows(Activation a, std::size_t rows, std::size_t n, const float* y,
                                 std::size_t ldy, float* dy, std::size_t ldd) noexcept {
  if (a == Activation::identity) return;
  for (std::size_t r = 0; r < rows; ++r) {
    const float* yr = y + r * ldy;
    float* dr = dy + r * ldd;
    std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
    for (; i + kWidth <= n; i += kWidth) {
      const vfloat yv = vfloat::load_unaligned(yr + i);
      vfloat d = vfloat::load_unaligned(dr + i);
      switch (a) {
        case Activation::identity: break;
        case Activation::relu: d = xsimd::select(yv > vfloat(0.0f), d, vfloat(0.0f)); break;
        case Activation::sigmoid: d = d * yv * (vfloat(1.0f) - yv); break;
        case Activation::tanh: d = d * (vfloat(1.0f) - yv * yv); break;
      }
      d.store_unaligned(dr + i);
    }
#endif
    for (; i < n; ++i) dr[i] = activation_grad(a, yr[i], dr[i]);
  }
}

// Row-wise softmax of x[r][0..n), in place. Blocks of rows are copied (max subtracted) into a
// contiguous temporary so that exp runs on whole vectors even for gates of a few experts.
inline void softmax_rows(std::size_t rows, std::size_t n, float* x, std::size_t ld) noexcept {
  constexpr std::size_t kTmp = 2048;
  alignas(kAlign) float tmp[kTmp + kPad];
  const std::size_t block = n <= kTmp ? kTmp / n : 1;
  for (std::size_t r0 = 0; r0 < rows; r0 += block) {
    const std::size_t nb = std::min(block, rows - r0);
    if (n > kTmp) {
      // A gate this wide is one row at a time, in place.
      kernels::ref::softmax(x + r0 * ld, n);
      continue;
    }
    for (std::size_t r = 0; r < nb; ++r) {
      const float* xr = x + (r0 + r) * ld;
      float m = xr[0];
      for (std::size_t i = 1; i < n; ++i) m = xr[i] > m ? xr[i] : m;
      for (std::size_t i = 0; i < n; ++i) tmp[r * n + i] = xr[i] - m;
    }
    const std::size_t total = nb * n;
    std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
    for (; i + kWidth <= total; i += kWidth) xsimd::exp(vfloat::load_aligned(tmp + i)).store_aligned(tmp + i);
#endif
    for (; i < total; ++i) tmp[i] = std::exp(tmp[i]);
    for (std::size_t r = 0; r < nb; ++r) {
      float* xr = x + (r0 + r) * ld;
      const float* t = tmp + r * n;
      float s = 0.0f;
      for (std::size_t j = 0; j < n; ++j) s += t[j];
      const float inv = 1.0f / s;
      for (std::size_t j = 0; j < n; ++j) xr[j] = t[j] * inv;
    }
  }
}

// One step of the optimiser o: updates p[0..n) from g[0..n) and the state s1, s2 (as many as
// OptimizerStep::state_count says).
inline void optimizer_step(const OptimizerStep& o, std::size_t n, float* p, const float* g, float* s1,
                           float* s2) noexcept {
  std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
  constexpr std::size_t W = kWidth;
  const vfloat cs(o.clip_scale), wd(o.l2);
  switch (o.kind) {
    case OptimizerKind::sgd: {
      const vfloat lrv(o.lr);
      for (; i + W <= n; i += W) {
        const vfloat pv = vfloat::load_unaligned(p + i);
        const vfloat gv = xsimd::fma(cs, vfloat::load_unaligned(g + i), wd * pv);
        xsimd::fnma(lrv, gv, pv).store_unaligned(p + i);
      }
      break;
    }
    case OptimizerKind::adam: {
      const vfloat b1(o.beta1), b2(o.beta2), c1(1.0f - o.beta1), c2(1.0f - o.beta2);
      const vfloat ss(o.step_size), bc(o.bc2_sqrt), ep(o.eps);
      for (; i + W <= n; i += W) {
        const vfloat pv = vfloat::load_unaligned(p + i);
        const vfloat gv = xsimd::fma(cs, vfloat::load_unaligned(g + i), wd * pv);
        const vfloat m = b1 * vfloat::load_unaligned(s1 + i) + c1 * gv;
        const vfloat v = b2 * vfloat::load_unaligned(s2 + i) + c2 * (gv * gv);
        m.store_unaligned(s1 + i);
        v.store_unaligned(s2 + i);
        const vfloat denom = xsimd::sqrt(v) / bc + ep;
        (pv - ss * (m / denom)).store_unaligned(p + i);
      }
      break;
    }
    case OptimizerKind::adagrad: {
      const vfloat lrv(o.lr), ep(o.eps);
      for (; i + W <= n; i += W) {
        const vfloat pv = vfloat::load_unaligned(p + i);
        const vfloat gv = xsimd::fma(cs, vfloat::load_unaligned(g + i), wd * pv);
        const vfloat s = vfloat::load_unaligned(s1 + i) + gv * gv;
        s.store_unaligned(s1 + i);
        (pv - lrv * (gv / (xsimd::sqrt(s) + ep))).store_unaligned(p + i);
      }
      break;
    }
  }
#endif
  for (; i < n; ++i) {
    const float gv = o.clip_scale * g[i] + o.l2 * p[i];
    switch (o.kind) {
      case OptimizerKind::sgd:
        p[i] -= o.lr * gv;
        break;
      case OptimizerKind::adam: {
        const float m = o.beta1 * s1[i] + (1.0f - o.beta1) * gv;
        const float v = o.beta2 * s2[i] + (1.0f - o.beta2) * (gv * gv);
        s1[i] = m;
        s2[i] = v;
        p[i] -= o.step_size * (m / (std::sqrt(v) / o.bc2_sqrt + o.eps));
        break;
      }
      case OptimizerKind::adagrad: {
        const float s = s1[i] + gv * gv;
        s1[i] = s;
        p[i] -= o.lr * (gv / (std::sqrt(s) + o.eps));
        break;
      }
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace impl

// The trainer's vector loops as one value, like kernels::KernelTable for the runtime.
struct MathTable {
  const char* level;  // the kernel level whose flags compiled it (kernels/table.hpp)
  decltype(&impl::gemm) gemm;
  decltype(&impl::add) add;
  decltype(&impl::axpy) axpy;
  decltype(&impl::dot) dot;
  decltype(&impl::activate_rows) activate_rows;
  decltype(&impl::activation_grad_rows) activation_grad_rows;
  decltype(&impl::softmax_rows) softmax_rows;
  decltype(&impl::optimizer_step) optimizer_step;
};

namespace impl {
inline namespace MTLITE_TARGET {
// The loops this unit's compiler flags chose.
inline constexpr MathTable kTargetMathTable = {
    kernels::kTargetTable.level, &gemm, &add, &axpy, &dot, &activate_rows, &activation_grad_rows,
    &softmax_rows, &optimizer_step};
}  // namespace MTLITE_TARGET
}  // namespace impl

}  // namespace mtlite::train::math
