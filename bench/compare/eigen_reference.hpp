// The peer for the reference model: the same network hand-written with Eigen 3.4, the way a
// careful engineer would without mtlite (docs/performance.md measures it as "hand-written Eigen").
// Weights are copied from the same mtlite::Weights, pre-transposed to [in x out] so that every
// layer is one GEMM (batch) or GEMV (one row) call into Eigen.
#pragma once

#include <Eigen/Dense>
#include <mtlite/network.hpp>
#include <mtlite/weights.hpp>

#include <string>
#include <vector>

namespace peer {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct EigenMmoe {
  struct Linear {
    RowMatrix wt;             // [in x out]
    Eigen::RowVectorXf bias;  // [out]
  };
  std::vector<std::vector<Linear>> experts;
  std::vector<Linear> gates;
  std::vector<std::vector<Linear>> towers;
  // Scratch, sized on first use: the peer gets the same "no allocation in steady state" as mtlite.
  std::vector<RowMatrix> expert_out;
  RowMatrix h1, gate, mixed, t1;
  RowMatrix scores;

  static Linear linear(const mtlite::Weights& w, const std::string& prefix) {
    const mtlite::Tensor& W = w.at(prefix + ".weight");
    const mtlite::Tensor& b = w.at(prefix + ".bias");
    Linear l;
    const auto out = static_cast<Eigen::Index>(W.shape[0]), in = static_cast<Eigen::Index>(W.shape[1]);
    l.wt = Eigen::Map<const RowMatrix>(W.data.data(), out, in).transpose();
    l.bias = Eigen::Map<const Eigen::RowVectorXf>(b.data.data(), out);
    return l;
  }

  EigenMmoe(const mtlite::Spec& spec, const mtlite::Weights& w) {
    for (std::uint32_t e = 0; e < spec.num_experts; ++e) {
      std::vector<Linear> layers;
      for (std::size_t i = 0; i < spec.expert.size(); ++i)
        layers.push_back(linear(w, "expert" + std::to_string(e) + "." + std::to_string(i)));
      experts.push_back(std::move(layers));
    }
    for (std::size_t k = 0; k < spec.tasks.size(); ++k) {
      gates.push_back(linear(w, "gate" + std::to_string(k)));
      std::vector<Linear> layers;
      for (std::size_t i = 0; i <= spec.tasks[k].tower.size(); ++i)
        layers.push_back(linear(w, "tower" + std::to_string(k) + "." + std::to_string(i)));
      towers.push_back(std::move(layers));
    }
    expert_out.resize(experts.size());
  }

  // x: rows x D, row-major. Leaves rows x tasks sigmoid scores in `scores`.
  void predict(const RowMatrix& x) {
    const Eigen::Index rows = x.rows();
    for (std::size_t e = 0; e < experts.size(); ++e) {
      h1.noalias() = x * experts[e][0].wt;
      h1.rowwise() += experts[e][0].bias;
      h1 = h1.cwiseMax(0.0f);
      expert_out[e].noalias() = h1 * experts[e][1].wt;
      expert_out[e].rowwise() += experts[e][1].bias;
      expert_out[e] = expert_out[e].cwiseMax(0.0f);
    }
    scores.resize(rows, static_cast<Eigen::Index>(gates.size()));
    for (std::size_t k = 0; k < gates.size(); ++k) {
      gate.noalias() = x * gates[k].wt;
      gate.rowwise() += gates[k].bias;
      for (Eigen::Index r = 0; r < rows; ++r) {
        auto g = gate.row(r);
        g = (g.array() - g.maxCoeff()).exp();
        g /= g.sum();
      }
      mixed.setZero(rows, expert_out[0].cols());
      for (std::size_t e = 0; e < experts.size(); ++e)
        mixed += (expert_out[e].array().colwise() * gate.col(static_cast<Eigen::Index>(e)).array()).matrix();
      t1.noalias() = mixed * towers[k][0].wt;
      t1.rowwise() += towers[k][0].bias;
      t1 = t1.cwiseMax(0.0f);
      scores.col(static_cast<Eigen::Index>(k)) =
          ((-((t1 * towers[k][1].wt).array() + towers[k][1].bias(0))).exp() + 1.0f).inverse();
    }
  }
};

}  // namespace peer
