// mtlite convert IN --out OUT.mtl [options]
// Float weights in, a deployable model file out: quantized per tensor, packed for the kernels,
// with a self-test; --calib measures what the quantization costs on real rows.
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/random_inputs.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "model_io.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite convert IN --out OUT.mtl [options]\n"
    "  IN                  a float .mtl model (from mtlite train), or a .safetensors file with --config\n",
    {
        {"out", "OUT.mtl", "the deployable model file"},
        {"config", "FILE",
         "model.json describing a .safetensors input (architecture, features, tasks, optional \"tensors\" name map "
         "and data bindings)"},
        {"dtype", "T",
         "dense layers: f32, f16 or int8; with int8, gates and each tower's last layer stay in floating point, f16",
         "f32"},
        {"embeddings", "T", "embedding tables: f32, f16, or int8 or int4 with a row-wise scale and offset", "f32"},
        {"drop-aux", nullptr, "remove auxiliary tasks: their towers and whatever only they use"},
        {"calib", "DATA",
         "rows (CSV/TSV, plain or gzip, read with the model's data binding) on which to report, per task, the "
         "per-row score change (median, p99, max) and the AUC change; the first rows become the file's self-test"},
        {"max-p99", "D",
         "with --calib: keep the quantized tensors that move scores most one step finer (int8 dense -> f16, int4 "
         "table -> int8, int8 table -> f16) until every output's p99 |diff| is at most D"},
        {"selftest-rows", "N", "rows kept as the self-test", "4"},
        {"json", nullptr, "print one JSON object"},
    }};

mtlite::kernels::WeightType dense_type(const std::string& s) {
  if (s == "f32") return mtlite::kernels::WeightType::f32;
  if (s == "f16") return mtlite::kernels::WeightType::f16;
  if (s == "int8" || s == "i8") return mtlite::kernels::WeightType::i8;
  throw mtlite::Error("--dtype: '" + s + "' is not one of f32, f16, int8");
}

mtlite::DType table_type(const std::string& s) {
  if (s == "f32") return mtlite::DType::f32;
  if (s == "f16") return mtlite::DType::f16;
  if (s == "int8" || s == "u8") return mtlite::DType::u8;
  if (s == "int4" || s == "u4") return mtlite::DType::u4;
  throw mtlite::Error("--embeddings: '" + s + "' is not one of f32, f16, int8, int4");
}

mtlite::ConvertOptions convert_options(const cli::Args& args) {
  mtlite::ConvertOptions options;
  options.dense = dense_type(args.get("dtype"));
  options.embeddings = table_type(args.get("embeddings"));
  options.drop_aux = args.has("drop-aux");
  return options;
}

struct TaskCost {
  std::string output;
  double median_abs_diff = 0, p99_abs_diff = 0, max_abs_diff = 0;  // per-row |converted - float|
  double auc_float = NAN, auc_converted = NAN;
};

