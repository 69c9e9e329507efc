// Binds tensors to a compiled plan: checks every tensor against the spec (name, dtype, layout,
// shape, byte size, finite values), then points each packed layer and embedding table at its
// bytes. Tensors from a model file that the file already stores in kernel layout, with fused
// blocks side by side, are used in place; everything else (float weights to pack, blocks stored
// apart, tensors whose owner does not outlive the model) is copied into the plan's arena.
#pragma once

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../core/finite.hpp"
#include "../format/mtl.hpp"
#include "../kernels/i8.hpp"
#include "../kernels/packed.hpp"
#include "../network.hpp"
#include "../tensors.hpp"
#include "plan.hpp"

namespace mtlite::internal {


inline std::string describe(const TensorRef& t) {
  return std::string(to_string(t.dtype)) + " " + to_string(t.layout) + " " +
         shape_string(t.shape);
}

inline kernels::WeightType weight_type(DType d) {
  return d == DType::f16 ? kernels::WeightType::f16 : d == DType::i8 ? kernels::WeightType::i8 : kernels::WeightType::f32;
}

// The byte size a tensor must have, after its dtype/layout combination was accepted.
inline void check_bytes(const std::string& name, const TensorRef& t) {
  const auto want = tensor_bytes(t.dtype, t.layout, t.shape);
  if (!want) throw TensorError(name, describe(t) + " is not a valid combination");
  if (*want != t.bytes)
    throw TensorError(name, "holds " + std::to_string(t.bytes) + " bytes, " + describe(t) +
                " needs " + std::to_string(*want));
}

// Every float a tensor holds must be finite (NaN weights poison every score silently): an
// exponent of all ones is Inf or NaN, in f32 and f16 alike.
inline void check_finite(const std::string& name, const TensorRef& t) {
  auto bad = [&](std::uint64_t i) {
    throw TensorError(name, "non-finite value at element " + std::to_string(i));
  };
  if (t.dtype == DType::f32) {
    const std::uint64_t n = t.bytes / 4;
    if (const std::uint64_t i = detail::first_with_all_bits<std::uint32_t>(t.data, n, 0x7f800000u); i < n) bad(i);
  } else if (t.dtype == DType::f16) {
    const std::uint64_t n = t.bytes / 2;
    if (const std::uint64_t i = detail::first_with_all_bits<std::uint16_t>(t.data, n, 0x7c00u); i < n) bad(i);
  } else if (t.layout == Layout::rows_q) {  // each row: f32 scale, f32 offset, codes
    const std::uint64_t stride = rows_q_stride(t.dtype, t.shape[1]);
    for (std::uint64_t r = 0; r < t.shape[0]; ++r)
      if (detail::first_with_all_bits<std::uint32_t>(t.data + r * stride, 2, 0x7f800000u) < 2) bad(r);
  }
}

// A spec that needs more tensors than a model file can hold (format/mtl.hpp: kMaxTensors) must
// find them all among those given, counted before its network is built: a file of a few KB may
// declare a spec of millions of layers, and expanding that first would cost gigabytes before
// the first missing tensor is found. Smaller specs are expanded (a few MB at most: the parameter
// list and the network) so that check() can name the missing tensor. Only weights, biases and
// tables are counted (not i8 scales), so a complete set never fails this. The spec must be valid.
inline void check_tensor_count(const Spec& spec, std::size_t given) {
  const std::uint64_t need = parameter_tensor_count(spec);
  if (need > given && need > format::kMaxTensors)
    throw Error("the spec needs " + std::to_string(need) + " tensors, only " + std::to_string(given) +
                " are given");
}

// The one check of tensors against a spec, for every reader of them (Model, float_weights, the
// trainer's resume): check() first, then bind() for a Model.
class Binder {
 public:
  // persistent: the tensors' bytes live as long as the model (a loaded file), so they may be
  // used in place.
  Binder(const Spec& spec, const Network& net, const TensorMap& tensors, bool persistent)
      : spec_(spec), net_(net), tensors_(tensors), persistent_(persistent) {}

