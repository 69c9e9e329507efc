// The generators behind `mtlite synth` (docs/synth.md): synthetic multi-task data written as CSV.
//
//   mmoe    the MMoE paper's regression tasks with a controlled correlation (docs/models.md, "Synthetic
//           data with controlled task correlation"): x ~ N(0, I_d), two labels y1, y2
//   funnel  e-commerce impressions with click -> cart / purchase labels from a hidden model
//           (shared latent user/item factors plus task-specific effects), for ESMM and auxiliary
//           learning
//
// Both are pure functions of their options: the same options and seed give the same bytes on one
// platform. Every random draw comes from mtlite::Rng (SplitMix64); normal draws go through its
// Box-Muller and the labels through exp/log/sin, whose libm results may differ in the last bits
// across platforms, so files from different platforms can differ in the last digit of a value
// (and, rarely, in a label drawn within rounding of its probability). The number of rows never changes the values of a row: a file of n
// rows is the first n rows of any longer file with the same options.
//
// The text goes to a Sink (a file, a gzip file, or memory in the tests).
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/core/hash.hpp>
#include <mtlite/core/random.hpp>
#include <mtlite/offline/metrics.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mtlite::synth {

// --- output ------------------------------------------------------------------------------------

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const char* data, std::size_t size) = 0;
};

class StringSink final : public Sink {
 public:
  void write(const char* data, std::size_t size) override { text.append(data, size); }
  std::string text;
};

// Called with the number of rows written so far, every kProgressEvery rows and once at the end.
using Progress = std::function<void(std::uint64_t rows_done)>;
inline constexpr std::uint64_t kProgressEvery = 1 << 16;

// CSV text in a 1 MiB buffer, handed to the sink as it fills. Numbers go through std::to_chars:
// no locale, no printf. finish() writes what is left; a writer destroyed without it drops the tail
// (the caller is unwinding from an error anyway).
class CsvWriter {
 public:
  explicit CsvWriter(Sink& sink) : sink_(sink), buf_(new char[kCapacity + kSlack]) {}
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;

  void text(std::string_view s) {
    begin_field();
    if (s.size() > kSlack / 2) {
      flush();
      sink_.write(s.data(), s.size());
      bytes_ += s.size();
      return;
    }
    std::memcpy(buf_.get() + pos_, s.data(), s.size());
    pos_ += s.size();
  }
  void integer(std::int64_t v) {
    begin_field();
    pos_ = static_cast<std::size_t>(std::to_chars(at(), end(), v).ptr - buf_.get());
  }
  // The shortest text that reads back as exactly v.
  void shortest(float v) {
    begin_field();
    pos_ = static_cast<std::size_t>(std::to_chars(at(), end(), v).ptr - buf_.get());
  }
  void fixed(double v, int decimals) {
    begin_field();
    pos_ = static_cast<std::size_t>(std::to_chars(at(), end(), v, std::chars_format::fixed, decimals).ptr - buf_.get());
  }
  // 1999 -> "19.99", exactly.
  void cents(std::uint64_t c) {
    begin_field();
    char* p = std::to_chars(at(), end(), c / 100).ptr;
    *p++ = '.';
    *p++ = static_cast<char>('0' + c % 100 / 10);
    *p++ = static_cast<char>('0' + c % 10);
    pos_ = static_cast<std::size_t>(p - buf_.get());
  }
  void end_row() {
    if (pos_ >= kCapacity) flush();
    buf_[pos_++] = '\n';
    first_ = true;
  }
  void finish() { flush(); }
  std::uint64_t bytes() const noexcept { return bytes_ + pos_; }

 private:
  static constexpr std::size_t kCapacity = 1 << 20;
  static constexpr std::size_t kSlack = 4096;  // room for any one field past kCapacity

  void begin_field() {
    if (pos_ >= kCapacity) flush();
    if (!first_) buf_[pos_++] = ',';
    first_ = false;
  }
  char* at() noexcept { return buf_.get() + pos_; }
  char* end() noexcept { return buf_.get() + kCapacity + kSlack; }
  void flush() {
    if (pos_ == 0) return;
    sink_.write(buf_.get(), pos_);
    bytes_ += pos_;
    pos_ = 0;
  }

