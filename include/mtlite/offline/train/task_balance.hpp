// Step 4 of a training step: the tasks balanced. balancing.hpp has each method's arithmetic on
// per-task numbers; this is where those numbers come from and where the results go: the
// coefficient of each task loss now, the objective, the per-task gradients combined into the one
// gradient the optimiser gets, and the balancing parameters' own update after the step.
//
// Gradnorm and metabalance need each task's gradient on its own (one backward pass per task);
// the other methods fold their coefficients into one combined loss. The balancing state itself
// lives in TrainState (state.hpp): it is saved with a checkpoint, the scratch here is not.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../core/error.hpp"
#include "../../spec.hpp"
#include "balancing.hpp"
#include "gradients.hpp"
#include "loss.hpp"
#include "math.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "state.hpp"

namespace mtlite::train {

class TaskBalance {
 public:
  // Throws Error when gradnorm has no shared parameter to measure norms on.
  TaskBalance(const Spec& spec, const Program& p, const TrainOptions& o)
      : options_(o), has_loss_(p.has_loss), loss_weight_(p.tasks, 0.0f), factor_(p.tasks, 1.0f) {
    const std::size_t T = p.tasks;
    for (std::size_t k = 0; k < T; ++k) {
      loss_weight_[k] = spec.tasks[k].loss_weight;
      // Uncertainty weighting halves a regression task's term; ESMM's cvr loss is a BCE.
      if (spec.tasks[k].kind == TaskKind::regression && static_cast<int>(k) != p.esmm_cvr) factor_[k] = 0.5f;
      if (p.has_loss[k]) ++num_losses_;
      if (main_task_ < 0 && p.has_loss[k] && spec.tasks[k].role == TaskRole::main) main_task_ = static_cast<int>(k);
    }
    if (main_task_ < 0)
      for (std::size_t k = 0; k < T && main_task_ < 0; ++k)
        if (p.has_loss[k]) main_task_ = static_cast<int>(k);
    if (o.balancing.method == BalanceMethod::gradnorm) {
      bool any = false;
      for (const ParamRange& r : p.tensors) any = any || r.last_shared;
      gradnorm_on_embeddings_ = !any;
      if (!any && !(p.tensors.size() && p.tensors[0].role == ParamInfo::Role::embedding && p.tensors[0].shared))
        throw Error("gradnorm: the network has no parameter shared by two task losses");
    }
  }

  // Whether a step needs one backward pass per task (an affinity measurement needs them too).
  bool per_task(bool affinity_now) const noexcept {
    const BalanceMethod m = options_.balancing.method;
    return m == BalanceMethod::gradnorm || m == BalanceMethod::metabalance || affinity_now;
  }

  // The coefficient of each task loss in the objective (0 for tasks without a loss).
  std::vector<float> coefficients(const BalanceState& s) const {
    std::vector<float> c(has_loss_.size(), 0.0f);
    for (std::size_t k = 0; k < c.size(); ++k) {
      if (!has_loss_[k]) continue;
      switch (options_.balancing.method) {
        case BalanceMethod::fixed:
        case BalanceMethod::metabalance: c[k] = loss_weight_[k]; break;
        case BalanceMethod::uncertainty: c[k] = Uncertainty::coefficient(factor_[k], s.log_var[k]); break;
        case BalanceMethod::gradnorm: c[k] = s.gradnorm_weight[k]; break;
      }
    }
    return c;
  }

  // The objective of task losses L under coefficients c (Trainer::step says which per method).
  double objective(const std::vector<double>& L, const Targets& tg, const std::vector<float>& c,
                   const BalanceState& s) const {
    double obj = 0.0;
    for (std::size_t k = 0; k < has_loss_.size(); ++k) {
      if (!has_loss_[k] || !(tg.denom[k] > 0.0)) continue;
      if (options_.balancing.method == BalanceMethod::uncertainty)
        obj += Uncertainty::term(factor_[k], s.log_var[k], L[k]);
      else
        obj += static_cast<double>(c[k]) * L[k];
    }
    return obj;
  }

