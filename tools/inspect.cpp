// mtlite inspect MODEL [--json]
// What a model file holds: architecture, tasks, features, gates, every tensor's dtype and bytes.
#include <mtlite/mtlite.hpp>

#include <cstdio>
#include <string>

#include "cli.hpp"
#include "commands.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite inspect MODEL.mtl [options]\n"
    "  prints the architecture, tasks, features, gates, parameter counts and every tensor's\n"
    "  dtype, layout, shape and bytes\n",
    {
        {"json", nullptr, "print one JSON object instead of text"},
    }};

std::string dims(const std::vector<std::uint64_t>& shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

mtlite::Json inspect_json(const std::string& path, const mtlite::Model& model, std::uint64_t file_bytes) {
  const mtlite::Spec& spec = model.spec();
  mtlite::Json tensors = mtlite::Json::array();
  for (const mtlite::TensorInfo& t : model.tensors()) {
    mtlite::Json shape = mtlite::Json::array();
    for (std::uint64_t d : t.shape) shape.push(d);
    tensors.push(mtlite::Json::object()
                     .set("name", t.name)
                     .set("dtype", mtlite::to_string(t.dtype))
                     .set("layout", mtlite::to_string(t.layout))
                     .set("shape", std::move(shape))
                     .set("bytes", t.bytes));
  }
  mtlite::Json gates = mtlite::Json::array();
  for (std::size_t g = 0; g < model.num_gates(); ++g)
    gates.push(mtlite::Json::object().set("name", model.gate_name(g)).set("experts", model.gate_width(g)));
  mtlite::Json outputs = mtlite::Json::array();
  for (std::size_t o = 0; o < model.num_outputs(); ++o) outputs.push(model.output_name(o));
  mtlite::Json out = mtlite::Json::object()
                         .set("path", path)
                         .set("file_bytes", file_bytes)
                         .set("spec", mtlite::spec_to_json(spec))
                         .set("outputs", std::move(outputs))
                         .set("gates", std::move(gates))
                         .set("parameters", model.parameter_count())
                         .set("tensor_bytes", model.weight_bytes())
                         .set("copied_at_load_bytes", model.copied_bytes())
                         .set("selftest", model.has_selftest())
                         .set("tensors", std::move(tensors))
                         .set("kernels", mtlite::kernels::table().level);
  if (const mtlite::Json* c = model.metadata().find("converter")) out.set("converter", *c);
  return out;
}

void print_text(const std::string& path, const mtlite::Model& model, std::uint64_t file_bytes) {
  const mtlite::Spec& spec = model.spec();
  std::printf("%s: %s model, %llu parameters, file %s\n", path.c_str(), mtlite::to_string(spec.architecture),
              static_cast<unsigned long long>(model.parameter_count()), cli::bytes_string(file_bytes).c_str());
  std::printf("\ntasks\n");
  for (const mtlite::Task& t : spec.tasks)
    std::printf("  %-20s %-10s %-9s tower %-12s%s\n", t.name.c_str(), t.kind == mtlite::TaskKind::binary ? "binary" : "regression",
                t.role == mtlite::TaskRole::main ? "main" : "auxiliary", cli::mlp_string(t.tower).c_str(),
                t.served ? "" : "  (not served: dropped by convert)");
  if (spec.esmm) std::printf("  %-20s pCTR x pCVR (%s x %s)\n", spec.esmm->ctcvr.c_str(), spec.esmm->ctr.c_str(), spec.esmm->cvr.c_str());
  switch (spec.architecture) {
    case mtlite::Architecture::shared_bottom: std::printf("\nbottom %s\n", cli::mlp_string(spec.bottom).c_str()); break;
    case mtlite::Architecture::omoe:
    case mtlite::Architecture::mmoe:
      std::printf("\nexperts %u x %s\n", spec.num_experts, cli::mlp_string(spec.expert).c_str());
      break;
    case mtlite::Architecture::ple:
      for (std::size_t l = 0; l < spec.levels.size(); ++l)
        std::printf("\nlevel %zu: %u experts per task + %u shared, each %s", l, spec.levels[l].task_experts,
                    spec.levels[l].shared_experts, cli::mlp_string(spec.levels[l].expert).c_str());
      std::printf("\n");
      break;
    default: break;
  }
  std::printf("\nfeatures (input width %zu)\n", model.input_dim());
  for (const mtlite::Feature& f : spec.features) {
    if (f.kind == mtlite::FeatureKind::dense)
      std::printf("  %-24s dense %s\n", f.name.c_str(),
                  f.normalization == mtlite::Normalization::standardize         ? "standardized"
                  : f.normalization == mtlite::Normalization::log1p             ? "log1p"
                  : f.normalization == mtlite::Normalization::log1p_standardize ? "log1p, then standardized"
                                                                                : "");
    else
      std::printf("  %-24s %s, %s %llu, dim %u%s\n", f.name.c_str(), mtlite::to_string(f.kind),
                  f.mapping == mtlite::IdMapping::hashing ? "hashed into" : "vocabulary",
                  static_cast<unsigned long long>(f.size), f.embedding_dim,
                  f.kind == mtlite::FeatureKind::multi_hot ? (f.pooling == mtlite::Pooling::mean ? ", mean" : ", sum") : "");
  }
  if (model.num_gates()) {
    std::printf("\ngates\n");
    for (std::size_t g = 0; g < model.num_gates(); ++g)
      std::printf("  %-24s over %zu experts\n", model.gate_name(g).c_str(), model.gate_width(g));
  }
  std::printf("\ntensors\n");
  for (const mtlite::TensorInfo& t : model.tensors())
    std::printf("  %-36s %-4s %-11s %-12s %10s\n", t.name.c_str(), mtlite::to_string(t.dtype),
                mtlite::to_string(t.layout), dims(t.shape).c_str(), cli::bytes_string(t.bytes).c_str());
  std::printf("  %-36s %43s\n", "total", cli::bytes_string(model.weight_bytes()).c_str());
  std::printf("\nloaded by memory map; copied at load: %s; self-test: %s\n", cli::bytes_string(model.copied_bytes()).c_str(),
              model.has_selftest() ? "present" : "none");
  std::printf("kernels on this CPU: %s\n", mtlite::kernels::describe(mtlite::kernels::table()).c_str());
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (const auto rc = args.help_or_usage(args.positional.size() == 1)) return *rc;
  const std::string path = args.positional[0];
  mtlite::LoadOptions load;
  load.verify_checksum = true;  // a diagnostic: also tell a damaged file (apps skip the hash)
  const mtlite::Model model = mtlite::Model::load(path, load);
  const std::uint64_t file_bytes = cli::file_size(path);
  if (args.has("json")) std::printf("%s\n", inspect_json(path, model, file_bytes).dump().c_str());
  else print_text(path, model, file_bytes);
  return 0;
}
