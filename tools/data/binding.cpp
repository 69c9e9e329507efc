// The JSON form of a data binding: model.json's "data" block and per-feature and per-task keys
// read with every key checked (an unknown or misplaced key is an error, not ignored), and the
// stored form a model file keeps written back.
#include "binding.hpp"

#include <mtlite/core/quote.hpp>
#include <mtlite/format/spec_json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace mtlite::data {
namespace {

constexpr const char* kValuesNames[] = {"strings", "integers"};

// Runs f; an Error from a Json getter (which does not know where it is) gets the field prepended.
template <class F>
auto at_field(const std::string& field, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind(field, 0) == 0) throw;
    throw Error(field + ": " + what);
  }
}

std::vector<std::string> string_list(const Json& v, const std::string& field) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.emplace_back(trim(v.as_string()));
    return out;
  }
  if (!v.is_array()) throw Error(field + ": expected a string or a list of strings");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw Error(field + "[" + std::to_string(i) + "]: expected a string, got " +
                  Json::kind_name(v[i].kind()));
    out.emplace_back(trim(v[i].as_string()));
  }
  return out;
}

Json string_list_json(const std::vector<std::string>& list) {
  Json out = Json::array();
  for (const std::string& s : list) out.push(s);
  return out;
}

void check_keys(const Json& obj, const std::string& field, const std::set<std::string>& a,
                const std::set<std::string>& b = {}) {
  if (!obj.is_object()) throw Error(field + ": expected an object");
  for (const auto& member : obj.items())
    if (!a.count(member.first) && !b.count(member.first))
      throw Error(field + ": unknown key '" + member.first + "'");
}

// Function-local statics: safe to use from other translation units' static initialisers.
const std::set<std::string>& data_keys() {
  static const std::set<std::string> keys = {"separator", "header", "quotes", "missing",
                                             "weight",    "group",  "skip_bad_rows"};
  return keys;
}
const std::set<std::string>& feature_binding_keys() {
  static const std::set<std::string> keys = {"column",   "missing",  "fill",           "values",
                                             "min_count", "max_size", "list_separator", "vocabulary"};
  return keys;
}
const std::set<std::string>& task_binding_keys() {
  static const std::set<std::string> keys = {"column", "positive", "threshold", "missing"};
  return keys;
}
const std::set<std::string>& spec_feature_keys() {
  static const std::set<std::string> keys = {"name",    "kind", "normalization", "mean",   "stddev",
                                             "mapping", "size", "embedding_dim", "pooling"};
  return keys;
}
const std::set<std::string>& spec_task_keys() {
  static const std::set<std::string> keys = {"name", "kind", "role", "loss_weight", "tower", "served"};
  return keys;
}

// --- what features and tasks share ---------------------------------------------------------------

// Reads "name" into `name`; returns the prefix messages about the item use from then on.
std::string read_name(const Json& j, const std::string& at, std::string& name) {
  const Json* v = j.find("name");
  if (!v) throw Error(at + ": missing \"name\"");
  name = at_field(at + ".name", [&] { return v->as_string(); });
  return at + " ('" + name + "')";
}

// A FeatureBinding's or TaskBinding's column (by default, with a header line, the one of its
// name) and its own missing tokens.
template <class Binding>
void read_column(const Json& j, const std::string& at, bool header, Binding& b) {
  if (const Json* c = j.find("column")) {
    b.column = Column::from_json(*c, at + ".column");
  } else if (header) {
    b.column = Column::named(b.name);
  } else {
    throw Error(at + ".column: missing (without a header line there is no column named '" +
                b.name + "')");
  }
  if (const Json* m = j.find("missing")) b.missing = string_list(*m, at + ".missing");
}

// --- features ------------------------------------------------------------------------------------

void only(const Json& j, const std::string& fat, const char* key, bool allowed, const char* what) {
  if (j.find(key) && !allowed) throw Error(fat + "." + key + ": only for " + what);
}

