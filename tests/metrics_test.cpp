// Evaluation metrics (metrics.hpp) against direct, independent computations: AUC against an
// O(n^2) count over every (positive, negative) pair, gAUC against that count per group, NDCG
// against hand-computed values and a rank-by-counting brute force, log loss and RMSE against
// their formulas written out.
#include <doctest/doctest.h>

#include <mtlite/core/random.hpp>
#include <mtlite/offline/metrics.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <vector>

namespace {

using mtlite::span;
using F = std::vector<float>;
using M = std::vector<std::uint8_t>;
using G = std::vector<std::int64_t>;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

bool valid(const F& weights, const M& mask, std::size_t i) {
  return (mask.empty() || mask[i] != 0) && (weights.empty() || weights[i] > 0.0f);
}
double weight(const F& weights, std::size_t i) { return weights.empty() ? 1.0 : weights[i]; }

// Every (positive, negative) pair: w_p * w_n * [s_p > s_n] + 1/2 [s_p == s_n].
double brute_auc(const F& s, const F& y, const F& w = {}, const M& mask = {}) {
  double num = 0.0, pos = 0.0, neg = 0.0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!valid(w, mask, i)) continue;
    if (y[i] > 0.5f)
      pos += weight(w, i);
    else
      neg += weight(w, i);
  }
  if (pos == 0.0 || neg == 0.0) return kNaN;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!valid(w, mask, i) || !(y[i] > 0.5f)) continue;
    for (std::size_t j = 0; j < s.size(); ++j) {
      if (!valid(w, mask, j) || y[j] > 0.5f) continue;
      const double pair = weight(w, i) * weight(w, j);
      if (s[i] > s[j])
        num += pair;
      else if (s[i] == s[j])
        num += 0.5 * pair;
    }
  }
  return num / (pos * neg);
}

// NaN equals NaN; otherwise within tol.
bool same(double got, double want, double tol = 1e-12) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  return std::fabs(got - want) <= tol;
}

// Scores: `levels` > 0 gives one of `levels` values, so ties are everywhere; 0 continuous values
// over a wide range of magnitudes and both signs; -1 and -2 a narrow band around 0.5 (1e-4 and
// 1e-2 wide: many and few ties) with 1% outliers far out, so that most rows share auc's top
// radix digit and the sort within a bucket does the work.
F random_scores(mtlite::Rng& rng, std::size_t n, int levels) {
  F s(n);
  for (auto& v : s) {
    if (levels < 0) {
      const float band = levels == -1 ? 1e-4f : 1e-2f;
      v = rng.below(100) == 0 ? (rng.below(2) ? 1e30f : -3.0f) : 0.5f + band * rng.uniform();
    } else if (levels == 0) {
      const float mag = std::ldexp(rng.uniform(), static_cast<int>(rng.below(40)) - 20);
      v = rng.below(2) ? mag : -mag;
    } else {
      v = static_cast<float>(rng.below(static_cast<std::uint64_t>(levels))) /
          static_cast<float>(levels);
    }
  }
  return s;
}
F random_labels(mtlite::Rng& rng, std::size_t n, float positive_rate) {
  F y(n);
  for (auto& v : y) v = rng.uniform() < positive_rate ? 1.0f : 0.0f;
  return y;
}
// Weights in {0, 0.25, ..., 3}: some rows weigh nothing.
F random_weights(mtlite::Rng& rng, std::size_t n) {
  F w(n);
  for (auto& v : w) v = static_cast<float>(rng.below(13)) * 0.25f;
  return w;
}
M random_mask(mtlite::Rng& rng, std::size_t n) {
  M m(n);
  for (auto& v : m) v = rng.below(4) == 0 ? 0 : static_cast<std::uint8_t>(1 + rng.below(255));
  return m;
}

const std::size_t kSizes[] = {0, 1, 2, 3, 5, 17, 100, 600, 1000, 2500};
const int kLevels[] = {1, 2, 7, 1000, 0, -1, -2};
const float kRates[] = {0.0f, 0.02f, 0.5f, 0.98f, 1.0f};

}  // namespace

