// Hostile model files that pass the format's checks (valid header, table and checksum) but lie
// about what they hold: tensors that disagree with the file's own spec, a spec far larger than
// the file, a self-test whose tolerance admits anything. Every reader of tensors must refuse
// them with an Error, the same Error wherever the same check applies, at a cost bounded by the
// file's size.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "mtlite/mtlite.hpp"
#include "mtlite/offline/convert/convert.hpp"
#include "mtlite/offline/random_inputs.hpp"
#include "mtlite/offline/train/train.hpp"
#include "peak_rss.hpp"
#include "support.hpp"

namespace {

using mtlite::DType;
using mtlite::Json;
using mtlite::Layout;

using mtlite_test::error_of;
using mtlite_test::TempDir;

// A tensor as a test writes it: any dtype, layout and shape, with bytes to match.
struct Raw {
  std::string name;
  DType dtype;
  Layout layout;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> bytes;
};

Raw f32_tensor(const std::string& name, Layout layout, std::vector<std::uint64_t> shape) {
  Raw r{name, DType::f32, layout, shape, {}};
  r.bytes.resize(*mtlite::tensor_bytes(DType::f32, layout, shape));
  for (std::size_t i = 0; i + 4 <= r.bytes.size(); i += 4) {
    const float v = 0.01f * static_cast<float>(i % 97);
    std::memcpy(r.bytes.data() + i, &v, 4);
  }
  return r;
}

// The file's tensors as a reader sees them, and the image they point into.
struct Image {
  mtlite::AlignedBuffer<std::byte> bytes;
  mtlite::format::FileView view;
  mtlite::TensorMap tensors() const {
    mtlite::TensorMap m;
    for (const mtlite::format::TensorView& t : view.tensors()) m[t.name] = {t.dtype, t.layout, t.shape, t.data, t.bytes};
    return m;
  }
  mtlite::Spec spec() const { return mtlite::spec_from_json(view.metadata().at("spec")); }
};

Image write_and_read(const std::string& path, const Json& meta, const std::vector<Raw>& tensors) {
  mtlite::format::FileWriter w;
  w.set_metadata(meta);
  for (const Raw& t : tensors) w.add(t.name, t.dtype, t.layout, t.shape, t.bytes.data(), t.bytes.size());
  w.write(path);
  mtlite::format::FileBuffer b = mtlite::format::read_file(path);
  Image img{std::move(b), {}};
  img.view = mtlite::format::FileView::parse(img.bytes.data(), img.bytes.size());  // checksum verified
  return img;
}


mtlite::Task binary_task(const std::string& name) {
  mtlite::Task t;
  t.name = name;
  return t;
}

mtlite::Mlp layers(std::size_t n, std::uint32_t units) { return mtlite::Mlp(n, mtlite::Layer{units, mtlite::Activation::relu}); }

// One embedding table of 100,001 rows x 4, 9 dense features: a [16, 13] layer, then the head.
mtlite::Spec small_spec() {
  mtlite::Spec s;
  s.architecture = mtlite::Architecture::single_task;
  s.features.push_back(mtlite::Feature::categorical("item", 100000, 4));
  for (int i = 0; i < 9; ++i) s.features.push_back(mtlite::Feature::dense("d" + std::to_string(i)));
  s.tasks.push_back(binary_task("click"));
  s.tasks[0].tower = mtlite::mlp({16});
  s.validate();
  return s;
}

std::vector<Raw> good_tensors() {
  return {f32_tensor("embedding.item", Layout::plain, {100001, 4}), f32_tensor("tower0.0.weight", Layout::panels16, {16, 13}),
          f32_tensor("tower0.0.bias", Layout::plain, {16}), f32_tensor("tower0.1.weight", Layout::plain, {1, 16}),
          f32_tensor("tower0.1.bias", Layout::plain, {1})};
}

// The peak resident memory a forked child adds while running f, in KiB (tests/peak_rss.hpp):
// what a reader allocates, whatever the parent had.
long peak_rss_added_kib(const std::function<void()>& f) {
  const mtlite_test::ChildRun run = mtlite_test::run_in_child(f);
  REQUIRE(run.exited);
  return run.peak_kib;
}

// A stated bound in KiB, with what a forked child costs on top (more under ASan).
long with_slack(long bound_kib) { return bound_kib + mtlite_test::rss_slack_kib(bound_kib); }

}  // namespace

TEST_SUITE_BEGIN("hostile");

