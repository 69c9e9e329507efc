#include "dataset.hpp"

#include <mtlite/core/hash.hpp>
#include <mtlite/format/spec_json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace mtlite::data {
namespace {

constexpr const char* kValuesNames[] = {"strings", "integers"};
constexpr std::size_t kMaxReportedErrors = 10;

// A finite number within float range: "1", "-2.5", "+3", "1e5". No "nan", "inf", hex, or text
// around it (the caller trims spaces).
bool parse_number(std::string_view s, double& out) noexcept {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  if (s.empty()) return false;
  double d = 0;
  const std::from_chars_result r = std::from_chars(s.data(), s.data() + s.size(), d);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  if (!(std::fabs(d) <= static_cast<double>(std::numeric_limits<float>::max()))) return false;
  out = d;
  return true;
}

bool parse_integer(std::string_view s, std::int64_t& out) noexcept {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  if (s.empty()) return false;
  std::int64_t v = 0;
  const std::from_chars_result r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  out = v;
  return true;
}

bool in_list(std::string_view s, const std::vector<std::string>& list) noexcept {
  for (const std::string& x : list)
    if (x == s) return true;
  return false;
}

// Calls f(item) for each trimmed, non-empty, non-missing item of a multi-hot field.
template <class F>
void for_each_item(std::string_view field, const std::string& sep,
                   const std::vector<std::string>& missing, F&& f) {
  std::size_t from = 0;
  for (;;) {
    const std::size_t at = field.find(sep, from);
    const std::string_view item =
        trim(field.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    if (!item.empty() && !in_list(item, missing)) f(item);
    if (at == std::string_view::npos) return;
    from = at + sep.size();
  }
}

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

FeatureBinding feature_from_json(const Json& j, std::size_t i, bool model_form, bool header) {
  const std::string at = "features[" + std::to_string(i) + "]";
  if (model_form)
    check_keys(j, at, spec_feature_keys(), feature_binding_keys());
  else
    check_keys(j, at, {"name", "kind", "mapping"}, feature_binding_keys());
  FeatureBinding f;
  const Json* name = j.find("name");
  if (!name) throw Error(at + ": missing \"name\"");
  f.name = at_field(at + ".name", [&] { return name->as_string(); });
  const std::string fat = at + " ('" + f.name + "')";
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
  auto only = [&](const char* key, bool allowed, const char* what) {
    if (j.find(key) && !allowed) throw Error(fat + "." + key + ": only for " + what);
  };
  only("mapping", !dense, "categorical and multi_hot features");
  only("values", !dense, "categorical and multi_hot features");
  only("fill", dense, "dense features");
  only("list_separator", f.kind == FeatureKind::multi_hot, "multi_hot features");

  if (const Json* v = j.find("values"))
    f.values = at_field(fat + ".values", [&] {
      return internal::parse_enum<Values>(*v, kValuesNames, fat + ".values");
    });
  const bool vocab = f.uses_vocabulary();
  only("min_count", vocab, "vocabulary features with string values");
  only("max_size", vocab, "vocabulary features with string values");
  only("vocabulary", vocab, "vocabulary features with string values");

  if (const Json* c = j.find("column")) {
    f.column = Column::from_json(*c, fat + ".column");
  } else if (header) {
    f.column = Column::named(f.name);
  } else {
    throw Error(fat + ".column: missing (without a header line there is no column named '" +
                f.name + "')");
  }
  if (const Json* m = j.find("missing")) f.missing = string_list(*m, fat + ".missing");
  if (const Json* v = j.find("fill")) {
    f.fill = at_field(fat + ".fill", [&] {
      const float x = v->as_float();
      return x;
    });
  }
  f.fit_fill = dense && !f.fill;
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
  if (const Json* v = j.find("vocabulary")) {
    const std::vector<std::string> list = string_list(*v, fat + ".vocabulary");
    std::unordered_set<std::string> seen;
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (list[k].empty())
        throw Error(fat + ".vocabulary[" + std::to_string(k) + "]: empty (an empty field is missing)");
      if (!seen.insert(list[k]).second)
        throw Error(fat + ".vocabulary[" + std::to_string(k) + "]: duplicate value " + quote(list[k]));
    }
    if (list.size() >= SpecLimits::max_table_rows) throw Error(fat + ".vocabulary: too many values");
    f.vocabulary = list;
  }
  f.fit_vocabulary = vocab && !f.vocabulary;

  if (model_form) {
    const Json* size = j.find("size");
    if (!dense && f.mapping == IdMapping::vocabulary && f.values == Values::integers && !size)
      throw Error(fat + ".size: required for a vocabulary feature with \"values\": \"integers\"");
    if (!dense && f.mapping == IdMapping::hashing && !size)
      throw Error(fat + ".size: required for a hashed feature (the bucket count)");
    if (vocab && size) {
      if (!f.vocabulary)
        throw Error(fat + ".size: set by fit() to the size of the vocabulary built from the "
                          "training data; use \"max_size\" to bound it");
      const std::uint64_t n = at_field(fat + ".size", [&] { return size->as_uint64(); });
      if (n != std::max<std::uint64_t>(1, f.vocabulary->size()))
        throw Error(fat + ".size: " + std::to_string(n) + " disagrees with the " +
                    std::to_string(f.vocabulary->size()) + " values of \"vocabulary\"");
    }
    if (dense) {
      Normalization norm = Normalization::none;
      if (const Json* n = j.find("normalization"))
        norm = at_field(fat + ".normalization", [&] {
          return internal::parse_enum<Normalization>(*n, internal::kNormalizationNames,
                                                     fat + ".normalization");
        });
      const bool mean = j.find("mean") != nullptr, stddev = j.find("stddev") != nullptr;
      if (norm == Normalization::standardize) {
        if (mean != stddev)
          throw Error(fat + ": give both \"mean\" and \"stddev\" or neither (fit() computes them)");
        f.fit_stats = !mean;
      }
    }
  }
  return f;
}

TaskBinding task_from_json(const Json& j, std::size_t i, bool model_form, bool header) {
  const std::string at = "tasks[" + std::to_string(i) + "]";
  if (model_form)
    check_keys(j, at, spec_task_keys(), task_binding_keys());
  else
    check_keys(j, at, {"name", "kind"}, task_binding_keys());
  TaskBinding t;
  const Json* name = j.find("name");
  if (!name) throw Error(at + ": missing \"name\"");
  t.name = at_field(at + ".name", [&] { return name->as_string(); });
  const std::string tat = at + " ('" + t.name + "')";
  if (const Json* k = j.find("kind"))
    t.kind = at_field(tat + ".kind", [&] {
      return internal::parse_enum<TaskKind>(*k, internal::kTaskKindNames, tat + ".kind");
    });
  if (const Json* c = j.find("column")) {
    t.column = Column::from_json(*c, tat + ".column");
  } else if (header) {
    t.column = Column::named(t.name);
  } else {
    throw Error(tat + ".column: missing (without a header line there is no column named '" +
                t.name + "')");
  }
  if (const Json* m = j.find("missing")) t.missing = string_list(*m, tat + ".missing");
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
  return t;
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

// --- DataBinding: JSON ---------------------------------------------------------------------------

DataBinding DataBinding::from_json(const Json& j) {
  if (!j.is_object()) throw Error("data: expected an object");
  const bool model_form = j.find("architecture") != nullptr;
  DataBinding b;
  const Json* block = model_form ? j.find("data") : &j;
  if (block) {
    const std::string where = "data";
    if (model_form)
      check_keys(*block, where, data_keys());
    else
      check_keys(*block, where, data_keys(), {"features", "tasks"});
    if (const Json* v = block->find("separator")) {
      b.separator = at_field("data.separator", [&] { return v->as_string(); });
      if (b.separator.empty()) throw Error("data.separator: must not be empty");
      if (b.separator.find_first_of("\"\r\n") != std::string::npos)
        throw Error("data.separator: must not contain '\"', '\\r' or '\\n'");
    }
    if (const Json* v = block->find("header")) b.header = at_field("data.header", [&] { return v->as_bool(); });
    if (const Json* v = block->find("quotes")) b.quotes = at_field("data.quotes", [&] { return v->as_bool(); });
    if (const Json* v = block->find("skip_bad_rows"))
      b.skip_bad_rows = at_field("data.skip_bad_rows", [&] { return v->as_bool(); });
    if (const Json* v = block->find("missing")) b.missing = string_list(*v, "data.missing");
    if (const Json* v = block->find("weight")) b.weight = Column::from_json(*v, "data.weight");
    if (const Json* v = block->find("group")) b.group = Column::from_json(*v, "data.group");
  }
  const Json& root = model_form ? j : *block;
  const Json* features = root.find("features");
  if (!features) throw Error(model_form ? "features: missing" : "data.features: missing");
  if (!features->is_array()) throw Error("features: expected a list");
  for (std::size_t i = 0; i < features->size(); ++i) {
    b.features.push_back(feature_from_json((*features)[i], i, model_form, b.header));
    const FeatureBinding& f = b.features.back();
    for (std::size_t k = 0; k + 1 < b.features.size(); ++k)
      if (b.features[k].name == f.name)
        throw Error("features[" + std::to_string(i) + "].name: duplicate feature '" + f.name + "'");
    if (f.kind == FeatureKind::multi_hot && f.list_separator == b.separator)
      throw Error("features[" + std::to_string(i) + "] ('" + f.name +
                  "').list_separator: equals data.separator, so a list could never hold two items");
  }
  const Json* tasks = root.find("tasks");
  if (!tasks) throw Error(model_form ? "tasks: missing" : "data.tasks: missing");
  if (!tasks->is_array()) throw Error("tasks: expected a list");
  for (std::size_t i = 0; i < tasks->size(); ++i) {
    b.tasks.push_back(task_from_json((*tasks)[i], i, model_form, b.header));
    for (std::size_t k = 0; k + 1 < b.tasks.size(); ++k)
      if (b.tasks[k].name == b.tasks.back().name)
        throw Error("tasks[" + std::to_string(i) + "].name: duplicate task '" + b.tasks.back().name + "'");
  }
  if (!b.header) {
    auto need_header = [&](const Column& c, const std::string& who) {
      if (!c.name.empty())
        throw Error(who + ": column '" + c.name + "' is a name, which needs \"data\": {\"header\": true}");
    };
    for (const FeatureBinding& f : b.features) need_header(f.column, "feature '" + f.name + "'.column");
    for (const TaskBinding& t : b.tasks) need_header(t.column, "task '" + t.name + "'.column");
    if (b.weight) need_header(*b.weight, "data.weight");
    if (b.group) need_header(*b.group, "data.group");
  }
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
  for (const FeatureBinding& f : features) {
    Json j = Json::object().set("name", f.name).set("kind", to_string(f.kind)).set("column", f.column.to_json());
    if (!f.missing.empty()) j.set("missing", string_list_json(f.missing));
    if (f.kind == FeatureKind::dense) {
      if (f.fill) j.set("fill", *f.fill);
    } else {
      j.set("mapping", internal::kMappingNames[static_cast<int>(f.mapping)])
          .set("values", kValuesNames[static_cast<int>(f.values)]);
      if (f.kind == FeatureKind::multi_hot) j.set("list_separator", f.list_separator);
      if (f.uses_vocabulary()) {
        j.set("min_count", f.min_count);
        if (f.max_size) j.set("max_size", f.max_size);
        if (f.vocabulary) j.set("vocabulary", string_list_json(*f.vocabulary));
      }
    }
    fs.push(std::move(j));
  }
  out.set("features", std::move(fs));
  Json ts = Json::array();
  for (const TaskBinding& t : tasks) {
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
    ts.push(std::move(j));
  }
  out.set("tasks", std::move(ts));
  return out;
}

const std::set<std::string>& DataBinding::extra_top_keys() {
  static const std::set<std::string> keys = {"data", "training"};
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

// --- DataBinding: checks -------------------------------------------------------------------------

namespace {

void check_shape(const DataBinding& b, const Spec& spec, bool sizes) {
  if (spec.features.size() != b.features.size())
    throw Error("data: the bindings name " + std::to_string(b.features.size()) +
                " features, the spec has " + std::to_string(spec.features.size()));
  for (std::size_t i = 0; i < b.features.size(); ++i) {
    const FeatureBinding& f = b.features[i];
    const Feature& s = spec.features[i];
    const std::string at = "data: feature " + std::to_string(i) + " ('" + f.name + "')";
    if (f.name != s.name) throw Error(at + " is '" + s.name + "' in the spec");
    if (f.kind != s.kind)
      throw Error(at + " is " + to_string(f.kind) + " here but " + to_string(s.kind) + " in the spec");
    if (f.kind != FeatureKind::dense && f.mapping != s.mapping)
      throw Error(at + ": the id mapping differs from the spec's");
    if (sizes && f.uses_vocabulary() && f.vocabulary &&
        s.size != std::max<std::uint64_t>(1, f.vocabulary->size()))
      throw Error(at + ": the spec's size " + std::to_string(s.size) + " disagrees with the " +
                  std::to_string(f.vocabulary->size()) + " values of its vocabulary");
  }
  if (spec.tasks.size() != b.tasks.size())
    throw Error("data: the bindings name " + std::to_string(b.tasks.size()) + " tasks, the spec has " +
                std::to_string(spec.tasks.size()));
  for (std::size_t k = 0; k < b.tasks.size(); ++k) {
    const std::string at = "data: task " + std::to_string(k) + " ('" + b.tasks[k].name + "')";
    if (b.tasks[k].name != spec.tasks[k].name) throw Error(at + " is '" + spec.tasks[k].name + "' in the spec");
    if (b.tasks[k].kind != spec.tasks[k].kind) throw Error(at + ": the kind differs from the spec's");
  }
}

}  // namespace

void DataBinding::check(const Spec& spec) const { check_shape(*this, spec, true); }

std::string DataBinding::unfitted_reason() const {
  for (const FeatureBinding& f : features) {
    if (f.uses_vocabulary() && !f.vocabulary) return "feature '" + f.name + "' has no vocabulary";
    if (f.kind == FeatureKind::dense && !f.fill) return "feature '" + f.name + "' has no fill value";
    if (f.fit_stats && !f.stats_fitted) return "feature '" + f.name + "' has no mean and stddev";
  }
  return {};
}

CsvOptions DataBinding::csv_options() const {
  CsvOptions o;
  o.separator = separator;
  o.header = header;
  o.quotes = quotes;
  o.uniform_fields = true;
  return o;
}

// --- reading rows --------------------------------------------------------------------------------

namespace {

// The good rows of a file, parsed and checked field by field; fit() and load() share it so that
// they agree on what is malformed.
class RowReader {
 public:
  RowReader(const std::string& path, const DataBinding& b, const ReadOptions& options)
      : b_(b),
        csv_(path, b.csv_options()),
        skip_(options.skip_bad_rows.value_or(b.skip_bad_rows)),
        max_rows_(options.max_rows) {
    const std::size_t nf = b.features.size(), nt = b.tasks.size();
    feature_col_.resize(nf);
    task_col_.resize(nt);
    feature_missing_.resize(nf);
    task_missing_.resize(nt);
    for (std::size_t i = 0; i < nf; ++i) {
      const FeatureBinding& f = b.features[i];
      feature_col_[i] = resolve(f.column, "feature '" + f.name + "'");
      feature_missing_[i] = b.missing;
      feature_missing_[i].insert(feature_missing_[i].end(), f.missing.begin(), f.missing.end());
    }
    for (std::size_t k = 0; k < nt; ++k) {
      const TaskBinding& t = b.tasks[k];
      task_col_[k] = resolve(t.column, "task '" + t.name + "'");
      task_missing_[k] = b.missing;
      task_missing_[k].insert(task_missing_[k].end(), t.missing.begin(), t.missing.end());
    }
    if (b.weight) weight_col_ = resolve(*b.weight, "data.weight");
    if (b.group) group_col_ = resolve(*b.group, "data.group");
    num.assign(nf, 0.0);
    id.assign(nf, -1);
    text.resize(nf);
    missing.assign(nf, 0);
    label.assign(nt, 0.0f);
    mask.assign(nt, 0);
  }

  bool next() {
    for (;;) {
      if (max_rows_ && report.rows >= max_rows_) return false;
      try {
        if (!csv_.next()) return false;
      } catch (const CsvError& e) {
        if (!skip_) throw;
        note(e.what());
        continue;
      }
      if (!bounds_checked_) check_bounds();
      if (parse()) {
        ++report.rows;
        return true;
      }
      if (!skip_) csv_.fail(reason_);
      note(csv_.path() + ":" + std::to_string(csv_.line()) + ": " + reason_);
    }
  }

  const std::string& path() const { return csv_.path(); }
  std::size_t line() const { return csv_.line(); }
  // Rows the whole input probably holds, judged from the text read so far; 0 when unknown.
  std::size_t estimated_rows() const {
    const std::uint64_t hint = csv_.size_hint(), done = csv_.bytes_consumed();
    if (!hint || !done || hint < done || report.rows == 0) return 0;
    const double rows = static_cast<double>(report.rows + report.skipped) * static_cast<double>(hint) /
                        static_cast<double>(done);
    return rows < 1e9 ? static_cast<std::size_t>(rows * 1.02) + 16 : 0;
  }
  const std::vector<std::string>& feature_missing(std::size_t i) const { return feature_missing_[i]; }

  ReadReport report;
  // The current row, per feature: num (dense; NaN when missing), id (integer values; -1 when
  // missing), text (string values, trimmed; empty when missing), missing; per task: label, mask.
  std::vector<double> num;
  std::vector<std::int64_t> id;
  std::vector<std::string_view> text;
  std::vector<std::uint8_t> missing;
  std::vector<float> label;
  std::vector<std::uint8_t> mask;
  float weight = 1.0f;
  std::int64_t group = 0;

 private:
  std::size_t resolve(const Column& c, const std::string& who) {
    std::size_t col;
    if (c.index >= 0) {
      col = static_cast<std::size_t>(c.index);
    } else {
      if (!b_.header)
        throw Error(csv_.path() + ": " + who + ": column '" + c.name +
                    "' is a name, which needs \"data\": {\"header\": true}");
      const long k = csv_.column(c.name);
      if (k < 0) throw Error(csv_.path() + ": " + who + ": no column named '" + c.name + "' in the header");
      if (std::count(csv_.header().begin(), csv_.header().end(), c.name) > 1)
        throw Error(csv_.path() + ": " + who + ": the header names column '" + c.name + "' more than once");
      col = static_cast<std::size_t>(k);
    }
    if (col + 1 > width_) {
      width_ = col + 1;
      widest_ = who + " reads " + c.describe();
    }
    return col;
  }

  void check_bounds() {
    bounds_checked_ = true;
    const std::size_t fields = csv_.expected_fields();
    if (width_ > fields)
      throw Error(csv_.path() + ":" + std::to_string(csv_.line()) + ": " + widest_ +
                  (b_.header ? " (index " + std::to_string(width_ - 1) + ")" : "") +
                  " but the rows have " + std::to_string(fields) + " fields");
  }

  void note(const std::string& message) {
    ++report.skipped;
    if (report.first_errors.size() < kMaxReportedErrors) report.first_errors.push_back(message);
  }

  // "column 3" or, with a header, "column 3 'price'".
  std::string column_name(std::size_t col) const {
    std::string s = "column " + std::to_string(col);
    if (col < csv_.header().size()) s += " '" + csv_.header()[col] + "'";
    return s;
  }
  std::string where(std::size_t col, const char* what, const std::string& name) const {
    return column_name(col) + " (" + what + " '" + name + "')";
  }

  bool bad(std::size_t col, const char* what, const std::string& name, std::string_view value,
           const char* problem) {
    reason_ = where(col, what, name) + ": " + quote(value) + " " + problem;
    return false;
  }

  bool parse() {
    for (std::size_t i = 0; i < b_.features.size(); ++i) {
      const FeatureBinding& f = b_.features[i];
      const std::size_t col = feature_col_[i];
      const std::string_view v = trim(csv_[col]);
      const bool miss = v.empty() || in_list(v, feature_missing_[i]);
      missing[i] = miss;
      if (f.kind == FeatureKind::dense) {
        if (miss) {
          num[i] = std::numeric_limits<double>::quiet_NaN();
        } else if (!parse_number(v, num[i])) {
          return bad(col, "feature", f.name, v, "is not a finite number");
        }
      } else if (f.values == Values::integers) {
        text[i] = miss ? std::string_view() : v;
        if (f.kind == FeatureKind::categorical) {
          if (miss) {
            id[i] = -1;
          } else if (!parse_integer(v, id[i])) {
            return bad(col, "feature", f.name, v, "is not an integer id");
          }
        } else if (!miss) {
          bool ok = true;
          std::string_view wrong;
          for_each_item(v, f.list_separator, feature_missing_[i], [&](std::string_view item) {
            std::int64_t x;
            if (ok && !parse_integer(item, x)) {
              ok = false;
              wrong = item;
            }
          });
          if (!ok) return bad(col, "feature", f.name, wrong, "is not an integer id");
        }
      } else {
        text[i] = miss ? std::string_view() : v;
      }
    }
    for (std::size_t k = 0; k < b_.tasks.size(); ++k) {
      const TaskBinding& t = b_.tasks[k];
      const std::size_t col = task_col_[k];
      const std::string_view v = trim(csv_[col]);
      if (v.empty() || in_list(v, task_missing_[k])) {
        label[k] = 0.0f;
        mask[k] = 0;
        continue;
      }
      mask[k] = 1;
      if (t.kind == TaskKind::binary && !t.positive.empty()) {
        label[k] = in_list(v, t.positive) ? 1.0f : 0.0f;
        continue;
      }
      double x;
      if (!parse_number(v, x)) return bad(col, "task", t.name, v, "is not a finite number");
      label[k] = t.kind == TaskKind::binary ? (x > static_cast<double>(t.threshold) ? 1.0f : 0.0f)
                                            : static_cast<float>(x);
    }
    if (weight_col_ != kNone) {
      const std::string_view v = trim(csv_[weight_col_]);
      double x;
      if (v.empty() || in_list(v, b_.missing)) {
        reason_ = column_name(weight_col_) + " (data.weight): the weight is missing";
        return false;
      }
      if (!parse_number(v, x) || x < 0) {
        reason_ = column_name(weight_col_) + " (data.weight): " + quote(v) + " is not a finite number >= 0";
        return false;
      }
      weight = static_cast<float>(x);
    }
    if (group_col_ != kNone) {
      const std::string_view v = trim(csv_[group_col_]);
      if (!parse_integer(v, group)) group = static_cast<std::int64_t>(hash_string(v));
    }
    return true;
  }

  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  const DataBinding& b_;
  CsvReader csv_;
  bool skip_;
  std::size_t max_rows_;
  std::vector<std::size_t> feature_col_, task_col_;
  std::vector<std::vector<std::string>> feature_missing_, task_missing_;
  std::size_t weight_col_ = kNone, group_col_ = kNone;
  std::size_t width_ = 0;
  std::string widest_;
  bool bounds_checked_ = false;
  std::string reason_;
};

// Strings -> dense indices 0, 1, 2... in insertion order: an open-addressing table probed with a
// string_view, so that neither counting nor looking up copies the text (C++17's unordered_map has
// no heterogeneous lookup).
class StringTable {
 public:
  static std::uint64_t hash(std::string_view s) noexcept {
    constexpr std::uint64_t k = 0x9fb21c651e98df25ull;
    std::uint64_t h = s.size() * k;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) h = rotl((h ^ load8(s.data() + i)) * k, 29);
    if (i < s.size()) {
      std::uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      h = rotl((h ^ w) * k, 29);
    }
    return mix64(h);
  }

  // Equality without a call to memcmp: the keys are short, and by the time this runs the 64-bit
  // hashes matched, so the answer is nearly always yes.
  static bool same(const std::string& a, std::string_view b) noexcept {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    if (n < 8) {
      for (std::size_t i = 0; i < n; ++i)
        if (a[i] != b[i]) return false;
      return true;
    }
    for (std::size_t i = 0; i + 8 <= n; i += 8)
      if (load8(a.data() + i) != load8(b.data() + i)) return false;
    return load8(a.data() + n - 8) == load8(b.data() + n - 8);
  }

  std::size_t size() const noexcept { return keys_.size(); }
  const std::string& key(std::size_t i) const noexcept { return keys_[i]; }

  // The index of s, or -1.
  std::int64_t find(std::string_view s) const noexcept {
    if (slots_.empty()) return -1;
    const std::uint64_t h = hash(s);
    for (std::size_t at = h & mask_;; at = (at + 1) & mask_) {
      const std::uint32_t slot = slots_[at];
      if (slot == 0) return -1;
      if (hashes_[slot - 1] == h && same(keys_[slot - 1], s)) return slot - 1;
    }
  }

  // The index of s, added at the end when new (inserted = true).
  std::size_t insert(std::string_view s, bool& inserted) {
    if (2 * (keys_.size() + 1) > slots_.size()) grow();
    const std::uint64_t h = hash(s);
    std::size_t at = h & mask_;
    for (;; at = (at + 1) & mask_) {
      const std::uint32_t slot = slots_[at];
      if (slot == 0) break;
      if (hashes_[slot - 1] == h && same(keys_[slot - 1], s)) {
        inserted = false;
        return slot - 1;
      }
    }
    if (keys_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
      throw Error("data: more than 2^32 distinct values in one column");
    keys_.emplace_back(s);
    hashes_.push_back(h);
    slots_[at] = static_cast<std::uint32_t>(keys_.size());
    inserted = true;
    return keys_.size() - 1;
  }

 private:
  static std::uint64_t load8(const char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  static constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

  void grow() {
    const std::size_t n = slots_.empty() ? 64 : slots_.size() * 2;
    slots_.assign(n, 0);
    mask_ = n - 1;
    for (std::size_t i = 0; i < keys_.size(); ++i) {
      std::size_t at = hashes_[i] & mask_;
      while (slots_[at] != 0) at = (at + 1) & mask_;
      slots_[at] = static_cast<std::uint32_t>(i + 1);
    }
  }

  std::vector<std::string> keys_;
  std::vector<std::uint64_t> hashes_;
  std::vector<std::uint32_t> slots_;  // 0: empty; else index + 1
  std::size_t mask_ = 0;
};

class Vocabulary {
 public:
  explicit Vocabulary(const std::vector<std::string>& values) {
    bool inserted;
    for (const std::string& v : values) table_.insert(v, inserted);
  }
  std::int64_t operator()(std::string_view s) const noexcept { return table_.find(s); }

 private:
  StringTable table_;
};

}  // namespace

// --- fit -----------------------------------------------------------------------------------------

ReadReport DataBinding::fit(const std::string& path, Spec& spec, const ReadOptions& options) {
  check_shape(*this, spec, false);
  const std::size_t nf = features.size();
  struct Moments {  // Welford
    std::uint64_t n = 0;
    double mean = 0, m2 = 0;
  };
  struct Counts {
    StringTable values;                // index = order of first appearance
    std::vector<std::uint64_t> count;  // per index
  };
  std::vector<Moments> moments(nf);
  std::vector<Counts> counts(nf);

  RowReader rows(path, *this, options);
  auto count = [&](Counts& c, std::string_view value, const FeatureBinding& f) {
    bool inserted;
    const std::size_t i = c.values.insert(value, inserted);
    if (!inserted) {
      ++c.count[i];
      return;
    }
    c.count.push_back(1);
    try {
      (void)Json(value).dump();  // a vocabulary goes into a model file's JSON: it must be UTF-8
    } catch (const Error&) {
      throw Error(rows.path() + ":" + std::to_string(rows.line()) + ": feature '" + f.name + "': " +
                  quote(value) + " is not valid UTF-8, which a vocabulary needs");
    }
  };
  while (rows.next()) {
    for (std::size_t i = 0; i < nf; ++i) {
      const FeatureBinding& f = features[i];
      if (f.kind == FeatureKind::dense) {
        const double x = rows.num[i];
        if (std::isnan(x)) continue;
        Moments& m = moments[i];
        ++m.n;
        const double d = x - m.mean;
        m.mean += d / static_cast<double>(m.n);
        m.m2 += d * (x - m.mean);
      } else if (f.fit_vocabulary && !rows.missing[i]) {
        if (f.kind == FeatureKind::categorical)
          count(counts[i], rows.text[i], f);
        else
          for_each_item(rows.text[i], f.list_separator, rows.feature_missing(i),
                        [&](std::string_view item) { count(counts[i], item, f); });
      }
    }
  }

  // Everything is read: now change the binding and the spec.
  for (std::size_t i = 0; i < nf; ++i) {
    FeatureBinding& f = features[i];
    Feature& s = spec.features[i];
    if (f.kind == FeatureKind::dense) {
      const Moments& m = moments[i];
      const double mean = m.n ? m.mean : 0.0;
      double stddev = m.n ? std::sqrt(m.m2 / static_cast<double>(m.n)) : 1.0;
      if (!(static_cast<float>(stddev) > 0.0f) || !std::isfinite(static_cast<float>(stddev))) stddev = 1.0;
      if (f.fit_stats) {
        s.mean = static_cast<float>(mean);
        s.stddev = static_cast<float>(stddev);
        f.stats_fitted = true;
      }
      if (f.fit_fill) f.fill = static_cast<float>(mean);
    } else if (f.fit_vocabulary) {
      const Counts& c = counts[i];
      std::vector<std::size_t> order;  // indices, i.e. first appearances
      order.reserve(c.values.size());
      for (std::size_t k = 0; k < c.values.size(); ++k)
        if (c.count[k] >= f.min_count) order.push_back(k);
      // Most frequent first; ties keep the order of first appearance.
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return c.count[a] > c.count[b]; });
      const std::uint64_t limit = f.max_size ? f.max_size : SpecLimits::max_table_rows - 1;
      if (order.size() > limit) order.resize(limit);
      std::vector<std::string> vocabulary;
      vocabulary.reserve(order.size());
      for (const std::size_t k : order) vocabulary.push_back(c.values.key(k));
      f.vocabulary = std::move(vocabulary);
    }
    if (f.uses_vocabulary() && f.vocabulary) s.size = std::max<std::uint64_t>(1, f.vocabulary->size());
  }
  spec.validate();
  return rows.report;
}

// --- load ----------------------------------------------------------------------------------------

Dataset load(const std::string& path, const DataBinding& b, const Spec& spec, const ReadOptions& options) {
  b.check(spec);
  if (!b.fitted())
    throw Error("data: the bindings are not fitted (" + b.unfitted_reason() +
                "): fit() them on the training data first");
  const std::size_t nf = b.features.size();
  Dataset ds;
  ds.num_dense = spec.count(FeatureKind::dense);
  ds.num_categorical = spec.count(FeatureKind::categorical);
  ds.num_tasks = spec.tasks.size();
  ds.bags.resize(spec.count(FeatureKind::multi_hot));
  for (Dataset::Bags& bag : ds.bags) bag.offsets.push_back(0);

  std::vector<std::size_t> slot(nf);  // index among the features of its kind
  std::vector<std::unique_ptr<Vocabulary>> vocab(nf);
  {
    std::size_t d = 0, c = 0, m = 0;
    for (std::size_t i = 0; i < nf; ++i) {
      const FeatureBinding& f = b.features[i];
      slot[i] = f.kind == FeatureKind::dense ? d++ : f.kind == FeatureKind::categorical ? c++ : m++;
      if (f.uses_vocabulary()) vocab[i] = std::make_unique<Vocabulary>(*f.vocabulary);
    }
  }
  auto id_of = [&](std::size_t i, std::string_view text) -> std::int64_t {
    const FeatureBinding& f = b.features[i];
    if (f.values == Values::integers) {
      std::int64_t x = -1;
      parse_integer(text, x);  // checked by RowReader
      return x;
    }
    if (f.mapping == IdMapping::hashing) return static_cast<std::int64_t>(hash_string(text));
    return (*vocab[i])(text);
  };

  RowReader rows(path, b, options);
  auto reserve = [&](std::size_t n) {
    if (options.max_rows && n > options.max_rows) n = options.max_rows;
    ds.dense.reserve(n * ds.num_dense);
    ds.ids.reserve(n * ds.num_categorical);
    for (Dataset::Bags& bag : ds.bags) bag.offsets.reserve(n + 1);
    ds.labels.reserve(n * ds.num_tasks);
    ds.mask.reserve(n * ds.num_tasks);
    ds.weights.reserve(n);
    ds.groups.reserve(n);
  };
  while (rows.next()) {
    // Growing by doubling would copy the arrays again and again: size them once from the text
    // read so far.
    if (rows.report.rows == 1000) reserve(rows.estimated_rows());
    const std::size_t d0 = ds.dense.size(), c0 = ds.ids.size();
    ds.dense.resize(d0 + ds.num_dense);
    ds.ids.resize(c0 + ds.num_categorical);
    float* const dense = ds.dense.data() + d0;
    std::int64_t* const ids = ds.ids.data() + c0;
    for (std::size_t i = 0; i < nf; ++i) {
      const FeatureBinding& f = b.features[i];
      switch (f.kind) {
        case FeatureKind::dense: {
          const double x = rows.num[i];
          dense[slot[i]] = std::isnan(x) ? *f.fill : static_cast<float>(x);
          break;
        }
        case FeatureKind::categorical:
          ids[slot[i]] = rows.missing[i] ? -1
                         : f.values == Values::integers ? rows.id[i]
                                                        : id_of(i, rows.text[i]);
          break;
        case FeatureKind::multi_hot: {
          Dataset::Bags& bag = ds.bags[slot[i]];
          if (!rows.missing[i])
            for_each_item(rows.text[i], f.list_separator, rows.feature_missing(i),
                          [&](std::string_view item) { bag.ids.push_back(id_of(i, item)); });
          if (bag.ids.size() > std::numeric_limits<std::uint32_t>::max())
            throw Error(path + ": feature '" + f.name + "': more than 2^32 ids in all");
          bag.offsets.push_back(static_cast<std::uint32_t>(bag.ids.size()));
          break;
        }
      }
    }
    ds.labels.insert(ds.labels.end(), rows.label.begin(), rows.label.end());
    ds.mask.insert(ds.mask.end(), rows.mask.begin(), rows.mask.end());
    ds.weights.push_back(rows.weight);
    ds.groups.push_back(rows.group);
  }
  ds.rows = rows.report.rows;
  ds.report = rows.report;
  // Give back a generous reservation (an estimate can be off), but do not copy for a few percent.
  auto fit_to_size = [](auto& v) {
    if (v.capacity() > v.size() + v.size() / 8 + 1024) v.shrink_to_fit();
  };
  fit_to_size(ds.dense);
  fit_to_size(ds.ids);
  for (Dataset::Bags& bag : ds.bags) {
    fit_to_size(bag.ids);
    fit_to_size(bag.offsets);
  }
  fit_to_size(ds.labels);
  fit_to_size(ds.mask);
  fit_to_size(ds.weights);
  fit_to_size(ds.groups);
  return ds;
}

// --- Dataset -------------------------------------------------------------------------------------

void Dataset::check_range(std::size_t begin, std::size_t end) const {
  if (begin > end || end > rows)
    throw Error("dataset: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") out of range for " + std::to_string(rows) + " rows");
}

Batch Dataset::batch(std::size_t begin, std::size_t end, std::vector<Bag>& bag_storage) const {
  check_range(begin, end);
  const std::size_t n = end - begin;
  Batch out;
  out.rows = n;
  out.dense = span<const float>(dense.data() + begin * num_dense, n * num_dense);
  out.ids = span<const std::int64_t>(ids.data() + begin * num_categorical, n * num_categorical);
  bag_storage.resize(bags.size());
  for (std::size_t k = 0; k < bags.size(); ++k) {
    bag_storage[k].ids = span<const std::int64_t>(bags[k].ids.data(), bags[k].ids.size());
    bag_storage[k].offsets = span<const std::uint32_t>(bags[k].offsets.data() + begin, n + 1);
  }
  out.bags = span<const Bag>(bag_storage.data(), bag_storage.size());
  return out;
}

Batch Dataset::batch(std::size_t begin, std::size_t end) const {
  thread_local std::vector<Bag> storage;
  return batch(begin, end, storage);
}

span<const float> Dataset::labels_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {labels.data() + begin * num_tasks, (end - begin) * num_tasks};
}
span<const std::uint8_t> Dataset::mask_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {mask.data() + begin * num_tasks, (end - begin) * num_tasks};
}
span<const float> Dataset::weights_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {weights.data() + begin, end - begin};
}
span<const std::int64_t> Dataset::groups_of(std::size_t begin, std::size_t end) const {
  check_range(begin, end);
  return {groups.data() + begin, end - begin};
}

