// Vector activations (ref/activation.hpp defines them).
#pragma once

#include <cstddef>

#include "../ref/activation.hpp"
#include "xsimd.hpp"

namespace mtlite::kernels::simd {
inline namespace MTLITE_TARGET {

MTLITE_ALWAYS_INLINE vfloat activate(Activation a, vfloat v) noexcept {
  switch (a) {
    case Activation::identity: return v;
    case Activation::relu: return xsimd::max(v, vfloat(0.0f));
    case Activation::sigmoid: return vfloat(1.0f) / (vfloat(1.0f) + xsimd::exp(-v));
    case Activation::tanh: return xsimd::tanh(v);
  }
  return v;
}

inline void activation(Activation a, float* x, std::size_t n) noexcept {
  if (a == Activation::identity) return;
  std::size_t i = 0;
  for (; i + kWidth <= n; i += kWidth) activate(a, vfloat::load_unaligned(x + i)).store_unaligned(x + i);
  for (; i < n; ++i) x[i] = ref::activate(a, x[i]);
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::simd