// The quantile q of `v` by nearest rank (v reordered; not empty).
double quantile(std::vector<double>& v, double q) {
  const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - (q > 0 ? 1 : 0);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// What the conversion costs, measured on real rows (--calib) against the float model's scores.
struct Calibration {
  std::string path;
  mtlite::data::Dataset rows;
  std::map<std::string, std::vector<float>> float_scores;  // the float model's, by output name
  std::vector<TaskCost> costs;                   // of the model written
  std::vector<std::string> finer;                // what --max-p99 kept one step finer

  // Every output's score changes per row (median, p99, max), and for a task's binary output the
  // AUC before and after.
  std::vector<TaskCost> measure(const mtlite::Model& model) const {
    const auto after = cli::score_dataset(model, rows);
    std::vector<TaskCost> out;
    for (std::size_t o = 0; o < model.num_outputs(); ++o) {
      TaskCost c;
      c.output = model.output_name(o);
      const std::vector<float>& before = float_scores.at(c.output);
      std::vector<double> diff(rows.rows);
      for (std::size_t r = 0; r < rows.rows; ++r) diff[r] = std::fabs(static_cast<double>(after[o][r]) - before[r]);
      c.max_abs_diff = *std::max_element(diff.begin(), diff.end());
      c.p99_abs_diff = quantile(diff, 0.99);
      c.median_abs_diff = quantile(diff, 0.5);
      const int task = model.spec().output_task(o);
      if (task >= 0 && model.spec().output_binary(o)) {
        const cli::TaskColumn t = cli::task_column(rows, static_cast<std::size_t>(task));
        c.auc_float = mtlite::auc(before, t.labels, rows.weights, t.mask);
        c.auc_converted = mtlite::auc(after[o], t.labels, rows.weights, t.mask);
      }
      out.push_back(c);
    }
    return out;
  }

  mtlite::Json costs_json() const {
    mtlite::Json out = mtlite::Json::array();
    for (const TaskCost& c : costs) {
      mtlite::Json j = mtlite::Json::object()
                           .set("output", c.output)
                           .set("median_abs_diff", c.median_abs_diff)
                           .set("p99_abs_diff", c.p99_abs_diff)
                           .set("max_abs_diff", c.max_abs_diff);
      if (!std::isnan(c.auc_float))
        j.set("auc_float", c.auc_float).set("auc_converted", c.auc_converted).set("auc_change", c.auc_converted - c.auc_float);
      out.push(std::move(j));
    }
    return out;
  }
};

double worst_p99(const std::vector<TaskCost>& costs) {
  double worst = 0;
  for (const TaskCost& c : costs) worst = std::max(worst, c.p99_abs_diff);
  return worst;
}

std::optional<Calibration> calibrate(const cli::Args& args, const cli::FloatModel& input) {
  if (!args.has("calib")) {
    if (args.has("max-p99")) throw mtlite::Error("--max-p99 needs --calib: the rows on which to measure the p99");
    return std::nullopt;
  }
  if (!input.binding) throw mtlite::Error("--calib needs the model's data binding: the input carries none (give --config model.json with \"data\" and column bindings)");
  if (!input.binding->fitted()) throw mtlite::Error("--calib: the data binding is incomplete: " + input.binding->unfitted_reason());
  Calibration c{args.get("calib"), mtlite::data::load(args.get("calib"), *input.binding, input.spec), {}, {}, {}};
  if (c.rows.rows == 0) throw mtlite::Error("--calib: '" + c.path + "' has no rows");
  const mtlite::Model float_model(input.spec, input.weights);
  std::vector<std::vector<float>> scores = cli::score_dataset(float_model, c.rows);
  for (std::size_t o = 0; o < float_model.num_outputs(); ++o) c.float_scores[float_model.output_name(o)] = std::move(scores[o]);
  return c;
}

mtlite::Converted convert_model(const cli::FloatModel& input, const mtlite::ConvertOptions& options) {
  try {
    return mtlite::convert(input.spec, input.weights, options);
  } catch (const mtlite::TensorError& e) {
    throw input.in_file_terms(e);
  }
}

// --max-p99: each quantized tensor is tried one step finer on its own and ranked by the worst
// p99 that leaves; they are made finer in that order until the target holds. Returns the
// conversion chosen (calib.costs and calib.finer are its own); warns when even every tensor
// finer misses the target.
mtlite::Converted meet_p99(const cli::FloatModel& input, mtlite::ConvertOptions options, mtlite::Converted converted,
                           Calibration& calib, double target) {
  calib.costs = calib.measure(converted.model());
  if (worst_p99(calib.costs) <= target) return converted;
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [name, entry] : converted.report.items()) {
    const std::string dtype = entry.at("dtype").as_string();
    if (dtype != "i8" && dtype != "u4" && dtype != "u8") continue;
    mtlite::ConvertOptions one = options;
    one.finer.insert(name);
    ranked.emplace_back(worst_p99(calib.measure(convert_model(input, one).model())), name);
  }
  std::sort(ranked.begin(), ranked.end());
  for (const auto& [p99, name] : ranked) {
    options.finer.insert(name);
    calib.finer.push_back(name);
    converted = convert_model(input, options);
    calib.costs = calib.measure(converted.model());
    if (worst_p99(calib.costs) <= target) return converted;
  }
  std::fprintf(stderr, "warning: --max-p99 %g: the worst p99 is %g with every quantized tensor one step finer\n",
               target, worst_p99(calib.costs));
  return converted;
}

// The self-test: the first calibration rows, or seeded random ones, with the tolerance that fits
// the converted model's coarsest layers.
mtlite::Json record_test(const mtlite::Model& model, const std::optional<Calibration>& calib, std::size_t rows) {
  const float tolerance = mtlite::selftest_tolerance(mtlite::coarsest_weight_type(model.plan()));
  if (calib) {
    std::vector<mtlite::Bag> bags;
    const mtlite::Batch batch = calib->rows.batch(0, std::min(rows, calib->rows.rows), bags);
    mtlite::Session session(model, batch.rows);
    return mtlite::record_selftest(session, batch, tolerance);
  }
  const mtlite::RandomInputs random(model.spec(), rows, 1);
  mtlite::Session session(model, rows);
  return mtlite::record_selftest(session, random.batch(), tolerance);
}

// The metadata kept beside the tensors: what came with the input, how it was converted, the self-test.
mtlite::Json metadata(const cli::Args& args, const cli::FloatModel& input, const mtlite::Converted& converted,
                      const std::optional<Calibration>& calib, mtlite::Json test) {
  mtlite::Json settings = mtlite::Json::object()
                              .set("input", args.positional[0])
                              .set("dtype", args.get("dtype"))
                              .set("embeddings", args.get("embeddings"))
                              .set("drop_aux", args.has("drop-aux"))
                              .set("tensors", converted.report);
  if (args.has("max-p99")) settings.set("max_p99", args.real("max-p99", 0.0, 1e30));
  if (calib)
    settings.set("calibration",
                 mtlite::Json::object().set("data", calib->path).set("rows", calib->rows.rows).set("outputs", calib->costs_json()));
  mtlite::Json extra = input.carried;
  if (input.binding) extra.set("data", input.binding->to_json());
  extra.set("converter", settings).set("selftest", std::move(test));
  return extra;
}

