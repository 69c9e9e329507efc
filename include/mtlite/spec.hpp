// The architecture description shared by the runtime, the trainer and the converter.
//
// A Spec says what the network computes; it holds no weights. The input vector x is
//   x = concat(embeddings of the categorical and multi-hot features in spec order,
//              the dense features in spec order)
// and every architecture below reads x (docs/models.md gives the formulas):
//   single_task    y_k = tower_k(x)
//   shared_bottom  y_k = tower_k(bottom(x))
//   omoe           y_k = tower_k(sum_i g_i(x) expert_i(x)),     one gate
//   mmoe           y_k = tower_k(sum_i g^k_i(x) expert_i(x)),   one gate per task
//   ple            levels of task-specific and shared experts (Tang et al. 2020); cgc = 1 level
//   esmm           single_task towers plus pCTCVR = pCTR * pCVR
// An `esmm` block may also sit on top of any other architecture (ESMM over MMoE, say).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/activation.hpp"
#include "core/error.hpp"
#include "core/first_repeat.hpp"
#include "core/hash.hpp"

namespace mtlite {

struct Layer {
  std::uint32_t units = 0;
  Activation activation = Activation::relu;
};

// Hidden layers of a multi-layer perceptron, input to output.
using Mlp = std::vector<Layer>;

inline Mlp mlp(std::initializer_list<std::uint32_t> units, Activation activation = Activation::relu) {
  Mlp layers;
  for (std::uint32_t u : units) layers.push_back({u, activation});
  return layers;
}

enum class FeatureKind : std::uint8_t { dense, categorical, multi_hot };
// A dense feature's normalization. log1p_standardize is the chain ["log1p", "standardize"]:
// log1p first, then standardize with the mean and stddev of the log1p values.
enum class Normalization : std::uint8_t { none, standardize, log1p, log1p_standardize };
enum class IdMapping : std::uint8_t { vocabulary, hashing };
enum class Pooling : std::uint8_t { sum, mean };

struct Feature {
  std::string name;
  FeatureKind kind = FeatureKind::dense;

  // dense: standardize computes (v - mean) / stddev; log1p computes sign(v) * log(1 + |v|).
  Normalization normalization = Normalization::none;
  float mean = 0.0f;
  float stddev = 1.0f;
  bool takes_log1p() const noexcept {
    return normalization == Normalization::log1p || normalization == Normalization::log1p_standardize;
  }
  bool standardizes() const noexcept {
    return normalization == Normalization::standardize || normalization == Normalization::log1p_standardize;
  }

  // categorical and multi-hot. vocabulary: ids 0..size-1 are rows 0..size-1, and unknown,
  // negative or out-of-range ids land in row `size`, the out-of-vocabulary row. hashing: any id
  // goes to bucket hash(id) % size (hash.hpp); the table keeps the extra row so that both
  // mappings share one shape, and the trainer leaves it unused.
  IdMapping mapping = IdMapping::vocabulary;
  std::uint64_t size = 0;
  std::uint32_t embedding_dim = 0;
  Pooling pooling = Pooling::sum;  // multi-hot only; an empty bag pools to zeros

  std::uint64_t table_rows() const { return size + 1; }
  bool has_embedding() const { return kind != FeatureKind::dense; }
  // The table row of an id: never out of bounds.
  std::uint64_t row_of(std::int64_t id) const noexcept {
    if (mapping == IdMapping::hashing) return hash_bucket(static_cast<std::uint64_t>(id), size);
    return id >= 0 && static_cast<std::uint64_t>(id) < size ? static_cast<std::uint64_t>(id) : size;
  }

