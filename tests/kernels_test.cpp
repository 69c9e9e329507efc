// The kernels (kernels/): every SIMD kernel against its scalar reference, every scalar reference
// against a naive computation written here (double precision, unpacked weights), on sizes that
// are and are not multiples of the vector width (16 floats on AVX-512, 8 on AVX2, 4 on SSE/NEON)
// and of the 16-column panel.
//
// Built with -Dsimd=none (MTLITE_NO_SIMD) only the reference and dispatch tests run; they still
// hold every ref kernel to the naive computation.
//
// Tolerances. u = 2^-24 is the unit roundoff of float (FLT_EPSILON = 2u).
//   dense / mix   a float dot product of K terms plus a bias, summed in order, is within
//                 (K+1) u S of the exact value, S = |b| + sum |x_k w_k| (Higham, ch. 3; an FMA
//                 only removes roundings). The activations after it are 1-Lipschitz and add a
//                 few ulp of their own. So ref vs exact: (K+1) u S + 4 eps |y|; SIMD vs ref: two
//                 such errors. A wrong weight, column or row is off by about S / K or more,
//                 which is above this bound for every K used here (K <= 1000: ratio >= 8).
//   activation    SIMD exp/tanh (xsimd) vs libm: measured <= 2.2 ulp relative; bound 4 eps |y|.
//                 identity and relu are exact.
//   softmax       n exponentials summed (all positive, so the sum is within n u relative),
//                 one division and one multiply, exp within 2 ulp: (n + 8) eps relative.
//   add_rows      ref vs exact: count additions, (count + 1) u S. The SIMD and scalar versions
//                 perform the same float additions in the same order (out[d], then the rows in
//                 order), so they must agree bit for bit.
// Every output not meant to be written (columns >= N, rows >= m, padding of the output stride)
// is filled with a NaN sentinel payload and must keep its exact bits; padding of the input
// strides is NaN, so a kernel reading it produces NaN and fails the comparison.
#include <doctest/doctest.h>

#include <mtlite/core/random.hpp>
#include <mtlite/kernels/kernels.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

using mtlite_test::act_exact;
using mtlite_test::random_vector;

using mtlite::Activation;
using mtlite::Rng;
namespace K = mtlite::kernels;
namespace ref = mtlite::kernels::ref;

constexpr double kU = FLT_EPSILON / 2.0;  // unit roundoff of float
constexpr double kEps = FLT_EPSILON;

constexpr Activation kActs[] = {Activation::identity, Activation::relu, Activation::sigmoid,
                                Activation::tanh};

// Vector lengths: around 4, 8, 16, 32 and 64 (one to four AVX-512 vectors), and odd ones.
const std::vector<std::size_t> kSizes = {1,  2,  3,  4,  5,  7,  8,  9,  15,  16,  17,
                                         31, 32, 33, 48, 63, 64, 65, 100, 128, 257};

// A quiet NaN with a payload no kernel computes: "never written" is checked bit for bit.
float sentinel() {
  const std::uint32_t bits = 0x7fc0dea1u;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
bool is_sentinel(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits == 0x7fc0dea1u;
}
bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

const float kNaN = std::numeric_limits<float>::quiet_NaN();



// Collects the first few mismatches of one comparison; one doctest assertion per comparison
// keeps the assertion count (and the runtime) reasonable.
struct Report {
  std::size_t failures = 0;
  std::ostringstream first;
  void fail(const std::string& what) {
    if (failures++ < 5) first << what << "\n";
  }
  // |got - want| <= tol, NaN fails.
  void near(double got, double want, double tol, const char* what, std::size_t r, std::size_t c) {
    if (!(std::fabs(got - want) <= tol)) {
      std::ostringstream s;
      s.precision(9);
      s << what << " [" << r << "][" << c << "]: got " << got << ", want " << want
        << ", |diff| " << std::fabs(got - want) << " > tol " << tol;
      fail(s.str());
    }
  }
  bool ok() const { return failures == 0; }
  std::string text() const { return std::to_string(failures) + " mismatches; first:\n" + first.str(); }
};
#define CHECK_REPORT(rep) CHECK_MESSAGE((rep).ok(), (rep).text())

// A dense layer: the unpacked weights (row-major [N][K]) and bias, and their packed form.
struct Layer {
  std::size_t k = 0, n = 0;
  std::vector<float> w, b;          // w[n*K + k], b[n]
  std::vector<float> panels, bias;  // packed
  std::vector<Activation> act;      // one per panel

  Layer(Rng& rng, std::size_t K_, std::size_t N_, float lo = -1.0f, float hi = 1.0f) : k(K_), n(N_) {
    w = random_vector(rng, n * k, lo, hi);
    b = random_vector(rng, n, lo, hi);
    const std::size_t P = K::panel_count(n);
    panels.assign(P * k * K::kPanel, 0.0f);
    bias.assign(P * K::kPanel, 0.0f);
    K::pack_panels(w.data(), n, k, panels.data());
    std::copy(b.begin(), b.end(), bias.begin());
    act.assign(P, Activation::identity);
  }
  K::DenseView view() const { return K::DenseView{k, n, panels.data(), bias.data(), act.data()}; }
  Activation act_of_column(std::size_t c) const { return act[c / K::kPanel]; }
};

// Input rows: m rows of K values, ldx apart, NaN in the stride padding.
std::vector<float> make_input(Rng& rng, std::size_t m, std::size_t k, std::size_t ldx) {
  std::vector<float> x(m * ldx, kNaN);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < k; ++c) x[r * ldx + c] = rng.uniform(-1.0f, 1.0f);
  return x;
}

