// Task losses (docs/models.md, "Losses"), from the logits of the task towers.
//
//   binary      l = BCE(y, sigmoid(z)) = max(z, 0) - y z + log1p(exp(-|z|)),  dl/dz = sigmoid(z) - y
//   regression  l = (z - y)^2,                                                  dl/dz = 2 (z - y)
//   L_k = (sum_i m_ik s_i l_ik) / (sum_i m_ik s_i)      (m: label mask, s: sample weight)
// A task whose denominator is 0 in a batch (no labelled row of positive weight) has L_k = 0 and
// no gradient: it contributes nothing, and no NaN appears.
//
// ESMM (spec.esmm): the ctr task's loss is BCE(click, pCTR); the cvr task's loss is
// BCE(click AND conversion, pCTCVR) with pCTCVR = pCTR pCVR: there is no direct CVR loss. The
// cvr label column holds the conversion label. The pCTCVR target of a row is click * conversion;
// it is known when both labels are, and also when click is known to be 0 (then click AND
// conversion is 0 whatever the conversion mask says: conversions are usually unobserved without
// a click, and ESMM's point is to train pCTCVR over the entire space).
// The loss is computed from the two logits a (ctr) and b (cvr) without forming 1 - p:
//   log p     = log sigmoid(a) + log sigmoid(b)
//   log(1-p)  = log(sigmoid(-a) + sigmoid(a) sigmoid(-b))      (a log-sum-exp of two logs)
//   dl/da = (p - y) sigmoid(-a) / (1 - p),  dl/db = (p - y) sigmoid(-b) / (1 - p)
// This is the product node's backward too (program.hpp): it has no op of its own.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/span.hpp"
#include "../../spec.hpp"
#include "engine.hpp"
#include "program.hpp"

