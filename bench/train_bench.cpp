// Training speed: one Trainer::step per iteration on the census-income MMoE of the MMoE paper
// (Ma et al. 2018), on random data shaped like census-income:
//   7 dense features (standardised), 33 categorical features with census-like vocabularies
//   and 4-dim embeddings (x: 139 floats); 8 experts of one 16-unit ReLU layer; 2 binary tasks
//   (income, marital status) with a softmax gate each and towers of 8 units; Adam.
// Cases: batch 256 and 1024, 1 and 2 threads; also the balancing methods that need per-task
// gradients (MetaBalance, GradNorm) at batch 1024. Counters: rows/s (items_per_second) and
// steps/s. The aim is >= 3x PyTorch 1.13's samples/s on the same model (docs/performance.md).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <mtlite/core/random.hpp>
#include <mtlite/offline/train/train.hpp>
#include <string>
#include <vector>

namespace {

using mtlite::train::BalanceMethod;
using mtlite::train::Trainer;
using mtlite::train::TrainOptions;

// Vocabulary sizes of census-income's categorical fields (the 31 of the MMoE paper plus two).
constexpr std::uint64_t kVocab[33] = {9, 52, 47, 17, 3, 7, 24, 15, 5, 10, 2, 3, 6, 8, 6, 6, 51,
                                      38, 8, 10, 9, 10, 3, 4, 7, 5, 43, 43, 43, 5, 3, 3, 3};

mtlite::Spec census_mmoe() {
  mtlite::Spec s;
  for (int i = 0; i < 33; ++i)
    s.features.push_back(mtlite::Feature::categorical("c" + std::to_string(i), kVocab[i], 4));
  for (int i = 0; i < 7; ++i)
    s.features.push_back(mtlite::Feature::dense("d" + std::to_string(i), mtlite::Normalization::standardize, 0.0f, 1.0f));
  s.architecture = mtlite::Architecture::mmoe;
  s.num_experts = 8;
  s.expert = mtlite::mlp({16});
  for (const char* name : {"income", "marital"}) {
    mtlite::Task t;
    t.name = name;
    t.tower = mtlite::mlp({8});
    s.tasks.push_back(t);
  }
  return s;
}

// Batches of random rows: ids uniform over the vocabulary (now and then out of it), labels with
// census-like rates (6% and 43% positive).
struct Data {
  std::size_t rows;
  std::vector<std::vector<float>> dense, labels;
  std::vector<std::vector<std::int64_t>> ids;
  Data(std::size_t batch_rows, std::size_t batches) : rows(batch_rows) {
    mtlite::Rng rng(7);
    for (std::size_t b = 0; b < batches; ++b) {
      std::vector<float> d, y;
      std::vector<std::int64_t> id;
      for (std::size_t r = 0; r < rows; ++r) {
        for (int i = 0; i < 7; ++i) d.push_back(static_cast<float>(rng.normal()));
        for (int i = 0; i < 33; ++i) id.push_back(static_cast<std::int64_t>(rng.below(kVocab[i] + 1)));
        y.push_back(rng.uniform() < 0.06f ? 1.0f : 0.0f);
        y.push_back(rng.uniform() < 0.43f ? 1.0f : 0.0f);
      }
      dense.push_back(std::move(d));
      ids.push_back(std::move(id));
      labels.push_back(std::move(y));
    }
  }
  mtlite::Batch batch(std::size_t b) const {
    mtlite::Batch x;
    x.rows = rows;
    x.dense = {dense[b].data(), dense[b].size()};
    x.ids = {ids[b].data(), ids[b].size()};
    return x;
  }
};

void BM_census_mmoe_step(benchmark::State& state, BalanceMethod method) {
  const std::size_t rows = static_cast<std::size_t>(state.range(0));
  TrainOptions o;
  o.threads = static_cast<std::size_t>(state.range(1));
  o.lr = 1e-3f;
  o.balancing.method = method;
  Trainer trainer(census_mmoe(), o);
  const Data data(rows, 8);
  std::size_t b = 0;
  for (auto _ : state) {
    const double loss = trainer.step(data.batch(b), data.labels[b]);
    benchmark::DoNotOptimize(loss);
    b = (b + 1) % data.dense.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows));
  state.counters["steps/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void Cases(benchmark::internal::Benchmark* b) {
  for (int rows : {256, 1024})
    for (int threads : {1, 2}) b->Args({rows, threads});
  b->ArgNames({"batch", "threads"})->UseRealTime()->MinTime(1.0);
}

void PerTaskCases(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) b->Args({1024, threads});
  b->ArgNames({"batch", "threads"})->UseRealTime()->MinTime(1.0);
}

BENCHMARK_CAPTURE(BM_census_mmoe_step, fixed, BalanceMethod::fixed)->Apply(Cases);
BENCHMARK_CAPTURE(BM_census_mmoe_step, metabalance, BalanceMethod::metabalance)->Apply(PerTaskCases);
BENCHMARK_CAPTURE(BM_census_mmoe_step, gradnorm, BalanceMethod::gradnorm)->Apply(PerTaskCases);

}  // namespace

BENCHMARK_MAIN();
