// Gate diagnostics for MoE, MMoE and PLE models (docs/models.md, "Gate diagnostics").
//
// For a gate and a set of rows:
//   mean_weight[e]  mean over rows of the gate's weight on expert e
//   mean_entropy    mean over rows of -sum_e g_e ln g_e (nats): how decided each row's gate is
//   usage_entropy   -sum_e mean_e ln mean_e: how spread the gate's use of experts is
//   collapsed       max_e mean_weight[e] > 0.9: the gate has collapsed onto one expert
// Across gates, an expert is *dead* when every gate that mixes it gives it a mean weight below
// 1 / (10 E_g), E_g the number of experts of that gate.
//
// The weights can come from Trainer::gate_report or from a Session made with keep_gates = true
// (Session::gate(g, row)); gate_stats() only reads a rows x experts array.
#pragma once

#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/span.hpp"

namespace mtlite::train {

struct GateStats {
  std::string gate;
  std::vector<std::string> experts;  // in gate order
  std::vector<double> mean_weight;
  double mean_entropy = 0.0;
  double usage_entropy = 0.0;
  bool collapsed = false;
  std::size_t rows = 0;
};

struct GateReport {
  std::vector<GateStats> gates;
  std::vector<std::string> dead_experts;  // in order of first appearance
};

// Statistics of one gate from weights[r * E + e], r < rows, E = experts.size().
inline GateStats gate_stats(std::string gate, std::vector<std::string> experts, span<const float> weights,
                            std::size_t rows) {
  const std::size_t E = experts.size();
  if (E == 0) throw Error("gate_stats: a gate over no experts");
  if (weights.size() != rows * E)
    throw Error("gate_stats: weights must hold rows x experts values");
  GateStats s;
  s.gate = std::move(gate);
  s.experts = std::move(experts);
  s.rows = rows;
  s.mean_weight.assign(E, 0.0);
  double entropy = 0.0;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t e = 0; e < E; ++e) {
      const double g = weights[r * E + e];
      s.mean_weight[e] += g;
      if (g > 0.0) entropy -= g * std::log(g);
    }
  }
  if (rows) {
    for (double& m : s.mean_weight) m /= static_cast<double>(rows);
    s.mean_entropy = entropy / static_cast<double>(rows);
  }
  double top = 0.0;
  for (double m : s.mean_weight) {
    if (m > 0.0) s.usage_entropy -= m * std::log(m);
    top = m > top ? m : top;
  }
  s.collapsed = rows > 0 && top > 0.9;
  return s;
}

// Dead experts across the gates (an expert is identified by its name).
inline GateReport gate_report(std::vector<GateStats> gates) {
  GateReport report;
  std::map<std::string, bool> used;  // expert -> some gate gives it at least 1 / (10 E)
  std::vector<std::string> order;
  for (const GateStats& g : gates) {
    const double floor = 1.0 / (10.0 * static_cast<double>(g.experts.size()));
    for (std::size_t e = 0; e < g.experts.size(); ++e) {
      auto it = used.find(g.experts[e]);
      if (it == used.end()) {
        it = used.emplace(g.experts[e], false).first;
        order.push_back(g.experts[e]);
      }
      it->second = it->second || g.mean_weight[e] >= floor;
    }
  }
  for (const std::string& e : order)
    if (!used[e]) report.dead_experts.push_back(e);
  report.gates = std::move(gates);
  return report;
}

}  // namespace mtlite::train
