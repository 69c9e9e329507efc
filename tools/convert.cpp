// mtlite convert IN --out OUT.mtl [--dtype f32|f16|int8] [--embeddings f32|f16|int8|int4]
//                [--drop-aux] [--calib DATA] [--config model.json] [--json]
// Float weights in, a deployable model file out: quantized per tensor, packed for the kernels,
// with a self-test; --calib measures what the quantization costs on real rows.
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/random_inputs.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "model_io.hpp"

namespace {

const char* kUsage =
    "usage: mtlite convert IN --out OUT.mtl [options]\n"
    "  IN                a float .mtl model (from mtlite train), or a .safetensors file with --config\n"
    "  --config FILE     model.json describing a .safetensors input (architecture, features, tasks,\n"
    "                    optional \"tensors\" name map and data bindings)\n"
    "  --dtype T         dense layers: f32 (default), f16 or int8; with int8, gates and each tower's\n"
    "                    last layer stay in floating point (f16)\n"
    "  --embeddings T    embedding tables: f32 (default), f16, int8 or int4 (row-wise scale and offset)\n"
    "  --drop-aux        remove auxiliary tasks: their towers and whatever only they use\n"
    "  --calib DATA      rows (CSV/TSV, plain or gzip, read with the model's data binding) on which to\n"
    "                    report, per task, the largest score change and the AUC change; the first rows\n"
    "                    become the file's self-test\n"
    "  --selftest-rows N rows kept as the self-test (default 4)\n"
    "  --json            print one JSON object\n";

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

struct TaskCost {
  std::string output;
  double max_abs_diff = 0;
  double auc_float = NAN, auc_converted = NAN;
};

}  // namespace

