// Vector int8 dense layer (ref/dense_i8.hpp defines the result, bit for bit: the input bytes and
// the pre-activations are identical; identity and relu outputs too, while sigmoid and tanh go
// through the vector activate() like every SIMD kernel, within its few ulp of libm).
//
// The input rows are quantized once into the scratch (quantize_activations), then the work is
// cut into register tiles of MR rows x NP panels as in simd/dense.hpp. For every 4-group of k the
// tile loads each panel's 64 weight bytes (16 outputs x 4 k) once and, for each row, broadcasts
// the row's 4 activation bytes to every 32-bit lane and multiply-adds:
//   AVX-512 VNNI  one vpdpbusd per row and panel: 16 int32 lanes += 4 u8 x s8 products each
//   AVX-VNNI      two 256-bit vpdpbusd per row and panel
//   AVX2          the weights widened to int16 once per tile and group (4 registers per panel),
//                 the activations to int16 x 4; vpmaddwd gives two exact partial sums per
//                 output, added pairwise once in the epilogue. (vpmaddubsw would be one
//                 instruction less but saturates its int16 sums: 2 x 255 x 127 > 32767.)
//   NEON + I8MM   four usdot per row and panel (4 outputs x 4 k each)
//   NEON + DotProd the same with sdot, whose activations are signed: the bytes less 128 (a flip
//                 of the top bit), so the sums are acc - 128 colsum and the epilogue subtracts
//                 (zp - 128) colsum instead of zp colsum (exact in int32, as the reference's)
//   NEON          the group de-interleaved by ld4 (one vector of 16 outputs per k) and widened
//                 to int16, then 16 smlal by lane per row and panel (exact int32 sums)
//   SIMD128       as AVX2 at 128 bits: the weights widened to int16 (8 registers per panel),
//                 the activations to int16 x 2, i32x4.dot_i16x8_s; the epilogue's fma is
//                 std::fma per output (SIMD128 has none, and the reference rounds once)
// Tile shapes (rows x panels, batch / single row) were measured on Zen 5 for the x86 paths:
// AVX-512 VNNI 8 x 3 / 1 x 4, AVX-VNNI 3 x 2 / 1 x 4, AVX2 3 x 1 / 1 x 2; NEON (not measured on
// hardware, sized to the 32 registers) 4 x 1 / 1 x 2, DotProd and I8MM 4 x 1 / 1 x 4.
// The int32 sums are exact, so the order does not matter; the epilogue is the reference's:
// acc - zp * colsum (int32), convert, one fma with sx * scale[n] and bias[n], activation.
// Without one of these paths (x86 without AVX2 + FMA, 32-bit ARM) the scalar reference runs.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "../ref/dense_i8.hpp"
#include "activation.hpp"
#include "dense.hpp"
#include "intrinsics.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

// ---------------------------------------------------------------------------------------------
// Input quantization

