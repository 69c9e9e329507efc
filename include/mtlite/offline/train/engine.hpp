// Forward and backward over a chunk of rows: what one thread does with its shard of a batch.
//
// A Workspace holds a chunk's activations and their gradients, buffer by buffer (program.hpp),
// each [chunk][ld] with ld = round_up(width, kPad). The forward pass keeps every activation
// (after its epilogue), which is all the backward pass needs: relu, sigmoid and tanh
// derivatives and the softmax Jacobian are functions of the outputs.
//
// backward() starts from the gradients that the caller wrote at the task logits (loss.hpp) and
// accumulates
//   dense parameter gradients  into `dense_grad` (arena layout)
//   the gradient of x          into the batch's `demb` rows, demb_ld apart (the caller
//                              scatters the embedding columns into table rows,
//                              deterministically, after all threads are done)
// With task >= 0 only the ops feeding that task's loss run (a per-task pass).
//
// The ReLU of a linear op is folded into its product (Op::floor); the gradient of x is computed
// for all of x's columns (the dense features' share costs nothing: the product's vectors are
// as wide either way).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../input.hpp"
#include "math.hpp"
#include "parameters.hpp"
#include "program.hpp"

namespace mtlite::train {

struct Workspace {
  std::size_t chunk = 0;
  std::vector<std::size_t> offset, ld;  // per buffer
  std::vector<float> act, grad;

