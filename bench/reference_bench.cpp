// The benchmark model of docs/performance.md at batch 1, 16 and 256, one thread: mtlite with f32,
// f16 and int8 dense weights and, in the same run, the hand-written Eigen peer (when Eigen is
// installed) and fma_peak: the model's multiply-adds at this core's FMA throughput, the floor for
// f32 (not in the scalar build). The f16 and int8 models are the f32 model's weights through
// mtlite::convert with the converter's defaults (int8: gates and tower heads kept in floating
// point), as `mtlite convert --dtype f16|int8` writes them. Compare the lines of one run;
// absolute times drift between runs on shared machines. After the usual output the console
// reporter prints a table of the medians (microseconds per batch) and the speed-ups over f32 of
// the same run.
#include <benchmark/benchmark.h>

#include <mtlite/kernels/kernels.hpp>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <mtlite/offline/convert/convert.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#if MTLITE_BENCH_EIGEN
#include "compare/eigen_reference.hpp"
#endif

namespace {

const mtlite::Weights& weights() {
  static const mtlite::Weights w = mtlite::benchmark_weights();
  return w;
}

const mtlite::Model& model_f32() {
  static const mtlite::Model m(mtlite::benchmark_spec(), weights());
  return m;
}

mtlite::Model converted_model(mtlite::kernels::WeightType dense) {
  mtlite::ConvertOptions options;
  options.dense = dense;
  return mtlite::convert(mtlite::benchmark_spec(), weights(), options).model();
}

const mtlite::Model& model_f16() {
  static const mtlite::Model m = converted_model(mtlite::kernels::WeightType::f16);
  return m;
}

const mtlite::Model& model_i8() {
  static const mtlite::Model m = converted_model(mtlite::kernels::WeightType::i8);
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
  // f32-equivalent: the same count for every dtype, so the counters' ratios are speed ratios
  state.counters["GFLOPs"] = benchmark::Counter(
      mtlite::benchmark_flops_per_example() * static_cast<double>(rows) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}

void run_mtlite(benchmark::State& state, const mtlite::Model& model) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const std::vector<float> x = inputs(rows);
  mtlite::Session session(model, rows);
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

void BM_reference_mtlite_f32(benchmark::State& state) { run_mtlite(state, model_f32()); }
void BM_reference_mtlite_f16(benchmark::State& state) { run_mtlite(state, model_f16()); }
void BM_reference_mtlite_i8(benchmark::State& state) { run_mtlite(state, model_i8()); }
BENCHMARK(BM_reference_mtlite_f32)->Arg(1)->Arg(16)->Arg(256);
BENCHMARK(BM_reference_mtlite_f16)->Arg(1)->Arg(16)->Arg(256);
BENCHMARK(BM_reference_mtlite_i8)->Arg(1)->Arg(16)->Arg(256);

#if !defined(MTLITE_NO_SIMD)
// The f32 floor: the reference model's multiply-adds done as fused multiply-adds on full vectors
// in 12 independent chains (enough to cover FMA latency x throughput on current x86 and ARM
// cores), with nothing loaded or stored. mtlite f32's time over this one is 1 / its efficiency.
void BM_reference_fma_peak(benchmark::State& state) {
  using mtlite::kernels::simd::vfloat;
  constexpr std::size_t kChains = 12;
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto steps = static_cast<std::size_t>(mtlite::benchmark_flops_per_example() * static_cast<double>(rows) /
                                              (2.0 * vfloat::size * kChains));
  float a = 0.999999f, b = 1e-3f;  // acc = acc * a + b stays finite and normal
  benchmark::DoNotOptimize(a);
  benchmark::DoNotOptimize(b);
  const vfloat va(a), vb(b);
  for (auto _ : state) {
    vfloat acc[kChains];
    for (std::size_t c = 0; c < kChains; ++c) acc[c] = vfloat(static_cast<float>(c));
    for (std::size_t i = 0; i < steps; ++i)
      MTLITE_UNROLL
      for (std::size_t c = 0; c < kChains; ++c) acc[c] = xsimd::fma(acc[c], va, vb);
    vfloat sum = acc[0];
    for (std::size_t c = 1; c < kChains; ++c) sum += acc[c];
    benchmark::DoNotOptimize(sum);
  }
  report(state, rows);
}
BENCHMARK(BM_reference_fma_peak)->Arg(1)->Arg(16)->Arg(256);
#endif

#if MTLITE_BENCH_EIGEN
void BM_reference_eigen_f32(benchmark::State& state) {
  const auto rows = static_cast<Eigen::Index>(state.range(0));
  const std::vector<float> xs = inputs(static_cast<std::size_t>(rows));
  const peer::RowMatrix x = Eigen::Map<const peer::RowMatrix>(xs.data(), rows, 256);
  peer::EigenMmoe eigen(mtlite::benchmark_spec(), weights());
  for (auto _ : state) {
    eigen.predict(x);
    benchmark::DoNotOptimize(eigen.scores.data());
    benchmark::ClobberMemory();
  }
  report(state, static_cast<std::size_t>(rows));
}
BENCHMARK(BM_reference_eigen_f32)->Arg(1)->Arg(16)->Arg(256);
#endif

// The console output, then a table of the medians of this run: per case and batch, the median
// over repetitions (the "median" aggregate when there is one), and each case's speed-up over
// mtlite f32 at the same batch (f32 time / case time: 3.0 = three times as fast).
class TableReporter : public benchmark::ConsoleReporter {
 public:
  // Colours on a terminal only, as the library's own console reporter does.
  TableReporter() : ConsoleReporter(isatty(fileno(stdout)) ? OO_Defaults : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const std::string name = r.run_name.function_name, arg = r.run_name.args;
      const double us = r.GetAdjustedRealTime() * to_us(r.time_unit);
      if (std::find(order_.begin(), order_.end(), name) == order_.end()) order_.push_back(name);
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name == "median") median_[{name, arg}] = us;
      } else {
        times_[{name, arg}].push_back(us);
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::map<Key, double> t = median_;
    for (auto& [key, v] : times_)
      if (!t.count(key)) {
        std::sort(v.begin(), v.end());
        t[key] = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
      }
    if (t.empty()) return;
    std::map<std::string, std::map<std::string, double>> table;  // case -> batch -> us
    std::vector<std::string> batches;
    for (const auto& [key, us] : t) {
      table[key.first][key.second] = us;
      if (std::find(order_.begin(), order_.end(), key.first) == order_.end()) order_.push_back(key.first);
      if (std::find(batches.begin(), batches.end(), key.second) == batches.end()) batches.push_back(key.second);
    }
    std::sort(batches.begin(), batches.end(), [](const std::string& a, const std::string& b) {
      return std::strtoll(a.c_str(), nullptr, 10) < std::strtoll(b.c_str(), nullptr, 10);
    });
    std::FILE* out = stdout;
    std::fflush(out);
    GetOutputStream().flush();
    std::fprintf(out, "\nmedian us per batch (speed-up over mtlite f32 of this run)\n%-26s", "case");
    for (const std::string& b : batches) std::fprintf(out, " %20s", ("B=" + b).c_str());
    std::fprintf(out, "\n");
    const auto f32 = table.find("BM_reference_mtlite_f32");
    for (const std::string& name : order_) {
      const std::map<std::string, double>& row = table[name];
      std::fprintf(out, "%-26s", name.c_str() + (name.rfind("BM_", 0) == 0 ? 3 : 0));
      for (const std::string& b : batches) {
        const auto it = row.find(b);
        if (it == row.end()) {
          std::fprintf(out, " %20s", "-");
          continue;
        }
        char cell[64];
        double ratio = 0.0;
        if (f32 != table.end())
          if (const auto jt = f32->second.find(b); jt != f32->second.end()) ratio = jt->second / it->second;
        if (ratio > 0.0)
          std::snprintf(cell, sizeof cell, "%.1f (%.2fx)", it->second, ratio);
        else
          std::snprintf(cell, sizeof cell, "%.1f", it->second);
        std::fprintf(out, " %20s", cell);
      }
      std::fprintf(out, "\n");
    }
    std::fflush(out);
  }

 private:
  using Key = std::pair<std::string, std::string>;
  std::map<Key, std::vector<double>> times_;
  std::map<Key, double> median_;
  std::vector<std::string> order_;  // cases in the order they ran

  static double to_us(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1e-3;
      case benchmark::kMicrosecond: return 1.0;
      case benchmark::kMillisecond: return 1e3;
      case benchmark::kSecond: return 1e6;
    }
    return 1.0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  // The table goes with the console format only (the default); --benchmark_format=json or csv
  // get the library's reporter unchanged.
  bool console = true;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--benchmark_format=", 19) == 0 && std::strcmp(argv[i] + 19, "console") != 0)
      console = false;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (console) {
    TableReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
  return 0;
}
