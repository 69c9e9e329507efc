// The tools' data layer (tools/data): the CSV/TSV reader, model.json data bindings, fit() and
// load() into columnar datasets, and the real census-income file when it is around.
#include <doctest/doctest.h>

#include "data/csv.hpp"
#include "data/dataset.hpp"
#include "model_io.hpp"

#include <mtlite/core/hash.hpp>
#include <mtlite/format/json.hpp>

#include <zlib.h>

#include "peak_rss.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using mtlite::Error;
using mtlite::Json;
using mtlite::Spec;
using namespace mtlite::data;

using Rows = std::vector<std::vector<std::string>>;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "mtlite-data-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

void write_gzip(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!text.empty()) REQUIRE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Rows read_all(const std::string& path, CsvOptions options = {}) {
  CsvReader r(path, std::move(options));
  Rows rows;
  while (r.next()) {
    std::vector<std::string> row;
    for (std::size_t i = 0; i < r.size(); ++i) row.emplace_back(r[i]);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::size_t> lines_of(const std::string& path, CsvOptions options = {}) {
  CsvReader r(path, std::move(options));
  std::vector<std::size_t> lines;
  while (r.next()) lines.push_back(r.line());
  return lines;
}

// The message of the Error f throws ("" when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define CHECK_ERROR(expr, text)                                      \
  do {                                                               \
    const std::string message_ = error_of([&] { (void)(expr); });    \
    INFO("message: " << message_);                                   \
    CHECK(!message_.empty());                                        \
    CHECK(message_.find(text) != std::string::npos);                 \
  } while (0)

// A model.json, its bindings and spec, fitted on `train`.
struct Model {
  DataBinding binding;
  Spec spec;
  ReadReport fit_report;
};

Model fitted(const std::string& model_json, const std::string& train, const ReadOptions& options = {}) {
  const Json j = Json::parse(model_json);
  Model m{DataBinding::from_json(j), DataBinding::spec_from_model_json(j), {}};
  m.fit_report = m.binding.fit(train, m.spec, options);
  return m;
}

Dataset fit_and_load(const std::string& model_json, const std::string& path, const ReadOptions& options = {}) {
  Model m = fitted(model_json, path, options);
  return load(path, m.binding, m.spec, options);
}

}  // namespace

// ================================================================================================
// CSV
// ================================================================================================

TEST_CASE("csv: plain comma-separated rows, line numbers, empty fields") {
  TempDir dir;
  const std::string p = dir.file("a.csv");
  write_file(p, "a,b,c\n1,,3\n,,\n");
  CHECK(read_all(p) == Rows{{"a", "b", "c"}, {"1", "", "3"}, {"", "", ""}});
  CHECK(lines_of(p) == std::vector<std::size_t>{1, 2, 3});
  CsvReader r(p);
  CHECK_FALSE(r.gzip());
  REQUIRE(r.next());
  CHECK(r.expected_fields() == 3);
  CHECK(r.records() == 1);
}

TEST_CASE("csv: a multi-character separator ', ' and a tab separator") {
  TempDir dir;
  const std::string p = dir.file("census.txt");
  // Census style: the comma inside "a,b" is no separator without the space.
  write_file(p, "73, Not in universe, a,b,  x\n58, Self-employed, 4, - 50000.\n");
  CsvOptions census;
  census.separator = ", ";
  census.uniform_fields = false;
  CHECK(read_all(p, census) == Rows{{"73", "Not in universe", "a,b", " x"}, {"58", "Self-employed", "4", "- 50000."}});

  const std::string t = dir.file("t.tsv");
  write_file(t, "x\ty z\t\n1\t2,3\t4\n");
  CsvOptions tsv;
  tsv.separator = "\t";
  CHECK(read_all(t, tsv) == Rows{{"x", "y z", ""}, {"1", "2,3", "4"}});

  // A separator that is a prefix-trap: "::" in ":a:::b" splits at the first "::".
  const std::string c = dir.file("c.txt");
  write_file(c, ":a:::b\n");
  CsvOptions colons;
  colons.separator = "::";
  CHECK(read_all(c, colons) == Rows{{":a", ":b"}});
}

TEST_CASE("csv: RFC 4180 quotes") {
  TempDir dir;
  const std::string p = dir.file("q.csv");
  write_file(p,
             "\"a, b\",c\n"
             "\"he said \"\"hi\"\"\",\"\"\n"
             "x\"y,\"\"\"\"\n"
             "\"multi\nline\",z\n"
             "last,\"quoted at the end\"\n");
  CHECK(read_all(p) == Rows{{"a, b", "c"}, {"he said \"hi\"", ""}, {"x\"y", "\""}, {"multi\nline", "z"},
                            {"last", "quoted at the end"}});
  // The record with the line break starts on line 4; the next one on line 6.
  CHECK(lines_of(p) == std::vector<std::size_t>{1, 2, 3, 4, 6});

  // With ", " as the separator.
  const std::string s = dir.file("s.csv");
  write_file(s, "\"x, y\", z, \"\"\"q\"\"\"\n");
  CsvOptions o;
  o.separator = ", ";
  CHECK(read_all(s, o) == Rows{{"x, y", "z", "\"q\""}});

  // Quotes off: '"' is text.
  CsvOptions plain;
  plain.quotes = false;
  plain.uniform_fields = false;
  CHECK(read_all(p, plain)[0] == std::vector<std::string>{"\"a", " b\"", "c"});
}

TEST_CASE("csv: CRLF, a last line without a line break, blank lines") {
  TempDir dir;
  const std::string p = dir.file("crlf.csv");
  write_file(p, "\r\na,b\r\n\r\n   \r\n\"q\r\nr\",2\r\n\n \t\nc,d");
  CHECK(read_all(p) == Rows{{"a", "b"}, {"q\r\nr", "2"}, {"c", "d"}});
  CHECK(lines_of(p) == std::vector<std::size_t>{2, 5, 9});

  // A line of blanks that holds the separator is a record of empty-ish fields, not a blank line.
  const std::string t = dir.file("t.tsv");
  write_file(t, "a\tb\n\t\n");
  CsvOptions tsv;
  tsv.separator = "\t";
  CHECK(read_all(t, tsv) == Rows{{"a", "b"}, {"", ""}});

  const std::string empty = dir.file("empty.csv");
  write_file(empty, "");
  CHECK(read_all(empty).empty());
  write_file(empty, "\n\n\r\n");
  CHECK(read_all(empty).empty());
}

TEST_CASE("csv: gzip is detected by its magic and reads like the plain text") {
  TempDir dir;
  std::string text;
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i)
    text += std::to_string(i) + ", " + std::to_string(rng() % 1000) + ", \"v, " + std::to_string(i % 17) + "\"\n";
  text += "tail, 1, 2";  // no final line break
  const std::string plain = dir.file("data.gz");   // plain text under a gzip name
  const std::string packed = dir.file("data.csv"); // gzip under a plain name
  write_file(plain, text);
  write_gzip(packed, text);
  CsvOptions o;
  o.separator = ", ";
  o.buffer_size = 4096;  // many refills
  const Rows a = read_all(plain, o), b = read_all(packed, o);
  CHECK(a.size() == 20001);
  CHECK(a == b);
  CHECK(a[5] == std::vector<std::string>{"5", a[5][1], "v, 5"});
  CHECK(CsvReader(packed, o).gzip());
  CHECK_FALSE(CsvReader(plain, o).gzip());

  // Concatenated members read as one stream.
  const std::string part1 = dir.file("p1.gz"), part2 = dir.file("p2.gz"), both = dir.file("both.gz");
  write_gzip(part1, "a, 1\nb, 2\n");
  write_gzip(part2, "c, 3\n");
  write_file(both, read_bytes(part1) + read_bytes(part2));
  CHECK(read_all(both, o) == Rows{{"a", "1"}, {"b", "2"}, {"c", "3"}});
}

