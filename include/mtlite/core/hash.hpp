// The id hash for hashed categorical features. It is part of the model format: a model trained
// anywhere must put an id in the same bucket on every platform, so it is spelled out here.
//
//   string id s       -> u = FNV-1a 64 over the bytes of s
//                        (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
//   64-bit id u       -> bucket = mix64(u) mod B
//   mix64             = MurmurHash3's fmix64 finalizer:
//                        u ^= u >> 33; u *= 0xff51afd7ed558ccd; u ^= u >> 33;
//                        u *= 0xc4ceb9fe1a85ec53; u ^= u >> 33
// Signed ids are reinterpreted as their two's-complement 64-bit pattern.
#pragma once

#include <cstdint>
#include <string_view>

namespace mtlite {

constexpr std::uint64_t mix64(std::uint64_t u) noexcept {
  u ^= u >> 33;
  u *= 0xff51afd7ed558ccdull;
  u ^= u >> 33;
  u *= 0xc4ceb9fe1a85ec53ull;
  u ^= u >> 33;
  return u;
}

constexpr std::uint64_t hash_string(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// buckets >= 1 (Spec::validate guarantees it for features).
constexpr std::uint64_t hash_bucket(std::uint64_t id, std::uint64_t buckets) noexcept {
  return mix64(id) % buckets;
}

}  // namespace mtlite
