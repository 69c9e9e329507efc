// Strings -> their position in a fixed list, looked up by string_view. Serving code maps raw
// values to vocabulary ids once per request field, so a lookup may neither allocate nor copy the
// text (C++17's unordered_map<std::string> has no heterogeneous find): the keys live back to back
// in one buffer, and an open-addressing table at most half full holds their indices.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "hash.hpp"
#include "quote.hpp"

namespace mtlite {

class StringIndex {
 public:
  StringIndex() = default;

  // Throws Error naming the first key that repeats: a position must mean one string.
  template <class Keys>
  explicit StringIndex(const Keys& keys) {
    std::size_t n = 0;
    for (const auto& key : keys) {
      text_ += key;
      ends_.push_back(text_.size());
      ++n;
    }
    if (n >= std::numeric_limits<std::uint32_t>::max()) throw Error("more than 2^32 - 1 strings");
    std::size_t slots = 8;
    while (slots < 2 * n) slots *= 2;
    slots_.assign(slots, Slot{});
    mask_ = slots - 1;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string_view k = key(i);
      const std::uint64_t h = hash(k);
      std::size_t at = h & mask_;
      for (; slots_[at].index_plus_one != 0; at = (at + 1) & mask_)
        if (matches(slots_[at], h, k)) throw Error("duplicate value " + quote(k));
      slots_[at] = Slot{static_cast<std::uint32_t>(i + 1), tag(h)};
    }
  }

  std::size_t size() const noexcept { return ends_.size(); }
  std::string_view key(std::size_t i) const noexcept {
    const std::size_t begin = i ? ends_[i - 1] : 0;
    return std::string_view(text_).substr(begin, ends_[i] - begin);
  }

  // The position of s, or -1.
  std::int64_t find(std::string_view s) const noexcept {
    if (ends_.empty()) return -1;
    const std::uint64_t h = hash(s);
    for (std::size_t at = h & mask_; slots_[at].index_plus_one != 0; at = (at + 1) & mask_)
      if (matches(slots_[at], h, s)) return static_cast<std::int64_t>(slots_[at].index_plus_one) - 1;
    return -1;
  }

 private:
  // The top half of the hash, kept beside the index, rejects nearly every other key without
  // touching its text.
  struct Slot {
    std::uint32_t index_plus_one = 0;  // 0: empty
    std::uint32_t tag = 0;
  };

  // FNV-1a alone has weak low bits, and the low bits pick the slot.
  static std::uint64_t hash(std::string_view s) noexcept { return mix64(hash_string(s)); }
  static std::uint32_t tag(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h >> 32); }
  bool matches(const Slot& slot, std::uint64_t h, std::string_view s) const noexcept {
    return slot.tag == tag(h) && key(slot.index_plus_one - 1) == s;
  }

  std::string text_;               // every key, back to back
  std::vector<std::size_t> ends_;  // key i is text_[ends_[i-1], ends_[i])
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

}  // namespace mtlite
