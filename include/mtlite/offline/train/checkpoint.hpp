// A checkpoint of a training run: one .mtl model file (FORMAT.md) that every reader of a float
// model takes as it is (Model::load, convert, eval, predict, inspect), and that also holds all a
// resumed run needs to continue bit for bit. This header is the one place that names its parts;
// the caller's own parts (how raw rows map onto the inputs, the settings of the run, one record
// per epoch) are JSON it builds, opaque here.
//
// The file, in order:
//   1. header, metadata, tensor table, names, data: FORMAT.md's regions, written by FileWriter
//      (convert/writer.hpp) to "<path>.tmp-<pid>-<n>", synced and renamed over the path: a
//      reader sees the old checkpoint or the whole new one, never a mix, and the next write
//      removes what a killed writer left (offline/durable_file.hpp).
//   2. metadata, one JSON object, keys in this order:
//        "format"    "mtlite"
//        "spec"      the model (format/spec_json.hpp)
//        "data"      the caller's: how raw rows map onto the inputs (mtlite train: its binding)
//        "training"  an object:
//          "config"         the caller's: the settings of the run
//          "epochs_done"    epochs finished, a whole number in [0, 10^6]
//          "best_epoch"     the epoch the model's weights are from, 0 = none yet (same range)
//          "bad_epochs"     epochs since the best (same range)
//          "stopped_early"  true when the run stopped for want of a better epoch
//          "history"        an array, one object per finished epoch: the caller's
//          "best_metric"    the best epoch's validation metric; absent while there is none
//   3. the model's tensors: the best weights as convert() packs them at f32, in model_writer's
//      order (converter.hpp), so a mapped checkpoint runs in place;
//   4. the trainer's state (Trainer::state()), f32 plain, logical layout, T = the spec's tasks:
//        train.step                      [2]: the step count is [0] + 2^24 [1], both whole
//                                        numbers in [0, 2^24)
//        train.<s>.<param>               shaped like <param>, for each optimiser state s:
//                                        adam.m and adam.v (adam), adagrad.sum (adagrad)
//        train.uncertainty.log_var       [T]                  (balancing uncertainty)
//        train.uncertainty.<s>           [T]: its optimiser state
//        train.gradnorm.weight           [T]                  (balancing gradnorm)
//        train.gradnorm.initial_loss     [T]
//        train.gradnorm.has_initial      [T]: 1 once initial_loss is known
//        train.gradnorm.<s>              [T]: the weights' optimiser state
//        train.metabalance.m.<param>     [T], for each shared <param>  (balancing metabalance)
//        train.affinity.sum              [T, T]
//        train.affinity.count            [T, T]
//      A state holds exactly the tensors its optimiser and balancing method have: a missing
//      one, a foreign "train." one or a wrong shape is refused when it is loaded.
//   5. train.current.<param>, f32 plain, every parameter: the trainer's weights at the end of
//      the last epoch when they are not the best (absent when they are: then they are 3).
// The runtime ignores 2's "data" and "training" and the "train." tensors; convert drops them,
// so a converted model is not a checkpoint.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/shape.hpp"
#include "../../format/json.hpp"
#include "../../format/mapped_file.hpp"
#include "../../format/reader.hpp"
#include "../../format/spec_json.hpp"
#include "../../spec.hpp"
#include "../../tensors.hpp"
#include "../../weights.hpp"
#include "../convert/converter.hpp"
#include "../convert/writer.hpp"
#include "options.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "state.hpp"

namespace mtlite::train {

// The names s of the optimiser's state arrays, in OptimizerState order.
inline std::vector<std::string> optimizer_state_names(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return {};
    case OptimizerKind::adam: return {"adam.m", "adam.v"};
    case OptimizerKind::adagrad: return {"adagrad.sum"};
  }
  return {};
}

