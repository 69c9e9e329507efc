// Finding Inf and NaN fast: the loader checks every float weight of a file, and predict every
// dense input, so both scan at memory speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mtlite::internal {

namespace detail {

// The index of the first of n words (little-endian U, unaligned) whose `mask` bits are all set,
// or n. Blocks of words are or-reduced first, a loop the compiler vectorises: a mapped f32 model
// is checked at memory speed, and only a block with a hit is searched word by word.
template <class U>
std::uint64_t first_with_all_bits(const std::byte* p, std::uint64_t n, U mask) noexcept {
  constexpr std::uint64_t kBlock = 2048;
  for (std::uint64_t b = 0; b < n; b += kBlock) {
    const std::uint64_t e = n - b < kBlock ? n : b + kBlock;
    unsigned hit = 0;
    for (std::uint64_t i = b; i < e; ++i) {
      U w;
      std::memcpy(&w, p + i * sizeof(U), sizeof(U));
      hit |= static_cast<unsigned>((w & mask) == mask);
    }
    if (hit)
      for (std::uint64_t i = b; i < e; ++i) {
        U w;
        std::memcpy(&w, p + i * sizeof(U), sizeof(U));
        if ((w & mask) == mask) return i;
      }
  }
  return n;
}

}  // namespace detail

// The index of the first Inf or NaN among n floats, or n (the loader's weights, predict's inputs).
inline std::size_t first_non_finite(const float* v, std::size_t n) noexcept {
  return static_cast<std::size_t>(
      detail::first_with_all_bits<std::uint32_t>(reinterpret_cast<const std::byte*>(v), n, 0x7f800000u));
}

}  // namespace mtlite::internal