  Sink& sink_;
  std::unique_ptr<char[]> buf_;
  std::size_t pos_ = 0;
  std::uint64_t bytes_ = 0;
  bool first_ = true;
};

// --- shared helpers ----------------------------------------------------------------------------

// Independent generators for the parts of one data set ("streams"), all from the one seed.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) noexcept {
  return mix64(seed ^ mix64(0x632be59bd9b4e019ull * (stream + 1)));
}
// Uniform in [0, 1) with 53 random bits.
inline double uniform01(Rng& rng) noexcept { return static_cast<double>(rng.next() >> 11) * 0x1.0p-53; }
inline double sigmoid(double x) noexcept { return 1.0 / (1.0 + std::exp(-x)); }

inline double dot(const double* a, const double* b, std::size_t n) noexcept {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
inline double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw Error("cosine: vectors of different lengths");
  const std::size_t n = a.size();
  return dot(a.data(), b.data(), n) / std::sqrt(dot(a.data(), a.data(), n) * dot(b.data(), b.data(), n));
}

// Running mean, variance and covariance of two series (Welford), numerically safe for any count.
struct PairMoments {
  std::uint64_t n = 0;
  double mean[2] = {0, 0}, m2[2] = {0, 0}, c12 = 0;
  void add(double a, double b) noexcept {
    ++n;
    const double da = a - mean[0];
    mean[0] += da / static_cast<double>(n);
    const double db = b - mean[1];
    mean[1] += db / static_cast<double>(n);
    m2[0] += da * (a - mean[0]);
    m2[1] += db * (b - mean[1]);
    c12 += da * (b - mean[1]);
  }
  double variance(int j) const noexcept { return n > 1 ? m2[j] / static_cast<double>(n - 1) : 0.0; }
  double correlation() const noexcept { return c12 / std::sqrt(m2[0] * m2[1]); }
};

// --- mmoe --------------------------------------------------------------------------------------
// Ma et al., KDD 2018, section 3.2, with the constants of the first published generator:
//   u1, u2 orthonormal in R^d (Gram-Schmidt on two Gaussian vectors)
//   w1 = c u1,  w2 = c (p u1 + sqrt(1 - p^2) u2)            so cos(w1, w2) = p
//   x ~ N(0, I_d)
//   y_j = w_j^T x + sum_{i=0..m-1} sin(alpha_i w_j^T x + beta_i) + eps_j,  eps_j ~ N(0, noise^2)
//   c = 1, m = 10, alpha_i = i + 1, beta_i = i^2, noise = 0.01 (a standard deviation)

inline constexpr double kMmoeScale = 1.0;  // c
inline constexpr int kMmoeTerms = 10;      // m
inline constexpr double mmoe_alpha(int i) noexcept { return i + 1.0; }
inline constexpr double mmoe_beta(int i) noexcept { return static_cast<double>(i) * i; }
inline constexpr std::uint32_t kMmoeMaxDim = 1u << 16;

// The noiseless label as a function of z = w_j^T x.
inline double mmoe_target(double z) noexcept {
  double y = z;
  for (int i = 0; i < kMmoeTerms; ++i) y += std::sin(mmoe_alpha(i) * z + mmoe_beta(i));
  return y;
}

struct MmoeOptions {
  double correlation = 0.5;  // p in [-1, 1]
  std::uint64_t rows = 0;
  std::uint32_t dim = 100;   // d >= 2
  std::uint64_t seed = 1;
  double noise = 0.01;       // standard deviation of eps_j
};

struct MmoeWeights {
  std::vector<double> u1, u2, w1, w2;
};