// A trainer's state as the tensors of part 4.
inline Weights state_tensors(const Program& p, const TrainOptions& o, const TrainState& s) {
  Weights out;
  const std::size_t T = p.tasks;
  out["train.step"] = Tensor{{2}, {static_cast<float>(s.step & 0xFFFFFFu), static_cast<float>(s.step >> 24)}};
  const std::vector<std::string> names = optimizer_state_names(o.optimizer);
  for (std::size_t j = 0; j < names.size(); ++j)
    for (const ParamRange& t : p.tensors)
      out["train." + names[j] + "." + t.name] =
          tensor_from(p, t, s.optimizer.dense[j].data(), &s.optimizer.tables[j]);
  auto vec = [&](const std::string& name, const std::vector<float>& v) {
    out[name] = Tensor{{static_cast<std::uint64_t>(v.size())}, v};
  };
  const BalanceState& b = s.balance;
  if (o.balancing.method == BalanceMethod::uncertainty) {
    vec("train.uncertainty.log_var", b.log_var);
    for (std::size_t j = 0; j < names.size(); ++j) vec("train.uncertainty." + names[j], b.optimizer[j]);
  }
  if (o.balancing.method == BalanceMethod::gradnorm) {
    vec("train.gradnorm.weight", b.gradnorm_weight);
    vec("train.gradnorm.initial_loss", b.gradnorm_initial_loss);
    vec("train.gradnorm.has_initial", b.gradnorm_has_initial);
    for (std::size_t j = 0; j < names.size(); ++j) vec("train.gradnorm." + names[j], b.optimizer[j]);
  }
  if (o.balancing.method == BalanceMethod::metabalance)
    for (std::size_t i = 0; i < p.tensors.size(); ++i)
      if (p.tensors[i].shared) vec("train.metabalance.m." + p.tensors[i].name, b.metabalance_m[i]);
  const std::uint64_t t64 = T;
  out["train.affinity.sum"] = Tensor{{t64, t64}, s.affinity.sum};
  out["train.affinity.count"] = Tensor{{t64, t64}, s.affinity.count};
  return out;
}

namespace detail {

// Throws unless `in` holds exactly the "train." tensors of `expected` (names outside "train."
// are ignored), each of its shape, finite, with a valid train.step.
inline void check_state_tensors(const Weights& expected, const Weights& in, const TrainOptions& o) {
  for (const auto& [name, t] : expected) {
    const auto it = in.find(name);
    if (it == in.end()) throw Error("state: missing tensor '" + name + "'");
    if (it->second.shape != t.shape || it->second.data.size() != t.data.size())
      throw Error("state: tensor '" + name + "' has shape " + shape_string(it->second.shape) + "; expected " +
                  shape_string(t.shape));
    for (float v : it->second.data)
      if (!std::isfinite(v)) throw Error("state: tensor '" + name + "' has a value that is not finite");
  }
  for (const auto& [name, t] : in)
    if (name.rfind("train.", 0) == 0 && !expected.count(name))
      throw Error("state: tensor '" + name + "' is not part of this trainer's state (optimizer " +
                  to_string(o.optimizer) + ", balancing " + to_string(o.balancing.method) + ")");
  for (float v : in.at("train.step").data)
    if (!(v >= 0.0f && v < 16777216.0f && v == std::floor(v)))
      throw Error("state: tensor 'train.step' must hold two integers in [0, 2^24)");
}

}  // namespace detail

// The inverse of state_tensors(). Everything is checked before anything changes.
inline void load_state_tensors(const Program& p, const TrainOptions& o, const Weights& in, TrainState& s) {
  detail::check_state_tensors(state_tensors(p, o, s), in, o);
  const std::vector<float>& st = in.at("train.step").data;
  s.step = static_cast<std::uint64_t>(st[0]) + (static_cast<std::uint64_t>(st[1]) << 24);
  const std::vector<std::string> names = optimizer_state_names(o.optimizer);
  for (std::size_t j = 0; j < names.size(); ++j)
    for (const ParamRange& t : p.tensors)
      tensor_into(p, t, in.at("train." + names[j] + "." + t.name), s.optimizer.dense[j].data(),
                  &s.optimizer.tables[j]);
  BalanceState& b = s.balance;
  if (o.balancing.method == BalanceMethod::uncertainty) {
    b.log_var = in.at("train.uncertainty.log_var").data;
    for (std::size_t j = 0; j < names.size(); ++j) b.optimizer[j] = in.at("train.uncertainty." + names[j]).data;
  }
  if (o.balancing.method == BalanceMethod::gradnorm) {
    b.gradnorm_weight = in.at("train.gradnorm.weight").data;
    b.gradnorm_initial_loss = in.at("train.gradnorm.initial_loss").data;
    b.gradnorm_has_initial = in.at("train.gradnorm.has_initial").data;
    for (std::size_t j = 0; j < names.size(); ++j) b.optimizer[j] = in.at("train.gradnorm." + names[j]).data;
  }
  if (o.balancing.method == BalanceMethod::metabalance)
    for (std::size_t i = 0; i < p.tensors.size(); ++i)
      if (p.tensors[i].shared) b.metabalance_m[i] = in.at("train.metabalance.m." + p.tensors[i].name).data;
  s.affinity.sum = in.at("train.affinity.sum").data;
  s.affinity.count = in.at("train.affinity.count").data;
}