namespace detail_i8 {

MTLITE_ALWAYS_INLINE std::int32_t load_u32(const std::uint8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

#if defined(__AVX2__) && !defined(__AVX512F__)
MTLITE_ALWAYS_INLINE float hmin(__m256 v) noexcept {
  __m128 a = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_min_ps(a, _mm_movehl_ps(a, a));
  a = _mm_min_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}
MTLITE_ALWAYS_INLINE float hmax(__m256 v) noexcept {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}
#endif

}  // namespace detail_i8

// ref::quantize_activations, vectorised: min/max are exact in any order and the quantization is
// the same float multiply and round-to-nearest-even conversion per element, so the bytes agree.
inline void quantize_activations(std::size_t m, const float* x, std::size_t ldx, std::size_t k,
                                 std::uint8_t* u, std::size_t ldu, float* scale,
                                 std::int32_t* zp) noexcept {
#if defined(__AVX512F__) || defined(__AVX2__) || defined(__aarch64__)
  for (std::size_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    std::uint8_t* ur = u + r * ldu;
    std::size_t c = 0;
    float mn, mx;
#if defined(__AVX512F__)
    {
      __m512 vmn = _mm512_setzero_ps(), vmx = _mm512_setzero_ps();
      for (; c + 16 <= k; c += 16) {
        const __m512 v = _mm512_loadu_ps(xr + c);
        vmn = _mm512_min_ps(vmn, v);
        vmx = _mm512_max_ps(vmx, v);
      }
      mn = _mm512_reduce_min_ps(vmn);
      mx = _mm512_reduce_max_ps(vmx);
    }
#elif defined(__aarch64__)
    {
      float32x4_t vmn = vdupq_n_f32(0.0f), vmx = vdupq_n_f32(0.0f);
      for (; c + 4 <= k; c += 4) {
        const float32x4_t v = vld1q_f32(xr + c);
        vmn = vminq_f32(vmn, v);
        vmx = vmaxq_f32(vmx, v);
      }
      mn = vminvq_f32(vmn);
      mx = vmaxvq_f32(vmx);
    }
#else
    {
      __m256 vmn = _mm256_setzero_ps(), vmx = _mm256_setzero_ps();
      for (; c + 8 <= k; c += 8) {
        const __m256 v = _mm256_loadu_ps(xr + c);
        vmn = _mm256_min_ps(vmn, v);
        vmx = _mm256_max_ps(vmx, v);
      }
      mn = detail_i8::hmin(vmn);
      mx = detail_i8::hmax(vmx);
    }
#endif
    for (; c < k; ++c) {
      mn = xr[c] < mn ? xr[c] : mn;
      mx = xr[c] > mx ? xr[c] : mx;
    }
    const I8RowParams p = i8_row_params(mn, mx);
    if (!i8_row_quantizable(xr, k, p.scale, ur, scale + r, zp + r)) continue;
    c = 0;
#if defined(__AVX512F__)
    {
      const __m512 inv = _mm512_set1_ps(p.inv);
      const __m512i z = _mm512_set1_epi32(p.zp);
      for (; c + 16 <= k; c += 16) {
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + c), inv)), z);
        q = _mm512_max_epi32(q, _mm512_setzero_si512());
        _mm_storeu_si128(reinterpret_cast<__m128i*>(ur + c), _mm512_cvtusepi32_epi8(q));  // min 255
      }
    }
#elif defined(__aarch64__)
    {
      const int32x4_t z = vdupq_n_s32(p.zp);
      for (; c + 8 <= k; c += 8) {
        // fcvtns: round to nearest even, as nearbyint in the default mode
        const int32x4_t q0 = vaddq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xr + c), p.inv)), z);
        const int32x4_t q1 = vaddq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xr + c + 4), p.inv)), z);
        vst1_u8(ur + c, vqmovun_s16(vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1))));  // clamp 0..255
      }
    }
#else
    {
      const __m256 inv = _mm256_set1_ps(p.inv);
      const __m256i z = _mm256_set1_epi32(p.zp);
      for (; c + 8 <= k; c += 8) {
        const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + c), inv)), z);
        const __m256i s = _mm256_packs_epi32(q, q);   // int16, saturated
        const __m256i b = _mm256_packus_epi16(s, s);  // clamp to 0..255
        const __m128i v = _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(ur + c), v);
      }
    }
#endif
    for (; c < k; ++c) {
      const int q = static_cast<int>(std::nearbyint(xr[c] * p.inv)) + p.zp;
      ur[c] = static_cast<std::uint8_t>(q < 0 ? 0 : q > 255 ? 255 : q);
    }
    for (; c < (k + 3) / 4 * 4; ++c) ur[c] = 0;
    scale[r] = p.scale;
    zp[r] = p.zp;
  }
#else
  ref::quantize_activations(m, x, ldx, k, u, ldu, scale, zp);
#endif
}

// ---------------------------------------------------------------------------------------------
// Register tiles

#if defined(MTLITE_I8_AVX512VNNI) || defined(MTLITE_I8_AVXVNNI) || defined(MTLITE_I8_AVX2) || \
    defined(MTLITE_I8_NEON_I8MM) || defined(MTLITE_I8_NEON_DOT) || defined(MTLITE_I8_NEON) ||  \
    defined(MTLITE_I8_WASM_SIMD128)
#define MTLITE_I8_SIMD 1

namespace detail_i8 {

// The reference epilogue on 8 or 16 columns: acc - zp * colsum, to float, fma(., sx * scale, bias).
#if defined(__AVX512F__)
MTLITE_ALWAYS_INLINE __m512 dequant16(__m512i acc, std::int32_t zp, float sx, const std::int32_t* colsum,
                                      const float* scale, const float* bias) noexcept {
  const __m512i c = _mm512_loadu_si512(colsum);
  const __m512i v = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(zp), c));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(_mm512_set1_ps(sx), _mm512_loadu_ps(scale)),
                         _mm512_loadu_ps(bias));
}