// u1 and u2 depend on (dim, seed) only, so data sets that differ only in p share x and u1, u2.
inline MmoeWeights mmoe_weights(std::uint32_t dim, double p, std::uint64_t seed) {
  if (dim < 2 || dim > kMmoeMaxDim) throw Error("mmoe: dim must be in [2, " + std::to_string(kMmoeMaxDim) + "]");
  if (!(p >= -1.0 && p <= 1.0)) throw Error("mmoe: correlation must be in [-1, 1]");
  Rng rng(stream_seed(seed, 1));
  MmoeWeights w;
  w.u1.assign(dim, 0.0);
  w.u2.assign(dim, 0.0);
  const auto normalize = [](std::vector<double>& v) {
    const double n = std::sqrt(dot(v.data(), v.data(), v.size()));
    for (double& x : v) x /= n;
    return n;
  };
  do {
    for (double& x : w.u1) x = rng.normal();
  } while (normalize(w.u1) < 1e-3);
  do {
    for (double& x : w.u2) x = rng.normal();
    for (int pass = 0; pass < 2; ++pass) {  // twice: classical Gram-Schmidt loses orthogonality once
      const double d = dot(w.u1.data(), w.u2.data(), dim);
      for (std::uint32_t k = 0; k < dim; ++k) w.u2[k] -= d * w.u1[k];
    }
  } while (normalize(w.u2) < 1e-3);
  const double q = std::sqrt(std::max(0.0, 1.0 - p * p));
  w.w1.resize(dim);
  w.w2.resize(dim);
  for (std::uint32_t k = 0; k < dim; ++k) {
    w.w1[k] = kMmoeScale * w.u1[k];
    w.w2[k] = kMmoeScale * (p * w.u1[k] + q * w.u2[k]);
  }
  return w;
}

inline std::vector<std::string> mmoe_header(std::uint32_t dim) {
  std::vector<std::string> h;
  for (std::uint32_t k = 0; k < dim; ++k) h.push_back("x" + std::to_string(k));
  h.push_back("y1");
  h.push_back("y2");
  return h;
}

struct MmoeSummary {
  std::uint64_t rows = 0;
  std::size_t columns = 0;
  std::uint64_t bytes = 0;           // uncompressed CSV
  double cosine = 0.0;               // cos(w1, w2), equal to p up to rounding
  double label_mean[2] = {0, 0};
  double label_stddev[2] = {0, 0};
  double label_correlation = 0.0;    // Pearson correlation of y1 and y2 over the rows
};

// Each row draws x_0..x_{d-1}, then eps_1, then eps_2 from the data stream. x is rounded to float
// first and the labels are computed from the rounded values, so the written x explain the written
// y exactly (up to the float rounding of y itself).
inline MmoeSummary generate_mmoe(const MmoeOptions& o, Sink& sink, const Progress& progress = {}) {
  if (!(o.noise >= 0.0 && std::isfinite(o.noise))) throw Error("mmoe: noise must be a finite number >= 0");
  const MmoeWeights w = mmoe_weights(o.dim, o.correlation, o.seed);
  const std::size_t d = o.dim;
  CsvWriter out(sink);
  const std::vector<std::string> header = mmoe_header(o.dim);
  for (const std::string& h : header) out.text(h);
  out.end_row();

  Rng rng(stream_seed(o.seed, 2));
  std::vector<double> x(d);
  PairMoments moments;
  for (std::uint64_t r = 0; r < o.rows; ++r) {
    for (std::size_t k = 0; k < d; ++k) {
      const float v = static_cast<float>(rng.normal());
      x[k] = v;
      out.shortest(v);
    }
    const double e1 = rng.normal(), e2 = rng.normal();
    const auto y1 = static_cast<float>(mmoe_target(dot(w.w1.data(), x.data(), d)) + o.noise * e1);
    const auto y2 = static_cast<float>(mmoe_target(dot(w.w2.data(), x.data(), d)) + o.noise * e2);
    out.shortest(y1);
    out.shortest(y2);
    out.end_row();
    moments.add(y1, y2);
    if (progress && (r + 1) % kProgressEvery == 0) progress(r + 1);
  }
  out.finish();
  if (progress) progress(o.rows);

  MmoeSummary s;
  s.rows = o.rows;
  s.columns = header.size();
  s.bytes = out.bytes();
  s.cosine = cosine(w.w1, w.w2);
  for (int j = 0; j < 2; ++j) {
    s.label_mean[j] = moments.mean[j];
    s.label_stddev[j] = std::sqrt(moments.variance(j));
  }
  s.label_correlation = moments.correlation();
  return s;
}

// --- funnel ------------------------------------------------------------------------------------
// Impressions in requests of kSlate items; labels click, cart, purchase from a hidden model
// (docs/synth.md spells out every term). The funnel: cart and purchase happen only after a click;
// a purchase is more likely after a cart (log-odds + kCartLift) but needs none ("buy now").

