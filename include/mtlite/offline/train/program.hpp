// The network (network.hpp) compiled for training: a list of ops over row-major activation
// buffers, the fused parameter blocks they use, and which task losses every part feeds.
//
// Ops
//   linear  Y = X Wt + b over one parameter block, then an epilogue per segment of Y's columns:
//           an activation, a softmax (a gate), or nothing (a task's logit: the head's sigmoid
//           lives in the loss). Layers that read the same node are fused into one block: all
//           experts' first layers and every gate of an MMoE read x, so x is read by one product
//           [D x (E*H + T*E)], and dX of x is one product too.
//   mix     out = sum_e g_e expert_e
// The product node (ESMM's pCTCVR) has no op: its forward and backward are part of the loss,
// computed stably from the two logits (loss.hpp).
//
// Buffers: buffer 0 is x; every op writes a buffer of its own, `buffer_width[b]` floats wide
// (the activations of a chunk of rows are [rows][round_up(width, kPad)]).
//
// Parameter blocks, in the dense arena (one flat float array, what the optimiser walks):
//   Wt   [in][out]  the fused weight, transposed from the logical [out, in]
//   bias [out]
// A logical tensor of weights.hpp (ParamRange) is a column range [col, col + width) of a block.
// A copy W [out][in_pad] of every block in the logical orientation serves dX; it is refreshed
// after every update.
//
// Task sets: loss k (the loss of task k, or for the ESMM cvr task the pCTCVR loss) depends on a
// node when the node is an ancestor of that loss. A parameter is *shared* when it feeds two or
// more losses (embeddings are shared as soon as two losses exist).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/hash.hpp"
#include "../../network.hpp"
#include "../../spec.hpp"
#include "../../weights.hpp"
#include "math.hpp"

namespace mtlite::train {

// A set of task losses, one flag per task.
struct TaskSet {
  std::vector<std::uint8_t> bits;
  bool has(std::size_t k) const { return k < bits.size() && bits[k]; }
  std::size_t count() const {
    std::size_t n = 0;
    for (std::uint8_t b : bits) n += b;
    return n;
  }
  void add(const TaskSet& o) {
    if (bits.size() < o.bits.size()) bits.resize(o.bits.size(), 0);
    for (std::size_t i = 0; i < o.bits.size(); ++i) bits[i] |= o.bits[i];
  }
};

// Columns [col, col + width) of a buffer.
struct View {
  std::uint32_t buffer = 0, col = 0, width = 0;
};

struct Segment {
  enum class Epilogue : std::uint8_t { activation, softmax, logit };
  std::uint32_t col = 0, width = 0;
  Epilogue epilogue = Epilogue::activation;
  Activation activation = Activation::identity;
};

struct Op {
  enum class Kind : std::uint8_t { linear, mix };
  Kind kind = Kind::linear;
  TaskSet tasks;  // the losses this op feeds; a per-task backward pass skips the others
  // linear
  std::uint32_t block = 0;
  View in;
  std::uint32_t out = 0;
  std::vector<Segment> segments;
  // The ReLU of the segments that have one, folded into the product: max(y, floor) with floor
  // 0 on ReLU columns and -inf elsewhere (round_up(out) + kPad floats; empty = no ReLU).
  std::vector<float> floor;
  // mix
  View gate;
  std::vector<View> experts;
  View mixed;
};

struct ParamBlock {
  std::uint32_t in = 0, out = 0;
  std::size_t wt = 0, bias = 0;  // offsets in the dense arena
  std::size_t w = 0, in_pad = 0;  // offset and row length of the W copy
};

struct ParamRange {
  std::string name;
  ParamInfo::Role role = ParamInfo::Role::weight;
  std::vector<std::uint64_t> shape;
  std::uint32_t index = 0;  // the block (weight, bias) or the table (embedding)
  std::uint32_t col = 0;    // weight, bias: first column in the block
  std::uint32_t width = 0;  // weight, bias: units of the logical layer
  TaskSet tasks;
  bool shared = false;
  bool last_shared = false;  // a weight of the last shared layer (GradNorm's W)
};

struct TableInput {
  std::uint32_t feature = 0;  // index in spec.features
  std::uint32_t col = 0;      // first column in x
  std::uint32_t dim = 0;
  std::uint64_t rows = 0;
  std::uint32_t slot = 0;  // index among the categorical (ids) or multi-hot (bags) features
  bool bag = false;
  bool hashed = false;  // IdMapping::hashing
  bool mean = false;    // a bag pooled by its mean
  std::uint64_t size = 0;  // Feature::size (vocabulary or buckets)