// Exact pre-activations (double) and the magnitude S = |b| + sum |x w| of each, [r*N + c].
struct Exact {
  std::vector<double> pre, mag;
};
Exact exact_dense(const Layer& L, std::size_t m, const std::vector<float>& x, std::size_t ldx) {
  Exact e;
  e.pre.resize(m * L.n);
  e.mag.resize(m * L.n);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < L.n; ++c) {
      double s = L.b[c], a = std::fabs(static_cast<double>(L.b[c]));
      for (std::size_t i = 0; i < L.k; ++i) {
        const double p = static_cast<double>(x[r * ldx + i]) * L.w[c * L.k + i];
        s += p;
        a += std::fabs(p);
      }
      e.pre[r * L.n + c] = s;
      e.mag[r * L.n + c] = a;
    }
  return e;
}

using DenseFn = void (*)(std::size_t, const float*, std::size_t, const K::DenseView&, float*,
                         std::size_t) noexcept;

// Runs `fn` into a sentinel-filled output of (m + 2) rows of ldy floats and checks that only
// [0, m) x [0, N) was written.
std::vector<float> run_dense(DenseFn fn, std::size_t m, const std::vector<float>& x, std::size_t ldx,
                             const Layer& L, std::size_t ldy, Report& rep) {
  std::vector<float> y((m + 2) * ldy, sentinel());
  fn(m, x.data(), ldx, L.view(), y.data(), ldy);
  for (std::size_t r = 0; r < m + 2; ++r)
    for (std::size_t c = 0; c < ldy; ++c) {
      const bool inside = r < m && c < L.n;
      if (!inside && !is_sentinel(y[r * ldy + c]))
        rep.fail("wrote outside the output at [" + std::to_string(r) + "][" + std::to_string(c) + "]");
      if (inside && is_sentinel(y[r * ldy + c]))
        rep.fail("did not write [" + std::to_string(r) + "][" + std::to_string(c) + "]");
    }
  return y;
}

// The bound of the header comment for one backend against the exact value.
double dense_tol(const Layer& L, double mag, double out) {
  return static_cast<double>(L.k + 1) * kU * mag + 4.0 * kEps * std::fabs(out) + FLT_MIN;
}

// ref::dense against the naive computation, and (SIMD builds) simd::dense against ref::dense.
void check_dense(const Layer& L, std::size_t m, const std::vector<float>& x, std::size_t ldx,
                 const Exact& e, std::size_t ldy, Report& rep) {
  const std::vector<float> yr = run_dense(&ref::dense, m, x, ldx, L, ldy, rep);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < L.n; ++c) {
      const double want = act_exact(L.act_of_column(c), e.pre[r * L.n + c]);
      rep.near(yr[r * ldy + c], want, dense_tol(L, e.mag[r * L.n + c], want), "ref vs exact", r, c);
    }
#if !defined(MTLITE_NO_SIMD)
  const std::vector<float> ys = run_dense(K::table().dense, m, x, ldx, L, ldy, rep);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < L.n; ++c) {
      const double want = yr[r * ldy + c];
      rep.near(ys[r * ldy + c], want, 2.0 * dense_tol(L, e.mag[r * L.n + c], want), "simd vs ref",
               r, c);
    }
#endif
}

const std::vector<std::size_t> kDenseK = {1, 3, 7, 15, 16, 17, 31, 33, 100, 257};
const std::vector<std::size_t> kDenseN = {1, 3, 7, 15, 16, 17, 31, 32, 33, 100, 257};
const std::vector<std::size_t> kDenseM = {1, 2, 3, 5, 12, 13, 25, 64, 65};

}  // namespace

// ---------------------------------------------------------------------------------------------
// pack_panels

TEST_CASE("pack_panels: element [p][k][j] = W[16p+j][k], zero beyond N") {
  Rng rng(11);
  for (std::size_t n : kDenseN)
    for (std::size_t k : {std::size_t{1}, std::size_t{3}, std::size_t{16}, std::size_t{17},
                          std::size_t{100}}) {
      CAPTURE(n);
      CAPTURE(k);
      const std::vector<float> w = random_vector(rng, n * k, 0.5f, 1.5f);  // never 0
      const std::size_t P = K::panel_count(n);
      REQUIRE(P == (n + 15) / 16);
      REQUIRE(K::round_to_panel(n) == P * 16);
      std::vector<float> panels(P * k * 16, 0.0f);
      K::pack_panels(w.data(), n, k, panels.data());
      Report rep;
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t c = 0; c < k; ++c)
          for (std::size_t j = 0; j < 16; ++j) {
            const float got = panels[(p * k + c) * 16 + j];
            const std::size_t row = 16 * p + j;
            const float want = row < n ? w[row * k + c] : 0.0f;
            if (!same_bits(got, want)) rep.fail("panel " + std::to_string(p) + " k " + std::to_string(c) +
                                                " j " + std::to_string(j));
          }
      CHECK_REPORT(rep);
    }
}

TEST_CASE("pack_panels: a hand-written 17 x 2 example") {
  // W[r][c] = 100 r + c + 1, N = 17 rows (outputs), K = 2 inputs: two panels of 2 x 16.
  std::vector<float> w(17 * 2);
  for (std::size_t r = 0; r < 17; ++r)
    for (std::size_t c = 0; c < 2; ++c) w[r * 2 + c] = static_cast<float>(100 * r + c + 1);
  std::vector<float> panels(2 * 2 * 16, 0.0f);
  K::pack_panels(w.data(), 17, 2, panels.data());
  CHECK(panels[0] == 1.0f);          // W[0][0]
  CHECK(panels[1] == 101.0f);        // W[1][0]
  CHECK(panels[15] == 1501.0f);      // W[15][0]
  CHECK(panels[16] == 2.0f);         // W[0][1]
  CHECK(panels[31] == 1502.0f);      // W[15][1]
  CHECK(panels[32] == 1601.0f);      // W[16][0], panel 1
  CHECK(panels[33] == 0.0f);         // padding
  CHECK(panels[48] == 1602.0f);      // W[16][1]
  CHECK(panels[63] == 0.0f);         // padding
}