TEST_CASE("float_weights: tensors that disagree with the file's spec are refused, as Model::load refuses them") {
  const mtlite::Spec spec = small_spec();
  const Json meta = Json::object().set("format", "mtlite").set("spec", mtlite::spec_to_json(spec));
  TempDir dir;
  {
    const Image good = write_and_read(dir.path + "/good.mtl", meta, good_tensors());
    const mtlite::Weights w = mtlite::float_weights(good.spec(), good.tensors());
    CHECK(w.at("tower0.0.weight").data.size() == 16 * 13);
  }
  struct Case {
    const char* what;
    Raw tensor;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"a panels16 table of [16, 1] for [100001, 4]", f32_tensor("embedding.item", Layout::panels16, {16, 1}),
       "tensor 'embedding.item': shape [16, 1], the spec needs [100001, 4]"},
      {"a panels16 weight of [16, 1] for [16, 13]", f32_tensor("tower0.0.weight", Layout::panels16, {16, 1}),
       "tensor 'tower0.0.weight': shape [16, 1], the spec needs [16, 13]"},
      {"a transposed plain weight", f32_tensor("tower0.0.weight", Layout::plain, {13, 16}),
       "tensor 'tower0.0.weight': shape [13, 16], the spec needs [16, 13]"},
      {"a rank-1 weight", f32_tensor("tower0.0.weight", Layout::plain, {208}),
       "tensor 'tower0.0.weight': shape [208], the spec needs [16, 13]"},
      {"an oversized plain weight", f32_tensor("tower0.0.weight", Layout::plain, {16, 14}),
       "tensor 'tower0.0.weight': shape [16, 14], the spec needs [16, 13]"},
      {"a panels16 bias", f32_tensor("tower0.0.bias", Layout::panels16, {16, 1}),
       "tensor 'tower0.0.bias': shape [16, 1], the spec needs [16]"},
      {"a table too small", f32_tensor("embedding.item", Layout::plain, {1000, 4}),
       "tensor 'embedding.item': shape [1000, 4], the spec needs [100001, 4]"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    std::vector<Raw> tensors = good_tensors();
    for (Raw& t : tensors)
      if (t.name == c.tensor.name) t = c.tensor;
    const std::string path = dir.path + "/bad.mtl";
    const Image bad = write_and_read(path, meta, tensors);
    const std::string converting = error_of([&] { mtlite::float_weights(bad.spec(), bad.tensors()); });
    CHECK(converting == c.says);
    // One check for every reader: the loader says the same, after naming the file.
    CHECK(error_of([&] { mtlite::Model::load(path); }) == "model file (" + path + "): " + c.says);
  }
}

TEST_CASE("read_checkpoint: a checkpoint whose tensors disagree with its spec is refused (train --resume)") {
  namespace tr = mtlite::train;
  const mtlite::Spec spec = small_spec();
  TempDir dir;
  tr::Checkpoint c;
  c.spec = spec;
  c.best = mtlite::random_weights(spec, 3);
  c.state["train.step"] = mtlite::Tensor{{2}, {0.0f, 0.0f}};
  c.progress.history = Json::array();
  const std::string path = dir.path + "/ckpt.mtl";
  tr::write_checkpoint(path, c);
  CHECK(tr::read_checkpoint(path).best.at("tower0.0.weight").data == c.best.at("tower0.0.weight").data);

  // The same file with one stored tensor replaced by a smaller one of the same name.
  mtlite::format::FileBuffer b = mtlite::format::read_file(path);
  const mtlite::format::FileView view = mtlite::format::FileView::parse(b.data(), b.size());
  for (const char* victim : {"tower0.0.weight", "embedding.item"}) {
    CAPTURE(victim);
    mtlite::format::FileWriter w;
    w.set_metadata(view.metadata());
    for (const mtlite::format::TensorView& t : view.tensors()) {
      if (t.name == victim) {
        const Raw small = f32_tensor(t.name, Layout::panels16, {16, 1});
        w.add(small.name, small.dtype, small.layout, small.shape, small.bytes.data(), small.bytes.size());
      } else {
        w.add(t.name, t.dtype, t.layout, t.shape, t.data, t.bytes);
      }
    }
    const std::string bad = dir.path + "/bad.mtl";
    w.write(bad);
    const std::string e = error_of([&] { tr::read_checkpoint(bad); });
    CHECK(e.find(std::string("tensor '") + victim + "': shape [16, 1], the spec needs") != std::string::npos);
  }
}

