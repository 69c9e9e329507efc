// Step 5 of a training step: the optimiser (optimizer.hpp) applied to the parameters in their
// training layout, one work item (work_items.hpp) at a time, so that the caller can run the
// update in the same parallel region as the reduction when nothing needs the whole gradient
// first.
//
//   a column piece of a block   every row of Wt and the bias, then its rows of the W copy (the
//                               backward pass reads W, so it must follow the arena)
//   a group of tables           the rows the batch touched only, their optimiser state too
//                               (lazy, like torch.optim.SparseAdam)
// Clipping needs the norm of the whole final gradient before any item starts.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gradients.hpp"
#include "math.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "state.hpp"
#include "work_items.hpp"

namespace mtlite::train {

// The global L2 norm of a gradient, its sparse rows those that `grads` touched.
inline double gradient_norm(const Program& p, const Gradient& g, const BatchGradients& grads) {
  double sq = 0.0;
  for (std::size_t i = 0; i < p.arena_size; ++i) sq += static_cast<double>(g.dense[i]) * g.dense[i];
  for (std::size_t t = 0; t < p.tables.size(); ++t) {
    const std::size_t n = grads.touched(t).size() * p.tables[t].dim;
    for (std::size_t j = 0; j < n; ++j) sq += static_cast<double>(g.sparse[t][j]) * g.sparse[t][j];
  }
  return std::sqrt(sq);
}

// The optimiser step number t (from 1) on a gradient of global norm `norm`, scaled down to
// TrainOptions::clip_norm when clipping is on and the norm is above it.
inline OptimizerStep clipped_step(const TrainOptions& o, double norm, std::uint64_t t) {
  float clip = 1.0f;
  if (o.clip_norm > 0.0f) {
    const double c = o.clip_norm / (norm + 1e-6);
    if (c < 1.0) clip = static_cast<float>(c);
  }
  return OptimizerStep::make(o, o.lr, t, clip);
}

inline void update_piece(const Program& p, const ColumnPiece& c, const OptimizerStep& o, const Gradient& g,
                         Parameters& params, OptimizerState& s) {
  const ParamBlock& b = p.blocks[c.block];
  float* s1 = s.dense_at(0);
  float* s2 = s.dense_at(1);
  for_each_piece_run(b, c, [&](std::size_t off) {
    math::optimizer_step(o, c.o1 - c.o0, params.arena.data() + off, g.dense + off, s1 ? s1 + off : nullptr, s2 ? s2 + off : nullptr);
  });
  math::transpose(b.in, c.o1 - c.o0, params.arena.data() + b.wt + c.o0, b.out,
                  params.copy.data() + b.w + c.o0 * b.in_pad, b.in_pad);
}

inline void update_group(const Program& p, const TableGroup& group, const OptimizerStep& o, const Gradient& g,
                         const BatchGradients& grads, Parameters& params, OptimizerState& s) {
  for (std::size_t i = group.first; i < group.last; ++i) {
    const std::size_t dim = p.tables[i].dim;
    float* table = params.tables[i].data();
    float* m1 = s.table_at(0, i);
    float* m2 = s.table_at(1, i);
    const std::vector<std::uint32_t>& u = grads.touched(i);
    for (std::size_t slot = 0; slot < u.size(); ++slot) {
      const std::size_t off = static_cast<std::size_t>(u[slot]) * dim;
      math::optimizer_step(o, dim, table + off, g.sparse[i] + slot * dim, m1 ? m1 + off : nullptr, m2 ? m2 + off : nullptr);
    }
  }
}

}  // namespace mtlite::train
