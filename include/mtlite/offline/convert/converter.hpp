// The converter's library half: float weights -> the tensors of a deployable model (quantized per
// tensor, packed in kernel layout), and a model file written with fused layers side by side.
// `mtlite convert` adds reading inputs, calibration and the report.
#pragma once

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "../../compile/binder.hpp"
#include "../../compile/compiler.hpp"
#include "../../format/json.hpp"
#include "../../format/spec_json.hpp"
#include "../../kernels/f16.hpp"
#include "../../model.hpp"
#include "../../network.hpp"
#include "../../tensors.hpp"
#include "../../weights.hpp"
#include "quantize.hpp"
#include "writer.hpp"

namespace mtlite {

struct ConvertOptions {
  kernels::WeightType dense = kernels::WeightType::f32;  // dense layers: f32, f16 or i8
  DType embeddings = DType::f32;         // tables: f32, f16, u8 or u4
  bool drop_aux = false;  // auxiliary tasks: their towers and what only they use are removed
  // Layers that decide between experts or produce a score are small and sensitive: with i8
  // dense layers, gates and the last layer of every tower stay in floating point (f16: half the
  // bytes of f32 at an error far below i8's) unless these are false.
  bool float_gates = true;
  bool float_heads = true;
  // Tensors (parameter names) kept one step finer than the above: an i8 dense layer in f16, a
  // u4 table in u8, a u8 table in f16. mtlite convert --max-p99 picks them from calibration rows.
  std::set<std::string> finer;
};

struct Converted {
  Spec spec;            // as served (auxiliary tasks marked unserved with drop_aux)
  TensorStore tensors;  // packed, quantized
  Json report;          // per tensor: the dtype chosen and why

