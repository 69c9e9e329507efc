// The Trainer: one step of minibatch training at a time, on batches the caller hands in.
//
//   mtlite::train::TrainOptions o;                 // options.hpp
//   o.optimizer = OptimizerKind::adam; o.lr = 1e-3f; o.threads = 2;
//   mtlite::train::Trainer trainer(spec, o);       // weights: random_weights(spec, o.seed)
//   for (...) loss = trainer.step(batch, labels, mask, weights);
//   mtlite::Model model(spec, trainer.weights());  // serve, or validate with Sessions
//
// A step
//   1. checks the inputs and builds the loss targets (batch_check.hpp, loss.hpp);
//   2. cuts the rows into contiguous shards (one per thread, or with several threads up to four
//      per thread); each shard is walked in chunks of kChunkRows: gather x, forward, loss,
//      backward (engine.hpp), accumulating dense gradients into the shard's own buffers and the
//      gradient of x into the batch's rows of `demb`. One backward pass per chunk, or one per
//      task when per-task gradients are needed (gradnorm, metabalance, an affinity step):
//      gradients.hpp;
//   3. sums the shards' dense gradients in shard order (by column pieces of the blocks) and
//      scatters `demb` into the touched table rows in batch row order (by groups of tables), so
//      the sparse gradients do not depend on the thread count at all: gradients.hpp;
//   4. balances the tasks (task_balance.hpp), measures affinity if due
//      (affinity_lookahead.hpp), clips (parameter_update.hpp);
//   5. updates the dense parameters by the same column pieces (each piece then refreshes its
//      rows of the W copy) and the touched embedding rows by table groups, lazily
//      (parameter_update.hpp). When nothing needs the whole gradient first (no per-task
//      combination, no clipping), 3 and 5 share one parallel region.
// The work items of each parallel region (shards, pieces, groups: work_items.hpp) are claimed by
// whichever thread is free (ThreadPool::for_each), but each writes only its own output and the
// sums run in item order: results are bit-identical for a given seed, thread count and batch
// sequence, however the OS schedules the threads. What a step hands to the next is TrainState
// (state.hpp); state() names it as a checkpoint does (checkpoint.hpp).
//
// Threads: a ThreadPool of `threads` created once; with threads = 1 no thread is started.
// A Trainer is not itself thread-safe: one call at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/span.hpp"
#include "../../input.hpp"
#include "../../network.hpp"
#include "../../spec.hpp"
#include "../../weights.hpp"
#include "affinity.hpp"
#include "affinity_lookahead.hpp"
#include "batch_check.hpp"
#include "checkpoint.hpp"
#include "diagnostics.hpp"
#include "gradients.hpp"
#include "loss.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "parameter_update.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "scoring.hpp"
#include "state.hpp"
#include "task_balance.hpp"
#include "thread_pool.hpp"
#include "work_items.hpp"

namespace mtlite::train {

// Per-task results of the last step.
struct StepStats {
  double objective = 0.0;            // what step() returned
  std::vector<double> loss;          // L_k (0 for inactive tasks)
  std::vector<double> weight_sum;    // sum_i m_ik s_i; 0 = the task sat the batch out
  std::vector<float> task_weight;    // the coefficient of L_k used (before a gradnorm update)
  double grad_norm = 0.0;            // global norm of the gradient before clipping (computed
                                     // only when TrainOptions::clip_norm > 0, else 0)
};

class Trainer {
 public:
  explicit Trainer(Spec spec, TrainOptions options = {})
      : options_(checked(options)), spec_(validated(std::move(spec))), net_(build_network(spec_)),
        prog_(detail::compile_program(spec_, net_)), params_(prog_),
        pool_(std::make_unique<ThreadPool>(options_.threads)), items_(prog_, pool_->size()),
        grads_(prog_, pool_->size()), balance_(spec_, prog_, options_) {
    if (options_.affinity_every && prog_.tasks > 8)
      throw Error("TrainOptions.affinity_every: task affinity is limited to 8 tasks");
    init(options_.seed);
  }

  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  Trainer(Trainer&&) = default;
  Trainer& operator=(Trainer&&) = default;

  const Spec& spec() const noexcept { return spec_; }
  const TrainOptions& options() const noexcept { return options_; }
  const Network& network() const noexcept { return net_; }
  const Program& program() const noexcept { return prog_; }
  std::uint64_t steps() const noexcept { return state_.step; }
  const StepStats& last_step() const noexcept { return stats_; }

