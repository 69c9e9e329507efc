// Spec <-> JSON: the architecture as it appears in model.json and in a .mtl file's metadata
// (docs/model-json.md describes the form for users).
//
//   {"architecture": "mmoe",
//    "features": [{"name": "age", "kind": "dense", "normalization": "standardize",
//                  "mean": 38.0, "stddev": 12.0},
//                 {"name": "country", "kind": "categorical", "mapping": "vocabulary",
//                  "size": 200, "embedding_dim": 8},
//                 {"name": "tags", "kind": "multi_hot", "mapping": "hashing", "size": 1000,
//                  "embedding_dim": 8, "pooling": "mean"}],
//    "tasks": [{"name": "click", "kind": "binary", "role": "main", "loss_weight": 1.0,
//               "tower": [64]}],
//    "experts": 8, "expert": [256, 128],        (omoe, mmoe)
//    "bottom": [128],                           (shared_bottom)
//    "levels": [{"task_experts": 1, "shared_experts": 1, "expert": [16]}],   (ple)
//    "esmm": {"ctr": "click", "cvr": "purchase", "ctcvr": "ctcvr"}}
// An MLP is a list of layers, each an integer (units, relu) or {"units": 64, "activation": "tanh"}.
// Absent keys take the defaults of spec.hpp. Unknown keys are errors (a typo must not pass
// silently), except in the places listed in `extra_keys` (model.json adds data bindings), and so
// are keys that would be ignored: another architecture's ("experts" in a shared_bottom spec),
// another feature kind's ("pooling" on a dense feature), mean and stddev without standardize.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../spec.hpp"
#include "json.hpp"