TEST_CASE("auc equals the pairwise count, ties counted half") {
  mtlite::Rng rng(1);
  int nan_cases = 0, finite_cases = 0;
  for (std::size_t n : kSizes)
    for (int levels : kLevels)
      for (float rate : kRates) {
        const F s = random_scores(rng, n, levels);
        const F y = random_labels(rng, n, rate);
        const double want = brute_auc(s, y);
        const double got = mtlite::auc(s, y);
        CAPTURE(n);
        CAPTURE(levels);
        CAPTURE(rate);
        CHECK(same(got, want));
        (std::isnan(want) ? nan_cases : finite_cases)++;
      }
  // Both kinds of case were exercised.
  CHECK(nan_cases > 10);
  CHECK(finite_cases > 100);
}

TEST_CASE("auc: small and degenerate inputs") {
  CHECK(std::isnan(mtlite::auc(F{}, F{})));
  CHECK(std::isnan(mtlite::auc(F{0.3f}, F{1.0f})));
  CHECK(std::isnan(mtlite::auc(F{0.3f}, F{0.0f})));
  CHECK(mtlite::auc(F{0.9f, 0.1f}, F{1, 0}) == 1.0);
  CHECK(mtlite::auc(F{0.1f, 0.9f}, F{1, 0}) == 0.0);
  CHECK(mtlite::auc(F{0.5f, 0.5f}, F{1, 0}) == 0.5);
  CHECK(std::isnan(mtlite::auc(F{0.1f, 0.2f, 0.3f}, F{1, 1, 1})));
  CHECK(std::isnan(mtlite::auc(F{0.1f, 0.2f, 0.3f}, F{0, 0, 0})));
  // -0.0 and +0.0 compare equal, so they tie.
  CHECK(mtlite::auc(F{-0.0f, 0.0f}, F{1, 0}) == 0.5);
  CHECK(mtlite::auc(F{0.0f, -0.0f}, F{1, 0}) == 0.5);
  // Infinite scores rank at the ends.
  CHECK(mtlite::auc(F{kInf, 1e30f, -1e30f, -kInf}, F{1, 0, 1, 0}) == 0.75);
  // Labels are thresholded at 0.5.
  CHECK(mtlite::auc(F{0.9f, 0.8f, 0.1f}, F{0.7f, 0.51f, 0.2f}) == 1.0);
  CHECK(mtlite::auc(F{0.9f, 0.8f, 0.1f}, F{0.5f, 0.7f, 0.0f}) == 0.5);  // 0.5 is negative
  CHECK(mtlite::auc(F{0.9f, 0.8f, 0.1f}, F{0.3f, 0.51f, 2.0f}) == 0.0);
}

TEST_CASE("auc: perfect separation gives 1, reversed 0, constant scores 0.5") {
  mtlite::Rng rng(2);
  for (std::size_t n : {std::size_t{10}, std::size_t{3000}, std::size_t{100000}}) {
    const F y = random_labels(rng, n, 0.3f);
    F s(n), reversed(n), constant(n, 0.25f);
    for (std::size_t i = 0; i < n; ++i) {
      s[i] = y[i] > 0.5f ? 1.0f + rng.uniform() : rng.uniform();
      reversed[i] = -s[i];
    }
    const F w = random_weights(rng, n);
    CHECK(mtlite::auc(s, y) == 1.0);
    CHECK(mtlite::auc(reversed, y) == 0.0);
    CHECK(mtlite::auc(constant, y) == 0.5);
    CHECK(mtlite::auc(s, y, w) == 1.0);
    CHECK(mtlite::auc(constant, y, w) == doctest::Approx(0.5).epsilon(1e-12));
  }
}

TEST_CASE("weighted auc equals the weighted pairwise count") {
  mtlite::Rng rng(3);
  for (std::size_t n : kSizes)
    for (int levels : {2, 50, 0, -1, -2}) {
      const F s = random_scores(rng, n, levels);
      const F y = random_labels(rng, n, 0.4f);
      const F w = random_weights(rng, n);
      CAPTURE(n);
      CAPTURE(levels);
      CHECK(same(mtlite::auc(s, y, w), brute_auc(s, y, w)));
      // Non-uniform continuous weights too.
      F cw(n);
      for (auto& v : cw) v = std::ldexp(rng.uniform(), static_cast<int>(rng.below(8)) - 4);
      CHECK(same(mtlite::auc(s, y, cw), brute_auc(s, y, cw), 1e-11));
    }
  // Weighted differs from unweighted: the weights really are read.
  const F s{0.1f, 0.2f, 0.3f, 0.4f}, y{1, 0, 1, 0}, w{5, 1, 1, 1};
  CHECK(mtlite::auc(s, y) == doctest::Approx(0.25));
  CHECK(mtlite::auc(s, y, w) == doctest::Approx(brute_auc(s, y, w)));
  CHECK(mtlite::auc(s, y, w) != doctest::Approx(0.25));
}

