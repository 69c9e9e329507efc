// The trainer's loops: one small GEMM and the row-wise pieces of forward and backward.
//
// Every dense product of training is the same shape, C (+)= A B with B row-major and A read by
// broadcast (strides given), so one register-tiled kernel serves all three:
//   forward  Y[rows][out]  = X[rows][in]   Wt[in][out]   (+ bias)
//   dW       dWt[in][out] += X^T[in][rows] dZ[rows][out]  (A read column-wise: am = 1)
//   dX       dX[rows][in] += dZ[rows][out] W[out][in]     (W is the logical layout, kept as a copy)
// The vector axis is always the contiguous one (out, out, in), so every inner loop is an FMA of
// a broadcast scalar with a vector of B.
//
// Readable padding: the kernel loads whole vectors of B, so each B row must be readable for
// round_up(n, kPad) floats from its start (the caller adds kPad floats of slack at the end of
// every array used as B). Lanes past n are computed and discarded: C is written for exactly n
// columns.
//
// The loops that vectorise are compiled once per instruction-set level (math_kernels.hpp). In a
// MTLITE_DISPATCH program they run at the level of the runtime's kernels (kernels::table(),
// chosen at run time); the scalar level trains with the program's own baseline loops, since
// the trainer has no reference of its own to hold them to. Header-only programs get the loops
// their compiler flags choose. With MTLITE_NO_SIMD everything is plain loops (kPad = 1).
#pragma once

#include <cstddef>

#include "../../kernels/kernels.hpp"
#include "math_kernels.hpp"

namespace mtlite::train::math {

#if defined(MTLITE_DISPATCH)
// Each level's loops, compiled in that level's unit of the kernel tables
// (src/dispatch/math_table.cpp).
#define MTLITE_DECLARE_MATH_TABLE(level) const MathTable& level##_math_table() noexcept;
MTLITE_FOR_EACH_COMPILED_LEVEL(MTLITE_DECLARE_MATH_TABLE)
#undef MTLITE_DECLARE_MATH_TABLE

// The loops of the level of kernels::all_levels()[i], at index i.
inline const std::array<const MathTable*, kernels::kLevels>& math_levels() noexcept {
#define MTLITE_MATH_TABLE_ADDRESS(level) &level##_math_table(),
  static const std::array<const MathTable*, kernels::kLevels> levels = {
      MTLITE_FOR_EACH_COMPILED_LEVEL(MTLITE_MATH_TABLE_ADDRESS) &impl::kTargetMathTable,
      &impl::kTargetMathTable};
#undef MTLITE_MATH_TABLE_ADDRESS
  return levels;
}

// The loops in use: those of the runtime's kernel level.
inline const MathTable& table() noexcept {
  const kernels::KernelTable* active = &kernels::table();
  const auto& kernel_levels = kernels::all_levels();
  for (std::size_t i = 0; i < kernel_levels.size(); ++i)
    if (kernel_levels[i] == active) return *math_levels()[i];
  return impl::kTargetMathTable;
}

inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::gemm> gemm{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::add> add{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::axpy> axpy{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::dot> dot{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::activate_rows> activate_rows{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::activation_grad_rows>
    activation_grad_rows{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::softmax_rows> softmax_rows{};
inline constexpr kernels::detail_dispatch::Dispatched<&table, &MathTable::optimizer_step> optimizer_step{};
#else
inline const MathTable& table() noexcept { return impl::kTargetMathTable; }

using impl::gemm;
using impl::add;
using impl::axpy;
using impl::dot;
using impl::activate_rows;
using impl::activation_grad_rows;
using impl::softmax_rows;
using impl::optimizer_step;
#endif

using impl::activate;
using impl::activation_grad;

// Softmax backward, in place: dz_i = g_i (dg_i - sum_j g_j dg_j).
inline void softmax_grad_rows(std::size_t rows, std::size_t n, const float* g, std::size_t ldg,
                              float* dg, std::size_t ldd) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    const float* gr = g + r * ldg;
    float* dr = dg + r * ldd;
    const float s = dot(n, gr, dr);
    for (std::size_t i = 0; i < n; ++i) dr[i] = gr[i] * (dr[i] - s);
  }
}

// out[j] += sum_r x[r][j] for j < n (the bias gradient).
inline void column_sums(std::size_t rows, std::size_t n, const float* x, std::size_t ld,
                        float* out) noexcept {
  for (std::size_t r = 0; r < rows; ++r) add(n, x + r * ld, out);
}

// dst[o][i] = src[i][o]: src rows x cols (ld_src), dst cols x rows (ld_dst).
inline void transpose(std::size_t rows, std::size_t cols, const float* src, std::size_t ld_src,
                      float* dst, std::size_t ld_dst) noexcept {
  constexpr std::size_t B = 16;
  for (std::size_t i0 = 0; i0 < rows; i0 += B)
    for (std::size_t o0 = 0; o0 < cols; o0 += B) {
      const std::size_t i1 = std::min(rows, i0 + B), o1 = std::min(cols, o0 + B);
      for (std::size_t o = o0; o < o1; ++o)
        for (std::size_t i = i0; i < i1; ++i) dst[o * ld_dst + i] = src[i * ld_src + o];
    }
}

}  // namespace mtlite::train::math
