// Tensors as the model compiler sees them: a name, an element type, a layout (FORMAT.md), a
// logical shape and bytes somewhere. They come from float Weights (f32, plain), from a converter
// (any dtype, packed) or straight from a mapped .mtl file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/mtl.hpp"
#include "weights.hpp"

namespace mtlite {

struct TensorRef {
  format::DType dtype = format::DType::f32;
  format::Layout layout = format::Layout::plain;
  std::vector<std::uint64_t> shape;
  const std::byte* data = nullptr;
  std::uint64_t bytes = 0;
};

using TensorMap = std::map<std::string, TensorRef>;

// A tensor that owns its bytes (the converter's output before it is written).
struct StoredTensor {
  format::DType dtype = format::DType::f32;
  format::Layout layout = format::Layout::plain;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> data;

  TensorRef ref() const { return {dtype, layout, shape, data.data(), data.size()}; }
};

using TensorStore = std::map<std::string, StoredTensor>;

inline TensorMap tensor_refs(const Weights& w) {
  TensorMap out;
  for (const auto& [name, t] : w)
    out[name] = {format::DType::f32, format::Layout::plain, t.shape,
                 reinterpret_cast<const std::byte*>(t.data.data()), t.data.size() * sizeof(float)};
  return out;
}

inline TensorMap tensor_refs(const TensorStore& store) {
  TensorMap out;
  for (const auto& [name, t] : store) out[name] = t.ref();
  return out;
}

// Element count of a shape.
inline std::uint64_t numel(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

}  // namespace mtlite
