// The `mtlite synth` generators (tools/synth.hpp, docs/synth.md): the MMoE generator's task
// correlation and label formula, the funnel's implications and rates, determinism.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <mtlite/format/spec_json.hpp>

#include <fstream>
#include <sstream>

#include "../tools/synth.hpp"

namespace synth = mtlite::synth;

// Every doctest::Approx here has .scale(0): a relative tolerance. (doctest's default scale of 1
// would turn epsilon(0.1) into an absolute 0.1 for a rate of 0.01.)

namespace {

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    out.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

// Header and records of CSV text without quoting; every line ends in '\n'. The fields are views
// into `text`, which the table owns (on the heap, so that moving the table keeps them valid).
struct Table {
  std::unique_ptr<const std::string> text;
  std::vector<std::string_view> header;
  std::vector<std::vector<std::string_view>> rows;
  std::size_t ragged = 0;  // records whose field count differs from the header's
  std::size_t column(std::string_view name) const {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return i;
    FAIL("no column " << std::string(name));
    return 0;
  }
};

Table parse(std::string csv) {
  Table t;
  t.text = std::make_unique<const std::string>(std::move(csv));
  const std::string& text = *t.text;
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::size_t start = 0;
  bool first = true;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    const std::string_view line(text.data() + start, nl - start);
    start = nl + 1;
    if (first) {
      t.header = split(line);
      first = false;
    } else {
      t.rows.push_back(split(line));
      t.ragged += t.rows.back().size() != t.header.size();
    }
  }
  CHECK(t.ragged == 0);
  return t;
}

double number(std::string_view s) {
  const std::string copy(s);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  return copy.empty() || *end != '\0' ? std::nan("") : v;  // NaN fails every comparison below
}

std::string mmoe_text(double p, std::uint64_t rows, std::uint32_t dim, std::uint64_t seed, double noise = 0.01,
                      synth::MmoeSummary* summary = nullptr) {
  synth::MmoeOptions o;
  o.correlation = p;
  o.rows = rows;
  o.dim = dim;
  o.seed = seed;
  o.noise = noise;
  synth::StringSink sink;
  const synth::MmoeSummary s = synth::generate_mmoe(o, sink);
  if (summary) *summary = s;
  return sink.text;
}

std::string funnel_text(const synth::FunnelOptions& o, synth::FunnelSummary* summary = nullptr) {
  synth::StringSink sink;
  const synth::FunnelSummary s = synth::generate_funnel(o, sink);
  if (summary) *summary = s;
  return sink.text;
}

// E[f(z)] and E[f(z)^2] for z ~ N(0, 1), f the noiseless MMoE label: trapezoid rule on [-12, 12].
void target_moments(double& mean, double& second) {
  const double h = 1e-4;
  mean = second = 0.0;
  for (double z = -12.0; z <= 12.0; z += h) {
    const double phi = std::exp(-0.5 * z * z) / std::sqrt(2.0 * 3.141592653589793);
    const double f = synth::mmoe_target(z);
    mean += f * phi * h;
    second += f * f * phi * h;
  }
}

}  // namespace

TEST_CASE("mmoe: cos(w1, w2) equals the correlation, |w1| = |w2| = c, u1 and u2 orthonormal") {
  for (std::uint32_t dim : {2u, 3u, 16u, 100u, 1000u}) {
    for (double p : {-1.0, -0.5, 0.0, 0.3, 0.5, 0.9, 0.99, 1.0}) {
      for (std::uint64_t seed : {0ull, 1ull, 12345ull}) {
        CAPTURE(dim);
        CAPTURE(p);
        CAPTURE(seed);
        const synth::MmoeWeights w = synth::mmoe_weights(dim, p, seed);
        REQUIRE(w.w1.size() == dim);
        REQUIRE(w.w2.size() == dim);
        CHECK(std::fabs(synth::cosine(w.w1, w.w2) - p) < 1e-6);
        CHECK(std::fabs(synth::cosine(w.w1, w.w2) - p) < 1e-12);
        CHECK(std::fabs(synth::dot(w.u1.data(), w.u2.data(), dim)) < 1e-12);
        CHECK(std::fabs(synth::dot(w.u1.data(), w.u1.data(), dim) - 1.0) < 1e-12);
        CHECK(std::fabs(synth::dot(w.u2.data(), w.u2.data(), dim) - 1.0) < 1e-12);
        CHECK(std::fabs(std::sqrt(synth::dot(w.w1.data(), w.w1.data(), dim)) - synth::kMmoeScale) < 1e-12);
        CHECK(std::fabs(std::sqrt(synth::dot(w.w2.data(), w.w2.data(), dim)) - synth::kMmoeScale) < 1e-12);
      }
    }
  }
  // u1, u2 depend on the seed and the dimension only.
  const synth::MmoeWeights a = synth::mmoe_weights(32, 0.2, 9), b = synth::mmoe_weights(32, 0.8, 9);
  CHECK(a.u1 == b.u1);
  CHECK(a.u2 == b.u2);
  CHECK(a.w1 == b.w1);
  CHECK(a.w2 != b.w2);
  CHECK(synth::mmoe_weights(32, 0.2, 10).u1 != a.u1);
  // The generator reports the same cosine.
  synth::MmoeSummary s;
  (void)mmoe_text(0.37, 10, 8, 3, 0.01, &s);
  CHECK(std::fabs(s.cosine - 0.37) < 1e-12);
}

