// Sessions and the errors around them: bad inputs (a Status, never an exception, and nothing
// scored), out-of-vocabulary ids, invalid specs and weights (mtlite::Error naming the field or
// tensor).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mtlite/mtlite.hpp>
#include <string>
#include <vector>

namespace {

using mtlite::Activation;
using mtlite::Architecture;
using mtlite::Bag;
using mtlite::Batch;
using mtlite::Feature;
using mtlite::Model;
using mtlite::Normalization;
using mtlite::Pooling;
using mtlite::Session;
using mtlite::Spec;
using mtlite::Status;
using mtlite::StatusCode;
using mtlite::Task;
using mtlite::TaskKind;
using mtlite::TaskRole;
using mtlite::Weights;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

Task task(const std::string& name, mtlite::Mlp tower = {}, TaskKind kind = TaskKind::binary) {
  Task t;
  t.name = name;
  t.kind = kind;
  t.tower = std::move(tower);
  return t;
}

// An MMoE over every feature kind: features in a mixed order, two of each input kind.
Spec input_spec() {
  Spec s;
  s.features = {Feature::dense("age", Normalization::standardize, 30.0f, 10.0f),
                Feature::categorical("country", 10, 3),
                Feature::multi_hot("tags", 20, 4, Pooling::mean),
                Feature::dense("price", Normalization::log1p),
                Feature::hashed("user", 50, 5),
                Feature::multi_hot("history", 30, 3, Pooling::sum),
                Feature::dense("hour")};
  s.tasks = {task("click", mtlite::mlp({7})), task("like")};
  s.architecture = Architecture::mmoe;
  s.num_experts = 3;
  s.expert = mtlite::mlp({9});
  return s;
}

// A valid batch of `rows` rows for input_spec(), held in vectors the test may then spoil.
struct Inputs {
  std::size_t rows;
  std::vector<float> dense;
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> tag_ids, history_ids;
  std::vector<std::uint32_t> tag_offsets, history_offsets;
  std::vector<Bag> bags;

  explicit Inputs(std::size_t n) : rows(n) {
    for (std::size_t r = 0; r < n; ++r) {
      dense.insert(dense.end(), {25.0f + static_cast<float>(r), 3.5f, static_cast<float>(r % 24)});
      ids.insert(ids.end(),
                 {static_cast<std::int64_t>(r % 10), static_cast<std::int64_t>(r * 977)});
      tag_offsets.push_back(static_cast<std::uint32_t>(tag_ids.size()));
      for (std::size_t i = 0; i < r % 3; ++i) tag_ids.push_back(static_cast<std::int64_t>(r + i));
      history_offsets.push_back(static_cast<std::uint32_t>(history_ids.size()));
      for (std::size_t i = 0; i < (r + 1) % 4; ++i)
        history_ids.push_back(static_cast<std::int64_t>(2 * r + i));
    }
    tag_offsets.push_back(static_cast<std::uint32_t>(tag_ids.size()));
    history_offsets.push_back(static_cast<std::uint32_t>(history_ids.size()));
    rebind();
  }
  // Re-points the bags at the vectors (after the test changed them).
  void rebind() {
    bags = {Bag{{tag_ids.data(), tag_ids.size()}, {tag_offsets.data(), tag_offsets.size()}},
            Bag{{history_ids.data(), history_ids.size()},
                {history_offsets.data(), history_offsets.size()}}};
  }
  Batch batch() const {
    Batch b;
    b.rows = rows;
    b.dense = {dense.data(), dense.size()};
    b.ids = {ids.data(), ids.size()};
    b.bags = {bags.data(), bags.size()};
    return b;
  }
};

struct Fixture {
  Model model{input_spec(), mtlite::random_weights(input_spec(), 3, 0.1f)};
  Session session{model, 8};
};

// Runs a predict that must fail: checks the code, the message parts and that nothing is left
// scored from the successful predict made just before.
void expect_failure(Session& session, const Batch& bad, StatusCode code,
                    std::initializer_list<const char*> parts) {
  const Inputs good(4);
  REQUIRE(session.predict(good.batch()).ok());
  REQUIRE(session.rows() == 4);
  const Status st = session.predict(bad);
  const std::string message = st.message();
  INFO("message: " << message);
  CHECK(!st.ok());
  CHECK(!st);
  CHECK(st.code() == code);
  for (const char* part : parts)
    CHECK_MESSAGE(contains(message, part), "expected '" << std::string(part) << "'");
  CHECK(session.rows() == 0);
  CHECK(session.scores(0).size() == 0);
  // The session is still usable.
  REQUIRE(session.predict(good.batch()).ok());
  CHECK(session.rows() == 4);
}

// The what() of the mtlite::Error that f throws, or "(no exception)".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mtlite::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not an mtlite::Error) ") + e.what();
  }
  return "(no exception)";
}

}  // namespace

