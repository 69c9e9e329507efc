// Exact decimal text for floating-point numbers on every C++ library.
//
// The JSON reader and writer and the CSV reader need two things: the double nearest a decimal
// number, and the shortest text that reads back as the same double (or float). std::from_chars and std::to_chars
// give both, but only libraries that define __cpp_lib_to_chars have them for floating point
// (libstdc++ 11 on; libc++, the library of emscripten, the Android NDK and Xcode, added parsing
// only recently). Elsewhere these functions use the C library instead, in a way no locale can
// change:
//   parse   the number is rewritten as integer digits and a decimal exponent ("12.5e3" ->
//           "125e2", no decimal point to localise) and read by strtod / strtof, which glibc,
//           musl, Apple's libc and bionic round correctly;
//   print   the shortest p in 1..17 (1..9 for float) whose "%.*e" digits read back as the value
//           (a decimal point, if the locale has another, is skipped), then laid out as to_chars
//           lays it out: fixed or scientific, whichever is shorter, fixed on a tie; integers in
//           fixed form spelled exactly ("%.0f").
// Both paths are compiled everywhere: tests/json_test.cpp checks that the C-library one gives
// std::to_chars's text and std::from_chars's value on random bit patterns.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

namespace mtlite::decimal {

enum class Parsed { ok, out_of_range };  // out of range: |value| above the type's range, or
                                         // nonzero but below its smallest subnormal

// Buffer size that print_shortest never exceeds (the longest is 24 characters, plus room).
inline constexpr std::size_t kMaxChars = 40;

namespace portable {

// [first, last) must be a JSON number (RFC 8259 grammar, checked by the caller).
template <class T>
Parsed parse(const char* first, const char* last, T& out) {
  std::string text;
  text.reserve(static_cast<std::size_t>(last - first) + 24);
  const char* p = first;
  if (*p == '-') text.push_back(*p++);
  long long exp10 = 0;
  bool nonzero = false;
  for (; p < last && *p != 'e' && *p != 'E'; ++p) {
    if (*p == '.') continue;
    if (*p != '0') nonzero = true;
    text.push_back(*p);
  }
  // The digits after '.' lower the exponent.
  for (const char* q = first; q < p; ++q)
    if (*q == '.') exp10 = -static_cast<long long>(p - q - 1);
  if (p < last) {  // exponent: saturated, as the digits beyond 10^15 cannot matter
    ++p;
    const bool negative = *p == '-';
    if (*p == '+' || *p == '-') ++p;
    long long e = 0;
    for (; p < last; ++p) e = std::min(e * 10 + (*p - '0'), 1000000000000000LL);
    exp10 += negative ? -e : e;
  }
  text += 'e';
  text += std::to_string(exp10);
  T v;
  if constexpr (std::is_same_v<T, float>)
    v = std::strtof(text.c_str(), nullptr);
  else
    v = std::strtod(text.c_str(), nullptr);
  if (std::isinf(v) || (v == 0 && nonzero)) return Parsed::out_of_range;
  out = v;
  return Parsed::ok;
}

// Whether the decimal mantissa * 10^scale reads back as a (positive, finite).
template <class T>
bool reads_back(unsigned long long mantissa, int scale, T a) {
  char text[48];
  std::snprintf(text, sizeof text, "%llue%d", mantissa, scale);
  if constexpr (std::is_same_v<T, float>)
    return std::strtof(text, nullptr) == a;
  else
    return std::strtod(text, nullptr) == a;
}

// The shortest decimal digits of v (finite, not zero) that read back as v, the closest to v of
// those: digits[0..n) and the exponent of the first digit. At each length p the nearest p-digit
// decimal ("%.*e", exact in these C libraries) is tried, then its neighbours one unit in the
// last place away: below and above a power of two the doubles are unevenly spaced, so the
// nearest can miss while the other side reads back.
template <class T>
void shortest_digits(T v, char* digits, int& n, int& exp10) {
  constexpr int kMaxDigits = std::is_same_v<T, float> ? 9 : 17;
  const T a = v < 0 ? -v : v;
  char buf[64];
  for (int p = 1; p <= kMaxDigits; ++p) {
    std::snprintf(buf, sizeof buf, "%.*e", p - 1, static_cast<double>(a));
    unsigned long long m = 0;
    const char* c = buf;
    for (; *c && *c != 'e'; ++c)
      if (*c >= '0' && *c <= '9') m = m * 10 + static_cast<unsigned long long>(*c - '0');
    const int scale = std::atoi(c + 1) - p + 1;
    const unsigned long long tries[3] = {m, m + 1, m - 1};
    for (unsigned long long t : tries) {
      if (t == 0 || !reads_back(t, scale, a)) continue;
      int sc = scale;
      while (t % 10 == 0) {  // m + 1 may carry into trailing zeros
        t /= 10;
        ++sc;
      }
      const int len = std::snprintf(buf, sizeof buf, "%llu", t);
      std::memcpy(digits, buf, static_cast<std::size_t>(len));
      n = len;
      exp10 = sc + len - 1;
      return;
    }
  }
}

// v's shortest round-trip text in to_chars's layout; returns the end (at most kMaxChars).
template <class T>
char* print_shortest(char* out, T v) {
  char* o = out;
  if (std::signbit(v)) *o++ = '-';
  if (v == 0) {
    *o++ = '0';
    return o;
  }
  char d[20];
  int n = 0, e = 0;
  shortest_digits(v, d, n, e);
  // scientific: d[0] [. d[1..n)] e sign two or more exponent digits
  char sci[kMaxChars];
  int s = 0;
  sci[s++] = d[0];
  if (n > 1) {
    sci[s++] = '.';
    for (int i = 1; i < n; ++i) sci[s++] = d[i];
  }
  s += std::snprintf(sci + s, sizeof sci - static_cast<std::size_t>(s), "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
  if (e >= n - 1) {  // a whole number: fixed is its exact digits (%.0f), up to 309 of them
    char whole[320];
    const int w = std::snprintf(whole, sizeof whole, "%.0f", std::fabs(static_cast<double>(v)));
    const char* pick = s < w ? sci : whole;
    const int len = s < w ? s : w;
    std::memcpy(o, pick, static_cast<std::size_t>(len));
    return o + len;
  }
  const int fixed_len = e >= 0 ? n + 1 : n + 1 - e;  // "dd.dd", "0.00dd"
  if (s < fixed_len) {
    std::memcpy(o, sci, static_cast<std::size_t>(s));
    return o + s;
  }
  if (e >= 0) {
    for (int i = 0; i < n; ++i) {
      *o++ = d[i];
      if (i == e) *o++ = '.';
    }
    return o;
  }
  *o++ = '0';
  *o++ = '.';
  for (int i = 0; i < -e - 1; ++i) *o++ = '0';
  for (int i = 0; i < n; ++i) *o++ = d[i];
  return o;
}

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// std::from_chars's general format, checked by hand: [-] digits [. digits] or [-] . digits,
// then e or E, an optional sign and digits (an exponent without digits is not part of it).
inline bool parse_general(const char* first, const char* last, double& out) {
  const char* p = first;
  if (p < last && *p == '-') ++p;
  std::size_t digits = 0;
  for (; p < last && is_digit(*p); ++p) ++digits;
  if (p < last && *p == '.')
    for (++p; p < last && is_digit(*p); ++p) ++digits;
  if (digits == 0) return false;
  if (p < last && (*p == 'e' || *p == 'E')) {
    const char* e = p + 1;
    if (e < last && (*e == '+' || *e == '-')) ++e;
    const char* exp_digits = e;
    while (e < last && is_digit(*e)) ++e;
    if (e > exp_digits) p = e;
  }
  double d = 0;
  if (p != last || parse(first, last, d) != Parsed::ok) return false;
  out = d;
  return true;
}

}  // namespace portable

// The double nearest the JSON number [first, last).
inline Parsed parse_double(const char* first, const char* last, double& out) {
#if defined(__cpp_lib_to_chars)
  const std::from_chars_result r = std::from_chars(first, last, out);
  return r.ec == std::errc() ? Parsed::ok : Parsed::out_of_range;
#else
  return portable::parse(first, last, out);
#endif
}

// The whole of [first, last) as one finite number in std::from_chars's general format (as CSV
// fields are read), within the double range; false otherwise, out unchanged.
inline bool parse_general(const char* first, const char* last, double& out) {
#if defined(__cpp_lib_to_chars)
  double d = 0;
  const std::from_chars_result r = std::from_chars(first, last, d);
  if (r.ec != std::errc() || r.ptr != last || !std::isfinite(d)) return false;
  out = d;
  return true;
#else
  return portable::parse_general(first, last, out);
#endif
}

// The shortest text that reads back as v (finite); at most kMaxChars characters.
template <class T>
char* print_shortest(char* out, T v) {
#if defined(__cpp_lib_to_chars)
  return std::to_chars(out, out + kMaxChars, v).ptr;
#else
  return portable::print_shortest(out, v);
#endif
}

}  // namespace mtlite::decimal