TEST_CASE("csv: broken gzip and missing files are errors") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "row " + std::to_string(i) + ",x\n";
  const std::string gz = dir.file("t.gz");
  write_gzip(gz, text);
  const std::string bytes = read_bytes(gz);
  const std::string truncated = dir.file("trunc.gz");
  write_file(truncated, bytes.substr(0, bytes.size() / 2));
  CHECK_ERROR(read_all(truncated), "trunc.gz: gzip: unexpected end");

  std::string corrupt = bytes;
  for (std::size_t i = 20; i < 60; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  const std::string bad = dir.file("bad.gz");
  write_file(bad, corrupt);
  CHECK_ERROR(read_all(bad), "bad.gz: gzip: ");

  CHECK_ERROR(read_all(dir.file("nope.csv")), "nope.csv: cannot open");
  CsvOptions o;
  o.separator = "";
  CHECK_ERROR(read_all(gz, o), "separator");
}

TEST_CASE("csv: header names map to columns") {
  TempDir dir;
  const std::string p = dir.file("h.csv");
  write_file(p, "\n id , price,\"tags, all\"\n1,2,3\n");
  CsvOptions o;
  o.header = true;
  CsvReader r(p, o);
  CHECK(r.header() == std::vector<std::string>{"id", "price", "tags, all"});
  CHECK(r.column("id") == 0);
  CHECK(r.column("price") == 1);
  CHECK(r.column("tags, all") == 2);
  CHECK(r.column("nope") == -1);
  REQUIRE(r.next());
  CHECK(r.line() == 3);
  CHECK(r[1] == "2");
  CHECK_FALSE(r.next());

  const std::string empty = dir.file("empty.csv");
  write_file(empty, "\n");
  CHECK_ERROR(CsvReader(empty, o), "empty.csv: no header line");
  // A byte order mark is not part of the first name.
  const std::string bom = dir.file("bom.csv");
  write_file(bom, "\xef\xbb\xbfid,x\n1,2\n");
  CsvReader with_bom(bom, o);
  CHECK(with_bom.column("id") == 0);
  write_file(bom, "\xef\xbb\xbf");
  CHECK(read_all(bom).empty());
  CsvReader no_header(p);
  CHECK(no_header.column("id") == -1);
}

TEST_CASE("csv: record errors name file and line, and reading can go on") {
  TempDir dir;
  const std::string p = dir.file("e.csv");
  write_file(p, "a,b\n1,2\n1,2,3\n\"x\"y,2\n5,6\n\"open,7\n8,9\n");
  CsvReader r(p);
  REQUIRE(r.next());
  REQUIRE(r.next());
  CHECK_ERROR(r.next(), "e.csv:3: expected 2 fields, got 3");
  CHECK_ERROR(r.next(), "e.csv:4: unexpected text after the closing quote of field 1");
  REQUIRE(r.next());
  CHECK(r.line() == 5);
  CHECK(r[0] == "5");
  // The unterminated quote swallows the rest of the file.
  CHECK_ERROR(r.next(), "e.csv:6: unterminated quoted field");
  CHECK_FALSE(r.next());

  // CsvError carries line and reason apart.
  CsvReader again(p);
  again.next();
  again.next();
  try {
    again.next();
    FAIL("no error");
  } catch (const CsvError& e) {
    CHECK(e.line() == 3);
    CHECK(e.reason() == "expected 2 fields, got 3");
  }

  // Uneven records are fine when asked for.
  CsvOptions loose;
  loose.uniform_fields = false;
  loose.quotes = false;
  CHECK(read_all(p, loose).size() == 7);
}

TEST_CASE("csv: random records round-trip through quoting, buffer refills and long records") {
  TempDir dir;
  std::mt19937 rng(1234);
  const std::string alphabet = "ab ,\"\n\r\t;x";
  Rows expected;
  std::string text;
  for (int rec = 0; rec < 3000; ++rec) {
    std::vector<std::string> row;
    for (int f = 0; f < 3; ++f) {
      std::string v;
      const std::size_t len = rec == 1500 && f == 1 ? 100000 : rng() % 12;  // one record > buffer
      for (std::size_t i = 0; i < len; ++i) v += alphabet[rng() % alphabet.size()];
      row.push_back(v);
      const bool quote = v.find_first_of(",\"\r\n") != std::string::npos || rng() % 4 == 0;
      if (f) text += ',';
      if (quote) {
        text += '"';
        for (char c : v) text += c == '"' ? std::string("\"\"") : std::string(1, c);
        text += '"';
      } else {
        text += v;
      }
    }
    text += rng() % 2 ? "\r\n" : "\n";
    expected.push_back(row);
  }
  const std::string p = dir.file("r.csv"), g = dir.file("r.csv.gz");
  write_file(p, text);
  write_gzip(g, text);
  CsvOptions o;
  o.buffer_size = 4096;
  CHECK(read_all(p, o) == expected);
  CHECK(read_all(g, o) == expected);
  CHECK(read_all(g) == expected);
}

// ================================================================================================
// Data bindings and datasets
// ================================================================================================

namespace {

const char* kBasicModel = R"({
  "architecture": "mmoe", "experts": 2, "expert": [4],
  "data": {"separator": ",", "missing": ["?", "NA"]},
  "features": [
    {"name": "age", "kind": "dense", "column": 0, "normalization": "standardize"},
    {"name": "city", "kind": "categorical", "column": 1, "embedding_dim": 4},
    {"name": "price", "kind": "dense", "column": 2, "normalization": "log1p", "fill": -1.5}
  ],
  "tasks": [
    {"name": "buy", "column": 3, "positive": ["yes", "y"], "missing": ["unknown"]},
    {"name": "click", "column": 4, "threshold": 0.5},
    {"name": "watch", "kind": "regression", "column": 5}
  ]
})";

}  // namespace

TEST_CASE("data: fit builds vocabularies, statistics and fill values; load applies them") {
  TempDir dir;
  const std::string p = dir.file("train.csv");
  write_file(p,
             "20, paris ,1.5,yes,1,3.5\n"
             "40,london,?,no,0,1\n"
             "?,paris,2,unknown,0.7,?\n"
             "30,berlin,NA,y,0.5,\n"
             "50,london,4,?,,2\n"
             "60,paris,8,no,0.2,-1e1\n");
  Model m = fitted(kBasicModel, p);
  CHECK(m.fit_report.rows == 6);
  CHECK(m.fit_report.skipped == 0);
  // Vocabulary: paris (3), london (2), berlin (1).
  REQUIRE(m.binding.features[1].vocabulary);
  CHECK(*m.binding.features[1].vocabulary == std::vector<std::string>{"paris", "london", "berlin"});
  CHECK(m.spec.features[1].size == 3);
  // age over 20, 40, 30, 50, 60: mean 40, population stddev sqrt(200).
  CHECK(m.spec.features[0].mean == doctest::Approx(40.0));
  CHECK(m.spec.features[0].stddev == doctest::Approx(std::sqrt(200.0)));
  CHECK(*m.binding.features[0].fill == doctest::Approx(40.0));
  // price: log1p has no statistics; the given fill stays.
  CHECK(m.spec.features[2].mean == 0.0f);
  CHECK(m.spec.features[2].stddev == 1.0f);
  CHECK(*m.binding.features[2].fill == -1.5f);
  CHECK_NOTHROW(m.spec.validate());

  const Dataset ds = load(p, m.binding, m.spec);
  REQUIRE(ds.rows == 6);
  CHECK(ds.num_dense == 2);
  CHECK(ds.num_categorical == 1);
  CHECK(ds.num_tasks == 3);
  CHECK(ds.dense == std::vector<float>{20, 1.5f, 40, -1.5f, 40, 2, 30, -1.5f, 50, 4, 60, 8});
  CHECK(ds.ids == std::vector<std::int64_t>{0, 1, 0, 2, 1, 0});
  // buy: positive list; "unknown" is the task's own missing token, "?" the data's.
  // click: > 0.5, empty = missing. watch: the number, empty or "?" = missing.
  CHECK(ds.labels == std::vector<float>{1, 1, 3.5f, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 2, 0, 0, -10});
  CHECK(ds.mask == std::vector<std::uint8_t>{1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1});
  CHECK(ds.weights == std::vector<float>(6, 1.0f));
  CHECK(ds.groups == std::vector<std::int64_t>(6, 0));

  // Another file: unseen and missing strings are -1.
  const std::string q = dir.file("test.csv");
  write_file(q, "1,rome,1,yes,1,1\n2,?,1,yes,1,1\n3,LONDON,1,yes,1,1\n4,london,1,yes,1,1\n");
  const Dataset t = load(q, m.binding, m.spec);
  CHECK(t.ids == std::vector<std::int64_t>{-1, -1, -1, 1});
}

