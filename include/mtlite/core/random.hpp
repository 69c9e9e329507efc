// A small seeded generator whose stream is the same on every platform and standard library
// (std::*_distribution is not), so "seed 7" means the same weights everywhere.
#pragma once

#include <cmath>
#include <cstdint>

#include "hash.hpp"

namespace mtlite {

// SplitMix64 (Vigna): a 64-bit state, one multiply-xorshift finalizer per draw.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    state_ += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits: exact in float.
  float uniform() noexcept { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // In [lo, hi]: the rounding of lo + (hi - lo) * u can reach hi.
  float uniform(float lo, float hi) noexcept { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) noexcept { return n ? next() % n : 0; }
  // Standard normal by Box-Muller. It goes through libm's log and cos, whose last bits may
  // differ between platforms: use it for synthetic data, not where a format needs exact bits.
  double normal() noexcept {
    const double u1 = (static_cast<double>(next() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    const double u2 = static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

}  // namespace mtlite
