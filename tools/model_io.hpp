// What several subcommands share: reading a float model (a .mtl checkpoint, or .safetensors plus
// model.json), the data binding a model carries, and scoring a whole dataset.
//
// Resources of the readers, for a file of n bytes: read_json O(n) time, at most 2n + 64 KiB
// (n <= 32 MiB) for the text plus 40n for the JSON tree; a .mtl file goes through MappedFile
// (format/mapped_file.hpp has its contract), a .safetensors file through read_safetensors,
// which takes regular files only and holds their n bytes plus the converted tensors.
#pragma once

#include <mtlite/mtlite.hpp>
#include <mtlite/offline/convert/convert.hpp>
#include <mtlite/offline/convert/safetensors.hpp>
#include <mtlite/offline/metrics.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "data/dataset.hpp"

namespace cli {

// The most a JSON configuration (model.json) may hold: twice what a model file's metadata may
// (format/mtl.hpp), for indentation. What it describes has to fit there anyway.
inline constexpr std::size_t kMaxJsonTextBytes = 2 * mtlite::format::kMaxMetaBytes;

// The whole text, read in chunks and refused as soon as it passes the limit: a FIFO or /dev/zero
// costs at most the limit, never what it would go on to deliver.
inline std::string read_text(const std::string& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw mtlite::Error("cannot open '" + path + "'");
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n > limit - text.size())
      throw mtlite::Error(path + ": more than " + std::to_string(limit) + " bytes (" + std::to_string(limit >> 20) +
                          " MiB), the limit for a JSON configuration; is this the right file?");
    text.append(chunk, n);
  }
  if (in.bad()) throw mtlite::Error("cannot read '" + path + "'");
  return text;
}

// model.json and the like. O(n) time; memory: the text, n <= kMaxJsonTextBytes (32 MiB), at
// most 2n + 64 KiB while it grows (the string doubles), however large the file or endless the
// stream; then the parsed tree, which json.hpp keeps to 40n in the worst case.
inline mtlite::Json read_json(const std::string& path) {
  const std::string text = read_text(path, kMaxJsonTextBytes);
  try {
    return mtlite::Json::parse(text);
  } catch (const mtlite::Error& e) {
    throw mtlite::Error(path + ": " + e.what());
  }
}

// True when the file starts with the .mtl magic.
inline bool is_model_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw mtlite::Error("cannot open '" + path + "'");
  unsigned char magic[8] = {};
  const std::size_t n = std::fread(magic, 1, 8, f);
  std::fclose(f);
  return n == 8 && std::memcmp(magic, mtlite::format::kMagic, 8) == 0;
}

// A model as float weights, with what came along with it.
struct FloatModel {
  mtlite::Spec spec;
  mtlite::Weights weights;
  std::optional<mtlite::data::DataBinding> binding;  // how raw rows map onto it, when known
  mtlite::Json carried = mtlite::Json::object();     // metadata to keep (e.g. "training")
  std::map<std::string, std::string> file_names;     // mtlite's name -> the weights file's, as "tensors" maps them

  // `e` with the weights file's name for its tensor beside mtlite's, when "tensors" renamed it.
  mtlite::Error in_file_terms(const mtlite::TensorError& e) const {
    const auto it = file_names.find(e.tensor());
    if (it == file_names.end() || it->second == e.tensor()) return e;
    return mtlite::Error("tensor '" + e.tensor() + "' (the weights file's '" + it->second + "'): " + e.problem());
  }
};

