// model.json's data bindings and the columnar data they produce: what train, eval, predict and
// convert --calib read.
//
//   const Json j = Json::parse(text_of("model.json"));
//   DataBinding data = DataBinding::from_json(j);
//   Spec spec = DataBinding::spec_from_model_json(j);   // vocabulary sizes are placeholders...
//   ReadReport fitted = data.fit("train.csv.gz", spec);  // ...until fit() reads the training file
//   Dataset train = load("train.csv.gz", data, spec);    // train.batch(b, e) feeds predict
//   metadata.set("data", data.to_json());                // stored with the model; later
//   Dataset test = load("test.csv.gz", DataBinding::from_json(metadata.at("data")), stored_spec);
//
// binding.hpp says what model.json may bind and how fields are read.
#pragma once

#include "binding.hpp"

#include <mtlite/core/span.hpp>
#include <mtlite/input.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mtlite::data {

// Rows of a file in columns, features in spec order; nothing normalised (the runtime does that).
class Dataset {
 public:
  struct Bags {  // one multi-hot feature: row r's ids are ids[offsets[r] .. offsets[r+1])
    std::vector<std::int64_t> ids;
    std::vector<std::uint32_t> offsets;  // rows + 1, absolute, offsets[0] == 0
  };

  std::size_t rows = 0;
  std::size_t num_dense = 0;
  std::size_t num_categorical = 0;
  std::size_t num_tasks = 0;
  std::vector<float> dense;         // rows x num_dense
  std::vector<std::int64_t> ids;    // rows x num_categorical
  std::vector<Bags> bags;           // one per multi-hot feature
  std::vector<float> labels;        // rows x num_tasks (0 where masked)
  std::vector<std::uint8_t> mask;   // rows x num_tasks: 1 = labelled
  std::vector<float> weights;       // rows (1 without a weight column)
  std::vector<std::int64_t> groups; // rows (0 without a group column)
  ReadReport report;                // rows read, malformed rows skipped

  // Rows [begin, end) as predict input. The Bag array it points at lives in thread-local storage
  // of this function: valid until the next call of batch() on the same thread. The overload with
  // `bags` puts it there instead (resized to bags.size()).
  Batch batch(std::size_t begin, std::size_t end) const;
  Batch batch(std::size_t begin, std::size_t end, std::vector<Bag>& bag_storage) const;

  span<const float> labels_of(std::size_t begin, std::size_t end) const;      // (end-begin) x tasks
  span<const std::uint8_t> mask_of(std::size_t begin, std::size_t end) const; // (end-begin) x tasks
  span<const float> weights_of(std::size_t begin, std::size_t end) const;
  span<const std::int64_t> groups_of(std::size_t begin, std::size_t end) const;

  // A new dataset of the given rows, in that order (a shuffle, a split); indices may repeat.
  Dataset select(span<const std::size_t> row_indices) const;

 private:
  void check_range(std::size_t begin, std::size_t end) const;
};

// A dense input the network sees (after its normalization) beyond this magnitude is suspicious:
// inputs of O(1) are what the initialisation and the learning rates assume, and 3e38 in a
// column without normalization trains to losses of 1e35 without failing. The hard bound is
// the float range: a field beyond +-3.4e38 is malformed (fields.hpp's parse_number).
inline constexpr double kSuspiciousInput = 1e6;

// Reads a file with a fitted binding. Throws mtlite::Error on a malformed row unless skipping.
// Dense features with values beyond kSuspiciousInput after normalization get one warning each
// (feature, column, count, the largest value, its first line), in report.warnings and on stderr.
Dataset load(const std::string& path, const DataBinding& binding, const Spec& spec,
             const ReadOptions& options = {});

}  // namespace mtlite::data
