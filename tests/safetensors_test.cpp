// offline/convert/safetensors.hpp: the strict .safetensors reader and rename_tensors().
//
// Files are made here by a tiny writer (header JSON text + raw little-endian bytes), so every
// field can be broken on purpose. Each rejection checks that the message starts with
// "safetensors: " and names what is wrong.
#include <doctest/doctest.h>

#include <mtlite/mtlite.hpp>
#include <mtlite/offline/convert/safetensors.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using mtlite::Json;
using mtlite::Weights;

using Bytes = std::string;

void put_u64(Bytes& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// A file from header text and data bytes; `length` overrides the header length field.
Bytes raw_file(const std::string& header, const Bytes& data, std::uint64_t length = ~std::uint64_t{0}) {
  Bytes out;
  put_u64(out, length == ~std::uint64_t{0} ? header.size() : length);
  return out + header + data;
}

Bytes f32_bytes(const std::vector<float>& v) {
  Bytes out;
  for (float f : v) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((u >> (8 * i)) & 0xff);
  }
  return out;
}
Bytes u16_bytes(const std::vector<std::uint16_t>& v) {
  Bytes out;
  for (std::uint16_t u : v) {
    out += static_cast<char>(u & 0xff);
    out += static_cast<char>(u >> 8);
  }
  return out;
}
Bytes f64_bytes(const std::vector<double>& v) {
  Bytes out;
  for (double d : v) {
    std::uint64_t u;
    std::memcpy(&u, &d, 8);
    put_u64(out, u);
  }
  return out;
}