// act(v) into the first `cols` (>= 1) of 16 columns.
MTLITE_ALWAYS_INLINE void store_panel(Activation a, __m512 v, float* y, std::size_t cols) noexcept {
  const __m512 r = activate(a, vfloat(v));
  if (cols >= kPanel)
    _mm512_storeu_ps(y, r);
  else
    _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << cols) - 1u), r);
}
#endif

#if defined(MTLITE_I8_AVXVNNI) || defined(MTLITE_I8_AVX2)
MTLITE_ALWAYS_INLINE __m256 dequant8(__m256i acc, std::int32_t zp, float sx, const std::int32_t* colsum,
                                     const float* scale, const float* bias) noexcept {
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum));
  const __m256i v = _mm256_sub_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(zp), c));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(_mm256_set1_ps(sx), _mm256_loadu_ps(scale)),
                         _mm256_loadu_ps(bias));
}

// act([lo, hi]) into the first `cols` (>= 1) of 16 columns.
MTLITE_ALWAYS_INLINE void store_panel(Activation a, __m256 lo, __m256 hi, float* y, std::size_t cols) noexcept {
#if defined(__AVX512F__)  // AVX-512 without VNNI: xsimd's vectors are 16 floats
  const __m512d both = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1);
  store_panel(a, _mm512_castpd_ps(both), y, cols);
#else
  static_assert(kWidth == 8, "AVX2 without AVX-512: 8-float vectors");
  const vfloat rl = activate(a, vfloat(lo)), rh = activate(a, vfloat(hi));
  if (cols >= kPanel) {
    rl.store_unaligned(y);
    rh.store_unaligned(y + 8);
  } else {
    alignas(kAlign) float tmp[kPanel];
    rl.store_aligned(tmp);
    rh.store_aligned(tmp + 8);
    for (std::size_t j = 0; j < cols; ++j) y[j] = tmp[j];
  }
#endif
}
#endif

#if defined(MTLITE_I8_NEON_I8MM) || defined(MTLITE_I8_NEON_DOT) || defined(MTLITE_I8_NEON)
MTLITE_ALWAYS_INLINE float32x4_t dequant4(int32x4_t acc, std::int32_t zp, float sx, const std::int32_t* colsum,
                                          const float* scale, const float* bias) noexcept {
  const int32x4_t v = vsubq_s32(acc, vmulq_n_s32(vld1q_s32(colsum), zp));
  return vfmaq_f32(vld1q_f32(bias), vcvtq_f32_s32(v), vmulq_n_f32(vld1q_f32(scale), sx));
}

// act(v[0..3]) into the first `cols` (>= 1) of 16 columns.
MTLITE_ALWAYS_INLINE void store_panel(Activation a, const float32x4_t (&v)[4], float* y, std::size_t cols) noexcept {
  static_assert(kWidth == 4, "NEON: 4-float vectors");
  if (cols >= kPanel) {
    for (int i = 0; i < 4; ++i) activate(a, vfloat(v[i])).store_unaligned(y + 4 * i);
  } else {
    alignas(kAlign) float tmp[kPanel];
    for (int i = 0; i < 4; ++i) activate(a, vfloat(v[i])).store_aligned(tmp + 4 * i);
    for (std::size_t j = 0; j < cols; ++j) y[j] = tmp[j];
  }
}
#endif

struct Epilogue {
  std::int32_t zp;
  float sx;
};

#if defined(MTLITE_I8_AVX512VNNI)
// One register: 16 outputs x 4 k.
struct Ops {
  struct Acc {
    __m512i a;
  };
  struct W {
    __m512i w;
  };
  using B = __m512i;
  static MTLITE_ALWAYS_INLINE Acc zero() noexcept { return {_mm512_setzero_si512()}; }
  static MTLITE_ALWAYS_INLINE W load(const std::int8_t* w) noexcept { return {_mm512_loadu_si512(w)}; }
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept { return _mm512_set1_epi32(load_u32(u)); }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept { a.a = _mm512_dpbusd_epi32(a.a, b, w.w); }
  static MTLITE_ALWAYS_INLINE void store(const Acc& a, Epilogue e, const std::int32_t* colsum, const float* scale,
                                         const float* bias, Activation act, float* y, std::size_t cols) noexcept {
    store_panel(act, dequant16(a.a, e.zp, e.sx, colsum, scale, bias), y, cols);
  }
};
// One row: 4 panels, not 8: the reference model's int8 B=1 ran ~8% faster on Zen 5 with 4
// (bench/reference_bench). Likely why: the panels of a layer lie 16 ceil(K/4) * 4 bytes apart
// (4 KiB for K = 256), so 8 weight streams read at once fall in the same L1 sets.
inline constexpr std::size_t kI8BatchRows = 8, kI8BatchPanels = 3, kI8RowPanels = 4;

