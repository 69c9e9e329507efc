// Element types and tensor layouts: the core types the kernels, the compiler and the .mtl file
// all speak (FORMAT.md gives each layout's bytes; kernels/packed.hpp the kernel view of them),
// and the size each (dtype, layout, shape) implies. The file stores these enums as bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace mtlite {

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
// one definition: the quantizer (offline/convert/quantize.hpp), the binder and the reader all use it.
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

}  // namespace mtlite
