// XXH64, the checksum of .mtl files (FORMAT.md: XXH64, seed 0, of bytes [64, file_bytes)).
//
// Written from the published description of the algorithm (the xxHash format specification by Yann Collet), not
// from its code:
//   - inputs of 32 bytes or more run through four 64-bit accumulators, one 8-byte lane of each
//     32-byte stripe apiece:  acc = rotl(acc + lane * P2, 31) * P1;
//   - the accumulators converge (rotations 1, 7, 12, 18) and are merged in one by one;
//   - the length is added, the remaining < 32 bytes are mixed in 8, then 4, then 1 byte at a time;
//   - a final avalanche spreads every input bit over the result.
// Words are read as unaligned little-endian values through memcpy (no alignment or aliasing UB),
// so the result is the same on every platform.
//
//   std::uint64_t h = mtlite::format::xxh64(data, size);          // one shot
//   mtlite::format::Xxh64 s; s.update(a, n); s.update(b, m); s.digest();  // the same, in pieces
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mtlite::format {

namespace xxh64_detail {

inline constexpr std::uint64_t P1 = 11400714785074694791ull;
inline constexpr std::uint64_t P2 = 14029467366897019727ull;
inline constexpr std::uint64_t P3 = 1609587929392839161ull;
inline constexpr std::uint64_t P4 = 9650029242287828579ull;
inline constexpr std::uint64_t P5 = 2870177450012600261ull;

constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr std::uint64_t from_le(std::uint64_t x) noexcept { return __builtin_bswap64(x); }
constexpr std::uint32_t from_le(std::uint32_t x) noexcept { return __builtin_bswap32(x); }
#else
constexpr std::uint64_t from_le(std::uint64_t x) noexcept { return x; }
constexpr std::uint32_t from_le(std::uint32_t x) noexcept { return x; }
#endif

inline std::uint64_t read64(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return from_le(v);
}
inline std::uint32_t read32(const unsigned char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return from_le(v);
}

constexpr std::uint64_t lane_round(std::uint64_t acc, std::uint64_t lane) noexcept {
  return rotl(acc + lane * P2, 31) * P1;
}
constexpr std::uint64_t merge(std::uint64_t h, std::uint64_t acc) noexcept {
  return (h ^ lane_round(0, acc)) * P1 + P4;
}

// Runs whole 32-byte stripes through the accumulators; returns the bytes consumed.
inline std::size_t stripes(std::uint64_t (&acc)[4], const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const std::size_t whole = n / 32 * 32;
  for (std::size_t i = 0; i < whole; i += 32) {
    a0 = lane_round(a0, read64(p + i));
    a1 = lane_round(a1, read64(p + i + 8));
    a2 = lane_round(a2, read64(p + i + 16));
    a3 = lane_round(a3, read64(p + i + 24));
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
  return whole;
}

inline void start(std::uint64_t (&acc)[4], std::uint64_t seed) noexcept {
  acc[0] = seed + P1 + P2;
  acc[1] = seed + P2;
  acc[2] = seed;
  acc[3] = seed - P1;
}

// Everything after the stripes: convergence (when there were any), length, tail, avalanche.
inline std::uint64_t finish(const std::uint64_t (&acc)[4], std::uint64_t seed, std::uint64_t total,
                            const unsigned char* tail, std::size_t n) noexcept {
  std::uint64_t h;
  if (total >= 32) {
    h = rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) + rotl(acc[3], 18);
    for (std::uint64_t a : acc) h = merge(h, a);
  } else {
    h = seed + P5;
  }
  h += total;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) h = rotl(h ^ lane_round(0, read64(tail + i)), 27) * P1 + P4;
  if (i + 4 <= n) {
    h = rotl(h ^ (std::uint64_t{read32(tail + i)} * P1), 23) * P2 + P3;
    i += 4;
  }
  for (; i < n; ++i) h = rotl(h ^ (std::uint64_t{tail[i]} * P5), 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

}  // namespace xxh64_detail

// XXH64 of `size` bytes at `data` (which may be null when size is 0).
inline std::uint64_t xxh64(const void* data, std::size_t size, std::uint64_t seed = 0) noexcept {
  namespace d = xxh64_detail;
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t acc[4];
  d::start(acc, seed);
  const std::size_t done = size >= 32 ? d::stripes(acc, p, size) : 0;
  return d::finish(acc, seed, size, p + done, size - done);
}

// The same hash over input that arrives in pieces: update() any number of times, then digest()
// (which does not change the state, so more can follow).
class Xxh64 {
 public:
  explicit Xxh64(std::uint64_t seed = 0) noexcept : seed_(seed) { xxh64_detail::start(acc_, seed); }

  void update(const void* data, std::size_t size) noexcept {
    namespace d = xxh64_detail;
    if (size == 0) return;
    const auto* p = static_cast<const unsigned char*>(data);
    total_ += size;
    if (buffered_ > 0) {  // top up the partial stripe first
      const std::size_t take = size < 32 - buffered_ ? size : 32 - buffered_;
      std::memcpy(buffer_ + buffered_, p, take);
      buffered_ += take;
      p += take;
      size -= take;
      if (buffered_ < 32) return;
      d::stripes(acc_, buffer_, 32);
      buffered_ = 0;
    }
    const std::size_t done = d::stripes(acc_, p, size);
    std::memcpy(buffer_, p + done, size - done);
    buffered_ = size - done;
  }

  std::uint64_t digest() const noexcept {
    return xxh64_detail::finish(acc_, seed_, total_, buffer_, buffered_);
  }

 private:
  std::uint64_t seed_;
  std::uint64_t acc_[4];
  std::uint64_t total_ = 0;
  unsigned char buffer_[32] = {};
  std::size_t buffered_ = 0;
};

}  // namespace mtlite::format