// ---------------------------------------------------------------------------------------------
// dense

TEST_CASE("dense: m x K x N grid, every activation, strided input and output") {
  Rng rng(2024);
  const std::size_t max_m = kDenseM.back();
  for (std::size_t k : kDenseK)
    for (std::size_t n : kDenseN) {
      Layer L(rng, k, n);
      const std::size_t ldx = k + 1 + k % 5;  // > K
      const std::size_t ldy = n + 3;          // > N
      const std::vector<float> x = make_input(rng, max_m, k, ldx);
      const Exact e = exact_dense(L, max_m, x, ldx);
      for (Activation a : kActs) {
        std::fill(L.act.begin(), L.act.end(), a);
        for (std::size_t m : kDenseM) {
          Report rep;
          check_dense(L, m, x, ldx, e, ldy, rep);
          CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << " act="
                                       << mtlite::to_string(a) << ": " << rep.text());
        }
      }
    }
}

TEST_CASE("dense: tight buffers (ldx == K, ldy == N)") {
  // Exactly sized vectors: a read or write past the end is a sanitizer error; a store spilling
  // into the next row is overwritten silently here, so the strided grid above checks that.
  Rng rng(5);
  for (std::size_t k : {std::size_t{1}, std::size_t{7}, std::size_t{17}, std::size_t{64}})
    for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{16}, std::size_t{17},
                          std::size_t{33}, std::size_t{130}})
      for (std::size_t m : {std::size_t{1}, std::size_t{2}, std::size_t{13}, std::size_t{25}}) {
        Layer L(rng, k, n);
        std::fill(L.act.begin(), L.act.end(), Activation::tanh);
        const std::vector<float> x = make_input(rng, m, k, k);
        const Exact e = exact_dense(L, m, x, k);
        std::vector<float> yr(m * n, sentinel());
        ref::dense(m, x.data(), k, L.view(), yr.data(), n);
        Report rep;
        for (std::size_t r = 0; r < m; ++r)
          for (std::size_t c = 0; c < n; ++c) {
            const double want = act_exact(Activation::tanh, e.pre[r * n + c]);
            rep.near(yr[r * n + c], want, dense_tol(L, e.mag[r * n + c], want), "ref", r, c);
          }
#if !defined(MTLITE_NO_SIMD)
        std::vector<float> ys(m * n, sentinel());
        K::table().dense(m, x.data(), k, L.view(), ys.data(), n);
        for (std::size_t r = 0; r < m; ++r)
          for (std::size_t c = 0; c < n; ++c)
            rep.near(ys[r * n + c], yr[r * n + c],
                     2.0 * dense_tol(L, e.mag[r * n + c], yr[r * n + c]), "simd", r, c);
#endif
        CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << ": " << rep.text());
      }
}

TEST_CASE("dense: fused layer, a different activation per panel") {
  Rng rng(77);
  // 10 panels (more than one row tile of 8 and several batch tiles), the last one partial.
  for (std::size_t n : {std::size_t{150}, std::size_t{160}, std::size_t{53}})
    for (std::size_t k : {std::size_t{5}, std::size_t{17}, std::size_t{100}}) {
      Layer L(rng, k, n);
      for (std::size_t p = 0; p < L.act.size(); ++p) L.act[p] = kActs[(p * 3 + 1) % 4];
      const std::size_t ldx = k + 7, ldy = n + 16;
      const std::vector<float> x = make_input(rng, 65, k, ldx);
      const Exact e = exact_dense(L, 65, x, ldx);
      for (std::size_t m : kDenseM) {
        Report rep;
        check_dense(L, m, x, ldx, e, ldy, rep);
        CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << ": " << rep.text());
      }
    }
}

TEST_CASE("dense: per-panel activation is applied to its own panel only") {
  // Every pre-activation is negative (negative bias, zero weights); panel p's activation alone
  // decides the sign and size of its outputs.
  const std::size_t k = 3, n = 4 * 16 + 5;
  std::vector<float> panels(K::panel_count(n) * k * 16, 0.0f), bias(K::round_to_panel(n), 0.0f);
  for (std::size_t c = 0; c < n; ++c) bias[c] = -2.0f;
  const Activation act[] = {Activation::relu, Activation::identity, Activation::tanh,
                            Activation::sigmoid, Activation::relu};
  const K::DenseView L{k, n, panels.data(), bias.data(), act};
  const std::vector<float> x(2 * k, 1.0f);
  const float want[] = {0.0f, -2.0f, std::tanh(-2.0f), 1.0f / (1.0f + std::exp(2.0f)), 0.0f};
  using Fn = DenseFn;
  std::vector<Fn> fns = {&ref::dense, K::dense};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().dense);
#endif
  for (Fn fn : fns)
    for (std::size_t m : {std::size_t{1}, std::size_t{2}}) {
      CAPTURE(m);
      std::vector<float> y(m * n, sentinel());
      fn(m, x.data(), k, L, y.data(), n);
      for (std::size_t r = 0; r < m; ++r)
        for (std::size_t c = 0; c < n; ++c) {
          CAPTURE(c);
          CHECK(y[r * n + c] == doctest::Approx(want[c / 16]).epsilon(1e-6));
        }
    }
}

