// The optimisers, elementwise over runs of parameters, written after PyTorch 1.13 (torch.optim):
//   g'  = clip_scale * g + l2 * p                       (weight_decay, after clipping)
//   sgd      p -= lr g'
//   adam     m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
//            p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   adagrad  s += g'^2;  p -= lr g' / (sqrt(s) + eps)
// Embedding tables are updated lazily: only the rows a batch touched, their moments too (like
// torch.optim.SparseAdam); Adam's bias correction uses the trainer's global step t.
#pragma once

#include <cmath>
#include <cstddef>

#include "math.hpp"
#include "options.hpp"

namespace mtlite::train {

// What one step of the optimiser needs besides the arrays.
struct OptimizerStep {
  OptimizerKind kind = OptimizerKind::adam;
  float lr = 0.0f, l2 = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float step_size = 0.0f;  // adam: lr / (1 - beta1^t)
  float bc2_sqrt = 1.0f;   // adam: sqrt(1 - beta2^t)
  float clip_scale = 1.0f;

  // Number of state arrays shaped like the parameters.
  static std::size_t state_count(OptimizerKind k) {
    return k == OptimizerKind::adam ? 2 : k == OptimizerKind::adagrad ? 1 : 0;
  }

  static OptimizerStep make(const TrainOptions& o, float lr, std::uint64_t t, float clip_scale) {
    OptimizerStep s;
    s.kind = o.optimizer;
    s.lr = lr;
    s.l2 = o.l2;
    s.clip_scale = clip_scale;
    if (o.optimizer == OptimizerKind::adam) {
      s.beta1 = o.adam_beta1;
      s.beta2 = o.adam_beta2;
      s.eps = o.adam_eps;
      const double bc1 = 1.0 - std::pow(static_cast<double>(o.adam_beta1), static_cast<double>(t));
      const double bc2 = 1.0 - std::pow(static_cast<double>(o.adam_beta2), static_cast<double>(t));
      s.step_size = static_cast<float>(static_cast<double>(lr) / bc1);
      s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    } else if (o.optimizer == OptimizerKind::adagrad) {
      s.eps = o.adagrad_eps;
    }
    return s;
  }

  // Updates p[0..n) from g[0..n) and the state s1, s2 (as many as state_count says).
  void apply(std::size_t n, float* p, const float* g, float* s1, float* s2) const noexcept {
    std::size_t i = 0;
#if !defined(MTLITE_NO_SIMD)
    using math::vfloat;
    constexpr std::size_t W = math::kPad;
    const vfloat cs(clip_scale), wd(l2);
    switch (kind) {
      case OptimizerKind::sgd: {
        const vfloat lrv(lr);
        for (; i + W <= n; i += W) {
          const vfloat pv = vfloat::load_unaligned(p + i);
          const vfloat gv = xsimd::fma(cs, vfloat::load_unaligned(g + i), wd * pv);
          xsimd::fnma(lrv, gv, pv).store_unaligned(p + i);
        }
        break;
      }
      case OptimizerKind::adam: {
        const vfloat b1(beta1), b2(beta2), c1(1.0f - beta1), c2(1.0f - beta2);
        const vfloat ss(step_size), bc(bc2_sqrt), ep(eps);
        for (; i + W <= n; i += W) {
          const vfloat pv = vfloat::load_unaligned(p + i);
          const vfloat gv = xsimd::fma(cs, vfloat::load_unaligned(g + i), wd * pv);
          const vfloat m = b1 * vfloat::load_unaligned(s1 + i) + c1 * gv;
          const vfloat v = b2 * vfloat::load_unaligned(s2 + i) + c2 * (gv * gv);
          m.store_unaligned(s1 + i);
          v.store_unaligned(s2 + i);
          const vfloat denom = xsimd::sqrt(v) / bc + ep;
          (pv - ss * (m / denom)).store_unaligned(p + i);
        }
        break;
      }
      case OptimizerKind::adagrad: {
        const vfloat lrv(lr), ep(eps);
        for (; i + W <= n; i += W) {
          const vfloat pv = vfloat::load_unaligned(p + i);
          const vfloat gv = xsimd::fma(cs, vfloat::load_unaligned(g + i), wd * pv);
          const vfloat s = vfloat::load_unaligned(s1 + i) + gv * gv;
          s.store_unaligned(s1 + i);
          (pv - lrv * (gv / (xsimd::sqrt(s) + ep))).store_unaligned(p + i);
        }
        break;
      }
    }
#endif
    for (; i < n; ++i) {
      const float gv = clip_scale * g[i] + l2 * p[i];
      switch (kind) {
        case OptimizerKind::sgd:
          p[i] -= lr * gv;
          break;
        case OptimizerKind::adam: {
          const float m = beta1 * s1[i] + (1.0f - beta1) * gv;
          const float v = beta2 * s2[i] + (1.0f - beta2) * (gv * gv);
          s1[i] = m;
          s2[i] = v;
          p[i] -= step_size * (m / (std::sqrt(v) / bc2_sqrt + eps));
          break;
        }
        case OptimizerKind::adagrad: {
          const float s = s1[i] + gv * gv;
          s1[i] = s;
          p[i] -= lr * (gv / (std::sqrt(s) + eps));
          break;
        }
      }
    }
  }
};

}  // namespace mtlite::train
