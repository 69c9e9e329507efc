// Many threads share one Model, each with its own Session: every thread's results are bit for
// bit those of the same batches run one after another on one thread.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using mtlite::Feature;
using mtlite::Model;
using mtlite::Session;
using mtlite::Spec;

constexpr std::size_t kThreads = 4;

// One batch in the layout predict reads, with its own storage.
struct BatchData {
  std::size_t rows = 0;
  std::vector<float> dense;
  std::vector<std::int64_t> ids;
  std::vector<std::vector<std::int64_t>> bag_ids;
  std::vector<std::vector<std::uint32_t>> offsets;
  std::vector<mtlite::Bag> bags;

  mtlite::Batch batch() {
    bags.clear();
    for (std::size_t b = 0; b < bag_ids.size(); ++b)
      bags.push_back({bag_ids[b], offsets[b]});
    return {rows, dense, ids, bags};
  }
};

BatchData make_batch(const Spec& spec, std::size_t rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](double lo, double hi) {
    return static_cast<float>(lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1p-53);
  };
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
          b.dense.push_back(uniform(-3.0, 3.0));
          break;
        case mtlite::FeatureKind::categorical:
          b.ids.push_back(static_cast<std::int64_t>(rng() % (f.size + 3)) - 1);
          break;
        case mtlite::FeatureKind::multi_hot: {
          const std::size_t len = rng() % 7;
          for (std::size_t i = 0; i < len; ++i)
            b.bag_ids[bag].push_back(static_cast<std::int64_t>(rng() % (f.size + 2)));
          b.offsets[bag].push_back(static_cast<std::uint32_t>(b.bag_ids[bag].size()));
          ++bag;
          break;
        }
      }
    }
  }
  return b;
}

// All scores of one predict, in order output by output, plus the gate weights when kept.
std::vector<float> run(Session& session, BatchData& data) {
  const mtlite::Status st = session.predict(data.batch());
  std::vector<float> out;
  if (!st) return out;
  const Model& model = session.model();
  for (std::size_t o = 0; o < model.num_outputs(); ++o) {
    const auto s = session.scores(o);
    out.insert(out.end(), s.begin(), s.end());
  }
  for (std::size_t r = 0; r < session.rows(); ++r)
    for (std::size_t g = 0; g < model.num_gates(); ++g) {
      const auto v = session.gate(g, r);
      out.insert(out.end(), v.begin(), v.end());
    }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Runs `per_thread` batches (sizes cycling through odd values, up to max_batch) per thread, on
// kThreads threads at once, and compares with the same batches on this thread.
void check_threads(const Spec& spec, std::size_t per_thread, int repeats, std::size_t max_batch,
                   bool keep_gates) {
  const Model model(spec, mtlite::random_weights(spec, 11, 0.1f));
  static const std::size_t sizes[] = {1, 7, 64, 65, 3, 130, 2, 33, 200, 1, 96, 5};
  std::vector<std::vector<BatchData>> batches(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t)
    for (std::size_t i = 0; i < per_thread; ++i) {
      std::size_t rows = sizes[(t * 5 + i) % (sizeof sizes / sizeof sizes[0])];
      if (rows > max_batch) rows = max_batch;
      batches[t].push_back(make_batch(spec, rows, 1000 * t + i));
    }

  // One thread, one session, all batches in turn.
  std::vector<std::vector<std::vector<float>>> want(kThreads);
  {
    Session session(model, max_batch, keep_gates);
    for (std::size_t t = 0; t < kThreads; ++t)
      for (BatchData& b : batches[t]) {
        want[t].push_back(run(session, b));
        REQUIRE(!want[t].back().empty());
      }
  }

  // kThreads threads at once, a session each; each runs its batches `repeats` times over so
  // that the threads overlap for a while.
  std::vector<std::size_t> mismatches(kThreads, 0), failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Session session(model, max_batch, keep_gates);
      for (int rep = 0; rep < repeats; ++rep)
        for (std::size_t i = 0; i < batches[t].size(); ++i) {
          // Odd repeats go backwards: a session's state never depends on what it ran before.
          const std::size_t j = rep % 2 ? batches[t].size() - 1 - i : i;
          BatchData copy = batches[t][j];  // each thread reads its own inputs
          const std::vector<float> got = run(session, copy);
          if (got.empty())
            ++failures[t];
          else if (!same_bits(got, want[t][j]))
            ++mismatches[t];
        }
    });
  for (std::thread& th : threads) th.join();
  for (std::size_t t = 0; t < kThreads; ++t) {
    CAPTURE(t);
    CHECK(failures[t] == 0);
    CHECK(mismatches[t] == 0);
  }
}

Spec mmoe_with_embeddings() {
  Spec s;
  s.features = {
      Feature::dense("a", mtlite::Normalization::standardize, 1.0f, 2.0f),
      Feature::categorical("country", 40, 5),
      Feature::multi_hot("tags", 100, 8, mtlite::Pooling::mean),
      Feature::hashed("item", 1000, 16),
      Feature::dense("b", mtlite::Normalization::log1p),
      Feature::multi_hot("history", 500, 16, mtlite::Pooling::sum, mtlite::IdMapping::hashing)};
  for (const char* name : {"click", "like", "share"}) {
    mtlite::Task t;
    t.name = name;
    t.tower = mtlite::mlp({13});
    s.tasks.push_back(t);
  }
  s.architecture = mtlite::Architecture::mmoe;
  s.num_experts = 6;
  s.expert = mtlite::mlp({64, 33});
  return s;
}

}  // namespace

TEST_CASE("threads share the reference model") {
  check_threads(mtlite::benchmark_spec(), 6, 2, 200, false);
}

TEST_CASE("threads share an MMoE with embeddings and bags; gates kept") {
  check_threads(mmoe_with_embeddings(), 24, 3, 200, true);
}

TEST_CASE("threads with sessions smaller than a chunk") {
  check_threads(mmoe_with_embeddings(), 12, 3, 17, false);
}
