// The Trainer: one step of minibatch training at a time, on batches the caller hands in.
//
//   mtlite::train::TrainOptions o;                 // options.hpp
//   o.optimizer = OptimizerKind::adam; o.lr = 1e-3f; o.threads = 2;
//   mtlite::train::Trainer trainer(spec, o);       // weights: random_weights(spec, o.seed)
//   for (...) loss = trainer.step(batch, labels, mask, weights);
//   mtlite::Model model(spec, trainer.weights());  // serve, or validate with Sessions
//
// A step
//   1. checks the inputs and builds the loss targets (loss.hpp);
//   2. cuts the rows into contiguous shards (one per thread, or with several threads up to four
//      per thread); each shard is walked in chunks of kChunkRows: gather x, forward, loss,
//      backward (engine.hpp), accumulating dense gradients into the shard's own buffers and the
//      gradient of x into the batch's rows of `demb`. One backward pass per chunk, or one per
//      task when per-task gradients are needed (gradnorm, metabalance, an affinity step);
//   3. sums the shards' dense gradients in shard order (by column pieces of the blocks) and
//      scatters `demb` into the touched table rows in batch row order (by groups of tables), so
//      the sparse gradients do not depend on the thread count at all;
//   4. balances the tasks (balancing.hpp), measures affinity if due (affinity.hpp), clips;
//   5. updates the dense parameters by the same column pieces (each piece then refreshes its
//      rows of the W copy) and the touched embedding rows by table groups, lazily
//      (optimizer.hpp). When nothing needs the whole gradient first (no per-task combination,
//      no clipping), 3 and 5 share one parallel region.
// The work items of each parallel region (shards, pieces, groups) are claimed by whichever
// thread is free (ThreadPool::for_each), but each writes only its own output and the sums run in
// item order: results are bit-identical for a given seed, thread count and batch sequence,
// however the OS schedules the threads.
//
// Threads: a ThreadPool of `threads` created once; with threads = 1 no thread is started.
// A Trainer is not itself thread-safe: one call at a time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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
#include "balancing.hpp"
#include "diagnostics.hpp"
#include "engine.hpp"
#include "loss.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "thread_pool.hpp"

namespace mtlite::train {

// Rows one thread pushes through the network at a time: a chunk's activations stay in L2.
inline constexpr std::size_t kChunkRows = 128;

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
  struct Piece {
    std::size_t block, o0, o1;
  };
  struct Group {
    std::size_t first, last;  // tables [first, last)
  };

