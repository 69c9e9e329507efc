// Vector dense layer with f16 weights (ref/dense_f16.hpp defines the result): the register
// tiles and traversal of simd/dense.hpp, with each k's 16 weights of a panel widened by vcvtph2ps
// as they are loaded (one 512-bit or two 256-bit conversions; four fcvtl on NEON). The conversion
// is exact, so this is simd::dense on the weights f16_to_f32(W); the sums differ from the
// reference only by the order of roundings, as for f32. Without AVX-512 F or AVX2 + F16C the
// scalar reference runs (AArch64 always has the conversion).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../ref/dense_f16.hpp"
#include "activation.hpp"
#include "dense.hpp"
#include "intrinsics.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

#if defined(MTLITE_F16_AVX512) || defined(MTLITE_F16_F16C) || defined(MTLITE_F16_NEON)
#define MTLITE_F16_SIMD 1

namespace detail {

// f16 weights, widened as they are loaded.
struct F16Weights {
  using type = std::uint16_t;
  static MTLITE_ALWAYS_INLINE vfloat load(const std::uint16_t* w) noexcept {
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
};

}  // namespace detail
#endif

// y[r][0..L.n) = act(L x[r]) for r < m (rows ldx / ldy floats apart), L.type == f16.
inline void dense_f16(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                      std::size_t ldy) noexcept {
#if defined(MTLITE_F16_SIMD)
  detail::dense_panels<detail::F16Weights>(m, x, ldx, L, L.f16(), panel_rows(WeightType::f16, L.k) * kPanel,
                                           y, ldy);
#else
  ref::dense_f16(m, x, ldx, L, y, ldy);
#endif
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