  static Feature dense(std::string name, Normalization n = Normalization::none, float mean = 0.0f,
                       float stddev = 1.0f) {
    Feature f;
    f.name = std::move(name);
    f.kind = FeatureKind::dense;
    f.normalization = n;
    f.mean = mean;
    f.stddev = stddev;
    return f;
  }
  static Feature categorical(std::string name, std::uint64_t vocabulary, std::uint32_t dim) {
    Feature f;
    f.name = std::move(name);
    f.kind = FeatureKind::categorical;
    f.size = vocabulary;
    f.embedding_dim = dim;
    return f;
  }
  static Feature hashed(std::string name, std::uint64_t buckets, std::uint32_t dim) {
    Feature f = categorical(std::move(name), buckets, dim);
    f.mapping = IdMapping::hashing;
    return f;
  }
  static Feature multi_hot(std::string name, std::uint64_t size, std::uint32_t dim,
                           Pooling pooling = Pooling::sum, IdMapping mapping = IdMapping::vocabulary) {
    Feature f = categorical(std::move(name), size, dim);
    f.kind = FeatureKind::multi_hot;
    f.pooling = pooling;
    f.mapping = mapping;
    return f;
  }
};

enum class TaskKind : std::uint8_t { binary, regression };
enum class TaskRole : std::uint8_t { main, auxiliary };

struct Task {
  std::string name;
  TaskKind kind = TaskKind::binary;
  TaskRole role = TaskRole::main;
  float loss_weight = 1.0f;  // used by the trainer
  Mlp tower;                 // hidden layers; the 1-unit output layer is implied
  // false once `mtlite convert --drop-aux` removed the task's tower: the task still shapes the
  // network (a PLE level's shared gate mixes its experts), but it is not computed or served.
  bool served = true;

  Activation head() const {
    return kind == TaskKind::binary ? Activation::sigmoid : Activation::identity;
  }
};

enum class Architecture : std::uint8_t { single_task, shared_bottom, omoe, mmoe, ple, esmm };

// One PLE extraction level: every task owns `task_experts` experts, the level shares
// `shared_experts`; task k's gate mixes its own and the shared experts, the shared gate (all
// levels but the last) mixes every expert of the level.
struct PleLevel {
  std::uint32_t task_experts = 1;
  std::uint32_t shared_experts = 1;
  Mlp expert;
};

// pCTCVR = pCTR * pCVR, served as an extra output named `ctcvr`.
struct Esmm {
  std::string ctr;
  std::string cvr;
  std::string ctcvr = "ctcvr";
};

// Upper bounds that keep a hostile spec (or file) from asking for absurd allocations.
struct SpecLimits {
  static constexpr std::uint32_t max_units = 1u << 16;
  static constexpr std::uint32_t max_layers = 64;
  static constexpr std::uint32_t max_experts = 1024;
  static constexpr std::uint32_t max_tasks = 256;
  static constexpr std::uint32_t max_features = 1u << 16;
  static constexpr std::uint32_t max_embedding_dim = 4096;
  static constexpr std::uint64_t max_table_rows = 1ull << 32;
  static constexpr std::uint64_t max_input_dim = 1u << 20;
  static constexpr std::size_t max_name = 256;
};

struct Spec {
  std::vector<Feature> features;
  std::vector<Task> tasks;
  Architecture architecture = Architecture::mmoe;
  Mlp bottom;                     // shared_bottom
  std::uint32_t num_experts = 0;  // omoe, mmoe
  Mlp expert;                     // omoe, mmoe
  std::vector<PleLevel> levels;   // ple (cgc = one level)
  std::optional<Esmm> esmm;       // required for Architecture::esmm, optional on top of others

  // Width of x.
  std::size_t input_dim() const {
    std::size_t d = 0;
    for (const Feature& f : features) d += f.kind == FeatureKind::dense ? 1 : f.embedding_dim;
    return d;
  }
  std::size_t count(FeatureKind kind) const {
    std::size_t n = 0;
    for (const Feature& f : features) n += f.kind == kind;
    return n;
  }
  // Index of the task with this name, or -1.
  int task_index(const std::string& name) const {
    for (std::size_t k = 0; k < tasks.size(); ++k)
      if (tasks[k].name == name) return static_cast<int>(k);
    return -1;
  }
  // Outputs: one per served task in task order, then pCTCVR when an esmm block is present.
  std::size_t num_outputs() const {
    std::size_t n = esmm ? 1 : 0;
    for (const Task& t : tasks) n += t.served;
    return n;
  }
  // The task behind output i, or -1 for pCTCVR.
  int output_task(std::size_t i) const {
    for (std::size_t k = 0; k < tasks.size(); ++k)
      if (tasks[k].served && i-- == 0) return static_cast<int>(k);
    return -1;
  }
  std::string output_name(std::size_t i) const {
    const int k = output_task(i);
    return k >= 0 ? tasks[static_cast<std::size_t>(k)].name : esmm->ctcvr;
  }
  // Whether output i is a probability (a binary task's, or pCTCVR) rather than a regression value.
  bool output_binary(std::size_t i) const {
    const int k = output_task(i);
    return k < 0 || tasks[static_cast<std::size_t>(k)].kind == TaskKind::binary;
  }
  bool gated() const {
    return architecture == Architecture::omoe || architecture == Architecture::mmoe ||
           architecture == Architecture::ple;
  }