  // Fresh weights random_weights(spec, seed); optimiser and balancing state are reset.
  void init(std::uint64_t seed) {
    from_weights(prog_, random_weights(spec_, seed), params_);
    state_.reset(prog_, options_.optimizer);
    stats_ = StepStats{};
  }
  // Replaces the weights (logical layout; every parameter of the spec, finite); the optimiser
  // and balancing state are kept (load_state() restores them for a resume).
  void set_weights(const Weights& w) { from_weights(prog_, w, params_); }
  Weights weights() const { return to_weights(prog_, params_); }

  // One training step; returns the objective of the batch before the update:
  //   fixed, metabalance  sum_k loss_weight_k L_k;  gradnorm  sum_k w_k L_k;
  //   uncertainty         sum_k f_k (exp(-s_k) L_k + s_k)
  // labels: rows x tasks (spec order, row-major); mask: rows x tasks, empty = all labelled;
  // weights: one per row, empty = all 1. Throws Error on malformed input (nothing changes then).
  double step(const Batch& batch, span<const float> labels, span<const std::uint8_t> mask = {},
              span<const float> weights = {}) {
    const Targets tg = targets(batch, labels, mask, weights);
    if (batch.rows == 0) return 0.0;
    const bool affinity_now = options_.affinity_every && state_.step % options_.affinity_every == 0;
    const std::uint64_t steps_before = state_.step;
    const bool fused = !balance_.per_task(affinity_now) && !(options_.clip_norm > 0.0f);
    compute_gradient(batch, tg, affinity_now, true, fused);
    if (affinity_now)
      measure_affinity(*pool_, prog_, spec_, params_, grads_, batch, tg, passes_, stats_.loss, options_.lr,
                       state_.affinity);
    balance_.update(passes_, stats_.loss, steps_before, state_.balance);
    if (!fused) update();
    return stats_.objective;
  }

  // The objective of a batch at the current weights (no change to anything).
  double loss(const Batch& batch, span<const float> labels, span<const std::uint8_t> mask = {},
              span<const float> weights = {}) {
    const Targets tg = targets(batch, labels, mask, weights);
    const std::vector<double> L = grads_.forward_losses(*pool_, prog_, spec_, params_, batch, tg);
    return balance_.objective(L, tg, balance_.coefficients(state_.balance), state_.balance);
  }

  // Per task L_k of a batch at the current weights (0 for tasks without labels in it).
  std::vector<double> task_losses(const Batch& batch, span<const float> labels,
                                  span<const std::uint8_t> mask = {}, span<const float> weights = {}) {
    const Targets tg = targets(batch, labels, mask, weights);
    return grads_.forward_losses(*pool_, prog_, spec_, params_, batch, tg);
  }

  // The gradient step() would hand the optimiser (balanced, before clipping and L2), in the
  // logical layout; embedding rows the batch does not touch are 0. Changes no state.
  Weights gradients(const Batch& batch, span<const float> labels, span<const std::uint8_t> mask = {},
                    span<const float> weights = {}) {
    const Targets tg = targets(batch, labels, mask, weights);
    if (batch.rows == 0) {
      Parameters zero(prog_);
      return to_weights(prog_, zero);
    }
    compute_gradient(batch, tg, false, false, false);
    return gradient_weights(prog_, final_, grads_);
  }

  // Scores of every served output (Spec::output_name order) per row: row-major rows x outputs.
  // Binary tasks are probabilities, regression tasks values, pCTCVR = pCTR * pCVR.
  std::vector<float> predict(const Batch& batch) {
    check_batch(prog_, spec_, batch);
    return predict_outputs(*pool_, grads_.workspaces(), prog_, spec_, params_, batch);
  }

  // Gate statistics of every gate over the rows of a batch (diagnostics.hpp).
  GateReport gate_report(const Batch& batch) {
    check_batch(prog_, spec_, batch);
    return gate_report_on(grads_.workspaces()[0], prog_, spec_, params_, batch);
  }

  // The coefficient of each task loss in the objective now (fixed/metabalance: loss_weight;
  // uncertainty: f_k exp(-s_k); gradnorm: w_k; 0 for tasks without a loss).
  std::vector<float> task_weights() const { return balance_.coefficients(state_.balance); }
  // Uncertainty weighting's s_k = log sigma_k^2.
  const std::vector<float>& log_variances() const noexcept { return state_.balance.log_var; }
  // MetaBalance's moving averages m_k of one shared tensor (empty if it has none).
  std::vector<float> metabalance_m(const std::string& tensor) const {
    const std::vector<std::vector<float>>& m = state_.balance.metabalance_m;
    for (std::size_t i = 0; i < prog_.tensors.size(); ++i)
      if (prog_.tensors[i].name == tensor && i < m.size()) return m[i];
    return {};
  }

  // Task affinity (TAG): the accumulated measurements, and the best partition of the tasks
  // into g = 1..T groups.
  const AffinityMatrix& affinity() const noexcept { return state_.affinity; }
  std::vector<Grouping> task_groupings() const {
    return best_groupings(state_.affinity.means(), state_.affinity.tasks);
  }

