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
// Task sets (task_sets.hpp): every op and parameter carries the task losses it feeds; a parameter
// is *shared* when it feeds two or more.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/hash.hpp"
#include "../../core/shape.hpp"
#include "../../network.hpp"
#include "../../spec.hpp"
#include "../../weights.hpp"
#include "math.hpp"
#include "task_sets.hpp"

namespace mtlite::train {

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
  Shape shape;
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

// Walks the network once, in node order, and lays out its training program in phases, each
// filling the part of the Program the next one reads. It fuses as the runtime does
// (compile/compiler.hpp: every first layer that reads the same node joins one product), but in
// node order and without weight types or panel padding: the arena is float, rows pad to kPad.
class ProgramCompiler {
 public:
  ProgramCompiler(const Spec& spec, const Network& net) : spec_(spec), net_(net), at_(net.nodes.size()) {}

  Program run() {
    p_.tasks = spec_.tasks.size();
    lay_out_inputs();
    find_losses();
    compile_nodes();
    place_blocks();
    fold_relu_floors();
    list_tensors();
    list_heads_and_gates();
    return std::move(p_);
  }

 private:
  // Where a layer's parameters went: the block and first column of its units.
  struct LayerAt {
    std::size_t node = 0, layer = 0;
    std::uint32_t block = 0, col = 0;
  };

  const Spec& spec_;
  const Network& net_;
  Program p_;
  TaskSets sets_;
  std::vector<bool> is_head_;             // per node: the tower of a task with a loss
  std::vector<View> at_;                  // where each node's output lives
  std::map<int, std::size_t> reader_op_;  // node read -> the linear op fusing its readers' first layers
  std::map<std::string, LayerAt> layer_at_;  // by layer_prefix()

  // x's columns: every table feature's embedding in spec order, then the dense features; the
  // gather (engine.hpp) and the embedding gradient both address x through these.
  void lay_out_inputs() {
    std::size_t col = 0;
    for (std::size_t f = 0; f < spec_.features.size(); ++f)
      if (spec_.features[f].has_embedding()) {
        p_.tables.push_back(table_input(f, col));
        col += spec_.features[f].embedding_dim;
      }
    p_.emb_width = col;
    for (std::size_t f = 0, slot = 0; f < spec_.features.size(); ++f) {
      const Feature& feat = spec_.features[f];
      if (feat.has_embedding()) continue;
      p_.dense.push_back({static_cast<std::uint32_t>(f), static_cast<std::uint32_t>(col++),
                          static_cast<std::uint32_t>(slot++), feat.normalization, feat.mean,
                          1.0f / feat.stddev});
    }
    p_.input_width = col;
    if (net_.nodes.empty() || net_.nodes[0].width != col)
      throw Error("trainer: the network's input width disagrees with the spec");
  }

  // Feature f's table, its embedding at column col of x; ids and bags count their slots apart
  // because a Batch holds them in two arrays.
  TableInput table_input(std::size_t f, std::size_t col) {
    const Feature& feat = spec_.features[f];
    TableInput t;
    t.feature = static_cast<std::uint32_t>(f);
    t.col = static_cast<std::uint32_t>(col);
    t.dim = feat.embedding_dim;
    t.rows = feat.table_rows();
    t.bag = feat.kind == FeatureKind::multi_hot;
    t.hashed = feat.mapping == IdMapping::hashing;
    t.mean = t.bag && feat.pooling == Pooling::mean;
    t.size = feat.size;
    t.slot = static_cast<std::uint32_t>(t.bag ? p_.n_bags++ : p_.n_ids++);
    return t;
  }

  // The task of every served output, which tasks have a loss, ESMM's two tasks, and every node's
  // task set: the ops and tensors below carry them.
  void find_losses() {
    const std::size_t T = spec_.tasks.size();
    sets_ = task_sets(spec_, net_);
    for (std::size_t i = 0; i < net_.outputs.size(); ++i) p_.output_task.push_back(spec_.output_task(i));
    p_.has_loss.assign(T, false);
    is_head_.assign(net_.nodes.size(), false);
    for (std::size_t k = 0; k < T; ++k)
      if (sets_.tower[k] >= 0) {
        p_.has_loss[k] = true;
        is_head_[static_cast<std::size_t>(sets_.tower[k])] = true;
      }
    if (spec_.esmm) {
      p_.esmm_ctr = spec_.task_index(spec_.esmm->ctr);
      p_.esmm_cvr = spec_.task_index(spec_.esmm->cvr);
    }
  }

