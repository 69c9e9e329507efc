// The trainer (include/mtlite/offline/train/) against an independent double-precision reference.
//
// Gradient checks: the reference below computes every architecture's logits and docs/models.md's
// losses in double from the logical weights (plain loops, by parameter name); central finite
// differences of that objective (step h = 1e-6 max(1, |w|), in double) are compared with the
// trainer's float gradients. Tolerance, stated once: |g - fd| <= 2e-3 |fd| + 2e-4 S, S the largest
// |g| of the model. An entry whose finite difference changes between h and h/8 by more than
// 1e-6 S sits on a ReLU kink and is skipped (at most 10% of the entries may be).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/train/train.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

#if defined(__linux__)
#include <dirent.h>
#endif

namespace {

using mtlite_test::act_exact;
using mtlite_test::BatchData;
using mtlite_test::Example;
using mtlite_test::Random;

using mtlite::Activation;
using mtlite::Architecture;
using mtlite::Feature;
using mtlite::FeatureKind;
using mtlite::IdMapping;
using mtlite::Mlp;
using mtlite::mlp;
using mtlite::Normalization;
using mtlite::Pooling;
using mtlite::Spec;
using mtlite::Task;
using mtlite::TaskKind;
using mtlite::Tensor;
using mtlite::Weights;
using mtlite::train::BalanceMethod;
using mtlite::train::OptimizerKind;
using mtlite::train::Trainer;
using mtlite::train::TrainOptions;

// ---- data -----------------------------------------------------------------------------------




// Mostly valid ids, sometimes negative or out of range (the OOV row).
std::int64_t vocabulary_id(Random& rng, std::uint64_t size) {
  const std::uint64_t pick = rng.below(10);
  if (pick == 0) return -1 - static_cast<std::int64_t>(rng.below(5));
  if (pick == 1) return static_cast<std::int64_t>(size + rng.below(3));
  return static_cast<std::int64_t>(rng.below(size));
}

std::vector<Example> make_examples(const Spec& spec, std::size_t n, std::uint64_t seed) {
  Random rng(seed);
  std::vector<Example> out(n);
  for (std::size_t r = 0; r < n; ++r) {
    Example& e = out[r];
    for (const Feature& f : spec.features) {
      auto id = [&] {
        return f.mapping == IdMapping::hashing ? static_cast<std::int64_t>(rng.below(1000))
                                               : vocabulary_id(rng, f.size);
      };
      switch (f.kind) {
        case FeatureKind::dense: {
          double v = rng.uniform(-2.0, 2.0);
          if (f.normalization == Normalization::log1p) v = rng.uniform(-20.0, 20.0);
          if (f.normalization == Normalization::standardize) v = f.mean + f.stddev * rng.uniform(-2.0, 2.0);
          e.dense.push_back(static_cast<float>(v));
          break;
        }
        case FeatureKind::categorical:
          e.ids.push_back(id());
          break;
        case FeatureKind::multi_hot: {
          // Every fifth bag is empty; others hold 1..5 ids, some repeated.
          std::vector<std::int64_t> bag;
          const std::size_t len = r % 5 == 2 ? 0 : 1 + rng.below(5);
          for (std::size_t i = 0; i < len; ++i)
            bag.push_back(i > 0 && rng.below(4) == 0 ? bag[rng.below(i)] : id());
          e.bags.push_back(bag);
          break;
        }
      }
    }
  }
  return out;
}

struct Labels {
  std::vector<float> y;
  std::vector<std::uint8_t> mask;
  std::vector<float> w;
};

// Random labels; about p_missing of them masked; sample weights in [0.25, 2] with some zeros.
Labels make_labels(const Spec& spec, std::size_t rows, std::uint64_t seed, double p_missing = 0.2,
                   bool weights = true) {
  Random rng(seed);
  const std::size_t T = spec.tasks.size();
  Labels l;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < T; ++k) {
      l.y.push_back(spec.tasks[k].kind == TaskKind::binary ? static_cast<float>(rng.below(2))
                                                           : static_cast<float>(rng.uniform(-2.0, 2.0)));
      l.mask.push_back(rng.uniform(0.0, 1.0) < p_missing ? 0 : 1);
    }
    if (weights) l.w.push_back(rng.below(8) == 0 ? 0.0f : static_cast<float>(rng.uniform(0.25, 2.0)));
  }
  return l;
}

// ---- the independent double-precision reference ---------------------------------------------

using Vec = std::vector<double>;
using DMap = std::map<std::string, Vec>;

DMap to_double(const Weights& w) {
  DMap d;
  for (const auto& [name, t] : w) d[name] = Vec(t.data.begin(), t.data.end());
  return d;
}


double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

struct Reference {
  const Spec& spec;
  const DMap& w;
  std::map<std::string, Vec> gates;  // softmax of every gate, last forward

  const Vec& at(const std::string& name) const {
    const auto it = w.find(name);
    if (it == w.end()) FAIL("reference: no tensor " << name);
    return it->second;
  }
  Vec layer(const std::string& prefix, const Vec& x, Activation a) const {
    const Vec& W = at(prefix + ".weight");
    const Vec& B = at(prefix + ".bias");
    const std::size_t out = B.size(), in = x.size();
    if (W.size() != out * in) FAIL("reference: " << prefix << ".weight has the wrong size");
    Vec y(out);
    for (std::size_t o = 0; o < out; ++o) {
      double s = B[o];
      for (std::size_t i = 0; i < in; ++i) s += W[o * in + i] * x[i];
      y[o] = act_exact(a, s);
    }
    return y;
  }
  Vec mlp(const std::string& name, const Mlp& layers, Vec x) const {
    for (std::size_t i = 0; i < layers.size(); ++i) x = layer(name + "." + std::to_string(i), x, layers[i].activation);
    return x;
  }
  Vec gate(const std::string& name, const Vec& x) {
    Vec g = layer(name, x, Activation::identity);
    const double m = *std::max_element(g.begin(), g.end());
    double s = 0.0;
    for (double& v : g) s += (v = std::exp(v - m));
    for (double& v : g) v /= s;
    gates[name] = g;
    return g;
  }
  static Vec mix(const Vec& g, const std::vector<Vec>& experts) {
    Vec h(experts[0].size(), 0.0);
    for (std::size_t e = 0; e < experts.size(); ++e)
      for (std::size_t j = 0; j < h.size(); ++j) h[j] += g[e] * experts[e][j];
    return h;
  }
  Vec input(const Example& e) const {
    Vec x;
    std::size_t next_id = 0, next_bag = 0;
    for (const Feature& f : spec.features) {
      if (f.kind == FeatureKind::dense) continue;
      const Vec& table = at("embedding." + f.name);
      const std::size_t dim = f.embedding_dim;
      Vec v(dim, 0.0);
      if (f.kind == FeatureKind::categorical) {
        const std::uint64_t row = f.row_of(e.ids[next_id++]);
        for (std::size_t d = 0; d < dim; ++d) v[d] = table[row * dim + d];
      } else {
        const std::vector<std::int64_t>& bag = e.bags[next_bag++];
        for (std::int64_t id : bag)
          for (std::size_t d = 0; d < dim; ++d) v[d] += table[f.row_of(id) * dim + d];
        if (f.pooling == Pooling::mean && !bag.empty())
          for (double& d : v) d /= static_cast<double>(bag.size());
      }
      x.insert(x.end(), v.begin(), v.end());
    }
    std::size_t next_dense = 0;
    for (const Feature& f : spec.features) {
      if (f.kind != FeatureKind::dense) continue;
      const double v = e.dense[next_dense++];
      if (f.normalization == Normalization::standardize)
        x.push_back((v - f.mean) / f.stddev);
      else if (f.normalization == Normalization::log1p)
        x.push_back(v > 0 ? std::log1p(v) : -std::log1p(-v));
      else
        x.push_back(v);
    }
    return x;
  }
  // The logit of every task's tower (the head's input).
  Vec logits(const Example& e) {
    gates.clear();
    const Vec x = input(e);
    const std::size_t T = spec.tasks.size();
    std::vector<Vec> h(T, x);
    switch (spec.architecture) {
      case Architecture::single_task:
      case Architecture::esmm:
        break;
      case Architecture::shared_bottom:
        h.assign(T, mlp("bottom", spec.bottom, x));
        break;
      case Architecture::omoe:
      case Architecture::mmoe: {
        std::vector<Vec> ex;
        for (std::uint32_t i = 0; i < spec.num_experts; ++i) ex.push_back(mlp("expert" + std::to_string(i), spec.expert, x));
        if (spec.architecture == Architecture::omoe)
          h.assign(T, mix(gate("gate", x), ex));
        else
          for (std::size_t k = 0; k < T; ++k) h[k] = mix(gate("gate" + std::to_string(k), x), ex);
        break;
      }
      case Architecture::ple: {
        Vec shared_in = x;
        for (std::size_t l = 0; l < spec.levels.size(); ++l) {
          const mtlite::PleLevel& lv = spec.levels[l];
          const std::string L = "ple" + std::to_string(l);
          std::vector<std::vector<Vec>> own(T);
          std::vector<Vec> shared;
          for (std::size_t k = 0; k < T; ++k)
            for (std::uint32_t j = 0; j < lv.task_experts; ++j)
              own[k].push_back(mlp(L + ".task" + std::to_string(k) + ".expert" + std::to_string(j), lv.expert, h[k]));
          for (std::uint32_t j = 0; j < lv.shared_experts; ++j)
            shared.push_back(mlp(L + ".shared.expert" + std::to_string(j), lv.expert, shared_in));
          std::vector<Vec> next(T);
          for (std::size_t k = 0; k < T; ++k) {
            std::vector<Vec> mine = own[k];
            mine.insert(mine.end(), shared.begin(), shared.end());
            next[k] = mix(gate(L + ".task" + std::to_string(k) + ".gate", h[k]), mine);
          }
          if (l + 1 < spec.levels.size()) {
            std::vector<Vec> all;
            for (std::size_t k = 0; k < T; ++k) all.insert(all.end(), own[k].begin(), own[k].end());
            all.insert(all.end(), shared.begin(), shared.end());
            shared_in = mix(gate(L + ".shared.gate", shared_in), all);
          }
          h = next;
        }
        break;
      }
    }
    Vec z(T);
    for (std::size_t k = 0; k < T; ++k) {
      const std::string name = "tower" + std::to_string(k);
      const Vec hidden = mlp(name, spec.tasks[k].tower, h[k]);
      z[k] = layer(name + "." + std::to_string(spec.tasks[k].tower.size()), hidden, Activation::identity)[0];
    }
    return z;
  }
};