// kind, mapping and values: what decides which of the other keys a feature may have.
void read_kind(const Json& j, const std::string& fat, FeatureBinding& f) {
  const Json* kind = j.find("kind");
  if (!kind) throw Error(fat + ": missing \"kind\"");
  f.kind = at_field(fat + ".kind", [&] {
    return internal::parse_enum<FeatureKind>(*kind, internal::kFeatureKindNames, fat + ".kind");
  });
  if (const Json* m = j.find("mapping"))
    f.mapping = at_field(fat + ".mapping", [&] {
      return internal::parse_enum<IdMapping>(*m, internal::kMappingNames, fat + ".mapping");
    });
  const bool dense = f.kind == FeatureKind::dense;
  only(j, fat, "mapping", !dense, "categorical and multi_hot features");
  only(j, fat, "values", !dense, "categorical and multi_hot features");
  only(j, fat, "fill", dense, "dense features");
  only(j, fat, "list_separator", f.kind == FeatureKind::multi_hot, "multi_hot features");
  if (const Json* v = j.find("values"))
    f.values = at_field(fat + ".values", [&] {
      return internal::parse_enum<Values>(*v, kValuesNames, fat + ".values");
    });
  const bool vocab = f.uses_vocabulary();
  only(j, fat, "min_count", vocab, "vocabulary features with string values");
  only(j, fat, "max_size", vocab, "vocabulary features with string values");
  only(j, fat, "vocabulary", vocab, "vocabulary features with string values");
}

// Ids are indices into the list, so a value may stand in it once; an empty one could never be
// looked up (an empty field is missing).
std::vector<std::string> vocabulary_from_json(const Json& v, const std::string& fat) {
  std::vector<std::string> list = string_list(v, fat + ".vocabulary");
  std::unordered_set<std::string> seen;
  for (std::size_t k = 0; k < list.size(); ++k) {
    if (list[k].empty())
      throw Error(fat + ".vocabulary[" + std::to_string(k) + "]: empty (an empty field is missing)");
    if (!seen.insert(list[k]).second)
      throw Error(fat + ".vocabulary[" + std::to_string(k) + "]: duplicate value " + quote(list[k]));
  }
  if (list.size() >= SpecLimits::max_table_rows) throw Error(fat + ".vocabulary: too many values");
  return list;
}

// fill, min_count, max_size, list_separator and vocabulary; and so what fit() has left to do.
void read_options(const Json& j, const std::string& fat, FeatureBinding& f) {
  if (const Json* v = j.find("fill")) f.fill = at_field(fat + ".fill", [&] { return v->as_float(); });
  f.fit_fill = f.kind == FeatureKind::dense && !f.fill;
  if (const Json* v = j.find("min_count")) {
    f.min_count = at_field(fat + ".min_count", [&] { return v->as_uint64(); });
    if (f.min_count == 0) throw Error(fat + ".min_count: must be at least 1");
  }
  if (const Json* v = j.find("max_size")) {
    f.max_size = at_field(fat + ".max_size", [&] { return v->as_uint64(); });
    if (f.max_size == 0) throw Error(fat + ".max_size: must be at least 1");
    if (f.max_size >= SpecLimits::max_table_rows)
      throw Error(fat + ".max_size: must be below 2^32");
  }
  if (const Json* v = j.find("list_separator")) {
    f.list_separator = at_field(fat + ".list_separator", [&] { return v->as_string(); });
    if (f.list_separator.empty()) throw Error(fat + ".list_separator: must not be empty");
  }
  if (const Json* v = j.find("vocabulary")) f.vocabulary = vocabulary_from_json(*v, fat);
  f.fit_vocabulary = f.uses_vocabulary() && !f.vocabulary;
}

// model.json's "size" where the binding decides it: required where nothing else gives it, refused
// where fit() will, and checked against a given vocabulary.
void check_size(const Json& j, const std::string& fat, const FeatureBinding& f) {
  if (f.kind == FeatureKind::dense) return;
  const Json* size = j.find("size");
  if (f.mapping == IdMapping::vocabulary && f.values == Values::integers && !size)
    throw Error(fat + ".size: required for a vocabulary feature with \"values\": \"integers\"");
  if (f.mapping == IdMapping::hashing && !size)
    throw Error(fat + ".size: required for a hashed feature (the bucket count)");
  if (!f.uses_vocabulary() || !size) return;
  if (!f.vocabulary)
    throw Error(fat + ".size: set by fit() to the size of the vocabulary built from the "
                      "training data; use \"max_size\" to bound it");
  const std::uint64_t n = at_field(fat + ".size", [&] { return size->as_uint64(); });
  if (n != std::max<std::uint64_t>(1, f.vocabulary->size()))
    throw Error(fat + ".size: " + std::to_string(n) + " disagrees with the " +
                std::to_string(f.vocabulary->size()) + " values of \"vocabulary\"");
}

