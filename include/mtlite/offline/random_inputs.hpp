// Random inputs of the right shape for any spec: dense values uniform in [-1, 1], ids spread
// over each table (a few out of range, to exercise the OOV row), bags of up to four ids. For
// benchmarks, self-tests and tests; seeded, so the same on every platform.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/random.hpp"
#include "../input.hpp"
#include "../spec.hpp"

namespace mtlite {

class RandomInputs {
 public:
  RandomInputs(const Spec& spec, std::size_t rows, std::uint64_t seed) : rows_(rows) {
    Rng rng(seed);
    auto id = [&](const Feature& f) {
      // One id in 16 lies past the vocabulary: it must land in the OOV row.
      return static_cast<std::int64_t>(rng.below(16) == 0 ? f.size + rng.below(100) : rng.below(f.size));
    };
    for (std::size_t r = 0; r < rows; ++r)
      for (const Feature& f : spec.features) {
        if (f.kind == FeatureKind::dense) dense_.push_back(rng.uniform(-1.0f, 1.0f));
        if (f.kind == FeatureKind::categorical) ids_.push_back(id(f));
      }
    for (const Feature& f : spec.features) {
      if (f.kind != FeatureKind::multi_hot) continue;
      bag_ids_.emplace_back();
      bag_offsets_.emplace_back(1, 0);
      for (std::size_t r = 0; r < rows; ++r) {
        for (std::uint64_t j = rng.below(5); j > 0; --j) bag_ids_.back().push_back(id(f));
        bag_offsets_.back().push_back(static_cast<std::uint32_t>(bag_ids_.back().size()));
      }
    }
    for (std::size_t i = 0; i < bag_ids_.size(); ++i) bags_.push_back({bag_ids_[i], bag_offsets_[i]});
  }

  RandomInputs(const RandomInputs&) = delete;
  RandomInputs& operator=(const RandomInputs&) = delete;

  Batch batch() const { return {rows_, dense_, ids_, bags_}; }
  const std::vector<float>& dense() const { return dense_; }
  const std::vector<std::int64_t>& ids() const { return ids_; }
  const std::vector<std::vector<std::int64_t>>& bag_ids() const { return bag_ids_; }
  const std::vector<std::vector<std::uint32_t>>& bag_offsets() const { return bag_offsets_; }

 private:
  std::size_t rows_;
  std::vector<float> dense_;
  std::vector<std::int64_t> ids_;
  std::vector<std::vector<std::int64_t>> bag_ids_;
  std::vector<std::vector<std::uint32_t>> bag_offsets_;
  std::vector<Bag> bags_;
};

}  // namespace mtlite