int cmd_convert(int argc, char** argv) {
  const cli::Args args(argc, argv, {"drop-aux", "json", "help"},
                       {"out", "dtype", "embeddings", "calib", "config", "selftest-rows"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.positional.size() != 1 || !args.has("out")) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::string in_path = args.positional[0], out_path = args.get("out");
  mtlite::ConvertOptions options;
  options.dense = dense_type(args.get("dtype", "f32"));
  options.embeddings = table_type(args.get("embeddings", "f32"));
  options.drop_aux = args.has("drop-aux");
  const auto selftest_rows = static_cast<std::size_t>(args.integer("selftest-rows", 4, 1, 1024));

  cli::FloatModel input = cli::read_float_model(in_path, args.get("config"));
  const mtlite::Converted converted = mtlite::convert(input.spec, input.weights, options);
  const mtlite::Model float_model(input.spec, input.weights);
  const mtlite::Model model = converted.model();

  // Calibration: the cost of every choice, measured on real rows.
  std::vector<TaskCost> costs;
  std::size_t calib_rows = 0;
  std::optional<mtlite::data::Dataset> calib;
  if (args.has("calib")) {
    if (!input.binding) throw mtlite::Error("--calib needs the model's data binding: the input carries none (give --config model.json with \"data\" and column bindings)");
    if (!input.binding->fitted()) throw mtlite::Error("--calib: the data binding is incomplete: " + input.binding->unfitted_reason());
    calib = mtlite::data::load(args.get("calib"), *input.binding, input.spec);
    calib_rows = calib->rows;
    if (calib_rows == 0) throw mtlite::Error("--calib: '" + args.get("calib") + "' has no rows");
    const auto before = cli::score_dataset(float_model, *calib);
    const auto after = cli::score_dataset(model, *calib);
    for (std::size_t o = 0; o < model.num_outputs(); ++o) {
      TaskCost c;
      c.output = model.output_name(o);
      const int fo = float_model.output_index(c.output);
      for (std::size_t r = 0; r < calib_rows; ++r)
        c.max_abs_diff = std::max(c.max_abs_diff, static_cast<double>(std::fabs(after[o][r] - before[static_cast<std::size_t>(fo)][r])));
      const int task = converted.spec.output_task(o);
      if (task >= 0 && converted.spec.tasks[static_cast<std::size_t>(task)].kind == mtlite::TaskKind::binary) {
        const cli::TaskColumn t = cli::task_column(*calib, static_cast<std::size_t>(task));
        c.auc_float = mtlite::auc(before[static_cast<std::size_t>(fo)], t.labels, calib->weights, t.mask);
        c.auc_converted = mtlite::auc(after[o], t.labels, calib->weights, t.mask);
      }
      costs.push_back(c);
    }
  }

  // The self-test: the first calibration rows, or seeded random ones.
  const float tolerance = options.dense == mtlite::kernels::WeightType::i8 ? 2e-3f
                          : options.dense == mtlite::kernels::WeightType::f16 ? 1e-4f
                                                                              : 1e-5f;
  mtlite::Json test;
  if (calib) {
    std::vector<mtlite::Bag> bags;
    const mtlite::Batch rows = calib->batch(0, std::min(selftest_rows, calib_rows), bags);
    mtlite::Session session(model, rows.rows);
    test = mtlite::record_selftest(session, rows, tolerance);
  } else {
    const mtlite::RandomInputs random(converted.spec, selftest_rows, 1);
    mtlite::Session session(model, selftest_rows);
    test = mtlite::record_selftest(session, random.batch(), tolerance);
  }

  mtlite::Json settings = mtlite::Json::object()
                              .set("input", in_path)
                              .set("dtype", args.get("dtype", "f32"))
                              .set("embeddings", args.get("embeddings", "f32"))
                              .set("drop_aux", options.drop_aux)
                              .set("tensors", converted.report);
  mtlite::Json cost_json = mtlite::Json::array();
  for (const TaskCost& c : costs) {
    mtlite::Json j = mtlite::Json::object().set("output", c.output).set("max_abs_diff", c.max_abs_diff);
    if (!std::isnan(c.auc_float))
      j.set("auc_float", c.auc_float).set("auc_converted", c.auc_converted).set("auc_change", c.auc_converted - c.auc_float);
    cost_json.push(std::move(j));
  }
  if (calib) settings.set("calibration", mtlite::Json::object().set("data", args.get("calib")).set("rows", calib_rows).set("outputs", cost_json));

  const std::size_t test_rows = static_cast<std::size_t>(test.at("rows").as_uint64());
  mtlite::Json extra = input.carried;
  if (input.binding) extra.set("data", input.binding->to_json());
  extra.set("converter", settings).set("selftest", std::move(test));
  mtlite::model_writer(converted.spec, converted.tensors, std::move(extra)).write(out_path);

  // Read it back the way an app will, and run its self-test.
  const mtlite::Model written = mtlite::Model::load(out_path);
  written.verify();

  const std::uint64_t in_bytes = cli::file_size(in_path), out_bytes = cli::file_size(out_path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (args.has("json")) {
    mtlite::Json out = mtlite::Json::object()
                           .set("input", in_path)
                           .set("output", out_path)
                           .set("input_bytes", in_bytes)
                           .set("output_bytes", out_bytes)
                           .set("size_ratio", static_cast<double>(out_bytes) / static_cast<double>(in_bytes))
                           .set("parameters", written.parameter_count())
                           .set("outputs", static_cast<std::uint64_t>(written.num_outputs()))
                           .set("selftest", "passed")
                           .set("seconds", seconds);
    if (calib) out.set("calibration", mtlite::Json::object().set("rows", calib_rows).set("outputs", cost_json));
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%s -> %s: %s -> %s (%.3f x), dense %s, embeddings %s%s\n", in_path.c_str(), out_path.c_str(),
              cli::bytes_string(in_bytes).c_str(), cli::bytes_string(out_bytes).c_str(),
              static_cast<double>(out_bytes) / static_cast<double>(in_bytes), args.get("dtype", "f32").c_str(),
              args.get("embeddings", "f32").c_str(), options.drop_aux ? ", auxiliary tasks dropped" : "");
  std::printf("outputs:");
  for (std::size_t o = 0; o < written.num_outputs(); ++o) std::printf(" %s", written.output_name(o).c_str());
  std::printf("\n");
  if (calib) {
    std::printf("\ncalibration on %zu rows of %s\n", calib_rows, args.get("calib").c_str());
    std::printf("  %-20s %14s %12s %12s %12s\n", "output", "max |diff|", "AUC float", "AUC conv.", "AUC change");
    for (const TaskCost& c : costs) {
      if (std::isnan(c.auc_float))
        std::printf("  %-20s %14.6f\n", c.output.c_str(), c.max_abs_diff);
      else
        std::printf("  %-20s %14.6f %12.6f %12.6f %+12.6f\n", c.output.c_str(), c.max_abs_diff, c.auc_float,
                    c.auc_converted, c.auc_converted - c.auc_float);
    }
  }
  std::printf("self-test: %zu rows embedded and passed on reload (%.2f s)\n", test_rows, seconds);
  return 0;
}