namespace funnel {

inline constexpr int kLatent = 8;       // latent factor dimension
inline constexpr int kSegments = 8;     // user segments 0..7
inline constexpr int kCategories = 32;  // item categories 0..31
inline constexpr int kDevices = 3;
inline constexpr int kSlate = 10;       // impressions per request, positions 0..9
inline constexpr int kHours = 24;
inline constexpr const char* kDeviceNames[kDevices] = {"mobile", "desktop", "tablet"};
inline constexpr double kDevicePreference[kDevices] = {0.60, 0.30, 0.10};
inline constexpr double kOwnDevice = 0.85;  // a request uses the user's own device, else any

// Discounts on an impression and their probabilities.
inline constexpr int kDiscounts = 5;
inline constexpr double kDiscount[kDiscounts] = {0.0, 0.10, 0.20, 0.30, 0.50};
inline constexpr double kDiscountCdf[kDiscounts] = {0.70, 0.82, 0.92, 0.97, 1.0};

// Requests per hour of day (relative).
inline constexpr double kHourWeight[kHours] = {2, 1.5, 1, 0.7, 0.5, 0.5, 1, 2, 3, 3.5, 4, 4,
                                               4.5, 4.5, 4, 4, 4.5, 5, 6, 7, 7.5, 7, 5, 3};

// The hidden model's coefficients (logit contributions).
struct Coefficients {
  // click (every impression)
  double click_affinity = 1.6, click_popularity = 0.5, click_activity = 0.3, click_position = -0.12,
         click_discount = 0.25;
  double click_device[kDevices] = {0.10, -0.10, 0.0};
  // cart (after a click)
  double cart_affinity = 0.5, cart_quality = 0.3, cart_price = -0.4, cart_habit = 0.4;
  double cart_device[kDevices] = {-0.20, 0.30, 0.0};
  // purchase (after a click), plus kCartLift when the click led to a cart
  double purchase_affinity = 0.5, purchase_quality = 0.4, purchase_price = -0.6, purchase_tenure = 0.25;
  double purchase_device[kDevices] = {-0.30, 0.30, 0.10};
  double cart_lift = 1.5;
};
inline const Coefficients kModel{};

inline double hour_click(int h) noexcept { return 0.15 * std::cos(6.283185307179586 * (h - 20) / 24.0); }
inline double hour_purchase(int h) noexcept {
  return (h >= 19 && h <= 22) ? 0.3 : (h <= 5) ? -0.3 : 0.0;
}

inline constexpr std::uint64_t kCalibrationRows = 200000;
inline constexpr std::uint64_t kOracleRows = 1000000;
inline constexpr std::uint32_t kMaxUsers = 10000000, kMaxItems = 10000000;

inline const char* const kColumns[] = {
    "request_id",    "user_id", "item_id",     "position",        "device",           "hour",
    "user_segment",  "item_category", "price", "discount",        "item_rating",      "item_popularity",
    "user_activity", "user_tenure_days", "click", "cart",         "purchase"};
inline constexpr std::size_t kColumnCount = sizeof kColumns / sizeof kColumns[0];

// Everything fixed per user and per item, and the per-segment/category structure.
struct World {
  std::uint32_t users = 0, items = 0;
  // users
  std::vector<std::uint8_t> user_segment, user_device;
  std::vector<double> user_activity_latent, user_price_sensitivity, user_cart_habit, user_tenure_term;
  std::vector<std::uint32_t> user_activity, user_tenure_days;
  std::vector<double> user_vec;  // users x kLatent
  std::vector<double> user_cdf;  // request share ~ exp(0.7 activity)
  // items
  std::vector<std::uint8_t> item_category;
  std::vector<double> item_quality, item_popularity_latent;
  std::vector<std::uint32_t> item_price_cents, item_rating_tenths, item_popularity;
  std::vector<double> item_vec;  // items x kLatent
  std::vector<double> item_cdf;  // impression share ~ exp(0.5 popularity)
  double category_log_price[kCategories] = {};
  double hour_cdf[kHours] = {};
};

inline World make_world(std::uint32_t users, std::uint32_t items, std::uint64_t seed) {
  if (users < 1 || users > kMaxUsers) throw Error("funnel: users must be in [1, " + std::to_string(kMaxUsers) + "]");
  if (items < 1 || items > kMaxItems) throw Error("funnel: items must be in [1, " + std::to_string(kMaxItems) + "]");
  Rng rng(stream_seed(seed, 6));
  World w;
  w.users = users;
  w.items = items;
  double segment_vec[kSegments][kLatent], category_vec[kCategories][kLatent], segment_price[kSegments];
  for (auto& v : segment_vec)
    for (double& x : v) x = rng.normal();
  for (auto& v : category_vec)
    for (double& x : v) x = rng.normal();
  for (double& s : segment_price) s = std::exp(0.4 * rng.normal());
  for (double& c : w.category_log_price) c = std::log(25.0) + 0.9 * rng.normal();
  double acc = 0.0;
  for (int h = 0; h < kHours; ++h) w.hour_cdf[h] = acc += kHourWeight[h];

  w.user_segment.resize(users);
  w.user_device.resize(users);
  w.user_activity_latent.resize(users);
  w.user_price_sensitivity.resize(users);
  w.user_cart_habit.resize(users);
  w.user_tenure_term.resize(users);
  w.user_activity.resize(users);
  w.user_tenure_days.resize(users);
  w.user_vec.resize(std::size_t{users} * kLatent);
  w.user_cdf.resize(users);
  acc = 0.0;
  for (std::uint32_t u = 0; u < users; ++u) {
    const auto s = static_cast<int>(rng.below(kSegments));
    w.user_segment[u] = static_cast<std::uint8_t>(s);
    const double pd = uniform01(rng);
    w.user_device[u] = pd < kDevicePreference[0] ? 0 : pd < kDevicePreference[0] + kDevicePreference[1] ? 1 : 2;
    for (int k = 0; k < kLatent; ++k) w.user_vec[std::size_t{u} * kLatent + k] = 0.9 * segment_vec[s][k] + 0.45 * rng.normal();
    const double act = rng.normal();
    w.user_activity_latent[u] = act;
    w.user_activity[u] = static_cast<std::uint32_t>(std::lround(std::exp(1.5 + 0.8 * act + 0.3 * rng.normal())));
    w.user_price_sensitivity[u] = segment_price[s] * std::exp(0.3 * rng.normal());
    w.user_cart_habit[u] = rng.normal();
    const double t = rng.normal();
    w.user_tenure_term[u] = t;
    w.user_tenure_days[u] = static_cast<std::uint32_t>(std::min(4000.0, std::floor(std::exp(5.5 + t))));
    w.user_cdf[u] = acc += std::exp(0.7 * act);
  }

  w.item_category.resize(items);
  w.item_quality.resize(items);
  w.item_popularity_latent.resize(items);
  w.item_price_cents.resize(items);
  w.item_rating_tenths.resize(items);
  w.item_popularity.resize(items);
  w.item_vec.resize(std::size_t{items} * kLatent);
  w.item_cdf.resize(items);
  acc = 0.0;
  for (std::uint32_t i = 0; i < items; ++i) {
    const auto c = static_cast<int>(rng.below(kCategories));
    w.item_category[i] = static_cast<std::uint8_t>(c);
    for (int k = 0; k < kLatent; ++k) w.item_vec[std::size_t{i} * kLatent + k] = 0.85 * category_vec[c][k] + 0.5 * rng.normal();
    const double q = rng.normal();
    w.item_quality[i] = q;
    const double pop = 0.6 * q + 0.8 * rng.normal();
    w.item_popularity_latent[i] = pop;
    w.item_popularity[i] = static_cast<std::uint32_t>(std::lround(std::exp(4.0 + pop)));
    const double price = std::exp(w.category_log_price[c] + 0.5 * rng.normal());
    w.item_price_cents[i] = static_cast<std::uint32_t>(std::clamp(std::lround(price * 100.0), 99L, 10000000L));
    const double rating = std::clamp(3.9 + 0.45 * q + 0.25 * rng.normal(), 1.0, 5.0);
    w.item_rating_tenths[i] = static_cast<std::uint32_t>(std::lround(rating * 10.0));
    w.item_cdf[i] = acc += std::exp(0.5 * pop);
  }
  return w;
}

// One impression: what is written, and the hidden logits without their intercepts (purchase
// without the cart lift).
struct Impression {
  std::uint64_t request = 0;
  std::uint32_t user = 0, item = 0, price_cents = 0;
  int position = 0, device = 0, hour = 0, discount = 0;
  double click_logit = 0, cart_logit = 0, purchase_logit = 0;
};

inline std::uint32_t pick(const std::vector<double>& cdf, double u) noexcept {
  const auto it = std::upper_bound(cdf.begin(), cdf.end(), u * cdf.back());
  return static_cast<std::uint32_t>(std::min<std::ptrdiff_t>(it - cdf.begin(), static_cast<std::ptrdiff_t>(cdf.size()) - 1));
}

// Impressions request by request: kSlate per request, each item drawn by exposure share
// (repeats within a request are possible). Per request: user, device, hour; per impression: item,
// discount; always the same draws in the same order.
class ImpressionStream {
 public:
  ImpressionStream(const World& w, std::uint64_t stream) : w_(w), rng_(stream) {}