TEST_CASE("data: vocabularies are deterministic: frequency, then first appearance; min_count, max_size") {
  TempDir dir;
  const std::string p = dir.file("v.csv");
  // counts: d 3, b 2, c 2, a 2, e 1, f 1 — b, c, a tie and keep their order of first appearance.
  write_file(p, "e,0\nb,0\nc,0\nd,0\na,0\nd,0\nc,0\nb,0\na,0\nd,0\nf,0\n");
  auto model = [](const std::string& extra) {
    return R"({"architecture": "single_task",
      "features": [{"name": "x", "kind": "categorical", "column": 0, "embedding_dim": 2)" + extra + R"(}],
      "tasks": [{"name": "t", "column": 1}]})";
  };
  Model all = fitted(model(""), p);
  CHECK(*all.binding.features[0].vocabulary == std::vector<std::string>{"d", "b", "c", "a", "e", "f"});
  CHECK(all.spec.features[0].size == 6);
  Model again = fitted(model(""), p);
  CHECK(*again.binding.features[0].vocabulary == *all.binding.features[0].vocabulary);

  Model frequent = fitted(model(R"(, "min_count": 2)"), p);
  CHECK(*frequent.binding.features[0].vocabulary == std::vector<std::string>{"d", "b", "c", "a"});
  Model top = fitted(model(R"(, "max_size": 2)"), p);
  CHECK(*top.binding.features[0].vocabulary == std::vector<std::string>{"d", "b"});
  CHECK(top.spec.features[0].size == 2);
  const Dataset ds = load(p, top.binding, top.spec);
  CHECK(ds.ids == std::vector<std::int64_t>{-1, 1, -1, 0, -1, 0, -1, 1, -1, 0, -1});

  // A vocabulary given in model.json is used as is, and fit() does not rebuild it.
  Model given = fitted(model(R"(, "vocabulary": ["a", "z"])"), p);
  CHECK(*given.binding.features[0].vocabulary == std::vector<std::string>{"a", "z"});
  CHECK(given.spec.features[0].size == 2);
  CHECK(load(p, given.binding, given.spec).ids[4] == 0);

  // A column with nothing in it still gives a valid (one-row) table.
  const std::string blank = dir.file("blank.csv");
  write_file(blank, ",1\n,0\n");
  Model none = fitted(model(""), blank);
  CHECK(none.binding.features[0].vocabulary->empty());
  CHECK(none.spec.features[0].size == 1);
}

TEST_CASE("data: standardize statistics edge cases") {
  TempDir dir;
  const std::string p = dir.file("s.csv");
  write_file(p, "5,7,1\n5,,0\n5,9,1\n");
  const char* model = R"({"architecture": "single_task",
    "features": [{"name": "flat", "kind": "dense", "column": 0, "normalization": "standardize"},
                 {"name": "given", "kind": "dense", "column": 1, "normalization": "standardize",
                  "mean": 100, "stddev": 10},
                 {"name": "raw", "kind": "dense", "column": 1}],
    "tasks": [{"name": "t", "column": 2}]})";
  Model m = fitted(model, p);
  CHECK(m.spec.features[0].mean == 5.0f);
  CHECK(m.spec.features[0].stddev == 1.0f);  // stddev 0 -> 1
  CHECK(m.spec.features[1].mean == 100.0f);  // given: kept
  CHECK(m.spec.features[1].stddev == 10.0f);
  CHECK(*m.binding.features[1].fill == 8.0f);  // fill: the mean of 7 and 9
  CHECK(*m.binding.features[2].fill == 8.0f);
  const Dataset ds = load(p, m.binding, m.spec);
  CHECK(ds.dense == std::vector<float>{5, 7, 7, 5, 8, 8, 5, 9, 9});
  // Default binary rule: a number > 0.5.
  CHECK(ds.labels == std::vector<float>{1, 0, 1});
}

TEST_CASE("data: a [\"log1p\", \"standardize\"] chain is fitted on the log1p values, its fill on the raw ones") {
  TempDir dir;
  const std::string p = dir.file("c.csv");
  write_file(p, "0,1\n3,0\n,1\n-8,0\n");
  const char* model = R"({"architecture": "single_task",
    "features": [{"name": "spend", "kind": "dense", "column": 0, "normalization": ["log1p", "standardize"]}],
    "tasks": [{"name": "t", "column": 1}]})";
  Model m = fitted(model, p);
  const double l[] = {0.0, std::log1p(3.0), -std::log1p(8.0)};  // sign(v) log1p(|v|)
  const double mean = (l[0] + l[1] + l[2]) / 3;
  const double var = ((l[0] - mean) * (l[0] - mean) + (l[1] - mean) * (l[1] - mean) + (l[2] - mean) * (l[2] - mean)) / 3;
  CHECK(m.spec.features[0].normalization == mtlite::Normalization::log1p_standardize);
  CHECK(m.spec.features[0].mean == doctest::Approx(mean).epsilon(1e-6));
  CHECK(m.spec.features[0].stddev == doctest::Approx(std::sqrt(var)).epsilon(1e-6));
  CHECK(*m.binding.features[0].fill == doctest::Approx(-5.0 / 3).epsilon(1e-6));  // the raw mean
  // The fitted model.json keeps the chain and the statistics.
  const Json back = m.binding.model_json(m.spec);
  CHECK(back.at("features")[0].at("normalization").dump() == R"(["log1p","standardize"])");
  CHECK(mtlite::data::DataBinding::from_json(back).fitted());
}

TEST_CASE("data: header, columns by name, weights and groups") {
  TempDir dir;
  const std::string p = dir.file("h.tsv");
  write_file(p,
             "user\titem\tw\tclicked\tprice\n"
             "u1\t17\t2.5\t1\t3\n"
             "42\t-3\t0\t0\t4\n"
             "u1\t17\t1\t?\t5\n");
  const char* model = R"({"architecture": "shared_bottom", "bottom": [4],
    "data": {"separator": "\t", "header": true, "weight": "w", "group": "user", "missing": ["?"]},
    "features": [{"name": "price", "kind": "dense"},
                 {"name": "item", "kind": "categorical", "mapping": "hashing", "size": 1000,
                  "values": "integers", "embedding_dim": 4},
                 {"name": "user", "kind": "categorical", "mapping": "hashing", "size": 50,
                  "column": 0, "embedding_dim": 2}],
    "tasks": [{"name": "clicked", "positive": ["1"]}]})";
  Model m = fitted(model, p);
  CHECK(m.binding.features[0].column.name == "price");  // defaults to the feature's name
  const Dataset ds = load(p, m.binding, m.spec);
  REQUIRE(ds.rows == 3);
  CHECK(ds.weights == std::vector<float>{2.5f, 0.0f, 1.0f});
  const auto u1 = static_cast<std::int64_t>(mtlite::hash_string("u1"));
  CHECK(ds.groups == std::vector<std::int64_t>{u1, 42, u1});
  CHECK(ds.ids == std::vector<std::int64_t>{17, u1, -3, static_cast<std::int64_t>(mtlite::hash_string("42")), 17, u1});
  CHECK(ds.mask == std::vector<std::uint8_t>{1, 1, 0});
  CHECK(ds.dense == std::vector<float>{3, 4, 5});

  // A name that is not in the header.
  const char* wrong = R"({"architecture": "single_task", "data": {"separator": "\t", "header": true},
    "features": [{"name": "cost", "kind": "dense"}], "tasks": [{"name": "clicked"}]})";
  CHECK_ERROR(fitted(wrong, p), "h.tsv: feature 'cost': no column named 'cost' in the header");
  // A name the header gives twice is ambiguous.
  const std::string twice = dir.file("twice.csv");
  write_file(twice, "x,y,x\n1,0,2\n");
  CHECK_ERROR(fitted(R"({"architecture": "single_task", "data": {"header": true},
    "features": [{"name": "x", "kind": "dense"}], "tasks": [{"name": "y"}]})", twice),
              "twice.csv: feature 'x': the header names column 'x' more than once");
}

