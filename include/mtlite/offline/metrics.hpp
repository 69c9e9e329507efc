// Evaluation metrics: exact, and fast enough for every epoch of the trainer, `mtlite eval` and the
// converter's calibration report (docs/training.md lists them with the commands that report them).
//
//   auc       exact global ROC AUC (weighted Mann-Whitney), one radix sort: O(n)
//   log_loss  weighted mean binary cross-entropy, scores clipped to [1e-7, 1 - 1e-7]
//   rmse      weighted root mean squared error
//   gauc      per-group AUC averaged over groups, weighted by the group's row count
//   ndcg_at   mean per-group NDCG@k with gain 2^rel - 1 and discount log2(rank + 1)
//
// Common rules for every function:
// - scores[i], labels[i] describe row i; `weights` (empty = every row weighs 1), `mask`
//   (empty = every row valid; mask[i] == 0 skips row i) and `groups` must be empty or as long as
//   `scores` where they are optional, and exactly as long where they are required. A length
//   mismatch throws mtlite::Error.
// - A row with weight 0 is treated exactly as a masked row: it is absent from every sum and count,
//   and its score and label are not checked.
// - Scores must not be NaN; labels must be finite; weights must be finite and >= 0. Anything else
//   throws mtlite::Error naming the argument and row (a NaN score has no place in a ranking, and
//   a silent NaN metric would hide a broken model).
// - Nothing is averaged per batch: each call is over every row it is given.
// - A metric that is undefined for its input (no valid row, no positive or no negative, no group
//   that qualifies) is NaN; check with std::isnan.
// - Extra memory is O(n): at most 24 bytes per valid row (auc: 8 to 16), freed on return.
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/core/span.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace mtlite {

// A per-group metric and the number of groups that went into it (0 when value is NaN).
struct GroupMetric {
  double value = std::numeric_limits<double>::quiet_NaN();
  std::size_t groups = 0;
};

namespace metrics_detail {

// An uninitialised array for scratch rows. Large ones are 2 MiB aligned and, on Linux, marked
// for transparent huge pages (madvise, best effort): with 4 KiB pages, first-touch page faults
// can be most of the cost of sorting 10 million rows.
template <class T>
class Scratch {
  static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= alignof(std::max_align_t),
                "scratch rows are plain values");
  static constexpr std::size_t kHuge = std::size_t{1} << 21;

 public:
  explicit Scratch(std::size_t n) {
    if (n == 0) return;
    if (n > (std::numeric_limits<std::size_t>::max() - kHuge) / sizeof(T)) throw std::bad_alloc();
    std::size_t bytes = n * sizeof(T);
    if (bytes >= 2 * kHuge) {
      bytes = (bytes + kHuge - 1) & ~(kHuge - 1);
      data_ = static_cast<T*>(::operator new(bytes, std::align_val_t{kHuge}));
      aligned_ = true;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      ::madvise(static_cast<void*>(data_), bytes, MADV_HUGEPAGE);  // advice: failure is harmless
#endif
    } else {
      data_ = static_cast<T*>(::operator new(bytes));
    }
  }
  ~Scratch() {
    if (aligned_)
      ::operator delete(static_cast<void*>(data_), std::align_val_t{kHuge});
    else
      ::operator delete(static_cast<void*>(data_));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  T* get() const noexcept { return data_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }

 private:
  T* data_ = nullptr;
  bool aligned_ = false;
};

inline void check_sizes(const char* fn, std::size_t n, std::size_t labels, std::size_t weights,
                        std::size_t mask, std::size_t groups, bool need_groups) {
  if (labels != n)
    throw Error(internal::printf_string("%s: labels has %zu rows but scores has %zu", fn, labels, n));
  if (weights != 0 && weights != n)
    throw Error(internal::printf_string("%s: weights has %zu rows but scores has %zu (empty = all 1)", fn,
                                 weights, n));
  if (mask != 0 && mask != n)
    throw Error(internal::printf_string("%s: mask has %zu rows but scores has %zu (empty = all valid)",
                                 fn, mask, n));
  if (need_groups && groups != n)
    throw Error(internal::printf_string("%s: groups has %zu rows but scores has %zu", fn, groups, n));
}

// The weight of row i, or 0 when the row is to be skipped. Throws on bad input in a kept row.
inline double row_weight(const char* fn, std::size_t i, span<const float> scores,
                         span<const float> labels, span<const float> weights,
                         span<const std::uint8_t> mask) {
  if (!mask.empty() && mask[i] == 0) return 0.0;
  double w = 1.0;
  if (!weights.empty()) {
    const float wf = weights[i];
    if (!(wf >= 0.0f) || !std::isfinite(wf))
      throw Error(internal::printf_string("%s: weights[%zu] = %g; weights must be finite and >= 0", fn,
                                   i, static_cast<double>(wf)));
    w = wf;
    if (w == 0.0) return 0.0;  // absent, like a masked row: its score and label are not read
  }
  if (std::isnan(scores[i])) throw Error(internal::printf_string("%s: scores[%zu] is NaN", fn, i));
  if (!std::isfinite(labels[i]))
    throw Error(internal::printf_string("%s: labels[%zu] = %g is not finite", fn, i,
                                 static_cast<double>(labels[i])));
  return w;
}

// An unsigned key that orders like the float: k(a) < k(b) iff a < b, for every non-NaN float.
// -0.0 and +0.0 share a key, so they tie as they compare equal.
inline std::uint32_t order_key(float s) noexcept {
  if (s == 0.0f) s = 0.0f;  // -0.0 -> +0.0
  std::uint32_t u;
  std::memcpy(&u, &s, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// A row for AUC: its score key in the high 32 bits, its weight as float bits in the low 32, with
// the sign bit set for a negative. Only rows of weight > 0 are packed, so the sign is never lost.
inline std::uint64_t pack(std::uint32_t key, float weight, bool positive) noexcept {
  std::uint32_t w;
  std::memcpy(&w, &weight, sizeof w);
  if (!positive) w |= 0x80000000u;
  return (static_cast<std::uint64_t>(key) << 32) | w;
}
inline std::uint32_t key_of(std::uint64_t item) noexcept {
  return static_cast<std::uint32_t>(item >> 32);
}
inline float signed_weight_of(std::uint64_t item) noexcept {
  const std::uint32_t w = static_cast<std::uint32_t>(item);
  float f;
  std::memcpy(&f, &w, sizeof f);
  return f;
}

// The number of bits needed to write x: 0 for 0, 32 for values with the top bit set.
inline int bit_width(std::uint32_t x) noexcept {
  int w = 0;
  for (; x != 0; x >>= 1) ++w;
  return w;
}

constexpr int kDigitBits = 11;
constexpr std::size_t kBuckets = std::size_t{1} << kDigitBits;

constexpr std::size_t kSmallSort = 512;

// Sorts items[0, m) by key (the order of equal keys is unspecified): std::sort when small, else
// an LSD radix sort over the key bits below the keys' common prefix, through tmp[0, m).
inline void sort_by_key(std::uint64_t* items, std::size_t m, std::uint64_t* tmp) {
  const auto by_key = [](std::uint64_t a, std::uint64_t b) { return key_of(a) < key_of(b); };
  if (m < kSmallSort) {
    std::sort(items, items + m, by_key);
    return;
  }
  std::uint32_t lo = key_of(items[0]), hi = lo;
  for (std::size_t i = 1; i < m; ++i) {
    lo = std::min(lo, key_of(items[i]));
    hi = std::max(hi, key_of(items[i]));
  }
  const int width = bit_width(lo ^ hi);  // bits above `width` are the same in every key
  if (width == 0) return;                // one key: already in order
  std::uint64_t* from = items;
  std::uint64_t* to = tmp;
  std::size_t count[kBuckets];
  for (int low = 0; low < width; low += kDigitBits) {
    const int shift = 32 + low;
    std::fill(count, count + kBuckets, std::size_t{0});
    for (std::size_t i = 0; i < m; ++i) ++count[(from[i] >> shift) & (kBuckets - 1)];
    std::size_t sum = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      const std::size_t here = count[b];
      count[b] = sum;
      sum += here;
    }
    for (std::size_t i = 0; i < m; ++i) to[count[(from[i] >> shift) & (kBuckets - 1)]++] = from[i];
    std::swap(from, to);
  }
  if (from != items) std::copy(from, from + m, items);
}

// Weighted Mann-Whitney over items sorted by key: sum over (positive, negative) pairs of
// w_pos * w_neg * (1 if the positive scores higher, 1/2 if tied), over (sum w_pos)(sum w_neg).
// item_of(row) gives a row's packed item.
template <class Row, class ItemOf>
double auc_of_sorted(const Row* begin, const Row* end, ItemOf item_of) noexcept {
  double neg_below = 0.0, pos_total = 0.0, numerator = 0.0;
  for (const Row* run = begin; run != end;) {
    const std::uint32_t key = key_of(item_of(*run));
    double pos = 0.0, neg = 0.0;
    const Row* it = run;
    for (; it != end && key_of(item_of(*it)) == key; ++it) {
      const float w = signed_weight_of(item_of(*it));
      if (w > 0.0f)
        pos += w;
      else
        neg -= w;
    }
    numerator += pos * (neg_below + 0.5 * neg);
    neg_below += neg;
    pos_total += pos;
    run = it;
  }
  if (pos_total <= 0.0 || neg_below <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  return numerator / (pos_total * neg_below);
}

}  // namespace metrics_detail

// Exact global ROC AUC: the probability that a random positive scores above a random negative,
// a tie counting 1/2. With weights, each (positive, negative) pair counts w_pos * w_neg (weighted
// Mann-Whitney). A row is positive when labels[i] > 0.5, negative otherwise (so soft or
// out-of-range labels are thresholded at 0.5). NaN when the valid rows hold no positive or no
// negative weight. One radix sort of the valid rows (buckets of fewer than 512 rows go through
// std::sort): O(n) time, about 0.2 s for 10 million rows; 8 bytes per valid row of memory, plus
// 8 per row of the largest score bucket (1/2048 of the score range) as sort scratch.
inline double auc(span<const float> scores, span<const float> labels,
                  span<const float> weights = {}, span<const std::uint8_t> mask = {}) {
  namespace d = metrics_detail;
  const std::size_t n = scores.size();
  d::check_sizes("auc", n, labels.size(), weights.size(), mask.size(), 0, false);
  // One buffer of packed rows, filled bucket by bucket: a counting pass over the inputs places
  // each valid row in the bucket of its top key digit (taken below the common prefix of the
  // smallest and largest key), then each bucket is sorted on its own, mostly in cache.
  // Pass 1: check every row; count the valid ones and find the key range.
  std::size_t valid = 0;
  std::uint32_t lo = ~std::uint32_t{0}, hi = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (d::row_weight("auc", i, scores, labels, weights, mask) <= 0.0) continue;
    const std::uint32_t key = d::order_key(scores[i]);
    lo = std::min(lo, key);
    hi = std::max(hi, key);
    ++valid;
  }
  if (valid == 0) return std::numeric_limits<double>::quiet_NaN();
  const int width = d::bit_width(lo ^ hi);
  const int shift = width > d::kDigitBits ? width - d::kDigitBits : 0;
  const auto digit = [shift](std::uint32_t key) {
    return static_cast<std::size_t>(key >> shift) & (d::kBuckets - 1);
  };
  // Rows already checked in pass 1: weight 0 (masked or weightless) or the row's weight.
  const auto weight_of = [&](std::size_t i) {
    if (!mask.empty() && mask[i] == 0) return 0.0f;
    return weights.empty() ? 1.0f : weights[i];
  };
  // Pass 2: bucket sizes, then starts.
  std::vector<std::size_t> start(d::kBuckets + 1, 0);
  for (std::size_t i = 0; i < n; ++i)
    if (weight_of(i) > 0.0f) ++start[digit(d::order_key(scores[i])) + 1];
  for (std::size_t b = 0; b < d::kBuckets; ++b) start[b + 1] += start[b];
  // Pass 3: scatter (uninitialised storage: every slot is written once).
  d::Scratch<std::uint64_t> items(valid);
  std::vector<std::size_t> next(start.begin(), start.end() - 1);
  for (std::size_t i = 0; i < n; ++i) {
    const float w = weight_of(i);
    if (!(w > 0.0f)) continue;
    const std::uint32_t key = d::order_key(scores[i]);
    items[next[digit(key)]++] = d::pack(key, w, labels[i] > 0.5f);
  }
  std::size_t largest = 0;
  for (std::size_t b = 0; b < d::kBuckets; ++b)
    largest = std::max(largest, start[b + 1] - start[b]);
  d::Scratch<std::uint64_t> tmp(largest >= d::kSmallSort ? largest : 0);
  for (std::size_t b = 0; b < d::kBuckets; ++b)
    d::sort_by_key(items.get() + start[b], start[b + 1] - start[b], tmp.get());
  return d::auc_of_sorted(items.get(), items.get() + valid,
                          [](std::uint64_t item) { return item; });
}

// Weighted mean binary cross-entropy -[y log p + (1 - y) log(1 - p)], natural log, where p is the
// score clipped to [1e-7, 1 - 1e-7] (in double) so that a confident mistake costs at most
// -log(1e-7) ~= 16.1 rather than infinity. Labels are used as given and must lie in [0, 1]
// (soft labels are fine); scores are probabilities, not logits. NaN when no row is valid.
inline double log_loss(span<const float> scores, span<const float> labels,
                       span<const float> weights = {}, span<const std::uint8_t> mask = {}) {
  namespace d = metrics_detail;
  const std::size_t n = scores.size();
  d::check_sizes("log_loss", n, labels.size(), weights.size(), mask.size(), 0, false);
  constexpr double kLo = 1e-7, kHi = 1.0 - 1e-7;
  double sum = 0.0, total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = d::row_weight("log_loss", i, scores, labels, weights, mask);
    if (w <= 0.0) continue;
    const double y = labels[i];
    if (!(y >= 0.0 && y <= 1.0))
      throw Error(internal::printf_string("log_loss: labels[%zu] = %g is outside [0, 1]", i, y));
    const double p = std::min(std::max(static_cast<double>(scores[i]), kLo), kHi);
    sum -= w * (y * std::log(p) + (1.0 - y) * std::log1p(-p));
    total += w;
  }
  return total > 0.0 ? sum / total : std::numeric_limits<double>::quiet_NaN();
}

// sqrt(sum w (score - label)^2 / sum w). NaN when no row is valid.
inline double rmse(span<const float> scores, span<const float> labels,
                   span<const float> weights = {}, span<const std::uint8_t> mask = {}) {
  namespace d = metrics_detail;
  const std::size_t n = scores.size();
  d::check_sizes("rmse", n, labels.size(), weights.size(), mask.size(), 0, false);
  double sum = 0.0, total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = d::row_weight("rmse", i, scores, labels, weights, mask);
    if (w <= 0.0) continue;
    const double e = static_cast<double>(scores[i]) - static_cast<double>(labels[i]);
    sum += w * e * e;
    total += w;
  }
  return total > 0.0 ? std::sqrt(sum / total) : std::numeric_limits<double>::quiet_NaN();
}