TEST_CASE("mmoe: constants c = 1, m = 10, alpha_i = i + 1, beta_i = i^2") {
  CHECK(synth::kMmoeScale == 1.0);
  CHECK(synth::kMmoeTerms == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK(synth::mmoe_alpha(i) == i + 1.0);
    CHECK(synth::mmoe_beta(i) == i * i);
  }
  // f(z) = z + sum_i sin((i+1) z + i^2), spelled out at a few points.
  for (double z : {-2.5, -0.3, 0.0, 0.7, 1.9}) {
    double f = z;
    for (int i = 0; i < 10; ++i) f += std::sin((i + 1) * z + i * i);
    CHECK(synth::mmoe_target(z) == doctest::Approx(f).epsilon(1e-14).scale(0));
  }
}

TEST_CASE("mmoe: the written labels follow the formula from the written x") {
  const std::uint32_t dim = 12;
  const synth::MmoeWeights w = synth::mmoe_weights(dim, 0.6, 4);
  for (double noise : {0.0, 0.01, 0.5}) {
    CAPTURE(noise);
    const Table t = parse(mmoe_text(0.6, 20000, dim, 4, noise));
    REQUIRE(t.header.size() == dim + 2);
    CHECK(t.header[0] == "x0");
    CHECK(t.header[dim - 1] == "x11");
    CHECK(t.header[dim] == "y1");
    CHECK(t.header[dim + 1] == "y2");
    REQUIRE(t.rows.size() == 20000);
    double sum[2] = {0, 0}, sq[2] = {0, 0}, worst = 0;
    std::vector<double> x(dim);
    double x_sum = 0, x_sq = 0;
    for (const auto& row : t.rows) {
      for (std::uint32_t k = 0; k < dim; ++k) {
        x[k] = number(row[k]);
        x_sum += x[k];
        x_sq += x[k] * x[k];
      }
      for (int j = 0; j < 2; ++j) {
        const std::vector<double>& wj = j ? w.w2 : w.w1;
        const double r = number(row[dim + j]) - synth::mmoe_target(synth::dot(wj.data(), x.data(), dim));
        sum[j] += r;
        sq[j] += r * r;
        if (!(std::fabs(r) <= worst)) worst = std::fabs(r);  // NaN sticks
      }
    }
    const double n = static_cast<double>(t.rows.size());
    const double cells = n * dim;
    CHECK(std::fabs(x_sum / cells) < 0.01);             // x ~ N(0, 1): mean 0 (SE 0.002)
    CHECK(std::fabs(x_sq / cells - 1.0) < 0.02);        // variance 1 (SE 0.003)
    for (int j = 0; j < 2; ++j) {
      const double mean = sum[j] / n, sd = std::sqrt(sq[j] / n - mean * mean);
      if (noise == 0.0) {
        CHECK(worst < 1e-5);  // float rounding of y only
      } else {
        CHECK(std::fabs(mean) < 5.0 * noise / std::sqrt(n));
        CHECK(sd == doctest::Approx(noise).epsilon(0.03).scale(0));
      }
    }
  }
}

