// Task balancing (docs/models.md, "Balancing tasks during training"): the arithmetic of each method
// on per-task numbers, separate from where the numbers come from (the trainer).
//
// A task is *active* in a step when it has at least one labelled row of positive weight; an
// inactive task contributes nothing: no gradient, no change to any balancing state.
//
//   fixed        L = sum_k w_k L_k, w_k = Task::loss_weight.
//   uncertainty  Kendall et al. 2018 with s_k = log sigma_k^2 (learned, starts at 0):
//                  binary      exp(-s_k) L_k + s_k
//                  regression  0.5 exp(-s_k) L_k + 0.5 s_k
//                so with f_k = 1 or 0.5: term_k = f_k (exp(-s_k) L_k + s_k),
//                dterm/dL_k = f_k exp(-s_k), dterm/ds_k = f_k (1 - exp(-s_k) L_k).
//                s is updated by the trainer's optimiser with the trainer's learning rate.
//   gradnorm     Chen et al. 2018. With n_k = ||grad_W L_k|| on the last shared layer W,
//                G_k = w_k n_k, Gbar = mean_k G_k, r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)),
//                target_k = Gbar r_k^alpha (a constant), L_grad = sum_k |G_k - target_k|:
//                dL_grad/dw_k = sign(G_k - target_k) n_k. The network's gradient is
//                sum_k w_k grad L_k (w before its update); w is then updated (trainer's optimiser
//                kind, BalancingOptions::lr), clamped at 1e-6 and renormalised to sum to the number
//                of tasks with a loss. L_k(0) is the loss of task k's first active step; means are
//                over the active tasks.
//   metabalance  He et al. 2022, per shared tensor p, task 0 = the first main task:
//                  g_k = d(w_k L_k)/dp  (w_k = loss_weight; 1 by default)
//                  m_k <- beta m_k + (1 - beta) ||g_k||_2      (m starts at 0)
//                  g_k <- g_k (m_0 / (m_k + eps)) r + g_k (1 - r)
//                  p.grad = sum_k g_k
//                Task-specific tensors get the plain sum sum_k w_k dL_k/dp. With r = 0 this is the
//                fixed method exactly.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace mtlite::train {

// MetaBalance for one shared tensor: updates m (one per task) with this step's gradient norms and
// returns the factor of each task's gradient, f_k = (m_main / (m_k + eps)) r + (1 - r), so that
// p.grad = sum_k f_k g_k. Norms are given in double; m is kept in float (it is saved state).
inline std::vector<float> metabalance_factors(const std::vector<double>& norms, std::vector<float>& m,
                                              const std::vector<bool>& active, std::size_t main,
                                              float r, float beta, float eps) {
  const std::size_t T = norms.size();
  for (std::size_t k = 0; k < T; ++k)
    if (active[k]) m[k] = beta * m[k] + (1.0f - beta) * static_cast<float>(norms[k]);
  std::vector<float> f(T, 0.0f);
  for (std::size_t k = 0; k < T; ++k) f[k] = (m[main] / (m[k] + eps)) * r + (1.0f - r);
  return f;
}

// Uncertainty weighting: f_k (1 for binary tasks, 0.5 for regression).
struct Uncertainty {
  static double term(float f, float s, double loss) { return f * (std::exp(-static_cast<double>(s)) * loss + s); }
  static float coefficient(float f, float s) { return f * std::exp(-s); }
  static float grad_s(float f, float s, double loss) {
    return static_cast<float>(f * (1.0 - std::exp(-static_cast<double>(s)) * loss));
  }
};

// GradNorm: the gradient of L_grad with respect to each task weight (0 for inactive tasks).
//   norms[k]    ||grad_W L_k||  (unweighted)
//   ratio[k]    L_k / L_k(0)
inline std::vector<float> gradnorm_weight_grad(const std::vector<float>& w, const std::vector<double>& norms,
                                               const std::vector<double>& ratio,
                                               const std::vector<bool>& active, float alpha) {
  const std::size_t T = w.size();
  std::vector<float> grad(T, 0.0f);
  double g_mean = 0.0, r_mean = 0.0;
  std::size_t n = 0;
  for (std::size_t k = 0; k < T; ++k)
    if (active[k]) {
      g_mean += w[k] * norms[k];
      r_mean += ratio[k];
      ++n;
    }
  if (n == 0 || !(r_mean > 0.0)) return grad;
  g_mean /= static_cast<double>(n);
  r_mean /= static_cast<double>(n);
  for (std::size_t k = 0; k < T; ++k) {
    if (!active[k]) continue;
    const double target = g_mean * std::pow(ratio[k] / r_mean, static_cast<double>(alpha));
    const double diff = w[k] * norms[k] - target;
    grad[k] = static_cast<float>(diff > 0.0 ? norms[k] : diff < 0.0 ? -norms[k] : 0.0);
  }
  return grad;
}

// Clamps the task weights at 1e-6 and scales them to sum to `total`.
inline void gradnorm_renormalise(std::vector<float>& w, const std::vector<bool>& has_loss, float total) {
  double s = 0.0;
  for (std::size_t k = 0; k < w.size(); ++k) {
    if (!has_loss[k]) continue;
    if (!(w[k] >= 1e-6f)) w[k] = 1e-6f;
    s += w[k];
  }
  for (std::size_t k = 0; k < w.size(); ++k)
    if (has_loss[k]) w[k] = static_cast<float>(w[k] * (total / s));
}

}  // namespace mtlite::train
