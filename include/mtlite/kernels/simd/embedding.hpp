// Vector embedding bag accumulation (ref/embedding.hpp defines it).
//
// The f16 and rows_q versions run blocks of 16 (AVX-512) or 8 (AVX2; NEON: two registers)
// columns, each block in registers across the whole bag, and the leftover columns in scalar
// code; every element sees the reference's operations in the reference's order (exact
// widening, the same fma, one addition per row), so the results are bit-identical. Without AVX2 (+ F16C for f16, + FMA for
// rows_q) or AArch64 the references run.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../f16.hpp"
#include "../ref/embedding.hpp"
#include "intrinsics.hpp"
#include "xsimd.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

inline void add_rows(const float* table, std::size_t dim, const std::uint64_t* rows,
                     std::size_t count, float* out) noexcept {
  std::size_t d = 0;
  for (; d + kWidth <= dim; d += kWidth) {
    vfloat a = vfloat::load_unaligned(out + d);
    for (std::size_t i = 0; i < count; ++i) a += vfloat::load_unaligned(table + rows[i] * dim + d);
    a.store_unaligned(out + d);
  }
  for (; d < dim; ++d) {
    float a = out[d];
    for (std::size_t i = 0; i < count; ++i) a += table[rows[i] * dim + d];
    out[d] = a;
  }
}

inline void add_rows_f16(const std::uint16_t* table, std::size_t dim, const std::uint64_t* rows,
                         std::size_t count, float* out) noexcept {
  std::size_t d = 0;
#if defined(MTLITE_F16_AVX512)
  for (; d + 16 <= dim; d += 16) {
    __m512 a = _mm512_loadu_ps(out + d);
    for (std::size_t i = 0; i < count; ++i)
      a = _mm512_add_ps(a, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + rows[i] * dim + d))));
    _mm512_storeu_ps(out + d, a);
  }
#endif
#if defined(MTLITE_F16_AVX512) || defined(MTLITE_F16_F16C)
  for (; d + 8 <= dim; d += 8) {
    __m256 a = _mm256_loadu_ps(out + d);
    for (std::size_t i = 0; i < count; ++i)
      a = _mm256_add_ps(a, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + rows[i] * dim + d))));
    _mm256_storeu_ps(out + d, a);
  }
#elif defined(MTLITE_F16_NEON)
  for (; d + 8 <= dim; d += 8) {
    float32x4_t a0 = vld1q_f32(out + d), a1 = vld1q_f32(out + d + 4);
    for (std::size_t i = 0; i < count; ++i) {
      const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(table + rows[i] * dim + d));
      a0 = vaddq_f32(a0, vcvt_f32_f16(vget_low_f16(h)));
      a1 = vaddq_f32(a1, vcvt_high_f32_f16(h));
    }
    vst1q_f32(out + d, a0);
    vst1q_f32(out + d + 4, a1);
  }
#endif
  for (; d < dim; ++d) {
    float a = out[d];
    for (std::size_t i = 0; i < count; ++i) a += f16_to_f32(table[rows[i] * dim + d]);
    out[d] = a;
  }
}

namespace detail_q {

// The scalar columns [d, dim) of a rows_q bag, in the reference's order.
template <unsigned Bits>
MTLITE_ALWAYS_INLINE void add_rows_q_tail(const std::uint8_t* table, std::size_t d, std::size_t dim,
                                          std::size_t stride, const std::uint64_t* rows, std::size_t count,
                                          float* out) noexcept {
  for (; d < dim; ++d) {
    float a = out[d];
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t* row = table + rows[i] * stride;
      float scale, offset;
      ref::rows_q_header(row, scale, offset);
      const unsigned code = Bits == 8 ? row[8 + d] : (row[8 + d / 2] >> (d % 2 * 4)) & 0xfu;
      a += std::fma(static_cast<float>(code), scale, offset);
    }
    out[d] = a;
  }
}

#if defined(MTLITE_Q_AVX512) || defined(MTLITE_Q_AVX2)
// 16 (Bits = 8: bytes; Bits = 4: nibbles, low first) codes starting at p, as bytes.
template <unsigned Bits>
MTLITE_ALWAYS_INLINE __m128i codes16(const std::uint8_t* p) noexcept {
  if constexpr (Bits == 8) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  } else {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0f);
    return _mm_unpacklo_epi8(_mm_and_si128(b, mask), _mm_and_si128(_mm_srli_epi16(b, 4), mask));
  }
}
// 8 codes starting at p, as the low 8 bytes.
template <unsigned Bits>
MTLITE_ALWAYS_INLINE __m128i codes8(const std::uint8_t* p) noexcept {
  if constexpr (Bits == 8) {
    return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  } else {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    const __m128i b = _mm_cvtsi32_si128(v);
    const __m128i mask = _mm_set1_epi8(0x0f);
    return _mm_unpacklo_epi8(_mm_and_si128(b, mask), _mm_and_si128(_mm_srli_epi16(b, 4), mask));
  }
}
#endif

