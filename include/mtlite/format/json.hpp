// A small, strict JSON value: model metadata inside model files, model.json configurations and the
// command line's --json output.
//
// Model files come from anywhere, so the parser treats its input as hostile:
//   - RFC 8259 and nothing more: no comments, trailing commas, NaN/Infinity, leading zeros,
//     single quotes or unescaped control characters; the whole input must be one value (surrounded
//     by optional whitespace).
//   - Strings must be valid UTF-8 (no overlong forms, no encoded surrogates, nothing past
//     U+10FFFF); \uXXXX escapes must pair surrogates properly and are stored as UTF-8.
//   - Objects may not repeat a key.
//   - Nesting deeper than kMaxDepth (128) arrays/objects is an error, so the recursive parser's
//     stack use is bounded whatever the input.
//   - Work is O(n log n) in the input size at worst (the log from the duplicate-key check on large
//     objects): no quadratic paths for an attacker to find.
//   - Memory is at most 40 bytes per input byte: the worst case is "[0,0,0,...]", a 40-byte
//     value per 2 bytes, while the array's storage doubles (its old and its new storage both
//     hold every value once, just before the old is freed; tests/hostile_test.cpp measures it).
//   - Numbers are doubles. Magnitudes beyond the double range are an error; ones too small for it
//     read as (signed) zero. Numbers are read and written by format/decimal.hpp, exactly and
//     whatever the C locale, on every C++ library.
// Every failure throws mtlite::Error("json: <reason> at line L, column C"); columns count bytes.
//
// Writing is the mirror image: dump() emits only what parse() accepts, so parse(v.dump()) == v for
// every value dump() does not reject. Non-finite numbers have no JSON spelling and are written as
// null (the one lossy case). dump() throws on strings that are not valid UTF-8 and on nesting
// deeper than kMaxDepth rather than write something the parser would refuse.
//
// Objects keep insertion order (dump() writes keys in that order) and look keys up linearly: they
// hold a model's metadata, a handful of keys. Equality ignores object member order, as JSON does.
//
// Copying, comparing and destroying values recurse; values built by hand should stay within the
// same depth limit as parsed ones.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../core/error.hpp"
#include "../core/first_repeat.hpp"
#include "../core/quote.hpp"
#include "decimal.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#define MTLITE_JSON_NOINLINE __attribute__((noinline))
#else
#define MTLITE_JSON_NOINLINE
#endif

namespace mtlite {
namespace internal {

template <class T>
inline constexpr bool is_json_integer =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
    !std::is_same_v<T, wchar_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>;

}  // namespace internal

class Json {
 public:
  enum class Kind : std::uint8_t { null, boolean, number, string, array, object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;

  static constexpr int kMaxDepth = 128;
  // Integers beyond 2^53 do not survive a trip through a double; nothing that stores one claims to.
  static constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

  // --- construction --------------------------------------------------------------------------

  Json() noexcept = default;
  Json(std::nullptr_t) noexcept {}
  Json(bool b) noexcept : value_(std::in_place_type<bool>, b) {}
  Json(double d) noexcept : value_(std::in_place_type<double>, d) {}  // also takes float
  // Every integer type but bool and the character types, through one template so that int,
  // long, long long, size_t, int64_t and uint64_t never compete. Throws mtlite::Error when the
  // integer is beyond +-2^53 and a double would silently round it.
  template <class T, std::enable_if_t<internal::is_json_integer<T>, int> = 0>
  Json(T n) : value_(std::in_place_type<double>, exact_integer(n)) {}
  // A char is far more likely a mistake than a number or a one-letter string.
  Json(char) = delete;
  Json(const char* s) : value_(std::in_place_type<std::string>, s) {}
  Json(std::string s) noexcept : value_(std::in_place_type<std::string>, std::move(s)) {}
  Json(std::string_view s) : value_(std::in_place_type<std::string>, s) {}
  // Any other pointer would otherwise quietly become a boolean.
  template <class T, std::enable_if_t<!std::is_same_v<std::remove_cv_t<T>, char>, int> = 0>
  Json(T*) = delete;