// The tiny writer: tensors packed in order, header padded with spaces to 8 bytes as the
// reference writer does.
struct Item {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  Bytes bytes;
};
using Metadata = std::vector<std::pair<std::string, std::string>>;
Bytes write_file(const std::vector<Item>& items, const Metadata& metadata = {}) {
  auto quoted = [](const std::string& s) { return Json(s).dump(); };
  std::string text = "{";
  Bytes data;
  for (const Item& it : items) {
    if (text.size() > 1) text += ",";
    std::string shape;
    for (std::uint64_t d : it.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    text += quoted(it.name) + ":{\"dtype\":" + quoted(it.dtype) + ",\"shape\":[" + shape +
            "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
            std::to_string(data.size() + it.bytes.size()) + "]}";
    data += it.bytes;
  }
  if (!metadata.empty()) {
    text += std::string(text.size() > 1 ? "," : "") + "\"__metadata__\":{";
    for (std::size_t i = 0; i < metadata.size(); ++i)
      text += (i ? "," : "") + quoted(metadata[i].first) + ":" + quoted(metadata[i].second);
    text += "}";
  }
  text += "}";
  while (text.size() % 8) text += ' ';
  return raw_file(text, data);
}

Weights parse(const Bytes& file) { return mtlite::read_safetensors(file.data(), file.size()); }

// The message of the mtlite::Error parse throws, or a marker.
std::string error_of(const Bytes& file) {
  try {
    parse(file);
  } catch (const mtlite::Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// One entry's header text around a tensor named "w".
std::string one(const std::string& entry) { return "{\"w\":" + entry + "}"; }

#define CHECK_REJECTS(file, ...)                                                       \
  do {                                                                                 \
    const std::string msg_ = error_of(file);                                           \
    CAPTURE(msg_);                                                                     \
    CHECK(starts_with(msg_, "safetensors: "));                                         \
    for (const char* part_ : {__VA_ARGS__}) CHECK_MESSAGE(contains(msg_, part_), part_); \
  } while (0)

}  // namespace

// ---------------------------------------------------------------------------------------------
// Valid files

TEST_CASE("round trip: F32 tensors of several shapes, metadata, padding") {
  const std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-38f};
  const std::vector<float> b = {std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                                -std::numeric_limits<float>::infinity()};
  const Bytes file = write_file({{"layer.weight", "F32", {2, 3}, f32_bytes(a)},
                                 {"layer.bias", "F32", {3}, f32_bytes(b)},
                                 {"scalar", "F32", {}, f32_bytes({42.0f})},
                                 {"empty", "F32", {0, 5}, ""}},
                                {{"format", "pt"}, {"producer", "test"}});
  const mtlite::SafetensorsFile f = mtlite::parse_safetensors(file.data(), file.size());
  REQUIRE(f.tensors.size() == 4);
  const mtlite::Tensor& w = f.tensors.at("layer.weight");
  CHECK(w.shape == std::vector<std::uint64_t>{2, 3});
  REQUIRE(w.data.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(std::memcmp(&w.data[i], &a[i], 4) == 0);  // bit exact, -0 too
  const mtlite::Tensor& bias = f.tensors.at("layer.bias");
  CHECK(bias.shape == std::vector<std::uint64_t>{3});
  CHECK(bias.data[0] == std::numeric_limits<float>::max());
  CHECK(bias.data[1] == std::numeric_limits<float>::denorm_min());
  CHECK(bias.data[2] == -std::numeric_limits<float>::infinity());
  CHECK(f.tensors.at("scalar").shape.empty());
  CHECK(f.tensors.at("scalar").data == std::vector<float>{42.0f});
  CHECK(f.tensors.at("empty").shape == std::vector<std::uint64_t>{0, 5});
  CHECK(f.tensors.at("empty").data.empty());
  CHECK(f.metadata.size() == 2);
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.metadata.at("producer") == "test");
}

TEST_CASE("safetensors_bytes: the reader gets back every bit, in the order given; header padded") {
  mtlite::Weights w;
  w["b.weight"] = {{2, 3}, {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, std::numeric_limits<float>::denorm_min()}};
  w["a \"quoted\" name"] = {{1}, {-std::numeric_limits<float>::infinity()}};
  w["unlisted"] = {{1}, {7.0f}};
  w["scalar"] = {{}, {42.0f}};
  const std::vector<std::string> names = {"b.weight", "scalar", "a \"quoted\" name"};
  const std::vector<unsigned char> file = mtlite::safetensors_bytes(w, names);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | file[static_cast<std::size_t>(i)];
  CHECK(n % 8 == 0);
  CHECK(file.size() == 8 + n + 4 * (6 + 1 + 1));
  // The data follows the header in the order of `names`: b.weight's six floats first.
  float first;
  std::memcpy(&first, file.data() + 8 + n, 4);
  CHECK(first == 1.0f);
  const mtlite::Weights back = mtlite::read_safetensors(file.data(), file.size());
  REQUIRE(back.size() == 3);
  CHECK(back.count("unlisted") == 0);
  for (const std::string& name : names) {
    const mtlite::Tensor& got = back.at(name);
    const mtlite::Tensor& want = w.at(name);
    CHECK(got.shape == want.shape);
    REQUIRE(got.data.size() == want.data.size());
    CHECK(std::memcmp(got.data.data(), want.data.data(), 4 * want.data.size()) == 0);  // -0 too
  }
  CHECK_THROWS_WITH_AS(mtlite::safetensors_bytes(w, {"missing"}), doctest::Contains("missing"), mtlite::Error);
  const std::vector<unsigned char> none = mtlite::safetensors_bytes(w, {});
  CHECK(mtlite::read_safetensors(none.data(), none.size()).empty());
}

TEST_CASE("valid edge cases: no tensors, tensors in any header order, unpadded header") {
  CHECK(parse(raw_file("{}", "")).empty());
  CHECK(parse(raw_file("  {\"__metadata__\":{}}  ", "")).empty());
  // Header order is not data order.
  const Bytes data = f32_bytes({1, 2, 3});
  const Weights w = parse(raw_file(
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      data));
  CHECK(w.at("a").data == std::vector<float>{1});
  CHECK(w.at("b").data == std::vector<float>{2, 3});
  // Zero-size tensors may sit at the end or between others.
  const Weights z = parse(raw_file(
      R"({"z0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"z1":{"dtype":"F16","shape":[4,0],"data_offsets":[12,12]}})",
      data));
  CHECK(z.size() == 3);
  CHECK(z.at("z1").shape == std::vector<std::uint64_t>{4, 0});
  // A zero dimension makes a huge shape empty, not an overflow.
  CHECK(parse(raw_file(R"({"e":{"dtype":"F32","shape":[1099511627776,1099511627776,0],"data_offsets":[0,0]}})", ""))
            .at("e")
            .data.empty());
}