 public:
  explicit Trainer(Spec spec, TrainOptions options = {})
      : spec_(std::move(spec)), options_(checked(options)),
        pool_(std::make_unique<ThreadPool>(options_.threads)) {
    spec_.validate();
    net_ = build_network(spec_);
    prog_ = detail::compile_program(spec_, net_);
    params_.resize(prog_);
    const std::size_t T = prog_.tasks, threads = pool_->size();
    stride_ = prog_.arena_size + math::kPad;
    ws_.reserve(threads);
    for (std::size_t t = 0; t < threads; ++t) ws_.emplace_back(prog_, kChunkRows);
    seeds_.assign(threads, std::vector<float>((T + 1) * kChunkRows, 0.0f));
    // Four pieces per thread and block (at least a vector wide), two table groups per thread.
    for (std::size_t b = 0; b < prog_.blocks.size(); ++b) {
      const std::size_t out = prog_.blocks[b].out;
      const std::size_t n = threads == 1 ? 1 : std::max<std::size_t>(1, std::min(4 * threads, out / math::kPad));
      for (std::size_t j = 0; j < n; ++j) pieces_.push_back({b, out * j / n, out * (j + 1) / n});
    }
    const std::size_t tables = prog_.tables.size();
    const std::size_t g = threads == 1 ? 1 : std::min(tables, 2 * threads);
    for (std::size_t j = 0; j < g && tables; ++j) groups_.push_back({tables * j / g, tables * (j + 1) / g});
    lookups_.rows.resize(prog_.tables.size());
    marker_.resize(prog_.tables.size());
    uniq_.resize(prog_.tables.size());
    for (std::size_t t = 0; t < prog_.tables.size(); ++t)
      marker_[t].assign(static_cast<std::size_t>(prog_.tables[t].rows), kNone);
    for (std::size_t k = 0; k < T; ++k) {
      if (prog_.has_loss[k]) ++num_losses_;
      if (main_task_ < 0 && prog_.has_loss[k] && spec_.tasks[k].role == TaskRole::main)
        main_task_ = static_cast<int>(k);
    }
    if (main_task_ < 0)
      for (std::size_t k = 0; k < T && main_task_ < 0; ++k)
        if (prog_.has_loss[k]) main_task_ = static_cast<int>(k);
    if (options_.balancing.method == BalanceMethod::gradnorm) {
      bool any = false;
      for (const ParamRange& r : prog_.tensors) any = any || r.last_shared;
      gradnorm_on_embeddings_ = !any;
      if (!any && !(prog_.tensors.size() && prog_.tensors[0].role == ParamInfo::Role::embedding &&
                    prog_.tensors[0].shared))
        throw Error("gradnorm: the network has no parameter shared by two task losses");
    }
    if (options_.affinity_every && T > 8)
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
  std::uint64_t steps() const noexcept { return step_; }
  const StepStats& last_step() const noexcept { return stats_; }

  // Fresh weights random_weights(spec, seed); optimiser and balancing state are reset.
  void init(std::uint64_t seed) {
    from_weights(prog_, random_weights(spec_, seed), params_);
    reset_state();
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
    check_batch(batch);
    Targets tg = make_targets(prog_, spec_, batch.rows, labels, mask, weights);
    if (batch.rows == 0) return 0.0;
    const bool affinity_now = options_.affinity_every && step_ % options_.affinity_every == 0;
    const std::uint64_t t = step_;
    const bool updated = compute(batch, tg, affinity_now, true, true);
    if (affinity_now) measure_affinity(batch, tg);
    update_balancer(t);
    if (!updated) apply_update();
    return stats_.objective;
  }

  // The objective of a batch at the current weights (no change to anything).
  double loss(const Batch& batch, span<const float> labels, span<const std::uint8_t> mask = {},
              span<const float> weights = {}) {
    check_batch(batch);
    const Targets tg = make_targets(prog_, spec_, batch.rows, labels, mask, weights);
    const std::vector<double> L = forward_losses(batch, tg);
    return objective(L, tg, coefficients());
  }

  // Per task L_k of a batch at the current weights (0 for tasks without labels in it).
  std::vector<double> task_losses(const Batch& batch, span<const float> labels,
                                  span<const std::uint8_t> mask = {}, span<const float> weights = {}) {
    check_batch(batch);
    const Targets tg = make_targets(prog_, spec_, batch.rows, labels, mask, weights);
    return forward_losses(batch, tg);
  }

  // The gradient step() would hand the optimiser (balanced, before clipping and L2), in the
  // logical layout; embedding rows the batch does not touch are 0. Changes no state.
  Weights gradients(const Batch& batch, span<const float> labels, span<const std::uint8_t> mask = {},
                    span<const float> weights = {}) {
    check_batch(batch);
    const Targets tg = make_targets(prog_, spec_, batch.rows, labels, mask, weights);
    Weights out;
    if (batch.rows == 0) {
      Parameters zero(prog_);
      return to_weights(prog_, zero);
    }
    compute(batch, tg, false, false);
    for (const ParamRange& t : prog_.tensors) {
      if (t.role != ParamInfo::Role::embedding) {
        out.emplace(t.name, tensor_from(prog_, t, final_grad_, nullptr));
        continue;
      }
      Tensor g;
      g.shape = t.shape;
      g.data.assign(g.numel(), 0.0f);
      const std::size_t dim = prog_.tables[t.index].dim;
      const std::vector<std::uint32_t>& u = uniq_[t.index];
      for (std::size_t s = 0; s < u.size(); ++s)
        std::memcpy(g.data.data() + static_cast<std::size_t>(u[s]) * dim, final_sparse_[t.index] + s * dim,
                    dim * sizeof(float));
      out.emplace(t.name, std::move(g));
    }
    return out;
  }

  // Scores of every served output (Spec::output_name order) per row: row-major rows x outputs.
  // Binary tasks are probabilities, regression tasks values, pCTCVR = pCTR * pCVR.
  std::vector<float> predict(const Batch& batch) {
    check_batch(batch);
    const std::size_t O = prog_.output_task.size();
    std::vector<float> out(batch.rows * O);
    const std::size_t S = shard_count(batch.rows);
    pool_->for_each(S, [&](std::size_t s, std::size_t t) {
      Workspace& ws = ws_[t];
      const auto [begin, end] = shard(batch.rows, s, S);
      for (std::size_t r0 = begin; r0 < end; r0 += ws.chunk) {
        const std::size_t n = std::min(ws.chunk, end - r0);
        gather(prog_, spec_, params_, batch, r0, n, ws.a(0), ws.ld[0], nullptr);
        forward(prog_, params_, ws, n);
        for (std::size_t o = 0; o < O; ++o) {
          const int k = prog_.output_task[o];
          for (std::size_t r = 0; r < n; ++r) {
            float v;
            if (k >= 0) {
              const float z = logit(ws, static_cast<std::size_t>(k), r);
              v = spec_.tasks[static_cast<std::size_t>(k)].kind == TaskKind::binary ? sigmoid(z) : z;
            } else {
              v = sigmoid(logit(ws, static_cast<std::size_t>(prog_.esmm_ctr), r)) *
                  sigmoid(logit(ws, static_cast<std::size_t>(prog_.esmm_cvr), r));
            }
            out[(r0 + r) * O + o] = v;
          }
        }
      }
    });
    return out;
  }

  // Gate statistics of every gate over the rows of a batch (diagnostics.hpp).
  GateReport gate_report(const Batch& batch) {
    check_batch(batch);
    std::vector<std::vector<float>> g(prog_.gates.size());
    Workspace& ws = ws_[0];
    for (std::size_t r0 = 0; r0 < batch.rows; r0 += ws.chunk) {
      const std::size_t n = std::min(ws.chunk, batch.rows - r0);
      gather(prog_, spec_, params_, batch, r0, n, ws.a(0), ws.ld[0], nullptr);
      forward(prog_, params_, ws, n);
      for (std::size_t i = 0; i < prog_.gates.size(); ++i) {
        const View& v = prog_.gates[i].view;
        for (std::size_t r = 0; r < n; ++r) {
          const float* row = ws.a(v.buffer) + r * ws.ld[v.buffer] + v.col;
          g[i].insert(g[i].end(), row, row + v.width);
        }
      }
    }
    std::vector<GateStats> stats;
    for (std::size_t i = 0; i < prog_.gates.size(); ++i)
      stats.push_back(gate_stats(prog_.gates[i].name, prog_.gates[i].experts, g[i], batch.rows));
    return train::gate_report(std::move(stats));
  }

  // The coefficient of each task loss in the objective now (fixed/metabalance: loss_weight;
  // uncertainty: f_k exp(-s_k); gradnorm: w_k; 0 for tasks without a loss).
  std::vector<float> task_weights() const { return coefficients(); }
  // Uncertainty weighting's s_k = log sigma_k^2.
  const std::vector<float>& log_variances() const noexcept { return log_var_; }
  // MetaBalance's moving averages m_k of one shared tensor (empty if it has none).
  std::vector<float> metabalance_m(const std::string& tensor) const {
    for (std::size_t i = 0; i < prog_.tensors.size(); ++i)
      if (prog_.tensors[i].name == tensor && i < mb_m_.size()) return mb_m_[i];
    return {};
  }

  // Task affinity (TAG): the accumulated measurements, and the best partition of the tasks
  // into g = 1..T groups.
  const AffinityMatrix& affinity() const noexcept { return affinity_; }
  std::vector<Grouping> task_groupings() const {
    return best_groupings(affinity_.means(), affinity_.tasks);
  }

  // Optimiser, balancing and affinity state as named float tensors (all names start with
  // "train."), in the logical layout. With the weights, enough to resume bit-exactly:
  //   train.step                              [2]  step count = [0] + 2^24 [1]
  //   train.adam.m.<param>, train.adam.v.<param>   (adam)  train.adagrad.sum.<param>  (adagrad)
  //   train.uncertainty.log_var [T] and its optimiser state train.uncertainty.<adam.m|...>
  //   train.gradnorm.weight, .initial_loss, .has_initial [T] and train.gradnorm.<adam.m|...>
  //   train.metabalance.m.<shared param> [T]
  //   train.affinity.sum, train.affinity.count [T, T]
  Weights state() const {
    Weights s;
    const std::size_t T = prog_.tasks;
    s["train.step"] = Tensor{{2}, {static_cast<float>(step_ & 0xFFFFFFu), static_cast<float>(step_ >> 24)}};
    const std::vector<std::string> names = state_names();
    for (std::size_t j = 0; j < names.size(); ++j)
      for (const ParamRange& t : prog_.tensors)
        s["train." + names[j] + "." + t.name] = tensor_from(prog_, t, opt_[j].data(), &opt_tables_[j]);
    auto vec = [&](const std::string& name, const std::vector<float>& v) {
      s[name] = Tensor{{static_cast<std::uint64_t>(v.size())}, v};
    };
    if (options_.balancing.method == BalanceMethod::uncertainty) {
      vec("train.uncertainty.log_var", log_var_);
      for (std::size_t j = 0; j < names.size(); ++j) vec("train.uncertainty." + names[j], bal_opt_[j]);
    }
    if (options_.balancing.method == BalanceMethod::gradnorm) {
      vec("train.gradnorm.weight", gn_weight_);
      vec("train.gradnorm.initial_loss", gn_initial_);
      vec("train.gradnorm.has_initial", gn_has_initial_);
      for (std::size_t j = 0; j < names.size(); ++j) vec("train.gradnorm." + names[j], bal_opt_[j]);
    }
    if (options_.balancing.method == BalanceMethod::metabalance)
      for (std::size_t i = 0; i < prog_.tensors.size(); ++i)
        if (prog_.tensors[i].shared) vec("train.metabalance.m." + prog_.tensors[i].name, mb_m_[i]);
    const std::uint64_t t64 = T;
    s["train.affinity.sum"] = Tensor{{t64, t64}, affinity_.sum};
    s["train.affinity.count"] = Tensor{{t64, t64}, affinity_.count};
    return s;
  }

  // Restores state(); names outside "train." are ignored, a missing or foreign "train." tensor
  // or a wrong shape throws (and nothing changes).
  void load_state(const Weights& s) {
    const Weights mine = state();
    for (const auto& [name, t] : mine) {
      const auto it = s.find(name);
      if (it == s.end()) throw Error("state: missing tensor '" + name + "'");
      if (it->second.shape != t.shape || it->second.data.size() != t.data.size())
        throw Error("state: tensor '" + name + "' has shape " + shape_string(it->second.shape) +
                    "; expected " + shape_string(t.shape));
      for (float v : it->second.data)
        if (!std::isfinite(v)) throw Error("state: tensor '" + name + "' has a value that is not finite");
    }
    for (const auto& [name, t] : s)
      if (name.rfind("train.", 0) == 0 && !mine.count(name))
        throw Error("state: tensor '" + name + "' is not part of this trainer's state (optimizer " +
                    to_string(options_.optimizer) + ", balancing " + to_string(options_.balancing.method) + ")");
    const std::vector<float>& st = s.at("train.step").data;
    for (float v : st)
      if (!(v >= 0.0f && v < 16777216.0f && v == std::floor(v)))
        throw Error("state: tensor 'train.step' must hold two integers in [0, 2^24)");
    step_ = static_cast<std::uint64_t>(st[0]) + (static_cast<std::uint64_t>(st[1]) << 24);
    const std::vector<std::string> names = state_names();
    for (std::size_t j = 0; j < names.size(); ++j)
      for (const ParamRange& t : prog_.tensors)
        tensor_into(prog_, t, s.at("train." + names[j] + "." + t.name), opt_[j].data(), &opt_tables_[j]);
    if (options_.balancing.method == BalanceMethod::uncertainty) {
      log_var_ = s.at("train.uncertainty.log_var").data;
      for (std::size_t j = 0; j < names.size(); ++j) bal_opt_[j] = s.at("train.uncertainty." + names[j]).data;
    }
    if (options_.balancing.method == BalanceMethod::gradnorm) {
      gn_weight_ = s.at("train.gradnorm.weight").data;
      gn_initial_ = s.at("train.gradnorm.initial_loss").data;
      gn_has_initial_ = s.at("train.gradnorm.has_initial").data;
      for (std::size_t j = 0; j < names.size(); ++j) bal_opt_[j] = s.at("train.gradnorm." + names[j]).data;
    }
    if (options_.balancing.method == BalanceMethod::metabalance)
      for (std::size_t i = 0; i < prog_.tensors.size(); ++i)
        if (prog_.tensors[i].shared) mb_m_[i] = s.at("train.metabalance.m." + prog_.tensors[i].name).data;
    affinity_.sum = s.at("train.affinity.sum").data;
    affinity_.count = s.at("train.affinity.count").data;
  }

 private:
  static constexpr std::uint32_t kNone = 0xFFFFFFFFu;

  static TrainOptions checked(const TrainOptions& o) {
    o.validate();
    return o;
  }

  Spec spec_;
  TrainOptions options_;
  Network net_;
  Program prog_;
  Parameters params_;
  std::unique_ptr<ThreadPool> pool_;
  std::size_t stride_ = 0;      // floats per pass of a dense gradient buffer
  std::size_t num_losses_ = 0;  // tasks with a tower
  int main_task_ = -1;          // metabalance's task 0
  bool gradnorm_on_embeddings_ = false;

  // Work items of the reduction and update regions (fixed at construction).
  std::vector<Piece> pieces_;  // column ranges of the blocks
  std::vector<Group> groups_;  // ranges of neighbouring tables

  // Per thread.
  std::vector<Workspace> ws_;
  std::vector<std::vector<float>> seeds_;  // [(T + 1) * chunk]
  // Per shard.
  std::vector<std::vector<float>> dgrad_;      // [passes * stride]
  std::vector<std::vector<double>> loss_sum_;  // [T]
  std::size_t shards_ = 1;                     // of the last compute()

  // Per step.
  std::size_t passes_ = 1;
  bool per_task_ = false;
  std::vector<bool> active_;
  std::vector<float> coef_;
  LookupRows lookups_;
  std::vector<std::vector<float>> demb_;                 // [pass][rows * demb_ld]
  std::vector<std::vector<std::uint32_t>> marker_;       // [table][row]: slot in uniq_, or kNone
  std::vector<std::vector<std::uint32_t>> uniq_;         // [table]: rows the batch touched
  std::vector<std::vector<std::vector<float>>> sgrad_;   // [pass][table][slot * dim]
  std::vector<float> combined_;                          // arena-shaped, per-task mode
  std::vector<std::vector<float>> combined_sparse_;      // [table], per-task mode
  const float* final_grad_ = nullptr;                    // arena-shaped
  std::vector<float*> final_sparse_;                     // [table]
  std::vector<double> gn_norms_;                         // gradnorm: n_k of this step
  StepStats stats_;

  // State.
  std::uint64_t step_ = 0;
  std::vector<std::vector<float>> opt_;                       // [state][arena]
  std::vector<std::vector<std::vector<float>>> opt_tables_;  // [state][table]
  std::vector<float> log_var_, gn_weight_, gn_initial_, gn_has_initial_;
  std::vector<std::vector<float>> bal_opt_;                   // [state][T]
  std::vector<std::vector<float>> mb_m_;                      // [tensor][T] (shared tensors)
  AffinityMatrix affinity_;

  // ---- helpers ------------------------------------------------------------------------------

  // Rows of a batch are cut into shards, the work items of the forward/backward region, each
  // with its own gradient buffers (reduced in shard order). One thread: one shard; more: up to
  // four per thread, of at least 64 rows, so that a thread held back by the OS is covered by the
  // others. The count depends on the rows and the thread count only.
  std::size_t shard_count(std::size_t rows) const {
    const std::size_t P = pool_->size();
    if (P == 1) return 1;
    const std::size_t by_rows = (rows + 63) / 64;
    return std::max<std::size_t>(1, std::min(4 * P, by_rows));
  }
  static std::pair<std::size_t, std::size_t> shard(std::size_t n, std::size_t s, std::size_t S) {
    return {n * s / S, n * (s + 1) / S};
  }

  static float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }
  float logit(const Workspace& ws, std::size_t k, std::size_t r) const {
    const View& h = prog_.heads[k];
    return ws.a(h.buffer)[r * ws.ld[h.buffer] + h.col];
  }