TEST_CASE("mmoe: label statistics match the distribution") {
  // z = w^T x ~ N(0, 1) since |w| = 1, so E[y] and Var[y] follow from one-dimensional integrals.
  double ef = 0, ef2 = 0;
  target_moments(ef, ef2);
  const double var = ef2 - ef * ef + 0.01 * 0.01;
  // Sanity of the integral: E[sin(a z + b)] = sin(b) exp(-a^2 / 2).
  double closed = 0;
  for (int i = 0; i < 10; ++i) closed += std::sin(i * i) * std::exp(-0.5 * (i + 1) * (i + 1));
  CHECK(ef == doctest::Approx(closed).epsilon(1e-6).scale(0));
  CHECK(ef == doctest::Approx(0.1056).epsilon(0.01).scale(0));

  const std::uint64_t n = 60000;
  synth::MmoeSummary s;
  const Table t = parse(mmoe_text(0.5, n, 10, 21, 0.01, &s));
  REQUIRE(t.rows.size() == n);
  CHECK(s.rows == n);
  CHECK(s.columns == 12);
  double sum[2] = {0, 0}, sq[2] = {0, 0};
  for (const auto& row : t.rows)
    for (int j = 0; j < 2; ++j) {
      const double y = number(row[10 + j]);
      sum[j] += y;
      sq[j] += y * y;
    }
  const double se_mean = std::sqrt(var / static_cast<double>(n));
  for (int j = 0; j < 2; ++j) {
    const double mean = sum[j] / static_cast<double>(n);
    const double v = sq[j] / static_cast<double>(n) - mean * mean;
    CAPTURE(j);
    CHECK(std::fabs(mean - ef) < 5.0 * se_mean);
    CHECK(v == doctest::Approx(var).epsilon(0.05).scale(0));
    CHECK(s.label_mean[j] == doctest::Approx(mean).epsilon(1e-6).scale(0));
    CHECK(s.label_stddev[j] == doctest::Approx(std::sqrt(v)).epsilon(1e-3).scale(0));
  }
}

TEST_CASE("mmoe: label correlation grows with the task correlation") {
  double previous = -2.0;
  for (double p : {-0.5, 0.0, 0.5, 0.9}) {
    synth::MmoeSummary s;
    (void)mmoe_text(p, 20000, 8, 5, 0.01, &s);
    CAPTURE(p);
    CHECK(s.label_correlation > previous + 0.05);
    previous = s.label_correlation;
  }
  // p = 1: identical tasks, so y1 - y2 is the noise difference alone.
  const Table t = parse(mmoe_text(1.0, 5000, 8, 5, 0.01));
  double sq = 0;
  for (const auto& row : t.rows) {
    const double d = number(row[8]) - number(row[9]);
    sq += d * d;
  }
  CHECK(std::sqrt(sq / 5000.0) == doctest::Approx(0.01 * std::sqrt(2.0)).epsilon(0.05).scale(0));
}

TEST_CASE("mmoe: deterministic per seed, different across seeds, prefix-stable, options checked") {
  const std::string a = mmoe_text(0.5, 300, 20, 7), b = mmoe_text(0.5, 300, 20, 7);
  CHECK(a == b);
  CHECK(a != mmoe_text(0.5, 300, 20, 8));
  CHECK(a != mmoe_text(0.4, 300, 20, 7));
  const std::string shorter = mmoe_text(0.5, 100, 20, 7);
  CHECK(a.compare(0, shorter.size(), shorter) == 0);
  CHECK(parse(mmoe_text(0.5, 0, 4, 1)).rows.empty());
  CHECK_THROWS_AS(mmoe_text(1.01, 10, 8, 1), mtlite::Error);
  CHECK_THROWS_AS(mmoe_text(std::nan(""), 10, 8, 1), mtlite::Error);
  CHECK_THROWS_AS(mmoe_text(0.5, 10, 1, 1), mtlite::Error);
  CHECK_THROWS_AS(mmoe_text(0.5, 10, 8, 1, -0.1), mtlite::Error);
}

