// A strict reader of .safetensors files (the format of Hugging Face's `safetensors` library), the
// way a PyTorch-trained model enters mtlite (tools/python/mtlite_torch.py writes them; the
// model.json beside the file names the tensors, docs/model-json.md).
//
// The layout:
//   bytes [0, 8)        N, the header length: an unsigned 64-bit little-endian integer
//   bytes [8, 8 + N)    the header: a JSON object (UTF-8; writers pad it with trailing spaces)
//                         { "<tensor name>": {"dtype": "F32", "shape": [2, 3],
//                                             "data_offsets": [begin, end]}, ...,
//                           "__metadata__": {"<key>": "<string value>", ...} }   (optional)
//   bytes [8 + N, end)  the data region; a tensor's bytes are [begin, end) relative to its start,
//                       row-major, little-endian.
//
// Files come from anywhere, so every field is checked before anything is allocated from it:
//   - N <= 100,000,000 (the reference implementation's limit) and 8 + N <= file size;
//   - the header parses as strict JSON (mtlite::Json::parse) and is an object;
//   - every tensor entry is an object with exactly the keys dtype, shape and data_offsets;
//   - dtype is F32, F16, BF16 or F64 (converted to float: F16 and BF16 exactly, F64 rounded to
//     nearest, a finite F64 beyond float's range is an error); any other dtype is refused by name;
//   - shape is an array of integers in [0, 2^40]; the element count and the byte count are
//     overflow-checked;
//   - data_offsets is [begin, end] with begin <= end <= the data region's size and
//     end - begin == element count x element size;
//   - tensors do not overlap, and, as the format requires, they tile the data region exactly: no
//     gap between tensors and no bytes after the last one;
//   - "__metadata__", when present, is an object of string values.
// Every failure throws mtlite::Error("safetensors: ...") naming the tensor at fault. Tensor data
// is allocated only after the whole header is validated, and its size is bounded by the file's.
// Resources for a file of n bytes (a regular file; anything else is refused): the file's bytes
// (n), the header's JSON tree (json.hpp: at most 40 bytes per header byte), and the floats
// (4 bytes per element: twice the bytes of F16 and BF16 data, half those of F64): at most 41n.
// Time O(n log n) (the overlap check sorts the tensors).
//
// The names in the file need not be mtlite's: model.json's "tensors" object maps each mtlite
// parameter name to a tensor name of the file, and rename_tensors() applies it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/quote.hpp"
#include "../../format/json.hpp"
#include "../../weights.hpp"

namespace mtlite {

struct SafetensorsLimits {
  static constexpr std::uint64_t max_header_bytes = 100000000;  // as the reference reader
  static constexpr std::uint64_t max_dim = std::uint64_t{1} << 40;
};

// A parsed file: the tensors converted to float, and the header's "__metadata__".
struct SafetensorsFile {
  Weights tensors;
  std::map<std::string, std::string> metadata;
};

namespace internal::safetensors {

[[noreturn]] inline void fail(const std::string& message) { throw Error("safetensors: " + message); }

[[noreturn]] inline void fail_tensor(const std::string& name, const std::string& message) {
  fail("tensor " + quote(name) + ": " + message);
}

enum class DType : std::uint8_t { f32, f16, bf16, f64 };

inline std::size_t item_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::f64: return 8;
  }
  return 0;
}

inline DType parse_dtype(const std::string& name, const Json& v) {
  if (!v.is_string()) fail_tensor(name, std::string("dtype is ") + Json::kind_name(v.kind()) + ", expected a string");
  const std::string& s = v.as_string();
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  if (s == "F64") return DType::f64;
  static const char* const known[] = {"BOOL", "U8",  "I8",  "I16",     "U16",     "I32",
                                      "U32",  "I64", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                      "F4",   "F6_E2M3", "F6_E3M2", "C64"};
  const bool is_known = std::find_if(std::begin(known), std::end(known),
                                     [&](const char* k) { return s == k; }) != std::end(known);
  fail_tensor(name, std::string(is_known ? "dtype " : "unknown dtype ") + quote(s) +
                        (is_known ? " is not supported" : "") +
                        " (mtlite reads F32, F16, BF16 and F64)");
}

