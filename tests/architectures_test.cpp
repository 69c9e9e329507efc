// Every architecture against an independent forward pass written here with plain loops.
//
// The reference below reads the logical weights (mtlite::Weights: weight [out, in] row-major,
// bias [out], embedding.<feature> [rows, dim]) by the names network.hpp documents and computes
// docs/models.md's formulas in double precision. It uses nothing of the runtime: not the network
// graph, not the plan, not the kernels, not even Feature::row_of or mtlite's hash (the id hash
// is re-derived from the constants documented in hash.hpp).
//
// Tolerance (stated once, used everywhere): a runtime value `got` matches the reference `want`
// when |got - want| <= 1e-5 * max(|want|, floor), with floor = 1e-2 for probabilities (sigmoid
// heads, pCTCVR) and gate weights. A regression (identity) head can cancel to nearly zero while
// its terms are O(1), and float rounding of those terms does not cancel; for it the floor is
// max(1e-2, |b| + sum_i |w_i h_i|), the magnitude of the last layer's sum. A wrong formula
// moves values by far more than either bound (see the PLE shared-gate sensitivity check).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <mtlite/offline/convert/convert.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

using mtlite_test::BatchData;
using mtlite_test::Example;
using mtlite_test::Random;

using mtlite::Activation;
using mtlite::Architecture;
using mtlite::Feature;
using mtlite::FeatureKind;
using mtlite::IdMapping;
using mtlite::Mlp;
using mtlite::Model;
using mtlite::Normalization;
using mtlite::Pooling;
using mtlite::Session;
using mtlite::Spec;
using mtlite::Task;
using mtlite::TaskKind;
using mtlite::Weights;

constexpr double kRelTol = 1e-5;
constexpr double kFloor = 1e-2;

bool close(double got, double want, double floor = kFloor) {
  return std::fabs(got - want) <= kRelTol * std::max(std::fabs(want), floor);
}

// ---- inputs ---------------------------------------------------------------------------------




// An id for a vocabulary feature of `size` entries: mostly valid, sometimes negative, just out
// of range, or extreme.
std::int64_t vocabulary_id(Random& rng, std::uint64_t size) {
  static const std::int64_t odd[] = {-1, -7, std::numeric_limits<std::int64_t>::min(),
                                     std::numeric_limits<std::int64_t>::max(), 0};
  const std::uint64_t pick = rng.below(10);
  if (pick == 0) return odd[rng.below(5)];
  if (pick == 1) return static_cast<std::int64_t>(size + rng.below(3));  // size, size+1, size+2
  return static_cast<std::int64_t>(rng.below(size));
}

std::vector<Example> make_examples(const Spec& spec, std::size_t n, std::uint64_t seed) {
  Random rng(seed);
  std::vector<Example> out(n);
  for (std::size_t r = 0; r < n; ++r) {
    Example& e = out[r];
    for (const Feature& f : spec.features) {
      switch (f.kind) {
        case FeatureKind::dense: {
          double v = rng.uniform(-3.0, 3.0);
          if (f.takes_log1p()) {
            const std::uint64_t pick = rng.below(4);
            v = pick == 0 ? 0.0 : pick == 1 ? rng.uniform(-60.0, 60.0) : rng.uniform(-2.0, 2.0);
          } else if (f.normalization == Normalization::standardize) {
            v = f.mean + f.stddev * rng.uniform(-2.0, 2.0);
          }
          e.dense.push_back(static_cast<float>(v));
          break;
        }
        case FeatureKind::categorical:
          e.ids.push_back(f.mapping == IdMapping::hashing ? static_cast<std::int64_t>(rng.bits())
                                                          : vocabulary_id(rng, f.size));
          break;
        case FeatureKind::multi_hot: {
          // Every fourth row has an empty bag; others hold up to 9 ids, some repeated.
          const std::size_t len = r % 4 == 1 ? 0 : 1 + rng.below(9);
          std::vector<std::int64_t> bag;
          for (std::size_t i = 0; i < len; ++i) {
            if (i > 0 && rng.below(5) == 0) {
              bag.push_back(bag[rng.below(i)]);
            } else {
              bag.push_back(f.mapping == IdMapping::hashing ? static_cast<std::int64_t>(rng.bits())
                                                            : vocabulary_id(rng, f.size));
            }
          }
          e.bags.push_back(std::move(bag));
          break;
        }
      }
    }
  }
  return out;
}

// ---- the independent reference --------------------------------------------------------------