  // Feature::row_of, from the fields above.
  std::uint64_t row_of(std::int64_t id) const noexcept {
    if (hashed) return hash_bucket(static_cast<std::uint64_t>(id), size);
    return id >= 0 && static_cast<std::uint64_t>(id) < size ? static_cast<std::uint64_t>(id) : size;
  }
};

struct DenseInfo {
  std::uint32_t feature = 0, col = 0, slot = 0;
  Normalization normalization = Normalization::none;
  float mean = 0.0f, inv_std = 1.0f;  // standardize: (v - mean) * inv_std
};

struct GateView {
  std::string name;
  View view;
  std::vector<std::string> experts;  // expert node names, in gate order
};

struct Program {
  std::size_t tasks = 0;
  std::vector<std::uint32_t> buffer_width;
  std::vector<Op> ops;
  std::vector<ParamBlock> blocks;
  std::size_t arena_size = 0;  // floats of parameters in the dense arena (no slack)
  std::size_t copy_size = 0;
  std::vector<ParamRange> tensors;  // in parameters(spec) order
  std::vector<TableInput> tables;   // embedding features in spec order
  std::vector<DenseInfo> dense;    // dense features in spec order
  std::size_t n_ids = 0, n_bags = 0;
  std::size_t emb_width = 0, input_width = 0;
  std::size_t demb_ld = 0;  // row length of the gradient of x: round_up(input_width, kPad)
  std::vector<View> heads;       // per task: its logit (width 0 when the task has no tower)
  std::vector<bool> has_loss;    // per task
  int esmm_ctr = -1, esmm_cvr = -1;
  std::vector<GateView> gates;   // every gate of the network
  std::vector<int> output_task;  // per served output (Spec::output_name order); -1 = pCTCVR
  bool input_grad = false;       // some op reads x and there are embeddings
};

namespace detail {

inline Program compile_program(const Spec& spec, const Network& net) {
  using math::kPad;
  using math::round_up;
  Program p;
  const std::size_t T = spec.tasks.size();
  p.tasks = T;

  // Inputs: embeddings in spec order, then dense features.
  std::size_t col = 0;
  for (std::size_t f = 0; f < spec.features.size(); ++f) {
    const Feature& feat = spec.features[f];
    if (!feat.has_embedding()) continue;
    TableInput t;
    t.feature = static_cast<std::uint32_t>(f);
    t.col = static_cast<std::uint32_t>(col);
    t.dim = feat.embedding_dim;
    t.rows = feat.table_rows();
    t.bag = feat.kind == FeatureKind::multi_hot;
    t.hashed = feat.mapping == IdMapping::hashing;
    t.mean = t.bag && feat.pooling == Pooling::mean;
    t.size = feat.size;
    t.slot = static_cast<std::uint32_t>(t.bag ? p.n_bags++ : p.n_ids++);
    p.tables.push_back(t);
    col += feat.embedding_dim;
  }
  p.emb_width = col;
  for (std::size_t f = 0, slot = 0; f < spec.features.size(); ++f) {
    if (spec.features[f].has_embedding()) continue;
    const Feature& feat = spec.features[f];
    p.dense.push_back({static_cast<std::uint32_t>(f), static_cast<std::uint32_t>(col++),
                       static_cast<std::uint32_t>(slot++), feat.normalization, feat.mean,
                       1.0f / feat.stddev});
  }
  p.input_width = col;
  if (net.nodes.empty() || net.nodes[0].width != col)
    throw Error("trainer: the network's input width disagrees with the spec");

  // Loss dependencies: every node's task set.
  const std::size_t N = net.nodes.size();
  std::vector<TaskSet> sets(N, TaskSet{std::vector<std::uint8_t>(T, 0)});
  std::vector<int> tower(T, -1);
  for (std::size_t i = 0; i < net.outputs.size(); ++i) {
    const int k = spec.output_task(i);
    p.output_task.push_back(k);
    if (k >= 0) tower[static_cast<std::size_t>(k)] = net.outputs[i];
  }
  p.has_loss.assign(T, false);
  for (std::size_t k = 0; k < T; ++k)
    if (tower[k] >= 0) {
      p.has_loss[k] = true;
      sets[static_cast<std::size_t>(tower[k])].bits[k] = 1;
    }
  if (spec.esmm) {
    p.esmm_ctr = spec.task_index(spec.esmm->ctr);
    p.esmm_cvr = spec.task_index(spec.esmm->cvr);
    // The cvr task's loss is BCE(click AND conversion, pCTR * pCVR): it depends on both towers.
    sets[static_cast<std::size_t>(tower[static_cast<std::size_t>(p.esmm_ctr)])]
        .bits[static_cast<std::size_t>(p.esmm_cvr)] = 1;
  }
  for (std::size_t i = N; i-- > 1;) {
    const Node& n = net.nodes[i];
    if (n.kind == Node::Kind::product) continue;
    for (int j : {n.input, n.gate})
      if (j >= 0) sets[static_cast<std::size_t>(j)].add(sets[i]);
    for (int e : n.experts) sets[static_cast<std::size_t>(e)].add(sets[i]);
  }
  std::vector<bool> is_head(N, false);
  for (std::size_t k = 0; k < T; ++k)
    if (tower[k] >= 0) is_head[static_cast<std::size_t>(tower[k])] = true;

  // Ops. Layer 0 of every mlp and gate joins the linear op of the node it reads (created at its
  // first reader, which is after the node is computed); later layers are ops of their own.
  p.buffer_width.push_back(static_cast<std::uint32_t>(col));
  std::vector<View> node_view(N);
  node_view[0] = {0, 0, static_cast<std::uint32_t>(col)};
  std::map<int, std::size_t> reader_op;  // node read -> linear op fusing its readers
  struct LayerAt {
    std::size_t block;
    std::uint32_t col;
  };
  std::vector<std::vector<LayerAt>> layer_at(N);
  auto new_linear = [&](View in) {
    Op op;
    op.kind = Op::Kind::linear;
    op.in = in;
    op.out = static_cast<std::uint32_t>(p.buffer_width.size());
    op.block = static_cast<std::uint32_t>(p.blocks.size());
    op.tasks.bits.assign(T, 0);
    p.buffer_width.push_back(0);
    ParamBlock b;
    b.in = in.width;
    p.blocks.push_back(b);
    p.ops.push_back(op);
    return p.ops.size() - 1;
  };
  auto add_segment = [&](std::size_t op_index, const Layer& layer, Segment::Epilogue e,
                         const TaskSet& tasks) {
    Op& op = p.ops[op_index];
    Segment s;
    s.col = p.buffer_width[op.out];
    s.width = layer.units;
    s.epilogue = e;
    s.activation = layer.activation;
    op.segments.push_back(s);
    op.tasks.add(tasks);
    p.buffer_width[op.out] += layer.units;
    p.blocks[op.block].out += layer.units;
    return View{op.out, s.col, s.width};
  };
  for (std::size_t i = 1; i < N; ++i) {
    const Node& n = net.nodes[i];
    switch (n.kind) {
      case Node::Kind::input:
        throw Error("trainer: a second input node");
      case Node::Kind::mlp:
      case Node::Kind::gate: {
        auto it = reader_op.find(n.input);
        std::size_t op_index;
        if (it == reader_op.end()) {
          op_index = new_linear(node_view[static_cast<std::size_t>(n.input)]);
          reader_op[n.input] = op_index;
        } else {
          op_index = it->second;
        }
        View v;
        for (std::size_t l = 0; l < n.layers.size(); ++l) {
          if (l > 0) op_index = new_linear(v);
          Segment::Epilogue e = Segment::Epilogue::activation;
          if (n.kind == Node::Kind::gate) e = Segment::Epilogue::softmax;
          if (is_head[i] && l + 1 == n.layers.size()) e = Segment::Epilogue::logit;
          v = add_segment(op_index, n.layers[l], e, sets[i]);
          layer_at[i].push_back({p.ops[op_index].block, v.col});
        }
        node_view[i] = v;
        break;
      }
      case Node::Kind::mix: {
        Op op;
        op.kind = Op::Kind::mix;
        op.tasks = sets[i];
        op.gate = node_view[static_cast<std::size_t>(n.gate)];
        for (int e : n.experts) op.experts.push_back(node_view[static_cast<std::size_t>(e)]);
        op.mixed = {static_cast<std::uint32_t>(p.buffer_width.size()), 0, n.width};
        p.buffer_width.push_back(n.width);
        node_view[i] = op.mixed;
        p.ops.push_back(op);
        break;
      }
      case Node::Kind::product:
        break;
    }
  }
  for (const Op& op : p.ops)
    if (op.kind == Op::Kind::linear && op.in.buffer == 0 && p.emb_width > 0) p.input_grad = true;

  // The dense arena and the W copies.
  std::size_t off = 0, copy = 0;
  for (ParamBlock& b : p.blocks) {
    b.wt = off;
    off += static_cast<std::size_t>(b.in) * b.out;
    b.bias = off;
    off += b.out;
    b.in_pad = round_up(b.in, kPad);
    b.w = copy;
    copy += b.in_pad * b.out;
  }
  p.arena_size = off;
  p.copy_size = copy;
  p.demb_ld = round_up(p.input_width ? p.input_width : 1, kPad);
  for (Op& op : p.ops) {
    if (op.kind != Op::Kind::linear) continue;
    bool relu = false;
    for (const Segment& s : op.segments)
      relu = relu || (s.epilogue == Segment::Epilogue::activation && s.activation == Activation::relu);
    if (!relu) continue;
    const std::uint32_t out = p.blocks[op.block].out;
    op.floor.assign(round_up(out, kPad) + kPad, -std::numeric_limits<float>::infinity());
    for (const Segment& s : op.segments)
      if (s.epilogue == Segment::Epilogue::activation && s.activation == Activation::relu)
        std::fill(op.floor.begin() + s.col, op.floor.begin() + s.col + s.width, 0.0f);
  }

  p.heads.assign(T, View{});
  for (std::size_t k = 0; k < T; ++k)
    if (tower[k] >= 0) p.heads[k] = node_view[static_cast<std::size_t>(tower[k])];

  // Which nodes read which: for "shared" and the last shared layer.
  std::vector<std::vector<int>> readers(N);
  for (std::size_t i = 1; i < N; ++i) {
    const Node& n = net.nodes[i];
    if (n.kind == Node::Kind::product) continue;
    for (int j : {n.input, n.gate})
      if (j >= 0) readers[static_cast<std::size_t>(j)].push_back(static_cast<int>(i));
    for (int e : n.experts) readers[static_cast<std::size_t>(e)].push_back(static_cast<int>(i));
  }
  auto shared_node = [&](std::size_t i) { return sets[i].count() >= 2; };

  // Tensors, in the order of parameters(spec, net).
  for (std::size_t t = 0; t < p.tables.size(); ++t) {
    const Feature& f = spec.features[p.tables[t].feature];
    ParamRange r;
    r.name = embedding_name(f.name);
    r.role = ParamInfo::Role::embedding;
    r.shape = {f.table_rows(), f.embedding_dim};
    r.index = static_cast<std::uint32_t>(t);
    r.tasks = sets[0];
    r.shared = shared_node(0);
    p.tensors.push_back(r);
  }
  for (std::size_t i = 1; i < N; ++i) {
    const Node& n = net.nodes[i];
    if (n.kind != Node::Kind::mlp && n.kind != Node::Kind::gate) continue;
    bool last_shared = false;
    if (n.kind == Node::Kind::mlp && shared_node(i)) {
      last_shared = true;
      for (int rd : readers[i]) last_shared = last_shared && !shared_node(static_cast<std::size_t>(rd));
    }
    std::uint64_t in = net.nodes[static_cast<std::size_t>(n.input)].width;
    for (std::size_t l = 0; l < n.layers.size(); ++l) {
      const std::string prefix = layer_prefix(n, l);
      ParamRange r;
      r.index = static_cast<std::uint32_t>(layer_at[i][l].block);
      r.col = layer_at[i][l].col;
      r.width = n.layers[l].units;
      r.tasks = sets[i];
      r.shared = shared_node(i);
      r.name = prefix + ".weight";
      r.role = ParamInfo::Role::weight;
      r.shape = {n.layers[l].units, in};
      r.last_shared = last_shared && l + 1 == n.layers.size();
      p.tensors.push_back(r);
      r.name = prefix + ".bias";
      r.role = ParamInfo::Role::bias;
      r.shape = {n.layers[l].units};
      r.last_shared = false;
      p.tensors.push_back(r);
      in = n.layers[l].units;
    }
  }
  const std::vector<ParamInfo> infos = parameters(spec, net);
  if (infos.size() != p.tensors.size())
    throw Error("trainer: parameter list disagrees with weights.hpp");
  for (std::size_t i = 0; i < infos.size(); ++i)
    if (infos[i].name != p.tensors[i].name || infos[i].shape != p.tensors[i].shape)
      throw Error("trainer: parameter '" + infos[i].name + "' disagrees with weights.hpp");

  for (int g : net.gates) {
    GateView info;
    info.name = net.nodes[static_cast<std::size_t>(g)].name;
    info.view = node_view[static_cast<std::size_t>(g)];
    for (const Node& n : net.nodes)
      if (n.kind == Node::Kind::mix && n.gate == g)
        for (int e : n.experts) info.experts.push_back(net.nodes[static_cast<std::size_t>(e)].name);
    p.gates.push_back(info);
  }
  return p;
}

}  // namespace detail
}  // namespace mtlite::train
