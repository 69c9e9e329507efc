// Forward-only uses of the network being trained, on the trainer's workspaces: the served
// outputs of a batch, and the gate statistics over its rows. They read the weights as they are
// mid-training, without building a Model from them.
#pragma once

#include <cstddef>
#include <vector>

#include "../../core/activation.hpp"
#include "../../input.hpp"
#include "../../kernels/ref/activation.hpp"
#include "../../spec.hpp"
#include "diagnostics.hpp"
#include "engine.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "thread_pool.hpp"
#include "work_items.hpp"

namespace mtlite::train {

// Scores of every served output (Spec::output_name order) per row: row-major rows x outputs.
// Binary tasks are probabilities, regression tasks values, pCTCVR = pCTR * pCVR.
// workspaces: one per thread of the pool.
inline std::vector<float> predict_outputs(ThreadPool& pool, std::vector<Workspace>& workspaces, const Program& p,
                                          const Spec& spec, const Parameters& params, const Batch& batch) {
  const auto sigmoid = [](float z) { return kernels::ref::activate(Activation::sigmoid, z); };
  const std::size_t O = p.output_task.size();
  std::vector<float> out(batch.rows * O);
  const std::size_t S = shard_count(batch.rows, pool.size());
  pool.for_each(S, [&](std::size_t s, std::size_t t) {
    Workspace& ws = workspaces[t];
    const auto logit = [&](int k, std::size_t r) {
      const View& h = p.heads[static_cast<std::size_t>(k)];
      return ws.a(h.buffer)[r * ws.ld[h.buffer] + h.col];
    };
    const auto [begin, end] = shard_rows(batch.rows, s, S);
    forward_chunks(p, spec, params, batch, begin, end, ws, nullptr, [&](std::size_t r0, std::size_t n) {
      for (std::size_t o = 0; o < O; ++o) {
        const int k = p.output_task[o];
        for (std::size_t r = 0; r < n; ++r) {
          float v;
          if (k >= 0)
            v = spec.tasks[static_cast<std::size_t>(k)].kind == TaskKind::binary ? sigmoid(logit(k, r)) : logit(k, r);
          else
            v = sigmoid(logit(p.esmm_ctr, r)) * sigmoid(logit(p.esmm_cvr, r));
          out[(r0 + r) * O + o] = v;
        }
      }
    });
  });
  return out;
}

// Statistics of every gate over the rows of a batch (diagnostics.hpp), on one workspace.
inline GateReport gate_report_on(Workspace& ws, const Program& p, const Spec& spec, const Parameters& params,
                                 const Batch& batch) {
  std::vector<std::vector<float>> g(p.gates.size());
  forward_chunks(p, spec, params, batch, 0, batch.rows, ws, nullptr, [&](std::size_t, std::size_t n) {
    for (std::size_t i = 0; i < p.gates.size(); ++i) {
      const View& v = p.gates[i].view;
      for (std::size_t r = 0; r < n; ++r) {
        const float* row = ws.a(v.buffer) + r * ws.ld[v.buffer] + v.col;
        g[i].insert(g[i].end(), row, row + v.width);
      }
    }
  });
  std::vector<GateStats> stats;
  for (std::size_t i = 0; i < p.gates.size(); ++i)
    stats.push_back(gate_stats(p.gates[i].name, p.gates[i].experts, g[i], batch.rows));
  return gate_report(std::move(stats));
}

}  // namespace mtlite::train