using Vec = std::vector<double>;

// hash.hpp's documented id hash: MurmurHash3 fmix64, then modulo the bucket count.
std::uint64_t fmix64(std::uint64_t u) {
  u ^= u >> 33;
  u *= 0xff51afd7ed558ccdull;
  u ^= u >> 33;
  u *= 0xc4ceb9fe1a85ec53ull;
  u ^= u >> 33;
  return u;
}

double activate(Activation a, double v) { return mtlite_test::act_exact(a, v); }

struct Reference {
  Reference(const Spec& s, const Weights& weights) : spec(s), w(weights) {}
  const Spec& spec;
  const Weights& w;
  // A deliberately wrong PLE variant (the shared gate mixing only the shared experts), used to
  // show that the comparison would catch that bug.
  bool buggy_shared_gate = false;
  // The softmax values of every gate of the last forward pass, by gate name.
  std::map<std::string, Vec> gates;
  // Per output of the last forward pass, the floor of its tolerance (see the top of the file).
  Vec floors;

  const mtlite::Tensor& tensor(const std::string& name) const {
    const auto it = w.find(name);
    if (it == w.end()) FAIL("reference: no tensor " << name);
    return it->second;
  }

  // act(W x + b) for the layer "<prefix>.weight" / "<prefix>.bias".
  Vec layer(const std::string& prefix, const Vec& x, Activation a) const {
    const mtlite::Tensor& W = tensor(prefix + ".weight");
    const mtlite::Tensor& B = tensor(prefix + ".bias");
    REQUIRE(W.shape.size() == 2);
    const std::size_t out = W.shape[0], in = W.shape[1];
    REQUIRE(in == x.size());
    REQUIRE(B.data.size() == out);
    Vec y(out);
    for (std::size_t o = 0; o < out; ++o) {
      double s = B.data[o];
      for (std::size_t i = 0; i < in; ++i) s += static_cast<double>(W.data[o * in + i]) * x[i];
      y[o] = activate(a, s);
    }
    return y;
  }