template <unsigned Bits>
inline void add_rows_q(const std::uint8_t* table, std::size_t dim, std::size_t stride, const std::uint64_t* rows,
                       std::size_t count, float* out) noexcept {
  std::size_t d = 0;
#if defined(MTLITE_Q_AVX512)
  for (; d + 16 <= dim; d += 16) {
    __m512 a = _mm512_loadu_ps(out + d);
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t* row = table + rows[i] * stride;
      float scale, offset;
      ref::rows_q_header(row, scale, offset);
      const __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(codes16<Bits>(row + 8 + d * Bits / 8)));
      a = _mm512_add_ps(a, _mm512_fmadd_ps(c, _mm512_set1_ps(scale), _mm512_set1_ps(offset)));
    }
    _mm512_storeu_ps(out + d, a);
  }
#endif
#if defined(MTLITE_Q_NEON)
  for (; d + 8 <= dim; d += 8) {
    float32x4_t a0 = vld1q_f32(out + d), a1 = vld1q_f32(out + d + 4);
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t* row = table + rows[i] * stride;
      float scale, offset;
      ref::rows_q_header(row, scale, offset);
      uint8x8_t b;
      if constexpr (Bits == 8) {
        b = vld1_u8(row + 8 + d);
      } else {  // 4 bytes -> 8 nibbles, low first
        std::uint32_t v;
        std::memcpy(&v, row + 8 + d / 2, 4);
        const uint8x8_t p = vreinterpret_u8_u32(vdup_n_u32(v));
        b = vzip1_u8(vand_u8(p, vdup_n_u8(0x0f)), vshr_n_u8(p, 4));
      }
      const uint16x8_t c = vmovl_u8(b);
      const float32x4_t s = vdupq_n_f32(scale), o = vdupq_n_f32(offset);
      a0 = vaddq_f32(a0, vfmaq_f32(o, vcvtq_f32_u32(vmovl_u16(vget_low_u16(c))), s));
      a1 = vaddq_f32(a1, vfmaq_f32(o, vcvtq_f32_u32(vmovl_high_u16(c)), s));
    }
    vst1q_f32(out + d, a0);
    vst1q_f32(out + d + 4, a1);
  }
#endif
#if defined(MTLITE_Q_AVX512) || defined(MTLITE_Q_AVX2)
  for (; d + 8 <= dim; d += 8) {
    __m256 a = _mm256_loadu_ps(out + d);
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint8_t* row = table + rows[i] * stride;
      float scale, offset;
      ref::rows_q_header(row, scale, offset);
      const __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes8<Bits>(row + 8 + d * Bits / 8)));
      a = _mm256_add_ps(a, _mm256_fmadd_ps(c, _mm256_set1_ps(scale), _mm256_set1_ps(offset)));
    }
    _mm256_storeu_ps(out + d, a);
  }
#endif
  add_rows_q_tail<Bits>(table, d, dim, stride, rows, count, out);
}

}  // namespace detail_q

inline void add_rows_q8(const std::uint8_t* table, std::size_t dim, std::size_t stride,
                        const std::uint64_t* rows, std::size_t count, float* out) noexcept {
#if defined(MTLITE_Q_AVX512) || defined(MTLITE_Q_AVX2) || defined(MTLITE_Q_NEON)
  detail_q::add_rows_q<8>(table, dim, stride, rows, count, out);
#else
  ref::add_rows_q8(table, dim, stride, rows, count, out);
#endif
}

inline void add_rows_q4(const std::uint8_t* table, std::size_t dim, std::size_t stride,
                        const std::uint64_t* rows, std::size_t count, float* out) noexcept {
#if defined(MTLITE_Q_AVX512) || defined(MTLITE_Q_AVX2) || defined(MTLITE_Q_NEON)
  detail_q::add_rows_q<4>(table, dim, stride, rows, count, out);
#else
  ref::add_rows_q4(table, dim, stride, rows, count, out);
#endif
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
