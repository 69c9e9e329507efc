// mtlite convert IN --out OUT.mtl [options]
// Float weights in, a deployable model file out: quantized per tensor, packed for the kernels,
// with a self-test; --calib measures what the quantization costs on real rows.
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/random_inputs.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
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

// What the conversion costs, measured on real rows (--calib).
struct Calibration {
  std::string path;
  mtlite::data::Dataset rows;
  std::vector<TaskCost> costs;

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

// The q-quantile of `v` by nearest rank (v reordered; not empty).
double quantile(std::vector<double>& v, double q) {
  const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - (q > 0 ? 1 : 0);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// Every output's score changes per row (median, p99, max), and for a task's binary output the
// AUC before and after.
std::vector<TaskCost> task_costs(const mtlite::Model& float_model, const mtlite::Model& model,
                                 const mtlite::data::Dataset& rows) {
  const auto before = cli::score_dataset(float_model, rows);
  const auto after = cli::score_dataset(model, rows);
  std::vector<TaskCost> costs;
  for (std::size_t o = 0; o < model.num_outputs(); ++o) {
    TaskCost c;
    c.output = model.output_name(o);
    const auto fo = static_cast<std::size_t>(float_model.output_index(c.output));
    std::vector<double> diff(rows.rows);
    for (std::size_t r = 0; r < rows.rows; ++r) diff[r] = std::fabs(static_cast<double>(after[o][r]) - before[fo][r]);
    c.max_abs_diff = *std::max_element(diff.begin(), diff.end());
    c.p99_abs_diff = quantile(diff, 0.99);
    c.median_abs_diff = quantile(diff, 0.5);
    const int task = model.spec().output_task(o);
    if (task >= 0 && model.spec().output_binary(o)) {
      const cli::TaskColumn t = cli::task_column(rows, static_cast<std::size_t>(task));
      c.auc_float = mtlite::auc(before[fo], t.labels, rows.weights, t.mask);
      c.auc_converted = mtlite::auc(after[o], t.labels, rows.weights, t.mask);
    }
    costs.push_back(c);
  }
  return costs;
}

std::optional<Calibration> calibrate(const cli::Args& args, const cli::FloatModel& input, const mtlite::Model& model) {
  if (!args.has("calib")) return std::nullopt;
  if (!input.binding) throw mtlite::Error("--calib needs the model's data binding: the input carries none (give --config model.json with \"data\" and column bindings)");
  if (!input.binding->fitted()) throw mtlite::Error("--calib: the data binding is incomplete: " + input.binding->unfitted_reason());
  Calibration c{args.get("calib"), mtlite::data::load(args.get("calib"), *input.binding, input.spec), {}};
  if (c.rows.rows == 0) throw mtlite::Error("--calib: '" + c.path + "' has no rows");
  c.costs = task_costs(mtlite::Model(input.spec, input.weights), model, c.rows);
  return c;
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
  if (calib) out.set("calibration", mtlite::Json::object().set("rows", calib->rows.rows).set("outputs", calib->costs_json()));
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
  const mtlite::Converted converted = [&] {
    try {
      return mtlite::convert(input.spec, input.weights, options);
    } catch (const mtlite::TensorError& e) {
      throw input.in_file_terms(e);
    }
  }();
  const mtlite::Model model = converted.model();
  const std::optional<Calibration> calib = calibrate(args, input, model);
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