TEST_CASE("data: multi-hot bags, hashing and integer vocabularies") {
  TempDir dir;
  const std::string p = dir.file("m.csv");
  write_file(p,
             "a|b|a,7,1\n"
             ",3,0\n"
             " c | | ?|b ,0,1\n"
             "?,-1,0\n"
             "b,12,1\n");
  const char* model = R"({"architecture": "single_task", "data": {"missing": ["?"]},
    "features": [{"name": "tags", "kind": "multi_hot", "column": 0, "embedding_dim": 4},
                 {"name": "htags", "kind": "multi_hot", "mapping": "hashing", "size": 64, "column": 0,
                  "embedding_dim": 4, "pooling": "mean"},
                 {"name": "code", "kind": "categorical", "values": "integers", "size": 10, "column": 1,
                  "embedding_dim": 2}],
    "tasks": [{"name": "t", "column": 2}]})";
  Model m = fitted(model, p);
  // Item counts: b 3, a 2, c 1.
  CHECK(*m.binding.features[0].vocabulary == std::vector<std::string>{"b", "a", "c"});
  CHECK(m.spec.features[0].size == 3);
  CHECK(m.spec.features[2].size == 10);
  const Dataset ds = load(p, m.binding, m.spec);
  REQUIRE(ds.bags.size() == 2);
  CHECK(ds.bags[0].ids == std::vector<std::int64_t>{1, 0, 1, 2, 0, 0});
  CHECK(ds.bags[0].offsets == std::vector<std::uint32_t>{0, 3, 3, 5, 5, 6});
  auto h = [](const char* s) { return static_cast<std::int64_t>(mtlite::hash_string(s)); };
  CHECK(ds.bags[1].ids == std::vector<std::int64_t>{h("a"), h("b"), h("a"), h("c"), h("b"), h("b")});
  CHECK(ds.bags[1].offsets == ds.bags[0].offsets);
  CHECK(ds.ids == std::vector<std::int64_t>{7, 3, 0, -1, 12});

  SUBCASE("batches are views with absolute offsets") {
    const mtlite::Batch b = ds.batch(1, 4);
    CHECK(b.rows == 3);
    CHECK(b.dense.size() == 0);
    REQUIRE(b.ids.size() == 3);
    CHECK(b.ids[0] == 3);
    CHECK(b.ids.data() == ds.ids.data() + 1);
    REQUIRE(b.bags.size() == 2);
    CHECK(b.bags[0].ids.size() == 6);
    REQUIRE(b.bags[0].offsets.size() == 4);
    CHECK(b.bags[0].offsets[0] == 3);
    CHECK(b.bags[0].offsets[3] == 5);
    // Row 2 of the file (index 1 of the batch) holds ids[3..5): c, b.
    CHECK(b.bags[0].ids[b.bags[0].offsets[1]] == 2);
    std::vector<mtlite::Bag> mine;
    const mtlite::Batch c = ds.batch(4, 5, mine);
    CHECK(c.bags.data() == mine.data());
    CHECK(c.bags[0].offsets[0] == 5);
    CHECK(c.bags[0].offsets[1] == 6);
    const mtlite::Batch empty = ds.batch(5, 5);
    CHECK(empty.rows == 0);
    CHECK(empty.bags[0].offsets.size() == 1);
    CHECK_ERROR(ds.batch(2, 6), "out of range");
    CHECK_ERROR(ds.batch(3, 2), "out of range");
  }
  SUBCASE("select gathers rows and rebuilds the bags") {
    const std::vector<std::size_t> rows = {4, 0, 0};
    const Dataset s = ds.select(rows);
    CHECK(s.rows == 3);
    CHECK(s.ids == std::vector<std::int64_t>{12, 7, 7});
    CHECK(s.bags[0].ids == std::vector<std::int64_t>{0, 1, 0, 1, 1, 0, 1});
    CHECK(s.bags[0].offsets == std::vector<std::uint32_t>{0, 1, 4, 7});
    CHECK(s.labels == std::vector<float>{1, 1, 1});
    const std::vector<std::size_t> bad = {5};
    CHECK_ERROR(ds.select(bad), "row 5 out of range");
  }
}

TEST_CASE("data: labels, masks, weights and groups of a row range") {
  TempDir dir;
  const std::string p = dir.file("l.csv");
  write_file(p, "1,yes,2,1.5,g1\n2,no,?,3,7\n3,yes,4,0,g1\n");
  const char* model = R"({"architecture": "mmoe", "experts": 2, "expert": [2],
    "data": {"missing": ["?"], "weight": 3, "group": 4},
    "features": [{"name": "x", "kind": "dense", "column": 0}],
    "tasks": [{"name": "a", "column": 1, "positive": "yes"},
              {"name": "b", "kind": "regression", "column": 2}]})";
  const Dataset ds = fit_and_load(model, p);
  const auto labels = ds.labels_of(1, 3);
  REQUIRE(labels.size() == 4);
  CHECK(labels[0] == 0.0f);
  CHECK(labels[2] == 1.0f);
  CHECK(labels[3] == 4.0f);
  const auto mask = ds.mask_of(1, 2);
  REQUIRE(mask.size() == 2);
  CHECK(mask[0] == 1);
  CHECK(mask[1] == 0);
  const auto w = ds.weights_of(0, 3);
  CHECK(std::vector<float>(w.begin(), w.end()) == std::vector<float>{1.5f, 3.0f, 0.0f});
  const auto g = ds.groups_of(1, 3);
  CHECK(g[0] == 7);
  CHECK(g[1] == static_cast<std::int64_t>(mtlite::hash_string("g1")));
  CHECK_ERROR(ds.labels_of(0, 4), "out of range");
}