TEST_CASE("dense: K = 1000 (long sums, one sign and mixed signs)") {
  Rng rng(1000);
  const std::size_t k = 1000;
  for (bool positive : {true, false})
    for (std::size_t n : {std::size_t{33}, std::size_t{100}}) {
      Layer L(rng, k, n, positive ? 0.0f : -1.0f, 1.0f);
      const std::size_t ldx = k + 4;
      std::vector<float> x = make_input(rng, 65, k, ldx);
      if (positive)
        for (std::size_t r = 0; r < 65; ++r)
          for (std::size_t c = 0; c < k; ++c) x[r * ldx + c] = std::fabs(x[r * ldx + c]);
      const Exact e = exact_dense(L, 65, x, ldx);
      for (Activation a : {Activation::identity, Activation::tanh}) {
        std::fill(L.act.begin(), L.act.end(), a);
        for (std::size_t m : {std::size_t{1}, std::size_t{13}, std::size_t{64}}) {
          Report rep;
          check_dense(L, m, x, ldx, e, n + 1, rep);
          CHECK_MESSAGE(rep.ok(), "positive=" << positive << " N=" << n << " m=" << m
                                              << " act=" << mtlite::to_string(a) << ": "
                                              << rep.text());
        }
      }
    }
}

TEST_CASE("dense: m = 0 writes nothing") {
  Rng rng(3);
  Layer L(rng, 7, 20);
  const std::vector<float> x(8, 1.0f);
  std::vector<DenseFn> fns = {&ref::dense, K::dense};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().dense);
#endif
  for (DenseFn fn : fns) {
    std::vector<float> y(2 * 24, sentinel());
    fn(0, x.data(), 8, L.view(), y.data(), 24);
    CHECK(std::all_of(y.begin(), y.end(), is_sentinel));
  }
}

// ---------------------------------------------------------------------------------------------
// activation

namespace {

std::vector<float> activation_inputs(Rng& rng, std::size_t n) {
  std::vector<float> x = random_vector(rng, n, -12.0f, 12.0f);
  // Some special values where they fit: zeros, tiny, saturating and overflowing exp arguments.
  const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-4f, -1e-4f, 20.0f, -20.0f,
                           88.0f, -88.0f, 100.0f, -100.0f, 1000.0f, -1000.0f};
  for (std::size_t i = 0; i < n && i < sizeof special / sizeof special[0]; ++i)
    x[(i * 7) % n] = special[i];
  return x;
}

double act_tol(Activation a, double want) {
  return (a == Activation::identity || a == Activation::relu) ? 0.0
                                                              : 4.0 * kEps * std::fabs(want) + FLT_MIN;
}

}  // namespace

TEST_CASE("activation: ref against the formulas") {
  Rng rng(8);
  for (Activation a : kActs)
    for (std::size_t n : kSizes) {
      const std::vector<float> x = activation_inputs(rng, n);
      std::vector<float> y(n + 4, sentinel());
      std::copy(x.begin(), x.end(), y.begin());
      ref::activation(a, y.data(), n);
      Report rep;
      for (std::size_t i = 0; i < n; ++i) {
        const double want = act_exact(a, x[i]);
        rep.near(y[i], want, act_tol(a, want), "ref", 0, i);
      }
      for (std::size_t i = n; i < n + 4; ++i)
        if (!is_sentinel(y[i])) rep.fail("wrote past n at " + std::to_string(i));
      CHECK_MESSAGE(rep.ok(), "act=" << mtlite::to_string(a) << " n=" << n << ": " << rep.text());
    }
}

#if !defined(MTLITE_NO_SIMD)
TEST_CASE("activation: simd against ref, every length") {
  Rng rng(9);
  for (Activation a : kActs)
    for (std::size_t n : kSizes) {
      const std::vector<float> x = activation_inputs(rng, n);
      std::vector<float> yr(n + 4, sentinel()), ys(n + 4, sentinel());
      std::copy(x.begin(), x.end(), yr.begin());
      std::copy(x.begin(), x.end(), ys.begin());
      ref::activation(a, yr.data(), n);
      K::table().activation(a, ys.data(), n);
      Report rep;
      for (std::size_t i = 0; i < n; ++i) {
        if (a == Activation::identity) {
          if (!same_bits(ys[i], x[i])) rep.fail("identity changed element " + std::to_string(i));
        } else {
          rep.near(ys[i], yr[i], act_tol(a, yr[i]), "simd vs ref", 0, i);
        }
      }
      for (std::size_t i = n; i < n + 4; ++i)
        if (!is_sentinel(ys[i])) rep.fail("wrote past n at " + std::to_string(i));
      CHECK_MESSAGE(rep.ok(), "act=" << mtlite::to_string(a) << " n=" << n << ": " << rep.text());
    }
}