namespace mtlite {

namespace internal {

// The position of v's string in names (n of them); throws naming the field and the choices.
inline std::size_t enum_index(const Json& v, const char* const* names, std::size_t n, const std::string& field) {
  const std::string& s = v.as_string();
  for (std::size_t i = 0; i < n; ++i)
    if (s == names[i]) return i;
  std::string allowed;
  for (std::size_t i = 0; i < n; ++i) allowed += (i ? ", " : "") + std::string(names[i]);
  throw Error(field + ": unknown value '" + s + "' (one of " + allowed + ")");
}

template <class E, std::size_t N>
E parse_enum(const Json& v, const char* const (&names)[N], const std::string& field) {
  return static_cast<E>(enum_index(v, names, N, field));
}

inline constexpr const char* kActivationNames[] = {"identity", "relu", "sigmoid", "tanh"};
inline constexpr const char* kFeatureKindNames[] = {"dense", "categorical", "multi_hot"};
inline constexpr const char* kNormalizationNames[] = {"none", "standardize", "log1p", "log1p_standardize"};
inline constexpr const char* kMappingNames[] = {"vocabulary", "hashing"};

// "normalization": a name, or a chain of them applied in order. The chains mtlite computes: [],
// ["log1p"], ["standardize"] and ["log1p", "standardize"] (log1p first).
inline Normalization parse_normalization(const Json& v, const std::string& field) {
  if (!v.is_array()) {
    const Normalization n = parse_enum<Normalization>(v, kNormalizationNames, field);
    if (n == Normalization::log1p_standardize) throw Error(field + ": write it as [\"log1p\", \"standardize\"]");
    return n;
  }
  std::vector<Normalization> steps;
  for (std::size_t i = 0; i < v.size() && i < 3; ++i)
    steps.push_back(parse_enum<Normalization>(v[i], kNormalizationNames, field + "[" + std::to_string(i) + "]"));
  using N = Normalization;
  if (steps.empty() || (steps.size() == 1 && steps[0] == N::none)) return N::none;
  if (steps.size() == 1 && steps[0] != N::log1p_standardize) return steps[0];
  if (steps.size() == 2 && steps[0] == N::log1p && steps[1] == N::standardize) return N::log1p_standardize;
  throw Error(field + ": the chains mtlite applies are [], [\"log1p\"], [\"standardize\"] and "
                      "[\"log1p\", \"standardize\"]");
}

inline Json normalization_json(Normalization n) {
  if (n == Normalization::log1p_standardize) return Json::array().push("log1p").push("standardize");
  return Json(kNormalizationNames[static_cast<int>(n)]);
}
inline constexpr const char* kPoolingNames[] = {"sum", "mean"};
inline constexpr const char* kTaskKindNames[] = {"binary", "regression"};
inline constexpr const char* kRoleNames[] = {"main", "auxiliary"};
inline constexpr const char* kArchitectureNames[] = {"single_task", "shared_bottom", "omoe",
                                                     "mmoe",        "ple",           "esmm"};

// Calls visit(context, key, value) for each member; throws on a key not in `known`. One function
// for every caller (for_members below adapts a lambda), so the checks are compiled once.
using MemberVisitor = void (*)(void* context, const std::string& key, const Json& value);
inline void visit_members(const Json& obj, const std::string& field, std::initializer_list<const char*> known,
                          const std::set<std::string>& extra, MemberVisitor visit, void* context) {
  if (!obj.is_object()) throw Error(field + ": expected an object");
  for (const auto& [key, value] : obj.items()) {
    bool ok = extra.count(key) != 0;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) throw Error(field + ": unknown key '" + key + "'");
    try {
      visit(context, key, value);
    } catch (const Error& e) {
      const std::string what = e.what();
      // Errors from Json getters do not name the field; add it.
      if (what.rfind(field, 0) == 0) throw;
      throw Error(field + "." + key + ": " + what);
    }
  }
}

// Calls f(key, value) for each member; throws on a key not in `known`.
template <class F>
void for_members(const Json& obj, const std::string& field, std::initializer_list<const char*> known,
                 const std::set<std::string>& extra, F&& f) {
  using Visitor = std::remove_reference_t<F>;
  visit_members(obj, field, known, extra,
                [](void* context, const std::string& key, const Json& value) { (*static_cast<Visitor*>(context))(key, value); },
                const_cast<void*>(static_cast<const void*>(&f)));
}

inline std::uint32_t to_u32(const Json& v, std::uint64_t max) {
  const std::uint64_t n = v.as_uint64();
  if (n > max) throw Error("must be at most " + std::to_string(max));
  return static_cast<std::uint32_t>(n);
}

inline Mlp mlp_from_json(const Json& v, const std::string& field) {
  if (!v.is_array()) throw Error(field + ": expected a list of layers");
  Mlp layers;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const Json& item = v[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    Layer layer;
    if (item.is_number()) {
      layer.units = to_u32(item, SpecLimits::max_units);
    } else {
      bool has_units = false;
      for_members(item, at, {"units", "activation"}, {}, [&](const std::string& key, const Json& x) {
        if (key == "units") {
          layer.units = to_u32(x, SpecLimits::max_units);
          has_units = true;
        } else {
          layer.activation = parse_enum<Activation>(x, kActivationNames, at + ".activation");
        }
      });
      if (!has_units) throw Error(at + ": missing \"units\"");
    }
    layers.push_back(layer);
  }
  return layers;
}

// The spec keys a feature may have beside name and kind: a dense feature's normalization (and
// mean and stddev with standardize), an embedded feature's mapping, size and embedding_dim (and
// pooling when multi-hot). Any other would be ignored: it is an error, as an unknown key is.
inline void check_feature_keys(const Feature& f, const std::vector<const char*>& given, const std::string& at) {
  for (const std::string key : given) {
    const bool dense_key = key == "normalization" || key == "mean" || key == "stddev";
    const char* problem = nullptr;
    if (f.kind == FeatureKind::dense && !dense_key)
      problem = "is not allowed for a dense feature";
    else if (f.kind != FeatureKind::dense && dense_key)
      problem = f.kind == FeatureKind::categorical ? "is not allowed for a categorical feature"
                                                   : "is not allowed for a multi_hot feature";
    else if (f.kind == FeatureKind::categorical && key == "pooling")
      problem = "is not allowed for a categorical feature (a bag's pooling: multi_hot only)";
    else if ((key == "mean" || key == "stddev") && !f.standardizes())
      problem = "needs \"normalization\": \"standardize\" (or [\"log1p\", \"standardize\"])";
    if (problem) throw Error(at + ": key '" + key + "' " + problem);
  }
}

inline Json mlp_to_json(const Mlp& layers) {
  Json out = Json::array();
  for (const Layer& l : layers) {
    if (l.activation == Activation::relu)
      out.push(l.units);
    else
      out.push(Json::object().set("units", l.units).set("activation", to_string(l.activation)));
  }
  return out;
}

}  // namespace internal

