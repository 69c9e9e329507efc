// The measurement half of task affinity (affinity.hpp has the matrix and the groupings): on a
// step's batch, for each active task i, the shared parameters take a plain SGD step with task
// i's gradient alone, every task's loss is measured again, and the parameters are put back
// exactly as they were. It runs between the gradient and the update of the step it measures,
// so it needs the per-task gradients (one backward pass per task) and changes nothing but the
// matrix.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../input.hpp"
#include "../../spec.hpp"
#include "affinity.hpp"
#include "gradients.hpp"
#include "loss.hpp"
#include "math.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "thread_pool.hpp"

namespace mtlite::train {

// before: each task's loss on the batch at the current weights; lr: the look-ahead's step size.
inline void measure_affinity(ThreadPool& pool, const Program& p, const Spec& spec, Parameters& params,
                             BatchGradients& grads, const Batch& batch, const Targets& tg, const Passes& passes,
                             const std::vector<double>& before, float lr, AffinityMatrix& affinity) {
  const std::size_t T = p.tasks;
  const std::vector<float> arena = params.arena;
  std::vector<std::vector<float>> rows(p.tables.size());
  for (std::size_t i = 0; i < p.tables.size(); ++i) {
    const std::size_t dim = p.tables[i].dim;
    for (std::uint32_t r : grads.touched(i))
      rows[i].insert(rows[i].end(), params.tables[i].begin() + static_cast<std::ptrdiff_t>(r * dim),
                     params.tables[i].begin() + static_cast<std::ptrdiff_t>((r + 1) * dim));
  }
  for (std::size_t i = 0; i < T; ++i) {
    if (!passes.active[i]) continue;
    for (const ParamRange& t : p.tensors) {
      if (!t.shared) continue;
      if (t.role == ParamInfo::Role::embedding) {
        const std::size_t dim = p.tables[t.index].dim;
        const std::vector<std::uint32_t>& u = grads.touched(t.index);
        for (std::size_t s = 0; s < u.size(); ++s)
          math::axpy(dim, -lr, grads.sparse(i, t.index).data() + s * dim,
                     params.tables[t.index].data() + static_cast<std::size_t>(u[s]) * dim);
      } else {
        for_each_run(p, t, [&](std::size_t off, std::size_t len) {
          math::axpy(len, -lr, grads.dense(i) + off, params.arena.data() + off);
        });
      }
    }
    const std::vector<double> after = grads.forward_losses(pool, p, spec, params, batch, tg);
    std::copy(arena.begin(), arena.end(), params.arena.begin());
    for (std::size_t ti = 0; ti < p.tables.size(); ++ti) {
      const std::size_t dim = p.tables[ti].dim;
      const std::vector<std::uint32_t>& u = grads.touched(ti);
      for (std::size_t s = 0; s < u.size(); ++s)
        std::memcpy(params.tables[ti].data() + static_cast<std::size_t>(u[s]) * dim, rows[ti].data() + s * dim,
                    dim * sizeof(float));
    }
    for (std::size_t j = 0; j < T; ++j)
      if (passes.active[j] && before[j] > 0.0) affinity.add(i, j, static_cast<float>(1.0 - after[j] / before[j]));
  }
}

}  // namespace mtlite::train