// A standardize feature without mean and stddev has fit() compute them; half of the pair is a
// mistake rather than a request.
void read_standardize(const Json& j, const std::string& fat, FeatureBinding& f) {
  if (f.kind != FeatureKind::dense) return;
  Normalization norm = Normalization::none;
  if (const Json* n = j.find("normalization"))
    norm = at_field(fat + ".normalization", [&] { return internal::parse_normalization(*n, fat + ".normalization"); });
  if (norm != Normalization::standardize && norm != Normalization::log1p_standardize) return;
  const bool mean = j.find("mean") != nullptr, stddev = j.find("stddev") != nullptr;
  if (mean != stddev)
    throw Error(fat + ": give both \"mean\" and \"stddev\" or neither (fit() computes them)");
  f.fit_stats = !mean;
}

// model_form: an entry of model.json's "features", spec keys and all; else the stored form.
FeatureBinding feature_from_json(const Json& j, std::size_t i, bool model_form, bool header) {
  const std::string at = "features[" + std::to_string(i) + "]";
  if (model_form)
    check_keys(j, at, spec_feature_keys(), feature_binding_keys());
  else
    check_keys(j, at, {"name", "kind", "mapping"}, feature_binding_keys());
  FeatureBinding f;
  const std::string fat = read_name(j, at, f.name);
  read_kind(j, fat, f);
  read_column(j, fat, header, f);
  read_options(j, fat, f);
  if (model_form) {
    check_size(j, fat, f);
    read_standardize(j, fat, f);
  }
  return f;
}

// --- tasks ---------------------------------------------------------------------------------------

// A binary task's label: 1 for the "positive" values, or for numbers above "threshold".
void read_label_rule(const Json& j, const std::string& tat, TaskBinding& t) {
  const Json* positive = j.find("positive");
  const Json* threshold = j.find("threshold");
  if (t.kind == TaskKind::regression && positive)
    throw Error(tat + ".positive: only for binary tasks");
  if (t.kind == TaskKind::regression && threshold)
    throw Error(tat + ".threshold: only for binary tasks");
  if (positive && threshold)
    throw Error(tat + ": \"positive\" and \"threshold\" exclude each other");
  if (positive) {
    t.positive = string_list(*positive, tat + ".positive");
    if (t.positive.empty()) throw Error(tat + ".positive: needs at least one value");
    for (std::size_t k = 0; k < t.positive.size(); ++k)
      if (t.positive[k].empty())
        throw Error(tat + ".positive[" + std::to_string(k) + "]: empty (an empty field is missing)");
  }
  if (threshold) t.threshold = at_field(tat + ".threshold", [&] { return threshold->as_float(); });
}

TaskBinding task_from_json(const Json& j, std::size_t i, bool model_form, bool header) {
  const std::string at = "tasks[" + std::to_string(i) + "]";
  if (model_form)
    check_keys(j, at, spec_task_keys(), task_binding_keys());
  else
    check_keys(j, at, {"name", "kind"}, task_binding_keys());
  TaskBinding t;
  const std::string tat = read_name(j, at, t.name);
  if (const Json* k = j.find("kind"))
    t.kind = at_field(tat + ".kind", [&] {
      return internal::parse_enum<TaskKind>(*k, internal::kTaskKindNames, tat + ".kind");
    });
  read_column(j, tat, header, t);
  read_label_rule(j, tat, t);
  return t;
}

// --- the whole binding ---------------------------------------------------------------------------