  Impression next() {
    if (slot_ == kSlate) {
      ++request_;
      slot_ = 0;
      user_ = pick(w_.user_cdf, uniform01(rng_));
      const double own = uniform01(rng_);
      const auto any = static_cast<int>(rng_.below(kDevices));
      device_ = own < kOwnDevice ? w_.user_device[user_] : any;
      const double* hours = w_.hour_cdf;
      const double uh = uniform01(rng_) * hours[kHours - 1];
      hour_ = static_cast<int>(std::min<std::ptrdiff_t>(std::upper_bound(hours, hours + kHours, uh) - hours, kHours - 1));
    }
    Impression m;
    m.request = request_;
    m.user = user_;
    m.position = slot_++;
    m.device = device_;
    m.hour = hour_;
    m.item = pick(w_.item_cdf, uniform01(rng_));
    const double ud = uniform01(rng_);
    while (m.discount < kDiscounts - 1 && ud >= kDiscountCdf[m.discount]) ++m.discount;
    const std::uint32_t list = w_.item_price_cents[m.item];
    m.price_cents = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::lround(list * (1.0 - kDiscount[m.discount]))));

    const Coefficients& c = kModel;
    const double* a = &w_.user_vec[std::size_t{m.user} * kLatent];
    const double* b = &w_.item_vec[std::size_t{m.item} * kLatent];
    const double affinity = dot(a, b, kLatent) / std::sqrt(static_cast<double>(kLatent));
    const double relative_price =
        std::log(m.price_cents / 100.0) - w_.category_log_price[w_.item_category[m.item]];
    const double sensitivity = w_.user_price_sensitivity[m.user];
    const double quality = w_.item_quality[m.item];
    m.click_logit = c.click_affinity * affinity + c.click_popularity * w_.item_popularity_latent[m.item] +
                    c.click_activity * w_.user_activity_latent[m.user] + c.click_position * m.position +
                    c.click_discount * (m.discount > 0) + c.click_device[m.device] + hour_click(m.hour);
    m.cart_logit = c.cart_affinity * affinity + c.cart_quality * quality +
                   c.cart_price * sensitivity * relative_price + c.cart_habit * w_.user_cart_habit[m.user] +
                   c.cart_device[m.device];
    m.purchase_logit = c.purchase_affinity * affinity + c.purchase_quality * quality +
                       c.purchase_price * sensitivity * relative_price +
                       c.purchase_tenure * w_.user_tenure_term[m.user] + c.purchase_device[m.device] +
                       hour_purchase(m.hour);
    return m;
  }

 private:
  const World& w_;
  Rng rng_;
  std::uint64_t request_ = ~std::uint64_t{0};
  int slot_ = kSlate;
  std::uint32_t user_ = 0;
  int device_ = 0, hour_ = 0;
};