  Vec mlp(const std::string& name, const Mlp& layers, Vec x) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
      x = layer(name + "." + std::to_string(i), x, layers[i].activation);
    return x;
  }

  Vec gate(const std::string& name, const Vec& x) {
    Vec g = layer(name, x, Activation::identity);
    double m = g[0];
    for (double v : g) m = std::max(m, v);
    double s = 0.0;
    for (double& v : g) s += (v = std::exp(v - m));
    for (double& v : g) v /= s;
    gates[name] = g;
    return g;
  }

  static Vec mix(const Vec& g, const std::vector<const Vec*>& experts) {
    REQUIRE(g.size() == experts.size());
    Vec h(experts[0]->size(), 0.0);
    for (std::size_t e = 0; e < experts.size(); ++e) {
      REQUIRE(experts[e]->size() == h.size());
      for (std::size_t j = 0; j < h.size(); ++j) h[j] += g[e] * (*experts[e])[j];
    }
    return h;
  }

  // The score of task k; `magnitude` gets |b| + sum_i |w_i h_i| of the output layer.
  double tower(std::size_t k, const Vec& h, double& magnitude) const {
    const Task& t = spec.tasks[k];
    const std::string name = "tower" + std::to_string(k);
    const Vec hidden = mlp(name, t.tower, h);
    const std::string out = name + "." + std::to_string(t.tower.size());
    const Vec y =
        layer(out, hidden, t.kind == TaskKind::binary ? Activation::sigmoid : Activation::identity);
    REQUIRE(y.size() == 1);
    const mtlite::Tensor& W = tensor(out + ".weight");
    magnitude = std::fabs(tensor(out + ".bias").data[0]);
    for (std::size_t i = 0; i < hidden.size(); ++i) magnitude += std::fabs(W.data[i] * hidden[i]);
    return y[0];
  }

  static std::uint64_t row_of(const Feature& f, std::int64_t id) {
    if (f.mapping == IdMapping::hashing) return fmix64(static_cast<std::uint64_t>(id)) % f.size;
    if (id < 0 || static_cast<std::uint64_t>(id) >= f.size) return f.size;  // the OOV row
    return static_cast<std::uint64_t>(id);
  }

  // x = concat(embeddings of categorical and multi-hot features in spec order, dense values in
  // spec order).
  Vec input(const Example& e) const {
    Vec x;
    std::size_t next_id = 0, next_bag = 0;
    for (const Feature& f : spec.features) {
      if (f.kind == FeatureKind::dense) continue;
      const mtlite::Tensor& table = tensor("embedding." + f.name);
      REQUIRE(table.shape.size() == 2);
      REQUIRE(table.shape[0] == f.size + 1);
      REQUIRE(table.shape[1] == f.embedding_dim);
      const std::size_t dim = f.embedding_dim;
      Vec v(dim, 0.0);
      if (f.kind == FeatureKind::categorical) {
        const std::uint64_t row = row_of(f, e.ids[next_id++]);
        for (std::size_t d = 0; d < dim; ++d) v[d] = table.data[row * dim + d];
      } else {
        const std::vector<std::int64_t>& bag = e.bags[next_bag++];
        for (std::int64_t id : bag) {
          const std::uint64_t row = row_of(f, id);
          for (std::size_t d = 0; d < dim; ++d) v[d] += table.data[row * dim + d];
        }
        if (f.pooling == Pooling::mean && !bag.empty())
          for (double& d : v) d /= static_cast<double>(bag.size());
      }
      x.insert(x.end(), v.begin(), v.end());
    }
    std::size_t next_dense = 0;
    for (const Feature& f : spec.features) {
      if (f.kind != FeatureKind::dense) continue;
      const double v = e.dense[next_dense++];
      switch (f.normalization) {
        case Normalization::none:
          x.push_back(v);
          break;
        case Normalization::standardize:
          x.push_back((v - static_cast<double>(f.mean)) / static_cast<double>(f.stddev));
          break;
        case Normalization::log1p:
          x.push_back(v > 0 ? std::log(1.0 + v) : v < 0 ? -std::log(1.0 - v) : 0.0);
          break;
        case Normalization::log1p_standardize: {
          const double l = v > 0 ? std::log(1.0 + v) : v < 0 ? -std::log(1.0 - v) : 0.0;
          x.push_back((l - static_cast<double>(f.mean)) / static_cast<double>(f.stddev));
          break;
        }
      }
    }
    return x;
  }

  // Every served output: the tasks in order, then pCTCVR when there is an esmm block.
  Vec forward(const Example& e) {
    gates.clear();
    const Vec x = input(e);
    const std::size_t T = spec.tasks.size();
    std::vector<Vec> h(T, x);  // each tower's input
    switch (spec.architecture) {
      case Architecture::single_task:
      case Architecture::esmm:
        break;
      case Architecture::shared_bottom:
        h.assign(T, mlp("bottom", spec.bottom, x));
        break;
      case Architecture::omoe:
      case Architecture::mmoe: {
        std::vector<Vec> experts;
        for (std::uint32_t i = 0; i < spec.num_experts; ++i)
          experts.push_back(mlp("expert" + std::to_string(i), spec.expert, x));
        std::vector<const Vec*> ptrs;
        for (const Vec& f : experts) ptrs.push_back(&f);
        if (spec.architecture == Architecture::omoe) {
          h.assign(T, mix(gate("gate", x), ptrs));
        } else {
          for (std::size_t k = 0; k < T; ++k) h[k] = mix(gate("gate" + std::to_string(k), x), ptrs);
        }
        break;
      }
      case Architecture::ple: {
        Vec shared_in = x;
        std::vector<Vec> task_in(T, x);
        for (std::size_t l = 0; l < spec.levels.size(); ++l) {
          const mtlite::PleLevel& lv = spec.levels[l];
          const std::string L = "ple" + std::to_string(l);
          std::vector<std::vector<Vec>> own(T);
          std::vector<Vec> shared;
          // Task k's experts read task k's previous-level output (x at level 0).
          for (std::size_t k = 0; k < T; ++k)
            for (std::uint32_t j = 0; j < lv.task_experts; ++j)
              own[k].push_back(mlp(L + ".task" + std::to_string(k) + ".expert" + std::to_string(j),
                                   lv.expert, task_in[k]));
          // Shared experts read the previous level's shared gate output (x at level 0).
          for (std::uint32_t j = 0; j < lv.shared_experts; ++j)
            shared.push_back(mlp(L + ".shared.expert" + std::to_string(j), lv.expert, shared_in));
          std::vector<Vec> next(T);
          for (std::size_t k = 0; k < T; ++k) {
            std::vector<const Vec*> mine;
            for (const Vec& f : own[k]) mine.push_back(&f);
            for (const Vec& f : shared) mine.push_back(&f);
            next[k] = mix(gate(L + ".task" + std::to_string(k) + ".gate", task_in[k]), mine);
          }
          if (l + 1 < spec.levels.size()) {
            // The shared gate: every expert of the level, all tasks' experts then shared ones.
            std::vector<const Vec*> all;
            if (!buggy_shared_gate)
              for (std::size_t k = 0; k < T; ++k)
                for (const Vec& f : own[k]) all.push_back(&f);
            for (const Vec& f : shared) all.push_back(&f);
            Vec g = gate(L + ".shared.gate", shared_in);
            if (buggy_shared_gate) {
              // Renormalise the weights of the shared experts only.
              Vec gs(g.end() - static_cast<std::ptrdiff_t>(shared.size()), g.end());
              double s = 0.0;
              for (double v : gs) s += v;
              for (double& v : gs) v /= s;
              g = gs;
            }
            shared_in = mix(g, all);
          }
          task_in = std::move(next);
        }
        h = task_in;
        break;
      }
    }
    Vec y(T);
    floors.assign(T, kFloor);
    for (std::size_t k = 0; k < T; ++k) {
      double magnitude = 0.0;
      y[k] = tower(k, h[k], magnitude);
      if (spec.tasks[k].kind == TaskKind::regression) floors[k] = std::max(kFloor, magnitude);
    }
    if (spec.esmm) {
      int ctr = -1, cvr = -1;
      for (std::size_t k = 0; k < T; ++k) {
        if (spec.tasks[k].name == spec.esmm->ctr) ctr = static_cast<int>(k);
        if (spec.tasks[k].name == spec.esmm->cvr) cvr = static_cast<int>(k);
      }
      REQUIRE(ctr >= 0);
      REQUIRE(cvr >= 0);
      y.push_back(y[static_cast<std::size_t>(ctr)] * y[static_cast<std::size_t>(cvr)]);
      floors.push_back(kFloor);
    }
    return y;
  }
};

