// Reading a file row by row through a binding: columns resolved once, every field checked, a
// malformed row either stopping the read with "<file>:<line>: <reason>" or skipped and counted.
#include "row_reader.hpp"

#include "fields.hpp"

#include <mtlite/core/hash.hpp>
#include <mtlite/core/quote.hpp>

#include <algorithm>

namespace mtlite::data {
namespace {

// Enough for a user to see what is wrong without a bad file filling the report.
constexpr std::size_t kMaxReportedErrors = 10;

// data.missing and a feature's or task's own tokens, looked up as one list per field.
std::vector<std::string> missing_tokens(const std::vector<std::string>& common,
                                        const std::vector<std::string>& own) {
  std::vector<std::string> out = common;
  out.insert(out.end(), own.begin(), own.end());
  return out;
}

}  // namespace

CsvOptions DataBinding::csv_options() const {
  CsvOptions o;
  o.separator = separator;
  o.header = header;
  o.quotes = quotes;
  o.uniform_fields = true;
  return o;
}

RowReader::RowReader(const std::string& path, const DataBinding& b, const ReadOptions& options)
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
    feature_missing_[i] = missing_tokens(b.missing, f.missing);
  }
  for (std::size_t k = 0; k < nt; ++k) {
    const TaskBinding& t = b.tasks[k];
    task_col_[k] = resolve(t.column, "task '" + t.name + "'");
    task_missing_[k] = missing_tokens(b.missing, t.missing);
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

bool RowReader::next() {
  for (;;) {
    if (max_rows_ && report.rows >= max_rows_) return false;
    try {
      if (!csv_.next()) return false;
    } catch (const CsvError& e) {
      if (!skip_) throw;
      note(e.what());
      continue;
    }
    if (!bounds_checked_ && !check_bounds()) continue;
    if (parse()) {
      ++report.rows;
      return true;
    }
    if (!skip_) csv_.fail(reason_);
    note(csv_.path() + ":" + std::to_string(csv_.line()) + ": " + reason_);
  }
}

std::size_t RowReader::estimated_rows() const {
  const std::uint64_t hint = csv_.size_hint(), done = csv_.bytes_consumed();
  if (!hint || !done || hint < done || report.rows == 0) return 0;
  const double rows = static_cast<double>(report.rows + report.skipped) * static_cast<double>(hint) /
                      static_cast<double>(done);
  return rows < 1e9 ? static_cast<std::size_t>(rows * 1.02) + 16 : 0;
}

std::size_t RowReader::resolve(const Column& c, const std::string& who) {
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

// Without a header the first record sets the field count; when it is too narrow for the
// bindings it is a stray line (a comment, say) if rows are skipped, and the next record sets the
// count instead. With a header, or without skipping, the file cannot be read.
bool RowReader::check_bounds() {
  const std::size_t fields = csv_.expected_fields();
  if (width_ <= fields) return bounds_checked_ = true;
  const std::string reason = widest_ + (b_.header ? " (index " + std::to_string(width_ - 1) + ")" : "") +
                             " but the rows have " + std::to_string(fields) + " fields";
  if (!skip_ || b_.header) throw Error(csv_.path() + ":" + std::to_string(csv_.line()) + ": " + reason);
  note(csv_.path() + ":" + std::to_string(csv_.line()) + ": " + reason);
  csv_.forget_field_count();
  return false;
}

void RowReader::note(const std::string& message) {
  ++report.skipped;
  if (report.first_errors.size() < kMaxReportedErrors) report.first_errors.push_back(message);
}

// "column 3" or, with a header, "column 3 'price'".
std::string RowReader::column_name(std::size_t col) const {
  std::string s = "column " + std::to_string(col);
  if (col < csv_.header().size()) s += " '" + csv_.header()[col] + "'";
  return s;
}

std::string RowReader::where(std::size_t col, const char* what, const std::string& name) const {
  return column_name(col) + " (" + what + " '" + name + "')";
}

bool RowReader::bad(std::size_t col, const char* what, const std::string& name, std::string_view value,
                    const char* problem) {
  reason_ = where(col, what, name) + ": " + quote(value) + " " + problem;
  return false;
}

bool RowReader::parse() {
  for (std::size_t i = 0; i < b_.features.size(); ++i)
    if (!parse_feature(i)) return false;
  for (std::size_t k = 0; k < b_.tasks.size(); ++k)
    if (!parse_task(k)) return false;
  if (weight_col_ != kNone && !parse_weight()) return false;
  if (group_col_ != kNone) parse_group();
  return true;
}

bool RowReader::parse_feature(std::size_t i) {
  const FeatureBinding& f = b_.features[i];
  const std::size_t col = feature_col_[i];
  const std::string_view v = trim(csv_[col]);
  const bool miss = v.empty() || in_list(v, feature_missing_[i]);
  missing[i] = miss;
  if (f.kind == FeatureKind::dense) {
    if (miss) {
      num[i] = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    return parse_number(v, num[i]) || bad(col, "feature", f.name, v, "is not a finite number");
  }
  text[i] = miss ? std::string_view() : v;
  if (f.values != Values::integers) return true;
  if (f.kind == FeatureKind::categorical) {
    if (miss) {
      id[i] = -1;
      return true;
    }
    return parse_integer(v, id[i]) || bad(col, "feature", f.name, v, "is not an integer id");
  }
  return miss || check_integer_items(i, col, v);
}

// A multi-hot list of integer ids: load() parses the items again, so here they are only checked.
bool RowReader::check_integer_items(std::size_t i, std::size_t col, std::string_view field) {
  const FeatureBinding& f = b_.features[i];
  bool ok = true;
  std::string_view wrong;
  for_each_item(field, f.list_separator, feature_missing_[i], [&](std::string_view item) {
    std::int64_t x;
    if (ok && !parse_integer(item, x)) {
      ok = false;
      wrong = item;
    }
  });
  return ok || bad(col, "feature", f.name, wrong, "is not an integer id");
}

bool RowReader::parse_task(std::size_t k) {
  const TaskBinding& t = b_.tasks[k];
  const std::size_t col = task_col_[k];
  const std::string_view v = trim(csv_[col]);
  if (v.empty() || in_list(v, task_missing_[k])) {
    label[k] = 0.0f;
    mask[k] = 0;
    return true;
  }
  mask[k] = 1;
  if (t.kind == TaskKind::binary && !t.positive.empty()) {
    label[k] = in_list(v, t.positive) ? 1.0f : 0.0f;
    return true;
  }
  double x;
  if (!parse_number(v, x)) return bad(col, "task", t.name, v, "is not a finite number");
  label[k] = t.kind == TaskKind::binary ? (x > static_cast<double>(t.threshold) ? 1.0f : 0.0f)
                                        : static_cast<float>(x);
  return true;
}

bool RowReader::parse_weight() {
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
  return true;
}

// A group only has to tell rows apart, so text that is not an integer is hashed into one.
void RowReader::parse_group() {
  const std::string_view v = trim(csv_[group_col_]);
  if (!parse_integer(v, group)) group = static_cast<std::int64_t>(hash_string(v));
}

}  // namespace mtlite::data
