// The compiled form of a model: a flat list of steps over numbered buffers, and the packed
// weights they read. Compiling happens once, when a Model is made; predicting walks the steps.
//
// Buffers
//   0  scores   one column per output, rows contiguous: scores[output][row]   (in the Session)
//   1  gates    the kept gate weights, row-major [row][all gates' experts]     (in the Session)
//   2+ scratch  row-major [row][ld], ld a multiple of 16 floats; one chunk of rows at a time
// Buffers 0 and 1 hold the whole batch; scratch holds the current chunk only.
//
// Fusion: every dense layer that reads the same vector runs as one matrix product. The first
// layers of all experts and gates over x (MMoE), of a PLE level's experts and gates over one
// input, of all towers over a shared bottom: each group becomes one packed layer whose blocks
// are padded to whole panels (kernels/packed.hpp), followed by a softmax per gate block.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "aligned_buffer.hpp"
#include "kernels/packed.hpp"
#include "network.hpp"
#include "spec.hpp"
#include "weights.hpp"

namespace mtlite::internal {

inline constexpr std::uint32_t kScores = 0;
inline constexpr std::uint32_t kGates = 1;
inline constexpr std::uint32_t kFirstScratch = 2;

// A column range start in a buffer; widths live in the step.
struct Operand {
  std::uint32_t buffer = 0;
  std::uint32_t col = 0;
  bool operator==(const Operand& o) const { return buffer == o.buffer && col == o.col; }
};

struct Step {
  enum class Kind : std::uint8_t {
    gather,   // x from the inputs -> out
    dense,    // out = layers[index](in)
    softmax,  // softmax of `width` values at out, in place
    mix,      // out = sum_e in[e] * mixes[index].experts[e]   (in = the gate's weights)
    product,  // out = in * in2, width 1
    copy,     // out = in, `width` values
  };
  Kind kind = Kind::gather;
  Operand in, in2, out;
  std::uint32_t width = 0;
  std::uint32_t index = 0;
};

struct PackedLayer {
  std::size_t k = 0, n = 0;
  std::size_t panels = 0, bias = 0;  // offsets into Plan::arena (floats)
  std::vector<Activation> act;       // per panel
};

struct MixInfo {
  std::vector<Operand> experts;
};

struct TableInfo {
  std::size_t offset = 0;  // into Plan::arena (floats)
  std::uint64_t rows = 0;
  std::uint32_t dim = 0;
};

struct GateInfo {
  std::string name;
  std::uint32_t width = 0;
  std::uint32_t col = 0;  // first column in the gates buffer
};

struct Plan {
  std::vector<std::uint32_t> buffer_ld;  // per buffer; scratch only (0 for buffers 0 and 1)
  std::vector<Step> steps;
  std::vector<PackedLayer> layers;
  std::vector<MixInfo> mixes;
  std::vector<TableInfo> tables;  // per feature; rows == 0 for dense features
  std::vector<GateInfo> gates;
  std::uint32_t gate_width = 0;   // sum of gate widths
  AlignedBuffer<float> arena;     // packed weights and tables

  kernels::DenseView view(std::size_t i) const {
    const PackedLayer& L = layers[i];
    return {L.k, L.n, arena.data() + L.panels, arena.data() + L.bias, L.act.data()};
  }
  std::size_t scratch_per_row() const {
    std::size_t n = 0;
    for (std::size_t b = kFirstScratch; b < buffer_ld.size(); ++b) n += buffer_ld[b];
    return n;
  }
};

// Turns (spec, network, float weights) into a Plan. Throws Error naming a missing, misshapen,
// non-finite or unexpected tensor.
class Compiler {
 public:
  Compiler(const Spec& spec, const Network& net, const Weights& weights)
      : spec_(spec), net_(net), weights_(weights), at_(net.nodes.size()), done_(net.nodes.size()) {}

  Plan run() {
    plan_.buffer_ld = {0, 0};
    check_tensors();
    reserve_arena();

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
    if (arena_used_ != plan_.arena.size()) throw Error("internal: arena size mismatch");
    return std::move(plan_);
  }