// Where a run of epochs stands: part 2's "training" block besides its config.
struct RunProgress {
  std::size_t epochs_done = 0;
  std::size_t best_epoch = 0;  // 0: none yet
  double best_metric = NAN;    // NaN: none yet
  std::size_t bad_epochs = 0;  // epochs since the best
  bool stopped_early = false;
  Json history = Json::array();
};

// A checkpoint's parts, to write or as read back.
struct Checkpoint {
  Spec spec;
  Json data = Json::object();    // "data"
  Json config = Json::object();  // "training"."config"
  RunProgress progress;          // the rest of "training"
  Weights best;                  // part 3
  Weights state;                 // part 4: Trainer::state()
  Weights current;               // part 5; empty to write none. Read back: best when there was none
};

// Writes the file (durable and atomic, part 1); throws Error when the weights do not fit the
// spec or the file cannot be written (the old file, if any, is then untouched).
inline void write_checkpoint(const std::string& path, const Checkpoint& c) {
  const RunProgress& r = c.progress;
  Json training = Json::object()
                      .set("config", c.config)
                      .set("epochs_done", r.epochs_done)
                      .set("best_epoch", r.best_epoch)
                      .set("bad_epochs", r.bad_epochs)
                      .set("stopped_early", r.stopped_early)
                      .set("history", r.history);
  if (!std::isnan(r.best_metric)) training.set("best_metric", r.best_metric);
  const Converted model = convert(c.spec, c.best, ConvertOptions{});
  format::FileWriter w =
      model_writer(c.spec, model.tensors, Json::object().set("data", c.data).set("training", std::move(training)));
  auto add = [&](const std::string& name, const Tensor& t) {
    w.add_borrowed(name, DType::f32, Layout::plain, t.shape, t.data.data(), t.data.size() * sizeof(float));
  };
  for (const auto& [name, t] : c.state) add(name, t);
  for (const auto& [name, t] : c.current) add("train.current." + name, t);
  w.write(path);
}

namespace detail {

// A count of the "training" block: a whole number in [0, 10^6].
inline std::size_t progress_count(const Json& training, const std::string& key) {
  const std::uint64_t n = training.at(key).as_uint64();
  if (n > 1000000) throw Error("training." + key + ": must be in [0, 1000000]");
  return static_cast<std::size_t>(n);
}

inline RunProgress progress_from_json(const Json& training) {
  RunProgress r;
  r.epochs_done = progress_count(training, "epochs_done");
  r.best_epoch = progress_count(training, "best_epoch");
  r.bad_epochs = progress_count(training, "bad_epochs");
  r.stopped_early = training.at("stopped_early").as_bool();
  if (const Json* m = training.find("best_metric")) r.best_metric = m->as_number();
  r.history = training.at("history");
  return r;
}

}  // namespace detail

// Reads a checkpoint back; throws Error when the file is not a model file, or a model file
// without the training parts (a converted model keeps none), or when a part is malformed.
inline Checkpoint read_checkpoint(const std::string& path) {
  const format::MappedFile file = format::MappedFile::open(path);
  const format::FileView view = format::FileView::parse(file.data(), file.size());
  const Json& meta = view.metadata();
  const Json* training = meta.find("training");
  const Json* data = meta.find("data");
  const std::string not_checkpoint = "'" + path + "' is not a checkpoint of mtlite train (no training state";
  if (!training || !training->find("epochs_done") || !data) throw Error(not_checkpoint + ")");
  Checkpoint c;
  c.spec = spec_from_json(meta.at("spec"));
  c.data = *data;
  c.config = training->at("config");
  c.progress = detail::progress_from_json(*training);
  TensorMap tensors;
  for (const format::TensorView& t : view.tensors()) {
    tensors[t.name] = {t.dtype, t.layout, t.shape, t.data, t.bytes};
    if (t.name.rfind("train.", 0) != 0) continue;
    if (t.dtype != DType::f32 || t.layout != Layout::plain)
      throw Error(path + ": tensor '" + t.name + "' must be f32 plain");
    Tensor x;
    x.shape = t.shape;
    x.data.resize(t.bytes / sizeof(float));
    std::memcpy(x.data.data(), t.data, x.data.size() * sizeof(float));
    if (t.name.rfind("train.current.", 0) == 0)
      c.current[t.name.substr(14)] = std::move(x);
    else
      c.state[t.name] = std::move(x);
  }
  if (c.state.find("train.step") == c.state.end()) throw Error(not_checkpoint + ": a converted model keeps none)");
  c.best = float_weights(c.spec, tensors);
  if (c.current.empty()) c.current = c.best;
  return c;
}

}  // namespace mtlite::train
