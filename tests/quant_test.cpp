// The quantized kernels and formats: f16 conversion (f16.hpp), the converter's quantizers and
// packers (quantize.hpp), dense_f16, dense_i8 with its input quantizer, and the f16 / u8 / u4
// embedding bags.
//
// Every reference kernel is held to a naive computation written here (plain loops, double
// precision, the documented formulas); every SIMD kernel (SIMD builds only) to its reference:
// bit for bit where the kernels promise it (i8 input bytes, i8 outputs, embedding bags), within
// the f32 dense bounds of kernels_test.cpp for dense_f16.
//
// Tolerances. u = 2^-24 is the unit roundoff of float, eps = 2u.
//   f16 conversion  exact, bit for bit: against an independent double-precision rounding here
//                   and, with F16C, against the hardware (_cvtss_sh / _cvtsh_ss).
//   dense_i8 ref vs exact   The exact value is E = I sx sw + b, with I = sum_k (u_k - zp) Q_k
//                   computed in int64 from this file's own quantization. The kernel rounds
//                   float(I) (u |I|), sx * sw (u), and the fma (u |E|): |y - E| <= 3.1 u |I| sx sw
//                   + u |b|; bound 4 u (|I| sx sw + |b|), plus 4 eps |y| for sigmoid / tanh.
//   dense_i8 vs f32 dense of the unquantized weights. With x^_k = (u_k - zp) sx and
//                   W^_k = Q_k sw: |x^_k - x_k| <= sx / 2 (+ 3u|x_k| from inv * sx != 1) and
//                   |W^_k - W_k| <= sw / 2 (nearest integer of W / sw, computed in double), so
//                   |x^ W^ - x W| <= |x^ - x| |W^| + |x| |W^ - W| and
//                     |y_i8 - y_f32| <= sum_k [(sx/2 + 3u|x_k|) |W^_k| + |x_k| sw / 2]
//                                       + 4u (|I| sx sw + |b|) + (K+1) u S + 8 eps |y|.
//                   This is the worst case (all errors aligned); a wrong weight, column or
//                   row is off by about S / K or more, above the bound for uniform data only
//                   when K is small, so the exact-model check above is the sharp one.
//   dense_f16       ref vs exact (double, the f16-rounded weights): the f32 bound
//                   (K+1) u S + 4 eps |y|; SIMD vs ref: twice that. f16 vs f32 with the original
//                   weights: |W^ - W| <= 2^-11 |W| for normal halves (<= 2^-25 below 2^-14), so
//                   |y_f16 - y_f32| <= sum_k |x_k| (2^-11 |W_k| + 2^-25) + 2 (K+1) u S + 8 eps |y|.
//   rows_q          a single dequantized row fma(code, scale, offset) is within scale / 2 of the
//                   original, plus the rounding of the computation: scale / 2 + 2 eps (|v| +
//                   |offset| + max - min) + FLT_MIN.
//   bags            SIMD == ref bit for bit; ref vs exact: (count + 1) u S as add_rows.
// Every output not meant to be written is a NaN sentinel that must keep its bits; input stride
// padding is NaN, so a kernel reading it produces NaN (or, in the i8 quantizer, wrong bytes).
#include <doctest/doctest.h>

#include <mtlite/core/dtype.hpp>
#include <mtlite/core/random.hpp>
#include <mtlite/kernels/kernels.hpp>
#include <mtlite/offline/convert/quantize.hpp>

#if !defined(MTLITE_NO_SIMD)
#include <mtlite/kernels/simd/intrinsics.hpp>
#endif

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
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

constexpr double kU = FLT_EPSILON / 2.0;
constexpr double kEps = FLT_EPSILON;

constexpr Activation kActs[] = {Activation::identity, Activation::relu, Activation::sigmoid,
                                Activation::tanh};

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
std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
bool same_bits(float a, float b) { return bits_of(a) == bits_of(b); }

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Bytes of a rows_q row of `dim` codes of `bits` bits (the format's one definition).
std::size_t rows_q_stride(std::size_t dim, unsigned bits) {
  return static_cast<std::size_t>(
      mtlite::rows_q_stride(bits == 4 ? mtlite::DType::u4 : mtlite::DType::u8, dim));
}


double act_tol(Activation a, double y) {
  return (a == Activation::identity || a == Activation::relu) ? 0.0 : 4.0 * kEps * std::fabs(y) + FLT_MIN;
}

struct Report {
  std::size_t failures = 0;
  std::ostringstream first;
  void fail(const std::string& what) {
    if (failures++ < 5) first << what << "\n";
  }
  void near(double got, double want, double tol, const char* what, std::size_t r, std::size_t c) {
    if (!(std::fabs(got - want) <= tol)) {
      std::ostringstream s;
      s.precision(9);
      s << what << " [" << r << "][" << c << "]: got " << got << ", want " << want << ", |diff| "
        << std::fabs(got - want) << " > tol " << tol;
      fail(s.str());
    }
  }
  void bits(float got, float want, const char* what, std::size_t r, std::size_t c) {
    if (!same_bits(got, want)) {
      std::ostringstream s;
      s.precision(9);
      s << what << " [" << r << "][" << c << "]: got " << got << " (0x" << std::hex << bits_of(got)
        << "), want " << std::dec << want << " (0x" << std::hex << bits_of(want) << ")";
      fail(s.str());
    }
  }
  bool ok() const { return failures == 0; }
  std::string text() const { return std::to_string(failures) + " mismatches; first:\n" + first.str(); }
};
#define CHECK_REPORT(rep) CHECK_MESSAGE((rep).ok(), (rep).text())

template <class Fn>
bool same_function(Fn a, Fn b) {
  return a == b;
}

// ---------------------------------------------------------------------------------------------
// f16: an independent definition in double precision.

// The value of a half (NaN for NaNs), by the textbook formula.
double half_value(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0) v = std::ldexp(static_cast<double>(m), -24);
  else v = std::ldexp(1024.0 + m, e - 25);
  return s ? -v : v;
}

// f rounded to the nearest half value (ties to even), as a double; +-inf on overflow.
double round_to_half(float f) {
  const double a = std::fabs(static_cast<double>(f));
  double r;
  if (a >= 65520.0) {
    r = std::numeric_limits<double>::infinity();
  } else {
    int e;
    std::frexp(a, &e);                                       // a = f * 2^e, f in [0.5, 1)
    const int q = std::max(e - 11, -24);                     // quantum 2^q: 11 significant bits
    r = std::ldexp(std::nearbyint(std::ldexp(a, -q)), q);    // exact scaling, ties to even
  }
  return std::signbit(f) ? -r : r;
}

// The floats the f32 -> f16 tests run: every special case, the exact midpoints between
// neighbouring halves and the floats next to them, and random bit patterns.
std::vector<float> f16_test_floats(std::size_t random_count) {
  std::vector<float> v = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX,
                          std::numeric_limits<float>::denorm_min(), 1e-40f, -1e-40f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          65504.0f, 65519.996f, 65520.0f, 65536.0f, 1e5f, 1e30f,
                          std::ldexp(1.0f, -14), std::ldexp(1.0f, -24), std::ldexp(1.0f, -25),
                          std::ldexp(3.0f, -26), std::ldexp(1.0f, -26), 1.0f, 1.0009765625f, 0.1f, 1.0f / 3};
  const std::uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu,
                                0x7fffffffu, 0xffffe000u, 0x7f802000u, 0x7fa00000u, 0x7f801fffu};
  for (std::uint32_t b : nans) v.push_back(from_bits(b));
  for (std::uint32_t h = 0; h < 0x7c00u; ++h) {  // finite positive halves
    const double lo = half_value(static_cast<std::uint16_t>(h));
    const double hi = h + 1 == 0x7c00u ? 65536.0 : half_value(static_cast<std::uint16_t>(h + 1));
    const float mid = static_cast<float>((lo + hi) / 2);  // exact: halves have 11 bits
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f), static_cast<float>(lo)}) {
      v.push_back(f);
      v.push_back(-f);
    }
  }
  Rng rng(16);
  for (std::size_t i = 0; i < random_count; ++i) {
    const std::uint64_t r = rng.next();
    v.push_back(from_bits(static_cast<std::uint32_t>(r)));
    // and one in the range of halves, where the rounding is interesting
    v.push_back(from_bits(static_cast<std::uint32_t>(((r >> 32) % (0x47800000u - 0x33000000u)) + 0x33000000u) |
                          (static_cast<std::uint32_t>(r >> 63) << 31)));
  }
  return v;
}

}  // namespace

// =============================================================================================
// f16 conversion