TEST_CASE("auc: an integer weight is the same as repeating the row") {
  mtlite::Rng rng(4);
  const std::size_t n = 3000;
  const F s = random_scores(rng, n, 100), y = random_labels(rng, n, 0.3f);
  F w(n), rs, ry;
  for (std::size_t i = 0; i < n; ++i) {
    w[i] = static_cast<float>(rng.below(4));
    for (int r = 0; r < static_cast<int>(w[i]); ++r) {
      rs.push_back(s[i]);
      ry.push_back(y[i]);
    }
  }
  CHECK(mtlite::auc(s, y, w) == doctest::Approx(mtlite::auc(rs, ry)).epsilon(1e-12));
}

TEST_CASE("auc: the mask drops rows") {
  mtlite::Rng rng(5);
  for (std::size_t n : kSizes) {
    const F s = random_scores(rng, n, 20), y = random_labels(rng, n, 0.5f);
    const F w = random_weights(rng, n);
    const M m = random_mask(rng, n);
    F ks, ky, kw;
    for (std::size_t i = 0; i < n; ++i)
      if (m[i]) {
        ks.push_back(s[i]);
        ky.push_back(y[i]);
        kw.push_back(w[i]);
      }
    CAPTURE(n);
    CHECK(same(mtlite::auc(s, y, {}, m), brute_auc(s, y, {}, m)));
    CHECK(same(mtlite::auc(s, y, {}, m), mtlite::auc(ks, ky)));
    CHECK(same(mtlite::auc(s, y, w, m), brute_auc(s, y, w, m)));
    CHECK(same(mtlite::auc(s, y, w, m), mtlite::auc(ks, ky, kw), 1e-12));
  }
  // A masked or weightless row is not even read: a NaN score there is no error.
  const F s{0.9f, std::nanf(""), 0.1f}, y{1, 1, 0};
  CHECK(mtlite::auc(s, y, {}, M{1, 0, 1}) == 1.0);
  CHECK(mtlite::auc(s, y, F{1, 0, 1}) == 1.0);
  CHECK(std::isnan(mtlite::auc(F{0.9f, 0.1f}, F{1, 0}, {}, M{0, 0})));
}

TEST_CASE("auc is invariant to strictly increasing transforms of the scores") {
  mtlite::Rng rng(6);
  for (std::size_t n : {std::size_t{50}, std::size_t{5000}}) {
    const F s = random_scores(rng, n, 500), y = random_labels(rng, n, 0.3f);
    const F w = random_weights(rng, n);
    F affine(n), logistic(n), cubed(n), flipped(n);
    for (std::size_t i = 0; i < n; ++i) {
      affine[i] = 3.0f * s[i] - 7.0f;
      logistic[i] = 1.0f / (1.0f + std::exp(-4.0f * (s[i] - 0.5f)));
      cubed[i] = s[i] * s[i] * s[i];
      flipped[i] = -2.0f * s[i];
    }
    const double base = mtlite::auc(s, y), wbase = mtlite::auc(s, y, w);
    CHECK(mtlite::auc(affine, y) == doctest::Approx(base).epsilon(1e-12));
    CHECK(mtlite::auc(logistic, y) == doctest::Approx(base).epsilon(1e-12));
    CHECK(mtlite::auc(cubed, y) == doctest::Approx(base).epsilon(1e-12));
    CHECK(mtlite::auc(affine, y, w) == doctest::Approx(wbase).epsilon(1e-12));
    // A decreasing transform turns AUC into 1 - AUC (ties stay ties).
    CHECK(mtlite::auc(flipped, y) == doctest::Approx(1.0 - base).epsilon(1e-12));
  }
}

