// Steps 2 and 3 of a training step: the gradient of a batch, computed shard by shard and then
// reduced, in an order that does not depend on which thread ran what.
//
//   2. forward_backward(): each shard (work_items.hpp) is walked in chunks of kChunkRows:
//      gather x, forward, loss, backward (engine.hpp), accumulating dense gradients into the
//      shard's own buffers and the gradient of x into the batch's rows of demb. One backward
//      pass per chunk, or one per task when per-task gradients are needed (Passes).
//   3. reduce_piece() sums the shards' dense gradients into shard 0's in shard order, one column
//      piece at a time; scatter_group() adds demb into the touched table rows in batch row
//      order, one group of tables at a time, so the sparse gradients do not depend on the thread
//      count at all. The caller runs these items in a parallel region of its own, so that the
//      optimiser can update each piece and group right after reducing it.
//
// A sparse gradient covers only the rows the batch touched: slot s of table t's is the row
// touched(t)[s] (rows in order of first use). Forward-only passes (a batch's losses, its scores)
// run on the same per-thread workspaces.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../input.hpp"
#include "../../spec.hpp"
#include "../../weights.hpp"
#include "engine.hpp"
#include "loss.hpp"
#include "math.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "thread_pool.hpp"
#include "work_items.hpp"

namespace mtlite::train {

// Rows one thread pushes through the network at a time: a chunk's activations stay in L2.
inline constexpr std::size_t kChunkRows = 128;

// The backward passes of a step: one for the combined loss sum_k coef_k L_k, or one per task.
struct Passes {
  std::vector<bool> active;  // [task]: has a loss and a labelled row of positive weight
  std::vector<float> coef;   // [task]: the coefficient of L_k in the objective
  bool per_task = false;

  std::size_t count() const noexcept { return per_task ? active.size() : 1; }
  bool skipped(std::size_t pass) const { return per_task && !active[pass]; }
  int task(std::size_t pass) const noexcept { return per_task ? static_cast<int>(pass) : -1; }
};

// The gradient the optimiser is handed: dense in the arena layout, and per table the rows of
// touched(t), slot by slot.
struct Gradient {
  const float* dense = nullptr;
  std::vector<const float*> sparse;  // [table]
};

class BatchGradients {
 public:
  BatchGradients(const Program& p, std::size_t threads) : stride_(p.arena_size + math::kPad) {
    ws_.reserve(threads);
    for (std::size_t t = 0; t < threads; ++t) ws_.emplace_back(p, kChunkRows);
    seeds_.assign(threads, std::vector<float>((p.tasks + 1) * kChunkRows, 0.0f));
    lookups_.rows.resize(p.tables.size());
    marker_.resize(p.tables.size());
    uniq_.resize(p.tables.size());
    for (std::size_t t = 0; t < p.tables.size(); ++t)
      marker_[t].assign(static_cast<std::size_t>(p.tables[t].rows), kNone);
  }

  // Floats per pass of a dense gradient buffer.
  std::size_t stride() const noexcept { return stride_; }
  // One per thread of the pool.
  std::vector<Workspace>& workspaces() noexcept { return ws_; }

