// The one include of the x86 intrinsics, for the kernels xsimd 8.1 cannot express (f16
// conversion, integer dot products), and the choice of their code paths.
//
// GCC 12's AVX-512 intrinsic headers trip -Wuninitialized when inlined (GCC bug 105593); as in
// xsimd.hpp, silencing it around the include is enough.
//
// Paths, decided by the target the including program is compiled for:
//   i8 dense   MTLITE_I8_AVX512VNNI  AVX-512 F+BW+VNNI: vpdpbusd on 16 outputs x 4 k per register
//              MTLITE_I8_AVXVNNI     AVX2 + FMA + AVX-VNNI: vpdpbusd on 8 outputs x 4 k (256 bits)
//              MTLITE_I8_AVX2        AVX2 + FMA: bytes widened to int16, vpmaddwd (exact; never
//                                    vpmaddubsw, whose int16 sums saturate)
//              MTLITE_I8_NEON_I8MM   AArch64 + I8MM: usdot (u8 x s8, 4 products per 32-bit lane)
//              MTLITE_I8_NEON_DOT    AArch64 + DotProd (ARMv8.2-A+): sdot (s8 x s8) on the
//                                    activations less 128, which the epilogue adds back exactly
//              MTLITE_I8_NEON        AArch64: bytes widened to int16, smlal by lane (exact; sdot
//                                    would need signed activations)
//              MTLITE_I8_WASM_SIMD128  WebAssembly SIMD128: bytes widened to int16,
//                                    i32x4.dot_i16x8_s (exact; the AVX2 path's vpmaddwd)
//              otherwise the scalar reference
//   f16        MTLITE_F16_AVX512     AVX-512 F: vcvtph2ps, 16 halves per instruction
//              MTLITE_F16_F16C       AVX2 + F16C: vcvtph2ps, 8 halves per instruction
//              MTLITE_F16_NEON       AArch64: fcvtl, 4 halves per instruction
//              otherwise the scalar reference
//   rows_q     MTLITE_Q_AVX512 / MTLITE_Q_AVX2 (AVX2 + FMA) / MTLITE_Q_NEON (AArch64), otherwise
//              the scalar reference.
// Every path that rounds (the fma of the i8 epilogue and of the embedding dequantisation) uses a
// hardware fma, the same single rounding as std::fma in the reference: the results are
// bit-identical to it. SIMD128 has no fma: its i8 epilogue calls std::fma per output, which
// costs one call per output against k multiply-adds. (32-bit ARM runs the references.)
#pragma once

#include "xsimd.hpp"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define MTLITE_I8_AVX512VNNI 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__AVXVNNI__)
#define MTLITE_I8_AVXVNNI 1
#elif defined(__AVX2__) && defined(__FMA__)
#define MTLITE_I8_AVX2 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_MATMUL_INT8)
#define MTLITE_I8_NEON_I8MM 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define MTLITE_I8_NEON_DOT 1
#elif defined(__aarch64__)
#define MTLITE_I8_NEON 1
#elif defined(__wasm_simd128__)
#define MTLITE_I8_WASM_SIMD128 1
#endif

#if defined(__AVX512F__)
#define MTLITE_F16_AVX512 1
#elif defined(__AVX2__) && defined(__F16C__)
#define MTLITE_F16_F16C 1
#elif defined(__aarch64__)
#define MTLITE_F16_NEON 1
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define MTLITE_Q_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define MTLITE_Q_AVX2 1
#elif defined(__aarch64__)
#define MTLITE_Q_NEON 1
#endif

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

// The code paths compiled in (for test and benchmark reports).
constexpr const char* i8_path_name() noexcept {
#if defined(MTLITE_I8_AVX512VNNI)
  return "avx512vnni";
#elif defined(MTLITE_I8_AVXVNNI)
  return "avxvnni";
#elif defined(MTLITE_I8_AVX2)
  return "avx2";
#elif defined(MTLITE_I8_NEON_I8MM)
  return "neon-i8mm";
#elif defined(MTLITE_I8_NEON_DOT)
  return "neon-dot";
#elif defined(MTLITE_I8_NEON)
  return "neon";
#elif defined(MTLITE_I8_WASM_SIMD128)
  return "wasm-simd128";
#else
  return "scalar";
#endif
}
constexpr const char* f16_path_name() noexcept {
#if defined(MTLITE_F16_AVX512)
  return "avx512";
#elif defined(MTLITE_F16_F16C)
  return "f16c";
#elif defined(MTLITE_F16_NEON)
  return "neon";
#else
  return "scalar";
#endif
}
constexpr const char* q_path_name() noexcept {
#if defined(MTLITE_Q_AVX512)
  return "avx512";
#elif defined(MTLITE_Q_AVX2)
  return "avx2";
#elif defined(MTLITE_Q_NEON)
  return "neon";
#else
  return "scalar";
#endif
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