 private:
  const Spec& spec_;
  const Network& net_;
  const Weights& weights_;
  Plan plan_;
  std::vector<Operand> at_;  // where each node's output lives
  std::vector<bool> done_;
  std::size_t arena_used_ = 0;

  // --- weights ---------------------------------------------------------------------------

  void check_tensors() {
    std::set<std::string> expected;
    for (const ParamInfo& p : parameters(spec_, net_)) {
      expected.insert(p.name);
      const auto it = weights_.find(p.name);
      if (it == weights_.end()) throw Error("weights: missing tensor '" + p.name + "'");
      const Tensor& t = it->second;
      if (t.shape != p.shape)
        throw Error("weights: tensor '" + p.name + "' has shape " + shape_string(t.shape) +
                    ", the spec needs " + shape_string(p.shape));
      if (t.data.size() != p.numel())
        throw Error("weights: tensor '" + p.name + "' holds " + std::to_string(t.data.size()) +
                    " values for shape " + shape_string(t.shape));
      for (std::size_t i = 0; i < t.data.size(); ++i)
        if (!std::isfinite(t.data[i]))
          throw Error("weights: tensor '" + p.name + "' has a non-finite value at index " +
                      std::to_string(i));
    }
    for (const auto& kv : weights_)
      if (!expected.count(kv.first))
        throw Error("weights: unexpected tensor '" + kv.first + "' (not part of this spec)");
  }

  const Tensor& tensor(const std::string& name) const { return weights_.at(name); }

  // Sizes the arena before filling it, so that views into it never move.
  void reserve_arena() {
    std::size_t n = 0;
    for (const Feature& f : spec_.features)
      if (f.has_embedding()) n += kernels::round_to_panel(f.table_rows() * f.embedding_dim);
    // Dense layers: an upper bound per group is hard to know before grouping, so count exactly
    // the way pack_layer will: every block padded to whole panels.
    for (std::size_t i = 1; i < net_.nodes.size(); ++i) {
      const Node& node = net_.nodes[i];
      if (node.kind != Node::Kind::mlp && node.kind != Node::Kind::gate) continue;
      std::size_t in = net_.nodes[static_cast<std::size_t>(node.input)].width;
      for (const Layer& l : node.layers) {
        n += kernels::round_to_panel(l.units) * (in + 1);
        in = l.units;
      }
    }
    plan_.arena = AlignedBuffer<float>(n);
    plan_.tables.resize(spec_.features.size());
    for (std::size_t f = 0; f < spec_.features.size(); ++f) {
      const Feature& feat = spec_.features[f];
      if (!feat.has_embedding()) continue;
      const Tensor& t = tensor("embedding." + feat.name);
      TableInfo& info = plan_.tables[f];
      info.offset = take(kernels::round_to_panel(t.data.size()));
      info.rows = feat.table_rows();
      info.dim = feat.embedding_dim;
      std::copy(t.data.begin(), t.data.end(), plan_.arena.data() + info.offset);
    }
  }

  std::size_t take(std::size_t floats) {
    const std::size_t at = arena_used_;
    arena_used_ += floats;
    if (arena_used_ > plan_.arena.size()) throw Error("internal: arena overflow");
    return at;
  }

  struct Block {
    std::string weight, bias;
    std::size_t units;
    Activation act;
  };

  // Packs blocks that share an input of width k into one layer; returns its index.
  std::uint32_t pack_layer(std::size_t k, const std::vector<Block>& blocks) {
    PackedLayer L;
    L.k = k;
    for (const Block& b : blocks) L.n += kernels::round_to_panel(b.units);
    if (blocks.size() == 1) L.n = blocks[0].units;  // a lone layer writes exactly its outputs
    const std::size_t panels = kernels::panel_count(L.n);
    L.panels = take(panels * k * kernels::kPanel);
    L.bias = take(panels * kernels::kPanel);
    std::size_t p = 0;
    for (const Block& b : blocks) {
      kernels::pack_panels(tensor(b.weight).data.data(), b.units, k,
                           plan_.arena.data() + L.panels + p * k * kernels::kPanel);
      const std::vector<float>& bias = tensor(b.bias).data;
      std::copy(bias.begin(), bias.end(), plan_.arena.data() + L.bias + p * kernels::kPanel);
      for (std::size_t j = 0; j < kernels::panel_count(b.units); ++j) L.act.push_back(b.act);
      p += kernels::panel_count(b.units);
    }
    plan_.layers.push_back(std::move(L));
    return static_cast<std::uint32_t>(plan_.layers.size() - 1);
  }

