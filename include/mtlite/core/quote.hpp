// Text from outside (a file, a CSV field, a JSON key) going into an error message: at most
// kQuoted bytes shown, printable ASCII as is, every other byte (and the quote and backslash) as
// \xNN, between single quotes. A hostile name can then neither flood a log nor forge its lines.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mtlite {

inline constexpr std::size_t kQuoted = 64;

inline std::string quote(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < kQuoted; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > kQuoted) out += "...";
  return out + "'";
}

}  // namespace mtlite
