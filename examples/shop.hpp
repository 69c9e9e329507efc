// The made-up shop that the C++ examples rank (game_loop.cpp, ranking_service.cpp): a seeded
// catalogue of items, and the input columns of a batch of candidates for a model with the
// features of tests/c_api/model.json (device, item_id, sku, tags, price, discount), the model
// tests/c_api/make_model.sh trains. In an app the items come from its store; what carries over
// is the pattern: raw values become ids once, through the model's own FeatureIds, and the
// columns of a batch are laid out once per feature so that each request only copies numbers.
#pragma once

#include <mtlite/mtlite.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace shop {

struct Item {
  std::int64_t id = 0, sku = 0;    // ids as training gave them
  std::vector<std::int64_t> tags;  // the multi-hot field's ids
  float price = 0.0f, discount = 0.0f;
};

// Items 0..n-1 with seeded prices, discounts and tags, as the synthetic funnel's rows hold them.
inline std::vector<Item> catalogue(const mtlite::FeatureIds& ids, std::size_t n, std::uint64_t seed) {
  const std::size_t item_id = ids.feature_index("item_id"), sku = ids.feature_index("sku");
  const std::size_t tags = ids.feature_index("tags");
  mtlite::Rng rng(seed);
  std::vector<Item> items(n);
  for (std::size_t i = 0; i < n; ++i) {
    Item& it = items[i];
    it.id = ids.id(item_id, static_cast<std::int64_t>(i));
    it.sku = ids.id(sku, "sku-" + std::to_string(i));
    ids.append_ids(tags, "c" + std::to_string(i % 6) + "|h" + std::to_string(rng.below(4)), it.tags);
    it.discount = static_cast<float>(rng.below(4)) * 0.1f;
    it.price = std::round(static_cast<float>(std::exp(3.0 + 0.8 * rng.normal())) * 100.0f) / 100.0f;
  }
  return items;
}

// The columns of one batch of candidates shown on one device, in the model's feature order,
// reused from batch to batch: once they have grown to max_rows, filling them allocates nothing.
class Candidates {
 public:
  // Throws mtlite::Error naming a feature of the model that the shop has no value for: scoring
  // with made-up values would give plausible but meaningless scores.
  explicit Candidates(const mtlite::Model& model, std::size_t max_rows) {
    for (const mtlite::Feature& f : model.spec().features) {
      const Column c = column_of(f.name, f.kind);
      if (c == Column::unknown)
        throw mtlite::Error("the model has a " + std::string(mtlite::to_string(f.kind)) + " feature '" + f.name +
                            "' that this example has no value for");
      (f.kind == mtlite::FeatureKind::dense ? dense_columns_ : f.kind == mtlite::FeatureKind::categorical ? id_columns_
                                                                                                          : bag_columns_)
          .push_back(c);
    }
    dense_.reserve(max_rows * dense_columns_.size());
    ids_.reserve(max_rows * id_columns_.size());
    bags_.resize(bag_columns_.size());
    for (BagColumn& b : bags_) b.offsets.reserve(max_rows + 1);
    views_.resize(bags_.size());
  }

  // Rows for catalogue[items[0..n)], all seen on `device` (its id).
  const mtlite::Batch& fill(const std::vector<Item>& catalogue, const std::size_t* items, std::size_t n,
                            std::int64_t device) {
    dense_.clear();
    ids_.clear();
    for (BagColumn& b : bags_) {
      b.ids.clear();
      b.offsets.assign(1, 0);
    }
    for (std::size_t r = 0; r < n; ++r) {
      const Item& it = catalogue[items[r]];
      for (const Column c : dense_columns_) dense_.push_back(c == Column::price ? it.price : it.discount);
      for (const Column c : id_columns_) ids_.push_back(c == Column::device ? device : c == Column::item_id ? it.id : it.sku);
      for (BagColumn& b : bags_) {
        b.ids.insert(b.ids.end(), it.tags.begin(), it.tags.end());
        b.offsets.push_back(static_cast<std::uint32_t>(b.ids.size()));
      }
    }
    for (std::size_t b = 0; b < bags_.size(); ++b) views_[b] = {bags_[b].ids, bags_[b].offsets};
    batch_.rows = n;
    batch_.dense = dense_;
    batch_.ids = ids_;
    batch_.bags = views_;
    return batch_;
  }

 private:
  enum class Column { unknown, device, item_id, sku, tags, price, discount };
  struct BagColumn {
    std::vector<std::int64_t> ids;
    std::vector<std::uint32_t> offsets;
  };

  static Column column_of(const std::string& name, mtlite::FeatureKind kind) {
    using K = mtlite::FeatureKind;
    if (kind == K::categorical) return name == "device" ? Column::device : name == "item_id" ? Column::item_id
                                                      : name == "sku"   ? Column::sku : Column::unknown;
    if (kind == K::multi_hot) return name == "tags" ? Column::tags : Column::unknown;
    return name == "price" ? Column::price : name == "discount" ? Column::discount : Column::unknown;
  }

  std::vector<Column> dense_columns_, id_columns_, bag_columns_;
  std::vector<float> dense_;
  std::vector<std::int64_t> ids_;
  std::vector<BagColumn> bags_;
  std::vector<mtlite::Bag> views_;
  mtlite::Batch batch_;
};

}  // namespace shop