// Reads a spec; throws Error naming the field. The result is validated.
// extra_feature_keys / extra_task_keys / extra_top_keys are accepted and ignored (model.json's
// data bindings such as "column" or "positive").
inline Spec spec_from_json(const Json& j, const std::set<std::string>& extra_top_keys = {},
                           const std::set<std::string>& extra_feature_keys = {},
                           const std::set<std::string>& extra_task_keys = {}) {
  using namespace internal;
  Spec s;
  bool has_arch = false;
  for_members(
      j, "spec", {"architecture", "features", "tasks", "experts", "expert", "bottom", "levels", "esmm"},
      extra_top_keys, [&](const std::string& key, const Json& v) {
        if (key == "architecture") {
          s.architecture = parse_enum<Architecture>(v, kArchitectureNames, "architecture");
          has_arch = true;
        } else if (key == "features") {
          if (!v.is_array()) throw Error("features: expected a list");
          for (std::size_t i = 0; i < v.size(); ++i) {
            const std::string at = "features[" + std::to_string(i) + "]";
            Feature f;
            bool has_kind = false;
            std::vector<const char*> given;  // the spec keys present, to check against the kind
            for_members(v[i], at,
                        {"name", "kind", "normalization", "mean", "stddev", "mapping", "size",
                         "embedding_dim", "pooling"},
                        extra_feature_keys, [&](const std::string& k, const Json& x) {
                          for (const char* key : {"normalization", "mean", "stddev", "mapping", "size",
                                                  "embedding_dim", "pooling"})
                            if (k == key) given.push_back(key);
                          if (k == "name") f.name = x.as_string();
                          else if (k == "kind") {
                            f.kind = parse_enum<FeatureKind>(x, kFeatureKindNames, at + ".kind");
                            has_kind = true;
                          } else if (k == "normalization")
                            f.normalization = parse_normalization(x, at + ".normalization");
                          else if (k == "mean") f.mean = x.as_float();
                          else if (k == "stddev") f.stddev = x.as_float();
                          else if (k == "mapping") f.mapping = parse_enum<IdMapping>(x, kMappingNames, at + ".mapping");
                          else if (k == "size") f.size = x.as_uint64();
                          else if (k == "embedding_dim") f.embedding_dim = to_u32(x, SpecLimits::max_embedding_dim);
                          else if (k == "pooling") f.pooling = parse_enum<Pooling>(x, kPoolingNames, at + ".pooling");
                        });
            if (!has_kind) throw Error(at + ": missing \"kind\"");
            check_feature_keys(f, given, at);
            s.features.push_back(std::move(f));
          }
        } else if (key == "tasks") {
          if (!v.is_array()) throw Error("tasks: expected a list");
          for (std::size_t i = 0; i < v.size(); ++i) {
            const std::string at = "tasks[" + std::to_string(i) + "]";
            Task t;
            for_members(v[i], at, {"name", "kind", "role", "loss_weight", "tower", "served"}, extra_task_keys,
                        [&](const std::string& k, const Json& x) {
                          if (k == "name") t.name = x.as_string();
                          else if (k == "kind") t.kind = parse_enum<TaskKind>(x, kTaskKindNames, at + ".kind");
                          else if (k == "role") t.role = parse_enum<TaskRole>(x, kRoleNames, at + ".role");
                          else if (k == "loss_weight") t.loss_weight = x.as_float();
                          else if (k == "tower") t.tower = mlp_from_json(x, at + ".tower");
                          else if (k == "served") t.served = x.as_bool();
                        });
            s.tasks.push_back(std::move(t));
          }
        } else if (key == "experts") {
          s.num_experts = to_u32(v, SpecLimits::max_experts);
        } else if (key == "expert") {
          s.expert = mlp_from_json(v, "expert");
        } else if (key == "bottom") {
          s.bottom = mlp_from_json(v, "bottom");
        } else if (key == "levels") {
          if (!v.is_array()) throw Error("levels: expected a list");
          for (std::size_t i = 0; i < v.size(); ++i) {
            const std::string at = "levels[" + std::to_string(i) + "]";
            PleLevel lv;
            for_members(v[i], at, {"task_experts", "shared_experts", "expert"}, {},
                        [&](const std::string& k, const Json& x) {
                          if (k == "task_experts") lv.task_experts = to_u32(x, SpecLimits::max_experts);
                          else if (k == "shared_experts") lv.shared_experts = to_u32(x, SpecLimits::max_experts);
                          else lv.expert = mlp_from_json(x, at + ".expert");
                        });
            s.levels.push_back(std::move(lv));
          }
        } else if (key == "esmm") {
          Esmm e;
          for_members(v, "esmm", {"ctr", "cvr", "ctcvr"}, {}, [&](const std::string& k, const Json& x) {
            if (k == "ctr") e.ctr = x.as_string();
            else if (k == "cvr") e.cvr = x.as_string();
            else e.ctcvr = x.as_string();
          });
          s.esmm = e;
        }
      });
  if (!has_arch) throw Error("spec: missing \"architecture\"");
  // Keys of another architecture would be ignored: refuse them, as unknown keys.
  for (const char* key : {"bottom", "experts", "expert", "levels"}) {
    if (!j.find(key)) continue;
    const std::string k = key;
    const bool used = k == "bottom"   ? s.architecture == Architecture::shared_bottom
                      : k == "levels" ? s.architecture == Architecture::ple
                                      : s.architecture == Architecture::omoe || s.architecture == Architecture::mmoe;
    if (!used)
      throw Error("spec: key '" + k + "' is not used by the " + to_string(s.architecture) +
                  " architecture");
  }
  // "architecture": "esmm" with two tasks and no esmm block means ESMM over those two tasks.
  if (s.architecture == Architecture::esmm && !s.esmm && s.tasks.size() == 2)
    s.esmm = Esmm{s.tasks[0].name, s.tasks[1].name, "ctcvr"};
  s.validate();
  return s;
}

