// mtlite eval MODEL --data DATA [--json]: every served output's quality on labelled rows (AUC
// and log loss, or RMSE; gAUC and NDCG@k with a group column, and one output's ranking judged by
// another's labels), for checkpoints and converted models alike (the model file carries its data
// binding).
#include <chrono>
#include <cstdio>
#include <optional>
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
    "group column also gAUC and NDCG@k (relevance: the output's own label). AUC is exact over all\n"
    "rows (ties count half, sample weights apply).\n"
    "\n",
    {
        {"data", "DATA", "the labelled rows to score"},
        {"ndcg-k", "K", "the k of NDCG@k", "10"},
        {"rank-by", "OUTPUT",
         "with --relevance and a group column: also rank each group's rows by OUTPUT's scores and report "
         "NDCG@k and gAUC against the other output's labels (rank by predicted rating, relevance = liked)"},
        {"relevance", "OUTPUT", "the binary output whose labels are the relevance for --rank-by"},
        cli::kMaxRows,
        cli::kSkipBadRows,
        {"json", nullptr, "print one JSON object instead of text"},
    }};

}  // namespace

int cmd_eval(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (const auto rc = args.help_or_usage(args.positional.size() == 1 && args.has("data") &&
                                         args.has("rank-by") == args.has("relevance")))
    return *rc;
  const auto k = static_cast<std::size_t>(args.integer("ndcg-k", 10, 1, 1000000));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string path = args.positional[0];
  const mtlite::Model model = mtlite::Model::load(path);
  const mtlite::data::DataBinding binding = cli::binding_of(model, path);
  const mtlite::data::Dataset data = mtlite::data::load(args.get("data"), binding, model.spec(), cli::read_options(args));
  if (data.rows == 0) throw mtlite::Error("--data: '" + args.get("data") + "' has no rows");
  const std::vector<std::vector<float>> scores = cli::score_dataset(model, data);
  const std::vector<cli::OutputMetrics> metrics = cli::evaluate(model.spec(), scores, data, binding.group.has_value(), k);
  std::optional<cli::Ranking> ranking;
  if (args.has("rank-by")) {
    if (!binding.group) throw mtlite::Error("--rank-by: ranking needs groups, and the model's binding has no data.group column");
    ranking = cli::rank_metrics(model, scores, data, args.get("rank-by"), args.get("relevance"), k);
  }
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
    if (ranking) j.set("ranking", ranking->to_json());
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s on %s: %zu rows", path.c_str(), args.get("data").c_str(), data.rows);
  if (data.report.skipped) std::printf(" (%zu malformed rows skipped)", data.report.skipped);
  std::printf(", %.2f s\n", seconds);
  for (const cli::OutputMetrics& m : metrics)
    std::printf("  %-18s %8zu labelled  %s\n", m.output.c_str(), m.labelled, m.text().c_str());
  if (ranking)
    std::printf("  ranked by %s, relevance %s: ndcg@%zu %.4f  gauc %.4f  (%zu groups)\n", ranking->by.c_str(),
                ranking->relevance.c_str(), ranking->k, ranking->ndcg, ranking->gauc, ranking->groups);
  return 0;
}