  std::vector<std::string> state_names() const {
    switch (options_.optimizer) {
      case OptimizerKind::sgd: return {};
      case OptimizerKind::adam: return {"adam.m", "adam.v"};
      case OptimizerKind::adagrad: return {"adagrad.sum"};
    }
    return {};
  }

  void reset_state() {
    const std::size_t T = prog_.tasks, S = OptimizerStep::state_count(options_.optimizer);
    step_ = 0;
    opt_.assign(S, std::vector<float>(prog_.arena_size, 0.0f));
    opt_tables_.assign(S, {});
    for (std::size_t j = 0; j < S; ++j)
      for (const TableInput& t : prog_.tables)
        opt_tables_[j].emplace_back(static_cast<std::size_t>(t.rows) * t.dim, 0.0f);
    bal_opt_.assign(S, std::vector<float>(T, 0.0f));
    log_var_.assign(T, 0.0f);
    gn_weight_.assign(T, 0.0f);
    for (std::size_t k = 0; k < T; ++k) gn_weight_[k] = prog_.has_loss[k] ? 1.0f : 0.0f;
    gn_initial_.assign(T, 0.0f);
    gn_has_initial_.assign(T, 0.0f);
    mb_m_.assign(prog_.tensors.size(), {});
    for (std::size_t i = 0; i < prog_.tensors.size(); ++i)
      if (prog_.tensors[i].shared) mb_m_[i].assign(T, 0.0f);
    affinity_ = AffinityMatrix(T);
    stats_ = StepStats{};
  }

