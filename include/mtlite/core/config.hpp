// Build configuration: the one place where macros are decided.
//
//   MTLITE_NO_SIMD   define to force the portable scalar kernels (no xsimd include at all).
//                    Defined automatically when xsimd has no architecture for the target.
//                    WebAssembly has one through emscripten: with -msimd128 -msse2 its SSE2
//                    intrinsics are SIMD128 instructions, and xsimd's sse2 kernels run on them
//                    (level wasm-simd128; cross/wasm32-emscripten.ini).
//   MTLITE_DISPATCH  the program picks its kernels at run time from tables compiled once per
//                    instruction-set level (kernels/dispatch.hpp); set by a -Dsimd=dispatch
//                    build for its own programs, never by header-only users.
//   MTLITE_TARGET    the inline namespace the kernels live in, named after the instruction set
//                    the including file is compiled for (below). Files compiled for different
//                    levels then define different functions, so the linker, which keeps one copy
//                    of each inline function, can never swap one level's code for another's.
//   MTLITE_CHUNK_ROWS  rows a Session pushes through the network at a time (default 64): large
//                    enough to amortise weight reads, small enough that a chunk's activations
//                    stay in L2.
#pragma once

#include <cstddef>
#include <cstdint>

#if !defined(MTLITE_NO_SIMD)
#if !(defined(__SSE2__) || defined(_M_X64) || defined(__ARM_NEON) || defined(__aarch64__))
#define MTLITE_NO_SIMD 1
#endif
#endif

// The level names are the ones kernels/dispatch.hpp selects by (with '-' for '_').
#if defined(MTLITE_NO_SIMD)
#define MTLITE_TARGET scalar
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define MTLITE_TARGET avx512vnni
#elif defined(__AVX512F__) && defined(__AVX512BW__)
#define MTLITE_TARGET avx512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__AVXVNNI__)
#define MTLITE_TARGET avxvnni
#elif defined(__AVX2__) && defined(__FMA__)
#define MTLITE_TARGET avx2
#elif defined(__wasm_simd128__)
#define MTLITE_TARGET wasm_simd128
#elif defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define MTLITE_TARGET sse2
#elif defined(__aarch64__) && defined(__ARM_FEATURE_MATMUL_INT8)
#define MTLITE_TARGET neon_i8mm
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define MTLITE_TARGET neon_dot
#else
#define MTLITE_TARGET neon
#endif

#ifndef MTLITE_CHUNK_ROWS
#define MTLITE_CHUNK_ROWS 64
#endif

// Register tiles are written as loops over template constants; they must be unrolled fully
// (the accumulators live in registers only then), also at -O2.
#if defined(__clang__)
#define MTLITE_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define MTLITE_UNROLL _Pragma("GCC unroll 32")
#else
#define MTLITE_UNROLL
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MTLITE_RESTRICT __restrict__
#define MTLITE_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define MTLITE_RESTRICT __restrict
#define MTLITE_ALWAYS_INLINE __forceinline
#else
#define MTLITE_RESTRICT
#define MTLITE_ALWAYS_INLINE inline
#endif

namespace mtlite {

// Packed weight panels and scratch rows are aligned to a cache line.
inline constexpr std::size_t kAlign = 64;

#if defined(MTLITE_NO_SIMD)
inline constexpr bool kSimd = false;
#else
inline constexpr bool kSimd = true;
#endif

}  // namespace mtlite
