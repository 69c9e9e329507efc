// FeatureIds (feature_ids.hpp) against the trainer's own loader (tools/data): a binding is fitted
// on a small CSV, stored in a model file as mtlite train stores it, and for every field of every
// categorical and multi-hot column the runtime's id must be the id load() gave that row, on the
// training file and on one full of values training never saw. Then the errors, lookups from many
// threads, and lookups that allocate nothing.
#include <doctest/doctest.h>

#include "data/csv.hpp"
#include "data/dataset.hpp"

#include <mtlite/mtlite.hpp>
#include <mtlite/offline/convert/convert.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

// Every operator new is counted (counting_new.hpp): the lookups below may not move the count.
#include "counting_new.hpp"

namespace {

using mtlite::FeatureIds;
using mtlite::FeatureKind;
using mtlite::Json;
using mtlite::Model;
using mtlite::Spec;
using namespace mtlite::data;

// A file under the system's temporary directory, removed afterwards.
struct TempFile {
  std::string path;
  TempFile(const std::string& name, const std::string& text)
      : path((std::filesystem::temp_directory_path() /
              ("mtlite-feature-ids-" + std::to_string(::getpid()) + "-" + name))
                 .string()) {
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

// Every kind of binding: strings through a vocabulary (with a feature's own missing token,
// min_count and max_size), hashed strings, integer ids by vocabulary and by hashing, a dense
// feature, and multi-hot fields of each kind, one with its own list separator.
const char* const kModelJson = R"({"architecture": "single_task",
  "data": {"header": true, "missing": ["?"]},
  "features": [
    {"name": "country", "kind": "categorical", "embedding_dim": 4, "missing": ["n/a"], "min_count": 2},
    {"name": "zip", "kind": "categorical", "embedding_dim": 4},
    {"name": "item", "kind": "categorical", "mapping": "hashing", "size": 64, "embedding_dim": 4},
    {"name": "code", "kind": "categorical", "values": "integers", "size": 10, "embedding_dim": 2},
    {"name": "bucket", "kind": "categorical", "values": "integers", "mapping": "hashing", "size": 16,
     "embedding_dim": 2},
    {"name": "price", "kind": "dense"},
    {"name": "tags", "kind": "multi_hot", "list_separator": ";", "max_size": 3, "embedding_dim": 4},
    {"name": "htags", "kind": "multi_hot", "mapping": "hashing", "size": 32, "embedding_dim": 4},
    {"name": "itags", "kind": "multi_hot", "values": "integers", "size": 5, "embedding_dim": 4}],
  "tasks": [{"name": "click", "positive": ["1"]}]})";

const char* const kHeader = "country,zip,item,code,bucket,price,tags,htags,itags,click\n";

// Spaces around values, empty fields, the shared and the feature's own missing tokens, a quoted
// field with the separator in it, "+4", ids outside the table, empty and missing list items.
const char* const kTrainRows =
    "FR,75001,sku-1,3,-5,1.5,a;b,x|y,1|2,1\n"
    " DE ,10115,sku-2,+4,100,2,b; c ;,y,0,0\n"
    "FR,75001, sku-1 ,7,,,?;b,,|3|,1\n"
    "?,n/a,?,?,?,?,?,?,?,0\n"
    "n/a,,,, 7 ,3,,x| |z,4,1\n"
    "IT,10115,sku-3,12,0,4,a;a;d,z,9,0\n"
    "DE,  ,sku-2,0,-1,5,c,x,1| 2 ,1\n"
    "ES,75001,\"sku, 4\",2,3,6,\"a; b\",y|x,2,0\n";

// Values training never saw, and more of the edge cases.
const char* const kUnseenRows =
    "GB,99999,sku-9,5,8,1,zz;a,q,3,1\n"
    " FR ,75001,  ,-3,?,2, ; ,|,,0\n"
    "\"DE\",n/a,\"sku, 4\",+0,-0,3,d;zz;c,z|q|z,0|0,1\n";

struct Fitted {
  DataBinding binding;
  Spec spec;
};

Fitted fit(const std::string& train) {
  const Json j = Json::parse(kModelJson);
  Fitted f{DataBinding::from_json(j), DataBinding::spec_from_model_json(j)};
  f.binding.fit(train, f.spec);
  return f;
}

// A model file's bytes as mtlite train writes them: the spec, weights and the binding as "data".
std::vector<std::byte> model_image(const Fitted& f) {
  const mtlite::Converted c = mtlite::convert(f.spec, mtlite::random_weights(f.spec, 1), {});
  return mtlite::model_writer(c.spec, c.tensors, Json::object().set("data", f.binding.to_json())).bytes();
}

// Checks, row by row, that FeatureIds maps each raw field of `path` to the id load() gave it.
void check_against_loader(const std::string& path, const Fitted& f, const FeatureIds& ids) {
  const Dataset ds = load(path, f.binding, f.spec);
  CsvReader csv(path, f.binding.csv_options());
  std::size_t row = 0;
  while (csv.next()) {
    std::size_t categorical = 0, bag = 0;
    for (std::size_t i = 0; i < f.spec.features.size(); ++i) {
      const mtlite::Feature& feature = f.spec.features[i];
      if (feature.kind == FeatureKind::dense) continue;
      const std::string_view field = csv[static_cast<std::size_t>(csv.column(feature.name))];
      INFO("row " << row << ", feature '" << feature.name << "', field '" << std::string(field) << "'");
      if (feature.kind == FeatureKind::categorical) {
        const std::int64_t want = ds.ids[row * ds.num_categorical + categorical++];
        CHECK(ids.id(i, field) == want);
        CHECK(ids.id(feature.name, field) == want);
      } else {
        const Dataset::Bags& b = ds.bags[bag++];
        const std::vector<std::int64_t> want(b.ids.begin() + b.offsets[row], b.ids.begin() + b.offsets[row + 1]);
        std::vector<std::int64_t> got;
        CHECK(ids.append_ids(i, field, got) == want.size());
        CHECK(got == want);
      }
    }
    ++row;
  }
  CHECK(row == ds.rows);
}

std::int64_t hashed(const char* s) { return static_cast<std::int64_t>(mtlite::hash_string(s)); }

}  // namespace

