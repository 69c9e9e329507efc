// Vector softmax of one gate's logits, in place (ref/softmax.hpp defines it). Gates are short
// (often 8 experts), so the vector loops handle whole vectors and a scalar tail handles the rest.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "../ref/softmax.hpp"
#include "xsimd.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

inline void softmax(float* x, std::size_t n) noexcept {
  const std::size_t whole = n - n % kWidth;
  float m = x[0];
  if (whole) {
    vfloat vm = vfloat::load_unaligned(x);
    for (std::size_t i = kWidth; i < whole; i += kWidth) vm = xsimd::max(vm, vfloat::load_unaligned(x + i));
    for (std::size_t j = 0; j < kWidth; ++j) m = vm.get(j) > m ? vm.get(j) : m;
  }
  for (std::size_t i = whole; i < n; ++i) m = x[i] > m ? x[i] : m;
  if (m == std::numeric_limits<float>::infinity()) return ref::softmax_of_infinite(x, n);
  float s = 0.0f;
  if (whole) {
    vfloat vs(0.0f);
    const vfloat vmax(m);
    for (std::size_t i = 0; i < whole; i += kWidth) {
      const vfloat e = xsimd::exp(vfloat::load_unaligned(x + i) - vmax);
      e.store_unaligned(x + i);
      vs += e;
    }
    s = xsimd::hadd(vs);
  }
  for (std::size_t i = whole; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  const float inv = 1.0f / s;
  std::size_t i = 0;
  for (; i < whole; i += kWidth) (vfloat::load_unaligned(x + i) * vfloat(inv)).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= inv;
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