TEST_CASE("data: every malformed row names file, line, column and feature or task") {
  TempDir dir;
  const char* model = R"({"architecture": "single_task",
    "data": {"missing": ["?"], "weight": 5},
    "features": [{"name": "num", "kind": "dense", "column": 0},
                 {"name": "id", "kind": "categorical", "values": "integers", "size": 9, "column": 1,
                  "embedding_dim": 2},
                 {"name": "bag", "kind": "multi_hot", "mapping": "hashing", "values": "integers",
                  "size": 9, "column": 2, "embedding_dim": 2}],
    "tasks": [{"name": "click", "column": 3, "threshold": 0.5},
              {"name": "time", "kind": "regression", "column": 4}]})";
  const std::string good = "1,2,3|4,1,2.5,1\n";
  struct Case {
    std::string row;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"1,2,3,1,2.5\n", "bad.csv:2: expected 6 fields, got 5"},
      {"abc,2,3,1,2.5,1\n", "bad.csv:2: column 0 (feature 'num'): 'abc' is not a finite number"},
      {"nan,2,3,1,2.5,1\n", "bad.csv:2: column 0 (feature 'num'): 'nan' is not a finite number"},
      {"inf,2,3,1,2.5,1\n", "bad.csv:2: column 0 (feature 'num'): 'inf' is not a finite number"},
      {"-Infinity,2,3,1,2.5,1\n", "column 0 (feature 'num'): '-Infinity' is not a finite number"},
      {"1e999,2,3,1,2.5,1\n", "column 0 (feature 'num'): '1e999' is not a finite number"},
      {"1 2,2,3,1,2.5,1\n", "column 0 (feature 'num'): '1 2' is not a finite number"},
      {"1,2x,3,1,2.5,1\n", "bad.csv:2: column 1 (feature 'id'): '2x' is not an integer id"},
      {"1,2.0,3,1,2.5,1\n", "column 1 (feature 'id'): '2.0' is not an integer id"},
      {"1,99999999999999999999,3,1,2.5,1\n", "column 1 (feature 'id'): '99999999999999999999' is not an integer id"},
      {"1,2,3|x4,1,2.5,1\n", "bad.csv:2: column 2 (feature 'bag'): 'x4' is not an integer id"},
      {"1,2,3,yes,2.5,1\n", "bad.csv:2: column 3 (task 'click'): 'yes' is not a finite number"},
      {"1,2,3,1,fast,1\n", "bad.csv:2: column 4 (task 'time'): 'fast' is not a finite number"},
      {"1,2,3,1,2.5,?\n", "bad.csv:2: column 5 (data.weight): the weight is missing"},
      {"1,2,3,1,2.5,-1\n", "bad.csv:2: column 5 (data.weight): '-1' is not a finite number >= 0"},
      {"\"1,2,3,1,2.5,1\n", "bad.csv:2: unterminated quoted field"},
      {"\"1\"x,2,3,1,2.5,1\n", "bad.csv:2: unexpected text after the closing quote"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.row);
    const std::string p = dir.file("bad.csv");
    write_file(p, good + c.row + good);
    const Json j = Json::parse(model);
    DataBinding b = DataBinding::from_json(j);
    Spec spec = DataBinding::spec_from_model_json(j);
    CHECK_ERROR(b.fit(p, spec), c.message);
    // Skipping: fit and load agree on what is malformed.
    ReadOptions skip;
    skip.skip_bad_rows = true;
    const ReadReport r = b.fit(p, spec, skip);
    CHECK(r.rows == (c.row[0] == '"' && c.message.find("unterminated") != std::string::npos ? 1u : 2u));
    CHECK(r.skipped == 1);
    REQUIRE(r.first_errors.size() == 1);
    CHECK(r.first_errors[0].find(c.message) != std::string::npos);
    CHECK_ERROR(load(p, b, spec), c.message);
    const Dataset ds = load(p, b, spec, skip);
    CHECK(ds.report.skipped == 1);
    CHECK(ds.rows == r.rows);
  }

  // With a header the column's name is given too.
  const std::string h = dir.file("h.csv");
  write_file(h, "price,y\n1,0\nfree,1\n");
  CHECK_ERROR(fit_and_load(R"({"architecture": "single_task", "data": {"header": true},
    "features": [{"name": "price", "kind": "dense"}], "tasks": [{"name": "y"}]})", h),
              "h.csv:3: column 0 'price' (feature 'price'): 'free' is not a finite number");
}

TEST_CASE("data: skip_bad_rows from model.json, counting and reporting") {
  TempDir dir;
  const std::string p = dir.file("s.csv");
  std::string text;
  for (int i = 0; i < 30; ++i) text += i % 3 == 0 ? "oops,1\n" : std::to_string(i) + ",1\n";
  write_file(p, text);
  const char* model = R"({"architecture": "single_task", "data": {"skip_bad_rows": true},
    "features": [{"name": "x", "kind": "dense", "column": 0}], "tasks": [{"name": "t", "column": 1}]})";
  const Json j = Json::parse(model);
  DataBinding b = DataBinding::from_json(j);
  Spec spec = DataBinding::spec_from_model_json(j);
  const ReadReport r = b.fit(p, spec);
  CHECK(r.rows == 20);
  CHECK(r.skipped == 10);
  CHECK(r.first_errors.size() == 10);
  CHECK(r.first_errors[0] == p + ":1: column 0 (feature 'x'): 'oops' is not a finite number");
  CHECK(r.first_errors[1].rfind(p + ":4: ", 0) == 0);
  const Dataset ds = load(p, b, spec);
  CHECK(ds.rows == 20);
  CHECK(ds.report.skipped == 10);
  CHECK(ds.dense[0] == 1.0f);
  // The argument overrides model.json.
  ReadOptions strict;
  strict.skip_bad_rows = false;
  CHECK_ERROR(load(p, b, spec, strict), "s.csv:1: column 0 (feature 'x')");
  // More than ten skipped rows keep the first ten messages.
  std::string many;
  for (int i = 0; i < 25; ++i) many += "bad,1\n";
  write_file(p, many + "1,1\n");
  const Dataset d2 = load(p, b, spec);
  CHECK(d2.rows == 1);
  CHECK(d2.report.skipped == 25);
  CHECK(d2.report.first_errors.size() == 10);
  // max_rows stops early.
  ReadOptions two;
  two.max_rows = 2;
  write_file(p, "1,1\n2,1\n3,1\n");
  CHECK(load(p, b, spec, two).rows == 2);
}

TEST_CASE("data: gzip and plain files load the same dataset") {
  TempDir dir;
  std::string text;
  std::mt19937 rng(3);
  const char* cities[] = {"paris", "london", "berlin", "rome", "?"};
  for (int i = 0; i < 5000; ++i)
    text += std::to_string(rng() % 90) + "," + cities[rng() % 5] + "," + std::to_string(rng() % 100) + "," +
            (rng() % 2 ? "yes" : "no") + "," + std::to_string(rng() % 2) + "," + std::to_string(rng() % 7) + "\n";
  const std::string p = dir.file("d.csv"), g = dir.file("d.csv.gz");
  write_file(p, text);
  write_gzip(g, text);
  Model m = fitted(kBasicModel, g);
  const Dataset a = load(p, m.binding, m.spec), b = load(g, m.binding, m.spec);
  CHECK(a.rows == 5000);
  CHECK(a.dense == b.dense);
  CHECK(a.ids == b.ids);
  CHECK(a.labels == b.labels);
  CHECK(a.mask == b.mask);
}

TEST_CASE("data: the stored form round-trips, vocabularies and fill values included") {
  TempDir dir;
  const std::string p = dir.file("t.csv");
  write_file(p, "20,paris,1.5,yes,1,3.5\n40,london,?,no,0,1\n?,paris,2,unknown,0.7,?\n");
  Model m = fitted(kBasicModel, p);
  const Json stored = m.binding.to_json();
  const Json reparsed = Json::parse(stored.dump(2));
  const DataBinding back = DataBinding::from_json(reparsed);
  CHECK(back.to_json() == stored);
  CHECK(back.fitted());
  CHECK(*back.features[1].vocabulary == *m.binding.features[1].vocabulary);
  CHECK(*back.features[0].fill == *m.binding.features[0].fill);
  CHECK(back.separator == ",");
  CHECK(back.missing == std::vector<std::string>{"?", "NA"});
  CHECK(back.tasks[0].positive == std::vector<std::string>{"yes", "y"});
  CHECK(back.tasks[0].missing == std::vector<std::string>{"unknown"});
  CHECK(back.tasks[1].threshold == 0.5f);
  CHECK(stored.at("features")[1].at("vocabulary") == Json::array({"paris", "london"}));
  // The stored bindings read the data exactly like the originals.
  const Spec spec2 = m.spec;
  const Dataset a = load(p, m.binding, m.spec), b = load(p, back, spec2);
  CHECK(a.dense == b.dense);
  CHECK(a.ids == b.ids);
  CHECK(a.labels == b.labels);
  CHECK(a.mask == b.mask);

  // A stored block refitted keeps its vocabulary (it is part of the trained model).
  DataBinding refit = back;
  Spec spec3 = spec2;
  const std::string other = dir.file("o.csv");
  write_file(other, "1,rome,1,yes,1,1\n");
  refit.fit(other, spec3);
  CHECK(*refit.features[1].vocabulary == std::vector<std::string>{"paris", "london"});
}