// ---- input errors ---------------------------------------------------------------------------

TEST_CASE_FIXTURE(Fixture, "a valid batch succeeds; Status says ok") {
  const Inputs in(5);
  const Status st = session.predict(in.batch());
  CHECK(st.ok());
  CHECK(static_cast<bool>(st));
  CHECK(st.code() == StatusCode::ok);
  CHECK(session.rows() == 5);
  CHECK(session.scores(1).size() == 5);
  for (std::size_t r = 0; r < 5; ++r) {
    CHECK(session.score(0, r) > 0.0f);
    CHECK(session.score(0, r) < 1.0f);
  }
  // An empty batch is fine too and scores nothing.
  const Inputs none(0);
  CHECK(session.predict(none.batch()).ok());
  CHECK(session.rows() == 0);
}

TEST_CASE_FIXTURE(Fixture, "wrong dense size") {
  Inputs in(3);
  in.dense.pop_back();
  expect_failure(session, in.batch(), StatusCode::wrong_size, {"dense", "8", "9"});
  in.dense.push_back(1.0f);
  in.dense.push_back(1.0f);
  expect_failure(session, in.batch(), StatusCode::wrong_size, {"dense", "10", "9"});
}

TEST_CASE_FIXTURE(Fixture, "wrong ids size") {
  Inputs in(3);
  in.ids.push_back(1);
  expect_failure(session, in.batch(), StatusCode::wrong_size, {"ids", "7", "6"});
  Batch b = in.batch();
  b.ids = {};
  expect_failure(session, b, StatusCode::wrong_size, {"ids", "0", "6"});
}

TEST_CASE_FIXTURE(Fixture, "wrong number of bags") {
  Inputs in(3);
  Batch b = in.batch();
  b.bags = {in.bags.data(), 1};
  expect_failure(session, b, StatusCode::wrong_size, {"bags", "1", "2"});
  b.bags = {};
  expect_failure(session, b, StatusCode::wrong_size, {"bags", "0", "2"});
}

TEST_CASE_FIXTURE(Fixture, "wrong offsets length") {
  Inputs in(3);
  in.history_offsets.pop_back();  // rows offsets instead of rows + 1
  in.rebind();
  expect_failure(session, in.batch(), StatusCode::wrong_size, {"history", "offsets", "3", "4"});
  in.history_offsets.push_back(in.history_offsets.back());
  in.history_offsets.push_back(in.history_offsets.back());
  in.rebind();
  expect_failure(session, in.batch(), StatusCode::wrong_size, {"history", "offsets", "5", "4"});
}

TEST_CASE_FIXTURE(Fixture, "decreasing offsets") {
  Inputs in(4);
  // tags: rows have 0, 1, 2, 0 ids: offsets 0 0 1 3 3. Make row 2's end come before its start.
  REQUIRE(in.tag_offsets == std::vector<std::uint32_t>{0, 0, 1, 3, 3});
  in.tag_offsets[2] = 2;
  in.tag_offsets[3] = 1;
  in.rebind();
  expect_failure(session, in.batch(), StatusCode::bad_bag, {"tags", "decrease", "row 2"});
}