TEST_CASE("f16: every half widens exactly (f16_to_f32)") {
  Report rep;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto hh = static_cast<std::uint16_t>(h);
    const float got = K::f16_to_f32(hh);
    const double want = half_value(hh);
    if (std::isnan(want)) {
      // NaN: same sign, payload in the top bits, quiet.
      const std::uint32_t b = bits_of(got);
      const std::uint32_t expect = ((h & 0x8000u) << 16) | 0x7fc00000u | ((h & 0x3ffu) << 13);
      if (b != expect) rep.fail("NaN half " + std::to_string(h));
    } else if (!(static_cast<double>(got) == want) || std::signbit(got) != std::signbit(want)) {
      rep.fail("half " + std::to_string(h));
    }
#if !defined(MTLITE_NO_SIMD) && defined(__F16C__)
    if (!same_bits(got, _cvtsh_ss(hh))) rep.fail("differs from F16C: half " + std::to_string(h));
#endif
  }
  CHECK_REPORT(rep);
}

TEST_CASE("f16: f32_to_f16 rounds to nearest even, overflows to inf, keeps NaNs (~10M floats)") {
#if !defined(MTLITE_NO_SIMD) && defined(__F16C__)
  MESSAGE("checking against F16C hardware as well");
#endif
  const std::vector<float> fs = f16_test_floats(4'500'000);
  REQUIRE(fs.size() > 9'000'000);
  Report rep;
  std::size_t ties = 0;
  for (float f : fs) {
    const std::uint16_t h = K::f32_to_f16(f);
    if (std::isnan(f)) {
      const std::uint32_t b = bits_of(f);
      const std::uint16_t expect =
          static_cast<std::uint16_t>(((b >> 16) & 0x8000u) | 0x7e00u | ((b >> 13) & 0x3ffu));
      if (h != expect) rep.fail("NaN 0x" + std::to_string(b));
    } else {
      const double want = round_to_half(f);
      const double got = half_value(h);
      if (!(got == want) || std::signbit(got) != std::signbit(f)) {
        std::ostringstream s;
        s.precision(10);
        s << "f = " << f << " (0x" << std::hex << bits_of(f) << "): got half 0x" << h << std::dec
          << " = " << got << ", want " << want;
        rep.fail(s.str());
      }
      const double a = std::fabs(static_cast<double>(f));
      if (a < 65520.0 && a > 0) {
        int e;
        std::frexp(a, &e);
        const int q = std::max(e - 11, -24);
        const double scaled = std::ldexp(a, -q);
        ties += scaled == std::floor(scaled) + 0.5;
      }
    }
#if !defined(MTLITE_NO_SIMD) && defined(__F16C__)
    if (h != _cvtss_sh(f, 0)) rep.fail("differs from F16C at 0x" + std::to_string(bits_of(f)));
#endif
  }
  CHECK(ties > 60000);  // every midpoint is an exact tie
  CHECK_REPORT(rep);
  // A few by hand.
  CHECK(K::f32_to_f16(1.0f) == 0x3c00);
  CHECK(K::f32_to_f16(-2.0f) == 0xc000);
  CHECK(K::f32_to_f16(65504.0f) == 0x7bff);
  CHECK(K::f32_to_f16(65519.0f) == 0x7bff);
  CHECK(K::f32_to_f16(65520.0f) == 0x7c00);
  CHECK(K::f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(K::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);                 // tie -> even (0)
  CHECK(K::f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(K::f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);                 // 1.5 -> 2
  CHECK(K::f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);          // tie -> even
  CHECK(K::f32_to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);          // tie -> even (up)
  CHECK(K::f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)) == 0x0400);  // rounds up to normal
  CHECK(K::f32_to_f16(-0.0f) == 0x8000);
  CHECK(K::f16_to_f32(0x7bff) == 65504.0f);
  CHECK(K::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(K::f16_to_f32(0x03ff) == std::ldexp(1023.0f, -24));
}

TEST_CASE("f16: f32_to_f16(f16_to_f32(h)) == h for every non-NaN half") {
  Report rep;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) continue;
    if (K::f32_to_f16(K::f16_to_f32(static_cast<std::uint16_t>(h))) != h) rep.fail(std::to_string(h));
  }
  CHECK_REPORT(rep);
}

// =============================================================================================
// Packers and quantizers (quantize.hpp)

TEST_CASE("pack_panels_f16: [p][k][j] = f16(W[16p+j][k]), K' even, zero padding") {
  Rng rng(12);
  for (std::size_t n : {1, 3, 16, 17, 33, 50})
    for (std::size_t k : {1, 2, 3, 16, 17, 100}) {
      const std::vector<float> w = random_vector(rng, n * k, 0.5f, 1.5f);  // never 0
      const std::size_t kp = K::panel_rows(K::WeightType::f16, k);
      REQUIRE(kp == (k % 2 ? k + 1 : k));
      const std::size_t P = K::panel_count(n);
      REQUIRE(P * K::panel_bytes(K::WeightType::f16, k) == P * kp * 16 * 2);
      std::vector<std::uint16_t> panels(P * kp * 16, 0xffff);
      K::pack_panels_f16(w.data(), n, k, panels.data());
      Report rep;
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t c = 0; c < kp; ++c)
          for (std::size_t j = 0; j < 16; ++j) {
            const std::size_t row = 16 * p + j;
            const std::uint16_t want = row < n && c < k ? K::f32_to_f16(w[row * k + c]) : std::uint16_t{0};
            if (panels[(p * kp + c) * 16 + j] != want)
              rep.fail("p " + std::to_string(p) + " k " + std::to_string(c) + " j " + std::to_string(j));
          }
      CHECK_MESSAGE(rep.ok(), "n=" << n << " k=" << k << ": " << rep.text());
    }
}

namespace {

// This file's own weight quantizer (the documented formula).
void naive_quantize_weights(const std::vector<float>& w, std::size_t n, std::size_t k, std::vector<int>& q,
                            std::vector<float>& scale) {
  q.assign(n * k, 0);
  scale.assign(n, 1.0f);
  for (std::size_t r = 0; r < n; ++r) {
    double amax = 0;
    for (std::size_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(static_cast<double>(w[r * k + c])));
    const float s = static_cast<float>(amax / 127.0);
    if (s == 0.0f) continue;
    scale[r] = s;
    for (std::size_t c = 0; c < k; ++c)
      q[r * k + c] = static_cast<int>(std::clamp(std::nearbyint(w[r * k + c] / static_cast<double>(s)), -127.0, 127.0));
  }
}

}  // namespace

TEST_CASE("quantize_dense_i8: layout, scales, codes, column sums, padding") {
  Rng rng(13);
  for (std::size_t n : {1, 3, 15, 16, 17, 40})
    for (std::size_t k : {1, 2, 3, 4, 5, 7, 8, 31, 33, 100}) {
      std::vector<float> w = random_vector(rng, n * k, -2.0f, 2.0f);
      // Special rows where they exist: all zero, one huge value, subnormal only, constant.
      if (n > 2) std::fill(w.begin() + 2 * k, w.begin() + 3 * k, 0.0f);
      if (n > 5) w[5 * k + k / 2] = 3e38f;
      if (n > 6) std::fill(w.begin() + 6 * k, w.begin() + 7 * k, 1e-44f);
      if (n > 7) std::fill(w.begin() + 7 * k, w.begin() + 8 * k, -0.75f);
      const std::size_t P = K::panel_count(n);
      const std::size_t G = (k + 3) / 4;
      REQUIRE(K::panel_bytes(K::WeightType::i8, k) == G * 64);
      std::vector<std::int8_t> panels(P * G * 64, 0x55);
      std::vector<float> scale(P * 16, kNaN);
      std::vector<std::int32_t> colsum(P * 16, 12345);
      K::quantize_dense_i8(w.data(), n, k, panels.data(), scale.data(), colsum.data());
      std::vector<int> q;
      std::vector<float> s;
      naive_quantize_weights(w, n, k, q, s);
      Report rep;
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t g = 0; g < G; ++g)
          for (std::size_t j = 0; j < 16; ++j)
            for (std::size_t i = 0; i < 4; ++i) {
              const std::size_t row = 16 * p + j, col = 4 * g + i;
              const int want = row < n && col < k ? q[row * k + col] : 0;
              const int got = panels[((p * G + g) * 16 + j) * 4 + i];
              if (got != want) rep.fail("code [" + std::to_string(row) + "][" + std::to_string(col) + "]");
              if (row < n && col < k && K::i8_index(k, row, col) != ((p * G + g) * 16 + j) * 4 + i)
                rep.fail("i8_index");
            }
      for (std::size_t r = 0; r < P * 16; ++r) {
        if (!same_bits(scale[r], r < n ? s[r] : 0.0f)) rep.fail("scale " + std::to_string(r));
        std::int32_t cs = 0;
        for (std::size_t c = 0; r < n && c < k; ++c) cs += q[r * k + c];
        if (colsum[r] != cs) rep.fail("colsum " + std::to_string(r));
        // Dequantized weights within scale / 2.
        for (std::size_t c = 0; r < n && c < k; ++c) {
          const double deq = static_cast<double>(q[r * k + c]) * scale[r];
          const bool tiny = s[r] == 1.0f && q[r * k + c] == 0;  // zero-scale rows
          rep.near(deq, w[r * k + c], tiny ? 1e-43 : scale[r] / 2.0 * (1 + 1e-12), "dequant", r, c);
        }
      }
      if (n > 2) CHECK(scale[2] == 1.0f);  // all-zero row
      if (n > 5) CHECK(scale[5] == static_cast<float>(3e38 / 127.0));
      if (n > 6) CHECK(scale[6] == 1.0f);  // max / 127 underflows: treated as zero
      if (n > 7) CHECK(scale[7] * 127 == doctest::Approx(0.75));
      std::vector<std::int32_t> cs2(P * 16, 777);
      K::compute_colsum(panels.data(), n, k, cs2.data());
      CHECK(cs2 == colsum);
      CHECK_MESSAGE(rep.ok(), "n=" << n << " k=" << k << ": " << rep.text());
    }
}