// A float .mtl checkpoint, or a .safetensors file described by `config` (model.json).
inline FloatModel read_float_model(const std::string& path, const std::string& config) {
  FloatModel out;
  if (is_model_file(path)) {
    const mtlite::format::MappedFile file = mtlite::format::MappedFile::open(path);
    const mtlite::format::FileView view = mtlite::format::FileView::parse(file.data(), file.size());
    const mtlite::Json& meta = view.metadata();
    out.spec = mtlite::spec_from_json(meta.at("spec"));
    mtlite::TensorMap tensors;
    for (const mtlite::format::TensorView& t : view.tensors())
      tensors[t.name] = {t.dtype, t.layout, t.shape, t.data, t.bytes};
    out.weights = mtlite::float_weights(out.spec, tensors);
    if (const mtlite::Json* data = meta.find("data")) out.binding = mtlite::data::DataBinding::from_json(*data);
    if (const mtlite::Json* training = meta.find("training")) out.carried.set("training", *training);
    return out;
  }
  if (config.empty())
    throw mtlite::Error("'" + path + "' is not an .mtl model file; a .safetensors input needs --config model.json");
  const mtlite::Json model_json = read_json(config);
  try {
    // With "data", model.json also binds CSV columns; without, it is the spec alone.
    out.spec = model_json.find("data") ? mtlite::data::DataBinding::spec_from_model_json(model_json)
                                       : mtlite::spec_from_json(model_json, {"tensors"});
    out.spec.validate();
  } catch (const mtlite::Error& e) {
    throw mtlite::Error(config + ": " + e.what());
  }
  mtlite::Weights weights = mtlite::read_safetensors(path);
  if (const mtlite::Json* names = model_json.find("tensors")) {
    weights = mtlite::rename_tensors(weights, *names);
    for (const mtlite::Json::Member& m : names->items()) out.file_names[m.first] = m.second.as_string();
  }
  out.weights = std::move(weights);
  if (model_json.find("data")) {
    out.binding = mtlite::data::DataBinding::from_json(model_json);
    // Weights trained elsewhere saw ids and values encoded with some vocabulary, fill values and
    // statistics; they cannot be fitted here, so model.json must give them all.
    if (!out.binding->fitted())
      throw mtlite::Error(config + ": \"data\" binds the columns but is not fitted: " +
                          out.binding->unfitted_reason() +
                          "; give every vocabulary, fill value and standardize mean/stddev the weights were trained "
                          "with (the model.json that mtlite_torch.export() writes has them), or leave \"data\" out to "
                          "convert the weights alone");
    out.binding->check(out.spec);
  }
  return out;
}

// The binding stored in a model file's metadata.
inline mtlite::data::DataBinding binding_of(const mtlite::Model& model, const std::string& what) {
  const mtlite::Json* data = model.metadata().find("data");
  if (!data)
    throw mtlite::Error(what + " has no data binding, so raw rows cannot be read for it: a model file has one when it "
                        "was trained with mtlite train, or converted with a --config model.json that has \"data\" "
                        "(the one mtlite_torch.export() writes)");
  return mtlite::data::DataBinding::from_json(*data);
}

// --max-rows and --skip-bad-rows, declared by train, eval and predict alike and read by
// read_options().
inline const Option kMaxRows{"max-rows", "N", "read at most N rows of each data file"};
inline const Option kSkipBadRows{"skip-bad-rows", nullptr, "skip malformed rows (and report how many) instead of stopping"};

inline mtlite::data::ReadOptions read_options(const Args& args) {
  mtlite::data::ReadOptions read;
  if (args.has(kSkipBadRows.name)) read.skip_bad_rows = true;
  read.max_rows = static_cast<std::size_t>(args.integer(kMaxRows.name, 0, 0, 1LL << 40));
  return read;
}

// Every output's score for every row: scores[output][row].
inline std::vector<std::vector<float>> score_dataset(const mtlite::Model& model, const mtlite::data::Dataset& data) {
  constexpr std::size_t kBatch = 256;
  std::vector<std::vector<float>> scores(model.num_outputs(), std::vector<float>(data.rows));
  mtlite::Session session(model, kBatch);
  std::vector<mtlite::Bag> bags;
  for (std::size_t begin = 0; begin < data.rows; begin += kBatch) {
    const std::size_t end = std::min(data.rows, begin + kBatch);
    if (mtlite::Status st = session.predict(data.batch(begin, end, bags)); !st)
      throw mtlite::Error("rows " + std::to_string(begin) + "-" + std::to_string(end) + ": " + st.message());
    for (std::size_t o = 0; o < model.num_outputs(); ++o)
      std::copy(session.scores(o).begin(), session.scores(o).end(), scores[o].begin() + static_cast<std::ptrdiff_t>(begin));
  }
  return scores;
}

// One task's labels and mask as contiguous columns.
struct TaskColumn {
  std::vector<float> labels;
  std::vector<std::uint8_t> mask;
};

inline TaskColumn task_column(const mtlite::data::Dataset& data, std::size_t task) {
  TaskColumn c;
  c.labels.resize(data.rows);
  c.mask.resize(data.rows);
  for (std::size_t r = 0; r < data.rows; ++r) {
    c.labels[r] = data.labels[r * data.num_tasks + task];
    c.mask[r] = data.mask[r * data.num_tasks + task];
  }
  return c;
}