TEST_CASE_FIXTURE(Fixture, "offsets past the ids") {
  Inputs in(4);
  in.tag_offsets.back() = static_cast<std::uint32_t>(in.tag_ids.size() + 1);
  in.rebind();
  expect_failure(session, in.batch(), StatusCode::bad_bag, {"tags", "4", "3"});
  // Every offset past the ids (monotonic, but all out of range).
  Inputs far(2);
  far.history_offsets = {100, 200, 300};
  far.rebind();
  expect_failure(session, far.batch(), StatusCode::bad_bag, {"history", "300"});
}

TEST_CASE_FIXTURE(Fixture, "NaN and infinite dense values name the feature and the row") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  {
    Inputs in(4);
    in.dense[2 * 3 + 1] = nan;  // row 2, price
    expect_failure(session, in.batch(), StatusCode::not_finite, {"price", "NaN", "row 2"});
  }
  {
    Inputs in(4);
    in.dense[3 * 3 + 0] = inf;  // row 3, age (standardize would turn it into inf too)
    expect_failure(session, in.batch(), StatusCode::not_finite, {"age", "infinite", "row 3"});
  }
  {
    Inputs in(4);
    in.dense[0 * 3 + 2] = -inf;  // row 0, hour
    expect_failure(session, in.batch(), StatusCode::not_finite, {"hour", "infinite", "row 0"});
  }
  {
    Inputs in(4);
    in.dense[1 * 3 + 2] = -nan;
    expect_failure(session, in.batch(), StatusCode::not_finite, {"hour", "NaN", "row 1"});
  }
}

TEST_CASE_FIXTURE(Fixture, "too many rows") {
  const Inputs in(9);  // the session takes 8
  expect_failure(session, in.batch(), StatusCode::too_many_rows, {"9", "8"});
  const Inputs ok(8);
  CHECK(session.predict(ok.batch()).ok());
  CHECK(session.rows() == 8);
}

TEST_CASE("the one-row predict(dense, ids) overload") {
  Spec s;
  s.features = {Feature::dense("a"), Feature::categorical("c", 5, 3), Feature::dense("b")};
  s.tasks = {task("t", mtlite::mlp({4}))};
  s.architecture = Architecture::single_task;
  const Model model(s, mtlite::random_weights(s, 2, 0.1f));
  Session session(model, 4);
  const std::vector<float> dense = {0.5f, -1.0f};
  const std::vector<std::int64_t> ids = {3};
  REQUIRE(session.predict(dense, ids).ok());
  CHECK(session.rows() == 1);
  const float one = session.score(0, 0);
  Batch b;
  b.rows = 1;
  b.dense = dense;
  b.ids = ids;
  REQUIRE(session.predict(b).ok());
  CHECK(session.score(0, 0) == one);
  const std::vector<float> short_dense = {0.5f};
  const Status st = session.predict(short_dense, ids);
  CHECK(st.code() == StatusCode::wrong_size);
  CHECK(session.rows() == 0);
}

TEST_CASE("Session with max_batch 0 throws") {
  const Spec s = input_spec();
  const Model model(s, mtlite::random_weights(s, 1));
  const std::string what = error_of([&] { Session session(model, 0); });
  CHECK(contains(what, "max_batch"));
  CHECK_THROWS_AS(Session(model, 0, true), mtlite::Error);
}

TEST_CASE("a moved Session keeps working") {
  const Spec s = input_spec();
  const Model model(s, mtlite::random_weights(s, 1, 0.1f));
  const Inputs in(6);
  Session a(model, 6, true);
  REQUIRE(a.predict(in.batch()).ok());
  std::vector<float> want(a.scores(0).begin(), a.scores(0).end());
  Session b(std::move(a));
  REQUIRE(b.predict(in.batch()).ok());
  CHECK(std::vector<float>(b.scores(0).begin(), b.scores(0).end()) == want);
  Session c(model, 1);
  c = std::move(b);
  REQUIRE(c.predict(in.batch()).ok());
  CHECK(std::vector<float>(c.scores(0).begin(), c.scores(0).end()) == want);
  CHECK(c.gate(0, 5).size() == 3);
}

