// The spec unrolled into a small dataflow graph: the one walk over the architectures that the
// runtime compiler, the parameter list and the trainer all share.
//
// Nodes are stored in topological order; nodes no served output needs are pruned. Each produces
// one vector per example:
//   input    x (the gathered embeddings and dense features)
//   mlp      layers[i](... layers[0](input)); parameters "<name>.<i>.weight" [out, in] and
//            "<name>.<i>.bias" [out]
//   gate     softmax(W input + b) over `experts.size()` experts; parameters "<name>.weight"
//            [E, in] and "<name>.bias" [E]
//   mix      sum_e gate_e * experts[e]
//   product  a * b (elementwise; ESMM's pCTCVR)
// Parameter names use indices (tower<k>, gate<k>, expert<i>, ple<l>.task<k>.expert<j>, ...) and
// "embedding.<feature name>" for tables.
#pragma once

#include <string>
#include <vector>

#include "spec.hpp"

namespace mtlite {

struct Node {
  enum class Kind : std::uint8_t { input, mlp, gate, mix, product };
  Kind kind = Kind::input;
  std::string name;          // parameter prefix (mlp, gate) or a readable label
  int input = -1;            // mlp, gate: the node read
  Mlp layers;                // mlp: every layer including the last; gate: one layer of E units
  int gate = -1;             // mix: the gate node
  std::vector<int> experts;  // mix: the expert (mlp) nodes, in gate order
  int a = -1, b = -1;        // product
  std::uint32_t width = 0;   // output width
};

struct Network {
  std::vector<Node> nodes;   // nodes[0] is the input
  std::vector<int> outputs;  // the node of each served output (Spec::output_name order)
  std::vector<int> gates;    // every gate node, for diagnostics

