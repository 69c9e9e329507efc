// Vector embedding bag accumulation (ref/embedding.hpp defines it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "xsimd.hpp"

namespace mtlite::kernels::simd {

inline void add_rows(const float* table, std::size_t dim, const std::uint64_t* rows,
                     std::size_t count, float* out) noexcept {
  std::size_t d = 0;
  for (; d + kWidth <= dim; d += kWidth) {
    vfloat a = vfloat::load_unaligned(out + d);
    for (std::size_t i = 0; i < count; ++i) a += vfloat::load_unaligned(table + rows[i] * dim + d);
    a.store_unaligned(out + d);
  }
  for (; d < dim; ++d) {
    float a = out[d];
    for (std::size_t i = 0; i < count; ++i) a += table[rows[i] * dim + d];
    out[d] = a;
  }
}

}  // namespace mtlite::kernels::simd
