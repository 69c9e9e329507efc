// Strings -> dense indices 0, 1, 2... in insertion order: an open-addressing table probed with a
// string_view, so that neither counting nor looking up copies the text (C++17's unordered_map has
// no heterogeneous lookup). fit() counts a column's values in one; load() looks ids up in one.
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/core/hash.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace mtlite::data {

class StringTable {
 public:
  static std::uint64_t hash(std::string_view s) noexcept {
    constexpr std::uint64_t k = 0x9fb21c651e98df25ull;
    std::uint64_t h = s.size() * k;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) h = rotl((h ^ load8(s.data() + i)) * k, 29);
    if (i < s.size()) {
      std::uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      h = rotl((h ^ w) * k, 29);
    }
    return mix64(h);
  }

  // Equality without a call to memcmp: the keys are short, and by the time this runs the 64-bit
  // hashes matched, so the answer is nearly always yes.
  static bool same(const std::string& a, std::string_view b) noexcept {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    if (n < 8) {
      for (std::size_t i = 0; i < n; ++i)
        if (a[i] != b[i]) return false;
      return true;
    }
    for (std::size_t i = 0; i + 8 <= n; i += 8)
      if (load8(a.data() + i) != load8(b.data() + i)) return false;
    return load8(a.data() + n - 8) == load8(b.data() + n - 8);
  }

  std::size_t size() const noexcept { return keys_.size(); }
  const std::string& key(std::size_t i) const noexcept { return keys_[i]; }

  // The index of s, or -1.
  std::int64_t find(std::string_view s) const noexcept {
    if (slots_.empty()) return -1;
    const std::uint64_t h = hash(s);
    for (std::size_t at = h & mask_;; at = (at + 1) & mask_) {
      const std::uint32_t slot = slots_[at];
      if (slot == 0) return -1;
      if (hashes_[slot - 1] == h && same(keys_[slot - 1], s)) return slot - 1;
    }
  }

  // The index of s, added at the end when new (inserted = true).
  std::size_t insert(std::string_view s, bool& inserted) {
    if (2 * (keys_.size() + 1) > slots_.size()) grow();
    const std::uint64_t h = hash(s);
    std::size_t at = h & mask_;
    for (;; at = (at + 1) & mask_) {
      const std::uint32_t slot = slots_[at];
      if (slot == 0) break;
      if (hashes_[slot - 1] == h && same(keys_[slot - 1], s)) {
        inserted = false;
        return slot - 1;
      }
    }
    if (keys_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
      throw Error("data: more than 2^32 distinct values in one column");
    keys_.emplace_back(s);
    hashes_.push_back(h);
    slots_[at] = static_cast<std::uint32_t>(keys_.size());
    inserted = true;
    return keys_.size() - 1;
  }

 private:
  static std::uint64_t load8(const char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  static constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

  void grow() {
    const std::size_t n = slots_.empty() ? 64 : slots_.size() * 2;
    slots_.assign(n, 0);
    mask_ = n - 1;
    for (std::size_t i = 0; i < keys_.size(); ++i) {
      std::size_t at = hashes_[i] & mask_;
      while (slots_[at] != 0) at = (at + 1) & mask_;
      slots_[at] = static_cast<std::uint32_t>(i + 1);
    }
  }

  std::vector<std::string> keys_;
  std::vector<std::uint64_t> hashes_;
  std::vector<std::uint32_t> slots_;  // 0: empty; else index + 1
  std::size_t mask_ = 0;
};

}  // namespace mtlite::data