TEST_CASE("activation: simd on a dense sweep of [-30, 30]") {
  std::vector<float> x;
  for (int i = -300000; i <= 300000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
  for (Activation a : {Activation::relu, Activation::sigmoid, Activation::tanh}) {
    std::vector<float> yr = x, ys = x;
    ref::activation(a, yr.data(), yr.size());
    K::table().activation(a, ys.data(), ys.size());
    Report rep;
    for (std::size_t i = 0; i < x.size(); ++i) rep.near(ys[i], yr[i], act_tol(a, yr[i]), "sweep", 0, i);
    CHECK_MESSAGE(rep.ok(), "act=" << mtlite::to_string(a) << ": " << rep.text());
  }
}
#endif

TEST_CASE("activation: identity leaves the data alone, n = 0 touches nothing") {
  std::vector<float> x = {1.5f, -2.0f, kNaN, sentinel(), -0.0f};
  const std::vector<float> before = x;
  K::activation(Activation::identity, x.data(), x.size());
  ref::activation(Activation::identity, x.data(), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(same_bits(x[i], before[i]));
  for (Activation a : kActs) {
    K::activation(a, x.data(), 0);
    ref::activation(a, x.data(), 0);
  }
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(same_bits(x[i], before[i]));
}

// ---------------------------------------------------------------------------------------------
// softmax

namespace {

using SoftmaxFn = void (*)(float*, std::size_t) noexcept;

std::vector<SoftmaxFn> softmax_backends() {
  std::vector<SoftmaxFn> fns = {&ref::softmax};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().softmax);
#endif
  return fns;
}

// Softmax in double: the exact value the float versions approximate.
std::vector<double> softmax_exact(const std::vector<float>& x) {
  double m = x[0];
  for (float v : x) m = std::max(m, static_cast<double>(v));
  std::vector<double> y(x.size());
  double s = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) s += (y[i] = std::exp(x[i] - m));
  for (double& v : y) v /= s;
  return y;
}

double softmax_tol(std::size_t n, double want) {
  return static_cast<double>(n + 8) * kEps * std::fabs(want) + FLT_MIN;
}

}  // namespace

TEST_CASE("softmax: against the exact value, every length") {
  Rng rng(12);
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_vector(rng, n, -10.0f, 10.0f);
    const std::vector<double> want = softmax_exact(x);
    std::vector<float> yr(n + 3, sentinel());
    std::copy(x.begin(), x.end(), yr.begin());
    ref::softmax(yr.data(), n);
    Report rep;
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      rep.near(yr[i], want[i], softmax_tol(n, want[i]), "ref vs exact", 0, i);
      sum += yr[i];
    }
    rep.near(sum, 1.0, (n + 8) * kEps, "ref sum", 0, n);
    for (std::size_t i = n; i < n + 3; ++i)
      if (!is_sentinel(yr[i])) rep.fail("ref wrote past n");
#if !defined(MTLITE_NO_SIMD)
    std::vector<float> ys(n + 3, sentinel());
    std::copy(x.begin(), x.end(), ys.begin());
    K::table().softmax(ys.data(), n);
    sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      rep.near(ys[i], yr[i], 2.0 * softmax_tol(n, yr[i]), "simd vs ref", 0, i);
      sum += ys[i];
    }
    rep.near(sum, 1.0, (n + 8) * kEps, "simd sum", 0, n);
    for (std::size_t i = n; i < n + 3; ++i)
      if (!is_sentinel(ys[i])) rep.fail("simd wrote past n");
#endif
    CHECK_MESSAGE(rep.ok(), "n=" << n << ": " << rep.text());
  }
}

TEST_CASE("softmax: one length-1 gate is exactly 1") {
  for (SoftmaxFn fn : softmax_backends())
    for (float v : {0.0f, -1000.0f, 1000.0f, 3.5f}) {
      float x = v;
      fn(&x, 1);
      CHECK(x == 1.0f);
    }
}

TEST_CASE("softmax: large logits do not overflow, wherever the maximum sits") {
  // A logit of 1000 anywhere (in a whole vector or in the scalar tail) must be found as the
  // maximum: exp(1000 - m) with a smaller m would be inf and the outputs NaN.
  Rng rng(13);
  for (SoftmaxFn fn : softmax_backends())
    for (std::size_t n : kSizes)
      for (std::size_t pos = 0; pos < n; pos += (n > 40 ? 7 : 1)) {
        std::vector<float> x = random_vector(rng, n, -5.0f, 5.0f);
        x[pos] = 1000.0f;
        if (n > 1) x[(pos + 1) % n] = -1000.0f;
        fn(x.data(), n);
        Report rep;
        double sum = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
          if (!std::isfinite(x[i]) || x[i] < 0.0f || x[i] > 1.0f) rep.fail("not a probability at " + std::to_string(i));
          sum += x[i];
        }
        rep.near(x[pos], 1.0, kEps, "max logit", 0, pos);
        rep.near(sum, 1.0, (n + 8) * kEps, "sum", 0, n);
        CHECK_MESSAGE(rep.ok(), "n=" << n << " pos=" << pos << ": " << rep.text());
      }
}

TEST_CASE("softmax: shift invariance at +-1000, equal logits") {
  Rng rng(14);
  for (SoftmaxFn fn : softmax_backends())
    for (std::size_t n : kSizes) {
      const std::vector<float> base = random_vector(rng, n, -4.0f, 4.0f);
      std::vector<float> want = base;
      fn(want.data(), n);
      for (float shift : {1000.0f, -1000.0f}) {
        std::vector<float> x = base;
        for (float& v : x) v += shift;  // rounding: x - max moves by at most ulp(1004) ~ 6e-5
        fn(x.data(), n);
        Report rep;
        for (std::size_t i = 0; i < n; ++i)
          rep.near(x[i], want[i], 2e-4 * want[i] + softmax_tol(n, want[i]), "shifted", 0, i);
        CHECK_MESSAGE(rep.ok(), "n=" << n << " shift=" << shift << ": " << rep.text());
      }
      for (float v : {-1000.0f, 0.0f, 1000.0f}) {
        std::vector<float> x(n, v);
        fn(x.data(), n);
        Report rep;
        for (std::size_t i = 0; i < n; ++i) rep.near(x[i], 1.0 / n, 4 * kEps / n, "equal", 0, i);
        CHECK_MESSAGE(rep.ok(), "n=" << n << " v=" << v << ": " << rep.text());
      }
    }
}