Dataset Dataset::select(span<const std::size_t> row_indices) const {
  Dataset out;
  out.num_dense = num_dense;
  out.num_categorical = num_categorical;
  out.num_tasks = num_tasks;
  const std::size_t n = row_indices.size();
  out.rows = n;
  out.report.rows = n;
  out.dense.reserve(n * num_dense);
  out.ids.reserve(n * num_categorical);
  out.labels.reserve(n * num_tasks);
  out.mask.reserve(n * num_tasks);
  out.weights.reserve(n);
  out.groups.reserve(n);
  out.bags.resize(bags.size());
  for (Bags& bag : out.bags) {
    bag.offsets.reserve(n + 1);
    bag.offsets.push_back(0);
  }
  for (const std::size_t r : row_indices) {
    if (r >= rows)
      throw Error("dataset: row " + std::to_string(r) + " out of range for " + std::to_string(rows) + " rows");
    out.dense.insert(out.dense.end(), dense.begin() + static_cast<std::ptrdiff_t>(r * num_dense),
                     dense.begin() + static_cast<std::ptrdiff_t>((r + 1) * num_dense));
    out.ids.insert(out.ids.end(), ids.begin() + static_cast<std::ptrdiff_t>(r * num_categorical),
                   ids.begin() + static_cast<std::ptrdiff_t>((r + 1) * num_categorical));
    out.labels.insert(out.labels.end(), labels.begin() + static_cast<std::ptrdiff_t>(r * num_tasks),
                      labels.begin() + static_cast<std::ptrdiff_t>((r + 1) * num_tasks));
    out.mask.insert(out.mask.end(), mask.begin() + static_cast<std::ptrdiff_t>(r * num_tasks),
                    mask.begin() + static_cast<std::ptrdiff_t>((r + 1) * num_tasks));
    out.weights.push_back(weights[r]);
    out.groups.push_back(groups[r]);
    for (std::size_t k = 0; k < bags.size(); ++k) {
      const Bags& from = bags[k];
      Bags& to = out.bags[k];
      to.ids.insert(to.ids.end(), from.ids.begin() + from.offsets[r], from.ids.begin() + from.offsets[r + 1]);
      if (to.ids.size() > std::numeric_limits<std::uint32_t>::max())
        throw Error("dataset: more than 2^32 multi-hot ids in the selection");
      to.offsets.push_back(static_cast<std::uint32_t>(to.ids.size()));
    }
  }
  return out;
}

}  // namespace mtlite::data
