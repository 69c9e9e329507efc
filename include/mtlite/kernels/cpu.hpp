// What the CPU this program runs on can execute, by kernel level (kernels/dispatch.hpp).
//
// x86-64: cpuid for the instructions and xgetbv for the operating system's support of the
// registers they use (an OS that does not save the AVX-512 state makes those instructions
// fault even on a CPU that has them). A level's test covers every instruction its compiler
// flags allow (meson.build gives the flags):
//   avx2        AVX2, FMA, F16C (and AVX)
//   avxvnni     avx2 + AVX-VNNI
//   avx512      avx2 + AVX-512 F, CD, BW, DQ, VL
//   avx512vnni  avx512 + AVX-512 VNNI
// AArch64 Linux and Android: the kernel's hardware capability bits (getauxval):
//   neon-dot    DotProd (HWCAP_ASIMDDP)
//   neon-i8mm   neon-dot + I8MM (HWCAP2_I8MM)
// Elsewhere only the levels every CPU of the target runs (scalar, and sse2 or neon) are known.
#pragma once

#include <cstdint>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define MTLITE_CPU_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define MTLITE_CPU_AARCH64_LINUX 1
#endif

namespace mtlite::kernels {

namespace detail_cpu {

#if defined(MTLITE_CPU_X86)
struct X86 {
  bool avx2 = false, avxvnni = false, avx512 = false, avx512vnni = false;
};

inline X86 read_x86() noexcept {
  X86 f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));  // XCR0: the register state the OS saves
  const bool os_avx = (lo & 0x6) == 0x6;            // XMM and YMM
  const bool os_avx512 = (lo & 0xe6) == 0xe6;       // and opmask, ZMM 0-15 upper, ZMM 16-31
  if (!os_avx || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const unsigned ebx7 = b, ecx7 = c;
  f.avx2 = fma && f16c && (ebx7 & (1u << 5));
  const unsigned avx512_fcdbwdqvl = (1u << 16) | (1u << 28) | (1u << 30) | (1u << 17) | (1u << 31);
  f.avx512 = f.avx2 && os_avx512 && (ebx7 & avx512_fcdbwdqvl) == avx512_fcdbwdqvl;
  f.avx512vnni = f.avx512 && (ecx7 & (1u << 11));
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avxvnni = f.avx2 && (a & (1u << 4));
  return f;
}
#endif

}  // namespace detail_cpu

// True if this CPU runs the kernels of `level` (a name from dispatch.hpp); false for a name
// that is unknown or of another architecture.
inline bool cpu_runs(const char* level) noexcept {
  const auto is = [level](const char* name) { return std::strcmp(level, name) == 0; };
  if (is("scalar")) return true;
#if defined(MTLITE_CPU_X86)
  static const detail_cpu::X86 f = detail_cpu::read_x86();
  if (is("sse2")) return true;
  if (is("avx2")) return f.avx2;
  if (is("avxvnni")) return f.avxvnni;
  if (is("avx512")) return f.avx512;
  if (is("avx512vnni")) return f.avx512vnni;
#elif defined(__aarch64__)
  if (is("neon")) return true;
#if defined(MTLITE_CPU_AARCH64_LINUX)
  constexpr unsigned long kAsimdDp = 1ul << 20;  // HWCAP_ASIMDDP
  constexpr unsigned long kI8mm = 1ul << 13;     // HWCAP2_I8MM
  const bool dot = getauxval(AT_HWCAP) & kAsimdDp;
  if (is("neon-dot")) return dot;
  if (is("neon-i8mm")) return dot && (getauxval(AT_HWCAP2) & kI8mm);
#endif
#endif
  return false;
}

}  // namespace mtlite::kernels