  // Checks every tensor; returns the weight type of every dense layer, by prefix.
  std::map<std::string, kernels::WeightType> check() {
    std::set<std::string> expected;
    for (const ParamInfo& p : parameters(spec_, net_)) {
      const TensorRef& t = require(p.name);
      expected.insert(p.name);
      if (t.shape != p.shape)
        throw TensorError(p.name, "shape " + shape_string(t.shape) + ", the spec needs " +
                    shape_string(p.shape));
      const bool ok =
          p.role == ParamInfo::Role::embedding
              ? (t.layout == Layout::plain && (t.dtype == DType::f32 || t.dtype == DType::f16)) ||
                    (t.layout == Layout::rows_q && (t.dtype == DType::u8 || t.dtype == DType::u4))
          : p.role == ParamInfo::Role::bias
              ? t.dtype == DType::f32 && (t.layout == Layout::plain || t.layout == Layout::padded16)
              : (t.dtype == DType::f32 && (t.layout == Layout::plain || t.layout == Layout::panels16)) ||
                    (t.dtype == DType::f16 && t.layout == Layout::panels16) ||
                    (t.dtype == DType::i8 && t.layout == Layout::panels16x4);
      if (!ok) throw TensorError(p.name, describe(t) + " is not allowed for a " + role_name(p.role));
      check_bytes(p.name, t);
      check_finite(p.name, t);
      if (p.role == ParamInfo::Role::weight) {
        const std::string& prefix = p.layer;
        types_[prefix] = weight_type(t.dtype);
        if (t.dtype == DType::i8) {
          if (p.shape[1] > kernels::kMaxI8Inputs)
            throw TensorError(p.name, "i8 layers take at most " +
                        std::to_string(kernels::kMaxI8Inputs) + " inputs");
          const std::string sname = p.name + ".scale";
          const TensorRef& s = require(sname);
          expected.insert(sname);
          if (s.dtype != DType::f32 || s.layout != Layout::padded16 || s.shape != std::vector<std::uint64_t>{p.shape[0]})
            throw TensorError(sname, describe(s) + ", needs f32 padded16 [" +
                        std::to_string(p.shape[0]) + "]");
          check_bytes(sname, s);
          check_finite(sname, s);
        }
      }
    }
    for (const auto& kv : tensors_)
      if (!expected.count(kv.first) && kv.first.rfind("train.", 0) != 0)
        throw Error("unexpected tensor '" + kv.first + "' (not part of this spec)");
    return types_;
  }

  // Points the plan's layers and tables at their bytes, copying into the arena what cannot be
  // used in place.
  void bind(Plan& plan) {
    // Sizes first, so that the arena is allocated once and nothing moves afterwards.
    std::vector<bool> in_place(plan.layers.size());
    std::size_t bytes = 0;
    auto reserve = [&](std::size_t n) { bytes += (n + kAlign - 1) / kAlign * kAlign; };
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
      const PackedLayer& L = plan.layers[i];
      in_place[i] = persistent_ && usable_in_place(L);
      const std::size_t padded = kernels::panel_count(L.n) * kernels::kPanel;
      if (!in_place[i]) {
        reserve(kernels::panel_count(L.n) * kernels::panel_bytes(L.type, L.k));
        reserve(padded * 4);
        if (L.type == kernels::WeightType::i8) reserve(padded * 4);
      }
      if (L.type == kernels::WeightType::i8) reserve(padded * 4);  // column sums
    }
    plan.tables.assign(spec_.features.size(), {});
    for (const Feature& f : spec_.features)
      if (f.has_embedding() && !persistent_) reserve(tensors_.at(embedding_name(f.name)).bytes);
    plan.arena = AlignedBuffer<std::byte>(bytes);

