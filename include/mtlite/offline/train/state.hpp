// What a training step hands to the next besides the weights: the step count, the optimiser's
// per-parameter state, the balancing state and the affinity measurements. Kept apart from the
// per-step scratch because it is exactly what a resumed run needs to continue bit for bit
// (checkpoint.hpp gives each array its tensor name) and what init() resets.
//
// The optimiser's state of the parameters has their training layout (parameters.hpp), so it
// converts to the logical layout with the same functions as the weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "affinity.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "program.hpp"

namespace mtlite::train {

// Adam's m and v, Adagrad's sum, or nothing for SGD: OptimizerStep::state_count arrays.
struct OptimizerState {
  std::vector<std::vector<float>> dense;                // [state][arena]
  std::vector<std::vector<std::vector<float>>> tables;  // [state][table][rows * dim]

  float* dense_at(std::size_t state) noexcept { return dense.size() > state ? dense[state].data() : nullptr; }
  float* table_at(std::size_t state, std::size_t table) noexcept {
    return tables.size() > state ? tables[state][table].data() : nullptr;
  }
};

// Per task, whatever the balancing method learns (balancing.hpp); every method's arrays exist,
// the unused ones stay at their initial values.
struct BalanceState {
  std::vector<float> log_var;                      // uncertainty: s_k = log sigma_k^2
  std::vector<float> gradnorm_weight;              // gradnorm: w_k
  std::vector<float> gradnorm_initial_loss;        // gradnorm: L_k(0)
  std::vector<float> gradnorm_has_initial;         // gradnorm: 1 once L_k(0) is known
  std::vector<std::vector<float>> optimizer;       // [state][task]: of log_var or gradnorm_weight
  std::vector<std::vector<float>> metabalance_m;   // [tensor][task]; empty for unshared tensors

  float* optimizer_at(std::size_t state) noexcept {
    return optimizer.size() > state ? optimizer[state].data() : nullptr;
  }
};

struct TrainState {
  std::uint64_t step = 0;  // steps taken; Adam's bias correction uses step + 1
  OptimizerState optimizer;
  BalanceState balance;
  AffinityMatrix affinity;

  // The state of a fresh run.
  void reset(const Program& p, OptimizerKind kind) {
    const std::size_t T = p.tasks, S = OptimizerStep::state_count(kind);
    step = 0;
    optimizer.dense.assign(S, std::vector<float>(p.arena_size, 0.0f));
    optimizer.tables.assign(S, {});
    for (std::size_t j = 0; j < S; ++j)
      for (const TableInput& t : p.tables)
        optimizer.tables[j].emplace_back(static_cast<std::size_t>(t.rows) * t.dim, 0.0f);
    BalanceState& b = balance;
    b.optimizer.assign(S, std::vector<float>(T, 0.0f));
    b.log_var.assign(T, 0.0f);
    b.gradnorm_weight.assign(T, 0.0f);
    for (std::size_t k = 0; k < T; ++k) b.gradnorm_weight[k] = p.has_loss[k] ? 1.0f : 0.0f;
    b.gradnorm_initial_loss.assign(T, 0.0f);
    b.gradnorm_has_initial.assign(T, 0.0f);
    b.metabalance_m.assign(p.tensors.size(), {});
    for (std::size_t i = 0; i < p.tensors.size(); ++i)
      if (p.tensors[i].shared) b.metabalance_m[i].assign(T, 0.0f);
    affinity = AffinityMatrix(T);
  }
};

}  // namespace mtlite::train