  std::vector<float> coefficients() const {
    const std::size_t T = prog_.tasks;
    std::vector<float> c(T, 0.0f);
    for (std::size_t k = 0; k < T; ++k) {
      if (!prog_.has_loss[k]) continue;
      switch (options_.balancing.method) {
        case BalanceMethod::fixed:
        case BalanceMethod::metabalance: c[k] = spec_.tasks[k].loss_weight; break;
        case BalanceMethod::uncertainty: c[k] = Uncertainty::coefficient(uncertainty_factor(k), log_var_[k]); break;
        case BalanceMethod::gradnorm: c[k] = gn_weight_[k]; break;
      }
    }
    return c;
  }

  float uncertainty_factor(std::size_t k) const {
    return spec_.tasks[k].kind == TaskKind::regression && static_cast<int>(k) != prog_.esmm_cvr ? 0.5f : 1.0f;
  }

  double objective(const std::vector<double>& L, const Targets& tg, const std::vector<float>& c) const {
    double obj = 0.0;
    for (std::size_t k = 0; k < prog_.tasks; ++k) {
      if (!prog_.has_loss[k] || !(tg.denom[k] > 0.0)) continue;
      if (options_.balancing.method == BalanceMethod::uncertainty)
        obj += Uncertainty::term(uncertainty_factor(k), log_var_[k], L[k]);
      else
        obj += static_cast<double>(c[k]) * L[k];
    }
    return obj;
  }