  // Optimiser, balancing and affinity state as named float tensors (all names start with
  // "train."; checkpoint.hpp lists them), in the logical layout. With the weights, enough to
  // resume bit-exactly.
  Weights state() const { return state_tensors(prog_, options_, state_); }
  // Restores state(); names outside "train." are ignored, a missing or foreign "train." tensor
  // or a wrong shape throws (and nothing changes).
  void load_state(const Weights& s) { load_state_tensors(prog_, options_, s, state_); }

 private:
  TrainOptions options_;
  Spec spec_;
  Network net_;
  Program prog_;
  Parameters params_;
  std::unique_ptr<ThreadPool> pool_;
  WorkItems items_;  // of the reduction and update regions
  BatchGradients grads_;
  TaskBalance balance_;
  TrainState state_;
  // Of the last step.
  Passes passes_;
  Gradient final_;  // what the optimiser is handed
  StepStats stats_;

  static TrainOptions checked(const TrainOptions& o) {
    o.validate();
    return o;
  }
  static Spec validated(Spec s) {
    s.validate();
    return s;
  }

  // Phase 1.
  Targets targets(const Batch& batch, span<const float> labels, span<const std::uint8_t> mask,
                  span<const float> weights) const {
    check_batch(prog_, spec_, batch);
    return make_targets(prog_, spec_, batch.rows, labels, mask, weights);
  }

  // Phases 2 to 4 (all but affinity): the batch's gradient, balanced, into final_. commit =
  // false leaves every balancing state as it was. With `fused` the optimiser update runs in the
  // reduction's region, each item updated right after it is reduced: one hand-off fewer.
  void compute_gradient(const Batch& batch, const Targets& tg, bool affinity_now, bool commit, bool fused) {
    passes_.active.assign(prog_.tasks, false);
    for (std::size_t k = 0; k < prog_.tasks; ++k) passes_.active[k] = prog_.has_loss[k] && tg.denom[k] > 0.0;
    passes_.per_task = balance_.per_task(affinity_now);
    passes_.coef = balance_.coefficients(state_.balance);
    grads_.forward_backward(*pool_, prog_, spec_, params_, batch, tg, passes_);
    reduce(batch, fused);
    const std::vector<double> L = grads_.last_losses(prog_, tg);
    stats_.loss = L;
    stats_.weight_sum = tg.denom;
    stats_.task_weight = passes_.coef;
    stats_.objective = balance_.objective(L, tg, passes_.coef, state_.balance);
    final_ = passes_.per_task ? balance_.combine(prog_, grads_, passes_, state_.balance, commit) : grads_.one_pass();
  }

  // Phase 3, and with `fused` phase 5 (no clipping then: the unclipped step).
  void reduce(const Batch& batch, bool fused) {
    OptimizerStep o;
    Gradient g;
    if (fused) {
      g = Gradient{grads_.dense(0), std::vector<const float*>(prog_.tables.size(), nullptr)};
      o = OptimizerStep::make(options_, options_.lr, state_.step + 1, 1.0f);
      stats_.grad_norm = 0.0;
    }
    pool_->for_each(items_.size(), [&](std::size_t i, std::size_t) {
      items_.visit(
          i,
          [&](const ColumnPiece& c) {
            grads_.reduce_piece(prog_, passes_, c);
            if (fused) update_piece(prog_, c, o, g, params_, state_.optimizer);
          },
          [&](const TableGroup& group) {
            grads_.scatter_group(prog_, batch, passes_, group);
            if (!fused) return;
            for (std::size_t j = group.first; j < group.last; ++j) g.sparse[j] = grads_.sparse(0, j).data();
            update_group(prog_, group, o, g, grads_, params_, state_.optimizer);
          });
    });
    if (fused) ++state_.step;
  }

  // Phase 5 on its own: clipping (it needs the whole final gradient's norm), then the update.
  void update() {
    stats_.grad_norm = options_.clip_norm > 0.0f ? gradient_norm(prog_, final_, grads_) : 0.0;
    const OptimizerStep o = clipped_step(options_, stats_.grad_norm, state_.step + 1);
    ++state_.step;
    pool_->for_each(items_.size(), [&](std::size_t i, std::size_t) {
      items_.visit(
          i, [&](const ColumnPiece& c) { update_piece(prog_, c, o, final_, params_, state_.optimizer); },
          [&](const TableGroup& group) { update_group(prog_, group, o, final_, grads_, params_, state_.optimizer); });
    });
  }
};

}  // namespace mtlite::train

namespace mtlite {
using train::Trainer;
using train::TrainOptions;
}  // namespace mtlite
