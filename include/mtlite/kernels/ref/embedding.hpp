// Scalar embedding bag accumulation: out[0..dim) += the table rows rows[0..count).
// A categorical feature is a bag of one row; the caller zeroes `out` first and divides by the
// bag size for mean pooling. Bags of any length go through in blocks of row indices.
//
// Tables in the smaller formats (FORMAT.md) add the same way, one row after another:
//   add_rows_f16  f16 plain [rows][dim]:  out[d] += f16_to_f32(row[d])               (exact widening)
//   add_rows_q8   rows_q, u8 codes:       out[d] += fma(float(code[d]), scale, offset)
//   add_rows_q4   rows_q, u4 codes:       the same, code d in byte d / 2, low nibble first
// where a rows_q row starts at table + rows[i] * stride (stride = rows_q_stride(dtype,
// dim)) with its f32 scale and f32 offset, then the codes. The SIMD versions perform the same
// operations on every element (the same fma, then the same addition, rows in order):
// bit-identical.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../core/config.hpp"
#include "../f16.hpp"

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

inline void add_rows(const float* table, std::size_t dim, const std::uint64_t* rows,
                     std::size_t count, float* out) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    const float* row = table + rows[i] * dim;
    for (std::size_t d = 0; d < dim; ++d) out[d] += row[d];
  }
}

inline void add_rows_f16(const std::uint16_t* table, std::size_t dim, const std::uint64_t* rows,
                         std::size_t count, float* out) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint16_t* row = table + rows[i] * dim;
    for (std::size_t d = 0; d < dim; ++d) out[d] += f16_to_f32(row[d]);
  }
}

// The scale and offset at the start of a rows_q row.
inline void rows_q_header(const std::uint8_t* row, float& scale, float& offset) noexcept {
  std::memcpy(&scale, row, 4);
  std::memcpy(&offset, row + 4, 4);
}

inline void add_rows_q8(const std::uint8_t* table, std::size_t dim, std::size_t stride,
                        const std::uint64_t* rows, std::size_t count, float* out) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* row = table + rows[i] * stride;
    float scale, offset;
    rows_q_header(row, scale, offset);
    for (std::size_t d = 0; d < dim; ++d) out[d] += std::fma(static_cast<float>(row[8 + d]), scale, offset);
  }
}

inline void add_rows_q4(const std::uint8_t* table, std::size_t dim, std::size_t stride,
                        const std::uint64_t* rows, std::size_t count, float* out) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* row = table + rows[i] * stride;
    float scale, offset;
    rows_q_header(row, scale, offset);
    for (std::size_t d = 0; d < dim; ++d) {
      const unsigned code = (row[8 + d / 2] >> (d % 2 * 4)) & 0xfu;
      out[d] += std::fma(static_cast<float>(code), scale, offset);
    }
  }
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