  // A float as the double nearest its shortest decimal spelling: dump() writes ~9 digits instead
  // of a double's 17, and as_float() reads back exactly f.
  static Json from_float(float f) {
    if (!std::isfinite(f)) return Json(static_cast<double>(f));
    char buf[decimal::kMaxChars];
    double d = 0.0;
    decimal::parse_double(buf, decimal::print_shortest(buf, f), d);
    return Json(d);
  }

  static Json array() { return Json(Array{}); }
  static Json array(std::initializer_list<Json> elements) { return Json(Array(elements)); }
  static Json object() { return Json(Object{}); }
  // Later duplicates replace earlier ones, as with set().
  static Json object(std::initializer_list<Member> members) {
    Json out = object();
    for (const Member& m : members) out.set(m.first, m.second);
    return out;
  }

  // --- mutation ------------------------------------------------------------------------------
  // Both return the container (not the new element) so that construction chains:
  //   Json::object().set("name", "ctr").set("units", 64)
  // and on an rvalue they return an rvalue, so a chain moves rather than copies.

  // Replaces the value of an existing key (keeping its position) or appends a new member.
  // Throws mtlite::Error unless this is an object.
  // Not inlined: GCC 12 at -O3 reports a false -Wmaybe-uninitialized when it inlines the
  // std::variant move into a caller (GCC bug 105562 and relatives).
  MTLITE_JSON_NOINLINE Json& set(std::string key, Json v) & {
    Object& members = get<Object>(Kind::object);
    for (Member& m : members) {
      if (m.first == key) {
        m.second = std::move(v);
        return *this;
      }
    }
    members.emplace_back(std::move(key), std::move(v));
    return *this;
  }
  Json&& set(std::string key, Json v) && { return std::move(set(std::move(key), std::move(v))); }

  // Appends to an array; throws mtlite::Error unless this is an array.
  MTLITE_JSON_NOINLINE Json& push(Json v) & {
    get<Array>(Kind::array).push_back(std::move(v));
    return *this;
  }
  Json&& push(Json v) && { return std::move(push(std::move(v))); }

  // --- access --------------------------------------------------------------------------------
  // Asking a value for the wrong kind throws mtlite::Error("expected a string, got a number").

  Kind kind() const noexcept { return static_cast<Kind>(value_.index()); }
  bool is_null() const noexcept { return kind() == Kind::null; }
  bool is_bool() const noexcept { return kind() == Kind::boolean; }
  bool is_number() const noexcept { return kind() == Kind::number; }
  bool is_string() const noexcept { return kind() == Kind::string; }
  bool is_array() const noexcept { return kind() == Kind::array; }
  bool is_object() const noexcept { return kind() == Kind::object; }

  bool as_bool() const { return get<bool>(Kind::boolean); }
  double as_number() const { return get<double>(Kind::number); }
  const std::string& as_string() const { return get<std::string>(Kind::string); }

  // A count, an index or a size: an integral number in [0, 2^53].
  std::uint64_t as_uint64() const {
    const double d = as_number();
    if (!(d >= 0 && d <= kMaxExactInteger && std::floor(d) == d))
      throw Error("expected an integer in [0, 2^53], got " + number_for_message(d));
    return static_cast<std::uint64_t>(d);
  }
  // An integral number in [-2^53, 2^53].
  std::int64_t as_int64() const {
    const double d = as_number();
    if (!(d >= -kMaxExactInteger && d <= kMaxExactInteger && std::floor(d) == d))
      throw Error("expected an integer in [-2^53, 2^53], got " + number_for_message(d));
    return static_cast<std::int64_t>(d);
  }
  // A finite number within float range; rounds to the nearest float.
  float as_float() const {
    const double d = as_number();
    if (!(std::fabs(d) <= static_cast<double>(std::numeric_limits<float>::max())))
      throw Error("expected a finite number within float range, got " + number_for_message(d));
    return static_cast<float>(d);
  }

  // Elements of an array or members of an object.
  std::size_t size() const {
    if (is_array()) return std::get<Array>(value_).size();
    if (is_object()) return std::get<Object>(value_).size();
    throw Error(std::string("expected an array or an object, got ") + kind_name(kind()));
  }

