// The trainer's float parameters in their training layout (program.hpp), and the exact
// conversion to and from mtlite::Weights (the logical layout of weights.hpp).
//
//   arena   every dense parameter: per block Wt [in][out] then bias [out]; kPad floats of slack
//           at the end (the GEMM reads whole vectors)
//   copy    per block W [out][in_pad], the logical orientation, for dX; refresh() after any
//           change of the arena
//   tables  per embedding feature, [rows][dim] row-major (the logical layout already)
//
// Optimiser state that has the shape of the parameters (Adam moments, Adagrad sums) uses the
// same layout and converts with the same functions, so saved state is in the logical layout too.
#pragma once

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "../../weights.hpp"
#include "program.hpp"

namespace mtlite::train {

// Calls f(offset, length) for each contiguous run of a dense tensor in the arena.
template <class F>
void for_each_run(const Program& p, const ParamRange& t, F&& f) {
  const ParamBlock& b = p.blocks[t.index];
  if (t.role == ParamInfo::Role::bias) {
    f(b.bias + t.col, static_cast<std::size_t>(t.width));
    return;
  }
  for (std::size_t i = 0; i < b.in; ++i) f(b.wt + i * b.out + t.col, static_cast<std::size_t>(t.width));
}

struct Parameters {
  std::vector<float> arena;
  std::vector<float> copy;
  std::vector<std::vector<float>> tables;

  explicit Parameters(const Program& p = Program{}) { resize(p); }

  void resize(const Program& p) {
    arena.assign(p.arena_size + math::kPad, 0.0f);
    copy.assign(p.copy_size + math::kPad, 0.0f);
    tables.resize(p.tables.size());
    for (std::size_t t = 0; t < p.tables.size(); ++t)
      tables[t].assign(static_cast<std::size_t>(p.tables[t].rows) * p.tables[t].dim, 0.0f);
  }

  // W copies of blocks [first, last) from the arena.
  void refresh(const Program& p, std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) {
      const ParamBlock& b = p.blocks[i];
      math::transpose(b.in, b.out, arena.data() + b.wt, b.out, copy.data() + b.w, b.in_pad);
    }
  }
  void refresh(const Program& p) { refresh(p, 0, p.blocks.size()); }
};

// One tensor of an arena-shaped array (parameters or optimiser state) in the logical layout.
inline Tensor tensor_from(const Program& p, const ParamRange& t, const float* arena,
                          const std::vector<std::vector<float>>* tables) {
  Tensor out;
  out.shape = t.shape;
  if (t.role == ParamInfo::Role::embedding) {
    out.data = (*tables)[t.index];
    return out;
  }
  out.data.resize(out.numel());
  const ParamBlock& b = p.blocks[t.index];
  if (t.role == ParamInfo::Role::bias) {
    std::memcpy(out.data.data(), arena + b.bias + t.col, t.width * sizeof(float));
  } else {
    for (std::size_t o = 0; o < t.width; ++o)
      for (std::size_t i = 0; i < b.in; ++i) out.data[o * b.in + i] = arena[b.wt + i * b.out + t.col + o];
  }
  return out;
}

// The inverse of tensor_from; throws when the shape is wrong.
inline void tensor_into(const Program& p, const ParamRange& t, const Tensor& in, float* arena,
                        std::vector<std::vector<float>>* tables) {
  if (in.shape != t.shape || in.data.size() != in.numel())
    throw Error("tensor '" + t.name + "' has shape " + shape_string(in.shape) + " (" +
                std::to_string(in.data.size()) + " values); expected " + shape_string(t.shape));
  if (t.role == ParamInfo::Role::embedding) {
    (*tables)[t.index] = in.data;
    return;
  }
  const ParamBlock& b = p.blocks[t.index];
  if (t.role == ParamInfo::Role::bias) {
    std::memcpy(arena + b.bias + t.col, in.data.data(), t.width * sizeof(float));
  } else {
    for (std::size_t o = 0; o < t.width; ++o)
      for (std::size_t i = 0; i < b.in; ++i) arena[b.wt + i * b.out + t.col + o] = in.data[o * b.in + i];
  }
}

inline Weights to_weights(const Program& p, const Parameters& params) {
  Weights w;
  for (const ParamRange& t : p.tensors) w.emplace(t.name, tensor_from(p, t, params.arena.data(), &params.tables));
  return w;
}

// Every tensor of the program must be present with its shape and finite values; names that the
// program does not know are ignored (a checkpoint holds other things too).
inline void from_weights(const Program& p, const Weights& w, Parameters& params) {
  for (const ParamRange& t : p.tensors) {
    const auto it = w.find(t.name);
    if (it == w.end()) throw Error("weights: missing tensor '" + t.name + "'");
    if (it->second.shape != t.shape || it->second.data.size() != it->second.numel())
      throw Error("weights: tensor '" + t.name + "' has shape " + shape_string(it->second.shape) +
                  " (" + std::to_string(it->second.data.size()) + " values); expected " +
                  shape_string(t.shape));
    for (float v : it->second.data)
      if (!std::isfinite(v)) throw Error("weights: tensor '" + t.name + "' has a value that is not finite");
  }
  for (const ParamRange& t : p.tensors) tensor_into(p, t, w.at(t.name), params.arena.data(), &params.tables);
  params.refresh(p);
}

}  // namespace mtlite::train