TEST_CASE("quantize_dense_i8: extremes map to +-127, halves round to even") {
  // Row 0: max 127 -> scale 1: codes are nearbyint of the values themselves.
  const std::vector<float> w = {127.0f, -127.0f, 2.5f, 3.5f, -2.5f, 0.49f, 126.5f};
  std::vector<std::int8_t> panels(64 * 2, 0);
  std::vector<float> scale(16);
  std::vector<std::int32_t> colsum(16);
  K::quantize_dense_i8(w.data(), 1, 7, panels.data(), scale.data(), colsum.data());
  CHECK(scale[0] == 1.0f);
  const int want[] = {127, -127, 2, 4, -2, 0, 126};
  for (std::size_t c = 0; c < 7; ++c) {
    CAPTURE(c);
    CHECK(panels[K::i8_index(7, 0, c)] == want[c]);
  }
  CHECK(colsum[0] == 127 - 127 + 2 + 4 - 2 + 0 + 126);
  for (std::size_t j = 1; j < 16; ++j) CHECK(colsum[j] == 0);
}

// =============================================================================================
// quantize_activations

namespace {

// This file's own input quantizer (the documented formula).
struct QRow {
  std::vector<std::uint8_t> u;  // 4 ceil(K / 4) bytes
  float scale = 1.0f;
  int zp = 0;
};
QRow naive_quantize_row(const float* x, std::size_t k) {
  QRow q;
  float lo = 0.0f, hi = 0.0f;
  for (std::size_t c = 0; c < k; ++c) {
    lo = std::min(lo, x[c]);
    hi = std::max(hi, x[c]);
  }
  float inv = 1.0f;
  if (hi - lo >= std::ldexp(1.0f, -100)) {
    q.scale = (hi - lo) / 255.0f;
    inv = 255.0f / (hi - lo);
  }
  q.zp = std::clamp(static_cast<int>(std::nearbyint(-lo * inv)), 0, 255);
  q.u.assign((k + 3) / 4 * 4, 0);
  for (std::size_t c = 0; c < k; ++c)
    q.u[c] = static_cast<std::uint8_t>(std::clamp(static_cast<int>(std::nearbyint(x[c] * inv)) + q.zp, 0, 255));
  return q;
}

using QuantizeFn = void (*)(std::size_t, const float*, std::size_t, std::size_t, std::uint8_t*, std::size_t,
                            float*, std::int32_t*) noexcept;

// Input rows: m rows of K values in [lo, hi], ldx apart, NaN in the stride padding; a few
// special rows (all zero, all positive, all negative, one nonzero) when there are enough rows.
std::vector<float> make_input(Rng& rng, std::size_t m, std::size_t k, std::size_t ldx, float lo = -1.0f,
                              float hi = 1.0f) {
  std::vector<float> x(m * ldx, kNaN);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < k; ++c) x[r * ldx + c] = rng.uniform(lo, hi);
  if (m > 3) {
    for (std::size_t c = 0; c < k; ++c) {
      x[1 * ldx + c] = 0.0f;
      x[2 * ldx + c] = std::fabs(x[2 * ldx + c]) + 0.25f;
      x[3 * ldx + c] = -std::fabs(x[3 * ldx + c]) * 100.0f;
    }
  }
  if (m > 5) {
    for (std::size_t c = 0; c < k; ++c) x[5 * ldx + c] = 0.0f;
    x[5 * ldx + k / 2] = -3.0f;
  }
  return x;
}

}  // namespace

TEST_CASE("quantize_activations: the documented bytes; SIMD bytes identical") {
  Rng rng(17);
  std::vector<QuantizeFn> fns = {&ref::quantize_activations, K::quantize_activations};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().quantize_activations);
#endif
  for (std::size_t k : {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 257, 1000})
    for (std::size_t m : {1, 2, 7, 13}) {
      const std::size_t ldx = k + 3, ldu = K::i8_row_bytes(k) + 8;
      const std::vector<float> x = make_input(rng, m, k, ldx, -3.0f, 5.0f);
      for (QuantizeFn fn : fns) {
        std::vector<std::uint8_t> u(m * ldu, 0xab);
        std::vector<float> scale(m + 1, sentinel());
        std::vector<std::int32_t> zp(m + 1, -7);
        fn(m, x.data(), ldx, k, u.data(), ldu, scale.data(), zp.data());
        Report rep;
        for (std::size_t r = 0; r < m; ++r) {
          const QRow q = naive_quantize_row(x.data() + r * ldx, k);
          rep.bits(scale[r], q.scale, "scale", r, 0);
          if (zp[r] != q.zp) rep.fail("zp of row " + std::to_string(r));
          for (std::size_t c = 0; c < q.u.size(); ++c)
            if (u[r * ldu + c] != q.u[c])
              rep.fail("byte [" + std::to_string(r) + "][" + std::to_string(c) + "]: got " +
                       std::to_string(u[r * ldu + c]) + ", want " + std::to_string(q.u[c]));
          for (std::size_t c = K::i8_row_bytes(k); c < ldu; ++c)
            if (u[r * ldu + c] != 0xab) rep.fail("wrote past the row");
          // The quantization error: (u - zp) sx within sx / 2 (+ rounding) of x; zero is exact.
          for (std::size_t c = 0; c < k; ++c) {
            const double xv = x[r * ldx + c];
            const double deq = (static_cast<double>(u[r * ldu + c]) - zp[r]) * scale[r];
            rep.near(deq, xv, scale[r] * 0.5 + 4 * kU * std::fabs(xv) + 1e-30, "dequant", r, c);
            if (xv == 0.0 && u[r * ldu + c] != zp[r]) rep.fail("zero is not exact");
          }
        }
        if (!is_sentinel(scale[m]) || zp[m] != -7) rep.fail("wrote past m");
        CHECK_MESSAGE(rep.ok(), "k=" << k << " m=" << m << ": " << rep.text());
      }
    }
}

TEST_CASE("quantize_activations: ties and extremes") {
  // lo = -1, hi = 1.55: the zero point and the codes near the ends; x = 0 rows; tiny ranges.
  std::vector<std::vector<float>> rows = {
      {-1.0f, 1.55f, 0.0f, 0.5f, -0.5f, 1e-30f, 1.0f, -0.999f, 1.549f},
      {0.0f, 0.0f, 0.0f},
      {1e-38f, 2e-38f, -1e-38f, 0.0f, 5e-39f},
      {1e30f, -1e30f, 3.0f},
      {7.0f, 7.0f, 7.0f, 7.0f, 7.0f},
      {-7.0f},
  };
  std::vector<QuantizeFn> fns = {&ref::quantize_activations};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().quantize_activations);
#endif
  for (const auto& x : rows)
    for (QuantizeFn fn : fns) {
      const std::size_t k = x.size();
      std::vector<std::uint8_t> u(K::i8_row_bytes(k), 0xcd);
      float scale;
      std::int32_t zp;
      fn(1, x.data(), k, k, u.data(), u.size(), &scale, &zp);
      const QRow q = naive_quantize_row(x.data(), k);
      CHECK(same_bits(scale, q.scale));
      CHECK(zp == q.zp);
      CHECK(std::equal(q.u.begin(), q.u.end(), u.begin()));
      std::uint8_t umin = 255, umax = 0;
      for (std::size_t c = 0; c < k; ++c) {
        umin = std::min(umin, u[c]);
        umax = std::max(umax, u[c]);
      }
      const float lo = std::min(0.0f, *std::min_element(x.begin(), x.end()));
      const float hi = std::max(0.0f, *std::max_element(x.begin(), x.end()));
      // The range ends map to the end codes, within the rounding of the zero point.
      if (hi - lo >= std::ldexp(1.0f, -100)) {
        if (lo < 0) CHECK(umin <= 1);
        if (hi > 0) CHECK(umax >= 254);
      } else {  // zero or tiny rows: every code 0
        CHECK(scale == 1.0f);
        CHECK(zp == 0);
        CHECK(umax == 0);
      }
    }
}