  void check_batch(const Batch& b) const {
    const std::size_t n_dense = prog_.dense.size();
    if (b.dense.size() != b.rows * n_dense)
      throw Error(internal::printf_string("dense: got %zu values, expected %zu rows x %zu dense features = %zu",
                                   b.dense.size(), b.rows, n_dense, b.rows * n_dense));
    if (b.ids.size() != b.rows * prog_.n_ids)
      throw Error(internal::printf_string("ids: got %zu values, expected %zu rows x %zu categorical features = %zu",
                                   b.ids.size(), b.rows, prog_.n_ids, b.rows * prog_.n_ids));
    if (b.bags.size() != prog_.n_bags)
      throw Error(internal::printf_string("bags: got %zu, expected one per multi-hot feature (%zu)", b.bags.size(),
                                   prog_.n_bags));
    for (const TableInput& t : prog_.tables) {
      if (!t.bag) continue;
      const Bag& bag = b.bags[t.slot];
      const char* name = spec_.features[t.feature].name.c_str();
      if (bag.offsets.size() != b.rows + 1)
        throw Error(internal::printf_string("bag '%s': got %zu offsets, expected rows + 1 = %zu", name,
                                     bag.offsets.size(), b.rows + 1));
      for (std::size_t r = 0; r < b.rows; ++r)
        if (bag.offsets[r] > bag.offsets[r + 1])
          throw Error(internal::printf_string("bag '%s': offsets decrease at row %zu", name, r));
      if (bag.offsets[b.rows] > bag.ids.size())
        throw Error(internal::printf_string("bag '%s': offsets reach %u but there are %zu ids", name,
                                     static_cast<unsigned>(bag.offsets[b.rows]), bag.ids.size()));
    }
    for (const DenseInfo& d : prog_.dense)
      for (std::size_t r = 0; r < b.rows; ++r)
        if (!std::isfinite(b.dense[r * n_dense + d.slot]))
          throw Error(internal::printf_string("dense feature '%s' is not finite at row %zu",
                                       spec_.features[d.feature].name.c_str(), r));
  }

  // Forward only: L_k per task over the batch.
  std::vector<double> forward_losses(const Batch& batch, const Targets& tg) {
    const std::size_t T = prog_.tasks, S = shard_count(batch.rows);
    if (loss_sum_.size() < S) loss_sum_.resize(S, std::vector<double>(T, 0.0));
    pool_->for_each(S, [&](std::size_t s, std::size_t t) {
      Workspace& ws = ws_[t];
      std::vector<double>& ls = loss_sum_[s];
      std::fill(ls.begin(), ls.end(), 0.0);
      const auto [begin, end] = shard(batch.rows, s, S);
      for (std::size_t r0 = begin; r0 < end; r0 += ws.chunk) {
        const std::size_t n = std::min(ws.chunk, end - r0);
        gather(prog_, spec_, params_, batch, r0, n, ws.a(0), ws.ld[0], nullptr);
        forward(prog_, params_, ws, n);
        chunk_loss(prog_, spec_, tg, ws, r0, n, ls.data(), nullptr);
      }
    });
    return task_means(tg, S);
  }

  // L_k from the shards' loss sums (in shard order).
  std::vector<double> task_means(const Targets& tg, std::size_t S) const {
    std::vector<double> L(prog_.tasks, 0.0);
    for (std::size_t k = 0; k < prog_.tasks; ++k) {
      double sum = 0.0;
      for (std::size_t s = 0; s < S; ++s) sum += loss_sum_[s][k];
      L[k] = tg.denom[k] > 0.0 ? sum / tg.denom[k] : 0.0;
    }
    return L;
  }

