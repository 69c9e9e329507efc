// Walks the network graph once and lays out its execution: the steps, the scratch buffers, and
// which dense layers are packed together. Weights are not touched here (binder.hpp does that);
// only each layer's weight type matters, because layers fuse only with layers of their own type.
//
// Fusion: every dense layer that reads the same vector runs as one matrix product: the first
// layers of all experts and gates over x (MMoE), of a PLE level's experts and gates over one
// input, of all towers over a shared bottom. A group becomes one packed layer whose blocks are
// padded to whole panels, followed by a softmax per gate block.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "../network.hpp"
#include "plan.hpp"

namespace mtlite::internal {

class Compiler {
 public:
  // type_of(prefix) -> the weight type of layer "<prefix>" ("expert0.0", "gate1", ...).
  using TypeOf = std::function<kernels::WeightType(const std::string&)>;

  Compiler(const Network& net, TypeOf type_of)
      : net_(net), type_of_(std::move(type_of)), at_(net.nodes.size()), done_(net.nodes.size()) {}

  Plan run() {
    plan_.buffer_ld = {0, 0};
    at_[0] = {new_buffer(net_.nodes[0].width), 0};
    done_[0] = true;
    emit(Step::Kind::gather, {}, {}, at_[0], net_.nodes[0].width, 0);

    for (bool progress = true; progress;) {
      progress = false;
      for (std::size_t i = 1; i < net_.nodes.size(); ++i)
        if (!done_[i] && ready(i)) {
          compile_node(i);
          progress = true;
        }
    }
    for (std::size_t i = 0; i < net_.nodes.size(); ++i)
      if (!done_[i]) throw Error("internal: network node '" + net_.nodes[i].name + "' unreachable");
    for (std::size_t k = 0; k < net_.outputs.size(); ++k) {
      const Operand dest{kScores, static_cast<std::uint32_t>(k)};
      const Operand src = at_[static_cast<std::size_t>(net_.outputs[k])];
      if (!(src == dest)) emit(Step::Kind::copy, src, {}, dest, 1, 0);
    }
    return std::move(plan_);
  }

 private:
  const Network& net_;
  TypeOf type_of_;
  Plan plan_;
  std::vector<Operand> at_;  // where each node's output lives
  std::vector<bool> done_;

  std::uint32_t new_buffer(std::size_t width) {
    plan_.buffer_ld.push_back(static_cast<std::uint32_t>(kernels::round_to_panel(width)));
    return static_cast<std::uint32_t>(plan_.buffer_ld.size() - 1);
  }

  void emit(Step::Kind kind, Operand in, Operand in2, Operand out, std::uint32_t width, std::uint32_t index) {
    Step s;
    s.kind = kind;
    s.in = in;
    s.in2 = in2;
    s.out = out;
    s.width = width;
    s.index = index;
    plan_.steps.push_back(s);
  }

  // A packed layer of these blocks over an input of width k; a lone block writes exactly its
  // outputs, fused blocks are padded to whole panels.
  std::uint32_t add_layer(kernels::WeightType type, std::size_t k, std::vector<Block> blocks) {
    PackedLayer L;
    L.type = type;
    L.k = k;
    for (const Block& b : blocks) {
      L.n += kernels::round_to_panel(b.units);
      L.act.insert(L.act.end(), kernels::panel_count(b.units), b.act);
    }
    if (blocks.size() == 1) L.n = blocks[0].units;
    L.blocks = std::move(blocks);
    plan_.layers.push_back(std::move(L));
    return static_cast<std::uint32_t>(plan_.layers.size() - 1);
  }

  bool ready(std::size_t i) const {
    const Node& n = net_.nodes[i];
    switch (n.kind) {
      case Node::Kind::mlp:
      case Node::Kind::gate: return done_[static_cast<std::size_t>(n.input)];
      case Node::Kind::mix:
        for (int e : n.experts)
          if (!done_[static_cast<std::size_t>(e)]) return false;
        return done_[static_cast<std::size_t>(n.gate)];
      case Node::Kind::product:
        return done_[static_cast<std::size_t>(n.a)] && done_[static_cast<std::size_t>(n.b)];
      case Node::Kind::input: return true;
    }
    return false;
  }

  // The output index a node is served as, or -1.
  int output_of(std::size_t node) const {
    for (std::size_t k = 0; k < net_.outputs.size(); ++k)
      if (net_.outputs[k] == static_cast<int>(node)) return static_cast<int>(k);
    return -1;
  }

