// Scalar activations: the definitions the SIMD versions are tested against. relu maps NaN to 0
// (the SIMD max does the same); predict never sees NaN, its inputs are checked.
#pragma once

#include <cmath>
#include <cstddef>

#include "../../core/config.hpp"
#include "../../core/activation.hpp"

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

inline float activate(Activation a, float v) noexcept {
  switch (a) {
    case Activation::identity: return v;
    case Activation::relu: return v > 0.0f ? v : 0.0f;
    case Activation::sigmoid: return 1.0f / (1.0f + std::exp(-v));
    case Activation::tanh: return std::tanh(v);
  }
  return v;
}

inline void activation(Activation a, float* x, std::size_t n) noexcept {
  if (a == Activation::identity) return;
  for (std::size_t i = 0; i < n; ++i) x[i] = activate(a, x[i]);
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