inline Json spec_to_json(const Spec& s) {
  using namespace internal;
  Json features = Json::array();
  for (const Feature& f : s.features) {
    Json j = Json::object().set("name", f.name).set("kind", to_string(f.kind));
    if (f.kind == FeatureKind::dense) {
      if (f.normalization != Normalization::none) j.set("normalization", normalization_json(f.normalization));
      if (f.standardizes())
        j.set("mean", Json::from_float(f.mean)).set("stddev", Json::from_float(f.stddev));
    } else {
      j.set("mapping", kMappingNames[static_cast<int>(f.mapping)])
          .set("size", f.size)
          .set("embedding_dim", f.embedding_dim);
      if (f.kind == FeatureKind::multi_hot) j.set("pooling", kPoolingNames[static_cast<int>(f.pooling)]);
    }
    features.push(std::move(j));
  }
  Json tasks = Json::array();
  for (const Task& t : s.tasks) {
    Json j = Json::object()
                 .set("name", t.name)
                 .set("kind", kTaskKindNames[static_cast<int>(t.kind)])
                 .set("role", kRoleNames[static_cast<int>(t.role)])
                 .set("loss_weight", Json::from_float(t.loss_weight))
                 .set("tower", mlp_to_json(t.tower));
    if (!t.served) j.set("served", false);
    tasks.push(std::move(j));
  }
  Json out = Json::object()
                 .set("architecture", to_string(s.architecture))
                 .set("features", std::move(features))
                 .set("tasks", std::move(tasks));
  switch (s.architecture) {
    case Architecture::shared_bottom: out.set("bottom", mlp_to_json(s.bottom)); break;
    case Architecture::omoe:
    case Architecture::mmoe: out.set("experts", s.num_experts).set("expert", mlp_to_json(s.expert)); break;
    case Architecture::ple: {
      Json levels = Json::array();
      for (const PleLevel& lv : s.levels)
        levels.push(Json::object()
                        .set("task_experts", lv.task_experts)
                        .set("shared_experts", lv.shared_experts)
                        .set("expert", mlp_to_json(lv.expert)));
      out.set("levels", std::move(levels));
      break;
    }
    default: break;
  }
  if (s.esmm)
    out.set("esmm", Json::object().set("ctr", s.esmm->ctr).set("cvr", s.esmm->cvr).set("ctcvr", s.esmm->ctcvr));
  return out;
}

}  // namespace mtlite
