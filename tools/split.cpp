// mtlite split DATA --out PREFIX: the rows of one file into train, validation and test files, by
// a seeded random draw per row or, per group (user), by order (time): the last rows of each group
// are its validation and test rows, as leave-last-out protocols want.
#include <mtlite/core/hash.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "data/csv.hpp"
#include "data/fields.hpp"
#include "model_io.hpp"
#include "output.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite split DATA --out PREFIX (--valid-fraction F [--test-fraction F] [--seed N] | --group COL --order COL\n"
    "                    [--valid-last N] [--test-last N]) [--config model.json | --separator S --header]\n"
    "\n"
    "Writes PREFIX.train.csv, PREFIX.valid.csv and (when asked for) PREFIX.test.csv, each with DATA's\n"
    "header line when it has one, rows in file order. A random split sends each row to test with\n"
    "probability --test-fraction, else to validation with probability --valid-fraction, by a seeded hash of its line\n"
    "number: the same seed, the same split. A group split orders each group's rows by --order (as\n"
    "numbers when every value is one, else as text; ties keep file order) and sends the last\n"
    "--test-last rows to test and the --valid-last before them to validation; a group with no more\n"
    "rows than that stays in train whole. The CSV format comes from model.json's \"data\" block or\n"
    "from --separator and --header. Outputs end in .csv.gz when DATA ends in .gz.\n"
    "\n",
    {
        {"out", "PREFIX", "where to write: PREFIX.train.csv, PREFIX.valid.csv, PREFIX.test.csv"},
        {"valid-fraction", "F", "random split: the fraction of rows for validation"},
        {"test-fraction", "F", "random split: the fraction of rows for test", "0"},
        {"seed", "N", "random split: the seed of the draw", "1"},
        {"group", "COL", "group split: the group (user) column, by header name or 0-based index"},
        {"order", "COL", "group split: the order (time) column within a group"},
        {"valid-last", "N", "group split: rows per group for validation", "1"},
        {"test-last", "N", "group split: rows per group for test", "0"},
        {"config", "FILE", "model.json whose \"data\" block gives the separator, header and quotes"},
        {"separator", "S", "the field separator", ","},
        {"header", nullptr, "the first line is a header"},
        {"json", nullptr, "print one JSON object instead of text"},
    }};

enum Part : std::uint8_t { kTrain, kValid, kTest };
constexpr const char* kPartNames[] = {"train", "valid", "test"};

mtlite::data::CsvOptions csv_options(const cli::Args& args) {
  if (args.has("config")) {
    const mtlite::Json j = cli::read_json(args.get("config"));
    try {
      return mtlite::data::DataBinding::from_json(j).csv_options();
    } catch (const mtlite::Error& e) {
      throw mtlite::Error(args.get("config") + ": " + e.what());
    }
  }
  mtlite::data::CsvOptions o;
  o.separator = args.get("separator");
  o.header = args.has("header");
  return o;
}

// A column given on the command line: a 0-based index, or a header name.
std::size_t column_of(const mtlite::data::CsvReader& csv, const std::string& text, const char* option) {
  std::int64_t index;
  if (mtlite::data::parse_integer(text, index) && index >= 0) return static_cast<std::size_t>(index);
  const long k = csv.column(text);
  if (k < 0)
    throw mtlite::Error(std::string("--") + option + ": no column '" + text + "'" +
                        (csv.header().empty() ? " (a name needs a header: --header, or model.json's data.header)" : " in the header"));
  return static_cast<std::size_t>(k);
}

// The current record written back as CSV text: a field holding the separator, a quote or a line
// break is quoted (quotes doubled), so that the line reads back to the same fields.
std::string record_text(const mtlite::data::CsvReader& csv, const std::string& sep) {
  std::string line;
  for (std::size_t i = 0; i < csv.size(); ++i) {
    if (i) line += sep;
    const std::string_view f = csv[i];
    if (csv.options().quotes &&
        (f.find(sep) != std::string_view::npos || f.find_first_of("\"\r\n") != std::string_view::npos)) {
      line += '"';
      for (char c : f) line += c == '"' ? std::string("\"\"") : std::string(1, c);
      line += '"';
    } else {
      line.append(f);
    }
  }
  return line + "\n";
}

std::string header_text(const mtlite::data::CsvReader& csv, const std::string& sep) {
  std::string line;
  for (std::size_t i = 0; i < csv.header().size(); ++i) line += (i ? sep : "") + csv.header()[i];
  return line + "\n";
}

// The last valid_last + test_last rows of each group by order, the rest in train.
struct GroupRow {
  std::string group, order;
  std::size_t index;
};