  // Steps 2-4 of a training step: gradients of the batch, balanced, into final_grad_ and
  // final_sparse_. commit = false leaves every balancing state as it was. With `update` (only
  // when nothing needs the whole gradient first: no per-task combination, no clipping) the
  // optimiser step runs in the same parallel region as the reduction, each thread on the columns
  // and tables it has just reduced: one hand-off fewer per step.
  // Returns whether the update was done.
  bool compute(const Batch& batch, const Targets& tg, bool affinity_now, bool commit, bool update = false) {
    const std::size_t T = prog_.tasks, rows = batch.rows;
    const BalanceMethod method = options_.balancing.method;
    active_.assign(T, false);
    for (std::size_t k = 0; k < T; ++k) active_[k] = prog_.has_loss[k] && tg.denom[k] > 0.0;
    per_task_ = method == BalanceMethod::gradnorm || method == BalanceMethod::metabalance || affinity_now;
    passes_ = per_task_ ? T : 1;
    coef_ = coefficients();

    for (std::size_t t = 0; t < prog_.tables.size(); ++t) {
      const Bag* bag = prog_.tables[t].bag ? &batch.bags[prog_.tables[t].slot] : nullptr;
      lookups_.rows[t].resize(bag ? bag->offsets[rows] : rows);
    }
    demb_.resize(passes_);
    for (auto& d : demb_) d.resize(rows * prog_.demb_ld + math::kPad);

    // 2. Forward and backward, shard by shard.
    const std::size_t S = shard_count(rows);
    shards_ = S;
    if (dgrad_.size() < S) dgrad_.resize(S);
    if (loss_sum_.size() < S) loss_sum_.resize(S, std::vector<double>(T, 0.0));
    pool_->for_each(S, [&](std::size_t s, std::size_t t) {
      Workspace& ws = ws_[t];
      std::vector<float>& dg = dgrad_[s];
      if (dg.size() < passes_ * stride_) dg.resize(passes_ * stride_);
      std::fill(dg.begin(), dg.begin() + static_cast<std::ptrdiff_t>(passes_ * stride_), 0.0f);
      std::vector<double>& ls = loss_sum_[s];
      std::fill(ls.begin(), ls.end(), 0.0);
      const auto [begin, end] = shard(rows, s, S);
      for (std::size_t p = 0; p < passes_; ++p)
        std::fill(demb_[p].begin() + static_cast<std::ptrdiff_t>(begin * prog_.demb_ld),
                  demb_[p].begin() + static_cast<std::ptrdiff_t>(end * prog_.demb_ld), 0.0f);
      float* seeds = seeds_[t].data();
      for (std::size_t r0 = begin; r0 < end; r0 += ws.chunk) {
        const std::size_t n = std::min(ws.chunk, end - r0);
        gather(prog_, spec_, params_, batch, r0, n, ws.a(0), ws.ld[0], &lookups_);
        forward(prog_, params_, ws, n);
        chunk_loss(prog_, spec_, tg, ws, r0, n, ls.data(), seeds);
        for (std::size_t p = 0; p < passes_; ++p) {
          if (per_task_ && !active_[p]) continue;
          const int task = per_task_ ? static_cast<int>(p) : -1;
          ws.zero_grad(n);
          write_seeds(prog_, ws, n, seeds, task, coef_);
          backward(prog_, params_, ws, n, task, dg.data() + p * stride_,
                   prog_.input_grad ? demb_[p].data() : nullptr, r0);
        }
      }
    });

    // 3. Reduce the dense gradients (shard order, by column pieces) and scatter the embedding
    // gradients (by groups of tables).
    sgrad_.resize(passes_);
    for (auto& sg : sgrad_) sg.resize(prog_.tables.size());
    final_sparse_.assign(prog_.tables.size(), nullptr);
    const bool fused = update && !per_task_ && !(options_.clip_norm > 0.0f);
    OptimizerStep o;
    if (fused) {
      final_grad_ = dgrad_[0].data();
      o = OptimizerStep::make(options_, options_.lr, step_ + 1, 1.0f);
      stats_.grad_norm = 0.0;
    }
    pool_->for_each(pieces_.size() + groups_.size(), [&](std::size_t i, std::size_t) {
      if (i < pieces_.size()) {
        reduce_piece(pieces_[i]);
        if (fused) update_piece(pieces_[i], o);
      } else {
        const Group& g = groups_[i - pieces_.size()];
        scatter(batch, g);
        if (fused) {
          for (std::size_t j = g.first; j < g.last; ++j) final_sparse_[j] = sgrad_[0][j].data();
          update_group(g, o);
        }
      }
    });
    if (fused) ++step_;

    const std::vector<double> L = task_means(tg, S);
    stats_.loss = L;
    stats_.weight_sum = tg.denom;
    stats_.task_weight = coef_;
    stats_.objective = objective(L, tg, coef_);

    // 4. Balance.
    if (!per_task_) {
      final_grad_ = dgrad_[0].data();
      for (std::size_t i = 0; i < prog_.tables.size(); ++i) final_sparse_[i] = sgrad_[0][i].data();
    } else {
      combine(commit);
    }
    return fused;
  }

  // Embedding gradients of a group of tables: demb rows into the rows the batch touched, in batch
  // row order. First the slots (uniq_ lists the touched rows in order of first use; the recorded
  // rows are replaced by their slots), then the sums, row by row (a group's tables are
  // neighbours in x, so each demb row is read in one piece).
  void scatter(const Batch& batch, const Group& group) {
    const std::size_t ew = prog_.demb_ld, rows = batch.rows;
    std::vector<std::size_t> mine;
    for (std::size_t i = group.first; i < group.last; ++i) mine.push_back(i);
    for (std::size_t i : mine) {
      const TableInput& info = prog_.tables[i];
      std::vector<std::uint32_t>& mark = marker_[i];
      std::vector<std::uint32_t>& uniq = uniq_[i];
      std::vector<std::uint32_t>& rec = lookups_.rows[i];
      uniq.clear();
      for (std::size_t k = info.bag ? batch.bags[info.slot].offsets[0] : 0; k < rec.size(); ++k) {
        std::uint32_t& row = rec[k];
        std::uint32_t slot = mark[row];
        if (slot == kNone) {
          slot = mark[row] = static_cast<std::uint32_t>(uniq.size());
          uniq.push_back(row);
        }
        row = slot;
      }
      for (std::uint32_t row : uniq) mark[row] = kNone;
      for (std::size_t p = 0; p < passes_; ++p) sgrad_[p][i].assign(uniq.size() * info.dim, 0.0f);
    }
    if (!prog_.input_grad) return;
    struct Target {
      float* grad;
      const std::uint32_t* slot;
      std::uint32_t dim, col, index;
    };
    std::vector<Target> cats, bags;
    for (std::size_t p = 0; p < passes_; ++p) {
      if (per_task_ && !active_[p]) continue;
      cats.clear();
      bags.clear();
      for (std::size_t i : mine) {
        const TableInput& info = prog_.tables[i];
        (info.bag ? bags : cats)
            .push_back({sgrad_[p][i].data(), lookups_.rows[i].data(), info.dim, info.col, static_cast<std::uint32_t>(i)});
      }
      for (std::size_t r = 0; r < rows; ++r) {
        const float* d = demb_[p].data() + r * ew;
        for (const Target& c : cats) detail::row_add(c.grad + static_cast<std::size_t>(c.slot[r]) * c.dim, d + c.col, c.dim);
        for (const Target& c : bags) {
          const TableInput& info = prog_.tables[c.index];
          const Bag& bag = batch.bags[info.slot];
          const std::size_t b = bag.offsets[r], e = bag.offsets[r + 1];
          const float scale = info.mean && e > b ? 1.0f / static_cast<float>(e - b) : 1.0f;
          for (std::size_t k = b; k < e; ++k)
            detail::row_add(c.grad + static_cast<std::size_t>(c.slot[k]) * c.dim, d + c.col, c.dim, scale, true);
        }
      }
    }
  }