struct Intercepts {
  double click = 0, cart = 0, purchase = 0;
};

// P(purchase | click) given the cart probability and the purchase logit without intercept.
inline double purchase_given_click(double p_cart, double purchase_logit, double intercept) noexcept {
  return p_cart * sigmoid(intercept + purchase_logit + kModel.cart_lift) +
         (1.0 - p_cart) * sigmoid(intercept + purchase_logit);
}

// Smallest b in [-40, 40] (to 1e-10) with mean(b) >= target, for a mean increasing in b.
template <class F>
double bisect(F&& mean, double target) {
  double lo = -40.0, hi = 40.0;
  for (int it = 0; it < 50; ++it) {
    const double mid = 0.5 * (lo + hi);
    (mean(mid) < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// Intercepts that make the expected rates over kCalibrationRows impressions (an independent
// stream from the same world) equal the requested ones: click first, then cart, then purchase.
inline Intercepts calibrate(const World& w, std::uint64_t seed, double click_rate, double cart_rate,
                            double purchase_rate) {
  ImpressionStream stream(w, stream_seed(seed, 5));
  const std::size_t n = kCalibrationRows;
  std::vector<double> c0(n), a0(n), p0(n), pc(n), pa(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Impression m = stream.next();
    c0[i] = m.click_logit;
    a0[i] = m.cart_logit;
    p0[i] = m.purchase_logit;
  }
  const double inv = 1.0 / static_cast<double>(n);
  Intercepts b;
  b.click = bisect([&](double x) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += sigmoid(x + c0[i]);
    return s * inv;
  }, click_rate);
  for (std::size_t i = 0; i < n; ++i) pc[i] = sigmoid(b.click + c0[i]);
  b.cart = bisect([&](double x) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += pc[i] * sigmoid(x + a0[i]);
    return s * inv;
  }, cart_rate);
  for (std::size_t i = 0; i < n; ++i) pa[i] = sigmoid(b.cart + a0[i]);
  b.purchase = bisect([&](double x) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += pc[i] * purchase_given_click(pa[i], p0[i], x);
    return s * inv;
  }, purchase_rate);
  return b;
}

}  // namespace funnel