// ---- out-of-vocabulary ids ------------------------------------------------------------------

namespace {

// y = w . x + b with x = [country (3), tags (2), user (2), d]: a regression head straight on x
// (single_task, no hidden layers) makes the score a readable sum of the table rows.
struct OovModel {
  Spec spec;
  Weights weights;
  std::unique_ptr<Model> model;

  OovModel() {
    spec.features = {Feature::categorical("country", 4, 3),
                     Feature::multi_hot("tags", 6, 2, Pooling::sum), Feature::hashed("user", 5, 2),
                     Feature::dense("d")};
    spec.tasks = {task("y", {}, TaskKind::regression)};
    spec.architecture = Architecture::single_task;
    weights = mtlite::random_weights(spec, 1);
    // country rows 0..3 = (r, 0, 0) / 8, the OOV row (row 4) = (0, 1, 0): distinctive.
    std::vector<float>& country = weights.at("embedding.country").data;
    REQUIRE(country.size() == 5 * 3);
    for (std::size_t r = 0; r < 4; ++r) {
      country[r * 3 + 0] = static_cast<float>(r) / 8.0f;
      country[r * 3 + 1] = 0.0f;
      country[r * 3 + 2] = 0.0f;
    }
    country[4 * 3 + 0] = 0.0f;
    country[4 * 3 + 1] = 1.0f;
    country[4 * 3 + 2] = 0.0f;
    // tags rows 0..5 = ((r + 1) / 64, 0), the OOV row (6) = (0, 1).
    std::vector<float>& tags = weights.at("embedding.tags").data;
    REQUIRE(tags.size() == 7 * 2);
    for (std::size_t r = 0; r < 6; ++r) {
      tags[r * 2 + 0] = static_cast<float>(r + 1) / 64.0f;
      tags[r * 2 + 1] = 0.0f;
    }
    tags[6 * 2 + 0] = 0.0f;
    tags[6 * 2 + 1] = 1.0f;
    // user bucket b = (b + 1, 0) / 16; its OOV row (5) = (0, 1).
    std::vector<float>& user = weights.at("embedding.user").data;
    REQUIRE(user.size() == 6 * 2);
    for (std::size_t r = 0; r < 5; ++r) {
      user[r * 2 + 0] = static_cast<float>(r + 1) / 16.0f;
      user[r * 2 + 1] = 0.0f;
    }
    user[5 * 2 + 0] = 0.0f;
    user[5 * 2 + 1] = 1.0f;
    // y = 1*country0 + 2*country1 + 0*country2 + 1*tags0 + 4*tags1 + 1*user0 + 16*user1 + 0*d.
    weights.at("tower0.0.weight").data = {1, 2, 0, 1, 4, 1, 16, 0};
    weights.at("tower0.0.bias").data = {0};
    model = std::make_unique<Model>(spec, weights);
  }

  // The score of one row, or NaN when predict fails.
  float score(std::int64_t country, std::vector<std::int64_t> tags, std::int64_t user) const {
    Session session(*model, 1);
    const std::vector<float> dense = {0.0f};
    const std::vector<std::int64_t> ids = {country, user};
    const std::vector<std::uint32_t> offsets = {0, static_cast<std::uint32_t>(tags.size())};
    const Bag bag{{tags.data(), tags.size()}, {offsets.data(), offsets.size()}};
    Batch b;
    b.rows = 1;
    b.dense = dense;
    b.ids = ids;
    b.bags = {&bag, 1};
    const Status st = session.predict(b);
    INFO(std::string(st.message()));
    REQUIRE(st.ok());
    return session.score(0, 0);
  }
};

}  // namespace