TEST_CASE("quantize_activations: rows with Inf, NaN or an overflowing range give NaN, never UB") {
  // Activations overflow when weights or inputs are huge; converting them to int would be
  // undefined (UBSan caught it, tests/fuzz/). Such a row: codes 0, zero point 0, scale NaN, in
  // every backend, at every position (vector body or scalar tail).
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float big = std::numeric_limits<float>::max();
  std::vector<QuantizeFn> fns = {&ref::quantize_activations};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().quantize_activations);
#endif
  for (const std::size_t k : {1, 3, 8, 17, 40})
    for (std::size_t at = 0; at < k; at += 4)
      for (const float bad : {inf, -inf, nan, big})
        for (QuantizeFn fn : fns) {
          CAPTURE(k);
          CAPTURE(at);
          CAPTURE(bad);
          std::vector<float> x(k, 0.25f);
          x[at] = bad;
          if (bad == big) x[(at + 1) % k] = -big;  // hi - lo overflows (for k = 1 the row is fine)
          std::vector<std::uint8_t> u(K::i8_row_bytes(k), 0xcd);
          float scale = 0.0f;
          std::int32_t zp = -1;
          fn(1, x.data(), k, k, u.data(), u.size(), &scale, &zp);
          if (bad == big && k == 1) {
            CHECK(std::isfinite(scale));
            continue;
          }
          CHECK(std::isnan(scale));
          CHECK(zp == 0);
          for (std::size_t c = 0; c < (k + 3) / 4 * 4; ++c) CHECK(u[c] == 0);
        }
}

// =============================================================================================
// dense_i8

namespace {

// A dense layer: unpacked f32 weights and bias, the same packed as i8 and as f32 (for
// comparisons), the codes unpacked again (qn, row-major), and the per-panel activations.
struct QLayer {
  std::size_t k = 0, n = 0;
  std::vector<float> w, b;
  std::vector<std::int8_t> panels;
  std::vector<float> bias, scale;
  std::vector<std::int32_t> colsum;
  std::vector<int> qn;
  std::vector<float> f32_panels;
  std::vector<Activation> act;

  QLayer(std::size_t K_, std::size_t N_, std::vector<float> w_, std::vector<float> b_)
      : k(K_), n(N_), w(std::move(w_)), b(std::move(b_)) {
    const std::size_t P = K::panel_count(n);
    panels.assign(P * K::panel_bytes(K::WeightType::i8, k), 0x11);
    scale.assign(P * 16, kNaN);
    colsum.assign(P * 16, -1);
    K::quantize_dense_i8(w.data(), n, k, panels.data(), scale.data(), colsum.data());
    qn.resize(n * k);
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t c = 0; c < k; ++c) qn[r * k + c] = panels[K::i8_index(k, r, c)];
    bias.assign(P * 16, 0.0f);
    std::copy(b.begin(), b.end(), bias.begin());
    f32_panels.assign(P * k * 16, 0.0f);
    K::pack_panels(w.data(), n, k, f32_panels.data());
    act.assign(P, Activation::identity);
  }
  QLayer(Rng& rng, std::size_t K_, std::size_t N_)
      : QLayer(K_, N_, random_vector(rng, N_ * K_, -1.0f, 1.0f), random_vector(rng, N_, -1.0f, 1.0f)) {}
  K::DenseView view() const {
    return K::DenseView{k, n, panels.data(), bias.data(), act.data(), K::WeightType::i8, scale.data(), colsum.data()};
  }
  K::DenseView f32_view() const { return K::DenseView{k, n, f32_panels.data(), bias.data(), act.data()}; }
  int q(std::size_t row, std::size_t col) const { return qn[row * k + col]; }
  Activation act_of(std::size_t c) const { return act[c / 16]; }
};

using I8Fn = void (*)(std::size_t, const float*, std::size_t, const K::DenseView&, float*, std::size_t,
                      std::uint8_t*) noexcept;
using DenseFn = void (*)(std::size_t, const float*, std::size_t, const K::DenseView&, float*,
                         std::size_t) noexcept;

// Checks that only [0, m) x [0, N) of a (m + 2) x ldy sentinel-filled output was written.
void check_written(const std::vector<float>& y, std::size_t m, std::size_t n, std::size_t ldy, Report& rep) {
  for (std::size_t r = 0; r < m + 2; ++r)
    for (std::size_t c = 0; c < ldy; ++c) {
      const bool inside = r < m && c < n;
      if (!inside && !is_sentinel(y[r * ldy + c]))
        rep.fail("wrote outside the output at [" + std::to_string(r) + "][" + std::to_string(c) + "]");
      if (inside && is_sentinel(y[r * ldy + c]))
        rep.fail("did not write [" + std::to_string(r) + "][" + std::to_string(c) + "]");
    }
}

// Runs an i8 kernel with an exactly sized scratch; returns the output, and the scratch.
std::vector<float> run_i8(I8Fn fn, std::size_t m, const std::vector<float>& x, std::size_t ldx, const QLayer& L,
                          std::size_t ldy, Report& rep, std::vector<std::uint8_t>* scratch_out = nullptr) {
  std::vector<std::uint8_t> scratch(K::dense_i8_scratch_bytes(m, L.k), 0xee);
  std::vector<float> y((m + 2) * ldy, sentinel());
  fn(m, x.data(), ldx, L.view(), y.data(), ldy, scratch.data());
  check_written(y, m, L.n, ldy, rep);
  if (scratch_out) *scratch_out = std::move(scratch);
  return y;
}

std::vector<float> run_f(DenseFn fn, std::size_t m, const std::vector<float>& x, std::size_t ldx,
                         const K::DenseView& L, std::size_t ldy, Report& rep) {
  std::vector<float> y((m + 2) * ldy, sentinel());
  fn(m, x.data(), ldx, L, y.data(), ldy);
  check_written(y, m, L.n, ldy, rep);
  return y;
}

#if !defined(MTLITE_NO_SIMD)
// The vector activation of one value (what every lane of the vector kernels in use computes):
// a run long enough for every vector width, so no element takes the scalar tail.
float simd_act(Activation a, float v) {
  float run[64];
  std::fill(std::begin(run), std::end(run), v);
  K::table().activation(a, run, 64);
  return run[0];
}
#endif

// The exact integer model of rows [0, m): this file's quantization of each row and the int64
// sums I[r][c] = sum_k (u_k - zp) Q[c][k].
struct ExactI8 {
  std::vector<QRow> q;
  std::vector<double> I;  // [r * n + c], exact (|I| < 2^53)
};
ExactI8 exact_i8(const QLayer& L, std::size_t m, const std::vector<float>& x, std::size_t ldx) {
  ExactI8 e;
  e.I.resize(m * L.n);
  for (std::size_t r = 0; r < m; ++r) {
    e.q.push_back(naive_quantize_row(x.data() + r * ldx, L.k));
    const QRow& q = e.q.back();
    for (std::size_t c = 0; c < L.n; ++c) {
      std::int64_t I = 0;
      const int* qc = L.qn.data() + c * L.k;
      for (std::size_t i = 0; i < L.k; ++i) I += (static_cast<std::int64_t>(q.u[i]) - q.zp) * qc[i];
      e.I[r * L.n + c] = static_cast<double>(I);
    }
  }
  return e;
}

// ref::dense_i8 against the exact integer model (double epilogue), and its quantized rows in the
// scratch against this file's quantizer.
void check_i8_ref(const QLayer& L, std::size_t m, const ExactI8& e, const std::vector<float>& y, std::size_t ldy,
                  const std::vector<std::uint8_t>& scratch, Report& rep) {
  const std::size_t ld = K::i8_row_bytes(L.k);
  for (std::size_t r = 0; r < m; ++r) {
    const QRow& q = e.q[r];
    if (!std::equal(q.u.begin(), q.u.end(), scratch.begin() + static_cast<std::ptrdiff_t>(r * ld)))
      rep.fail("scratch bytes of row " + std::to_string(r));
    float sc;
    std::int32_t zp;
    std::memcpy(&sc, scratch.data() + m * ld + 4 * r, 4);
    std::memcpy(&zp, scratch.data() + m * ld + 4 * m + 4 * r, 4);
    if (!same_bits(sc, q.scale) || zp != q.zp) rep.fail("scratch parameters of row " + std::to_string(r));
    for (std::size_t c = 0; c < L.n; ++c) {
      const double I = e.I[r * L.n + c];
      const double ss = static_cast<double>(q.scale) * L.scale[c];
      const double pre = I * ss + L.b[c];
      const double want = act_exact(L.act_of(c), pre);
      const double tol =
          4 * kU * (std::fabs(I) * ss + std::fabs(L.b[c])) + act_tol(L.act_of(c), want) + 1e-37;
      rep.near(y[r * ldy + c], want, tol, "ref vs exact", r, c);
    }
  }
}