TEST_CASE("a few KB that declare a huge PLE cost no more than the file: refused before expanding") {
  // 64 levels of 1024 experts of 64 layers: 8,388,608 layers, every count within the limits.
  mtlite::Spec spec;
  spec.architecture = mtlite::Architecture::ple;
  spec.features.push_back(mtlite::Feature::dense("x"));
  spec.tasks.push_back(binary_task("click"));
  mtlite::PleLevel level;
  level.task_experts = 512;
  level.shared_experts = 512;
  level.expert = layers(64, 1);
  spec.levels.assign(64, level);
  spec.validate();
  const std::uint64_t need = mtlite::parameter_tensor_count(spec);
  // Every expert's 64 layers, 64 task gates, 63 shared gates (none on the last level), the head.
  CHECK(need == 2 * (64ull * 1024 * 64 + 64 + 63 + 1));

  TempDir dir;
  const std::string path = dir.path + "/ple.mtl";
  const Image img = write_and_read(path, Json::object().set("format", "mtlite").set("spec", mtlite::spec_to_json(spec)), {});
  CHECK(img.bytes.size() < 16384);
  const std::string says = "the spec needs " + std::to_string(need) + " tensors, only 0 are given";
  CHECK(error_of([&] { mtlite::Model::load(path); }) == "model file (" + path + "): " + says);
  CHECK(error_of([&] { mtlite::float_weights(img.spec(), img.tensors()); }) == says);
  // Before this check, the binder enumerated every parameter first: about 2 GB.
  const long added = peak_rss_added_kib([&] { mtlite::Model::load(path); });  // the child catches the Error
  MESSAGE("peak RSS added by loading the 64 x 1024 x 64 PLE file: " << added << " KiB");
  CHECK(added < with_slack(32 * 1024));

  // The largest spec that is expanded to name what is missing: about 65,536 tensors.
  spec.levels.assign(1, level);
  spec.levels[0].task_experts = spec.levels[0].shared_experts = 511;
  spec.levels[0].expert = layers(32, 1);
  spec.validate();
  REQUIRE(mtlite::parameter_tensor_count(spec) <= mtlite::format::kMaxTensors);
  const std::string path2 = dir.path + "/ple2.mtl";
  write_and_read(path2, Json::object().set("format", "mtlite").set("spec", mtlite::spec_to_json(spec)), {});
  CHECK(error_of([&] { mtlite::Model::load(path2); }) ==
        "model file (" + path2 + "): missing tensor 'ple0.task0.expert0.0.weight'");
  const long expanded = peak_rss_added_kib([&] { mtlite::Model::load(path2); });  // the child catches the Error
  MESSAGE("peak RSS added by expanding a spec of " << mtlite::parameter_tensor_count(spec) << " tensors: " << expanded
                                                   << " KiB");
  CHECK(expanded < with_slack(32 * 1024));
}

TEST_CASE("parameter_tensor_count: the number of tensors parameters() lists, for every architecture") {
  using mtlite::Architecture;
  std::size_t checked = 0;
  for (const Architecture a : {Architecture::single_task, Architecture::shared_bottom, Architecture::omoe,
                               Architecture::mmoe, Architecture::ple, Architecture::esmm})
    for (std::size_t tasks = 1; tasks <= 3; ++tasks)
      for (unsigned served = 1; served < (1u << tasks); ++served)
        for (unsigned shape = 0; shape < 27; ++shape) {
          mtlite::Spec s;
          s.architecture = a;
          s.features = {mtlite::Feature::dense("d"), mtlite::Feature::categorical("c", 5, 2)};
          for (std::size_t k = 0; k < tasks; ++k) {
            s.tasks.push_back(binary_task("t" + std::to_string(k)));
            s.tasks[k].served = (served >> k) & 1;
            s.tasks[k].tower = layers(shape % 3, 3);
          }
          s.bottom = mtlite::mlp({4});
          s.num_experts = 2;
          s.expert = mtlite::mlp({4, 3});
          for (unsigned l = 0; l <= shape / 9; ++l) {
            mtlite::PleLevel lv;
            lv.task_experts = (shape / 3 + l) % 3;
            lv.shared_experts = (shape + l) % 3;
            lv.expert = layers(1 + l % 2, 4);
            s.levels.push_back(lv);
          }
          if (a == Architecture::esmm) s.esmm = mtlite::Esmm{"t0", tasks > 1 ? "t1" : "t0", "ctcvr"};
          try {
            s.validate();
          } catch (const mtlite::Error&) {
            continue;
          }
          CAPTURE(mtlite::spec_to_json(s).dump());
          CHECK(mtlite::parameter_tensor_count(s) == mtlite::parameters(s).size());
          ++checked;
        }
  MESSAGE(checked << " specs checked");
  CHECK(checked > 300);
}

