// Raw categorical values -> the ids predict takes, encoded exactly as `mtlite train` encoded its
// training file. A model trained by mtlite train carries the rule in its metadata: the "data"
// binding of tools/data/dataset.hpp, vocabularies included (mtlite convert keeps it). Serving code
// that re-implemented the rule by hand would, on any difference, feed the model the wrong table
// rows without a word; this reads it from the file instead.
//
//   const mtlite::FeatureIds ids(model);               // once, after Model::load
//   const std::size_t device = ids.feature_index("device");
//   row_ids.push_back(ids.id(device, "mobile"));        // its vocabulary index, or -1
//   row_ids.push_back(ids.id("user_id", 42));           // an integer-valued feature: 42
//   ids.append_ids(ids.feature_index("tags"), "a|b", bag_ids);  // a multi-hot field
//
// The rules, as the trainer's loader applies them to a field:
//   any value        trimmed of surrounding spaces and tabs; empty, or one of the missing tokens
//                    (data.missing and the feature's own) -> kMissing (-1)
//   strings, vocabulary   the index in the stored vocabulary; unknown -> -1. predict puts -1 in
//                         the out-of-vocabulary row (a hashed feature buckets it like any id)
//   strings, hashing      hash_string(value) as int64 (predict buckets it)
//   "values": "integers"  the integer itself ("+5" is 5); text that is no integer is an Error,
//                         as the trainer refuses such a row
//   an integer value      its decimal text, then the rules above: what the trainer read from a
//                         field holding that number
//   a multi-hot field     split at list_separator, each item trimmed; empty and missing items are
//                         left out (a missing field is an empty bag)
//
// A lookup copies and allocates nothing (StringIndex); only a wrong feature or a malformed
// integer builds an Error. Immutable once built: threads may share one.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/quote.hpp"
#include "core/string_index.hpp"
#include "format/json.hpp"
#include "format/spec_json.hpp"
#include "model.hpp"
#include "spec.hpp"

namespace mtlite {

class FeatureIds {
 public:
  // A missing field's id, and an unknown vocabulary value's.
  static constexpr std::int64_t kMissing = -1;

  explicit FeatureIds(const Model& model) : FeatureIds(model.spec(), model.metadata()) {}

  // `metadata` is a model file's (Model::metadata()); its "data" member is the binding.
  FeatureIds(const Spec& spec, const Json& metadata) {
    const Json* data = metadata.is_object() ? metadata.find("data") : nullptr;
    if (!data)
      throw Error("model carries no vocabularies: its metadata has no \"data\" binding (it was trained "
                  "outside mtlite train), so the ids of its categorical features must be supplied by "
                  "the caller (input.hpp)");
    features_.resize(spec.features.size());
    for (std::size_t i = 0; i < spec.features.size(); ++i) {
      features_[i].name = spec.features[i].name;
      features_[i].kind = spec.features[i].kind;
    }
    try {
      read_binding(spec, *data);
    } catch (const Error& e) {
      throw Error(std::string("model metadata: ") + e.what());
    }
  }

  // The spec index of a categorical or multi-hot feature: resolve it once, then look up by index.
  std::size_t feature_index(std::string_view name) const {
    for (std::size_t i = 0; i < features_.size(); ++i)
      if (features_[i].name == name) {
        encoding(i);  // throws for a dense feature
        return i;
      }
    std::string known;
    for (const Encoding& e : features_)
      if (e.rule != Rule::none) known += (known.empty() ? "" : ", ") + e.name;
    throw Error("no feature " + quote(name) + " in the model (its categorical and multi-hot features: " +
                (known.empty() ? "none" : known) + ")");
  }

  // The id of one value of a categorical feature, or of one item of a multi-hot feature.
  std::int64_t id(std::size_t feature, std::string_view value) const {
    const Encoding& e = encoding(feature);
    const std::string_view v = trim(value);
    return missing(e, v) ? kMissing : encode(e, v);
  }
  std::int64_t id(std::size_t feature, std::int64_t value) const {
    char text[24];
    const std::to_chars_result r = std::to_chars(text, text + sizeof text, value);
    return id(feature, std::string_view(text, static_cast<std::size_t>(r.ptr - text)));
  }
  std::int64_t id(std::string_view name, std::string_view value) const { return id(feature_index(name), value); }
  std::int64_t id(std::string_view name, std::int64_t value) const { return id(feature_index(name), value); }