// An integer in [0, max] from a JSON number, or an error naming `what`.
inline std::uint64_t parse_count(const std::string& name, const Json& v, const std::string& what,
                                 std::uint64_t max, const char* max_text) {
  if (!v.is_number())
    fail_tensor(name, what + " is " + Json::kind_name(v.kind()) + ", expected an integer");
  const double d = v.as_number();
  if (!(d >= 0.0 && d <= static_cast<double>(max) && std::floor(d) == d))
    fail_tensor(name, what + " is " + Json(d).dump() + ", expected an integer in [0, " + max_text + "]");
  return static_cast<std::uint64_t>(d);
}

inline std::uint32_t load_u32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}
inline std::uint64_t load_u64(const unsigned char* p) noexcept {
  return std::uint64_t{load_u32(p)} | std::uint64_t{load_u32(p + 4)} << 32;
}
inline float bits_to_float(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 to binary32, exact (every half is a float), NaN payloads kept.
inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | mant << 13);  // inf, NaN
  if (exp != 0) return bits_to_float(sign | (exp + 112) << 23 | mant << 13);
  // Zero or subnormal: mant x 2^-24, exact in float.
  const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
  return sign ? -v : v;
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t numel;
  std::uint64_t begin, end;
};

inline Entry parse_entry(const std::string& name, const Json& v, std::uint64_t data_size) {
  if (!v.is_object())
    fail_tensor(name, std::string("entry is ") + Json::kind_name(v.kind()) + ", expected an object");
  for (const Json::Member& m : v.items())
    if (m.first != "dtype" && m.first != "shape" && m.first != "data_offsets")
      fail_tensor(name, "unknown key " + quote(m.first) + " (expected dtype, shape, data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.find(key)) fail_tensor(name, std::string("missing '") + key + "'");

  Entry e;
  e.name = name;
  e.dtype = parse_dtype(name, v.at("dtype"));

  const Json& shape = v.at("shape");
  if (!shape.is_array())
    fail_tensor(name, std::string("shape is ") + Json::kind_name(shape.kind()) + ", expected an array");
  bool zero = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    e.shape.push_back(parse_count(name, shape[i], "shape[" + std::to_string(i) + "]",
                                  SafetensorsLimits::max_dim, "2^40"));
    zero = zero || e.shape.back() == 0;
  }
  const std::uint64_t item = item_size(e.dtype);
  e.numel = zero ? 0 : 1;
  if (!zero) {
    for (std::uint64_t d : e.shape) {
      if (e.numel > std::numeric_limits<std::uint64_t>::max() / item / d)
        fail_tensor(name, "shape " + shape_string(e.shape) + " has too many elements");
      e.numel *= d;
    }
  }
  const std::uint64_t bytes = e.numel * item;  // no overflow: checked above

  const Json& offsets = v.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    fail_tensor(name, "data_offsets must be an array of two integers [begin, end]");
  e.begin = parse_count(name, offsets[0], "data_offsets[0]", std::uint64_t{1} << 53, "2^53");
  e.end = parse_count(name, offsets[1], "data_offsets[1]", std::uint64_t{1} << 53, "2^53");
  const std::string range = "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
  if (e.begin > e.end) fail_tensor(name, range + " end before they begin");
  if (e.end > data_size)
    fail_tensor(name, range + " reach past the end of the data region (" +
                          std::to_string(data_size) + " bytes)");
  if (e.end - e.begin != bytes)
    fail_tensor(name, range + " span " + std::to_string(e.end - e.begin) + " bytes, but shape " +
                          shape_string(e.shape) + " of " + v.at("dtype").as_string() + " needs " +
                          std::to_string(bytes));
  return e;
}