TEST_CASE("F16 converts exactly: normals, subnormals, zeros, infinities, NaN") {
  const std::vector<std::uint16_t> h = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0000,
                                        0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x8001};
  const Weights w = parse(write_file({{"h", "F16", {12}, u16_bytes(h)}}));
  const std::vector<float>& v = w.at("h").data;
  REQUIRE(v.size() == 12);
  CHECK(v[0] == 1.0f);
  CHECK(v[1] == -2.0f);
  CHECK(v[2] == 65504.0f);
  CHECK(v[3] == std::ldexp(1.0f, -24));        // smallest subnormal
  CHECK(v[4] == 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  CHECK(v[5] == 0.0f);
  CHECK_FALSE(std::signbit(v[5]));
  CHECK(v[6] == 0.0f);
  CHECK(std::signbit(v[6]));
  CHECK(v[7] == std::numeric_limits<float>::infinity());
  CHECK(v[8] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(v[9]));
  CHECK(v[10] == 0.333251953125f);  // 2^-2 x (1 + 341/1024)
  CHECK(v[11] == -std::ldexp(1.0f, -24));
}

TEST_CASE("BF16 converts exactly, F64 rounds to nearest and refuses values beyond float") {
  const Weights b = parse(write_file({{"b", "BF16", {4}, u16_bytes({0x3f80, 0xc040, 0x7f80, 0x0001})}}));
  CHECK(b.at("b").data[0] == 1.0f);
  CHECK(b.at("b").data[1] == -3.0f);
  CHECK(b.at("b").data[2] == std::numeric_limits<float>::infinity());
  CHECK(b.at("b").data[3] == std::ldexp(1.0f, -133));

  const double third = 1.0 / 3.0;
  const Weights d = parse(write_file(
      {{"d", "F64", {2, 2}, f64_bytes({third, -1e-50, 3.4028234663852886e38, std::nan("")})}}));
  CHECK(d.at("d").shape == std::vector<std::uint64_t>{2, 2});
  CHECK(d.at("d").data[0] == static_cast<float>(third));
  CHECK(d.at("d").data[1] == 0.0f);
  CHECK(d.at("d").data[2] == std::numeric_limits<float>::max());
  CHECK(std::isnan(d.at("d").data[3]));

  CHECK_REJECTS(write_file({{"big", "F64", {2}, f64_bytes({1.0, 1e39})}}), "tensor 'big'",
                "beyond the float range", "index 1");
  CHECK_REJECTS(write_file({{"big", "F64", {1}, f64_bytes({-1e300})}}), "tensor 'big'", "beyond the float range");
}