namespace mtlite::train {

// Per task loss of a batch: label y_ik and weight m_ik s_i per row, and sum_i m_ik s_i.
struct Targets {
  std::size_t rows = 0;
  std::vector<std::vector<float>> label, weight;  // [task][row]
  std::vector<double> denom;                       // [task]; 0 = the task sits this batch out
  std::vector<float> inv_denom;                    // [task]; 1 / denom, or 0
};

// Checks the label arrays (rows x tasks, row-major; mask empty = all labelled; weights empty =
// all 1) and builds the targets. Throws Error naming the first bad value.
inline Targets make_targets(const Program& p, const Spec& spec, std::size_t rows,
                            span<const float> labels, span<const std::uint8_t> mask,
                            span<const float> weights) {
  const std::size_t T = p.tasks;
  if (labels.size() != rows * T)
    throw Error(internal::printf_string("labels: got %zu values, expected %zu rows x %zu tasks = %zu",
                                 labels.size(), rows, T, rows * T));
  if (!mask.empty() && mask.size() != rows * T)
    throw Error(internal::printf_string("mask: got %zu values, expected empty or %zu rows x %zu tasks = %zu",
                                 mask.size(), rows, T, rows * T));
  if (!weights.empty() && weights.size() != rows)
    throw Error(internal::printf_string("weights: got %zu values, expected empty or %zu (one per row)",
                                 weights.size(), rows));
  Targets t;
  t.rows = rows;
  t.label.assign(T, std::vector<float>(rows, 0.0f));
  t.weight.assign(T, std::vector<float>(rows, 0.0f));
  t.denom.assign(T, 0.0);
  t.inv_denom.assign(T, 0.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    const float s = weights.empty() ? 1.0f : weights[r];
    if (!std::isfinite(s) || s < 0.0f)
      throw Error(internal::printf_string("weights[%zu] = %g: sample weights must be finite and >= 0", r,
                                   static_cast<double>(s)));
    for (std::size_t k = 0; k < T; ++k) {
      if (!p.has_loss[k]) continue;
      const bool m = mask.empty() || mask[r * T + k] != 0;
      const float y = labels[r * T + k];
      if (m && s > 0.0f) {
        if (!std::isfinite(y))
          throw Error(internal::printf_string("labels[%zu][%zu] (task '%s') is not finite", r, k,
                                       spec.tasks[k].name.c_str()));
        if (spec.tasks[k].kind == TaskKind::binary && !(y >= 0.0f && y <= 1.0f))
          throw Error(internal::printf_string("labels[%zu][%zu] = %g: task '%s' is binary, labels are in [0, 1]",
                                       r, k, static_cast<double>(y), spec.tasks[k].name.c_str()));
      }
      t.label[k][r] = m ? y : 0.0f;
      t.weight[k][r] = m ? s : 0.0f;
    }
    if (p.esmm_ctr >= 0) {
      const std::size_t c = static_cast<std::size_t>(p.esmm_ctr), v = static_cast<std::size_t>(p.esmm_cvr);
      const bool mc = mask.empty() || mask[r * T + c] != 0;
      const bool mv = mask.empty() || mask[r * T + v] != 0;
      const float click = labels[r * T + c], conv = labels[r * T + v];
      const bool known = mc && (click == 0.0f || mv);
      t.label[v][r] = known ? (click == 0.0f ? 0.0f : click * conv) : 0.0f;
      t.weight[v][r] = known ? s : 0.0f;
    }
  }
  for (std::size_t k = 0; k < T; ++k) {
    double d = 0.0;
    for (float w : t.weight[k]) d += w;
    t.denom[k] = d;
    t.inv_denom[k] = d > 0.0 ? static_cast<float>(1.0 / d) : 0.0f;
  }
  return t;
}

namespace detail {

inline double log_sigmoid(double x) { return -(std::fmax(-x, 0.0) + std::log1p(std::exp(-std::fabs(x)))); }

}  // namespace detail

// The ESMM pCTCVR loss of one row from the two logits: l, dl/da, dl/db.
struct EsmmTerm {
  double loss, da, db;
};
inline EsmmTerm esmm_term(double a, double b, double y) {
  using detail::log_sigmoid;
  const double log_p = log_sigmoid(a) + log_sigmoid(b);
  const double u = log_sigmoid(-a), v = log_sigmoid(a) + log_sigmoid(-b);
  const double log_q = std::fmax(u, v) + std::log1p(std::exp(-std::fabs(u - v)));
  const double pm = std::exp(log_p) - y;
  return {-(y * log_p + (1.0 - y) * log_q), pm * std::exp(u - log_q),
          pm * std::exp(log_sigmoid(-b) - log_q)};
}

// Loss sums and logit gradients of the chunk of batch rows [r0, r0 + n) held in ws.
//   loss_sum[k] += sum_i m_ik s_i l_ik                           (k < T)
//   seeds (may be null), [T + 1][chunk]:
//     seeds[k][r]  = dL_k / dz_k for row r0 + r                 (z_k: task k's logit)
//     seeds[T][r]  = dL_cvr / dz_ctr (ESMM: the pCTCVR loss reaching the ctr logit)
inline void chunk_loss(const Program& p, const Spec& spec, const Targets& tg, const Workspace& ws,
                       std::size_t r0, std::size_t n, double* loss_sum, float* seeds) {
  const std::size_t T = p.tasks, C = ws.chunk;
  if (seeds) std::memset(seeds, 0, (T + 1) * C * sizeof(float));
  for (std::size_t k = 0; k < T; ++k) {
    if (!p.has_loss[k] || tg.denom[k] <= 0.0) continue;
    const float* w = tg.weight[k].data() + r0;
    const float* y = tg.label[k].data() + r0;
    const float inv = tg.inv_denom[k];
    const View& h = p.heads[k];
    const float* z = ws.a(h.buffer) + h.col;
    const std::size_t ld = ws.ld[h.buffer];
    double sum = 0.0;
    if (static_cast<int>(k) == p.esmm_cvr) {
      const View& hc = p.heads[static_cast<std::size_t>(p.esmm_ctr)];
      const float* za = ws.a(hc.buffer) + hc.col;
      const std::size_t lda = ws.ld[hc.buffer];
      for (std::size_t r = 0; r < n; ++r) {
        if (w[r] == 0.0f) continue;
        const EsmmTerm e = esmm_term(za[r * lda], z[r * ld], y[r]);
        sum += static_cast<double>(w[r]) * e.loss;
        if (seeds) {
          seeds[T * C + r] = w[r] * inv * static_cast<float>(e.da);
          seeds[k * C + r] = w[r] * inv * static_cast<float>(e.db);
        }
      }
    } else if (spec.tasks[k].kind == TaskKind::binary) {
      for (std::size_t r = 0; r < n; ++r) {
        if (w[r] == 0.0f) continue;
        const float zr = z[r * ld];
        const float e = std::exp(-std::fabs(zr));
        const float l = std::fmax(zr, 0.0f) - zr * y[r] + std::log1p(e);
        const float sig = zr >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        sum += static_cast<double>(w[r]) * l;
        if (seeds) seeds[k * C + r] = w[r] * inv * (sig - y[r]);
      }
    } else {
      for (std::size_t r = 0; r < n; ++r) {
        if (w[r] == 0.0f) continue;
        const float d = z[r * ld] - y[r];
        sum += static_cast<double>(w[r]) * (static_cast<double>(d) * d);
        if (seeds) seeds[k * C + r] = w[r] * inv * 2.0f * d;
      }
    }
    loss_sum[k] += sum;
  }
}

// Writes the logit gradients of a backward pass into ws.grad (which must be zero there).
// task < 0: the combined pass, sum_k coef[k] dL_k/dz; task >= 0: loss `task` alone.
inline void write_seeds(const Program& p, Workspace& ws, std::size_t n, const float* seeds, int task,
                        const std::vector<float>& coef) {
  const std::size_t T = p.tasks, C = ws.chunk;
  for (std::size_t j = 0; j < T; ++j) {
    if (!p.has_loss[j]) continue;
    const View& h = p.heads[j];
    float* dz = ws.g(h.buffer) + h.col;
    const std::size_t ld = ws.ld[h.buffer];
    const bool ctr = static_cast<int>(j) == p.esmm_ctr;
    const std::size_t v = static_cast<std::size_t>(p.esmm_cvr);
    if (task < 0) {
      const float c = coef[j], cv = ctr ? coef[v] : 0.0f;
      for (std::size_t r = 0; r < n; ++r)
        dz[r * ld] = c * seeds[j * C + r] + (ctr ? cv * seeds[T * C + r] : 0.0f);
    } else {
      const std::size_t k = static_cast<std::size_t>(task);
      if (j == k) {
        for (std::size_t r = 0; r < n; ++r) dz[r * ld] = seeds[j * C + r];
      } else if (ctr && k == v) {
        for (std::size_t r = 0; r < n; ++r) dz[r * ld] = seeds[T * C + r];
      }
    }
  }
}

}  // namespace mtlite::train
