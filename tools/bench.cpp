// mtlite bench --reference [--batch 1,16,256] [--calls N] [--json]
// Times predict on one thread: the median of N calls after warm-up, per batch size.
#include <mtlite/format/json.hpp>
#include <mtlite/mtlite.hpp>
#include <mtlite/random_inputs.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"

namespace {

const char* kUsage =
    "usage: mtlite bench --reference [--batch 1,16,256] [--calls 200] [--json]\n"
    "  --reference  the standard benchmark model of PERFORMANCE.md (MMoE, 8 experts, 3 tasks,\n"
    "               820,635 parameters, seeded random weights)\n"
    "  --batch      batch sizes to time (rows per predict call)\n"
    "  --calls      timed calls per batch size (after 10% warm-up calls); the median is reported\n"
    "  --json       print one JSON object instead of a table\n";

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

}  // namespace

int cmd_bench(int argc, char** argv) {
  const cli::Args args(argc, argv, {"reference", "json", "help"}, {"batch", "calls"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.has("reference") || !args.positional.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::vector<long long> batches = cli::integer_list(args.get("batch", "1,16,256"), "--batch", 1, 1 << 20);
  const auto calls = static_cast<std::size_t>(args.integer("calls", 200, 1, 1000000));

  const mtlite::Spec spec = mtlite::reference_spec();
  const mtlite::Model model(spec, mtlite::random_weights(spec, 42, 0.1f));
  const double flops = mtlite::reference_flops_per_example();

  std::vector<Timing> results;
  for (long long b : batches) results.push_back(time_batch(model, static_cast<std::size_t>(b), calls));

  if (args.has("json")) {
    mtlite::Json rows = mtlite::Json::array();
    for (const Timing& t : results) {
      const double per_example = t.us_per_batch / static_cast<double>(t.batch);
      rows.push(mtlite::Json::object()
                    .set("batch", t.batch)
                    .set("us_per_batch", t.us_per_batch)
                    .set("us_per_example", per_example)
                    .set("gflops", flops / per_example * 1e-3));
    }
    const mtlite::Json out = mtlite::Json::object()
                                 .set("model", "reference")
                                 .set("dtype", "f32")
                                 .set("parameters", model.parameter_count())
                                 .set("kernels", mtlite::kernels::backend_name())
                                 .set("threads", 1)
                                 .set("calls", calls)
                                 .set("statistic", "median")
                                 .set("results", std::move(rows));
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("reference model: MMoE, 8 experts, 3 tasks, %llu parameters, f32, kernels %s, 1 thread\n",
              static_cast<unsigned long long>(model.parameter_count()), mtlite::kernels::backend_name());
  std::printf("median of %zu calls\n\n", calls);
  std::printf("%8s %14s %16s %10s\n", "batch", "us/batch", "us/example", "GFLOP/s");
  for (const Timing& t : results) {
    const double per_example = t.us_per_batch / static_cast<double>(t.batch);
    std::printf("%8zu %14.1f %16.2f %10.1f\n", t.batch, t.us_per_batch, per_example,
                flops / per_example * 1e-3);
  }
  return 0;
}