TEST_CASE("read_safetensors(path): reads a file, names the path in errors") {
  const std::string path = "safetensors_test_tmp.safetensors";
  {
    const Bytes file = write_file({{"x", "F32", {2}, f32_bytes({0.5f, -0.5f})}});
    std::ofstream out(path, std::ios::binary);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  const Weights w = mtlite::read_safetensors(path);
  CHECK(w.at("x").data == std::vector<float>{0.5f, -0.5f});
  {
    std::ofstream out(path, std::ios::binary);
    out << "hello";
  }
  try {
    mtlite::read_safetensors(path);
    FAIL("a 5-byte file was accepted");
  } catch (const mtlite::Error& e) {
    CHECK(std::string(e.what()) == "safetensors: " + path + ": file is 5 bytes, too short for the 8-byte header length");
  }
  std::remove(path.c_str());
  try {
    mtlite::read_safetensors(std::string("no/such/file.safetensors"));
    FAIL("a missing file was accepted");
  } catch (const mtlite::Error& e) {
    CHECK(starts_with(e.what(), "safetensors: no/such/file.safetensors: cannot open"));
  }
  try {
    mtlite::read_safetensors(std::string("."));  // a directory
    FAIL("a directory was accepted");
  } catch (const mtlite::Error& e) {
    CHECK(std::string(e.what()) == "safetensors: .: not a regular file");
  }
}

// ---------------------------------------------------------------------------------------------
// Rejections

TEST_CASE("rejects: bad header length") {
  CHECK_REJECTS(Bytes(), "0 bytes, too short");
  CHECK_REJECTS(Bytes("\x02\0\0\0\0\0\0", 7), "7 bytes, too short");
  // Longer than the file.
  CHECK_REJECTS(raw_file("{}", "", 3), "header length 3 reaches past the end of the file (10 bytes)");
  CHECK_REJECTS(raw_file("{}", "", 1u << 20), "header length 1048576 reaches past the end");
  // Beyond 100 MB: refused before anything is read or allocated.
  CHECK_REJECTS(raw_file("{}", "", 100000001), "header length 100000001 exceeds the limit of 100000000 bytes");
  CHECK_REJECTS(raw_file("{}", "", ~std::uint64_t{0} - 1), "exceeds the limit");
  CHECK_REJECTS(raw_file("{}", "", std::uint64_t{1} << 63), "exceeds the limit");
  // Shorter than the header: the JSON is cut.
  CHECK_REJECTS(raw_file("{\"a\":1}", "", 4), "header is not valid JSON", "json: ");
  CHECK_REJECTS(raw_file("", "", 0), "header is not valid JSON", "empty input");
}

TEST_CASE("rejects: a header that is not a JSON object") {
  CHECK_REJECTS(raw_file("not json", ""), "header is not valid JSON");
  CHECK_REJECTS(raw_file("{\"a\":{},}", ""), "header is not valid JSON", "trailing comma");
  CHECK_REJECTS(raw_file("{\"w\":1,\"w\":2}", ""), "header is not valid JSON", "duplicate key");
  CHECK_REJECTS(raw_file(std::string("{\"\xff\":1}"), ""), "header is not valid JSON", "UTF-8");
  CHECK_REJECTS(raw_file(std::string("{}\0", 3), ""), "header is not valid JSON");
  CHECK_REJECTS(raw_file("[]", ""), "header is an array, expected a JSON object");
  CHECK_REJECTS(raw_file("\"x\"", ""), "header is a string, expected a JSON object");
  CHECK_REJECTS(raw_file("null", ""), "header is null, expected a JSON object");
}

TEST_CASE("rejects: malformed tensor entries") {
  const Bytes d4 = f32_bytes({1.0f});
  CHECK_REJECTS(raw_file(one("[]"), d4), "tensor 'w': entry is an array, expected an object");
  CHECK_REJECTS(raw_file(one(R"({"shape":[1],"data_offsets":[0,4]})"), d4), "tensor 'w': missing 'dtype'");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","data_offsets":[0,4]})"), d4), "tensor 'w': missing 'shape'");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1]})"), d4), "tensor 'w': missing 'data_offsets'");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1})"), d4),
                "tensor 'w': unknown key 'extra'");
  CHECK_REJECTS(raw_file(one(R"({"dtype":32,"shape":[1],"data_offsets":[0,4]})"), d4),
                "tensor 'w': dtype is a number, expected a string");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":1,"data_offsets":[0,4]})"), d4),
                "tensor 'w': shape is a number, expected an array");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})"), d4),
                "tensor 'w': shape[0] is a string, expected an integer");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})"), d4),
                "tensor 'w': data_offsets must be an array of two integers");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"), d4),
                "data_offsets must be an array of two integers");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":{"a":0}})"), d4),
                "data_offsets must be an array of two integers");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.5]})"), d4),
                "data_offsets[1] is 4.5, expected an integer");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), d4),
                "data_offsets[0] is -4, expected an integer");
}

TEST_CASE("rejects: unknown and unsupported dtypes, by name") {
  const Bytes d8 = f32_bytes({1.0f, 2.0f});
  for (const char* dtype : {"I64", "U8", "I8", "I32", "BOOL", "F8_E4M3", "U64"}) {
    CAPTURE(dtype);
    CHECK_REJECTS(raw_file(one(std::string(R"({"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,8]})"), d8),
                  "tensor 'w': dtype '", dtype, "' is not supported (mtlite reads F32, F16, BF16 and F64)");
  }
  for (const char* dtype : {"Q4", "f32", "float32", "", "F32 "}) {
    CAPTURE(dtype);
    CHECK_REJECTS(raw_file(one(std::string(R"({"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,8]})"), d8),
                  "tensor 'w': unknown dtype '", "(mtlite reads F32, F16, BF16 and F64)");
  }
}