TEST_CASE("data: bad configuration names the field") {
  auto bad = [](const std::string& features, const std::string& tasks = R"([{"name": "t", "column": 1}])",
                const std::string& data = "{}") {
    return error_of([&] {
      DataBinding::from_json(Json::parse(R"({"architecture": "single_task", "data": )" + data +
                                         R"(, "features": )" + features + R"(, "tasks": )" + tasks + "}"));
    });
  };
  auto contains = [](const std::string& message, const std::string& text) {
    INFO("message: " << message);
    CHECK(message.find(text) != std::string::npos);
  };
  contains(bad(R"([{"name": "x", "kind": "dense", "column": 0, "values": "strings"}])"),
           "features[0] ('x').values: only for categorical and multi_hot features");
  contains(bad(R"([{"name": "x", "kind": "categorical", "column": 0, "embedding_dim": 2, "fill": 1}])"),
           "features[0] ('x').fill: only for dense features");
  contains(bad(R"([{"name": "x", "kind": "categorical", "column": 0, "embedding_dim": 2, "size": 5}])"),
           "features[0] ('x').size: set by fit()");
  contains(bad(R"([{"name": "x", "kind": "categorical", "values": "integers", "column": 0, "embedding_dim": 2}])"),
           "features[0] ('x').size: required");
  contains(bad(R"([{"name": "x", "kind": "categorical", "values": "words", "column": 0, "embedding_dim": 2}])"),
           "features[0] ('x').values: unknown value 'words'");
  contains(bad(R"([{"name": "x", "kind": "categorical", "mapping": "hashing", "size": 9, "min_count": 2,
                  "column": 0, "embedding_dim": 2}])"),
           "features[0] ('x').min_count: only for vocabulary features with string values");
  contains(bad(R"([{"name": "x", "kind": "categorical", "column": 0, "embedding_dim": 2, "min_count": 0}])"),
           "features[0] ('x').min_count: must be at least 1");
  contains(bad(R"([{"name": "x", "kind": "categorical", "column": 0, "embedding_dim": 2, "min_count": "2"}])"),
           "features[0] ('x').min_count: expected a number, got a string");
  contains(bad(R"([{"name": "x", "kind": "categorical", "column": 0, "embedding_dim": 2, "vocabulary": ["a", "a"]}])"),
           "features[0] ('x').vocabulary[1]: duplicate value 'a'");
  contains(bad(R"([{"name": "x", "kind": "dense", "column": 0, "normalization": "standardize", "mean": 1}])"),
           "features[0] ('x'): give both \"mean\" and \"stddev\"");
  contains(bad(R"([{"name": "x", "kind": "dense", "colum": 0}])"), "features[0]: unknown key 'colum'");
  contains(bad(R"([{"name": "x", "kind": "dense"}])"), "features[0] ('x').column: missing");
  contains(bad(R"([{"name": "x", "kind": "dense", "column": "price"}])"),
           "feature 'x'.column: column 'price' is a name, which needs");
  contains(bad(R"([{"name": "x", "kind": "dense", "column": -1}])"), "features[0] ('x').column: expected an integer");
  contains(bad(R"([{"name": "x", "kind": "dense", "column": true}])"),
           "features[0] ('x').column: expected a column index or a header name");
  contains(bad(R"([{"name": "x", "kind": "multi_hot", "column": 0, "embedding_dim": 2, "list_separator": ","}])"),
           "list_separator: equals data.separator");
  contains(bad(R"([{"name": "x", "kind": "dense", "column": 0}, {"name": "x", "kind": "dense", "column": 1}])"),
           "features[1].name: duplicate feature 'x'");
  const std::string x = R"([{"name": "x", "kind": "dense", "column": 0}])";
  contains(bad(x, R"([{"name": "t", "column": 1, "positive": ["a"], "threshold": 1}])"),
           "tasks[0] ('t'): \"positive\" and \"threshold\" exclude each other");
  contains(bad(x, R"([{"name": "t", "kind": "regression", "column": 1, "positive": ["a"]}])"),
           "tasks[0] ('t').positive: only for binary tasks");
  contains(bad(x, R"([{"name": "t", "column": 1, "positive": []}])"), "tasks[0] ('t').positive: needs at least one value");
  contains(bad(x, R"([{"name": "t", "column": 1, "positive": [1]}])"), "tasks[0] ('t').positive[0]: expected a string");
  contains(bad(x, R"([{"name": "t", "column": 1, "thresold": 1}])"), "tasks[0]: unknown key 'thresold'");
  contains(bad(x, R"([{"name": "t", "column": 1}])", R"({"separater": ","})"), "data: unknown key 'separater'");
  contains(bad(x, R"([{"name": "t", "column": 1}])", R"({"separator": ""})"), "data.separator: must not be empty");
  contains(bad(x, R"([{"name": "t", "column": 1}])", R"({"header": "yes"})"), "data.header: expected a boolean");
  contains(bad(x, R"([{"name": "t", "column": 1}])", R"({"weight": "w"})"), "data.weight: column 'w' is a name");
  contains(error_of([] { DataBinding::from_json(Json::parse("[]")); }), "data: expected an object");

  // The spec part is spec_from_json's: a typo there is caught as well.
  contains(error_of([] {
             DataBinding::spec_from_model_json(Json::parse(R"({"architecture": "single_task",
               "features": [{"name": "x", "kind": "dense", "column": 0, "normalisation": "log1p"}],
               "tasks": [{"name": "t", "column": 1}]})"));
           }),
           "unknown key 'normalisation'");
}

TEST_CASE("data: load refuses unfitted bindings, mismatched specs and short rows") {
  TempDir dir;
  const std::string p = dir.file("t.csv");
  write_file(p, "1,a,2,yes,1,1\n");
  const Json j = Json::parse(kBasicModel);
  DataBinding b = DataBinding::from_json(j);
  Spec spec = DataBinding::spec_from_model_json(j);
  CHECK_FALSE(b.fitted());
  CHECK_ERROR(load(p, b, spec), "not fitted (feature 'age' has no fill value)");
  b.fit(p, spec);
  CHECK(b.fitted());
  Spec other = spec;
  other.features[1].size = 7;
  CHECK_ERROR(load(p, b, other), "feature 1 ('city'): the spec's size 7 disagrees with the 1 values");
  other = spec;
  other.features[0].name = "years";
  CHECK_ERROR(load(p, b, other), "data: feature 0 ('age') is 'years' in the spec");
  other = spec;
  other.tasks.pop_back();
  CHECK_ERROR(load(p, b, other), "the bindings name 3 tasks, the spec has 2");

  // A given fill value does not make standardize statistics.
  const Json js = Json::parse(R"({"architecture": "single_task",
    "features": [{"name": "x", "kind": "dense", "column": 0, "normalization": "standardize", "fill": 0}],
    "tasks": [{"name": "t", "column": 3, "positive": ["yes"]}]})");
  DataBinding bs = DataBinding::from_json(js);
  Spec ss = DataBinding::spec_from_model_json(js);
  CHECK_ERROR(load(p, bs, ss), "not fitted (feature 'x' has no mean and stddev)");
  bs.fit(p, ss);
  CHECK(ss.features[0].mean == 1.0f);
  CHECK(load(p, bs, ss).rows == 1);

  const std::string short_rows = dir.file("short.csv");
  write_file(short_rows, "1,a,2,yes\n");
  CHECK_ERROR(load(short_rows, b, spec), "short.csv:1: task 'watch' reads column 5 but the rows have 4 fields");

  const std::string latin1 = dir.file("latin1.csv");
  write_file(latin1, "1,caf\xe9,2,yes,1,1\n");
  Spec s2 = DataBinding::spec_from_model_json(j);
  DataBinding b2 = DataBinding::from_json(j);
  CHECK_ERROR(b2.fit(latin1, s2), "latin1.csv:1: feature 'city': 'caf\\xe9' is not valid UTF-8");
}

