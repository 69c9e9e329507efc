// IEEE binary16 ("half") <-> binary32 conversion in portable integer code, bit for bit what the
// F16C instructions compute (vcvtps2ph with round-to-nearest-even, vcvtph2ps):
//
//   f32_to_f16  round to nearest, ties to even; finite values from 65520 on (the midpoint between
//               the largest half, 65504, and 2^16) become infinity; infinities stay infinities;
//               a NaN stays a NaN with the same sign and the top 10 payload bits, made quiet;
//               results below 2^-14 are half subnormals, rounded the same way (2^-25 -> 0,
//               anything above it -> the smallest subnormal 2^-24); float subnormals -> +-0.
//   f16_to_f32  exact (every half is a float); NaNs keep sign and payload and are made quiet,
//               as vcvtph2ps does.
//
// The SIMD kernels convert with the instructions; tests/quant_test.cpp holds these functions to
// the hardware on all 65,536 halves and on ~10M floats.
#pragma once

#include <cstdint>
#include <cstring>

namespace mtlite::kernels {

inline std::uint16_t f32_to_f16(float f) noexcept {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // infinity or NaN
    if (a == 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  }
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: overflow
  if (a >= 0x38800000u) {
    // Normal half: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits. A
    // carry out of the mantissa increments the exponent, which is the right result.
    std::uint32_t h = (a >> 13) - (112u << 10);
    const std::uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  // Subnormal half (or zero): value = m * 2^(e - 150) with the implicit bit in m; in units of
  // the smallest half subnormal 2^-24 that is m >> (126 - e), rounded to nearest even.
  const std::uint32_t e = a >> 23;
  if (e < 102) return sign;  // below 2^-25 (float subnormals included): rounds to zero
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - e;  // 14..24
  std::uint32_t h = m >> shift;
  const std::uint32_t rest = m & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (h & 1u))) ++h;  // may carry into the smallest normal
  return static_cast<std::uint16_t>(sign | h);
}

inline float f16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  std::uint32_t m = h & 0x3ffu;
  std::uint32_t x;
  if (e == 0x1fu) {
    x = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u);  // infinity, or quiet NaN
  } else if (e != 0) {
    x = sign | ((e + 112u) << 23) | (m << 13);
  } else if (m == 0) {
    x = sign;
  } else {
    // Subnormal: m * 2^-24. Normalise so that the leading bit becomes the implicit one.
    std::uint32_t exp = 113;  // biased float exponent of 2^-14
    while (!(m & 0x400u)) {
      m <<= 1;
      --exp;
    }
    x = sign | (exp << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

}  // namespace mtlite::kernels