  // Throws Error naming the first field that is wrong.
  void validate() const;
};

inline const char* to_string(Architecture a) {
  switch (a) {
    case Architecture::single_task: return "single_task";
    case Architecture::shared_bottom: return "shared_bottom";
    case Architecture::omoe: return "omoe";
    case Architecture::mmoe: return "mmoe";
    case Architecture::ple: return "ple";
    case Architecture::esmm: return "esmm";
  }
  return "?";
}

inline const char* to_string(FeatureKind k) {
  switch (k) {
    case FeatureKind::dense: return "dense";
    case FeatureKind::categorical: return "categorical";
    case FeatureKind::multi_hot: return "multi_hot";
  }
  return "?";
}

namespace internal {

// A name is 1..max_name bytes without control characters. field() names it in the error; it is
// called only on failure, so a valid spec of many features builds no strings.
template <class Field>
void check_name(const std::string& name, const Field& field) {
  if (name.empty()) throw Error(field() + ": name is empty");
  if (name.size() > SpecLimits::max_name)
    throw Error(field() + ": name is longer than " + std::to_string(SpecLimits::max_name) + " bytes");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) throw Error(field() + ": name '" + name + "' has a control character");
}

// The smallest index whose name an earlier item has too, or items.size() when the names are unique.
template <class T>
std::size_t first_duplicate(const std::vector<T>& items) {
  std::vector<std::string_view> names;
  names.reserve(items.size());
  for (const T& item : items) names.emplace_back(item.name);
  std::vector<std::size_t> order;
  return first_repeat(names, order);
}

inline void check_mlp(const Mlp& layers, const std::string& field, bool may_be_empty) {
  if (layers.empty() && !may_be_empty) throw Error(field + ": needs at least one layer");
  if (layers.size() > SpecLimits::max_layers)
    throw Error(field + ": more than " + std::to_string(SpecLimits::max_layers) + " layers");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "].units";
    if (layers[i].units == 0) throw Error(at + ": must be at least 1");
    if (layers[i].units > SpecLimits::max_units)
      throw Error(at + ": " + std::to_string(layers[i].units) + " exceeds the limit " +
                  std::to_string(SpecLimits::max_units));
    if (static_cast<unsigned>(layers[i].activation) > static_cast<unsigned>(Activation::tanh))
      throw Error(field + "[" + std::to_string(i) + "].activation: unknown activation");
  }
}

inline void check_experts(std::uint64_t n, const std::string& field) {
  if (n == 0) throw Error(field + ": a gate over zero experts");
  if (n > SpecLimits::max_experts)
    throw Error(field + ": " + std::to_string(n) + " experts exceed the limit " +
                std::to_string(SpecLimits::max_experts));
}

}  // namespace internal