// Per task (sum_i m s l, sum_i m s) over the examples, docs/models.md's losses in double.
struct TaskSums {
  Vec num, den;
  double loss(std::size_t k) const { return den[k] > 0 ? num[k] / den[k] : 0.0; }
};

TaskSums reference_sums(const Spec& spec, const DMap& w, const std::vector<Example>& ex, const Labels& lab) {
  Reference ref{spec, w, {}};
  const std::size_t T = spec.tasks.size();
  TaskSums s{Vec(T, 0.0), Vec(T, 0.0)};
  const int ctr = spec.esmm ? spec.task_index(spec.esmm->ctr) : -1;
  const int cvr = spec.esmm ? spec.task_index(spec.esmm->cvr) : -1;
  for (std::size_t r = 0; r < ex.size(); ++r) {
    const Vec z = ref.logits(ex[r]);
    const double sw = lab.w.empty() ? 1.0 : lab.w[r];
    for (std::size_t k = 0; k < T; ++k) {
      const bool m = lab.mask.empty() || lab.mask[r * T + k];
      double y = lab.y[r * T + k], weight = m ? sw : 0.0, l;
      if (static_cast<int>(k) == cvr) {
        const std::size_t c = static_cast<std::size_t>(ctr);
        const bool mc = lab.mask.empty() || lab.mask[r * T + c];
        const double click = lab.y[r * T + c];
        const bool known = mc && (click == 0.0 || m);
        weight = known ? sw : 0.0;
        y = click == 0.0 ? 0.0 : click * y;
        const double p = std::exp(log_sigmoid(z[c]) + log_sigmoid(z[k]));
        l = -(y * std::log(p) + (1.0 - y) * std::log(1.0 - p));
      } else if (spec.tasks[k].kind == TaskKind::binary) {
        l = -(y * log_sigmoid(z[k]) + (1.0 - y) * log_sigmoid(-z[k]));
      } else {
        l = (z[k] - y) * (z[k] - y);
      }
      if (weight == 0.0) continue;
      s.num[k] += weight * l;
      s.den[k] += weight;
    }
  }
  return s;
}

double fixed_objective(const Spec& spec, const TaskSums& s) {
  double o = 0.0;
  for (std::size_t k = 0; k < spec.tasks.size(); ++k) o += spec.tasks[k].loss_weight * s.loss(k);
  return o;
}

// ---- specs ----------------------------------------------------------------------------------

Task binary(std::string name, Mlp tower = {}) {
  Task t;
  t.name = std::move(name);
  t.tower = std::move(tower);
  return t;
}
Task regression(std::string name, Mlp tower = {}) {
  Task t = binary(std::move(name), std::move(tower));
  t.kind = TaskKind::regression;
  return t;
}

// Every kind of input: dense (plain, standardised, log1p), categorical (vocabulary, hashed),
// multi-hot (sum and mean, vocabulary and hashed).
std::vector<Feature> rich_features() {
  return {Feature::dense("d0"),
          Feature::dense("d1", Normalization::standardize, 1.5f, 2.0f),
          Feature::dense("d2", Normalization::log1p),
          Feature::categorical("c0", 7, 3),
          Feature::hashed("h0", 11, 2),
          Feature::multi_hot("m0", 9, 3, Pooling::sum),
          Feature::multi_hot("m1", 6, 2, Pooling::mean),
          Feature::multi_hot("m2", 13, 2, Pooling::mean, IdMapping::hashing)};
}

Spec make_spec(Architecture a, bool esmm = false) {
  Spec s;
  s.features = rich_features();
  s.architecture = a;
  if (esmm || a == Architecture::esmm) {
    s.tasks = {binary("ctr", mlp({6})), binary("cvr", {{5, Activation::tanh}})};
    s.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
  } else {
    s.tasks = {binary("click", mlp({6})), regression("time", {{5, Activation::tanh}, {4, Activation::sigmoid}}),
               binary("like")};
    s.tasks[2].loss_weight = 0.5f;
  }
  switch (a) {
    case Architecture::single_task:
    case Architecture::esmm:
      break;
    case Architecture::shared_bottom:
      s.bottom = {{8, Activation::relu}, {6, Activation::identity}};
      break;
    case Architecture::omoe:
      s.num_experts = 3;
      s.expert = mlp({7});
      break;
    case Architecture::mmoe:
      s.num_experts = 3;
      s.expert = {{6, Activation::relu}, {5, Activation::sigmoid}};
      break;
    case Architecture::ple:
      s.levels = {{2, 1, mlp({6})}};
      break;
  }
  s.validate();
  return s;
}

Spec make_ple2() {
  Spec s = make_spec(Architecture::ple);
  s.levels = {{1, 2, mlp({6})}, {2, 1, {{5, Activation::tanh}}}};
  s.validate();
  return s;
}

// ---- the gradient check ---------------------------------------------------------------------

std::vector<std::set<std::uint64_t>> used_rows(const Spec& spec, const std::vector<Example>& ex) {
  std::vector<std::set<std::uint64_t>> used;
  std::size_t id = 0, bag = 0;
  for (const Feature& f : spec.features) {
    if (f.kind == FeatureKind::dense) continue;
    std::set<std::uint64_t> u;
    for (const Example& e : ex) {
      if (f.kind == FeatureKind::categorical) u.insert(f.row_of(e.ids[id]));
      else
        for (std::int64_t i : e.bags[bag]) u.insert(f.row_of(i));
    }
    used.push_back(u);
    (f.kind == FeatureKind::categorical ? id : bag)++;
  }
  return used;
}

struct CheckResult {
  std::size_t checked = 0, skipped = 0, zero_rows = 0;
};

