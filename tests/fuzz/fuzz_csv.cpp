// libFuzzer entry point for the tools' data layer (tools/data): the bytes are a data file, plain
// or gzip, read through a fixed model.json binding the way `mtlite train` reads its training
// file: DataBinding::fit (vocabularies, stats and fill values) then load() into columns, then a
// batch of the loaded rows run through the spec's checks. Every failure must be an mtlite::Error
// (CsvError for a malformed row).
//
// The first byte picks the binding, so that one corpus reaches both readers' configurations:
//   bit 0: 0 = "," with a header row and named columns, RFC 4180 quotes;
//          1 = tab-separated, no header, columns by index, quotes off, "?" missing
//   bit 1: skip_bad_rows (malformed rows counted and skipped instead of stopping the read)
// The rest is the file. The reader opens paths only (it mmaps nothing, but reads with open(2)),
// so the file is a memfd rewritten per input and opened as /proc/self/fd/N: no disk I/O.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "mtlite/core/error.hpp"
#include "mtlite/format/json.hpp"

namespace {

// Every kind of binding fit() and the row parser handle: dense with computed and given stats and
// fill, categorical strings with a built vocabulary (capped), integer ids, hashed strings,
// multi-hot strings and hashed integers, binary tasks by token and by threshold, a regression
// task, a weight column and a group column.
constexpr const char* kModelJson[2] = {
    R"({"architecture": "shared_bottom",
  "data": {"separator": ",", "header": true, "weight": "w", "group": "user"},
  "features": [
    {"name": "price", "kind": "dense", "normalization": "standardize"},
    {"name": "rating", "kind": "dense", "normalization": "log1p", "fill": 0.5, "missing": ["NA"]},
    {"name": "device", "kind": "categorical", "embedding_dim": 2, "max_size": 4, "min_count": 1},
    {"name": "hour", "kind": "categorical", "values": "integers", "size": 24, "embedding_dim": 2},
    {"name": "city", "kind": "categorical", "mapping": "hashing", "size": 16, "embedding_dim": 2},
    {"name": "tags", "kind": "multi_hot", "embedding_dim": 2, "pooling": "mean", "min_count": 2},
    {"name": "seen", "kind": "multi_hot", "values": "integers", "mapping": "hashing", "size": 32,
     "embedding_dim": 2, "list_separator": ";"}
  ],
  "tasks": [
    {"name": "click", "kind": "binary", "positive": ["1", "yes"], "tower": [2]},
    {"name": "buy", "kind": "binary", "threshold": 0.5, "tower": [2], "missing": ["-"]},
    {"name": "value", "kind": "regression", "tower": [2]}
  ],
  "bottom": [4]})",
    R"({"architecture": "mmoe",
  "data": {"separator": "\t", "header": false, "quotes": false, "missing": ["?"], "weight": 7, "group": 8},
  "features": [
    {"name": "age", "kind": "dense", "column": 0, "normalization": "standardize", "mean": 40, "stddev": 12},
    {"name": "gain", "kind": "dense", "column": 1, "normalization": "none"},
    {"name": "sex", "kind": "categorical", "column": 2, "embedding_dim": 2, "vocabulary": ["m", "f"]},
    {"name": "code", "kind": "categorical", "column": 3, "values": "integers", "size": 10, "embedding_dim": 2},
    {"name": "tags", "kind": "multi_hot", "column": 4, "mapping": "hashing", "size": 8, "embedding_dim": 2}
  ],
  "tasks": [
    {"name": "income", "kind": "binary", "column": 5, "positive": ["50000+."], "tower": [2]},
    {"name": "hours", "kind": "regression", "column": 6, "tower": [2]}
  ],
  "experts": 2, "expert": [4]})"};

struct Binding {
  mtlite::Json json;
  explicit Binding(const char* text) : json(mtlite::Json::parse(text)) {}
};

// The memfd that holds the current input, and the path that opens it.
struct MemFile {
  int fd = -1;
  std::string path;
  MemFile() {
    fd = memfd_create("fuzz_csv", MFD_CLOEXEC);
    if (fd < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  void write_all(const std::uint8_t* data, std::size_t size) {
    if (ftruncate(fd, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Parsed once: they are constants, and a failure here is this target's bug, not the input's.
  static const Binding bindings[2] = {Binding(kModelJson[0]), Binding(kModelJson[1])};
  static MemFile file;
  if (size == 0) return 0;
  const Binding& b = bindings[data[0] & 1];
  mtlite::data::ReadOptions read;
  read.skip_bad_rows = (data[0] & 2) != 0;
  file.write_all(data + 1, size - 1);
  try {
    mtlite::Spec spec = mtlite::data::DataBinding::spec_from_model_json(b.json);
    mtlite::data::DataBinding binding = mtlite::data::DataBinding::from_json(b.json);
    const mtlite::data::ReadReport fitted = binding.fit(file.path, spec, read);
    (void)fitted;
    binding.check(spec);
    const mtlite::data::Dataset ds = mtlite::data::load(file.path, binding, spec, read);
    if (ds.rows != ds.weights.size() || ds.rows != ds.groups.size() ||
        ds.labels.size() != ds.rows * ds.num_tasks || ds.dense.size() != ds.rows * ds.num_dense ||
        ds.ids.size() != ds.rows * ds.num_categorical)
      __builtin_trap();
    std::vector<mtlite::Bag> bag_storage;
    const mtlite::Batch batch = ds.batch(0, ds.rows, bag_storage);
    for (const mtlite::Bag& bag : batch.bags)
      if (bag.offsets.size() != ds.rows + 1 || (ds.rows && bag.offsets[ds.rows] > bag.ids.size())) __builtin_trap();
    // The stored binding (vocabularies and fills included) must read back as it was written.
    const std::string stored = binding.to_json().dump();
    if (mtlite::data::DataBinding::from_json(mtlite::Json::parse(stored)).to_json().dump() != stored)
      __builtin_trap();
  } catch (const mtlite::Error&) {
  }
  return 0;
}
