// The optimisers, elementwise over runs of parameters, written after PyTorch 1.13 (torch.optim):
//   g'  = clip_scale * g + l2 * p                       (weight_decay, after clipping)
//   sgd      p -= lr g'
//   adam     m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
//            p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   adagrad  s += g'^2;  p -= lr g' / (sqrt(s) + eps)
// Embedding tables are updated lazily: only the rows a batch touched, their moments too (like
// torch.optim.SparseAdam); Adam's bias correction uses the trainer's global step t. One step's
// loop over a run of parameters is math::optimizer_step (math_kernels.hpp).
#pragma once

#include <cmath>
#include <cstddef>

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
};

}  // namespace mtlite::train