inline void Spec::validate() const {
  using internal::check_mlp;
  using internal::check_name;
  if (features.empty()) throw Error("features: the spec has no features");
  if (features.size() > SpecLimits::max_features) throw Error("features: too many features");
  // Messages are built only on failure: a valid spec of many features costs no strings.
  const std::size_t duplicate = internal::first_duplicate(features);
  for (std::size_t i = 0; i < features.size(); ++i) {
    const Feature& f = features[i];
    const auto at = [&] { return "features[" + std::to_string(i) + "]"; };
    check_name(f.name, [&] { return at() + ".name"; });
    if (i == duplicate) throw Error(at() + ".name: duplicate feature '" + f.name + "'");
    const auto fat = [&] { return "feature '" + f.name + "'"; };
    switch (f.kind) {
      case FeatureKind::dense:
        if (f.standardizes() && (!std::isfinite(f.mean) || !std::isfinite(f.stddev) || !(f.stddev > 0.0f)))
          throw Error(fat() + ".stddev: standardize needs a finite mean and a positive stddev");
        if (static_cast<unsigned>(f.normalization) > static_cast<unsigned>(Normalization::log1p_standardize))
          throw Error(fat() + ".normalization: unknown normalization");
        break;
      case FeatureKind::categorical:
      case FeatureKind::multi_hot:
        if (f.size == 0) throw Error(fat() + ".size: vocabulary or bucket count must be at least 1");
        if (f.size >= SpecLimits::max_table_rows)  // not table_rows(): size + 1 wraps at 2^64 - 1
          throw Error(fat() + ".size: " + std::to_string(f.size) + " rows exceed the limit 2^32");
        if (f.embedding_dim == 0) throw Error(fat() + ".embedding_dim: must be at least 1");
        if (f.embedding_dim > SpecLimits::max_embedding_dim)
          throw Error(fat() + ".embedding_dim: exceeds the limit " +
                      std::to_string(SpecLimits::max_embedding_dim));
        if (static_cast<unsigned>(f.mapping) > static_cast<unsigned>(IdMapping::hashing))
          throw Error(fat() + ".mapping: unknown id mapping");
        if (static_cast<unsigned>(f.pooling) > static_cast<unsigned>(Pooling::mean))
          throw Error(fat() + ".pooling: unknown pooling");
        break;
      default:
        throw Error(fat() + ".kind: unknown feature kind");
    }
  }
  if (input_dim() > SpecLimits::max_input_dim) throw Error("features: the input is too wide");

  if (tasks.empty()) throw Error("tasks: the spec has no tasks");
  if (tasks.size() > SpecLimits::max_tasks) throw Error("tasks: too many tasks");
  bool any_main = false;
  const std::size_t duplicate_task = internal::first_duplicate(tasks);
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    const Task& t = tasks[k];
    const std::string at = "tasks[" + std::to_string(k) + "]";
    check_name(t.name, [&] { return at + ".name"; });
    if (k == duplicate_task) throw Error(at + ".name: duplicate task '" + t.name + "'");
    if (static_cast<unsigned>(t.kind) > static_cast<unsigned>(TaskKind::regression))
      throw Error(at + ".kind: unknown task kind");
    if (!std::isfinite(t.loss_weight) || t.loss_weight < 0.0f)
      throw Error(at + ".loss_weight: must be finite and non-negative");
    check_mlp(t.tower, "task '" + t.name + "'.tower", true);
    any_main = any_main || t.role == TaskRole::main;
  }
  if (!any_main) throw Error("tasks: every task is auxiliary; at least one must be a main task");
  if (num_outputs() == 0) throw Error("tasks: no task is served");

  switch (architecture) {
    case Architecture::single_task:
    case Architecture::esmm:
      break;
    case Architecture::shared_bottom:
      check_mlp(bottom, "bottom", false);
      break;
    case Architecture::omoe:
    case Architecture::mmoe:
      internal::check_experts(num_experts, "num_experts");
      check_mlp(expert, "expert", false);
      break;
    case Architecture::ple:
      if (levels.empty()) throw Error("levels: PLE needs at least one level");
      if (levels.size() > SpecLimits::max_layers) throw Error("levels: too many levels");
      for (std::size_t l = 0; l < levels.size(); ++l) {
        const PleLevel& lv = levels[l];
        const std::string at = "levels[" + std::to_string(l) + "]";
        internal::check_experts(std::uint64_t{lv.task_experts} + lv.shared_experts,
                                at + ": task gate (task_experts + shared_experts)");
        internal::check_experts(std::uint64_t{lv.task_experts} * tasks.size() + lv.shared_experts,
                                at + ": shared gate (tasks x task_experts + shared_experts)");
        check_mlp(lv.expert, at + ".expert", false);
      }
      break;
    default:
      throw Error("architecture: unknown architecture");
  }

  if (architecture == Architecture::esmm && !esmm)
    throw Error("esmm: the esmm architecture needs its ctr and cvr tasks named");
  if (esmm) {
    const int ctr = task_index(esmm->ctr), cvr = task_index(esmm->cvr);
    if (ctr < 0) throw Error("esmm.ctr: no task named '" + esmm->ctr + "'");
    if (cvr < 0) throw Error("esmm.cvr: no task named '" + esmm->cvr + "'");
    if (ctr == cvr) throw Error("esmm: ctr and cvr must be two different tasks");
    if (tasks[ctr].kind != TaskKind::binary || tasks[cvr].kind != TaskKind::binary)
      throw Error("esmm: ctr and cvr must both be binary tasks");
    if (!tasks[ctr].served || !tasks[cvr].served) throw Error("esmm: ctr and cvr must both be served");
    check_name(esmm->ctcvr, [] { return std::string("esmm.ctcvr"); });
    if (task_index(esmm->ctcvr) >= 0)
      throw Error("esmm.ctcvr: output name '" + esmm->ctcvr + "' collides with a task");
  }
}

}  // namespace mtlite
