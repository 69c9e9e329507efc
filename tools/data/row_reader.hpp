// The good rows of a file, parsed and checked field by field against a binding. fit() and load()
// both read through it so that they agree on what is malformed; neither needs to know how a
// column was named, which tokens are missing or how a bad row is reported.
#pragma once

#include "binding.hpp"
#include "csv.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace mtlite::data {

class RowReader {
 public:
  RowReader(const std::string& path, const DataBinding& b, const ReadOptions& options);

  // Moves to the next good row, skipping (and counting) malformed ones when asked to; false at
  // the end of the input or after options.max_rows rows.
  bool next();

  const std::string& path() const { return csv_.path(); }
  std::size_t line() const { return csv_.line(); }
  // Rows the whole input probably holds, judged from the text read so far; 0 when unknown.
  std::size_t estimated_rows() const;
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
  std::size_t resolve(const Column& c, const std::string& who);
  bool check_bounds();  // false: the record was skipped
  void note(const std::string& message);

  std::string column_name(std::size_t col) const;
  std::string where(std::size_t col, const char* what, const std::string& name) const;
  // Records why the row is malformed; returns false so that a parse step can end with it.
  bool bad(std::size_t col, const char* what, const std::string& name, std::string_view value,
           const char* problem);

  // Each step fills its part of the current row; false (with reason_ set) on a malformed field.
  bool parse();
  bool parse_feature(std::size_t i);
  bool check_integer_items(std::size_t i, std::size_t col, std::string_view field);
  bool parse_task(std::size_t k);
  bool parse_weight();
  void parse_group();

  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  const DataBinding& b_;
  CsvReader csv_;
  bool skip_;
  std::size_t max_rows_;
  std::vector<std::size_t> feature_col_, task_col_;
  std::vector<std::vector<std::string>> feature_missing_, task_missing_;
  std::size_t weight_col_ = kNone, group_col_ = kNone;
  std::size_t width_ = 0;  // columns the bindings reach: the rows must have at least this many
  std::string widest_;     // which binding reaches furthest, for the message when they do not
  bool bounds_checked_ = false;
  std::string reason_;
};

}  // namespace mtlite::data