TEST_CASE("rejects: negative, fractional, huge and overflowing shapes") {
  const Bytes d4 = f32_bytes({1.0f});
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), d4),
                "tensor 'w': shape[0] is -1, expected an integer in [0, 2^40]");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1,-0.5],"data_offsets":[0,4]})"), d4),
                "shape[1] is -0.5");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), d4), "shape[0] is 1.5");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1099511627777],"data_offsets":[0,4]})"), d4),
                "shape[0] is 1099511627777, expected an integer in [0, 2^40]");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1e300],"data_offsets":[0,4]})"), d4), "shape[0] is 1e+300");
  // Each dimension within 2^40, the product beyond 2^64: overflow is caught, nothing allocated.
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]})"), d4),
                "tensor 'w': shape [1099511627776, 1099511627776] has too many elements");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F64","shape":[4194304,4194304,1048576],"data_offsets":[0,4]})"), d4),
                "has too many elements");  // 2^64 elements
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F64","shape":[2097152,1048576,1048576],"data_offsets":[0,4]})"), d4),
                "has too many elements");  // 2^61 elements, 2^64 bytes
  // Huge but representable: the byte count, not an allocation, rejects it.
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1099511627776,1024],"data_offsets":[0,4]})"), d4),
                "span 4 bytes, but shape [1099511627776, 1024] of F32 needs 4503599627370496");
}

TEST_CASE("rejects: offsets out of range, reversed, size mismatch") {
  const Bytes d8 = f32_bytes({1.0f, 2.0f});
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,12]})"), d8),
                "tensor 'w': data_offsets [0, 12] reach past the end of the data region (8 bytes)");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[8,16]})"), d8), "reach past the end");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[8,9007199254740992]})"), d8),
                "data_offsets [8, 9007199254740992] reach past the end");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[9007199254740994,9007199254740994]})"), d8),
                "data_offsets[0] is 9007199254740994, expected an integer in [0, 2^53]");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), d8),
                "tensor 'w': data_offsets [8, 0] end before they begin");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,8]})"), d8),
                "tensor 'w': data_offsets [0, 8] span 8 bytes, but shape [1] of F32 needs 4");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), d8), "needs 12");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F16","shape":[2],"data_offsets":[0,8]})"), d8), "of F16 needs 4");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F64","shape":[2],"data_offsets":[0,8]})"), d8), "of F64 needs 16");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[],"data_offsets":[0,8]})"), d8), "shape [] of F32 needs 4");
}

TEST_CASE("rejects: overlapping tensors, gaps and uncovered bytes") {
  const Bytes d12 = f32_bytes({1.0f, 2.0f, 3.0f});
  CHECK_REJECTS(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         d12),
                "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]");
  // The same bytes twice.
  CHECK_REJECTS(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                         d12),
                "overlap tensor");
  // One inside another.
  CHECK_REJECTS(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         d12),
                "tensor 'b'", "overlap tensor 'a' [0, 12]");
  // A gap between tensors, and data nobody reads.
  CHECK_REJECTS(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         d12),
                "tensor 'b': data_offsets begin at 8, leaving 4 bytes after offset 4 that no tensor covers");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"), d12), "begin at 4");
  CHECK_REJECTS(raw_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), d12),
                "the data region holds 12 bytes but the tensors cover 8 (4 bytes after the last tensor)");
  CHECK_REJECTS(raw_file("{}", "xy"), "the data region holds 2 bytes but the tensors cover 0");
}

TEST_CASE("rejects: bad __metadata__; names with odd bytes are quoted safely") {
  CHECK_REJECTS(raw_file(R"({"__metadata__":[]})", ""), "__metadata__ is an array, expected an object");
  CHECK_REJECTS(raw_file(R"({"__metadata__":"x"})", ""), "__metadata__ is a string, expected an object");
  CHECK_REJECTS(raw_file(R"({"__metadata__":{"a":"b","n":1}})", ""),
                "__metadata__: value of 'n' is a number, expected a string");
  CHECK_REJECTS(raw_file(R"({"__metadata__":{"o":{}}})", ""), "value of 'o' is an object");
  // A control character and a quote in a tensor name come out escaped.
  CHECK_REJECTS(raw_file(R"({"a\n'b":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})", "x"),
                "tensor 'a\\x0a\\x27b': dtype 'I8' is not supported");
}

TEST_CASE("hostile input: mutated files either parse or throw mtlite::Error, never crash") {
  const Bytes good = write_file({{"layer.weight", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
                                 {"h", "F16", {3}, u16_bytes({0x3c00, 0x0001, 0x7c00})},
                                 {"d", "F64", {1}, f64_bytes({0.25})}},
                                {{"k", "v"}});
  REQUIRE(parse(good).size() == 3);
  std::mt19937_64 rng(12345);
  int accepted = 0, rejected = 0, other = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    Bytes f = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % f.size();
      switch (rng() % 4) {
        case 0: f[at] = static_cast<char>(rng()); break;                                       // byte
        case 1: f[at] = static_cast<char>("0123456789[]{}\",:-.eE"[rng() % 21]); break;        // JSON-ish
        case 2: f.erase(at, 1 + rng() % 8); break;                                             // cut
        case 3: f.resize(rng() % (f.size() + 1)); break;                                       // truncate
      }
      if (f.empty()) break;
    }
    try {
      const Weights w = parse(f);
      ++accepted;
      for (const auto& kv : w) CHECK(kv.second.data.size() == kv.second.numel());
    } catch (const mtlite::Error& err) {
      ++rejected;
      CHECK(starts_with(err.what(), "safetensors: "));
    } catch (...) {
      ++other;
    }
  }
  CHECK(other == 0);
  CHECK(rejected > 10000);
  MESSAGE("mutated files: " << accepted << " accepted, " << rejected << " rejected");
}