// What was written, as the report shows it.
struct Written {
  std::string in_path, out_path;
  std::uint64_t in_bytes = 0, out_bytes = 0;
  std::size_t test_rows = 0;
  double seconds = 0;
  double ratio() const { return static_cast<double>(out_bytes) / static_cast<double>(in_bytes); }
};

void print_json(const Written& w, const mtlite::Model& model, const std::optional<Calibration>& calib) {
  mtlite::Json out = mtlite::Json::object()
                         .set("input", w.in_path)
                         .set("output", w.out_path)
                         .set("input_bytes", w.in_bytes)
                         .set("output_bytes", w.out_bytes)
                         .set("size_ratio", w.ratio())
                         .set("parameters", model.parameter_count())
                         .set("outputs", static_cast<std::uint64_t>(model.num_outputs()))
                         .set("selftest", "passed")
                         .set("seconds", w.seconds);
  if (calib) {
    mtlite::Json finer = mtlite::Json::array();
    for (const std::string& name : calib->finer) finer.push(name);
    out.set("calibration",
            mtlite::Json::object().set("rows", calib->rows.rows).set("outputs", calib->costs_json()).set("finer", std::move(finer)));
  }
  std::printf("%s\n", out.dump().c_str());
}

void print_text(const Written& w, const cli::Args& args, const mtlite::Model& model,
                const std::optional<Calibration>& calib) {
  std::printf("%s -> %s: %s -> %s (%.3f x), dense %s, embeddings %s%s\n", w.in_path.c_str(), w.out_path.c_str(),
              cli::bytes_string(w.in_bytes).c_str(), cli::bytes_string(w.out_bytes).c_str(), w.ratio(),
              args.get("dtype").c_str(), args.get("embeddings").c_str(),
              args.has("drop-aux") ? ", auxiliary tasks dropped" : "");
  std::printf("outputs:");
  for (std::size_t o = 0; o < model.num_outputs(); ++o) std::printf(" %s", model.output_name(o).c_str());
  std::printf("\n");
  if (calib) {
    std::printf("\ncalibration on %zu rows of %s\n", calib->rows.rows, calib->path.c_str());
    std::printf("  %-20s %26s %12s %12s %12s\n", "output", "|diff| median / p99 / max", "AUC float", "AUC conv.",
                "AUC change");
    for (const TaskCost& c : calib->costs) {
      std::printf("  %-20s %8.6f %8.6f %8.6f", c.output.c_str(), c.median_abs_diff, c.p99_abs_diff, c.max_abs_diff);
      if (!std::isnan(c.auc_float))
        std::printf(" %12.6f %12.6f %+12.6f", c.auc_float, c.auc_converted, c.auc_converted - c.auc_float);
      std::printf("\n");
    }
    if (!calib->finer.empty()) {
      std::printf("kept one step finer for --max-p99 %g:", args.real("max-p99", 0.0, 1e30));
      for (const std::string& name : calib->finer) std::printf(" %s", name.c_str());
      std::printf("\n");
    }
  }
  std::printf("self-test: %zu rows embedded and passed on reload (%.2f s)\n", w.test_rows, w.seconds);
}

}  // namespace

int cmd_convert(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (const auto rc = args.help_or_usage(args.positional.size() == 1 && args.has("out"))) return *rc;
  const auto t0 = std::chrono::steady_clock::now();
  Written w{args.positional[0], args.get("out")};
  const mtlite::ConvertOptions options = convert_options(args);
  const auto selftest_rows = static_cast<std::size_t>(args.integer("selftest-rows", 1, 1024));

  const cli::FloatModel input = cli::read_float_model(w.in_path, args.get("config"));
  cli::warn_huge_weights(input.weights, w.in_path);
  std::optional<Calibration> calib = calibrate(args, input);
  mtlite::Converted converted = convert_model(input, options);
  if (calib)
    converted = meet_p99(input, options, std::move(converted), *calib,
                         args.has("max-p99") ? args.real("max-p99", 0.0, 1e30) : INFINITY);
  const mtlite::Model model = converted.model();
  mtlite::Json test = record_test(model, calib, selftest_rows);
  w.test_rows = static_cast<std::size_t>(test.at("rows").as_uint64());
  mtlite::model_writer(converted.spec, converted.tensors, metadata(args, input, converted, calib, std::move(test)))
      .write(w.out_path);

  // Read it back the way an app will, and run its self-test.
  const mtlite::Model written = mtlite::Model::load(w.out_path);
  written.verify();

  w.in_bytes = cli::file_size(w.in_path);
  w.out_bytes = cli::file_size(w.out_path);
  w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (args.has("json")) print_json(w, written, calib);
  else print_text(w, args, written, calib);
  return 0;
}
