// Scalar softmax of one gate's logits, in place (n >= 1: a gate has at least one expert);
// subtracting the maximum keeps exp finite.
#pragma once

#include <cmath>
#include <cstddef>

namespace mtlite::kernels::ref {

inline void softmax(float* x, std::size_t n) noexcept {
  float m = x[0];
  for (std::size_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  float s = 0.0f;
  for (std::size_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  const float inv = 1.0f / s;
  for (std::size_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace mtlite::kernels::ref