void read_data_block(const Json& block, bool model_form, DataBinding& b) {
  const std::string where = "data";
  if (model_form)
    check_keys(block, where, data_keys());
  else
    check_keys(block, where, data_keys(), {"features", "tasks"});
  if (const Json* v = block.find("separator")) {
    b.separator = at_field("data.separator", [&] { return v->as_string(); });
    if (b.separator.empty()) throw Error("data.separator: must not be empty");
    if (b.separator.find_first_of("\"\r\n") != std::string::npos)
      throw Error("data.separator: must not contain '\"', '\\r' or '\\n'");
  }
  if (const Json* v = block.find("header")) b.header = at_field("data.header", [&] { return v->as_bool(); });
  if (const Json* v = block.find("quotes")) b.quotes = at_field("data.quotes", [&] { return v->as_bool(); });
  if (const Json* v = block.find("skip_bad_rows"))
    b.skip_bad_rows = at_field("data.skip_bad_rows", [&] { return v->as_bool(); });
  if (const Json* v = block.find("missing")) b.missing = string_list(*v, "data.missing");
  if (const Json* v = block.find("weight")) b.weight = Column::from_json(*v, "data.weight");
  if (const Json* v = block.find("group")) b.group = Column::from_json(*v, "data.group");
}

// model.json's (or the stored block's) "features" or "tasks": required, and a list.
const Json& list_of(const Json& root, const std::string& key, bool model_form) {
  const Json* list = root.find(key);
  if (!list) throw Error((model_form ? "" : "data.") + key + ": missing");
  if (!list->is_array()) throw Error(key + ": expected a list");
  return *list;
}

// The item just added to `items` (a list of model.json) must not reuse an earlier one's name.
template <class Binding>
void check_new_name(const std::vector<Binding>& items, const char* list, const char* what) {
  const Binding& added = items.back();
  for (std::size_t k = 0; k + 1 < items.size(); ++k)
    if (items[k].name == added.name)
      throw Error(std::string(list) + "[" + std::to_string(items.size() - 1) + "].name: duplicate " +
                  what + " '" + added.name + "'");
}

void read_features(const Json& root, bool model_form, DataBinding& b) {
  const Json& features = list_of(root, "features", model_form);
  for (std::size_t i = 0; i < features.size(); ++i) {
    b.features.push_back(feature_from_json(features[i], i, model_form, b.header));
    check_new_name(b.features, "features", "feature");
    const FeatureBinding& f = b.features.back();
    if (f.kind == FeatureKind::multi_hot && f.list_separator == b.separator)
      throw Error("features[" + std::to_string(i) + "] ('" + f.name +
                  "').list_separator: equals data.separator, so a list could never hold two items");
  }
}

void read_tasks(const Json& root, bool model_form, DataBinding& b) {
  const Json& tasks = list_of(root, "tasks", model_form);
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    b.tasks.push_back(task_from_json(tasks[i], i, model_form, b.header));
    check_new_name(b.tasks, "tasks", "task");
  }
}

// Told here rather than when a file is opened: the mistake is in model.json, not in the data.
void check_named_columns(const DataBinding& b) {
  if (b.header) return;
  auto need_header = [&](const Column& c, const std::string& who) {
    if (!c.name.empty())
      throw Error(who + ": column '" + c.name + "' is a name, which needs \"data\": {\"header\": true}");
  };
  for (const FeatureBinding& f : b.features) need_header(f.column, "feature '" + f.name + "'.column");
  for (const TaskBinding& t : b.tasks) need_header(t.column, "task '" + t.name + "'.column");
  if (b.weight) need_header(*b.weight, "data.weight");
  if (b.group) need_header(*b.group, "data.group");
}

Json feature_to_json(const FeatureBinding& f) {
  Json j = Json::object().set("name", f.name).set("kind", to_string(f.kind)).set("column", f.column.to_json());
  if (!f.missing.empty()) j.set("missing", string_list_json(f.missing));
  if (f.kind == FeatureKind::dense) {
    if (f.fill) j.set("fill", *f.fill);
    return j;
  }
  j.set("mapping", internal::kMappingNames[static_cast<int>(f.mapping)])
      .set("values", kValuesNames[static_cast<int>(f.values)]);
  if (f.kind == FeatureKind::multi_hot) j.set("list_separator", f.list_separator);
  if (f.uses_vocabulary()) {
    j.set("min_count", f.min_count);
    if (f.max_size) j.set("max_size", f.max_size);
    if (f.vocabulary) j.set("vocabulary", string_list_json(*f.vocabulary));
  }
  return j;
}

