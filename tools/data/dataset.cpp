// load(): a file's rows into the columns of a Dataset through a fitted binding, and the Dataset's
// views of a row range (batch, labels, weights, groups) and selections of rows.
#include "dataset.hpp"

#include "fields.hpp"
#include "row_reader.hpp"
#include "string_table.hpp"

#include <mtlite/core/hash.hpp>
#include <mtlite/format/spec_json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtlite::data {
namespace {

// A vocabulary feature's strings -> ids, looked up without copying the text.
class Vocabulary {
 public:
  explicit Vocabulary(const std::vector<std::string>& values) {
    bool inserted;
    for (const std::string& v : values) table_.insert(v, inserted);
  }
  std::int64_t operator()(std::string_view s) const noexcept { return table_.find(s); }

 private:
  StringTable table_;
};

// Gives back a generous reservation (an estimate can be off), but does not copy for a few percent.
template <class T>
void fit_to_size(std::vector<T>& v) {
  if (v.capacity() > v.size() + v.size() / 8 + 1024) v.shrink_to_fit();
}

// A dense input as the runtime feeds it to the network (executor.hpp does the same).
double normalized(const Feature& f, double v) {
  switch (f.normalization) {
    case Normalization::standardize: return (v - f.mean) / f.stddev;
    case Normalization::log1p: return std::copysign(std::log1p(std::fabs(v)), v);
    case Normalization::log1p_standardize: return (std::copysign(std::log1p(std::fabs(v)), v) - f.mean) / f.stddev;
    case Normalization::none: break;
  }
  return v;
}

// A dense feature's values beyond kSuspiciousInput after normalization, for load()'s warning.
struct Outliers {
  std::size_t count = 0;
  double largest = 0;      // |normalized value|
  float largest_raw = 0;   // the value as read
  std::size_t first_line = 0;
};

// Builds a Dataset one good row at a time.
class Loader {
 public:
  Loader(const std::string& path, const DataBinding& b, const Spec& spec) : path_(path), b_(b), spec_(spec) {
    ds_.num_dense = spec.count(FeatureKind::dense);
    ds_.num_categorical = spec.count(FeatureKind::categorical);
    ds_.num_tasks = spec.tasks.size();
    ds_.bags.resize(spec.count(FeatureKind::multi_hot));
    for (Dataset::Bags& bag : ds_.bags) bag.offsets.push_back(0);
    const std::size_t nf = b.features.size();
    slot_.resize(nf);
    vocab_.resize(nf);
    outliers_.resize(nf);
    std::size_t d = 0, c = 0, m = 0;
    for (std::size_t i = 0; i < nf; ++i) {
      const FeatureBinding& f = b.features[i];
      slot_[i] = f.kind == FeatureKind::dense ? d++ : f.kind == FeatureKind::categorical ? c++ : m++;
      if (f.uses_vocabulary()) vocab_[i] = std::make_unique<Vocabulary>(*f.vocabulary);
    }
  }

  // Growing by doubling would copy the arrays again and again: they are sized once instead.
  void reserve(std::size_t n, std::size_t max_rows) {
    if (max_rows && n > max_rows) n = max_rows;
    ds_.dense.reserve(n * ds_.num_dense);
    ds_.ids.reserve(n * ds_.num_categorical);
    for (Dataset::Bags& bag : ds_.bags) bag.offsets.reserve(n + 1);
    ds_.labels.reserve(n * ds_.num_tasks);
    ds_.mask.reserve(n * ds_.num_tasks);
    ds_.weights.reserve(n);
    ds_.groups.reserve(n);
  }

  void add(const RowReader& rows) {
    const std::size_t d0 = ds_.dense.size(), c0 = ds_.ids.size();
    ds_.dense.resize(d0 + ds_.num_dense);
    ds_.ids.resize(c0 + ds_.num_categorical);
    float* const dense = ds_.dense.data() + d0;
    std::int64_t* const ids = ds_.ids.data() + c0;
    for (std::size_t i = 0; i < b_.features.size(); ++i) {
      const FeatureBinding& f = b_.features[i];
      switch (f.kind) {
        case FeatureKind::dense:
          dense[slot_[i]] = std::isnan(rows.num[i]) ? *f.fill : static_cast<float>(rows.num[i]);
          note_outlier(i, dense[slot_[i]], rows.line());
          break;
        case FeatureKind::categorical:
          ids[slot_[i]] = rows.missing[i] ? -1
                          : f.values == Values::integers ? rows.id[i]
                                                         : id_of(i, rows.text[i]);
          break;
        case FeatureKind::multi_hot:
          add_bag(i, rows);
          break;
      }
    }
    ds_.labels.insert(ds_.labels.end(), rows.label.begin(), rows.label.end());
    ds_.mask.insert(ds_.mask.end(), rows.mask.begin(), rows.mask.end());
    ds_.weights.push_back(rows.weight);
    ds_.groups.push_back(rows.group);
  }