// ================================================================================================
// The real thing: census-income with the MMoE paper's Group 1 configuration
// ================================================================================================

namespace {

std::string census_dir() {
  if (const char* env = std::getenv("MTLITE_CENSUS_DIR")) return env;
  return MTLITE_CENSUS_DIR;
}

bool census_present() {
  static const bool present = [] {
    const std::string file = census_dir() + "/census-income.data.gz";
    const bool ok = fs::exists(file);
    if (!ok)
      std::fprintf(stderr, "census-income data not found at %s; skipping the census test\n", file.c_str());
    return ok;
  }();
  return present;
}

Json read_json(const std::string& path) {
  const std::string text = read_bytes(path);
  REQUIRE(!text.empty());
  return Json::parse(text);
}

double rate(const Dataset& ds, std::size_t task) {
  double positive = 0;
  for (std::size_t r = 0; r < ds.rows; ++r) positive += ds.labels[r * ds.num_tasks + task];
  return positive / static_cast<double>(ds.rows);
}

}  // namespace

TEST_CASE("census-income: Group 1 model.json reads the training file" * doctest::skip(!census_present())) {
  const std::string data = census_dir() + "/census-income.data.gz";
  const Json j = read_json(std::string(MTLITE_SOURCE_ROOT) + "/examples/census-income/model.json");
  DataBinding b = DataBinding::from_json(j);
  Spec spec = DataBinding::spec_from_model_json(j);
  CHECK(spec.features.size() == 39);
  CHECK(spec.architecture == mtlite::Architecture::mmoe);

  // Wall time, and CPU time: on a busy machine the wall clock says more about the neighbours.
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const std::clock_t c0 = std::clock();
  const ReadReport fit = b.fit(data, spec);
  const auto t1 = clock::now();
  const std::clock_t c1 = std::clock();
  const Dataset ds = load(data, b, spec);
  const auto t2 = clock::now();
  const std::clock_t c2 = std::clock();
  const double fit_s = std::chrono::duration<double>(t1 - t0).count();
  const double load_s = std::chrono::duration<double>(t2 - t1).count();
  MESSAGE("census-income.data.gz (" << ds.rows << " rows): fit " << fit_s << " s wall / "
          << static_cast<double>(c1 - c0) / CLOCKS_PER_SEC << " s CPU, load " << load_s << " s wall / "
          << static_cast<double>(c2 - c1) / CLOCKS_PER_SEC << " s CPU");

  CHECK(fit.rows == 199523);
  CHECK(fit.skipped == 0);
  CHECK(ds.rows == 199523);
  CHECK(ds.report.skipped == 0);
  CHECK(ds.num_dense == 7);
  CHECK(ds.num_categorical == 32);
  REQUIRE(ds.num_tasks == 2);
  CHECK(std::fabs(rate(ds, 0) - 0.0621) <= 0.0005);
  CHECK(std::fabs(rate(ds, 1) - 0.4335) <= 0.0005);
  CHECK(std::all_of(ds.mask.begin(), ds.mask.end(), [](std::uint8_t m) { return m == 1; }));
  // class_worker has 9 values, sex 2; no id is unknown in the training data except missing ones.
  CHECK(spec.features[1].name == "class_worker");
  CHECK(spec.features[1].size == 9);
  CHECK(spec.features[0].mean == doctest::Approx(34.49).epsilon(0.001));
  std::int64_t widest = -1;
  for (std::size_t r = 0; r < ds.rows; ++r) widest = std::max(widest, ds.ids[r * ds.num_categorical]);
  CHECK(widest == 8);
  CHECK(spec.input_dim() > 39);
  CHECK_NOTHROW(spec.validate());

  // Group 2's configuration reads it too; ">= Bachelors" education is 14.77 % of the rows.
  const Json j2 = read_json(std::string(MTLITE_SOURCE_ROOT) + "/examples/census-income/group2.json");
  DataBinding b2 = DataBinding::from_json(j2);
  Spec spec2 = DataBinding::spec_from_model_json(j2);
  CHECK(spec2.features.size() == 38);
  b2.fit(data, spec2);
  const Dataset ds2 = load(data, b2, spec2);
  CHECK(std::fabs(rate(ds2, 0) - 0.1477) <= 0.0005);
  CHECK(std::fabs(rate(ds2, 1) - 0.4335) <= 0.0005);
}

// ================================================================================================
// Resource limits: records bounded while they are read (csv.hpp's contract)
// ================================================================================================

namespace {

// One gzip member holding `bytes` bytes of 'a', compressed from a small buffer as it goes.
std::string gzip_member_of_a(std::size_t bytes) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string in(1 << 16, 'a'), out;
  char chunk[1 << 14];
  for (std::size_t left = bytes; ;) {
    const std::size_t n = std::min(left, in.size());
    left -= n;
    zs.next_in = reinterpret_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(n);
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    int ret;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(chunk);
      zs.avail_out = sizeof chunk;
      ret = deflate(&zs, flush);
      out.append(chunk, sizeof chunk - zs.avail_out);
    } while (zs.avail_out == 0);
    if (flush == Z_FINISH) {
      REQUIRE(ret == Z_STREAM_END);
      break;
    }
  }
  deflateEnd(&zs);
  return out;
}

// The limits of csv.hpp with the defaults: L = 64 MiB + 2, F = 2^20.
constexpr long kLineBufferKiB = 2 * ((64 << 10) + 1);
constexpr long kFieldTableKiB = 12 << 10;

}  // namespace

TEST_CASE("csv limits: /dev/zero stops at the record limit, naming file, line and limit, in bounded memory") {
  const auto run = mtlite_test::run_in_child([] { read_all("/dev/zero"); }, 20);
  REQUIRE(run.exited);
  CHECK(run.error == "/dev/zero:1: the record is longer than the limit of 67108864 bytes "
                     "(CsvOptions::max_record_bytes); is this a delimited text?");
  MESSAGE("csv /dev/zero: peak RSS +" << run.peak_kib << " KiB in " << run.seconds << " s");
  CHECK(run.peak_kib <= kLineBufferKiB + kFieldTableKiB + 320 + mtlite_test::rss_slack_kib(kLineBufferKiB));
  CHECK(run.seconds < 5.0);
}

TEST_CASE("csv limits: a record just over max_record_bytes is refused, one at it is read (\\n, \\r\\n, last line, quoted)") {
  TempDir dir;
  CsvOptions o;
  o.max_record_bytes = 1 << 20;
  o.buffer_size = 4096;  // the buffer grows up to the limit, not past it
  const std::string at = std::string(o.max_record_bytes - 2, 'x') + ",y";
  const std::string over = at + "z";
  const std::string limit_text = ": the record is longer than the limit of 1048576 bytes (CsvOptions::max_record_bytes)";
  for (const char* eol : {"\n", "\r\n"}) {
    CAPTURE(std::string(eol).size());
    const std::string ok = dir.file("ok.csv"), bad = dir.file("bad.csv"), last = dir.file("last.csv");
    write_file(ok, "a,b" + std::string(eol) + at + eol + "c,d" + eol);
    const Rows rows = read_all(ok, o);
    REQUIRE(rows.size() == 3);
    CHECK(rows[1][0].size() == o.max_record_bytes - 2);
    write_file(bad, "a,b" + std::string(eol) + over + eol + "c,d" + eol);
    CHECK_ERROR(read_all(bad, o), "bad.csv:2" + limit_text);
    write_file(last, "a,b" + std::string(eol) + over);
    CHECK_ERROR(read_all(last, o), "last.csv:2" + limit_text);
  }
  // A quoted field's line breaks count: the record starting on line 1 is too long.
  const std::string quoted = dir.file("quoted.csv");
  write_file(quoted, "\"" + std::string(o.max_record_bytes / 2, 'q') + "\n" + std::string(o.max_record_bytes / 2, 'q') + "\",1\n");
  CHECK_ERROR(read_all(quoted, o), "quoted.csv:1" + limit_text);
  // The limit is final: no record comes after it.
  const std::string bad = dir.file("bad.csv");
  CsvReader r(bad, o);
  REQUIRE(r.next());
  CHECK_THROWS_AS(r.next(), Error);
  CHECK(error_of([&] { r.next(); }).find("bad.csv:2") != std::string::npos);
}