Json task_to_json(const TaskBinding& t) {
  Json j = Json::object()
               .set("name", t.name)
               .set("kind", internal::kTaskKindNames[static_cast<int>(t.kind)])
               .set("column", t.column.to_json());
  if (t.kind == TaskKind::binary) {
    if (!t.positive.empty())
      j.set("positive", string_list_json(t.positive));
    else
      j.set("threshold", t.threshold);
  }
  if (!t.missing.empty()) j.set("missing", string_list_json(t.missing));
  return j;
}

}  // namespace

// --- Column --------------------------------------------------------------------------------------

std::string Column::describe() const {
  return index >= 0 ? "column " + std::to_string(index) : "column '" + name + "'";
}

Json Column::to_json() const { return index >= 0 ? Json(index) : Json(name); }

Column Column::from_json(const Json& v, const std::string& field) {
  if (v.is_string()) {
    if (v.as_string().empty()) throw Error(field + ": empty column name");
    return named(v.as_string());
  }
  if (v.is_number()) {
    const std::uint64_t i = at_field(field, [&] { return v.as_uint64(); });
    if (i > 1000000) throw Error(field + ": column index " + std::to_string(i) + " is implausibly large");
    return at(static_cast<long>(i));
  }
  throw Error(field + ": expected a column index or a header name, got " + Json::kind_name(v.kind()));
}

// --- DataBinding ---------------------------------------------------------------------------------

DataBinding DataBinding::from_json(const Json& j) {
  if (!j.is_object()) throw Error("data: expected an object");
  const bool model_form = j.find("architecture") != nullptr;
  DataBinding b;
  const Json* block = model_form ? j.find("data") : &j;
  if (block) read_data_block(*block, model_form, b);
  const Json& root = model_form ? j : *block;
  read_features(root, model_form, b);
  read_tasks(root, model_form, b);
  check_named_columns(b);
  return b;
}

Json DataBinding::to_json() const {
  Json out = Json::object()
                 .set("separator", separator)
                 .set("header", header)
                 .set("quotes", quotes)
                 .set("missing", string_list_json(missing))
                 .set("skip_bad_rows", skip_bad_rows);
  if (weight) out.set("weight", weight->to_json());
  if (group) out.set("group", group->to_json());
  Json fs = Json::array();
  for (const FeatureBinding& f : features) fs.push(feature_to_json(f));
  out.set("features", std::move(fs));
  Json ts = Json::array();
  for (const TaskBinding& t : tasks) ts.push(task_to_json(t));
  out.set("tasks", std::move(ts));
  return out;
}

Json DataBinding::model_json(const Spec& spec) const {
  check(spec);
  Json out = spec_to_json(spec);
  Json data = to_json();
  Json block = Json::object();
  for (const Json::Member& m : data.items())
    if (m.first != "features" && m.first != "tasks") block.set(m.first, m.second);
  out.set("data", std::move(block));
  // The spec's features and tasks are these bindings', in the same order (check() said so).
  auto merge = [&](const char* list) {
    Json& to = *out.find(list);
    const Json& from = *data.find(list);
    for (std::size_t i = 0; i < to.size(); ++i)
      for (const Json::Member& m : from[i].items())
        if (!to[i].find(m.first)) to[i].set(m.first, m.second);
  };
  merge("features");
  merge("tasks");
  return out;
}

const std::set<std::string>& DataBinding::extra_top_keys() {
  static const std::set<std::string> keys = {"data", "training", "tensors"};
  return keys;
}
const std::set<std::string>& DataBinding::extra_feature_keys() { return feature_binding_keys(); }
const std::set<std::string>& DataBinding::extra_task_keys() { return task_binding_keys(); }

Spec DataBinding::spec_from_model_json(const Json& model_json) {
  const DataBinding b = from_json(model_json);
  if (!model_json.find("architecture")) throw Error("spec: missing \"architecture\"");
  Json copy = model_json;
  Json* features = copy.find("features");
  for (std::size_t i = 0; i < b.features.size(); ++i) {
    const FeatureBinding& f = b.features[i];
    Json& j = (*features)[i];
    if (f.uses_vocabulary() && !j.find("size"))
      j.set("size", std::max<std::uint64_t>(1, f.vocabulary ? f.vocabulary->size() : 1));
  }
  return spec_from_json(copy, extra_top_keys(), extra_feature_keys(), extra_task_keys());
}

}  // namespace mtlite::data