  // Bounds-checked: an index from a file is no more trusted than the file.
  const Json& operator[](std::size_t i) const {
    const Array& elements = get<Array>(Kind::array);
    if (i >= elements.size()) {
      throw Error("index " + std::to_string(i) + " out of range for an array of " +
                  std::to_string(elements.size()));
    }
    return elements[i];
  }
  Json& operator[](std::size_t i) { return const_cast<Json&>(std::as_const(*this)[i]); }
  const Array& elements() const { return get<Array>(Kind::array); }

  // nullptr when the key is absent; throws unless this is an object.
  const Json* find(std::string_view key) const {
    for (const Member& m : get<Object>(Kind::object)) {
      if (m.first == key) return &m.second;
    }
    return nullptr;
  }
  Json* find(std::string_view key) { return const_cast<Json*>(std::as_const(*this).find(key)); }
  const Json& at(std::string_view key) const {
    if (const Json* v = find(key)) return *v;
    throw Error("missing key " + quote(key));
  }
  // No mutable version: editing keys in place could make two equal.
  const Object& items() const { return get<Object>(Kind::object); }

  static const char* kind_name(Kind k) noexcept {
    switch (k) {
      case Kind::null: return "null";
      case Kind::boolean: return "a boolean";
      case Kind::number: return "a number";
      case Kind::string: return "a string";
      case Kind::array: return "an array";
      case Kind::object: return "an object";
    }
    return "?";
  }

  // --- reading and writing -------------------------------------------------------------------

  static Json parse(std::string_view text);

  // Compact when indent < 0; otherwise one element or member per line, indented by `indent`
  // spaces per level, with ": " between key and value.
  std::string dump(int indent = -1) const {
    std::string out;
    write(out, indent, 0);
    return out;
  }

  // Deep equality; object members compare as sets (order ignored), numbers with double ==
  // (so 0 == -0 and NaN != NaN).
  friend bool operator==(const Json& a, const Json& b) {
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
      case Kind::null: return true;
      case Kind::boolean: return std::get<bool>(a.value_) == std::get<bool>(b.value_);
      case Kind::number: return std::get<double>(a.value_) == std::get<double>(b.value_);
      case Kind::string: return std::get<std::string>(a.value_) == std::get<std::string>(b.value_);
      case Kind::array: return std::get<Array>(a.value_) == std::get<Array>(b.value_);
      case Kind::object:
        return same_members(std::get<Object>(a.value_), std::get<Object>(b.value_));
    }
    return false;
  }
  friend bool operator!=(const Json& a, const Json& b) { return !(a == b); }

 private:
  class Parser;

  explicit Json(Array a) noexcept : value_(std::in_place_type<Array>, std::move(a)) {}
  explicit Json(Object o) noexcept : value_(std::in_place_type<Object>, std::move(o)) {}

  template <class T>
  static double exact_integer(T n) {
    constexpr auto limit = std::uint64_t{1} << 53;
    bool ok;
    if constexpr (std::is_signed_v<T>) {
      const auto wide = static_cast<std::int64_t>(n);
      ok = wide >= -static_cast<std::int64_t>(limit) && wide <= static_cast<std::int64_t>(limit);
    } else {
      ok = static_cast<std::uint64_t>(n) <= limit;
    }
    if (!ok) {
      throw Error("json: integer " + std::to_string(n) +
                  " is beyond 2^53 and cannot be stored exactly in a JSON number");
    }
    return static_cast<double>(n);
  }

  template <class T>
  const T& get(Kind want) const {
    if (const T* p = std::get_if<T>(&value_)) return *p;
    throw Error(std::string("expected ") + kind_name(want) + ", got " + kind_name(kind()));
  }
  template <class T>
  T& get(Kind want) {
    return const_cast<T&>(std::as_const(*this).get<T>(want));
  }

