// predict allocates nothing: every global operator new is replaced by a counting one (this file
// is its own program for that reason), models and sessions are built first, and the count may
// not move across predict calls of every kind, successful or not.
//
// The replacements forward to malloc / aligned_alloc and the matching deletes to free, so they
// also work under AddressSanitizer (its malloc and free see matching pairs).
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "counting_new.hpp"

namespace {

using mtlite::Feature;
using mtlite::Model;
using mtlite::Session;
using mtlite::Spec;
using mtlite::StatusCode;

struct BatchData {
  std::size_t rows = 0;
  std::vector<float> dense;
  std::vector<std::int64_t> ids;
  std::vector<std::vector<std::int64_t>> bag_ids;
  std::vector<std::vector<std::uint32_t>> offsets;
  std::vector<mtlite::Bag> bags;

  // Points `bags` at the vectors; call before batch(), outside the counted region.
  void bind() {
    bags.clear();
    for (std::size_t b = 0; b < bag_ids.size(); ++b)
      bags.push_back({bag_ids[b], offsets[b]});
  }
  mtlite::Batch batch() const noexcept { return {rows, dense, ids, bags}; }
};

// Rows of random inputs; every fifth bag is long (150 ids, past the gather's 64-id blocks),
// every fourth is empty.
BatchData make_batch(const Spec& spec, std::size_t rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  BatchData b;
  b.rows = rows;
  for (const Feature& f : spec.features)
    if (f.kind == mtlite::FeatureKind::multi_hot) {
      b.bag_ids.emplace_back();
      b.offsets.push_back({0});
    }
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t bag = 0;
    for (const Feature& f : spec.features) {
      switch (f.kind) {
        case mtlite::FeatureKind::dense:
          b.dense.push_back(static_cast<float>(static_cast<double>(rng() % 2001) / 1000.0 - 1.0));
          break;
        case mtlite::FeatureKind::categorical:
          b.ids.push_back(static_cast<std::int64_t>(rng() % (f.size + 3)) - 1);
          break;
        case mtlite::FeatureKind::multi_hot: {
          const std::size_t len = r % 5 == 0 ? 150 : r % 4 == 0 ? 0 : rng() % 6;
          for (std::size_t i = 0; i < len; ++i)
            b.bag_ids[bag].push_back(static_cast<std::int64_t>(rng() % (f.size + 2)) - 1);
          b.offsets[bag].push_back(static_cast<std::uint32_t>(b.bag_ids[bag].size()));
          ++bag;
          break;
        }
      }
    }
  }
  b.bind();
  return b;
}

Spec with_embeddings(mtlite::Architecture a) {
  Spec s;
  s.features = {
      Feature::dense("a", mtlite::Normalization::standardize, 1.0f, 2.0f),
      Feature::categorical("country", 40, 5),
      Feature::multi_hot("tags", 100, 8, mtlite::Pooling::mean),
      Feature::hashed("item", 1000, 16),
      Feature::dense("b", mtlite::Normalization::log1p),
      Feature::multi_hot("history", 500, 19, mtlite::Pooling::sum, mtlite::IdMapping::hashing)};
  for (const char* name : {"ctr", "cvr", "dwell"}) {
    mtlite::Task t;
    t.name = name;
    t.tower = mtlite::mlp({13});
    s.tasks.push_back(t);
  }
  s.tasks[2].kind = mtlite::TaskKind::regression;
  s.architecture = a;
  s.num_experts = 5;
  s.expert = mtlite::mlp({48, 33});
  mtlite::PleLevel lv;
  lv.task_experts = 2;
  lv.shared_experts = 1;
  lv.expert = mtlite::mlp({21});
  s.levels = {lv, lv, lv};
  s.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
  return s;
}

// Counts the operator new calls of a batch of predicts (and of reading their results). Only
// plain variables are touched between the two reads of the counter.
struct Probe {
  explicit Probe(Session& s) : session(s) {}
  Session& session;
  std::size_t allocated = 0, failed = 0, scored = 0;
  float sink = 0.0f;

  void predict(const mtlite::Batch& batch, bool should_succeed) {
    const std::size_t before = allocations();
    const mtlite::Status st = session.predict(batch);
    if (st.ok()) {
      for (std::size_t o = 0; o < session.model().num_outputs(); ++o)
        for (float v : session.scores(o)) sink += v;
      for (std::size_t g = 0; g < session.model().num_gates(); ++g)
        for (std::size_t r = 0; r < session.rows(); ++r)
          for (float v : session.gate(g, r)) sink += v;
      scored += session.rows();
    }
    const std::size_t after = allocations();
    allocated += after - before;
    failed += st.ok() != should_succeed;
  }
};

}  // namespace

