// mtlite encode: rows read by the data layer that train, eval and predict use, written as tensors
// for a trainer outside mtlite (tools/python/mtlite_torch.py's EncodedRows), so that a model
// trained there sees exactly the ids and values the runtime will feed it.
//
// DIR/model.json is the fitted model.json (DataBinding::model_json): the spec with its fitted
// sizes and statistics, and every binding with its vocabulary and fill value. DIR/NAME.safetensors
// holds one file's rows, features in spec order, nothing normalised (the model does that):
//   dense                F32 [rows, dense features]
//   ids                  I64 [rows, categorical features]
//   bag.<feature>.ids    I64 [items]      one pair per multi-hot feature: row r's ids are
//   bag.<feature>.offsets I64 [rows + 1]  ids[offsets[r] .. offsets[r + 1])
//   labels               F32 [rows, tasks]  (0 where unlabelled)
//   mask                 U8  [rows, tasks]  1 = labelled
//   weights              F32 [rows]
//   groups               I64 [rows]        (0 without a group column)
// and "__metadata__": {"format": "mtlite-rows", "version": "1", "source": FILE, and "dense",
// "categorical", "multi_hot", "tasks": each a JSON list of names, as a string}.
#include <mtlite/offline/durable_file.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "model_io.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite encode (--config model.json --fit TRAIN | --model MODEL.mtl) --out DIR DATA...\n"
    "\n"
    "Reads every DATA file (CSV/TSV, plain or gzip) with the data bindings of model.json, fitted on\n"
    "TRAIN as mtlite train fits them, or with those a model file keeps, and writes DIR/model.json (the\n"
    "fitted model.json: vocabularies, fill values and statistics included) and one DIR/NAME.safetensors\n"
    "per DATA with its encoded rows. DATA is FILE or NAME=FILE; NAME defaults to FILE's name without\n"
    "its folder and a final .gz. Files are written atomically.\n"
    "\n",
    {
        {"config", "FILE", "model.json with data bindings, fitted on --fit"},
        {"fit", "TRAIN", "the training rows that vocabularies, fill values and statistics are fitted on"},
        {"model", "MODEL.mtl", "use the data bindings this model file keeps instead (nothing is fitted)"},
        {"out", "DIR", "the folder to write to (created if missing; its parent must exist)"},
        cli::kMaxRows,
        cli::kSkipBadRows,
        {"json", nullptr, "print one JSON object instead of text"},
    }};

// A DATA argument: the output name and the file.
struct Input {
  std::string name, path;
};

Input parse_input(const std::string& arg) {
  Input in;
  const std::size_t eq = arg.find('=');
  if (eq != std::string::npos) {
    in.name = arg.substr(0, eq);
    in.path = arg.substr(eq + 1);
  } else {
    in.path = arg;
    in.name = arg.substr(arg.find_last_of('/') + 1);
    if (in.name.size() > 3 && in.name.compare(in.name.size() - 3, 3, ".gz") == 0) in.name.resize(in.name.size() - 3);
  }
  if (in.name.empty() || in.path.empty() || in.name.find('/') != std::string::npos || in.name == "model")
    throw mtlite::Error("'" + arg + "': expected FILE or NAME=FILE, NAME a file name other than 'model'");
  return in;
}

// The names of the spec's features of one kind, as a JSON list.
mtlite::Json names_of(const mtlite::Spec& spec, mtlite::FeatureKind kind) {
  mtlite::Json out = mtlite::Json::array();
  for (const mtlite::Feature& f : spec.features)
    if (f.kind == kind) out.push(f.name);
  return out;
}