  // f(id) for each item of a multi-hot field, in order.
  template <class F>
  void for_each_id(std::size_t feature, std::string_view field, F&& f) const {
    const Encoding& e = encoding(feature);
    if (e.kind != FeatureKind::multi_hot)
      throw Error("feature " + quote(e.name) + " is categorical: one value per row, mapped by id()");
    const std::string_view v = trim(field);
    if (missing(e, v)) return;
    for (std::size_t from = 0;;) {
      const std::size_t at = v.find(e.list_separator, from);
      const std::string_view item = trim(v.substr(from, at == std::string_view::npos ? at : at - from));
      if (!missing(e, item)) f(encode(e, item));
      if (at == std::string_view::npos) return;
      from = at + e.list_separator.size();
    }
  }
  // The ids of a multi-hot field appended to `out` (a Bag's ids); returns how many.
  std::size_t append_ids(std::size_t feature, std::string_view field, std::vector<std::int64_t>& out) const {
    const std::size_t before = out.size();
    for_each_id(feature, field, [&](std::int64_t x) { out.push_back(x); });
    return out.size() - before;
  }

 private:
  enum class Rule : std::uint8_t { none, vocabulary, hashing, integers };  // none: dense

  struct Encoding {
    std::string name;
    FeatureKind kind = FeatureKind::dense;
    Rule rule = Rule::none;
    std::vector<std::string> missing;  // besides the empty value
    std::string list_separator;        // multi-hot
    StringIndex vocabulary;            // Rule::vocabulary
  };

  // The stored form is DataBinding::to_json's; defaults as in DataBinding::from_json.
  void read_binding(const Spec& spec, const Json& data) {
    if (!data.is_object()) throw Error("data: expected an object");
    std::vector<std::string> data_missing;
    if (const Json* m = data.find("missing")) data_missing = strings(*m, "data.missing");
    const Json* list = data.find("features");
    if (!list || !list->is_array()) throw Error("data.features: missing or not a list");
    std::vector<bool> bound(spec.features.size(), false);
    for (std::size_t k = 0; k < list->size(); ++k) {
      const Json& b = (*list)[k];
      std::string at = "data.features[" + std::to_string(k) + "]";
      const Json* name = b.is_object() ? b.find("name") : nullptr;
      if (!name || !name->is_string()) throw Error(at + ": no \"name\"");
      at += " (" + quote(name->as_string()) + ")";
      std::size_t i = 0;
      while (i < spec.features.size() && spec.features[i].name != name->as_string()) ++i;
      if (i == spec.features.size()) throw Error(at + ": the model's spec has no such feature");
      if (bound[i]) throw Error(at + ": bound twice");
      bound[i] = true;
      const Feature& f = spec.features[i];
      const Json* kind = b.find("kind");
      if (!kind || internal::parse_enum<FeatureKind>(*kind, internal::kFeatureKindNames, at + ".kind") != f.kind)
        throw Error(at + ".kind: not the spec's (" + to_string(f.kind) + ")");
      if (f.kind == FeatureKind::dense) continue;
      read_feature(b, at, f, data_missing, features_[i]);
    }
    for (std::size_t i = 0; i < spec.features.size(); ++i)
      if (!bound[i] && spec.features[i].kind != FeatureKind::dense)
        throw Error("data.features: no binding for feature " + quote(spec.features[i].name));
  }