  // The ops, their buffers and their blocks' shapes, in node order, which is the order forward
  // runs them in; every node's output is computed before its first reader.
  void compile_nodes() {
    p_.buffer_width.push_back(static_cast<std::uint32_t>(p_.input_width));
    at_[0] = {0, 0, static_cast<std::uint32_t>(p_.input_width)};
    for (std::size_t i = 1; i < net_.nodes.size(); ++i) {
      switch (net_.nodes[i].kind) {
        case Node::Kind::input: throw Error("trainer: a second input node");
        case Node::Kind::mlp:
        case Node::Kind::gate: compile_layers(i); break;
        case Node::Kind::mix: compile_mix(i); break;
        case Node::Kind::product: break;  // computed inside the loss
      }
    }
    // dX of x is only worth computing when embeddings take it.
    for (const Op& op : p_.ops)
      if (op.kind == Op::Kind::linear && op.in.buffer == 0 && p_.emb_width > 0) p_.input_grad = true;
  }

  // An mlp's or gate's layers: layer 0 joins the op fusing every reader of its input (created at
  // the first reader, after the input is computed); later layers are ops of their own.
  void compile_layers(std::size_t i) {
    const Node& n = net_.nodes[i];
    std::size_t op = fused_op(n.input);
    View v;
    for (std::size_t l = 0; l < n.layers.size(); ++l) {
      if (l > 0) op = new_linear(v);
      v = add_segment(op, n.layers[l], epilogue(i, l), sets_.of[i]);
      layer_at_[layer_prefix(n, l)] = {i, l, p_.ops[op].block, v.col};
    }
    at_[i] = v;
  }

  std::size_t fused_op(int input) {
    const auto it = reader_op_.find(input);
    if (it != reader_op_.end()) return it->second;
    const std::size_t op = new_linear(at_[static_cast<std::size_t>(input)]);
    reader_op_[input] = op;
    return op;
  }

  // A tower's last layer is its task's logit (the sigmoid lives in the loss); a gate ends in a
  // softmax; every other layer in its activation.
  Segment::Epilogue epilogue(std::size_t i, std::size_t l) const {
    if (is_head_[i] && l + 1 == net_.nodes[i].layers.size()) return Segment::Epilogue::logit;
    return net_.nodes[i].kind == Node::Kind::gate ? Segment::Epilogue::softmax : Segment::Epilogue::activation;
  }

  // A linear op over `in` with an empty block and output buffer; segments widen both.
  std::size_t new_linear(View in) {
    Op op;
    op.kind = Op::Kind::linear;
    op.in = in;
    op.out = static_cast<std::uint32_t>(p_.buffer_width.size());
    op.block = static_cast<std::uint32_t>(p_.blocks.size());
    op.tasks.bits.assign(p_.tasks, 0);
    p_.buffer_width.push_back(0);
    ParamBlock b;
    b.in = in.width;
    p_.blocks.push_back(b);
    p_.ops.push_back(op);
    return p_.ops.size() - 1;
  }

  // Appends a layer's units to a linear op; returns where they land in its output buffer.
  View add_segment(std::size_t op_index, const Layer& layer, Segment::Epilogue e, const TaskSet& tasks) {
    Op& op = p_.ops[op_index];
    Segment s;
    s.col = p_.buffer_width[op.out];
    s.width = layer.units;
    s.epilogue = e;
    s.activation = layer.activation;
    op.segments.push_back(s);
    op.tasks.add(tasks);
    p_.buffer_width[op.out] += layer.units;
    p_.blocks[op.block].out += layer.units;
    return View{op.out, s.col, s.width};
  }

  void compile_mix(std::size_t i) {
    const Node& n = net_.nodes[i];
    Op op;
    op.kind = Op::Kind::mix;
    op.tasks = sets_.of[i];
    op.gate = at_[static_cast<std::size_t>(n.gate)];
    for (int e : n.experts) op.experts.push_back(at_[static_cast<std::size_t>(e)]);
    op.mixed = {static_cast<std::uint32_t>(p_.buffer_width.size()), 0, n.width};
    p_.buffer_width.push_back(n.width);
    at_[i] = op.mixed;
    p_.ops.push_back(op);
  }

