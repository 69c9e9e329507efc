// Opening a model file and making the first prediction: the benchmark model of docs/performance.md
// written once to a temporary directory as an f32 and an int8 file (`mtlite convert` defaults),
// then per iteration Model::load + a Session + one predict of one row. The file stays in the
// page cache, so this is the cost of a warm start: mapping, page faults, validation, binding.
//
//   load_default   LoadOptions{} (map = true, verify_checksum = false, selftest = false)
//   load_checksum  LoadOptions{.verify_checksum = true}: one XXH64 pass over the whole file
//   load_read      LoadOptions{.map = false}: the file read into memory (a copy)
//   load_selftest  LoadOptions{.selftest = true}: also runs the self-test embedded by convert
// Counters: copied_bytes is Model::copied_bytes() (0 when the weights run in place; int8 layers
// add their column sums), file_bytes the file's size.
#include <benchmark/benchmark.h>

#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/random_inputs.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

struct Files {
  std::string dir, f32, i8;
  Files() {
    char tmpl[] = "/tmp/mtlite-load-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    dir = tmpl;
    f32 = dir + "/reference-f32.mtl";
    i8 = dir + "/reference-i8.mtl";
    const mtlite::Spec spec = mtlite::benchmark_spec();
    const mtlite::Weights w = mtlite::benchmark_weights();
    write(spec, w, mtlite::kernels::WeightType::f32, f32);
    write(spec, w, mtlite::kernels::WeightType::i8, i8);
  }
  ~Files() {
    std::remove(f32.c_str());
    std::remove(i8.c_str());
    ::rmdir(dir.c_str());
  }
  // As `mtlite convert` writes it (tools/convert.cpp): the converted tensors, the converter's
  // report in the metadata and a self-test of 4 seeded random rows.
  static void write(const mtlite::Spec& spec, const mtlite::Weights& w, mtlite::kernels::WeightType dense,
                    const std::string& path) {
    mtlite::ConvertOptions options;
    options.dense = dense;
    const mtlite::Converted c = mtlite::convert(spec, w, options);
    const mtlite::Model model = c.model();
    const mtlite::RandomInputs random(c.spec, 4, 1);
    const mtlite::Batch batch = random.batch();
    mtlite::Session session(model, batch.rows);
    mtlite::Json test =
        mtlite::record_selftest(session, batch, mtlite::selftest_tolerance(mtlite::coarsest_weight_type(model.plan())));
    mtlite::Json settings = mtlite::Json::object()
                                .set("dtype", dense == mtlite::kernels::WeightType::i8 ? "int8" : "f32")
                                .set("embeddings", "f32")
                                .set("drop_aux", false)
                                .set("tensors", c.report);
    mtlite::Json extra = mtlite::Json::object().set("converter", std::move(settings)).set("selftest", std::move(test));
    mtlite::model_writer(c.spec, c.tensors, std::move(extra)).write(path);
  }
};

const Files& files() {
  static const Files f;
  return f;
}

void run(benchmark::State& state, const mtlite::LoadOptions& options) {
  const std::string& path = state.range(0) == 0 ? files().f32 : files().i8;
  state.SetLabel(state.range(0) == 0 ? "f32 file" : "int8 file");
  mtlite::Rng rng(7);
  std::vector<float> x(256);
  for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
  std::size_t copied = 0, file_bytes = 0;
  for (auto _ : state) {
    const mtlite::Model model = mtlite::Model::load(path, options);
    mtlite::Session session(model, 1);
    mtlite::Status st = session.predict(x);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(session.score(0, 0));
    benchmark::ClobberMemory();
    copied = model.copied_bytes();
  }
  {
    const mtlite::Model model = mtlite::Model::load(path, options);
    file_bytes = static_cast<std::size_t>(model.weight_bytes());
    mtlite::Session session(model, 1);
    if (!session.predict(x)) state.SkipWithError("predict failed");
  }
  state.counters["copied_bytes"] = static_cast<double>(copied);
  state.counters["weight_bytes"] = static_cast<double>(file_bytes);
}

void BM_load_default(benchmark::State& state) { run(state, mtlite::LoadOptions{}); }
void BM_load_checksum(benchmark::State& state) {
  mtlite::LoadOptions o;
  o.verify_checksum = true;
  run(state, o);
}
void BM_load_read(benchmark::State& state) {
  mtlite::LoadOptions o;
  o.map = false;
  run(state, o);
}
void BM_load_selftest(benchmark::State& state) {
  mtlite::LoadOptions o;
  o.selftest = true;
  run(state, o);
}
BENCHMARK(BM_load_default)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_load_checksum)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_load_read)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_load_selftest)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