  // The converted model, in memory (it holds its own copy of the tensors).
  Model model() const { return Model(spec, tensor_refs(tensors)); }
};

namespace internal {

inline bool is_gate(const std::string& prefix) {
  return prefix.rfind("gate", 0) == 0 || (prefix.size() >= 5 && prefix.compare(prefix.size() - 5, 5, ".gate") == 0);
}

template <class T>
std::vector<std::byte> as_bytes(const std::vector<T>& v) {
  std::vector<std::byte> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace internal

// Quantizes and packs float weights (logical layout) for the runtime. Throws Error when the
// weights do not fit the spec.
inline Converted convert(const Spec& spec_in, const Weights& weights, const ConvertOptions& options) {
  Converted out;
  out.spec = spec_in;
  if (options.drop_aux)
    for (Task& t : out.spec.tasks)
      if (t.role == TaskRole::auxiliary) t.served = false;
  out.spec.validate();
  { const Model check(spec_in, weights); }  // every tensor present, shaped and finite
  const Network net = build_network(out.spec);
  out.report = Json::object();

  // The last layer of every tower (the score) by prefix.
  std::vector<std::string> heads;
  for (const Node& n : net.nodes)
    if (n.kind == Node::Kind::mlp && n.name.rfind("tower", 0) == 0)
      heads.push_back(layer_prefix(n, n.layers.size() - 1));

  for (const ParamInfo& p : parameters(out.spec, net)) {
    const Tensor& t = weights.at(p.name);
    StoredTensor s;
    s.shape = p.shape;
    std::string why;
    if (p.role == ParamInfo::Role::embedding) {
      const std::uint64_t rows = p.shape[0], dim = p.shape[1];
      s.dtype = options.embeddings;
      why = "embeddings";
      if (options.finer.count(p.name) && (s.dtype == DType::u4 || s.dtype == DType::u8)) {
        s.dtype = s.dtype == DType::u4 ? DType::u8 : DType::f16;
        why = "one step finer (calibration)";
      }
      if (s.dtype == DType::f32) {
        s.data = internal::as_bytes(t.data);
      } else if (s.dtype == DType::f16) {
        std::vector<std::uint16_t> h(t.data.size());
        for (std::size_t i = 0; i < h.size(); ++i) h[i] = kernels::f32_to_f16(t.data[i]);
        s.data = internal::as_bytes(h);
      } else {
        s.layout = Layout::rows_q;
        s.data.resize(*tensor_bytes(s.dtype, s.layout, s.shape));
        kernels::quantize_rows(t.data.data(), rows, dim, s.dtype == DType::u8 ? 8 : 4,
                               reinterpret_cast<std::uint8_t*>(s.data.data()));
      }
    } else if (p.role == ParamInfo::Role::bias) {
      s.layout = Layout::padded16;
      std::vector<float> padded(kernels::round_to_panel(p.shape[0]), 0.0f);
      std::copy(t.data.begin(), t.data.end(), padded.begin());
      s.data = internal::as_bytes(padded);
    } else {
      const std::string& prefix = p.layer;
      const std::size_t n = p.shape[0], k = p.shape[1];
      kernels::WeightType type = options.dense;
      why = "dense";
      if (type == kernels::WeightType::i8 && options.float_gates && internal::is_gate(prefix)) {
        type = kernels::WeightType::f16;
        why = "gate kept in floating point";
      } else if (type == kernels::WeightType::i8 && options.float_heads &&
                 std::find(heads.begin(), heads.end(), prefix) != heads.end()) {
        type = kernels::WeightType::f16;
        why = "tower head kept in floating point";
      } else if (type == kernels::WeightType::i8 && k > kernels::kMaxI8Inputs) {
        type = kernels::WeightType::f16;
        why = "too many inputs for i8: f16";
      } else if (type == kernels::WeightType::i8 && options.finer.count(p.name)) {
        type = kernels::WeightType::f16;
        why = "one step finer (calibration)";
      }
      const std::size_t panels = kernels::panel_count(n);
      if (type == kernels::WeightType::f32) {
        s.layout = Layout::panels16;
        std::vector<float> packed(panels * k * kernels::kPanel, 0.0f);
        kernels::pack_panels(t.data.data(), n, k, packed.data());
        s.data = internal::as_bytes(packed);
      } else if (type == kernels::WeightType::f16) {
        s.dtype = DType::f16;
        s.layout = Layout::panels16;
        std::vector<std::uint16_t> packed(panels * kernels::panel_rows(type, k) * kernels::kPanel, 0);
        kernels::pack_panels_f16(t.data.data(), n, k, packed.data());
        s.data = internal::as_bytes(packed);
      } else {
        s.dtype = DType::i8;
        s.layout = Layout::panels16x4;
        std::vector<std::int8_t> packed(panels * kernels::panel_bytes(type, k), 0);
        std::vector<float> scale(panels * kernels::kPanel, 0.0f);
        std::vector<std::int32_t> colsum(panels * kernels::kPanel, 0);
        kernels::quantize_dense_i8(t.data.data(), n, k, packed.data(), scale.data(), colsum.data());
        s.data = internal::as_bytes(packed);
        StoredTensor sc;
        sc.layout = Layout::padded16;
        sc.shape = {n};
        sc.data = internal::as_bytes(scale);
        out.tensors[p.name + ".scale"] = std::move(sc);
      }
    }
    if (!why.empty())
      out.report.set(p.name, Json::object().set("dtype", to_string(s.dtype)).set("why", why));
    out.tensors[p.name] = std::move(s);
  }
  return out;
}

// The whole file: the spec and `extra` metadata, tensors in execution order with every fused
// layer's blocks side by side (weights, then biases, then scales), so that a mapped file runs in
// place. Embedding tables come first.
inline format::FileWriter model_writer(const Spec& spec, const TensorStore& tensors, Json extra = Json::object()) {
  const Model model(spec, tensor_refs(tensors));  // validates, and yields the fused layer order
  format::FileWriter w;
  Json meta = Json::object().set("format", "mtlite").set("spec", spec_to_json(spec));
  for (const auto& [key, value] : extra.items())
    if (key != "format" && key != "spec") meta.set(key, value);
  w.set_metadata(std::move(meta));
  auto add = [&](const std::string& name) {
    const StoredTensor& t = tensors.at(name);
    w.add(name, t.dtype, t.layout, t.shape, t.data.data(), t.data.size());
  };
  for (const Feature& f : spec.features)
    if (f.has_embedding()) add(embedding_name(f.name));
  for (const internal::PackedLayer& L : model.plan().layers) {
    for (const internal::Block& b : L.blocks) add(b.prefix + ".weight");
    for (const internal::Block& b : L.blocks) add(b.prefix + ".bias");
    if (L.type == kernels::WeightType::i8)
      for (const internal::Block& b : L.blocks) add(b.prefix + ".weight.scale");
  }
  return w;
}

// Float weights back from a model's tensors (a float checkpoint: f32, plain or packed). The
// tensors pass the checks Model::load makes (compile/binder.hpp) before a byte is read: a file
// whose tensors disagree with its own spec is refused, not read past its end.
inline Weights float_weights(const Spec& spec, const TensorMap& tensors) {
  spec.validate();
  internal::check_tensor_count(spec, tensors.size());
  const Network net = build_network(spec);
  internal::Binder(spec, net, tensors, /*persistent=*/false).check();
  Weights out;
  for (const ParamInfo& p : parameters(spec, net)) {
    const TensorRef& t = tensors.at(p.name);
    if (t.dtype != DType::f32)
      throw Error("tensor '" + p.name + "' is " + to_string(t.dtype) +
                  ": convert from the float model (the f32 checkpoint), not a quantized one");
    Tensor w;
    w.shape = p.shape;
    w.data.resize(p.numel());
    const auto* src = reinterpret_cast<const float*>(t.data);
    if (t.layout == Layout::panels16) {  // the checks made its size panel_count(n) * k * 16 floats
      const std::size_t n = p.shape[0], k = p.shape[1];
      for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < k; ++c)
          w.data[r * k + c] = src[((r / kernels::kPanel) * k + c) * kernels::kPanel + r % kernels::kPanel];
    } else {  // plain, or padded16 whose first numel values are the vector
      std::memcpy(w.data.data(), src, p.numel() * sizeof(float));
    }
    out[p.name] = std::move(w);
  }
  return out;
}

}  // namespace mtlite
