// Tensors as the model compiler sees them: a name, an element type, a layout (FORMAT.md), a
// logical shape and bytes somewhere. They come from float Weights (f32, plain), from a converter
// (any dtype, packed) or straight from a mapped .mtl file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/shape.hpp"
#include "weights.hpp"

namespace mtlite {

struct TensorRef {
  DType dtype = DType::f32;
  Layout layout = Layout::plain;
  std::vector<std::uint64_t> shape;
  const std::byte* data = nullptr;
  std::uint64_t bytes = 0;
};

using TensorMap = std::map<std::string, TensorRef>;

// A tensor that owns its bytes (the converter's output before it is written).
struct StoredTensor {
  DType dtype = DType::f32;
  Layout layout = Layout::plain;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> data;

  TensorRef ref() const { return {dtype, layout, shape, data.data(), data.size()}; }
};

using TensorStore = std::map<std::string, StoredTensor>;

inline TensorMap tensor_refs(const Weights& w) {
  TensorMap out;
  for (const auto& [name, t] : w)
    out[name] = {DType::f32, Layout::plain, t.shape,
                 reinterpret_cast<const std::byte*>(t.data.data()), t.data.size() * sizeof(float)};
  return out;
}

inline TensorMap tensor_refs(const TensorStore& store) {
  TensorMap out;
  for (const auto& [name, t] : store) out[name] = t.ref();
  return out;
}

}  // namespace mtlite