  // --- graph walk ------------------------------------------------------------------------

  std::uint32_t new_buffer(std::size_t width) {
    plan_.buffer_ld.push_back(static_cast<std::uint32_t>(kernels::round_to_panel(width)));
    return static_cast<std::uint32_t>(plan_.buffer_ld.size() - 1);
  }

  void emit(Step::Kind kind, Operand in, Operand in2, Operand out, std::uint32_t width,
            std::uint32_t index) {
    Step s;
    s.kind = kind;
    s.in = in;
    s.in2 = in2;
    s.out = out;
    s.width = width;
    s.index = index;
    plan_.steps.push_back(s);
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
      emit(Step::Kind::product, at_[static_cast<std::size_t>(n.a)],
           at_[static_cast<std::size_t>(n.b)], at_[i], 1, 0);
      done_[i] = true;
      return;
    }
    compile_group(n.input);
  }

  // Every not-yet-compiled mlp and gate that reads node `input`: one fused first layer, then
  // a softmax per gate and the remaining layers of each mlp.
  void compile_group(int input) {
    std::vector<std::size_t> group;
    for (std::size_t j = 1; j < net_.nodes.size(); ++j) {
      const Node& m = net_.nodes[j];
      if (!done_[j] && m.input == input && (m.kind == Node::Kind::mlp || m.kind == Node::Kind::gate))
        group.push_back(j);
    }
    // Blocks with an activation first, identity (gate logits) last: the order is free, and this
    // one keeps the ReLU panels of experts contiguous.
    std::stable_partition(group.begin(), group.end(), [&](std::size_t j) {
      return net_.nodes[j].layers[0].activation != Activation::identity;
    });
    std::vector<Block> blocks;
    for (std::size_t j : group) {
      const Node& m = net_.nodes[j];
      const std::string prefix = m.kind == Node::Kind::gate ? m.name : m.name + ".0";
      blocks.push_back({prefix + ".weight", prefix + ".bias", m.layers[0].units, m.layers[0].activation});
    }
    const Operand in = at_[static_cast<std::size_t>(input)];
    const std::size_t k = net_.nodes[static_cast<std::size_t>(input)].width;
    const std::uint32_t layer = pack_layer(k, blocks);

    // A lone one-layer tower writes its score straight into the scores buffer.
    const int lone_output = group.size() == 1 && net_.nodes[group[0]].layers.size() == 1
                                ? output_of(group[0])
                                : -1;
    const Operand out = lone_output >= 0
                            ? Operand{kScores, static_cast<std::uint32_t>(lone_output)}
                            : Operand{new_buffer(plan_.layers[layer].n), 0};
    emit(Step::Kind::dense, in, {}, out, static_cast<std::uint32_t>(plan_.layers[layer].n), layer);

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
      const std::string prefix = m.name + "." + std::to_string(li);
      const std::uint32_t layer =
          pack_layer(in_width, {{prefix + ".weight", prefix + ".bias", l.units, l.activation}});
      const bool last = li + 1 == m.layers.size();
      const Operand out = last && output >= 0
                              ? Operand{kScores, static_cast<std::uint32_t>(output)}
                              : Operand{new_buffer(l.units), 0};
      emit(Step::Kind::dense, at_[j], {}, out, l.units, layer);
      at_[j] = out;
      in_width = l.units;
    }
  }
};

inline Plan compile(const Spec& spec, const Network& net, const Weights& weights) {
  return Compiler(spec, net, weights).run();
}

}  // namespace mtlite::internal