TEST_CASE("softmax and sigmoid: extreme logits give probabilities (FLT_MAX, overflowed inf)") {
  // Huge weights or inputs can push a logit to +-FLT_MAX or past it to +-inf. Every output must
  // still be a probability: exp(inf - inf) would be NaN, so the infinite maxima share the mass.
  constexpr float big = std::numeric_limits<float>::max(), inf = std::numeric_limits<float>::infinity();
  for (SoftmaxFn fn : softmax_backends())
    for (std::size_t n : kSizes) {
      for (int pattern = 0; pattern < 3; ++pattern) {
        std::vector<float> x(n, -big);
        std::size_t hot = 0;
        for (std::size_t i = 0; i < n; i += 3) {  // every third logit is the largest
          x[i] = pattern == 0 ? big : pattern == 1 ? inf : (i % 2 ? inf : -inf);
          hot += pattern < 2 || i % 2;
        }
        if (pattern == 2 && hot == 0) x[0] = inf, hot = 1;
        if (n > 1) x[1] = pattern == 2 ? -inf : -big;
        const std::vector<float> in = x;
        fn(x.data(), n);
        Report rep;
        double sum = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
          const bool top = in[i] == (pattern == 0 ? big : inf);
          rep.near(x[i], top ? 1.0 / static_cast<double>(hot) : 0.0, 4 * kEps, "extreme", 0, i);
          sum += x[i];
        }
        rep.near(sum, 1.0, (n + 8) * kEps, "sum", 0, n);
        CHECK_MESSAGE(rep.ok(), "n=" << n << " pattern=" << pattern << ": " << rep.text());
      }
    }
  for (float v : {-inf, -big, -1e30f, 1e30f, big, inf}) {
    std::vector<float> yr(17, v), ys(17, v);
    ref::activation(Activation::sigmoid, yr.data(), yr.size());
    mtlite::kernels::activation(Activation::sigmoid, ys.data(), ys.size());
    for (float y : {yr[0], ys[0], ys[16]}) {
      CHECK_MESSAGE((y >= 0.0f && y <= 1.0f), "sigmoid(" << v << ") = " << y);
      CHECK_MESSAGE(y == (v > 0 ? 1.0f : 0.0f), "sigmoid(" << v << ") = " << y << " is not saturated");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// mix

namespace {

using MixFn = void (*)(std::size_t, const float*, std::size_t, std::size_t, const float* const*,
                       const std::size_t*, std::size_t, float*, std::size_t) noexcept;

struct MixCase {
  std::size_t rows, E, width, ldg, ldo;
  std::vector<float> gates;
  std::vector<std::vector<float>> experts;  // each in its own buffer, its own stride
  std::vector<const float*> ptr;
  std::vector<std::size_t> ld;

  MixCase(Rng& rng, std::size_t rows_, std::size_t E_, std::size_t width_)
      : rows(rows_), E(E_), width(width_), ldg(E_ + 2), ldo(width_ + 5) {
    gates.assign(rows * ldg, kNaN);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t e = 0; e < E; ++e) gates[r * ldg + e] = rng.uniform(-1.0f, 1.0f);
    for (std::size_t e = 0; e < E; ++e) {
      const std::size_t l = width + e % 3 * 5;  // == width for some experts, > width for others
      std::vector<float> ex(rows * l, kNaN);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t h = 0; h < width; ++h) ex[r * l + h] = rng.uniform(-2.0f, 2.0f);
      experts.push_back(std::move(ex));
      ld.push_back(l);
    }
    for (const auto& ex : experts) ptr.push_back(ex.data());
  }

  std::vector<float> run(MixFn fn, Report& rep) const {
    std::vector<float> out((rows + 1) * ldo, sentinel());
    fn(rows, gates.data(), ldg, E, ptr.data(), ld.data(), width, out.data(), ldo);
    for (std::size_t r = 0; r < rows + 1; ++r)
      for (std::size_t h = 0; h < ldo; ++h) {
        const bool inside = r < rows && h < width;
        if (inside == is_sentinel(out[r * ldo + h]))
          rep.fail(std::string(inside ? "did not write" : "wrote outside") + " [" +
                   std::to_string(r) + "][" + std::to_string(h) + "]");
      }
    return out;
  }
  // Exact value and magnitude sum |g e| of out[r][h].
  void exact(std::size_t r, std::size_t h, double& value, double& mag) const {
    value = mag = 0.0;
    for (std::size_t e = 0; e < E; ++e) {
      const double p = static_cast<double>(gates[r * ldg + e]) * experts[e][r * ld[e] + h];
      value += p;
      mag += std::fabs(p);
    }
  }
};

}  // namespace

TEST_CASE("mix: rows x experts x width, strided gates, experts and output") {
  Rng rng(21);
  for (std::size_t rows : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5},
                           std::size_t{13}})
    for (std::size_t E : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3},
                          std::size_t{8}, std::size_t{9}})
      for (std::size_t width : kSizes) {
        const MixCase c(rng, rows, E, width);
        Report rep;
        const std::vector<float> yr = c.run(&ref::mix, rep);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t h = 0; h < width; ++h) {
            double v, mag;
            c.exact(r, h, v, mag);
            rep.near(yr[r * c.ldo + h], v, (E + 1) * kU * mag, "ref vs exact", r, h);
          }
#if !defined(MTLITE_NO_SIMD)
        const std::vector<float> ys = c.run(K::table().mix, rep);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t h = 0; h < width; ++h) {
            double v, mag;
            c.exact(r, h, v, mag);
            rep.near(ys[r * c.ldo + h], yr[r * c.ldo + h], 2 * (E + 1) * kU * mag, "simd vs ref", r, h);
          }