inline std::vector<float> convert(const Entry& e, const unsigned char* p) {
  std::vector<float> out(static_cast<std::size_t>(e.numel));
  const std::size_t n = out.size();
  switch (e.dtype) {
    case DType::f32:
      for (std::size_t i = 0; i < n; ++i) out[i] = bits_to_float(load_u32(p + 4 * i));
      break;
    case DType::f16:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = half_to_float(static_cast<std::uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      break;
    case DType::bf16:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = bits_to_float(static_cast<std::uint32_t>(p[2 * i] | p[2 * i + 1] << 8) << 16);
      break;
    case DType::f64:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t u = load_u64(p + 8 * i);
        double d;
        std::memcpy(&d, &u, sizeof d);
        // Converting a finite double beyond float's range is undefined behaviour: refuse it.
        if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
          fail_tensor(e.name, "F64 value " + Json(d).dump() + " at index " + std::to_string(i) +
                                  " is beyond the float range");
        out[i] = static_cast<float>(d);  // NaN and infinities convert as they are
      }
      break;
  }
  return out;
}

}  // namespace internal::safetensors

// Parses a whole .safetensors file held in memory.
inline SafetensorsFile parse_safetensors(const void* data, std::size_t size) {
  namespace st = internal::safetensors;
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (size < 8 || bytes == nullptr)
    st::fail("file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  const std::uint64_t n = st::load_u64(bytes);
  if (n > SafetensorsLimits::max_header_bytes)
    st::fail("header length " + std::to_string(n) + " exceeds the limit of " +
             std::to_string(SafetensorsLimits::max_header_bytes) + " bytes");
  if (n > size - 8)
    st::fail("header length " + std::to_string(n) + " reaches past the end of the file (" +
             std::to_string(size) + " bytes)");

  Json header;
  try {
    header = Json::parse(std::string_view(reinterpret_cast<const char*>(bytes + 8), static_cast<std::size_t>(n)));
  } catch (const Error& e) {
    st::fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object())
    st::fail(std::string("header is ") + Json::kind_name(header.kind()) + ", expected a JSON object");

  const unsigned char* region = bytes + 8 + n;
  const std::uint64_t region_size = size - 8 - n;

  SafetensorsFile file;
  std::vector<st::Entry> entries;
  for (const Json::Member& m : header.items()) {
    if (m.first == "__metadata__") {
      if (!m.second.is_object())
        st::fail(std::string("__metadata__ is ") + Json::kind_name(m.second.kind()) + ", expected an object");
      for (const Json::Member& kv : m.second.items()) {
        if (!kv.second.is_string())
          st::fail("__metadata__: value of " + quote(kv.first) + " is " +
                   Json::kind_name(kv.second.kind()) + ", expected a string");
        file.metadata.emplace(kv.first, kv.second.as_string());
      }
      continue;
    }
    entries.push_back(st::parse_entry(m.first, m.second, region_size));
  }

  // The tensors must tile the data region: sorted by offset, each begins where the last ended.
  std::vector<const st::Entry*> order;
  for (const st::Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const st::Entry* a, const st::Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t at = 0;
  const st::Entry* prev = nullptr;
  for (const st::Entry* e : order) {
    if (e->begin < at)
      st::fail_tensor(e->name, "data_offsets [" + std::to_string(e->begin) + ", " +
                                   std::to_string(e->end) + "] overlap tensor " + quote(prev->name) +
                                   " [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) + "]");
    if (e->begin > at)
      st::fail_tensor(e->name, "data_offsets begin at " + std::to_string(e->begin) + ", leaving " +
                                   std::to_string(e->begin - at) + " bytes after offset " +
                                   std::to_string(at) + " that no tensor covers");
    at = e->end;
    prev = e;
  }
  if (at != region_size)
    st::fail("the data region holds " + std::to_string(region_size) + " bytes but the tensors cover " +
             std::to_string(at) + " (" + std::to_string(region_size - at) + " bytes after the last tensor)");

  for (const st::Entry& e : entries) {
    Tensor t;
    t.shape = e.shape;
    t.data = st::convert(e, region + e.begin);
    file.tensors.emplace(e.name, std::move(t));
  }
  return file;
}

inline Weights read_safetensors(const void* data, std::size_t size) {
  return parse_safetensors(data, size).tensors;
}

// Reads and parses a file; errors name the path after "safetensors: ".
inline SafetensorsFile parse_safetensors_file(const std::string& path) {
  // A directory or a device opens fine and then reports nonsense sizes: regular files only.
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw Error("safetensors: " + path + ": cannot open the file");
  if (!std::filesystem::is_regular_file(status)) throw Error("safetensors: " + path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("safetensors: " + path + ": cannot open the file");
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (end < 0) throw Error("safetensors: " + path + ": cannot tell the file's size");
  if (static_cast<std::uint64_t>(end) > std::numeric_limits<std::size_t>::max())
    throw Error("safetensors: " + path + ": the file is too large for this machine");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(end));
  in.seekg(0, std::ios::beg);
  if (!bytes.empty() && !in.read(reinterpret_cast<char*>(bytes.data()), end))
    throw Error("safetensors: " + path + ": cannot read the file");
  try {
    return parse_safetensors(bytes.data(), bytes.size());
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string prefix = "safetensors: ";
    throw Error(prefix + path + ": " + (what.compare(0, prefix.size(), prefix) == 0 ? what.substr(prefix.size()) : what));
  }
}

inline Weights read_safetensors(const std::string& path) { return parse_safetensors_file(path).tensors; }

// One tensor a .safetensors file declares: its dtype as the format names it ("F32", "I64", "U8"),
// the size of one element, and its shape.
struct SafetensorsDecl {
  std::string name;
  const char* dtype;
  std::uint64_t item_size;
  std::vector<std::uint64_t> shape;

  std::uint64_t bytes() const noexcept {
    std::uint64_t n = item_size;
    for (std::uint64_t d : shape) n *= d;
    return n;
  }
};

// The start of a .safetensors file holding `tensors` back to back in that order: the 8-byte
// little-endian header length, then the header, with `metadata` (string values) as
// "__metadata__" unless empty, padded with spaces to a multiple of 8 bytes so that the data is
// aligned. The tensors' bytes follow, little-endian, row-major.
inline std::string safetensors_header(const std::vector<SafetensorsDecl>& tensors,
                                      const Json& metadata = Json::object()) {
  std::string header = "{";
  if (!metadata.items().empty()) header += "\"__metadata__\":" + metadata.dump();
  std::uint64_t offset = 0;
  for (const SafetensorsDecl& t : tensors) {
    std::string shape;
    for (std::uint64_t d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += (header.size() > 1 ? "," : "") + Json(t.name).dump() + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" +
              shape + "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes()) + "]}";
    offset += t.bytes();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(static_cast<std::uint64_t>(header.size()) >> (8 * i)));
  return out + header;
}

// The bytes of a .safetensors file holding `names` of `weights` as F32 tensors, in that order,
// no metadata. A name that `weights` does not hold is an error.
inline std::vector<unsigned char> safetensors_bytes(const Weights& weights, const std::vector<std::string>& names) {
  std::vector<SafetensorsDecl> decls;
  for (const std::string& name : names) {
    const auto it = weights.find(name);
    if (it == weights.end()) throw Error("safetensors: no tensor " + quote(name) + " to write");
    decls.push_back({name, "F32", sizeof(float), it->second.shape});
  }
  const std::string header = safetensors_header(decls);
  std::vector<unsigned char> out(header.begin(), header.end());
  for (const std::string& name : names)
    for (float v : weights.at(name).data) {
      std::uint32_t u;
      std::memcpy(&u, &v, sizeof u);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(u >> (8 * i)));
    }
  return out;
}

// Applies model.json's "tensors" map, {"<mtlite parameter name>": "<tensor name in the file>"}:
// the result holds exactly the mapped names. A file tensor no entry names is left out; an entry
// naming a tensor the file does not hold is an error. Two entries may name the same tensor.
inline Weights rename_tensors(const Weights& weights, const Json& tensors_map) {
  namespace st = internal::safetensors;
  if (!tensors_map.is_object())
    throw Error(std::string("tensors: expected an object mapping mtlite names to tensor names, got ") +
                Json::kind_name(tensors_map.kind()));
  Weights out;
  for (const Json::Member& m : tensors_map.items()) {
    if (!m.second.is_string())
      throw Error("tensors: " + quote(m.first) + " maps to " + Json::kind_name(m.second.kind()) +
                  ", expected a tensor name (a string)");
    const auto it = weights.find(m.second.as_string());
    if (it == weights.end())
      throw Error("tensors: " + quote(m.first) + " maps to tensor " + quote(m.second.as_string()) +
                  ", which the weights file does not hold");
    out.emplace(m.first, it->second);
  }
  return out;
}

}  // namespace mtlite