  void compile_node(std::size_t i) {
    const Node& n = net_.nodes[i];
    if (n.kind == Node::Kind::mix) {
      MixInfo info;
      for (int e : n.experts) info.experts.push_back(at_[static_cast<std::size_t>(e)]);
      plan_.mixes.push_back(std::move(info));
      at_[i] = {new_buffer(n.width), 0};
      emit(Step::Kind::mix, at_[static_cast<std::size_t>(n.gate)], {}, at_[i], n.width,
           static_cast<std::uint32_t>(plan_.mixes.size() - 1));
      done_[i] = true;
      return;
    }
    if (n.kind == Node::Kind::product) {
      at_[i] = {kScores, static_cast<std::uint32_t>(output_of(i))};
      emit(Step::Kind::product, at_[static_cast<std::size_t>(n.a)], at_[static_cast<std::size_t>(n.b)], at_[i], 1, 0);
      done_[i] = true;
      return;
    }
    // Every not-yet-compiled mlp and gate that reads the same node, one group per weight type.
    std::vector<std::size_t> readers;
    for (std::size_t j = 1; j < net_.nodes.size(); ++j) {
      const Node& m = net_.nodes[j];
      if (!done_[j] && m.input == n.input && (m.kind == Node::Kind::mlp || m.kind == Node::Kind::gate))
        readers.push_back(j);
    }
    while (!readers.empty()) {
      const kernels::WeightType type = type_of_(layer_prefix(net_.nodes[readers[0]], 0));
      std::vector<std::size_t> group, rest;
      for (std::size_t j : readers)
        (type_of_(layer_prefix(net_.nodes[j], 0)) == type ? group : rest).push_back(j);
      compile_group(n.input, type, group);
      readers = rest;
    }
  }

  // One fused first layer, then a softmax per gate and the remaining layers of each mlp.
  void compile_group(int input, kernels::WeightType type, std::vector<std::size_t> group) {
    // Blocks with an activation first, identity (gate logits) last: any order works, and this one
    // keeps the ReLU panels of experts contiguous.
    std::stable_partition(group.begin(), group.end(), [&](std::size_t j) {
      return net_.nodes[j].layers[0].activation != Activation::identity;
    });
    std::vector<Block> blocks;
    for (std::size_t j : group) {
      const Node& m = net_.nodes[j];
      blocks.push_back({layer_prefix(m, 0), m.layers[0].units, m.layers[0].activation});
    }
    const Operand in = at_[static_cast<std::size_t>(input)];
    const std::uint32_t layer = add_layer(type, net_.nodes[static_cast<std::size_t>(input)].width, blocks);
    const std::size_t n = plan_.layers[layer].n;

    // A lone one-layer tower writes its score straight into the scores buffer.
    const int lone_output = group.size() == 1 && net_.nodes[group[0]].layers.size() == 1 ? output_of(group[0]) : -1;
    const Operand out = lone_output >= 0 ? Operand{kScores, static_cast<std::uint32_t>(lone_output)}
                                         : Operand{new_buffer(n), 0};
    emit(Step::Kind::dense, in, {}, out, static_cast<std::uint32_t>(n), layer);

    std::uint32_t col = out.col;
    for (std::size_t j : group) {
      const Node& m = net_.nodes[j];
      at_[j] = {out.buffer, col};
      col += static_cast<std::uint32_t>(kernels::round_to_panel(m.layers[0].units));
      if (m.kind == Node::Kind::gate) {
        emit(Step::Kind::softmax, {}, {}, at_[j], m.width, 0);
        plan_.gates.push_back({m.name, m.width, plan_.gate_width});
        emit(Step::Kind::copy, at_[j], {}, {kGates, plan_.gate_width}, m.width, 0);
        plan_.gate_width += m.width;
      } else {
        compile_tail(j);
      }
      done_[j] = true;
    }
  }

  // Layers 1.. of an mlp node, each its own packed layer; an output tower's last layer writes
  // into the scores buffer.
  void compile_tail(std::size_t j) {
    const Node& m = net_.nodes[j];
    const int output = output_of(j);
    std::size_t in_width = m.layers[0].units;
    for (std::size_t li = 1; li < m.layers.size(); ++li) {
      const Layer& l = m.layers[li];
      const std::string prefix = layer_prefix(m, li);
      const std::uint32_t layer = add_layer(type_of_(prefix), in_width, {{prefix, l.units, l.activation}});
      const bool last = li + 1 == m.layers.size();
      const Operand out = last && output >= 0 ? Operand{kScores, static_cast<std::uint32_t>(output)}
                                              : Operand{new_buffer(l.units), 0};
      emit(Step::Kind::dense, at_[j], {}, out, l.units, layer);
      at_[j] = out;
      in_width = l.units;
    }
  }
};

}  // namespace mtlite::internal