bool little_endian() {
  const std::uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// Writes `data`'s rows as described at the top of this file.
void write_rows(const std::string& path, const std::string& source, const mtlite::Spec& spec,
                const mtlite::data::Dataset& data) {
  using mtlite::SafetensorsDecl;
  const std::uint64_t rows = data.rows;
  std::vector<SafetensorsDecl> decls = {{"dense", "F32", 4, {rows, data.num_dense}},
                                        {"ids", "I64", 8, {rows, data.num_categorical}}};
  std::vector<const mtlite::Feature*> multi_hot;
  for (const mtlite::Feature& f : spec.features)
    if (f.kind == mtlite::FeatureKind::multi_hot) multi_hot.push_back(&f);
  for (std::size_t b = 0; b < multi_hot.size(); ++b) {
    decls.push_back({"bag." + multi_hot[b]->name + ".ids", "I64", 8, {data.bags[b].ids.size()}});
    decls.push_back({"bag." + multi_hot[b]->name + ".offsets", "I64", 8, {rows + 1}});
  }
  decls.push_back({"labels", "F32", 4, {rows, data.num_tasks}});
  decls.push_back({"mask", "U8", 1, {rows, data.num_tasks}});
  decls.push_back({"weights", "F32", 4, {rows}});
  decls.push_back({"groups", "I64", 8, {rows}});
  mtlite::Json tasks = mtlite::Json::array();
  for (const mtlite::Task& t : spec.tasks) tasks.push(t.name);
  const mtlite::Json meta = mtlite::Json::object()
                                .set("format", "mtlite-rows")
                                .set("version", "1")
                                .set("source", source)
                                .set("dense", names_of(spec, mtlite::FeatureKind::dense).dump())
                                .set("categorical", names_of(spec, mtlite::FeatureKind::categorical).dump())
                                .set("multi_hot", names_of(spec, mtlite::FeatureKind::multi_hot).dump())
                                .set("tasks", tasks.dump());

  mtlite::DurableFile file(path);
  const std::string header = mtlite::safetensors_header(decls, meta);
  file.write(header.data(), header.size());
  auto put = [&](const auto& v) { file.write(v.data(), v.size() * sizeof(v[0])); };
  put(data.dense);
  put(data.ids);
  for (const mtlite::data::Dataset::Bags& bag : data.bags) {
    put(bag.ids);
    const std::vector<std::int64_t> offsets(bag.offsets.begin(), bag.offsets.end());
    put(offsets);
  }
  put(data.labels);
  put(data.mask);
  put(data.weights);
  put(data.groups);
  file.commit();
}

void write_text(const std::string& path, const std::string& text) {
  mtlite::DurableFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace

int cmd_encode(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  const bool from_config = args.has("config") && args.has("fit") && !args.has("model");
  const bool from_model = args.has("model") && !args.has("config") && !args.has("fit");
  if (const auto rc = args.help_or_usage((from_config || from_model) && args.has("out") && !args.positional.empty()))
    return *rc;
  if (!little_endian()) throw mtlite::Error("encode writes little-endian tensors, and this host is big-endian");
  std::vector<Input> inputs;
  std::set<std::string> names;
  for (const std::string& a : args.positional) {
    inputs.push_back(parse_input(a));
    if (!names.insert(inputs.back().name).second)
      throw mtlite::Error("two DATA files are named '" + inputs.back().name + "': name them with NAME=FILE");
  }
  const mtlite::data::ReadOptions read = cli::read_options(args);
  const bool json = args.has("json");

  mtlite::Spec spec;
  mtlite::data::DataBinding binding;
  mtlite::Json training;  // model.json's "training" block, carried to DIR/model.json
  if (from_model) {
    const mtlite::Model model = mtlite::Model::load(args.get("model"));
    spec = model.spec();
    binding = cli::binding_of(model, args.get("model"));
  } else {
    const mtlite::Json model_json = cli::read_json(args.get("config"));
    try {
      binding = mtlite::data::DataBinding::from_json(model_json);
      spec = mtlite::data::DataBinding::spec_from_model_json(model_json);
      if (const mtlite::Json* t = model_json.find("training")) training = *t;
    } catch (const mtlite::Error& e) {
      throw mtlite::Error(args.get("config") + ": " + e.what());
    }
    if (!json) std::printf("fitting the data binding on %s ...\n", args.get("fit").c_str());
    binding.fit(args.get("fit"), spec, read);
  }

  const std::string dir = args.get("out");
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    throw mtlite::Error("--out: cannot create '" + dir + "': " + std::strerror(errno));
  mtlite::Json model_json = binding.model_json(spec);
  if (training.is_object()) model_json.set("training", training);
  write_text(dir + "/model.json", model_json.dump() + "\n");

  mtlite::Json files = mtlite::Json::object();
  for (const Input& in : inputs) {
    const mtlite::data::Dataset data = mtlite::data::load(in.path, binding, spec, read);
    const std::string out = dir + "/" + in.name + ".safetensors";
    write_rows(out, in.path, spec, data);
    files.set(in.name, mtlite::Json::object()
                           .set("data", in.path)
                           .set("out", out)
                           .set("rows", data.rows)
                           .set("skipped_rows", data.report.skipped)
                           .set("bytes", cli::file_size(out)));
    if (!json)
      std::printf("%s: %zu rows%s -> %s (%s)\n", in.path.c_str(), data.rows,
                  data.report.skipped ? (" (" + std::to_string(data.report.skipped) + " malformed rows skipped)").c_str()
                                      : "",
                  out.c_str(), cli::bytes_string(cli::file_size(out)).c_str());
  }
  if (json)
    std::printf("%s\n", mtlite::Json::object().set("model_json", dir + "/model.json").set("files", files).dump().c_str());
  else
    std::printf("wrote %s/model.json\n", dir.c_str());
  return 0;
}