  // Offsets of every block's Wt and bias in the dense arena, and of its W copy (rows padded to
  // kPad so dX reads whole vectors); the sizes the trainer allocates.
  void place_blocks() {
    std::size_t off = 0, copy = 0;
    for (ParamBlock& b : p_.blocks) {
      b.wt = off;
      off += static_cast<std::size_t>(b.in) * b.out;
      b.bias = off;
      off += b.out;
      b.in_pad = math::round_up(b.in, math::kPad);
      b.w = copy;
      copy += b.in_pad * b.out;
    }
    p_.arena_size = off;
    p_.copy_size = copy;
    p_.demb_ld = math::round_up(p_.input_width ? p_.input_width : 1, math::kPad);
  }

  static bool relu(const Segment& s) {
    return s.epilogue == Segment::Epilogue::activation && s.activation == Activation::relu;
  }

  // Every linear op with a ReLU segment gets its floor, so the product applies the ReLU itself.
  void fold_relu_floors() {
    for (Op& op : p_.ops) {
      if (op.kind != Op::Kind::linear || std::none_of(op.segments.begin(), op.segments.end(), relu)) continue;
      const std::uint32_t out = p_.blocks[op.block].out;
      op.floor.assign(math::round_up(out, math::kPad) + math::kPad, -std::numeric_limits<float>::infinity());
      for (const Segment& s : op.segments)
        if (relu(s)) std::fill(op.floor.begin() + s.col, op.floor.begin() + s.col + s.width, 0.0f);
    }
  }

  // Every tensor of parameters(spec, net), in its order and with its names and shapes, located
  // in a table or a column range of a block: what Weights convert from and to (parameters.hpp).
  void list_tensors() {
    std::uint32_t table = 0;
    for (const ParamInfo& info : parameters(spec_, net_)) {
      ParamRange r;
      r.name = info.name;
      r.role = info.role;
      r.shape = info.shape;
      if (info.role == ParamInfo::Role::embedding) {
        r.index = table++;
        r.tasks = sets_.of[0];
        r.shared = sets_.shared(0);
      } else {
        const auto it = layer_at_.find(info.layer);
        if (it == layer_at_.end()) throw Error("trainer: parameter '" + info.name + "' has no compiled layer");
        const LayerAt& at = it->second;
        r.index = at.block;
        r.col = at.col;
        r.width = net_.nodes[at.node].layers[at.layer].units;
        r.tasks = sets_.of[at.node];
        r.shared = sets_.shared(at.node);
        r.last_shared = info.role == ParamInfo::Role::weight && sets_.last_shared[at.node] &&
                        at.layer + 1 == net_.nodes[at.node].layers.size();
      }
      p_.tensors.push_back(std::move(r));
    }
    if (table != p_.tables.size() || p_.tensors.size() != table + 2 * layer_at_.size())
      throw Error("trainer: parameter list disagrees with weights.hpp");
  }

  // Each task's logit (what its loss reads) and each gate's softmax with the names of the experts
  // it weighs (what diagnostics.hpp reports).
  void list_heads_and_gates() {
    p_.heads.assign(p_.tasks, View{});
    for (std::size_t k = 0; k < p_.tasks; ++k)
      if (sets_.tower[k] >= 0) p_.heads[k] = at_[static_cast<std::size_t>(sets_.tower[k])];
    for (int g : net_.gates) {
      GateView info;
      info.name = net_.nodes[static_cast<std::size_t>(g)].name;
      info.view = at_[static_cast<std::size_t>(g)];
      for (const Node& n : net_.nodes)
        if (n.kind == Node::Kind::mix && n.gate == g)
          for (int e : n.experts) info.experts.push_back(net_.nodes[static_cast<std::size_t>(e)].name);
      p_.gates.push_back(info);
    }
  }
};

inline Program compile_program(const Spec& spec, const Network& net) { return ProgramCompiler(spec, net).run(); }
}  // namespace detail
}  // namespace mtlite::train