// The labels of one output: a task's own column, or for pCTCVR (ESMM) click AND conversion,
// known where the click is known and either the click is 0 or the conversion is known.
inline TaskColumn output_column(const mtlite::Spec& spec, const mtlite::data::Dataset& data, std::size_t output) {
  const int task = spec.output_task(output);
  if (task >= 0) return task_column(data, static_cast<std::size_t>(task));
  const TaskColumn ctr = task_column(data, static_cast<std::size_t>(spec.task_index(spec.esmm->ctr)));
  const TaskColumn cvr = task_column(data, static_cast<std::size_t>(spec.task_index(spec.esmm->cvr)));
  TaskColumn c;
  c.labels.resize(data.rows);
  c.mask.resize(data.rows);
  for (std::size_t r = 0; r < data.rows; ++r) {
    const bool clicked = ctr.labels[r] > 0.5f;
    c.mask[r] = ctr.mask[r] && (!clicked || cvr.mask[r]);
    c.labels[r] = c.mask[r] && clicked && cvr.labels[r] > 0.5f ? 1.0f : 0.0f;
  }
  return c;
}

// One output's quality on labelled rows: AUC and log loss (binary) or RMSE (regression), and
// with a group column gAUC and NDCG@10. NaN where undefined (no positive, say).
struct OutputMetrics {
  std::string output;
  bool binary = true;
  std::size_t labelled = 0;
  std::size_t positives = 0;  // binary: labelled rows with label 1
  std::size_t ndcg_k = 10;  // the k of ndcg
  double auc = NAN, log_loss = NAN, rmse = NAN, gauc = NAN, ndcg = NAN;

  // A binary output whose labelled rows are all of one class, so that its AUC is undefined:
  // "all 812 labelled rows have label 0", else empty.
  std::string one_class() const {
    if (!binary || labelled == 0 || (positives != 0 && positives != labelled)) return {};
    return "all " + std::to_string(labelled) + " labelled rows have label " + (positives ? "1" : "0");
  }

  // The number early stopping and comparisons use, and whether larger is better.
  double primary() const { return binary ? auc : rmse; }
  mtlite::Json to_json() const {
    mtlite::Json j = mtlite::Json::object().set("labelled", static_cast<double>(labelled));
    if (binary) j.set("positives", static_cast<double>(positives));
    auto put = [&](const char* key, double v) {
      if (!std::isnan(v)) j.set(key, v);
    };
    put("auc", auc);
    put("log_loss", log_loss);
    put("rmse", rmse);
    put("gauc", gauc);
    put(("ndcg@" + std::to_string(ndcg_k)).c_str(), ndcg);
    return j;
  }
  // "auc 0.9512  logloss 0.1234" and so on.
  std::string text() const {
    std::string s;
    char buf[48];
    auto put = [&](const char* key, double v) {
      if (std::isnan(v)) return;
      std::snprintf(buf, sizeof buf, "%s%s %.4f", s.empty() ? "" : "  ", key, v);
      s += buf;
    };
    put("auc", auc);
    put("logloss", log_loss);
    put("rmse", rmse);
    put("gauc", gauc);
    put(("ndcg@" + std::to_string(ndcg_k)).c_str(), ndcg);
    if (!one_class().empty()) s += (s.empty() ? "" : "  ") + std::string("auc undefined: ") + one_class();
    return s.empty() ? "no labelled rows" : s;
  }
};

// Output o of `spec` with its labelled rows (and positives) in its column `c`, metrics still NaN.
inline OutputMetrics label_count(const mtlite::Spec& spec, std::size_t o, const TaskColumn& c) {
  OutputMetrics m;
  m.output = spec.output_name(o);
  m.binary = spec.output_binary(o);
  for (std::size_t r = 0; r < c.mask.size(); ++r) {
    m.labelled += c.mask[r] != 0;
    m.positives += m.binary && c.mask[r] != 0 && c.labels[r] > 0.5f;
  }
  return m;
}

inline std::vector<OutputMetrics> label_counts(const mtlite::Spec& spec, const mtlite::data::Dataset& data) {
  std::vector<OutputMetrics> out;
  for (std::size_t o = 0; o < spec.num_outputs(); ++o) out.push_back(label_count(spec, o, output_column(spec, data, o)));
  return out;
}