TEST_CASE("out-of-range, negative and unknown ids use the OOV row") {
  const OovModel m;
  const std::int64_t user = 12345;  // hashed: some bucket b, contributing (b + 1) / 16
  const float base = m.score(0, {}, user);
  const std::uint64_t b = mtlite::hash_bucket(static_cast<std::uint64_t>(user), 5);
  CHECK(base == doctest::Approx(static_cast<double>(b + 1) / 16.0).epsilon(1e-6));

  SUBCASE("categorical") {
    for (std::int64_t id : {0, 1, 2, 3})
      CHECK(m.score(id, {}, user) ==
            doctest::Approx(base + static_cast<double>(id) / 8.0).epsilon(1e-6));
    // Country's OOV row adds 2 (weight 2 on its second column).
    for (std::int64_t id : {std::int64_t{-1}, std::int64_t{4}, std::int64_t{5}, std::int64_t{-4},
                            std::int64_t{1} << 40, std::numeric_limits<std::int64_t>::min(),
                            std::numeric_limits<std::int64_t>::max()}) {
      CAPTURE(id);
      CHECK(m.score(id, {}, user) == doctest::Approx(base + 2.0).epsilon(1e-6));
    }
  }
  SUBCASE("multi-hot") {
    CHECK(m.score(0, {0, 5}, user) == doctest::Approx(base + (1.0 + 6.0) / 64.0).epsilon(1e-6));
    // Each OOV id in the bag adds the OOV row (0, 1), weighted 4.
    CHECK(m.score(0, {-1}, user) == doctest::Approx(base + 4.0).epsilon(1e-6));
    CHECK(m.score(0, {6, 2, std::numeric_limits<std::int64_t>::max()}, user) ==
          doctest::Approx(base + 8.0 + 3.0 / 64.0).epsilon(1e-6));
    CHECK(m.score(0, {std::numeric_limits<std::int64_t>::min(), 100, -3}, user) ==
          doctest::Approx(base + 12.0).epsilon(1e-6));
  }
  SUBCASE("hashed ids are never out of vocabulary") {
    // Any id, negative or huge, lands in bucket hash(id) % 5, never in the OOV row (which would
    // add 16).
    for (std::int64_t id : {std::int64_t{-1}, std::int64_t{0}, std::int64_t{5},
                            std::int64_t{-99999}, std::numeric_limits<std::int64_t>::min(),
                            static_cast<std::int64_t>(mtlite::hash_string("some user"))}) {
      CAPTURE(id);
      const std::uint64_t bucket = mtlite::hash_bucket(static_cast<std::uint64_t>(id), 5);
      CHECK(bucket < 5);
      CHECK(m.score(0, {}, id) ==
            doctest::Approx(static_cast<double>(bucket + 1) / 16.0).epsilon(1e-6));
    }
  }
}

// ---- spec validation ------------------------------------------------------------------------

namespace {

// Spec::validate and the Model constructor both throw an mtlite::Error naming `parts`.
void expect_invalid(const Spec& s, std::initializer_list<const char*> parts) {
  const std::string v = error_of([&] { s.validate(); });
  const std::string m = error_of([&] { Model model(s, Weights{}); });
  INFO("Spec::validate: " << v);
  INFO("Model: " << m);
  for (const char* part : parts) {
    CHECK_MESSAGE(contains(v, part), "expected '" << std::string(part) << "'");
    CHECK_MESSAGE(contains(m, part), "expected '" << std::string(part) << "'");
  }
  CHECK(!contains(v, "(no exception)"));
  CHECK(!contains(v, "(not an mtlite::Error)"));
  CHECK(!contains(m, "(no exception)"));
  CHECK(!contains(m, "(not an mtlite::Error)"));
}

Spec valid(Architecture a) {
  Spec s;
  s.features = {Feature::dense("d"), Feature::categorical("c", 5, 2)};
  s.tasks = {task("ctr", mtlite::mlp({4})), task("cvr")};
  s.architecture = a;
  s.bottom = mtlite::mlp({6});
  s.num_experts = 2;
  s.expert = mtlite::mlp({5});
  mtlite::PleLevel lv;
  lv.task_experts = 1;
  lv.shared_experts = 1;
  lv.expert = mtlite::mlp({3});
  s.levels = {lv, lv};
  if (a == Architecture::esmm) s.esmm = mtlite::Esmm{"ctr", "cvr", "ctcvr"};
  return s;
}

}  // namespace