namespace {

struct FunnelCounts {
  std::uint64_t rows = 0, clicks = 0, carts = 0, purchases = 0, cart_purchases = 0, cart_clicks = 0;
};

FunnelCounts check_funnel_table(const Table& t, const synth::FunnelOptions& o) {
  const std::vector<std::string_view> expected = {
      "request_id",   "user_id",       "item_id", "position", "device",      "hour",
      "user_segment", "item_category", "price",   "discount", "item_rating", "item_popularity",
      "user_activity", "user_tenure_days", "click", "cart", "purchase"};
  REQUIRE(t.header == expected);
  const std::size_t req = t.column("request_id"), user = t.column("user_id"), item = t.column("item_id"),
                    pos = t.column("position"), device = t.column("device"), hour = t.column("hour"),
                    seg = t.column("user_segment"), cat = t.column("item_category"), price = t.column("price"),
                    disc = t.column("discount"), rating = t.column("item_rating"), click = t.column("click"),
                    cart = t.column("cart"), purchase = t.column("purchase");
  const std::set<std::string_view> devices = {"mobile", "desktop", "tablet"}, binary = {"0", "1"};
  FunnelCounts c;
  std::size_t bad_implication = 0, bad_value = 0, bad_structure = 0;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    ++c.rows;
    if (!binary.count(row[click]) || !binary.count(row[cart]) || !binary.count(row[purchase])) ++bad_value;
    const bool cl = row[click] == "1", ca = row[cart] == "1", pu = row[purchase] == "1";
    c.clicks += cl;
    c.carts += ca;
    c.purchases += pu;
    c.cart_clicks += ca;
    c.cart_purchases += ca && pu;
    if ((ca && !cl) || (pu && !cl)) ++bad_implication;
    // Requests of 10 impressions at positions 0..9, ids in order.
    if (number(row[req]) != static_cast<double>(r / 10) || number(row[pos]) != static_cast<double>(r % 10))
      ++bad_structure;
    if (r % 10 != 0 && (row[user] != t.rows[r - 1][user] || row[device] != t.rows[r - 1][device] ||
                        row[hour] != t.rows[r - 1][hour]))
      ++bad_structure;
    const double u = number(row[user]), i = number(row[item]), h = number(row[hour]), s = number(row[seg]),
                 k = number(row[cat]), p = number(row[price]), d = number(row[disc]), g = number(row[rating]);
    if (!(u >= 0 && u < o.users && i >= 0 && i < o.items && h >= 0 && h < 24 && s >= 0 && s < 8 && k >= 0 &&
          k < 32 && p > 0 && d >= 0 && d <= 0.5 && g >= 1 && g <= 5 && devices.count(row[device])))
      ++bad_value;
  }
  CHECK(bad_implication == 0);
  CHECK(bad_value == 0);
  CHECK(bad_structure == 0);
  return c;
}

}  // namespace

TEST_CASE("funnel: implications, rates and signal on 200k rows") {
  synth::FunnelOptions o;
  o.rows = 200000;
  o.seed = 11;
  synth::FunnelSummary s;
  const Table t = parse(funnel_text(o, &s));
  REQUIRE(t.rows.size() == o.rows);
  const FunnelCounts c = check_funnel_table(t, o);
  const double n = static_cast<double>(c.rows);
  // Realised rates near the requested ones: within 10% (the sampling SE for purchase is 2.2%).
  CHECK(c.clicks / n == doctest::Approx(0.10).epsilon(0.10).scale(0));
  CHECK(c.carts / n == doctest::Approx(0.03).epsilon(0.10).scale(0));
  CHECK(c.purchases / n == doctest::Approx(0.01).epsilon(0.10).scale(0));
  CHECK(c.clicks / n == doctest::Approx(0.10).epsilon(0.03).scale(0));
  // The summary counts what the file holds.
  CHECK(s.rows == o.rows);
  CHECK(s.requests == 20000);
  CHECK(s.columns == 17);
  CHECK(s.positives[0] == c.clicks);
  CHECK(s.positives[1] == c.carts);
  CHECK(s.positives[2] == c.purchases);
  CHECK(s.realised[2] == doctest::Approx(c.purchases / n).scale(0));
  CHECK(s.oracle_rows == o.rows);
  // Learnable: the hidden model's AUCs (an upper bound for any model) are far from chance and
  // not trivial.
  CHECK(s.oracle_auc[0] > 0.75);
  CHECK(s.oracle_auc[0] < 0.90);
  CHECK(s.oracle_auc[2] > 0.80);
  CHECK(s.oracle_auc[2] < 0.95);
  CHECK(s.oracle_cvr_auc > 0.65);
  // Positive transfer: the click probability alone ranks purchases well, and a cart makes a
  // purchase far more likely.
  CHECK(s.transfer_auc > 0.75);
  const double after_cart = static_cast<double>(c.cart_purchases) / static_cast<double>(c.cart_clicks);
  const double without_cart = static_cast<double>(c.purchases - c.cart_purchases) / static_cast<double>(c.clicks - c.cart_clicks);
  CHECK(after_cart > 2.0 * without_cart);
  CHECK(s.purchase_after_cart == doctest::Approx(after_cart).scale(0));
  CHECK(s.purchase_without_cart == doctest::Approx(without_cart).scale(0));
  // A purchase need not follow a cart.
  CHECK(c.purchases > c.cart_purchases);
}

