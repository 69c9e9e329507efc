// mtlite::Json: the strict reader and writer used for metadata in model files (untrusted input),
// model.json configurations and --json output.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>

#include "mtlite/format/json.hpp"
#include "mtlite/format/spec_json.hpp"
#include "support.hpp"

using mtlite::Json;
using Kind = Json::Kind;

namespace {

// The message of the mtlite::Error that parse() throws, or a marker when it does not throw.
std::string parse_error(std::string_view text) {
  try {
    Json::parse(text);
  } catch (const mtlite::Error& e) {
    return e.what();
  }
  return "(parsed without error)";
}

using mtlite_test::error_of;

std::uint64_t bits(double d) {
  std::uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

void check_round_trip(const Json& v) {
  const std::string compact = v.dump();
  CHECK(Json::parse(compact) == v);
  CHECK(Json::parse(v.dump(2)) == v);
  CHECK(Json::parse(v.dump(0)) == v);
  // Writing what was read gives the same text back.
  CHECK(Json::parse(compact).dump() == compact);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction

// Every integer type goes to one constructor template, so none of these may be ambiguous.
static_assert(std::is_constructible_v<Json, int>);
static_assert(std::is_constructible_v<Json, unsigned>);
static_assert(std::is_constructible_v<Json, long>);
static_assert(std::is_constructible_v<Json, long long>);
static_assert(std::is_constructible_v<Json, unsigned long long>);
static_assert(std::is_constructible_v<Json, std::int64_t>);
static_assert(std::is_constructible_v<Json, std::uint64_t>);
static_assert(std::is_constructible_v<Json, std::size_t>);
static_assert(std::is_constructible_v<Json, std::int8_t>);
static_assert(std::is_constructible_v<Json, std::uint16_t>);
static_assert(std::is_constructible_v<Json, float>);
static_assert(std::is_constructible_v<Json, double>);
static_assert(std::is_constructible_v<Json, bool>);
static_assert(std::is_constructible_v<Json, const char*>);
static_assert(std::is_constructible_v<Json, char*>);
static_assert(std::is_constructible_v<Json, std::string>);
static_assert(std::is_constructible_v<Json, std::string_view>);
static_assert(std::is_constructible_v<Json, std::nullptr_t>);
// Implicit, so that push(1) and set("k", "v") read naturally.
static_assert(std::is_convertible_v<int, Json>);
static_assert(std::is_convertible_v<const char*, Json>);
// Mistakes that would otherwise compile into a number or a boolean.
static_assert(!std::is_constructible_v<Json, char>);
static_assert(!std::is_constructible_v<Json, int*>);
static_assert(!std::is_constructible_v<Json, const void*>);
static_assert(!std::is_constructible_v<Json, const double*>);

TEST_CASE("constructors pick the intended kind") {
  CHECK(Json().kind() == Kind::null);
  CHECK(Json(nullptr).is_null());
  CHECK(Json(true).kind() == Kind::boolean);
  CHECK(Json(false).as_bool() == false);
  CHECK(Json(0).kind() == Kind::number);
  CHECK(Json(-7).as_number() == -7.0);
  CHECK(Json(7u).as_number() == 7.0);
  CHECK(Json(7L).as_number() == 7.0);
  CHECK(Json(std::int64_t{-9}).as_int64() == -9);
  CHECK(Json(std::uint64_t{9}).as_uint64() == 9u);
  CHECK(Json(std::size_t{12}).as_uint64() == 12u);
  CHECK(Json(0.5f).as_number() == 0.5);
  CHECK(Json(2.25).as_number() == 2.25);
  CHECK(Json("text").kind() == Kind::string);
  char buffer[] = "mutable";
  CHECK(Json(buffer).as_string() == "mutable");
  CHECK(Json(std::string("s")).as_string() == "s");
  CHECK(Json(std::string_view("view")).as_string() == "view");
  CHECK(Json::array().kind() == Kind::array);
  CHECK(Json::array().size() == 0);
  CHECK(Json::object().kind() == Kind::object);
  CHECK(Json::object().size() == 0);
}

TEST_CASE("integers beyond 2^53 are refused rather than rounded") {
  constexpr std::uint64_t two53 = std::uint64_t{1} << 53;
  CHECK(Json(two53).as_uint64() == two53);
  CHECK(Json(-static_cast<std::int64_t>(two53)).as_int64() == -static_cast<std::int64_t>(two53));
  CHECK(error_of([&] { Json j(two53 + 1); }) ==
        "json: integer 9007199254740993 is beyond 2^53 and cannot be stored exactly in a JSON "
        "number");
  CHECK_THROWS_AS(Json{std::numeric_limits<std::int64_t>::min()}, mtlite::Error);
  CHECK_THROWS_AS(Json{std::numeric_limits<std::uint64_t>::max()}, mtlite::Error);
  CHECK_THROWS_AS(Json{-static_cast<std::int64_t>(two53) - 1}, mtlite::Error);
}

TEST_CASE("set replaces in place or appends; push appends; both chain") {
  Json o = Json::object().set("b", 1).set("a", 2);
  o.set("b", "replaced");
  REQUIRE(o.size() == 2);
  CHECK(o.items()[0].first == "b");
  CHECK(o.items()[0].second.as_string() == "replaced");
  CHECK(o.items()[1].first == "a");
  CHECK(o.dump() == R"({"b":"replaced","a":2})");

  Json a = Json::array();
  Json& same = a.push(1).push("two");  // returns the array itself
  CHECK(&same == &a);
  a.push(Json::array({3}));
  CHECK(a.dump() == R"([1,"two",[3]])");
  CHECK(a.elements().size() == 3);

  Json& o2 = o.set("c", nullptr);
  CHECK(&o2 == &o);

  // Initializer-list helpers; a repeated key in object({...}) keeps the later value.
  CHECK(Json::object({{"k", 1}, {"k", 2}}).dump() == R"({"k":2})");
  CHECK(Json::array({1, "x", nullptr, true}).dump() == R"([1,"x",null,true])");

  CHECK(error_of([] { Json::array().set("k", 1); }) == "expected an object, got an array");
  CHECK(error_of([] { Json(1).push(2); }) == "expected an array, got a number");
}

// ---------------------------------------------------------------------------------------------
// Access

TEST_CASE("wrong-kind access names both kinds") {
  CHECK(error_of([] { Json(1).as_string(); }) == "expected a string, got a number");
  CHECK(error_of([] { Json("x").as_number(); }) == "expected a number, got a string");
  CHECK(error_of([] { Json().as_bool(); }) == "expected a boolean, got null");
  CHECK(error_of([] { Json(true).elements(); }) == "expected an array, got a boolean");
  CHECK(error_of([] { Json::array().items(); }) == "expected an object, got an array");
  CHECK(error_of([] { Json::array().find("k"); }) == "expected an object, got an array");
  CHECK(error_of([] { Json::object()[0]; }) == "expected an array, got an object");
  CHECK(error_of([] { Json("s").size(); }) == "expected an array or an object, got a string");
}

TEST_CASE("find, at and operator[]") {
  const Json o = Json::parse(R"({"name": "ctr", "units": 64, "nested": {"x": [1, 2]}})");
  REQUIRE(o.find("name") != nullptr);
  CHECK(o.find("name")->as_string() == "ctr");
  CHECK(o.find("missing") == nullptr);
  CHECK(o.find("nam") == nullptr);  // no prefix matching
  CHECK(o.at("units").as_uint64() == 64u);
  CHECK(o.at("nested").at("x")[1].as_number() == 2.0);
  CHECK(error_of([&] { o.at("absent"); }) == "missing key 'absent'");
  // Keys from files end up in messages: bounded and printable.
  CHECK(error_of([&] { o.at(std::string_view("a\nb\0c", 5)); }) == "missing key 'a\\x0ab\\x00c'");
  CHECK(error_of([&] { o.at(std::string(100, 'k')); }) ==
        "missing key '" + std::string(64, 'k') + "...'");

  const Json& x = o.at("nested").at("x");
  CHECK(x.size() == 2);
  CHECK(error_of([&] { x[2]; }) == "index 2 out of range for an array of 2");

  // Mutable access edits values, never keys.
  Json m = o;
  *m.find("units") = 128;
  (*m.find("nested")->find("x"))[0] = "first";
  CHECK(m.dump() == R"({"name":"ctr","units":128,"nested":{"x":["first",2]}})");
  CHECK(o.at("units").as_number() == 64.0);  // the copy was deep
}

TEST_CASE("typed getters check range and integrality") {
  CHECK(Json(0).as_uint64() == 0u);
  CHECK(Json(-0.0).as_uint64() == 0u);
  CHECK(Json(9007199254740992.0).as_uint64() == 9007199254740992u);
  CHECK(error_of([] { Json(-1).as_uint64(); }) == "expected an integer in [0, 2^53], got -1");
  CHECK(error_of([] { Json(1.5).as_uint64(); }) == "expected an integer in [0, 2^53], got 1.5");
  CHECK(error_of([] { Json(9007199254740994.0).as_uint64(); }) ==
        "expected an integer in [0, 2^53], got 9007199254740994");
  CHECK(error_of([] { Json(1e300).as_uint64(); }) ==
        "expected an integer in [0, 2^53], got 1e+300");
  CHECK(error_of([] { Json(std::nan("")).as_uint64(); }) ==
        "expected an integer in [0, 2^53], got nan");
  CHECK(error_of([] { Json("7").as_uint64(); }) == "expected a number, got a string");

  CHECK(Json(-9007199254740992.0).as_int64() == -9007199254740992);
  CHECK(Json(42).as_int64() == 42);
  CHECK(error_of([] { Json(0.25).as_int64(); }) ==
        "expected an integer in [-2^53, 2^53], got 0.25");
  CHECK(error_of([] { Json(-9007199254740994.0).as_int64(); }) ==
        "expected an integer in [-2^53, 2^53], got -9007199254740994");
  CHECK(error_of([] { Json(-std::numeric_limits<double>::infinity()).as_int64(); }) ==
        "expected an integer in [-2^53, 2^53], got -inf");
  CHECK(error_of([] { Json(true).as_int64(); }) == "expected a number, got a boolean");

  CHECK(Json(0.5).as_float() == 0.5f);
  CHECK(Json(0.1).as_float() == 0.1f);
  CHECK(Json(-3.4028234663852886e38).as_float() == -std::numeric_limits<float>::max());
  CHECK(error_of([] { Json(1e300).as_float(); }) ==
        "expected a finite number within float range, got 1e+300");
  CHECK(error_of([] { Json(-1e39).as_float(); }) ==
        "expected a finite number within float range, got -1e+39");
  CHECK(error_of([] { Json(std::numeric_limits<double>::infinity()).as_float(); }) ==
        "expected a finite number within float range, got inf");
  CHECK(error_of([] { Json().as_float(); }) == "expected a number, got null");
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_CASE("every kind round-trips") {
  check_round_trip(Json());
  check_round_trip(Json(true));
  check_round_trip(Json(false));
  check_round_trip(Json(0));
  check_round_trip(Json(-12.75));
  check_round_trip(Json(""));
  check_round_trip(Json("plain"));
  check_round_trip(Json::array());
  check_round_trip(Json::object());
  check_round_trip(Json::array({1, "two", nullptr, false, Json::array(), Json::object()}));
  const Json model =
      Json::object()
          .set("format", "mtlite")
          .set("version", 3)
          .set("tasks", Json::array({"ctr", "cvr"}))
          .set("features", Json::array({Json::object({{"name", "user_id"}, {"buckets", 1000003}}),
                                        Json::object({{"name", "age"}, {"dense", true}})}))
          .set("scale", 0.1)
          .set("note", "tab\there, quote \" and backslash \\, caf\xc3\xa9 \xf0\x9f\x98\x80")
          .set("empty", Json::object());
  check_round_trip(model);
  CHECK(model.at("features")[0].at("buckets").as_uint64() == 1000003u);

  CHECK(Json::parse("null").is_null());
  CHECK(Json::parse("true").as_bool() == true);
  CHECK(Json::parse("false").as_bool() == false);
  CHECK(Json::parse("\"s\"").as_string() == "s");
  CHECK(Json::parse("[]").is_array());
  CHECK(Json::parse("{}").is_object());
  CHECK(Json::parse(" \t\r\n 42 \t\r\n ").as_number() == 42.0);
  CHECK(Json::parse("[ 1 , { \"a\" : [ ] } ]").dump() == R"([1,{"a":[]}])");
}

TEST_CASE("pretty printing") {
  const Json v = Json::parse(R"({"a":[1,{"b":null}],"c":{},"d":[]})");
  CHECK(v.dump() == R"({"a":[1,{"b":null}],"c":{},"d":[]})");
  CHECK(v.dump(2) ==
        "{\n"
        "  \"a\": [\n"
        "    1,\n"
        "    {\n"
        "      \"b\": null\n"
        "    }\n"
        "  ],\n"
        "  \"c\": {},\n"
        "  \"d\": []\n"
        "}");
  CHECK(Json::parse("[1,2]").dump(0) == "[\n1,\n2\n]");
  CHECK(Json(5).dump(4) == "5");
}

TEST_CASE("object keys keep their order; equality does not depend on it") {
  const std::string text = R"({"zeta":1,"alpha":2,"mid":{"y":1,"x":2},"beta":3})";
  CHECK(Json::parse(text).dump() == text);
  CHECK(Json::parse(R"({ "b" : 1 , "a" : 2 })").items()[0].first == "b");

  CHECK(Json::parse(R"({"a":1,"b":2})") == Json::parse(R"({"b":2,"a":1})"));
  CHECK(Json::parse(R"({"a":1,"b":2})") != Json::parse(R"({"b":2,"a":3})"));
  CHECK(Json::parse(R"({"a":1,"b":2})") != Json::parse(R"({"a":1,"c":2})"));
  CHECK(Json::parse(R"({"a":1,"b":2})") != Json::parse(R"({"c":2,"a":1})"));
  CHECK(Json::parse(R"({"a":1})") != Json::parse(R"({"a":1,"b":2})"));
  CHECK(Json::parse("[1,2]") != Json::parse("[2,1]"));
  CHECK(Json::parse("[1]") != Json::parse("[1,1]"));
  CHECK(Json(1) != Json("1"));
  CHECK(Json() != Json(false));
  CHECK(Json(0) == Json(-0.0));
}

// ---------------------------------------------------------------------------------------------
// Strings

TEST_CASE("escapes and unicode") {
  CHECK(Json::parse(R"("\"\\\/\b\f\n\r\t")").as_string() == "\"\\/\b\f\n\r\t");
  CHECK(Json::parse(R"("\u0041\u00e9\u20AC")").as_string() == "A\xc3\xa9\xe2\x82\xac");
  CHECK(Json::parse(R"("\ud83d\ude00")").as_string() == "\xf0\x9f\x98\x80");
  CHECK(Json::parse(R"("\uD83D\uDE00")").as_string() == "\xf0\x9f\x98\x80");
  CHECK(Json::parse(R"("\udbff\udfff")").as_string() == "\xf4\x8f\xbf\xbf");  // U+10FFFF
  CHECK(Json::parse(R"("\u0000")").as_string() == std::string(1, '\0'));
  // Raw UTF-8 of every length passes through both ways unchanged.
  const std::string raw = "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"";
  CHECK(Json::parse(raw).dump() == raw);

  // Writing: the short escapes where JSON has them, \u00XX for the other control characters.
  CHECK(Json("\"\\/").dump() == R"("\"\\/")");
  CHECK(Json("\b\f\n\r\t").dump() == R"("\b\f\n\r\t")");
  CHECK(Json(std::string("\0\x01\x1f\x7f", 4)).dump() == "\"\\u0000\\u0001\\u001f\x7f\"");
  std::string all_bytes;
  for (int c = 1; c < 0x80; ++c) all_bytes += static_cast<char>(c);
  check_round_trip(Json(all_bytes));
  check_round_trip(Json(std::string(3, '\0')));
}

TEST_CASE("invalid UTF-8 is refused by both parse and dump") {
  const char* bad[] = {
      "\"\x80\"",              // lone continuation byte
      "\"\xc0\x80\"",          // overlong NUL
      "\"\xc1\xbf\"",          // overlong
      "\"\xe0\x80\x80\"",      // overlong three-byte
      "\"\xed\xa0\x80\"",      // encoded surrogate U+D800
      "\"\xf4\x90\x80\x80\"",  // U+110000
      "\"\xf5\x80\x80\x80\"",  // invalid lead byte
      "\"\xe2\x82\"",          // truncated
      "\"\xe2\x82",            // truncated at end of input
      "\"\xff\"",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    CHECK(parse_error(text) == "json: invalid UTF-8 in string at line 1, column 2");
  }
  CHECK(parse_error("\"ok\xc3\"") == "json: invalid UTF-8 in string at line 1, column 4");
  CHECK(error_of([] { Json("\xc3").dump(); }) ==
        "json: cannot write a string that is not valid UTF-8: '\\xc3'");
  CHECK_THROWS_AS(Json::object().set("\xff", 1).dump(), mtlite::Error);
}

// ---------------------------------------------------------------------------------------------
// Numbers

TEST_CASE("number formatting") {
  CHECK(Json(1).dump() == "1");
  CHECK(Json(3.0).dump() == "3");
  CHECK(Json(-7).dump() == "-7");
  CHECK(Json(-0.5).dump() == "-0.5");
  CHECK(Json(0.1).dump() == "0.1");
  CHECK(Json(1e300).dump() == "1e+300");
  CHECK(Json(9007199254740992.0).dump() == "9007199254740992");
  CHECK(Json(-9007199254740992.0).dump() == "-9007199254740992");
  CHECK(Json(1e-7).dump() == "1e-07");
  CHECK(Json(5e-324).dump() == "5e-324");
  CHECK(Json(-0.0).dump() == "-0");
  // Non-finite numbers have no JSON spelling.
  CHECK(Json(std::numeric_limits<double>::quiet_NaN()).dump() == "null");
  CHECK(Json(std::numeric_limits<double>::infinity()).dump() == "null");
  CHECK(Json::array({-std::numeric_limits<double>::infinity()}).dump() == "[null]");

  // Exact round trip, bit for bit.
  for (double d : {0.1, 1.0 / 3.0, 1e300, -1e-300, 5e-324, 2.2250738585072014e-308,
                   1.7976931348623157e308, 9007199254740993.0, 123456.789, -0.0}) {
    CAPTURE(d);
    CHECK(bits(Json::parse(Json(d).dump()).as_number()) == bits(d));
  }
  std::mt19937_64 rng(20240601);
  int checked = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t u = rng();
    double d;
    std::memcpy(&d, &u, sizeof d);
    if (!std::isfinite(d)) continue;
    ++checked;
    if (bits(Json::parse(Json(d).dump()).as_number()) != bits(d))
      FAIL("round trip changed " << Json(d).dump());
  }
  CHECK(checked > 19000);
}

TEST_CASE("number parsing") {
  CHECK(Json::parse("0").as_number() == 0.0);
  CHECK(std::signbit(Json::parse("-0").as_number()));
  CHECK(Json::parse("-0.0").as_number() == 0.0);
  CHECK(Json::parse("1E2").as_number() == 100.0);
  CHECK(Json::parse("1e+2").as_number() == 100.0);
  CHECK(Json::parse("25e-2").as_number() == 0.25);
  CHECK(Json::parse("0.5e1").as_number() == 5.0);
  CHECK(Json::parse("1e-07").as_number() == 1e-7);
  CHECK(Json::parse("9007199254740993").as_number() == 9007199254740992.0);  // nearest double
  CHECK(Json::parse("123456789012345678901234567890").as_number() == 1.2345678901234568e29);
  CHECK(Json::parse("1.7976931348623157e308").as_number() == std::numeric_limits<double>::max());
  // Below the smallest subnormal reads as (signed) zero; beyond the largest double is an error.
  CHECK(Json::parse("1e-400").as_number() == 0.0);
  CHECK(std::signbit(Json::parse("-1e-400").as_number()));
  CHECK(Json::parse("0.0000000000000000000000001e-350").as_number() == 0.0);
  CHECK(Json::parse("1000000000000000000000e-999999999999999999999999").as_number() == 0.0);
  CHECK(Json::parse("0e999999999999999999").as_number() == 0.0);
  CHECK(parse_error("1e400") == "json: number out of range at line 1, column 1");
  CHECK(parse_error("[-1.5e309]") == "json: number out of range at line 1, column 2");
  CHECK(parse_error("0.0001e999999999999999999999") ==
        "json: number out of range at line 1, column 1");
  CHECK(parse_error("1.7976931348623159e308") == "json: number out of range at line 1, column 1");
  // A very long number is read in linear time.
  const std::string long_number = "0." + std::string(200000, '1');
  CHECK(Json::parse(long_number).as_number() == doctest::Approx(0.1111111111111111));
}

// format/decimal.hpp's C-library path (the one libc++ builds use) against std::to_chars and
// std::from_chars where the library has them, and against itself everywhere: round trips bit for
// bit on special values and random bit patterns of doubles and floats.
namespace {
template <class T>
std::string portable_text(T v) {
  char buf[mtlite::decimal::kMaxChars];
  return std::string(buf, mtlite::decimal::portable::print_shortest(buf, v));
}
template <class T>
T portable_value(const std::string& text) {
  T v{};
  REQUIRE(mtlite::decimal::portable::parse(text.data(), text.data() + text.size(), v) == mtlite::decimal::Parsed::ok);
  return v;
}
template <class T>
void check_decimal(T v, int& mismatches) {
  const std::string text = portable_text(v);
  T back = portable_value<T>(text);
  if (std::memcmp(&back, &v, sizeof v) != 0 && mismatches++ < 5) FAIL_CHECK("round trip changed " << text);
#if defined(__cpp_lib_to_chars)
  char buf[64];
  const std::string want(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  if (text != want && mismatches++ < 5) FAIL_CHECK("printed " << text << ", to_chars " << want);
  T std_back{};
  std::from_chars(want.data(), want.data() + want.size(), std_back);
  back = portable_value<T>(want);
  if (std::memcmp(&back, &std_back, sizeof v) != 0 && mismatches++ < 5) FAIL_CHECK("parsed " << want << " differently");
#endif
}
}  // namespace

TEST_CASE("decimal: the C-library path prints the shortest text and parses exactly") {
  int mismatches = 0;
  const double specials[] = {0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                             5.9604644775390625e-08 /* 2^-24 */, 0.1, 1.0 / 3.0, 100.0, 1e15, 1e16, 1e21, 1e22,
                             1e-4, 1e-5, 123456789012345680000.0, 9007199254740993.0, 12345678.9, 0.30000000000000004};
  for (double d : specials) check_decimal(d, mismatches);
  for (double d : specials)
    if (std::isfinite(static_cast<float>(d))) check_decimal(static_cast<float>(d), mismatches);
  for (int e = -1074; e <= 1023; ++e) check_decimal(std::ldexp(1.0, e), mismatches);  // powers of two
  for (int e = -149; e <= 127; ++e) check_decimal(std::ldexp(1.0f, e), mismatches);
  std::mt19937_64 rng(20261203);
  for (int i = 0; i < 30000; ++i) {
    const std::uint64_t u = rng();
    double d;
    std::memcpy(&d, &u, sizeof d);
    if (std::isfinite(d)) check_decimal(d, mismatches);
    const auto u32 = static_cast<std::uint32_t>(u >> 16);
    float f;
    std::memcpy(&f, &u32, sizeof f);
    if (std::isfinite(f)) check_decimal(f, mismatches);
    check_decimal(std::ldexp(static_cast<double>(u % 1000000), static_cast<int>(u >> 58) - 32), mismatches);
  }
  CHECK(mismatches == 0);
  // Out of range both ways, and JSON spellings the rewrite must keep.
  double d = 7;
  for (const std::string text : {"1e400", "-1e400", "1e-400", "0.0001e-350"})
    CHECK(mtlite::decimal::portable::parse(text.data(), text.data() + text.size(), d) == mtlite::decimal::Parsed::out_of_range);
  CHECK(d == 7);
  CHECK(portable_value<double>("0e999999999999999999") == 0.0);
  CHECK(std::signbit(portable_value<double>("-0")));
  CHECK(portable_value<double>("-12.5e-3") == -0.0125);
  CHECK(portable_value<double>("0.000123E+5") == 12.3);
  CHECK(portable_value<float>("16777217") == 16777216.0f);  // ties to even, as a float
}

TEST_CASE("decimal: CSV numbers (from_chars's general format) by the C-library path") {
  using mtlite::decimal::portable::parse_general;
  auto general = [](const std::string& text, double& v) { return parse_general(text.data(), text.data() + text.size(), v); };
  double v = 0;
  for (const std::string text : {"1", "-2.5", "1.", ".5", "-.5", "1e5", "1E-5", "2.5e+3", "007", "0.000", "-0"}) {
    CAPTURE(text);
    CHECK(general(text, v));
    CHECK(v == std::strtod(text.c_str(), nullptr));
  }
  v = 7;
  for (const std::string text : {"", "-", ".", "-.", "+1", "1e", "1e+", "1x", " 1", "1 ", "1..2", "--1", "e5", "inf", "nan",
                                 "0x10", "1e400", "1e-400"}) {
    CAPTURE(text);
    CHECK_FALSE(general(text, v));
  }
  CHECK(v == 7);
#if defined(__cpp_lib_to_chars)
  // The same verdict and value as std::from_chars on numbers printed every way.
  std::mt19937_64 rng(7);
  int mismatches = 0;
  for (int i = 0; i < 20000; ++i) {
    const double x = std::ldexp(static_cast<double>(rng() % 2000001) - 1000000.0, static_cast<int>(rng() % 80) - 40);
    char text[64];
    const char* formats[] = {"%g", "%.3f", "%.17e", "%.0f", "%a"};
    std::snprintf(text, sizeof text, formats[i % 5], x);
    const std::string t = text;
    double a = 0, b = 0;
    const auto r = std::from_chars(t.data(), t.data() + t.size(), a);
    const bool std_ok = r.ec == std::errc() && r.ptr == t.data() + t.size() && std::isfinite(a);
    const bool ok = general(t, b);
    if ((ok != std_ok || (ok && std::memcmp(&a, &b, sizeof a) != 0)) && mismatches++ < 5)
      FAIL_CHECK(t << ": from_chars " << std_ok << " " << a << ", portable " << ok << " " << b);
  }
  CHECK(mismatches == 0);
#endif
}

// ---------------------------------------------------------------------------------------------
// Errors: each with the message the user will see.

TEST_CASE("syntax errors name the reason and the place") {
  struct Case {
    std::string_view text;
    const char* message;
  };
  using namespace std::string_view_literals;
  const Case cases[] = {
      {"", "json: empty input at line 1, column 1"},
      {" \n\t ", "json: empty input at line 2, column 3"},
      {"[1,]", "json: trailing comma at line 1, column 3"},
      {"[1, ]", "json: trailing comma at line 1, column 3"},
      {R"({"a":1,})", "json: trailing comma at line 1, column 7"},
      {"[,1]", "json: unexpected character ',' at line 1, column 2"},
      {"01", "json: leading zero in number at line 1, column 1"},
      {"[-012]", "json: leading zero in number at line 1, column 3"},
      {"00", "json: leading zero in number at line 1, column 1"},
      {"NaN", "json: invalid literal 'NaN' at line 1, column 1"},
      {"[nan]", "json: invalid literal 'nan' at line 1, column 2"},
      {"Infinity", "json: invalid literal 'Infinity' at line 1, column 1"},
      {"-Infinity", "json: expected a digit, got character 'I' at line 1, column 2"},
      {"True", "json: invalid literal 'True' at line 1, column 1"},
      {"nul", "json: invalid literal 'nul' at line 1, column 1"},
      {"truex", "json: invalid literal 'truex' at line 1, column 1"},
      {"\"abc", "json: unterminated string at line 1, column 1"},
      {"[\"abc\\", "json: unterminated string at line 1, column 2"},
      {"\"a\nb\"", "json: unescaped control character byte 0x0a in string at line 1, column 3"},
      {"\"a\tb\"", "json: unescaped control character byte 0x09 in string at line 1, column 3"},
      {"\"a\0b\""sv, "json: unescaped control character byte 0x00 in string at line 1, column 3"},
      {"\"\x1f\"", "json: unescaped control character byte 0x1f in string at line 1, column 2"},
      {"\"\x7f \"", "(parsed without error)"},  // DEL is not a control character to JSON
      {"\"\\x41\"",
       "json: invalid escape: backslash followed by character 'x' at line 1, column 2"},
      {"\"\\'\"", "json: invalid escape: backslash followed by character ''' at line 1, column 2"},
      {"\"\\\xc3\xa9\"",
       "json: invalid escape: backslash followed by byte 0xc3 at line 1, column 2"},
      {"\"\\u12G4\"",
       "json: invalid \\u escape: expected a hex digit, got character 'G' at line 1, column 6"},
      {"\"\\u12", "json: unterminated \\u escape at line 1, column 6"},
      {"\"\\ud83d\"", "json: lone high surrogate in \\u escape at line 1, column 2"},
      {"\"\\ud83dx\"", "json: lone high surrogate in \\u escape at line 1, column 2"},
      {"\"\\ud83d\\u0041\"", "json: lone high surrogate in \\u escape at line 1, column 2"},
      {"\"\\ud83d\\ud83d\"", "json: lone high surrogate in \\u escape at line 1, column 2"},
      {"\"ab\\ude00\"", "json: lone low surrogate in \\u escape at line 1, column 4"},
      {R"({"a":1,"b":2,"a":3})", "json: duplicate key 'a' at line 1, column 14"},
      {"{\"k\":{\"x\":1},\n \"k\":2}", "json: duplicate key 'k' at line 2, column 2"},
      {R"({"k":{"k":1}})", "(parsed without error)"},  // the same key in different objects is fine
      {"[1] x", "json: unexpected character 'x' after the value at line 1, column 5"},
      {"1 2", "json: unexpected character '2' after the value at line 1, column 3"},
      {"{}}", "json: unexpected character '}' after the value at line 1, column 3"},
      {"[1]\0"sv, "json: unexpected byte 0x00 after the value at line 1, column 4"},
      {"[1 2]", "json: expected ',' or ']', got character '2' at line 1, column 4"},
      {"[1", "json: expected ',' or ']', got end of input at line 1, column 3"},
      {"[", "json: unexpected end of input at line 1, column 2"},
      {R"({"a" 1})", "json: expected ':' after the key, got character '1' at line 1, column 6"},
      {R"({"a":1 "b":2})", "json: expected ',' or '}', got character '\"' at line 1, column 8"},
      {"{1:2}", "json: expected a string key, got character '1' at line 1, column 2"},
      {"{'a':1}", "json: expected a string key, got character ''' at line 1, column 2"},
      {R"({"a":})", "json: unexpected character '}' at line 1, column 6"},
      {"[1 /* comment */]", "json: expected ',' or ']', got character '/' at line 1, column 4"},
      {"// comment\n1", "json: unexpected character '/' at line 1, column 1"},
      {"1.", "json: expected a digit after '.', got end of input at line 1, column 3"},
      {".5", "json: unexpected character '.' at line 1, column 1"},
      {"+1", "json: unexpected character '+' at line 1, column 1"},
      {"-", "json: expected a digit, got end of input at line 1, column 2"},
      {"1e", "json: expected a digit in the exponent, got end of input at line 1, column 3"},
      {"1e+", "json: expected a digit in the exponent, got end of input at line 1, column 4"},
      {"0x10", "json: unexpected character 'x' after the value at line 1, column 2"},
      {"\f1", "json: unexpected byte 0x0c at line 1, column 1"},
      {"\xc2\xa0"
       "1",
       "json: unexpected byte 0xc2 at line 1, column 1"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK(parse_error(c.text) == c.message);
  }
}

TEST_CASE("nesting is limited to 128 levels, and deep input fails fast") {
  const int limit = Json::kMaxDepth;
  CHECK(limit == 128);
  const std::string ok = std::string(limit, '[') + std::string(limit, ']');
  const Json deep = Json::parse(ok);
  CHECK(deep.dump() == ok);
  CHECK(parse_error(std::string(limit + 1, '[') + std::string(limit + 1, ']')) ==
        "json: nesting deeper than 128 at line 1, column 129");

  std::string objects;
  for (int i = 0; i < limit; ++i) objects += "{\"a\":";
  objects += "1" + std::string(limit, '}');
  CHECK(Json::parse(objects).dump() == objects);
  CHECK(parse_error("[" + objects + "]") == "json: nesting deeper than 128 at line 1, column 637");

  // A million unclosed brackets: an error, not a stack overflow, and at once.
  const auto start = std::chrono::steady_clock::now();
  CHECK(parse_error(std::string(1000000, '[')) ==
        "json: nesting deeper than 128 at line 1, column 129");
  std::string million_objects;
  for (int i = 0; i < 1000000; ++i) million_objects += "{\"a\":";
  CHECK(parse_error(million_objects) == "json: nesting deeper than 128 at line 1, column 641");
  CHECK(seconds_since(start) < 2.0);

  // The writer holds to the same limit, so whatever it writes parses again.
  Json built = Json::array();
  for (int i = 1; i < limit; ++i) built = Json::array({std::move(built)});
  CHECK(built.dump() == ok);
  check_round_trip(built);
  const Json deeper = Json::array({built});
  CHECK(error_of([&] { deeper.dump(); }) == "json: cannot write nesting deeper than 128");
}

TEST_CASE("large inputs take no quadratic time") {
  // 100,000 keys: a duplicate check with a linear search per key would take minutes.
  std::string text = "{";
  for (int i = 0; i < 100000; ++i) {
    if (i) text += ',';
    text += "\"" + std::to_string(i * 7919 % 100003) + "\":" + std::to_string(i);
  }
  auto start = std::chrono::steady_clock::now();
  const Json big = Json::parse(text + "}");
  CHECK(big.size() == 100000);
  CHECK(big.items()[99999].second.as_number() == 99999.0);
  CHECK(parse_error(text + ",\"0\":1}") ==
        "json: duplicate key '0' at line 1, column " + std::to_string(text.size() + 2));
  CHECK(Json::parse(big.dump()) == big);
  CHECK(seconds_since(start) < 20.0);

  start = std::chrono::steady_clock::now();
  std::string array = "[";
  for (int i = 0; i < 1000000; ++i) array += i ? ",0" : "0";
  array += "]";
  const Json zeros = Json::parse(array);
  CHECK(zeros.size() == 1000000);
  CHECK(zeros.dump() == array);
  const std::string long_string = "\"" + std::string(4000000, 'x') + "\"";
  CHECK(Json::parse(long_string).as_string().size() == 4000000);
  CHECK(seconds_since(start) < 20.0);
}

// ---- spec_from_json: the rules of docs/model-json.md ------------------------------------------

namespace {

std::string spec_error(std::string_view text) {
  return error_of([&] { mtlite::spec_from_json(Json::parse(text)); });
}

}  // namespace

TEST_CASE("spec_from_json: the documented example, defaults and the canonical form") {
  const mtlite::Spec s = mtlite::spec_from_json(Json::parse(R"({
    "architecture": "mmoe",
    "features": [
      {"name": "age", "kind": "dense", "normalization": "standardize", "mean": 38.0, "stddev": 12.0},
      {"name": "country", "kind": "categorical", "mapping": "vocabulary", "size": 200, "embedding_dim": 8},
      {"name": "tags", "kind": "multi_hot", "mapping": "hashing", "size": 1000, "embedding_dim": 8,
       "pooling": "mean"}],
    "tasks": [
      {"name": "click", "kind": "binary", "role": "main", "loss_weight": 1.0, "tower": [16]},
      {"name": "purchase", "kind": "binary", "role": "main", "loss_weight": 1.0,
       "tower": [{"units": 16, "activation": "tanh"}]}],
    "experts": 2, "expert": [32, 16.0],
    "esmm": {"ctr": "click", "cvr": "purchase", "ctcvr": "ctcvr"},
    "tensors": {}})"), {"tensors"});
  CHECK(s.input_dim() == 17);
  CHECK(s.expert[1].units == 16);  // 16.0 is the integer 16
  CHECK(s.num_outputs() == 3);
  CHECK(mtlite::spec_to_json(mtlite::spec_from_json(mtlite::spec_to_json(s))) == mtlite::spec_to_json(s));

  // Defaults: task kind binary, role main, tower []; level counts 1 and 1; ESMM over the two
  // tasks of an "esmm" spec without its block; standardize without mean and stddev is 0 and 1
  // (mtlite train fits them from the data).
  const mtlite::Spec d = mtlite::spec_from_json(Json::parse(R"({"architecture": "esmm",
    "features": [{"name": "x", "kind": "dense", "normalization": "standardize"}],
    "tasks": [{"name": "a"}, {"name": "b", "role": "auxiliary"}]})"));
  CHECK(d.tasks[0].kind == mtlite::TaskKind::binary);
  CHECK(d.tasks[0].role == mtlite::TaskRole::main);
  CHECK(d.tasks[0].tower.empty());
  CHECK(d.tasks[1].kind == mtlite::TaskKind::binary);
  CHECK(d.tasks[1].role == mtlite::TaskRole::auxiliary);
  CHECK(d.features[0].mean == 0.0f);
  CHECK(d.features[0].stddev == 1.0f);
  REQUIRE(d.esmm);
  CHECK(d.esmm->ctr == "a");
  CHECK(d.esmm->cvr == "b");
  CHECK(d.esmm->ctcvr == "ctcvr");
  const mtlite::Spec p = mtlite::spec_from_json(Json::parse(R"({"architecture": "ple",
    "features": [{"name": "x", "kind": "dense"}], "tasks": [{"name": "a"}],
    "levels": [{"expert": [4]}]})"));
  CHECK(p.levels[0].task_experts == 1);
  CHECK(p.levels[0].shared_experts == 1);
}

TEST_CASE("spec_from_json: normalization chains") {
  auto one = [](const std::string& norm, const std::string& stats = "") {
    return R"({"architecture": "single_task", "tasks": [{"name": "a"}], "features": [{"name": "x", "kind": "dense", "normalization": )" +
           norm + stats + "}]}";
  };
  using mtlite::Normalization;
  auto parsed = [&](const std::string& norm, const std::string& stats = "") {
    return mtlite::spec_from_json(Json::parse(one(norm, stats))).features[0].normalization;
  };
  CHECK(parsed(R"([])") == Normalization::none);
  CHECK(parsed(R"(["none"])") == Normalization::none);
  CHECK(parsed(R"(["log1p"])") == Normalization::log1p);
  CHECK(parsed(R"(["standardize"])", R"(, "mean": 1, "stddev": 2)") == Normalization::standardize);
  const mtlite::Spec chain = mtlite::spec_from_json(Json::parse(one(R"(["log1p", "standardize"])", R"(, "mean": 1.5, "stddev": 0.5)")));
  CHECK(chain.features[0].normalization == Normalization::log1p_standardize);
  CHECK(chain.features[0].mean == 1.5f);
  // Written back as the chain, and read back the same.
  const Json written = mtlite::spec_to_json(chain);
  CHECK(written.at("features")[0].at("normalization").dump() == R"(["log1p","standardize"])");
  CHECK(mtlite::spec_from_json(written).features[0].normalization == Normalization::log1p_standardize);
  // Chains mtlite does not compute, and the internal name, are errors.
  const std::string chains = "the chains mtlite applies are [], [\"log1p\"], [\"standardize\"] and [\"log1p\", \"standardize\"]";
  CHECK(spec_error(one(R"(["standardize", "log1p"])")).find(chains) != std::string::npos);
  CHECK(spec_error(one(R"(["log1p", "log1p"])")).find(chains) != std::string::npos);
  CHECK(spec_error(one(R"(["log1p", "standardize", "none"])")).find(chains) != std::string::npos);
  CHECK(spec_error(one(R"(["log1p", 3])")).find("normalization: expected a string, got a number") != std::string::npos);
  CHECK(spec_error(one(R"("log1p_standardize")")).find(R"(write it as ["log1p", "standardize"])") != std::string::npos);
  CHECK(spec_error(one(R"(["log1p", "standardize"])", R"(, "mean": 1, "stddev": 0)")).find("positive stddev") != std::string::npos);
}

TEST_CASE("spec_from_json: keys that would be ignored are errors") {
  const std::string features = R"("features": [{"name": "x", "kind": "dense"}], "tasks": [{"name": "a"}])";
  CHECK(spec_error(R"({"architecture": "mmoe", "experts": 2, "expert": [4], "exprt": 1, )" + features + "}") ==
        "spec: unknown key 'exprt'");
  // Another architecture's keys.
  CHECK(spec_error(R"({"architecture": "shared_bottom", "bottom": [4], "experts": 2, )" + features + "}") ==
        "spec: key 'experts' is not used by the shared_bottom architecture");
  CHECK(spec_error(R"({"architecture": "mmoe", "experts": 2, "expert": [4], "bottom": [4], )" + features + "}") ==
        "spec: key 'bottom' is not used by the mmoe architecture");
  CHECK(spec_error(R"({"architecture": "single_task", "levels": [], )" + features + "}") ==
        "spec: key 'levels' is not used by the single_task architecture");
  CHECK(spec_error(R"({"expert": [4], "architecture": "ple", "levels": [{"expert": [4]}], )" + features + "}") ==
        "spec: key 'expert' is not used by the ple architecture");
  // Another feature kind's keys, and mean / stddev without standardize.
  auto feature_error = [](const std::string& feature) {
    return spec_error(R"({"architecture": "single_task", "tasks": [{"name": "a"}], "features": [)" + feature + "]}");
  };
  CHECK(feature_error(R"({"name": "x", "kind": "dense", "size": 3})") ==
        "spec.features: features[0]: key 'size' is not allowed for a dense feature");
  CHECK(feature_error(R"({"name": "x", "kind": "dense", "pooling": "sum"})") ==
        "spec.features: features[0]: key 'pooling' is not allowed for a dense feature");
  CHECK(feature_error(R"({"name": "c", "kind": "categorical", "size": 3, "embedding_dim": 2, "normalization": "none"})") ==
        "spec.features: features[0]: key 'normalization' is not allowed for a categorical feature");
  CHECK(feature_error(R"({"name": "c", "kind": "categorical", "size": 3, "embedding_dim": 2, "pooling": "mean"})") ==
        "spec.features: features[0]: key 'pooling' is not allowed for a categorical feature (a bag's pooling: multi_hot only)");
  CHECK(feature_error(R"({"name": "t", "kind": "multi_hot", "size": 3, "embedding_dim": 2, "mean": 1})") ==
        "spec.features: features[0]: key 'mean' is not allowed for a multi_hot feature");
  CHECK(feature_error(R"({"name": "x", "kind": "dense", "stddev": 2})") ==
        "spec.features: features[0]: key 'stddev' needs \"normalization\": \"standardize\" (or [\"log1p\", \"standardize\"])");
  CHECK(feature_error(R"({"mean": 1, "name": "x", "kind": "dense", "normalization": "log1p"})") ==
        "spec.features: features[0]: key 'mean' needs \"normalization\": \"standardize\" (or [\"log1p\", \"standardize\"])");
  // Allowed: the same keys where they belong, in any order.
  CHECK(feature_error(R"({"normalization": "standardize", "mean": 1, "stddev": 2, "name": "x", "kind": "dense"},
                         {"pooling": "sum", "name": "t", "kind": "multi_hot", "size": 3, "embedding_dim": 2})") ==
        "(no error)");
}