#elif defined(MTLITE_I8_AVXVNNI)
// Two registers: outputs 0-7 and 8-15, x 4 k.
struct Ops {
  struct Acc {
    __m256i a[2];
  };
  struct W {
    __m256i w[2];
  };
  using B = __m256i;
  static MTLITE_ALWAYS_INLINE Acc zero() noexcept { return {{_mm256_setzero_si256(), _mm256_setzero_si256()}}; }
  static MTLITE_ALWAYS_INLINE W load(const std::int8_t* w) noexcept {
    return {{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32))}};
  }
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept { return _mm256_set1_epi32(load_u32(u)); }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept {
    a.a[0] = _mm256_dpbusd_avx_epi32(a.a[0], b, w.w[0]);
    a.a[1] = _mm256_dpbusd_avx_epi32(a.a[1], b, w.w[1]);
  }
  static MTLITE_ALWAYS_INLINE void store(const Acc& a, Epilogue e, const std::int32_t* colsum, const float* scale,
                                         const float* bias, Activation act, float* y, std::size_t cols) noexcept {
    store_panel(act, dequant8(a.a[0], e.zp, e.sx, colsum, scale, bias),
                dequant8(a.a[1], e.zp, e.sx, colsum + 8, scale + 8, bias + 8), y, cols);
  }
};
inline constexpr std::size_t kI8BatchRows = 3, kI8BatchPanels = 2, kI8RowPanels = 4;

#elif defined(MTLITE_I8_NEON_I8MM) || defined(MTLITE_I8_NEON_DOT)
// Four registers: outputs 4c..4c+3 in register c; usdot (sdot) adds the 4 products of each
// output's 4-group (the panels16x4 bytes of those outputs are 16 consecutive bytes).
struct Ops {
  struct Acc {
    int32x4_t a[4];
  };
  struct W {
    int8x16_t w[4];
  };
  static MTLITE_ALWAYS_INLINE Acc zero() noexcept {
    const int32x4_t z = vdupq_n_s32(0);
    return {{z, z, z, z}};
  }
  static MTLITE_ALWAYS_INLINE W load(const std::int8_t* w) noexcept {
    return {{vld1q_s8(w), vld1q_s8(w + 16), vld1q_s8(w + 32), vld1q_s8(w + 48)}};
  }
#if defined(MTLITE_I8_NEON_I8MM)
  using B = uint8x16_t;
  static constexpr std::int32_t kShift = 0;
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept {
    return vreinterpretq_u8_s32(vdupq_n_s32(load_u32(u)));
  }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept {
    for (int c = 0; c < 4; ++c) a.a[c] = vusdotq_s32(a.a[c], b, w.w[c]);
  }
#else
  using B = int8x16_t;  // u[0..3] - 128, four times
  static constexpr std::int32_t kShift = 128;
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept {
    return vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_s32(vdupq_n_s32(load_u32(u))), vdupq_n_u8(0x80)));
  }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept {
    for (int c = 0; c < 4; ++c) a.a[c] = vdotq_s32(a.a[c], b, w.w[c]);
  }
#endif
  static MTLITE_ALWAYS_INLINE void store(const Acc& a, Epilogue e, const std::int32_t* colsum, const float* scale,
                                         const float* bias, Activation act, float* y, std::size_t cols) noexcept {
    const std::int32_t zp = e.zp - kShift;
    const float32x4_t v[4] = {dequant4(a.a[0], zp, e.sx, colsum, scale, bias),
                              dequant4(a.a[1], zp, e.sx, colsum + 4, scale + 4, bias + 4),
                              dequant4(a.a[2], zp, e.sx, colsum + 8, scale + 8, bias + 8),
                              dequant4(a.a[3], zp, e.sx, colsum + 12, scale + 12, bias + 12)};
    store_panel(act, v, y, cols);
  }
};
inline constexpr std::size_t kI8BatchRows = 4, kI8BatchPanels = 1, kI8RowPanels = 4;