// ---- comparison -----------------------------------------------------------------------------

struct Mismatches {
  std::size_t count = 0, checked = 0;
  double worst = 0.0;  // largest |got - want| / max(|want|, floor)
  std::ostringstream first;

  void check(double got, double want, double floor, const std::string& what) {
    ++checked;
    const double rel = std::fabs(got - want) / std::max(std::fabs(want), floor);
    if (!(rel <= worst)) worst = rel;  // also catches NaN
    if (close(got, want, floor)) return;
    if (count++ < 8) first << "  " << what << ": got " << got << ", reference " << want << "\n";
  }
};

struct Options {
  std::size_t rows = 97;
  std::uint64_t seed = 1;
  bool buggy_shared_gate = false;
};

Options rows_seed(std::size_t rows, std::uint64_t seed) {
  Options o;
  o.rows = rows;
  o.seed = seed;
  return o;
}

// Scores and gate weights of `rows` random examples, runtime vs reference. Returns the number
// of values that disagree (0 when they all agree).
std::size_t compare_with_reference(const Spec& spec, const Options& opt = {}) {
  const Weights w = mtlite::random_weights(spec, opt.seed, 0.1f);
  const Model model(spec, w);
  Session session(model, opt.rows, /*keep_gates=*/true);
  const std::vector<Example> examples = make_examples(spec, opt.rows, opt.seed * 7919 + 3);
  const BatchData data(examples, 0, opt.rows);
  const mtlite::Status st = session.predict(data.batch());
  INFO("predict: " << std::string(st.message()));
  REQUIRE(st.ok());
  REQUIRE(session.rows() == opt.rows);
  REQUIRE(model.num_outputs() == spec.tasks.size() + (spec.esmm ? 1u : 0u));

  Reference ref(spec, w);
  ref.buggy_shared_gate = opt.buggy_shared_gate;
  Mismatches mm;
  std::size_t bad_sums = 0, missing_gates = 0;
  for (std::size_t r = 0; r < opt.rows; ++r) {
    const Vec want = ref.forward(examples[r]);
    REQUIRE(want.size() == model.num_outputs());
    for (std::size_t o = 0; o < want.size(); ++o)
      mm.check(session.score(o, r), want[o], ref.floors[o],
               "row " + std::to_string(r) + " output " + model.output_name(o));
    // Every gate the runtime reports is one the reference computed, and vice versa.
    if (model.num_gates() != ref.gates.size()) ++missing_gates;
    for (std::size_t g = 0; g < model.num_gates(); ++g) {
      const auto it = ref.gates.find(model.gate_name(g));
      if (it == ref.gates.end()) {
        ++missing_gates;
        continue;
      }
      const mtlite::span<const float> got = session.gate(g, r);
      if (got.size() != it->second.size()) {
        ++missing_gates;
        continue;
      }
      double sum = 0.0;
      for (std::size_t e = 0; e < got.size(); ++e) {
        sum += got[e];
        mm.check(got[e], it->second[e], kFloor,
                 "row " + std::to_string(r) + " gate " + model.gate_name(g) + "[" +
                     std::to_string(e) + "]");
      }
      if (!(std::fabs(sum - 1.0) <= 1e-5)) ++bad_sums;
    }
  }
  if (!opt.buggy_shared_gate) {
    INFO("architecture " << std::string(mtlite::to_string(spec.architecture)) << ", " << mm.checked
                         << " values, worst relative error " << mm.worst << "\n"
                         << mm.first.str());
    CHECK(mm.count == 0);
    CHECK(bad_sums == 0);
    CHECK(missing_gates == 0);
    CHECK(mm.worst < kRelTol);
  }
  return mm.count;
}