  Dataset finish(const ReadReport& report) {
    ds_.rows = report.rows;
    ds_.report = report;
    warn_outliers();
    fit_to_size(ds_.dense);
    fit_to_size(ds_.ids);
    for (Dataset::Bags& bag : ds_.bags) {
      fit_to_size(bag.ids);
      fit_to_size(bag.offsets);
    }
    fit_to_size(ds_.labels);
    fit_to_size(ds_.mask);
    fit_to_size(ds_.weights);
    fit_to_size(ds_.groups);
    return std::move(ds_);
  }

 private:
  void note_outlier(std::size_t i, float v, std::size_t line) {
    const double z = std::fabs(normalized(spec_.features[i], v));
    if (!(z > kSuspiciousInput)) return;
    Outliers& o = outliers_[i];
    if (o.count++ == 0) o.first_line = line;
    if (z > o.largest) {
      o.largest = z;
      o.largest_raw = v;
    }
  }

  // One warning per feature, in the report and on stderr: training goes on (the values are
  // numbers, and may be right), but the user should hear why the loss is 1e35.
  void warn_outliers() {
    for (std::size_t i = 0; i < outliers_.size(); ++i) {
      const Outliers& o = outliers_[i];
      if (o.count == 0) continue;
      const Feature& f = spec_.features[i];
      char numbers[96];
      std::snprintf(numbers, sizeof numbers, "the largest %g (%g normalized)", static_cast<double>(o.largest_raw),
                    o.largest);
      std::string w = path_ + ": feature '" + f.name + "' (" + b_.features[i].column.describe() + "): " +
                      std::to_string(o.count) + " of " + std::to_string(ds_.rows) +
                      " values lie beyond +-1e6 after its normalization " +
                      internal::normalization_json(f.normalization).dump() + ", " + numbers +
                      ", first on line " + std::to_string(o.first_line) +
                      "; a network trains badly on such inputs: give the feature \"normalization\": \"log1p\" or "
                      "\"standardize\", or check the column";
      std::fprintf(stderr, "mtlite: warning: %s\n", w.c_str());
      ds_.report.warnings.push_back(std::move(w));
    }
  }

  std::int64_t id_of(std::size_t i, std::string_view text) const {
    const FeatureBinding& f = b_.features[i];
    if (f.values == Values::integers) {
      std::int64_t x = -1;
      parse_integer(text, x);  // checked by RowReader
      return x;
    }
    if (f.mapping == IdMapping::hashing) return static_cast<std::int64_t>(hash_string(text));
    return (*vocab_[i])(text);
  }

  void add_bag(std::size_t i, const RowReader& rows) {
    const FeatureBinding& f = b_.features[i];
    Dataset::Bags& bag = ds_.bags[slot_[i]];
    if (!rows.missing[i])
      for_each_item(rows.text[i], f.list_separator, rows.feature_missing(i),
                    [&](std::string_view item) { bag.ids.push_back(id_of(i, item)); });
    if (bag.ids.size() > std::numeric_limits<std::uint32_t>::max())
      throw Error(path_ + ": feature '" + f.name + "': more than 2^32 ids in all");
    bag.offsets.push_back(static_cast<std::uint32_t>(bag.ids.size()));
  }

  const std::string& path_;
  const DataBinding& b_;
  const Spec& spec_;
  std::vector<Outliers> outliers_;  // per feature
  Dataset ds_;
  std::vector<std::size_t> slot_;  // index among the features of its kind
  std::vector<std::unique_ptr<Vocabulary>> vocab_;
};

// Row r's `width` values of a row-major array, appended to `to`.
template <class T>
void copy_row(std::vector<T>& to, const std::vector<T>& from, std::size_t r, std::size_t width) {
  to.insert(to.end(), from.begin() + static_cast<std::ptrdiff_t>(r * width),
            from.begin() + static_cast<std::ptrdiff_t>((r + 1) * width));
}

}  // namespace

