// One field's text read as the value a binding wants: a number, an integer id, a missing token,
// the items of a multi-hot list. fit(), load() and the row reader read fields alike through these,
// so that they agree on what a field holds.
#pragma once

#include <mtlite/format/decimal.hpp>

#include "csv.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace mtlite::data {

// A finite number within float range: "1", "-2.5", "+3", "1e5". No "nan", "inf", hex, or text
// around it (the caller trims spaces).
inline bool parse_number(std::string_view s, double& out) noexcept {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  if (s.empty()) return false;
  double d = 0;
  if (!decimal::parse_general(s.data(), s.data() + s.size(), d)) return false;
  if (!(std::fabs(d) <= static_cast<double>(std::numeric_limits<float>::max()))) return false;
  out = d;
  return true;
}

inline bool parse_integer(std::string_view s, std::int64_t& out) noexcept {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  if (s.empty()) return false;
  std::int64_t v = 0;
  const std::from_chars_result r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  out = v;
  return true;
}

inline bool in_list(std::string_view s, const std::vector<std::string>& list) noexcept {
  for (const std::string& x : list)
    if (x == s) return true;
  return false;
}

// Calls f(item) for each trimmed, non-empty, non-missing item of a multi-hot field.
template <class F>
void for_each_item(std::string_view field, const std::string& sep,
                   const std::vector<std::string>& missing, F&& f) {
  std::size_t from = 0;
  for (;;) {
    const std::size_t at = field.find(sep, from);
    const std::string_view item =
        trim(field.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    if (!item.empty() && !in_list(item, missing)) f(item);
    if (at == std::string_view::npos) return;
    from = at + sep.size();
  }
}

}  // namespace mtlite::data