  static void read_feature(const Json& b, const std::string& at, const Feature& f,
                           const std::vector<std::string>& data_missing, Encoding& e) {
    const Json* m = b.find("mapping");
    if (m && internal::parse_enum<IdMapping>(*m, internal::kMappingNames, at + ".mapping") != f.mapping)
      throw Error(at + ".mapping: not the spec's");
    const Json* values = b.find("values");
    const std::string v = values ? values->as_string() : "strings";
    if (v != "strings" && v != "integers") throw Error(at + ".values: " + quote(v) + " is not strings or integers");
    e.rule = v == "integers" ? Rule::integers : f.mapping == IdMapping::hashing ? Rule::hashing : Rule::vocabulary;
    e.missing = data_missing;
    if (const Json* own = b.find("missing")) {
      const std::vector<std::string> more = strings(*own, at + ".missing");
      e.missing.insert(e.missing.end(), more.begin(), more.end());
    }
    if (f.kind == FeatureKind::multi_hot) {
      const Json* sep = b.find("list_separator");
      e.list_separator = sep ? sep->as_string() : "|";
      if (e.list_separator.empty()) throw Error(at + ".list_separator: empty");
    }
    if (e.rule != Rule::vocabulary) return;
    const Json* vocabulary = b.find("vocabulary");
    if (!vocabulary) throw Error(at + ": no \"vocabulary\" (the binding was never fitted)");
    try {
      e.vocabulary = StringIndex(strings(*vocabulary, at + ".vocabulary"));
    } catch (const Error& error) {
      throw Error(at + ".vocabulary: " + error.what());
    }
    // The spec's table has max(1, n) rows before the out-of-vocabulary one.
    const std::size_t n = e.vocabulary.size();
    if (f.size != (n ? n : 1))
      throw Error(at + ".vocabulary: " + std::to_string(n) + " values, but the spec's size is " +
                  std::to_string(f.size));
  }

  // A string or a list of strings, each trimmed (as DataBinding::from_json reads them).
  static std::vector<std::string> strings(const Json& v, const std::string& at) {
    std::vector<std::string> out;
    if (v.is_string()) {
      out.emplace_back(trim(v.as_string()));
    } else if (v.is_array()) {
      for (const Json& s : v.elements()) {
        if (!s.is_string()) throw Error(at + ": expected strings, got " + Json::kind_name(s.kind()));
        out.emplace_back(trim(s.as_string()));
      }
    } else {
      throw Error(at + ": expected a string or a list of strings");
    }
    return out;
  }

  const Encoding& encoding(std::size_t feature) const {
    if (feature >= features_.size())
      throw Error("feature index " + std::to_string(feature) + " out of range: the model has " +
                  std::to_string(features_.size()) + " features");
    const Encoding& e = features_[feature];
    if (e.rule == Rule::none) throw Error("feature " + quote(e.name) + " is dense: it takes a float, not an id");
    return e;
  }

  static std::string_view trim(std::string_view s) noexcept {
    const std::size_t begin = s.find_first_not_of(" \t");
    return begin == std::string_view::npos ? std::string_view() : s.substr(begin, s.find_last_not_of(" \t") + 1 - begin);
  }

  static bool missing(const Encoding& e, std::string_view v) noexcept {
    if (v.empty()) return true;
    for (const std::string& token : e.missing)
      if (token == v) return true;
    return false;
  }

  // v is trimmed and not missing.
  static std::int64_t encode(const Encoding& e, std::string_view v) {
    switch (e.rule) {
      case Rule::vocabulary: return e.vocabulary.find(v);
      case Rule::hashing: return static_cast<std::int64_t>(hash_string(v));
      case Rule::integers: break;
      case Rule::none: return kMissing;  // encoding() lets no dense feature through
    }
    // A leading '+' is allowed (from_chars takes none), a second sign is not.
    std::string_view digits = v;
    if (digits.size() > 1 && digits[0] == '+' && digits[1] != '-' && digits[1] != '+') digits.remove_prefix(1);
    std::int64_t x = 0;
    const std::from_chars_result r = std::from_chars(digits.data(), digits.data() + digits.size(), x);
    if (r.ec != std::errc() || r.ptr != digits.data() + digits.size())
      throw Error("feature " + quote(e.name) + " holds integer ids, and " + quote(v) +
                  " is not one (training refuses such a row)");
    return x;
  }

  std::vector<Encoding> features_;  // spec order; dense ones have Rule::none
};

}  // namespace mtlite
