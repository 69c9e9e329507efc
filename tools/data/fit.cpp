// DataBinding::fit(): one pass over the training file learns what model.json left open — the
// vocabularies (counted, cut by min_count and max_size), the mean and stddev of standardize
// features, and the fill values of dense features — and writes them into the binding and spec.
#include "binding.hpp"
#include "binding_check.hpp"
#include "fields.hpp"
#include "row_reader.hpp"
#include "string_table.hpp"

#include <mtlite/core/quote.hpp>
#include <mtlite/format/mapped_file.hpp>
#include <mtlite/weights.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtlite::data {
namespace {

// Welford's update: one pass, and no cancellation when the values sit far from zero.
struct Moments {
  std::uint64_t n = 0;
  double mean = 0, m2 = 0;

  void add(double x) {
    ++n;
    const double d = x - mean;
    mean += d / static_cast<double>(n);
    m2 += d * (x - mean);
  }
};

// A column's distinct values with how often each was seen.
struct Counts {
  StringTable values;                // index = order of first appearance
  std::vector<std::uint64_t> count;  // per index

  void add(std::string_view value, const RowReader& rows, const FeatureBinding& f) {
    bool inserted;
    const std::size_t i = values.insert(value, inserted);
    if (!inserted) {
      ++count[i];
      return;
    }
    count.push_back(1);
    try {
      (void)Json(value).dump();  // a vocabulary goes into a model file's JSON: it must be UTF-8
    } catch (const Error&) {
      throw Error(rows.path() + ":" + std::to_string(rows.line()) + ": feature '" + f.name + "': " +
                  quote(value) + " is not valid UTF-8, which a vocabulary needs");
    }
  }

  // The values seen at least min_count times, most frequent first (ties keep the order of first
  // appearance), at most max_size of them.
  std::vector<std::string> vocabulary(const FeatureBinding& f) const {
    std::vector<std::size_t> order;  // indices, i.e. first appearances
    order.reserve(values.size());
    for (std::size_t k = 0; k < values.size(); ++k)
      if (count[k] >= f.min_count) order.push_back(k);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return count[a] > count[b]; });
    const std::uint64_t limit = f.max_size ? f.max_size : SpecLimits::max_table_rows - 1;
    if (order.size() > limit) order.resize(limit);
    std::vector<std::string> out;
    out.reserve(order.size());
    for (const std::size_t k : order) out.push_back(values.key(k));
    return out;
  }
};

// What the pass gathers, per feature: moments of dense features, counts of vocabulary features.
struct Tally {
  std::vector<Moments> moments;         // of the values as read
  std::vector<Moments> log1p_moments;   // of sign(v) log1p(|v|): the statistics of ["log1p", "standardize"]
  std::vector<Counts> counts;

  explicit Tally(std::size_t features) : moments(features), log1p_moments(features), counts(features) {}

  void add(const std::vector<FeatureBinding>& features, const RowReader& rows) {
    for (std::size_t i = 0; i < features.size(); ++i) {
      const FeatureBinding& f = features[i];
      if (f.kind == FeatureKind::dense) {
        if (!std::isnan(rows.num[i])) {
          moments[i].add(rows.num[i]);
          log1p_moments[i].add(std::copysign(std::log1p(std::fabs(rows.num[i])), rows.num[i]));
        }
      } else if (f.fit_vocabulary && !rows.missing[i]) {
        if (f.kind == FeatureKind::categorical)
          counts[i].add(rows.text[i], rows, f);
        else
          for_each_item(rows.text[i], f.list_separator, rows.feature_missing(i),
                        [&](std::string_view item) { counts[i].add(item, rows, f); });
      }
    }
  }
};

// A column with no values standardizes by 0 and 1; a constant one divides by 1, not by 0. The
// statistics are those of the values standardize sees: after log1p in ["log1p", "standardize"].
// The fill value is a raw value (it stands for a missing field): the mean as read.
void fit_dense(FeatureBinding& f, Feature& s, const Moments& raw, const Moments& log1p) {
  const Moments& m = s.normalization == Normalization::log1p_standardize ? log1p : raw;
  const double mean = m.n ? m.mean : 0.0;
  double stddev = m.n ? std::sqrt(m.m2 / static_cast<double>(m.n)) : 1.0;
  if (!(static_cast<float>(stddev) > 0.0f) || !std::isfinite(static_cast<float>(stddev))) stddev = 1.0;
  if (f.fit_stats) {
    s.mean = static_cast<float>(mean);
    s.stddev = static_cast<float>(stddev);
    f.stats_fitted = true;
  }
  if (f.fit_fill) f.fill = static_cast<float>(raw.n ? raw.mean : 0.0);
}

// Bytes in GiB for a message: "512.0 GiB".
std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / double(1ull << 30));
  return text;
}

}  // namespace

void check_training_memory(const Spec& spec) {
  const std::uint64_t memory = format::detail::physical_memory();
  double params = 0, largest = 0;  // in double: unchecked sizes may overflow 64 bits
  const Feature* widest = nullptr;
  for (const Feature& f : spec.features) {
    if (!f.has_embedding()) continue;
    const double n = static_cast<double>(f.table_rows()) * f.embedding_dim;
    params += n;
    if (n > largest) {
      largest = n;
      widest = &f;
    }
  }
  if (kTrainingBytesPerParameter * params <= static_cast<double>(memory)) {
    params = static_cast<double>(parameter_count(spec));  // the layers too, now that no table overflows
    if (kTrainingBytesPerParameter * params <= static_cast<double>(memory)) return;
  }
  std::string what = std::to_string(static_cast<unsigned long long>(params)) + " parameters";
  if (widest)
    what += " (feature '" + widest->name + "' alone: " + std::to_string(widest->table_rows()) + " rows x " +
            std::to_string(widest->embedding_dim) + ")";
  throw Error("the model has " + what + ": training needs about " + gib(kTrainingBytesPerParameter * params) +
              " (" + std::to_string(static_cast<int>(kTrainingBytesPerParameter)) +
              " bytes a parameter), more than the " + gib(static_cast<double>(memory)) +
              " of physical memory; make the table smaller (size, max_size) or its embedding_dim lower");
}

ReadReport DataBinding::fit(const std::string& path, Spec& spec, const ReadOptions& options) {
  check_against(*this, spec, false);
  check_training_memory(spec);  // before reading: the given and hashed tables are known already
  Tally tally(features.size());
  RowReader rows(path, *this, options);
  while (rows.next()) tally.add(features, rows);

  // Everything is read: only now change the binding and the spec, so a failed read leaves both.
  for (std::size_t i = 0; i < features.size(); ++i) {
    FeatureBinding& f = features[i];
    Feature& s = spec.features[i];
    if (f.kind == FeatureKind::dense)
      fit_dense(f, s, tally.moments[i], tally.log1p_moments[i]);
    else if (f.fit_vocabulary)
      f.vocabulary = tally.counts[i].vocabulary(f);
    if (f.uses_vocabulary() && f.vocabulary) s.size = std::max<std::uint64_t>(1, f.vocabulary->size());
  }
  spec.validate();
  check_training_memory(spec);  // ... and the fitted vocabularies now
  return rows.report;
}

}  // namespace mtlite::data