  int add(Node n) {
    nodes.push_back(std::move(n));
    return static_cast<int>(nodes.size()) - 1;
  }
};

namespace internal {

inline int add_mlp(Network& net, std::string name, int input, Mlp layers) {
  Node n;
  n.kind = Node::Kind::mlp;
  n.name = std::move(name);
  n.input = input;
  n.width = layers.back().units;
  n.layers = std::move(layers);
  return net.add(std::move(n));
}

// A gate and the mix it drives, over the given experts; returns the mix node.
inline int add_gated_mix(Network& net, const std::string& gate_name, int input,
                         std::vector<int> experts) {
  Node g;
  g.kind = Node::Kind::gate;
  g.name = gate_name;
  g.input = input;
  g.width = static_cast<std::uint32_t>(experts.size());
  g.layers = {{g.width, Activation::identity}};
  const int gate = net.add(std::move(g));
  net.gates.push_back(gate);
  Node m;
  m.kind = Node::Kind::mix;
  m.name = gate_name + ".mix";
  m.gate = gate;
  m.width = net.nodes[static_cast<std::size_t>(experts.front())].width;
  m.experts = std::move(experts);
  return net.add(std::move(m));
}

// Drops every node no output depends on: the towers of tasks that are not served, and what
// only they read (an MMoE gate, a PLE task's last-level experts).
inline Network prune(Network net) {
  std::vector<bool> live(net.nodes.size(), false);
  live[0] = true;
  std::vector<int> todo = net.outputs;
  while (!todo.empty()) {
    const int i = todo.back();
    todo.pop_back();
    if (live[static_cast<std::size_t>(i)]) continue;
    live[static_cast<std::size_t>(i)] = true;
    const Node& n = net.nodes[static_cast<std::size_t>(i)];
    for (int j : {n.input, n.gate, n.a, n.b})
      if (j >= 0) todo.push_back(j);
    todo.insert(todo.end(), n.experts.begin(), n.experts.end());
  }
  std::vector<int> index(net.nodes.size(), -1);
  Network out;
  for (std::size_t i = 0; i < net.nodes.size(); ++i)
    if (live[i]) index[i] = out.add(std::move(net.nodes[i]));
  auto remap = [&](int& j) {
    if (j >= 0) j = index[static_cast<std::size_t>(j)];
  };
  for (Node& n : out.nodes) {
    remap(n.input);
    remap(n.gate);
    remap(n.a);
    remap(n.b);
    for (int& e : n.experts) remap(e);
  }
  for (int o : net.outputs) out.outputs.push_back(index[static_cast<std::size_t>(o)]);
  for (int g : net.gates)
    if (live[static_cast<std::size_t>(g)]) out.gates.push_back(index[static_cast<std::size_t>(g)]);
  return out;
}

}  // namespace internal

// Parameter names: the one rule every reader of weights uses (binder, converter, trainer, files).
// An mlp's layer i is "<node>.<i>", a gate's one layer is "<node>"; each has "<prefix>.weight"
// and "<prefix>.bias" (and, in i8 files, "<prefix>.weight.scale").
inline std::string layer_prefix(const Node& n, std::size_t i) {
  return n.kind == Node::Kind::gate ? n.name : n.name + "." + std::to_string(i);
}
inline std::string embedding_name(const std::string& feature) { return "embedding." + feature; }

// Builds the graph of a valid spec (call Spec::validate first).
inline Network build_network(const Spec& spec) {
  using internal::add_gated_mix;
  using internal::add_mlp;
  Network net;
  Node in;
  in.kind = Node::Kind::input;
  in.name = "x";
  in.width = static_cast<std::uint32_t>(spec.input_dim());
  const int x = net.add(std::move(in));
  const std::size_t T = spec.tasks.size();

  // Input of each task's tower.
  std::vector<int> tower_input(T, x);
  switch (spec.architecture) {
    case Architecture::single_task:
    case Architecture::esmm:
      break;
    case Architecture::shared_bottom: {
      const int bottom = add_mlp(net, "bottom", x, spec.bottom);
      tower_input.assign(T, bottom);
      break;
    }
    case Architecture::omoe:
    case Architecture::mmoe: {
      std::vector<int> experts;
      for (std::uint32_t e = 0; e < spec.num_experts; ++e)
        experts.push_back(add_mlp(net, "expert" + std::to_string(e), x, spec.expert));
      if (spec.architecture == Architecture::omoe) {
        tower_input.assign(T, add_gated_mix(net, "gate", x, experts));
      } else {
        for (std::size_t k = 0; k < T; ++k)
          tower_input[k] = add_gated_mix(net, "gate" + std::to_string(k), x, experts);
      }
      break;
    }
    case Architecture::ple: {
      int shared_input = x;
      for (std::size_t l = 0; l < spec.levels.size(); ++l) {
        const PleLevel& level = spec.levels[l];
        const std::string lv = "ple" + std::to_string(l);
        std::vector<std::vector<int>> own(T);
        std::vector<int> shared, all;
        for (std::size_t k = 0; k < T; ++k)
          for (std::uint32_t j = 0; j < level.task_experts; ++j) {
            own[k].push_back(add_mlp(net,
                                     lv + ".task" + std::to_string(k) + ".expert" + std::to_string(j),
                                     tower_input[k], level.expert));
            all.push_back(own[k].back());
          }
        for (std::uint32_t j = 0; j < level.shared_experts; ++j) {
          shared.push_back(
              add_mlp(net, lv + ".shared.expert" + std::to_string(j), shared_input, level.expert));
          all.push_back(shared.back());
        }
        std::vector<int> next(T);
        for (std::size_t k = 0; k < T; ++k) {
          std::vector<int> mine = own[k];
          mine.insert(mine.end(), shared.begin(), shared.end());
          next[k] = add_gated_mix(net, lv + ".task" + std::to_string(k) + ".gate", tower_input[k],
                                  mine);
        }
        // The shared gate reads the shared input and mixes every expert of the level; the last
        // level has none, because nothing reads its output.
        if (l + 1 < spec.levels.size())
          shared_input = add_gated_mix(net, lv + ".shared.gate", shared_input, all);
        tower_input = next;
      }
      break;
    }
  }

  std::vector<int> towers(T);
  for (std::size_t k = 0; k < T; ++k) {
    Mlp layers = spec.tasks[k].tower;
    layers.push_back({1, spec.tasks[k].head()});
    towers[k] = add_mlp(net, "tower" + std::to_string(k), tower_input[k], layers);
    if (spec.tasks[k].served) net.outputs.push_back(towers[k]);
  }
  if (spec.esmm) {
    Node p;
    p.kind = Node::Kind::product;
    p.name = spec.esmm->ctcvr;
    p.a = towers[static_cast<std::size_t>(spec.task_index(spec.esmm->ctr))];
    p.b = towers[static_cast<std::size_t>(spec.task_index(spec.esmm->cvr))];
    p.width = 1;
    net.outputs.push_back(net.add(std::move(p)));
  }
  return internal::prune(std::move(net));
}

// The number of parameter tensors (weights, biases, tables) of a valid spec's pruned network:
// parameters(spec).size(), counted without building anything. A spec may ask for millions of
// layers (64 PLE levels of 1024 experts of 64 layers), so a reader checks this count against
// the tensors a file holds before it expands the spec (compile/binder.hpp).
inline std::uint64_t parameter_tensor_count(const Spec& spec) {
  const std::size_t T = spec.tasks.size();
  std::uint64_t n = 0;
  for (const Feature& f : spec.features) n += f.has_embedding();
  // Served towers read tower_input[k]; `need[k]` says whether that input is live.
  std::vector<bool> need(T);
  for (std::size_t k = 0; k < T; ++k) {
    need[k] = spec.tasks[k].served;
    if (need[k]) n += 2 * (spec.tasks[k].tower.size() + 1);
  }
  switch (spec.architecture) {
    case Architecture::single_task:
    case Architecture::esmm:
      break;
    case Architecture::shared_bottom:
      n += 2 * spec.bottom.size();
      break;
    case Architecture::omoe:
    case Architecture::mmoe: {
      n += 2 * std::uint64_t{spec.num_experts} * spec.expert.size();
      for (std::size_t k = 0; k < T; ++k) n += spec.architecture == Architecture::mmoe && need[k] ? 2 : 0;
      n += spec.architecture == Architecture::omoe ? 2 : 0;
      break;
    }
    case Architecture::ple: {
      // Backwards through the levels, as prune() walks from the outputs: a task gate is live
      // when its task's next input is; a level's own experts when their task gate or the shared
      // gate is; its shared experts when any gate is; the shared gate (absent on the last
      // level) when the next level's shared experts are.
      bool need_shared = false;
      for (std::size_t l = spec.levels.size(); l-- > 0;) {
        const PleLevel& lv = spec.levels[l];
        const std::uint64_t expert_tensors = 2 * lv.expert.size();
        const bool shared_gate = l + 1 < spec.levels.size() && need_shared;
        bool any_gate = shared_gate;
        for (std::size_t k = 0; k < T; ++k) {
          const bool gate = need[k], own = gate || shared_gate;
          n += (gate ? 2 : 0) + (own ? lv.task_experts * expert_tensors : 0);
          any_gate = any_gate || gate;
          need[k] = gate || (own && lv.task_experts > 0);
        }
        n += (shared_gate ? 2 : 0) + (any_gate ? lv.shared_experts * expert_tensors : 0);
        need_shared = shared_gate || (any_gate && lv.shared_experts > 0);
      }
      break;
    }
  }
  return n;
}

}  // namespace mtlite