#endif
        CHECK_MESSAGE(rep.ok(), "rows=" << rows << " E=" << E << " width=" << width << ": "
                                        << rep.text());
      }
}

TEST_CASE("mix: one-hot gates select an expert exactly") {
  Rng rng(22);
  std::vector<MixFn> fns = {&ref::mix, K::mix};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().mix);
#endif
  for (MixFn fn : fns)
    for (std::size_t width : {std::size_t{7}, std::size_t{64}, std::size_t{100}}) {
      MixCase c(rng, 4, 5, width);
      for (std::size_t r = 0; r < 4; ++r)
        for (std::size_t e = 0; e < 5; ++e) c.gates[r * c.ldg + e] = e == (r + 1) % 5 ? 1.0f : 0.0f;
      Report rep;
      const std::vector<float> y = c.run(fn, rep);
      for (std::size_t r = 0; r < 4; ++r)
        for (std::size_t h = 0; h < width; ++h)
          if (y[r * c.ldo + h] != c.experts[(r + 1) % 5][r * c.ld[(r + 1) % 5] + h])
            rep.fail("row " + std::to_string(r) + " col " + std::to_string(h));
      CHECK_MESSAGE(rep.ok(), "width=" << width << ": " << rep.text());
    }
}

// ---------------------------------------------------------------------------------------------
// add_rows

namespace {

using AddRowsFn = void (*)(const float*, std::size_t, const std::uint64_t*, std::size_t,
                           float*) noexcept;

}  // namespace

TEST_CASE("add_rows: repeated rows, count 0, every dim") {
  Rng rng(31);
  const std::size_t table_rows = 41;
  const std::vector<std::vector<std::uint64_t>> bags = {
      {},
      {0},
      {40},
      {3, 3},
      {7, 0, 7, 40, 7, 12, 0},
      {}  // filled below: 60 random rows, many repeats
  };
  std::vector<std::vector<std::uint64_t>> all = bags;
  for (int i = 0; i < 60; ++i) all.back().push_back(rng.below(table_rows));
  for (std::size_t dim : kSizes) {
    const std::vector<float> table = random_vector(rng, table_rows * dim, -1.0f, 1.0f);
    for (const auto& rows : all) {
      const std::size_t count = rows.size();
      std::vector<float> init(dim + 5, sentinel());
      for (std::size_t d = 0; d < dim; ++d) init[d] = rng.uniform(-3.0f, 3.0f);  // accumulates
      std::vector<float> yr = init;
      ref::add_rows(table.data(), dim, rows.data(), count, yr.data());
      Report rep;
      for (std::size_t d = 0; d < dim; ++d) {
        double want = init[d], mag = std::fabs(static_cast<double>(init[d]));
        for (std::uint64_t row : rows) {
          want += table[row * dim + d];
          mag += std::fabs(static_cast<double>(table[row * dim + d]));
        }
        // count float additions: within gamma_count * mag <= (count + 1) u mag.
        rep.near(yr[d], want, (count + 1) * kU * mag, "ref vs exact", 0, d);
      }
      if (count == 0 && !std::equal(yr.begin(), yr.end(), init.begin(), same_bits))
        rep.fail("ref changed out with count 0");
      for (std::size_t d = dim; d < dim + 5; ++d)
        if (!is_sentinel(yr[d])) rep.fail("ref wrote past dim");
#if !defined(MTLITE_NO_SIMD)
      std::vector<float> ys = init;
      K::table().add_rows(table.data(), dim, rows.data(), count, ys.data());
      for (std::size_t d = 0; d < dim + 5; ++d)
        if (!same_bits(ys[d], yr[d])) rep.fail("simd differs from ref at " + std::to_string(d));
#endif
      CHECK_MESSAGE(rep.ok(), "dim=" << dim << " count=" << count << ": " << rep.text());
    }
  }
}

TEST_CASE("add_rows: a row repeated k times adds k times the row") {
  std::vector<AddRowsFn> fns = {&ref::add_rows, K::add_rows};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().add_rows);
#endif
  const std::size_t dim = 19;
  std::vector<float> table(3 * dim);
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = static_cast<float>(i % 7) - 2.0f;  // small ints: exact
  const std::vector<std::uint64_t> rows = {2, 2, 2, 2, 2};
  for (AddRowsFn fn : fns) {
    std::vector<float> out(dim, 0.5f);
    fn(table.data(), dim, rows.data(), rows.size(), out.data());
    for (std::size_t d = 0; d < dim; ++d) CHECK(out[d] == 0.5f + 5.0f * table[2 * dim + d]);
  }
}

// ---------------------------------------------------------------------------------------------
// dispatch (kernels.hpp)

namespace {

// doctest cannot print function pointers: compare them to a bool first.
template <class Fn>
bool same_function(Fn a, Fn b) {
  return a == b;
}

// The code paths each level must run: a level whose table reports other paths was compiled
// with the wrong flags, or its code was replaced by another level's.
struct LevelPaths {
  const char *level, *i8, *f16, *q;
};
constexpr LevelPaths kLevelPaths[] = {
    {"scalar", "scalar", "scalar", "scalar"},       {"sse2", "scalar", "scalar", "scalar"},
    {"avx2", "avx2", "f16c", "avx2"},               {"avxvnni", "avxvnni", "f16c", "avx2"},
    {"avx512", "avx2", "avx512", "avx512"},         {"avx512vnni", "avx512vnni", "avx512", "avx512"},
    {"neon", "neon", "neon", "neon"},               {"neon-dot", "neon-dot", "neon", "neon"},
    {"neon-i8mm", "neon-i8mm", "neon", "neon"},     {"wasm-simd128", "wasm-simd128", "scalar", "scalar"},
};

void check_level_paths(const K::KernelTable& t) {
  INFO("level " << t.level);
  const LevelPaths* want = nullptr;
  for (const LevelPaths& p : kLevelPaths)
    if (std::string(p.level) == t.level) want = &p;
  REQUIRE(want != nullptr);
  CHECK(std::string(t.i8_path) == want->i8);
  CHECK(std::string(t.f16_path) == want->f16);
  CHECK(std::string(t.q_path) == want->q);
}

}  // namespace

