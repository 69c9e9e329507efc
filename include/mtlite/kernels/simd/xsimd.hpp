// The one include of xsimd, and the facts the kernels need about the target.
//
// GCC 12's AVX-512 intrinsic headers trip -Wuninitialized when inlined (GCC bug 105593); the
// warning is located in the system header, so silencing it around the include is enough.
#pragma once

#include "../../core/config.hpp"

#if defined(MTLITE_NO_SIMD)
#error "kernels/simd/ is not available when MTLITE_NO_SIMD is defined"
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <cstddef>

#include "../packed.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

using arch = xsimd::default_arch;
using vfloat = xsimd::batch<float, arch>;
inline constexpr std::size_t kWidth = vfloat::size;

static_assert(kPanel % kWidth == 0, "a panel must be a whole number of vectors");

// Architectural vector registers: 32 with AVX-512 and on AArch64, 16 elsewhere.
#if defined(__AVX512F__) || defined(__aarch64__)
inline constexpr std::size_t kRegisters = 32;
#else
inline constexpr std::size_t kRegisters = 16;
#endif

inline const char* arch_name() noexcept { return arch::name(); }

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