#elif defined(MTLITE_I8_NEON)
// Four registers: outputs 4c..4c+3 in register c. ld4 de-interleaves a group into one vector
// per k (16 outputs), widened to int16 halves; smlal by lane multiplies by one activation.
struct Ops {
  struct Acc {
    int32x4_t a[4];
  };
  struct W {
    int16x8_t lo[4], hi[4];  // [i]: k = 4g + i, outputs 0-7 / 8-15
  };
  using B = int16x4_t;  // u[0..3]
  static MTLITE_ALWAYS_INLINE Acc zero() noexcept {
    const int32x4_t z = vdupq_n_s32(0);
    return {{z, z, z, z}};
  }
  static MTLITE_ALWAYS_INLINE W load(const std::int8_t* w) noexcept {
    const int8x16x4_t v = vld4q_s8(w);
    W r;
    for (int i = 0; i < 4; ++i) {
      r.lo[i] = vmovl_s8(vget_low_s8(v.val[i]));
      r.hi[i] = vmovl_high_s8(v.val[i]);
    }
    return r;
  }
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept {
    const uint8x8_t b = vreinterpret_u8_s32(vdup_n_s32(load_u32(u)));
    return vreinterpret_s16_u16(vget_low_u16(vmovl_u8(b)));
  }
  template <int I>
  static MTLITE_ALWAYS_INLINE void madd_k(Acc& a, B b, const W& w) noexcept {
    a.a[0] = vmlal_lane_s16(a.a[0], vget_low_s16(w.lo[I]), b, I);
    a.a[1] = vmlal_high_lane_s16(a.a[1], w.lo[I], b, I);
    a.a[2] = vmlal_lane_s16(a.a[2], vget_low_s16(w.hi[I]), b, I);
    a.a[3] = vmlal_high_lane_s16(a.a[3], w.hi[I], b, I);
  }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept {
    madd_k<0>(a, b, w);
    madd_k<1>(a, b, w);
    madd_k<2>(a, b, w);
    madd_k<3>(a, b, w);
  }
  static MTLITE_ALWAYS_INLINE void store(const Acc& a, Epilogue e, const std::int32_t* colsum, const float* scale,
                                         const float* bias, Activation act, float* y, std::size_t cols) noexcept {
    const float32x4_t v[4] = {dequant4(a.a[0], e.zp, e.sx, colsum, scale, bias),
                              dequant4(a.a[1], e.zp, e.sx, colsum + 4, scale + 4, bias + 4),
                              dequant4(a.a[2], e.zp, e.sx, colsum + 8, scale + 8, bias + 8),
                              dequant4(a.a[3], e.zp, e.sx, colsum + 12, scale + 12, bias + 12)};
    store_panel(act, v, y, cols);
  }
};
inline constexpr std::size_t kI8BatchRows = 4, kI8BatchPanels = 1, kI8RowPanels = 2;

