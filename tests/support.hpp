// What several suites build their cases from: rows of examples and the Batch that reads them,
// a seeded generator for test data, activations computed in double (the plain definition the
// kernels and the trainer are checked against), a scratch directory and an error catcher.
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/core/random.hpp>
#include <mtlite/format/json.hpp>
#include <mtlite/input.hpp>
#include <mtlite/spec.hpp>

#include <stdlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace mtlite_test {

struct Example {
  std::vector<float> dense;                     // one per dense feature, in spec order
  std::vector<std::int64_t> ids;                // one per categorical feature
  std::vector<std::vector<std::int64_t>> bags;  // one per multi-hot feature
};

// Rows [begin, begin + count) of `examples` in the layout predict and Trainer::step read.
class BatchData {
 public:
  explicit BatchData(const std::vector<Example>& examples) : BatchData(examples, 0, examples.size()) {}
  BatchData(const std::vector<Example>& examples, std::size_t begin, std::size_t count) : rows_(count) {
    const std::size_t n_bags = examples.empty() ? 0 : examples[0].bags.size();
    bag_ids_.resize(n_bags);
    offsets_.assign(n_bags, std::vector<std::uint32_t>{0});
    for (std::size_t r = begin; r < begin + count; ++r) {
      const Example& e = examples[r];
      dense_.insert(dense_.end(), e.dense.begin(), e.dense.end());
      ids_.insert(ids_.end(), e.ids.begin(), e.ids.end());
      for (std::size_t b = 0; b < n_bags; ++b) {
        bag_ids_[b].insert(bag_ids_[b].end(), e.bags[b].begin(), e.bags[b].end());
        offsets_[b].push_back(static_cast<std::uint32_t>(bag_ids_[b].size()));
      }
    }
    for (std::size_t b = 0; b < n_bags; ++b)
      bags_.push_back({bag_ids_[b], offsets_[b]});
  }
  BatchData(const BatchData&) = delete;
  BatchData& operator=(const BatchData&) = delete;

  mtlite::Batch batch() const { return {rows_, dense_, ids_, bags_}; }

 private:
  std::size_t rows_;
  std::vector<float> dense_;
  std::vector<std::int64_t> ids_;
  std::vector<std::vector<std::int64_t>> bag_ids_;
  std::vector<std::vector<std::uint32_t>> offsets_;
  std::vector<mtlite::Bag> bags_;
};

class Random {
 public:
  explicit Random(std::uint64_t seed) : g_(seed) {}
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(g_() >> 11) * (1.0 / 9007199254740992.0);
  }
  std::uint64_t below(std::uint64_t n) { return g_() % n; }
  std::uint64_t bits() { return g_(); }
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(g_); }

 private:
  std::mt19937_64 g_;
};

inline double act_exact(mtlite::Activation a, double v) {
  switch (a) {
    case mtlite::Activation::identity: return v;
    case mtlite::Activation::relu: return v > 0.0 ? v : 0.0;
    case mtlite::Activation::sigmoid: return 1.0 / (1.0 + std::exp(-v));
    case mtlite::Activation::tanh: return std::tanh(v);
  }
  return v;
}

inline std::vector<float> random_vector(mtlite::Rng& rng, std::size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float& f : v) f = rng.uniform(lo, hi);
  return v;
}

// The parity drivers' file and id reading (the Python side writes ids as decimal strings:
// JSON numbers cannot hold every int64).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw mtlite::Error("cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::int64_t parse_id(const mtlite::Json& v) {
  const std::string& s = v.as_string();
  std::int64_t id = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), id);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) throw mtlite::Error("bad id '" + s + "'");
  return id;
}

// A parity driver's main(): run(argc, argv), or its exception's message on stderr and status 1.
inline int driver_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

// A directory of its own under $TMPDIR (or /tmp), removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mtlite-test-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + tmpl);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The names in it, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

// The message of the mtlite::Error that f() throws, or "(no error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mtlite::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace mtlite_test