struct FunnelOptions {
  std::uint64_t rows = 0;
  std::uint64_t seed = 1;
  std::uint32_t users = 10000;
  std::uint32_t items = 2000;
  double click_rate = 0.10;     // P(click)
  double cart_rate = 0.03;      // P(cart), every cart after a click
  double purchase_rate = 0.01;  // P(purchase), every purchase after a click
};

struct FunnelSummary {
  std::uint64_t rows = 0, requests = 0;
  std::size_t columns = 0;
  std::uint64_t bytes = 0;
  funnel::Intercepts intercepts;
  double requested[3] = {0, 0, 0};  // click, cart, purchase
  double realised[3] = {0, 0, 0};
  std::uint64_t positives[3] = {0, 0, 0};
  // Among clicks: realised P(purchase | cart) and P(purchase | no cart).
  double purchase_after_cart = 0, purchase_without_cart = 0;
  // The hidden model's own probabilities scored against the drawn labels over the first
  // min(rows, kOracleRows) rows: the best AUC any model can reach (a learned one gets less).
  std::uint64_t oracle_rows = 0;
  double oracle_auc[3] = {0, 0, 0};  // P(click), P(cart), P(purchase) over all impressions
  double oracle_cvr_auc = 0;         // P(purchase | click) over clicked impressions
  double transfer_auc = 0;           // P(click) alone ranking purchases: the signal click shares
};

inline void check_funnel_options(const FunnelOptions& o) {
  const auto rate = [](double r, const char* name) {
    if (!(r > 0.0 && r < 1.0)) throw Error(std::string("funnel: ") + name + " must be in (0, 1)");
  };
  rate(o.click_rate, "click rate");
  rate(o.cart_rate, "cart rate");
  rate(o.purchase_rate, "purchase rate");
  if (!(o.cart_rate < o.click_rate)) throw Error("funnel: cart rate must be below the click rate (a cart needs a click)");
  if (!(o.purchase_rate < o.click_rate))
    throw Error("funnel: purchase rate must be below the click rate (a purchase needs a click)");
}