  static bool same_members(const Object& a, const Object& b) {
    if (a.size() != b.size()) return false;
    // Usually both sides are in the same order: one pass, no allocation.
    bool same_order = true;
    for (std::size_t i = 0; i < a.size() && same_order; ++i) same_order = a[i].first == b[i].first;
    if (same_order) {
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!(a[i].second == b[i].second)) return false;
      }
      return true;
    }
    // Otherwise pair keys up by sorting (keys are unique), not by a quadratic search.
    auto sorted = [](const Object& o) {
      std::vector<const Member*> p;
      p.reserve(o.size());
      for (const Member& m : o) p.push_back(&m);
      std::sort(p.begin(), p.end(),
                [](const Member* x, const Member* y) { return x->first < y->first; });
      return p;
    };
    const std::vector<const Member*> sa = sorted(a), sb = sorted(b);
    for (std::size_t i = 0; i < sa.size(); ++i) {
      if (sa[i]->first != sb[i]->first || !(sa[i]->second == sb[i]->second)) return false;
    }
    return true;
  }

  // --- text helpers shared by the parser and the writer ---

  // Shortest text that reads back as the same double: integers print without a decimal point
  // ("3", "9007199254740992"), the rest as "0.1", "1e+300" and so on.
  static void append_number(std::string& out, double d) {
    char buf[decimal::kMaxChars];
    // Shortest round trip alone spells 1000000 as "1e+06"; whole numbers up to 2^53 read better
    // in full.
    const bool whole = std::fabs(d) <= kMaxExactInteger && d == std::trunc(d) && !(d == 0 && std::signbit(d));
    out.append(buf, whole ? std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(d)).ptr
                          : decimal::print_shortest(buf, d));
  }
  static std::string number_for_message(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    std::string s;
    append_number(s, d);
    return s;
  }

  // Length of the valid UTF-8 sequence starting at s[i] (which must be >= 0x80), or 0.
  // Follows the Unicode table of well-formed byte sequences (Table 3-7), which excludes
  // overlong forms, surrogates and code points past U+10FFFF.
  static std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    auto at = [&](std::size_t k) -> unsigned {
      return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u;
    };
    auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
      const unsigned c = at(k);
      return c >= lo && c <= hi;
    };
    const unsigned c = at(i);
    if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
    if (c == 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
    if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
      return cont(i + 1) && cont(i + 2) ? 3 : 0;
    if (c == 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
    if (c == 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    if (c == 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    return 0;
  }

  static void write_string(std::string& out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
      // Copy runs of ordinary bytes in one go.
      std::size_t run = i;
      while (run < s.size()) {
        const auto c = static_cast<unsigned char>(s[run]);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++run;
      }
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x80) {
        const std::size_t n = utf8_sequence(s, i);
        if (n == 0)
          throw Error("json: cannot write a string that is not valid UTF-8: " +
                      quote(s));
        out.append(s.data() + i, n);
        i += n;
        continue;
      }
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
      }
      ++i;
    }
    out += '"';
  }

  void write(std::string& out, int indent, int depth) const {
    auto newline = [&](int level) {
      if (indent < 0) return;
      out += '\n';
      out.append(static_cast<std::size_t>(indent) * static_cast<std::size_t>(level), ' ');
    };
    switch (kind()) {
      case Kind::null: out += "null"; return;
      case Kind::boolean: out += std::get<bool>(value_) ? "true" : "false"; return;
      case Kind::number: {
        const double d = std::get<double>(value_);
        if (std::isfinite(d)) {
          append_number(out, d);
        } else {
          out += "null";
        }
        return;
      }
      case Kind::string: write_string(out, std::get<std::string>(value_)); return;
      case Kind::array:
      case Kind::object: break;
    }
    if (depth >= kMaxDepth) {
      throw Error("json: cannot write nesting deeper than " + std::to_string(kMaxDepth));
    }
    if (is_array()) {
      const Array& elements = std::get<Array>(value_);
      out += '[';
      for (std::size_t i = 0; i < elements.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        elements[i].write(out, indent, depth + 1);
      }
      if (!elements.empty()) newline(depth);
      out += ']';
    } else {
      const Object& members = std::get<Object>(value_);
      out += '{';
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        write_string(out, members[i].first);
        out += indent < 0 ? ":" : ": ";
        members[i].second.write(out, indent, depth + 1);
      }
      if (!members.empty()) newline(depth);
      out += '}';
    }
  }

  // The index order matches Kind.
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> value_;
};