#elif defined(MTLITE_I8_WASM_SIMD128)
// Eight registers: outputs 2c, 2c+1 in register c, each as two int32 partial sums (k = 4g,
// 4g+1 and k = 4g+2, 4g+3) side by side.
struct Ops {
  struct Acc {
    v128_t a[8];
  };
  struct W {
    v128_t w[8];
  };
  using B = v128_t;
  static MTLITE_ALWAYS_INLINE Acc zero() noexcept {
    const v128_t z = wasm_i32x4_splat(0);
    return {{z, z, z, z, z, z, z, z}};
  }
  static MTLITE_ALWAYS_INLINE W load(const std::int8_t* w) noexcept {
    W r;
    for (int c = 0; c < 4; ++c) {
      const v128_t v = wasm_v128_load(w + 16 * c);
      r.w[2 * c] = wasm_i16x8_extend_low_i8x16(v);
      r.w[2 * c + 1] = wasm_i16x8_extend_high_i8x16(v);
    }
    return r;
  }
  // u[0..3] as int16, twice.
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept {
    return wasm_u16x8_extend_low_u8x16(wasm_i32x4_splat(load_u32(u)));
  }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept {
    for (int c = 0; c < 8; ++c) a.a[c] = wasm_i32x4_add(a.a[c], wasm_i32x4_dot_i16x8(w.w[c], b));
  }
  // The sums of outputs 4c..4c+3 from registers 2c and 2c+1: even lanes plus odd lanes.
  static MTLITE_ALWAYS_INLINE v128_t sums4(v128_t x, v128_t y) noexcept {
    return wasm_i32x4_add(wasm_i32x4_shuffle(x, y, 0, 2, 4, 6), wasm_i32x4_shuffle(x, y, 1, 3, 5, 7));
  }
  static MTLITE_ALWAYS_INLINE void store(const Acc& a, Epilogue e, const std::int32_t* colsum, const float* scale,
                                         const float* bias, Activation act, float* y, std::size_t cols) noexcept {
    // The reference's epilogue, the fma per output; the activation on vectors.
    alignas(kAlign) std::int32_t v[kPanel];
    for (int c = 0; c < 4; ++c) {
      const v128_t zc = wasm_i32x4_mul(wasm_i32x4_splat(e.zp), wasm_v128_load(colsum + 4 * c));
      wasm_v128_store(v + 4 * c, wasm_i32x4_sub(sums4(a.a[2 * c], a.a[2 * c + 1]), zc));
    }
    alignas(kAlign) float t[kPanel];
    for (std::size_t j = 0; j < kPanel; ++j) t[j] = std::fma(static_cast<float>(v[j]), e.sx * scale[j], bias[j]);
    static_assert(kWidth == 4, "SIMD128: 4-float vectors");
    for (std::size_t i = 0; i < kPanel; i += kWidth) activate(act, vfloat::load_aligned(t + i)).store_aligned(t + i);
    for (std::size_t j = 0; j < cols && j < kPanel; ++j) y[j] = t[j];
  }
};
inline constexpr std::size_t kI8BatchRows = 2, kI8BatchPanels = 1, kI8RowPanels = 1;

#else  // MTLITE_I8_AVX2
// Four registers: outputs 4c..4c+3 in register c, each as two int32 partial sums (k = 4g, 4g+1
// and k = 4g+2, 4g+3) side by side.
struct Ops {
  struct Acc {
    __m256i a[4];
  };
  struct W {
    __m256i w[4];
  };
  using B = __m256i;
  static MTLITE_ALWAYS_INLINE Acc zero() noexcept {
    const __m256i z = _mm256_setzero_si256();
    return {{z, z, z, z}};
  }
  static MTLITE_ALWAYS_INLINE W load(const std::int8_t* w) noexcept {
    W r;
    for (int c = 0; c < 4; ++c)
      r.w[c] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16 * c)));
    return r;
  }
  // u[0..3] as int16, four times.
  static MTLITE_ALWAYS_INLINE B bcast(const std::uint8_t* u) noexcept {
    return _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(load_u32(u))));
  }
  static MTLITE_ALWAYS_INLINE void madd(Acc& a, B b, const W& w) noexcept {
    for (int c = 0; c < 4; ++c) a.a[c] = _mm256_add_epi32(a.a[c], _mm256_madd_epi16(w.w[c], b));
  }
  // hadd(a0, a1) = [o0 o1 o4 o5 | o2 o3 o6 o7] (64-bit pairs 0 2 1 3 of outputs 0-7).
  static MTLITE_ALWAYS_INLINE __m256i sums8(__m256i a, __m256i b) noexcept {
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(a, b), 0xD8);
  }
  static MTLITE_ALWAYS_INLINE void store(const Acc& a, Epilogue e, const std::int32_t* colsum, const float* scale,
                                         const float* bias, Activation act, float* y, std::size_t cols) noexcept {
    store_panel(act, dequant8(sums8(a.a[0], a.a[1]), e.zp, e.sx, colsum, scale, bias),
                dequant8(sums8(a.a[2], a.a[3]), e.zp, e.sx, colsum + 8, scale + 8, bias + 8), y, cols);
  }
};
inline constexpr std::size_t kI8BatchRows = 3, kI8BatchPanels = 1, kI8RowPanels = 2;
#endif

