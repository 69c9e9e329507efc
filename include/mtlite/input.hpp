// What predict reads: a batch of rows, features in spec order, arrays owned by the caller.
//
//   dense  rows x (dense features)        floats, row-major; NaN or infinity is an error
//   ids    rows x (categorical features)  64-bit ids, row-major. Vocabulary features take
//                                         0..size-1 (anything else lands in the OOV row);
//                                         hashed features take any id, or hash_string(text)
//   bags   one Bag per multi-hot feature  the ids of row r are ids[offsets[r] .. offsets[r+1])
#pragma once

#include <cstdint>

#include "core/span.hpp"

namespace mtlite {

struct Bag {
  span<const std::int64_t> ids;
  span<const std::uint32_t> offsets;  // rows + 1 values, non-decreasing, last <= ids.size()
};

struct Batch {
  std::size_t rows = 0;
  span<const float> dense;
  span<const std::int64_t> ids;
  span<const Bag> bags;
};

}  // namespace mtlite