// Group AUC, as in DIN and DeepCTR: sum_g n_g * AUC_g / sum_g n_g over the groups g that hold
// both a positive and a negative, where AUC_g is auc() over the rows of g (sample weights apply
// within the group) and n_g is the number of valid rows of g (mask != 0 and weight > 0; the
// sample weights do not scale n_g). Groups with a single class are left out; `groups` in the
// result counts the groups used. Rows of a group need not be contiguous. O(n log n).
inline GroupMetric gauc(span<const float> scores, span<const float> labels,
                        span<const std::int64_t> groups, span<const float> weights = {},
                        span<const std::uint8_t> mask = {}) {
  namespace d = metrics_detail;
  const std::size_t n = scores.size();
  d::check_sizes("gauc", n, labels.size(), weights.size(), mask.size(), groups.size(), true);
  struct Row {
    std::int64_t group;
    std::uint64_t item;  // metrics_detail::pack
  };
  d::Scratch<Row> rows(n);
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = d::row_weight("gauc", i, scores, labels, weights, mask);
    if (w > 0.0)
      rows[m++] = {groups[i],
                   d::pack(d::order_key(scores[i]), static_cast<float>(w), labels[i] > 0.5f)};
  }
  std::sort(rows.get(), rows.get() + m, [](const Row& a, const Row& b) {
    return a.group != b.group ? a.group < b.group : d::key_of(a.item) < d::key_of(b.item);
  });
  double sum = 0.0, count = 0.0;
  GroupMetric out;
  for (std::size_t start = 0; start < m;) {
    std::size_t end = start;
    while (end < m && rows[end].group == rows[start].group) ++end;
    const double a = d::auc_of_sorted(rows.get() + start, rows.get() + end,
                                      [](const Row& row) { return row.item; });
    if (!std::isnan(a)) {
      const double rows_in_group = static_cast<double>(end - start);
      sum += rows_in_group * a;
      count += rows_in_group;
      ++out.groups;
    }
    start = end;
  }
  if (out.groups > 0) out.value = sum / count;
  return out;
}