    std::size_t used = 0;
    auto take = [&](std::size_t n) {
      std::byte* p = plan.arena.data() + used;
      used += (n + kAlign - 1) / kAlign * kAlign;
      return p;
    };
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
      PackedLayer& L = plan.layers[i];
      const std::size_t padded = kernels::panel_count(L.n) * kernels::kPanel;
      L.in_place = in_place[i];
      if (L.in_place) {
        const std::string& first = L.blocks.front().prefix;
        L.panels = tensors_.at(first + ".weight").data;
        L.bias = reinterpret_cast<const float*>(tensors_.at(first + ".bias").data);
        if (L.type == kernels::WeightType::i8)
          L.scale = reinterpret_cast<const float*>(tensors_.at(first + ".weight.scale").data);
      } else {
        std::byte* panels = take(kernels::panel_count(L.n) * kernels::panel_bytes(L.type, L.k));
        auto* bias = reinterpret_cast<float*>(take(padded * 4));
        float* scale = L.type == kernels::WeightType::i8 ? reinterpret_cast<float*>(take(padded * 4)) : nullptr;
        std::size_t p = 0;  // first panel of the block
        for (const Block& b : L.blocks) {
          const TensorRef& w = tensors_.at(b.prefix + ".weight");
          std::byte* dst = panels + p * kernels::panel_bytes(L.type, L.k);
          if (w.layout == Layout::plain)
            kernels::pack_panels(reinterpret_cast<const float*>(w.data), b.units, L.k, reinterpret_cast<float*>(dst));
          else
            std::memcpy(dst, w.data, w.bytes);
          copy_vector(tensors_.at(b.prefix + ".bias"), b.units, bias + p * kernels::kPanel);
          if (scale) copy_vector(tensors_.at(b.prefix + ".weight.scale"), b.units, scale + p * kernels::kPanel);
          p += kernels::panel_count(b.units);
        }
        L.panels = panels;
        L.bias = bias;
        L.scale = scale;
      }
      if (L.type == kernels::WeightType::i8) {
        auto* colsum = reinterpret_cast<std::int32_t*>(take(padded * 4));
        kernels::compute_colsum(static_cast<const std::int8_t*>(L.panels), L.n, L.k, colsum);
        L.colsum = colsum;
      }
    }
    for (std::size_t f = 0; f < spec_.features.size(); ++f) {
      const Feature& feat = spec_.features[f];
      if (!feat.has_embedding()) continue;
      const TensorRef& t = tensors_.at(embedding_name(feat.name));
      TableInfo& info = plan.tables[f];
      info.dtype = t.dtype;
      info.rows = feat.table_rows();
      info.dim = feat.embedding_dim;
      info.stride = t.layout == Layout::rows_q ? rows_q_stride(t.dtype, info.dim)
                                               : info.dim * dtype_bits(t.dtype) / 8;
      if (persistent_) {
        info.data = t.data;
      } else {
        std::byte* copy = take(t.bytes);
        std::memcpy(copy, t.data, t.bytes);
        info.data = copy;
      }
    }
    if (used != plan.arena.size()) throw Error("internal: arena size mismatch");
  }

 private:
  const Spec& spec_;
  const Network& net_;
  const TensorMap& tensors_;
  bool persistent_;
  std::map<std::string, kernels::WeightType> types_;

  static const char* role_name(ParamInfo::Role r) {
    return r == ParamInfo::Role::embedding ? "embedding table" : r == ParamInfo::Role::bias ? "bias" : "dense weight";
  }

  const TensorRef& require(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error("missing tensor '" + name + "'");
    return it->second;
  }

  // The first `units` floats of a plain or padded16 vector into dst (the rest of dst stays 0).
  static void copy_vector(const TensorRef& t, std::size_t units, float* dst) {
    std::memcpy(dst, t.data, units * sizeof(float));
  }

  // A layer runs in place when every block is stored packed, block after block, for its weights,
  // its biases and (i8) its scales, at float-aligned addresses.
  bool usable_in_place(const PackedLayer& L) const {
    const char* suffixes[] = {".weight", ".bias", ".weight.scale"};
    const std::size_t kinds = L.type == kernels::WeightType::i8 ? 3 : 2;
    for (std::size_t s = 0; s < kinds; ++s) {
      const std::byte* next = nullptr;
      for (const Block& b : L.blocks) {
        const TensorRef& t = tensors_.at(b.prefix + suffixes[s]);
        if (t.layout == Layout::plain) return false;
        if (reinterpret_cast<std::uintptr_t>(t.data) % alignof(float) != 0) return false;
        if (next && t.data != next) return false;
        next = t.data + t.bytes;
      }
    }
    return true;
  }
};

}  // namespace mtlite::internal