// ---- specs ----------------------------------------------------------------------------------

Mlp layers(std::initializer_list<mtlite::Layer> l) { return Mlp(l); }

// Every feature kind: dense with each normalisation (and the chain), vocabulary and hashed categorical,
// multi-hot with sum and mean pooling (vocabulary and hashed).
std::vector<Feature> mixed_features() {
  return {
      Feature::dense("age", Normalization::standardize, 31.5f, 9.25f),
      Feature::categorical("country", 11, 3),
      Feature::dense("price", Normalization::log1p),
      Feature::multi_hot("tags", 17, 5, Pooling::mean),
      Feature::dense("score"),
      Feature::hashed("user", 101, 5),
      Feature::multi_hot("history", 23, 3, Pooling::sum, IdMapping::hashing),
      Feature::multi_hot("topics", 9, 3, Pooling::sum),
      Feature::dense("hour", Normalization::standardize, -2.0f, 0.5f),
      Feature::dense("spend", Normalization::log1p_standardize, 1.25f, 0.75f),  // ["log1p", "standardize"]
  };
}

Task task(const std::string& name, Mlp tower, TaskKind kind = TaskKind::binary) {
  Task t;
  t.name = name;
  t.kind = kind;
  t.tower = std::move(tower);
  return t;
}

// Three tasks: binary with two hidden layers, regression with none, binary with one.
std::vector<Task> mixed_tasks() {
  return {
      task("click", layers({{7, Activation::relu}, {13, Activation::tanh}})),
      task("watch", {}, TaskKind::regression),
      task("like", layers({{5, Activation::sigmoid}})),
  };
}

Spec base_spec(Architecture a) {
  Spec s;
  s.features = mixed_features();
  s.tasks = mixed_tasks();
  s.architecture = a;
  return s;
}

mtlite::PleLevel level(std::uint32_t task_experts, std::uint32_t shared_experts, Mlp expert) {
  mtlite::PleLevel l;
  l.task_experts = task_experts;
  l.shared_experts = shared_experts;
  l.expert = std::move(expert);
  return l;
}

bool same_bits(float a, float b) {
  std::uint32_t x, y;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  return x == y;
}

// A batch of N rows gives bit for bit the scores (and gate weights) of N one-row predictions.
void check_batch_equals_rows(const Model& model, std::uint64_t seed) {
  const Spec& spec = model.spec();
  Session batched(model, 200, true);
  Session single(model, 200, true);
  Session tiny(model, 1, true);  // a session whose chunk is one row
  const std::vector<Example> examples = make_examples(spec, 200, seed + 17);
  for (std::size_t n : {1u, 5u, 64u, 65u, 200u}) {
    CAPTURE(n);
    const BatchData all(examples, 0, n);
    REQUIRE(batched.predict(all.batch()).ok());
    REQUIRE(batched.rows() == n);
    std::size_t differ = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const BatchData one(examples, r, 1);
      REQUIRE(single.predict(one.batch()).ok());
      REQUIRE(tiny.predict(one.batch()).ok());
      for (std::size_t o = 0; o < model.num_outputs(); ++o) {
        differ += !same_bits(batched.score(o, r), single.score(o, 0));
        differ += !same_bits(batched.score(o, r), tiny.score(o, 0));
      }
      for (std::size_t g = 0; g < model.num_gates(); ++g) {
        const auto a = batched.gate(g, r), b = single.gate(g, 0);
        REQUIRE(a.size() == b.size());
        for (std::size_t e = 0; e < a.size(); ++e) differ += !same_bits(a[e], b[e]);
      }
    }
    CHECK(differ == 0);
    // And the scores span covers exactly the rows.
    CHECK(batched.scores(0).size() == n);
  }
}