TEST_CASE("valid specs of every architecture build") {
  for (Architecture a : {Architecture::single_task, Architecture::shared_bottom, Architecture::omoe,
                         Architecture::mmoe, Architecture::ple, Architecture::esmm}) {
    CAPTURE(std::string(mtlite::to_string(a)));
    const Spec s = valid(a);
    CHECK_NOTHROW(s.validate());
    CHECK_NOTHROW(Model(s, mtlite::random_weights(s, 1)));
  }
}

TEST_CASE("spec validation names the field at fault") {
  SUBCASE("zero units") {
    Spec s = valid(Architecture::mmoe);
    s.expert = mtlite::mlp({5, 0});
    expect_invalid(s, {"expert[1].units", "at least 1"});
    s = valid(Architecture::shared_bottom);
    s.bottom[0].units = 0;
    expect_invalid(s, {"bottom[0].units"});
    s = valid(Architecture::single_task);
    s.tasks[0].tower = mtlite::mlp({3, 0});
    expect_invalid(s, {"ctr", "tower[1].units"});
    s = valid(Architecture::ple);
    s.levels[1].expert[0].units = 0;
    expect_invalid(s, {"levels[1].expert[0].units"});
  }
  SUBCASE("empty expert MLP") {
    Spec s = valid(Architecture::mmoe);
    s.expert.clear();
    expect_invalid(s, {"expert", "at least one layer"});
    s = valid(Architecture::omoe);
    s.expert.clear();
    expect_invalid(s, {"expert", "at least one layer"});
    s = valid(Architecture::ple);
    s.levels[0].expert.clear();
    expect_invalid(s, {"levels[0].expert", "at least one layer"});
    s = valid(Architecture::shared_bottom);
    s.bottom.clear();
    expect_invalid(s, {"bottom", "at least one layer"});
  }
  SUBCASE("num_experts 0 for mmoe and omoe") {
    for (Architecture a : {Architecture::mmoe, Architecture::omoe}) {
      Spec s = valid(a);
      s.num_experts = 0;
      expect_invalid(s, {"num_experts", "a gate over zero experts"});
    }
  }
  SUBCASE("PLE with no levels") {
    Spec s = valid(Architecture::ple);
    s.levels.clear();
    expect_invalid(s, {"levels", "at least one level"});
  }
  SUBCASE("PLE level with 0 + 0 experts") {
    Spec s = valid(Architecture::ple);
    s.levels[1].task_experts = 0;
    s.levels[1].shared_experts = 0;
    expect_invalid(s, {"levels[1]", "a gate over zero experts"});
  }
  SUBCASE("esmm architecture without esmm block") {
    Spec s = valid(Architecture::esmm);
    s.esmm.reset();
    expect_invalid(s, {"esmm"});
  }
  SUBCASE("esmm naming a missing task") {
    Spec s = valid(Architecture::esmm);
    s.esmm->cvr = "purchase";
    expect_invalid(s, {"esmm.cvr", "purchase"});
    s = valid(Architecture::mmoe);
    s.esmm = mtlite::Esmm{"click", "cvr", "ctcvr"};
    expect_invalid(s, {"esmm.ctr", "click"});
  }
  SUBCASE("esmm: same task twice, a regression task, an output name taken by a task") {
    Spec s = valid(Architecture::esmm);
    s.esmm->cvr = "ctr";
    expect_invalid(s, {"esmm", "different"});
    s = valid(Architecture::esmm);
    s.tasks[1].kind = TaskKind::regression;
    expect_invalid(s, {"esmm", "binary"});
    s = valid(Architecture::esmm);
    s.esmm->ctcvr = "ctr";
    expect_invalid(s, {"esmm.ctcvr", "ctr"});
  }
  SUBCASE("duplicate feature names") {
    Spec s = valid(Architecture::mmoe);
    s.features.push_back(Feature::dense("c"));
    expect_invalid(s, {"features[2].name", "duplicate feature 'c'"});
  }
  SUBCASE("duplicate feature names: the first feature that repeats an earlier name is named") {
    Spec s = valid(Architecture::mmoe);
    for (int i = 0; i < 3000; ++i) s.features.push_back(Feature::dense("f" + std::to_string(i)));
    const std::size_t n = s.features.size();
    s.features.push_back(Feature::dense("f2999"));  // n: repeats n - 1
    s.features.push_back(Feature::dense("f7"));     // n + 1: repeats an earlier one, but later
    expect_invalid(s, {("features[" + std::to_string(n) + "].name").c_str(), "duplicate feature 'f2999'"});
    s.features[n + 1].name = "f0";
    std::swap(s.features[n], s.features[n + 1]);  // now "f0" at n repeats, "f2999" at n + 1
    expect_invalid(s, {("features[" + std::to_string(n) + "].name").c_str(), "duplicate feature 'f0'"});
    s.features[n].name = "";  // a bad name at n is reported before the duplicate after it
    expect_invalid(s, {("features[" + std::to_string(n) + "].name").c_str(), "empty"});
  }
  SUBCASE("duplicate task names") {
    Spec s = valid(Architecture::mmoe);
    s.tasks.push_back(task("ctr"));
    expect_invalid(s, {"tasks[2].name", "duplicate task 'ctr'"});
  }
  SUBCASE("embedding_dim 0") {
    Spec s = valid(Architecture::mmoe);
    s.features.push_back(Feature::multi_hot("tags", 9, 0));
    expect_invalid(s, {"'tags'", "embedding_dim"});
  }
  SUBCASE("vocabulary sizes past 2^32 - 1, up to 2^64 - 1 (where size + 1 wraps to 0)") {
    for (const std::uint64_t size : {std::uint64_t{1} << 32, ~std::uint64_t{0}}) {
      Spec s = valid(Architecture::mmoe);
      s.features[1].size = size;
      expect_invalid(s, {"'c'", "size", "exceed the limit 2^32"});
    }
    Spec s = valid(Architecture::mmoe);
    s.features[1].size = (std::uint64_t{1} << 32) - 1;
    CHECK_NOTHROW(s.validate());
  }
  SUBCASE("vocabulary size 0") {
    Spec s = valid(Architecture::mmoe);
    s.features[1].size = 0;
    expect_invalid(s, {"'c'", "size"});
    s = valid(Architecture::mmoe);
    s.features.push_back(Feature::hashed("h", 0, 4));
    expect_invalid(s, {"'h'", "size"});
  }
  SUBCASE("standardize with stddev 0, negative or a non-finite mean") {
    Spec s = valid(Architecture::mmoe);
    s.features[0] = Feature::dense("d", Normalization::standardize, 1.0f, 0.0f);
    expect_invalid(s, {"'d'", "stddev"});
    s.features[0] = Feature::dense("d", Normalization::standardize, 1.0f, -2.0f);
    expect_invalid(s, {"'d'", "stddev"});
    s.features[0] = Feature::dense("d", Normalization::standardize,
                                   std::numeric_limits<float>::quiet_NaN(), 1.0f);
    expect_invalid(s, {"'d'"});
  }
  SUBCASE("all tasks auxiliary") {
    Spec s = valid(Architecture::mmoe);
    for (Task& t : s.tasks) t.role = TaskRole::auxiliary;
    expect_invalid(s, {"tasks", "auxiliary"});
    s.tasks[1].role = TaskRole::main;
    CHECK_NOTHROW(s.validate());
  }
  SUBCASE("no features, no tasks, empty names") {
    Spec s = valid(Architecture::mmoe);
    s.features.clear();
    expect_invalid(s, {"features"});
    s = valid(Architecture::mmoe);
    s.tasks.clear();
    expect_invalid(s, {"tasks"});
    s = valid(Architecture::mmoe);
    s.tasks[0].name.clear();
    expect_invalid(s, {"tasks[0].name", "empty"});
  }
}