// simd::dense_i8 against ref::dense_i8, bit for bit: the quantized rows, and the outputs
// (identity and relu: the ref's bits; sigmoid and tanh: the SIMD activation of the ref's
// pre-activation bits, i.e. the same value through the backend's activation).
void check_i8_simd(QLayer& L, std::size_t m, const std::vector<float>& x, std::size_t ldx,
                   const std::vector<float>& yr, std::size_t ldy, const std::vector<std::uint8_t>& scratch_ref,
                   Report& rep) {
#if defined(MTLITE_NO_SIMD)
  (void)L, (void)m, (void)x, (void)ldx, (void)yr, (void)ldy, (void)scratch_ref, (void)rep;
#else
  std::vector<float> pre;
  if (std::any_of(L.act.begin(), L.act.end(), [](Activation a) {
        return a == Activation::sigmoid || a == Activation::tanh;
      })) {
    const std::vector<Activation> acts = L.act;
    std::fill(L.act.begin(), L.act.end(), Activation::identity);
    pre = run_i8(&ref::dense_i8, m, x, ldx, L, ldy, rep);
    L.act = acts;
  }
  std::vector<std::uint8_t> scratch;
  const std::vector<float> ys = run_i8(K::table().dense_i8, m, x, ldx, L, ldy, rep, &scratch);
  const std::size_t ld = K::i8_row_bytes(L.k);
  for (std::size_t r = 0; r < m; ++r)
    if (!std::equal(scratch.begin() + static_cast<std::ptrdiff_t>(r * ld),
                    scratch.begin() + static_cast<std::ptrdiff_t>(r * ld + (L.k + 3) / 4 * 4),
                    scratch_ref.begin() + static_cast<std::ptrdiff_t>(r * ld)))
      rep.fail("simd quantized row " + std::to_string(r) + " differs from ref");
  if (!std::equal(scratch.begin() + static_cast<std::ptrdiff_t>(m * ld), scratch.end(),
                  scratch_ref.begin() + static_cast<std::ptrdiff_t>(m * ld)))
    rep.fail("simd row scales / zero points differ from ref");
  const bool scalar_path = std::string(K::table().i8_path) == "scalar";
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < L.n; ++c) {
      const Activation a = L.act_of(c);
      const bool same = a == Activation::identity || a == Activation::relu || scalar_path;
      const float want = same ? yr[r * ldy + c] : simd_act(a, pre[r * ldy + c]);
      rep.bits(ys[r * ldy + c], want, "simd vs ref", r, c);
      rep.near(ys[r * ldy + c], yr[r * ldy + c], act_tol(a, yr[r * ldy + c]), "simd vs ref activation", r, c);
    }
#endif
}

// The whole i8 check for one layer and m (e: exact_i8 of at least m rows).
void check_i8(QLayer& L, std::size_t m, const std::vector<float>& x, std::size_t ldx, std::size_t ldy,
              const ExactI8& e, Report& rep) {
  std::vector<std::uint8_t> scratch;
  const std::vector<float> yr = run_i8(&ref::dense_i8, m, x, ldx, L, ldy, rep, &scratch);
  check_i8_ref(L, m, e, yr, ldy, scratch, rep);
  check_i8_simd(L, m, x, ldx, yr, ldy, scratch, rep);
}

const std::vector<std::size_t> kI8M = {1, 2, 3, 5, 12, 13, 64, 65};
const std::vector<std::size_t> kI8K = {1, 3, 4, 5, 7, 31, 33, 100, 257, 1000};
const std::vector<std::size_t> kI8N = {1, 3, 15, 16, 17, 33, 100, 257};

}  // namespace

TEST_CASE("dense_i8: m x K x N grid, every activation and mixed, strided input and output") {
#if !defined(MTLITE_NO_SIMD)
  MESSAGE("i8 path: " << std::string(K::table().i8_path));
#endif
  Rng rng(2025);
  const std::size_t max_m = kI8M.back();
  for (std::size_t k : kI8K)
    for (std::size_t n : kI8N) {
      QLayer L(rng, k, n);
      const std::size_t ldx = k + 1 + k % 5;  // > K
      const std::size_t ldy = n + 3;          // > N
      const std::vector<float> x = make_input(rng, max_m, k, ldx);
      const ExactI8 e = exact_i8(L, max_m, x, ldx);
      for (int config = 0; config < 5; ++config) {
        for (std::size_t p = 0; p < L.act.size(); ++p)
          L.act[p] = config < 4 ? kActs[config] : kActs[(p * 3 + 1) % 4];
        for (std::size_t m : kI8M) {
          Report rep;
          check_i8(L, m, x, ldx, ldy, e, rep);
          CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << " acts=" << config << ": "
                                       << rep.text());
        }
      }
    }
}

TEST_CASE("dense_i8: fused layer, a different activation per panel, many panels") {
  Rng rng(78);
  for (std::size_t n : {150, 160, 53, 1000})
    for (std::size_t k : {5, 64, 100}) {
      QLayer L(rng, k, n);
      for (std::size_t p = 0; p < L.act.size(); ++p) L.act[p] = kActs[(p * 3 + 1) % 4];
      const std::size_t ldx = k + 7, ldy = n + 16;
      const std::vector<float> x = make_input(rng, 65, k, ldx);
      const ExactI8 e = exact_i8(L, 65, x, ldx);
      for (std::size_t m : {1, 2, 7, 13, 25, 64, 65}) {
        Report rep;
        check_i8(L, m, x, ldx, ldy, e, rep);
        CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << ": " << rep.text());
      }
    }
}

TEST_CASE("dense_i8: tight buffers (ldx == K, ldy == N, exact scratch)") {
  Rng rng(6);
  for (std::size_t k : {1, 7, 17, 64})
    for (std::size_t n : {1, 5, 16, 17, 33, 130})
      for (std::size_t m : {1, 2, 13, 25}) {
        QLayer L(rng, k, n);
        std::fill(L.act.begin(), L.act.end(), Activation::relu);
        const std::vector<float> x = make_input(rng, m, k, k);
        std::vector<std::uint8_t> s1(K::dense_i8_scratch_bytes(m, k)), s2 = s1;
        std::vector<float> yr(m * n, sentinel()), ys(m * n, sentinel());
        ref::dense_i8(m, x.data(), k, L.view(), yr.data(), n, s1.data());
        K::dense_i8(m, x.data(), k, L.view(), ys.data(), n, s2.data());
        Report rep;
        for (std::size_t i = 0; i < m * n; ++i) rep.bits(ys[i], yr[i], "dense_i8 vs ref", i / n, i % n);
        CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << ": " << rep.text());
      }
}

TEST_CASE("dense_i8: against the f32 layer of the unquantized weights (worst-case bound)") {
  Rng rng(99);
  double worst_ratio = 0;  // error / bound
  for (std::size_t k : {1, 5, 33, 100, 257, 1000})
    for (std::size_t n : {3, 17, 100}) {
      for (bool relu_inputs : {false, true}) {
        QLayer L(rng, k, n);
        const std::size_t ldx = k + 2, ldy = n + 1, m = 13;
        std::vector<float> x = make_input(rng, m, k, ldx);
        if (relu_inputs)  // the common case after a ReLU layer: lo = 0, zp = 0
          for (float& v : x)
            if (v < 0) v = 0.0f;
        for (Activation a : kActs) {
          std::fill(L.act.begin(), L.act.end(), a);
          Report rep;
          const std::vector<float> yq = run_i8(K::dense_i8, m, x, ldx, L, ldy, rep);
          const std::vector<float> yf = run_f(K::dense, m, x, ldx, L.f32_view(), ldy, rep);
          for (std::size_t r = 0; r < m; ++r) {
            const QRow q = naive_quantize_row(x.data() + r * ldx, k);
            for (std::size_t c = 0; c < n; ++c) {
              double bound = 0, S = std::fabs(L.b[c]), I = 0;  // I: exact in double here
              for (std::size_t i = 0; i < k; ++i) {
                const double xv = x[r * ldx + i], wq = L.q(c, i) * static_cast<double>(L.scale[c]);
                bound += (q.scale / 2.0 + 3 * kU * std::fabs(xv)) * std::fabs(wq) + std::fabs(xv) * L.scale[c] / 2.0;
                S += std::fabs(xv * L.w[c * k + i]);
                I += (static_cast<double>(q.u[i]) - q.zp) * L.q(c, i);
              }
              bound += 4 * kU * (std::fabs(I) * q.scale * L.scale[c] + std::fabs(L.b[c])) +
                       2 * (k + 1) * kU * S + 8 * kEps * std::fabs(yf[r * ldy + c]) + 1e-30;
              const double err = std::fabs(static_cast<double>(yq[r * ldy + c]) - yf[r * ldy + c]);
              worst_ratio = std::max(worst_ratio, err / bound);
              rep.near(yq[r * ldy + c], yf[r * ldy + c], bound, "i8 vs f32", r, c);
            }
          }
          CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " relu inputs=" << relu_inputs
                                       << " act=" << mtlite::to_string(a) << ": " << rep.text());
        }
      }
    }
  MESSAGE("i8 vs f32: largest error / worst-case bound = " << worst_ratio);
  CHECK(worst_ratio < 1.0);
}

