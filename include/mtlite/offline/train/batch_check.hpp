// The inputs of a batch checked against the program before any work starts (step 1 of a
// training step, with make_targets in loss.hpp for the labels): the passes that follow read
// ids, bags and dense values without checking them, and a malformed batch must throw while
// nothing has changed yet.
#pragma once

#include <cmath>
#include <cstddef>

#include "../../core/error.hpp"
#include "../../input.hpp"
#include "../../spec.hpp"
#include "program.hpp"

namespace mtlite::train {

// Throws Error naming the first thing wrong: a count, a bag's offsets, a dense value that is not
// finite.
inline void check_batch(const Program& p, const Spec& spec, const Batch& b) {
  const std::size_t n_dense = p.dense.size();
  if (b.dense.size() != b.rows * n_dense)
    throw Error(internal::printf_string("dense: got %zu values, expected %zu rows x %zu dense features = %zu",
                                 b.dense.size(), b.rows, n_dense, b.rows * n_dense));
  if (b.ids.size() != b.rows * p.n_ids)
    throw Error(internal::printf_string("ids: got %zu values, expected %zu rows x %zu categorical features = %zu",
                                 b.ids.size(), b.rows, p.n_ids, b.rows * p.n_ids));
  if (b.bags.size() != p.n_bags)
    throw Error(internal::printf_string("bags: got %zu, expected one per multi-hot feature (%zu)", b.bags.size(),
                                 p.n_bags));
  for (const TableInput& t : p.tables) {
    if (!t.bag) continue;
    const Bag& bag = b.bags[t.slot];
    const char* name = spec.features[t.feature].name.c_str();
    if (bag.offsets.size() != b.rows + 1)
      throw Error(internal::printf_string("bag '%s': got %zu offsets, expected rows + 1 = %zu", name,
                                   bag.offsets.size(), b.rows + 1));
    for (std::size_t r = 0; r < b.rows; ++r)
      if (bag.offsets[r] > bag.offsets[r + 1])
        throw Error(internal::printf_string("bag '%s': offsets decrease at row %zu", name, r));
    if (bag.offsets[b.rows] > bag.ids.size())
      throw Error(internal::printf_string("bag '%s': offsets reach %u but there are %zu ids", name,
                                   static_cast<unsigned>(bag.offsets[b.rows]), bag.ids.size()));
  }
  for (const DenseInfo& d : p.dense)
    for (std::size_t r = 0; r < b.rows; ++r)
      if (!std::isfinite(b.dense[r * n_dense + d.slot]))
        throw Error(internal::printf_string("dense feature '%s' is not finite at row %zu",
                                     spec.features[d.feature].name.c_str(), r));
}

}  // namespace mtlite::train