  // Per-task mode: final gradient = balanced combination of the per-task gradients.
  void combine(bool commit) {
    const std::size_t T = prog_.tasks;
    const BalanceMethod method = options_.balancing.method;
    const BalancingOptions& bo = options_.balancing;
    combined_.assign(stride_, 0.0f);
    combined_sparse_.resize(prog_.tables.size());
    const float* G = dgrad_[0].data();
    gn_norms_.assign(T, 0.0);
    for (std::size_t ti = 0; ti < prog_.tensors.size(); ++ti) {
      const ParamRange& t = prog_.tensors[ti];
      const bool embedding = t.role == ParamInfo::Role::embedding;
      // Per-task squared norms when needed.
      const bool balance = method == BalanceMethod::metabalance && t.shared;
      const bool gn = method == BalanceMethod::gradnorm &&
                      (gradnorm_on_embeddings_ ? embedding && t.shared : t.last_shared);
      std::vector<double> sq(T, 0.0);
      if (balance || gn) {
        for (std::size_t k = 0; k < T; ++k) {
          if (!active_[k]) continue;
          const double c = balance ? coef_[k] : 1.0;
          double s = 0.0;
          if (embedding) {
            for (float v : sgrad_[k][t.index]) s += static_cast<double>(v) * v;
          } else {
            for_each_run(prog_, t, [&](std::size_t off, std::size_t len) {
              const float* g = G + k * stride_ + off;
              for (std::size_t j = 0; j < len; ++j) s += static_cast<double>(g[j]) * g[j];
            });
          }
          sq[k] = s * c * c;
        }
      }
      if (gn)
        for (std::size_t k = 0; k < T; ++k) gn_norms_[k] += sq[k];
      std::vector<float> f = coef_;
      if (balance) {
        std::vector<double> norms(T);
        for (std::size_t k = 0; k < T; ++k) norms[k] = std::sqrt(sq[k]);
        std::vector<float> m = mb_m_[ti];
        const std::vector<float> g = metabalance_factors(norms, m, active_, static_cast<std::size_t>(main_task_),
                                                         bo.r, bo.beta, bo.eps);
        if (commit) mb_m_[ti] = m;
        for (std::size_t k = 0; k < T; ++k) f[k] = g[k] * coef_[k];
      }
      if (embedding) {
        std::vector<float>& out = combined_sparse_[t.index];
        out.assign(uniq_[t.index].size() * prog_.tables[t.index].dim, 0.0f);
        for (std::size_t k = 0; k < T; ++k)
          if (active_[k] && f[k] != 0.0f) math::axpy(out.size(), f[k], sgrad_[k][t.index].data(), out.data());
        final_sparse_[t.index] = out.data();
      } else {
        for_each_run(prog_, t, [&](std::size_t off, std::size_t len) {
          for (std::size_t k = 0; k < T; ++k)
            if (active_[k] && f[k] != 0.0f) math::axpy(len, f[k], G + k * stride_ + off, combined_.data() + off);
        });
      }
    }
    for (double& n : gn_norms_) n = std::sqrt(n);
    final_grad_ = combined_.data();
  }

  // TAG look-ahead measurements on this batch (per-task gradients are in dgrad_[0], sgrad_).
  void measure_affinity(const Batch& batch, const Targets& tg) {
    const std::size_t T = prog_.tasks;
    const std::vector<double> before = stats_.loss;
    const std::vector<float> arena = params_.arena;
    std::vector<std::vector<float>> rows(prog_.tables.size());
    for (std::size_t i = 0; i < prog_.tables.size(); ++i) {
      const std::size_t dim = prog_.tables[i].dim;
      for (std::uint32_t r : uniq_[i])
        rows[i].insert(rows[i].end(), params_.tables[i].begin() + static_cast<std::ptrdiff_t>(r * dim),
                       params_.tables[i].begin() + static_cast<std::ptrdiff_t>((r + 1) * dim));
    }
    const float lr = options_.lr;
    for (std::size_t i = 0; i < T; ++i) {
      if (!active_[i]) continue;
      for (const ParamRange& t : prog_.tensors) {
        if (!t.shared) continue;
        if (t.role == ParamInfo::Role::embedding) {
          const std::size_t dim = prog_.tables[t.index].dim;
          const std::vector<std::uint32_t>& u = uniq_[t.index];
          for (std::size_t s = 0; s < u.size(); ++s)
            math::axpy(dim, -lr, sgrad_[i][t.index].data() + s * dim,
                          params_.tables[t.index].data() + static_cast<std::size_t>(u[s]) * dim);
        } else {
          for_each_run(prog_, t, [&](std::size_t off, std::size_t len) {
            math::axpy(len, -lr, dgrad_[0].data() + i * stride_ + off, params_.arena.data() + off);
          });
        }
      }
      const std::vector<double> after = forward_losses(batch, tg);
      std::copy(arena.begin(), arena.end(), params_.arena.begin());
      for (std::size_t ti = 0; ti < prog_.tables.size(); ++ti) {
        const std::size_t dim = prog_.tables[ti].dim;
        const std::vector<std::uint32_t>& u = uniq_[ti];
        for (std::size_t s = 0; s < u.size(); ++s)
          std::memcpy(params_.tables[ti].data() + static_cast<std::size_t>(u[s]) * dim, rows[ti].data() + s * dim,
                      dim * sizeof(float));
      }
      for (std::size_t j = 0; j < T; ++j)
        if (active_[j] && before[j] > 0.0)
          affinity_.add(i, j, static_cast<float>(1.0 - after[j] / before[j]));
    }
  }