TEST_CASE("dense_i8: hand-computed example") {
  // K = 5, N = 2: W row 0 = [127, -127, 0, 1, 2] (scale 1), row 1 = [0.5, 0, 0, 0, 0] (scale
  // 0.5/127, code 127). x = [1, -1, 0, 0.5, 2]: lo = -1, hi = 2, sx = 3/255, inv = 85, zp = 85,
  // u = [170, 0, 85, 127 (42.5 rounds to even: 42, + 85), 255].
  const std::vector<float> w = {127.0f, -127.0f, 0.0f, 1.0f, 2.0f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<std::int8_t> panels(2 * 64);
  std::vector<float> scale(16), bias(16, 0.0f);
  std::vector<std::int32_t> colsum(16);
  K::quantize_dense_i8(w.data(), 2, 5, panels.data(), scale.data(), colsum.data());
  bias[0] = 10.0f;
  bias[1] = -1.0f;
  const Activation act = Activation::identity;
  const K::DenseView L{5, 2, panels.data(), bias.data(), &act, K::WeightType::i8, scale.data(), colsum.data()};
  const std::vector<float> x = {1.0f, -1.0f, 0.0f, 0.5f, 2.0f};
  const float inv = 255.0f / 3.0f, sx = 3.0f / 255.0f;
  const int zp = static_cast<int>(std::nearbyint(1.0f * inv));
  const int u[5] = {static_cast<int>(std::nearbyint(1.0f * inv)) + zp, 0, zp,
                    static_cast<int>(std::nearbyint(0.5f * inv)) + zp, 255};
  CHECK(zp == 85);
  CHECK(u[3] == 42 + 85);  // 42.5 rounds to even
  const int I0 = (u[0] - zp) * 127 + (u[1] - zp) * -127 + (u[3] - zp) * 1 + (u[4] - zp) * 2;
  const int I1 = (u[0] - zp) * 127;
  const float want0 = std::fma(static_cast<float>(I0), sx * 1.0f, 10.0f);
  const float want1 = std::fma(static_cast<float>(I1), sx * (0.5f / 127.0f), -1.0f);
  std::vector<I8Fn> fns = {&ref::dense_i8, K::dense_i8};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().dense_i8);
#endif
  for (I8Fn fn : fns) {
    std::vector<std::uint8_t> scratch(K::dense_i8_scratch_bytes(1, 5));
    float y[3] = {0, 0, sentinel()};
    fn(1, x.data(), 5, L, y, 2, scratch.data());
    CHECK(same_bits(y[0], want0));
    CHECK(same_bits(y[1], want1));
    CHECK(is_sentinel(y[2]));
    CHECK(y[0] == doctest::Approx(10.0 + 127 + 127 + 0.5 + 4).epsilon(0.01));
    CHECK(y[1] == doctest::Approx(-0.5).epsilon(0.01));
  }
}

TEST_CASE("dense_i8: K = 32768 (the bound), extreme codes, no overflow") {
  // Every weight +-127 (or 127), every input at the range ends: the sums reach the int32 bound
  // of the header comment.
  const std::size_t k = K::kMaxI8Inputs, n = 17;
  std::vector<float> w(n * k);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < k; ++c) w[r * k + c] = r == 0 ? 1.0f : (c % 2 ? -1.0f : 1.0f) * (r % 3 ? 1.0f : 0.5f);
  QLayer L(k, n, w, std::vector<float>(n, 0.25f));
  CHECK(L.colsum[0] == 127 * static_cast<std::int32_t>(k));
  for (std::size_t m : {1, 3}) {
    std::vector<float> x(m * k);
    for (std::size_t r = 0; r < m; ++r)
      for (std::size_t c = 0; c < k; ++c)
        x[r * k + c] = r == 0 ? 1.0f : r == 1 ? (c % 2 ? -1.0f : 1.0f) : (c % 2 ? 0.0f : -1.0f);
    Report rep;
    check_i8(L, m, x, k, n + 1, exact_i8(L, m, x, k), rep);
    CHECK_MESSAGE(rep.ok(), "m=" << m << ": " << rep.text());
  }
}

TEST_CASE("dense_i8: m = 0 writes nothing") {
  Rng rng(4);
  QLayer L(rng, 7, 20);
  const std::vector<float> x(8, 1.0f);
  std::vector<I8Fn> fns = {&ref::dense_i8, K::dense_i8};
#if !defined(MTLITE_NO_SIMD)
  fns.push_back(K::table().dense_i8);
#endif
  CHECK(K::dense_i8_scratch_bytes(0, 7) == 0);
  for (I8Fn fn : fns) {
    std::vector<float> y(2 * 24, sentinel());
    alignas(4) std::uint8_t dummy[4];
    fn(0, x.data(), 8, L.view(), y.data(), 24, dummy);
    CHECK(std::all_of(y.begin(), y.end(), is_sentinel));
  }
}

// =============================================================================================
// dense_f16

namespace {

struct HLayer {
  std::size_t k = 0, n = 0;
  std::vector<float> w, wh, b;  // original, f16-rounded
  std::vector<std::uint16_t> panels;
  std::vector<float> bias, f32_panels;
  std::vector<Activation> act;
  HLayer(Rng& rng, std::size_t K_, std::size_t N_) : k(K_), n(N_) {
    w = random_vector(rng, n * k, -1.0f, 1.0f);
    b = random_vector(rng, n, -1.0f, 1.0f);
    if (n * k > 3) {
      w[0] = 1e-6f;  // subnormal as a half
      w[n * k / 2] = 70000.0f / 65536.0f;
    }
    wh.resize(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) wh[i] = K::f16_to_f32(K::f32_to_f16(w[i]));
    const std::size_t P = K::panel_count(n);
    panels.assign(P * K::panel_bytes(K::WeightType::f16, k) / 2, 0xffff);
    K::pack_panels_f16(w.data(), n, k, panels.data());
    bias.assign(P * 16, 0.0f);
    std::copy(b.begin(), b.end(), bias.begin());
    f32_panels.assign(P * k * 16, 0.0f);
    K::pack_panels(w.data(), n, k, f32_panels.data());
    act.assign(P, Activation::identity);
  }
  K::DenseView view() const {
    return K::DenseView{k, n, panels.data(), bias.data(), act.data(), K::WeightType::f16};
  }
  K::DenseView f32_view() const { return K::DenseView{k, n, f32_panels.data(), bias.data(), act.data()}; }
};

void check_f16(const HLayer& L, std::size_t m, const std::vector<float>& x, std::size_t ldx, std::size_t ldy,
               Report& rep) {
  const std::vector<float> yr = run_f(&ref::dense_f16, m, x, ldx, L.view(), ldy, rep);
  std::vector<double> tol(m * L.n);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < L.n; ++c) {
      const Activation a = L.act[c / 16];
      double s = L.b[c], mag = std::fabs(L.b[c]);
      for (std::size_t i = 0; i < L.k; ++i) {
        const double p = static_cast<double>(x[r * ldx + i]) * L.wh[c * L.k + i];
        s += p;
        mag += std::fabs(p);
      }
      const double want = act_exact(a, s);
      tol[r * L.n + c] = (L.k + 1) * kU * mag + 4 * kEps * std::fabs(want) + FLT_MIN;
      rep.near(yr[r * ldy + c], want, tol[r * L.n + c], "ref vs exact", r, c);
    }
#if !defined(MTLITE_NO_SIMD)
  const std::vector<float> ys = run_f(K::table().dense_f16, m, x, ldx, L.view(), ldy, rep);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t c = 0; c < L.n; ++c)
      rep.near(ys[r * ldy + c], yr[r * ldy + c], 2 * tol[r * L.n + c], "simd vs ref", r, c);
#endif
}

}  // namespace

TEST_CASE("dense_f16: m x K x N grid, every activation and mixed, strided") {
#if !defined(MTLITE_NO_SIMD)
  MESSAGE("f16 path: " << std::string(K::table().f16_path));
#endif
  Rng rng(2026);
  for (std::size_t k : {1, 2, 3, 7, 16, 17, 33, 100, 257})
    for (std::size_t n : {1, 3, 15, 16, 17, 33, 100, 257}) {
      HLayer L(rng, k, n);
      const std::size_t ldx = k + 1 + k % 5, ldy = n + 3;
      const std::vector<float> x = make_input(rng, 65, k, ldx);
      for (int config = 0; config < 5; ++config) {
        for (std::size_t p = 0; p < L.act.size(); ++p)
          L.act[p] = config < 4 ? kActs[config] : kActs[(p * 3 + 1) % 4];
        for (std::size_t m : {1, 2, 3, 5, 12, 13, 64, 65}) {
          Report rep;
          check_f16(L, m, x, ldx, ldy, rep);
          CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " m=" << m << " acts=" << config << ": "
                                       << rep.text());
        }
      }
    }
}