// Metrics of every output of `spec` from scores[output][row] on `data`; `grouped` when the data
// has a group column (then gAUC and NDCG@ndcg_k too).
inline std::vector<OutputMetrics> evaluate(const mtlite::Spec& spec, const std::vector<std::vector<float>>& scores,
                                           const mtlite::data::Dataset& data, bool grouped, std::size_t ndcg_k = 10) {
  std::vector<OutputMetrics> out;
  for (std::size_t o = 0; o < spec.num_outputs(); ++o) {
    const TaskColumn c = output_column(spec, data, o);
    out.push_back(label_count(spec, o, c));
    OutputMetrics& m = out.back();
    m.ndcg_k = ndcg_k;
    if (m.labelled == 0) continue;
    if (m.binary) {
      m.auc = mtlite::auc(scores[o], c.labels, data.weights, c.mask);
      m.log_loss = mtlite::log_loss(scores[o], c.labels, data.weights, c.mask);
      if (grouped) {
        m.gauc = mtlite::gauc(scores[o], c.labels, data.groups, data.weights, c.mask).value;
        m.ndcg = mtlite::ndcg_at(ndcg_k, scores[o], c.labels, data.groups, c.mask).value;
      }
    } else {
      m.rmse = mtlite::rmse(scores[o], c.labels, data.weights, c.mask);
    }
  }
  return out;
}

// One output's scores ranking the rows of each group, judged by another output's labels as
// binary relevance (rank by predicted rating, relevance = liked): NDCG@k and gAUC over the rows
// where the relevance is labelled.
struct Ranking {
  std::string by, relevance;
  std::size_t k = 10, groups = 0;
  double ndcg = NAN, gauc = NAN;

  mtlite::Json to_json() const {
    mtlite::Json j = mtlite::Json::object().set("rank_by", by).set("relevance", relevance).set("groups", groups);
    if (!std::isnan(ndcg)) j.set("ndcg@" + std::to_string(k), ndcg);
    if (!std::isnan(gauc)) j.set("gauc", gauc);
    return j;
  }
};

inline Ranking rank_metrics(const mtlite::Model& model, const std::vector<std::vector<float>>& scores,
                            const mtlite::data::Dataset& data, const std::string& by, const std::string& relevance,
                            std::size_t k) {
  const mtlite::Spec& spec = model.spec();
  auto output = [&](const std::string& name, const char* option) {
    const int o = model.output_index(name);
    if (o < 0) throw mtlite::Error(std::string("--") + option + ": the model has no output '" + name + "'");
    return static_cast<std::size_t>(o);
  };
  const std::size_t b = output(by, "rank-by"), r = output(relevance, "relevance");
  if (!spec.output_binary(r))
    throw mtlite::Error("--relevance: output '" + relevance + "' is a regression; relevance must be a binary label");
  const TaskColumn c = output_column(spec, data, r);
  Ranking out{by, relevance, k};
  const mtlite::GroupMetric n = mtlite::ndcg_at(k, scores[b], c.labels, data.groups, c.mask);
  out.ndcg = n.value;
  out.groups = n.groups;
  out.gauc = mtlite::gauc(scores[b], c.labels, data.groups, data.weights, c.mask).value;
  return out;
}

// A warning on stderr for each binary output whose labels are all of one class in the rows that
// `what` names ("--data 'test.csv'").
inline void warn_one_class(const std::vector<OutputMetrics>& metrics, const std::string& what) {
  for (const OutputMetrics& m : metrics)
    if (!m.one_class().empty())
      std::fprintf(stderr,
                   "warning: %s: output '%s': %s, so its AUC is undefined; check the task's \"positive\" "
                   "values (or \"threshold\") against the labels in the file\n",
                   what.c_str(), m.output.c_str(), m.one_class().c_str());
}

// The rule for huge finite weights (docs/reliability.md): mtlite computes with any finite value,
// but training never produces a weight of magnitude 2^16 or more (past what f16 can hold), and
// such weights overflow the scores to 0 or 1 or to infinity: the model diverged or was damaged.
// Says so on stderr, naming the tensor with the largest such value, and goes on.
inline void warn_huge_weights(const mtlite::Weights& weights, const std::string& source) {
  constexpr float kHuge = 65536.0f;
  const std::string* name = nullptr;
  float largest = 0.0f;
  std::size_t count = 0;
  for (const auto& [tensor, t] : weights)
    for (const float v : t.data)
      if (std::fabs(v) >= kHuge) {
        ++count;
        if (std::fabs(v) > largest) largest = std::fabs(v), name = &tensor;
      }
  if (count > 0)
    std::fprintf(stderr,
                 "warning: %s: %zu weights have a magnitude of 2^16 or more, up to %g in tensor '%s': the model "
                 "has diverged or is damaged, and its scores will saturate or overflow\n",
                 source.c_str(), count, static_cast<double>(largest), name->c_str());
}

}  // namespace cli
