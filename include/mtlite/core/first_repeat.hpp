// The first string that repeats an earlier one: duplicate JSON keys, feature and task names.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

namespace mtlite {

// The smallest index whose string an earlier index holds too, or names.size() when all differ.
// Sorting finds repeats in O(n log n): comparing every pair of a spec's 65,536 features is 2^31
// compares, and a hash table hands whoever writes the file crafted collisions. `order` is
// scratch, so a caller that checks often (the JSON parser, per object) allocates once.
// One non-template function, so every caller shares one sort.
inline std::size_t first_repeat(const std::vector<std::string_view>& names, std::vector<std::size_t>& order) {
  const std::size_t n = names.size();
  order.resize(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const int c = names[a].compare(names[b]);
    return c < 0 || (c == 0 && a < b);
  });
  std::size_t first = n;
  for (std::size_t k = 1; k < n; ++k)
    if (order[k] < first && names[order[k]] == names[order[k - 1]]) first = order[k];
  return first;
}

}  // namespace mtlite