  // Step 2 over every shard of the batch.
  void forward_backward(ThreadPool& pool, const Program& p, const Spec& spec, const Parameters& params,
                        const Batch& batch, const Targets& tg, const Passes& passes) {
    const std::size_t T = p.tasks, rows = batch.rows, P = passes.count();
    for (std::size_t t = 0; t < p.tables.size(); ++t) {
      const Bag* bag = p.tables[t].bag ? &batch.bags[p.tables[t].slot] : nullptr;
      lookups_.rows[t].resize(bag ? bag->offsets[rows] : rows);
    }
    demb_.resize(P);
    for (auto& d : demb_) d.resize(rows * p.demb_ld + math::kPad);
    const std::size_t S = shard_count(rows, pool.size());
    shards_ = S;
    if (dgrad_.size() < S) dgrad_.resize(S);
    if (loss_sum_.size() < S) loss_sum_.resize(S, std::vector<double>(T, 0.0));
    pool.for_each(S, [&](std::size_t s, std::size_t t) {
      Workspace& ws = ws_[t];
      std::vector<float>& dg = dgrad_[s];
      if (dg.size() < P * stride_) dg.resize(P * stride_);
      std::fill(dg.begin(), dg.begin() + static_cast<std::ptrdiff_t>(P * stride_), 0.0f);
      std::vector<double>& ls = loss_sum_[s];
      std::fill(ls.begin(), ls.end(), 0.0);
      const auto [begin, end] = shard_rows(rows, s, S);
      for (std::size_t q = 0; q < P; ++q)
        std::fill(demb_[q].begin() + static_cast<std::ptrdiff_t>(begin * p.demb_ld),
                  demb_[q].begin() + static_cast<std::ptrdiff_t>(end * p.demb_ld), 0.0f);
      float* seeds = seeds_[t].data();
      forward_chunks(p, spec, params, batch, begin, end, ws, &lookups_, [&](std::size_t r0, std::size_t n) {
        chunk_loss(p, spec, tg, ws, r0, n, ls.data(), seeds);
        for (std::size_t q = 0; q < P; ++q) {
          if (passes.skipped(q)) continue;
          const int task = passes.task(q);
          ws.zero_grad(n);
          write_seeds(p, ws, n, seeds, task, passes.coef);
          backward(p, params, ws, n, task, dg.data() + q * stride_, p.input_grad ? demb_[q].data() : nullptr, r0);
        }
      });
    });
    sgrad_.resize(P);
    for (auto& sg : sgrad_) sg.resize(p.tables.size());
  }

  // Step 3, one dense item: every pass's columns of the piece, shards 1.. added into shard 0.
  void reduce_piece(const Program& p, const Passes& passes, const ColumnPiece& c) {
    if (shards_ == 1) return;
    const std::size_t len = c.o1 - c.o0;
    for (std::size_t q = 0; q < passes.count(); ++q) {
      float* out = dgrad_[0].data() + q * stride_;
      for (std::size_t s = 1; s < shards_; ++s) {
        const float* in = dgrad_[s].data() + q * stride_;
        for_each_piece_run(p.blocks[c.block], c, [&](std::size_t off) { math::add(len, in + off, out + off); });
      }
    }
  }

  // Step 3, one sparse item: first the slots (the recorded rows are replaced by their slots),
  // then the sums, row by row (a group's tables are neighbours in x, so each demb row is read in
  // one piece).
  void scatter_group(const Program& p, const Batch& batch, const Passes& passes, const TableGroup& group) {
    for (std::size_t i = group.first; i < group.last; ++i) assign_slots(p, batch, passes, i);
    if (!p.input_grad) return;
    struct Target {
      float* grad;
      const std::uint32_t* slot;
      std::uint32_t dim, col, index;
    };
    std::vector<Target> cats, bags;
    for (std::size_t q = 0; q < passes.count(); ++q) {
      if (passes.skipped(q)) continue;
      cats.clear();
      bags.clear();
      for (std::size_t i = group.first; i < group.last; ++i) {
        const TableInput& info = p.tables[i];
        (info.bag ? bags : cats)
            .push_back({sgrad_[q][i].data(), lookups_.rows[i].data(), info.dim, info.col, static_cast<std::uint32_t>(i)});
      }
      for (std::size_t r = 0; r < batch.rows; ++r) {
        const float* d = demb_[q].data() + r * p.demb_ld;
        for (const Target& c : cats) detail::row_add(c.grad + static_cast<std::size_t>(c.slot[r]) * c.dim, d + c.col, c.dim);
        for (const Target& c : bags) {
          const TableInput& info = p.tables[c.index];
          const Bag& bag = batch.bags[info.slot];
          const std::size_t b = bag.offsets[r], e = bag.offsets[r + 1];
          const float scale = info.mean && e > b ? 1.0f / static_cast<float>(e - b) : 1.0f;
          for (std::size_t k = b; k < e; ++k)
            detail::row_add(c.grad + static_cast<std::size_t>(c.slot[k]) * c.dim, d + c.col, c.dim, scale, true);
        }
      }
    }
  }

  // After step 3: a pass's dense gradient (arena layout), its sparse gradient of a table, and
  // the rows that table's slots stand for.
  const float* dense(std::size_t pass) const noexcept { return dgrad_[0].data() + pass * stride_; }
  const std::vector<float>& sparse(std::size_t pass, std::size_t table) const { return sgrad_[pass][table]; }
  const std::vector<std::uint32_t>& touched(std::size_t table) const { return uniq_[table]; }
  // The gradient when there is one pass (the combined loss).
  Gradient one_pass() const {
    Gradient g{dense(0), std::vector<const float*>(sgrad_[0].size())};
    for (std::size_t i = 0; i < g.sparse.size(); ++i) g.sparse[i] = sgrad_[0][i].data();
    return g;
  }

