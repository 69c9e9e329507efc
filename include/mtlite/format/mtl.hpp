// The .mtl file's byte layout (FORMAT.md is the full description): the header, the tensor table
// entry, the element types and layouts, and the size each (dtype, layout, shape) implies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace mtlite::format {

inline constexpr std::uint8_t kMagic[8] = {0x89, 'M', 'T', 'L', '\r', '\n', 0x1a, '\n'};
inline constexpr std::uint16_t kMajor = 1;
inline constexpr std::uint16_t kMinor = 0;
inline constexpr std::size_t kDataAlign = 64;

// Limits a reader enforces before it allocates anything.
// Parsed JSON takes up to ~22x its text: 16 MiB of metadata stays under ~400 MB however hostile.
inline constexpr std::uint64_t kMaxMetaBytes = 16ull << 20;
inline constexpr std::uint32_t kMaxTensors = 1u << 16;
inline constexpr std::uint32_t kMaxNameBytes = 1024;
inline constexpr std::uint32_t kMaxRank = 4;

// offset  0: magic        offset 24: meta_offset   offset 48: tensor_count
// offset  8: major        offset 32: meta_bytes    offset 52: flags
// offset 10: minor        offset 40: table_offset  offset 56: checksum (XXH64 of [64, file_bytes))
// offset 12: header_bytes
// offset 16: file_bytes
struct FileHeader {
  std::uint8_t magic[8];
  std::uint16_t major;
  std::uint16_t minor;
  std::uint32_t header_bytes;
  std::uint64_t file_bytes;
  std::uint64_t meta_offset;
  std::uint64_t meta_bytes;
  std::uint64_t table_offset;
  std::uint32_t tensor_count;
  std::uint32_t flags;
  std::uint64_t checksum;
};
static_assert(sizeof(FileHeader) == 64, "FileHeader is 64 bytes");

// offset  0: name_offset  offset 13: layout     offset 16: dims[4]
// offset  8: name_bytes   offset 14: rank       offset 48: data_offset
// offset 12: dtype        offset 15: reserved   offset 56: data_bytes
struct TensorEntry {
  std::uint64_t name_offset;
  std::uint32_t name_bytes;
  std::uint8_t dtype;
  std::uint8_t layout;
  std::uint8_t rank;
  std::uint8_t reserved;
  std::uint64_t dims[4];
  std::uint64_t data_offset;
  std::uint64_t data_bytes;
};
static_assert(sizeof(TensorEntry) == 64, "TensorEntry is 64 bytes");

enum class DType : std::uint8_t { f32 = 1, f16 = 2, i8 = 3, u8 = 4, u4 = 5 };
enum class Layout : std::uint8_t { plain = 0, panels16 = 1, panels16x4 = 2, padded16 = 3, rows_q = 4 };

inline const char* to_string(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::u4: return "u4";
  }
  return "?";
}

inline const char* to_string(Layout l) {
  switch (l) {
    case Layout::plain: return "plain";
    case Layout::panels16: return "panels16";
    case Layout::panels16x4: return "panels16x4";
    case Layout::padded16: return "padded16";
    case Layout::rows_q: return "rows_q";
  }
  return "?";
}

inline bool valid_dtype(std::uint8_t d) { return d >= 1 && d <= 5; }
inline bool valid_layout(std::uint8_t l) { return l <= 4; }

// Bits per element of a dtype.
inline std::uint64_t dtype_bits(DType d) {
  switch (d) {
    case DType::f32: return 32;
    case DType::f16: return 16;
    case DType::i8:
    case DType::u8: return 8;
    case DType::u4: return 4;
  }
  return 0;
}

namespace detail {
// a * b, or nullopt when it overflows 64 bits.
inline std::optional<std::uint64_t> mul(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return std::nullopt;
  return a * b;
}
inline std::optional<std::uint64_t> mul(std::optional<std::uint64_t> a, std::uint64_t b) {
  return a ? mul(*a, b) : std::nullopt;
}
inline std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0); }
}  // namespace detail

// Row stride of a rows_q table: scale and offset (8 bytes) then the codes, rounded up to 8. The
// one definition: the quantizer (kernels/quantize.hpp), the binder and the reader all use it.
inline std::uint64_t rows_q_stride(DType d, std::uint64_t dim) noexcept {
  const std::uint64_t code_bytes = detail::ceil_div(dim * dtype_bits(d), 8);
  return detail::ceil_div(8 + code_bytes, 8) * 8;
}

// The bytes a tensor of this dtype, layout and shape occupies, or nullopt when the combination is
// not allowed or the size overflows 64 bits. dims must be the `rank` used dimensions, each >= 1
// (callers bound them far below 2^32 first).
inline std::optional<std::uint64_t> tensor_bytes(DType d, Layout l, const std::vector<std::uint64_t>& dims) {
  using detail::ceil_div;
  using detail::mul;
  for (std::uint64_t x : dims)
    if (x == 0 || x > (1ull << 40)) return std::nullopt;
  switch (l) {
    case Layout::plain: {
      if (d == DType::u4) return std::nullopt;
      std::optional<std::uint64_t> n = 1;
      for (std::uint64_t x : dims) n = mul(n, x);
      return mul(n, dtype_bits(d) / 8);
    }
    case Layout::panels16:
      if (dims.size() != 2 || (d != DType::f32 && d != DType::f16)) return std::nullopt;
      // f16 panels have an even number of k rows: whole 64-byte lines.
      return mul(mul(mul(ceil_div(dims[0], 16), d == DType::f16 ? ceil_div(dims[1], 2) * 2 : dims[1]), 16),
                 dtype_bits(d) / 8);
    case Layout::panels16x4:
      if (dims.size() != 2 || d != DType::i8) return std::nullopt;
      return mul(mul(ceil_div(dims[0], 16), ceil_div(dims[1], 4)), 64);
    case Layout::padded16:
      if (dims.size() != 1 || (d != DType::f32 && d != DType::f16)) return std::nullopt;
      return mul(ceil_div(dims[0], 16) * 16, dtype_bits(d) / 8);
    case Layout::rows_q:
      if (dims.size() != 2 || (d != DType::u8 && d != DType::u4)) return std::nullopt;
      return mul(dims[0], rows_q_stride(d, dims[1]));
  }
  return std::nullopt;
}

}  // namespace mtlite::format
