// Scalar softmax of one gate's logits, in place (n >= 1: a gate has at least one expert);
// subtracting the maximum keeps exp finite, so any finite logits give finite probabilities that
// sum to 1. Logits that overflowed to +inf (huge weights or inputs) share the mass equally, where
// exp(inf - inf) would make every output NaN.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "../../core/config.hpp"

namespace mtlite::kernels::ref {
inline namespace MTLITE_TARGET {

// The softmax of logits whose maximum is +inf: 1/count for each infinite logit, 0 for the rest.
inline void softmax_of_infinite(float* x, std::size_t n) noexcept {
  constexpr float inf = std::numeric_limits<float>::infinity();
  float count = 0.0f;
  for (std::size_t i = 0; i < n; ++i) count += x[i] == inf ? 1.0f : 0.0f;
  for (std::size_t i = 0; i < n; ++i) x[i] = x[i] == inf ? 1.0f / count : 0.0f;
}

inline void softmax(float* x, std::size_t n) noexcept {
  float m = x[0];
  for (std::size_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  if (m == std::numeric_limits<float>::infinity()) return softmax_of_infinite(x, n);
  float s = 0.0f;
  for (std::size_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  const float inv = 1.0f / s;
  for (std::size_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace MTLITE_TARGET
}  // namespace mtlite::kernels::ref
