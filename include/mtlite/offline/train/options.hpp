// What a Trainer is told: optimiser, learning rate, regularisation, task balancing, threads.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "../../core/error.hpp"

namespace mtlite::train {

enum class OptimizerKind : std::uint8_t {
  sgd,      // p -= lr * g
  adam,     // PyTorch's Adam: bias-corrected, beta1 0.9, beta2 0.999, eps 1e-8
  adagrad,  // PyTorch's Adagrad: sum += g^2; p -= lr * g / (sqrt(sum) + 1e-10)
};

// How the task losses L_k are combined (docs/models.md, "Balancing tasks during training").
enum class BalanceMethod : std::uint8_t {
  fixed,        // sum_k w_k L_k with w_k = Task::loss_weight
  uncertainty,  // Kendall et al. 2018: learned s_k = log sigma_k^2 (Task::loss_weight unused)
  gradnorm,     // Chen et al. 2018: learned w_k, renormalised to sum to T (loss_weight unused)
  metabalance,  // He et al. 2022: per-tensor magnitude balancing of the shared gradients
};

struct BalancingOptions {
  BalanceMethod method = BalanceMethod::fixed;
  // metabalance: relax factor r (0 <= r <= 1), moving-average beta (0 <= beta < 1), and the eps
  // of m_0 / (m_k + eps).
  float r = 0.7f;
  float beta = 0.9f;
  float eps = 1e-8f;
  // gradnorm: the asymmetry alpha and the learning rate of the task weights (they are updated by
  // the trainer's optimiser kind, with their own state).
  float alpha = 1.5f;
  float lr = 0.025f;
};

struct TrainOptions {
  OptimizerKind optimizer = OptimizerKind::adam;
  float lr = 1e-3f;
  // L2 regularisation: l2 * p is added to the gradient of every dense parameter and of every
  // embedding row seen in the batch (PyTorch's weight_decay, applied by the optimiser after
  // clipping).
  float l2 = 0.0f;
  // Gradient clipping by global norm (PyTorch's clip_grad_norm_): when the norm of all model
  // gradients exceeds clip_norm they are scaled by clip_norm / (norm + 1e-6). 0 = off.
  float clip_norm = 0.0f;
  float adam_beta1 = 0.9f;
  float adam_beta2 = 0.999f;
  float adam_eps = 1e-8f;
  float adagrad_eps = 1e-10f;
  BalancingOptions balancing;
  // Task affinity (TAG): measured on the steps whose 0-based index is a multiple of this; 0 = off.
  std::size_t affinity_every = 0;
  // Worker threads including the caller; 1 runs everything on the calling thread.
  std::size_t threads = 1;
  // Seed of the initial weights (random_weights).
  std::uint64_t seed = 0;

  void validate() const {
    auto finite_nonneg = [](float v, const char* name) {
      if (!std::isfinite(v) || v < 0.0f)
        throw Error(std::string("TrainOptions.") + name + ": must be finite and >= 0");
    };
    if (static_cast<unsigned>(optimizer) > static_cast<unsigned>(OptimizerKind::adagrad))
      throw Error("TrainOptions.optimizer: unknown optimiser");
    if (!std::isfinite(lr) || !(lr > 0.0f)) throw Error("TrainOptions.lr: must be finite and > 0");
    finite_nonneg(l2, "l2");
    finite_nonneg(clip_norm, "clip_norm");
    if (!(adam_beta1 >= 0.0f && adam_beta1 < 1.0f)) throw Error("TrainOptions.adam_beta1: must be in [0, 1)");
    if (!(adam_beta2 >= 0.0f && adam_beta2 < 1.0f)) throw Error("TrainOptions.adam_beta2: must be in [0, 1)");
    if (!std::isfinite(adam_eps) || !(adam_eps > 0.0f)) throw Error("TrainOptions.adam_eps: must be > 0");
    if (!std::isfinite(adagrad_eps) || !(adagrad_eps > 0.0f))
      throw Error("TrainOptions.adagrad_eps: must be > 0");
    if (static_cast<unsigned>(balancing.method) > static_cast<unsigned>(BalanceMethod::metabalance))
      throw Error("TrainOptions.balancing.method: unknown method");
    if (!(balancing.r >= 0.0f && balancing.r <= 1.0f))
      throw Error("TrainOptions.balancing.r: must be in [0, 1]");
    if (!(balancing.beta >= 0.0f && balancing.beta < 1.0f))
      throw Error("TrainOptions.balancing.beta: must be in [0, 1)");
    if (!std::isfinite(balancing.eps) || !(balancing.eps > 0.0f))
      throw Error("TrainOptions.balancing.eps: must be > 0");
    finite_nonneg(balancing.alpha, "balancing.alpha");
    if (!std::isfinite(balancing.lr) || !(balancing.lr > 0.0f))
      throw Error("TrainOptions.balancing.lr: must be finite and > 0");
    if (threads == 0 || threads > 256) throw Error("TrainOptions.threads: must be in 1..256");
  }
};

inline const char* to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::adagrad: return "adagrad";
  }
  return "?";
}

inline const char* to_string(BalanceMethod m) {
  switch (m) {
    case BalanceMethod::fixed: return "fixed";
    case BalanceMethod::uncertainty: return "uncertainty";
    case BalanceMethod::gradnorm: return "gradnorm";
    case BalanceMethod::metabalance: return "metabalance";
  }
  return "?";
}

}  // namespace mtlite::train