TEST_CASE("feature ids: every raw value maps to the id the trainer's loader gave it") {
  const TempFile train("train.csv", std::string(kHeader) + kTrainRows);
  const TempFile unseen("unseen.csv", std::string(kHeader) + kUnseenRows);
  const Fitted f = fit(train.path);
  const std::vector<std::byte> image = model_image(f);
  const Model model = Model::from_memory(image.data(), image.size());
  const FeatureIds ids(model);

  check_against_loader(train.path, f, ids);
  check_against_loader(unseen.path, f, ids);

  // The same rules, spelled out. FR and DE are seen twice, IT and ES once (under min_count).
  CHECK(*f.binding.features[0].vocabulary == std::vector<std::string>{"FR", "DE"});
  CHECK(ids.id("country", "FR") == 0);
  CHECK(ids.id("country", " DE\t") == 1);
  CHECK(ids.id("country", "IT") == FeatureIds::kMissing);
  CHECK(ids.id("country", "") == -1);
  CHECK(ids.id("country", "?") == -1);    // data.missing
  CHECK(ids.id("country", "n/a") == -1);  // the feature's own missing token...
  CHECK(ids.id("zip", "n/a") != -1);      // ...is an ordinary value of another feature
  CHECK(ids.id("item", " sku-1 ") == hashed("sku-1"));
  CHECK(ids.id("item", "sku, 4") == hashed("sku, 4"));
  CHECK(ids.id("item", "never seen") == hashed("never seen"));
  CHECK(ids.id("item", "?") == -1);  // missing, not hashed
  CHECK(ids.id("code", "+4") == 4);
  CHECK(ids.id("code", "12") == 12);  // outside the table: predict reads the OOV row
  CHECK(ids.id("bucket", "-5") == -5);
  std::vector<std::int64_t> bag;
  ids.append_ids(ids.feature_index("htags"), "x| |z|?", bag);
  CHECK(bag == std::vector<std::int64_t>{hashed("x"), hashed("z")});
  bag.clear();
  CHECK(ids.append_ids(ids.feature_index("tags"), "?", bag) == 0);

  // An integer is looked up as its decimal text, whatever the feature holds.
  for (const char* name : {"country", "zip", "item", "code", "bucket"})
    for (const std::int64_t v : {-5LL, 0LL, 3LL, 4LL, 12LL, 75001LL, 10115LL, 99999LL}) {
      INFO(name << " " << v);
      CHECK(ids.id(name, v) == ids.id(name, std::to_string(v)));
    }
  CHECK(ids.id("zip", 75001) == ids.id("zip", "75001"));
  CHECK(ids.id("zip", 75001) >= 0);
  CHECK(ids.id("code", 7) == 7);
}