// The trainer's gradient of the fixed-weights objective against finite differences of the
// reference, on `rows` random rows with masks and sample weights.
CheckResult check_gradients(const Spec& spec, std::size_t rows, std::uint64_t seed, TrainOptions o = {},
                            double p_missing = 0.2) {
  const std::vector<Example> ex = make_examples(spec, rows, seed);
  const BatchData data(ex);
  const Labels lab = make_labels(spec, rows, seed + 1, p_missing);
  Trainer tr(spec, o);
  tr.set_weights(mtlite::random_weights(spec, seed + 2, 0.2f));
  const Weights G = tr.gradients(data.batch(), lab.y, lab.mask, lab.w);
  DMap w = to_double(tr.weights());
  auto J = [&] { return fixed_objective(spec, reference_sums(spec, w, ex, lab)); };

  // The objective itself.
  const double j0 = J();
  const double lt = tr.loss(data.batch(), lab.y, lab.mask, lab.w);
  CHECK(std::fabs(lt - j0) <= 1e-5 * std::max(1.0, std::fabs(j0)));

  double S = 0.0;
  bool finite = true;
  for (const auto& [name, t] : G)
    for (float v : t.data) {
      finite = finite && std::isfinite(v);
      S = std::max(S, static_cast<double>(std::fabs(v)));
    }
  REQUIRE(finite);
  REQUIRE(S > 0.0);

  Random rng(seed + 3);
  const auto used = used_rows(spec, ex);
  CheckResult res;
  std::size_t table = 0;
  for (const mtlite::ParamInfo& p : mtlite::parameters(spec)) {
    Vec& param = w.at(p.name);
    const Tensor& g = G.at(p.name);
    REQUIRE(g.data.size() == param.size());
    std::vector<std::size_t> entries;
    if (p.role == mtlite::ParamInfo::Role::embedding) {
      const std::size_t dim = p.shape[1], nrows = p.shape[0];
      const std::set<std::uint64_t>& u = used[table++];
      std::vector<std::uint64_t> ur(u.begin(), u.end());
      for (int i = 0; i < 3 && !ur.empty(); ++i)
        entries.push_back(ur[rng.below(ur.size())] * dim + rng.below(dim));
      // The OOV row when the batch uses it.
      if (u.count(nrows - 1)) entries.push_back((nrows - 1) * dim + rng.below(dim));
      // Rows the batch does not touch have exactly zero gradient.
      for (std::uint64_t r = 0; r < nrows; ++r)
        if (!u.count(r)) {
          ++res.zero_rows;
          bool zero = true;
          for (std::size_t d = 0; d < dim; ++d) zero = zero && g.data[r * dim + d] == 0.0f;
          INFO(p.name << " row " << r << " is not in the batch");
          CHECK(zero);
        }
    } else {
      for (int i = 0; i < 4; ++i) entries.push_back(rng.below(param.size()));
    }
    for (std::size_t e : entries) {
      const double w0 = param[e];
      auto fd = [&](double h) {
        param[e] = w0 + h;
        const double up = J();
        param[e] = w0 - h;
        const double down = J();
        param[e] = w0;
        return (up - down) / (2.0 * h);
      };
      const double h = 1e-6 * std::max(1.0, std::fabs(w0));
      const double f1 = fd(h), f2 = fd(h / 8);
      if (std::fabs(f1 - f2) > 1e-6 * S) {
        ++res.skipped;
        continue;
      }
      ++res.checked;
      const double got = g.data[e];
      INFO(p.name << "[" << e << "]: trainer " << got << ", finite difference " << f2 << ", scale " << S);
      CHECK(std::fabs(got - f2) <= 2e-3 * std::fabs(f2) + 2e-4 * S);
    }
  }
  CHECK(res.skipped * 10 <= res.checked + res.skipped);
  return res;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

std::vector<float> flat(const Weights& w) {
  std::vector<float> v;
  for (const auto& [name, t] : w) v.insert(v.end(), t.data.begin(), t.data.end());
  return v;
}

bool bitwise_equal(const Weights& a, const Weights& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    const auto it = b.find(name);
    if (it == b.end() || it->second.shape != t.shape || it->second.data.size() != t.data.size()) return false;
    if (std::memcmp(t.data.data(), it->second.data.data(), t.data.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

}  // namespace

// ---- kernels --------------------------------------------------------------------------------

TEST_CASE("train kernels: gemm equals plain loops on odd shapes, strided A, bias, floor, accumulate") {
  namespace K = mtlite::train::math;
  Random rng(11);
  for (std::size_t M : {1u, 3u, 8u, 9u, 17u})
    for (std::size_t N : {1u, 5u, 16u, 23u, 49u, 144u})
      for (std::size_t K0 : {1u, 7u, 33u})
        for (int variant = 0; variant < 4; ++variant) {
          // variant bit 0: A read as the transpose of a K0 x M array; bit 1: padded C rows.
          const bool transposed = variant & 1, padded = variant & 2;
          const std::size_t ldc = padded ? K::round_up(N, K::kPad) : N;
          std::vector<float> a(M * K0), b(K0 * N + K::kPad), bias(N + K::kPad), floor(N + K::kPad);
          std::vector<float> c(M * ldc + K::kPad), c0;
          for (float& v : a) v = static_cast<float>(rng.uniform(-1, 1));
          for (float& v : b) v = static_cast<float>(rng.uniform(-1, 1));
          for (float& v : bias) v = static_cast<float>(rng.uniform(-1, 1));
          for (std::size_t n = 0; n < floor.size(); ++n) floor[n] = n % 3 ? 0.0f : -INFINITY;
          for (float& v : c) v = static_cast<float>(rng.uniform(-1, 1));
          c0 = c;
          const std::size_t am = transposed ? 1 : K0, ak = transposed ? M : 1;
          K::GemmOptions o;
          o.accumulate = (M + N + K0) % 2 == 0;
          o.bias = o.accumulate ? nullptr : bias.data();
          o.floor = o.accumulate || N % 2 ? nullptr : floor.data();
          o.padded = padded;
          K::gemm(M, N, K0, a.data(), am, ak, b.data(), N, c.data(), ldc, o);
          for (std::size_t m = 0; m < M; ++m) {
            for (std::size_t n = 0; n < N; ++n) {
              double want = o.accumulate ? c0[m * ldc + n] : bias[n];
              for (std::size_t k = 0; k < K0; ++k) want += static_cast<double>(a[m * am + k * ak]) * b[k * N + n];
              if (o.floor) want = std::max(want, static_cast<double>(floor[n]));
              INFO("M=" << M << " N=" << N << " K=" << K0 << " variant " << variant << " m=" << m << " n=" << n);
              CHECK(std::fabs(c[m * ldc + n] - want) <= 1e-5 * (1.0 + K0));
            }
            // Unpadded: nothing past the last column is written.
            if (!padded)
              for (std::size_t n = N; n < ldc; ++n) CHECK(c[m * ldc + n] == c0[m * ldc + n]);
          }
          if (!padded)
            for (std::size_t i = M * ldc; i < c.size(); ++i) CHECK(c[i] == c0[i]);
        }
}

TEST_CASE("train kernels: softmax and activation derivatives") {
  namespace K = mtlite::train::math;
  for (std::size_t n : {1u, 3u, 8u, 17u, 33u, 3000u})
    for (std::size_t rows : {1u, 5u, 700u}) {
      // Rows 2 floats longer than the gate: the extra columns must stay untouched.
      const std::size_t ld = n + 2;
      std::vector<float> x(rows * ld);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(1.0 + 3.0 * i) * 4.0);
      std::vector<float> g = x;
      K::softmax_rows(rows, n, g.data(), ld);
      for (std::size_t r = 0; r < rows; r += 7) {
        const float* xr = x.data() + r * ld;
        double m = *std::max_element(xr, xr + n), s = 0.0;
        for (std::size_t i = 0; i < n; ++i) s += std::exp(xr[i] - m);
        for (std::size_t i = 0; i < n; ++i) CHECK(g[r * ld + i] == doctest::Approx(std::exp(xr[i] - m) / s).epsilon(1e-5));
        CHECK(g[r * ld + n] == x[r * ld + n]);
        CHECK(g[r * ld + n + 1] == x[r * ld + n + 1]);
      }
    }
  for (Activation a : {Activation::identity, Activation::relu, Activation::sigmoid, Activation::tanh}) {
    const std::size_t n = 21;
    std::vector<float> z(n), y(n), dy(n, 1.0f);
    for (std::size_t i = 0; i < n; ++i) z[i] = static_cast<float>(-2.0 + 0.2 * i + 0.01);
    y = z;
    K::activate_rows(a, 1, n, y.data(), n);
    K::activation_grad_rows(a, 1, n, y.data(), n, dy.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      const double h = 1e-4, fd = (act_exact(a, z[i] + h) - act_exact(a, z[i] - h)) / (2 * h);
      INFO(mtlite::to_string(a) << " z=" << z[i]);
      CHECK(y[i] == doctest::Approx(act_exact(a, z[i])).epsilon(1e-5));
      CHECK(dy[i] == doctest::Approx(fd).epsilon(1e-3));
    }
  }
}

TEST_CASE("train kernels: add, axpy and dot equal plain loops on sizes that are not whole vectors") {
  namespace K = mtlite::train::math;
  Random rng(12);
  for (std::size_t n : {0u, 1u, 3u, 4u, 7u, 15u, 16u, 17u, 37u, 100u}) {
    std::vector<float> x(n), y(n);
    for (float& v : x) v = static_cast<float>(rng.uniform(-1, 1));
    for (float& v : y) v = static_cast<float>(rng.uniform(-1, 1));
    std::vector<float> sum = y, scaled = y;
    K::add(n, x.data(), sum.data());
    K::axpy(n, -0.75f, x.data(), scaled.data());
    double dot = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      INFO("n=" << n << " i=" << i);
      CHECK(sum[i] == y[i] + x[i]);  // one rounding either way
      CHECK(std::fabs(scaled[i] - (y[i] - 0.75 * x[i])) <= 1e-6);
      dot += static_cast<double>(x[i]) * y[i];
    }
    CHECK(std::fabs(K::dot(n, x.data(), y.data()) - dot) <= 1e-6 * (1.0 + n));
  }
}

TEST_CASE("train kernels: an optimiser step over a run equals the step element by element") {
  // A run of 37 parameters goes through the vector loop (and its tail); one element at a time is
  // the scalar loop alone.
  namespace K = mtlite::train::math;
  Random rng(13);
  for (mtlite::train::OptimizerKind kind : {mtlite::train::OptimizerKind::sgd, mtlite::train::OptimizerKind::adam,
                                            mtlite::train::OptimizerKind::adagrad}) {
    mtlite::train::TrainOptions o;
    o.optimizer = kind;
    o.l2 = 0.01f;
    const mtlite::train::OptimizerStep step = mtlite::train::OptimizerStep::make(o, 0.05f, 3, 0.8f);
    const std::size_t n = 37;
    std::vector<float> p(n), g(n), s1(n), s2(n);
    for (float& v : p) v = static_cast<float>(rng.uniform(-1, 1));
    for (float& v : g) v = static_cast<float>(rng.uniform(-1, 1));
    for (float& v : s1) v = static_cast<float>(rng.uniform(0, 0.1));
    for (float& v : s2) v = static_cast<float>(rng.uniform(0, 0.1));
    const std::vector<float> p0 = p;
    std::vector<float> pv = p, s1v = s1, s2v = s2;
    K::optimizer_step(step, n, pv.data(), g.data(), s1v.data(), s2v.data());
    for (std::size_t i = 0; i < n; ++i) K::optimizer_step(step, 1, &p[i], &g[i], &s1[i], &s2[i]);
    for (std::size_t i = 0; i < n; ++i) {
      INFO(static_cast<int>(kind) << " i=" << i);
      CHECK(pv[i] == doctest::Approx(p[i]).epsilon(1e-6));
      CHECK(s1v[i] == doctest::Approx(s1[i]).epsilon(1e-6));
      CHECK(s2v[i] == doctest::Approx(s2[i]).epsilon(1e-6));
    }
    CHECK(pv != p0);  // the step moved the parameters
  }
}

TEST_CASE("train kernels: the trainer's loops run at the level of the runtime's kernels") {
  // The scalar kernel level trains with the program's own baseline loops (math.hpp).
  const std::string kernels = mtlite::kernels::table().level;
  const std::string math = mtlite::train::math::table().level;
  INFO("kernels " << kernels << ", trainer loops " << math);
  if (kernels == "scalar")
    CHECK(math == mtlite::kernels::kTargetTable.level);
  else
    CHECK(math == kernels);
}

// ---- layout and forward ---------------------------------------------------------------------

TEST_CASE("weights round-trip through the training layout exactly") {
  for (const Spec& spec : {make_spec(Architecture::mmoe), make_ple2(), make_spec(Architecture::mmoe, true)}) {
    Trainer tr(spec);
    const Weights w = mtlite::random_weights(spec, 99, 0.3f);
    tr.set_weights(w);
    CHECK(bitwise_equal(tr.weights(), w));
    // And the constructor's weights are random_weights(spec, seed).
    TrainOptions o;
    o.seed = 5;
    Trainer t2(spec, o);
    CHECK(bitwise_equal(t2.weights(), mtlite::random_weights(spec, 5)));
  }
}

TEST_CASE("set_weights rejects missing, misshapen and non-finite tensors") {
  const Spec spec = make_spec(Architecture::mmoe);
  Trainer tr(spec);
  Weights w = mtlite::random_weights(spec, 1);
  Weights missing = w;
  missing.erase("gate1.weight");
  CHECK_THROWS_WITH_AS(tr.set_weights(missing), doctest::Contains("gate1.weight"), mtlite::Error);
  Weights shape = w;
  shape["expert0.0.bias"].shape = {5};
  shape["expert0.0.bias"].data.resize(5);
  CHECK_THROWS_WITH_AS(tr.set_weights(shape), doctest::Contains("expert0.0.bias"), mtlite::Error);
  Weights nan = w;
  nan["tower0.0.weight"].data[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(tr.set_weights(nan), mtlite::Error);
  CHECK(bitwise_equal(tr.weights(), mtlite::random_weights(spec, 0)));  // unchanged
}

TEST_CASE("predict agrees with the runtime's Session") {
  for (const Spec& spec : {make_spec(Architecture::mmoe), make_ple2(), make_spec(Architecture::mmoe, true),
                           make_spec(Architecture::shared_bottom)}) {
    const Weights w = mtlite::random_weights(spec, 21, 0.2f);
    TrainOptions o;
    o.threads = 2;
    Trainer tr(spec, o);
    tr.set_weights(w);
    const std::vector<Example> ex = make_examples(spec, 150, 3);
    const BatchData data(ex);
    const std::vector<float> got = tr.predict(data.batch());
    mtlite::Model model(spec, w);
    mtlite::Session session(model, 150);
    REQUIRE(session.predict(data.batch()).ok());
    const std::size_t O = model.num_outputs();
    REQUIRE(got.size() == 150 * O);
    for (std::size_t o2 = 0; o2 < O; ++o2)
      for (std::size_t r = 0; r < 150; ++r) {
        INFO(mtlite::to_string(spec.architecture) << " output " << o2 << " row " << r);
        CHECK(got[r * O + o2] == doctest::Approx(session.score(o2, r)).epsilon(1e-4));
      }
  }
}

// ---- gradients ------------------------------------------------------------------------------

TEST_CASE("gradient: every input kind (dense normalisations, categorical, hashed, multi-hot sum/mean, OOV)") {
  const Spec spec = make_spec(Architecture::single_task);
  const CheckResult r = check_gradients(spec, 37, 100);
  CHECK(r.checked > 40);
  CHECK(r.zero_rows > 0);
}

TEST_CASE("gradient: activations relu, identity (shared bottom), tanh, sigmoid (towers)") {
  check_gradients(make_spec(Architecture::shared_bottom), 37, 200);
}

TEST_CASE("gradient: OMoE (one softmax gate, expert mix)") { check_gradients(make_spec(Architecture::omoe), 37, 300); }

TEST_CASE("gradient: MMoE, more rows than a chunk, two threads") {
  TrainOptions o;
  o.threads = 2;
  check_gradients(make_spec(Architecture::mmoe), 300, 400, o);
}

TEST_CASE("gradient: MMoE with experts of 16 and 32 units (whole vectors)") {
  Spec spec = make_spec(Architecture::mmoe);
  spec.expert = {{32, Activation::relu}, {16, Activation::tanh}};
  spec.num_experts = 5;
  check_gradients(spec, 37, 450);
  spec.expert = {{16, Activation::relu}, {32, Activation::relu}};
  check_gradients(spec, 37, 460);
}

TEST_CASE("gradient: PLE one level (CGC)") { check_gradients(make_spec(Architecture::ple), 37, 500); }

TEST_CASE("gradient: PLE two levels (shared gate)") { check_gradients(make_ple2(), 37, 600); }

TEST_CASE("gradient: ESMM (pCTCVR product, no direct CVR loss)") {
  check_gradients(make_spec(Architecture::esmm), 37, 700);
}

TEST_CASE("gradient: ESMM over MMoE") { check_gradients(make_spec(Architecture::mmoe, true), 37, 800); }

TEST_CASE("gradient: losses without masks or sample weights") {
  const Spec spec = make_spec(Architecture::mmoe);
  const std::vector<Example> ex = make_examples(spec, 29, 900);
  const BatchData data(ex);
  const Labels lab = make_labels(spec, 29, 901, 0.0, false);
  Trainer tr(spec);
  // Empty mask and weights = every label present with weight 1.
  std::vector<std::uint8_t> ones(lab.y.size(), 1);
  std::vector<float> w1(29, 1.0f);
  CHECK(bitwise_equal(tr.gradients(data.batch(), lab.y), tr.gradients(data.batch(), lab.y, ones, w1)));
  CHECK(tr.loss(data.batch(), lab.y) == doctest::Approx(fixed_objective(spec, reference_sums(spec, to_double(tr.weights()), ex, lab))).epsilon(1e-5));
}

TEST_CASE("loss values: binary log loss and squared error, by hand") {
  Spec spec;
  spec.features = {Feature::dense("x")};
  spec.architecture = Architecture::single_task;
  spec.tasks = {binary("b"), regression("r")};
  Trainer tr(spec);
  // tower<k>.0: logit = w x + b; set b = 0.5, w = 2 for the binary task and w = -1, b = 0.25.
  Weights w = tr.weights();
  w["tower0.0.weight"].data = {2.0f};
  w["tower0.0.bias"].data = {0.5f};
  w["tower1.0.weight"].data = {-1.0f};
  w["tower1.0.bias"].data = {0.25f};
  tr.set_weights(w);
  const std::vector<float> x = {1.0f, -3.0f, 0.5f};
  mtlite::Batch b;
  b.rows = 3;
  b.dense = {x.data(), 3};
  const std::vector<float> y = {1, 2.0f, 0, -1.0f, 1, 0.0f};
  const std::vector<std::uint8_t> m = {1, 1, 1, 0, 1, 1};
  const std::vector<float> s = {1.0f, 2.0f, 0.5f};
  auto bce = [](double z, double t) { return std::log1p(std::exp(z)) - t * z; };
  const double zb[] = {2.5, -5.5, 1.5}, zr[] = {-0.75, 3.25, -0.25};
  const double Lb = (1.0 * bce(zb[0], 1) + 2.0 * bce(zb[1], 0) + 0.5 * bce(zb[2], 1)) / 3.5;
  const double Lr = (1.0 * std::pow(zr[0] - 2.0, 2) + 0.5 * std::pow(zr[2] - 0.0, 2)) / 1.5;
  const std::vector<double> L = tr.task_losses(b, y, m, s);
  CHECK(L[0] == doctest::Approx(Lb).epsilon(1e-6));
  CHECK(L[1] == doctest::Approx(Lr).epsilon(1e-6));
  CHECK(tr.loss(b, y, m, s) == doctest::Approx(Lb + Lr).epsilon(1e-6));
  // dL/d bias: binary sum_i s_i (p_i - y_i) / 3.5, regression sum_i m s 2 (z - y) / 1.5.
  auto sig = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  const Weights g = tr.gradients(b, y, m, s);
  CHECK(g.at("tower0.0.bias").data[0] ==
        doctest::Approx((1.0 * (sig(zb[0]) - 1) + 2.0 * sig(zb[1]) + 0.5 * (sig(zb[2]) - 1)) / 3.5).epsilon(1e-5));
  CHECK(g.at("tower1.0.bias").data[0] ==
        doctest::Approx((2.0 * (zr[0] - 2.0) + 0.5 * 2.0 * zr[2]) / 1.5).epsilon(1e-5));
}

TEST_CASE("a task with no labels in the batch contributes nothing, and no NaN appears") {
  const Spec spec = make_spec(Architecture::mmoe);
  const std::vector<Example> ex = make_examples(spec, 40, 1000);
  const BatchData data(ex);
  Labels lab = make_labels(spec, 40, 1001);
  // Task 1 ("time") has no label in this batch...
  for (std::size_t r = 0; r < 40; ++r) lab.mask[r * 3 + 1] = 0;
  Trainer a(spec);
  const Weights ga = a.gradients(data.batch(), lab.y, lab.mask, lab.w);
  REQUIRE(all_finite(flat(ga)));
  // ... which equals labelling it everywhere with loss weight 0.
  Spec zero = spec;
  zero.tasks[1].loss_weight = 0.0f;
  Labels all = lab;
  for (std::size_t r = 0; r < 40; ++r) all.mask[r * 3 + 1] = 1;
  Trainer b(zero);
  const Weights gb = b.gradients(data.batch(), all.y, all.mask, all.w);
  for (const auto& [key, t] : ga) {
    const std::string& name = key;
    INFO(name);
    for (std::size_t i = 0; i < t.data.size(); ++i) CHECK(t.data[i] == doctest::Approx(gb.at(name).data[i]).epsilon(1e-6));
  }
  // Its tower gets exactly zero, and the step is finite.
  for (float v : ga.at("tower1.0.weight").data) CHECK(v == 0.0f);
  const double loss = a.step(data.batch(), lab.y, lab.mask, lab.w);
  CHECK(std::isfinite(loss));
  CHECK(a.last_step().weight_sum[1] == 0.0);
  CHECK(a.last_step().loss[1] == 0.0);
  REQUIRE(all_finite(flat(a.weights())));
  // The same for every balancing method (each keeps the task out).
  for (BalanceMethod m : {BalanceMethod::uncertainty, BalanceMethod::gradnorm, BalanceMethod::metabalance}) {
    TrainOptions o;
    o.balancing.method = m;
    o.affinity_every = 1;
    Trainer t(spec, o);
    CHECK(std::isfinite(t.step(data.batch(), lab.y, lab.mask, lab.w)));
    REQUIRE(all_finite(flat(t.weights())));
    REQUIRE(all_finite(flat(t.state())));
  }
}

TEST_CASE("ESMM targets: pCTCVR label is click AND conversion, known when click is 0") {
  Spec spec;
  spec.features = {Feature::dense("x")};
  spec.architecture = Architecture::esmm;
  spec.tasks = {binary("ctr"), binary("cvr")};
  spec.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
  Trainer tr(spec);
  const auto& prog = tr.program();
  //                         click conv   row
  const std::vector<float> y = {1, 1,   // 0: both known -> 1
                                1, 0,   // 1: both known -> 0
                                0, 0,   // 2: click 0, conversion unobserved -> 0 (known)
                                1, 1,   // 3: click 1, conversion unobserved -> unknown
                                1, 1};  // 4: click unknown -> unknown
  const std::vector<std::uint8_t> m = {1, 1, 1, 1, 1, 0, 1, 0, 0, 1};
  const auto t = mtlite::train::make_targets(prog, spec, 5, y, m, {});
  const std::vector<float> want_w = {1, 1, 1, 0, 0}, want_y = {1, 0, 0, 0, 0};
  for (std::size_t r = 0; r < 5; ++r) {
    CHECK(t.weight[1][r] == want_w[r]);
    CHECK(t.label[1][r] == want_y[r]);
  }
  CHECK(t.denom[0] == 4.0);
  CHECK(t.denom[1] == 3.0);
  // Extreme logits stay finite: the loss is computed from the logits.
  const auto e = mtlite::train::esmm_term(60.0, 70.0, 0.0);
  CHECK(std::isfinite(e.loss));
  CHECK(e.loss == doctest::Approx(60.0).epsilon(1e-6));
  CHECK(std::isfinite(e.da));
  CHECK(std::isfinite(mtlite::train::esmm_term(-80.0, -90.0, 1.0).loss));
}

TEST_CASE("input and label errors throw and change nothing") {
  const Spec spec = make_spec(Architecture::mmoe);
  const std::vector<Example> ex = make_examples(spec, 10, 5);
  const BatchData data(ex);
  const Labels lab = make_labels(spec, 10, 6);
  Trainer tr(spec);
  const Weights before = tr.weights();
  std::vector<float> short_y(lab.y.begin(), lab.y.end() - 1);
  CHECK_THROWS_WITH_AS(tr.step(data.batch(), short_y, lab.mask, lab.w), doctest::Contains("labels"), mtlite::Error);
  std::vector<float> bad = lab.y;
  bad[0] = 2.0f;  // task 0 is binary
  std::vector<std::uint8_t> m(lab.mask.size(), 1);
  CHECK_THROWS_WITH_AS(tr.step(data.batch(), bad, m, {}), doctest::Contains("binary"), mtlite::Error);
  std::vector<float> neg = lab.w;
  neg[3] = -1.0f;
  CHECK_THROWS_WITH_AS(tr.step(data.batch(), lab.y, lab.mask, neg), doctest::Contains("weights"), mtlite::Error);
  mtlite::Batch b = data.batch();
  std::vector<float> dense(b.dense.begin(), b.dense.end());
  dense[4] = std::numeric_limits<float>::infinity();
  b.dense = {dense.data(), dense.size()};
  CHECK_THROWS_WITH_AS(tr.step(b, lab.y, lab.mask, lab.w), doctest::Contains("not finite"), mtlite::Error);
  mtlite::Batch nb = data.batch();
  nb.bags = {nb.bags.data(), 1};
  CHECK_THROWS_WITH_AS(tr.step(nb, lab.y, lab.mask, lab.w), doctest::Contains("bags"), mtlite::Error);
  CHECK(tr.steps() == 0);
  CHECK(bitwise_equal(tr.weights(), before));
  TrainOptions o;
  o.lr = -1.0f;
  CHECK_THROWS_AS(Trainer(spec, o), mtlite::Error);
  o = TrainOptions{};
  o.threads = 0;
  CHECK_THROWS_AS(Trainer(spec, o), mtlite::Error);
}

// ---- optimisers -----------------------------------------------------------------------------

namespace {

struct Fixture {
  Spec spec;
  std::vector<Example> ex;
  Labels lab;
  explicit Fixture(Spec s, std::size_t rows = 64, std::uint64_t seed = 42)
      : spec(std::move(s)), ex(make_examples(spec, rows, seed)), lab(make_labels(spec, rows, seed + 1)) {}
};

}  // namespace

TEST_CASE("SGD, L2 and clipping: p' = p - lr (clip * g + l2 p)") {
  Fixture f(make_spec(Architecture::mmoe));
  const BatchData data(f.ex);
  for (float l2 : {0.0f, 0.01f})
    for (float clip : {0.0f, 0.05f}) {
      TrainOptions o;
      o.optimizer = OptimizerKind::sgd;
      o.lr = 0.1f;
      o.l2 = l2;
      o.clip_norm = clip;
      Trainer tr(f.spec, o);
      const Weights p = tr.weights();
      const Weights g = tr.gradients(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
      double sq = 0.0;
      for (float v : flat(g)) sq += static_cast<double>(v) * v;
      const double norm = std::sqrt(sq);
      const double scale = clip > 0 && clip / (norm + 1e-6) < 1 ? clip / (norm + 1e-6) : 1.0;
      tr.step(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
      CHECK(tr.last_step().grad_norm == (clip > 0 ? doctest::Approx(norm).epsilon(1e-9) : doctest::Approx(0.0)));
      const Weights q = tr.weights();
      const auto used = used_rows(f.spec, f.ex);
      std::size_t table = 0;
      for (const mtlite::ParamInfo& info : mtlite::parameters(f.spec)) {
        const auto& pv = p.at(info.name).data;
        const auto& gv = g.at(info.name).data;
        const auto& qv = q.at(info.name).data;
        const bool emb = info.role == mtlite::ParamInfo::Role::embedding;
        const std::set<std::uint64_t>* u = emb ? &used[table++] : nullptr;
        for (std::size_t i = 0; i < pv.size(); ++i) {
          // Untouched embedding rows keep their value (no L2 on them: lazy).
          const bool touched = !emb || u->count(i / info.shape[1]);
          const double want = touched ? pv[i] - 0.1 * (scale * gv[i] + l2 * pv[i]) : pv[i];
          INFO(info.name << "[" << i << "] l2=" << l2 << " clip=" << clip);
          CHECK(qv[i] == doctest::Approx(want).epsilon(1e-6).scale(1e-3));
        }
      }
    }
}

TEST_CASE("Adam and Adagrad follow PyTorch's formulas") {
  Fixture f(make_spec(Architecture::shared_bottom));
  const BatchData data(f.ex);
  for (OptimizerKind kind : {OptimizerKind::adam, OptimizerKind::adagrad}) {
    TrainOptions o;
    o.optimizer = kind;
    o.lr = 0.01f;
    o.l2 = 0.001f;
    Trainer tr(f.spec, o);
    // Two steps on the same batch; replay them by hand for every dense parameter.
    std::map<std::string, std::vector<double>> m, v;
    Weights p = tr.weights();
    for (int t = 1; t <= 2; ++t) {
      const Weights g = tr.gradients(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
      tr.step(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
      const Weights q = tr.weights();
      for (const mtlite::ParamInfo& info : mtlite::parameters(f.spec)) {
        if (info.role == mtlite::ParamInfo::Role::embedding) continue;
        auto& mv = m[info.name];
        auto& vv = v[info.name];
        const auto& pv = p.at(info.name).data;
        const auto& gv = g.at(info.name).data;
        mv.resize(pv.size(), 0.0);
        vv.resize(pv.size(), 0.0);
        for (std::size_t i = 0; i < pv.size(); ++i) {
          const double gi = gv[i] + 0.001 * pv[i];
          double want;
          if (kind == OptimizerKind::adam) {
            mv[i] = 0.9 * mv[i] + 0.1 * gi;
            vv[i] = 0.999 * vv[i] + 0.001 * gi * gi;
            const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
            want = pv[i] - 0.01 / bc1 * mv[i] / (std::sqrt(vv[i]) / std::sqrt(bc2) + 1e-8);
          } else {
            vv[i] += gi * gi;
            want = pv[i] - 0.01 * gi / (std::sqrt(vv[i]) + 1e-10);
          }
          INFO(mtlite::train::to_string(kind) << " step " << t << " " << info.name << "[" << i << "]");
          CHECK(q.at(info.name).data[i] == doctest::Approx(want).epsilon(1e-5).scale(1e-2));
        }
      }
      p = q;
    }
  }
}

TEST_CASE("sparse embedding update: only rows seen in the batch change, their Adam moments too") {
  Spec spec;
  spec.features = {Feature::categorical("item", 50, 4), Feature::multi_hot("tags", 30, 3, Pooling::mean),
                   Feature::dense("x")};
  spec.architecture = Architecture::mmoe;
  spec.num_experts = 2;
  spec.expert = mlp({8});
  spec.tasks = {binary("a", mlp({4})), binary("b")};
  // Ids 0..9 and bag ids 0..4 only.
  std::vector<Example> ex(32);
  for (std::size_t r = 0; r < ex.size(); ++r) {
    ex[r].ids = {static_cast<std::int64_t>(r % 10)};
    ex[r].bags = {{static_cast<std::int64_t>(r % 5), static_cast<std::int64_t>((r + 2) % 5)}};
    ex[r].dense = {static_cast<float>(r) / 32.0f};
  }
  const BatchData data(ex);
  const Labels lab = make_labels(spec, 32, 3);
  TrainOptions o;
  o.l2 = 0.01f;
  o.lr = 0.01f;
  Trainer tr(spec, o);
  const Weights before = tr.weights();
  tr.step(data.batch(), lab.y, lab.mask, lab.w);
  tr.step(data.batch(), lab.y, lab.mask, lab.w);
  const Weights after = tr.weights();
  const Weights st = tr.state();
  for (const auto& entry : std::vector<std::pair<std::string, std::size_t>>{{"embedding.item", 10}, {"embedding.tags", 5}}) {
    const std::string& name = entry.first;
    const std::size_t rows_used = entry.second;
    const std::size_t dim = before.at(name).shape[1], rows = before.at(name).shape[0];
    for (std::size_t r = 0; r < rows; ++r) {
      const bool same = std::memcmp(before.at(name).data.data() + r * dim, after.at(name).data.data() + r * dim,
                                    dim * sizeof(float)) == 0;
      double m = 0.0;
      for (std::size_t d = 0; d < dim; ++d) m += std::fabs(st.at("train.adam.m." + name).data[r * dim + d]);
      INFO(name << " row " << r);
      CHECK(same == (r >= rows_used));
      CHECK((m == 0.0) == (r >= rows_used));
    }
  }
}

// ---- balancing ------------------------------------------------------------------------------

TEST_CASE("MetaBalance factors: a hand-computed two-step example") {
  // Step 1: ||g_0|| = 5, ||g_1|| = 1 (m starts at 0, beta 0.9).
  std::vector<float> m = {0.0f, 0.0f};
  const std::vector<bool> active = {true, true};
  std::vector<float> f = mtlite::train::metabalance_factors({5.0, 1.0}, m, active, 0, 0.7f, 0.9f, 1e-8f);
  CHECK(m[0] == doctest::Approx(0.5));
  CHECK(m[1] == doctest::Approx(0.1));
  CHECK(f[0] == doctest::Approx(0.7 * 0.5 / (0.5 + 1e-8) + 0.3));
  CHECK(f[1] == doctest::Approx(0.7 * 5.0 + 0.3));  // 3.8
  // g_0 = (3, 4), g_1 = (0.6, 0.8): p.grad = (3 + 0.6 * 3.8, 4 + 0.8 * 3.8) = (5.28, 7.04).
  CHECK(3.0 * f[0] + 0.6 * f[1] == doctest::Approx(5.28));
  CHECK(4.0 * f[0] + 0.8 * f[1] == doctest::Approx(7.04));
  // Step 2: ||g_0|| = 2, ||g_1|| = 4: m = (0.45 + 0.2, 0.09 + 0.4) = (0.65, 0.49).
  f = mtlite::train::metabalance_factors({2.0, 4.0}, m, active, 0, 0.7f, 0.9f, 1e-8f);
  CHECK(m[0] == doctest::Approx(0.65));
  CHECK(m[1] == doctest::Approx(0.49));
  CHECK(f[1] == doctest::Approx(0.7 * 0.65 / 0.49 + 0.3));
  // An inactive task leaves its m alone.
  f = mtlite::train::metabalance_factors({1.0, 0.0}, m, {true, false}, 0, 0.7f, 0.9f, 1e-8f);
  CHECK(m[1] == doctest::Approx(0.49));
}

TEST_CASE("MetaBalance in the trainer: two steps on a tiny shared parameter, checked by hand") {
  // x -> bottom (1 unit, identity) -> two towers (1 unit each): the bottom's weight and bias are
  // the shared parameters; per-task gradients come from fixed-weight trainers with one task
  // labelled.
  Spec spec;
  spec.features = {Feature::dense("x")};
  spec.architecture = Architecture::shared_bottom;
  spec.bottom = {{1, Activation::identity}};
  spec.tasks = {binary("main"), regression("aux")};
  spec.tasks[1].role = mtlite::TaskRole::auxiliary;
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 1.5f};
  mtlite::Batch b;
  b.rows = 4;
  b.dense = {x.data(), 4};
  const std::vector<float> y = {1, 3.0f, 0, -2.0f, 1, 5.0f, 0, 1.0f};
  const std::vector<std::uint8_t> only0 = {1, 0, 1, 0, 1, 0, 1, 0}, only1 = {0, 1, 0, 1, 0, 1, 0, 1};
  TrainOptions o;
  o.optimizer = OptimizerKind::sgd;
  o.lr = 0.05f;
  o.balancing.method = BalanceMethod::metabalance;
  Trainer mb(spec, o);
  TrainOptions plain = o;
  plain.balancing.method = BalanceMethod::fixed;
  Trainer probe(spec, plain);
  std::map<std::string, std::vector<double>> m;
  for (const char* name : {"bottom.0.weight", "bottom.0.bias"}) m[name] = {0.0, 0.0};
  for (int step = 0; step < 2; ++step) {
    probe.set_weights(mb.weights());
    const Weights g0 = probe.gradients(b, y, only0, {});
    const Weights g1 = probe.gradients(b, y, only1, {});
    const Weights got = mb.gradients(b, y, {}, {});
    for (const std::string name : {"bottom.0.weight", "bottom.0.bias"}) {
      const double a0 = g0.at(name).data[0], a1 = g1.at(name).data[0];
      std::vector<double>& mk = m[name];
      mk = {0.9 * mk[0] + 0.1 * std::fabs(a0), 0.9 * mk[1] + 0.1 * std::fabs(a1)};
      const double want = a0 * (0.7 * mk[0] / (mk[0] + 1e-8) + 0.3) + a1 * (0.7 * mk[0] / (mk[1] + 1e-8) + 0.3);
      INFO("step " << step << " " << name << " g0=" << a0 << " g1=" << a1);
      CHECK(got.at(name).data[0] == doctest::Approx(want).epsilon(1e-5));
    }
    // Task-specific parameters: the plain sum (here each tower sees one task).
    CHECK(got.at("tower1.0.weight").data[0] == doctest::Approx(g1.at("tower1.0.weight").data[0]).epsilon(1e-6));
    CHECK(got.at("tower0.0.bias").data[0] == doctest::Approx(g0.at("tower0.0.bias").data[0]).epsilon(1e-6));
    mb.step(b, y, {}, {});
    for (const std::string name : {"bottom.0.weight", "bottom.0.bias"}) {
      const std::vector<float> mm = mb.metabalance_m(name);
      REQUIRE(mm.size() == 2);
      CHECK(mm[0] == doctest::Approx(m[name][0]).epsilon(1e-5));
      CHECK(mm[1] == doctest::Approx(m[name][1]).epsilon(1e-5));
    }
  }
  CHECK(mb.metabalance_m("tower0.0.weight").empty());  // not shared
  // r = 0 is exactly the fixed method.
  TrainOptions r0 = o;
  r0.balancing.r = 0.0f;
  Trainer zero(spec, r0);
  probe.set_weights(zero.weights());
  const Weights gz = zero.gradients(b, y, {}, {}), gp = probe.gradients(b, y, {}, {});
  for (const auto& [name, t] : gz) CHECK(t.data[0] == doctest::Approx(gp.at(name).data[0]).epsilon(1e-6));
}

TEST_CASE("uncertainty weighting: objective, network gradient and the s_k update") {
  Fixture f(make_spec(Architecture::mmoe));
  const BatchData data(f.ex);
  TrainOptions o;
  o.optimizer = OptimizerKind::sgd;
  o.lr = 0.1f;
  o.balancing.method = BalanceMethod::uncertainty;
  Trainer tr(f.spec, o);
  // s = 0: binary f = 1, regression f = 0.5.
  const std::vector<double> L = tr.task_losses(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  const double fk[] = {1.0, 0.5, 1.0};
  double want = 0.0;
  for (std::size_t k = 0; k < 3; ++k) want += fk[k] * L[k];
  CHECK(tr.loss(data.batch(), f.lab.y, f.lab.mask, f.lab.w) == doctest::Approx(want).epsilon(1e-9));
  // The network gradient is that of sum_k f_k exp(-s_k) L_k: fixed weights f_k here.
  Spec fixed = f.spec;
  for (std::size_t k = 0; k < 3; ++k) fixed.tasks[k].loss_weight = static_cast<float>(fk[k]);
  Trainer ref(fixed, TrainOptions{});
  ref.set_weights(tr.weights());
  const Weights ga = tr.gradients(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  const Weights gb = ref.gradients(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  CHECK(bitwise_equal(ga, gb));
  // One SGD step: s_k = 0 - lr f_k (1 - L_k).
  tr.step(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  for (std::size_t k = 0; k < 3; ++k) CHECK(tr.log_variances()[k] == doctest::Approx(-0.1 * fk[k] * (1.0 - L[k])).epsilon(1e-5));
  // Then the weights are f_k exp(-s_k) and the objective has the + f_k s_k terms.
  const std::vector<float> w = tr.task_weights();
  for (std::size_t k = 0; k < 3; ++k) CHECK(w[k] == doctest::Approx(fk[k] * std::exp(-tr.log_variances()[k])).epsilon(1e-6));
  const std::vector<double> L2 = tr.task_losses(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  double want2 = 0.0;
  for (std::size_t k = 0; k < 3; ++k) want2 += fk[k] * (std::exp(-tr.log_variances()[k]) * L2[k] + tr.log_variances()[k]);
  CHECK(tr.loss(data.batch(), f.lab.y, f.lab.mask, f.lab.w) == doctest::Approx(want2).epsilon(1e-6));
}

TEST_CASE("GradNorm: the first weight update by hand") {
  Fixture f(make_spec(Architecture::mmoe));
  const BatchData data(f.ex);
  TrainOptions o;
  o.optimizer = OptimizerKind::sgd;
  o.lr = 0.01f;
  o.balancing.method = BalanceMethod::gradnorm;
  o.balancing.lr = 0.02f;
  o.balancing.alpha = 1.5f;
  Trainer tr(f.spec, o);
  // n_k = ||grad_W L_k|| on the last shared layer: the experts' last layers (expert<i>.1.weight).
  TrainOptions plain;
  plain.optimizer = OptimizerKind::sgd;
  Spec one = f.spec;
  std::vector<double> n(3, 0.0);
  std::vector<Weights> g(3);
  for (std::size_t k = 0; k < 3; ++k) {
    for (std::size_t j = 0; j < 3; ++j) one.tasks[j].loss_weight = j == k ? 1.0f : 0.0f;
    Trainer p(one, plain);
    p.set_weights(tr.weights());
    g[k] = p.gradients(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
    for (std::uint32_t e = 0; e < 3; ++e)
      for (float v : g[k].at("expert" + std::to_string(e) + ".1.weight").data) n[k] += static_cast<double>(v) * v;
    n[k] = std::sqrt(n[k]);
  }
  // The network gradient uses w = 1: the plain sum.
  const Weights got = tr.gradients(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  for (const auto& [key, t] : got)
    for (std::size_t i = 0; i < t.data.size(); ++i) {
      const std::string& name = key;
      const double want = g[0].at(name).data[i] + g[1].at(name).data[i] + g[2].at(name).data[i];
      INFO(name << "[" << i << "]");
      CHECK(t.data[i] == doctest::Approx(want).epsilon(1e-5).scale(1e-4));
    }
  tr.step(data.batch(), f.lab.y, f.lab.mask, f.lab.w);
  // First step: every ratio is 1, so target_k = mean_k n_k (w = 1).
  const double gbar = (n[0] + n[1] + n[2]) / 3.0;
  std::vector<double> w(3);
  double s = 0.0;
  for (std::size_t k = 0; k < 3; ++k) {
    w[k] = 1.0 - 0.02 * (n[k] > gbar ? n[k] : -n[k]);
    s += w[k];
  }
  for (std::size_t k = 0; k < 3; ++k) {
    INFO("task " << k << " n=" << n[k] << " mean " << gbar);
    CHECK(tr.task_weights()[k] == doctest::Approx(w[k] * 3.0 / s).epsilon(1e-5));
  }
  double sum = 0.0;
  for (float v : tr.task_weights()) sum += v;
  CHECK(sum == doctest::Approx(3.0).epsilon(1e-6));
  // The task with the largest gradient norm loses weight.
  const std::size_t big = static_cast<std::size_t>(std::max_element(n.begin(), n.end()) - n.begin());
  CHECK(tr.task_weights()[big] < 1.0f);
}

TEST_CASE("shared parameters are derived from the graph") {
  auto shared = [](const Spec& s) {
    Trainer t(s);
    std::set<std::string> out;
    for (const auto& r : t.program().tensors)
      if (r.shared) out.insert(r.name);
    return out;
  };
  const auto m = shared(make_spec(Architecture::mmoe));
  CHECK(m.count("embedding.c0"));
  CHECK(m.count("expert2.1.weight"));
  CHECK(!m.count("gate0.weight"));
  CHECK(!m.count("tower1.0.bias"));
  const auto e = shared(make_spec(Architecture::esmm));
  CHECK(e.count("tower0.0.weight"));   // the ctr tower feeds the ctr and the pCTCVR losses
  CHECK(!e.count("tower1.0.weight"));  // the cvr tower only the pCTCVR loss
  const auto p = shared(make_ple2());
  CHECK(p.count("ple0.task0.expert0.0.weight"));  // through the level-0 shared gate
  CHECK(!p.count("ple1.task0.expert0.0.weight"));
  CHECK(p.count("ple1.shared.expert0.0.weight"));
  CHECK(!p.count("ple0.task1.gate.weight"));
  CHECK(p.count("ple0.shared.gate.weight"));
}

// ---- threads, determinism, resume -----------------------------------------------------------

namespace {

// n steps over rotating batches of `rows` rows.
void train_steps(Trainer& tr, const Fixture& f, std::size_t rows, int n, int first = 0) {
  const std::size_t T = f.spec.tasks.size();
  const std::size_t batches = f.ex.size() / rows;
  for (int s = first; s < first + n; ++s) {
    const std::size_t b = static_cast<std::size_t>(s) % batches;
    const BatchData data(f.ex, b * rows, rows);
    const std::vector<float> y(f.lab.y.begin() + static_cast<std::ptrdiff_t>(b * rows * T),
                               f.lab.y.begin() + static_cast<std::ptrdiff_t>((b + 1) * rows * T));
    const std::vector<std::uint8_t> m(f.lab.mask.begin() + static_cast<std::ptrdiff_t>(b * rows * T),
                                      f.lab.mask.begin() + static_cast<std::ptrdiff_t>((b + 1) * rows * T));
    const std::vector<float> w(f.lab.w.begin() + static_cast<std::ptrdiff_t>(b * rows),
                               f.lab.w.begin() + static_cast<std::ptrdiff_t>((b + 1) * rows));
    const double loss = tr.step(data.batch(), y, m, w);
    REQUIRE(std::isfinite(loss));
  }
}

// The threads of this process, once the count has settled: a joined thread can stay listed for
// a moment after join() returns (under qemu-user, whose host thread exits after the guest's), so
// the count is read until two reads 20 ms apart agree (at most 2 s).
std::size_t thread_count() {
#if defined(__linux__)
  auto read = [] {
    std::size_t n = 0;
    if (DIR* d = opendir("/proc/self/task")) {
      while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
      closedir(d);
    }
    return n;
  };
  std::size_t n = read();
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::size_t again = read();
    if (again == n) break;
    n = again;
  }
  return n;
#else
  return 0;
#endif
}

}  // namespace

TEST_CASE("determinism: same seed and thread count give bitwise identical weights") {
  Fixture f(make_spec(Architecture::mmoe), 600, 7);
  for (BalanceMethod m : {BalanceMethod::fixed, BalanceMethod::metabalance}) {
    TrainOptions o;
    o.threads = 2;
    o.seed = 3;
    o.balancing.method = m;
    Trainer a(f.spec, o), b(f.spec, o);
    train_steps(a, f, 300, 4);
    train_steps(b, f, 300, 4);
    CHECK(bitwise_equal(a.weights(), b.weights()));
    CHECK(bitwise_equal(a.state(), b.state()));
  }
}

TEST_CASE("1 and 2 threads: embedding gradients bitwise equal, weights within tight tolerance") {
  Fixture f(make_spec(Architecture::mmoe), 600, 8);
  TrainOptions o1, o2;
  o1.optimizer = o2.optimizer = OptimizerKind::sgd;
  o1.lr = o2.lr = 0.05f;
  o2.threads = 2;
  Trainer a(f.spec, o1), b(f.spec, o2);
  const BatchData data(f.ex, 0, 300);
  const std::vector<float> y(f.lab.y.begin(), f.lab.y.begin() + 900);
  const std::vector<std::uint8_t> m(f.lab.mask.begin(), f.lab.mask.begin() + 900);
  const std::vector<float> w(f.lab.w.begin(), f.lab.w.begin() + 300);
  const Weights ga = a.gradients(data.batch(), y, m, w), gb = b.gradients(data.batch(), y, m, w);
  double S = 0.0;
  for (float v : flat(ga)) S = std::max(S, static_cast<double>(std::fabs(v)));
  for (const auto& [name, t] : ga) {
    if (name.rfind("embedding.", 0) == 0) {
      CHECK(t.data == gb.at(name).data);  // scattered in batch row order whatever the sharding
    } else {
      // Dense gradients: the same sums in another order.
      for (std::size_t i = 0; i < t.data.size(); ++i)
        CHECK(std::fabs(t.data[i] - gb.at(name).data[i]) <= 1e-4 * std::fabs(t.data[i]) + 1e-6 * S);
    }
  }
  train_steps(a, f, 300, 6);
  train_steps(b, f, 300, 6);
  const std::vector<float> wa = flat(a.weights()), wb = flat(b.weights());
  REQUIRE(wa.size() == wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) CHECK(std::fabs(wa[i] - wb[i]) <= 1e-5 + 1e-5 * std::fabs(wa[i]));
}

TEST_CASE("one thread starts no thread; two threads start one") {
  const Spec spec = make_spec(Architecture::mmoe);
  const std::size_t before = thread_count();
  if (before == 0) return;  // not Linux
  {
    Trainer one(spec);
    Fixture f(spec, 64, 1);
    train_steps(one, f, 64, 1);
    CHECK(thread_count() == before);
  }
  TrainOptions o;
  o.threads = 2;
  Trainer two(spec, o);
  CHECK(thread_count() == before + 1);
}

TEST_CASE("state save and restore: a resumed run is bitwise identical") {
  Fixture f(make_spec(Architecture::mmoe), 256, 9);
  struct Config {
    OptimizerKind opt;
    BalanceMethod method;
    std::size_t affinity;
  };
  for (Config c : {Config{OptimizerKind::adam, BalanceMethod::metabalance, 0},
                   Config{OptimizerKind::adagrad, BalanceMethod::gradnorm, 2},
                   Config{OptimizerKind::adam, BalanceMethod::uncertainty, 0},
                   Config{OptimizerKind::sgd, BalanceMethod::fixed, 3}}) {
    INFO(mtlite::train::to_string(c.opt) << " " << mtlite::train::to_string(c.method));
    TrainOptions o;
    o.optimizer = c.opt;
    o.balancing.method = c.method;
    o.affinity_every = c.affinity;
    o.lr = 0.01f;
    o.threads = 2;
    Trainer whole(f.spec, o);
    train_steps(whole, f, 64, 6);
    Trainer first(f.spec, o);
    train_steps(first, f, 64, 3);
    Weights checkpoint = first.weights();
    for (auto& [name, t] : first.state()) {
      REQUIRE(name.rfind("train.", 0) == 0);
      checkpoint[name] = t;
    }
    TrainOptions other = o;
    other.seed = 77;
    Trainer resumed(f.spec, other);
    resumed.set_weights(checkpoint);
    resumed.load_state(checkpoint);
    CHECK(resumed.steps() == 3);
    train_steps(resumed, f, 64, 3, 3);
    CHECK(bitwise_equal(resumed.weights(), whole.weights()));
    CHECK(bitwise_equal(resumed.state(), whole.state()));
  }
  // A Trainer moves (its threads with it).
  {
    TrainOptions o;
    o.threads = 2;
    Trainer a(f.spec, o);
    train_steps(a, f, 64, 1);
    Trainer b = std::move(a);
    train_steps(b, f, 64, 1, 1);
    CHECK(b.steps() == 2);
  }
  // Foreign or missing state is refused.
  TrainOptions adam, sgd;
  sgd.optimizer = OptimizerKind::sgd;
  Trainer a(f.spec, adam), s(f.spec, sgd);
  CHECK_THROWS_WITH_AS(s.load_state(a.state()), doctest::Contains("train.adam"), mtlite::Error);
  CHECK_THROWS_WITH_AS(a.load_state(s.state()), doctest::Contains("missing"), mtlite::Error);
  Weights bad = a.state();
  bad["train.step"].data[0] = 0.5f;
  CHECK_THROWS_WITH_AS(a.load_state(bad), doctest::Contains("train.step"), mtlite::Error);
}

// ---- affinity and grouping ------------------------------------------------------------------

TEST_CASE("task grouping: exhaustive search over partitions, TAG's score") {
  // Tasks 0, 1 help each other, 2, 3 help each other, across the pairs they hurt.
  const std::size_t T = 4;
  std::vector<double> z(T * T, -0.2);
  auto set = [&](std::size_t i, std::size_t j, double v) { z[i * T + j] = v; };
  set(0, 1, 0.3);
  set(1, 0, 0.1);
  set(2, 3, 0.2);
  set(3, 2, 0.4);
  for (std::size_t i = 0; i < T; ++i) set(i, i, 0.5);
  const auto best = mtlite::train::best_groupings(z, T);
  REQUIRE(best.size() == 4);
  CHECK(best[0].groups.size() == 1);
  // All four together: task 0 gets (0.1 - 0.2 - 0.2) / 3, task 1 (0.3 - 0.4) / 3, task 2
  // (-0.4 + 0.4) / 3, task 3 (-0.4 + 0.2) / 3: -0.2 in all.
  CHECK(best[0].score == doctest::Approx(-0.2));
  const std::vector<std::vector<std::size_t>> pairs = {{0, 1}, {2, 3}};
  CHECK(best[1].groups == pairs);
  CHECK(best[1].score == doctest::Approx(0.3 + 0.1 + 0.2 + 0.4));
  CHECK(best[3].groups.size() == 4);
  CHECK(best[3].score == 0.0);
  // The score by hand: group {0, 1, 2}: task 0 gets (0.1 - 0.2) / 2, 1 gets (0.3 - 0.2) / 2,
  // 2 gets (-0.2 - 0.2) / 2.
  CHECK(mtlite::train::grouping_score(z, T, {{0, 1, 2}, {3}}) == doctest::Approx(-0.05 + 0.05 - 0.2));
  // The number of partitions searched: Bell(8) = 4140 for 8 tasks runs fine; 9 is refused.
  CHECK(mtlite::train::best_groupings(std::vector<double>(64, 0.1), 8).size() == 8);
  CHECK_THROWS_AS(mtlite::train::best_groupings(std::vector<double>(81, 0.1), 9), mtlite::Error);
}

TEST_CASE("task affinity is measured by look-ahead steps on the shared parameters") {
  Fixture f(make_spec(Architecture::mmoe), 256, 12);
  TrainOptions o;
  o.affinity_every = 2;
  o.optimizer = OptimizerKind::sgd;
  o.lr = 0.05f;
  Trainer tr(f.spec, o);
  const Weights w0 = tr.weights();
  // A measurement changes nothing but the affinity: the same step without it gives the same weights.
  TrainOptions off = o;
  off.affinity_every = 0;
  Trainer plain(f.spec, off);
  train_steps(tr, f, 64, 4);
  train_steps(plain, f, 64, 4);
  const std::vector<float> a = flat(tr.weights()), b = flat(plain.weights());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(std::fabs(a[i] - b[i]) <= 1e-5 * std::fabs(b[i]) + 1e-7);
  const auto& A = tr.affinity();
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(A.count[i * 3 + j] == 2.0f);  // steps 0 and 2
      CHECK(std::isfinite(A.at(i, j)));
    }
  // A step on task i lowers task i's own loss on the same batch.
  for (std::size_t i = 0; i < 3; ++i) CHECK(A.at(i, i) > 0.0);
  CHECK(tr.task_groupings().size() == 3);

  // Z by hand for one measurement: look-ahead with task 0's gradient alone on the shared
  // tensors (plain SGD), then every task's loss before and after.
  Trainer one(f.spec, o);
  const BatchData data(f.ex, 0, 64);
  const std::vector<float> y(f.lab.y.begin(), f.lab.y.begin() + 192);
  const std::vector<std::uint8_t> m(f.lab.mask.begin(), f.lab.mask.begin() + 192);
  const std::vector<float> w(f.lab.w.begin(), f.lab.w.begin() + 64);
  Spec solo = f.spec;
  solo.tasks[1].loss_weight = 0.0f;
  solo.tasks[2].loss_weight = 0.0f;
  solo.tasks[0].loss_weight = 1.0f;
  Trainer probe(solo, off);
  probe.set_weights(w0);
  const Weights g0 = probe.gradients(data.batch(), y, m, w);
  const std::vector<double> before = probe.task_losses(data.batch(), y, m, w);
  Weights look = w0;
  for (const auto& r : one.program().tensors)
    if (r.shared)
      for (std::size_t i = 0; i < look[r.name].data.size(); ++i) look[r.name].data[i] -= 0.05f * g0.at(r.name).data[i];
  probe.set_weights(look);
  const std::vector<double> after = probe.task_losses(data.batch(), y, m, w);
  one.step(data.batch(), y, m, w);
  for (std::size_t j = 0; j < 3; ++j) CHECK(one.affinity().at(0, j) == doctest::Approx(1.0 - after[j] / before[j]).epsilon(1e-3).scale(1e-4));
}

// ---- diagnostics ----------------------------------------------------------------------------

TEST_CASE("gate diagnostics: mean weights, entropies, collapsed gates, dead experts") {
  // Gate a: rows (0.95, 0.05, 0), (0.93, 0.07, 0) -> collapsed onto e0, e2 unused by it.
  const std::vector<float> a = {0.95f, 0.05f, 0.0f, 0.93f, 0.07f, 0.0f};
  const auto sa = mtlite::train::gate_stats("a", {"e0", "e1", "e2"}, a, 2);
  CHECK(sa.mean_weight[0] == doctest::Approx(0.94));
  CHECK(sa.mean_weight[2] == 0.0);
  CHECK(sa.collapsed);
  const double h0 = -(0.95 * std::log(0.95) + 0.05 * std::log(0.05)), h1 = -(0.93 * std::log(0.93) + 0.07 * std::log(0.07));
  CHECK(sa.mean_entropy == doctest::Approx((h0 + h1) / 2));
  CHECK(sa.usage_entropy == doctest::Approx(-(0.94 * std::log(0.94) + 0.06 * std::log(0.06))));
  // Gate b: uniform over e0, e1 and e2 is below 1/30 as well -> e2 is dead.
  const std::vector<float> b = {0.5f, 0.49f, 0.01f};
  const auto sb = mtlite::train::gate_stats("b", {"e0", "e1", "e2"}, b, 1);
  CHECK(!sb.collapsed);
  auto report = mtlite::train::gate_report({sa, sb});
  CHECK(report.dead_experts == std::vector<std::string>{"e2"});
  // A gate that gives e2 enough keeps it alive.
  const std::vector<float> c = {0.3f, 0.3f, 0.4f};
  report = mtlite::train::gate_report({sa, sb, mtlite::train::gate_stats("c", {"e0", "e1", "e2"}, c, 1)});
  CHECK(report.dead_experts.empty());
  CHECK_THROWS_AS(mtlite::train::gate_stats("d", {"e0"}, a, 2), mtlite::Error);
}

TEST_CASE("gate report of a trainer: one entry per gate, weights of a forward pass") {
  for (const Spec& spec : {make_spec(Architecture::mmoe), make_ple2()}) {
    Trainer tr(spec);
    const std::vector<Example> ex = make_examples(spec, 50, 4);
    const BatchData data(ex);
    const auto report = tr.gate_report(data.batch());
    REQUIRE(report.gates.size() == tr.network().gates.size());
    // Against the reference's gate softmax, averaged over the rows.
    const DMap w = to_double(tr.weights());
    Reference ref{spec, w, {}};
    std::map<std::string, Vec> mean;
    for (const Example& e : ex) {
      ref.logits(e);
      for (const auto& [name, g] : ref.gates) {
        Vec& m = mean[name];
        m.resize(g.size(), 0.0);
        for (std::size_t i = 0; i < g.size(); ++i) m[i] += g[i] / 50.0;
      }
    }
    for (const auto& g : report.gates) {
      INFO(g.gate);
      REQUIRE(mean.count(g.gate));
      for (std::size_t i = 0; i < g.mean_weight.size(); ++i) CHECK(g.mean_weight[i] == doctest::Approx(mean[g.gate][i]).epsilon(1e-4));
      CHECK(g.rows == 50);
    }
  }
}

// ---- convergence ----------------------------------------------------------------------------

namespace {

double auc(const std::vector<float>& s, const std::vector<float>& y) {
  std::vector<std::size_t> idx(s.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return s[a] < s[b]; });
  double rank_sum = 0.0, pos = 0.0;
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j < idx.size() && s[idx[j]] == s[idx[i]]) ++j;
    const double r = (i + j + 1) / 2.0;  // mean 1-based rank of the tie group
    for (std::size_t k = i; k < j; ++k)
      if (y[idx[k]] > 0.5f) {
        rank_sum += r;
        pos += 1;
      }
    i = j;
  }
  const double neg = static_cast<double>(s.size()) - pos;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

}  // namespace

TEST_CASE("convergence: MMoE on a synthetic two-task problem (loss falls, AUC > 0.9)") {
  // MMoE paper style: x ~ N(0, I_8), w1 and w2 with cos 0.6, a categorical offset, noise 0.1.
  Spec spec;
  for (int i = 0; i < 8; ++i) spec.features.push_back(Feature::dense("x" + std::to_string(i)));
  spec.features.push_back(Feature::categorical("c", 20, 4));
  spec.architecture = Architecture::mmoe;
  spec.num_experts = 4;
  spec.expert = mlp({16});
  spec.tasks = {binary("t1", mlp({8})), binary("t2", mlp({8}))};
  Random rng(2024);
  std::vector<double> u1(8), u2(8), off1(20), off2(20);
  for (double& v : u1) v = rng.normal();
  for (double& v : u2) v = rng.normal();
  double n1 = 0, d12 = 0;
  for (int i = 0; i < 8; ++i) n1 += u1[i] * u1[i];
  for (int i = 0; i < 8; ++i) d12 += u1[i] * u2[i];
  for (int i = 0; i < 8; ++i) u2[i] -= d12 / n1 * u1[i];
  double n2 = 0;
  for (int i = 0; i < 8; ++i) n2 += u2[i] * u2[i];
  for (int i = 0; i < 8; ++i) {
    u1[i] /= std::sqrt(n1);
    u2[i] /= std::sqrt(n2);
  }
  std::vector<double> w1(8), w2(8);
  for (int i = 0; i < 8; ++i) {
    w1[i] = u1[i];
    w2[i] = 0.6 * u1[i] + 0.8 * u2[i];
  }
  for (double& v : off1) v = rng.uniform(-1, 1);
  for (double& v : off2) v = rng.uniform(-1, 1);
  auto make = [&](std::size_t n, std::vector<Example>& ex, std::vector<float>& y) {
    for (std::size_t r = 0; r < n; ++r) {
      Example e;
      double a = 0, b = 0;
      for (int i = 0; i < 8; ++i) {
        const double x = rng.normal();
        e.dense.push_back(static_cast<float>(x));
        a += w1[i] * x;
        b += w2[i] * x;
      }
      const std::size_t c = rng.below(20);
      e.ids.push_back(static_cast<std::int64_t>(c));
      const double s1 = a + 0.5 * std::sin(2 * a) + off1[c] + 0.1 * rng.normal();
      const double s2 = b + 0.5 * std::cos(2 * b) - 0.5 + off2[c] + 0.1 * rng.normal();
      y.push_back(s1 > 0 ? 1.0f : 0.0f);
      y.push_back(s2 > 0 ? 1.0f : 0.0f);
      ex.push_back(e);
    }
  };
  std::vector<Example> train, test;
  std::vector<float> ytrain, ytest;
  make(12800, train, ytrain);
  make(2000, test, ytest);
  TrainOptions o;
  o.lr = 0.01f;
  o.threads = 2;
  Trainer tr(spec, o);
  const std::size_t B = 128;
  std::vector<double> losses;
  for (int epoch = 0; epoch < 3; ++epoch)
    for (std::size_t b = 0; b + B <= train.size(); b += B) {
      const BatchData data(train, b, B);
      const std::vector<float> y(ytrain.begin() + static_cast<std::ptrdiff_t>(2 * b),
                                 ytrain.begin() + static_cast<std::ptrdiff_t>(2 * (b + B)));
      losses.push_back(tr.step(data.batch(), y));
    }
  double early = 0, late = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    early += losses[i];
    late += losses[losses.size() - 1 - i];
  }
  CHECK(late < 0.5 * early);
  const BatchData data(test);
  const std::vector<float> p = tr.predict(data.batch());
  for (std::size_t k = 0; k < 2; ++k) {
    std::vector<float> s, y;
    for (std::size_t r = 0; r < test.size(); ++r) {
      s.push_back(p[r * 2 + k]);
      y.push_back(ytest[r * 2 + k]);
    }
    const double a = auc(s, y);
    INFO("task " << k << " AUC " << a);
    CHECK(a > 0.9);
  }
}
