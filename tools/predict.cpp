// mtlite predict MODEL --data DATA --out FILE: one CSV row of scores per input row, columns
// named after the model's outputs (with the group id first when the data has a group column).
// Written atomically; gzip when FILE ends in .gz.
#include <cstdio>
#include <string>

#include "cli.hpp"
#include "commands.hpp"
#include "model_io.hpp"
#include "output.hpp"
#include "progress.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite predict MODEL.mtl --data DATA --out FILE [options]\n"
    "\n"
    "Scores every row of DATA (read with the model's data binding) and writes FILE: a CSV with a\n"
    "header of the model's output names (binary tasks as probabilities, regression tasks as values),\n"
    "one line per input row in input order; the group id comes first when the data has a group\n"
    "column. FILE is written to a temporary name and renamed into place; gzip when it ends in .gz.\n"
    "\n",
    {
        {"data", "DATA", "the rows to score"},
        {"out", "FILE", "the scores as CSV"},
        cli::kMaxRows,
        cli::kSkipBadRows,
        {"json", nullptr, "print one JSON object instead of text"},
    }};

}  // namespace

int cmd_predict(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (const auto rc = args.help_or_usage(args.positional.size() == 1 && args.has("data") && args.has("out")))
    return *rc;
  const std::string path = args.positional[0], out_path = args.get("out");
  const mtlite::Model model = mtlite::Model::load(path);
  const mtlite::data::DataBinding binding = cli::binding_of(model, path);
  const mtlite::data::Dataset data = mtlite::data::load(args.get("data"), binding, model.spec(), cli::read_options(args));
  const std::vector<std::vector<float>> scores = cli::score_dataset(model, data);
  const bool grouped = binding.group.has_value();

  cli::AtomicOutput out(out_path);
  std::string text;
  if (grouped) text += "group";
  for (std::size_t o = 0; o < model.num_outputs(); ++o)
    text += (o || grouped ? "," : "") + model.output_name(o);
  text += '\n';
  cli::ProgressBar bar("writing " + out_path, data.rows, "rows", data.rows >= 1000000 && !args.has("json"));
  char buf[32];
  for (std::size_t r = 0; r < data.rows; ++r) {
    if (grouped) text += std::to_string(data.groups[r]);
    for (std::size_t o = 0; o < model.num_outputs(); ++o) {
      std::snprintf(buf, sizeof buf, "%s%.9g", o || grouped ? "," : "", static_cast<double>(scores[o][r]));
      text += buf;
    }
    text += '\n';
    if (text.size() >= (1u << 20)) {
      out.write(text);
      text.clear();
      bar.update(r + 1);
    }
  }
  out.write(text);
  out.commit();
  bar.clear();
  if (args.has("json")) {
    std::printf("%s\n", mtlite::Json::object()
                            .set("model", path)
                            .set("data", args.get("data"))
                            .set("out", out_path)
                            .set("rows", data.rows)
                            .set("skipped_rows", data.report.skipped)
                            .set("outputs", model.num_outputs())
                            .dump()
                            .c_str());
  } else {
    std::printf("wrote %s: %zu rows x %zu outputs", out_path.c_str(), data.rows, model.num_outputs());
    if (data.report.skipped) std::printf(" (%zu malformed rows skipped)", data.report.skipped);
    std::printf("\n");
  }
  return 0;
}