  // L_k per task of the batch of the last forward_backward().
  std::vector<double> last_losses(const Program& p, const Targets& tg) const { return task_means(p, tg, shards_); }

  // Forward only: L_k per task over the batch.
  std::vector<double> forward_losses(ThreadPool& pool, const Program& p, const Spec& spec, const Parameters& params,
                                     const Batch& batch, const Targets& tg) {
    const std::size_t T = p.tasks, S = shard_count(batch.rows, pool.size());
    if (loss_sum_.size() < S) loss_sum_.resize(S, std::vector<double>(T, 0.0));
    pool.for_each(S, [&](std::size_t s, std::size_t t) {
      Workspace& ws = ws_[t];
      std::vector<double>& ls = loss_sum_[s];
      std::fill(ls.begin(), ls.end(), 0.0);
      const auto [begin, end] = shard_rows(batch.rows, s, S);
      forward_chunks(p, spec, params, batch, begin, end, ws, nullptr, [&](std::size_t r0, std::size_t n) {
        chunk_loss(p, spec, tg, ws, r0, n, ls.data(), nullptr);
      });
    });
    return task_means(p, tg, S);
  }

 private:
  static constexpr std::uint32_t kNone = 0xFFFFFFFFu;

  std::size_t stride_ = 0;
  // Per thread.
  std::vector<Workspace> ws_;
  std::vector<std::vector<float>> seeds_;  // [(T + 1) * chunk]
  // Per shard.
  std::vector<std::vector<float>> dgrad_;      // [passes * stride]; shard 0's holds the sum after step 3
  std::vector<std::vector<double>> loss_sum_;  // [T]
  std::size_t shards_ = 1;                     // of the last forward_backward()
  // Per batch.
  LookupRows lookups_;
  std::vector<std::vector<float>> demb_;                // [pass][rows * demb_ld]
  std::vector<std::vector<std::uint32_t>> marker_;      // [table][row]: slot in uniq_, or kNone
  std::vector<std::vector<std::uint32_t>> uniq_;        // [table]: rows the batch touched
  std::vector<std::vector<std::vector<float>>> sgrad_;  // [pass][table][slot * dim]

  // uniq_ lists table i's touched rows in order of first use; the recorded rows become slots.
  void assign_slots(const Program& p, const Batch& batch, const Passes& passes, std::size_t i) {
    const TableInput& info = p.tables[i];
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
    for (std::size_t q = 0; q < passes.count(); ++q) sgrad_[q][i].assign(uniq.size() * info.dim, 0.0f);
  }

  // L_k from the first S shards' loss sums, in shard order.
  std::vector<double> task_means(const Program& p, const Targets& tg, std::size_t S) const {
    std::vector<double> L(p.tasks, 0.0);
    for (std::size_t k = 0; k < p.tasks; ++k) {
      double sum = 0.0;
      for (std::size_t s = 0; s < S; ++s) sum += loss_sum_[s][k];
      L[k] = tg.denom[k] > 0.0 ? sum / tg.denom[k] : 0.0;
    }
    return L;
  }
};

// A gradient in the logical layout (weights.hpp); embedding rows the batch did not touch are 0.
inline Weights gradient_weights(const Program& p, const Gradient& g, const BatchGradients& grads) {
  Weights out;
  for (const ParamRange& t : p.tensors) {
    if (t.role != ParamInfo::Role::embedding) {
      out.emplace(t.name, tensor_from(p, t, g.dense, nullptr));
      continue;
    }
    Tensor rows;
    rows.shape = t.shape;
    rows.data.assign(rows.numel(), 0.0f);
    const std::size_t dim = p.tables[t.index].dim;
    const std::vector<std::uint32_t>& u = grads.touched(t.index);
    for (std::size_t s = 0; s < u.size(); ++s)
      std::memcpy(rows.data.data() + static_cast<std::size_t>(u[s]) * dim, g.sparse[t.index] + s * dim,
                  dim * sizeof(float));
    out.emplace(t.name, std::move(rows));
  }
  return out;
}

}  // namespace mtlite::train
