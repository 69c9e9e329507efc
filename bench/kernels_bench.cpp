// The kernels at sizes from 16 to 1024, each beside its scalar reference in the same run.
//   dense    K = N = size, for one row (the single-example path) and 64 rows (one chunk);
//            dense_f16 and dense_i8 are the same layer with f16 / int8 weights (dense_i8
//            includes quantizing the input rows). GFLOPs counts 2 K N per row for all three
//            (f32-equivalent), so the ratios of the counters are the speed ratios.
//   softmax  one gate of `size` logits
//   mix      8 experts of width `size`, 64 rows
//   add_rows a bag of 16 rows of width `size`
#include <benchmark/benchmark.h>

#include <mtlite/core/random.hpp>
#include <mtlite/kernels/kernels.hpp>
#include <mtlite/offline/convert/quantize.hpp>

#include <cstdint>
#include <vector>

namespace {

namespace k = mtlite::kernels;

std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  mtlite::Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

struct PackedDense {
  std::size_t K, N;
  std::vector<float> panels, bias;
  std::vector<mtlite::Activation> act;
  PackedDense(std::size_t k_, std::size_t n_) : K(k_), N(n_) {
    const std::vector<float> w = random_floats(N * K, 1);
    panels.assign(k::panel_count(N) * K * k::kPanel, 0.0f);
    k::pack_panels(w.data(), N, K, panels.data());
    bias = random_floats(k::round_to_panel(N), 2);
    act.assign(k::panel_count(N), mtlite::Activation::relu);
  }
  k::DenseView view() const { return {K, N, panels.data(), bias.data(), act.data()}; }
};

struct PackedDenseF16 {
  std::size_t K, N;
  std::vector<std::uint16_t> panels;
  std::vector<float> bias;
  std::vector<mtlite::Activation> act;
  PackedDenseF16(std::size_t k_, std::size_t n_) : K(k_), N(n_) {
    const std::vector<float> w = random_floats(N * K, 1);
    panels.assign(k::panel_count(N) * k::panel_bytes(k::WeightType::f16, K) / 2, 0);
    k::pack_panels_f16(w.data(), N, K, panels.data());
    bias = random_floats(k::round_to_panel(N), 2);
    act.assign(k::panel_count(N), mtlite::Activation::relu);
  }
  k::DenseView view() const { return {K, N, panels.data(), bias.data(), act.data(), k::WeightType::f16}; }
};

struct PackedDenseI8 {
  std::size_t K, N;
  std::vector<std::int8_t> panels;
  std::vector<float> bias, scale;
  std::vector<std::int32_t> colsum;
  std::vector<mtlite::Activation> act;
  PackedDenseI8(std::size_t k_, std::size_t n_) : K(k_), N(n_) {
    const std::vector<float> w = random_floats(N * K, 1);
    panels.assign(k::panel_count(N) * k::panel_bytes(k::WeightType::i8, K), 0);
    scale.assign(k::round_to_panel(N), 0.0f);
    colsum.assign(k::round_to_panel(N), 0);
    k::quantize_dense_i8(w.data(), N, K, panels.data(), scale.data(), colsum.data());
    bias = random_floats(k::round_to_panel(N), 2);
    act.assign(k::panel_count(N), mtlite::Activation::relu);
  }
  k::DenseView view() const {
    return {K, N, panels.data(), bias.data(), act.data(), k::WeightType::i8, scale.data(), colsum.data()};
  }
};

void dense_counters(benchmark::State& state, std::size_t rows, std::size_t size) {
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * static_cast<double>(rows * size * size) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

template <bool Simd>
void BM_dense_f16(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto rows = static_cast<std::size_t>(state.range(1));
  const PackedDenseF16 layer(size, size);
  const std::vector<float> x = random_floats(rows * size, 3);
  std::vector<float> y(rows * size);
  for (auto _ : state) {
    if constexpr (Simd)
      k::dense_f16(rows, x.data(), size, layer.view(), y.data(), size);
    else
      k::ref::dense_f16(rows, x.data(), size, layer.view(), y.data(), size);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  dense_counters(state, rows, size);
}

template <bool Simd>
void BM_dense_i8(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto rows = static_cast<std::size_t>(state.range(1));
  const PackedDenseI8 layer(size, size);
  const std::vector<float> x = random_floats(rows * size, 3);
  std::vector<float> y(rows * size);
  std::vector<std::uint8_t> scratch(k::dense_i8_scratch_bytes(rows, size));
  for (auto _ : state) {
    if constexpr (Simd)
      k::dense_i8(rows, x.data(), size, layer.view(), y.data(), size, scratch.data());
    else
      k::ref::dense_i8(rows, x.data(), size, layer.view(), y.data(), size, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  dense_counters(state, rows, size);
}

template <bool Simd>
void BM_dense(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto rows = static_cast<std::size_t>(state.range(1));
  const PackedDense layer(size, size);
  const std::vector<float> x = random_floats(rows * size, 3);
  std::vector<float> y(rows * size);
  for (auto _ : state) {
    if constexpr (Simd)
      k::dense(rows, x.data(), size, layer.view(), y.data(), size);
    else
      k::ref::dense(rows, x.data(), size, layer.view(), y.data(), size);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * static_cast<double>(rows * size * size) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

template <bool Simd>
void BM_softmax(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> logits = random_floats(n, 4);
  std::vector<float> x(n);
  for (auto _ : state) {
    x = logits;
    if constexpr (Simd)
      k::softmax(x.data(), n);
    else
      k::ref::softmax(x.data(), n);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
}

template <bool Simd>
void BM_mix(benchmark::State& state) {
  const auto width = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t rows = 64, experts = 8;
  const std::vector<float> ex = random_floats(rows * experts * width, 5);
  const std::vector<float> gates = random_floats(rows * experts, 6);
  std::vector<const float*> ptr;
  std::vector<std::size_t> ld(experts, experts * width);
  for (std::size_t e = 0; e < experts; ++e) ptr.push_back(ex.data() + e * width);
  std::vector<float> out(rows * width);
  for (auto _ : state) {
    if constexpr (Simd)
      k::mix(rows, gates.data(), experts, experts, ptr.data(), ld.data(), width, out.data(), width);
    else
      k::ref::mix(rows, gates.data(), experts, experts, ptr.data(), ld.data(), width, out.data(), width);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

template <bool Simd>
void BM_add_rows(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t table_rows = 1000, bag = 16;
  const std::vector<float> table = random_floats(table_rows * dim, 7);
  mtlite::Rng rng(8);
  std::vector<std::uint64_t> rows(bag);
  for (auto& r : rows) r = rng.below(table_rows);
  std::vector<float> out(dim);
  for (auto _ : state) {
    if constexpr (Simd)
      k::add_rows(table.data(), dim, rows.data(), bag, out.data());
    else
      k::ref::add_rows(table.data(), dim, rows.data(), bag, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

void dense_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t rows : {1, 64})
    for (std::int64_t size : {16, 64, 256, 1024}) b->Args({size, rows});
}
void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t size : {16, 64, 256, 1024}) b->Arg(size);
}

BENCHMARK_TEMPLATE(BM_dense, true)->Name("dense/simd")->Apply(dense_sizes);
BENCHMARK_TEMPLATE(BM_dense_f16, true)->Name("dense_f16/simd")->Apply(dense_sizes);
BENCHMARK_TEMPLATE(BM_dense_i8, true)->Name("dense_i8/simd")->Apply(dense_sizes);
BENCHMARK_TEMPLATE(BM_dense, false)->Name("dense/ref")->Apply(dense_sizes);
BENCHMARK_TEMPLATE(BM_dense_f16, false)->Name("dense_f16/ref")->Apply(dense_sizes);
BENCHMARK_TEMPLATE(BM_dense_i8, false)->Name("dense_i8/ref")->Apply(dense_sizes);
BENCHMARK_TEMPLATE(BM_softmax, true)->Name("softmax/simd")->Apply(sizes);
BENCHMARK_TEMPLATE(BM_softmax, false)->Name("softmax/ref")->Apply(sizes);
BENCHMARK_TEMPLATE(BM_mix, true)->Name("mix/simd")->Apply(sizes);
BENCHMARK_TEMPLATE(BM_mix, false)->Name("mix/ref")->Apply(sizes);
BENCHMARK_TEMPLATE(BM_add_rows, true)->Name("add_rows/simd")->Apply(sizes);
BENCHMARK_TEMPLATE(BM_add_rows, false)->Name("add_rows/ref")->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