// Per row the label stream draws three uniforms u_click, u_cart, u_purchase (always all three):
//   click = u_click < P(click); cart = click && u_cart < P(cart | click);
//   purchase = click && u_purchase < sigmoid(b_purchase + purchase_logit + lift * cart)
inline FunnelSummary generate_funnel(const FunnelOptions& o, Sink& sink, const Progress& progress = {}) {
  using namespace funnel;
  check_funnel_options(o);
  const World world = make_world(o.users, o.items, o.seed);
  const Intercepts b = calibrate(world, o.seed, o.click_rate, o.cart_rate, o.purchase_rate);

  CsvWriter out(sink);
  for (const char* h : kColumns) out.text(h);
  out.end_row();

  ImpressionStream stream(world, stream_seed(o.seed, 3));
  Rng labels(stream_seed(o.seed, 4));
  const std::size_t oracle = static_cast<std::size_t>(std::min(o.rows, kOracleRows));
  std::vector<float> p_click(oracle), p_cart(oracle), p_purchase(oracle), p_cvr(oracle);
  std::vector<float> y_click(oracle), y_cart(oracle), y_purchase(oracle);
  std::uint64_t positives[3] = {0, 0, 0}, cart_clicks = 0, cart_purchases = 0, plain_purchases = 0;
  std::uint64_t requests = 0;
  for (std::uint64_t r = 0; r < o.rows; ++r) {
    const Impression m = stream.next();
    requests = m.request + 1;
    const double pc = sigmoid(b.click + m.click_logit);
    const double pa = sigmoid(b.cart + m.cart_logit);
    const double u_click = uniform01(labels), u_cart = uniform01(labels), u_purchase = uniform01(labels);
    const bool click = u_click < pc;
    const bool cart = click && u_cart < pa;
    const bool purchase =
        click && u_purchase < sigmoid(b.purchase + m.purchase_logit + (cart ? kModel.cart_lift : 0.0));
    positives[0] += click;
    positives[1] += cart;
    positives[2] += purchase;
    cart_clicks += cart;
    cart_purchases += cart && purchase;
    plain_purchases += !cart && purchase;
    if (r < oracle) {
      const double cvr = purchase_given_click(pa, m.purchase_logit, b.purchase);
      p_click[r] = static_cast<float>(pc);
      p_cart[r] = static_cast<float>(pc * pa);
      p_purchase[r] = static_cast<float>(pc * cvr);
      p_cvr[r] = static_cast<float>(cvr);
      y_click[r] = click;
      y_cart[r] = cart;
      y_purchase[r] = purchase;
    }

    out.integer(static_cast<std::int64_t>(m.request));
    out.integer(m.user);
    out.integer(m.item);
    out.integer(m.position);
    out.text(kDeviceNames[m.device]);
    out.integer(m.hour);
    out.integer(world.user_segment[m.user]);
    out.integer(world.item_category[m.item]);
    out.cents(m.price_cents);
    out.fixed(kDiscount[m.discount], 2);
    out.fixed(world.item_rating_tenths[m.item] / 10.0, 1);
    out.integer(world.item_popularity[m.item]);
    out.integer(world.user_activity[m.user]);
    out.integer(world.user_tenure_days[m.user]);
    out.integer(click);
    out.integer(cart);
    out.integer(purchase);
    out.end_row();
    if (progress && (r + 1) % kProgressEvery == 0) progress(r + 1);
  }
  out.finish();
  if (progress) progress(o.rows);

  FunnelSummary s;
  s.rows = o.rows;
  s.requests = requests;
  s.columns = kColumnCount;
  s.bytes = out.bytes();
  s.intercepts = b;
  const double requested[3] = {o.click_rate, o.cart_rate, o.purchase_rate};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int j = 0; j < 3; ++j) {
    s.requested[j] = requested[j];
    s.positives[j] = positives[j];
    s.realised[j] = o.rows ? static_cast<double>(positives[j]) / static_cast<double>(o.rows) : nan;
  }
  const std::uint64_t clicks_without_cart = positives[0] - cart_clicks;
  s.purchase_after_cart = cart_clicks ? static_cast<double>(cart_purchases) / static_cast<double>(cart_clicks) : nan;
  s.purchase_without_cart =
      clicks_without_cart ? static_cast<double>(plain_purchases) / static_cast<double>(clicks_without_cart) : nan;
  s.oracle_rows = oracle;
  s.oracle_auc[0] = auc(p_click, y_click);
  s.oracle_auc[1] = auc(p_cart, y_cart);
  s.oracle_auc[2] = auc(p_purchase, y_purchase);
  std::vector<std::uint8_t> clicked(oracle);
  for (std::size_t i = 0; i < oracle; ++i) clicked[i] = y_click[i] > 0.5f;
  s.oracle_cvr_auc = auc(p_cvr, y_purchase, {}, clicked);
  s.transfer_auc = auc(p_click, y_purchase);
  return s;
}

}  // namespace mtlite::synth