TEST_CASE("dense_f16: against the f32 layer of the unrounded weights") {
  Rng rng(98);
  for (std::size_t k : {1, 5, 33, 100, 1000})
    for (std::size_t n : {3, 17, 100}) {
      HLayer L(rng, k, n);
      const std::size_t ldx = k, ldy = n, m = 13;
      const std::vector<float> x = make_input(rng, m, k, ldx);
      for (Activation a : kActs) {
        std::fill(L.act.begin(), L.act.end(), a);
        Report rep;
        const std::vector<float> yh = run_f(K::dense_f16, m, x, ldx, L.view(), ldy, rep);
        const std::vector<float> yf = run_f(K::dense, m, x, ldx, L.f32_view(), ldy, rep);
        for (std::size_t r = 0; r < m; ++r)
          for (std::size_t c = 0; c < n; ++c) {
            double bound = 0, S = std::fabs(L.b[c]);
            for (std::size_t i = 0; i < k; ++i) {
              const double xv = std::fabs(x[r * ldx + i]);
              bound += xv * (std::ldexp(std::fabs(L.w[c * k + i]), -11) + std::ldexp(1.0, -25));
              S += xv * std::fabs(L.w[c * k + i]);
            }
            bound += 2 * (k + 1) * kU * S + 8 * kEps * std::fabs(yf[r * ldy + c]) + FLT_MIN;
            rep.near(yh[r * ldy + c], yf[r * ldy + c], bound, "f16 vs f32", r, c);
          }
        CHECK_MESSAGE(rep.ok(), "K=" << k << " N=" << n << " act=" << mtlite::to_string(a) << ": " << rep.text());
      }
    }
}

// =============================================================================================
// Embedding bags

namespace {

using AddF16Fn = void (*)(const std::uint16_t*, std::size_t, const std::uint64_t*, std::size_t, float*) noexcept;
using AddQFn = void (*)(const std::uint8_t*, std::size_t, std::size_t, const std::uint64_t*, std::size_t,
                        float*) noexcept;

const std::vector<std::size_t> kDims = {1,  2,  3,  4,  5,  7,  8,  9,  15, 16,  17,
                                        31, 32, 33, 48, 63, 64, 65, 100, 128, 257};

std::vector<std::vector<std::uint64_t>> bags(Rng& rng, std::size_t table_rows) {
  std::vector<std::vector<std::uint64_t>> all = {{}, {0}, {table_rows - 1}, {3, 3}, {7, 0, 7, table_rows - 1, 7, 2, 0}, {}};
  for (int i = 0; i < 40; ++i) all.back().push_back(rng.below(table_rows));
  return all;
}

// Row r of a rows_q table, dequantized in double.
double deq(const std::vector<std::uint8_t>& t, std::size_t stride, unsigned bits, std::size_t r, std::size_t d) {
  float scale, offset;
  std::memcpy(&scale, t.data() + r * stride, 4);
  std::memcpy(&offset, t.data() + r * stride + 4, 4);
  const std::uint8_t* codes = t.data() + r * stride + 8;
  const unsigned code = bits == 8 ? codes[d] : (codes[d / 2] >> (d % 2 * 4)) & 15u;
  return std::fma(static_cast<float>(code), scale, offset);
}

// A table with special rows: constant, huge range, tiny values, exact extremes.
std::vector<float> make_table(Rng& rng, std::size_t rows, std::size_t dim) {
  std::vector<float> t = random_vector(rng, rows * dim, -1.0f, 1.0f);
  std::fill(t.begin() + 1 * dim, t.begin() + 2 * dim, 0.375f);  // constant: scale 0
  for (std::size_t d = 0; d < dim; ++d) {
    t[4 * dim + d] = d % 2 ? 3e38f : -3e38f;                   // max - min > FLT_MAX
    t[5 * dim + d] = rng.uniform(-1e-38f, 1e-38f);             // subnormal range
    t[6 * dim + d] = rng.uniform(100.0f, 200.0f);              // all positive, far from 0
  }
  return t;
}

}  // namespace

// The squared error of row v under the min/max scheme (offset = min, scale = range / levels,
// nearest codes), computed here independently of the quantizer, which must never do worse.
double min_max_error(const float* v, std::size_t dim, unsigned bits) {
  const double levels = bits == 8 ? 255.0 : 15.0;
  const float lo = *std::min_element(v, v + dim), hi = *std::max_element(v, v + dim);
  const auto scale = static_cast<float>((static_cast<double>(hi) - lo) / levels);
  double err = 0.0;
  for (std::size_t d = 0; d < dim; ++d) {
    const double c = scale > 0.0f ? std::clamp(std::nearbyint((v[d] - static_cast<double>(lo)) / scale), 0.0, levels) : 0.0;
    const double e = static_cast<double>(std::fma(static_cast<float>(c), scale, lo)) - v[d];
    err += e * e;
  }
  return err;
}

double row_error(const std::vector<std::uint8_t>& q, std::size_t stride, unsigned bits, const float* v,
                 std::size_t r, std::size_t dim) {
  double err = 0.0;
  for (std::size_t d = 0; d < dim; ++d) {
    const double e = deq(q, stride, bits, r, d) - v[d];
    err += e * e;
  }
  return err;
}

TEST_CASE("quantize_rows: layout, padding, never worse than min/max, exact where min/max is") {
  Rng rng(41);
  for (unsigned bits : {8u, 4u})
    for (std::size_t dim : kDims) {
      const std::size_t rows = 9, stride = rows_q_stride(dim, bits);
      CHECK(stride % 8 == 0);
      CHECK(stride == (8 + (dim * bits + 7) / 8 + 7) / 8 * 8);
      const std::vector<float> t = make_table(rng, rows, dim);
      std::vector<std::uint8_t> q(rows * stride + 3, 0x77);
      K::quantize_rows(t.data(), rows, dim, bits, q.data());
      Report rep;
      for (std::size_t r = 0; r < rows; ++r) {
        const float* v = t.data() + r * dim;
        const float lo = *std::min_element(v, v + dim), hi = *std::max_element(v, v + dim);
        float scale, offset;
        std::memcpy(&scale, q.data() + r * stride, 4);
        std::memcpy(&offset, q.data() + r * stride + 4, 4);
        if (!(scale >= 0.0f) || !std::isfinite(scale) || !std::isfinite(offset)) rep.fail("scale or offset of row " + std::to_string(r));
        const double err = row_error(q, stride, bits, v, r, dim), base = min_max_error(v, dim, bits);
        if (!(err <= base)) rep.fail("row " + std::to_string(r) + ": squared error " + std::to_string(err) + " above min/max's " + std::to_string(base));
        for (std::size_t d = 0; d < dim; ++d)
          if (!std::isfinite(deq(q, stride, bits, r, d))) rep.fail("non-finite value in row " + std::to_string(r));
        if (r == 1) {  // constant: scale 0, the value itself
          if (scale != 0.0f || !same_bits(offset, 0.375f)) rep.fail("constant row: not scale 0, offset the value");
          for (std::size_t d = 0; d < dim; ++d)
            if (!same_bits(static_cast<float>(deq(q, stride, bits, r, d)), v[d])) rep.fail("constant row not exact");
        }
        if (dim <= 2) {  // every value an extreme: the min/max scheme, which is exact up to rounding
          const double want_scale = (static_cast<double>(hi) - lo) / (bits == 8 ? 255.0 : 15.0);
          if (!same_bits(offset, lo) || !same_bits(scale, static_cast<float>(want_scale))) rep.fail("dim <= 2: not min/max");
        }
        for (std::size_t b = 8 + (dim * bits + 7) / 8; b < stride; ++b)
          if (q[r * stride + b] != 0) rep.fail("padding byte " + std::to_string(b) + " of row " + std::to_string(r));
        if (bits == 4 && dim % 2 && (q[r * stride + 8 + dim / 2] >> 4) != 0) rep.fail("unused high nibble");
      }
      for (std::size_t b = rows * stride; b < q.size(); ++b)
        if (q[b] != 0x77) rep.fail("wrote past the table");
      CHECK_MESSAGE(rep.ok(), "bits=" << bits << " dim=" << dim << ": " << rep.text());
    }
}