// ---- weights errors -------------------------------------------------------------------------

namespace {

void expect_bad_weights(const Spec& s, const Weights& w, std::initializer_list<const char*> parts) {
  const std::string what = error_of([&] { Model model(s, w); });
  INFO("Model: " << what);
  CHECK(!contains(what, "(no exception)"));
  CHECK(!contains(what, "(not an mtlite::Error)"));
  for (const char* part : parts)
    CHECK_MESSAGE(contains(what, part), "expected '" << std::string(part) << "'");
}

}  // namespace

TEST_CASE("weights errors name the tensor") {
  const Spec s = valid(Architecture::ple);
  const Weights good = mtlite::random_weights(s, 1, 0.1f);
  REQUIRE_NOTHROW(Model(s, good));

  SUBCASE("missing tensor") {
    for (const char* name : {"ple1.shared.expert0.0.weight", "ple0.shared.gate.bias", "embedding.c",
                             "tower0.1.weight"}) {
      Weights w = good;
      REQUIRE(w.erase(name) == 1);
      expect_bad_weights(s, w, {name, "missing"});
    }
  }
  SUBCASE("wrong shape") {
    Weights w = good;
    mtlite::Tensor& t = w.at("tower0.0.weight");
    REQUIRE(t.shape == std::vector<std::uint64_t>{4, 3});
    std::swap(t.shape[0], t.shape[1]);  // same size, transposed
    expect_bad_weights(s, w, {"tower0.0.weight", "shape", "[3, 4]", "[4, 3]"});
    w = good;
    w.at("embedding.c").shape = {5, 2};  // forgot the OOV row
    w.at("embedding.c").data.resize(10);
    expect_bad_weights(s, w, {"embedding.c", "[5, 2]", "[6, 2]"});
    w = good;
    w.at("tower1.0.bias").shape = {1, 1};
    expect_bad_weights(s, w, {"tower1.0.bias", "shape"});
  }
  SUBCASE("data that does not fill the shape") {
    Weights w = good;
    w.at("ple1.task0.gate.weight").data.pop_back();
    expect_bad_weights(s, w, {"ple1.task0.gate.weight"});
  }
  SUBCASE("NaN or infinite weight") {
    Weights w = good;
    w.at("ple0.task0.gate.weight").data[3] = std::numeric_limits<float>::quiet_NaN();
    expect_bad_weights(s, w, {"ple0.task0.gate.weight", "non-finite", "3"});
    w = good;
    w.at("embedding.c").data.back() = -std::numeric_limits<float>::infinity();
    expect_bad_weights(s, w, {"embedding.c", "non-finite"});
    w = good;
    w.at("tower0.0.bias").data[0] = std::numeric_limits<float>::infinity();
    expect_bad_weights(s, w, {"tower0.0.bias", "non-finite"});
  }
  SUBCASE("unexpected extra tensor") {
    Weights w = good;
    w["ple2.task0.expert0.0.weight"] = mtlite::Tensor{{3, 3}, std::vector<float>(9, 0.0f)};
    expect_bad_weights(s, w, {"ple2.task0.expert0.0.weight", "unexpected"});
    w = good;
    w["embedding.d"] = mtlite::Tensor{{2, 2}, std::vector<float>(4, 0.0f)};  // d is dense
    expect_bad_weights(s, w, {"embedding.d", "unexpected"});
  }
}
