// Build configuration: the one place where macros are decided.
//
//   MTLITE_NO_SIMD   define to force the portable scalar kernels (no xsimd include at all).
//                    Defined automatically when xsimd has no architecture for the target.
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