TEST_CASE("the counter counts") {
  const std::size_t a0 = allocations();
  {
    std::vector<int> v(100);
    v[3] = 1;
  }
  const std::size_t a1 = allocations();
  CHECK(a1 == a0 + 1);
  {
    auto p = std::make_unique<int[]>(7);
    p[0] = 1;
  }
  const std::size_t a2 = allocations();
  CHECK(a2 == a1 + 1);
  struct alignas(128) Wide {
    float x[32];
  };
  {
    auto p = std::make_unique<Wide>();
    p->x[0] = 1.0f;
  }
  const std::size_t a3 = allocations();
  CHECK(a3 == a2 + 1);
  {
    int* p = new (std::nothrow) int(5);
    delete p;
  }
  const std::size_t a4 = allocations();
  CHECK(a4 == a3 + 1);
  {
    mtlite::AlignedBuffer<float> b(100);
    b[0] = 1.0f;
  }
  const std::size_t a5 = allocations();
  CHECK(a5 == a4 + 1);
  {
    std::string s(200, 'x');
    s[0] = 'y';
  }
  const std::size_t a6 = allocations();
  CHECK(a6 == a5 + 1);
}

TEST_CASE("building models and sessions may allocate") {
  const std::size_t before = allocations();
  const Spec s = mtlite::benchmark_spec();
  const Model model(s, mtlite::random_weights(s, 1));
  Session session(model, 64);
  CHECK(allocations() > before);
}

TEST_CASE("predict performs zero heap allocations") {
  struct Case {
    const char* name;
    Spec spec;
  };
  std::vector<Case> cases;
  cases.push_back({"reference", mtlite::benchmark_spec()});
  cases.push_back({"mmoe+esmm with embeddings", with_embeddings(mtlite::Architecture::mmoe)});
  cases.push_back({"ple x3 + esmm with embeddings", with_embeddings(mtlite::Architecture::ple)});
  cases.push_back({"shared_bottom", with_embeddings(mtlite::Architecture::shared_bottom)});
  cases.back().spec.bottom = mtlite::mlp({40});
  cases.push_back({"single_task", with_embeddings(mtlite::Architecture::single_task)});
  cases.push_back({"omoe", with_embeddings(mtlite::Architecture::omoe)});

  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    const Model model(c.spec, mtlite::random_weights(c.spec, 7, 0.1f));
    std::vector<BatchData> good;
    for (std::size_t rows : {1u, 64u, 200u, 65u, 0u, 3u})
      good.push_back(make_batch(c.spec, rows, rows));

    for (bool keep_gates : {false, true}) {
      CAPTURE(keep_gates);
      Session session(model, 200, keep_gates);
      Probe probe(session);
      for (const BatchData& b : good) probe.predict(b.batch(), true);
      CHECK(probe.failed == 0);
      CHECK(probe.scored == 1 + 64 + 200 + 65 + 3);
      CHECK(probe.allocated == 0);

      // The one-row overload (only for models without bags).
      if (c.spec.count(mtlite::FeatureKind::multi_hot) == 0) {
        const std::size_t before = allocations();
        const mtlite::Status st = session.predict(good[0].batch().dense, good[0].batch().ids);
        const std::size_t after = allocations();
        CHECK(st.ok());
        CHECK(after == before);
      }
    }

    // Predicts that fail: every check's error path formats its message without allocating.
    Session session(model, 64, true);
    Probe probe(session);
    const BatchData& b = good[3];  // 65 rows: too many for this session
    probe.predict(b.batch(), false);
    mtlite::Batch small = good[5].batch();  // 3 rows
    mtlite::Batch bad = small;
    bad.dense = {small.dense.data(), small.dense.size() - 1};
    probe.predict(bad, false);
    bad = small;
    bad.ids = {small.ids.data(), small.ids.size() ? small.ids.size() - 1 : 1};
    probe.predict(bad, false);
    bad = small;
    bad.bags = {small.bags.data(), small.bags.size() + 1};
    if (small.bags.size()) probe.predict(bad, false);
    BatchData spoiled = make_batch(c.spec, 3, 99);
    spoiled.dense[1] = std::numeric_limits<float>::quiet_NaN();
    spoiled.bind();
    probe.predict(spoiled.batch(), false);
    spoiled.dense[1] = std::numeric_limits<float>::infinity();
    probe.predict(spoiled.batch(), false);
    if (!spoiled.offsets.empty()) {
      spoiled = make_batch(c.spec, 3, 98);
      spoiled.offsets[0][2] = spoiled.offsets[0][3] + 1;  // decreasing
      spoiled.bind();
      probe.predict(spoiled.batch(), false);
      spoiled = make_batch(c.spec, 3, 98);
      spoiled.offsets[0][3] =
          static_cast<std::uint32_t>(spoiled.bag_ids[0].size() + 5);  // past the ids
      spoiled.bind();
      probe.predict(spoiled.batch(), false);
      spoiled.offsets[0].pop_back();  // wrong length
      spoiled.bind();
      probe.predict(spoiled.batch(), false);
    }
    // And a good one after the failures.
    probe.predict(good[1].batch(), true);
    CHECK(probe.failed == 0);
    CHECK(probe.allocated == 0);
  }
}