// MR rows of quantized input (u, ldu bytes apart) x NP panels (w, pstride bytes apart) over G
// 4-groups; writes columns [0, cols) of the NP panels.
template <std::size_t MR, std::size_t NP>
void i8_tile(std::size_t G, const std::uint8_t* MTLITE_RESTRICT u, std::size_t ldu,
             const std::int8_t* MTLITE_RESTRICT w, std::size_t pstride, const float* sx,
             const std::int32_t* zp, const DenseView& L, std::size_t c0, std::size_t cols,
             float* MTLITE_RESTRICT y, std::size_t ldy) noexcept {
  typename Ops::Acc acc[MR][NP];
  MTLITE_UNROLL
  for (std::size_t m = 0; m < MR; ++m)
    MTLITE_UNROLL
    for (std::size_t p = 0; p < NP; ++p) acc[m][p] = Ops::zero();
  for (std::size_t g = 0; g < G; ++g) {
    typename Ops::W wv[NP];
    MTLITE_UNROLL
    for (std::size_t p = 0; p < NP; ++p) wv[p] = Ops::load(w + p * pstride + g * 64);
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m) {
      const typename Ops::B b = Ops::bcast(u + m * ldu + 4 * g);
      MTLITE_UNROLL
      for (std::size_t p = 0; p < NP; ++p) Ops::madd(acc[m][p], b, wv[p]);
    }
  }
  MTLITE_UNROLL
  for (std::size_t p = 0; p < NP; ++p) {
    const std::size_t c = p * kPanel;
    if (c >= cols) break;
    const std::size_t n = c0 + c;
    MTLITE_UNROLL
    for (std::size_t m = 0; m < MR; ++m)
      Ops::store(acc[m][p], Epilogue{zp[m], sx[m]}, L.colsum + n, L.scale + n, L.bias + n, L.act[n / kPanel],
                 y + m * ldy + c, cols - c);
  }
}

using I8TileFn = void (*)(std::size_t, const std::uint8_t*, std::size_t, const std::int8_t*, std::size_t,
                          const float*, const std::int32_t*, const DenseView&, std::size_t, std::size_t,
                          float*, std::size_t) noexcept;

template <std::size_t NP, std::size_t... M>
constexpr std::array<I8TileFn, sizeof...(M)> i8_tiles_for_np(std::index_sequence<M...>) {
  return {&i8_tile<M + 1, NP>...};
}
// table[np - 1][mr - 1] = i8_tile<mr, np>
template <std::size_t MRMax, std::size_t... P>
constexpr std::array<std::array<I8TileFn, MRMax>, sizeof...(P)> i8_tile_table(std::index_sequence<P...>) {
  return {i8_tiles_for_np<P + 1>(std::make_index_sequence<MRMax>{})...};
}

inline constexpr auto kI8BatchTiles = i8_tile_table<kI8BatchRows>(std::make_index_sequence<kI8BatchPanels>{});
inline constexpr auto kI8RowTiles = i8_tile_table<1>(std::make_index_sequence<kI8RowPanels>{});

}  // namespace detail_i8
#endif

// y[r][0..L.n) = act(L x[r]) for r < m (rows ldx / ldy floats apart), L.type == i8, with
// dense_i8_scratch_bytes(m, L.k) bytes of scratch (4-byte aligned). Bit-identical to ref::dense_i8
// before the activation; identity and relu are bit-identical after it, sigmoid and tanh are the
// SIMD activate() (as in dense) of the same value.
inline void dense_i8(std::size_t m, const float* x, std::size_t ldx, const DenseView& L, float* y,
                     std::size_t ldy, std::uint8_t* scratch) noexcept {
#if defined(MTLITE_I8_SIMD)
  assert(L.k <= kMaxI8Inputs);
  using namespace detail_i8;
  const I8Rows q = i8_rows(scratch, m, L.k);
  quantize_activations(m, x, ldx, L.k, q.codes, q.ld, q.scale, q.zp);
  const std::size_t panels = panel_count(L.n);
  const std::size_t G = panel_rows(WeightType::i8, L.k);
  const std::size_t pstride = G * kPanel * 4;
  const bool one_row = m == 1;
  detail::for_each_tile(m, one_row ? 1 : kI8BatchRows, panels, one_row ? kI8RowPanels : kI8BatchPanels,
                [&](std::size_t r, std::size_t mr, std::size_t p, std::size_t np) {
                  (one_row ? kI8RowTiles[np - 1][0] : kI8BatchTiles[np - 1][mr - 1])(
                      G, q.codes + r * q.ld, q.ld, L.i8() + p * pstride, pstride, q.scale + r, q.zp + r, L,
                      p * kPanel, L.n - p * kPanel, y + r * ldy + p * kPanel, ldy);
                });
#else
  ref::dense_i8(m, x, ldx, L, y, ldy, scratch);
#endif
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