// ---------------------------------------------------------------------------------------------
// rename_tensors() and a model built from a file

TEST_CASE("rename: applies the tensors map, errors on a missing source tensor") {
  Weights w;
  w["a"] = {{2}, {1.0f, 2.0f}};
  w["b"] = {{1}, {3.0f}};
  w["unused"] = {{1}, {4.0f}};
  const Weights r = mtlite::rename_tensors(w, Json::object().set("x.weight", "a").set("x.bias", "b").set("y", "a"));
  REQUIRE(r.size() == 3);
  CHECK(r.at("x.weight").data == std::vector<float>{1.0f, 2.0f});
  CHECK(r.at("x.bias").shape == std::vector<std::uint64_t>{1});
  CHECK(r.at("y").data == r.at("x.weight").data);
  CHECK(r.count("unused") == 0);
  CHECK(mtlite::rename_tensors(w, Json::object()).empty());

  auto error = [&](const Json& map) -> std::string {
    try {
      mtlite::rename_tensors(w, map);
    } catch (const mtlite::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  CHECK(error(Json::object().set("x.weight", "a").set("x.bias", "missing")) ==
        "tensors: 'x.bias' maps to tensor 'missing', which the weights file does not hold");
  CHECK(error(Json::object().set("x.weight", 3)) ==
        "tensors: 'x.weight' maps to a number, expected a tensor name (a string)");
  CHECK(error(Json::array()) == "tensors: expected an object mapping mtlite names to tensor names, got an array");
}

TEST_CASE("a Model from a safetensors file predicts what the same weights predict in memory") {
  mtlite::Spec spec;
  spec.features = {mtlite::Feature::dense("age", mtlite::Normalization::standardize, 30.0f, 10.0f),
                   mtlite::Feature::categorical("country", 20, 4)};
  spec.tasks.resize(2);
  spec.tasks[0].name = "click";
  spec.tasks[1].name = "like";
  spec.tasks[1].tower = mtlite::mlp({8});
  spec.architecture = mtlite::Architecture::mmoe;
  spec.num_experts = 3;
  spec.expert = mtlite::mlp({8});
  const Weights w = mtlite::random_weights(spec, 7, 0.1f);

  // Written under other names, with the map model.json would carry.
  std::vector<Item> items;
  Json map = Json::object();
  for (const auto& kv : w) {
    const std::string stored = "model." + kv.first;
    items.push_back({stored, "F32", kv.second.shape, f32_bytes(kv.second.data)});
    map.set(kv.first, stored);
  }
  const Bytes file = write_file(items);
  const Weights read = mtlite::rename_tensors(parse(file), map);
  CHECK(read.size() == w.size());

  const mtlite::Model a(spec, w), b(spec, read);
  mtlite::Session sa(a, 4), sb(b, 4);
  const float dense[] = {25.0f, 61.0f};
  const std::int64_t ids[] = {3, 99};
  mtlite::Batch batch;
  batch.rows = 2;
  batch.dense = dense;
  batch.ids = ids;
  REQUIRE(sa.predict(batch));
  REQUIRE(sb.predict(batch));
  for (std::size_t o = 0; o < a.num_outputs(); ++o)
    for (std::size_t r = 0; r < 2; ++r) CHECK(sa.score(o, r) == sb.score(o, r));

  // Without the map the names do not fit the spec, and the Model says which.
  try {
    mtlite::Model bad(spec, parse(file));
    FAIL("unmapped weights were accepted");
  } catch (const mtlite::Error& e) {
    CHECK(contains(e.what(), "missing tensor"));
  }
}