Dataset load(const std::string& path, const DataBinding& b, const Spec& spec, const ReadOptions& options) {
  b.check(spec);
  if (!b.fitted())
    throw Error("data: the bindings are not fitted (" + b.unfitted_reason() +
                "): fit() them on the training data first");
  Loader loader(path, b, spec);
  RowReader rows(path, b, options);
  while (rows.next()) {
    // Once some rows are in, the text read so far tells how many the file holds.
    if (rows.report.rows == 1000) loader.reserve(rows.estimated_rows(), options.max_rows);
    loader.add(rows);
  }
  return loader.finish(rows.report);
}

void Dataset::check_range(std::size_t begin, std::size_t end) const {
  if (begin > end || end > rows)
    throw Error("dataset: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") out of range for " + std::to_string(rows) + " rows");
}

Batch Dataset::batch(std::size_t begin, std::size_t end, std::vector<Bag>& bag_storage) const {
  check_range(begin, end);
  const std::size_t n = end - begin;
  Batch out;
  out.rows = n;
  out.dense = span<const float>(dense.data() + begin * num_dense, n * num_dense);
  out.ids = span<const std::int64_t>(ids.data() + begin * num_categorical, n * num_categorical);
  bag_storage.resize(bags.size());
  for (std::size_t k = 0; k < bags.size(); ++k) {
    bag_storage[k].ids = span<const std::int64_t>(bags[k].ids.data(), bags[k].ids.size());
    bag_storage[k].offsets = span<const std::uint32_t>(bags[k].offsets.data() + begin, n + 1);
  }
  out.bags = span<const Bag>(bag_storage.data(), bag_storage.size());
  return out;
}

Batch Dataset::batch(std::size_t begin, std::size_t end) const {
  thread_local std::vector<Bag> storage;
  return batch(begin, end, storage);
}

span<const float> Dataset::labels_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {labels.data() + begin * num_tasks, (end - begin) * num_tasks};
}
span<const std::uint8_t> Dataset::mask_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {mask.data() + begin * num_tasks, (end - begin) * num_tasks};
}
span<const float> Dataset::weights_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {weights.data() + begin, end - begin};
}
span<const std::int64_t> Dataset::groups_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {groups.data() + begin, end - begin};
}

Dataset Dataset::select(span<const std::size_t> row_indices) const {
  Dataset out;
  out.num_dense = num_dense;
  out.num_categorical = num_categorical;
  out.num_tasks = num_tasks;
  const std::size_t n = row_indices.size();
  out.rows = n;
  out.report.rows = n;
  out.dense.reserve(n * num_dense);
  out.ids.reserve(n * num_categorical);
  out.labels.reserve(n * num_tasks);
  out.mask.reserve(n * num_tasks);
  out.weights.reserve(n);
  out.groups.reserve(n);
  out.bags.resize(bags.size());
  for (Bags& bag : out.bags) {
    bag.offsets.reserve(n + 1);
    bag.offsets.push_back(0);
  }
  for (const std::size_t r : row_indices) {
    if (r >= rows)
      throw Error("dataset: row " + std::to_string(r) + " out of range for " + std::to_string(rows) + " rows");
    copy_row(out.dense, dense, r, num_dense);
    copy_row(out.ids, ids, r, num_categorical);
    copy_row(out.labels, labels, r, num_tasks);
    copy_row(out.mask, mask, r, num_tasks);
    out.weights.push_back(weights[r]);
    out.groups.push_back(groups[r]);
    for (std::size_t k = 0; k < bags.size(); ++k) {
      const Bags& from = bags[k];
      Bags& to = out.bags[k];
      to.ids.insert(to.ids.end(), from.ids.begin() + from.offsets[r], from.ids.begin() + from.offsets[r + 1]);
      if (to.ids.size() > std::numeric_limits<std::uint32_t>::max())
        throw Error("dataset: more than 2^32 multi-hot ids in the selection");
      to.offsets.push_back(static_cast<std::uint32_t>(to.ids.size()));
    }
  }
  return out;
}

}  // namespace mtlite::data