// Recursive descent. The depth counter, not the input, bounds the recursion.
class Json::Parser {
 public:
  explicit Parser(std::string_view text) noexcept : text_(text) {}

  Json parse_document() {
    skip_whitespace();
    if (pos_ == text_.size()) fail("empty input");
    Json value = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("unexpected " + describe(pos_) + " after the value");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& reason) const { fail_at(pos_, reason); }

  // Line and column are worked out only here, once, by rescanning up to the error.
  [[noreturn]] void fail_at(std::size_t pos, const std::string& reason) const {
    std::size_t line = 1, line_start = 0;
    for (std::size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    throw Error("json: " + reason + " at line " + std::to_string(line) + ", column " +
                std::to_string(pos - line_start + 1));
  }

  std::string describe(std::size_t pos) const {
    if (pos >= text_.size()) return "end of input";
    const auto c = static_cast<unsigned char>(text_[pos]);
    if (c > 0x20 && c < 0x7f) return std::string("character '") + static_cast<char>(c) + "'";
    static const char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
  }

  bool at_end() const noexcept { return pos_ >= text_.size(); }
  // '\0' at the end, which none of the callers' tests accept; a NUL in the text fails them too.
  char peek() const noexcept { return at_end() ? '\0' : text_[pos_]; }
  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

  void skip_whitespace() noexcept {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect(char c, const char* what) {
    if (peek() != c) fail(std::string("expected ") + what + ", got " + describe(pos_));
    ++pos_;
  }

  Json parse_value(int depth) {
    if (at_end()) fail("unexpected end of input");
    const char c = text_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
      return c == '[' ? parse_array(depth + 1) : parse_object(depth + 1);
    }
    if (c == '"') return Json(parse_string());
    if (c == '-' || is_digit(c)) return Json(parse_number());
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return parse_literal();
    fail("unexpected " + describe(pos_));
  }

  // true, false and null; any other word (NaN, Infinity, True, nul) is named in the error.
  Json parse_literal() {
    const std::size_t start = pos_;
    while ((peek() >= 'a' && peek() <= 'z') || (peek() >= 'A' && peek() <= 'Z')) ++pos_;
    const std::string_view word = text_.substr(start, pos_ - start);
    if (word == "true") return Json(true);
    if (word == "false") return Json(false);
    if (word == "null") return Json();
    fail_at(start, "invalid literal " + quote(word));
  }

  Json parse_array(int depth) {
    ++pos_;  // '['
    Array elements;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return Json(std::move(elements));
    }
    for (;;) {
      skip_whitespace();
      elements.push_back(parse_value(depth));
      skip_whitespace();
      if (peek() == ',') {
        const std::size_t comma = pos_++;
        skip_whitespace();
        if (peek() == ']') fail_at(comma, "trailing comma");
        continue;
      }
      expect(']', "',' or ']'");
      return Json(std::move(elements));
    }
  }