void check_batch_equals_rows(const Spec& spec, std::uint64_t seed) {
  const Weights w = mtlite::random_weights(spec, seed, 0.1f);
  check_batch_equals_rows(Model(spec, w), seed);
}

}  // namespace

// ---- architectures --------------------------------------------------------------------------

TEST_CASE("single_task matches the reference") {
  Spec s = base_spec(Architecture::single_task);
  compare_with_reference(s);
}

TEST_CASE("shared_bottom matches the reference") {
  Spec s = base_spec(Architecture::shared_bottom);
  s.bottom = layers({{33, Activation::relu}, {13, Activation::tanh}, {7, Activation::identity}});
  compare_with_reference(s);
  SUBCASE("towers without hidden layers (fused into one layer)") {
    for (Task& t : s.tasks) t.tower.clear();
    compare_with_reference(s, rows_seed(61, 5));
  }
}

TEST_CASE("omoe matches the reference") {
  Spec s = base_spec(Architecture::omoe);
  s.num_experts = 3;
  s.expert = layers({{7, Activation::relu}});  // one-layer experts
  compare_with_reference(s);
  SUBCASE("a single expert") {
    s.num_experts = 1;
    compare_with_reference(s, rows_seed(40, 9));
  }
}

TEST_CASE("mmoe matches the reference") {
  Spec s = base_spec(Architecture::mmoe);
  s.num_experts = 5;
  s.expert = layers({{33, Activation::relu}, {13, Activation::tanh}});  // two-layer experts
  compare_with_reference(s);
  SUBCASE("three-layer sigmoid/identity experts, 17 of them") {
    s.num_experts = 17;
    s.expert =
        layers({{13, Activation::sigmoid}, {7, Activation::identity}, {5, Activation::relu}});
    compare_with_reference(s, rows_seed(70, 2));
  }
}

TEST_CASE("ple with one level (CGC) matches the reference") {
  Spec s = base_spec(Architecture::ple);
  s.levels = {
      level(2, 1, layers({{13, Activation::relu}, {7, Activation::tanh}, {5, Activation::relu}}))};
  compare_with_reference(s);
  SUBCASE("shared experts only") {
    s.levels = {level(0, 3, layers({{7, Activation::relu}}))};
    compare_with_reference(s, rows_seed(50, 4));
  }
  SUBCASE("task experts only") {
    s.levels = {level(2, 0, layers({{7, Activation::tanh}}))};
    compare_with_reference(s, rows_seed(50, 6));
  }
}

TEST_CASE("ple with two levels matches the reference (shared gate between the levels)") {
  Spec s = base_spec(Architecture::ple);
  s.levels = {level(1, 2, layers({{13, Activation::relu}})),
              level(2, 1, layers({{7, Activation::tanh}, {5, Activation::relu}}))};
  compare_with_reference(s);
  // The comparison is sensitive to the shared gate: a reference whose shared gate mixes only the
  // shared experts (a bug several libraries have) disagrees with the runtime.
  Options o;
  o.buggy_shared_gate = true;
  CHECK(compare_with_reference(s, o) > 0);
}

TEST_CASE("ple with three levels matches the reference") {
  Spec s = base_spec(Architecture::ple);
  s.levels = {level(2, 1, layers({{33, Activation::relu}})),
              level(1, 2, layers({{13, Activation::sigmoid}, {7, Activation::relu}})),
              level(2, 1, layers({{5, Activation::tanh}}))};
  compare_with_reference(s);
  SUBCASE("levels without task or without shared experts") {
    // Level 1 has no shared experts: its shared gate mixes the task experts only, and level 2's
    // shared experts read that. Level 2 has no task experts: task gates mix shared experts only.
    s.levels = {level(1, 1, layers({{13, Activation::relu}})),
                level(2, 0, layers({{7, Activation::tanh}})),
                level(0, 2, layers({{5, Activation::identity}, {3, Activation::relu}}))};
    compare_with_reference(s, rows_seed(66, 8));
  }
  SUBCASE("two tasks") {
    s.tasks.pop_back();
    compare_with_reference(s, rows_seed(66, 10));
  }
}