TEST_CASE("metrics reject malformed input") {
  const F s{0.1f, 0.9f}, y{0, 1};
  CHECK_THROWS_AS(mtlite::auc(s, F{0}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::auc(s, y, F{1}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::auc(s, y, {}, M{1}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::auc(F{std::nanf(""), 0.5f}, y), mtlite::Error);
  CHECK_THROWS_AS(mtlite::auc(s, F{0, std::nanf("")}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::auc(s, y, F{1, -1}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::auc(s, y, F{1, kInf}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::log_loss(s, F{0, 1.5f}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::log_loss(s, F{-0.1f, 1}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::rmse(s, y, F{1, 2, 3}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::gauc(s, y, G{1}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::ndcg_at(3, s, y, G{1, 2, 3}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::ndcg_at(0, s, y, G{1, 1}), mtlite::Error);
  CHECK_THROWS_AS(mtlite::ndcg_at(3, s, F{0, -1}, G{1, 1}), mtlite::Error);
  // The message names the argument and the row.
  try {
    mtlite::auc(F{0.1f, 0.2f, std::nanf("")}, F{0, 1, 0});
    FAIL("no throw");
  } catch (const mtlite::Error& e) {
    CHECK(std::string(e.what()).find("scores[2]") != std::string::npos);
  }
}

TEST_CASE("log_loss is the weighted mean cross-entropy of clipped scores") {
  mtlite::Rng rng(7);
  const std::size_t n = 1000;
  F s(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = rng.uniform();
    y[i] = i % 3 == 0 ? rng.uniform() : static_cast<float>(rng.below(2));  // some soft labels
  }
  s[0] = 0.0f, y[0] = 1.0f;   // clipped to 1e-7
  s[1] = 1.0f, y[1] = 0.0f;   // clipped to 1 - 1e-7
  s[2] = -3.0f, y[2] = 0.0f;  // out of range, clipped
  const F w = random_weights(rng, n);
  const M m = random_mask(rng, n);
  auto direct = [&](const F& wt, const M& mk) {
    double sum = 0.0, total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!valid(wt, mk, i)) continue;
      const double p = std::clamp(static_cast<double>(s[i]), 1e-7, 1.0 - 1e-7);
      sum += weight(wt, i) * -(y[i] * std::log(p) + (1.0 - y[i]) * std::log(1.0 - p));
      total += weight(wt, i);
    }
    return sum / total;
  };
  CHECK(mtlite::log_loss(s, y) == doctest::Approx(direct({}, {})).epsilon(1e-12));
  CHECK(mtlite::log_loss(s, y, w) == doctest::Approx(direct(w, {})).epsilon(1e-12));
  CHECK(mtlite::log_loss(s, y, {}, m) == doctest::Approx(direct({}, m)).epsilon(1e-12));
  CHECK(mtlite::log_loss(s, y, w, m) == doctest::Approx(direct(w, m)).epsilon(1e-12));
  // The clip, alone: a confident mistake costs -log(1e-7), a confident hit about 1e-7.
  CHECK(mtlite::log_loss(F{0.0f}, F{1.0f}) == doctest::Approx(-std::log(1e-7)).epsilon(1e-9));
  CHECK(mtlite::log_loss(F{1.0f}, F{0.0f}) == doctest::Approx(-std::log(1e-7)).epsilon(1e-6));
  CHECK(mtlite::log_loss(F{1.0f}, F{1.0f}) == doctest::Approx(1e-7).epsilon(1e-6));
  CHECK(mtlite::log_loss(F{0.5f, 0.5f}, F{0, 1}) == doctest::Approx(std::log(2.0)));
  CHECK(mtlite::log_loss(F{0.8f, 0.5f}, F{1, 1}, F{1, 0}) ==
        doctest::Approx(-std::log(0.8)).epsilon(1e-7));
  CHECK(std::isnan(mtlite::log_loss(F{}, F{})));
  CHECK(std::isnan(mtlite::log_loss(F{0.5f}, F{1}, {}, M{0})));
}

TEST_CASE("rmse is the weighted root mean squared error") {
  mtlite::Rng rng(8);
  const std::size_t n = 777;
  F s(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = rng.uniform(-3.0f, 3.0f);
    y[i] = rng.uniform(-1.0f, 5.0f);
  }
  const F w = random_weights(rng, n);
  const M m = random_mask(rng, n);
  auto direct = [&](const F& wt, const M& mk) {
    double sum = 0.0, total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!valid(wt, mk, i)) continue;
      const double e = static_cast<double>(s[i]) - y[i];
      sum += weight(wt, i) * e * e;
      total += weight(wt, i);
    }
    return std::sqrt(sum / total);
  };
  CHECK(mtlite::rmse(s, y) == doctest::Approx(direct({}, {})).epsilon(1e-12));
  CHECK(mtlite::rmse(s, y, w) == doctest::Approx(direct(w, {})).epsilon(1e-12));
  CHECK(mtlite::rmse(s, y, w, m) == doctest::Approx(direct(w, m)).epsilon(1e-12));
  CHECK(mtlite::rmse(F{1, 2, 3}, F{1, 2, 3}) == 0.0);
  CHECK(mtlite::rmse(F{0, 0}, F{3, 4}) == doctest::Approx(std::sqrt(12.5)));
  CHECK(mtlite::rmse(F{0, 0}, F{3, 4}, F{1, 3}) == doctest::Approx(std::sqrt((9.0 + 48.0) / 4)));
  CHECK(std::isnan(mtlite::rmse(F{}, F{})));
}

TEST_CASE("gauc: a hand-computed example with groups out of order") {
  // Group 7: {0.9 +, 0.1 -} -> AUC 1, 2 rows. Group 3: {0.2 +, 0.8 -, 0.5 -} -> AUC 0, 3 rows.
  // Group -1: positives only -> left out. gAUC = (2 * 1 + 3 * 0) / 5.
  const F s{0.2f, 0.9f, 0.6f, 0.8f, 0.1f, 0.4f, 0.5f};
  const F y{1, 1, 1, 0, 0, 1, 0};
  const G g{3, 7, -1, 3, 7, -1, 3};
  const mtlite::GroupMetric r = mtlite::gauc(s, y, g);
  CHECK(r.groups == 2);
  CHECK(r.value == doctest::Approx(0.4));
  // Masking the 0.5 negative of group 3 makes it 2 rows: (2 * 1 + 2 * 0) / 4.
  const mtlite::GroupMetric masked = mtlite::gauc(s, y, g, {}, M{1, 1, 1, 1, 1, 1, 0});
  CHECK(masked.groups == 2);
  CHECK(masked.value == doctest::Approx(0.5));
  // Masking group 7's negative leaves one group.
  const mtlite::GroupMetric one = mtlite::gauc(s, y, g, {}, M{1, 1, 1, 1, 0, 1, 1});
  CHECK(one.groups == 1);
  CHECK(one.value == 0.0);
  // Labels are thresholded at 0.5 as in auc: 0.5 is negative, 0.6 positive.
  const mtlite::GroupMetric soft =
      mtlite::gauc(F{0.9f, 0.8f, 0.1f}, F{0.5f, 0.6f, 0.0f}, G{1, 1, 1});
  CHECK(soft.groups == 1);
  CHECK(soft.value == 0.5);
  // No group with both classes.
  const mtlite::GroupMetric none = mtlite::gauc(F{0.1f, 0.2f}, F{1, 0}, G{1, 2});
  CHECK(none.groups == 0);
  CHECK(std::isnan(none.value));
}

TEST_CASE("gauc equals the per-group pairwise count, weighted by group rows") {
  mtlite::Rng rng(9);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{40}, std::size_t{3000}})
    for (std::uint64_t ngroups : {1u, 5u, 200u})
      for (int weighted = 0; weighted < 2; ++weighted) {
        const F s = random_scores(rng, n, 10), y = random_labels(rng, n, 0.3f);
        G g(n);
        for (auto& v : g) v = static_cast<std::int64_t>(rng.below(ngroups)) * 1000003 - 5000;
        const F w = weighted ? random_weights(rng, n) : F{};
        const M m = random_mask(rng, n);
        std::map<std::int64_t, std::vector<std::size_t>> rows;
        for (std::size_t i = 0; i < n; ++i) rows[g[i]].push_back(i);
        double sum = 0.0, count = 0.0;
        std::size_t used = 0;
        for (const auto& [id, idx] : rows) {
          F gs, gy, gw;
          M gm;
          double valid_rows = 0.0;
          for (std::size_t i : idx) {
            gs.push_back(s[i]);
            gy.push_back(y[i]);
            gm.push_back(m[i]);
            if (weighted) gw.push_back(w[i]);
            valid_rows += valid(w, m, i) ? 1.0 : 0.0;
          }
          const double a = brute_auc(gs, gy, gw, gm);
          if (std::isnan(a)) continue;
          sum += valid_rows * a;
          count += valid_rows;
          ++used;
        }
        const mtlite::GroupMetric r = mtlite::gauc(s, y, g, w, m);
        CAPTURE(n);
        CAPTURE(ngroups);
        CAPTURE(weighted);
        CHECK(r.groups == used);
        CHECK(same(r.value, used ? sum / count : kNaN));
      }
}

TEST_CASE("gauc with one group is auc") {
  mtlite::Rng rng(10);
  const std::size_t n = 5000;
  const F s = random_scores(rng, n, 0), y = random_labels(rng, n, 0.2f), w = random_weights(rng, n);
  const mtlite::GroupMetric r = mtlite::gauc(s, y, G(n, 42), w);
  CHECK(r.groups == 1);
  CHECK(r.value == doctest::Approx(mtlite::auc(s, y, w)).epsilon(1e-12));
}

TEST_CASE("ndcg_at: a hand-computed example") {
  // Group 10, by descending score: rel 0 (0.9), 2 (0.8), 1 (0.7), 3 (0.1).
  //   DCG@3 = 0 + 3 / log2(3) + 1 / log2(4); IDCG@3 = 7 + 3 / log2(3) + 1 / 2
  //   NDCG@3 = 0.25474746577380225
  // Group 20: no relevant row, skipped. Group 30: rel 1 (0.3), 0 (0.2): NDCG 1.
  const F s{0.8f, 0.5f, 0.3f, 0.9f, 0.1f, 0.4f, 0.7f, 0.2f};
  const F y{2, 0, 1, 0, 3, 0, 1, 0};
  const G g{10, 20, 30, 10, 10, 20, 10, 30};
  mtlite::GroupMetric r = mtlite::ndcg_at(3, s, y, g);
  CHECK(r.groups == 2);
  CHECK(r.value == doctest::Approx(0.6273737328869011).epsilon(1e-12));
  // k = 1: group 10 ranks a rel-0 row first.
  r = mtlite::ndcg_at(1, s, y, g);
  CHECK(r.groups == 2);
  CHECK(r.value == doctest::Approx(0.5).epsilon(1e-12));
  // k beyond the group size: every row counts.
  //   DCG = 3 / log2(3) + 1 / 2 + 7 / log2(5); IDCG = 7 + 3 / log2(3) + 1 / 2
  r = mtlite::ndcg_at(10, s, y, g);
  CHECK(r.value == doctest::Approx(0.7878551310549073).epsilon(1e-12));
  // The mask drops group 10's 0.9 row: its ranking becomes 2, 1, 3 at k = 3:
  //   DCG = 3 + 1 / log2(3) + 7 / 2; IDCG = 7 + 3 / log2(3) + 1 / 2.
  r = mtlite::ndcg_at(3, s, y, g, M{1, 1, 1, 0, 1, 1, 1, 1});
  const double l3 = std::log2(3.0);
  CHECK(r.value == doctest::Approx(((3 + 1 / l3 + 3.5) / (7 + 3 / l3 + 0.5) + 1) / 2));
  // No group with a relevant row.
  r = mtlite::ndcg_at(3, F{0.1f, 0.2f}, F{0, 0}, G{1, 2});
  CHECK(r.groups == 0);
  CHECK(std::isnan(r.value));
}

TEST_CASE("ndcg_at: tied scores rank in input order") {
  // The relevant row second among equal scores: ranked second.
  mtlite::GroupMetric r = mtlite::ndcg_at(1, F{0.5f, 0.5f}, F{0, 1}, G{1, 1});
  CHECK(r.value == 0.0);
  r = mtlite::ndcg_at(1, F{0.5f, 0.5f}, F{1, 0}, G{1, 1});
  CHECK(r.value == 1.0);
  r = mtlite::ndcg_at(2, F{0.5f, 0.5f, 0.5f}, F{0, 0, 1}, G{1, 1, 1});
  CHECK(r.value == 0.0);
  r = mtlite::ndcg_at(2, F{0.5f, 0.5f, 0.5f}, F{0, 1, 0}, G{1, 1, 1});
  CHECK(r.value == doctest::Approx(1.0 / std::log2(3.0)));
  // -0.0 and +0.0 are a tie too.
  r = mtlite::ndcg_at(1, F{-0.0f, 0.0f}, F{0, 1}, G{1, 1});
  CHECK(r.value == 0.0);
}

TEST_CASE("ndcg_at equals a brute-force ranking by counting") {
  mtlite::Rng rng(11);
  for (std::size_t n : {std::size_t{1}, std::size_t{30}, std::size_t{2500}})
    for (std::uint64_t ngroups : {1u, 7u, 300u})
      for (std::size_t k : {std::size_t{1}, std::size_t{3}, std::size_t{10}, std::size_t{100000}}) {
        const F s = random_scores(rng, n, 6);
        F y(n);
        for (auto& v : y) v = rng.below(3) ? 0.0f : static_cast<float>(rng.below(4));
        G g(n);
        for (auto& v : g) v = static_cast<std::int64_t>(rng.below(ngroups)) - 3;
        const M m = random_mask(rng, n);
        std::map<std::int64_t, std::vector<std::size_t>> rows;
        for (std::size_t i = 0; i < n; ++i)
          if (m[i]) rows[g[i]].push_back(i);
        double sum = 0.0;
        std::size_t used = 0;
        for (const auto& [id, idx] : rows) {
          double dcg = 0.0, idcg = 0.0;
          for (std::size_t i : idx) {
            // Rank of i: 1 + rows above it (higher score, or equal score earlier in the input).
            std::size_t rank = 1, ideal_rank = 1;
            for (std::size_t j : idx) {
              if (s[j] > s[i] || (s[j] == s[i] && j < i)) ++rank;
              if (y[j] > y[i] || (y[j] == y[i] && j < i)) ++ideal_rank;
            }
            const double gain = std::pow(2.0, y[i]) - 1.0;
            if (rank <= k) dcg += gain / std::log2(rank + 1.0);
            if (ideal_rank <= k) idcg += gain / std::log2(ideal_rank + 1.0);
          }
          if (idcg == 0.0) continue;
          sum += dcg / idcg;
          ++used;
        }
        const mtlite::GroupMetric r = mtlite::ndcg_at(k, s, y, g, m);
        CAPTURE(n);
        CAPTURE(ngroups);
        CAPTURE(k);
        CHECK(r.groups == used);
        CHECK(same(r.value, used ? sum / static_cast<double>(used) : kNaN, 1e-12));
      }
}

TEST_CASE("auc on 10 million rows: exact and timed") {
  // Scores on a grid of 65536 values, so the exact AUC also follows from two histograms in O(n):
  // an independent check of the large-input path.
  const std::size_t n = 10'000'000, levels = 65536;
  mtlite::Rng rng(12);
  F s(n), y(n);
  std::vector<double> pos(levels, 0.0), neg(levels, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const bool positive = rng.below(10) < 3;
    const float u = (rng.uniform() + (positive ? 0.4f : 0.0f)) / 1.4f;
    const std::size_t level =
        std::min<std::size_t>(levels - 1, static_cast<std::size_t>(u * levels));
    s[i] = static_cast<float>(level) / static_cast<float>(levels);
    y[i] = positive ? 1.0f : 0.0f;
    (positive ? pos : neg)[level] += 1.0;
  }
  double num = 0.0, below = 0.0, npos = 0.0;
  for (std::size_t l = 0; l < levels; ++l) {
    num += pos[l] * (below + 0.5 * neg[l]);
    below += neg[l];
    npos += pos[l];
  }
  const double want = num / (npos * below);

  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  const double got = mtlite::auc(s, y);
  const std::clock_t c1 = std::clock();
  const auto t1 = std::chrono::steady_clock::now();
  CHECK(got == doctest::Approx(want).epsilon(1e-12));

  // Continuous scores: every radix pass runs.
  for (std::size_t i = 0; i < n; ++i) s[i] = rng.uniform() + (y[i] > 0.5f ? 0.3f : 0.0f);
  const auto t2 = std::chrono::steady_clock::now();
  const std::clock_t c2 = std::clock();
  const double continuous = mtlite::auc(s, y);
  const std::clock_t c3 = std::clock();
  const auto t3 = std::chrono::steady_clock::now();
  // Uniform shifted by 0.3: P(U1 + 0.3 > U2) = 1 - 0.7^2 / 2 = 0.755, up to sampling noise.
  CHECK(continuous == doctest::Approx(0.755).epsilon(0.002));

  // Wall time, and CPU time, which a busy machine disturbs less (auc runs on one thread).
  const double grid_s = std::chrono::duration<double>(t1 - t0).count();
  const double cont_s = std::chrono::duration<double>(t3 - t2).count();
  const double grid_cpu = static_cast<double>(c1 - c0) / CLOCKS_PER_SEC;
  const double cont_cpu = static_cast<double>(c3 - c2) / CLOCKS_PER_SEC;
  MESSAGE("auc over 10,000,000 rows: " << grid_s << " s wall, " << grid_cpu
                                       << " s CPU (65536 distinct scores); " << cont_s
                                       << " s wall, " << cont_cpu << " s CPU (continuous scores)");
}
