// A tensor's shape: its dimensions, outermost first. The element count and the way messages
// print a shape ("[100001, 8]").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mtlite {

using Shape = std::vector<std::uint64_t>;

// Element count (callers bound the dimensions first, see tensor_bytes in dtype.hpp).
inline std::uint64_t numel(const Shape& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

inline std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace mtlite
