// Float weights by name, in the logical layout every framework uses: a dense layer's weight is
// [out, in] row-major (PyTorch's nn.Linear), its bias [out], an embedding table [rows, dim].
// The runtime repacks these into its kernel layout (kernels/packed.hpp); this is the exchange form.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "core/shape.hpp"
#include "network.hpp"
#include "spec.hpp"

namespace mtlite {

struct Tensor {
  std::vector<std::uint64_t> shape;
  std::vector<float> data;

  std::uint64_t numel() const { return mtlite::numel(shape); }
};

using Weights = std::map<std::string, Tensor>;

struct ParamInfo {
  enum class Role : std::uint8_t { embedding, weight, bias };
  std::string name;
  Role role = Role::weight;
  std::vector<std::uint64_t> shape;
  Activation activation = Activation::identity;  // what follows a weight; picks its init
  std::string layer;  // weight, bias: the layer_prefix() they belong to (empty for tables)

  std::uint64_t numel() const { return mtlite::numel(shape); }
};

// Every parameter of the spec: embedding tables in feature order, then each node's layers in
// network order.
inline std::vector<ParamInfo> parameters(const Spec& spec, const Network& net) {
  std::vector<ParamInfo> out;
  for (const Feature& f : spec.features)
    if (f.has_embedding())
      out.push_back({embedding_name(f.name), ParamInfo::Role::embedding,
                     {f.table_rows(), f.embedding_dim}, Activation::identity, {}});
  for (const Node& n : net.nodes) {
    if (n.kind != Node::Kind::mlp && n.kind != Node::Kind::gate) continue;
    std::uint64_t in = net.nodes[static_cast<std::size_t>(n.input)].width;
    for (std::size_t i = 0; i < n.layers.size(); ++i) {
      const std::string prefix = layer_prefix(n, i);
      const Layer& layer = n.layers[i];
      out.push_back({prefix + ".weight", ParamInfo::Role::weight, {layer.units, in}, layer.activation, prefix});
      out.push_back({prefix + ".bias", ParamInfo::Role::bias, {layer.units}, layer.activation, prefix});
      in = layer.units;
    }
  }
  return out;
}

inline std::vector<ParamInfo> parameters(const Spec& spec) {
  return parameters(spec, build_network(spec));
}

inline std::uint64_t parameter_count(const Spec& spec) {
  std::uint64_t n = 0;
  for (const ParamInfo& p : parameters(spec)) n += p.numel();
  return n;
}

// Seeded initial weights. Dense weights: He uniform before a ReLU, Xavier uniform otherwise;
// embeddings uniform with variance 1/dim; biases uniform in [-bias_range, bias_range] (zero for
// training). Each tensor draws from its own stream, seeded by (seed, name): experts therefore
// start from different weights, and adding a tensor does not change the others.
inline Weights random_weights(const Spec& spec, std::uint64_t seed, float bias_range = 0.0f) {
  spec.validate();
  Weights w;
  for (const ParamInfo& p : parameters(spec)) {
    Rng rng(mix64(seed ^ hash_string(p.name)));
    Tensor t;
    t.shape = p.shape;
    t.data.resize(p.numel());
    float a = bias_range;
    if (p.role == ParamInfo::Role::embedding) {
      a = std::sqrt(3.0f / static_cast<float>(p.shape[1]));
    } else if (p.role == ParamInfo::Role::weight) {
      const float fan_in = static_cast<float>(p.shape[1]), fan_out = static_cast<float>(p.shape[0]);
      a = p.activation == Activation::relu ? std::sqrt(6.0f / fan_in)
                                           : std::sqrt(6.0f / (fan_in + fan_out));
    }
    for (float& v : t.data) v = rng.uniform(-a, a);
    w.emplace(p.name, std::move(t));
  }
  return w;
}

}  // namespace mtlite