TEST_CASE("funnel: other rates are met too") {
  synth::FunnelOptions o;
  o.rows = 100000;
  o.seed = 3;
  o.users = 500;
  o.items = 300;
  o.click_rate = 0.25;
  o.cart_rate = 0.08;
  o.purchase_rate = 0.02;
  synth::FunnelSummary s;
  const Table t = parse(funnel_text(o, &s));
  const FunnelCounts c = check_funnel_table(t, o);
  const double n = static_cast<double>(c.rows);
  CHECK(c.clicks / n == doctest::Approx(0.25).epsilon(0.05).scale(0));
  CHECK(c.carts / n == doctest::Approx(0.08).epsilon(0.08).scale(0));
  CHECK(c.purchases / n == doctest::Approx(0.02).epsilon(0.12).scale(0));
}

TEST_CASE("funnel: calibrated intercepts hit the expected rates exactly on the calibration sample") {
  const synth::funnel::World w = synth::funnel::make_world(1000, 400, 5);
  const synth::funnel::Intercepts b = synth::funnel::calibrate(w, 5, 0.1, 0.03, 0.01);
  CHECK(std::isfinite(b.click));
  CHECK(std::isfinite(b.cart));
  CHECK(std::isfinite(b.purchase));
  // Recompute the expected rates on the same calibration stream.
  synth::funnel::ImpressionStream stream(w, synth::stream_seed(5, 5));
  double click = 0, cart = 0, purchase = 0;
  for (std::uint64_t i = 0; i < synth::funnel::kCalibrationRows; ++i) {
    const synth::funnel::Impression m = stream.next();
    const double pc = synth::sigmoid(b.click + m.click_logit), pa = synth::sigmoid(b.cart + m.cart_logit);
    click += pc;
    cart += pc * pa;
    purchase += pc * synth::funnel::purchase_given_click(pa, m.purchase_logit, b.purchase);
  }
  const double n = static_cast<double>(synth::funnel::kCalibrationRows);
  CHECK(click / n == doctest::Approx(0.1).epsilon(1e-6).scale(0));
  CHECK(cart / n == doctest::Approx(0.03).epsilon(1e-6).scale(0));
  CHECK(purchase / n == doctest::Approx(0.01).epsilon(1e-6).scale(0));
}

TEST_CASE("funnel: deterministic per seed, different across seeds, prefix-stable, options checked") {
  synth::FunnelOptions o;
  o.rows = 3000;
  o.seed = 42;
  o.users = 200;
  o.items = 100;
  const std::string a = funnel_text(o), b = funnel_text(o);
  CHECK(a == b);
  synth::FunnelOptions other = o;
  other.seed = 43;
  const std::string c = funnel_text(other);
  CHECK(a != c);
  // Not only the labels: the impressions differ too.
  CHECK(a.substr(0, 2000) != c.substr(0, 2000));
  synth::FunnelOptions shorter = o;
  shorter.rows = 1234;
  const std::string prefix = funnel_text(shorter);
  CHECK(a.compare(0, prefix.size(), prefix) == 0);

  synth::FunnelOptions bad = o;
  bad.cart_rate = 0.2;  // above the click rate
  CHECK_THROWS_AS(funnel_text(bad), mtlite::Error);
  bad = o;
  bad.purchase_rate = 0.1;  // equal to the click rate
  CHECK_THROWS_AS(funnel_text(bad), mtlite::Error);
  bad = o;
  bad.click_rate = 0.0;
  CHECK_THROWS_AS(funnel_text(bad), mtlite::Error);
  bad = o;
  bad.users = 0;
  CHECK_THROWS_AS(funnel_text(bad), mtlite::Error);
}