TEST_CASE("esmm serves pCTR, pCVR and pCTCVR = pCTR * pCVR") {
  Spec s;
  s.features = mixed_features();
  // cvr is listed first so that the esmm block's names, not task order, pick the tasks.
  s.tasks = {task("cvr", layers({{13, Activation::tanh}, {5, Activation::relu}})),
             task("ctr", layers({{7, Activation::relu}}))};
  s.architecture = Architecture::esmm;
  s.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
  compare_with_reference(s);

  const Weights w = mtlite::random_weights(s, 3, 0.1f);
  const Model model(s, w);
  REQUIRE(model.num_outputs() == 3);
  REQUIRE(model.output_index("ctcvr") == 2);
  Session session(model, 33);
  const auto examples = make_examples(s, 33, 99);
  const BatchData data(examples, 0, 33);
  REQUIRE(session.predict(data.batch()).ok());
  const std::size_t ctr = static_cast<std::size_t>(model.output_index("ctr"));
  const std::size_t cvr = static_cast<std::size_t>(model.output_index("cvr"));
  for (std::size_t r = 0; r < 33; ++r)
    CHECK(same_bits(session.score(2, r), session.score(ctr, r) * session.score(cvr, r)));

  SUBCASE("towers without hidden layers") {
    for (Task& t : s.tasks) t.tower.clear();
    compare_with_reference(s, rows_seed(45, 12));
  }
}

TEST_CASE("esmm on top of mmoe") {
  Spec s = base_spec(Architecture::mmoe);
  s.num_experts = 3;
  s.expert = layers({{13, Activation::relu}, {7, Activation::relu}});
  s.tasks = {task("ctr", layers({{7, Activation::relu}})), task("dwell", {}, TaskKind::regression),
             task("cvr", {})};
  s.esmm = mtlite::Esmm{"ctr", "cvr", "purchase"};
  compare_with_reference(s);
  const Model model(s, mtlite::random_weights(s, 1, 0.1f));
  CHECK(model.output_index("purchase") == 3);
}

TEST_CASE("esmm on top of ple") {
  Spec s = base_spec(Architecture::ple);
  s.levels = {level(1, 1, layers({{7, Activation::relu}})),
              level(1, 1, layers({{5, Activation::tanh}}))};
  s.tasks = {task("ctr", {}), task("cvr", layers({{3, Activation::relu}}))};
  s.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
  compare_with_reference(s);
}

TEST_CASE("dense-only and embedding-only inputs") {
  SUBCASE("dense only") {
    Spec s;
    for (int i = 0; i < 19; ++i) s.features.push_back(Feature::dense("d" + std::to_string(i)));
    s.tasks = mixed_tasks();
    s.architecture = Architecture::mmoe;
    s.num_experts = 4;
    s.expert = layers({{33, Activation::relu}});
    compare_with_reference(s);
  }
  SUBCASE("embeddings only") {
    Spec s;
    s.features = {Feature::categorical("a", 5, 3), Feature::multi_hot("b", 7, 5, Pooling::mean)};
    s.tasks = mixed_tasks();
    s.architecture = Architecture::shared_bottom;
    s.bottom = layers({{7, Activation::tanh}});
    compare_with_reference(s);
  }
}

// ---- batch = rows ---------------------------------------------------------------------------

TEST_CASE("a batch of N rows equals N single-row predictions bit for bit") {
  SUBCASE("mmoe with embeddings and bags") {
    Spec s = base_spec(Architecture::mmoe);
    s.num_experts = 17;  // gates wider than one vector
    s.expert = layers({{33, Activation::relu}, {13, Activation::tanh}});
    check_batch_equals_rows(s, 21);
  }
  SUBCASE("ple, two levels") {
    Spec s = base_spec(Architecture::ple);
    s.levels = {level(1, 2, layers({{13, Activation::relu}})),
                level(2, 1, layers({{7, Activation::tanh}, {5, Activation::relu}}))};
    check_batch_equals_rows(s, 22);
  }
  SUBCASE("single_task with esmm") {
    Spec s;
    s.features = mixed_features();
    s.tasks = {task("ctr", layers({{33, Activation::sigmoid}})), task("cvr", {})};
    s.architecture = Architecture::esmm;
    s.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
    check_batch_equals_rows(s, 23);
  }
  SUBCASE("the reference model") { check_batch_equals_rows(mtlite::benchmark_spec(), 24); }
  SUBCASE("the reference model with f16 and int8 weights, as mtlite convert makes them") {
    // The int8 kernels run one-row tiles for a batch of 1 and multi-row tiles otherwise.
    const Spec s = mtlite::benchmark_spec();
    for (const auto dense : {mtlite::kernels::WeightType::f16, mtlite::kernels::WeightType::i8}) {
      CAPTURE(static_cast<int>(dense));
      mtlite::ConvertOptions options;
      options.dense = dense;
      check_batch_equals_rows(mtlite::convert(s, mtlite::random_weights(s, 25, 0.1f), options).model(), 25);
    }
  }
}