TEST_CASE("feature ids: wrong features, malformed integers and models without a binding are errors") {
  const TempFile train("errors.csv", std::string(kHeader) + kTrainRows);
  const Fitted f = fit(train.path);
  const Json metadata = Json::object().set("data", f.binding.to_json());
  const FeatureIds ids(f.spec, metadata);

  CHECK_THROWS_WITH_AS(ids.feature_index("colour"),
                       doctest::Contains("no feature 'colour' in the model (its categorical and multi-hot "
                                         "features: country, zip, item, code, bucket, tags, htags, itags)"),
                       mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.id("colour", "red"), doctest::Contains("no feature 'colour'"), mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.id("price", "1.5"), "feature 'price' is dense: it takes a float, not an id",
                       mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.id(std::size_t{5}, 3), doctest::Contains("is dense"), mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.id(std::size_t{9}, "x"), "feature index 9 out of range: the model has 9 features",
                       mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.id("code", "3.5"), doctest::Contains("feature 'code' holds integer ids, and '3.5' is not one"),
                       mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.id("code", "++3"), doctest::Contains("'++3' is not one"), mtlite::Error);
  std::vector<std::int64_t> bag;
  CHECK_THROWS_WITH_AS(ids.append_ids(ids.feature_index("itags"), "1|x", bag), doctest::Contains("'x' is not one"),
                       mtlite::Error);
  CHECK_THROWS_WITH_AS(ids.for_each_id(ids.feature_index("country"), "FR", [](std::int64_t) {}),
                       doctest::Contains("feature 'country' is categorical"), mtlite::Error);

  // A model built in code, or trained elsewhere, has no "data" binding.
  const Model plain(f.spec, mtlite::random_weights(f.spec, 1));
  CHECK_THROWS_WITH_AS(FeatureIds{plain}, doctest::Contains("model carries no vocabularies"), mtlite::Error);
  CHECK_THROWS_WITH_AS(FeatureIds(f.spec, Json::object()),
                       doctest::Contains("trained outside mtlite train), so the ids of its categorical features "
                                         "must be supplied by the caller"),
                       mtlite::Error);

  // A binding that disagrees with the spec.
  Json shrunk = metadata;
  Json& country = (*shrunk.find("data")->find("features"))[0];
  country.set("vocabulary", Json::array({"FR"}));
  CHECK_THROWS_WITH_AS(FeatureIds(f.spec, shrunk),
                       "model metadata: data.features[0] ('country').vocabulary: 1 values, but the spec's size is 2",
                       mtlite::Error);
  country.set("vocabulary", Json::array({"FR", " FR "}));
  CHECK_THROWS_WITH_AS(FeatureIds(f.spec, shrunk), doctest::Contains("vocabulary: duplicate value 'FR'"), mtlite::Error);
  country.set("kind", "multi_hot");
  CHECK_THROWS_WITH_AS(FeatureIds(f.spec, shrunk), doctest::Contains("('country').kind: not the spec's (categorical)"),
                       mtlite::Error);
  Spec renamed = f.spec;
  renamed.features[0].name = "nation";
  CHECK_THROWS_WITH_AS(FeatureIds(renamed, metadata), doctest::Contains("('country'): the model's spec has no such feature"),
                       mtlite::Error);
}

TEST_CASE("feature ids: many threads look up at once; lookups allocate nothing") {
  const TempFile train("threads.csv", std::string(kHeader) + kTrainRows);
  const Fitted f = fit(train.path);
  const FeatureIds ids(f.spec, Json::object().set("data", f.binding.to_json()));
  const std::size_t country = ids.feature_index("country"), item = ids.feature_index("item"),
                    code = ids.feature_index("code"), tags = ids.feature_index("tags");
  // Longer than any short-string buffer, so that a copy would have to allocate.
  const std::string long_value(100, 'x');
  const std::vector<std::string_view> values = {"FR", " DE ", "IT", "", "?", "n/a", long_value, "b; c ;"};

  // Sums of every kind of lookup, so that nothing can be optimised away.
  auto run = [&] {
    // Unsigned: hashed ids are spread over all 64 bits, and their sum wraps.
    std::uint64_t sum = 0;
    auto add = [&](std::int64_t x) { sum += static_cast<std::uint64_t>(x); };
    for (int round = 0; round < 200; ++round)
      for (const std::string_view v : values) {
        add(ids.id(country, v));
        add(ids.id(item, v));
        add(ids.id("zip", v));
        add(ids.id(code, std::int64_t{round}));
        ids.for_each_id(tags, v, add);
      }
    return sum;
  };
  const std::uint64_t alone = run();

  const std::size_t before = allocations();
  const std::uint64_t again = run();
  const std::size_t after = allocations();
  CHECK(after == before);
  CHECK(again == alone);
  // The counter does see the containers' allocations: a copy of the value moves it.
  const std::vector<std::string> copies(1, long_value);
  CHECK(allocations() >= after + 2);
  CHECK(ids.id(item, copies[0]) == ids.id(item, long_value));

  std::vector<std::uint64_t> sums(4);
  std::vector<std::thread> threads;
  for (std::uint64_t& s : sums) threads.emplace_back([&] { s = run(); });
  for (std::thread& t : threads) t.join();
  for (const std::uint64_t s : sums) CHECK(s == alone);
}