  Json parse_object(int depth) {
    ++pos_;  // '{'
    Object members;
    const std::size_t base = key_offsets_.size();
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return Json(std::move(members));
    }
    for (;;) {
      skip_whitespace();
      if (peek() != '"') fail("expected a string key, got " + describe(pos_));
      key_offsets_.push_back(pos_);
      std::string key = parse_string();
      skip_whitespace();
      expect(':', "':' after the key");
      skip_whitespace();
      members.emplace_back(std::move(key), parse_value(depth));
      skip_whitespace();
      if (peek() == ',') {
        const std::size_t comma = pos_++;
        skip_whitespace();
        if (peek() == '}') fail_at(comma, "trailing comma");
        continue;
      }
      expect('}', "',' or '}'");
      check_unique_keys(members, base);
      key_offsets_.resize(base);
      return Json(std::move(members));
    }
  }

  // Reports the first repeat in the text, where the key starts.
  void check_unique_keys(const Object& members, std::size_t base) {
    if (members.size() < 2) return;
    names_.clear();
    for (const auto& member : members) names_.emplace_back(member.first);
    const std::size_t first = first_repeat(names_, order_);
    if (first < members.size())
      fail_at(key_offsets_[base + first], "duplicate key " + quote(members[first].first));
  }

  unsigned parse_hex4() {
    unsigned v = 0;
    for (int k = 0; k < 4; ++k, ++pos_) {
      if (at_end()) fail("unterminated \\u escape");
      const char c = text_[pos_];
      unsigned digit;
      if (c >= '0' && c <= '9') {
        digit = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail("invalid \\u escape: expected a hex digit, got " + describe(pos_));
      }
      v = v * 16 + digit;
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  std::string parse_string() {
    const std::size_t open = pos_;
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      // Copy runs of ordinary ASCII in one go.
      const std::size_t run = pos_;
      while (!at_end()) {
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++pos_;
      }
      out.append(text_.data() + run, pos_ - run);
      if (at_end()) fail_at(open, "unterminated string");
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character " + describe(pos_) + " in string");
      if (c >= 0x80) {
        const std::size_t n = utf8_sequence(text_, pos_);
        if (n == 0) fail("invalid UTF-8 in string");
        out.append(text_.data() + pos_, n);
        pos_ += n;
        continue;
      }
      // A backslash.
      const std::size_t escape = pos_;
      ++pos_;
      if (at_end()) fail_at(open, "unterminated string");
      const char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) fail_at(escape, "lone low surrogate in \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            // Must be followed at once by an escaped low surrogate.
            if (text_.substr(pos_, 2) != "\\u")
              fail_at(escape, "lone high surrogate in \\u escape");
            pos_ += 2;
            const unsigned low = parse_hex4();
            if (low < 0xdc00 || low > 0xdfff) fail_at(escape, "lone high surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail_at(escape, "invalid escape: backslash followed by " + describe(pos_ - 1));
      }
    }
  }

  // Checks the RFC 8259 grammar by hand (from_chars alone would take "1.", "01" or ".5"), then
  // converts the exact token.
  double parse_number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (!is_digit(peek())) fail("expected a digit, got " + describe(pos_));
    const std::size_t int_start = pos_;
    if (peek() == '0') {
      ++pos_;
      if (is_digit(peek())) fail_at(int_start, "leading zero in number");
    } else {
      while (is_digit(peek())) ++pos_;
    }
    const std::size_t int_end = pos_;
    std::size_t frac_start = pos_, frac_end = pos_;
    if (peek() == '.') {
      ++pos_;
      if (!is_digit(peek())) fail("expected a digit after '.', got " + describe(pos_));
      frac_start = pos_;
      while (is_digit(peek())) ++pos_;
      frac_end = pos_;
    }
    bool exp_negative = false;
    long long exponent = 0;
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') exp_negative = text_[pos_++] == '-';
      if (!is_digit(peek())) fail("expected a digit in the exponent, got " + describe(pos_));
      while (is_digit(peek())) {
        exponent = std::min(exponent * 10 + (text_[pos_] - '0'), 1000000000000000LL);  // saturate
        ++pos_;
      }
    }
    double value = 0;
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (decimal::parse_double(first, last, value) == decimal::Parsed::ok) return value;
    // Underflow and overflow are reported alike. The decimal order of magnitude of the
    // first significant digit tells them apart: below the double range reads as zero.
    long long order;
    if (text_[int_start] != '0') {
      order = static_cast<long long>(int_end - int_start) - 1;
    } else {
      std::size_t i = frac_start;
      while (i < frac_end && text_[i] == '0') ++i;
      order = -static_cast<long long>(i - frac_start) - 1;
    }
    order += exp_negative ? -exponent : exponent;
    if (order < 0) return text_[start] == '-' ? -0.0 : 0.0;
    fail_at(start, "number out of range");
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::vector<std::size_t> key_offsets_;  // where each key of the open objects starts
  std::vector<std::string_view> names_;   // scratch for check_unique_keys
  std::vector<std::size_t> order_;        // scratch for check_unique_keys
};

inline Json Json::parse(std::string_view text) { return Parser(text).parse_document(); }

}  // namespace mtlite