  Workspace() = default;
  // Buffer 0 (x) has one column more than x, always 1: the product x1^T dy of the op that reads
  // x gives its weight and bias gradients at once (bias follows Wt in the arena). Its gradient
  // buffer is unused (dx goes to the batch's demb rows).
  Workspace(const Program& p, std::size_t rows) : chunk(rows) {
    std::size_t off = 0;
    for (std::size_t b = 0; b < p.buffer_width.size(); ++b) {
      const std::size_t w = p.buffer_width[b] + (b == 0 ? 1 : 0);
      const std::size_t l = math::round_up(w ? w : 1, math::kPad);
      offset.push_back(off);
      ld.push_back(l);
      off += l * rows;
    }
    act.assign(off + math::kPad, 0.0f);
    grad.assign(off + math::kPad, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) act[r * ld[0] + p.input_width] = 1.0f;
  }
  float* a(std::uint32_t b) { return act.data() + offset[b]; }
  const float* a(std::uint32_t b) const { return act.data() + offset[b]; }
  float* g(std::uint32_t b) { return grad.data() + offset[b]; }
  void zero_grad(std::size_t rows) {
    for (std::size_t b = 1; b < ld.size(); ++b) std::memset(g(static_cast<std::uint32_t>(b)), 0, rows * ld[b] * sizeof(float));
  }
};

// Table rows of the embedding lookups of a batch, recorded by gather() for the backward scatter:
// per table, one row per batch row (categorical) or per bag entry (multi-hot, indexed like the
// bag's ids).
struct LookupRows {
  std::vector<std::vector<std::uint32_t>> rows;
};

namespace detail {

// Short rows of embedding tables: y = x, y += x, y += a x for n floats. The common sizes go
// through fixed-size local arrays, which the compiler turns into single vector operations.
template <std::size_t D>
MTLITE_ALWAYS_INLINE void fixed_axpy(float* y, const float* x, float a, bool scaled) {
  float u[D], v[D];
  std::memcpy(u, y, sizeof u);
  std::memcpy(v, x, sizeof v);
  if (scaled)
    for (std::size_t i = 0; i < D; ++i) u[i] += a * v[i];
  else
    for (std::size_t i = 0; i < D; ++i) u[i] += v[i];
  std::memcpy(y, u, sizeof u);
}

MTLITE_ALWAYS_INLINE void row_copy(float* y, const float* x, std::size_t n) {
  switch (n) {
    case 4: std::memcpy(y, x, 4 * sizeof(float)); return;
    case 8: std::memcpy(y, x, 8 * sizeof(float)); return;
    case 16: std::memcpy(y, x, 16 * sizeof(float)); return;
    default: std::memcpy(y, x, n * sizeof(float)); return;
  }
}

// y += x (scaled = false) or y += a x.
MTLITE_ALWAYS_INLINE void row_add(float* y, const float* x, std::size_t n, float a = 1.0f, bool scaled = false) {
  switch (n) {
    case 4: fixed_axpy<4>(y, x, a, scaled); return;
    case 8: fixed_axpy<8>(y, x, a, scaled); return;
    case 16: fixed_axpy<16>(y, x, a, scaled); return;
    default:
      if (scaled)
        math::axpy(n, a, x, y);
      else
        math::add(n, x, y);
      return;
  }
}

}  // namespace detail

// x for batch rows [r0, r0 + n): embeddings (sum or mean over a bag; an empty bag gives zeros),
// then the normalised dense values. Inputs must have been checked. Row by row: a row's ids and
// its x are contiguous; what each lookup needs is first copied into a compact list.
inline void gather(const Program& p, const Spec& spec, const Parameters& params, const Batch& batch,
                   std::size_t r0, std::size_t n, float* x, std::size_t ldx, LookupRows* record) {
  struct Lookup {
    const float* table;
    std::uint32_t* rec;
    std::uint64_t size;
    std::uint32_t dim, col, slot;
    bool hashed;
  };
  constexpr std::size_t kLocal = 64;
  Lookup local[kLocal];
  std::vector<Lookup> heap;
  Lookup* cats = local;
  std::size_t n_cats = 0;
  if (p.n_ids > kLocal) {
    heap.resize(p.n_ids);
    cats = heap.data();
  }
  for (std::size_t t = 0; t < p.tables.size(); ++t) {
    const TableInput& info = p.tables[t];
    if (info.bag) continue;
    cats[n_cats++] = {params.tables[t].data(), record ? record->rows[t].data() : nullptr, info.size,
                      info.dim, info.col, info.slot, info.hashed};
  }
  const std::size_t n_dense = p.dense.size();
  for (std::size_t r = r0; r < r0 + n; ++r) {
    float* xr = x + (r - r0) * ldx;
    const std::int64_t* ids = batch.ids.data() + r * p.n_ids;
    for (std::size_t c = 0; c < n_cats; ++c) {
      const Lookup& l = cats[c];
      const std::int64_t id = ids[l.slot];
      const std::uint64_t row = l.hashed ? hash_bucket(static_cast<std::uint64_t>(id), l.size)
                                : id >= 0 && static_cast<std::uint64_t>(id) < l.size ? static_cast<std::uint64_t>(id)
                                                                                     : l.size;
      if (l.rec) l.rec[r] = static_cast<std::uint32_t>(row);
      detail::row_copy(xr + l.col, l.table + row * l.dim, l.dim);
    }
    for (std::size_t t = 0; t < p.tables.size(); ++t) {
      const TableInput& info = p.tables[t];
      if (!info.bag) continue;
      const float* table = params.tables[t].data();
      const std::size_t dim = info.dim;
      float* out = xr + info.col;
      const Bag& bag = batch.bags[info.slot];
      std::memset(out, 0, dim * sizeof(float));
      const std::size_t begin = bag.offsets[r], end = bag.offsets[r + 1];
      for (std::size_t i = begin; i < end; ++i) {
        const std::uint64_t row = info.row_of(bag.ids[i]);
        if (record) record->rows[t][i] = static_cast<std::uint32_t>(row);
        detail::row_add(out, table + row * dim, dim);
      }
      if (info.mean && end > begin) {
        const float inv = 1.0f / static_cast<float>(end - begin);
        for (std::size_t d = 0; d < dim; ++d) out[d] *= inv;
      }
    }
    const float* in = batch.dense.data() + r * n_dense;
    for (const DenseInfo& d : p.dense) {
      const float v = in[d.slot];
      switch (d.normalization) {
        case Normalization::none: xr[d.col] = v; break;
        case Normalization::standardize: xr[d.col] = (v - d.mean) * d.inv_std; break;
        case Normalization::log1p: xr[d.col] = std::copysign(std::log1p(std::fabs(v)), v); break;
        case Normalization::log1p_standardize:
          xr[d.col] = (std::copysign(std::log1p(std::fabs(v)), v) - d.mean) * d.inv_std;
          break;
      }
    }
  }
  (void)spec;
}

// out[r] = sum_e g[r][e] expert_e[r]
inline void mix_forward(const Op& op, Workspace& ws, std::size_t n) {
  const std::size_t w = op.mixed.width, ldo = ws.ld[op.mixed.buffer];
  const std::size_t ldg = ws.ld[op.gate.buffer];
  float* out = ws.a(op.mixed.buffer) + op.mixed.col;
  const float* g = ws.a(op.gate.buffer) + op.gate.col;
  for (std::size_t r = 0; r < n; ++r) std::memset(out + r * ldo, 0, w * sizeof(float));
  for (std::size_t e = 0; e < op.experts.size(); ++e) {
    const View& v = op.experts[e];
    const float* h = ws.a(v.buffer) + v.col;
    const std::size_t ldh = ws.ld[v.buffer];
    for (std::size_t r = 0; r < n; ++r) math::axpy(w, g[r * ldg + e], h + r * ldh, out + r * ldo);
  }
}

// dg[r][e] += dout[r] . expert_e[r];  dexpert_e[r] += g[r][e] dout[r]
inline void mix_backward(const Op& op, Workspace& ws, std::size_t n) {
  const std::size_t w = op.mixed.width, ldo = ws.ld[op.mixed.buffer];
  const std::size_t ldg = ws.ld[op.gate.buffer];
  const float* dout = ws.g(op.mixed.buffer) + op.mixed.col;
  const float* g = ws.a(op.gate.buffer) + op.gate.col;
  float* dg = ws.g(op.gate.buffer) + op.gate.col;
  const std::size_t E = op.experts.size();
  for (std::size_t e = 0; e < E; ++e) {
    const View& v = op.experts[e];
    const float* h = ws.a(v.buffer) + v.col;
    float* dh = ws.g(v.buffer) + v.col;
    const std::size_t ldh = ws.ld[v.buffer];
    for (std::size_t r = 0; r < n; ++r) {
      dg[r * ldg + e] += math::dot(w, dout + r * ldo, h + r * ldh);
      math::axpy(w, g[r * ldg + e], dout + r * ldo, dh + r * ldh);
    }
  }
}

// Every op for the first n rows of the workspace (x already gathered into buffer 0).
inline void forward(const Program& p, const Parameters& params, Workspace& ws, std::size_t n) {
  for (const Op& op : p.ops) {
    if (op.kind == Op::Kind::linear) {
      const ParamBlock& b = p.blocks[op.block];
      const float* x = ws.a(op.in.buffer) + op.in.col;
      float* y = ws.a(op.out);
      const std::size_t ldx = ws.ld[op.in.buffer], ldy = ws.ld[op.out];
      math::GemmOptions go;
      go.bias = params.arena.data() + b.bias;
      go.floor = op.floor.empty() ? nullptr : op.floor.data();
      go.padded = true;
      math::gemm(n, b.out, b.in, x, ldx, 1, params.arena.data() + b.wt, b.out, y, ldy, go);
      for (const Segment& s : op.segments) {
        if (s.epilogue == Segment::Epilogue::activation && s.activation != Activation::relu)
          math::activate_rows(s.activation, n, s.width, y + s.col, ldy);
        else if (s.epilogue == Segment::Epilogue::softmax)
          math::softmax_rows(n, s.width, y + s.col, ldy);
      }
    } else {
      mix_forward(op, ws, n);
    }
  }
}

// Batch rows [begin, end) through ws chunk by chunk: gather x (recording the lookups when
// `record` is set), forward, then f(r0, n) for the chunk of rows [r0, r0 + n) while its
// activations are in ws.
template <class F>
void forward_chunks(const Program& p, const Spec& spec, const Parameters& params, const Batch& batch,
                    std::size_t begin, std::size_t end, Workspace& ws, LookupRows* record, F&& f) {
  for (std::size_t r0 = begin; r0 < end; r0 += ws.chunk) {
    const std::size_t n = std::min(ws.chunk, end - r0);
    gather(p, spec, params, batch, r0, n, ws.a(0), ws.ld[0], record);
    forward(p, params, ws, n);
    f(r0, n);
  }
}

// Backward over the first n rows (the chunk starting at batch row r0). The logit gradients must
// be in ws.grad; every other gradient buffer must be zero.
inline void backward(const Program& p, const Parameters& params, Workspace& ws, std::size_t n,
                     int task, float* dense_grad, float* demb, std::size_t r0) {
  for (std::size_t i = p.ops.size(); i-- > 0;) {
    const Op& op = p.ops[i];
    if (task >= 0 ? !op.tasks.has(static_cast<std::size_t>(task)) : op.tasks.count() == 0) continue;
    if (op.kind == Op::Kind::linear) {
      const ParamBlock& b = p.blocks[op.block];
      const float* y = ws.a(op.out);
      float* dy = ws.g(op.out);
      const std::size_t ldy = ws.ld[op.out];
      for (const Segment& s : op.segments) {
        if (s.epilogue == Segment::Epilogue::activation)
          math::activation_grad_rows(s.activation, n, s.width, y + s.col, ldy, dy + s.col, ldy);
        else if (s.epilogue == Segment::Epilogue::softmax)
          math::softmax_grad_rows(n, s.width, y + s.col, ldy, dy + s.col, ldy);
      }
      const float* x = ws.a(op.in.buffer) + op.in.col;
      const std::size_t ldx = ws.ld[op.in.buffer];
      // dWt[in][out] += x^T dy; db += column sums of dy (for x: the ones column, see Workspace).
      math::GemmOptions acc;
      acc.accumulate = true;
      if (op.in.buffer == 0 && op.in.col == 0 && op.in.width == p.input_width) {
        math::gemm(b.in + 1, b.out, n, x, 1, ldx, dy, ldy, dense_grad + b.wt, b.out, acc);
      } else {
        math::gemm(b.in, b.out, n, x, 1, ldx, dy, ldy, dense_grad + b.wt, b.out, acc);
        math::column_sums(n, b.out, dy, ldy, dense_grad + b.bias);
      }
      // dx += dy W. W's rows are zero past `in`, so C's lanes past the input's columns are
      // rewritten unchanged: the padded path is exact.
      const float* w = params.copy.data() + b.w;
      acc.padded = true;
      if (op.in.buffer == 0) {
        if (demb && p.emb_width)
          math::gemm(n, b.in, b.out, dy, ldy, 1, w, b.in_pad, demb + r0 * p.demb_ld, p.demb_ld, acc);
      } else {
        math::gemm(n, op.in.width, b.out, dy, ldy, 1, w, b.in_pad, ws.g(op.in.buffer) + op.in.col,
                      ws.ld[op.in.buffer], acc);
      }
    } else {
      mix_backward(op, ws, n);
    }
  }
}

}  // namespace mtlite::train