TEST_CASE("dispatch: mtlite::kernels:: names the kernels in use, and they are that level's") {
  MESSAGE("kernels: " << K::describe(K::table()));
  CHECK(std::string(K::backend_name()) == K::table().arch);
#if defined(MTLITE_DISPATCH)
  // Run by the per-level tests with MTLITE_KERNELS set (tests/meson.build); otherwise the best.
  const char* env = std::getenv("MTLITE_KERNELS");
  const std::string supported = K::supported_levels();
  MESSAGE("this CPU runs: " << supported);
  if (env != nullptr && *env != '\0') CHECK(std::string(K::table().level) == env);
  else CHECK(std::string(K::table().level) == supported.substr(0, supported.find(' ')));
  check_level_paths(K::table());
  // Every level this CPU runs can be chosen and is what it says; the others are refused.
  const std::string before = K::table().level;
  for (const K::KernelTable* t : K::all_levels()) {
    if (K::cpu_runs(t->level)) {
      K::use_level(t->level);
      CHECK(&K::table() == t);
      check_level_paths(*t);
    } else {
      CHECK_THROWS_WITH(K::use_level(t->level),
                        doctest::Contains("is not supported by this CPU"));
    }
  }
  CHECK_THROWS_WITH(K::use_level("avx3"), doctest::Contains("unknown kernel level 'avx3' (levels: "));
  K::use_level(before);
  CHECK(std::string(K::table().level) == before);
#elif defined(MTLITE_NO_SIMD)
  CHECK(std::string(K::backend_name()) == "scalar");
  CHECK_FALSE(mtlite::kSimd);
  CHECK(&K::table() == &K::kRefTable);
  check_level_paths(K::table());
  CHECK(same_function<DenseFn>(K::dense, &ref::dense));
  CHECK(same_function<SoftmaxFn>(K::softmax, &ref::softmax));
  CHECK(same_function<MixFn>(K::mix, &ref::mix));
  CHECK(same_function<AddRowsFn>(K::add_rows, &ref::add_rows));
#else
  // Header-only: the compiler flags chose.
  CHECK(std::string(K::backend_name()) == K::simd::arch_name());
  CHECK(std::string(K::backend_name()) != "scalar");
  CHECK(mtlite::kSimd);
  check_level_paths(K::table());
  CHECK(same_function<DenseFn>(K::dense, &K::simd::dense));
  CHECK(same_function<SoftmaxFn>(K::softmax, &K::simd::softmax));
  CHECK(same_function<MixFn>(K::mix, &K::simd::mix));
  CHECK(same_function<AddRowsFn>(K::add_rows, &K::simd::add_rows));
  CHECK(same_function<DenseFn>(K::table().dense, &K::simd::dense));
#endif
}

TEST_CASE("dispatch: mtlite::kernels:: computes what its table holds, bit for bit") {
  // The table in use, entry by entry (what kernels.hpp's names call).
  const K::KernelTable& B = K::table();
  Rng rng(41);
  // dense, with mixed activations
  Layer L(rng, 33, 57);
  for (std::size_t p = 0; p < L.act.size(); ++p) L.act[p] = kActs[p % 4];
  const std::vector<float> x = make_input(rng, 13, 33, 40);
  for (std::size_t m : {std::size_t{1}, std::size_t{13}}) {
    std::vector<float> a(m * 60, sentinel()), b(m * 60, sentinel());
    K::dense(m, x.data(), 40, L.view(), a.data(), 60);
    B.dense(m, x.data(), 40, L.view(), b.data(), 60);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), same_bits));
  }
  // activation
  for (Activation act : kActs) {
    std::vector<float> a = activation_inputs(rng, 37), b = a;
    K::activation(act, a.data(), a.size());
    B.activation(act, b.data(), b.size());
    CHECK(std::equal(a.begin(), a.end(), b.begin(), same_bits));
  }
  // softmax
  {
    std::vector<float> a = random_vector(rng, 37, -8.0f, 8.0f), b = a;
    K::softmax(a.data(), a.size());
    B.softmax(b.data(), b.size());
    CHECK(std::equal(a.begin(), a.end(), b.begin(), same_bits));
  }
  // mix
  {
    const MixCase c(rng, 3, 4, 77);
    Report rep;
    const std::vector<float> a = c.run(K::mix, rep), b = c.run(B.mix, rep);
    CHECK_REPORT(rep);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), same_bits));
  }
  // add_rows
  {
    const std::vector<float> table = random_vector(rng, 10 * 37, -1.0f, 1.0f);
    const std::vector<std::uint64_t> rows = {1, 9, 1, 4};
    std::vector<float> a(37, 0.25f), b = a;
    K::add_rows(table.data(), 37, rows.data(), rows.size(), a.data());
    B.add_rows(table.data(), 37, rows.data(), rows.size(), b.data());
    CHECK(std::equal(a.begin(), a.end(), b.begin(), same_bits));
  }
}