TEST_CASE("csv limits: more than max_fields fields is a record error, which a caller may skip") {
  TempDir dir;
  CsvOptions o;
  o.max_fields = 4;
  o.uniform_fields = false;
  const std::string p = dir.file("wide.csv");
  write_file(p, "1,2,3,4\n1,2,3,4,5\n6,7\n");
  CsvReader r(p, o);
  REQUIRE(r.next());
  CHECK(r.size() == 4);
  try {
    r.next();
    FAIL("no error");
  } catch (const CsvError& e) {
    CHECK(std::string(e.what()) == p + ":2: more than 4 fields (CsvOptions::max_fields)");
  }
  REQUIRE(r.next());
  CHECK(r.size() == 2);
  CHECK(r.line() == 3);
  // With the default limit, 2^20 + 1 empty fields: refused, in memory bounded by the field table.
  write_file(p, std::string(std::size_t{1} << 20, ',') + "\n");
  const auto run = mtlite_test::run_in_child([&] { read_all(p); }, 20);
  REQUIRE(run.exited);
  CHECK(run.error == p + ":1: more than 1048576 fields (CsvOptions::max_fields)");
  MESSAGE("csv 2^20 + 1 fields: peak RSS +" << run.peak_kib << " KiB");
  CHECK(run.peak_kib <= 2 * 2048 + kFieldTableKiB + 320 + mtlite_test::rss_slack_kib(2 * 2048 + kFieldTableKiB));
}

TEST_CASE("csv limits: a gzip bomb that inflates to one endless line stops at the limit in bounded memory") {
  TempDir dir;
  const std::string member = gzip_member_of_a(std::size_t{1} << 20);
  MESSAGE("1 MiB of 'a' compresses to " << member.size() << " bytes");
  // A good start, then 4096 members of 1 MiB each: 4 GiB of text without a line break.
  const std::string p = dir.file("bomb.csv.gz");
  {
    write_gzip(p, "x,y\n1,2\n");
    std::ofstream out(p, std::ios::binary | std::ios::app);
    for (int i = 0; i < 4096; ++i) out << member;
    REQUIRE(out.good());
  }
  MESSAGE("the bomb: " << fs::file_size(p) << " bytes inflating to 4 GiB + 8");
  const auto run = mtlite_test::run_in_child([&] { read_all(p); }, 20);
  REQUIRE(run.exited);
  CHECK(run.error == p + ":3: the record is longer than the limit of 67108864 bytes "
                         "(CsvOptions::max_record_bytes); is this a gzip file of delimited text?");
  MESSAGE("csv gzip bomb: peak RSS +" << run.peak_kib << " KiB in " << run.seconds << " s");
  CHECK(run.peak_kib <= kLineBufferKiB + kFieldTableKiB + 320 + mtlite_test::rss_slack_kib(kLineBufferKiB));
  CHECK(run.seconds < 5.0);
}

// ================================================================================================
// Resource limits: model.json, the tables training allocates, dense values far from O(1)
// ================================================================================================

TEST_CASE("model.json: read_json refuses more than 32 MiB as it reads (/dev/zero, an endless FIFO)") {
  const auto run = mtlite_test::run_in_child([] { (void)cli::read_json("/dev/zero"); }, 20);
  REQUIRE(run.exited);
  CHECK(run.error == "/dev/zero: more than 33554432 bytes (32 MiB), the limit for a JSON configuration; is this the right file?");
  MESSAGE("read_json /dev/zero: peak RSS +" << run.peak_kib << " KiB in " << run.seconds << " s");
  // The text grows to the limit (doubling: the old and the new string live together once).
  CHECK(run.peak_kib <= 2 * (32 << 10) + 64 + mtlite_test::rss_slack_kib(2 * (32 << 10)));
  CHECK(run.seconds < 5.0);

  TempDir dir;
  const std::string ok = dir.file("model.json"), bad = dir.file("bad.json");
  write_file(ok, std::string(1000, ' ') + "{\"a\": 1}\n");
  CHECK(cli::read_json(ok).at("a").as_number() == 1);
  write_file(bad, "{\"a\": ");
  CHECK_ERROR(cli::read_json(bad), bad + ": ");
}

TEST_CASE("fit: a table too large to train is refused before the data is read, with the sizes and the limit") {
  const Json j = Json::parse(R"({"architecture": "single_task",
    "features": [{"name": "x", "kind": "dense", "column": 0},
                 {"name": "item", "kind": "categorical", "mapping": "hashing", "size": 2147483648,
                  "values": "integers", "embedding_dim": 64, "column": 1}],
    "tasks": [{"name": "t", "column": 2}]})");
  DataBinding b = DataBinding::from_json(j);
  Spec spec = DataBinding::spec_from_model_json(j);
  // The file does not exist: an error about it would mean that fit() went to read it first.
  const std::string message = error_of([&] { b.fit("/nonexistent/train.csv", spec); });
  INFO(message);
  CHECK(message.rfind("the model has 137438953536 parameters (feature 'item' alone: 2147483649 rows x 64): training "
                      "needs about 2048.0 GiB (16 bytes a parameter), more than the ", 0) == 0);
  CHECK(message.find(" GiB of physical memory; make the table smaller (size, max_size) or its embedding_dim lower") !=
        std::string::npos);
  CHECK_NOTHROW(check_training_memory(DataBinding::spec_from_model_json(Json::parse(kBasicModel))));
}

TEST_CASE("load: dense values beyond 1e6 after normalization get one warning per feature") {
  TempDir dir;
  const std::string p = dir.file("huge.csv");
  write_file(p, "1,5,1,1\n3e38,6,-2e7,0\n2,7,1e30,1\n-3e38,8,4,0\n");
  const char* model = R"({"architecture": "single_task",
    "features": [{"name": "price", "kind": "dense", "column": 0},
                 {"name": "calm", "kind": "dense", "column": 1, "normalization": "standardize"},
                 {"name": "tamed", "kind": "dense", "column": 2, "normalization": "log1p"}],
    "tasks": [{"name": "t", "column": 3}]})";
  Model m = fitted(model, p);
  const Dataset ds = load(p, m.binding, m.spec);
  REQUIRE(ds.rows == 4);
  REQUIRE(ds.report.warnings.size() == 1);
  CHECK(ds.report.warnings[0] ==
        p + ": feature 'price' (column 0): 2 of 4 values lie beyond +-1e6 after its normalization \"none\", the largest "
            "3e+38 (3e+38 normalized), first on line 2; a network trains badly on such inputs: give the feature "
            "\"normalization\": \"log1p\" or \"standardize\", or check the column");
  // A raw column beyond 1e6 that standardize brings back warns no more; a value beyond the float
  // range is a malformed row, as before.
  const std::string q = dir.file("scaled.csv");
  write_file(q, "1e7,1\n2e7,0\n3e7,1\n");
  const Dataset scaled = fit_and_load(R"({"architecture": "single_task",
    "features": [{"name": "ts", "kind": "dense", "column": 0, "normalization": "standardize"}],
    "tasks": [{"name": "t", "column": 1}]})", q);
  CHECK(scaled.report.warnings.empty());
  const std::string r = dir.file("beyond.csv");
  write_file(r, "1e39,1\n");
  CHECK_ERROR(fit_and_load(R"({"architecture": "single_task",
    "features": [{"name": "x", "kind": "dense", "column": 0}], "tasks": [{"name": "t", "column": 1}]})", r),
              "beyond.csv:1: column 0 (feature 'x'): '1e39' is not a finite number");
}