TEST_CASE("verify: a self-test's tolerance is bounded by what the model's layers can differ by") {
  const mtlite::Spec spec = small_spec();
  TempDir dir;
  for (const auto dense : {mtlite::kernels::WeightType::f32, mtlite::kernels::WeightType::f16,
                           mtlite::kernels::WeightType::i8}) {
    CAPTURE(static_cast<int>(dense));
    mtlite::ConvertOptions options;
    options.dense = dense;
    options.float_heads = false;
    const mtlite::Converted c = mtlite::convert(spec, mtlite::random_weights(spec, 9, 0.1f), options);
    const mtlite::Model model = c.model();
    const float bound = mtlite::selftest_tolerance(mtlite::coarsest_weight_type(model.plan()));
    CHECK(bound == mtlite::selftest_tolerance(dense));
    const mtlite::RandomInputs random(model.spec(), 4, 1);
    mtlite::Session session(model, 4);
    const Json honest = mtlite::record_selftest(session, random.batch(), bound);
    auto verify = [&](const Json& test) {
      const std::string path = dir.path + "/m.mtl";
      mtlite::model_writer(c.spec, c.tensors, Json::object().set("selftest", test)).write(path);
      return error_of([&] { mtlite::Model::load(path).verify(); });
    };
    CHECK(verify(honest) == "(no error)");
    // Expected scores that are all wrong, hidden behind a tolerance that admits anything.
    Json lying = honest;
    Json wrong = Json::array();
    for (const Json& column : honest.at("expected").elements()) {
      Json w = Json::array();
      for (const Json& v : column.elements()) w.push(Json::from_float(v.as_float() + 0.5f));
      wrong.push(std::move(w));
    }
    lying.set("expected", wrong);
    CHECK(verify(lying).find("self-test failed: output 'click' row 0") == 0);
    for (const double t : {1e30, static_cast<double>(bound) * 1.5, -1.0}) {
      CAPTURE(t);
      lying.set("tolerance", t);
      CHECK(verify(lying).find("self-test failed: tolerance ") == 0);
      CHECK(verify(lying).find("is outside [0, ") != std::string::npos);
    }
  }
}

TEST_CASE("verify: ids beyond 2^53 (a hashed string's) are stored as strings and read back exactly") {
  const mtlite::Spec spec = mtlite::spec_from_json(Json::parse(
      R"({"architecture": "single_task", "features": [
            {"name": "item", "kind": "categorical", "mapping": "hashing", "size": 7, "embedding_dim": 2},
            {"name": "tags", "kind": "multi_hot", "mapping": "hashing", "size": 5, "embedding_dim": 2}],
          "tasks": [{"name": "y", "kind": "binary"}]})"));
  const mtlite::Converted c = mtlite::convert(spec, mtlite::random_weights(spec, 3, 0.1f), {});
  const mtlite::Model model = c.model();
  // Ids whose buckets differ from those of their double-rounded neighbours, so a lossy trip fails.
  const std::vector<std::int64_t> ids = {static_cast<std::int64_t>(mtlite::hash_string("item42")),
                                         (std::int64_t{1} << 53) + 1, -(std::int64_t{1} << 62) - 3};
  const std::vector<std::int64_t> bag_ids = {static_cast<std::int64_t>(mtlite::hash_string("news")), 5,
                                             std::numeric_limits<std::int64_t>::min()};
  const std::vector<std::uint32_t> offsets = {0, 1, 1, 3};
  const std::vector<mtlite::Bag> bags = {{bag_ids, offsets}};
  const mtlite::Batch batch{3, {}, ids, bags};
  mtlite::Session session(model, 3);
  const Json test = mtlite::record_selftest(session, batch, mtlite::selftest_tolerance(mtlite::kernels::WeightType::f32));
  CHECK(test.at("ids")[0].is_string());
  CHECK(test.at("bags")[0].at("ids")[1].as_int64() == 5);
  TempDir dir;
  const std::string path = dir.path + "/m.mtl";
  mtlite::model_writer(c.spec, c.tensors, Json::object().set("selftest", Json::parse(test.dump()))).write(path);
  CHECK(error_of([&] { mtlite::Model::load(path).verify(); }) == "(no error)");
  Json bad = test;
  (*bad.find("ids"))[0] = Json(std::string("12x"));
  mtlite::model_writer(c.spec, c.tensors, Json::object().set("selftest", bad)).write(path);
  CHECK(error_of([&] { mtlite::Model::load(path).verify(); }) == "self-test failed: id '12x' is not a 64-bit integer");
}

