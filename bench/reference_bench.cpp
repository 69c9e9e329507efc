// The reference model of PERFORMANCE.md at batch 1, 16 and 256, one thread: mtlite f32 and,
// in the same run, the hand-written Eigen peer (when Eigen is installed). Compare the two
// lines of one run; absolute times drift between runs on shared machines.
#include <benchmark/benchmark.h>

#include <mtlite/mtlite.hpp>

#include <vector>

#if MTLITE_BENCH_EIGEN
#include "compare/eigen_reference.hpp"
#endif

namespace {

const mtlite::Weights& weights() {
  static const mtlite::Weights w = mtlite::random_weights(mtlite::reference_spec(), 42, 0.1f);
  return w;
}

const mtlite::Model& model() {
  static const mtlite::Model m(mtlite::reference_spec(), weights());
  return m;
}

std::vector<float> inputs(std::size_t rows) {
  mtlite::Rng rng(7);
  std::vector<float> x(rows * 256);
  for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
  return x;
}

void report(benchmark::State& state, std::size_t rows) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows));
  // seconds / (iterations * rows), printed with an SI prefix (u = microseconds)
  state.counters["per_example"] = benchmark::Counter(
      static_cast<double>(rows),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["GFLOPs"] = benchmark::Counter(
      mtlite::reference_flops_per_example() * static_cast<double>(rows) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}

void BM_reference_mtlite_f32(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const std::vector<float> x = inputs(rows);
  mtlite::Session session(model(), rows);
  mtlite::Batch batch;
  batch.rows = rows;
  batch.dense = x;
  for (auto _ : state) {
    mtlite::Status st = session.predict(batch);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(session.scores(0).data());
    benchmark::ClobberMemory();
  }
  if (!session.predict(batch)) state.SkipWithError("predict failed");
  report(state, rows);
}
BENCHMARK(BM_reference_mtlite_f32)->Arg(1)->Arg(16)->Arg(256);

#if MTLITE_BENCH_EIGEN
void BM_reference_eigen_f32(benchmark::State& state) {
  const auto rows = static_cast<Eigen::Index>(state.range(0));
  const std::vector<float> xs = inputs(static_cast<std::size_t>(rows));
  const peer::RowMatrix x = Eigen::Map<const peer::RowMatrix>(xs.data(), rows, 256);
  peer::EigenMmoe eigen(mtlite::reference_spec(), weights());
  for (auto _ : state) {
    eigen.predict(x);
    benchmark::DoNotOptimize(eigen.scores.data());
    benchmark::ClobberMemory();
  }
  report(state, static_cast<std::size_t>(rows));
}
BENCHMARK(BM_reference_eigen_f32)->Arg(1)->Arg(16)->Arg(256);
#endif

}  // namespace

BENCHMARK_MAIN();
