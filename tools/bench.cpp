// mtlite bench MODEL | --reference [options]
// Times predict on one thread: the median of N calls after warm-up, per batch size, on seeded
// random inputs that fit the model's features (RandomInputs).
#include <mtlite/format/json.hpp>
#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/random_inputs.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite bench MODEL [options]\n"
    "       mtlite bench --reference [options]\n"
    "  MODEL               a .mtl model file (any dtype, e.g. the output of mtlite convert --dtype int8),\n"
    "                      loaded as an app loads it (memory-mapped)\n",
    {
        {"reference", nullptr,
         "the benchmark model of docs/performance.md (MMoE, 8 experts, 3 tasks, 820,635 parameters, seeded "
         "random weights)"},
        {"dtype", "T",
         "its dense layers as converted by mtlite convert --dtype: f32, f16 or int8, which keeps gates and tower "
         "heads in f16 as convert does",
         "f32", "--reference"},
        {"batch", "1,16,256", "batch sizes to time, in rows per predict call", "1,16,256"},
        {"calls", "N", "timed calls per batch size (after 10% warm-up calls); the median is reported", "200"},
        {"json", nullptr, "print one JSON object instead of a table"},
    }};

struct Timing {
  std::size_t batch;
  double us_per_batch;
};

Timing time_batch(const mtlite::Model& model, std::size_t batch, std::size_t calls) {
  const mtlite::RandomInputs random(model.spec(), batch, 7);
  const mtlite::Batch in = random.batch();
  mtlite::Session session(model, batch);
  if (mtlite::Status st = session.predict(in); !st) throw mtlite::Error(st.message());

  std::vector<double> us;
  const std::size_t warmup = std::max<std::size_t>(1, calls / 10);
  for (std::size_t i = 0; i < warmup + calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    (void)session.predict(in);
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(us.size() / 2), us.end());
  return {batch, us[us.size() / 2]};
}

// The dense layers' weight types: "f32", or e.g. "i8 (f16: 4 of 16 layers)" for a mix.
std::string dense_types(const mtlite::Model& model) {
  std::size_t count[3] = {0, 0, 0}, bytes[3] = {0, 0, 0};
  for (const mtlite::internal::PackedLayer& L : model.plan().layers) {
    const auto t = static_cast<std::size_t>(L.type);
    ++count[t];
    bytes[t] += mtlite::kernels::panel_count(L.n) * mtlite::kernels::panel_bytes(L.type, L.k);
  }
  const char* names[3] = {"f32", "f16", "i8"};
  const std::size_t layers = count[0] + count[1] + count[2];
  if (layers == 0) return "none";
  std::size_t main = 0;
  for (std::size_t t = 1; t < 3; ++t)
    if (bytes[t] > bytes[main]) main = t;
  std::string out = names[main];
  std::string others;
  for (std::size_t t = 0; t < 3; ++t)
    if (t != main && count[t])
      others += (others.empty() ? "" : ", ") + std::string(names[t]) + ": " + std::to_string(count[t]);
  if (!others.empty()) out += " (" + others + " of " + std::to_string(layers) + " layers)";
  return out;
}

mtlite::Model reference_model(const std::string& dtype) {
  const mtlite::Spec spec = mtlite::benchmark_spec();
  const mtlite::Weights weights = mtlite::benchmark_weights();
  if (dtype == "f32") return mtlite::Model(spec, weights);
  mtlite::ConvertOptions options;
  if (dtype == "f16")
    options.dense = mtlite::kernels::WeightType::f16;
  else if (dtype == "int8" || dtype == "i8")
    options.dense = mtlite::kernels::WeightType::i8;
  else
    throw mtlite::Error("--dtype: '" + dtype + "' is not one of f32, f16, int8");
  return mtlite::convert(spec, weights, options).model();
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  const bool reference = args.has("reference");
  const bool usable = args.positional.size() == (reference ? 0u : 1u) && !args.outside(reference ? "--reference" : "MODEL");
  if (const auto rc = args.help_or_usage(usable)) return *rc;
  const std::vector<long long> batches = cli::integer_list(args.get("batch"), "--batch", 1, 1 << 20);
  const auto calls = static_cast<std::size_t>(args.integer("calls", 1, 1000000));

  const std::string name = reference ? "reference" : args.positional[0];
  const mtlite::Model model = reference ? reference_model(args.get("dtype")) : mtlite::Model::load(name);
  const std::string dtype = dense_types(model);

  std::vector<Timing> results;
  for (long long b : batches) results.push_back(time_batch(model, static_cast<std::size_t>(b), calls));

  // GFLOP/s only where the work per example is known: the reference model's (f32-equivalent,
  // the same count whatever the dtype, so the rates compare as speeds).
  const double flops = reference ? mtlite::benchmark_flops_per_example() : 0.0;
  if (args.has("json")) {
    mtlite::Json rows = mtlite::Json::array();
    for (const Timing& t : results) {
      const double per_example = t.us_per_batch / static_cast<double>(t.batch);
      mtlite::Json row = mtlite::Json::object()
                             .set("batch", t.batch)
                             .set("us_per_batch", t.us_per_batch)
                             .set("us_per_example", per_example);
      if (flops > 0.0) row.set("gflops", flops / per_example * 1e-3);
      rows.push(std::move(row));
    }
    const mtlite::Json out = mtlite::Json::object()
                                 .set("model", name)
                                 .set("architecture", mtlite::to_string(model.spec().architecture))
                                 .set("dtype", dtype)
                                 .set("parameters", model.parameter_count())
                                 .set("weight_bytes", model.weight_bytes())
                                 .set("kernels", mtlite::kernels::table().level)
                                 .set("kernel_paths", mtlite::Json::object()
                                                          .set("i8", mtlite::kernels::table().i8_path)
                                                          .set("f16", mtlite::kernels::table().f16_path)
                                                          .set("rows_q", mtlite::kernels::table().q_path)
                                                          .set("xsimd", mtlite::kernels::table().arch))
                                 .set("threads", 1)
                                 .set("calls", calls)
                                 .set("statistic", "median")
                                 .set("results", std::move(rows));
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  if (reference)
    std::printf("reference model: MMoE, 8 experts, 3 tasks, %llu parameters, %s, kernels %s, 1 thread\n",
                static_cast<unsigned long long>(model.parameter_count()), dtype.c_str(),
                mtlite::kernels::describe(mtlite::kernels::table()).c_str());
  else
    std::printf("%s: %s model, %zu outputs, %llu parameters, %s, kernels %s, 1 thread\n", name.c_str(),
                mtlite::to_string(model.spec().architecture), model.num_outputs(),
                static_cast<unsigned long long>(model.parameter_count()), dtype.c_str(),
                mtlite::kernels::describe(mtlite::kernels::table()).c_str());
  std::printf("median of %zu calls\n\n", calls);
  if (flops > 0.0)
    std::printf("%8s %14s %16s %10s\n", "batch", "us/batch", "us/example", "GFLOP/s");
  else
    std::printf("%8s %14s %16s\n", "batch", "us/batch", "us/example");
  for (const Timing& t : results) {
    const double per_example = t.us_per_batch / static_cast<double>(t.batch);
    if (flops > 0.0)
      std::printf("%8zu %14.1f %16.2f %10.1f\n", t.batch, t.us_per_batch, per_example, flops / per_example * 1e-3);
    else
      std::printf("%8zu %14.1f %16.2f\n", t.batch, t.us_per_batch, per_example);
  }
  return 0;
}
