// Scalar embedding bag accumulation: out[0..dim) += the table rows rows[0..count).
// A categorical feature is a bag of one row; the caller zeroes `out` first and divides by the
// bag size for mean pooling. Bags of any length go through in blocks of row indices.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mtlite::kernels::ref {

inline void add_rows(const float* table, std::size_t dim, const std::uint64_t* rows,
                     std::size_t count, float* out) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    const float* row = table + rows[i] * dim;
    for (std::size_t d = 0; d < dim; ++d) out[d] += row[d];
  }
}

}  // namespace mtlite::kernels::ref