// ---- the reference model --------------------------------------------------------------------

TEST_CASE("the reference model: 820,635 parameters, predictions match") {
  const Spec s = mtlite::benchmark_spec();
  CHECK(mtlite::parameter_count(s) == 820635);
  // Counted independently from docs/performance.md's description: 8 experts 256->256->128, 3 gates
  // 256->8, 3 towers 128->64->1.
  const std::uint64_t by_hand = 8 * ((256 * 256 + 256) + (256 * 128 + 128)) + 3 * (256 * 8 + 8) +
                                3 * ((128 * 64 + 64) + (64 * 1 + 1));
  CHECK(by_hand == 820635);
  const Weights w = mtlite::random_weights(s, 5, 0.1f);
  std::uint64_t stored = 0;
  for (const auto& kv : w) stored += kv.second.data.size();
  CHECK(stored == 820635);
  const Model model(s, w);
  CHECK(model.parameter_count() == 820635);
  CHECK(model.input_dim() == 256);
  CHECK(model.num_gates() == 3);
  compare_with_reference(s, rows_seed(70, 5));
}

// ---- gates ----------------------------------------------------------------------------------

TEST_CASE("gate weights: names, widths, sum to one; empty without keep_gates") {
  Spec s = base_spec(Architecture::ple);
  s.levels = {level(2, 1, layers({{7, Activation::relu}})),
              level(1, 3, layers({{5, Activation::relu}})),
              level(1, 1, layers({{3, Activation::relu}}))};
  const Model model(s, mtlite::random_weights(s, 4, 0.1f));
  // Per level: one gate per task (task_experts + shared_experts wide) and, but for the last
  // level, a shared gate over tasks x task_experts + shared_experts.
  std::map<std::string, std::size_t> want = {
      {"ple0.task0.gate", 3},  {"ple0.task1.gate", 3},  {"ple0.task2.gate", 3},
      {"ple0.shared.gate", 7}, {"ple1.task0.gate", 4},  {"ple1.task1.gate", 4},
      {"ple1.task2.gate", 4},  {"ple1.shared.gate", 6}, {"ple2.task0.gate", 2},
      {"ple2.task1.gate", 2},  {"ple2.task2.gate", 2}};
  std::map<std::string, std::size_t> got;
  for (std::size_t g = 0; g < model.num_gates(); ++g) got[model.gate_name(g)] = model.gate_width(g);
  CHECK(got == want);

  const auto examples = make_examples(s, 9, 1);
  const BatchData data(examples, 0, 9);
  Session kept(model, 9, true), plain(model, 9, false);
  REQUIRE(kept.predict(data.batch()).ok());
  REQUIRE(plain.predict(data.batch()).ok());
  for (std::size_t r = 0; r < 9; ++r) {
    for (std::size_t o = 0; o < model.num_outputs(); ++o)
      CHECK(same_bits(kept.score(o, r), plain.score(o, r)));
    for (std::size_t g = 0; g < model.num_gates(); ++g) {
      CHECK(plain.gate(g, r).empty());
      const auto v = kept.gate(g, r);
      REQUIRE(v.size() == model.gate_width(g));
      double sum = 0.0;
      for (float x : v) {
        CHECK(x >= 0.0f);
        CHECK(x <= 1.0f);
        sum += x;
      }
      CHECK(std::fabs(sum - 1.0) <= 1e-5);
    }
  }
}

TEST_CASE("experts start from different weights") {
  Spec s = base_spec(Architecture::mmoe);
  s.num_experts = 3;
  s.expert = layers({{7, Activation::relu}});
  const Weights w = mtlite::random_weights(s, 1, 0.1f);
  CHECK(w.at("expert0.0.weight").data != w.at("expert1.0.weight").data);
  CHECK(w.at("expert1.0.weight").data != w.at("expert2.0.weight").data);
  CHECK(w.at("expert0.0.bias").data != w.at("expert1.0.bias").data);
}
