// model.json's data bindings: which column each feature and task reads, how its text becomes a
// value, and what fit() learns from the training file. dataset.hpp turns a file into columns with
// them.
//
// model.json is the spec JSON of format/spec_json.hpp plus:
//   "data": {"separator": ", ", "header": false, "quotes": true, "missing": ["?"],
//            "weight": 24, "group": "user_id", "skip_bad_rows": false}       (all optional)
//   per feature: "column" (0-based index or header name; defaults to the feature's name when the
//     file has a header), "missing": [...] (extra missing tokens), and
//     dense:        "fill" (the value of a missing field; default: the training mean);
//                   standardize without "mean"/"stddev" has them computed by fit()
//     categorical,  "values": "strings" (default) or "integers";
//     multi_hot:    vocabulary mapping + strings: fit() builds the vocabulary (most frequent first,
//                   ties by first appearance) keeping values seen >= "min_count" (1) times, at most
//                   "max_size" of them; "size" is then the vocabulary size. "vocabulary": [...]
//                   gives one instead. vocabulary + integers: the column holds ids, "size" required.
//                   hashing: strings are hashed with hash_string, integers taken as ids.
//                   multi_hot: "list_separator" (default "|") splits the field into items.
//   per task: "column", "missing": [...], and
//     binary:       "positive": [...] (label 1 when the field is one of these, else 0) or
//                   "threshold": t (the field is a number; label 1 when > t). Neither: threshold 0.5.
//     regression:   the field is a number.
//
// Field values are trimmed of surrounding spaces and tabs. A field that is empty or one of the
// missing tokens (data.missing plus the feature's or task's own) is missing:
//   dense -> the fill value; categorical -> id -1 (a vocabulary feature's out-of-vocabulary row; a
//   hashed feature buckets -1 like any id); multi-hot -> the item is left out (a missing field is an
//   empty bag); task -> mask 0 (label 0). Unknown strings of a vocabulary feature -> id -1 too.
// The group field is an integer if it reads as one, else hash_string of its text. The weight
// field must be a finite number >= 0.
//
// A malformed row (wrong field count, bad quoting, a dense/weight/threshold/regression field that is
// not a finite number, an integer id that does not parse) stops the read with
// "<file>:<line>: <reason>" naming the column and the feature or task; with skip_bad_rows the row is
// skipped and counted instead.
#pragma once

#include "csv.hpp"

#include <mtlite/format/json.hpp>
#include <mtlite/spec.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mtlite::data {

// A column by 0-based index or by header name.
struct Column {
  long index = -1;   // >= 0 when given by index
  std::string name;  // non-empty when given by name

  static Column at(long i) { return Column{i, {}}; }
  static Column named(std::string n) { return Column{-1, std::move(n)}; }
  bool set() const noexcept { return index >= 0 || !name.empty(); }
  std::string describe() const;  // "column 3" or "column 'price'"
  Json to_json() const;
  static Column from_json(const Json& v, const std::string& field);
};

enum class Values : std::uint8_t { strings, integers };

struct FeatureBinding {
  std::string name;
  FeatureKind kind = FeatureKind::dense;
  IdMapping mapping = IdMapping::vocabulary;
  Column column;
  std::vector<std::string> missing;  // besides data.missing and the empty field

  // dense
  std::optional<float> fill;  // fit() sets it to the training mean unless model.json gave one
  bool fit_fill = false;      // fill was not given: fit() computes it
  bool fit_stats = false;     // standardize without mean/stddev: fit() computes them into the spec
  bool stats_fitted = false;  // ... and has done so

  // categorical and multi-hot
  Values values = Values::strings;
  std::uint64_t min_count = 1;
  std::uint64_t max_size = 0;  // 0: no limit
  std::string list_separator = "|";
  std::optional<std::vector<std::string>> vocabulary;  // index = id
  bool fit_vocabulary = false;                         // no vocabulary given: fit() builds one

  // Strings mapped through a vocabulary (built or given).
  bool uses_vocabulary() const noexcept {
    return kind != FeatureKind::dense && mapping == IdMapping::vocabulary && values == Values::strings;
  }
};

struct TaskBinding {
  std::string name;
  TaskKind kind = TaskKind::binary;
  Column column;
  std::vector<std::string> positive;  // binary: label 1 when the field is one of these
  float threshold = 0.5f;             // binary without `positive`: label 1 when the number is > it
  std::vector<std::string> missing;   // besides data.missing and the empty field
};

struct ReadOptions {
  std::optional<bool> skip_bad_rows;  // overrides data.skip_bad_rows
  std::size_t max_rows = 0;           // stop after this many good rows; 0: all
};

struct ReadReport {
  std::size_t rows = 0;     // rows read
  std::size_t skipped = 0;  // malformed rows skipped
  std::vector<std::string> first_errors;  // the messages of the first few skipped rows
  std::vector<std::string> warnings;      // load(): suspicious columns (see dataset.hpp)
};

struct DataBinding {
  std::string separator = ",";
  bool header = false;
  bool quotes = true;
  std::vector<std::string> missing;  // besides the empty field
  std::optional<Column> weight;
  std::optional<Column> group;
  bool skip_bad_rows = false;
  std::vector<FeatureBinding> features;  // in spec order
  std::vector<TaskBinding> tasks;        // in spec order

  // Either a whole model.json (recognised by its "architecture" key) or the block to_json()
  // writes. Throws mtlite::Error naming the field at fault.
  static DataBinding from_json(const Json& model_json_or_data_block);
  // The stored form, vocabularies and fill values included: what a model file keeps under "data".
  Json to_json() const;

  // model.json in its training form for `spec` and these bindings: the spec's keys, "data", and
  // every feature's and task's binding keys, vocabularies and fill values included. Once fitted,
  // from_json() and spec_from_model_json() of it give these bindings and `spec` back, fitted.
  Json model_json(const Spec& spec) const;

  // The spec of a model.json. Features whose size comes from fit() (vocabulary built from the
  // data) get a placeholder size until then; standardize features without stats keep 0 and 1.
  static Spec spec_from_model_json(const Json& model_json);
  // The keys model.json adds to spec_from_json's: {top, feature, task}.
  static const std::set<std::string>& extra_top_keys();
  static const std::set<std::string>& extra_feature_keys();
  static const std::set<std::string>& extra_task_keys();

  // Reads the training file once: builds the vocabularies, sets their features' spec size,
  // computes mean/stddev of standardize features that lack them (stddev 0 -> 1) and the fill
  // values. The spec is validated afterwards.
  ReadReport fit(const std::string& path, Spec& spec, const ReadOptions& options = {});

  // True once everything load() needs is known (fit() done, or everything given).
  bool fitted() const noexcept { return unfitted_reason().empty(); }
  std::string unfitted_reason() const;

  // Throws unless the spec's features and tasks are these bindings' (names, kinds, mappings, and
  // vocabulary sizes once fitted).
  void check(const Spec& spec) const;

  CsvOptions csv_options() const;
};

// Training keeps every parameter about four times as a float: the weights, the optimizer's two
// moments (Adam; Adagrad keeps one, SGD none) and a copy of the weights while a checkpoint is
// written. The rule: 16 bytes a parameter must fit in the physical memory.
inline constexpr double kTrainingBytesPerParameter = 16;

// Throws, saying how many parameters (and the largest table) and how much memory they need and
// the limit, unless the spec's parameters fit the rule above. fit() checks it before it reads
// the data (the sizes given or hashed are known then) and again after (the vocabularies built),
// so that a 2^31-row table fails in a second, not as a bare std::bad_alloc after the fit.
void check_training_memory(const Spec& spec);

}  // namespace mtlite::data