  // Per-task passes: the balanced combination of the tasks' gradients. Measures gradnorm's
  // norms for update(); commit = false leaves metabalance's averages as they were.
  Gradient combine(const Program& p, const BatchGradients& grads, const Passes& passes, BalanceState& s,
                   bool commit) {
    const std::size_t T = p.tasks;
    const BalanceMethod method = options_.balancing.method;
    const BalancingOptions& bo = options_.balancing;
    dense_.assign(grads.stride(), 0.0f);
    sparse_.resize(p.tables.size());
    Gradient out{dense_.data(), std::vector<const float*>(p.tables.size(), nullptr)};
    gradnorm_norms_.assign(T, 0.0);
    for (std::size_t ti = 0; ti < p.tensors.size(); ++ti) {
      const ParamRange& t = p.tensors[ti];
      const bool embedding = t.role == ParamInfo::Role::embedding;
      const bool balance = method == BalanceMethod::metabalance && t.shared;
      const bool gn = method == BalanceMethod::gradnorm &&
                      (gradnorm_on_embeddings_ ? embedding && t.shared : t.last_shared);
      std::vector<double> sq(T, 0.0);
      if (balance || gn) sq = squared_norms(p, grads, passes, t, balance);
      if (gn)
        for (std::size_t k = 0; k < T; ++k) gradnorm_norms_[k] += sq[k];
      std::vector<float> f = passes.coef;
      if (balance) {
        std::vector<double> norms(T);
        for (std::size_t k = 0; k < T; ++k) norms[k] = std::sqrt(sq[k]);
        std::vector<float> m = s.metabalance_m[ti];
        const std::vector<float> g = metabalance_factors(norms, m, passes.active,
                                                         static_cast<std::size_t>(main_task_), bo.r, bo.beta, bo.eps);
        if (commit) s.metabalance_m[ti] = m;
        for (std::size_t k = 0; k < T; ++k) f[k] = g[k] * passes.coef[k];
      }
      if (embedding) {
        std::vector<float>& rows = sparse_[t.index];
        rows.assign(grads.touched(t.index).size() * p.tables[t.index].dim, 0.0f);
        for (std::size_t k = 0; k < T; ++k)
          if (passes.active[k] && f[k] != 0.0f)
            math::axpy(rows.size(), f[k], grads.sparse(k, t.index).data(), rows.data());
        out.sparse[t.index] = rows.data();
      } else {
        for_each_run(p, t, [&](std::size_t off, std::size_t len) {
          for (std::size_t k = 0; k < T; ++k)
            if (passes.active[k] && f[k] != 0.0f) math::axpy(len, f[k], grads.dense(k) + off, dense_.data() + off);
        });
      }
    }
    for (double& n : gradnorm_norms_) n = std::sqrt(n);
    return out;
  }

  // Uncertainty's s_k and gradnorm's w_k after a step (the step's gradient used their values
  // before); step_count: the trainer's steps before this one. The other methods learn nothing.
  void update(const Passes& passes, const std::vector<double>& loss, std::uint64_t step_count,
              BalanceState& s) const {
    const std::size_t T = has_loss_.size();
    const BalanceMethod method = options_.balancing.method;
    if (method != BalanceMethod::uncertainty && method != BalanceMethod::gradnorm) return;
    std::vector<float> grad(T, 0.0f);
    std::vector<float>* param = nullptr;
    float lr = options_.lr;
    if (method == BalanceMethod::uncertainty) {
      for (std::size_t k = 0; k < T; ++k)
        if (passes.active[k]) grad[k] = Uncertainty::grad_s(factor_[k], s.log_var[k], loss[k]);
      param = &s.log_var;
    } else {
      std::vector<double> ratio(T, 0.0);
      for (std::size_t k = 0; k < T; ++k) {
        if (!passes.active[k]) continue;
        if (s.gradnorm_has_initial[k] == 0.0f) {
          s.gradnorm_initial_loss[k] = static_cast<float>(loss[k]);
          s.gradnorm_has_initial[k] = 1.0f;
        }
        ratio[k] = s.gradnorm_initial_loss[k] > 0.0f ? loss[k] / s.gradnorm_initial_loss[k] : 1.0;
      }
      grad = gradnorm_weight_grad(s.gradnorm_weight, gradnorm_norms_, ratio, passes.active, options_.balancing.alpha);
      param = &s.gradnorm_weight;
      lr = options_.balancing.lr;
    }
    OptimizerStep o = OptimizerStep::make(options_, lr, step_count + 1, 1.0f);
    o.l2 = 0.0f;
    // Only active tasks move: apply element by element.
    float* s1 = s.optimizer_at(0);
    float* s2 = s.optimizer_at(1);
    for (std::size_t k = 0; k < T; ++k) {
      if (!passes.active[k]) continue;
      math::optimizer_step(o, 1, param->data() + k, grad.data() + k, s1 ? s1 + k : nullptr, s2 ? s2 + k : nullptr);
    }
    if (method == BalanceMethod::gradnorm)
      gradnorm_renormalise(s.gradnorm_weight, has_loss_, static_cast<float>(num_losses_));
  }

 private:
  TrainOptions options_;
  std::vector<bool> has_loss_;    // [task]
  std::vector<float> loss_weight_;  // [task]: Task::loss_weight
  std::vector<float> factor_;     // [task]: uncertainty's f_k
  std::size_t num_losses_ = 0;    // tasks with a tower
  int main_task_ = -1;            // metabalance's task 0
  bool gradnorm_on_embeddings_ = false;  // no dense layer is shared: norms on the shared tables
  // Of the last combine().
  std::vector<float> dense_;                // arena-shaped
  std::vector<std::vector<float>> sparse_;  // [table]
  std::vector<double> gradnorm_norms_;      // n_k

  // ||c_k g_k||^2 of tensor t per active task, with c_k = coef_k when `weighted`, else 1.
  static std::vector<double> squared_norms(const Program& p, const BatchGradients& grads, const Passes& passes,
                                           const ParamRange& t, bool weighted) {
    std::vector<double> sq(p.tasks, 0.0);
    for (std::size_t k = 0; k < p.tasks; ++k) {
      if (!passes.active[k]) continue;
      const double c = weighted ? passes.coef[k] : 1.0;
      double s = 0.0;
      if (t.role == ParamInfo::Role::embedding) {
        for (float v : grads.sparse(k, t.index)) s += static_cast<double>(v) * v;
      } else {
        for_each_run(p, t, [&](std::size_t off, std::size_t len) {
          const float* g = grads.dense(k) + off;
          for (std::size_t j = 0; j < len; ++j) s += static_cast<double>(g[j]) * g[j];
        });
      }
      sq[k] = s * c * c;
    }
    return sq;
  }
};

}  // namespace mtlite::train