std::vector<Part> group_parts(std::vector<GroupRow>& rows, std::size_t valid_last, std::size_t test_last) {
  bool numeric = true;
  std::vector<double> key(rows.size());
  for (std::size_t i = 0; i < rows.size() && numeric; ++i) numeric = mtlite::data::parse_number(rows[i].order, key[i]);
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (rows[a].group != rows[b].group) return rows[a].group < rows[b].group;
    return numeric ? key[a] < key[b] : rows[a].order < rows[b].order;
  });
  std::vector<Part> parts(rows.size(), kTrain);
  for (std::size_t start = 0; start < order.size();) {
    std::size_t end = start;
    while (end < order.size() && rows[order[end]].group == rows[order[start]].group) ++end;
    const std::size_t n = end - start;
    if (n > valid_last + test_last)
      for (std::size_t k = 0; k < valid_last + test_last; ++k)
        parts[rows[order[end - 1 - k]].index] = k < test_last ? kTest : kValid;
    start = end;
  }
  return parts;
}

}  // namespace

int cmd_split(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  const bool random = args.has("valid-fraction") && !args.has("group") && !args.has("order");
  const bool grouped = args.has("group") && args.has("order") && !args.has("valid-fraction") && !args.has("test-fraction");
  if (const auto rc = args.help_or_usage(args.positional.size() == 1 && args.has("out") && (random || grouped))) return *rc;
  const std::string path = args.positional[0], prefix = args.get("out");
  const mtlite::data::CsvOptions options = csv_options(args);
  const double valid = random ? args.real("valid-fraction", 0, 1) : 0, test = random ? args.real("test-fraction", 0, 1) : 0;
  if (valid + test > 1) throw mtlite::Error("--valid-fraction and --test-fraction: their sum is above 1");
  const auto seed = static_cast<std::uint64_t>(args.integer("seed", 0, 1LL << 62));
  const auto valid_last = static_cast<std::size_t>(args.integer("valid-last", 0, 1000000));
  const auto test_last = static_cast<std::size_t>(args.integer("test-last", 0, 1000000));

  mtlite::data::CsvReader csv(path, options);
  std::size_t group_col = 0, order_col = 0;
  if (grouped) {
    group_col = column_of(csv, args.get("group"), "group");
    order_col = column_of(csv, args.get("order"), "order");
  }
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  const int n_parts = (random ? test > 0 : test_last > 0) ? 3 : 2;
  auto out_path = [&](int p) { return prefix + "." + kPartNames[p] + (gz ? ".csv.gz" : ".csv"); };
  std::vector<std::unique_ptr<cli::AtomicOutput>> outs;
  for (int p = 0; p < n_parts; ++p) {
    outs.push_back(std::make_unique<cli::AtomicOutput>(out_path(p)));
    if (options.header) outs.back()->write(header_text(csv, options.separator));
  }
  std::size_t counts[3] = {0, 0, 0}, rows = 0;
  auto put = [&](Part p, const std::string& line) {
    outs[p]->write(line);
    ++counts[p];
  };
  // A random split streams; a group split keeps the rows, since it needs all of a group first.
  std::vector<std::string> lines;
  std::vector<GroupRow> keys;
  while (csv.next()) {
    const std::size_t i = rows++;
    if (random) {
      const double u = static_cast<double>(mtlite::mix64(seed * 0x9e3779b97f4a7c15ull + i) >> 11) * 0x1p-53;
      put(u < test ? kTest : u < test + valid ? kValid : kTrain, record_text(csv, options.separator));
      continue;
    }
    if (std::max(group_col, order_col) >= csv.size())
      throw mtlite::Error(path + ":" + std::to_string(csv.line()) + ": --group or --order reads column " +
                          std::to_string(std::max(group_col, order_col)) + " but the row has " +
                          std::to_string(csv.size()) + " fields");
    keys.push_back({std::string(mtlite::data::trim(csv[group_col])), std::string(mtlite::data::trim(csv[order_col])), i});
    lines.push_back(record_text(csv, options.separator));
  }
  if (grouped) {
    const std::vector<Part> parts = group_parts(keys, valid_last, test_last);
    for (std::size_t i = 0; i < lines.size(); ++i) put(parts[i], lines[i]);
  }
  for (auto& o : outs) o->commit();

  mtlite::Json files = mtlite::Json::object();
  for (int p = 0; p < n_parts; ++p)
    files.set(kPartNames[p], mtlite::Json::object()
                                 .set("out", out_path(p))
                                 .set("rows", counts[p]));
  if (args.has("json")) {
    std::printf("%s\n", mtlite::Json::object().set("data", path).set("rows", rows).set("files", files).dump().c_str());
  } else {
    std::printf("%s: %zu rows ->", path.c_str(), rows);
    for (int p = 0; p < n_parts; ++p) std::printf(" %s %zu", kPartNames[p], counts[p]);
    std::printf(" (%s.*)\n", prefix.c_str());
  }
  return 0;
}