#ifdef MTLITE_SOURCE_ROOT
TEST_CASE("examples/funnel/model.json binds the funnel's columns") {
  std::ifstream file(std::string(MTLITE_SOURCE_ROOT) + "/examples/funnel/model.json");
  REQUIRE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  mtlite::Json j = mtlite::Json::parse(text.str());

  const std::set<std::string> header(std::begin(synth::funnel::kColumns), std::end(synth::funnel::kColumns));
  const mtlite::Json& data = j.at("data");
  CHECK(data.at("separator").as_string() == ",");
  CHECK(data.at("header").as_bool());
  CHECK(data.at("group").as_string() == "user_id");
  // Integer vocabularies as large as the generator's defaults.
  const synth::FunnelOptions defaults;
  const std::vector<std::pair<std::string, std::uint64_t>> sizes = {
      {"user_id", defaults.users}, {"item_id", defaults.items}, {"position", synth::funnel::kSlate},
      {"hour", synth::funnel::kHours}, {"user_segment", synth::funnel::kSegments},
      {"item_category", synth::funnel::kCategories}};
  std::set<std::string> bound;
  mtlite::Json features = mtlite::Json::array();
  for (const mtlite::Json& f : j.at("features").elements()) {
    const std::string column = f.at("column").as_string();
    CAPTURE(column);
    CHECK(header.count(column) == 1);
    CHECK(column != "click");
    CHECK(column != "cart");
    CHECK(column != "purchase");
    bound.insert(column);
    mtlite::Json copy = f;
    for (const auto& [name, size] : sizes)
      if (column == name) {
        CHECK(f.at("values").as_string() == "integers");
        CHECK(f.at("size").as_uint64() == size);
      }
    if (column == "device") {
      CHECK(f.at("values").as_string() == "strings");
      copy.set("size", 3);  // what the data layer's fit() finds
    }
    features.push(std::move(copy));
  }
  CHECK(bound.size() == header.size() - 4);  // every column but request_id and the labels
  CHECK(bound.count("request_id") == 0);
  j.set("features", std::move(features));

  const mtlite::Spec spec = mtlite::spec_from_json(j, {"data", "training"}, {"column", "values"}, {"column", "positive"});
  CHECK(spec.architecture == mtlite::Architecture::mmoe);
  REQUIRE(spec.tasks.size() == 3);
  CHECK(spec.tasks[0].name == "purchase");
  CHECK(spec.tasks[0].role == mtlite::TaskRole::main);
  CHECK(spec.tasks[1].role == mtlite::TaskRole::auxiliary);
  CHECK(spec.tasks[2].role == mtlite::TaskRole::auxiliary);
  for (const mtlite::Json& t : j.at("tasks").elements()) {
    CHECK(t.at("column").as_string() == t.at("name").as_string());
    CHECK(t.at("positive").size() == 1);
    CHECK(t.at("positive")[0].as_string() == "1");
  }
}
#endif

TEST_CASE("CsvWriter: exact number formats and long fields") {
  synth::StringSink sink;
  synth::CsvWriter w(sink);
  w.cents(1999);
  w.cents(5);
  w.cents(100);
  w.fixed(0.1, 2);
  w.fixed(4.25, 1);
  w.integer(-42);
  w.shortest(0.1f);
  w.text("mobile");
  w.end_row();
  const std::string long_field(10000, 'a');
  w.text(long_field);
  w.integer(7);
  w.end_row();
  for (int i = 0; i < 200000; ++i) {  // more than one buffer
    w.integer(i);
    w.end_row();
  }
  w.finish();
  CHECK(sink.text.compare(0, 40, "19.99,0.05,1.00,0.10,4.2,-42,0.1,mobile\n") == 0);
  CHECK(sink.text.compare(40, 10002, long_field + ",7") == 0);
  CHECK(w.bytes() == sink.text.size());
  CHECK(sink.text.size() > (1u << 20));
  CHECK(sink.text.compare(sink.text.size() - 7, 7, "199999\n") == 0);
}