TEST_CASE("quantize_rows: the scale search beats min/max on normal rows") {
  // Gaussian rows are what trained embeddings look like; min/max spends levels on the tails.
  // The bounds are the measured ratios with a margin: a quantizer that fell back to min/max,
  // or searched badly, fails.
  Rng rng(43);
  struct Case { unsigned bits; std::size_t dim; double max_ratio; };
  for (const Case c : {Case{4, 4, 0.35}, Case{4, 8, 0.65}, Case{4, 64, 0.92}, Case{8, 8, 0.55}, Case{8, 64, 0.95}}) {
    const std::size_t rows = 500, stride = rows_q_stride(c.dim, c.bits);
    std::vector<float> t(rows * c.dim);
    for (float& x : t) x = static_cast<float>(rng.normal());
    std::vector<std::uint8_t> q(rows * stride);
    K::quantize_rows(t.data(), rows, c.dim, c.bits, q.data());
    double err = 0.0, base = 0.0;
    for (std::size_t r = 0; r < rows; ++r) {
      err += row_error(q, stride, c.bits, t.data() + r * c.dim, r, c.dim);
      base += min_max_error(t.data() + r * c.dim, c.dim, c.bits);
    }
    CHECK_MESSAGE(err < c.max_ratio * base, "bits=" << c.bits << " dim=" << c.dim << ": squared error " << err / base << " x min/max's");
  }
}

TEST_CASE("quantize_rows: a hand-written u4 row (low nibble first)") {
  const float row[5] = {0.0f, 15.0f, 1.0f, 7.0f, 8.0f};  // on the min/max grid (scale 1): kept, exact
  std::vector<std::uint8_t> q(rows_q_stride(5, 4));
  REQUIRE(q.size() == 16);
  K::quantize_rows(row, 1, 5, 4, q.data());
  float scale, offset;
  std::memcpy(&scale, q.data(), 4);
  std::memcpy(&offset, q.data() + 4, 4);
  CHECK(scale == 1.0f);
  CHECK(offset == 0.0f);
  CHECK(q[8] == 0xf0);   // codes 0, 15
  CHECK(q[9] == 0x71);   // codes 1, 7
  CHECK(q[10] == 0x08);  // code 8, unused nibble 0
  std::vector<std::uint8_t> q8(rows_q_stride(5, 8));
  REQUIRE(q8.size() == 16);
  K::quantize_rows(row, 1, 5, 8, q8.data());
  std::memcpy(&scale, q8.data(), 4);
  CHECK(scale == 15.0f / 255.0f);
  CHECK(q8[8] == 0);
  CHECK(q8[9] == 255);
}

TEST_CASE("add_rows_q8 / add_rows_q4: ref vs exact, SIMD == ref bit for bit") {
  Rng rng(42);
  const std::size_t rows = 23;
  for (unsigned bits : {8u, 4u})
    for (std::size_t dim : kDims) {
      const std::size_t stride = rows_q_stride(dim, bits);
      std::vector<float> t = make_table(rng, rows, dim);
      for (std::size_t d = 0; d < dim; ++d) t[4 * dim + d] /= 1e30f;  // keep bag sums finite
      std::vector<std::uint8_t> q(rows * stride);
      K::quantize_rows(t.data(), rows, dim, bits, q.data());
      const AddQFn r_fn = bits == 8 ? &ref::add_rows_q8 : &ref::add_rows_q4;
      for (const auto& bag : bags(rng, rows)) {
        std::vector<float> init(dim + 5, sentinel());
        for (std::size_t d = 0; d < dim; ++d) init[d] = rng.uniform(-3.0f, 3.0f);
        std::vector<float> yr = init;
        r_fn(q.data(), dim, stride, bag.data(), bag.size(), yr.data());
        Report rep;
        for (std::size_t d = 0; d < dim; ++d) {
          double want = init[d], mag = std::fabs(init[d]);
          for (std::uint64_t row : bag) {
            const double v = deq(q, stride, bits, row, d);  // the fma's rounded value
            want += v;
            mag += std::fabs(v);
          }
          rep.near(yr[d], want, (bag.size() + 1) * kU * mag, "ref vs exact", 0, d);
        }
        for (std::size_t d = dim; d < dim + 5; ++d)
          if (!is_sentinel(yr[d])) rep.fail("ref wrote past dim");
        std::vector<AddQFn> fns = {bits == 8 ? K::add_rows_q8 : K::add_rows_q4};
#if !defined(MTLITE_NO_SIMD)
        fns.push_back(bits == 8 ? K::table().add_rows_q8 : K::table().add_rows_q4);
#endif
        for (AddQFn fn : fns) {
          std::vector<float> ys = init;
          fn(q.data(), dim, stride, bag.data(), bag.size(), ys.data());
          for (std::size_t d = 0; d < dim + 5; ++d) rep.bits(ys[d], yr[d], "simd vs ref", 0, d);
        }
        CHECK_MESSAGE(rep.ok(), "bits=" << bits << " dim=" << dim << " count=" << bag.size() << ": " << rep.text());
      }
      // A bag of one row into zeros: the dequantized row itself.
      Report rep;
      for (std::size_t r = 0; r < rows; ++r) {
        std::vector<float> out(dim, 0.0f);
        const std::uint64_t idx = r;
        r_fn(q.data(), dim, stride, &idx, 1, out.data());
        for (std::size_t d = 0; d < dim; ++d) rep.bits(out[d], 0.0f + static_cast<float>(deq(q, stride, bits, r, d)), "one row", r, d);
      }
      CHECK_MESSAGE(rep.ok(), "bits=" << bits << " dim=" << dim << ": " << rep.text());
    }
}

TEST_CASE("add_rows_f16: ref vs exact, SIMD == ref bit for bit") {
  Rng rng(43);
  const std::size_t rows = 29;
  for (std::size_t dim : kDims) {
    std::vector<std::uint16_t> t(rows * dim);
    for (auto& h : t) h = K::f32_to_f16(rng.uniform(-2.0f, 2.0f));
    t[0] = 0x0001;                               // subnormal
    t[t.size() - 1] = 0x7bff;                    // 65504
    for (const auto& bag : bags(rng, rows)) {
      std::vector<float> init(dim + 5, sentinel());
      for (std::size_t d = 0; d < dim; ++d) init[d] = rng.uniform(-3.0f, 3.0f);
      std::vector<float> yr = init;
      ref::add_rows_f16(t.data(), dim, bag.data(), bag.size(), yr.data());
      Report rep;
      for (std::size_t d = 0; d < dim; ++d) {
        double want = init[d], mag = std::fabs(init[d]);
        for (std::uint64_t row : bag) {
          want += half_value(t[row * dim + d]);
          mag += std::fabs(half_value(t[row * dim + d]));
        }
        rep.near(yr[d], want, (bag.size() + 1) * kU * mag, "ref vs exact", 0, d);
      }
      for (std::size_t d = dim; d < dim + 5; ++d)
        if (!is_sentinel(yr[d])) rep.fail("ref wrote past dim");
      std::vector<AddF16Fn> fns = {K::add_rows_f16};
#if !defined(MTLITE_NO_SIMD)
      fns.push_back(K::table().add_rows_f16);
#endif
      for (AddF16Fn fn : fns) {
        std::vector<float> ys = init;
        fn(t.data(), dim, bag.data(), bag.size(), ys.data());
        for (std::size_t d = 0; d < dim + 5; ++d) rep.bits(ys[d], yr[d], "simd vs ref", 0, d);
      }
      CHECK_MESSAGE(rep.ok(), "dim=" << dim << " count=" << bag.size() << ": " << rep.text());
    }
  }
}

// =============================================================================================
// Dispatch

TEST_CASE("dispatch: the quantized kernels of mtlite::kernels:: are the table's") {
  MESSAGE("paths: i8 " << std::string(K::table().i8_path) << ", f16 " << std::string(K::table().f16_path)
                       << ", rows_q " << std::string(K::table().q_path));
#if !defined(MTLITE_DISPATCH)
#if defined(MTLITE_NO_SIMD)
  namespace B = mtlite::kernels::ref;
#else
  namespace B = mtlite::kernels::simd;
#endif
  CHECK(same_function<I8Fn>(K::dense_i8, &B::dense_i8));
  CHECK(same_function<DenseFn>(K::dense_f16, &B::dense_f16));
  CHECK(same_function<QuantizeFn>(K::quantize_activations, &B::quantize_activations));
  CHECK(same_function<AddF16Fn>(K::add_rows_f16, &B::add_rows_f16));
  CHECK(same_function<AddQFn>(K::add_rows_q8, &B::add_rows_q8));
  CHECK(same_function<AddQFn>(K::add_rows_q4, &B::add_rows_q4));
  CHECK(same_function<I8Fn>(K::table().dense_i8, &B::dense_i8));
  CHECK(same_function<AddQFn>(K::table().add_rows_q4, &B::add_rows_q4));
#endif
  CHECK(K::kMaxI8Inputs == 32768);
  CHECK(K::dense_i8_scratch_bytes(3, 5) == 3 * (64 + 8));
  CHECK(K::dense_i8_scratch_bytes(2, 65) == 2 * (128 + 8));
}