  // Uncertainty and GradNorm parameters (after the gradient used their current values).
  void update_balancer(std::uint64_t t) {
    const std::size_t T = prog_.tasks;
    const BalanceMethod method = options_.balancing.method;
    if (method != BalanceMethod::uncertainty && method != BalanceMethod::gradnorm) return;
    std::vector<float> grad(T, 0.0f);
    std::vector<float>* param = nullptr;
    float lr = options_.lr;
    if (method == BalanceMethod::uncertainty) {
      for (std::size_t k = 0; k < T; ++k)
        if (active_[k]) grad[k] = Uncertainty::grad_s(uncertainty_factor(k), log_var_[k], stats_.loss[k]);
      param = &log_var_;
    } else {
      std::vector<double> ratio(T, 0.0);
      for (std::size_t k = 0; k < T; ++k) {
        if (!active_[k]) continue;
        if (gn_has_initial_[k] == 0.0f) {
          gn_initial_[k] = static_cast<float>(stats_.loss[k]);
          gn_has_initial_[k] = 1.0f;
        }
        ratio[k] = gn_initial_[k] > 0.0f ? stats_.loss[k] / gn_initial_[k] : 1.0;
      }
      grad = gradnorm_weight_grad(gn_weight_, gn_norms_, ratio, active_, options_.balancing.alpha);
      param = &gn_weight_;
      lr = options_.balancing.lr;
    }
    const OptimizerStep o = [&] {
      OptimizerStep s = OptimizerStep::make(options_, lr, t + 1, 1.0f);
      s.l2 = 0.0f;
      return s;
    }();
    // Only active tasks move: apply element by element.
    for (std::size_t k = 0; k < T; ++k) {
      if (!active_[k]) continue;
      o.apply(1, param->data() + k, grad.data() + k, bal_opt_.size() > 0 ? bal_opt_[0].data() + k : nullptr,
              bal_opt_.size() > 1 ? bal_opt_[1].data() + k : nullptr);
    }
    if (method == BalanceMethod::gradnorm)
      gradnorm_renormalise(gn_weight_, prog_.has_loss, static_cast<float>(num_losses_));
  }

  // The optimiser step of this step (after clipping, which needs the final gradient's norm).
  OptimizerStep next_optimizer_step() {
    float clip = 1.0f;
    stats_.grad_norm = 0.0;
    if (options_.clip_norm > 0.0f) {
      double sq = 0.0;
      for (std::size_t i = 0; i < prog_.arena_size; ++i) sq += static_cast<double>(final_grad_[i]) * final_grad_[i];
      for (std::size_t t = 0; t < prog_.tables.size(); ++t) {
        const std::size_t n = uniq_[t].size() * prog_.tables[t].dim;
        for (std::size_t j = 0; j < n; ++j) sq += static_cast<double>(final_sparse_[t][j]) * final_sparse_[t][j];
      }
      const double norm = std::sqrt(sq);
      stats_.grad_norm = norm;
      const double c = options_.clip_norm / (norm + 1e-6);
      if (c < 1.0) clip = static_cast<float>(c);
    }
    return OptimizerStep::make(options_, options_.lr, step_ + 1, clip);
  }

  // A piece of the dense reduction and update: columns [o0, o1) of a block (every row of Wt,
  // the bias, and rows [o0, o1) of the W copy).
  void reduce_piece(const Piece& c) {
    if (shards_ == 1) return;
    const ParamBlock& b = prog_.blocks[c.block];
    const std::size_t len = c.o1 - c.o0;
    for (std::size_t p = 0; p < passes_; ++p) {
      float* out = dgrad_[0].data() + p * stride_;
      for (std::size_t s = 1; s < shards_; ++s) {
        const float* in = dgrad_[s].data() + p * stride_;
        for (std::size_t i = 0; i <= b.in; ++i) {  // i == in: the bias
          const std::size_t off = (i < b.in ? b.wt + i * b.out : b.bias) + c.o0;
          math::add(len, in + off, out + off);
        }
      }
    }
  }
  void update_piece(const Piece& c, const OptimizerStep& o) {
    const ParamBlock& b = prog_.blocks[c.block];
    float* s1 = opt_.size() > 0 ? opt_[0].data() : nullptr;
    float* s2 = opt_.size() > 1 ? opt_[1].data() : nullptr;
    for (std::size_t i = 0; i <= b.in; ++i) {  // i == in: the bias
      const std::size_t off = (i < b.in ? b.wt + i * b.out : b.bias) + c.o0;
      o.apply(c.o1 - c.o0, params_.arena.data() + off, final_grad_ + off, s1 ? s1 + off : nullptr,
              s2 ? s2 + off : nullptr);
    }
    math::transpose(b.in, c.o1 - c.o0, params_.arena.data() + b.wt + c.o0, b.out,
                       params_.copy.data() + b.w + c.o0 * b.in_pad, b.in_pad);
  }
  // The touched rows of a group of tables (lazy: their moments too).
  void update_group(const Group& g, const OptimizerStep& o) {
    for (std::size_t i = g.first; i < g.last; ++i) {
      const std::size_t dim = prog_.tables[i].dim;
      float* table = params_.tables[i].data();
      float* m1 = opt_tables_.size() > 0 ? opt_tables_[0][i].data() : nullptr;
      float* m2 = opt_tables_.size() > 1 ? opt_tables_[1][i].data() : nullptr;
      const std::vector<std::uint32_t>& u = uniq_[i];
      for (std::size_t s = 0; s < u.size(); ++s) {
        const std::size_t off = static_cast<std::size_t>(u[s]) * dim;
        o.apply(dim, table + off, final_sparse_[i] + s * dim, m1 ? m1 + off : nullptr, m2 ? m2 + off : nullptr);
      }
    }
  }

  // Clipping and the optimiser step on the final gradient.
  void apply_update() {
    const OptimizerStep o = next_optimizer_step();
    ++step_;
    pool_->for_each(pieces_.size() + groups_.size(), [&](std::size_t i, std::size_t) {
      if (i < pieces_.size())
        update_piece(pieces_[i], o);
      else
        update_group(groups_[i - pieces_.size()], o);
    });
  }
};

}  // namespace mtlite::train

namespace mtlite {
using train::Trainer;
using train::TrainOptions;
}  // namespace mtlite
