// mtlite eval MODEL --data DATA [--json]: every served output's quality on labelled rows (AUC
// and log loss, or RMSE; gAUC and NDCG@10 with a group column), for checkpoints and converted
// models alike (the model file carries its data binding).
#include <chrono>
#include <cstdio>
#include <string>

#include "cli.hpp"
#include "commands.hpp"
#include "model_io.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite eval MODEL.mtl --data DATA [options]\n"
    "\n"
    "Scores DATA (CSV/TSV, plain or gzip, read with the model's data binding) and prints, for every\n"
    "served output, the labelled rows and AUC and log loss (binary) or RMSE (regression); with a\n"
    "group column also gAUC and NDCG@10. AUC is exact over all rows (ties count half, sample\n"
    "weights apply).\n"
    "\n",
    {
        {"data", "DATA", "the labelled rows to score"},
        cli::kMaxRows,
        cli::kSkipBadRows,
        {"json", nullptr, "print one JSON object instead of text"},
    }};

}  // namespace

int cmd_eval(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (const auto rc = args.help_or_usage(args.positional.size() == 1 && args.has("data"))) return *rc;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string path = args.positional[0];
  const mtlite::Model model = mtlite::Model::load(path);
  const mtlite::data::DataBinding binding = cli::binding_of(model, path);
  const mtlite::data::Dataset data = mtlite::data::load(args.get("data"), binding, model.spec(), cli::read_options(args));
  if (data.rows == 0) throw mtlite::Error("--data: '" + args.get("data") + "' has no rows");
  const std::vector<cli::OutputMetrics> metrics =
      cli::evaluate(model.spec(), cli::score_dataset(model, data), data, binding.group.has_value());
  cli::warn_one_class(metrics, "--data '" + args.get("data") + "'");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (args.has("json")) {
    mtlite::Json outputs = mtlite::Json::object();
    for (const cli::OutputMetrics& m : metrics) outputs.set(m.output, m.to_json());
    mtlite::Json j = mtlite::Json::object()
                         .set("model", path)
                         .set("data", args.get("data"))
                         .set("rows", data.rows)
                         .set("skipped_rows", data.report.skipped)
                         .set("outputs", std::move(outputs))
                         .set("seconds", seconds);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s on %s: %zu rows", path.c_str(), args.get("data").c_str(), data.rows);
  if (data.report.skipped) std::printf(" (%zu malformed rows skipped)", data.report.skipped);
  std::printf(", %.2f s\n", seconds);
  for (const cli::OutputMetrics& m : metrics)
    std::printf("  %-18s %8zu labelled  %s\n", m.output.c_str(), m.labelled, m.text().c_str());
  return 0;
}