// Mean over groups of NDCG@k = DCG@k / IDCG@k, with
//   DCG@k = sum_{rank r = 1..min(k, rows of the group)} (2^rel_r - 1) / log2(r + 1),
// rows ranked by descending score and IDCG@k the DCG@k of the ideal order (descending relevance).
// Labels are graded relevance, finite and >= 0 (fractional grades are allowed; 2^rel must stay
// finite in double: grades above about 1000 overflow and give NaN). Rows with equal
// scores are ranked in their input order (the earlier row first): deterministic, neither
// optimistic nor pessimistic. Groups whose IDCG@k is 0 (no relevant row) are skipped; each other
// group counts once, whatever its size; `groups` in the result counts them. Rows of a group need
// not be contiguous. k >= 1, else mtlite::Error. O(n log n).
inline GroupMetric ndcg_at(std::size_t k, span<const float> scores, span<const float> labels,
                           span<const std::int64_t> groups, span<const std::uint8_t> mask = {}) {
  namespace d = metrics_detail;
  const std::size_t n = scores.size();
  d::check_sizes("ndcg_at", n, labels.size(), 0, mask.size(), groups.size(), true);
  if (k == 0) throw Error("ndcg_at: k must be at least 1");
  struct Row {
    std::int64_t group;
    std::uint32_t desc_key;  // ~order_key: ascending desc_key is descending score
    float rel;
    std::size_t index;
  };
  d::Scratch<Row> rows(n);
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (d::row_weight("ndcg_at", i, scores, labels, {}, mask) <= 0.0) continue;
    if (!(labels[i] >= 0.0f))
      throw Error(internal::printf_string("ndcg_at: labels[%zu] = %g; relevance must be >= 0", i,
                                   static_cast<double>(labels[i])));
    rows[m++] = {groups[i], ~d::order_key(scores[i]), labels[i], i};
  }
  std::sort(rows.get(), rows.get() + m, [](const Row& a, const Row& b) {
    if (a.group != b.group) return a.group < b.group;
    if (a.desc_key != b.desc_key) return a.desc_key < b.desc_key;
    return a.index < b.index;
  });
  std::vector<float> ideal;
  double sum = 0.0;
  GroupMetric out;
  for (std::size_t start = 0; start < m;) {
    std::size_t end = start;
    while (end < m && rows[end].group == rows[start].group) ++end;
    const std::size_t top = std::min(k, end - start);
    ideal.clear();
    for (std::size_t i = start; i < end; ++i) ideal.push_back(rows[i].rel);
    std::partial_sort(ideal.begin(), ideal.begin() + static_cast<std::ptrdiff_t>(top), ideal.end(),
                      [](float a, float b) { return a > b; });
    double dcg = 0.0, idcg = 0.0;
    for (std::size_t r = 0; r < top; ++r) {
      const double discount = std::log2(static_cast<double>(r) + 2.0);
      dcg += (std::exp2(static_cast<double>(rows[start + r].rel)) - 1.0) / discount;
      idcg += (std::exp2(static_cast<double>(ideal[r])) - 1.0) / discount;
    }
    if (idcg > 0.0) {
      sum += dcg / idcg;
      ++out.groups;
    }
    start = end;
  }
  if (out.groups > 0) out.value = sum / static_cast<double>(out.groups);
  return out;
}

}  // namespace mtlite