TEST_CASE("resource limits: JSON and the .mtl reader cost at most 40 bytes per input byte") {
  // The worst cases for the parser's tree: the most values per byte ("[0,0,...]": a 40-byte
  // value per 2 bytes), the most members ({"a":0,...}), the deepest nesting, and long strings.
  const std::size_t n = std::size_t{4} << 20;
  std::vector<std::string> inputs;
  {
    std::string t = "[0";
    while (t.size() + 3 < n) t += ",0";
    inputs.push_back(t + "]");
  }
  {
    std::string t = "{";
    for (std::size_t i = 0; t.size() + 16 < n; ++i) t += (i ? ",\"" : "\"") + std::to_string(i) + "\":0";
    inputs.push_back(t + "}");
  }
  {
    std::string t = "[";
    while (t.size() + 260 < n) t += std::string(127, '[') + std::string(127, ']') + ",";
    inputs.push_back(t + "0]");
  }
  inputs.push_back("[\"" + std::string(n - 4, 'x') + "\"]");
  for (const std::string& text : inputs) {
    CAPTURE(text.substr(0, 12));
    const long kib = peak_rss_added_kib([&] { Json::parse(text); });  // before the parent's heap holds a tree
    REQUIRE_NOTHROW(Json::parse(text));
    MESSAGE(text.substr(0, 6) << "...: " << text.size() << " bytes of JSON, peak RSS added " << kib
                              << " KiB (" << static_cast<double>(kib) * 1024.0 / static_cast<double>(text.size())
                              << " per byte)");
    CHECK(kib <= with_slack(static_cast<long>(40 * text.size() / 1024)));
  }
  // The same worst case as the metadata of a model file (the limit is 16 MiB): the reader adds
  // little to the tree.
  TempDir dir;
  const std::string path = dir.path + "/meta.mtl";
  mtlite::format::FileWriter w;
  Json meta = Json::object();
  Json zeros = Json::array();
  for (std::size_t i = 0; i < n / 2; ++i) zeros.push(0);
  meta.set("zeros", std::move(zeros));
  w.set_metadata(std::move(meta));
  w.write(path);
  const mtlite::format::FileBuffer file = mtlite::format::read_file(path);
  const long kib = peak_rss_added_kib([&] { mtlite::format::FileView::parse(file.data(), file.size()); });
  MESSAGE("a " << file.size() << "-byte model file of metadata: peak RSS added " << kib << " KiB");
  CHECK(kib <= with_slack(static_cast<long>(40 * file.size() / 1024)));
}

TEST_CASE("predict: finite inputs through huge finite weights: an overflow Status naming output and row") {
  // Every [16, 13] weight 3e38 and inputs of 1: the first layer is +inf; head weights of both
  // signs make inf - inf = NaN (in i8 layers the head's input row cannot be quantized).
  const mtlite::Spec spec = small_spec();
  mtlite::Weights w = mtlite::random_weights(spec, 4);
  for (float& v : w.at("embedding.item").data) v = 0.0f;
  for (float& v : w.at("tower0.0.weight").data) v = 3e38f;
  for (std::size_t i = 0; i < 16; ++i) w.at("tower0.1.weight").data[i] = i % 2 ? -1.0f : 1.0f;
  for (const auto dense : {mtlite::kernels::WeightType::f32, mtlite::kernels::WeightType::i8}) {
    CAPTURE(static_cast<int>(dense));
    mtlite::ConvertOptions options;
    options.dense = dense;
    options.float_heads = false;
    const mtlite::Model model = mtlite::convert(spec, w, options).model();
    mtlite::Session session(model, 2);
    const std::vector<float> ones(18, 1.0f);
    const std::vector<std::int64_t> ids = {1, 2};
    const mtlite::Status st = session.predict(mtlite::Batch{2, ones, ids, {}});
    CHECK(st.code() == mtlite::StatusCode::overflow);
    CHECK(std::string(st.message()) ==
          "output 'click' is NaN at row 0: the activations overflowed (weights or inputs too large)");
    CHECK(session.rows() == 0);
  }
}

TEST_SUITE_END();
